/* volumes.c - the data endpoints on top of cache, single flight and fan-out (see volumes.h).
 *
 * A request is keyed by everything that changes its answer (region, route, instance id,
 * detail, mode). A fresh cache entry answers at once. Otherwise the request becomes a
 * waiter of the key's flight, starting one (and its fan-out job) if none is in progress;
 * each waiter keeps its own deadline, and a flight nobody waits for any more is cancelled
 * (its children killed) unless it is a background refresh. The fetched data is cached
 * without `source` and `request_id`, which are spliced in per response. */
#include "volumes.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "cache.h"
#include "clock.h"
#include "aggregate.h"
#include "answer.h"
#include "credsvc.h"
#include "engine.h"
#include "flight.h"
#include "log.h"
#include "mem.h"
#include "route.h"

/* A fetch in progress: the data of one flight. */
struct fetch {
    struct flight *flight;
    struct engine_job *job;
    struct engine_query q;    /* what the job asks, to map its outcome to an answer */
    bool background;          /* refresh ahead: nobody waits, never cancelled for that */
    unsigned ttl_s;
    bool is_instance;
    bool strip_instances;     /* a total without ?detail=instances */
    int64_t started_ms;       /* monotonic */
    int64_t bound_ms;         /* the route's timeout: how long it may run once nobody waits */
};

/* A request waiting on a flight, or (cb set, r NULL) an aggregate's target. */
struct waiter {
    struct request *r;
    volumes_target_cb cb;
    void *ctx;
    struct flight *flight;
    struct loop_timer *timer;
    const char *label;        /* "miss", "coalesced", "refreshed" */
    double timeout_s;
};

static struct {
    struct server *srv;
    struct cache *cache;
    struct flight_table *flights;
    struct loop_timer *sweep;
    size_t max_entries, max_bytes;
    unsigned swr_s, sie_s, negative_ttl_s, min_refresh_s;
    struct volumes_stats st;
} g;

static void on_sweep(struct loop *l, void *arg)
{
    g.sweep = NULL;
    if (g.cache)
        (void)cache_expire(g.cache, clock_now_ms());
    g.sweep = loop_timer_start(l, clock_now_ms() + 30000, on_sweep, NULL);
}

void volumes_configure(struct server *s, const struct config *cfg)
{
    g.srv = s;
    if (!g.cache || g.max_entries != cfg->cache_max_entries || g.max_bytes != cfg->cache_max_bytes ||
        g.swr_s != cfg->stale_while_revalidate_s || g.sie_s != cfg->stale_if_error_s) {
        cache_free(g.cache);
        g.max_entries = cfg->cache_max_entries;
        g.max_bytes = (size_t)cfg->cache_max_bytes;
        g.swr_s = cfg->stale_while_revalidate_s;
        g.sie_s = cfg->stale_if_error_s;
        g.cache = cache_new(g.max_entries, g.max_bytes, (int64_t)g.swr_s * 1000,
                            (int64_t)g.sie_s * 1000);
    }
    g.negative_ttl_s = cfg->negative_ttl_s;
    g.min_refresh_s = cfg->min_refresh_s;
    if (!g.flights)
        g.flights = flight_table_new();
    if (!g.sweep)
        g.sweep = loop_timer_start(server_loop(s), clock_now_ms() + 30000, on_sweep, NULL);
}

void volumes_shutdown(void)
{
    if (g.sweep && g.srv)
        loop_timer_stop(server_loop(g.srv), g.sweep);
    g.sweep = NULL;
    cache_free(g.cache);
    g.cache = NULL;
    flight_table_free(g.flights);
    g.flights = NULL;
}

void volumes_get_stats(struct volumes_stats *out)
{
    *out = g.st;
    if (g.cache) {
        struct cache_stats cs;
        cache_get_stats(g.cache, &cs);
        out->entries = cs.entries;
        out->bytes = cs.bytes;
        out->evictions = cs.evictions;
    }
    out->flights = g.flights ? (unsigned)flight_count(g.flights) : 0;
}

/* ---------------------------------------------------------------- responses */

/* If-None-Match: a list of entity tags or "*"; compared weakly, as RFC 9110 asks. */
static bool etag_matches(const char *inm, const char *etag)
{
    if (!inm)
        return false;
    const char *p = inm;
    size_t elen = strlen(etag);
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        size_t n = strcspn(p, ",");
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == elen && strncmp(p, etag, n) == 0)
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

/* source.fetched_at: every hit on an entry shows the same time, so the text is kept for
 * the last value asked (valid until the next call). */
static const char *fetched_at_text(int64_t wall_ms)
{
    static int64_t last = INT64_MIN;
    static char text[40];
    if (wall_ms != last) {
        clock_format_rfc3339(wall_ms, text, sizeof text);
        last = wall_ms;
    }
    return text;
}

/* Answers r from a cache view: splices source and request_id into the cached JSON. */
static void respond_from_view(struct request *r, const struct cache_view *v, const char *label,
                              unsigned ec2_calls, unsigned children, const char *stale_reason)
{
    int64_t age_s = v->age_ms / 1000;
    int64_t left_s = (v->ttl_ms - v->age_ms) / 1000;
    if (left_s < 0)
        left_s = 0;
    char hdr[160];
    snprintf(hdr, sizeof hdr, "max-age=%lld, stale-while-revalidate=%u, stale-if-error=%u",
             (long long)left_s, g.swr_s, g.sie_s);
    request_add_header(r, "Cache-Control", hdr);
    request_add_header(r, "ETag", v->etag);
    snprintf(hdr, sizeof hdr, "%lld", (long long)age_s);
    request_add_header(r, "Age", hdr);
    request_add_header(r, "X-Cache", label);
    r->report.cache = label;

    if (v->status != 200) {
        /* a negative-cached 404 */
        request_error(r, (unsigned)v->status, "NotFound", "%.*s", (int)(v->len > 400 ? 400 : v->len),
                      v->body);
        return;
    }
    if (etag_matches(request_header(r, "If-None-Match"), v->etag)) {
        g.st.not_modified++;
        request_respond(r, 304, xstrdup(""), 0, "application/json");
        return;
    }
    const char *ts = fetched_at_text(v->fetched_at_wall_ms);
    long long duration_ms = (clock_now_us() - r->start_us) / 1000;
    char tail[512];
    int n = snprintf(tail, sizeof tail,
                     ",\"source\":{\"fetched_at\":\"%s\",\"age_s\":%lld,\"cache\":\"%s\","
                     "\"ec2_calls\":%u,\"children\":%u,\"duration_ms\":%lld%s%s%s},"
                     "\"request_id\":\"%s\"}\n",
                     ts, (long long)((clock_wall_ms() - v->fetched_at_wall_ms) / 1000), label,
                     ec2_calls, children, duration_ms, stale_reason ? ",\"stale_reason\":\"" : "",
                     stale_reason ? stale_reason : "", stale_reason ? "\"" : "", r->id);
    size_t base = v->len;
    while (base && v->body[base - 1] != '}')
        base--;
    if (base == 0 || n < 0 || (size_t)n >= sizeof tail) {
        request_error(r, 500, "InternalError", "cached data is unreadable");
        return;
    }
    base--; /* drop the closing brace; the tail closes the object */
    char *body = xmalloc(base + (size_t)n + 1);
    memcpy(body, v->body, base);
    memcpy(body + base, tail, (size_t)n + 1);
    request_respond(r, 200, body, base + (size_t)n, "application/json");
}

static void respond_error(struct request *r, const struct answer *res, double timeout_s)
{
    request_add_header(r, "Cache-Control", "no-store");
    if (res->http_status == 504) {
        /* Lambda's two decimals, or three when the deadline needs them: never "0.00" */
        long long ms = (long long)(timeout_s * 1000.0 + 0.5);
        request_error(r, 504, "TaskTimedOut",
                      ms % 10 ? "Task timed out after %.3f seconds"
                              : "Task timed out after %.2f seconds",
                      timeout_s);
        return;
    }
    if (res->retry_after_s) {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", res->retry_after_s);
        request_add_header(r, "Retry-After", ra);
    }
    request_error(r, res->http_status, res->code, "%s", res->message);
}

/* ---------------------------------------------------------------- waiters */

static void fetch_abandon_if_unwanted(struct fetch *f);

static void waiter_free(struct waiter *w)
{
    if (w->timer)
        loop_timer_stop(server_loop(g.srv), w->timer);
    free(w);
}

/* The request ended before its flight did (client gone, shutdown). */
static void waiter_cancel(struct request *r)
{
    struct waiter *w = r->work;
    if (!w)
        return;
    r->work = NULL;
    r->cancel = NULL;
    struct flight *fl = w->flight;
    flight_remove_waiter(fl, w);
    waiter_free(w);
    fetch_abandon_if_unwanted(flight_data(fl));
}

static void on_waiter_deadline(struct loop *l, void *arg)
{
    struct waiter *w = arg;
    w->timer = NULL;
    struct request *r = w->r;
    r->report.cache = w->label;
    struct fetch *f = flight_data(w->flight);
    engine_job_counts(f ? f->job : NULL, &r->report.children, &r->report.ec2_calls,
                      &r->report.max_rss_kb);
    /* stale-if-error covers a fetch that hangs as well as one that fails: a usable older
     * answer beats a 504. The fetch goes on for the cache, within its own bound (the
     * route's timeout from its start), even when this was its last waiter. */
    struct cache_view v;
    if (cache_lookup(g.cache, flight_key(w->flight), clock_now_ms(), &v) != CACHE_MISS &&
        v.status == 200) {
        g.st.stale_served++;
        if (f && !f->background) {
            f->background = true;
            if (f->started_ms + f->bound_ms > clock_now_ms())
                engine_extend(f->job, f->started_ms + f->bound_ms);
        }
        r->work = NULL;
        r->cancel = NULL;
        flight_remove_waiter(w->flight, w);
        waiter_free(w);
        respond_from_view(r, &v, "stale", r->report.ec2_calls, r->report.children,
                          "TaskTimedOut");
        request_resume(r);
        return;
    }
    g.st.waiter_timeouts++;
    struct answer res = {.http_status = 504};
    double timeout_s = w->timeout_s;
    waiter_cancel(r); /* frees w; kills the job if nobody else waits */
    respond_error(r, &res, timeout_s);
    request_resume(r);
}

static void add_waiter(struct request *r, struct flight *fl, const char *label, int64_t timeout_ms)
{
    struct waiter *w = xcalloc(1, sizeof *w);
    w->r = r;
    w->flight = fl;
    w->label = label;
    w->timeout_s = (double)timeout_ms / 1000.0;
    w->timer = loop_timer_start(server_loop(g.srv), r->deadline, on_waiter_deadline, w);
    flight_add_waiter(fl, w);
    r->work = w;
    r->cancel = waiter_cancel;
    request_suspend(r);
}

/* ---------------------------------------------------------------- aggregate waiters */

static void deliver_view(struct waiter *w, const struct cache_view *v, const char *label,
                         const char *stale_reason, unsigned ec2_calls, unsigned children)
{
    struct volumes_target_result res = {.status = v->status, .body = v->body, .len = v->len,
                                        .label = label, .stale_reason = stale_reason,
                                        .fetched_at_wall_ms = v->fetched_at_wall_ms,
                                        .ec2_calls = ec2_calls, .children = children};
    if (v->status != 200) {
        res.code = "NotFound";
        res.message = v->body;
    }
    w->cb(w->ctx, &res);
}

static void deliver_error(struct waiter *w, const struct answer *a)
{
    struct volumes_target_result res = {.status = (int)a->http_status,
                                        .code = a->http_status == 504 ? "TaskTimedOut" : a->code,
                                        .message = a->http_status == 504 ? "Task timed out"
                                                                         : a->message,
                                        .ec2_calls = a->ec2_calls, .children = a->children};
    w->cb(w->ctx, &res);
}

/* ---------------------------------------------------------------- flights */

static void fetch_done(void *arg, struct engine_outcome *out)
{
    struct fetch *f = arg;
    struct answer ans;
    struct answer *res = &ans;
    answer_from_outcome(&f->q, out, res);
    struct flight *fl = f->flight;
    const char *key = flight_key(fl);
    int64_t now = clock_now_ms();
    struct cache_view v;
    bool have_view = false;

    if (res->http_status == 200 || (res->http_status == 404 && f->is_instance)) {
        char *txt;
        unsigned ttl_s = f->ttl_s;
        if (res->http_status == 200) {
            if (f->strip_instances)
                cJSON_DeleteItemFromObjectCaseSensitive(res->data, "instances");
            /* which account answered (issue 16); its id once the credentials taught it */
            cJSON_AddStringToObject(res->data, "account", f->q.target.account);
            cJSON_AddStringToObject(res->data, "account_id",
                                    credsvc_account_id(f->q.target.account));
            txt = cJSON_PrintUnformatted(res->data);
        } else {
            txt = xstrdup(res->message);
            ttl_s = g.negative_ttl_s;
        }
        if (txt && ttl_s > 0 &&
            cache_put(g.cache, key, (int)res->http_status, txt, strlen(txt), res->fetched_at, now,
                      (int64_t)ttl_s * 1000) == EBSD_OK)
            have_view = cache_lookup(g.cache, key, now, &v) != CACHE_MISS;
        static char own_etag[CACHE_ETAG_SIZE];
        if (!have_view && txt) {
            /* not cacheable (TTL 0 or too big): answer from a view of our own */
            memset(&v, 0, sizeof v);
            v.key = key;
            v.body = txt;
            v.len = strlen(txt);
            v.status = (int)res->http_status;
            cache_etag(txt, v.len, own_etag);
            v.etag = own_etag;
            v.fetched_at_wall_ms = res->fetched_at;
            v.stored_at_ms = now;
            have_view = true;
        }
        struct waiter *w;
        while (have_view && (w = flight_pop_waiter(fl)) != NULL) {
            if (w->cb) {
                deliver_view(w, &v, w->label, NULL, res->ec2_calls, res->children);
                waiter_free(w);
                continue;
            }
            struct request *r = w->r;
            r->work = NULL;
            r->cancel = NULL;
            r->report.children = res->children;
            r->report.ec2_calls = res->ec2_calls;
            r->report.max_rss_kb = res->max_rss_kb;
            respond_from_view(r, &v, w->label, res->ec2_calls, res->children, NULL);
            waiter_free(w);
            request_resume(r);
        }
        free(txt); /* the views above were used before this point */
    } else {
        /* stale-if-error: serve what we had, marked stale */
        enum cache_state cs = cache_lookup(g.cache, key, now, &v);
        bool stale_ok = cs != CACHE_MISS && v.status == 200;
        struct waiter *w;
        while ((w = flight_pop_waiter(fl)) != NULL) {
            if (w->cb) {
                if (stale_ok) {
                    g.st.stale_served++;
                    deliver_view(w, &v, "stale", res->code, res->ec2_calls, res->children);
                } else {
                    deliver_error(w, res);
                }
                waiter_free(w);
                continue;
            }
            struct request *r = w->r;
            r->work = NULL;
            r->cancel = NULL;
            r->report.children = res->children;
            r->report.ec2_calls = res->ec2_calls;
            r->report.max_rss_kb = res->max_rss_kb;
            if (stale_ok) {
                g.st.stale_served++;
                respond_from_view(r, &v, "stale", res->ec2_calls, res->children, res->code);
            } else {
                r->report.cache = w->label;
                respond_error(r, res, w->timeout_s);
            }
            waiter_free(w);
            request_resume(r);
        }
        if (f->background)
            log_warn("refresh", "background refresh of %s failed: %s %s", key, res->code,
                     res->message);
    }
    cJSON_Delete(res->data);
    flight_finish(g.flights, fl);
    free(f);
}

/* A flight that nobody waits for any more is not worth its EC2 calls. */
static void fetch_abandon_if_unwanted(struct fetch *f)
{
    if (!f || f->background || flight_waiter_count(f->flight) > 0)
        return;
    engine_cancel(f->job);
    flight_finish(g.flights, f->flight);
    free(f);
}

static struct fetch *fetch_start(const char *key, const struct engine_query *q, bool detail,
                                 unsigned ttl_s, int64_t deadline, int64_t bound_ms,
                                 bool background)
{
    struct flight *fl = flight_start(g.flights, key);
    struct fetch *f = xcalloc(1, sizeof *f);
    f->flight = fl;
    f->background = background;
    f->ttl_s = ttl_s;
    f->q = *q;
    f->is_instance = q->kind == ENGINE_INSTANCE;
    f->strip_instances = q->kind == ENGINE_TOTAL && !detail;
    f->started_ms = clock_now_ms();
    f->bound_ms = bound_ms;
    flight_set_data(fl, f);
    f->job = engine_start(q, deadline, fetch_done, f);
    return f;
}

/* The cache and flight key of q: everything that changes its answer. */
static void make_key(const struct engine_query *q, bool detail, char *key, size_t len)
{
    char tk[80];
    target_key(&q->target, tk, sizeof tk);
    if (q->kind == ENGINE_INSTANCE)
        snprintf(key, len, "%s|instance|%s", tk, q->instance_id);
    else
        snprintf(key, len, "%s|total|%s|%s", tk, detail ? "detail" : "-",
                 q->sequential ? "sequential" : "parallel");
}

struct volumes_sub *volumes_target_get(const struct engine_query *q, bool detail,
                                       int64_t deadline, volumes_target_cb cb, void *ctx)
{
    char key[128];
    make_key(q, detail, key, sizeof key);
    int64_t now = clock_now_ms();
    const struct config_route *route = NULL;
    const struct config *cfg = server_config(g.srv);
    route = q->kind == ENGINE_INSTANCE ? &cfg->instance_volumes : &cfg->volumes_total;
    struct flight *fl = flight_find(g.flights, key);
    struct cache_view v;
    enum cache_state cs = cache_lookup(g.cache, key, now, &v);
    if (cs == CACHE_FRESH || cs == CACHE_STALE_SWR) {
        g.st.hits++;
        if (!fl && cs == CACHE_STALE_SWR) {
            g.st.refresh_ahead++;
            fetch_start(key, q, detail, route->cache_ttl_s, now + route->timeout_ms,
                        route->timeout_ms, true);
        }
        struct waiter tmp = {.cb = cb, .ctx = ctx};
        deliver_view(&tmp, &v, "hit", NULL, 0, 0);
        return NULL;
    }
    struct waiter *w = xcalloc(1, sizeof *w);
    w->cb = cb;
    w->ctx = ctx;
    w->timeout_s = (double)(deadline - now) / 1000.0;
    if (fl) {
        g.st.coalesced++;
        struct fetch *running = flight_data(fl);
        if (running)
            engine_extend(running->job, deadline);
        w->label = "coalesced";
    } else {
        g.st.misses++;
        int64_t job_deadline = deadline;
        if (cs != CACHE_MISS && v.status == 200 && now + (int64_t)route->timeout_ms > job_deadline)
            job_deadline = now + (int64_t)route->timeout_ms;
        fl = fetch_start(key, q, detail, route->cache_ttl_s, job_deadline, route->timeout_ms,
                         false)->flight;
        w->label = "miss";
    }
    w->flight = fl;
    flight_add_waiter(fl, w);
    return (struct volumes_sub *)w;
}

void volumes_target_cancel(struct volumes_sub *sub)
{
    struct waiter *w = (struct waiter *)sub;
    if (!w)
        return;
    struct flight *fl = w->flight;
    flight_remove_waiter(fl, w);
    waiter_free(w);
    fetch_abandon_if_unwanted(flight_data(fl));
}

void volumes_target_expire(struct volumes_sub *sub)
{
    struct waiter *w = (struct waiter *)sub;
    if (!w)
        return;
    struct fetch *f = flight_data(w->flight);
    struct cache_view v;
    unsigned children = 0, calls = 0;
    long rss = 0;
    engine_job_counts(f ? f->job : NULL, &children, &calls, &rss);
    if (cache_lookup(g.cache, flight_key(w->flight), clock_now_ms(), &v) != CACHE_MISS &&
        v.status == 200) {
        /* as on_waiter_deadline: the fetch goes on for the cache within its route's bound */
        g.st.stale_served++;
        if (f && !f->background) {
            f->background = true;
            if (f->started_ms + f->bound_ms > clock_now_ms())
                engine_extend(f->job, f->started_ms + f->bound_ms);
        }
        flight_remove_waiter(w->flight, w);
        deliver_view(w, &v, "stale", "TaskTimedOut", calls, children);
        waiter_free(w);
        return;
    }
    g.st.waiter_timeouts++;
    struct answer a = {.http_status = 504, .ec2_calls = calls, .children = children};
    deliver_error(w, &a);
    volumes_target_cancel(sub);
}

/* ---------------------------------------------------------------- the endpoint */

/* The query parameters (values point into libmicrohttpd's copy of the request; only the
 * pointers of prm are used, not its storage). */
struct collect {
    struct route_params prm;
    char bad[128];
};

static int collect_param(void *ctx, const char *k, const char *v)
{
    struct collect *c = ctx;
    return route_params_set(&c->prm, k, v, c->bad, sizeof c->bad) != EBSD_OK;
}

/* Cache-Control: no-cache or max-age=0 asks for an answer fetched now (RFC 9111 5.2.1):
 * the directives are compared whole, so "no-cache-x" or "max-age=05" are not taken. */
static bool no_cache_requested(struct request *r)
{
    const char *p = request_header(r, "Cache-Control");
    while (p && *p) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if ((m == 8 && strncasecmp(p, "no-cache", 8) == 0) ||
            (m == 9 && strncasecmp(p, "max-age=0", 9) == 0) ||
            (m == 11 && strncasecmp(p, "max-age=\"0\"", 11) == 0))
            return true;
        p += n;
    }
    return false;
}

void volumes_handle(struct request *r, const char *instance_id)
{
    const struct config *cfg = server_config(r->srv);
    struct collect c; /* its storage is never read: no need to clear 12 KiB per request */
    route_params_init(&c.prm);
    if (request_query_each(r, collect_param, &c)) {
        request_error(r, 400, "InvalidParameter", "%s", c.bad);
        return;
    }
    const struct route_params *prm = &c.prm;
    char code[32], msg[160];
    if (route_check_params(instance_id ? ROUTE_INSTANCE : ROUTE_TOTAL, prm, cfg, code,
                           sizeof code, msg, sizeof msg) != EBSD_OK) {
        request_error(r, 400, code, "%s", msg);
        return;
    }
    /* The values are valid from here on. account=all or region=all: aggregate.c. */
    if ((prm->account && strcmp(prm->account, "all") == 0) ||
        (prm->region && strcmp(prm->region, "all") == 0)) {
        aggregate_handle(r, instance_id, prm);
        return;
    }
    struct engine_query q = {0};
    const struct config_account *acct =
        prm->account ? config_account_find(cfg, prm->account) : &cfg->accounts[0];
    /* no region asked: the default one, else the account's first when it lacks it */
    const char *region = prm->region ? prm->region
                         : config_account_region_allowed(cfg, acct, cfg->regions[0])
                             ? cfg->regions[0]
                             : acct->regions[0];
    q.target = target_make(acct->name, region);
    bool detail = prm->detail != NULL;
    if (instance_id) {
        q.kind = ENGINE_INSTANCE;
        snprintf(q.instance_id, sizeof q.instance_id, "%s", instance_id);
    } else {
        q.kind = ENGINE_TOTAL;
        q.sequential = prm->mode && strcmp(prm->mode, "sequential") == 0;
    }
    const struct config_route *route = instance_id ? &cfg->instance_volumes : &cfg->volumes_total;
    int64_t timeout_ms = prm->timeout_ms ? strtol(prm->timeout_ms, NULL, 10) : route->timeout_ms;
    q.memory_mb = route->memory_mb;
    r->report.enabled = true;
    r->report.memory_mb = q.memory_mb;
    r->deadline = clock_now_ms() + timeout_ms;

    char key[128];
    make_key(&q, detail, key, sizeof key);

    int64_t now = clock_now_ms();
    bool refresh = no_cache_requested(r);
    struct flight *fl = flight_find(g.flights, key);
    if (refresh && !fl && g.min_refresh_s) {
        /* A forced refresh fetches at most once per key per min_refresh_s, whoever asks:
         * a younger answer is served as it is, marked "limited". */
        struct cache_view v;
        enum cache_state cs = cache_lookup(g.cache, key, now, &v);
        if (cs != CACHE_MISS && v.age_ms < (int64_t)g.min_refresh_s * 1000) {
            g.st.refresh_limited++;
            respond_from_view(r, &v, "limited", 0, 0, NULL);
            return;
        }
    }
    if (!refresh) {
        struct cache_view v;
        enum cache_state cs = cache_lookup(g.cache, key, now, &v);
        if (cs == CACHE_FRESH || cs == CACHE_STALE_SWR) {
            g.st.hits++;
            /* refresh ahead: a polled key is refetched in the background shortly before
             * it expires, so pollers never wait on EC2 after their first request. The
             * window is the last fifth of the TTL, at least its last 5 s (time for a large
             * fan-out to land) but never more than its last half: with a TTL of a few
             * seconds every hit would otherwise start a fetch. */
            int64_t left = v.ttl_ms - v.age_ms;
            int64_t window = v.ttl_ms / 5;
            int64_t floor_ms = v.ttl_ms / 2 < 5000 ? v.ttl_ms / 2 : 5000;
            if (window < floor_ms)
                window = floor_ms;
            if (!fl && (cs == CACHE_STALE_SWR || left < window)) {
                g.st.refresh_ahead++;
                fetch_start(key, &q, detail, route->cache_ttl_s, now + route->timeout_ms,
                            route->timeout_ms, true);
            }
            respond_from_view(r, &v, "hit", 0, 0, NULL);
            return;
        }
    }
    if (fl) {
        g.st.coalesced++;
        struct fetch *running = flight_data(fl);
        if (running)
            engine_extend(running->job, r->deadline); /* the job serves this waiter too */
        add_waiter(r, fl, "coalesced", timeout_ms);
        return;
    }
    const char *ccode, *cmsg;
    if (credsvc_failure(q.target.account, &ccode, &cmsg) &&
        strcmp(ccode, "CredentialsUnavailable") != 0) {
        /* STS refused the account's role (AccessDenied...): say why, no EC2 call; a base
         * chain without credentials stays the engine's 503 CredentialsUnavailable */
        request_add_header(r, "Cache-Control", "no-store");
        request_error(r, 502, ccode, "%s", cmsg);
        return;
    }
    if (refresh)
        g.st.refreshed++;
    else
        g.st.misses++;
    /* The job runs to this request's deadline (its workers' EC2 calls respect it); a waiter
     * that joins later with a later deadline extends it. Each waiter enforces its own, and a
     * flight left with no waiters is cancelled. When a stale-if-error answer is at hand,
     * the request gets it at its deadline if the fetch has not landed, and the fetch may
     * run on to its route's bound to refresh the cache: the job gets that bound, so its
     * own deadline does not end it in the same instant as the waiter's. */
    int64_t job_deadline = r->deadline;
    struct cache_view sv;
    if (cache_lookup(g.cache, key, now, &sv) != CACHE_MISS && sv.status == 200 &&
        now + (int64_t)route->timeout_ms > job_deadline)
        job_deadline = now + (int64_t)route->timeout_ms;
    struct fetch *f = fetch_start(key, &q, detail, route->cache_ttl_s, job_deadline,
                                  route->timeout_ms, false);
    add_waiter(r, f->flight, refresh ? "refreshed" : "miss", timeout_ms);
}
