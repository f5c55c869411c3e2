/* api.c - ebsd's routes (see api.h): request validation, the volume endpoints on top of the
 * fan-out, and the small endpoints (health, readiness, spec, metrics). */
#include "api.h"

#include "accounts.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "auth.h"
#include "clock.h"
#include "cors.h"
#include "ec2.h"
#include "credsvc.h"
#include "log.h"
#include "mem.h"
#include "redisshare.h"
#include "page.h"
#include "route.h"
#include "skew.h"
#include "storage.h"
#include "telemetry.h"
#include "volumes.h"

extern const unsigned char openapi_yaml[];
extern const unsigned long openapi_yaml_len;

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
    bool creds = credsvc_status(&source, &expires_in);
    bool draining = server_draining(r->srv);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", draining ? "draining" : creds ? "ready" : "not_ready");
    cJSON_AddStringToObject(o, "credentials", source);
    if (expires_in >= 0)
        cJSON_AddNumberToObject(o, "credentials_expire_in_s", (double)expires_in);
    cJSON_AddStringToObject(o, "region", server_config(r->srv)->regions[0]);
    /* Redis is shared state, not a dependency: down is reported, still ready */
    struct redisshare_stats rs;
    redisshare_get_stats(&rs);
    if (rs.enabled)
        cJSON_AddStringToObject(o, "redis", rs.up && rs.sub_up ? "up" : "down");
    /* A clock beyond the signature window works only through the learned offset: say so
     * (still ready: every call is signed with the corrected time). */
    if (skew_offset_known())
        cJSON_AddNumberToObject(o, "clock_offset_s", (double)skew_offset_s());
    if (skew_beyond_window())
        cJSON_AddStringToObject(o, "clock_skew",
                                "this host's clock is off by more than the 5-minute signature "
                                "window; AWS requests are signed with the offset learned from "
                                "AWS's Date header: fix the clock (NTP)");
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
    struct buf b;
    buf_init(&b, 4u << 20);
    if (telemetry_render(&b) != EBSD_OK) {
        buf_free(&b);
        request_error(r, 500, "InternalError", "metrics larger than 4 MiB");
        return;
    }
    size_t len = b.len;
    request_respond(r, 200, buf_steal(&b), len, "text/plain; version=0.0.4; charset=utf-8");
}

/* GET /: the latest cached answer of each configured target (never a fetch), as the page
 * for browsers (Accept: text/html) and as JSON (page_input_from_json's shape) otherwise. */
static void route_home(struct request *r)
{
    const struct config *cfg = server_config(r->srv);
    cJSON *o = cJSON_CreateObject();
    char now[40];
    int64_t wall = clock_wall_ms();
    cJSON_AddStringToObject(o, "generated_at", clock_format_rfc3339(wall, now, sizeof now));
    cJSON_AddNumberToObject(o, "refresh_s", PAGE_DEFAULT_REFRESH_S);
    cJSON *targets = cJSON_AddArrayToObject(o, "targets");
    struct target t;
    struct target_cursor c = {0};
    while (target_next(cfg, &c, &t)) {
        struct cache_view v;
        bool have = volumes_latest(&t, &v);
        page_target_from_answer(targets, t.account, t.region, have ? v.body : NULL,
                                have ? v.len : 0,
                                have ? (double)(wall - v.fetched_at_wall_ms) / 1000.0 : -1);
        /* storage by volume type and unattached storage, as the gauges have them */
        cJSON *last = cJSON_GetArrayItem(targets, cJSON_GetArraySize(targets) - 1);
        if (last)
            storage_page_fill(&t, last);
    }
    request_vary(r, "Accept");
    request_add_header(r, "Cache-Control", "no-cache");
    if (!page_wants_html(request_header(r, "Accept"))) {
        request_json(r, 200, o);
        return;
    }
    struct page_input in;
    struct buf html;
    char why[160];
    ebsd_status st = page_input_from_json(o, &in, why, sizeof why);
    cJSON_Delete(o);
    if (st != EBSD_OK) {
        request_error(r, 500, "InternalError", "page input: %s", why);
        return;
    }
    st = page_render(&in, &html);
    page_input_free(&in);
    if (st != EBSD_OK) {
        buf_free(&html);
        request_error(r, 500, "InternalError", "the page is larger than its cap");
        return;
    }
    request_add_header(r, "Content-Security-Policy", page_csp());
    request_add_header(r, "X-Content-Type-Options", "nosniff");
    size_t len = html.len;
    request_respond(r, 200, buf_steal(&html), len, PAGE_CONTENT_TYPE);
}

/* CORS (server.cors_origins) for the data answers: their headers, or a preflight's answer.
 * Returns true if r was answered (a preflight). */
static bool cors(struct request *r, bool get)
{
    const struct config *cfg = server_config(r->srv);
    if (!cfg->ncors_origins)
        return false;
    const char *const *origins = (const char *const *)cfg->cors_origins;
    const char *origin = request_header(r, "Origin");
    struct cors_header h[CORS_MAX_HEADERS];
    size_t n = 0;
    int status = 0;
    if (get)
        n = cors_response_headers(origins, cfg->ncors_origins, origin, h);
    else if (strcmp(r->method, "OPTIONS") == 0)
        status = cors_preflight(origins, cfg->ncors_origins, origin,
                                request_header(r, "Access-Control-Request-Method"), h, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(h[i].name, "Vary") == 0)
            request_vary(r, h[i].value);
        else
            request_add_header(r, h[i].name, h[i].value);
    }
    if (status == 204)
        request_respond(r, 204, xstrdup(""), 0, "text/plain");
    else if (status)
        request_error(r, (unsigned)status, "CorsPreflightRejected",
                      "origin or method not allowed for cross-origin requests");
    return status != 0;
}

/* ---------------------------------------------------------------- routing */

void api_dispatch(struct request *r)
{
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    char instance_id[ROUTE_ID_MAX];
    enum route route = route_match(r->path, instance_id, sizeof instance_id);
    if (route == ROUTE_NONE) {
        request_error(r, 404, "NotFound", "no such path; see /openapi.yaml");
        return;
    }
    bool data = route == ROUTE_TOTAL || route == ROUTE_INSTANCE || route == ROUTE_UNATTACHED ||
                route == ROUTE_HOME;
    if (data && cors(r, get))
        return;
    if (!get) {
        request_add_header(r, "Allow", "GET, HEAD");
        request_error(r, 405, "MethodNotAllowed", "method %s is not allowed here; use GET or HEAD",
                      r->method);
        return;
    }
    /* Health, readiness and the spec stay open for probes; data and metrics need a token
     * when auth is on. Checked before the instance id, so a caller without a token learns
     * nothing from the answers. */
    const struct auth *auth = server_auth(r->srv);
    if (auth && (data || route == ROUTE_METRICS || route == ROUTE_ACCOUNTS) &&
        !auth_check(auth, request_header(r, "Authorization"))) {
        request_add_header(r, "WWW-Authenticate", "Bearer realm=\"ebsd\"");
        request_error(r, 401, "Unauthorized",
                      "this endpoint needs an Authorization: Bearer token");
        return;
    }
    switch (route) {
    case ROUTE_HEALTH: route_healthz(r); break;
    case ROUTE_READY: route_readyz(r); break;
    case ROUTE_SPEC: route_openapi(r); break;
    case ROUTE_METRICS: route_metrics(r); break;
    case ROUTE_TOTAL: volumes_handle(r, NULL); break;
    case ROUTE_HOME: route_home(r); break;
    case ROUTE_UNATTACHED: volumes_handle_unattached(r); break;
    case ROUTE_ACCOUNTS: accounts_handle(r); break;
    case ROUTE_INSTANCE:
        if (!ec2_instance_id_valid(instance_id)) {
            request_error(r, 400, "InvalidInstanceID.Malformed",
                          "'%.40s' is not an instance id (i- then 8 or 17 lowercase hex digits)",
                          instance_id);
            return;
        }
        volumes_handle(r, instance_id);
        break;
    default: break;
    }
}
