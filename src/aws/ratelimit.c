/* ratelimit.c - token bucket with an explicit clock (testable) and a deadline-bound wait. */
#include "ratelimit.h"

#include <errno.h>
#include <time.h>

#include "clock.h"

void ratelimit_init(struct ratelimit *rl, double rate_per_s, double burst, int64_t now_us)
{
    rl->rate = rate_per_s > 0 ? rate_per_s : 0;
    rl->burst = burst >= 1 ? burst : 1;
    rl->tokens = rl->burst;
    rl->last_us = now_us;
}

static void refill(struct ratelimit *rl, int64_t now_us)
{
    if (now_us > rl->last_us) {
        rl->tokens += (double)(now_us - rl->last_us) * rl->rate / 1e6;
        if (rl->tokens > rl->burst)
            rl->tokens = rl->burst;
        rl->last_us = now_us;
    }
}

int64_t ratelimit_take_at(struct ratelimit *rl, int64_t now_us)
{
    if (rl->rate <= 0)
        return 0;
    refill(rl, now_us);
    if (rl->tokens >= 1.0) {
        rl->tokens -= 1.0;
        return 0;
    }
    int64_t wait = (int64_t)((1.0 - rl->tokens) * 1e6 / rl->rate) + 1;
    return wait > 0 ? wait : 1;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

ebsd_status ratelimit_acquire(struct ratelimit *rl, int64_t deadline)
{
    for (;;) {
        int64_t now = clock_now_us();
        int64_t wait = ratelimit_take_at(rl, now);
        if (wait == 0)
            return EBSD_OK;
        if (deadline && now + wait > deadline * 1000)
            return EBSD_ETHROTTLED;
        sleep_us(wait);
    }
}
