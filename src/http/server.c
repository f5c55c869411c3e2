/* server.c - the HTTP edge: libmicrohttpd in external epoll mode on ebsd's single-threaded
 * loop, connection tracking and limits, the URL checks, the access and REPORT lines. Routing
 * is the dispatch callback's; signals, drain and reload are the daemon's (daemon.c). */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uthash.h>

#include "auth.h"
#include "gzip.h"
#include "clock.h"
#include "log.h"
#include "mem.h"
#include "realip.h"
#include "reqid.h"
#include "route.h"

/* Longest URL (decoded path plus query keys and values) and most query parameters. */
#define SERVER_MAX_URL ROUTE_MAX_QUERY
/* Largest request body accepted (GET and HEAD need none), and most drained before a
 * chunked body over it is answered; beyond that the connection is closed. */
#define SERVER_MAX_BODY 1024
#define SERVER_DRAIN_BODY (64 * 1024)

/* An open client connection (libmicrohttpd's socket context). Its timer is the request
 * deadline: armed at accept and again after each response, disarmed while a request is
 * being answered. libmicrohttpd's own idle timeout restarts on every byte, so only this
 * deadline stops a client that trickles a request one byte at a time. */
struct conn {
    struct server *s;
    int fd;
    struct loop_timer *timer;
    bool counted;              /* within the connection limits (else refused at once) */
    bool trusted;              /* the peer is in server.trusted_proxies: no per-address limit */
    unsigned char addr[17];    /* peer address: family byte, then 4 or 16 bytes */
    struct conn *prev, *next;
};

/* Requests in flight from one client address (the realip client): the per-client limit
 * (server.max_connections_per_ip) counts these, so behind a balancer it applies to each
 * client, not to the balancer. Freed when its count drops to 0. */
struct client_slot {
    char addr[64];
    unsigned n;
    UT_hash_handle hh;
};

/* A live request, linked so drain and shutdown can reach every suspended one. */
struct live {
    struct request *r;
    struct live *prev, *next;
};

struct server {
    struct loop *loop;
    struct config *cfg;
    server_dispatch_fn dispatch;
    server_observe_fn observe;
    struct MHD_Daemon *mhd;
    int listen_fd;            /* ours: accepted here, handed to MHD_add_connection */
    bool accept_paused;       /* out of descriptors: retried from a timer */
    int64_t accept_warned_ms; /* last "out of descriptors" warning (one per 10 s) */
    struct loop_timer *accept_timer;
    int mhd_epfd;
    unsigned port;
    bool draining;
    struct live *live;        /* requests not yet completed */
    struct conn *conns;       /* open client connections */
    unsigned nconns;
    struct auth *auth;        /* bearer tokens, or NULL when auth is off */
    unsigned inflight;        /* requests dispatched and not completed */
    struct client_slot *clients; /* in-flight requests per client address */
};

const struct config *server_config(const struct server *s) { return s->cfg; }
struct loop *server_loop(const struct server *s) { return s->loop; }
bool server_draining(const struct server *s) { return s->draining; }
const struct auth *server_auth(const struct server *s) { return s->auth; }

/* ---------------------------------------------------------------- responses */

void request_respond(struct request *r, unsigned status, char *body, size_t len, const char *type)
{
    free(r->resp_body);
    r->status = status;
    r->resp_body = body;
    r->resp_len = len;
    r->resp_type = (char *)type;
    r->ready = true;
}

void request_add_header(struct request *r, const char *name, const char *value)
{
    if (r->nresp_headers >= sizeof r->resp_headers / sizeof r->resp_headers[0])
        return;
    size_t nl = strlen(name), vl = strlen(value);
    char *h = xmalloc(nl + 2 + vl + 1);
    memcpy(h, name, nl);
    memcpy(h + nl, ": ", 2);
    memcpy(h + nl + 2, value, vl + 1);
    r->resp_headers[r->nresp_headers++] = h;
}

void request_vary(struct request *r, const char *token)
{
    char next[sizeof r->vary];
    if (gzip_vary_add(r->vary, token, next, sizeof next) == EBSD_OK)
        memcpy(r->vary, next, sizeof next);
}

void request_json(struct request *r, unsigned status, cJSON *obj)
{
    /* The error shape carries the id inside "error"; every other body at the top. */
    if (!cJSON_GetObjectItemCaseSensitive(obj, "request_id") &&
        !cJSON_GetObjectItemCaseSensitive(obj, "error"))
        cJSON_AddStringToObject(obj, "request_id", r->id);
    char *s = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!s)
        s = xstrdup("{}");
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n] = '\n';
    s[n + 1] = '\0';
    request_respond(r, status, s, n + 1, "application/json");
}

void request_error(struct request *r, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "request_id", r->id);
    request_json(r, status, o);
}

const char *request_header(struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

struct query_iter {
    int (*fn)(void *ctx, const char *k, const char *v);
    void *ctx;
    int rc;
};

/* Refusals by the per-client limits, for /metrics (server_refused). */
static struct {
    unsigned long long connections, requests;
} refused;

void server_refused(unsigned long long *connections, unsigned long long *requests)
{
    *connections = refused.connections;
    *requests = refused.requests;
}

static enum MHD_Result query_iter_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct query_iter *qi = cls;
    qi->rc = qi->fn(qi->ctx, key, value ? value : "");
    return qi->rc ? MHD_NO : MHD_YES;
}

int request_query_each(struct request *r, int (*fn)(void *ctx, const char *k, const char *v),
                       void *ctx)
{
    struct query_iter qi = {fn, ctx, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_iter_cb, &qi);
    return qi.rc;
}

/* ---------------------------------------------------------------- suspend / resume */

static void on_client_gone(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct request *r = arg;
    loop_del_fd(l, fd);
    r->watch_fd = -1;
    if (!r->suspended)
        return;
    /* The client closed its side while its work was pending: cancel the work no one else
     * waits for and let libmicrohttpd notice the closed socket. */
    if (r->cancel)
        r->cancel(r);
    r->cancel = NULL;
    r->work = NULL;
    request_error(r, 499, "ClientClosedRequest", "the client closed the connection");
    request_resume(r);
}

void request_suspend(struct request *r)
{
    MHD_suspend_connection(r->conn);
    r->suspended = true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci && loop_add_fd(r->srv->loop, ci->connect_fd, EPOLLRDHUP, on_client_gone, r) == EBSD_OK)
        r->watch_fd = ci->connect_fd;
}

void request_resume(struct request *r)
{
    if (!r->suspended)
        return;
    if (r->watch_fd >= 0) {
        loop_del_fd(r->srv->loop, r->watch_fd);
        r->watch_fd = -1;
    }
    r->suspended = false;
    MHD_resume_connection(r->conn);
}

/* ---------------------------------------------------------------- the MHD callbacks */

/* Collects the values of every X-Forwarded-For header, in the order they arrived. */
struct xff_list {
    const char *v[16];
    size_t n;
};

static enum MHD_Result xff_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    struct xff_list *x = cls;
    if (value && strcasecmp(key, "X-Forwarded-For") == 0) {
        /* more than 16 headers: keep the last ones, where the walk starts */
        if (x->n == sizeof x->v / sizeof x->v[0]) {
            memmove(x->v, x->v + 1, sizeof x->v - sizeof x->v[0]);
            x->n--;
        }
        x->v[x->n++] = value;
    }
    return MHD_YES;
}

/* The request's client address: the peer, or, when the peer is a trusted proxy
 * (server.trusted_proxies), the X-Forwarded-For client as nginx's realip module takes it. */
static void client_address(struct request *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    struct realip_addr peer, client;
    if (!ci || !ci->client_addr || realip_addr_from_sockaddr(ci->client_addr, &peer) != EBSD_OK)
        return;
    const struct config *cfg = r->srv->cfg;
    char text[REALIP_ADDRSTRLEN];
    if (!realip_trusted(cfg->trusted_proxies, cfg->ntrusted_proxies, &peer)) {
        /* X-Forwarded-For from any other peer is not read: anyone can write it */
        realip_addr_str(&peer, text);
    } else {
        struct xff_list x = {.n = 0};
        MHD_get_connection_values(r->conn, MHD_HEADER_KIND, xff_cb, &x);
        (void)realip_client(cfg->trusted_proxies, cfg->ntrusted_proxies, &peer, x.v, x.n,
                            &client, text);
    }
    snprintf(r->client, sizeof r->client, "%s", text);
}

/* Counts r against its client's requests in flight. Returns false if the client already has
 * server.max_connections_per_ip of them (r is counted all the same; on_completed uncounts). */
static bool client_admit(struct server *s, struct request *r)
{
    struct client_slot *cs = NULL;
    HASH_FIND_STR(s->clients, r->client, cs);
    if (!cs) {
        cs = xcalloc(1, sizeof *cs);
        snprintf(cs->addr, sizeof cs->addr, "%s", r->client);
        HASH_ADD_STR(s->clients, addr, cs);
    }
    cs->n++;
    r->client_slot = cs;
    return cs->n <= s->cfg->max_connections_per_ip;
}

static void client_release(struct server *s, struct request *r)
{
    struct client_slot *cs = r->client_slot;
    if (!cs)
        return;
    r->client_slot = NULL;
    if (--cs->n == 0) {
        HASH_DEL(s->clients, cs);
        free(cs);
    }
}

struct header_size {
    size_t total;
};

static enum MHD_Result header_size_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct header_size *hs = cls;
    hs->total += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* A copy of s with every byte outside printable ASCII replaced by '?' (for logs). */
static char *printable_copy(const char *s)
{
    char *c = xstrdup(s);
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    return c;
}

static enum MHD_Result url_check_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    route_query_add(cls, key, value);
    return MHD_YES;
}

static void conn_disarm(struct MHD_Connection *mc);

static enum MHD_Result queue(struct request *r)
{
    conn_disarm(r->conn);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->resp_len, r->resp_body, MHD_RESPMEM_MUST_FREE);
    r->resp_body = NULL; /* MHD frees it */
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->resp_type ? r->resp_type : "application/json");
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    for (size_t i = 0; i < r->nresp_headers; i++) {
        char *h = r->resp_headers[i];
        char *colon = strchr(h, ':');
        if (!colon)
            continue;
        *colon = '\0';
        MHD_add_response_header(resp, h, colon + 2);
        *colon = ':';
    }
    if (r->vary[0])
        MHD_add_response_header(resp, "Vary", r->vary);
    if (r->srv->draining)
        MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    r->queued = true;
    return ret;
}

static void live_unlink(struct server *s, struct live *lv)
{
    if (lv->prev)
        lv->prev->next = lv->next;
    else
        s->live = lv->next;
    if (lv->next)
        lv->next->prev = lv->prev;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct server *s = cls;
    struct live *lv = *con_cls;
    if (!lv) {
        struct request *r = xcalloc(1, sizeof *r);
        r->srv = s;
        r->conn = conn;
        r->watch_fd = -1;
        r->start_us = clock_now_us();
        r->path = printable_copy(url);
        size_t ml = strnlen(method, sizeof r->method - 1);
        for (size_t i = 0; i < ml; i++) {
            unsigned char c = (unsigned char)method[i];
            r->method[i] = c < 0x20 || c > 0x7e ? '?' : (char)c;
        }
        r->method[ml] = '\0';
        reqid_pick(request_header(r, "X-Request-Id"), request_header(r, "X-Amzn-Trace-Id"),
                   r->id, sizeof r->id);
        client_address(r);
        lv = xcalloc(1, sizeof *lv);
        lv->r = r;
        lv->next = s->live;
        if (s->live)
            s->live->prev = lv;
        s->live = lv;
        *con_cls = lv;
        s->inflight++;

        struct route_query uc;
        route_query_init(&uc, url);
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, url_check_cb, &uc);
        if (uc.len > SERVER_MAX_URL) {
            request_error(r, 414, "URITooLong", "the URL is longer than %u bytes",
                          SERVER_MAX_URL);
            return queue(r);
        }
        struct header_size hs = {0};
        MHD_get_connection_values(conn, MHD_HEADER_KIND, header_size_cb, &hs);
        if (hs.total + uc.len > s->cfg->max_header_bytes) {
            request_error(r, 431, "RequestHeaderFieldsTooLarge",
                          "request headers exceed %u bytes", s->cfg->max_header_bytes);
            return queue(r);
        }
        char code[32], msg[256];
        if (route_query_verdict(&uc, code, sizeof code, msg, sizeof msg) != EBSD_OK) {
            request_error(r, 400, code, "%s", msg);
            return queue(r);
        }
        /* The per-client limit: requests in flight per client address. It is the only
         * per-client bound behind a trusted proxy; without one, a client's requests in
         * flight never outnumber its connections, which on_connection already holds to
         * max_connections_per_ip, so it is not counted at all. Probes are always answered,
         * whatever one client does. */
        if (s->cfg->ntrusted_proxies && !client_admit(s, r)) {
            char idbuf[ROUTE_ID_MAX];
            enum route rt = route_match(r->path, idbuf, sizeof idbuf);
            if (rt != ROUTE_HEALTH && rt != ROUTE_READY) {
                refused.requests++;
                request_add_header(r, "Retry-After", "1");
                request_error(r, 429, "TooManyRequests",
                              "too many requests in flight from this client; retry");
                return queue(r);
            }
        }
        /* Reject other methods before any body is read. */
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            r->dispatched = true;
            s->dispatch(r); /* the router answers 404 or 405 with Allow */
            return queue(r);
        }
        /* A body announced over the cap is refused before it is read: libmicrohttpd
         * cannot take a response once the body is being received. */
        const char *cl = request_header(r, "Content-Length");
        if (cl && (strlen(cl) > 9 || strtoul(cl, NULL, 10) > SERVER_MAX_BODY)) {
            request_error(r, 413, "PayloadTooLarge", "request body larger than %u bytes",
                          SERVER_MAX_BODY);
            return queue(r);
        }
        return MHD_YES;
    }
    struct request *r = lv->r;
    if (*upload_data_size) {
        /* GET and HEAD carry no meaningful body: a chunked one over the cap is drained and
         * answered 413 when it ends (no response can be queued mid-body), and one far over
         * the cap closes the connection. */
        r->body_bytes += *upload_data_size;
        *upload_data_size = 0;
        if (r->body_bytes > SERVER_DRAIN_BODY)
            return MHD_NO;
        return MHD_YES;
    }
    if (r->body_bytes > SERVER_MAX_BODY && !r->queued) {
        request_error(r, 413, "PayloadTooLarge", "request body larger than %u bytes",
                      SERVER_MAX_BODY);
        return queue(r);
    }
    if (r->queued)
        return MHD_YES;
    if (!r->dispatched) {
        r->dispatched = true;
        conn_disarm(conn); /* the whole request is in; route deadlines take over */
        if (!r->ready)
            s->dispatch(r);
    }
    if (r->ready)
        return queue(r);
    if (!r->suspended)
        request_suspend(r); /* dispatch started work without suspending */
    return MHD_YES;
}

static void write_report(struct request *r, double duration_ms)
{
    long long cents = (long long)(duration_ms * 100 + 0.5); /* %.2f, as Lambda writes it */
    long billed = (long)duration_ms + ((double)(long)duration_ms < duration_ms ? 1 : 0);
    if (billed < 1)
        billed = 1;
    struct log_rec l;
    log_rec_text(&l);
    log_rec_raw(&l, "REPORT RequestId: ");
    log_rec_raw(&l, r->id);
    log_rec_raw(&l, "\tDuration: ");
    log_rec_fixed2(&l, cents);
    log_rec_raw(&l, " ms\tBilled Duration: ");
    log_rec_u(&l, (unsigned long)billed);
    log_rec_raw(&l, " ms\tMemory Size: ");
    log_rec_u(&l, r->report.memory_mb);
    log_rec_raw(&l, " MB\tMax Memory Used: ");
    log_rec_u(&l, (unsigned long)((r->report.max_rss_kb + 1023) / 1024));
    log_rec_raw(&l, " MB\tChildren: ");
    log_rec_u(&l, r->report.children);
    log_rec_raw(&l, "\tEC2 Calls: ");
    log_rec_u(&l, r->report.ec2_calls);
    log_rec_raw(&l, "\tCache: ");
    log_rec_raw(&l, r->report.cache ? r->report.cache : "none");
    log_rec_end(&l);
}

/* The access line (level info), built in place: it is written for every request. */
static void write_access(struct request *r, double duration_ms,
                         enum MHD_RequestTerminationCode toe)
{
    struct log_rec l;
    log_rec_begin(&l, LOGL_INFO, "access");
    log_rec_str(&l, "request_id", r->id);
    log_rec_str(&l, "method", r->method);
    log_rec_str(&l, "path", r->path);
    /* 499: the client left first (as nginx logs it) */
    log_rec_num(&l, "status", r->queued ? r->status : 499);
    log_rec_num(&l, "bytes", r->queued ? (long long)r->resp_len : 0);
    log_rec_cents(&l, "duration_ms", (long long)(duration_ms * 100));
    log_rec_str(&l, "client", r->client);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_rec_str(&l, "termination",
                    toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client_abort"
                    : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
                    : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                                                                     : "error");
    log_rec_end(&l);
}

static void drain_check(struct server *s);
static void conn_arm(struct conn *c, int64_t deadline);

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct server *s = cls;
    struct live *lv = *con_cls;
    if (!lv)
        return;
    *con_cls = NULL;
    struct request *r = lv->r;
    live_unlink(s, lv);
    /* The next request on a keep-alive connection may follow an idle spell of up to
     * idle_timeout_s (libmicrohttpd closes it then), and must be complete within
     * header_timeout_s of that. */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context)
        conn_arm(ci->socket_context,
                 clock_now_ms() +
                     ((int64_t)s->cfg->idle_timeout_s + s->cfg->header_timeout_s) * 1000);
    free(lv);
    client_release(s, r);
    if (r->watch_fd >= 0)
        loop_del_fd(s->loop, r->watch_fd);
    if (r->cancel)
        r->cancel(r);

    double duration_ms = (double)(clock_now_us() - r->start_us) / 1000.0;
    if (log_enabled(LOGL_INFO))
        write_access(r, duration_ms, toe);
    /* Every request that ran (or waited for) a fan-out gets its REPORT line. A cache hit
     * started no worker and made no EC2 call: its line is as routine as the access line
     * and, like it, is written at level info (the default) and below only. */
    bool hit = r->report.cache && strcmp(r->report.cache, "hit") == 0;
    if (r->report.enabled && (!hit || log_enabled(LOGL_INFO)))
        write_report(r, duration_ms);
    if (s->observe)
        s->observe(r->path, r->queued ? r->status : 499, duration_ms / 1000.0);

    for (size_t i = 0; i < r->nresp_headers; i++)
        free(r->resp_headers[i]);
    free(r->resp_body);
    free(r->path);
    free(r);
    s->inflight--;
    drain_check(s);
}

/* ---------------------------------------------------------------- connections */

/* Answers a connection on which no response is in progress (none has started, or the last
 * one is complete) straight on its socket, then shuts it down; libmicrohttpd sees the
 * socket hang up on its next run and closes the connection. Best effort: a client that
 * does not read gets the shutdown alone. id receives the request id used. */
static void conn_refuse(struct conn *c, unsigned status, const char *reason, const char *code,
                        const char *message, const char *extra_header, char *id, size_t idlen)
{
    char body[384], msg[768];
    reqid_pick(NULL, NULL, id, idlen);
    int bl = snprintf(body, sizeof body,
                      "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"request_id\":\"%s\"}}\n",
                      code, message, id);
    int ml = snprintf(msg, sizeof msg,
                      "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      "X-Request-Id: %s\r\n%sContent-Length: %d\r\n\r\n%s",
                      status, reason, id, extra_header, bl, body);
    if (bl > 0 && (size_t)bl < sizeof body && ml > 0 && (size_t)ml < sizeof msg) {
        ssize_t w = send(c->fd, msg, (size_t)ml, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    if (shutdown(c->fd, SHUT_RDWR) != 0)
        log_debug("http", "shutdown(fd %d): %s", c->fd, strerror(errno));
}

static void on_request_deadline(struct loop *l, void *arg)
{
    struct conn *c = arg;
    struct server *s = c->s;
    c->timer = NULL;
    /* The deadline is disarmed while a response is in progress, so none is now. */
    char id[80], text[128];
    snprintf(text, sizeof text, "the request did not arrive within %u s",
             s->cfg->header_timeout_s);
    conn_refuse(c, 408, "Request Timeout", "RequestTimeout", text, "", id, sizeof id);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[64] = "?";
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0)
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, NULL, 0, NI_NUMERICHOST);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "request_id", id);
    cJSON_AddStringToObject(f, "client", host);
    cJSON_AddNumberToObject(f, "status", 408);
    cJSON_AddNumberToObject(f, "header_timeout_s", s->cfg->header_timeout_s);
    log_fields(LOGL_WARN, "request_timeout", f);
}

static void conn_arm(struct conn *c, int64_t deadline)
{
    if (c->timer)
        loop_timer_stop(c->s->loop, c->timer);
    c->timer = loop_timer_start(c->s->loop, deadline, on_request_deadline, c);
}

static void conn_disarm(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn *c = ci ? ci->socket_context : NULL;
    if (c && c->timer) {
        loop_timer_stop(c->s->loop, c->timer);
        c->timer = NULL;
    }
}

/* The peer's address as a comparable key (the port left out). */
static void peer_key(struct MHD_Connection *mc, unsigned char key[17])
{
    memset(key, 0, 17);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET) {
        key[0] = AF_INET;
        memcpy(key + 1, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        key[0] = AF_INET6;
        memcpy(key + 1, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    }
}

/* True if the peer of mc is a trusted proxy: a balancer carries many clients' connections,
 * so the per-address connection limit does not apply to it (the per-client request limit
 * applies to each client behind it instead). */
static bool peer_trusted(const struct server *s, struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    struct realip_addr a;
    return s->cfg->ntrusted_proxies && ci && ci->client_addr &&
           realip_addr_from_sockaddr(ci->client_addr, &a) == EBSD_OK &&
           realip_trusted(s->cfg->trusted_proxies, s->cfg->ntrusted_proxies, &a);
}

/* Counted connections open from c's address, c excluded. At most max_connections to walk,
 * once per accepted connection. */
static unsigned conns_from(const struct server *s, const struct conn *c)
{
    unsigned n = 0;
    for (const struct conn *o = s->conns; o; o = o->next)
        if (o != c && o->counted && memcmp(o->addr, c->addr, sizeof c->addr) == 0)
            n++;
    return n;
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct server *s = cls;
    struct conn *c = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        c = xcalloc(1, sizeof *c);
        c->s = s;
        c->fd = ci ? ci->connect_fd : -1;
        peer_key(mc, c->addr);
        c->trusted = peer_trusted(s, mc);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        *socket_context = c;
        if (c->fd < 0)
            return;
        if (s->nconns >= s->cfg->max_connections) {
            /* server.max_connections is counted here, where connections are tracked,
             * rather than left to libmicrohttpd, whose limit (twice ours plus 64) only
             * bounds refused connections not yet closed. A refused connection gets a 503
             * and closes at once; it does not count. */
            char id[80];
            conn_refuse(c, 503, "Service Unavailable", "Busy",
                        "too many open connections; retry", "Retry-After: 1\r\n", id,
                        sizeof id);
            log_debug("http", "refused a connection: %u open (server.max_connections)",
                      s->nconns);
            return;
        }
        if (c->addr[0] && !c->trusted && conns_from(s, c) >= s->cfg->max_connections_per_ip) {
            /* the same for server.max_connections_per_ip: libmicrohttpd's own per-IP
             * limit would close the connection without a word */
            char id[80];
            conn_refuse(c, 503, "Service Unavailable", "Busy",
                        "too many open connections from this address; retry",
                        "Retry-After: 1\r\n", id, sizeof id);
            log_debug("http", "refused a connection: %u open from one address "
                      "(server.max_connections_per_ip)", s->cfg->max_connections_per_ip);
            refused.connections++;
            return;
        }
        c->counted = true;
        s->nconns++;
        conn_arm(c, clock_now_ms() + (int64_t)s->cfg->header_timeout_s * 1000);
        return;
    }
    if (code != MHD_CONNECTION_NOTIFY_CLOSED || !c)
        return;
    *socket_context = NULL;
    if (c->timer)
        loop_timer_stop(s->loop, c->timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->counted)
        s->nconns--;
    free(c);
}

/* Percent-decodes the path and each query key and value in place. libmicrohttpd's own
 * decoder turns %00 into a NUL that silently cuts the C string ("/healthz%00/x" would
 * route as "/healthz"); route_unescape makes it DEL (0x7f), which on_request rejects
 * with 400. */
static size_t unescape(void *cls, struct MHD_Connection *mc, char *val)
{
    return route_unescape(val);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_msg(LOGL_DEBUG, "http", "%s", msg);
}

/* ---------------------------------------------------------------- listen socket */

static ebsd_status parse_listen(const char *addr, char *host, size_t hostlen, char *port,
                                size_t portlen)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':')
            return EBSD_EINVAL;
        snprintf(host, hostlen, "%.*s", (int)(end - addr - 1), addr + 1);
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return EBSD_EINVAL;
        snprintf(host, hostlen, "%.*s", (int)(colon - addr), addr);
    }
    snprintf(port, portlen, "%s", colon + 1);
    return EBSD_OK;
}

static ebsd_status open_listener(const char *addr, int *out_fd, unsigned *out_port)
{
    ebsd_status st = EBSD_EIO;
    char host[256], port[16];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int fd = -1;
    if (parse_listen(addr, host, sizeof host, port, sizeof port) != EBSD_OK) {
        log_error("listen", "invalid listen address '%s' (want HOST:PORT)", addr);
        return EBSD_EINVAL;
    }
    int gai = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (gai != 0) {
        log_error("listen", "getaddrinfo(%s): %s", addr, gai_strerror(gai));
        st = EBSD_EINVAL;
        goto out;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_error("listen", "socket: %s", strerror(errno));
        goto out;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        log_error("listen", "bind(%s): %s", addr, strerror(errno));
        goto out;
    }
    if (listen(fd, 511) != 0) {
        log_error("listen", "listen(%s): %s", addr, strerror(errno));
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        log_error("listen", "getsockname: %s", strerror(errno));
        goto out;
    }
    *out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *out_fd = fd;
    fd = -1;
    st = EBSD_OK;
out:
    if (fd >= 0)
        close(fd);
    if (res)
        freeaddrinfo(res);
    return st;
}

/* ---------------------------------------------------------------- drain (driven by the daemon) */

void server_stop_now(struct server *s)
{
    /* Every suspended request must be resumed before libmicrohttpd stops. */
    for (struct live *lv = s->live; lv; lv = lv->next) {
        struct request *r = lv->r;
        if (!r->suspended)
            continue;
        if (r->cancel)
            r->cancel(r);
        r->cancel = NULL;
        r->work = NULL;
        request_error(r, 503, "ShuttingDown", "ebsd is shutting down");
        request_resume(r);
    }
    loop_stop(s->loop);
}

static void drain_check(struct server *s)
{
    if (s->draining && s->inflight == 0)
        loop_stop(s->loop);
}

void server_quiesce(struct server *s)
{
    if (s->draining)
        return;
    s->draining = true;
    if (s->listen_fd >= 0) {
        if (!s->accept_paused)
            loop_del_fd(s->loop, s->listen_fd);
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    if (s->accept_timer) {
        loop_timer_stop(s->loop, s->accept_timer);
        s->accept_timer = NULL;
    }
    drain_check(s);
}

unsigned server_inflight(const struct server *s) { return s->inflight; }

void server_reconfigure(struct server *s, struct config *next, struct auth *auth)
{
    auth_free(s->auth);
    s->auth = auth;
    /* With --listen the file's address was never the one in use: nothing changes. */
    next->listen_overridden = s->cfg->listen_overridden;
    if (!s->cfg->listen_overridden && strcmp(next->listen, s->cfg->listen) != 0)
        log_warn("reload", "listen address change to %s needs a restart; still on %s",
                 next->listen, s->cfg->listen);
    /* These are libmicrohttpd options, fixed when the daemon starts. */
    if (next->max_connections != s->cfg->max_connections ||
        next->max_connections_per_ip != s->cfg->max_connections_per_ip ||
        next->idle_timeout_s != s->cfg->idle_timeout_s ||
        next->max_header_bytes != s->cfg->max_header_bytes)
        log_warn("reload", "changes to server.max_connections, max_connections_per_ip, "
                 "idle_timeout_s and max_header_bytes need a restart; keeping the running "
                 "values");
    next->max_connections = s->cfg->max_connections;
    next->max_connections_per_ip = s->cfg->max_connections_per_ip;
    next->idle_timeout_s = s->cfg->idle_timeout_s;
    next->max_header_bytes = s->cfg->max_header_bytes;
    /* The listen address stays as bound; everything else takes effect for new work. */
    free(next->listen);
    next->listen = xstrdup(s->cfg->listen);
    config_free(s->cfg);
    free(s->cfg);
    s->cfg = next;
}

/* ---------------------------------------------------------------- driving MHD */

static void on_accept(struct loop *l, int fd, uint32_t events, void *arg);

static void on_accept_retry(struct loop *l, void *arg)
{
    struct server *s = arg;
    s->accept_timer = NULL;
    if (s->listen_fd < 0 || !s->accept_paused)
        return;
    if (loop_add_fd(l, s->listen_fd, EPOLLIN, on_accept, s) == EBSD_OK)
        s->accept_paused = false;
    else
        s->accept_timer = loop_timer_start(l, clock_now_ms() + 100, on_accept_retry, s);
}

/* ebsd accepts connections itself and hands them to libmicrohttpd (MHD_add_connection):
 * 0.9.75 in external epoll mode takes its own listen socket out of its epoll set when it
 * reaches its connection limit or runs out of descriptors (EMFILE), and never puts it
 * back, so an idle-connection flood would stop the server accepting for good. Here, out
 * of descriptors, accepting pauses for 100 ms and resumes; connections waiting meanwhile
 * stay in the kernel's backlog. At most 64 per call, so the loop stays fair. */
static void on_accept(struct loop *l, int lfd, uint32_t events, void *arg)
{
    struct server *s = arg;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                int64_t now = clock_now_ms();
                if (now - s->accept_warned_ms >= 10000) {
                    s->accept_warned_ms = now;
                    log_warn("http", "accept: %s with %u connections open; pausing accept "
                             "for 100 ms at a time", strerror(errno), s->nconns);
                }
                loop_del_fd(l, lfd);
                s->accept_paused = true;
                s->accept_timer =
                    loop_timer_start(l, clock_now_ms() + 100, on_accept_retry, s);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                log_error("http", "accept: %s", strerror(errno));
            }
            return;
        }
        /* On failure (its own limits: per-IP, memory) libmicrohttpd closes fd. */
        if (MHD_add_connection(s->mhd, fd, (struct sockaddr *)&ss, sl) != MHD_YES)
            log_debug("http", "MHD_add_connection refused a connection");
    }
}

static void on_mhd_ready(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct server *s = arg;
    MHD_run(s->mhd);
}

static int64_t before_wait(struct loop *l, void *arg)
{
    struct server *s = arg;
    /* Resumed connections and timeouts are processed here, once per iteration. */
    MHD_run(s->mhd);
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(s->mhd, &t) == MHD_YES)
        return t > 60000 ? 60000 : (int64_t)t;
    return -1;
}

ebsd_status server_new(struct loop *l, struct config *cfg, struct auth *auth,
                       server_dispatch_fn dispatch, server_observe_fn observe,
                       struct server **out)
{
    ebsd_status st;
    struct server *s = xcalloc(1, sizeof *s);
    s->loop = l;
    s->cfg = cfg;
    s->auth = auth;
    s->dispatch = dispatch;
    s->observe = observe;
    s->listen_fd = -1;

    st = open_listener(cfg->listen, &s->listen_fd, &s->port);
    if (st != EBSD_OK)
        goto fail;
    unsigned pool = cfg->max_header_bytes * 2 + 16384;
    /* Headroom over max_connections for refused connections not yet closed (see
     * on_connection); libmicrohttpd's limit must never be reached. */
    unsigned mhd_limit = cfg->max_connections * 2 + 64;
    /* A backstop, like mhd_limit; none when a balancer may carry every connection. */
    unsigned mhd_per_ip =
        cfg->ntrusted_proxies ? mhd_limit : cfg->max_connections_per_ip * 2 + 64;
    s->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET,
        0, NULL, NULL, on_request, s, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, mhd_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)pool, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger,
        s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_UNESCAPE_CALLBACK,
        unescape, s, MHD_OPTION_END);
    if (!s->mhd) {
        log_error("http", "MHD_start_daemon failed");
        st = EBSD_EIO;
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di) {
        log_error("http", "MHD_get_daemon_info(EPOLL_FD) failed");
        st = EBSD_EIO;
        goto fail;
    }
    s->mhd_epfd = di->epoll_fd;
    st = loop_add_fd(l, s->mhd_epfd, EPOLLIN, on_mhd_ready, s);
    if (st != EBSD_OK)
        goto fail;
    st = loop_add_fd(l, s->listen_fd, EPOLLIN, on_accept, s);
    if (st != EBSD_OK)
        goto fail;
    loop_set_prepare(l, before_wait, s);
    *out = s;
    return EBSD_OK;
fail:
    s->cfg = NULL; /* the caller still owns cfg and auth on failure */
    s->auth = NULL;
    server_free(s);
    return st;
}

void server_announce(const struct server *s)
{
    char url[300];
    const char *h = s->cfg->listen;
    const char *colon = h[0] == '[' ? strchr(h, ']') + 1 : strrchr(h, ':');
    snprintf(url, sizeof url, "http://%.*s:%u", (int)(colon - h), h, s->port);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "url", url);
    cJSON_AddNumberToObject(f, "pid", (double)getpid());
    log_always("listening", f);
}

ebsd_status server_run(struct server *s)
{
    /* One write(2) per loop iteration for the access and REPORT lines of all the requests
     * it answered, instead of one per line: under load that write was a third of the
     * process's CPU time (docs/PERFORMANCE.md). */
    log_batch(true);
    ebsd_status st = loop_run(s->loop);
    if (!s->draining)
        return st;
    /* Let resumed connections get their answers out before the daemon stops. */
    int64_t until = clock_now_ms() + 500;
    while (s->inflight && clock_now_ms() < until) {
        MHD_run(s->mhd);
        log_flush();
        usleep(10000);
    }
    log_info("exit", "drained; exiting");
    return st;
}

void server_close(struct server *s)
{
    if (!s)
        return;
    if (s->accept_timer)
        loop_timer_stop(s->loop, s->accept_timer);
    s->accept_timer = NULL;
    if (s->listen_fd >= 0 && !s->accept_paused)
        loop_del_fd(s->loop, s->listen_fd);
    if (s->mhd) {
        for (struct live *lv = s->live; lv; lv = lv->next)
            if (lv->r->suspended)
                request_resume(lv->r);
        loop_del_fd(s->loop, s->mhd_epfd);
        MHD_stop_daemon(s->mhd);
        s->mhd = NULL;
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
}

void server_free(struct server *s)
{
    if (!s)
        return;
    server_close(s);
    struct client_slot *cs, *tmp;
    HASH_ITER(hh, s->clients, cs, tmp) {
        HASH_DEL(s->clients, cs);
        free(cs);
    }
    if (s->cfg) {
        config_free(s->cfg);
        free(s->cfg);
    }
    auth_free(s->auth);
    free(s);
}
