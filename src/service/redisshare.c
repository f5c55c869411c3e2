/* redisshare.c - the shared cache and the single flight across replicas on Redis (see
 * redisshare.h).
 *
 * A claim is a small state machine on the command connection: [GET value] -> lock ->
 * (ours) GET value again -> FETCH | (held elsewhere) wait for the wake message or the
 * lock's expiry -> GET value -> lock ... Every command either answers within
 * command_timeout_ms or fails, and every failure ends the claim as a local FETCH at once,
 * so Redis can slow a miss down by at most a few command timeouts, never a hit. */
#include "redisshare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cache.h"
#include "clock.h"
#include "credsvc.h"
#include "log.h"
#include "mem.h"
#include "redis.h"
#include "redisiam.h"
#include "redisstate.h"

#define uthash_malloc(sz) xmalloc(sz)
#define uthash_free(ptr, sz) free(ptr)
#include <uthash.h>

#define LOCK_MARGIN_MS 1000 /* a lock outlives its fetch's deadline by this much */
#define WAIT_MARGIN_MS 20   /* after a holder's lock should have expired, look again */

struct redisshare_claim {
    UT_hash_handle hh;      /* g.claims, keyed by lock_key */
    bool in_table;
    char *key;              /* the L1 key */
    char *cache_key, *lock_key;
    char token[REDISSTATE_TOKEN_LEN + 1];
    int64_t newer_than_ms;
    int64_t deadline;
    bool owner;             /* the lock is ours */
    bool resolved;          /* fn ran */
    bool closed;            /* done, cancel or a VALUE verdict: the owner let go */
    bool counted_wait;
    uint64_t refused_hash;  /* the last value refused (FNV-1a): the same bytes read again */
    size_t refused_len;     /* are not decoded, or counted, twice */
    unsigned pending;       /* commands whose callbacks still point here */
    struct loop_timer *timer; /* waiting for a wake message or the holder's lock expiry */
    redisshare_claim_fn fn;
    void *arg;
};

/* A GET for an L1 entry another replica just refreshed. */
struct update {
    char *key;
    int64_t have_ms;
};

static struct {
    struct loop *loop;
    struct redis *cmd, *sub;
    struct redis_iam_renewer *iam;
    char *prefix;
    char *password_file;
    struct target iam_target;
    struct redisshare_claim *claims;
    redisshare_have_fn have;
    redisshare_update_fn update;
    uint64_t fallbacks, l2_hits, owned, waited, updates, mismatched, failed;
} g;

/* ---------------------------------------------------------------- claims */

/* Sharing needs both connections: without the subscriber nobody would be woken, and a
 * waiter would sit until the holder's lock expired. */
static bool sharing(void)
{
    return g.cmd && redis_is_up(g.cmd) && redis_is_up(g.sub);
}

static void claim_maybe_free(struct redisshare_claim *c)
{
    if (!c->closed || c->pending || c->timer)
        return;
    if (c->in_table)
        HASH_DEL(g.claims, c);
    free(c->key);
    free(c->cache_key);
    free(c->lock_key);
    free(c);
}

static void claim_resolve(struct redisshare_claim *c, enum redisshare_verdict v,
                          const struct redis_value *val)
{
    c->resolved = true;
    if (v == REDISSHARE_VALUE)
        c->closed = true; /* before fn: it may not touch the claim again */
    if (c->in_table && c->closed) {
        HASH_DEL(g.claims, c);
        c->in_table = false;
    }
    c->fn(c->arg, v, val);
    claim_maybe_free(c);
}

static void claim_fallback(struct redisshare_claim *c)
{
    if (c->timer) {
        loop_timer_stop(g.loop, c->timer);
        c->timer = NULL;
    }
    g.fallbacks++;
    c->owner = false;
    claim_resolve(c, REDISSHARE_FETCH, NULL);
}

/* A command answered with st: a failure is counted here unless redis.c counted it already
 * (a timeout, an error reply); what is left is a command lost with its connection. */
static void count_failure(ebsd_status st)
{
    if (st != EBSD_OK && st != EBSD_ETIMEDOUT && st != EBSD_EUPSTREAM)
        g.failed++;
}

static void on_fire_and_forget(struct redis *r, const redisReply *reply, ebsd_status st, void *arg)
{
    (void)r;
    (void)reply;
    (void)arg;
    count_failure(st);
}

static void on_released(ebsd_status st, bool done, void *arg)
{
    (void)done;
    (void)arg;
    count_failure(st);
}

static void release_lock(struct redisshare_claim *c)
{
    if (!c->owner)
        return;
    c->owner = false;
    if (redisstate_lock_release(g.cmd, g.prefix, c->lock_key, c->token, on_released, NULL) !=
        EBSD_OK)
        g.failed++; /* the lock expires by itself */
}

/* Whether a value read back from Redis may be served for c: valid (redisvalue.c checks the
 * fields), its ETag the one this body has (a value written by hand or by another program
 * that kept the format but not the body is refused), fresh, and as new as asked. */
static bool value_usable(const redisReply *rep, int64_t newer_than_ms, struct redis_value *v)
{
    if (!rep || rep->type != REDIS_REPLY_STRING)
        return false;
    if (redis_value_decode(rep->str, rep->len, REDIS_VALUE_MAX_BODY, v) != EBSD_OK)
        return false;
    char etag[CACHE_ETAG_SIZE];
    cache_etag(v->body, v->body_len, etag);
    if (v->etag_len != strlen(etag) || memcmp(v->etag, etag, v->etag_len) != 0 ||
        (v->status != 200 && v->status != 404)) {
        g.mismatched++;
        return false;
    }
    int64_t age = clock_wall_ms() - (int64_t)v->fetched_at_ms;
    if (age >= (int64_t)v->ttl_s * 1000)
        return false;
    return (int64_t)v->fetched_at_ms > newer_than_ms;
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static void claim_lock(struct redisshare_claim *c);

static void on_claim_get(struct redis *r, const redisReply *rep, ebsd_status st, void *arg)
{
    (void)r;
    struct redisshare_claim *c = arg;
    c->pending--;
    if (c->closed) {
        claim_maybe_free(c);
        return;
    }
    if (st != EBSD_OK) {
        count_failure(st);
        release_lock(c);
        claim_fallback(c);
        return;
    }
    struct redis_value v;
    bool seen = false;
    uint64_t h = 0;
    if (rep && rep->type == REDIS_REPLY_STRING) {
        h = fnv1a(rep->str, rep->len);
        seen = c->refused_len == rep->len && c->refused_hash == h;
    }
    if (!seen && value_usable(rep, c->newer_than_ms, &v)) {
        release_lock(c); /* another replica stored it while we took the lock */
        g.l2_hits++;
        claim_resolve(c, REDISSHARE_VALUE, &v);
        return;
    }
    if (rep && rep->type == REDIS_REPLY_STRING) {
        c->refused_hash = h;
        c->refused_len = rep->len;
    }
    if (c->owner) {
        g.owned++;
        claim_resolve(c, REDISSHARE_FETCH, NULL);
        return;
    }
    claim_lock(c);
}

static void claim_get(struct redisshare_claim *c)
{
    const char *argv[] = {"GET", c->cache_key};
    if (redis_command(g.cmd, 2, argv, NULL, on_claim_get, c) != EBSD_OK) {
        release_lock(c);
        claim_fallback(c);
        return;
    }
    c->pending++;
}

static void on_wait_over(struct loop *l, void *arg)
{
    (void)l;
    struct redisshare_claim *c = arg;
    c->timer = NULL;
    if (c->closed) {
        claim_maybe_free(c);
        return;
    }
    claim_get(c);
}

static void on_claim_lock(ebsd_status st, bool acquired, int64_t ttl_left_ms, void *arg)
{
    struct redisshare_claim *c = arg;
    c->pending--;
    if (c->closed) {
        if (st == EBSD_OK && acquired) {
            c->owner = true;
            release_lock(c);
        }
        claim_maybe_free(c);
        return;
    }
    if (st != EBSD_OK) {
        count_failure(st);
        claim_fallback(c);
        return;
    }
    if (acquired) {
        c->owner = true;
        claim_get(c); /* the holder before us may have stored it just now */
        return;
    }
    int64_t now = clock_now_ms();
    if (now >= c->deadline || !sharing()) {
        claim_fallback(c); /* nobody is left to wait for it */
        return;
    }
    if (!c->counted_wait) {
        c->counted_wait = true;
        g.waited++;
    }
    /* Woken by the holder's release (on_message); the timer covers a holder that died
     * (its lock expires) and a wake message lost while the subscriber reconnected. */
    int64_t wait = ttl_left_ms >= 0 ? ttl_left_ms : 200;
    c->timer = loop_timer_start(g.loop, now + wait + WAIT_MARGIN_MS, on_wait_over, c);
}

static uint32_t lock_ttl(int64_t deadline)
{
    int64_t ttl = deadline - clock_now_ms() + LOCK_MARGIN_MS;
    if (ttl < LOCK_MARGIN_MS)
        ttl = LOCK_MARGIN_MS;
    if (ttl > 3600 * 1000)
        ttl = 3600 * 1000;
    return (uint32_t)ttl;
}

static void claim_lock(struct redisshare_claim *c)
{
    if (redisstate_lock_acquire(g.cmd, c->lock_key, c->token, lock_ttl(c->deadline),
                                on_claim_lock, c) != EBSD_OK) {
        claim_fallback(c);
        return;
    }
    c->pending++;
}

struct redisshare_claim *redisshare_claim(const struct target *t, const char *key,
                                          int64_t newer_than_ms, bool check_first,
                                          int64_t deadline, redisshare_claim_fn fn, void *arg)
{
    if (!sharing())
        goto refused;
    const char *name = strchr(key, '|');
    if (!name)
        return NULL;
    name++;
    struct redisshare_claim *c = xcalloc(1, sizeof *c);
    c->cache_key = redisstate_key(g.prefix, t->account, t->region, "cache", name);
    c->lock_key = redisstate_key(g.prefix, t->account, t->region, "flight", name);
    if (!c->cache_key || !c->lock_key || redisstate_token(c->token) != EBSD_OK) {
        free(c->cache_key);
        free(c->lock_key);
        free(c);
        return NULL;
    }
    c->key = xstrdup(key);
    c->newer_than_ms = newer_than_ms;
    c->deadline = deadline;
    c->fn = fn;
    c->arg = arg;
    struct redisshare_claim *other;
    HASH_FIND_STR(g.claims, c->lock_key, other);
    if (!other) {
        HASH_ADD_KEYPTR(hh, g.claims, c->lock_key, strlen(c->lock_key), c);
        c->in_table = true;
    }
    const char *argv[] = {"GET", c->cache_key};
    ebsd_status st = check_first ? redis_command(g.cmd, 2, argv, NULL, on_claim_get, c)
                                 : redisstate_lock_acquire(g.cmd, c->lock_key, c->token,
                                                           lock_ttl(deadline), on_claim_lock, c);
    if (st != EBSD_OK) {
        c->closed = true;
        claim_maybe_free(c);
        goto refused;
    }
    c->pending++;
    return c;
refused:
    if (g.cmd)
        g.fallbacks++;
    return NULL;
}

void redisshare_done(struct redisshare_claim *c, const struct redis_value *v)
{
    if (!c)
        return;
    if (v && v->ttl_s > 0) {
        char *enc = NULL;
        size_t len = 0;
        if (redis_value_encode(v, &enc, &len) == EBSD_OK) {
            uint32_t keep = v->stale_if_error_s > v->stale_while_revalidate_s
                                ? v->stale_if_error_s
                                : v->stale_while_revalidate_s;
            char px[24];
            snprintf(px, sizeof px, "%llu", ((unsigned long long)v->ttl_s + keep) * 1000ULL);
            const char *argv[] = {"SET", c->cache_key, enc, "PX", px};
            size_t lens[] = {3, strlen(c->cache_key), len, 2, strlen(px)};
            /* the release below goes on the same connection after it: a woken replica
             * reads the new value */
            if (redis_command(g.cmd, 5, argv, lens, on_fire_and_forget, NULL) != EBSD_OK)
                g.failed++;
            free(enc);
        }
    }
    release_lock(c);
    c->closed = true;
    claim_maybe_free(c);
}

void redisshare_extend(struct redisshare_claim *c, int64_t deadline)
{
    if (!c || deadline <= c->deadline)
        return;
    c->deadline = deadline;
    if (c->owner && redisstate_lock_extend(g.cmd, c->lock_key, c->token, lock_ttl(deadline),
                                           on_released, NULL) != EBSD_OK)
        g.failed++;
}

void redisshare_cancel(struct redisshare_claim *c)
{
    if (!c)
        return;
    if (c->timer) {
        loop_timer_stop(g.loop, c->timer);
        c->timer = NULL;
    }
    release_lock(c);
    c->closed = true;
    claim_maybe_free(c);
}

/* ---------------------------------------------------------------- wake-ups and L1 updates */

static void on_update_get(struct redis *r, const redisReply *rep, ebsd_status st, void *arg)
{
    (void)r;
    struct update *u = arg;
    struct redis_value v;
    if (st != EBSD_OK)
        count_failure(st);
    else if (g.update && value_usable(rep, u->have_ms, &v)) {
        g.updates++;
        g.update(u->key, &v);
    }
    free(u->key);
    free(u);
}

/* "PREFIX{ACCOUNT:REGION}:flight:NAME" -> the L1 key "TARGETKEY|NAME" and the cache key. */
static bool parse_lock_key(const char *lock, size_t len, char **key, char **cache_key)
{
    size_t pl = strlen(g.prefix);
    if (len < pl + 4 || memcmp(lock, g.prefix, pl) != 0 || lock[pl] != '{')
        return false;
    const char *p = lock + pl + 1, *end = lock + len;
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *brace = memchr(p, '}', (size_t)(end - p));
    static const char kind[] = ":flight:";
    if (!colon || !brace || colon > brace || (size_t)(end - brace) <= sizeof kind ||
        memcmp(brace + 1, kind, sizeof kind - 1) != 0)
        return false;
    char account[32], region[32], name[256];
    if ((size_t)(colon - p) >= sizeof account || (size_t)(brace - colon - 1) >= sizeof region)
        return false;
    const char *n = brace + sizeof kind;
    if ((size_t)(end - n) >= sizeof name)
        return false;
    memcpy(account, p, (size_t)(colon - p));
    account[colon - p] = '\0';
    memcpy(region, colon + 1, (size_t)(brace - colon - 1));
    region[brace - colon - 1] = '\0';
    memcpy(name, n, (size_t)(end - n));
    name[end - n] = '\0';
    struct target t = target_make(account, region);
    char tk[80];
    target_key(&t, tk, sizeof tk);
    size_t kl = strlen(tk) + 1 + strlen(name) + 1;
    *cache_key = redisstate_key(g.prefix, account, region, "cache", name);
    if (!*cache_key)
        return false;
    *key = xmalloc(kl);
    snprintf(*key, kl, "%s|%s", tk, name);
    return true;
}

static void on_message(struct redis *r, const char *channel, size_t channel_len, const char *msg,
                       size_t msg_len, void *arg)
{
    (void)r;
    (void)msg;
    (void)msg_len;
    (void)arg;
    char head[300];
    int hl = snprintf(head, sizeof head, "%swake:", g.prefix);
    if (hl < 0 || (size_t)hl >= sizeof head || channel_len <= (size_t)hl ||
        memcmp(channel, head, (size_t)hl) != 0 || channel_len - (size_t)hl >= REDISSTATE_MAX_KEY)
        return;
    const char *lock = channel + hl;
    size_t lock_len = channel_len - (size_t)hl;
    struct redisshare_claim *c;
    HASH_FIND(hh, g.claims, lock, lock_len, c);
    if (c && c->timer && !c->closed) {
        loop_timer_stop(g.loop, c->timer);
        c->timer = NULL;
        claim_get(c);
        return;
    }
    if (c || !g.have || !g.update)
        return; /* our own claim is working on it */
    char *key = NULL, *cache_key = NULL;
    if (!parse_lock_key(lock, lock_len, &key, &cache_key))
        return;
    int64_t have_ms;
    if (g.have(key, &have_ms)) {
        struct update *u = xcalloc(1, sizeof *u);
        u->key = key;
        u->have_ms = have_ms;
        key = NULL;
        const char *argv[] = {"GET", cache_key};
        if (redis_command(g.cmd, 2, argv, NULL, on_update_get, u) != EBSD_OK) {
            free(u->key);
            free(u);
        }
    }
    free(key);
    free(cache_key);
}

/* Either connection down: nobody will be woken, and the commands fail anyway, so every
 * claim waiting on another replica fetches for itself now. */
static void on_state(struct redis *r, bool up, void *arg)
{
    (void)arg;
    log_info("redis", "%s connection %s", r == g.sub ? "pub/sub" : "command",
             up ? "up: sharing with the other replicas" : "down: fetching locally");
    if (up)
        return;
    struct redisshare_claim *c, *tmp;
    HASH_ITER(hh, g.claims, c, tmp) {
        if (c->timer && !c->closed)
            claim_fallback(c);
    }
}

/* ---------------------------------------------------------------- lifecycle */

static ebsd_status iam_creds(struct sigv4_credentials *out, void *arg)
{
    (void)arg;
    const struct creds *cr = credsvc_current(&g.iam_target);
    if (!cr || !cr->access_key_id[0])
        return EBSD_EAUTH;
    out->access_key_id = cr->access_key_id;
    out->secret_access_key = cr->secret_access_key;
    out->session_token = cr->session_token;
    return EBSD_OK;
}

static void wipe_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

ebsd_status redisshare_start(struct loop *l, const struct config *cfg)
{
    if (!cfg->redis_url || !*cfg->redis_url)
        return EBSD_OK;
    ebsd_status st;
    char *password = NULL;
    struct redis_options o = {0};
    char why[200];
    st = redis_url_parse(cfg->redis_url, &o.url, why, sizeof why);
    if (st != EBSD_OK) {
        log_error("redis", "redis.url: %s", why);
        goto out;
    }
    if (*cfg->redis_password_file) {
        st = redis_password_load(cfg->redis_password_file, &password);
        if (st != EBSD_OK) {
            log_error("redis", "cannot read redis.password_file %s: %s",
                      cfg->redis_password_file, status_str(st));
            goto out;
        }
    }
    g.loop = l;
    o.password = password;
    o.ca_file = cfg->redis_ca_file;
    o.connect_timeout_ms = cfg->redis_connect_timeout_ms;
    o.command_timeout_ms = cfg->redis_command_timeout_ms;
    o.name = "ebsd";
    st = redis_new(l, &o, &g.cmd);
    if (st != EBSD_OK)
        goto out;
    o.subscriber = true;
    o.name = "ebsd-sub";
    st = redis_new(l, &o, &g.sub);
    if (st != EBSD_OK)
        goto out;
    g.prefix = xstrdup(cfg->redis_key_prefix);
    g.password_file = xstrdup(cfg->redis_password_file);
    char *pattern = redisstate_wake_pattern(g.prefix);
    st = redis_subscribe(g.sub, pattern, true, on_message, NULL);
    free(pattern);
    if (st != EBSD_OK)
        goto out;
    redis_set_state_fn(g.cmd, on_state, NULL);
    redis_set_state_fn(g.sub, on_state, NULL);
    if (*cfg->redis_iam_user) {
        g.iam_target = target_make(NULL, cfg->regions[0]);
        struct redis_iam_params p = {.user = cfg->redis_iam_user,
                                     .cache = cfg->redis_iam_cache,
                                     .serverless = cfg->redis_iam_serverless,
                                     .region = cfg->regions[0]};
        struct redis *conns[2] = {g.cmd, g.sub};
        st = redis_iam_start(l, &p, iam_creds, NULL, conns, 2, 0, &g.iam);
        if (st != EBSD_OK) {
            log_error("redis", "no ElastiCache IAM token: %s", status_str(st));
            goto out;
        }
    }
    log_info("redis", "sharing the cache and single flight through %s (key prefix %s)",
             o.url.kind == REDIS_URL_UNIX ? o.url.path : o.url.host, g.prefix);
out:
    wipe_free(password);
    if (st != EBSD_OK)
        redisshare_stop();
    return st;
}

void redisshare_reload(const struct config *cfg)
{
    if (!g.cmd)
        return;
    if (strcmp(g.password_file, cfg->redis_password_file) != 0)
        log_warn("reload", "redis.password_file changed: it applies after a restart");
    if (strcmp(g.prefix, cfg->redis_key_prefix) != 0)
        log_warn("reload", "redis.key_prefix changed: it applies after a restart");
    if (!*g.password_file)
        return;
    char *password = NULL;
    if (redis_password_load(g.password_file, &password) != EBSD_OK) {
        log_error("reload", "keeping the Redis password: cannot read %s", g.password_file);
        return;
    }
    redis_set_auth(g.cmd, NULL, password, true);
    redis_set_auth(g.sub, NULL, password, false);
    wipe_free(password);
    log_info("reload", "Redis password re-read from %s", g.password_file);
}

void redisshare_stop(void)
{
    redis_iam_stop(g.iam);
    g.iam = NULL;
    /* pending commands fail with EBSD_ENETWORK: their claims see closed and free themselves */
    struct redisshare_claim *c, *tmp;
    HASH_ITER(hh, g.claims, c, tmp) {
        HASH_DEL(g.claims, c);
        c->in_table = false;
        if (c->timer) {
            loop_timer_stop(g.loop, c->timer);
            c->timer = NULL;
        }
        c->owner = false; /* the lock expires by itself */
        c->closed = true;
        if (!c->pending)
            claim_maybe_free(c);
    }
    struct redis *cmd = g.cmd, *sub = g.sub;
    g.cmd = g.sub = NULL;
    redis_free(cmd);
    redis_free(sub);
    free(g.prefix);
    g.prefix = NULL;
    free(g.password_file);
    g.password_file = NULL;
}

void redisshare_set_hooks(redisshare_have_fn have, redisshare_update_fn update)
{
    g.have = have;
    g.update = update;
}

void redisshare_get_stats(struct redisshare_stats *out)
{
    memset(out, 0, sizeof *out);
    out->enabled = g.cmd != NULL;
    out->fallbacks = g.fallbacks;
    out->l2_hits = g.l2_hits;
    out->owned = g.owned;
    out->waited = g.waited;
    out->updates = g.updates;
    out->rejected = redis_value_rejected() + g.mismatched;
    out->errors = g.failed;
    struct redis *conns[2] = {g.cmd, g.sub};
    for (int i = 0; i < 2; i++) {
        if (!conns[i])
            continue;
        struct redis_stats rs;
        redis_get_stats(conns[i], &rs);
        out->errors += rs.error_replies + rs.timeouts + rs.protocol_errors;
        out->connect_failures += rs.connect_failures;
    }
    out->up = g.cmd && redis_is_up(g.cmd);
    out->sub_up = g.sub && redis_is_up(g.sub);
}

struct redis *redisshare_connection(void)
{
    return g.cmd;
}

const char *redisshare_prefix(void)
{
    return g.prefix;
}
