/* ec2.c - the EC2 Query API client: form bodies, SigV4 signing, one HTTP attempt at a time
 * through httpc, the SDK standard retry loop (retry.h) bounded by the caller's deadline, a
 * client-side token bucket (ratelimit.h), and pagination helpers.
 *
 * Outcomes: an EC2 error answer is EBSD_EUPSTREAM with its code kept (AuthFailure and
 * SignatureDoesNotMatch included: callers map codes), except throttling codes, which end as
 * EBSD_ETHROTTLED. A 2xx body that does not parse is retried like a transient error (a
 * truncated answer), then reported as EBSD_EPARSE. Retries never sleep past the deadline:
 * when the backoff would end after it, the last error is returned as it was (ETIMEDOUT
 * only when the deadline itself passed during a transfer).
 *
 * Each attempt has its own connect and read timeouts (cut to what is left of the
 * deadline), so a hung attempt is abandoned and retried like a transient error while time
 * remains. Requests are signed with skew_now(): a clock-skew error whose Date header shows
 * our clock far from AWS's corrects the offset and the attempt is re-signed and retried at
 * once (skew.h); so does one signed before another client of the process corrected it. */
#include "ec2.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "ec2xml.h"
#include "endpoint.h"
#include "httpc.h"
#include "mem.h"
#include "ratelimit.h"
#include "retry.h"
#include "sigv4.h"
#include "skew.h"

#define DEFAULT_DEADLINE_MS 30000
#define DEFAULT_MAX_RESPONSE (16u << 20)
#define MAX_BODY (1u << 20)
#define MAX_PAGES 100000
#define DEFAULT_MAX_ITEMS 1000000
#define CONTENT_TYPE "application/x-www-form-urlencoded; charset=utf-8"

struct ec2_client {
    char *region;
    char *endpoint;   /* URL requests go to */
    char *host;       /* authority, sent and signed as Host */
    char *path;       /* request path ("/" unless the endpoint has one) */
    char *ca_bundle;
    const struct creds *creds;
    ebsd_status (*budget)(void *arg, int volumes, int64_t deadline_ms);
    void *budget_arg;
    int max_attempts;
    int instance_page;
    int volume_page;
    size_t max_response;
    bool tags;        /* ec2_options.tags */
    int64_t connect_timeout_ms, read_timeout_ms;
    bool deterministic;
    struct httpc *http;
    struct ec2_stats stats;
    struct retry_quota quota;
    struct retry_rng rng;
    bool adaptive;               /* retry mode adaptive: ad gates every attempt */
    struct retry_adaptive ad;
    struct ratelimit rl;
};

/* ---- ids, endpoints, bodies ------------------------------------------------------------- */

static bool is_lower_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

bool ec2_instance_id_valid(const char *id)
{
    if (!id || id[0] != 'i' || id[1] != '-')
        return false;
    size_t n = 0;
    for (const char *p = id + 2; *p; p++, n++)
        if (!is_lower_hex(*p) || n > 17)
            return false;
    return n == 8 || n == 17;
}

static bool region_valid(const char *r)
{
    size_t n = r ? strlen(r) : 0;
    if (n == 0 || n > 32 || r[0] == '-' || r[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
            return false;
    return true;
}

void ec2_default_endpoint(const char *region, char *out, size_t outlen)
{
    endpoint_default("ec2", region, out, outlen);
}

/* Splits http(s)://authority[/path] into *host and *path (caller frees both). */
static ebsd_status parse_endpoint(const char *url, char **host, char **path)
{
    const char *rest;
    if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else
        return EBSD_EINVAL;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#')
            return EBSD_EINVAL;
    size_t alen = strcspn(rest, "/");
    if (alen == 0 || memchr(rest, '@', alen))
        return EBSD_EINVAL;
    *host = xstrndup(rest, alen);
    *path = xstrdup(rest[alen] ? rest + alen : "/");
    return EBSD_OK;
}

char *ec2_form_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = xmalloc(n * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static ebsd_status add_param(struct buf *b, const char *key, const char *value)
{
    char *enc = ec2_form_encode(value);
    ebsd_status st = buf_printf(b, "&%s=%s", key, enc);
    free(enc);
    return st;
}

static ebsd_status check_ids(const char *const *ids, size_t nids)
{
    if (nids > EC2_MAX_IDS)
        return EBSD_EINVAL;
    for (size_t i = 0; i < nids; i++)
        if (!ec2_instance_id_valid(ids[i]))
            return EBSD_EINVAL;
    return EBSD_OK;
}

static int clamp_page(int n, int dflt)
{
    if (n <= 0)
        return dflt;
    return n < 5 ? 5 : n > 1000 ? 1000 : n; /* the range EC2 accepts */
}

/* Ends a request body begun in b (st: how building it went so far): MaxResults (page > 0:
 * the page size, clamped) and NextToken when there is one; on success *out gets the body
 * (caller frees). Frees b either way. */
static ebsd_status end_body(struct buf *b, ebsd_status st, int page, const char *next_token,
                            char **out)
{
    if (st == EBSD_OK && page > 0)
        st = buf_printf(b, "&MaxResults=%d", page);
    if (st == EBSD_OK && next_token && *next_token)
        st = add_param(b, "NextToken", next_token);
    if (st == EBSD_OK)
        *out = buf_steal(b);
    buf_free(b);
    return st;
}

ebsd_status ec2_instances_body(const char *const *ids, size_t nids, const char *next_token,
                               int max_results, char **out)
{
    ebsd_status st = check_ids(ids, nids);
    struct buf b;
    buf_init(&b, MAX_BODY);
    if (st != EBSD_OK)
        goto out;
    st = buf_puts(&b, "Action=DescribeInstances&Version=" EC2_API_VERSION);
    for (size_t i = 0; st == EBSD_OK && i < nids; i++) {
        char key[32];
        snprintf(key, sizeof key, "InstanceId.%zu", i + 1);
        st = add_param(&b, key, ids[i]);
    }
out:
    /* EC2 refuses MaxResults together with ids */
    return end_body(&b, st, nids == 0 ? clamp_page(max_results, 1000) : 0, next_token, out);
}

ebsd_status ec2_instances_part_body(unsigned part, unsigned nparts, const char *next_token,
                                    int max_results, char **out)
{
    if (nparts == 0 || nparts > 16 || (nparts & (nparts - 1)) != 0 || part >= nparts)
        return EBSD_EINVAL;
    if (nparts == 1)
        return ec2_instances_body(NULL, 0, next_token, max_results, out);
    struct buf b;
    buf_init(&b, MAX_BODY);
    ebsd_status st = buf_puts(&b, "Action=DescribeInstances&Version=" EC2_API_VERSION
                                  "&Filter.1.Name=instance-id");
    unsigned n = 0;
    for (unsigned d = part; st == EBSD_OK && d < 16; d += nparts) {
        char key[40], value[3] = {'*', "0123456789abcdef"[d], '\0'};
        snprintf(key, sizeof key, "Filter.1.Value.%u", ++n);
        st = add_param(&b, key, value);
    }
    return end_body(&b, st, clamp_page(max_results, 1000), next_token, out);
}

ebsd_status ec2_volumes_body(const char *const *instance_ids, size_t nids, const char *next_token,
                             int max_results, char **out)
{
    ebsd_status st = check_ids(instance_ids, nids);
    struct buf b;
    buf_init(&b, MAX_BODY);
    if (st != EBSD_OK)
        goto out;
    st = buf_puts(&b, "Action=DescribeVolumes&Version=" EC2_API_VERSION);
    if (st == EBSD_OK && nids > 0)
        st = buf_puts(&b, "&Filter.1.Name=attachment.instance-id");
    for (size_t i = 0; st == EBSD_OK && i < nids; i++) {
        char key[40];
        snprintf(key, sizeof key, "Filter.1.Value.%zu", i + 1);
        st = add_param(&b, key, instance_ids[i]);
    }
out:
    return end_body(&b, st, clamp_page(max_results, 500), next_token, out);
}

ebsd_status ec2_attached_part_body(unsigned part, unsigned nparts, const char *next_token,
                                   int max_results, char **out)
{
    if (nparts == 0 || nparts > 256 || part >= nparts)
        return EBSD_EINVAL;
    struct buf b;
    buf_init(&b, MAX_BODY);
    ebsd_status st = buf_puts(&b, "Action=DescribeVolumes&Version=" EC2_API_VERSION
                                  "&Filter.1.Name=attachment.status"
                                  "&Filter.1.Value.1=attaching&Filter.1.Value.2=attached"
                                  "&Filter.1.Value.3=detaching");
    if (st == EBSD_OK && nparts > 1)
        st = buf_puts(&b, "&Filter.2.Name=volume-id");
    /* the last hex digit when nparts divides 16, the last two otherwise: shares of equal
     * size within one value, at most 128 values (EC2 takes 200 a filter) */
    unsigned digits = 16 % nparts == 0 ? 1 : 2, suffixes = digits == 1 ? 16 : 256, n = 0;
    for (unsigned x = part; st == EBSD_OK && nparts > 1 && x < suffixes; x += nparts) {
        static const char hex[] = "0123456789abcdef";
        char key[40], value[4] = {'*', hex[digits == 1 ? x : x >> 4], hex[x & 15], '\0'};
        if (digits == 1)
            value[2] = '\0';
        snprintf(key, sizeof key, "Filter.2.Value.%u", ++n);
        st = add_param(&b, key, value);
    }
    return end_body(&b, st, clamp_page(max_results, 500), next_token, out);
}

ebsd_status ec2_unattached_body(const char *next_token, int max_results, char **out)
{
    struct buf b;
    buf_init(&b, MAX_BODY);
    ebsd_status st = buf_puts(&b, "Action=DescribeVolumes&Version=" EC2_API_VERSION
                                  "&Filter.1.Name=status&Filter.1.Value.1=available"
                                  "&Filter.1.Value.2=creating");
    return end_body(&b, st, clamp_page(max_results, 500), next_token, out);
}

/* ---- client ----------------------------------------------------------------------------- */

ebsd_status ec2_client_new(const struct ec2_options *opt, struct ec2_client **out)
{
    ebsd_status st = EBSD_EINVAL;
    char *host = NULL, *path = NULL, *url = NULL;
    char dflt[128];
    if (!opt || !region_valid(opt->region) || !opt->creds)
        goto out;
    if (opt->endpoint && *opt->endpoint) {
        url = xstrdup(opt->endpoint);
    } else {
        ec2_default_endpoint(opt->region, dflt, sizeof dflt);
        url = xstrdup(dflt);
    }
    st = parse_endpoint(url, &host, &path);
    if (st != EBSD_OK)
        goto out;

    struct ec2_client *c = xcalloc(1, sizeof *c);
    c->region = xstrdup(opt->region);
    c->endpoint = url;
    c->host = host;
    c->path = path;
    url = host = path = NULL;
    c->ca_bundle = opt->ca_bundle && *opt->ca_bundle ? xstrdup(opt->ca_bundle) : NULL;
    c->creds = opt->creds;
    c->budget = opt->budget;
    c->budget_arg = opt->budget_arg;
    c->max_attempts = opt->max_attempts > 0 ? opt->max_attempts
                                            : retry_settings_get()->max_attempts;
    /* adaptive puts botocore's CUBIC rate limiter (retry.h) in front of every attempt */
    c->adaptive = retry_settings_get()->mode == RETRY_MODE_ADAPTIVE;
    retry_adaptive_init(&c->ad, (double)clock_now_us() / 1e6);
    c->instance_page = clamp_page(opt->instance_page_size, 1000);
    c->volume_page = clamp_page(opt->volume_page_size, 500);
    c->max_response = opt->max_response_bytes ? opt->max_response_bytes : DEFAULT_MAX_RESPONSE;
    c->tags = opt->tags;
    c->deterministic = opt->deterministic_backoff;
    c->connect_timeout_ms =
        opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : EC2_DEFAULT_CONNECT_TIMEOUT_MS;
    c->read_timeout_ms =
        opt->read_timeout_ms > 0 ? opt->read_timeout_ms : EC2_DEFAULT_READ_TIMEOUT_MS;
    c->http = httpc_new(); /* this process's own handle: never one inherited over fork */
    retry_quota_init(&c->quota);
    c->stats.retry_quota = c->quota.available;
    ratelimit_init(&c->rl, opt->rate_per_s, opt->rate_burst, clock_now_us());
    *out = c;
    st = EBSD_OK;
out:
    free(url);
    free(host);
    free(path);
    return st;
}

void ec2_client_free(struct ec2_client *c)
{
    if (!c)
        return;
    httpc_free(c->http);
    free(c->region);
    free(c->endpoint);
    free(c->host);
    free(c->path);
    free(c->ca_bundle);
    free(c);
}

const struct ec2_stats *ec2_client_stats(const struct ec2_client *c)
{
    return &c->stats;
}

const char *ec2_client_endpoint(const struct ec2_client *c)
{
    return c->endpoint;
}

/* ---- one attempt ------------------------------------------------------------------------ */

static bool to_parser(void *arg, const char *piece, size_t n)
{
    return ec2xml_stream_feed(arg, piece, n) == EBSD_OK;
}

/* Signs and sends body once. Returns the outcome of this attempt; *cls says whether it is
 * worth retrying. On EBSD_OK the parsed page (volumes: a struct ec2_volume_page, else a
 * struct ec2_instance_page) is in out. A 2xx answer is parsed as it arrives, never kept
 * whole: the body of a 1,000-instance page is megabytes, and its buffer's page faults and
 * unmapping cost more CPU than parsing it. */
static ebsd_status attempt_once(struct ec2_client *c, const char *body, int64_t deadline,
                                bool volumes, void *out, struct ec2_error *err,
                                enum retry_class *cls)
{
    ebsd_status st;
    struct sigv4_signed sig;
    bool signed_ok = false;
    char *hdr[8] = {0};
    struct httpc_response resp;
    bool have_resp = false;
    struct ec2xml_stream *xs = NULL;
    size_t blen = strlen(body);
    *cls = RETRY_NONE;
    memset(err, 0, sizeof *err);

    struct sigv4_header h[2] = {{"Host", c->host}, {"Content-Type", CONTENT_TYPE}};
    struct sigv4_request req = {"POST", c->path, NULL, h, 2, body, blen};
    struct sigv4_credentials cr = {c->creds->access_key_id, c->creds->secret_access_key,
                                   c->creds->session_token[0] ? c->creds->session_token : NULL};
    /* the offset this attempt is signed with: another client of the worker (a share its
     * lister carries, in another thread) may correct it while this one is in flight */
    int64_t signed_offset = skew_offset_ms();
    struct sigv4_params sp = {.creds = &cr,
                              .region = c->region,
                              .service = "ec2",
                              .when = skew_now(),
                              .normalize_path = true};
    st = sigv4_sign(&req, &sp, &sig);
    if (st != EBSD_OK) {
        snprintf(err->message, sizeof err->message, "sigv4_sign: %s", status_str(st));
        goto out;
    }
    signed_ok = true;
    size_t nh = 0;
    hdr[nh++] = xasprintf("Host: %s", c->host);
    hdr[nh++] = xasprintf("Content-Type: %s", CONTENT_TYPE);
    for (size_t i = 0; i < sig.nadd && nh < 7; i++)
        hdr[nh++] = xasprintf("%s: %s", sig.add[i].name, sig.add[i].value);

    struct httpc_request hr = {.method = "POST",
                               .url = c->endpoint,
                               .headers = (const char *const *)hdr,
                               .body = body,
                               .body_len = blen,
                               .deadline = deadline,
                               .max_response = c->max_response,
                               .ca_bundle = c->ca_bundle,
                               .connect_timeout_ms = c->connect_timeout_ms,
                               .read_timeout_ms = c->read_timeout_ms,
                               .sink = to_parser,
                               .sink_arg = xs = ec2xml_stream_new(volumes, c->tags)};
    c->stats.calls++;
    ebsd_status tr = httpc_perform(c->http, &hr, &resp);
    have_resp = true;
    if (tr != EBSD_OK) {
        st = tr;
        snprintf(err->message, sizeof err->message, "%s", resp.error);
        *cls = retry_classify(tr, resp.timed_out, 0, NULL);
        if (*cls == RETRY_TIMEOUT)
            c->stats.timeouts++;
        goto out;
    }
    err->http_status = resp.status;
    if (resp.status >= 200 && resp.status < 300) {
        st = ec2xml_stream_end(xs, out, err);
        err->http_status = resp.status;
        if (st == EBSD_EPARSE) {
            *cls = RETRY_TRANSIENT; /* a cut or garbled answer: try again */
        } else if (st == EBSD_EUPSTREAM) { /* an envelope under 2xx: its code decides */
            *cls = retry_is_throttling_code(err->code)  ? RETRY_THROTTLE
                   : retry_is_transient_code(err->code) ? RETRY_TRANSIENT
                                                        : RETRY_NONE;
        }
        goto out;
    }
    if (ec2_parse_error(resp.body.data ? resp.body.data : "", resp.body.len, err) != EBSD_OK) {
        memset(err, 0, sizeof *err);
        snprintf(err->message, sizeof err->message, "HTTP %ld from EC2 without an error code",
                 resp.status);
    }
    err->http_status = resp.status;
    *cls = retry_classify(EBSD_OK, false, resp.status, err->code);
    if (retry_is_clock_skew_code(err->code) &&
        (skew_correct_from_date(resp.date) || skew_offset_ms() != signed_offset)) {
        *cls = RETRY_CLOCK_SKEW;
        c->stats.clock_offset_set = true;
        c->stats.clock_offset_ms = skew_offset_ms();
    }
    st = *cls == RETRY_THROTTLE ? EBSD_ETHROTTLED : EBSD_EUPSTREAM;
out:
    if (st == EBSD_EUPSTREAM && retry_is_throttling_code(err->code))
        st = EBSD_ETHROTTLED;
    if (*cls == RETRY_THROTTLE)
        c->stats.throttled++;
    for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++)
        free(hdr[i]);
    if (signed_ok)
        sigv4_signed_free(&sig);
    if (have_resp)
        httpc_response_free(&resp);
    ec2xml_stream_free(xs);
    return st;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Adaptive mode: waits for the CUBIC limiter's send token. EBSD_ETHROTTLED when the token
 * would come after the deadline (then nothing is sent, as with the client rate limit). */
static ebsd_status adaptive_wait(struct ec2_client *c, int64_t deadline)
{
    for (;;) {
        double w = retry_adaptive_acquire(&c->ad, (double)clock_now_us() / 1e6);
        if (w <= 0)
            return EBSD_OK;
        int64_t ms = (int64_t)ceil(w * 1000);
        if (clock_now_ms() + ms >= deadline)
            return EBSD_ETHROTTLED;
        sleep_ms(ms);
    }
}

/* What holds back the next attempt, in order: the client rate limit, ebsd's EC2 call budget,
 * the adaptive mode's limiter (each may sleep for its token). NULL: send it; otherwise why
 * not (a static string), when the token would come after the deadline or not at all. */
static const char *send_refused(struct ec2_client *c, const unsigned *action_counter,
                                int64_t deadline)
{
    if (ratelimit_acquire(&c->rl, deadline) != EBSD_OK)
        return "client rate limit: no request token before the deadline";
    if (c->budget && c->budget(c->budget_arg, action_counter == &c->stats.describe_volumes,
                                deadline) != EBSD_OK)
        return "ebsd's EC2 call budget has no token within fanout.queue_timeout_ms and the "
               "deadline";
    if (c->adaptive && adaptive_wait(c, deadline) != EBSD_OK)
        return "adaptive retry mode: no send token before the deadline";
    return NULL;
}

/* One operation: attempts with SDK standard-mode retries, never past deadline. */
static ebsd_status perform(struct ec2_client *c, const char *body, unsigned *action_counter,
                           int64_t deadline, bool volumes, void *out, struct ec2_error *err)
{
    ebsd_status st = EBSD_OK;
    struct ec2_error e;
    memset(&e, 0, sizeof e);
    for (int attempt = 1;; attempt++) {
        const char *refused = send_refused(c, action_counter, deadline);
        if (refused) {
            /* on a retry the last attempt's error stands */
            if (attempt == 1) {
                st = EBSD_ETHROTTLED;
                memset(&e, 0, sizeof e);
                snprintf(e.message, sizeof e.message, "%s", refused);
            }
            break;
        }
        enum retry_class cls;
        (*action_counter)++;
        st = attempt_once(c, body, deadline, volumes, out, &e, &cls);
        if (c->adaptive)
            retry_adaptive_update(&c->ad, (double)clock_now_us() / 1e6,
                                  cls == RETRY_THROTTLE);
        if (st == EBSD_OK || cls == RETRY_NONE || attempt >= c->max_attempts)
            break;
        int64_t delay = retry_delay_ms(cls, attempt,
                                       c->deterministic ? 1.0 : retry_rng_uniform(&c->rng));
        if (clock_now_ms() + delay >= deadline)
            break; /* the backoff would end past the deadline: keep the last error */
        if (!retry_quota_acquire(&c->quota, cls))
            break;
        if (delay > 0)
            sleep_ms(delay);
        c->stats.retries++;
        if (cls == RETRY_CLOCK_SKEW)
            c->stats.skew_retries++;
    }
    if (st == EBSD_OK) {
        retry_quota_success(&c->quota);
    } else {
        retry_quota_failure(&c->quota);
        c->stats.errors++;
        if (err)
            *err = e;
    }
    c->stats.retry_quota = c->quota.available;
    return st;
}

static int64_t effective_deadline(int64_t deadline)
{
    return deadline ? deadline : clock_now_ms() + DEFAULT_DEADLINE_MS;
}

/* Sends a DescribeInstances (volumes false) or DescribeVolumes body that building (st)
 * produced; bad says what was invalid when it did not. Takes the body; *out (a struct
 * ec2_instance_page or ec2_volume_page) is written only on success. */
static ebsd_status describe(struct ec2_client *c, ebsd_status st, char *body, const char *bad,
                            int64_t deadline, bool volumes, void *out, struct ec2_error *err)
{
    union {
        struct ec2_instance_page inst;
        struct ec2_volume_page vol;
    } page;
    memset(&page, 0, sizeof page);
    if (err)
        memset(err, 0, sizeof *err);
    if (st != EBSD_OK) {
        if (err)
            snprintf(err->message, sizeof err->message, "%s", bad);
    } else {
        st = perform(c, body,
                     volumes ? &c->stats.describe_volumes : &c->stats.describe_instances,
                     effective_deadline(deadline), volumes, &page, err);
        if (st == EBSD_OK)
            memcpy(out, &page, volumes ? sizeof page.vol : sizeof page.inst);
    }
    free(body);
    return st;
}

ebsd_status ec2_describe_instances(struct ec2_client *c, const char *const *ids, size_t nids,
                                   const char *next_token, int64_t deadline,
                                   struct ec2_instance_page *out, struct ec2_error *err)
{
    char *body = NULL;
    ebsd_status st = ec2_instances_body(ids, nids, next_token, c->instance_page, &body);
    return describe(c, st, body, "invalid instance ids", deadline, false, out, err);
}

ebsd_status ec2_describe_instances_part(struct ec2_client *c, unsigned part, unsigned nparts,
                                        const char *next_token, int64_t deadline,
                                        struct ec2_instance_page *out, struct ec2_error *err)
{
    char *body = NULL;
    ebsd_status st = ec2_instances_part_body(part, nparts, next_token, c->instance_page, &body);
    return describe(c, st, body, "invalid listing partition", deadline, false, out, err);
}

ebsd_status ec2_describe_volumes(struct ec2_client *c, const char *const *instance_ids,
                                 size_t nids, const char *next_token, int64_t deadline,
                                 struct ec2_volume_page *out, struct ec2_error *err)
{
    char *body = NULL;
    ebsd_status st = ec2_volumes_body(instance_ids, nids, next_token, c->volume_page, &body);
    return describe(c, st, body, "invalid instance ids", deadline, true, out, err);
}

ebsd_status ec2_describe_attached_part(struct ec2_client *c, unsigned part, unsigned nparts,
                                       const char *next_token, int64_t deadline,
                                       struct ec2_volume_page *out, struct ec2_error *err)
{
    char *body = NULL;
    ebsd_status st = ec2_attached_part_body(part, nparts, next_token, c->volume_page, &body);
    return describe(c, st, body, "invalid volume listing share", deadline, true, out, err);
}

ebsd_status ec2_describe_unattached_volumes(struct ec2_client *c, const char *next_token,
                                            int64_t deadline, struct ec2_volume_page *out,
                                            struct ec2_error *err)
{
    char *body = NULL;
    ebsd_status st = ec2_unattached_body(next_token, c->volume_page, &body);
    return describe(c, st, body, "invalid request", deadline, true, out, err);
}

/* ---- pagination ------------------------------------------------------------------------- */

void ec2_pager_init(struct ec2_pager *pg)
{
    memset(pg, 0, sizeof *pg);
}

void ec2_pager_free(struct ec2_pager *pg)
{
    free(pg->token);
    free(pg->prev);
    memset(pg, 0, sizeof *pg);
}

/* Appends m items of size bytes to items (*n used of *cap), growing it; returns it. */
static void *append_items(void *items, size_t *n, size_t *cap, const void *more, size_t m,
                          size_t size)
{
    if (*n + m > *cap) {
        while (*n + m > *cap)
            *cap = *cap ? *cap * 2 : 1024;
        items = xrealloc(items, *cap * size);
    }
    if (m)
        memcpy((char *)items + *n * size, more, m * size);
    *n += m;
    return items;
}

/* A token equal to the one just sent means the service would loop forever; MAX_PAGES bounds
 * a service that hands out a new token each time. */
bool ec2_pager_next(struct ec2_pager *pg, char **next, struct ec2_error *err, ebsd_status *st)
{
    pg->pages++;
    free(pg->prev);
    pg->prev = pg->token;
    pg->token = *next;
    *next = NULL;
    if (!pg->token)
        return false;
    if (pg->prev && strcmp(pg->prev, pg->token) == 0) {
        if (err)
            snprintf(err->message, sizeof err->message,
                     "EC2 returned the nextToken it was sent: pagination stopped");
        *st = EBSD_EUPSTREAM;
        return false;
    }
    if (pg->pages >= MAX_PAGES) {
        if (err)
            snprintf(err->message, sizeof err->message, "more than %d pages", MAX_PAGES);
        *st = EBSD_ETOOBIG;
        return false;
    }
    return true;
}

ebsd_status ec2_list_instances_all(struct ec2_client *c, const char *const *ids, size_t nids,
                                   int64_t deadline, size_t max_items,
                                   struct ec2_instance_page *out, struct ec2_error *err)
{
    ebsd_status st;
    struct ec2_instance_page all = {0}, page = {0};
    struct ec2_pager pg;
    size_t cap = 0;
    ec2_pager_init(&pg);
    if (!max_items)
        max_items = DEFAULT_MAX_ITEMS;
    deadline = effective_deadline(deadline);
    for (;;) {
        st = ec2_describe_instances(c, ids, nids, pg.token, deadline, &page, err);
        if (st != EBSD_OK)
            goto out;
        if (all.n + page.n > max_items) {
            st = EBSD_ETOOBIG;
            if (err)
                snprintf(err->message, sizeof err->message, "more than %zu instances",
                         max_items);
            goto out;
        }
        all.items = append_items(all.items, &all.n, &cap, page.items, page.n,
                                 sizeof *page.items);
        page.n = 0; /* the tag arrays now belong to all */
        st = EBSD_OK;
        bool more = ec2_pager_next(&pg, &page.next_token, err, &st);
        if (st != EBSD_OK)
            goto out;
        ec2_instance_page_free(&page);
        if (!more)
            break;
    }
    *out = all;
    memset(&all, 0, sizeof all);
    st = EBSD_OK;
out:
    ec2_instance_page_free(&page);
    ec2_instance_page_free(&all);
    ec2_pager_free(&pg);
    return st;
}

ebsd_status ec2_list_volumes_all(struct ec2_client *c, const char *const *instance_ids,
                                 size_t nids, int64_t deadline, size_t max_items,
                                 struct ec2_volume_page *out, struct ec2_error *err)
{
    ebsd_status st;
    struct ec2_volume_page all = {0}, page = {0};
    struct ec2_pager pg;
    size_t cap = 0;
    ec2_pager_init(&pg);
    if (!max_items)
        max_items = DEFAULT_MAX_ITEMS;
    deadline = effective_deadline(deadline);
    for (;;) {
        st = ec2_describe_volumes(c, instance_ids, nids, pg.token, deadline, &page, err);
        if (st != EBSD_OK)
            goto out;
        if (all.n + page.n > max_items) {
            st = EBSD_ETOOBIG;
            if (err)
                snprintf(err->message, sizeof err->message, "more than %zu volumes", max_items);
            goto out;
        }
        all.items = append_items(all.items, &all.n, &cap, page.items, page.n,
                                 sizeof *page.items);
        page.n = 0; /* the attachment and tag arrays now belong to all */
        st = EBSD_OK;
        bool more = ec2_pager_next(&pg, &page.next_token, err, &st);
        if (st != EBSD_OK)
            goto out;
        ec2_volume_page_free(&page);
        if (!more)
            break;
    }
    *out = all;
    memset(&all, 0, sizeof all);
    st = EBSD_OK;
out:
    ec2_volume_page_free(&page);
    ec2_volume_page_free(&all);
    ec2_pager_free(&pg);
    return st;
}
