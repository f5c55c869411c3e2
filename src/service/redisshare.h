/* redisshare.h - what a running ebsd shares with its replicas through Redis (issue 17): the
 * two connections (commands, and pub/sub for wake-ups) with their password or ElastiCache
 * IAM token, the shared cache behind the in-process one (read on a local miss, written
 * after each fetch) and the single flight across replicas (one lock per key, waiters woken
 * by pub/sub). Hits never come here: the in-process cache (cache.c) is the L1, kept
 * coherent by the wake message every release publishes (an L1 entry for that key is
 * replaced by the newer Redis value).
 *
 * Redis is never required: with redis.url "" every claim is NULL (fetch locally), and
 * while Redis is down, slow or answers garbage, a claim answers REDISSHARE_FETCH (locally,
 * without the lock) as soon as a command fails or command_timeout_ms passes, counted as a
 * fallback. Nothing that is a credential goes to Redis: keys are prefix, target and route
 * names; values are the cached JSON answers (src/store/redisvalue.h). */
#ifndef EBSD_REDISSHARE_H
#define EBSD_REDISSHARE_H
#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "loop.h"
#include "redis.h"
#include "redisvalue.h"
#include "status.h"
#include "target.h"

/* Counters and state for /readyz and /metrics (ebsd_redis_*). */
struct redisshare_stats {
    bool enabled;          /* redis.url is set */
    bool up;               /* the command connection is up */
    bool sub_up;           /* the pub/sub connection is up */
    uint64_t errors;       /* failed commands: error replies, timeouts, refusals, protocol */
    uint64_t connect_failures;
    uint64_t fallbacks;    /* claims answered "fetch locally" because Redis failed */
    uint64_t rejected;     /* values read back that failed validation (redis_value_rejected) */
    uint64_t l2_hits;      /* claims answered with a value from Redis */
    uint64_t owned;        /* claims that took the lock: this replica fetched for everyone */
    uint64_t waited;       /* claims that waited for another replica's fetch */
    uint64_t updates;      /* L1 entries replaced after another replica's wake message */
};

/* Opens the connections of cfg's redis block on l (never blocks; they come up by
 * themselves) and, with redis.iam_auth, starts the token renewer (credentials from
 * credsvc.c, so call this after credsvc_init). EBSD_OK also when redis.url is "" (off).
 * EBSD_EIO / EBSD_EINVAL / EBSD_EAUTH: the password file, the TLS context or the first IAM
 * token failed; nothing is left open. */
EBSD_MUST_CHECK ebsd_status redisshare_start(struct loop *l, const struct config *cfg);
/* SIGHUP: re-reads redis.password_file and gives it to both connections (re-AUTH of the
 * live command connection). A change of url or prefix needs a restart (logged). */
void redisshare_reload(const struct config *cfg);
/* Closes everything; pending claims get no callback (their owners are gone first). */
void redisshare_stop(void);

void redisshare_get_stats(struct redisshare_stats *out);

/* The command connection and the key prefix, for the other users of Redis in the service
 * (budgetshare.c); NULL while Redis is off or stopped. Owned here: valid until
 * redisshare_stop. */
struct redis *redisshare_connection(void);
const char *redisshare_prefix(void);

/* The L1 coherence hooks, set by the cache's owner (volumes.c). have: whether key is held
 * in L1, and its fetched_at (wall ms) into *fetched_at_ms. update: a newer value for key
 * (v valid during the call only). */
typedef bool (*redisshare_have_fn)(const char *key, int64_t *fetched_at_ms);
typedef void (*redisshare_update_fn)(const char *key, const struct redis_value *v);
void redisshare_set_hooks(redisshare_have_fn have, redisshare_update_fn update);

/* The outcome of a claim. VALUE: an answer from Redis, fresh and newer than asked (v valid
 * during the call only; the claim is over). FETCH: fetch it here, then call
 * redisshare_done (owner: this replica holds the key's lock; otherwise a fallback). */
enum redisshare_verdict { REDISSHARE_VALUE, REDISSHARE_FETCH };
typedef void (*redisshare_claim_fn)(void *arg, enum redisshare_verdict verdict,
                                    const struct redis_value *v);
struct redisshare_claim;

/* Starts resolving key (the L1 key, "TARGETKEY|NAME") across replicas: with check_first,
 * the Redis value first; then the lock (and the value again once the lock is ours: another
 * replica may just have stored it); without the lock, a wait for the holder's wake message
 * or its lock's expiry, then the value again. A value counts only when fresh and fetched
 * after newer_than_ms (wall ms; 0 = any). deadline (monotonic ms) sizes the lock. fn runs
 * exactly once, never from inside this call, unless redisshare_cancel comes first.
 * Returns NULL when Redis is off or refuses at once (down): fetch locally now. */
struct redisshare_claim *redisshare_claim(const struct target *t, const char *key,
                                          int64_t newer_than_ms, bool check_first,
                                          int64_t deadline, redisshare_claim_fn fn, void *arg);
/* The fetch of a FETCH verdict ended: v (NULL: it failed or is not cacheable) is stored in
 * Redis for ttl + the larger stale window, then the lock is released, which wakes the
 * other replicas. Frees the claim. */
void redisshare_done(struct redisshare_claim *c, const struct redis_value *v);
/* The fetch's deadline moved later: the lock is extended to cover it. */
void redisshare_extend(struct redisshare_claim *c, int64_t deadline);
/* Nobody wants the answer any more: releases the lock if held; fn will not run. Frees. */
void redisshare_cancel(struct redisshare_claim *c);

#endif
