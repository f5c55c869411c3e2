/* httpc.c - blocking libcurl transfers bounded by a deadline and a response cap. */
#include "httpc.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "mem.h"

struct httpc {
    CURL *curl;
};

struct xfer {
    struct httpc_response *resp;
    int too_big;
};

void httpc_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct httpc *httpc_new(void)
{
    struct httpc *h = xcalloc(1, sizeof *h);
    h->curl = curl_easy_init();
    if (!h->curl) {
        fprintf(stderr, "ebsd: curl_easy_init failed\n");
        abort();
    }
    return h;
}

void httpc_free(struct httpc *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    free(h);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
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
    static const char ra[] = "retry-after:", xra[] = "x-amz-retry-after:";
    if (n > sizeof ra - 1 && strncasecmp(p, ra, sizeof ra - 1) == 0)
        copy_header_value(x->resp->retry_after, sizeof x->resp->retry_after, p + sizeof ra - 1,
                          n - (sizeof ra - 1));
    else if (n > sizeof xra - 1 && strncasecmp(p, xra, sizeof xra - 1) == 0)
        copy_header_value(x->resp->retry_after, sizeof x->resp->retry_after, p + sizeof xra - 1,
                          n - (sizeof xra - 1));
    return n;
}

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
    struct xfer x = {.resp = resp};
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)left);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(left < 5000 ? left : 5000));
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

    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
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
        st = clock_remaining_ms(deadline) <= 0 ? EBSD_ETIMEDOUT : EBSD_ENETWORK;
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
