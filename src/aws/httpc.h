/* httpc.h - blocking HTTP(S) requests through libcurl, each bounded by a deadline, by
 * per-attempt connect and read timeouts, and by a cap on the response size. One struct httpc per process: a forked child builds its own and
 * never touches its parent's (connections are not shared across fork). */
#ifndef EBSD_HTTPC_H
#define EBSD_HTTPC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "status.h"

struct httpc; /* opaque: a curl easy handle and multi handle kept for connection reuse */

/* The bounds used when a request leaves them at 0. */
#define HTTPC_DEFAULT_CONNECT_TIMEOUT_MS 5000

struct httpc_request {
    const char *method;              /* "GET", "POST", "PUT" */
    const char *url;
    const char *const *headers;      /* "Name: value" strings, NULL-terminated; may be NULL */
    const void *body;
    size_t body_len;
    int64_t deadline;                /* monotonic ms; 0 = 30 s from now */
    size_t max_response;             /* cap on the body (0 = 16 MiB) */
    const char *ca_bundle;           /* NULL = system trust store */
    int64_t connect_timeout_ms;      /* TCP and TLS set-up; 0 = HTTPC_DEFAULT_CONNECT_TIMEOUT_MS */
    int64_t read_timeout_ms;         /* longest wait for the first byte of the answer once the
                                      * request is on its way, and for each next byte after
                                      * that (a stall); 0 = no bound but the deadline */
    /* Optional: a 2xx answer's body goes to sink piece by piece as it arrives, and is never
     * kept whole (resp->streamed); any other status's body is kept in resp->body as without
     * a sink (an error envelope). max_response bounds the bytes sunk too. sink returns false
     * to stop the transfer: then httpc_perform returns EBSD_OK with resp->sink_stopped and
     * the status, and the connection is closed. A transfer cut after some pieces (a timeout,
     * a reset) returns its error as without a sink: what the sink has is not an answer. */
    bool (*sink)(void *arg, const char *piece, size_t n);
    void *sink_arg;
};

struct httpc_response {
    long status;                     /* HTTP status, 0 if none was received */
    struct buf body;                 /* owned; free with httpc_response_free */
    char content_type[128];
    char retry_after[32];            /* Retry-After / x-amz-retry-after if sent */
    char date[64];                   /* the Date header if sent (clock skew: skew.h) */
    char error[256];                 /* curl's message when the transfer failed */
    bool timed_out;                  /* the deadline, or a connect or read timeout, cut the
                                      * transfer */
    bool connect_failed;
    bool streamed;                   /* the body went to the request's sink, not to body */
    bool sink_stopped;               /* ... and the sink stopped the transfer */
};

/* Creates a client (global curl init is done once by httpc_global_init). Never NULL. */
struct httpc *httpc_new(void);
/* Makes up to n handles (at most HTTPC_WARM_MAX) ahead, in this process, which httpc_new
 * hands out before it makes any: a spare worker (proc_spares) makes the handles its
 * clients will take, their allocations and first writes done before its request. */
#define HTTPC_WARM_MAX 4
void httpc_warm(unsigned n);
void httpc_free(struct httpc *h);
/* curl_global_init; call once at start in the parent, before any fork. */
void httpc_global_init(void);

/* Performs req. EBSD_OK whenever an HTTP response arrived (any status: check
 * resp->status); EBSD_ETIMEDOUT at the deadline; EBSD_ENETWORK on connection or TLS
 * failure, and on a connect or read timeout that came before the deadline (then
 * resp->timed_out is set: the attempt was abandoned and may be retried); EBSD_ETOOBIG past
 * max_response. No bound ever lets the transfer run past the deadline. resp is always
 * initialised: free it. */
EBSD_MUST_CHECK ebsd_status httpc_perform(struct httpc *h, const struct httpc_request *req,
                                          struct httpc_response *resp);
void httpc_response_free(struct httpc_response *resp);

#endif
