/* accounts.c - GET /accounts (see accounts.h). */
#include "accounts.h"

#include <cjson/cJSON.h>

#include "clock.h"
#include "config.h"
#include "credsvc.h"

static void add_time(cJSON *o, const char *key, int64_t wall_ms)
{
    char ts[40];
    if (wall_ms > 0)
        cJSON_AddStringToObject(o, key, clock_format_rfc3339(wall_ms, ts, sizeof ts));
    else
        cJSON_AddNullToObject(o, key);
}

void accounts_handle(struct request *r)
{
    const struct config *cfg = server_config(r->srv);
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "accounts");
    for (size_t i = 0; i < credsvc_count(); i++) {
        struct credsvc_account a;
        if (!credsvc_account_at(i, &a))
            break;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", a.name);
        cJSON_AddStringToObject(e, "account_id", a.account_id);
        if (a.role_arn[0])
            cJSON_AddStringToObject(e, "role_arn", a.role_arn);
        cJSON *regions = cJSON_AddArrayToObject(e, "regions");
        const struct config_account *ca = config_account_find(cfg, a.name);
        for (size_t j = 0; j < cfg->nregions; j++)
            if (config_account_region_allowed(cfg, ca, cfg->regions[j]))
                cJSON_AddItemToArray(regions, cJSON_CreateString(cfg->regions[j]));
        cJSON *c = cJSON_AddObjectToObject(e, "credentials");
        cJSON_AddBoolToObject(c, "ready", a.ready);
        cJSON_AddStringToObject(c, "source", a.source);
        add_time(c, "expires_at", a.expires_at_wall_ms);
        if (a.expires_in_s >= 0)
            cJSON_AddNumberToObject(c, "expires_in_s", (double)a.expires_in_s);
        else
            cJSON_AddNullToObject(c, "expires_in_s");
        cJSON *f = cJSON_AddObjectToObject(e, "last_fetch");
        cJSON_AddStringToObject(f, "outcome", a.last_outcome[0] ? a.last_outcome : "none");
        if (a.last_message[0])
            cJSON_AddStringToObject(f, "message", a.last_message);
        add_time(f, "at", a.last_fetch_wall_ms);
        cJSON_AddNumberToObject(f, "successes", (double)a.refreshes);
        cJSON_AddNumberToObject(f, "failures", (double)a.failures);
        cJSON_AddItemToArray(list, e);
    }
    request_add_header(r, "Cache-Control", "no-store");
    request_json(r, 200, o);
}
