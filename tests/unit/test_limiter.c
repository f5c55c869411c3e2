/* test_limiter.c - the EC2 budget is one bucket per target (and action class). */
#include "harness.h"
#include "limiter.h"

static void test_buckets_per_target(void)
{
    limiter_reset();
    limiter_configure(1.0, 2.0, 0);
    struct target a = target_make(NULL, "us-east-1"), b = target_make(NULL, "eu-west-1");
    CHECK_INT(limiter_take(&a, LIMITER_DESCRIBE, 0), 0);
    CHECK_INT(limiter_take(&a, LIMITER_DESCRIBE, 0), 0);
    int64_t wait = limiter_take(&a, LIMITER_DESCRIBE, 0);
    CHECK(wait > 0 && wait <= 1000001); /* a's burst is spent: about a second to refill */
    CHECK_INT(limiter_take(&b, LIMITER_DESCRIBE, 0), 0); /* b has a budget of its own */
    CHECK_INT(limiter_take(&a, LIMITER_DESCRIBE, 1000000), 0); /* refilled */
    struct target other = target_make("prod", "us-east-1");
    CHECK_INT(limiter_take(&other, LIMITER_DESCRIBE, 0), 0);
}

static void test_reconfigure_and_off(void)
{
    limiter_reset();
    limiter_configure(1.0, 1.0, 0);
    struct target a = target_make(NULL, "us-east-1");
    CHECK_INT(limiter_take(&a, LIMITER_DESCRIBE, 0), 0);
    CHECK(limiter_take(&a, LIMITER_DESCRIBE, 0) > 0);
    limiter_configure(1.0, 1.0, 0); /* unchanged: the bucket stays spent */
    CHECK(limiter_take(&a, LIMITER_DESCRIBE, 0) > 0);
    limiter_configure(0, 0, 0); /* off */
    for (int i = 0; i < 100; i++)
        CHECK_INT(limiter_take(&a, LIMITER_DESCRIBE, 0), 0);
}

TEST_MAIN(T(test_buckets_per_target), T(test_reconfigure_and_off))
