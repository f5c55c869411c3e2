/* main.c - ec2sim: command line, the libmicrohttpd server (one thread per connection, so
 * injected latency never serializes requests), the API request path (auth; then STS, or
 * EC2 on the caller's fleet with rate limit, latency, faults) and the /_sim/ admin
 * endpoints. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "buf.h"
#include "clock.h"
#include "ec2api.h"
#include "faults.h"
#include "fleet.h"
#include "mem.h"
#include "query.h"
#include "registry.h"
#include "simauth.h"
#include "stats.h"
#include "stsapi.h"

#define BODY_MAX (4u << 20)
#define ADMIN_BODY_MAX (64u << 10)
#define MAX_HEADERS 100

struct options {
    struct sockaddr_in addr;
    long instances;
    uint64_t seed;
    long multi_attach_max;
    long tag_values;
    const char *accounts;  /* --accounts: fleets to build at start-up */
    const char *regions;   /* --regions, as given */
    const char *fleet_file;
    const char *tls_cert, *tls_key;
    bool no_auth;
    bool no_wildcards;
    int max_skew;
    cJSON *faults; /* settings from flags, applied like POST /_sim/faults */
    cJSON *sts;    /* role settings from flags, applied like POST /_sim/sts */
};

static bool g_no_auth;
static int g_max_skew = 300;
static atomic_uint_fast64_t g_reqno;
static atomic_bool g_stopping;

/* Per-request state: created by the URI log callback, freed in request_completed only. */
struct req {
    char *uri; /* as on the request line (path?query) */
    struct buf body;
    bool started;
    bool admin;
    bool too_big;
};

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct req *r = xcalloc(1, sizeof *r);
    r->uri = xstrdup(uri);
    r->admin = strncmp(uri, "/_sim/", 6) == 0 || strcmp(uri, "/_sim") == 0;
    buf_init(&r->body, r->admin ? ADMIN_BODY_MAX : BODY_MAX);
    return r;
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct req *r = *con_cls;
    if (!r)
        return;
    if (r->started && !r->admin)
        stats_end();
    buf_free(&r->body);
    free(r->uri);
    free(r);
    *con_cls = NULL;
}

/* ---- responses ---------------------------------------------------------------------- */

/* Every answer carries Date (RFC 7231's IMF-fixdate) from the simulator's clock, which may
 * be set off the host's (POST /_sim/clock): clients correct their skew from it. */
static void add_date(struct MHD_Response *resp)
{
    char date[64];
    time_t now = simauth_now();
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    MHD_add_response_header(resp, "Date", date);
}

static enum MHD_Result send_body(struct MHD_Connection *conn, int status, char *body,
                                 size_t len, const char *ctype, const char *request_id)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    add_date(resp);
    if (request_id) {
        MHD_add_response_header(resp, "x-amzn-RequestId", request_id);
        MHD_add_response_header(resp, "Server", "AmazonEC2");
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, int status, cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!text)
        abort(); /* cJSON's allocation failed: same policy as xmalloc */
    return send_body(conn, status, text, strlen(text), "application/json", NULL);
}

static enum MHD_Result send_json_error(struct MHD_Connection *conn, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    return send_json(conn, status, o);
}

/* A truncated body: Content-Length promises len bytes, only cut arrive, then the
 * connection closes. */
struct partial {
    char *body;
    size_t cut;
};

static ssize_t partial_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    struct partial *p = cls;
    if (pos >= p->cut)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = p->cut - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(out, p->body + pos, n);
    return (ssize_t)n;
}

static void partial_free(void *cls)
{
    struct partial *p = cls;
    free(p->body);
    free(p);
}

static enum MHD_Result send_truncated(struct MHD_Connection *conn, struct ec2_response *er,
                                      double cut, const char *request_id)
{
    struct partial *p = xmalloc(sizeof *p);
    p->body = er->body;
    p->cut = (size_t)((double)er->len * cut);
    size_t len = er->len;
    er->body = NULL;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(len, 16 * 1024, partial_reader, p, partial_free);
    if (!resp) {
        partial_free(p);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/xml;charset=UTF-8");
    add_date(resp);
    MHD_add_response_header(resp, "x-amzn-RequestId", request_id);
    MHD_add_response_header(resp, "Server", "AmazonEC2");
    enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int conn_fd(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* Holds the connection without answering until the peer closes it, the bound passes or the
 * simulator stops. */
static void hang(struct MHD_Connection *conn, int max_ms)
{
    int fd = conn_fd(conn);
    int64_t deadline = clock_now_ms() + max_ms;
    while (!atomic_load(&g_stopping) && clock_now_ms() < deadline) {
        if (fd < 0) {
            usleep(100 * 1000);
            continue;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLRDHUP};
        int n = poll(&pfd, 1, 100);
        if (n < 0 && errno != EINTR)
            return;
        if (n > 0) {
            if (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
                return;
            char c;
            ssize_t got = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
            if (got == 0)
                return;
            if (got > 0)
                usleep(100 * 1000); /* pipelined bytes: not a close, keep waiting */
        }
    }
}

/* Makes the kernel answer the next close() with RST instead of FIN. */
static void arm_reset(struct MHD_Connection *conn)
{
    int fd = conn_fd(conn);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0)
        fprintf(stderr, "ec2sim: setsockopt(SO_LINGER): %s\n", strerror(errno));
}

/* ---- the EC2 path ---------------------------------------------------------------------- */

struct header_list {
    struct sigv4_header v[MAX_HEADERS];
    size_t n;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    struct header_list *h = cls;
    if (h->n == MAX_HEADERS)
        return MHD_NO;
    h->v[h->n].name = key;
    h->v[h->n].value = value ? value : "";
    h->n++;
    return MHD_YES;
}

static void make_request_id(char out[37])
{
    uint64_t n = atomic_fetch_add(&g_reqno, 1) + 1;
    uint64_t a = n * 0x9e3779b97f4a7c15ULL, b = (n ^ 0xabcdef) * 0xbf58476d1ce4e5b9ULL;
    a ^= a >> 29;
    b ^= b >> 31;
    snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
             (unsigned long long)(b & 0xffffffffffffULL));
}

static enum MHD_Result send_ec2(struct MHD_Connection *conn, struct ec2_response *er,
                                const char *request_id)
{
    if (er->code[0])
        stats_error(er->code);
    char *body = er->body;
    er->body = NULL;
    return send_body(conn, er->status, body, er->len, "text/xml;charset=UTF-8", request_id);
}

/* EC2's answer to an authentication failure. */
static void ec2_auth_error(struct ec2_response *er, enum simauth_fail why,
                           const struct sigv4_verdict *v, const char *request_id)
{
    static const char denied[] = "AWS was not able to validate the provided access credentials";
    switch (why) {
    case SIMAUTH_MISSING: ec2api_error(er, 401, "MissingAuthenticationToken", v->message, request_id); break;
    case SIMAUTH_INCOMPLETE: ec2api_error(er, 400, "IncompleteSignature", v->message, request_id); break;
    case SIMAUTH_SKEW: ec2api_error(er, 400, "RequestExpired", v->message, request_id); break;
    case SIMAUTH_BAD_SIGNATURE:
        ec2api_error(er, 403, "SignatureDoesNotMatch", v->message, request_id);
        break;
    case SIMAUTH_EXPIRED_TOKEN:
        /* What EC2 says to expired temporary credentials. */
        ec2api_error(er, 400, "RequestExpired", "Request has expired.", request_id);
        break;
    case SIMAUTH_UNKNOWN_KEY:
        ec2api_error(er, 401, "AuthFailure", v->message[0] ? v->message : denied, request_id);
        break;
    case SIMAUTH_BAD_TOKEN:
    case SIMAUTH_REGION:
    default: ec2api_error(er, 401, "AuthFailure", denied, request_id); break;
    }
}

static enum MHD_Result handle_api(struct MHD_Connection *conn, struct req *r, const char *method)
{
    char request_id[37];
    make_request_id(request_id);
    struct ec2_response er = {0};
    struct query q = {NULL, 0};
    enum MHD_Result ret;
    const char *qmark = strchr(r->uri, '?');
    const char *qs = qmark ? qmark + 1 : "";

    if (r->too_big) {
        stats_call(NULL);
        ec2api_error(&er, 413, "RequestEntityTooLarge", "The request body is too large.",
                     request_id);
        ret = send_ec2(conn, &er, request_id);
        goto out;
    }
    ebsd_status st = strcmp(method, "POST") == 0 ? query_parse(r->body.data ? r->body.data : "",
                                                               r->body.len, &q)
                                                 : query_parse(qs, strlen(qs), &q);
    if (st != EBSD_OK) {
        stats_call(NULL);
        ec2api_error(&er, 400, "InvalidParameterValue", "Too many parameters.", request_id);
        ret = send_ec2(conn, &er, request_id);
        goto out;
    }
    const char *action = query_get(&q, "Action");
    stats_call(action);
    if (action && !query_get(&q, "NextToken"))
        stats_first_page(action);

    /* Who signed it, for which region and service; STS's unsigned calls skip the check. */
    struct header_list hl = {.n = 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, &hl);
    char *path = qmark ? xstrndup(r->uri, (size_t)(qmark - r->uri)) : xstrdup(r->uri);
    struct sigv4_request sr = {.method = method,
                               .path = path,
                               .query = qs,
                               .headers = hl.v,
                               .nheaders = hl.n,
                               .body = r->body.data,
                               .body_len = r->body.len};
    struct sigv4_verdict verdict;
    struct simauth_identity who;
    bool verify = !g_no_auth && !stsapi_unsigned_action(action);
    enum simauth_fail why = simauth_check(&sr, verify, g_max_skew, &verdict, &who);
    free(path);
    bool sts = stsapi_is_sts(who.service, &q);
    if (why != SIMAUTH_OK) {
        if (sts)
            stsapi_auth_error(&er, why, verdict.message, request_id);
        else
            ec2_auth_error(&er, why, &verdict, request_id);
        ret = send_ec2(conn, &er, request_id);
        goto out;
    }
    if (sts) {
        /* STS answers at once: faults and latency are the EC2 API's. */
        stsapi_handle(&q, &who, request_id, &er);
        ret = send_ec2(conn, &er, request_id);
        goto out;
    }
    if (verify && strcmp(who.service, "ec2") != 0) {
        ec2api_error(&er, 403, "SignatureDoesNotMatch",
                     "Credential should be scoped to correct service: 'ec2'. ", request_id);
        ret = send_ec2(conn, &er, request_id);
        goto out;
    }
    const struct registry_entry *fleet = registry_get(who.account, who.region);
    if (!fleet) {
        ec2api_error(&er, 401, "AuthFailure",
                     "AWS was not able to validate the provided access credentials",
                     request_id);
        ret = send_ec2(conn, &er, request_id);
        goto out;
    }
    stats_target(fleet->account, fleet->region);

    struct fault_plan plan;
    faults_plan(action, fleet->account, fleet->region, &plan);
    if (plan.kind == FAULT_DISABLED) {
        stats_fault(plan.kind);
        ec2api_error(&er, 401, "AuthFailure",
                     "AWS was not able to validate the provided access credentials",
                     request_id);
        ret = send_ec2(conn, &er, request_id);
        goto out;
    }
    if (plan.kind == FAULT_THROTTLE) {
        stats_fault(plan.kind);
        ec2api_error(&er, 503, "RequestLimitExceeded", "Request limit exceeded.", request_id);
        ret = send_ec2(conn, &er, request_id);
        goto out;
    }
    if (plan.delay_ms > 0) {
        struct timespec ts = {plan.delay_ms / 1000, (long)(plan.delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    if (plan.kind != FAULT_NONE)
        stats_fault(plan.kind);
    switch (plan.kind) {
    case FAULT_500:
        ec2api_error(&er, 500, "InternalError",
                     "An internal error has occurred. Please try again later.", request_id);
        ret = send_ec2(conn, &er, request_id);
        goto out;
    case FAULT_503:
        ec2api_error(&er, 503, "Unavailable",
                     "The server is overloaded and can't handle the request.", request_id);
        ret = send_ec2(conn, &er, request_id);
        goto out;
    case FAULT_HANG:
        hang(conn, plan.hang_max_ms);
        ret = MHD_NO;
        goto out;
    case FAULT_RESET:
        arm_reset(conn);
        ret = MHD_NO;
        goto out;
    default:
        break;
    }

    ec2api_handle(fleet->fleet, &q, request_id, fleet->token_key, &er);
    if (plan.kind == FAULT_TRUNCATE) {
        ret = send_truncated(conn, &er, plan.cut, request_id);
    } else if (plan.kind == FAULT_MALFORMED) {
        /* A well-framed 200 whose document breaks off mid-element. */
        size_t keep = (size_t)((double)er.len * plan.cut);
        er.body[keep] = '\0';
        char *bad = xasprintf("%s<<</ item&>\n", er.body);
        free(er.body);
        er.body = bad;
        er.len = strlen(bad);
        er.status = 200;
        er.code[0] = '\0';
        ret = send_ec2(conn, &er, request_id);
    } else {
        ret = send_ec2(conn, &er, request_id);
    }
out:
    ec2_response_free(&er);
    query_free(&q);
    return ret;
}

/* ---- admin ------------------------------------------------------------------------------ */

/* POST of a JSON patch to a settings module (faults, STS): 400 with the module's reason when
 * it refuses, else the new settings. */
static enum MHD_Result patch_settings(struct MHD_Connection *conn, struct req *r,
                                      ebsd_status (*apply)(const cJSON *, char *, size_t),
                                      cJSON *(*show)(void))
{
    if (r->too_big)
        return send_json_error(conn, 413, "body too large");
    cJSON *patch = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    if (!patch)
        return send_json_error(conn, 400, "the body is not valid JSON");
    char err[256];
    ebsd_status st = apply(patch, err, sizeof err);
    cJSON_Delete(patch);
    if (st != EBSD_OK)
        return send_json_error(conn, 400, err);
    return send_json(conn, 200, show());
}

/* The group_by arguments of a truth request (repeatable). */
struct group_keys {
    const char *keys[4];
    size_t n;
    bool bad;
};

static enum MHD_Result collect_group_by(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    (void)kind;
    struct group_keys *g = cls;
    if (strcmp(key, "group_by") != 0)
        return MHD_YES;
    if (g->n == 4 || !value || !fleet_group_key_valid(value))
        g->bad = true;
    else
        g->keys[g->n++] = value;
    return MHD_YES;
}

static enum MHD_Result handle_admin(struct MHD_Connection *conn, struct req *r,
                                    const char *url, const char *method)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if ((strcmp(url, "/_sim/truth") == 0 || strcmp(url, "/_sim/fleet") == 0) && get) {
        /* ?account=ID&region=R select a fleet; absent ones mean the home account/region. */
        const char *acc = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "account");
        const char *reg = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "region");
        if (acc && *acc && !simauth_account_valid(acc))
            return send_json_error(conn, 400, "account must be 12 digits");
        if (reg && *reg && !simauth_region_allowed(reg))
            return send_json_error(conn, 400, "region is malformed or not served (--regions)");
        const struct registry_entry *e = registry_get(acc, reg);
        if (!e)
            return send_json_error(conn, 400, "no fleet for this account and region");
        if (strcmp(url, "/_sim/fleet") == 0)
            return send_json(conn, 200, fleet_to_json(e->fleet));
        struct group_keys gk = {.n = 0};
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_group_by, &gk);
        if (gk.bad)
            return send_json_error(conn, 400, "group_by takes 1 to 4 of volume_type, "
                                              "availability_zone, instance_state, instance_type, "
                                              "instance_tag:NAME, volume_tag:NAME");
        if (gk.n == 0)
            return send_body(conn, 200, xstrndup(e->truth, e->truth_len), e->truth_len,
                             "application/json", NULL);
        cJSON *t = cJSON_Parse(e->truth);
        if (!t)
            abort(); /* our own document: only an allocation failure gets here */
        cJSON *by = cJSON_AddArrayToObject(t, "group_by");
        for (size_t i = 0; i < gk.n; i++)
            cJSON_AddItemToArray(by, cJSON_CreateString(gk.keys[i]));
        cJSON_AddItemToObject(t, "groups", fleet_truth_groups(e->fleet, gk.keys, gk.n));
        return send_json(conn, 200, t);
    }
    if (strcmp(url, "/_sim/clock") == 0 && (get || post)) {
        if (post) {
            cJSON *patch = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
            const cJSON *off = cJSON_GetObjectItemCaseSensitive(patch, "offset_s");
            bool ok = cJSON_IsNumber(off) && off->valuedouble >= -604800 &&
                      off->valuedouble <= 604800;
            if (ok)
                simauth_set_clock_offset((long)off->valuedouble);
            cJSON_Delete(patch);
            if (!ok)
                return send_json_error(conn, 400, "offset_s must be a number in [-604800, 604800]");
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "offset_s", (double)simauth_clock_offset());
        cJSON_AddNumberToObject(o, "now", (double)simauth_now());
        return send_json(conn, 200, o);
    }
    if (strcmp(url, "/_sim/accounts") == 0 && get)
        return send_json(conn, 200, registry_to_json());
    if (strcmp(url, "/_sim/sts") == 0 && get)
        return send_json(conn, 200, stsapi_to_json());
    if (strcmp(url, "/_sim/sts") == 0 && post)
        return patch_settings(conn, r, stsapi_apply_json, stsapi_to_json);
    if (strcmp(url, "/_sim/stats") == 0 && get)
        return send_json(conn, 200, stats_to_json());
    if (strcmp(url, "/_sim/reset") == 0 && post) {
        stats_reset();
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", true);
        return send_json(conn, 200, o);
    }
    if (strcmp(url, "/_sim/faults") == 0 && get)
        return send_json(conn, 200, faults_to_json());
    if (strcmp(url, "/_sim/faults") == 0 && post)
        return patch_settings(conn, r, faults_apply_json, faults_to_json);
    if (strcmp(url, "/_sim/health") == 0 && get) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", true);
        return send_json(conn, 200, o);
    }
    return send_json_error(conn, 404, "no such admin endpoint");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct req *r = *con_cls;
    if (!r)
        return MHD_NO; /* the URI callback always sets it */
    if (!r->started) {
        r->started = true;
        if (!r->admin)
            stats_begin();
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->too_big && buf_append(&r->body, upload_data, *upload_data_size) != EBSD_OK)
            r->too_big = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->admin)
        return handle_admin(conn, r, url, method);
    return handle_api(conn, r, method);
}

/* ---- command line ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fputs("usage: ec2sim [--listen HOST:PORT] [--instances N] [--seed S] [--fleet FILE]\n"
          "              [--multi-attach-max N] [--tag-values N]\n"
          "              [--latency-ms MS] [--jitter-ms MS] [--action-latency ACTION=MS[:JITTER]]\n"
          "              [--rate-limit BUCKET:REFILL_PER_SEC] [--p-500 P] [--p-503 P]\n"
          "              [--p-hang P] [--p-truncate P] [--p-malformed P] [--p-reset P]\n"
          "              [--hang-max-ms MS] [--fault-seed S]\n"
          "              [--credentials AKID:SECRET[:ACCOUNT]]... [--regions R1,R2,...]\n"
          "              [--deny-role ARN|ACCOUNT]... [--role-external-id ARN=ID]...\n"
          "              [--sts-max-duration SECONDS] [--clock-offset SECONDS]\n"
          "              [--accounts ID1,ID2,...]\n"
          "              [--max-skew SECONDS] [--no-auth] [--no-wildcards]\n"
          "              [--tls-cert PEM --tls-key PEM]\n"
          "See docs/ec2sim.md.\n",
          out);
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

static bool parse_listen(const char *s, struct sockaddr_in *out)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return false;
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl == 0 || hl >= sizeof host)
        return false;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    long port;
    if (!parse_long(colon + 1, 0, 65535, &port))
        return false;
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &out->sin_addr) == 1;
}

static bool parse_args(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof *o);
    o->instances = 100;
    o->seed = 1;
    o->multi_attach_max = 2;
    o->max_skew = 300;
    o->faults = cJSON_CreateObject();
    o->sts = cJSON_CreateObject();
    parse_listen("127.0.0.1:0", &o->addr);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        double d;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--no-auth") == 0) {
            o->no_auth = true;
            continue;
        } else if (strcmp(a, "--no-wildcards") == 0) {
            o->no_wildcards = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "ec2sim: %s needs a value\n", a);
            return false;
        }
        i++;
        if (strcmp(a, "--listen") == 0) {
            if (!parse_listen(v, &o->addr))
                goto bad;
        } else if (strcmp(a, "--instances") == 0) {
            if (!parse_long(v, 0, FLEET_MAX_INSTANCES, &o->instances))
                goto bad;
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_long(v, 0, LONG_MAX, &l))
                goto bad;
            o->seed = (uint64_t)l;
        } else if (strcmp(a, "--tag-values") == 0) {
            if (!parse_long(v, 1, 100000, &o->tag_values))
                goto bad;
        } else if (strcmp(a, "--multi-attach-max") == 0) {
            if (!parse_long(v, 2, FLEET_MAX_ATTACH, &o->multi_attach_max))
                goto bad;
        } else if (strcmp(a, "--fleet") == 0) {
            o->fleet_file = v;
        } else if (strcmp(a, "--tls-cert") == 0) {
            o->tls_cert = v;
        } else if (strcmp(a, "--tls-key") == 0) {
            o->tls_key = v;
        } else if (strcmp(a, "--credentials") == 0) {
            if (simauth_add(v) != EBSD_OK)
                goto bad;
        } else if (strcmp(a, "--regions") == 0) {
            if (simauth_set_regions(v) != EBSD_OK)
                goto bad;
            o->regions = v;
        } else if (strcmp(a, "--accounts") == 0) {
            o->accounts = v;
        } else if (strcmp(a, "--deny-role") == 0) {
            cJSON *deny = cJSON_GetObjectItemCaseSensitive(o->sts, "deny");
            if (!deny)
                deny = cJSON_AddArrayToObject(o->sts, "deny");
            cJSON_AddItemToArray(deny, cJSON_CreateString(v));
        } else if (strcmp(a, "--role-external-id") == 0) {
            const char *eq = strrchr(v, '=');
            if (!eq || eq == v || !eq[1])
                goto bad;
            cJSON *ext = cJSON_GetObjectItemCaseSensitive(o->sts, "external_ids");
            if (!ext)
                ext = cJSON_AddObjectToObject(o->sts, "external_ids");
            char *role = xstrndup(v, (size_t)(eq - v));
            cJSON_AddStringToObject(ext, role, eq + 1);
            free(role);
        } else if (strcmp(a, "--sts-max-duration") == 0) {
            if (!parse_long(v, 1, 43200, &l))
                goto bad;
            cJSON_AddNumberToObject(o->sts, "max_duration_s", (double)l);
        } else if (strcmp(a, "--clock-offset") == 0) {
            if (!parse_long(v, -604800, 604800, &l))
                goto bad;
            simauth_set_clock_offset(l);
        } else if (strcmp(a, "--max-skew") == 0) {
            if (!parse_long(v, 1, 86400 * 7, &l))
                goto bad;
            o->max_skew = (int)l;
        } else if (strcmp(a, "--latency-ms") == 0 || strcmp(a, "--jitter-ms") == 0 ||
                   strcmp(a, "--hang-max-ms") == 0) {
            if (!parse_long(v, 0, 600000, &l))
                goto bad;
            {
                char key[32];
                snprintf(key, sizeof key, "%s", a + 2);
                for (char *p = key; *p; p++)
                    if (*p == '-')
                        *p = '_';
                cJSON_AddNumberToObject(o->faults, key, (double)l);
            }
        } else if (strcmp(a, "--fault-seed") == 0) {
            if (!parse_long(v, 0, LONG_MAX, &l))
                goto bad;
            cJSON_AddNumberToObject(o->faults, "seed", (double)l);
        } else if (strncmp(a, "--p-", 4) == 0) {
            char key[32];
            snprintf(key, sizeof key, "p_%s", a + 4);
            if (!parse_double(v, 0, 1, &d))
                goto bad;
            cJSON_AddNumberToObject(o->faults, key, d);
        } else if (strcmp(a, "--rate-limit") == 0) {
            char *end;
            errno = 0;
            double bucket = strtod(v, &end);
            if (errno || end == v || *end != ':' || !parse_double(end + 1, 0, 1e9, &d) ||
                !(bucket >= 0))
                goto bad;
            cJSON_AddNumberToObject(o->faults, "rate_bucket", bucket);
            cJSON_AddNumberToObject(o->faults, "rate_refill", d);
        } else if (strcmp(a, "--action-latency") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v)
                goto bad;
            char *end;
            errno = 0;
            long ms = strtol(eq + 1, &end, 10);
            long jit = 0;
            if (errno || end == eq + 1 || ms < 0 || ms > 600000)
                goto bad;
            if (*end == ':' && !parse_long(end + 1, 0, 600000, &jit))
                goto bad;
            if (*end != ':' && *end)
                goto bad;
            cJSON *lat = cJSON_GetObjectItemCaseSensitive(o->faults, "latency");
            if (!lat)
                lat = cJSON_AddObjectToObject(o->faults, "latency");
            char *name = xstrndup(v, (size_t)(eq - v));
            cJSON *e = cJSON_AddObjectToObject(lat, name);
            free(name);
            cJSON_AddNumberToObject(e, "ms", (double)ms);
            cJSON_AddNumberToObject(e, "jitter_ms", (double)jit);
        } else {
            fprintf(stderr, "ec2sim: unknown option %s\n", a);
            usage(stderr);
            return false;
        }
        continue;
    bad:
        fprintf(stderr, "ec2sim: bad value for %s: '%s'\n", a, v);
        return false;
    }
    return true;
}

/* Builds the fleets of every account of a comma-separated list in every region of --regions
 * (or the home region), so that first calls do not pay for generating them. False (with a
 * message) for a malformed list. */
static bool prebuild(const char *accounts, const char *regions)
{
    const char *rlist = regions ? regions : registry_home_region();
    for (const char *a = accounts; *a;) {
        size_t al = strcspn(a, ",");
        char acc[SIMAUTH_ACCOUNT_LEN] = "";
        if (al < sizeof acc) {
            memcpy(acc, a, al);
            acc[al] = '\0';
        }
        if (!simauth_account_valid(acc)) {
            fprintf(stderr, "ec2sim: --accounts: '%.*s' is not 12 digits\n", (int)al, a);
            return false;
        }
        for (const char *r = rlist; *r;) {
            size_t rl = strcspn(r, ",");
            char reg[SIMAUTH_REGION_LEN];
            snprintf(reg, sizeof reg, "%.*s", (int)rl, r);
            if (!registry_get(acc, reg)) {
                fprintf(stderr, "ec2sim: cannot build the fleet of %s/%s\n", acc, reg);
                return false;
            }
            r += rl + (r[rl] == ',');
        }
        a += al + (a[al] == ',');
    }
    return true;
}

static char *read_pem(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "ec2sim: fopen %s: %s\n", path, strerror(errno));
        return NULL;
    }
    struct buf b;
    buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    ebsd_status st = EBSD_OK;
    while (st == EBSD_OK && (n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        st = buf_append(&b, chunk, n);
    fclose(fp);
    if (st != EBSD_OK || b.len == 0) {
        fprintf(stderr, "ec2sim: %s: empty or larger than 1 MiB\n", path);
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

int main(int argc, char **argv)
{
    struct options o;
    int rc = 2;
    struct MHD_Daemon *d = NULL;
    char *cert = NULL, *key = NULL;
    if (!parse_args(argc, argv, &o))
        goto out;
    /* A page of answer is megabytes built in a growing buffer: kept on the heap and reused
     * by the next answer, not mapped, faulted in and unmapped for each one (the simulator
     * shares the benchmark machine's CPU with the ebsd it times) */
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
    g_no_auth = o.no_auth;
    ec2api_set_literal_filters(o.no_wildcards);
    g_max_skew = o.max_skew;
    struct fleet_params fp;
    fleet_params_default(&fp);
    fp.instances = (size_t)o.instances;
    fp.seed = o.seed;
    fp.multi_attach_max = (int)o.multi_attach_max;
    fp.tag_values = (unsigned)o.tag_values;
    struct fleet *file = NULL;
    if (o.fleet_file) {
        char err[512];
        if (fleet_load_file(o.fleet_file, &file, err, sizeof err) != EBSD_OK) {
            fprintf(stderr, "ec2sim: %s\n", err);
            goto out;
        }
    }
    registry_init(&fp, file, SIMAUTH_DEFAULT_ACCOUNT);
    /* The home fleet is built now: a bad file or size shows before the URL does. */
    const struct registry_entry *home = registry_get(NULL, NULL);
    if (!home) {
        fprintf(stderr, "ec2sim: cannot build the fleet of %s/%s (%ld instances)\n",
                registry_home_account(), registry_home_region(), o.instances);
        goto out;
    }
    if (o.accounts && !prebuild(o.accounts, o.regions))
        goto out;
    char err[256];
    if (stsapi_apply_json(o.sts, err, sizeof err) != EBSD_OK) {
        fprintf(stderr, "ec2sim: %s\n", err);
        goto out;
    }

    faults_init(o.seed);
    if (faults_apply_json(o.faults, err, sizeof err) != EBSD_OK) {
        fprintf(stderr, "ec2sim: %s\n", err);
        goto out;
    }

    /* Signals: the main thread waits for them; every server thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL; /* no MHD_USE_ERROR_LOG: injected faults would flood stderr */
    bool tls = o.tls_cert || o.tls_key;
    if (tls) {
        if (!o.tls_cert || !o.tls_key) {
            fprintf(stderr, "ec2sim: --tls-cert and --tls-key go together\n");
            goto out;
        }
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            fprintf(stderr, "ec2sim: this libmicrohttpd has no TLS support\n");
            goto out;
        }
        if (!(cert = read_pem(o.tls_cert)) || !(key = read_pem(o.tls_key)))
            goto out;
        flags |= MHD_USE_TLS;
    }
    if (tls)
        d = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &o.addr,
                             MHD_OPTION_URI_LOG_CALLBACK, uri_logger, NULL,
                             MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
                             MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_CONNECTION_LIMIT,
                             4000u, MHD_OPTION_CONNECTION_TIMEOUT, 300u,
                             MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
                             MHD_OPTION_END);
    else
        d = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &o.addr,
                             MHD_OPTION_URI_LOG_CALLBACK, uri_logger, NULL,
                             MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
                             MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_CONNECTION_LIMIT,
                             4000u, MHD_OPTION_CONNECTION_TIMEOUT, 300u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "ec2sim: MHD_start_daemon failed (address in use, bad TLS files?)\n");
        goto out;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &o.addr.sin_addr, ip, sizeof ip);
    printf("%s://%s:%u\n", tls ? "https" : "http", ip, di ? (unsigned)di->port : 0u);
    fflush(stdout);
    fprintf(stderr,
            "ec2sim: %zu instances, %zu reservations, %zu volumes%s; auth %s\n",
            home->fleet->ninstances, home->fleet->nreservations, home->fleet->nvolumes,
            o.fleet_file ? " (from file)" : "", g_no_auth ? "off" : "SigV4");

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    atomic_store(&g_stopping, true);
    rc = 0;
out:
    if (d)
        MHD_stop_daemon(d);
    cJSON_Delete(o.faults);
    free(cert);
    free(key);
    cJSON_Delete(o.sts);
    registry_free();
    return rc;
}
