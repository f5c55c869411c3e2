/* api.c - ebsd's routes (see api.h): request validation, the volume endpoints on top of the
 * fan-out, and the small endpoints (health, readiness, spec, metrics). */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "ec2.h"
#include "fanout.h"
#include "log.h"
#include "mem.h"

extern const unsigned char openapi_yaml[];
extern const unsigned long openapi_yaml_len;

static struct server *g_srv;

void api_configure(struct server *s, const struct config *cfg)
{
    g_srv = s;
    fanout_init(server_loop(s), cfg);
}

void api_shutdown(void) { fanout_shutdown(); }

/* ---------------------------------------------------------------- small endpoints */

static void route_healthz(struct request *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    request_json(r, 200, o);
}

static void route_readyz(struct request *r)
{
    const char *source;
    int64_t expires_in;
    bool creds = fanout_creds_ready(&source, &expires_in);
    bool draining = server_draining(r->srv);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", draining ? "draining" : creds ? "ready" : "not_ready");
    cJSON_AddStringToObject(o, "credentials", source);
    if (expires_in >= 0)
        cJSON_AddNumberToObject(o, "credentials_expire_in_s", (double)expires_in);
    cJSON_AddStringToObject(o, "region", server_config(r->srv)->regions[0]);
    request_json(r, draining || !creds ? 503 : 200, o);
}

static void route_openapi(struct request *r)
{
    char *body = xmalloc(openapi_yaml_len + 1);
    memcpy(body, openapi_yaml, openapi_yaml_len);
    request_respond(r, 200, body, openapi_yaml_len, "application/yaml");
}

static void route_metrics(struct request *r)
{
    const struct fanout_stats *fs = fanout_stats();
    char *body = xasprintf("# HELP ebsd_children_forked_total Worker processes forked.\n"
                           "# TYPE ebsd_children_forked_total counter\n"
                           "ebsd_children_forked_total %llu\n",
                           fs->forked);
    request_respond(r, 200, body, strlen(body), "text/plain; version=0.0.4; charset=utf-8");
}

/* ---------------------------------------------------------------- volume endpoints */

struct params {
    const char *region, *detail, *mode, *timeout_ms;
    char bad[128];
    int repeated;
};

static int collect_param(void *ctx, const char *k, const char *v)
{
    struct params *p = ctx;
    const char **slot = NULL;
    if (strcmp(k, "region") == 0)
        slot = &p->region;
    else if (strcmp(k, "detail") == 0)
        slot = &p->detail;
    else if (strcmp(k, "mode") == 0)
        slot = &p->mode;
    else if (strcmp(k, "timeout_ms") == 0)
        slot = &p->timeout_ms;
    if (!slot) {
        snprintf(p->bad, sizeof p->bad, "unknown query parameter '%.64s'", k);
        return 1;
    }
    if (*slot) {
        snprintf(p->bad, sizeof p->bad, "query parameter '%s' given more than once", k);
        return 1;
    }
    *slot = v;
    return 0;
}

struct pending {
    struct request *r;
    struct fanout_job *job;
    bool detail;
    double timeout_s;
};

static void pending_cancel(struct request *r)
{
    struct pending *p = r->work;
    if (!p)
        return;
    fanout_cancel(p->job);
    free(p);
    r->work = NULL;
}

static void add_source(cJSON *o, const struct fanout_result *res, int64_t duration_ms,
                       const char *cache)
{
    char ts[40];
    cJSON *src = cJSON_AddObjectToObject(o, "source");
    cJSON_AddStringToObject(src, "fetched_at", clock_format_rfc3339(res->fetched_at, ts, sizeof ts));
    cJSON_AddNumberToObject(src, "age_s", (double)((clock_wall_ms() - res->fetched_at) / 1000));
    cJSON_AddStringToObject(src, "cache", cache);
    cJSON_AddNumberToObject(src, "ec2_calls", res->ec2_calls);
    cJSON_AddNumberToObject(src, "children", res->children);
    cJSON_AddNumberToObject(src, "duration_ms", (double)duration_ms);
}

static void on_fetched(void *arg, struct fanout_result *res)
{
    struct pending *p = arg;
    struct request *r = p->r;
    r->work = NULL;
    r->cancel = NULL;
    r->report.children = res->children;
    r->report.ec2_calls = res->ec2_calls;
    r->report.max_rss_kb = res->max_rss_kb;
    r->report.cache = "miss";
    if (res->http_status == 200) {
        cJSON *o = res->data;
        if (!p->detail)
            cJSON_DeleteItemFromObjectCaseSensitive(o, "instances");
        add_source(o, res, (clock_now_us() - r->start_us) / 1000, "miss");
        request_json(r, 200, o);
    } else if (res->http_status == 504) {
        request_error(r, 504, "TaskTimedOut", "Task timed out after %.2f seconds", p->timeout_s);
    } else {
        if (res->retry_after_s) {
            char ra[16];
            snprintf(ra, sizeof ra, "%u", res->retry_after_s);
            request_add_header(r, "Retry-After", ra);
        }
        request_error(r, res->http_status, res->code, "%s", res->message);
    }
    free(p);
    request_resume(r);
}

static bool parse_timeout(struct request *r, const struct config *cfg, const char *s,
                          const struct config_route *route, int64_t *timeout_ms)
{
    if (!s) {
        *timeout_ms = route->timeout_ms;
        return true;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > (long)cfg->max_timeout_ms) {
        request_error(r, 400, "InvalidParameter",
                      "timeout_ms must be a whole number from 1 to %u", cfg->max_timeout_ms);
        return false;
    }
    *timeout_ms = v;
    return true;
}

static void start_fetch(struct request *r, struct fanout_query *q, int64_t timeout_ms,
                        bool detail)
{
    struct pending *p = xcalloc(1, sizeof *p);
    p->r = r;
    p->detail = detail;
    p->timeout_s = (double)timeout_ms / 1000.0;
    r->deadline = clock_now_ms() + timeout_ms;
    r->work = p;
    r->cancel = pending_cancel;
    r->report.enabled = true;
    r->report.memory_mb = q->memory_mb;
    p->job = fanout_start(q, r->deadline, on_fetched, p);
}

static void route_volumes(struct request *r, const char *instance_id)
{
    const struct config *cfg = server_config(r->srv);
    struct params prm = {0};
    if (request_query_each(r, collect_param, &prm)) {
        request_error(r, 400, "InvalidParameter", "%s", prm.bad);
        return;
    }
    struct fanout_query q = {0};
    const char *region = prm.region ? prm.region : cfg->regions[0];
    if (!config_region_allowed(cfg, region)) {
        request_error(r, 400, "InvalidRegion", "region '%.64s' is not one this service is "
                      "configured for", region);
        return;
    }
    snprintf(q.region, sizeof q.region, "%s", region);
    bool detail = false;
    if (instance_id) {
        if (prm.detail || prm.mode) {
            request_error(r, 400, "InvalidParameter", "'%s' applies to /volumes/total only",
                          prm.detail ? "detail" : "mode");
            return;
        }
        q.kind = FANOUT_INSTANCE;
        snprintf(q.instance_id, sizeof q.instance_id, "%s", instance_id);
    } else {
        q.kind = FANOUT_TOTAL;
        if (prm.detail) {
            if (strcmp(prm.detail, "instances") != 0) {
                request_error(r, 400, "InvalidParameter", "detail takes the value 'instances'");
                return;
            }
            detail = true;
        }
        if (prm.mode) {
            if (strcmp(prm.mode, "sequential") == 0)
                q.sequential = true;
            else if (strcmp(prm.mode, "parallel") != 0) {
                request_error(r, 400, "InvalidParameter",
                              "mode takes the value 'parallel' or 'sequential'");
                return;
            }
        }
    }
    const struct config_route *route = instance_id ? &cfg->instance_volumes : &cfg->volumes_total;
    int64_t timeout_ms;
    if (!parse_timeout(r, cfg, prm.timeout_ms, route, &timeout_ms))
        return;
    q.memory_mb = route->memory_mb;
    start_fetch(r, &q, timeout_ms, detail);
}

/* ---------------------------------------------------------------- routing */

void api_dispatch(struct request *r)
{
    const char *path = r->path;
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    const char *instance_id = NULL;
    char idbuf[64];
    enum { R_NONE, R_HEALTH, R_READY, R_SPEC, R_METRICS, R_TOTAL, R_INSTANCE } route = R_NONE;

    if (strcmp(path, "/healthz") == 0)
        route = R_HEALTH;
    else if (strcmp(path, "/readyz") == 0)
        route = R_READY;
    else if (strcmp(path, "/openapi.yaml") == 0)
        route = R_SPEC;
    else if (strcmp(path, "/metrics") == 0)
        route = R_METRICS;
    else if (strcmp(path, "/volumes/total") == 0)
        route = R_TOTAL;
    else if (strncmp(path, "/instances/", 11) == 0) {
        const char *id = path + 11;
        const char *slash = strchr(id, '/');
        if (slash && strcmp(slash, "/volumes") == 0 && (size_t)(slash - id) < sizeof idbuf) {
            memcpy(idbuf, id, (size_t)(slash - id));
            idbuf[slash - id] = '\0';
            instance_id = idbuf;
            route = R_INSTANCE;
        }
    }
    if (route == R_NONE) {
        request_error(r, 404, "NotFound", "no such path; see /openapi.yaml");
        return;
    }
    if (!get) {
        request_add_header(r, "Allow", "GET, HEAD");
        request_error(r, 405, "MethodNotAllowed", "method %s is not allowed here; use GET or HEAD",
                      r->method);
        return;
    }
    switch (route) {
    case R_HEALTH: route_healthz(r); break;
    case R_READY: route_readyz(r); break;
    case R_SPEC: route_openapi(r); break;
    case R_METRICS: route_metrics(r); break;
    case R_TOTAL: route_volumes(r, NULL); break;
    case R_INSTANCE:
        if (!ec2_instance_id_valid(instance_id)) {
            request_error(r, 400, "InvalidInstanceID.Malformed",
                          "'%.40s' is not an instance id (i- then 8 or 17 lowercase hex digits)",
                          instance_id);
            return;
        }
        route_volumes(r, instance_id);
        break;
    default: break;
    }
}
