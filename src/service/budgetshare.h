/* budgetshare.h - one EC2 budget for all replicas (issue 17): refill from Redis, spend
 * locally. Workers keep taking tokens from limiter.c's shared-memory buckets without any
 * round trip; in the parent, every 100 ms on average, this module asks Redis for a *grant* for each
 * target x action class whose local bucket is short of its share of the burst
 * (redisstate_limit_take on PREFIX{ACCOUNT:REGION}:budget:ACTION, the GCRA script on
 * Redis' clock, rate and burst of ec2.rate_limit / ec2.rate_burst) and adds what Redis
 * grants to the local bucket (limiter_refill). So the configured rate holds for all
 * replicas together, and a worker never waits on Redis.
 *
 * Every second the replica announces itself (redisstate_announce, 3 s expiry) and keeps
 * the live count it read. When a grant cannot be had (Redis down, slower than
 * command_timeout_ms, or a garbled reply), the bucket is refilled by time at rate / live
 * replicas (redis.replicas_hint before any count was read), which together stays within
 * the budget; when Redis answers again, grants replace the time refill. Nothing here ever
 * waits on Redis: a command refused at once (down) or failed is a time refill now. */
#ifndef EBSD_BUDGETSHARE_H
#define EBSD_BUDGETSHARE_H
#include <stdint.h>
#include "config.h"
#include "loop.h"

/* Counters for /metrics (ebsd_redis_budget_*, ebsd_redis_live_replicas). */
struct budgetshare_stats {
    bool enabled;            /* sharing the budget: redis.url is set */
    uint64_t granted;        /* asks Redis granted (in full or in part) */
    uint64_t refused;        /* asks Redis refused: the shared budget had no token */
    uint64_t failed;         /* asks that failed (down, timeout, garbage): refilled by time */
    uint64_t tokens_granted; /* tokens Redis granted */
    uint64_t local_refills;  /* refills by time while Redis was lost */
    unsigned live_replicas;  /* the live count last read (replicas_hint before any) */
};

/* Starts sharing cfg's EC2 budget through the command connection of redisshare.c (call
 * after redisshare_start; nothing happens when redis.url is "" or Redis could not be set
 * up): puts limiter.c in refilled mode and starts the 100 ms timer on l. */
void budgetshare_start(struct loop *l, const struct config *cfg);
/* SIGHUP: the new rate, burst and replicas_hint. */
void budgetshare_configure(const struct config *cfg);
/* Withdraws this replica, stops the timer and gives the buckets back to time refill. Call
 * before redisshare_stop (answers still in flight are then ignored). */
void budgetshare_stop(void);

void budgetshare_get_stats(struct budgetshare_stats *out);

/* The tokens to ask Redis for: what a bucket holding `tokens` (may be negative while
 * tokens are promised to waiting workers) lacks to hold `local_burst`, whole tokens only,
 * at most `local_burst` (this replica's share of the burst: one ask never takes the whole
 * shared budget from the other replicas); 0 when it lacks less than one. */
unsigned budgetshare_ask(double tokens, double local_burst);

/* The delay before the next tick for u in [0, 1): 50 to 150 ms, 100 on average. The jitter
 * keeps replicas from asking in the same order every tick: with a fixed period the one
 * whose tick falls first after each new token would take them all (first come, first
 * served in Redis), and a flood would starve the others. */
int64_t budgetshare_tick_ms(double u);

/* Redis refused an ask of n tokens and said the take would be allowed in wait_ms: the
 * tokens it would grant now at rate per second (the GCRA answer rounds wait_ms up, so
 * this never asks for more than is there); 0: none. */
unsigned budgetshare_partial(unsigned n, int64_t wait_ms, double rate);

#endif
