/* budgetshare.c - the EC2 budget across replicas: the parent refills limiter.c's buckets
 * from Redis grants, or by time at its share of the rate while Redis is lost (see
 * budgetshare.h). */
#include "budgetshare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "limiter.h"
#include "log.h"
#include "mem.h"
#include "redis.h"
#include "redisshare.h"
#include "redisstate.h"
#include "retry.h"

#define TICK_MS 100          /* how often buckets are refilled, on average */
#define ANNOUNCE_EVERY 10    /* ticks between two announcements (1 s) */
#define ANNOUNCE_TTL_MS 3000 /* a replica silent this long is not counted */

/* One target x action class the parent refills. */
struct bucket {
    struct target t;
    enum limiter_class c;
    char *key;          /* PREFIX{ACCOUNT:REGION}:budget:ACTION */
    bool asking;        /* a grant is in flight: its answer moves last_us */
    unsigned asked;     /* the tokens it asks for */
    int64_t last_us;    /* up to when this bucket has been refilled (grant or time) */
};

static struct {
    struct loop *loop;
    struct loop_timer *timer;
    bool on;
    unsigned ticks;
    bool announcing;
    char id[160];
    double rate, burst;
    unsigned hint, live; /* live: 0 until a count was read */
    struct bucket b[LIMITER_MAX]; /* one per bucket of the limiter */
    unsigned nb;
    uint64_t granted, refused, failed, tokens_granted, local_refills;
    struct retry_rng rng; /* the ticks' jitter */
} g;

unsigned budgetshare_ask(double tokens, double local_burst)
{
    double room = floor(local_burst - tokens + 1e-9);
    double most = local_burst >= 1 ? floor(local_burst) : 1;
    if (!(room >= 1))
        return 0;
    return (unsigned)(room < most ? room : most);
}

int64_t budgetshare_tick_ms(double u)
{
    if (!(u >= 0) || u >= 1)
        u = 0.5;
    return TICK_MS / 2 + (int64_t)(u * TICK_MS);
}

unsigned budgetshare_partial(unsigned n, int64_t wait_ms, double rate)
{
    if (!(rate > 0) || wait_ms < 0)
        return 0;
    double interval_us = ceil(1e6 / rate); /* the emission interval the script uses */
    double owed = ceil((double)wait_ms * 1000.0 / interval_us);
    return owed < (double)n ? n - (unsigned)owed : 0;
}

/* The replicas the budget is split among: the count last read, or the hint. */
static unsigned share(void)
{
    unsigned n = g.live ? g.live : g.hint;
    return n ? n : 1;
}

static void apply_share(void)
{
    limiter_set_share(share());
}

/* Redis is lost for this bucket: it gets the time since its last refill at this
 * replica's share of the rate. */
static void refill_by_time(struct bucket *b, int64_t now)
{
    if (now > b->last_us && g.rate > 0) {
        limiter_refill(&b->t, b->c, (double)(now - b->last_us) / 1e6 * g.rate / share());
        g.local_refills++;
    }
    b->last_us = now;
}

static void ask(struct bucket *b, unsigned n);

static void on_grant(ebsd_status st, bool allowed, int64_t wait_ms, void *arg)
{
    struct bucket *b = arg;
    b->asking = false;
    if (!g.on)
        return; /* stopped: the buckets are back on time refill */
    int64_t now = clock_now_us();
    if (st != EBSD_OK) {
        g.failed++;
        refill_by_time(b, now);
        return;
    }
    b->last_us = now;
    if (allowed) {
        g.granted++;
        g.tokens_granted += b->asked;
        limiter_refill(&b->t, b->c, (double)b->asked);
        return;
    }
    unsigned part = budgetshare_partial(b->asked, wait_ms, g.rate);
    if (part > 0) {
        ask(b, part); /* what the shared budget has now, rather than nothing until then */
        return;
    }
    g.refused++;
}

static void ask(struct bucket *b, unsigned n)
{
    struct redis *r = redisshare_connection();
    b->asked = n;
    if (r && redisstate_limit_take(r, b->key, g.rate, g.burst, n, on_grant, b) == EBSD_OK) {
        b->asking = true;
        return;
    }
    g.failed++; /* refused on the spot (down) or not askable: never wait for it */
    refill_by_time(b, clock_now_us());
}

static struct bucket *bucket_for(const struct target *t, enum limiter_class c, int64_t now)
{
    for (unsigned i = 0; i < g.nb; i++)
        if (g.b[i].c == c && target_equal(&g.b[i].t, t))
            return &g.b[i];
    if (g.nb == LIMITER_MAX)
        return NULL;
    char *key = redisstate_key(redisshare_prefix(), t->account, t->region, "budget",
                               limiter_class_name(c));
    if (!key)
        return NULL;
    struct bucket *b = &g.b[g.nb++];
    memset(b, 0, sizeof *b);
    b->t = *t;
    b->c = c;
    b->key = key;
    b->last_us = now;
    return b;
}

struct tick {
    int64_t now;
    bool up;
};

static void visit(void *arg, const struct target *t, enum limiter_class c, double tokens,
                  uint64_t waits, uint64_t refusals)
{
    (void)waits;
    (void)refusals;
    const struct tick *k = arg;
    struct bucket *b = bucket_for(t, c, k->now);
    if (!b || b->asking)
        return;
    if (!k->up) {
        refill_by_time(b, k->now);
        return;
    }
    unsigned n = budgetshare_ask(tokens, limiter_local_burst());
    if (n == 0) {
        b->last_us = k->now; /* full: nothing to ask, nothing owed by time */
        return;
    }
    ask(b, n);
}

static void on_count(ebsd_status st, int64_t count, void *arg)
{
    (void)arg;
    g.announcing = false;
    if (!g.on || st != EBSD_OK || count < 1)
        return; /* keep the count last read */
    unsigned n = count > 100000 ? 100000 : (unsigned)count;
    if (n != g.live)
        log_info("budget", "%u replica%s share the EC2 budget", n, n == 1 ? "" : "s");
    g.live = n;
    apply_share();
}

static void announce(void)
{
    struct redis *r = redisshare_connection();
    if (!r || g.announcing || !redis_is_up(r))
        return;
    if (redisstate_announce(r, redisshare_prefix(), g.id, ANNOUNCE_TTL_MS, on_count, NULL) ==
        EBSD_OK)
        g.announcing = true;
}

static void on_tick(struct loop *l, void *arg)
{
    (void)arg;
    g.timer = NULL;
    if (!g.on)
        return;
    if (g.ticks++ % ANNOUNCE_EVERY == 0)
        announce();
    if (limiter_enabled()) {
        struct redis *r = redisshare_connection();
        struct tick k = {.now = clock_now_us(), .up = r && redis_is_up(r)};
        limiter_foreach(k.now, visit, &k);
    }
    g.timer = loop_timer_start(l, clock_now_ms() + budgetshare_tick_ms(retry_rng_uniform(&g.rng)),
                               on_tick, NULL);
}

void budgetshare_configure(const struct config *cfg)
{
    g.rate = cfg->rate_limit;
    g.burst = cfg->rate_burst >= 1 ? cfg->rate_burst : 1;
    g.hint = cfg->redis_replicas_hint ? cfg->redis_replicas_hint : 1;
    if (g.on)
        apply_share();
}

/* A replica id for the announcements: host, pid and random bits (no credential). */
static void make_id(void)
{
    char host[64] = "";
    char token[REDISSTATE_TOKEN_LEN + 1] = "";
    if (gethostname(host, sizeof host) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '{' || *p == '}')
            *p = '_';
    if (redisstate_token(token) != EBSD_OK)
        snprintf(token, sizeof token, "%lld", (long long)clock_now_us());
    snprintf(g.id, sizeof g.id, "%s-%ld-%.12s", host[0] ? host : "ebsd", (long)getpid(), token);
}

void budgetshare_start(struct loop *l, const struct config *cfg)
{
    if (g.on || !redisshare_connection())
        return;
    g.loop = l;
    budgetshare_configure(cfg);
    make_id();
    g.on = true;
    g.ticks = 0;
    g.live = 0;
    limiter_set_refilled(true, clock_now_us());
    apply_share();
    g.timer = loop_timer_start(l, clock_now_ms(), on_tick, NULL);
    log_info("budget", "the EC2 budget (%g calls/s, burst %g per target and action) is shared "
             "through Redis; until a replica count is read, %u replica%s assumed",
             g.rate, g.burst, g.hint, g.hint == 1 ? " is" : "s are");
}

void budgetshare_stop(void)
{
    if (!g.on)
        return;
    g.on = false;
    if (g.timer)
        loop_timer_stop(g.loop, g.timer);
    g.timer = NULL;
    struct redis *r = redisshare_connection();
    if (r && redis_is_up(r) &&
        redisstate_withdraw(r, redisshare_prefix(), g.id, NULL, NULL) != EBSD_OK)
        log_debug("budget", "could not withdraw %s: its announcement expires by itself", g.id);
    limiter_set_refilled(false, clock_now_us());
    limiter_set_share(1);
    /* answers still in flight find g.on false and the buckets' keys unused */
    for (unsigned i = 0; i < g.nb; i++) {
        free(g.b[i].key);
        g.b[i].key = NULL;
    }
    g.nb = 0;
}

void budgetshare_get_stats(struct budgetshare_stats *out)
{
    memset(out, 0, sizeof *out);
    out->enabled = g.on;
    out->granted = g.granted;
    out->refused = g.refused;
    out->failed = g.failed;
    out->tokens_granted = g.tokens_granted;
    out->local_refills = g.local_refills;
    out->live_replicas = share();
}
