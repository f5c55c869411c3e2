/* clock.h - time for deadlines (monotonic) and for timestamps (wall clock).
 * A deadline everywhere in ebsd is an int64_t of CLOCK_MONOTONIC milliseconds. */
#ifndef EBSD_CLOCK_H
#define EBSD_CLOCK_H
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Monotonic milliseconds (for deadlines and durations). */
int64_t clock_now_ms(void);
/* Monotonic microseconds (for precise durations). */
int64_t clock_now_us(void);
/* Wall-clock milliseconds since the epoch (for timestamps shown to people). */
int64_t clock_wall_ms(void);
/* The host's wall clock as ebsd reads it to sign AWS requests and to measure clock skew
 * (skew.h), in ms since the epoch: clock_wall_ms() shifted by EBSD_TEST_CLOCK_SKEW_S
 * seconds when that variable is set. The variable is a test-only hook that fakes a host
 * clock that is off without touching the host's clock; it is read once per process (a
 * forked worker inherits the value), and a value that is not a whole number of seconds
 * within +/-10 years is ignored. Log time stamps and cache ages are not shifted. */
int64_t clock_aws_wall_ms(void);
/* The shift clock_aws_wall_ms applies, in seconds (0 unless the test hook is set). */
int64_t clock_test_skew_s(void);
/* Milliseconds left until deadline (0 if passed; INT64_MAX if deadline is 0 = none). */
int64_t clock_remaining_ms(int64_t deadline);
/* Formats wall-clock ms as RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z")
 * into out (at least 32 bytes). Returns out. */
char *clock_format_rfc3339(int64_t wall_ms, char *out, size_t outlen);

/* Parses an RFC 3339 time ("2026-01-02T03:04:05Z", fractions and +hh:mm offsets allowed)
 * into UTC seconds. False when malformed. */
bool clock_parse_rfc3339(const char *s, time_t *out);

#endif
