/* test_ratelimit.c - the token bucket: burst, refill rate, waits, and the deadline. */
#include <stdint.h>

#include "clock.h"
#include "harness.h"
#include "ratelimit.h"

static void test_burst_and_refill(void)
{
    struct ratelimit rl;
    ratelimit_init(&rl, 10.0, 3.0, 1000000);
    CHECK_INT(ratelimit_take_at(&rl, 1000000), 0);
    CHECK_INT(ratelimit_take_at(&rl, 1000000), 0);
    CHECK_INT(ratelimit_take_at(&rl, 1000000), 0);
    int64_t w = ratelimit_take_at(&rl, 1000000);
    CHECK(w > 99000 && w <= 100001); /* one token per 100 ms */
    CHECK_INT(ratelimit_take_at(&rl, 1050000) > 0, 1);
    CHECK_INT(ratelimit_take_at(&rl, 1100001), 0);
    /* A long idle refills to the burst, not beyond. */
    for (int i = 0; i < 3; i++)
        CHECK_INT(ratelimit_take_at(&rl, 100000000), 0);
    CHECK(ratelimit_take_at(&rl, 100000000) > 0);
    /* Time going backwards never adds tokens. */
    CHECK(ratelimit_take_at(&rl, 50000000) > 0);
}

static void test_rate_over_time(void)
{
    struct ratelimit rl;
    ratelimit_init(&rl, 50.0, 5.0, 0);
    int granted = 0;
    for (int64_t t = 0; t <= 2000000; t += 1000) /* 2 s, asking every ms */
        if (ratelimit_take_at(&rl, t) == 0)
            granted++;
    CHECK(granted >= 5 + 99 && granted <= 5 + 101); /* burst + 2 s * 50/s */
}

static void test_off_and_odd_burst(void)
{
    struct ratelimit rl;
    ratelimit_init(&rl, 0, 0, 0);
    for (int i = 0; i < 1000; i++)
        CHECK_INT(ratelimit_take_at(&rl, 0), 0);
    CHECK_INT(ratelimit_acquire(&rl, clock_now_ms() - 1), EBSD_OK);
    ratelimit_init(&rl, 1.0, 0.2, 0); /* burst below 1 still admits one */
    CHECK_INT(ratelimit_take_at(&rl, 0), 0);
    CHECK(ratelimit_take_at(&rl, 0) > 0);
}

static void test_acquire_waits_within_deadline(void)
{
    struct ratelimit rl;
    ratelimit_init(&rl, 20.0, 1.0, clock_now_us());
    CHECK_INT(ratelimit_acquire(&rl, clock_now_ms() + 1000), EBSD_OK);
    int64_t t0 = clock_now_us();
    CHECK_INT(ratelimit_acquire(&rl, clock_now_ms() + 1000), EBSD_OK); /* waits ~50 ms */
    int64_t took = clock_now_us() - t0;
    CHECK(took >= 40000 && took < 500000);
    /* The next token comes in ~50 ms: a 10 ms deadline refuses at once, without sleeping. */
    t0 = clock_now_us();
    CHECK_INT(ratelimit_acquire(&rl, clock_now_ms() + 10), EBSD_ETHROTTLED);
    CHECK(clock_now_us() - t0 < 5000);
    /* No deadline: waits. */
    CHECK_INT(ratelimit_acquire(&rl, 0), EBSD_OK);
}

TEST_MAIN(T(test_burst_and_refill), T(test_rate_over_time), T(test_off_and_odd_burst),
          T(test_acquire_waits_within_deadline))
