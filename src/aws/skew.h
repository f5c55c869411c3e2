/* skew.h - the offset between AWS's clock and this host's, learned as the AWS SDKs learn it:
 * when a call fails with a clock-skew error code (retry_is_clock_skew_code) and the
 * answer's Date header is far from our clock, the difference is kept and every later
 * request is signed with the corrected time (clock_aws_wall_ms() + offset).
 *
 * One offset per process, in plain statics. Workers are forked from the parent, so they
 * start with the parent's offset; a worker that learns a new one reports it (ec2_stats
 * clock_offset_ms / clock_offset_set) and the parent adopts it with skew_adopt, so later
 * forks inherit it. Not thread-safe (ebsd has one thread). */
#ifndef EBSD_SKEW_H
#define EBSD_SKEW_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* A clock-skew error leads to a correction only when the server's Date is further than
 * this from our corrected clock (the Java SDK's threshold; a Date has 1 s resolution and
 * a request takes time, so small differences say nothing). */
#define SKEW_CORRECT_MS (4 * 60 * 1000)
/* SigV4's signature window: AWS refuses a request signed further off than this. Beyond it
 * ebsd only works because of the correction, and /readyz says so. */
#define SKEW_WINDOW_MS (5 * 60 * 1000)
/* The parent ignores a reported offset within this of the one it has (reports differ by
 * the Date's one-second resolution), so the log warns once, not once per worker. */
#define SKEW_CHANGE_MS (60 * 1000)

/* The time to sign AWS requests with: the host's clock (clock_aws_wall_ms) plus the
 * offset, in ms since the epoch and in whole seconds. */
int64_t skew_now_ms(void);
time_t skew_now(void);

/* The offset in ms (AWS's clock minus ours; 0 when none was learned) and whether one was. */
int64_t skew_offset_ms(void);
/* The same in whole seconds, rounded to the nearest (for people: logs, /readyz). */
int64_t skew_offset_s(void);
bool skew_offset_known(void);
/* True while |offset| exceeds SKEW_WINDOW_MS: requests signed with the host's clock alone
 * would be refused. */
bool skew_beyond_window(void);

/* Parses an HTTP Date header value (RFC 7231 IMF-fixdate, and the obsolete forms curl
 * accepts) with curl_getdate. False when it is not a date. */
bool skew_parse_http_date(const char *value, int64_t *out_ms);

/* Called with the Date header of an answer whose error code is a clock-skew code. When the
 * server's time is more than SKEW_CORRECT_MS from skew_now_ms(), sets this process's
 * offset to (server time - host time), logs it at debug level and returns true: the caller
 * re-signs and retries. False (offset unchanged) for a missing or unparsable Date or a
 * small difference: then the error is not the clock's fault. */
bool skew_correct_from_date(const char *date);

/* Parent: adopts an offset a worker learned. Ignored when within SKEW_CHANGE_MS of the one
 * already known; otherwise set, and skew_announce warns. */
void skew_adopt(int64_t offset_ms);
/* Worker: takes the offset the parent knew when it started the worker (as a fork would
 * have), without a warning of its own: the parent gave it. */
void skew_inherit(int64_t offset_ms);
/* Writes one warning to the log when the offset was set or moved by SKEW_CHANGE_MS or more
 * since the last warning (in this process or the parent it was forked from). */
void skew_announce(void);

/* The offset in seconds, for the ebsd_clock_offset_seconds gauge (metrics_gauge_fn). */
double skew_metric_seconds(void *arg);

/* Tests: forgets the offset and the last warning. */
void skew_reset(void);

#endif
