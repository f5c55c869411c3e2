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
#include "gzip.h"
#include "log.h"
#include "mem.h"
#include "redisshare.h"
#include "route.h"
#include "storage.h"

/* A fetch in progress: the data of one flight. */
struct fetch {
    struct flight *flight;
    struct engine_job *job;   /* NULL while the other replicas are asked (claim) */
    struct redisshare_claim *claim; /* the key across replicas (Redis); NULL: local only */
    int64_t deadline;         /* the job's deadline, moved later by joining waiters */
    struct engine_query q;    /* what the job asks, to map its outcome to an answer */
    bool background;          /* refresh ahead: nobody waits, never cancelled for that */
    unsigned ttl_s;
    bool is_instance;
    bool list_instances;      /* not a total without ?detail=instances: its answer lists the
                               * instances */
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

static bool volumes_l1_have(const char *key, int64_t *fetched_at_ms);
static void volumes_l1_update(const char *key, const struct redis_value *rv);

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
    redisshare_set_hooks(volumes_l1_have, volumes_l1_update);
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
    /* fetches still running (a refresh ahead nobody waits for, caught by the stop): the
     * engine drops their jobs without calling back, and their claims free themselves */
    flight_table_free_with(g.flights, free);
    g.flights = NULL;
}

/* Whether cache key (target_key, then "|...") belongs to account arg. */
static bool key_of_account(const char *key, void *arg)
{
    const char *account = arg, *bar = strchr(key, '|');
    size_t tk = bar ? (size_t)(bar - key) : strlen(key);
    const char *slash = memchr(key, '/', tk);
    if (strcmp(account, TARGET_DEFAULT_ACCOUNT) == 0)
        return !slash; /* the default account's keys are the region alone */
    return slash && (size_t)(slash - key) == strlen(account) &&
           memcmp(key, account, (size_t)(slash - key)) == 0;
}

void volumes_forget_account(const char *account)
{
    size_t n = g.cache ? cache_remove_matching(g.cache, key_of_account, (void *)account) : 0;
    if (n)
        log_info("reload", "dropped %zu cached answers of account %s", n, account);
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

/* ---------------------------------------------------------------- the L1 in front of Redis */

/* Whether key is in the in-process cache, and the fetched_at of its answer. */
static bool volumes_l1_have(const char *key, int64_t *fetched_at_ms)
{
    struct cache_view v;
    if (!g.cache || cache_lookup(g.cache, key, clock_now_ms(), &v) == CACHE_MISS)
        return false;
    *fetched_at_ms = v.fetched_at_wall_ms;
    return true;
}

/* Stores an answer read from Redis in the in-process cache, byte for byte, aged from its
 * fetched_at so every replica shows the same Age and expires it at the same time. */
static void volumes_l1_update(const char *key, const struct redis_value *rv)
{
    if (!g.cache)
        return;
    int64_t age = clock_wall_ms() - (int64_t)rv->fetched_at_ms;
    if (age < 0)
        age = 0;
    if (cache_put(g.cache, key, rv->status, rv->body, rv->body_len, (int64_t)rv->fetched_at_ms,
                  clock_now_ms() - age, (int64_t)rv->ttl_s * 1000) != EBSD_OK)
        (void)cache_remove(g.cache, key); /* too big here: the replica fetches for itself */
}

/* The head of target t's cache and flight keys: target_key, then, for an account reached
 * through a role, "|@" and the role's AWS account id. A reload that points an account's name
 * at another AWS account then never finds, joins or (through Redis) shares what was fetched
 * for the old one: its keys are others, here and on every replica. */
static void key_head(const struct target *t, char *out, size_t len)
{
    char tk[80];
    target_key(t, tk, sizeof tk);
    const struct config_account *a =
        g.srv ? config_account_find(server_config(g.srv), t->account) : NULL;
    if (a && a->role_account[0])
        snprintf(out, len, "%s|@%s", tk, a->role_account);
    else
        snprintf(out, len, "%s", tk);
}

bool volumes_latest(const struct target *t, struct cache_view *out)
{
    static const char *const kinds[] = {"-|parallel", "detail|parallel", "-|sequential",
                                        "detail|sequential"};
    char head[96], key[160];
    key_head(t, head, sizeof head);
    bool found = false;
    int64_t now = clock_now_ms();
    for (size_t i = 0; g.cache && i < sizeof kinds / sizeof kinds[0]; i++) {
        struct cache_view v;
        snprintf(key, sizeof key, "%s|total|%s", head, kinds[i]);
        if (cache_lookup(g.cache, key, now, &v) != CACHE_MISS && v.status == 200 &&
            (!found || v.fetched_at_wall_ms > out->fetched_at_wall_ms)) {
            *out = v;
            found = true;
        }
    }
    return found;
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

/* The gzip body of a cached answer: the cached data (without its closing brace) is
 * compressed once into an open gzip stream (gzip_open), kept in the cache beside the entry;
 * each response closes a copy of it with its own tail (source, request_id, the brace), so a
 * hit costs a copy of the compressed bytes and a few hundred bytes of deflate, never the
 * whole body again. */
static ebsd_status gzip_body(struct cache_view *v, size_t base, const char *tail, size_t tlen,
                             struct buf *out)
{
    ebsd_status st;
    struct buf open = {0};
    const char *h = v->alt;
    size_t hlen = v->alt_len;
    if (!h) {
        st = gzip_open(v->body, base, &open);
        if (st != EBSD_OK)
            return st;
        g.st.gzip_bodies++;
        h = open.data;
        hlen = open.len;
        const char *stored;
        /* a view of the cache keeps it for every later hit (and for this flight's other
         * waiters, through v); an answer that was not cached compresses per response */
        if (cache_attach(g.cache, v->key, v->etag, open.data, open.len, &stored) == EBSD_OK) {
            v->alt = stored;
            v->alt_len = open.len;
        }
    }
    st = gzip_close(h, hlen, tail, tlen, out);
    if (st == EBSD_OK)
        g.st.gzipped++;
    buf_free(&open);
    return st;
}

/* Answers r from a cache view: splices source and request_id into the cached JSON, gzipped
 * when the client takes gzip and the answer is large enough (then with its own ETag). */
static void respond_from_view(struct request *r, struct cache_view *v, const char *label,
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
    /* The representation: the cached data's size decides whether the answer varies with
     * Accept-Encoding, so every response for an entry carries the same Vary. */
    bool varies = v->status == 200 && gzip_varies(v->len, GZIP_MIN_BYTES);
    bool gz = varies && gzip_accept_q(request_header(r, "Accept-Encoding")) > 0;
    char gz_etag[CACHE_ETAG_SIZE + 8];
    const char *etag = v->etag;
    if (gz && gzip_etag(v->etag, gz_etag, sizeof gz_etag) == EBSD_OK)
        etag = gz_etag;
    else
        gz = false;
    if (varies)
        request_vary(r, GZIP_VARY);
    request_add_header(r, "ETag", etag);
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
    if (etag_matches(request_header(r, "If-None-Match"), etag)) {
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
    if (gz) {
        struct buf z;
        if (gzip_body(v, base, tail, (size_t)n, &z) == EBSD_OK) {
            request_add_header(r, "Content-Encoding", "gzip");
            size_t zlen = z.len;
            request_respond(r, 200, buf_steal(&z), zlen, "application/json");
            return;
        }
        /* zlib failed (out of memory): no body rather than one under the wrong ETag */
        request_error(r, 500, "InternalError", "compressing the answer failed");
        return;
    }
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

/* A waiter with a later deadline keeps the fetch (and its lock across replicas) alive. */
static void fetch_extend(struct fetch *f, int64_t deadline)
{
    if (!f || deadline <= f->deadline)
        return;
    f->deadline = deadline;
    engine_extend(f->job, deadline);
    redisshare_extend(f->claim, deadline);
}

/* A waiter's deadline passed with a usable older answer at hand: the fetch goes on for the
 * cache (stale-if-error covers a fetch that hangs as well as one that fails), within its own
 * bound (the route's timeout from its start), even when that was its last waiter. */
static void fetch_keep_for_cache(struct fetch *f)
{
    if (!f || f->background)
        return;
    f->background = true;
    if (f->started_ms + f->bound_ms > clock_now_ms())
        fetch_extend(f, f->started_ms + f->bound_ms);
}

/* The deadline of a job started for a waiter due at deadline. The job runs to the waiter's
 * deadline (its workers' EC2 calls respect it), but when a usable older answer is cached
 * (stale_usable: the caller's lookup found a 200) the waiter gets that at its deadline and
 * the fetch may run on to its route's bound to refresh the cache: the job gets that bound,
 * so the waiter's deadline does not end it too. */
static int64_t job_deadline_for(int64_t now, int64_t deadline, const struct config_route *route,
                                bool stale_usable)
{
    int64_t bound = now + (int64_t)route->timeout_ms;
    return stale_usable && bound > deadline ? bound : deadline;
}

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
    /* a usable older answer beats a 504 */
    struct cache_view v;
    if (cache_lookup(g.cache, flight_key(w->flight), clock_now_ms(), &v) != CACHE_MISS &&
        v.status == 200) {
        g.st.stale_served++;
        fetch_keep_for_cache(f);
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

/* Answers every waiter of fl from view v (requests are resumed; aggregate targets get their
 * callback), with what the fetch cost. */
static void serve_waiters(struct flight *fl, struct cache_view *v, unsigned ec2_calls,
                          unsigned children, long max_rss_kb)
{
    struct waiter *w;
    while ((w = flight_pop_waiter(fl)) != NULL) {
        if (w->cb) {
            deliver_view(w, v, w->label, NULL, ec2_calls, children);
            waiter_free(w);
            continue;
        }
        struct request *r = w->r;
        r->work = NULL;
        r->cancel = NULL;
        r->report.children = children;
        r->report.ec2_calls = ec2_calls;
        r->report.max_rss_kb = max_rss_kb;
        respond_from_view(r, v, w->label, ec2_calls, children, NULL);
        waiter_free(w);
        request_resume(r);
    }
}

static void fetch_done(void *arg, struct engine_outcome *out)
{
    struct fetch *f = arg;
    struct answer ans;
    struct answer *res = &ans;
    /* the gauges of /metrics follow every answer a target gets (storage.h) */
    if (out->status == EBSD_OK && f->q.kind == ENGINE_TOTAL)
        storage_note_total(&f->q.target, out->inst, out->ninst, out->vols, out->nvols,
                           out->atts, out->fetched_at);
    else if (out->status == EBSD_OK && f->q.kind == ENGINE_UNATTACHED)
        storage_note_unattached(&f->q.target, out->vols, out->nvols, out->fetched_at);
    answer_from_outcome(&f->q, out, f->list_instances, res);
    struct flight *fl = f->flight;
    const char *key = flight_key(fl);
    int64_t now = clock_now_ms();
    struct cache_view v;
    bool have_view = false;

    if (res->http_status == 200 || (res->http_status == 404 && f->is_instance)) {
        char *txt;
        unsigned ttl_s = f->ttl_s;
        if (res->http_status == 200) {
            /* which account answered (issue 16); its id once the credentials taught it */
            cJSON_AddStringToObject(res->data, "account", f->q.target.account);
            cJSON_AddStringToObject(res->data, "account_id",
                                    credsvc_account_id(f->q.target.account));
            txt = cJSON_PrintUnformatted(res->data);
        } else {
            txt = xstrdup(res->message);
            ttl_s = g.negative_ttl_s;
        }
        /* shared through Redis: the entry's age counts from fetched_at, as on the replicas
         * that read it from Redis, so all of them show one Age and refresh at one time */
        int64_t stored = now;
        if (f->claim && res->fetched_at > 0 && clock_wall_ms() > res->fetched_at)
            stored = now - (clock_wall_ms() - res->fetched_at);
        if (txt && ttl_s > 0 &&
            cache_put(g.cache, key, (int)res->http_status, txt, strlen(txt), res->fetched_at,
                      stored, (int64_t)ttl_s * 1000) == EBSD_OK)
            have_view = cache_lookup(g.cache, key, now, &v) != CACHE_MISS;
        if (f->claim) {
            struct redis_value rv = {0};
            if (have_view) {
                rv.status = (uint16_t)v.status;
                rv.fetched_at_ms = (uint64_t)v.fetched_at_wall_ms;
                rv.ttl_s = ttl_s;
                rv.stale_while_revalidate_s = g.swr_s;
                rv.stale_if_error_s = g.sie_s;
                rv.etag = v.etag;
                rv.etag_len = strlen(v.etag);
                rv.body = v.body;
                rv.body_len = v.len;
            }
            redisshare_done(f->claim, have_view ? &rv : NULL);
            f->claim = NULL;
        }
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
        if (have_view)
            serve_waiters(fl, &v, res->ec2_calls, res->children, res->max_rss_kb);
        free(txt); /* the views above were used before this point */
    } else {
        redisshare_done(f->claim, NULL); /* releases the lock: another replica may try */
        f->claim = NULL;
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
    redisshare_cancel(f->claim);
    flight_finish(g.flights, f->flight);
    free(f);
}

/* The other replicas answered the claim: an answer from Redis for every waiter, or
 * "fetch it here" (this replica holds the key's lock, or Redis failed). */
static void on_claim(void *arg, enum redisshare_verdict verdict, const struct redis_value *rv)
{
    struct fetch *f = arg;
    if (verdict == REDISSHARE_FETCH) {
        f->job = engine_start(&f->q, f->deadline, fetch_done, f);
        return;
    }
    f->claim = NULL; /* a VALUE verdict ends the claim */
    struct flight *fl = f->flight;
    const char *key = flight_key(fl);
    int64_t now = clock_now_ms();
    volumes_l1_update(key, rv);
    struct cache_view v;
    if (cache_lookup(g.cache, key, now, &v) != CACHE_MISS) {
        serve_waiters(fl, &v, 0, 0, 0);
    } else {
        /* not storable here (over the cache's bounds): answer from the value itself */
        char *body = xmalloc(rv->body_len + 1);
        memcpy(body, rv->body, rv->body_len);
        body[rv->body_len] = '\0';
        char etag[CACHE_ETAG_SIZE];
        cache_etag(body, rv->body_len, etag);
        struct cache_view own = {.key = key, .body = body, .len = rv->body_len,
                                 .status = rv->status, .etag = etag,
                                 .fetched_at_wall_ms = (int64_t)rv->fetched_at_ms,
                                 .stored_at_ms = now, .ttl_ms = (int64_t)rv->ttl_s * 1000};
        serve_waiters(fl, &own, 0, 0, 0);
        free(body);
    }
    flight_finish(g.flights, fl);
    free(f);
}

/* newer_than_ms: the fetched_at (wall ms) an answer from another replica must pass (0: any
 * fresh one; a forced refresh or a refresh ahead wants a newer one than it has). */
static struct fetch *fetch_start(const char *key, const struct engine_query *q, bool detail,
                                 unsigned ttl_s, int64_t deadline, int64_t bound_ms,
                                 bool background, int64_t newer_than_ms, bool check_first)
{
    struct flight *fl = flight_start(g.flights, key);
    struct fetch *f = xcalloc(1, sizeof *f);
    f->flight = fl;
    f->background = background;
    f->ttl_s = ttl_s;
    f->q = *q;
    f->q.background = background; /* its EC2 calls leave the budget's reserve to requests */
    f->is_instance = q->kind == ENGINE_INSTANCE;
    f->list_instances = q->kind != ENGINE_TOTAL || detail;
    f->started_ms = clock_now_ms();
    f->bound_ms = bound_ms;
    f->deadline = deadline;
    flight_set_data(fl, f);
    f->claim = redisshare_claim(&q->target, key, newer_than_ms, check_first, deadline, on_claim, f);
    if (!f->claim)
        f->job = engine_start(&f->q, deadline, fetch_done, f);
    return f;
}

/* The cache and flight key of q: everything that changes its answer. */
static void query_key(const struct engine_query *q, bool detail, char *key, size_t len)
{
    char tk[96];
    key_head(&q->target, tk, sizeof tk);
    if (q->kind == ENGINE_INSTANCE) {
        snprintf(key, len, "%s|instance|%s", tk, q->instance_id);
    } else if (q->kind == ENGINE_UNATTACHED) {
        snprintf(key, len, "%s|unattached|%u", tk, q->limit);
    } else {
        /* the grouping in query order: it is the order of the answer's key members */
        /* without a grouping the key is what it always was (and what the page and other
         * replicas look up) */
        snprintf(key, len, "%s|total|%s|%s%s%s%s%s", tk, detail ? "detail" : "-",
                 q->sequential ? "sequential" : "parallel", q->ngroup > 0 ? "|" : "",
                 q->ngroup > 0 ? q->group_by[0] : "", q->ngroup > 1 ? "\x1f" : "",
                 q->ngroup > 1 ? q->group_by[1] : "");
    }
}

struct volumes_sub *volumes_target_get(const struct engine_query *q, bool detail,
                                       int64_t deadline, volumes_target_cb cb, void *ctx)
{
    char key[320];
    query_key(q, detail, key, sizeof key);
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
                        route->timeout_ms, true, v.fetched_at_wall_ms, true);
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
        fetch_extend(flight_data(fl), deadline); /* the job serves this waiter too */
        w->label = "coalesced";
    } else {
        g.st.misses++;
        fl = fetch_start(key, q, detail, route->cache_ttl_s,
                         job_deadline_for(now, deadline, route,
                                          cs != CACHE_MISS && v.status == 200),
                         route->timeout_ms, false,
                         0, true)->flight;
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
        g.st.stale_served++;
        fetch_keep_for_cache(f);
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

/* The cache key of a query: everything that changes its answer. */

static void handle(struct request *r, enum route route_kind, const char *instance_id);

void volumes_handle(struct request *r, const char *instance_id)
{
    handle(r, instance_id ? ROUTE_INSTANCE : ROUTE_TOTAL, instance_id);
}

void volumes_handle_unattached(struct request *r) { handle(r, ROUTE_UNATTACHED, NULL); }

bool volumes_refresh(const struct config *cfg, const struct target *t, bool unattached,
                     int64_t max_age_ms)
{
    if (!g.cache || !g.flights)
        return false;
    struct route_params none; /* the default answer, as a request without parameters */
    route_params_init(&none);
    struct engine_query q;
    volumes_query(cfg, unattached ? ROUTE_UNATTACHED : ROUTE_TOTAL, NULL, &none, t, &q);
    const struct config_route *route = &cfg->volumes_total;
    char key[320];
    query_key(&q, false, key, sizeof key);
    int64_t now = clock_now_ms();
    if (flight_find(g.flights, key))
        return false;
    struct cache_view v;
    int64_t have_ms = 0;
    if (cache_lookup(g.cache, key, now, &v) != CACHE_MISS && v.status == 200) {
        if (v.age_ms < max_age_ms)
            return false;
        have_ms = v.fetched_at_wall_ms;
    }
    /* with Redis, another replica's newer answer counts, and one replica refreshes */
    fetch_start(key, &q, false, route->cache_ttl_s, now + route->timeout_ms, route->timeout_ms,
                true, have_ms, true);
    return true;
}

void volumes_query(const struct config *cfg, enum route kind, const char *instance_id,
                   const struct route_params *prm, const struct target *t,
                   struct engine_query *q)
{
    memset(q, 0, sizeof *q);
    q->target = *t;
    if (instance_id) {
        q->kind = ENGINE_INSTANCE;
        snprintf(q->instance_id, sizeof q->instance_id, "%s", instance_id);
    } else if (kind == ROUTE_UNATTACHED) {
        q->kind = ENGINE_UNATTACHED;
        q->limit = prm->limit ? (unsigned)strtoul(prm->limit, NULL, 10) : ROUTE_DEFAULT_LIMIT;
    } else {
        q->kind = ENGINE_TOTAL;
        q->sequential = prm->mode && strcmp(prm->mode, "sequential") == 0;
        for (unsigned i = 0; i < prm->ngroup && i < ENGINE_MAX_GROUPS; i++)
            snprintf(q->group_by[i], sizeof q->group_by[i], "%s", prm->group_by[i]);
        q->ngroup = prm->ngroup < ENGINE_MAX_GROUPS ? prm->ngroup : ENGINE_MAX_GROUPS;
    }
    q->memory_mb = (instance_id ? &cfg->instance_volumes : &cfg->volumes_total)->memory_mb;
}

static void handle(struct request *r, enum route route_kind, const char *instance_id)
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
    if (route_check_params(route_kind, prm, cfg, code,
                           sizeof code, msg, sizeof msg) != EBSD_OK) {
        request_error(r, 400, code, "%s", msg);
        return;
    }
    /* The values are valid from here on. account=all or region=all: aggregate.c. */
    if ((prm->account && strcmp(prm->account, "all") == 0) ||
        (prm->region && strcmp(prm->region, "all") == 0)) {
        aggregate_handle(r, route_kind, instance_id, prm);
        return;
    }
    const struct config_account *acct =
        prm->account ? config_account_find(cfg, prm->account) : &cfg->accounts[0];
    /* no region asked: the default one, else the account's first when it lacks it */
    const char *region = prm->region ? prm->region
                         : config_account_region_allowed(cfg, acct, cfg->regions[0])
                             ? cfg->regions[0]
                             : acct->regions[0];
    struct engine_query q;
    struct target tg = target_make(acct->name, region);
    volumes_query(cfg, route_kind, instance_id, prm, &tg, &q);
    bool detail = prm->detail != NULL;
    const struct config_route *route = instance_id ? &cfg->instance_volumes : &cfg->volumes_total;
    int64_t timeout_ms = prm->timeout_ms ? strtol(prm->timeout_ms, NULL, 10) : route->timeout_ms;
    r->report.enabled = true;
    r->report.memory_mb = q.memory_mb;
    r->deadline = clock_now_ms() + timeout_ms;

    char key[320];
    query_key(&q, detail, key, sizeof key);

    int64_t now = clock_now_ms();
    bool refresh = no_cache_requested(r);
    struct flight *fl = flight_find(g.flights, key);
    struct cache_view v = {0};
    enum cache_state cs = CACHE_MISS;
    bool looked = false; /* the key was looked up in the cache: cs and v say what was there */
    if (refresh && !fl && g.min_refresh_s) {
        /* A forced refresh fetches at most once per key per min_refresh_s, whoever asks:
         * a younger answer is served as it is, marked "limited". */
        cs = cache_lookup(g.cache, key, now, &v);
        looked = true;
        if (cs != CACHE_MISS && v.age_ms < (int64_t)g.min_refresh_s * 1000) {
            g.st.refresh_limited++;
            respond_from_view(r, &v, "limited", 0, 0, NULL);
            return;
        }
    }
    if (!refresh) {
        cs = cache_lookup(g.cache, key, now, &v);
        looked = true;
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
                            route->timeout_ms, true, v.fetched_at_wall_ms, true);
            }
            respond_from_view(r, &v, "hit", 0, 0, NULL);
            return;
        }
    }
    if (fl) {
        g.st.coalesced++;
        struct fetch *running = flight_data(fl);
        fetch_extend(running, r->deadline); /* the job serves this waiter too */
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
    /* A waiter that joins later with a later deadline extends the job. Each waiter enforces
     * its own, and a flight left with no waiters is cancelled. */
    if (!looked && now + (int64_t)route->timeout_ms > r->deadline)
        cs = cache_lookup(g.cache, key, now, &v);
    struct fetch *f = fetch_start(key, &q, detail, route->cache_ttl_s,
                                  job_deadline_for(now, r->deadline, route,
                                                   cs != CACHE_MISS && v.status == 200),
                                  route->timeout_ms, false, refresh ? clock_wall_ms() : 0,
                                  !refresh);
    add_waiter(r, f->flight, refresh ? "refreshed" : "miss", timeout_ms);
}
