/* httpc.c - blocking libcurl transfers bounded by a deadline, per-attempt connect and read
 * timeouts, and a response cap. The transfer runs on a curl multi handle polled here, not
 * in curl_easy_perform, because the read timeout (first byte, then stalls) has to be
 * checked to the millisecond: curl's own low-speed check works in whole seconds and its
 * progress callback runs about once a second on a silent connection. */
#include "httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "mem.h"

struct httpc {
    CURL *curl;
    CURLM *multi;        /* drives the transfers; keeps the connection cache between them */
};

struct xfer {
    struct httpc_response *resp;
    const struct httpc_request *req;
    CURL *curl;
    int to_sink;         /* -1 not decided yet (no body byte so far), 0 into resp->body, 1
                          * to req->sink */
    size_t sunk;         /* bytes given to the sink */
    int too_big;
    bool sent;           /* connected (or reused) and the request on its way */
    bool got_bytes;      /* some of the answer (headers or body) arrived */
    int64_t last_byte;   /* monotonic ms: when the request left, then the last byte read */
};

void httpc_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static struct httpc *httpc_make(void)
{
    struct httpc *h = xcalloc(1, sizeof *h);
    h->curl = curl_easy_init();
    h->multi = curl_multi_init();
    if (!h->curl || !h->multi) {
        fprintf(stderr, "ebsd: curl_easy_init or curl_multi_init failed\n");
        abort(); /* allocation failure: the OOM policy of mem.h */
    }
    return h;
}

/* Handles made ahead by httpc_warm, in this process, for httpc_new to hand out first. */
static struct {
    pthread_mutex_t lock;
    struct httpc *h[HTTPC_WARM_MAX];
    unsigned n;
} warm = {.lock = PTHREAD_MUTEX_INITIALIZER};

void httpc_warm(unsigned n)
{
    pthread_mutex_lock(&warm.lock);
    while (warm.n < n && warm.n < HTTPC_WARM_MAX)
        warm.h[warm.n++] = httpc_make();
    pthread_mutex_unlock(&warm.lock);
}

struct httpc *httpc_new(void)
{
    struct httpc *h = NULL;
    pthread_mutex_lock(&warm.lock);
    if (warm.n > 0)
        h = warm.h[--warm.n];
    pthread_mutex_unlock(&warm.lock);
    return h ? h : httpc_make();
}

void httpc_free(struct httpc *h)
{
    if (!h)
        return;
    curl_multi_cleanup(h->multi);
    curl_easy_cleanup(h->curl);
    free(h);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    x->last_byte = clock_now_ms();
    x->got_bytes = true;
    if (x->to_sink < 0) { /* the first body byte: the headers, and so the status, are in */
        long code = 0;
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
        x->to_sink = x->req->sink && code >= 200 && code < 300;
        x->resp->streamed = x->to_sink == 1;
    }
    if (x->to_sink) {
        if (n > x->resp->body.max - x->sunk) {
            x->too_big = 1;
            return 0;
        }
        x->sunk += n;
        if (!x->req->sink(x->req->sink_arg, p, n)) {
            x->resp->sink_stopped = true;
            return 0; /* makes curl abort with CURLE_WRITE_ERROR */
        }
        return n;
    }
    if (buf_append(&x->resp->body, p, n) != EBSD_OK) {
        x->too_big = 1;
        return 0; /* makes curl abort with CURLE_WRITE_ERROR */
    }
    return n;
}

static void copy_header_value(char *dst, size_t dstlen, const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    if (n >= dstlen)
        n = dstlen - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    static const char ra[] = "retry-after:", xra[] = "x-amz-retry-after:", date[] = "date:";
    x->last_byte = clock_now_ms();
    x->got_bytes = true;
    if (n > sizeof date - 1 && strncasecmp(p, date, sizeof date - 1) == 0)
        copy_header_value(x->resp->date, sizeof x->resp->date, p + sizeof date - 1,
                          n - (sizeof date - 1));
    else if (n > sizeof ra - 1 && strncasecmp(p, ra, sizeof ra - 1) == 0)
        copy_header_value(x->resp->retry_after, sizeof x->resp->retry_after, p + sizeof ra - 1,
                          n - (sizeof ra - 1));
    else if (n > sizeof xra - 1 && strncasecmp(p, xra, sizeof xra - 1) == 0)
        copy_header_value(x->resp->retry_after, sizeof x->resp->retry_after, p + sizeof xra - 1,
                          n - (sizeof xra - 1));
    return n;
}

/* Called once the connection is up (or reused), right before the request goes out: the
 * read timeout runs from here. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port,
                     int local_port)
{
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    struct xfer *x = ud;
    x->sent = true;
    x->last_byte = clock_now_ms();
    return CURL_PREREQFUNC_OK;
}

/* Runs the transfer on h's multi handle until it ends, or until read_ms pass without a byte
 * once the request is sent (*read_timeout). The result is curl's, or CURLE_OK with
 * *read_timeout set; *mc is set when the multi interface itself failed. */
static CURLcode run_transfer(struct httpc *h, struct xfer *x, int64_t read_ms,
                             bool *read_timeout, CURLMcode *mc)
{
    CURLcode rc = CURLE_OK;
    *read_timeout = false;
    *mc = curl_multi_add_handle(h->multi, h->curl);
    if (*mc != CURLM_OK)
        return CURLE_FAILED_INIT;
    for (;;) {
        int running = 0, left = 0;
        *mc = curl_multi_perform(h->multi, &running);
        if (*mc != CURLM_OK)
            break;
        bool done = false;
        for (CURLMsg *m; (m = curl_multi_info_read(h->multi, &left));)
            if (m->msg == CURLMSG_DONE && m->easy_handle == h->curl) {
                rc = m->data.result;
                done = true;
            }
        if (done)
            break;
        int wait = 1000;
        if (read_ms > 0 && x->sent) {
            int64_t until = x->last_byte + read_ms - clock_now_ms();
            if (until <= 0) {
                *read_timeout = true;
                break;
            }
            if (until < wait)
                wait = (int)until;
        }
        /* curl shortens the wait to its own timers (connect and total timeouts) */
        *mc = curl_multi_poll(h->multi, NULL, 0, wait, NULL);
        if (*mc != CURLM_OK)
            break;
    }
    /* An unfinished transfer's connection is closed here, never reused. */
    (void)curl_multi_remove_handle(h->multi, h->curl);
    return rc;
}

/* How close to the deadline a curl timeout counts as the deadline's (see below). */
#define DEADLINE_SLACK_MS 5

ebsd_status httpc_perform(struct httpc *h, const struct httpc_request *req,
                          struct httpc_response *resp)
{
    ebsd_status st = EBSD_ENETWORK;
    struct curl_slist *hdrs = NULL;
    memset(resp, 0, sizeof *resp);
    buf_init_large(&resp->body, req->max_response ? req->max_response : (16u << 20));

    int64_t deadline = req->deadline ? req->deadline : clock_now_ms() + 30000;
    int64_t left = clock_remaining_ms(deadline);
    if (left <= 0) {
        resp->timed_out = true;
        snprintf(resp->error, sizeof resp->error, "deadline passed before the request");
        return EBSD_ETIMEDOUT;
    }

    CURL *c = h->curl;
    curl_easy_reset(c);
    struct xfer x = {.resp = resp, .req = req, .curl = c, .to_sink = -1};
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    int64_t connect_ms =
        req->connect_timeout_ms > 0 ? req->connect_timeout_ms : HTTPC_DEFAULT_CONNECT_TIMEOUT_MS;
    /* An attempt never outlives the deadline: every bound is cut to what is left. */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)left);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(left < connect_ms ? left : connect_ms));
    curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(c, CURLOPT_PREREQDATA, &x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (req->ca_bundle && *req->ca_bundle)
        curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_bundle);
    /* An empty Expect header stops curl waiting for "100 Continue" on POST bodies. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    for (const char *const *hp = req->headers; hp && *hp; hp++)
        hdrs = curl_slist_append(hdrs, *hp);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }

    bool read_timeout = false;
    CURLMcode mc = CURLM_OK;
    CURLcode rc = run_transfer(h, &x, req->read_timeout_ms, &read_timeout, &mc);
    if (mc != CURLM_OK) {
        snprintf(resp->error, sizeof resp->error, "curl multi interface: %s",
                 curl_multi_strerror(mc));
        st = EBSD_ENETWORK;
        goto out;
    }
    if (read_timeout) {
        resp->timed_out = true;
        resp->status = 0; /* a partial answer is no answer */
        snprintf(resp->error, sizeof resp->error, "%s for %lld ms (read timeout)",
                 x.got_bytes ? "the answer stalled" : "no answer",
                 (long long)req->read_timeout_ms);
        st = clock_remaining_ms(deadline) <= 0 ? EBSD_ETIMEDOUT : EBSD_ENETWORK;
        goto out;
    }
    if (rc == CURLE_OK || resp->sink_stopped) {
        /* a sink that stopped the transfer has the answer it refused: the caller asks it */
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ct)
            snprintf(resp->content_type, sizeof resp->content_type, "%s", ct);
        st = EBSD_OK;
        goto out;
    }
    snprintf(resp->error, sizeof resp->error, "%s", curl_easy_strerror(rc));
    if (x.too_big) {
        snprintf(resp->error, sizeof resp->error, "response larger than %zu bytes",
                 resp->body.max);
        st = EBSD_ETOOBIG;
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        resp->timed_out = true;
        /* curl's own clock may call the deadline (CURLOPT_TIMEOUT_MS) a millisecond before
         * ours does: within DEADLINE_SLACK_MS of it, it was the deadline, not the connect
         * timeout (seen in CI as a deadline answered ENETWORK) */
        st = clock_remaining_ms(deadline) <= DEADLINE_SLACK_MS ? EBSD_ETIMEDOUT : EBSD_ENETWORK;
    } else {
        resp->connect_failed = (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST);
        st = EBSD_ENETWORK;
    }
out:
    curl_slist_free_all(hdrs);
    return st;
}

void httpc_response_free(struct httpc_response *resp)
{
    buf_free(&resp->body);
}
