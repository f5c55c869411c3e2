/* reqid.h - request ids: taken from X-Request-Id or the Root of X-Amzn-Trace-Id when they
 * are safe to echo, else generated (24 lowercase hex digits, unique per process). */
#ifndef EBSD_REQID_H
#define EBSD_REQID_H
#include <stdbool.h>
#include <stddef.h>

/* Seeds the generator from getrandom (call once at start; children never generate ids). */
void reqid_init(void);
/* Picks the id for a request into out (outlen >= 64). Either header may be NULL. */
void reqid_pick(const char *x_request_id, const char *x_amzn_trace_id, char *out, size_t outlen);
/* True if s is an id we are willing to echo: 1..64 chars of [A-Za-z0-9._:=-]. */
bool reqid_valid(const char *s);

#endif
