/* skew.c - the clock offset to AWS, learned from a clock-skew error's Date header (skew.h). */
#include "skew.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "clock.h"
#include "log.h"

/* offset_ms and known are atomic: a worker's clients (a lister and the volume shares it
 * carries, worker.c) may learn an offset in one thread while another signs. */
static struct {
    _Atomic int64_t offset_ms; /* AWS's clock minus the host's (clock_aws_wall_ms) */
    _Atomic bool known;
    int64_t warned_ms;   /* the offset the last warning gave */
    bool warned;
} g;

static int64_t abs64(int64_t v)
{
    return v < 0 ? -v : v;
}

int64_t skew_now_ms(void)
{
    return clock_aws_wall_ms() + g.offset_ms;
}

time_t skew_now(void)
{
    int64_t ms = skew_now_ms();
    /* floor, so that a clock just before the epoch is not rounded up */
    return (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
}

int64_t skew_offset_ms(void)
{
    return g.offset_ms;
}

int64_t skew_offset_s(void)
{
    return g.offset_ms >= 0 ? (g.offset_ms + 500) / 1000 : -((-g.offset_ms + 500) / 1000);
}

bool skew_offset_known(void)
{
    return g.known;
}

bool skew_beyond_window(void)
{
    return g.known && abs64(g.offset_ms) > SKEW_WINDOW_MS;
}

bool skew_parse_http_date(const char *value, int64_t *out_ms)
{
    if (!value || !*value)
        return false;
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return false;
    *out_ms = (int64_t)t * 1000;
    return true;
}

bool skew_correct_from_date(const char *date)
{
    int64_t server_ms;
    if (!skew_parse_http_date(date, &server_ms))
        return false;
    server_ms += 500; /* the Date names the second the answer was made: take its middle */
    int64_t off_by = server_ms - skew_now_ms();
    if (abs64(off_by) <= SKEW_CORRECT_MS)
        return false;
    /* The new offset is off by up to half a second plus the answer's latency: far inside
     * the signature window. */
    g.offset_ms = server_ms - clock_aws_wall_ms();
    g.known = true;
    log_debug("clock_skew", "the server's Date (%s) is %lld s from our clock; signing with "
              "an offset of %lld s", date, (long long)(off_by / 1000),
              (long long)(g.offset_ms / 1000));
    return true;
}

void skew_adopt(int64_t offset_ms)
{
    if (g.known && abs64(offset_ms - g.offset_ms) < SKEW_CHANGE_MS)
        return;
    g.offset_ms = offset_ms;
    g.known = true;
    skew_announce();
}

void skew_inherit(int64_t offset_ms)
{
    g.offset_ms = offset_ms;
    g.known = true;
    g.warned = true;
    g.warned_ms = offset_ms;
}

void skew_announce(void)
{
    if (!g.known || (g.warned && abs64(g.offset_ms - g.warned_ms) < SKEW_CHANGE_MS))
        return;
    g.warned = true;
    g.warned_ms = g.offset_ms;
    long long s = (long long)skew_offset_s();
    log_warn("clock_skew",
             "this host's clock is %lld s %s AWS's (learned from a server's Date header); "
             "AWS requests are signed with the corrected time%s",
             s < 0 ? -s : s, s < 0 ? "ahead of" : "behind",
             abs64(g.offset_ms) > SKEW_WINDOW_MS ? ": fix the host's clock (NTP)" : "");
}

double skew_metric_seconds(void *arg)
{
    (void)arg;
    return (double)g.offset_ms / 1000.0;
}

void skew_reset(void)
{
    g.offset_ms = 0;
    g.known = false;
    g.warned = false;
    g.warned_ms = 0;
}
