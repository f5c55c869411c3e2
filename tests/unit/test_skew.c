/* test_skew.c - the clock offset to AWS (skew.c) and the faked clock for tests (clock.c):
 * the EBSD_TEST_CLOCK_SKEW_S hook, HTTP Date parsing, when a Date corrects the offset,
 * the parent's adoption with its hysteresis, the signature window and the metric. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"
#include "skew.h"

/* An HTTP date (IMF-fixdate) for wall-clock second t. */
static void http_date(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Runs fn in a fresh child with EBSD_TEST_CLOCK_SKEW_S = value (the hook is read once per
 * process); the child's exit status is the number of failed checks. */
static int in_child_with_skew(const char *value, int (*fn)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        if (value)
            setenv("EBSD_TEST_CLOCK_SKEW_S", value, 1);
        else
            unsetenv("EBSD_TEST_CLOCK_SKEW_S");
        _exit(fn());
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static int expect_plus_hour(void)
{
    int bad = 0;
    bad += clock_test_skew_s() != 3600;
    int64_t d = clock_aws_wall_ms() - clock_wall_ms();
    bad += d < 3600000 - 50 || d > 3600000 + 50;
    /* the offset is 0 until learned: signing uses the (faked) host clock */
    bad += skew_now() < time(NULL) + 3599 || skew_now() > time(NULL) + 3601;
    return bad;
}

static int expect_minus_400(void)
{
    return (clock_test_skew_s() != -400) +
           (clock_aws_wall_ms() - clock_wall_ms() > -399000 ||
            clock_aws_wall_ms() - clock_wall_ms() < -401000);
}

static int expect_none(void)
{
    return (clock_test_skew_s() != 0) + (llabs(clock_aws_wall_ms() - clock_wall_ms()) > 50);
}

static void test_clock_hook(void)
{
    CHECK_INT(in_child_with_skew("3600", expect_plus_hour), 0);
    CHECK_INT(in_child_with_skew("-400", expect_minus_400), 0);
    CHECK_INT(in_child_with_skew(NULL, expect_none), 0);
    /* not a whole number of seconds within +/-10 years: ignored */
    static const char *const bad[] = {"", "1h", "+", "3600 ", " 3600", "+3600", "1e3", "0x10",
                                      "999999999999", "-999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = in_child_with_skew(bad[i], expect_none);
        if (r)
            fprintf(stderr, "EBSD_TEST_CLOCK_SKEW_S='%s' was not ignored\n", bad[i]);
        CHECK_INT(r, 0);
    }
}

static void test_parse_http_date(void)
{
    int64_t ms = 0;
    CHECK(skew_parse_http_date("Wed, 02 Dec 2026 17:19:33 GMT", &ms));
    CHECK_INT(ms, 1796231973000LL);
    /* the obsolete forms HTTP still allows */
    CHECK(skew_parse_http_date("Wednesday, 02-Dec-26 17:19:33 GMT", &ms));
    CHECK_INT(ms, 1796231973000LL);
    CHECK(skew_parse_http_date("Wed Dec  2 17:19:33 2026", &ms));
    CHECK_INT(ms, 1796231973000LL);
    ms = 7;
    CHECK(!skew_parse_http_date("", &ms));
    CHECK(!skew_parse_http_date(NULL, &ms));
    CHECK(!skew_parse_http_date("yesterday-ish", &ms));
    CHECK_INT(ms, 7);
}

static void test_correct_from_date(void)
{
    char d[64];
    skew_reset();
    CHECK(!skew_offset_known());
    CHECK_INT(skew_offset_ms(), 0);
    /* a Date close to our clock: the error is not the clock's (a wrong secret) */
    http_date(time(NULL) + 200, d, sizeof d);
    CHECK(!skew_correct_from_date(d));
    CHECK(!skew_offset_known());
    CHECK(!skew_correct_from_date("not a date"));
    CHECK(!skew_correct_from_date(""));
    /* an hour ahead: corrected; skew_now follows AWS's clock */
    http_date(time(NULL) + 3600, d, sizeof d);
    CHECK(skew_correct_from_date(d));
    CHECK(skew_offset_known());
    CHECK(llabs(skew_offset_ms() - 3600000) <= 2000);
    CHECK(llabs((long long)(skew_now() - (time(NULL) + 3600))) <= 2);
    CHECK(llabs(skew_now_ms() - (clock_wall_ms() + skew_offset_ms())) <= 50);
    CHECK(skew_beyond_window());
    CHECK(skew_metric_seconds(NULL) > 3597.0 && skew_metric_seconds(NULL) < 3601.0);
    /* the same Date again is now close to the corrected clock: nothing to correct */
    CHECK(!skew_correct_from_date(d));
    /* the host's clock was fixed: AWS's Date is an hour behind the corrected clock */
    http_date(time(NULL), d, sizeof d);
    CHECK(skew_correct_from_date(d));
    CHECK(llabs(skew_offset_ms()) <= 2000);
    CHECK(!skew_beyond_window());
    /* 400 s behind: over the correction threshold and the signature window */
    http_date(time(NULL) - 400, d, sizeof d);
    CHECK(skew_correct_from_date(d));
    CHECK(llabs(skew_offset_ms() + 400000) <= 2000);
    CHECK(skew_beyond_window());
    CHECK(skew_metric_seconds(NULL) < -397.0);
    skew_reset();
    CHECK(!skew_beyond_window());
}

static void test_adopt(void)
{
    skew_reset();
    skew_adopt(-3600000);
    CHECK(skew_offset_known());
    CHECK_INT(skew_offset_ms(), -3600000);
    /* reports within a minute of the known offset (Date resolution) change nothing */
    skew_adopt(-3601500);
    CHECK_INT(skew_offset_ms(), -3600000);
    CHECK_INT(skew_offset_s(), -3600);
    skew_adopt(-3540001);
    CHECK_INT(skew_offset_ms(), -3600000);
    /* a real change is taken */
    skew_adopt(-3000000);
    CHECK_INT(skew_offset_ms(), -3000000);
    /* within the window the offset is known but not alarming */
    skew_adopt(-250000);
    CHECK_INT(skew_offset_ms(), -250000);
    skew_adopt(-3599500); /* rounded to the nearest second, away from zero at .5 */
    CHECK_INT(skew_offset_s(), -3600);
    skew_adopt(3599499);
    CHECK_INT(skew_offset_s(), 3599);
    skew_adopt(-250000);
    CHECK(!skew_beyond_window());
    skew_adopt(301000);
    CHECK(skew_beyond_window());
    skew_reset();
}

TEST_MAIN(T(test_clock_hook), T(test_parse_http_date), T(test_correct_from_date), T(test_adopt))
