/* test_clock.c - deadlines and timestamp formatting. */
#include "clock.h"
#include "harness.h"

static void remaining(void)
{
    CHECK(clock_remaining_ms(0) == INT64_MAX);
    CHECK(clock_remaining_ms(clock_now_ms() - 5) == 0);
    int64_t r = clock_remaining_ms(clock_now_ms() + 1000);
    CHECK(r > 900 && r <= 1000);
}

static void rfc3339(void)
{
    char out[40];
    CHECK_STR(clock_format_rfc3339(1440938160123LL, out, sizeof out), "2015-08-30T12:36:00.123Z");
}

TEST_MAIN(T(remaining), T(rfc3339))
