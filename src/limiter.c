/* limiter.c - EC2 budgets keyed by target and action class (see limiter.h). */
#include "limiter.h"

#include <stdbool.h>
#include <string.h>

#include "ratelimit.h"

#define LIMITER_MAX 64 /* targets x classes kept; past that the oldest slot is reused */

static struct {
    bool configured;
    double rate, burst;
    struct {
        struct target t;
        enum limiter_class c;
        struct ratelimit rl;
    } slot[LIMITER_MAX];
    unsigned n, next;
} g;

void limiter_configure(double rate, double burst, int64_t now_us)
{
    if (g.configured && g.rate == rate && g.burst == burst)
        return;
    g.configured = true;
    g.rate = rate;
    g.burst = burst;
    for (unsigned i = 0; i < g.n; i++)
        ratelimit_init(&g.slot[i].rl, rate, burst, now_us);
}

int64_t limiter_take(const struct target *t, enum limiter_class c, int64_t now_us)
{
    for (unsigned i = 0; i < g.n; i++)
        if (g.slot[i].c == c && target_equal(&g.slot[i].t, t))
            return ratelimit_take_at(&g.slot[i].rl, now_us);
    unsigned i = g.n < LIMITER_MAX ? g.n++ : g.next++ % LIMITER_MAX;
    g.slot[i].t = *t;
    g.slot[i].c = c;
    ratelimit_init(&g.slot[i].rl, g.rate, g.burst, now_us);
    return ratelimit_take_at(&g.slot[i].rl, now_us);
}

void limiter_reset(void)
{
    memset(&g, 0, sizeof g);
}
