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
#include "ec2.h"
#include "credsvc.h"
#include "log.h"
#include "mem.h"
#include "route.h"
#include "skew.h"
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
    if (auth && (route == ROUTE_TOTAL || route == ROUTE_INSTANCE || route == ROUTE_METRICS ||
                 route == ROUTE_ACCOUNTS) &&
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
