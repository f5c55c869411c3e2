/* clock.c - monotonic and wall clocks (see clock.h). */
#include "clock.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define TEST_SKEW_MAX_S (10LL * 366 * 24 * 3600)

int64_t clock_test_skew_s(void)
{
    static bool loaded;
    static int64_t skew_s;
    if (!loaded) {
        loaded = true;
        const char *v = getenv("EBSD_TEST_CLOCK_SKEW_S");
        /* digits with an optional minus: strtoll alone takes blanks and '+' */
        const char *digits = v && *v == '-' ? v + 1 : v;
        if (digits && *digits && strspn(digits, "0123456789") == strlen(digits)) {
            char *end;
            errno = 0;
            long long s = strtoll(v, &end, 10);
            if (errno == 0 && *end == '\0' && s >= -TEST_SKEW_MAX_S && s <= TEST_SKEW_MAX_S)
                skew_s = s;
        }
    }
    return skew_s;
}

int64_t clock_aws_wall_ms(void)
{
    return clock_wall_ms() + clock_test_skew_s() * 1000;
}

int64_t clock_remaining_ms(int64_t deadline)
{
    if (deadline == 0)
        return INT64_MAX;
    int64_t left = deadline - clock_now_ms();
    return left > 0 ? left : 0;
}

char *clock_format_rfc3339(int64_t wall_ms, char *out, size_t outlen)
{
    /* Every log line carries a time stamp: the date and time of day are formatted once per
     * second, the milliseconds each time. */
    static _Thread_local time_t last_secs = -1;
    static _Thread_local char last[64];
    time_t secs = (time_t)(wall_ms / 1000);
    if (secs != last_secs) {
        struct tm tm;
        gmtime_r(&secs, &tm);
        snprintf(last, sizeof last, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        last_secs = secs;
    }
    int ms = (int)(wall_ms % 1000);
    size_t n = strlen(last);
    if (wall_ms < 0 || outlen < n + 6) {
        snprintf(out, outlen, "%s.%03dZ", last, ms < 0 ? 0 : ms);
        return out;
    }
    memcpy(out, last, n);
    char tail[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10),
                    'Z', '\0'};
    memcpy(out + n, tail, sizeof tail);
    return out;
}

bool clock_parse_rfc3339(const char *s, time_t *out)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return false;
    const char *p = s + 10;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return false;
    p++;
    if (sscanf(p, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3 || n != 8)
        return false;
    p += 8;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59)
            return false;
        offset = (*p == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
        p += 6;
    } else {
        return false;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec};
    *out = timegm(&tm) - offset;
    return true;
}
