/* test_retry.c - standard-mode retry: classification, backoff bounds, quota accounting, and
 * the jitter RNG's reseeding after fork. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "retry.h"

static void test_codes(void)
{
    static const char *const throttles[] = {
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "ProvisionedThroughputExceededException",
        "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
        "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
        "EC2ThrottledException"};
    for (size_t i = 0; i < sizeof throttles / sizeof throttles[0]; i++)
        CHECK(retry_is_throttling_code(throttles[i]));
    CHECK(retry_is_transient_code("RequestTimeout"));
    CHECK(retry_is_transient_code("RequestTimeoutException"));
    CHECK(retry_is_transient_code("PriorRequestNotComplete"));
    CHECK(!retry_is_throttling_code("AuthFailure"));
    CHECK(!retry_is_throttling_code("requestlimitexceeded")); /* codes are case-sensitive */
    CHECK(!retry_is_throttling_code(""));
    CHECK(!retry_is_throttling_code(NULL));
    CHECK(!retry_is_transient_code("InvalidInstanceID.NotFound"));
}

static void test_classify(void)
{
    CHECK_INT(retry_classify(EBSD_OK, false, 200, ""), RETRY_NONE);
    CHECK_INT(retry_classify(EBSD_OK, false, 503, "RequestLimitExceeded"), RETRY_THROTTLE);
    CHECK_INT(retry_classify(EBSD_OK, false, 400, "Throttling"), RETRY_THROTTLE);
    CHECK_INT(retry_classify(EBSD_OK, false, 503, "EC2ThrottledException"), RETRY_THROTTLE);
    CHECK_INT(retry_classify(EBSD_OK, false, 429, ""), RETRY_THROTTLE);
    CHECK_INT(retry_classify(EBSD_OK, false, 500, "InternalError"), RETRY_TRANSIENT);
    CHECK_INT(retry_classify(EBSD_OK, false, 502, ""), RETRY_TRANSIENT);
    CHECK_INT(retry_classify(EBSD_OK, false, 503, "Unavailable"), RETRY_TRANSIENT);
    CHECK_INT(retry_classify(EBSD_OK, false, 504, ""), RETRY_TRANSIENT);
    CHECK_INT(retry_classify(EBSD_OK, false, 501, ""), RETRY_NONE);
    CHECK_INT(retry_classify(EBSD_OK, false, 400, "RequestTimeout"), RETRY_TRANSIENT);
    CHECK_INT(retry_classify(EBSD_OK, false, 401, "AuthFailure"), RETRY_NONE);
    CHECK_INT(retry_classify(EBSD_OK, false, 403, "SignatureDoesNotMatch"), RETRY_NONE);
    CHECK_INT(retry_classify(EBSD_OK, false, 400, "InvalidInstanceID.Malformed"), RETRY_NONE);
    CHECK_INT(retry_classify(EBSD_ENETWORK, false, 0, NULL), RETRY_TRANSIENT);
    CHECK_INT(retry_classify(EBSD_ENETWORK, true, 0, NULL), RETRY_TIMEOUT);
    CHECK_INT(retry_classify(EBSD_ETIMEDOUT, true, 0, NULL), RETRY_NONE);
    CHECK_INT(retry_classify(EBSD_ETOOBIG, false, 0, NULL), RETRY_NONE);
}

static void test_backoff_bounds(void)
{
    CHECK_INT(retry_backoff_cap_ms(1), 1000);
    CHECK_INT(retry_backoff_cap_ms(2), 2000);
    CHECK_INT(retry_backoff_cap_ms(3), 4000);
    CHECK_INT(retry_backoff_cap_ms(4), 8000);
    CHECK_INT(retry_backoff_cap_ms(5), 16000);
    CHECK_INT(retry_backoff_cap_ms(6), 20000);
    CHECK_INT(retry_backoff_cap_ms(7), 20000);
    CHECK_INT(retry_backoff_cap_ms(1000), 20000);
    CHECK_INT(retry_backoff_cap_ms(0), 1000);
    CHECK_INT(retry_backoff_ms(3, 0.0), 0);
    CHECK_INT(retry_backoff_ms(3, 1.0), 4000); /* deterministic mode sleeps the cap */
    CHECK_INT(retry_backoff_ms(3, 0.5), 2000);

    /* Full jitter: every draw within [0, cap), and the draws spread over the range. */
    struct retry_rng r = {0};
    retry_rng_seed(&r, 42);
    for (int attempt = 1; attempt <= 8; attempt++) {
        int64_t cap = retry_backoff_cap_ms(attempt), lo = cap, hi = 0;
        double sum = 0;
        for (int i = 0; i < 20000; i++) {
            double u = retry_rng_uniform(&r);
            CHECK(u >= 0.0 && u < 1.0);
            int64_t d = retry_backoff_ms(attempt, u);
            CHECK(d >= 0 && d < cap);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            sum += (double)d;
        }
        CHECK(lo < cap / 50);
        CHECK(hi > cap - cap / 50);
        double mean = sum / 20000;
        CHECK(mean > cap * 0.45 && mean < cap * 0.55);
    }
}

static void test_quota(void)
{
    struct retry_quota q;
    retry_quota_init(&q);
    CHECK_INT(q.available, 500);
    /* A first-try success gives back 1, capped at the initial capacity. */
    retry_quota_success(&q);
    CHECK_INT(q.available, 500);
    /* Two retries (5 each), then success: the last acquired amount comes back. */
    CHECK(retry_quota_acquire(&q, RETRY_THROTTLE));
    CHECK(retry_quota_acquire(&q, RETRY_TRANSIENT));
    CHECK_INT(q.available, 490);
    retry_quota_success(&q);
    CHECK_INT(q.available, 495);
    CHECK_INT(q.last_acquired, 0);
    retry_quota_success(&q);
    CHECK_INT(q.available, 496);
    /* A timeout retry costs 10; failure gives nothing back. */
    CHECK(retry_quota_acquire(&q, RETRY_TIMEOUT));
    CHECK_INT(q.available, 486);
    retry_quota_failure(&q);
    CHECK_INT(q.available, 486);
    retry_quota_success(&q);
    CHECK_INT(q.available, 487); /* first-try success after the failure: +1 */
    /* Drain: when less than the cost is left, no retry and the quota is untouched. */
    int n = 0;
    while (retry_quota_acquire(&q, RETRY_THROTTLE))
        n++;
    CHECK_INT(n, 487 / 5);
    CHECK_INT(q.available, 487 % 5);
    CHECK(!retry_quota_acquire(&q, RETRY_TIMEOUT));
    CHECK_INT(q.available, 2);
    retry_quota_failure(&q);
    for (int i = 0; i < 3; i++)
        retry_quota_success(&q);
    CHECK_INT(q.available, 5);
    CHECK(!retry_quota_acquire(&q, RETRY_TIMEOUT));
    CHECK(retry_quota_acquire(&q, RETRY_THROTTLE));
    CHECK_INT(q.available, 0);
}

/* A clock-skew error is retried only once the client corrected its clock (skew.h): the
 * class comes from the client, never from the code alone, and the retry is at once. */
static void test_clock_skew(void)
{
    static const char *const skew[] = {"RequestExpired", "RequestTimeTooSkewed",
                                       "InvalidSignatureException", "SignatureDoesNotMatch"};
    for (size_t i = 0; i < sizeof skew / sizeof skew[0]; i++) {
        CHECK(retry_is_clock_skew_code(skew[i]));
        CHECK_INT(retry_classify(EBSD_OK, false, 400, skew[i]), RETRY_NONE);
    }
    static const char *const not_skew[] = {"", "AuthFailure", "RequestLimitExceeded",
                                           "requestexpired", "RequestExpiredX", "InternalError"};
    for (size_t i = 0; i < sizeof not_skew / sizeof not_skew[0]; i++)
        CHECK(!retry_is_clock_skew_code(not_skew[i]));
    CHECK(!retry_is_clock_skew_code(NULL));
    /* no backoff after a correction; the others keep theirs */
    CHECK_INT(retry_delay_ms(RETRY_CLOCK_SKEW, 1, 1.0), 0);
    CHECK_INT(retry_delay_ms(RETRY_CLOCK_SKEW, 3, 0.9), 0);
    CHECK_INT(retry_delay_ms(RETRY_TRANSIENT, 1, 1.0), 1000);
    CHECK_INT(retry_delay_ms(RETRY_TIMEOUT, 2, 0.5), 1000);
    CHECK_INT(retry_delay_ms(RETRY_THROTTLE, 3, 1.0), 4000);
    /* it costs what a transient retry costs, and is given back on success like one */
    struct retry_quota q;
    retry_quota_init(&q);
    CHECK(retry_quota_acquire(&q, RETRY_CLOCK_SKEW));
    CHECK_INT(q.available, 500 - RETRY_QUOTA_COST);
    retry_quota_success(&q);
    CHECK_INT(q.available, 500);
}

static void test_rng_fork(void)
{
    /* Seeded identically in the parent, the child must reseed on its first draw. */
    struct retry_rng r;
    retry_rng_seed(&r, 7);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        double u = retry_rng_uniform(&r);
        ssize_t w = write(fds[1], &u, sizeof u);
        _exit(w == (ssize_t)sizeof u ? 0 : 1);
    }
    double mine = retry_rng_uniform(&r), theirs = -1;
    CHECK(read(fds[0], &theirs, sizeof theirs) == (ssize_t)sizeof theirs);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(theirs >= 0.0 && theirs < 1.0);
    CHECK(mine != theirs);
    close(fds[0]);
    close(fds[1]);
    /* Unseeded state seeds itself. */
    struct retry_rng z = {0};
    double a = retry_rng_uniform(&z), b = retry_rng_uniform(&z);
    CHECK(a != b);
}


/* The adaptive mode step by step against botocore 1.43's own classes: the golden rows below
 * were printed by driving botocore.retries.adaptive.ClientRateLimiter (with its CubicCalculator,
 * TokenBucket(max_rate=1) and RateClocker) on a fake clock starting at 1000.25 s: 's' a
 * success, 't' a throttle (on_receiving_response), 'a' a non-blocking acquire (0 when a token
 * was taken or the limiter is off, else TokenBucket._sleep_amount(1)); after each row the
 * bucket's max_rate. The scenario: 24 answers at 10/s (the rate stays at the 0.5 floor, then
 * CUBIC grows it), a throttle (rate = 0.7 x measured, limiter on), acquires that must wait,
 * another throttle, a slow recovery, a 3 s pause, a last throttle. */
struct adaptive_row {
    double dt;
    char kind;
    double rate, wait;
};
static const struct adaptive_row adaptive_golden[] = {
{0.10, 's', 0.5, 0},
{0.10, 's', 0.5, 0},
{0.10, 's', 0.5, 0},
{0.10, 's', 0.5, 0},
{0.10, 's', 0.5, 0},
{0.10, 's', 0.5, 0},
{0.10, 's', 0.5, 0},
{0.10, 's', 0.5, 0},
{0.10, 's', 0.5, 0},
{0.10, 's', 0.5, 0},
{0.10, 's', 0.53240000000036314, 0},
{0.10, 's', 0.69120000000047155, 0},
{0.10, 's', 0.87880000000059943, 0},
{0.10, 's', 1.0976000000007486, 0},
{0.10, 's', 1.3500000000009209, 0},
{0.10, 's', 1.6384000000011179, 0},
{0.10, 's', 1.9652000000013405, 0},
{0.10, 's', 2.3328000000015914, 0},
{0.10, 's', 2.7436000000018717, 0},
{0.10, 's', 3.2000000000021829, 0},
{0.10, 's', 3.7044000000025274, 0},
{0.10, 's', 4.2592000000029051, 0},
{0.10, 's', 4.8668000000033196, 0},
{0.10, 's', 5.5296000000037724, 0},
{0.05, 't', 6.9941759999999986, 0},
{0.00, 'a', 6.9941759999999986, 0},
{0.30, 'a', 6.9941759999999986, 0},
{0.01, 'a', 6.9941759999999986, 0},
{0.40, 's', 9.2162452458226678, 0},
{0.20, 't', 2.0717670399999997, 0},
{0.70, 'a', 2.0717670399999997, 0},
{0.00, 'a', 2.0717670399999997, 0},
{0.25, 'a', 2.0717670399999997, 0.19803925445208381},
{0.00, 's', 2.7838668799999997, 0},
{0.25, 'a', 2.7838668799999997, 0},
{0.00, 's', 2.7838668799999997, 0},
{0.25, 'a', 2.7838668799999997, 0.0065943383039927068},
{0.00, 's', 2.9609000236150558, 0},
{0.25, 'a', 2.9609000236150558, 0},
{0.00, 's', 2.9844181662925946, 0},
{0.25, 'a', 2.9844181662925946, 0},
{0.00, 's', 3.0672655302639855, 0},
{0.25, 'a', 3.0672655302639855, 0},
{0.00, 's', 3.2469421155292286, 0},
{0.25, 'a', 3.2469421155292286, 0},
{0.00, 's', 3.5609479220883236, 0},
{0.25, 'a', 3.5609479220883236, 0.017759125361096816},
{0.00, 's', 4.0467829499412709, 0},
{0.25, 'a', 4.0467829499412709, 0},
{0.00, 's', 4.7419471990880693, 0},
{0.25, 'a', 4.7419471990880693, 0},
{0.00, 's', 5.6839406695287202, 0},
{0.25, 'a', 5.6839406695287202, 0},
{0.00, 's', 6.9102633612632243, 0},
{0.25, 'a', 6.9102633612632243, 0},
{0.00, 's', 7.9983308374015998, 0},
{3.00, 's', 2.6663328341469863, 0},
{0.00, 'a', 2.6663328341469863, 0},
{0.00, 'a', 2.6663328341469863, 0},
{0.50, 't', 1.3066432983902889, 0},
{0.10, 'a', 1.3066432983902889, 0},
};

static bool close_to(double a, double b)
{
    return fabs(a - b) <= 1e-9 * (fabs(b) > 1 ? fabs(b) : 1);
}

static void test_adaptive_matches_botocore(void)
{
    struct retry_adaptive a;
    double t = 1000.25;
    retry_adaptive_init(&a, t);
    CHECK(retry_adaptive_acquire(&a, t) == 0); /* off until the first throttle */
    int bad = 0;
    for (size_t i = 0; i < sizeof adaptive_golden / sizeof adaptive_golden[0]; i++) {
        const struct adaptive_row *r = &adaptive_golden[i];
        t += r->dt;
        double wait = 0;
        if (r->kind == 'a')
            wait = retry_adaptive_acquire(&a, t);
        else
            retry_adaptive_update(&a, t, r->kind == 't');
        if (!close_to(retry_adaptive_rate(&a), r->rate) || !close_to(wait, r->wait)) {
            if (bad++ < 5)
                fprintf(stderr, "row %zu (%c): rate %.17g want %.17g, wait %.17g want %.17g\n",
                        i, r->kind, retry_adaptive_rate(&a), r->rate, wait, r->wait);
        }
    }
    CHECK_INT(bad, 0);
    CHECK(a.enabled);
}

/* The documented shape without botocore: a throttle cuts the rate to 0.7 x the measured
 * rate; successes after it climb back through w_max at t = K; a waiting acquire says how
 * long until one token has refilled. */
static void test_adaptive_shape(void)
{
    struct retry_adaptive a;
    double t = 0;
    retry_adaptive_init(&a, t);
    for (int i = 0; i < 50; i++) { /* 20 requests/s for 2.5 s */
        t += 0.05;
        retry_adaptive_update(&a, t, false);
    }
    double measured = a.measured_rate;
    CHECK(measured > 15 && measured < 25);
    retry_adaptive_update(&a, t, true);
    double after = retry_adaptive_rate(&a);
    CHECK(close_to(after, 0.7 * a.w_max));
    CHECK(a.enabled);
    /* at last_fail + K the CUBIC curve is back at w_max (before the 2x-measured cap) */
    double k = a.k, w_max = a.w_max, lf = a.last_fail;
    CHECK(close_to(RETRY_ADAPTIVE_SCALE * pow((lf + k) - lf - k, 3) + w_max, w_max));
    /* drain the bucket, then a wait of (1 - capacity) / rate */
    while (retry_adaptive_acquire(&a, t) == 0)
        ;
    double w = retry_adaptive_acquire(&a, t);
    CHECK(w > 0 && w <= 1 / retry_adaptive_rate(&a) + 1e-12);
    CHECK(retry_adaptive_acquire(&a, t + w) == 0);
    /* settings: clamped, and default mode is standard */
    struct retry_settings s = {42, RETRY_MODE_DEFAULT};
    retry_settings_set(&s);
    CHECK_INT(retry_settings_get()->max_attempts, RETRY_MAX_ATTEMPTS_CAP);
    CHECK_INT(retry_settings_get()->mode, RETRY_MODE_STANDARD);
    s = (struct retry_settings){3, RETRY_MODE_STANDARD};
    retry_settings_set(&s);
    CHECK_STR(retry_mode_name(RETRY_MODE_ADAPTIVE), "adaptive");
}

TEST_MAIN(T(test_codes), T(test_classify), T(test_backoff_bounds), T(test_quota),
          T(test_clock_skew), T(test_rng_fork), T(test_adaptive_matches_botocore),
          T(test_adaptive_shape))
