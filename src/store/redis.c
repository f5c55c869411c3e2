/* redis.c - an asynchronous Redis connection on ebsd's loop (contract in src/store/redis.h):
 * ebsd's own non-blocking socket (TCP, Unix or OpenSSL TLS), hiredis' reader and formatter
 * for RESP, a FIFO of pending commands with one timer for the oldest, and reconnection
 * with backoff. */
#include "redis.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ares.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "clock.h"
#include "file.h"
#include "log.h"
#include "loop.h"
#include "mem.h"

#define REDIS_MAX_OUT (64u * 1024 * 1024) /* bytes queued for sending */
#define DNS_MAX_SOCKETS 8                 /* c-ares uses one or two per lookup */

enum conn_state {
    ST_DOWN = 0,    /* waiting for the reconnect timer */
    ST_RESOLVING,   /* c-ares looking the host name up */
    ST_CONNECTING,  /* socket connect in progress */
    ST_TLS,         /* TLS handshake */
    ST_HANDSHAKE,   /* AUTH / SELECT / PING sent, waiting for their replies */
    ST_UP,
};

enum cmd_kind { CMD_USER = 0, CMD_AUTH, CMD_SELECT, CMD_HELLO_PING, CMD_PING, CMD_SUB };

struct cmd {
    struct cmd *next;
    redis_reply_fn fn;
    void *arg;
    int64_t deadline;
    enum cmd_kind kind;
};

struct sub {
    char *channel;
    bool pattern;
    redis_message_fn fn;
    void *arg;
};

struct redis {
    struct loop *loop;
    struct redis_options opt; /* strings below are our copies */
    char *name, *ca_file;
    char *user, *password;
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
    enum conn_state state;
    uint32_t events;           /* current epoll mask (0 = not registered) */
    bool ssl_want_write;       /* SSL_read wants the socket writable */
    redisReader *reader;
    struct buf out;
    size_t out_off;
    struct cmd *head, *tail;
    size_t npending;
    struct loop_timer *timer;
    int64_t connect_deadline;  /* ST_CONNECTING..ST_HANDSHAKE */
    int64_t reconnect_at;      /* ST_DOWN */
    int64_t last_io;           /* last reply, for the keepalive */
    int64_t sub_ping_deadline; /* subscriber keepalive: PONG expected by then (0 = none) */
    uint32_t backoff_ms;
    struct sub subs[REDIS_MAX_SUBSCRIPTIONS];
    size_t nsubs;
    redis_state_fn state_fn;
    void *state_arg;
    struct redis_stats stats;
    bool freeing;
    /* host name resolution: a c-ares channel of this connection's own, so that closing the
     * connection cancels exactly its lookup (ares_cancel works per channel) */
    ares_channel dns;
    bool dns_ready;
    struct {
        int fd;
        uint32_t events;
    } dns_socks[DNS_MAX_SOCKETS];
    struct loop_timer *dns_timer;
    /* the addresses of this attempt, tried in order until one connects */
    struct sockaddr_storage addrs[DNS_MAX_SOCKETS];
    socklen_t addrlens[DNS_MAX_SOCKETS];
    size_t naddrs, addr_next;
};

static void conn_close(struct redis *r, ebsd_status st, const char *why);
static void rearm(struct redis *r);
static void on_io(struct loop *l, int fd, uint32_t events, void *arg);

/* ------------------------------------------------------------------ untrusted replies */

/* hiredis 0.14's default reply functions are static; the first reader made lends us its
 * table, and ours refuses arrays past REDIS_MAX_ELEMENTS before anything is allocated. */
static redisReplyObjectFunctions *default_fns;
static redisReplyObjectFunctions capped_fns;

static void *capped_array(const redisReadTask *task, int elements)
{
    if (elements > REDIS_MAX_ELEMENTS)
        return NULL; /* the reader reports an error and stops */
    return default_fns->createArray(task, elements);
}

static redisReader *reader_new(void)
{
    redisReader *rd = redisReaderCreate();
    if (!rd)
        abort(); /* mem.h policy: out of memory is fatal */
    if (!default_fns) {
        default_fns = rd->fn;
        capped_fns = *default_fns;
        capped_fns.createArray = capped_array;
    }
    rd->fn = &capped_fns;
    return rd;
}

/* ------------------------------------------------------------------ helpers */

static void wipe_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static bool is_ip_literal(const char *host)
{
    unsigned char tmp[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

static void set_events(struct redis *r, uint32_t events)
{
    if (r->fd < 0 || events == r->events)
        return;
    ebsd_status st = r->events ? loop_mod_fd(r->loop, r->fd, events)
                               : loop_add_fd(r->loop, r->fd, events, on_io, r);
    if (st != EBSD_OK) {
        conn_close(r, EBSD_ENETWORK, "epoll registration failed");
        return;
    }
    r->events = events;
}

/* What the socket must wait for now. */
static void update_events(struct redis *r)
{
    uint32_t ev = EPOLLIN;
    if (r->state == ST_CONNECTING || r->out.len > r->out_off || r->ssl_want_write)
        ev |= EPOLLOUT;
    set_events(r, ev);
}

/* Queues a formatted command; the caller has checked capacity. */
static ebsd_status queue_cmd(struct redis *r, int argc, const char **argv,
                             const size_t *argvlen, enum cmd_kind kind, redis_reply_fn fn,
                             void *arg, bool expect_reply)
{
    char *wire = NULL;
    int n = redisFormatCommandArgv(&wire, argc, argv, argvlen);
    if (n < 0 || !wire)
        return EBSD_EINVAL;
    ebsd_status st = buf_append(&r->out, wire, (size_t)n);
    if (kind == CMD_AUTH)
        OPENSSL_cleanse(wire, (size_t)n);
    redisFreeCommand(wire);
    if (st != EBSD_OK)
        return EBSD_EBUSY;
    if (expect_reply) {
        struct cmd *c = xcalloc(1, sizeof *c);
        c->fn = fn;
        c->arg = arg;
        c->kind = kind;
        c->deadline = r->state == ST_UP ? clock_now_ms() + r->opt.command_timeout_ms
                                        : r->connect_deadline;
        bool was_empty = r->head == NULL;
        if (r->tail)
            r->tail->next = c;
        else
            r->head = c;
        r->tail = c;
        r->npending++;
        if (was_empty)
            rearm(r);
    }
    r->stats.commands++;
    update_events(r);
    return EBSD_OK;
}

static ebsd_status send_auth(struct redis *r)
{
    const char *argv[3] = {"AUTH", NULL, NULL};
    int argc = 1;
    if (r->user && *r->user)
        argv[argc++] = r->user;
    argv[argc++] = r->password;
    return queue_cmd(r, argc, argv, NULL, CMD_AUTH, NULL, NULL, true);
}

static void send_subscriptions(struct redis *r)
{
    for (size_t i = 0; i < r->nsubs; i++) {
        const char *argv[2] = {r->subs[i].pattern ? "PSUBSCRIBE" : "SUBSCRIBE",
                               r->subs[i].channel};
        /* the confirmation comes back as a push, not as a reply to match */
        if (queue_cmd(r, 2, argv, NULL, CMD_SUB, NULL, NULL, false) != EBSD_OK) {
            conn_close(r, EBSD_ENETWORK, "cannot queue SUBSCRIBE");
            return;
        }
    }
}

/* ------------------------------------------------------------------ timer */

static int64_t next_deadline(const struct redis *r)
{
    switch (r->state) {
    case ST_DOWN:
        return r->reconnect_at;
    case ST_RESOLVING:
    case ST_CONNECTING:
    case ST_TLS:
    case ST_HANDSHAKE:
        return r->connect_deadline;
    case ST_UP: {
        /* a reply is awaited: its deadline; otherwise the next keepalive PING (which is not
         * sent while replies are awaited, so its time must not count then: the timer would
         * fire again and again) */
        if (!r->head && !r->sub_ping_deadline)
            return r->last_io + r->opt.keepalive_ms;
        int64_t d = INT64_MAX;
        if (r->head)
            d = r->head->deadline;
        if (r->sub_ping_deadline && r->sub_ping_deadline < d)
            d = r->sub_ping_deadline;
        return d;
    }
    }
    return 0;
}

static void on_timer(struct loop *l, void *arg)
{
    struct redis *r = arg;
    int64_t now = clock_now_ms();
    r->timer = NULL;
    switch (r->state) {
    case ST_DOWN:
        break; /* rearm below starts the connection */
    case ST_RESOLVING:
    case ST_CONNECTING:
    case ST_TLS:
    case ST_HANDSHAKE:
        if (now >= r->connect_deadline) {
            conn_close(r, EBSD_ETIMEDOUT, "connect timed out");
            return;
        }
        break;
    case ST_UP:
        if ((r->head && now >= r->head->deadline) ||
            (r->sub_ping_deadline && now >= r->sub_ping_deadline)) {
            conn_close(r, EBSD_ETIMEDOUT, "command timed out");
            return;
        }
        if (now >= r->last_io + r->opt.keepalive_ms && !r->head && !r->sub_ping_deadline) {
            const char *argv[1] = {"PING"};
            r->last_io = now;
            if (r->opt.subscriber) {
                r->sub_ping_deadline = now + r->opt.command_timeout_ms;
                if (queue_cmd(r, 1, argv, NULL, CMD_PING, NULL, NULL, false) != EBSD_OK) {
                    conn_close(r, EBSD_ENETWORK, "cannot queue PING");
                    return;
                }
            } else if (queue_cmd(r, 1, argv, NULL, CMD_PING, NULL, NULL, true) != EBSD_OK) {
                conn_close(r, EBSD_ENETWORK, "cannot queue PING");
                return;
            }
        }
        break;
    }
    rearm(r);
}

static void conn_start(struct redis *r);

static void rearm(struct redis *r)
{
    if (r->state == ST_DOWN && r->reconnect_at <= clock_now_ms()) {
        conn_start(r);
        return;
    }
    loop_timer_stop(r->loop, r->timer);
    r->timer = loop_timer_start(r->loop, next_deadline(r), on_timer, r);
}

/* ------------------------------------------------------------------ closing */

static void conn_close(struct redis *r, ebsd_status st, const char *why)
{
    bool was_up = r->state == ST_UP;
    if (r->state == ST_DOWN)
        return;
    if (r->freeing) {
        /* redis_free: no log line, no reconnect counted */
    } else if (was_up) {
        r->stats.disconnects++;
        log_warn("redis", "%s: connection lost: %s", r->name, why);
    } else {
        r->stats.connect_failures++;
        log_warn("redis", "%s: cannot connect: %s (retry in %u ms)", r->name, why,
                 r->backoff_ms);
    }
    if (r->state == ST_RESOLVING) {
        r->state = ST_DOWN; /* dns_done sees the cancellation as stale */
        ares_cancel(r->dns);
    }
    if (r->fd >= 0) {
        if (r->events)
            loop_del_fd(r->loop, r->fd);
        close(r->fd);
    }
    r->fd = -1;
    r->events = 0;
    r->ssl_want_write = false;
    if (r->ssl) {
        SSL_free(r->ssl);
        r->ssl = NULL;
    }
    if (r->reader) {
        redisReaderFree(r->reader);
        r->reader = NULL;
    }
    buf_free(&r->out);
    buf_init(&r->out, REDIS_MAX_OUT);
    r->out_off = 0;
    r->sub_ping_deadline = 0;
    struct cmd *list = r->head;
    r->head = r->tail = NULL;
    r->npending = 0;
    r->state = ST_DOWN;
    r->reconnect_at = clock_now_ms() + r->backoff_ms;
    r->backoff_ms = r->backoff_ms * 2 > r->opt.backoff_max_ms ? r->opt.backoff_max_ms
                                                             : r->backoff_ms * 2;
    loop_timer_stop(r->loop, r->timer);
    r->timer = loop_timer_start(r->loop, r->reconnect_at, on_timer, r);
    /* callbacks last: they see a consistent, down connection */
    int64_t now = clock_now_ms();
    while (list) {
        struct cmd *c = list;
        list = c->next;
        if (c->fn) {
            ebsd_status cst = st == EBSD_ETIMEDOUT && now >= c->deadline ? EBSD_ETIMEDOUT
                                                                         : EBSD_ENETWORK;
            if (cst == EBSD_ETIMEDOUT)
                r->stats.timeouts++;
            c->fn(r, NULL, cst, c->arg);
        }
        free(c);
    }
    if (was_up && r->state_fn)
        r->state_fn(r, false, r->state_arg);
}

/* ------------------------------------------------------------------ connecting */

/* A connected socket (TLS done if any): AUTH, SELECT, CLIENT SETNAME and PING. */
static void start_handshake(struct redis *r)
{
    r->state = ST_HANDSHAKE;
    r->reader = reader_new();
    if (r->password && *r->password && send_auth(r) != EBSD_OK)
        goto fail;
    if (r->opt.url.db) {
        char db[16];
        snprintf(db, sizeof db, "%u", r->opt.url.db);
        const char *argv[2] = {"SELECT", db};
        if (queue_cmd(r, 2, argv, NULL, CMD_SELECT, NULL, NULL, true) != EBSD_OK)
            goto fail;
    }
    const char *argv[1] = {"PING"};
    if (queue_cmd(r, 1, argv, NULL, CMD_HELLO_PING, NULL, NULL, true) != EBSD_OK)
        goto fail;
    return;
fail:
    conn_close(r, EBSD_ENETWORK, "cannot queue the handshake");
}

static void start_tls(struct redis *r)
{
    r->state = ST_TLS;
    r->ssl = SSL_new(r->ctx);
    if (!r->ssl || SSL_set_fd(r->ssl, r->fd) != 1)
        goto fail;
    const char *host = r->opt.url.host;
    if (is_ip_literal(host)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(r->ssl), host) != 1)
            goto fail;
    } else {
        if (SSL_set_tlsext_host_name(r->ssl, host) != 1 || SSL_set1_host(r->ssl, host) != 1)
            goto fail;
    }
    SSL_set_connect_state(r->ssl);
    return;
fail:
    conn_close(r, EBSD_ENETWORK, "cannot set up TLS");
}

/* One step of the TLS handshake; true when it is done. */
static bool tls_step(struct redis *r)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(r->ssl);
    if (rc == 1)
        return true;
    int e = SSL_get_error(r->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        set_events(r, EPOLLIN);
        return false;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        set_events(r, EPOLLIN | EPOLLOUT);
        return false;
    }
    char why[300];
    long vr = SSL_get_verify_result(r->ssl);
    if (vr != X509_V_OK)
        snprintf(why, sizeof why, "TLS handshake: certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    else
        snprintf(why, sizeof why, "TLS handshake: %s",
                 ERR_error_string(ERR_get_error(), NULL));
    conn_close(r, EBSD_ENETWORK, why);
    return false;
}

/* Connects to the next address of this attempt; the last failure closes the attempt. */
static void conn_connect_next(struct redis *r, const char *last_error)
{
    char why[256];
    if (r->fd >= 0) {
        if (r->events)
            loop_del_fd(r->loop, r->fd);
        close(r->fd);
        r->fd = -1;
        r->events = 0;
    }
    if (r->addr_next >= r->naddrs) {
        conn_close(r, EBSD_ENETWORK, last_error ? last_error : "no address");
        return;
    }
    const struct sockaddr *sa = (const struct sockaddr *)&r->addrs[r->addr_next];
    socklen_t slen = r->addrlens[r->addr_next];
    r->addr_next++;
    r->state = ST_CONNECTING;
    r->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0) {
        snprintf(why, sizeof why, "socket: %s", strerror(errno));
        conn_close(r, EBSD_ENETWORK, why);
        return;
    }
    if (sa->sa_family != AF_UNIX) {
        int one = 1;
        (void)setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(r->fd, sa, slen) != 0 && errno != EINPROGRESS) {
        snprintf(why, sizeof why, "connect: %s", strerror(errno));
        conn_connect_next(r, why);
        return;
    }
    update_events(r); /* EPOLLOUT: writable once connected */
    rearm(r);
}

/* Starts trying one known address. */
static void conn_connect(struct redis *r, const struct sockaddr *sa, socklen_t slen)
{
    memcpy(&r->addrs[0], sa, slen);
    r->addrlens[0] = slen;
    r->naddrs = 1;
    r->addr_next = 0;
    conn_connect_next(r, NULL);
}

/* ---- host names: c-ares on the loop (its sockets and its retry timer) */

static void dns_rearm(struct redis *r);

static void on_dns_io(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct redis *r = arg;
    ares_process_fd(r->dns, events & (EPOLLIN | EPOLLERR | EPOLLHUP) ? fd : ARES_SOCKET_BAD,
                    events & EPOLLOUT ? fd : ARES_SOCKET_BAD);
    dns_rearm(r);
}

static void on_dns_timer(struct loop *l, void *arg)
{
    struct redis *r = arg;
    r->dns_timer = NULL;
    ares_process_fd(r->dns, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    dns_rearm(r);
}

static void dns_rearm(struct redis *r)
{
    loop_timer_stop(r->loop, r->dns_timer);
    r->dns_timer = NULL;
    struct timeval tv, *t = ares_timeout(r->dns, NULL, &tv);
    if (t)
        r->dns_timer = loop_timer_start(r->loop,
                                        clock_now_ms() + t->tv_sec * 1000 + t->tv_usec / 1000 + 1,
                                        on_dns_timer, r);
}

/* c-ares says which of its sockets to watch for what. */
static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct redis *r = data;
    uint32_t ev = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
    int slot = -1, free_slot = -1;
    for (int i = 0; i < DNS_MAX_SOCKETS; i++) {
        if (r->dns_socks[i].fd == fd && r->dns_socks[i].events)
            slot = i;
        else if (!r->dns_socks[i].events && free_slot < 0)
            free_slot = i;
    }
    if (slot >= 0) {
        if (!ev)
            loop_del_fd(r->loop, fd);
        else if (loop_mod_fd(r->loop, fd, ev) != EBSD_OK)
            ev = 0; /* the lookup times out */
        r->dns_socks[slot].events = ev;
    } else if (ev && free_slot >= 0 && loop_add_fd(r->loop, fd, ev, on_dns_io, r) == EBSD_OK) {
        r->dns_socks[free_slot].fd = fd;
        r->dns_socks[free_slot].events = ev;
    }
}

static void dns_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct redis *r = arg;
    if (r->state != ST_RESOLVING || status == ARES_ECANCELLED || status == ARES_EDESTRUCTION) {
        if (res)
            ares_freeaddrinfo(res);
        return;
    }
    if (status != ARES_SUCCESS || !res || !res->nodes) {
        char why[256];
        snprintf(why, sizeof why, "resolve %.100s: %s", r->opt.url.host, ares_strerror(status));
        if (res)
            ares_freeaddrinfo(res);
        conn_close(r, EBSD_ENETWORK, why);
        return;
    }
    r->naddrs = 0;
    r->addr_next = 0;
    for (struct ares_addrinfo_node *n = res->nodes; n && r->naddrs < DNS_MAX_SOCKETS;
         n = n->ai_next) {
        if (n->ai_addrlen > sizeof r->addrs[0])
            continue;
        memcpy(&r->addrs[r->naddrs], n->ai_addr, n->ai_addrlen);
        r->addrlens[r->naddrs++] = n->ai_addrlen;
    }
    ares_freeaddrinfo(res);
    conn_connect_next(r, NULL);
}

static ebsd_status dns_init(struct redis *r)
{
    static bool library_ready;
    if (!library_ready) {
        if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
            return EBSD_EIO;
        library_ready = true;
    }
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = dns_sock_state;
    o.sock_state_cb_data = r;
    /* two tries inside the connect timeout, which bounds the whole lookup anyway */
    o.timeout = (int)(r->opt.connect_timeout_ms / 2 ? r->opt.connect_timeout_ms / 2 : 1);
    o.tries = 2;
    int rc = ares_init_options(&r->dns, &o,
                               ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        log_error("redis", "%s: ares_init_options: %s", r->name, ares_strerror(rc));
        return EBSD_EIO;
    }
    r->dns_ready = true;
    return EBSD_OK;
}

static void conn_start(struct redis *r)
{
    char why[256];
    r->connect_deadline = clock_now_ms() + r->opt.connect_timeout_ms;
    if (r->opt.url.kind == REDIS_URL_UNIX) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        str_copy(sun.sun_path, sizeof sun.sun_path, r->opt.url.path);
        conn_connect(r, (struct sockaddr *)&sun, sizeof sun);
        return;
    }
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    memset(&in4, 0, sizeof in4);
    memset(&in6, 0, sizeof in6);
    if (inet_pton(AF_INET, r->opt.url.host, &in4.sin_addr) == 1) {
        in4.sin_family = AF_INET;
        in4.sin_port = htons(r->opt.url.port);
        conn_connect(r, (struct sockaddr *)&in4, sizeof in4);
        return;
    }
    if (inet_pton(AF_INET6, r->opt.url.host, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(r->opt.url.port);
        conn_connect(r, (struct sockaddr *)&in6, sizeof in6);
        return;
    }
    /* a name: resolved without blocking the loop (a failover moves it: every attempt
     * resolves it again) */
    r->state = ST_RESOLVING;
    if (!r->dns_ready && dns_init(r) != EBSD_OK) {
        snprintf(why, sizeof why, "cannot start the resolver");
        conn_close(r, EBSD_ENETWORK, why);
        return;
    }
    rearm(r);
    char port[8];
    snprintf(port, sizeof port, "%u", r->opt.url.port);
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(r->dns, r->opt.url.host, port, &hints, dns_done, r);
    if (r->state == ST_RESOLVING)
        dns_rearm(r);
}

/* ------------------------------------------------------------------ replies */

static void handshake_reply(struct redis *r, struct cmd *c, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[200];
        /* Redis' error texts never echo the password ("WRONGPASS invalid username-password
         * pair"); cut them short anyway. */
        snprintf(why, sizeof why, "%s refused: %.120s",
                 c->kind == CMD_AUTH ? "AUTH" : c->kind == CMD_SELECT ? "SELECT" : "PING",
                 reply->str ? reply->str : "");
        conn_close(r, EBSD_ENETWORK, why);
        return;
    }
    if (c->kind != CMD_HELLO_PING)
        return;
    r->state = ST_UP;
    r->stats.connects++;
    r->backoff_ms = r->opt.backoff_min_ms;
    r->last_io = clock_now_ms();
    log_info("redis", "%s: connected", r->name);
    if (r->opt.subscriber)
        send_subscriptions(r);
    if (r->state == ST_UP && r->state_fn)
        r->state_fn(r, true, r->state_arg);
}

/* A push on a subscriber connection: ["message", ch, msg], ["pmessage", pat, ch, msg],
 * ["subscribe", ch, n], ["pong", ""]. */
static void push_reply(struct redis *r, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_STATUS) { /* PING before the first SUBSCRIBE */
        r->sub_ping_deadline = 0;
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
        return;
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type != REDIS_REPLY_STRING &&
            reply->element[i]->type != REDIS_REPLY_INTEGER)
            return;
    const redisReply *kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING)
        return;
    if (kind->len == 4 && memcmp(kind->str, "pong", 4) == 0) {
        r->sub_ping_deadline = 0;
        return;
    }
    bool pmsg = kind->len == 8 && memcmp(kind->str, "pmessage", 8) == 0;
    bool msg = kind->len == 7 && memcmp(kind->str, "message", 7) == 0;
    if ((!pmsg && !msg) || reply->elements != (pmsg ? 4u : 3u))
        return;
    const redisReply *match = reply->element[1];
    const redisReply *ch = reply->element[pmsg ? 2 : 1];
    const redisReply *body = reply->element[pmsg ? 3 : 2];
    if (match->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING ||
        body->type != REDIS_REPLY_STRING)
        return;
    for (size_t i = 0; i < r->nsubs; i++) {
        const struct sub *s = &r->subs[i];
        if (s->pattern == pmsg && strlen(s->channel) == match->len &&
            memcmp(s->channel, match->str, match->len) == 0) {
            s->fn(r, ch->str, ch->len, body->str, body->len, s->arg);
            return;
        }
    }
}

/* Hands one reply to its command. Returns false when the connection closed meanwhile. */
static bool dispatch(struct redis *r, redisReply *reply)
{
    r->last_io = clock_now_ms();
    if (r->opt.subscriber && r->state == ST_UP) {
        push_reply(r, reply);
        return r->state == ST_UP;
    }
    struct cmd *c = r->head;
    if (!c) {
        r->stats.protocol_errors++;
        conn_close(r, EBSD_ENETWORK, "a reply nobody asked for");
        return false;
    }
    r->head = c->next;
    if (!r->head)
        r->tail = NULL;
    r->npending--;
    if (r->state != ST_UP) {
        handshake_reply(r, c, reply);
    } else if (c->kind == CMD_AUTH && reply->type == REDIS_REPLY_ERROR) {
        conn_close(r, EBSD_ENETWORK, "re-AUTH refused");
    } else if (c->fn) {
        bool err = reply->type == REDIS_REPLY_ERROR;
        if (err)
            r->stats.error_replies++;
        c->fn(r, reply, err ? EBSD_EUPSTREAM : EBSD_OK, c->arg);
    }
    free(c);
    if (r->state == ST_UP || r->state == ST_HANDSHAKE) {
        rearm(r);
        return true;
    }
    return false;
}

/* Feeds n bytes to the reader and dispatches whole replies. False when closed. */
static bool feed(struct redis *r, const char *data, size_t n)
{
    if (r->reader->len - r->reader->pos + n > r->opt.max_reply_bytes) {
        r->stats.protocol_errors++;
        conn_close(r, EBSD_ENETWORK, "reply larger than the cap");
        return false;
    }
    if (redisReaderFeed(r->reader, data, n) != REDIS_OK)
        goto bad;
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(r->reader, &reply) != REDIS_OK)
            goto bad;
        if (!reply)
            return true;
        bool alive = dispatch(r, reply);
        freeReplyObject(reply);
        if (!alive)
            return false;
    }
bad:;
    char why[160];
    /* hiredis reports our refused array (capped_array) as "Out of memory" */
    snprintf(why, sizeof why, "protocol error: %.120s",
             r->reader->err == REDIS_ERR_OOM ? "array longer than the cap" : r->reader->errstr);
    r->stats.protocol_errors++;
    conn_close(r, EBSD_ENETWORK, why);
    return false;
}

/* ------------------------------------------------------------------ socket I/O */

/* Reads what is there. False when the connection closed. */
static bool do_read(struct redis *r)
{
    char chunk[16384];
    /* At most 1 MiB per wakeup from the socket, but never leave bytes OpenSSL has already
     * decrypted (SSL_pending): the socket would not wake us for them. */
    for (int rounds = 0; rounds < 64 || (r->ssl && SSL_pending(r->ssl) > 0); rounds++) {
        ssize_t n;
        if (r->ssl) {
            ERR_clear_error();
            int rc = SSL_read(r->ssl, chunk, sizeof chunk);
            if (rc <= 0) {
                int e = SSL_get_error(r->ssl, rc);
                if (e == SSL_ERROR_WANT_READ)
                    return true;
                if (e == SSL_ERROR_WANT_WRITE) {
                    r->ssl_want_write = true;
                    return true;
                }
                conn_close(r, EBSD_ENETWORK,
                           e == SSL_ERROR_ZERO_RETURN ? "closed by the server" : "TLS read error");
                return false;
            }
            r->ssl_want_write = false;
            n = rc;
        } else {
            n = read(r->fd, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return true;
            if (n <= 0) {
                char why[128];
                snprintf(why, sizeof why, "read: %s",
                         n == 0 ? "closed by the server" : strerror(errno));
                conn_close(r, EBSD_ENETWORK, why);
                return false;
            }
        }
        if (!feed(r, chunk, (size_t)n))
            return false;
    }
    return true;
}

/* Writes what is queued. False when the connection closed. */
static bool do_write(struct redis *r)
{
    while (r->out_off < r->out.len) {
        size_t left = r->out.len - r->out_off;
        ssize_t n;
        if (r->ssl) {
            ERR_clear_error();
            int rc = SSL_write(r->ssl, r->out.data + r->out_off, left > INT32_MAX ? INT32_MAX
                                                                                   : (int)left);
            if (rc <= 0) {
                int e = SSL_get_error(r->ssl, rc);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    break;
                conn_close(r, EBSD_ENETWORK, "TLS write error");
                return false;
            }
            n = rc;
        } else {
            n = send(r->fd, r->out.data + r->out_off, left, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n < 0) {
                char why[128];
                snprintf(why, sizeof why, "send: %s", strerror(errno));
                conn_close(r, EBSD_ENETWORK, why);
                return false;
            }
        }
        r->out_off += (size_t)n;
    }
    if (r->out_off == r->out.len) {
        buf_reset(&r->out);
        r->out_off = 0;
    }
    return true;
}

static void on_io(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct redis *r = arg;
    if (r->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            char why[128];
            snprintf(why, sizeof why, "connect: %s", strerror(err));
            conn_connect_next(r, why); /* the next address of a name, if any */
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (r->ctx) {
            start_tls(r);
            if (r->state != ST_TLS)
                return;
        } else {
            start_handshake(r);
            if (r->state != ST_HANDSHAKE)
                return;
        }
    }
    if (r->state == ST_TLS) {
        if (!tls_step(r))
            return;
        start_handshake(r);
        if (r->state != ST_HANDSHAKE)
            return;
    }
    if (!do_write(r))
        return;
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || r->ssl_want_write) {
        if (!do_read(r))
            return;
        /* replies may have queued more (handshake done: SUBSCRIBE) */
        if (!do_write(r))
            return;
    }
    update_events(r);
}

/* ------------------------------------------------------------------ public */

static SSL_CTX *tls_context(const char *ca_file, char *why, size_t whylen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        str_copy(why, whylen, "SSL_CTX_new failed");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        snprintf(why, whylen, "cannot load CA certificates from %s",
                 ca_file && *ca_file ? ca_file : "the system store");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

ebsd_status redis_new(struct loop *l, const struct redis_options *opts, struct redis **out)
{
    if (!l || !opts || !opts->connect_timeout_ms || !opts->command_timeout_ms)
        return EBSD_EINVAL;
    if (opts->password && strlen(opts->password) > REDIS_MAX_SECRET)
        return EBSD_ETOOBIG;
    struct redis *r = xcalloc(1, sizeof *r);
    r->loop = l;
    r->opt = *opts;
    if (!r->opt.keepalive_ms)
        r->opt.keepalive_ms = 1000;
    if (!r->opt.max_reply_bytes || r->opt.max_reply_bytes > REDIS_MAX_REPLY_BYTES)
        r->opt.max_reply_bytes = REDIS_MAX_REPLY_BYTES;
    if (!r->opt.backoff_min_ms)
        r->opt.backoff_min_ms = 100;
    if (!r->opt.backoff_max_ms)
        r->opt.backoff_max_ms = 5000;
    if (r->opt.backoff_max_ms < r->opt.backoff_min_ms)
        r->opt.backoff_max_ms = r->opt.backoff_min_ms;
    r->name = xstrdup(opts->name && *opts->name ? opts->name : "redis");
    r->ca_file = xstrdup(opts->ca_file ? opts->ca_file : "");
    r->user = xstrdup(opts->url.user);
    r->password = xstrdup(opts->password ? opts->password : "");
    r->opt.name = r->name;
    r->opt.ca_file = r->ca_file;
    r->opt.password = NULL; /* only r->password holds it */
    r->fd = -1;
    r->backoff_ms = r->opt.backoff_min_ms;
    buf_init(&r->out, REDIS_MAX_OUT);
    if (opts->url.kind == REDIS_URL_TLS) {
        char why[256];
        r->ctx = tls_context(r->ca_file, why, sizeof why);
        if (!r->ctx) {
            log_error("redis", "%s: %s", r->name, why);
            redis_free(r);
            return EBSD_EIO;
        }
    }
    conn_start(r);
    *out = r;
    return EBSD_OK;
}

/* Sends what is queued on a live connection and, with replies, waits for the replies to
 * every pending command and to what their callbacks send in turn; blocking, at most the
 * command timeout. Commands queued just before a shutdown (a lock's release, a replica's
 * withdrawal) then reach Redis instead of dying in the buffer. A script call is EVALSHA
 * first and EVAL after a NOSCRIPT reply: a lock released just before a shutdown (a fresh
 * Redis, or one whose script cache was flushed) needs that second round trip, or the lock
 * stays until it expires and another replica waits on it for a whole fetch deadline. */
static void drain(struct redis *r, bool replies)
{
    int64_t until = clock_now_ms() + r->opt.command_timeout_ms;
    while (r->state == ST_UP && ((replies && r->npending > 0) || r->out_off < r->out.len)) {
        if (replies && r->ssl && SSL_pending(r->ssl) > 0) {
            if (!do_read(r))
                return;
            continue;
        }
        int64_t left = until - clock_now_ms();
        struct pollfd p = {.fd = r->fd, .events = replies ? POLLIN : 0};
        if (r->out_off < r->out.len || r->ssl_want_write)
            p.events |= POLLOUT;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return;
        if ((p.revents & POLLOUT) && !do_write(r))
            return;
        if (!replies && (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
            return; /* nothing will drain a dead socket */
        if (replies && (p.revents & (POLLIN | POLLHUP | POLLERR)) && !do_read(r))
            return;
    }
}

void redis_free(struct redis *r)
{
    if (!r)
        return;
    r->state_fn = NULL; /* no "down" callback into an owner that is going away */
    r->freeing = true;
    drain(r, !r->opt.subscriber); /* a subscriber's pushes need no waiting for */
    conn_close(r, EBSD_ENETWORK, "closed");
    loop_timer_stop(r->loop, r->timer);
    r->timer = NULL;
    if (r->dns_ready) {
        loop_timer_stop(r->loop, r->dns_timer);
        ares_destroy(r->dns); /* closes its sockets through dns_sock_state */
    }
    if (r->ctx)
        SSL_CTX_free(r->ctx);
    buf_free(&r->out);
    for (size_t i = 0; i < r->nsubs; i++)
        free(r->subs[i].channel);
    wipe_free(r->password);
    free(r->user);
    free(r->name);
    free(r->ca_file);
    free(r);
}

ebsd_status redis_command(struct redis *r, int argc, const char **argv, const size_t *argvlen,
                          redis_reply_fn fn, void *arg)
{
    if (argc < 1 || r->opt.subscriber || !fn)
        return EBSD_EINVAL;
    if (r->state != ST_UP) {
        r->stats.refused++;
        return EBSD_ENETWORK;
    }
    if (r->npending >= REDIS_MAX_PENDING) {
        r->stats.refused++;
        return EBSD_EBUSY;
    }
    ebsd_status st = queue_cmd(r, argc, argv, argvlen, CMD_USER, fn, arg, true);
    if (st != EBSD_OK)
        r->stats.refused++;
    return st;
}

ebsd_status redis_subscribe(struct redis *r, const char *channel, bool pattern,
                            redis_message_fn fn, void *arg)
{
    if (!r->opt.subscriber || !channel || !*channel || !fn)
        return EBSD_EINVAL;
    for (size_t i = 0; i < r->nsubs; i++)
        if (strcmp(r->subs[i].channel, channel) == 0 && r->subs[i].pattern == pattern)
            return EBSD_EINVAL;
    if (r->nsubs >= REDIS_MAX_SUBSCRIPTIONS)
        return EBSD_ETOOBIG;
    struct sub *s = &r->subs[r->nsubs++];
    s->channel = xstrdup(channel);
    s->pattern = pattern;
    s->fn = fn;
    s->arg = arg;
    if (r->state == ST_UP) {
        const char *argv[2] = {pattern ? "PSUBSCRIBE" : "SUBSCRIBE", s->channel};
        if (queue_cmd(r, 2, argv, NULL, CMD_SUB, NULL, NULL, false) != EBSD_OK)
            conn_close(r, EBSD_ENETWORK, "cannot queue SUBSCRIBE");
    }
    return EBSD_OK;
}

void redis_set_auth(struct redis *r, const char *user, const char *password, bool reauth)
{
    if (user) {
        free(r->user);
        r->user = xstrdup(user);
    }
    wipe_free(r->password);
    r->password = xstrdup(password ? password : "");
    /* A subscriber cannot AUTH in RESP2's subscribed state: it keeps the new password for
     * its next connection (ElastiCache closes it at its 12 hours; it reconnects then). */
    if (reauth && r->state == ST_UP && *r->password && !r->opt.subscriber &&
        r->npending < REDIS_MAX_PENDING) {
        if (send_auth(r) != EBSD_OK)
            conn_close(r, EBSD_ENETWORK, "cannot queue AUTH");
    }
}

void redis_set_state_fn(struct redis *r, redis_state_fn fn, void *arg)
{
    r->state_fn = fn;
    r->state_arg = arg;
}

bool redis_is_up(const struct redis *r)
{
    return r && r->state == ST_UP;
}

void redis_get_stats(const struct redis *r, struct redis_stats *out)
{
    *out = r->stats;
}

ebsd_status redis_password_load(const char *path, char **out)
{
    char *data = NULL;
    size_t len = 0;
    struct file_error fe;
    ebsd_status st = file_read(path, REDIS_MAX_SECRET + 2, FILE_SECRET, &data, &len, NULL, &fe);
    if (st == EBSD_ENOTFOUND)
        st = EBSD_EIO; /* fe says open: ENOENT */
    if (st == EBSD_EIO)
        log_error("redis", "%s(%s): %s", fe.op, path, strerror(fe.err_no));
    if (st != EBSD_OK)
        return st;
    size_t n = len;
    if (n && data[n - 1] == '\n')
        n--;
    if (n && data[n - 1] == '\r')
        n--;
    st = EBSD_EINVAL;
    if (n == 0 || n > REDIS_MAX_SECRET)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)data[i] < 0x20 || data[i] == 0x7f)
            goto out;
    *out = xstrndup(data, n);
    st = EBSD_OK;
out:
    OPENSSL_cleanse(data, len);
    free(data);
    return st;
}
