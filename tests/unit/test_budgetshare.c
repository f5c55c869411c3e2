/* test_budgetshare.c - the EC2 budget across replicas: what the parent asks Redis for, what
 * a refused ask may still get, and, with Redis unreachable from the start, the local
 * bucket refilled by time at rate / redis.replicas_hint without any wait. The shared paths
 * run against a real redis-server in tests/integration/test_redis_budget.py. */
#include <stdlib.h>

#include "budgetshare.h"
#include "clock.h"
#include "config.h"
#include "harness.h"
#include "limiter.h"
#include "loop.h"
#include "mem.h"
#include "redisshare.h"

static void test_ask_refills_what_was_spent(void)
{
    CHECK_INT(budgetshare_ask(2.0, 2.0), 0);   /* full: nothing to ask */
    CHECK_INT(budgetshare_ask(1.5, 2.0), 0);   /* less than a token short */
    CHECK_INT(budgetshare_ask(0.0, 2.0), 2);
    CHECK_INT(budgetshare_ask(0.25, 2.0), 1);
    CHECK_INT(budgetshare_ask(1.0, 5.0), 4);
    CHECK_INT(budgetshare_ask(-1.0, 2.0), 2);  /* a token promised to a waiting worker: */
    CHECK_INT(budgetshare_ask(-20.0, 2.0), 2); /* at most the share, paid back over ticks */
    CHECK_INT(budgetshare_ask(-20.0, 5.0), 5); /* one replica: its share is the burst */
    CHECK_INT(budgetshare_ask(-3.0, 0.5), 1);  /* a share below one is one */
    CHECK_INT(budgetshare_ask(3.0, 2.0), 0);
}

static void test_ticks_are_jittered(void)
{
    CHECK_INT(budgetshare_tick_ms(0.0), 50);
    CHECK_INT(budgetshare_tick_ms(0.5), 100);
    CHECK_INT(budgetshare_tick_ms(0.999), 149);
    CHECK_INT(budgetshare_tick_ms(1.0), 100); /* out of range: the mean */
    CHECK_INT(budgetshare_tick_ms(-0.1), 100);
}

static void test_partial_grant_after_a_refusal(void)
{
    /* rate 5: one token per 200 ms. Asked 4, allowed in 400 ms: two are there now. */
    CHECK_INT(budgetshare_partial(4, 400, 5.0), 2);
    CHECK_INT(budgetshare_partial(4, 401, 5.0), 1); /* rounded up: never more than is there */
    CHECK_INT(budgetshare_partial(4, 800, 5.0), 0);
    CHECK_INT(budgetshare_partial(1, 1, 5.0), 0);
    CHECK_INT(budgetshare_partial(3, 0, 5.0), 3);
    CHECK_INT(budgetshare_partial(3, 100, 0.0), 0); /* no rate: nothing */
    CHECK_INT(budgetshare_partial(3, -1, 5.0), 0);
}

static void on_stop(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

static double tokens_now;
static void visit(void *arg, const struct target *t, enum limiter_class c, double tokens,
                  uint64_t waits, uint64_t refusals)
{
    (void)arg;
    (void)t;
    (void)c;
    (void)waits;
    (void)refusals;
    tokens_now = tokens;
}

static void run_for(struct loop *l, int64_t ms)
{
    (void)loop_timer_start(l, clock_now_ms() + ms, on_stop, NULL);
    CHECK_INT(loop_run(l), EBSD_OK);
}

static void test_redis_unreachable_refills_by_time_at_the_hint(void)
{
    struct loop *l = NULL;
    CHECK_INT(loop_new(&l), EBSD_OK);
    struct config cfg;
    config_defaults(&cfg);
    free(cfg.redis_url);
    cfg.redis_url = xstrdup("redis://127.0.0.1:1"); /* nothing listens on port 1 */
    cfg.rate_limit = 10;
    cfg.rate_burst = 6;
    cfg.redis_replicas_hint = 2;
    limiter_reset();
    limiter_configure(cfg.rate_limit, cfg.rate_burst, clock_now_us());
    CHECK_INT(redisshare_start(l, &cfg), EBSD_OK);
    budgetshare_start(l, &cfg);
    struct budgetshare_stats st;
    budgetshare_get_stats(&st);
    CHECK(st.enabled);
    CHECK_INT(st.live_replicas, 2); /* no count ever read: the hint */
    CHECK_INT((int64_t)limiter_local_burst(), 3);
    struct target t = target_make(NULL, "us-east-1");
    for (int i = 0; i < 3; i++)
        CHECK_INT(limiter_take(&t, LIMITER_DESCRIBE, clock_now_us(), 0, false), 0);
    CHECK(limiter_take(&t, LIMITER_DESCRIBE, clock_now_us(), 0, false) < 0);
    int64_t t0 = clock_now_ms();
    run_for(l, 500);
    double secs = (double)(clock_now_ms() - t0) / 1000.0;
    tokens_now = -99;
    limiter_foreach(clock_now_us(), visit, NULL);
    /* 10 / 2 tokens a second, a tick (at most 150 ms with the jitter) at most behind, and
     * at most the share of the burst (3) on a machine slow enough to run the loop longer */
    double low = 5.0 * (secs - 0.15);
    CHECK(tokens_now >= (low < 3.0 ? low : 3.0) - 0.01 && tokens_now <= 5.0 * secs + 0.01);
    CHECK(tokens_now <= 3.0 + 0.01);
    budgetshare_get_stats(&st);
    CHECK(st.local_refills >= 3);
    CHECK_INT(st.granted, 0);
    budgetshare_stop();
    budgetshare_get_stats(&st);
    CHECK(!st.enabled);
    redisshare_stop();
    config_free(&cfg);
    loop_free(l);
    limiter_reset();
}

/* Without redis.url nothing is shared: the buckets stay on time refill. */
static void test_off_leaves_the_buckets_alone(void)
{
    struct loop *l = NULL;
    CHECK_INT(loop_new(&l), EBSD_OK);
    struct config cfg;
    config_defaults(&cfg);
    limiter_reset();
    limiter_configure(1.0, 4.0, 0);
    CHECK_INT(redisshare_start(l, &cfg), EBSD_OK);
    budgetshare_start(l, &cfg);
    struct budgetshare_stats st;
    budgetshare_get_stats(&st);
    CHECK(!st.enabled);
    CHECK_INT((int64_t)limiter_local_burst(), 4);
    budgetshare_stop();
    redisshare_stop();
    config_free(&cfg);
    loop_free(l);
    limiter_reset();
}

TEST_MAIN(T(test_ask_refills_what_was_spent), T(test_ticks_are_jittered),
          T(test_partial_grant_after_a_refusal),
          T(test_redis_unreachable_refills_by_time_at_the_hint),
          T(test_off_leaves_the_buckets_alone))
