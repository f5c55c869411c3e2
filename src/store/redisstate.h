/* redisstate.h - what replicas share through Redis, on top of a struct redis connection:
 * a GCRA rate limiter (one EC2 budget per target for all replicas), a single-flight lock
 * (one fan-out per key across replicas, waiters woken by pub/sub) and replica
 * announcements (how many replicas are alive, to split the budget when Redis is lost).
 *
 * Keys (docs/DEPLOY.md "Redis data"): every key starts with the configured prefix, and the
 * keys of one target (account x region) carry the hash tag {ACCOUNT:REGION}, so a cluster
 * keeps them, and every script's keys, in one slot:
 *   PREFIX{ACCOUNT:REGION}:budget:ACTION   GCRA theoretical arrival time (us), PX = backlog
 *   PREFIX{ACCOUNT:REGION}:flight:NAME     single-flight lock: a random token, PX = ttl
 *   PREFIX{ACCOUNT:REGION}:cache:NAME      a cached answer (src/store/redisvalue.h)
 *   PREFIX{ACCOUNT:REGION}:hint            the last instance count, EX a day (sizehint.c)
 *   PREFIXreplicas                         sorted set: replica id -> expiry (Redis ms)
 * Channel PREFIXwake:KEY (one per lock key) carries "released" when a lock is released;
 * subscribe to the pattern PREFIXwake:* once (redisstate_wake_pattern).
 *
 * Every call is asynchronous: EBSD_OK means fn will run exactly once (with the outcome or a
 * failure status from src/store/redis.h: EBSD_ETIMEDOUT, EBSD_ENETWORK, EBSD_EUPSTREAM, or
 * EBSD_EPARSE for a reply of the wrong shape); any other return means fn will not run and
 * the caller falls back to local state at once. Scripts go as EVALSHA and fall back to
 * EVAL once when the server does not know them (NOSCRIPT). All times are Redis' own clock
 * (TIME), so replicas' clocks need not agree. */
#ifndef EBSD_REDISSTATE_H
#define EBSD_REDISSTATE_H
#include <stdbool.h>
#include <stdint.h>
#include "redis.h"
#include "status.h"

#define REDISSTATE_MAX_KEY 512
#define REDISSTATE_TOKEN_LEN 32 /* hex characters of a lock token */

/* Builds "PREFIX{ACCOUNT:REGION}:KIND:NAME" (":NAME" left out when name is NULL).
 * Returns a new string (caller frees), or NULL when a part is empty (but name), has a
 * brace, a space or a control byte, or the key would pass REDISSTATE_MAX_KEY. */
char *redisstate_key(const char *prefix, const char *account, const char *region,
                     const char *kind, const char *name);

/* ---- rate limiter (GCRA, generic cell rate algorithm, on Redis' clock) */

/* allowed: the call may go now. Otherwise wait_ms is how long until it would be allowed. */
typedef void (*redisstate_limit_fn)(ebsd_status st, bool allowed, int64_t wait_ms, void *arg);

/* Takes cost tokens from the budget at key (redisstate_key(prefix, account, region,
 * "budget", action)) refilled at rate per second with room for burst at once: the same
 * answers a local token bucket of that rate and burst gives, for all replicas together.
 * rate > 0, burst >= 1, 1 <= cost <= burst. A refused take costs nothing. */
EBSD_MUST_CHECK ebsd_status redisstate_limit_take(struct redis *r, const char *key, double rate,
                                                  double burst, unsigned cost,
                                                  redisstate_limit_fn fn, void *arg);

/* ---- single-flight lock */

/* Fills out with a new random token (REDISSTATE_TOKEN_LEN hex + NUL) from OpenSSL's RNG. */
EBSD_MUST_CHECK ebsd_status redisstate_token(char out[REDISSTATE_TOKEN_LEN + 1]);

/* acquired: this caller owns the lock. Otherwise another owner holds it for ttl_left_ms
 * more (-1 if unknown); wait for a wake message or for that long, whichever comes first. */
typedef void (*redisstate_lock_fn)(ebsd_status st, bool acquired, int64_t ttl_left_ms,
                                   void *arg);
/* Tries to take the lock at key for ttl_ms with token (SET key token NX PX ttl_ms, and the
 * holder's PTTL when taken, in one script). */
EBSD_MUST_CHECK ebsd_status redisstate_lock_acquire(struct redis *r, const char *key,
                                                    const char *token, uint32_t ttl_ms,
                                                    redisstate_lock_fn fn, void *arg);

/* done: the lock was ours and is released (or extended). false: it was not ours any more
 * (expired, taken by another): nothing was changed. */
typedef void (*redisstate_done_fn)(ebsd_status st, bool done, void *arg);
/* Releases the lock only if key still holds token, and then publishes "released" on
 * PREFIXwake:KEY (prefix as given to redisstate_key) to wake the waiters. */
EBSD_MUST_CHECK ebsd_status redisstate_lock_release(struct redis *r, const char *prefix,
                                                    const char *key, const char *token,
                                                    redisstate_done_fn fn, void *arg);
/* Extends the lock to ttl_ms from now, only if key still holds token (a long fetch). */
EBSD_MUST_CHECK ebsd_status redisstate_lock_extend(struct redis *r, const char *key,
                                                   const char *token, uint32_t ttl_ms,
                                                   redisstate_done_fn fn, void *arg);
/* The wake channel pattern "PREFIXwake:*" for redis_subscribe(..., pattern=true); a
 * message's channel is "PREFIXwake:" followed by the lock key. Caller frees. */
char *redisstate_wake_pattern(const char *prefix);

/* ---- replica announcements */

/* count: replicas alive now (whose last announcement is younger than their ttl),
 * including this one. */
typedef void (*redisstate_count_fn)(ebsd_status st, int64_t count, void *arg);
/* Announces replica id (printable, no space, at most 128 bytes) alive for ttl_ms, drops
 * expired replicas and counts the live ones, in one script on PREFIXreplicas. Call it
 * every ttl_ms / 3. */
EBSD_MUST_CHECK ebsd_status redisstate_announce(struct redis *r, const char *prefix,
                                                const char *id, uint32_t ttl_ms,
                                                redisstate_count_fn fn, void *arg);
/* Withdraws replica id (at shutdown). fn may be NULL (fire and forget). */
EBSD_MUST_CHECK ebsd_status redisstate_withdraw(struct redis *r, const char *prefix,
                                                const char *id, redisstate_count_fn fn,
                                                void *arg);

#endif
