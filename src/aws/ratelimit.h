/* ratelimit.h - a token bucket: at most `burst` requests at once, refilled at rate_per_s.
 * The EC2 client embeds one per client (ec2_options.rate_per_s, off in ebsd's workers), so
 * it limits one process. ebsd's EC2 budget across all its processes is limiter.h's.
 * Plain data, no locks: one owner per bucket. */
#ifndef EBSD_RATELIMIT_H
#define EBSD_RATELIMIT_H
#include <stdbool.h>
#include <stdint.h>
#include "status.h"

struct ratelimit {
    double rate;     /* tokens per second; <= 0: the limiter is off */
    double burst;    /* bucket size (at least 1 when on) */
    double tokens;   /* tokens now (may be fractional) */
    int64_t last_us; /* monotonic us of the last refill */
};

/* Prepares a full bucket. rate_per_s <= 0 turns the limiter off (every take succeeds). */
void ratelimit_init(struct ratelimit *rl, double rate_per_s, double burst, int64_t now_us);

/* Takes one token at now_us if there is one: returns 0. Otherwise takes nothing and returns
 * the microseconds until one will be there (> 0). Pure: no clock, no sleep. */
int64_t ratelimit_take_at(struct ratelimit *rl, int64_t now_us);

/* Takes one token, sleeping for it if needed, but never past deadline (monotonic ms; 0 =
 * no deadline). EBSD_ETHROTTLED, without sleeping, when the token would come too late. */
EBSD_MUST_CHECK ebsd_status ratelimit_acquire(struct ratelimit *rl, int64_t deadline);

#endif
