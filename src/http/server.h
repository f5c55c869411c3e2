/* server.h - the HTTP edge of ebsd: libmicrohttpd driven from the loop in external epoll
 * mode with suspend/resume; requests go to a dispatch callback (the router). Signals,
 * drain and reload are driven by the daemon (daemon.h) through the calls below.
 * One struct request per HTTP request, owned by the server and freed in exactly one place:
 * libmicrohttpd's request-completed callback. */
#ifndef EBSD_SERVER_H
#define EBSD_SERVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "loop.h"
#include "status.h"

struct server;
struct request;
struct auth;

/* Lambda-style accounting reported in the REPORT line after a data request. */
struct request_report {
    bool enabled;            /* only data routes write a REPORT line */
    unsigned memory_mb;      /* the route's memory size */
    unsigned children;       /* children forked for this request */
    unsigned ec2_calls;      /* EC2 HTTP calls made for it */
    long max_rss_kb;         /* largest child ru_maxrss */
    const char *cache;       /* "hit", "miss", "coalesced", "refreshed", "stale", "bypass" */
};

/* Called when a suspended request ends before its work did (client gone, deadline handled
 * elsewhere, shutdown): the owner of r->work must detach from r. */
typedef void (*request_cancel_fn)(struct request *r);

struct request {
    struct server *srv;
    void *conn;                 /* struct MHD_Connection * */
    char id[80];                /* request id (validated or generated) */
    char method[16];
    char *path;                 /* owned */
    char client[64];            /* client address: the peer, or behind a trusted proxy the
                                 * X-Forwarded-For client (realip.h) */
    void *client_slot;          /* the server's in-flight count for client (server.c) */
    int64_t start_us;           /* monotonic */
    int64_t deadline;           /* monotonic ms; set by the route */
    size_t body_bytes;          /* request body bytes seen */
    unsigned status;            /* response status once ready */
    char *resp_body;            /* owned */
    size_t resp_len;
    char *resp_type;            /* static string */
    char *resp_headers[24];     /* "Name: value" owned strings */
    char vary[96];              /* Vary tokens, comma-separated ("" = none): request_vary */
    size_t nresp_headers;
    bool ready;                 /* a response is set */
    bool dispatched;
    bool suspended;
    bool queued;
    struct request_report report;
    void *work;                 /* owned by the module that started async work */
    request_cancel_fn cancel;
    int watch_fd;               /* client socket watched while suspended, or -1 */
};

/* Routes a request: on return either a response is set on r or r has been suspended with
 * async work that will respond and resume it. */
typedef void (*server_dispatch_fn)(struct request *r);
/* Told of every completed request: its path, status (499: the client left first) and
 * duration (the request metrics). */
typedef void (*server_observe_fn)(const char *path, unsigned status, double seconds);

/* Creates the server: binds the listen socket (cfg->listen), starts libmicrohttpd in
 * external epoll mode and registers with loop l; every request is handed to dispatch, and
 * observe (may be NULL) is told when it completes. On
 * success cfg and auth (bearer tokens, NULL = auth off) are owned by the server (replaced
 * by server_reconfigure, freed at exit); on failure the caller keeps them. */
EBSD_MUST_CHECK ebsd_status server_new(struct loop *l, struct config *cfg, struct auth *auth,
                                       server_dispatch_fn dispatch, server_observe_fn observe,
                                       struct server **out);
/* Writes the "listening" line (URL and pid). */
void server_announce(const struct server *s);
/* Runs the loop until it is stopped (drained, or server_stop_now); after a drain, lets the
 * last answers out. */
EBSD_MUST_CHECK ebsd_status server_run(struct server *s);
/* Stops MHD (resuming any suspended request, whose owners detach) and closes the listen
 * socket; the config stays readable. Safe to call twice. */
void server_close(struct server *s);
/* server_close, then frees s, its config and tokens. */
void server_free(struct server *s);

/* Drain: stops accepting (the listen socket is closed), marks responses Connection: close,
 * and stops the loop once no request is in flight. */
void server_quiesce(struct server *s);
/* Answers every suspended request 503 ShuttingDown and stops the loop. */
void server_stop_now(struct server *s);
/* Requests dispatched and not completed. */
unsigned server_inflight(const struct server *s);
/* Reload: takes over next and auth (the running ones are freed). The listen address and
 * libmicrohttpd's fixed options (connection limits, idle timeout, header size) keep their
 * running values, with a warning when next changes them. */
void server_reconfigure(struct server *s, struct config *next, struct auth *auth);

const struct config *server_config(const struct server *s);
struct loop *server_loop(const struct server *s);
bool server_draining(const struct server *s);
/* The bearer tokens in force, or NULL when auth is off. Valid until the next reload. */
const struct auth *server_auth(const struct server *s);

/* Sets the response of r (body ownership passes to r; type is a static string). */
void request_respond(struct request *r, unsigned status, char *body, size_t len,
                     const char *type);
/* Adds a response header; the strings are copied. At most 24 headers. */
void request_add_header(struct request *r, const char *name, const char *value);
/* Adds token to the response's one Vary header (sent with the response; a token already
 * listed is not repeated), so CORS (Origin) and compression (Accept-Encoding) share it. */
void request_vary(struct request *r, const char *token);
/* A JSON error body in the one error shape: {"error":{"code","message","request_id"}}. */
void request_error(struct request *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A JSON response from a cJSON object (takes ownership; adds "request_id"). */
struct cJSON;
void request_json(struct request *r, unsigned status, struct cJSON *obj);
/* Value of a request header (case-insensitive); NULL if absent. */
const char *request_header(struct request *r, const char *name);
/* Calls fn for every query argument; stops at the first non-zero return and returns it. */
int request_query_each(struct request *r, int (*fn)(void *ctx, const char *k, const char *v),
                       void *ctx);

/* Suspends r until request_resume: async work owns it meanwhile (r->work, r->cancel). */
void request_suspend(struct request *r);
/* Resumes a suspended request whose response has been set. */
void request_resume(struct request *r);

/* Refusals by the per-client limits since start: connections of one peer address over
 * server.max_connections_per_ip, and requests in flight of one client address behind
 * trusted proxies. */
void server_refused(unsigned long long *connections, unsigned long long *requests);

#endif
