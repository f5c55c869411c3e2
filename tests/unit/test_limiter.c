/* test_limiter.c - the EC2 budget is one GCRA bucket per target (and action class), shared
 * by every process forked after it was configured. */
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "limiter.h"

#define NOW 1000000000 /* any monotonic time: a fresh bucket is full */
#define FG(t, now) limiter_take(t, LIMITER_DESCRIBE, now, 0, false)

static void test_buckets_per_target(void)
{
    limiter_reset();
    limiter_configure(1.0, 2.0, 0);
    struct target a = target_make(NULL, "us-east-1"), b = target_make(NULL, "eu-west-1");
    CHECK_INT(FG(&a, NOW), 0);
    CHECK_INT(FG(&a, NOW), 0);
    int64_t wait = FG(&a, NOW);
    CHECK(wait < 0 && wait >= -1000000); /* a's burst is spent: refused, a second to refill */
    CHECK_INT(limiter_wait_us(&a, LIMITER_DESCRIBE, NOW, false, 0), -wait);
    CHECK_INT(limiter_wait_us(&a, LIMITER_DESCRIBE, NOW, false, 1), -wait + 1000000);
    CHECK_INT(FG(&b, NOW), 0); /* b has a budget of its own */
    CHECK_INT(FG(&a, NOW + 1000000), 0); /* refilled */
    struct target other = target_make("prod", "us-east-1");
    CHECK_INT(FG(&other, NOW), 0);
}

struct seen {
    uint64_t *w, *r;
    double *tk;
    const struct target *only; /* NULL: every bucket (the last one visited stays) */
};

static void visit(void *arg, const struct target *t, enum limiter_class c, double tk, uint64_t w,
           uint64_t r)
{
    CHECK_STR(limiter_class_name(c), "Describe");
    struct seen *out = arg;
    if (out->only && !target_equal(out->only, t))
        return;
    *out->w = w;
    *out->r = r;
    *out->tk = tk;
}

static void test_reserve_wait_and_counts(void)
{
    limiter_reset();
    limiter_configure(10.0, 4.0, 0);
    struct target a = target_make(NULL, "us-east-1");
    /* background work leaves half the burst to requests someone waits for */
    CHECK_INT(limiter_take(&a, LIMITER_DESCRIBE, NOW, 0, true), 0);
    CHECK_INT(limiter_take(&a, LIMITER_DESCRIBE, NOW, 0, true), 0);
    CHECK(limiter_take(&a, LIMITER_DESCRIBE, NOW, 0, true) < 0);
    CHECK_INT(FG(&a, NOW), 0);
    CHECK_INT(FG(&a, NOW), 0);
    /* spent: a caller that may wait 100 ms gets the next token reserved, 100 ms out */
    CHECK_INT(limiter_take(&a, LIMITER_DESCRIBE, NOW, 150000, false), 100000);
    CHECK_INT(limiter_take(&a, LIMITER_DESCRIBE, NOW, 150000, false), -200000);
    uint64_t waits = 0, refusals = 0;
    double tokens = 9;
    struct seen out = {&waits, &refusals, &tokens, NULL};
    limiter_foreach(NOW, visit, &out);
    CHECK_INT(waits, 1);
    CHECK_INT(refusals, 2);
    CHECK(tokens > -1.01 && tokens < -0.99); /* one token promised ahead */
}

static void test_shared_across_fork(void)
{
    limiter_reset();
    limiter_configure(1.0, 3.0, 0);
    struct target a = target_make(NULL, "us-east-1");
    pid_t pid = fork();
    if (pid == 0)
        _exit(FG(&a, NOW) == 0 && FG(&a, NOW) == 0 ? 0 : 1);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_INT(FG(&a, NOW), 0); /* the child's two calls spent two of the three tokens */
    CHECK(FG(&a, NOW) < 0);
}

static void test_reconfigure_and_off(void)
{
    limiter_reset();
    limiter_configure(1.0, 1.0, 0);
    struct target a = target_make(NULL, "us-east-1");
    CHECK_INT(FG(&a, NOW), 0);
    CHECK(FG(&a, NOW) < 0);
    limiter_configure(1.0, 1.0, 0); /* unchanged: the bucket stays spent */
    CHECK(FG(&a, NOW) < 0);
    limiter_configure(0, 0, 0); /* off */
    CHECK(!limiter_enabled());
    for (int i = 0; i < 100; i++)
        CHECK_INT(FG(&a, NOW), 0);
}

static double tokens_of(const struct target *a, int64_t now)
{
    uint64_t w, r;
    double tk = -99;
    struct seen out = {&w, &r, &tk, a};
    limiter_foreach(now, visit, &out);
    return tk;
}

/* Refilled mode (the budget across replicas): time does not fill a bucket, limiter_refill
 * does; a bucket holds this replica's share of the burst; waits are paced at its share of
 * the rate; back to time refill, it keeps what it had. */
static void test_refilled_by_the_parent_not_by_time(void)
{
    limiter_reset();
    limiter_configure(10.0, 6.0, 0);
    struct target a = target_make(NULL, "us-east-1");
    CHECK_INT(FG(&a, NOW), 0); /* one of six spent on the monotonic clock */
    limiter_set_refilled(true, NOW);
    limiter_set_share(3);
    CHECK_INT((int64_t)limiter_local_burst(), 2); /* ceil(6 / 3) */
    /* the token spent is owed still: one of this replica's two is left */
    CHECK_INT(FG(&a, NOW), 0);
    CHECK(FG(&a, NOW) < 0);
    limiter_refill(&a, LIMITER_DESCRIBE, 1.0);
    CHECK_INT(FG(&a, NOW), 0);
    CHECK(FG(&a, NOW) < 0);
    /* an hour later nothing came back: only refills fill the bucket */
    CHECK(FG(&a, NOW + 3600000000LL) < 0);
    /* the next token is 100 ms of the bucket's clock away, 300 ms of real time at a third
     * of the rate; a caller that may wait that long gets it reserved */
    CHECK_INT(limiter_wait_us(&a, LIMITER_DESCRIBE, NOW, false, 0), 300000);
    CHECK_INT(limiter_take(&a, LIMITER_DESCRIBE, NOW, 300000, false), 300000);
    CHECK(tokens_of(&a, NOW) < -0.99 && tokens_of(&a, NOW) > -1.01);
    limiter_refill(&a, LIMITER_DESCRIBE, 1.0); /* pays the reserved token */
    CHECK(FG(&a, NOW) < 0);
    limiter_refill(&a, LIMITER_DESCRIBE, 0.5);
    CHECK(FG(&a, NOW) < 0);
    limiter_refill(&a, LIMITER_DESCRIBE, 0.5); /* fractions add up */
    CHECK_INT(FG(&a, NOW), 0);
    /* a refill past the share is lost: the bucket holds two */
    limiter_refill(&a, LIMITER_DESCRIBE, 50.0);
    CHECK(tokens_of(&a, NOW) > 1.99 && tokens_of(&a, NOW) < 2.01);
    CHECK_INT(FG(&a, NOW), 0);
    CHECK_INT(FG(&a, NOW), 0);
    CHECK(FG(&a, NOW) < 0);
    /* a target first seen in refilled mode starts with its share */
    struct target b = target_make("prod", "eu-west-1");
    CHECK_INT(FG(&b, NOW), 0);
    CHECK_INT(FG(&b, NOW), 0);
    CHECK(FG(&b, NOW) < 0);
    /* one replica alone: the whole burst and real-time waits */
    limiter_set_share(1);
    CHECK_INT((int64_t)limiter_local_burst(), 6);
    /* back to time refill: a still owes its two tokens (four of six left), and time
     * fills it again */
    limiter_set_refilled(false, NOW);
    CHECK_INT((int64_t)limiter_local_burst(), 6);
    for (int i = 0; i < 4; i++)
        CHECK_INT(FG(&a, NOW), 0);
    CHECK(FG(&a, NOW) < 0);
    CHECK_INT(FG(&a, NOW + 100000), 0);
}

/* Refills made by the parent reach a worker's takes (the same mapping). */
static void test_refill_seen_across_fork(void)
{
    limiter_reset();
    limiter_configure(1.0, 1.0, 0);
    limiter_set_refilled(true, NOW);
    struct target a = target_make(NULL, "us-east-1");
    CHECK_INT(FG(&a, NOW), 0);
    CHECK(FG(&a, NOW) < 0);
    limiter_refill(&a, LIMITER_DESCRIBE, 1.0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(FG(&a, NOW) == 0 && FG(&a, NOW) < 0 ? 0 : 1);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(FG(&a, NOW) < 0);
    limiter_reset();
}

TEST_MAIN(T(test_buckets_per_target), T(test_reserve_wait_and_counts),
          T(test_shared_across_fork), T(test_reconfigure_and_off),
          T(test_refilled_by_the_parent_not_by_time), T(test_refill_seen_across_fork))
