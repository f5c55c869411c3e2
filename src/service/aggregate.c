/* aggregate.c - many targets in one answer (see aggregate.h). */
#include "aggregate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "answer.h"
#include "clock.h"
#include "credsvc.h"
#include "mem.h"
#include "volumes.h"

struct agg;

/* One target of the aggregate and what it answered. */
struct agg_target {
    struct agg *agg;
    struct target target;
    struct volumes_sub *sub;  /* pending fetch, or NULL */
    bool done;
    cJSON *data;              /* the target's answer (200), or NULL */
    char code[64];            /* its error, when data is NULL */
    char message[256];
    const char *label;        /* hit, miss, coalesced, stale */
    char stale_reason[64];
    int64_t fetched_at_wall_ms;
    unsigned ec2_calls, children;
};

struct agg {
    struct request *r;
    struct agg_target *t;
    size_t n, pending;
    bool dispatching, suspended, detail;
    struct engine_query q;    /* the per-target query (its target aside): kind, keys, limit */
    struct loop_timer *timer;
    struct loop *loop;
    char account[32], region[32]; /* as asked: a name or "all" */
};

static void agg_free(struct agg *a)
{
    if (a->timer)
        loop_timer_stop(a->loop, a->timer);
    for (size_t i = 0; i < a->n; i++)
        cJSON_Delete(a->t[i].data);
    free(a->t);
    free(a);
}

static void add_source(cJSON *o, const struct agg_target *t)
{
    cJSON *s = cJSON_AddObjectToObject(o, "source");
    char ts[40];
    cJSON_AddStringToObject(s, "fetched_at",
                            clock_format_rfc3339(t->fetched_at_wall_ms, ts, sizeof ts));
    int64_t age = (clock_wall_ms() - t->fetched_at_wall_ms) / 1000;
    cJSON_AddNumberToObject(s, "age_s", (double)(age < 0 ? 0 : age));
    cJSON_AddStringToObject(s, "cache", t->label ? t->label : "miss");
    if (t->stale_reason[0])
        cJSON_AddStringToObject(s, "stale_reason", t->stale_reason);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The answer's sums over the targets that answered (parts): the totals, with their
 * breakdown when grouped and their instances with detail=instances; or the unattached
 * volumes. */
static void add_sums(cJSON *o, const struct agg *a, const struct answer_part *parts,
                     size_t nparts)
{
    if (a->q.kind == ENGINE_UNATTACHED) {
        answer_unattached_merge(o, parts, nparts, a->q.limit);
        return;
    }
    static const char *const counts[] = {"total_gib", "instance_count", "volume_count"};
    for (size_t k = 0; k < 3; k++) {
        double sum = 0;
        for (size_t i = 0; i < nparts; i++)
            sum += num(parts[i].data, counts[k]);
        cJSON_AddNumberToObject(o, counts[k], sum);
    }
}

/* What comes after complete and targets: the instances (detail=instances), each with its
 * account and region, and the breakdown summed by key. */
static void add_lists(cJSON *o, const struct agg *a, const struct answer_part *parts,
                      size_t nparts)
{
    if (a->detail) {
        cJSON *all = cJSON_AddArrayToObject(o, "instances");
        for (size_t i = 0; i < nparts; i++) {
            const cJSON *it;
            cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(parts[i].data, "instances"))
            {
                cJSON *c = cJSON_Duplicate(it, 1);
                cJSON_AddStringToObject(c, "account", parts[i].account);
                cJSON_AddStringToObject(c, "region", parts[i].region);
                cJSON_AddItemToArray(all, c);
            }
        }
    }
    if (a->q.kind == ENGINE_TOTAL && a->q.ngroup > 0) {
        const char *keys[ENGINE_MAX_GROUPS];
        const cJSON **lists = xcalloc(nparts + 1, sizeof *lists);
        cJSON *by = cJSON_AddArrayToObject(o, "group_by");
        for (unsigned k = 0; k < a->q.ngroup; k++) {
            keys[k] = a->q.group_by[k];
            cJSON_AddItemToArray(by, cJSON_CreateString(keys[k]));
        }
        for (size_t i = 0; i < nparts; i++)
            lists[i] = cJSON_GetObjectItemCaseSensitive(parts[i].data, "groups");
        cJSON_AddItemToObject(o, "groups", answer_groups_merge(keys, a->q.ngroup, lists, nparts));
        free(lists);
    }
}

/* Builds and sends the answer from every target's outcome. */
static void agg_finish(struct agg *a)
{
    struct request *r = a->r;
    size_t answered = 0;
    unsigned calls = 0, children = 0;
    bool any_stale = false, any_fetch = false;
    int64_t oldest = 0;
    bool unattached = a->q.kind == ENGINE_UNATTACHED;
    struct answer_part *parts = xcalloc(a->n + 1, sizeof *parts);
    cJSON *targets = cJSON_CreateArray();
    for (size_t i = 0; i < a->n; i++) {
        struct agg_target *t = &a->t[i];
        calls += t->ec2_calls;
        children += t->children;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "account", t->target.account);
        cJSON_AddStringToObject(e, "account_id", credsvc_account_id(t->target.account));
        cJSON_AddStringToObject(e, "region", t->target.region);
        cJSON_AddNumberToObject(e, "total_gib", num(t->data, "total_gib"));
        if (!unattached)
            cJSON_AddNumberToObject(e, "instance_count", num(t->data, "instance_count"));
        cJSON_AddNumberToObject(e, "volume_count", num(t->data, "volume_count"));
        if (t->data) {
            parts[answered++] = (struct answer_part){t->data, t->target.account,
                                                     t->target.region};
            add_source(e, t);
            if (t->stale_reason[0])
                any_stale = true;
            if (t->label && strcmp(t->label, "hit") != 0)
                any_fetch = true;
            if (!oldest || t->fetched_at_wall_ms < oldest)
                oldest = t->fetched_at_wall_ms;
        }
        if (t->stale_reason[0] || !t->data) {
            cJSON *err = cJSON_AddObjectToObject(e, "error");
            cJSON_AddStringToObject(err, "code", t->data ? t->stale_reason : t->code);
            cJSON_AddStringToObject(err, "message", t->data ? "stale answer served (stale-if-error)"
                                                           : t->message);
        }
        cJSON_AddItemToArray(targets, e);
    }
    r->report.ec2_calls = calls;
    r->report.children = children;
    r->report.cache = any_stale ? "stale" : any_fetch ? "miss" : "hit";
    request_add_header(r, "Cache-Control", "no-store");
    if (answered == 0) {
        cJSON_Delete(targets);
        free(parts);
        const struct agg_target *t = &a->t[0];
        request_error(r, 502, "AllTargetsFailed",
                      "none of the %zu targets answered; %s/%s: %s: %.200s", a->n,
                      t->target.account, t->target.region, t->code, t->message);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "account", a->account);
    cJSON_AddStringToObject(o, "region", a->region);
    add_sums(o, a, parts, answered);
    cJSON_AddBoolToObject(o, "complete", answered == a->n && !any_stale);
    cJSON_AddItemToObject(o, "targets", targets);
    add_lists(o, a, parts, answered);
    free(parts);
    cJSON *s = cJSON_AddObjectToObject(o, "source");
    char ts[40];
    cJSON_AddStringToObject(s, "fetched_at", clock_format_rfc3339(oldest, ts, sizeof ts));
    int64_t age = (clock_wall_ms() - oldest) / 1000;
    cJSON_AddNumberToObject(s, "age_s", (double)(age < 0 ? 0 : age));
    cJSON_AddStringToObject(s, "cache", r->report.cache);
    cJSON_AddNumberToObject(s, "ec2_calls", calls);
    cJSON_AddNumberToObject(s, "children", children);
    cJSON_AddNumberToObject(s, "duration_ms", (double)((clock_now_us() - r->start_us) / 1000));
    if (any_stale)
        cJSON_AddStringToObject(s, "stale_reason", "TaskTimedOut");
    request_json(r, 200, o);
}

/* The last target is in: answer (and resume when the handler has returned). */
static void agg_complete(struct agg *a)
{
    struct request *r = a->r;
    bool suspended = a->suspended;
    if (suspended) {
        r->work = NULL;
        r->cancel = NULL;
    }
    agg_finish(a);
    agg_free(a);
    if (suspended)
        request_resume(r);
}

static void on_target(void *ctx, const struct volumes_target_result *res)
{
    struct agg_target *t = ctx;
    struct agg *a = t->agg;
    t->sub = NULL;
    if (t->done)
        return;
    t->done = true;
    t->label = res->label;
    t->fetched_at_wall_ms = res->fetched_at_wall_ms;
    t->ec2_calls = res->ec2_calls;
    t->children = res->children;
    if (res->status == 200) {
        t->data = cJSON_ParseWithLength(res->body, res->len);
        if (!t->data) {
            str_copy(t->code, sizeof t->code, "InternalError");
            str_copy(t->message, sizeof t->message, "cached data is unreadable");
        }
        if (res->stale_reason)
            str_copy(t->stale_reason, sizeof t->stale_reason, res->stale_reason);
    } else {
        str_copy(t->code, sizeof t->code, res->code ? res->code : "InternalError");
        snprintf(t->message, sizeof t->message, "%.250s", res->message ? res->message : "");
    }
    if (--a->pending == 0 && !a->dispatching)
        agg_complete(a);
}

/* The aggregate's deadline: targets still running are timed out (or their stale answer). */
static void on_deadline(struct loop *l, void *arg)
{
    (void)l;
    struct agg *a = arg;
    a->timer = NULL;
    a->dispatching = true; /* the expiries below call on_target; finish once, here */
    for (size_t i = 0; i < a->n; i++)
        if (!a->t[i].done && a->t[i].sub)
            volumes_target_expire(a->t[i].sub);
    a->dispatching = false;
    agg_complete(a);
}

/* The client left: drop every pending fetch (each is abandoned if nobody else waits). */
static void agg_cancel(struct request *r)
{
    struct agg *a = r->work;
    if (!a)
        return;
    r->work = NULL;
    r->cancel = NULL;
    for (size_t i = 0; i < a->n; i++)
        if (!a->t[i].done && a->t[i].sub) {
            a->t[i].done = true;
            volumes_target_cancel(a->t[i].sub);
        }
    agg_free(a);
}

void aggregate_handle(struct request *r, enum route kind, const char *instance_id,
                      const struct route_params *prm)
{
    const struct config *cfg = server_config(r->srv);
    if (instance_id || (kind != ROUTE_TOTAL && kind != ROUTE_UNATTACHED)) {
        request_error(r, 400, "InvalidParameter",
                      "account=all and region=all apply to /volumes/total and "
                      "/volumes/unattached only");
        return;
    }
    const char *account = prm->account ? prm->account : cfg->accounts[0].name;
    const char *region = prm->region ? prm->region : cfg->regions[0];
    bool all_accounts = strcmp(account, "all") == 0, all_regions = strcmp(region, "all") == 0;
    struct agg *a = xcalloc(1, sizeof *a);
    a->r = r;
    a->loop = server_loop(r->srv);
    a->detail = prm->detail != NULL;
    str_copy(a->account, sizeof a->account, account);
    str_copy(a->region, sizeof a->region, region);
    a->t = xcalloc(cfg->naccounts * cfg->nregions, sizeof *a->t);
    struct target tg;
    struct target_cursor c = {0};
    while (target_next(cfg, &c, &tg)) {
        if ((!all_accounts && strcmp(tg.account, account) != 0) ||
            (!all_regions && strcmp(tg.region, region) != 0))
            continue;
        struct agg_target *t = &a->t[a->n++];
        t->agg = a;
        t->target = tg;
    }
    if (a->n == 0) {
        agg_free(a);
        request_error(r, 400, "InvalidRegion", "no configured account has region '%.32s'",
                      region);
        return;
    }
    volumes_query(cfg, kind, NULL, prm, &a->t[0].target, &a->q);
    const struct config_route *route = &cfg->volumes_total;
    int64_t timeout_ms = prm->timeout_ms ? strtol(prm->timeout_ms, NULL, 10) : route->timeout_ms;
    r->report.enabled = true;
    r->report.memory_mb = route->memory_mb;
    r->deadline = clock_now_ms() + timeout_ms;
    a->pending = a->n;
    a->dispatching = true;
    for (size_t i = 0; i < a->n; i++) {
        struct agg_target *t = &a->t[i];
        const char *code, *message;
        if (credsvc_failure(t->target.account, &code, &message)) {
            /* the account's credentials failed (AccessDenied on AssumeRole...): its
             * targets carry that error without an EC2 call */
            struct volumes_target_result res = {.status = 502, .code = code,
                                                .message = message};
            on_target(t, &res);
            continue;
        }
        struct engine_query q = a->q;
        q.target = t->target;
        t->sub = volumes_target_get(&q, a->detail, r->deadline, on_target, t);
    }
    a->dispatching = false;
    if (a->pending == 0) {
        agg_complete(a);
        return;
    }
    a->suspended = true;
    a->timer = loop_timer_start(a->loop, r->deadline, on_deadline, a);
    r->work = a;
    r->cancel = agg_cancel;
    request_suspend(r);
}
