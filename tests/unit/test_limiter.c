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
};

static void visit(void *arg, const struct target *t, enum limiter_class c, double tk, uint64_t w,
           uint64_t r)
{
    (void)t;
    CHECK_STR(limiter_class_name(c), "Describe");
    struct seen *out = arg;
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
    struct seen out = {&waits, &refusals, &tokens};
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

TEST_MAIN(T(test_buckets_per_target), T(test_reserve_wait_and_counts),
          T(test_shared_across_fork), T(test_reconfigure_and_off))
