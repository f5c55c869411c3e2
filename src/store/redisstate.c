/* redisstate.c - the shared-state primitives of src/store/redisstate.h: Lua scripts run
 * atomically in Redis (GCRA limiter, owner-only lock release/extend, replica count), each
 * sent as EVALSHA with one EVAL retry, and the key layout with one hash tag per target. */
#include "redisstate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "mem.h"

/* ------------------------------------------------------------------ scripts */

/* GCRA on Redis' clock, in microseconds. KEYS[1] budget; ARGV: emission interval T (us),
 * burst, cost. The key holds the theoretical arrival time (TAT) and lives as long as
 * there is a backlog. Numbers stay below 2^53 (us since 1970 ~ 1.8e15), exact in Lua.
 * string.format('%.0f') because tostring() would round a TAT to 14 digits. */
static const char gcra_src[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local T = tonumber(ARGV[1])\n"
    "local tau = T * tonumber(ARGV[2])\n"
    "local cost = tonumber(ARGV[3])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
    "if tat < now then tat = now end\n"
    "local new_tat = tat + T * cost\n"
    "local allow_at = new_tat - tau\n"
    "if allow_at > now then\n"
    "  return {0, math.ceil((allow_at - now) / 1000)}\n"
    "end\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',\n"
    "           math.ceil((new_tat - now) / 1000) + 1)\n"
    "return {1, 0}\n";

/* KEYS[1] lock; ARGV: token, ttl ms. -3 = taken; else the holder's PTTL (-1 = none). */
static const char acquire_src[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
    "  return -3\n"
    "end\n"
    "return redis.call('PTTL', KEYS[1])\n";

/* KEYS[1] lock; ARGV: token, wake channel, message. */
static const char release_src[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('PUBLISH', ARGV[2], ARGV[3])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* KEYS[1] lock; ARGV: token, ttl ms. */
static const char extend_src[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 0\n";

/* KEYS[1] replicas; ARGV: id, ttl ms ("" = withdraw). Scores are expiry times on Redis'
 * clock; the set itself expires when no replica announces any more. */
static const char announce_src[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "if ARGV[2] == '' then\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "else\n"
    "  local ttl = tonumber(ARGV[2])\n"
    "  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])\n"
    "  redis.call('PEXPIRE', KEYS[1], ttl * 2)\n"
    "end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "return redis.call('ZCARD', KEYS[1])\n";

struct script {
    const char *src;
    char sha[41];
};

static struct script gcra = {gcra_src, ""};
static struct script acquire = {acquire_src, ""};
static struct script release = {release_src, ""};
static struct script extend = {extend_src, ""};
static struct script announce = {announce_src, ""};

static const char *script_sha(struct script *s)
{
    if (!s->sha[0]) {
        unsigned char d[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)s->src, strlen(s->src), d);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(s->sha + 2 * i, 3, "%02x", d[i]);
    }
    return s->sha;
}

#define EVAL_MAX_ARGS 8

/* One script call in flight: what it needs to go again as EVAL, and whom to tell. */
struct eval {
    struct script *script;
    int nargs;                  /* KEYS then ARGV */
    char *args[EVAL_MAX_ARGS];
    int nkeys;
    bool retried;
    void (*done)(struct eval *e, const redisReply *reply, ebsd_status st);
    void *fn;                   /* the caller's callback, cast back by done */
    void *arg;
};

static void eval_free(struct eval *e)
{
    for (int i = 0; i < e->nargs; i++)
        free(e->args[i]);
    free(e);
}

static ebsd_status eval_send(struct redis *r, struct eval *e);

static void eval_reply(struct redis *r, const redisReply *reply, ebsd_status st, void *arg)
{
    struct eval *e = arg;
    if (st == EBSD_EUPSTREAM && !e->retried && reply && reply->str &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        e->retried = true;
        if (eval_send(r, e) == EBSD_OK)
            return;
        st = EBSD_ENETWORK;
        reply = NULL;
    }
    e->done(e, reply, st);
    eval_free(e);
}

static ebsd_status eval_send(struct redis *r, struct eval *e)
{
    const char *argv[3 + EVAL_MAX_ARGS];
    char nkeys[8];
    snprintf(nkeys, sizeof nkeys, "%d", e->nkeys);
    argv[0] = e->retried ? "EVAL" : "EVALSHA";
    argv[1] = e->retried ? e->script->src : script_sha(e->script);
    argv[2] = nkeys;
    for (int i = 0; i < e->nargs; i++)
        argv[3 + i] = e->args[i];
    return redis_command(r, 3 + e->nargs, argv, NULL, eval_reply, e);
}

/* Starts a script call; on failure frees e (fn will not run). */
static ebsd_status eval_start(struct redis *r, struct eval *e)
{
    ebsd_status st = eval_send(r, e);
    if (st != EBSD_OK)
        eval_free(e);
    return st;
}

static struct eval *eval_new(struct script *s, int nkeys, void (*done)(struct eval *,
                             const redisReply *, ebsd_status), void *fn, void *arg)
{
    struct eval *e = xcalloc(1, sizeof *e);
    e->script = s;
    e->nkeys = nkeys;
    e->done = done;
    e->fn = fn;
    e->arg = arg;
    return e;
}

static void eval_arg(struct eval *e, char *owned)
{
    if (e->nargs < EVAL_MAX_ARGS)
        e->args[e->nargs++] = owned;
    else
        free(owned);
}

/* ------------------------------------------------------------------ keys */

static bool part_ok(const char *s, bool may_be_empty)
{
    if (!s || (!*s && !may_be_empty))
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '{' || *s == '}')
            return false;
    return true;
}

char *redisstate_key(const char *prefix, const char *account, const char *region,
                     const char *kind, const char *name)
{
    if (!part_ok(prefix, true) || !part_ok(account, false) || !part_ok(region, false) ||
        !part_ok(kind, false) || (name && !part_ok(name, false)))
        return NULL;
    char *k = name ? xasprintf("%s{%s:%s}:%s:%s", prefix, account, region, kind, name)
                   : xasprintf("%s{%s:%s}:%s", prefix, account, region, kind);
    if (strlen(k) > REDISSTATE_MAX_KEY) {
        free(k);
        return NULL;
    }
    return k;
}

/* ------------------------------------------------------------------ limiter */

static void limit_done(struct eval *e, const redisReply *reply, ebsd_status st)
{
    redisstate_limit_fn fn = (redisstate_limit_fn)e->fn;
    if (st != EBSD_OK) {
        fn(st, false, 0, e->arg);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER || reply->element[1]->integer < 0) {
        fn(EBSD_EPARSE, false, 0, e->arg);
        return;
    }
    fn(EBSD_OK, reply->element[0]->integer == 1, reply->element[1]->integer, e->arg);
}

ebsd_status redisstate_limit_take(struct redis *r, const char *key, double rate, double burst,
                                  unsigned cost, redisstate_limit_fn fn, void *arg)
{
    if (!key || !fn || !(rate > 0 && rate <= 1e6) || !(burst >= 1 && burst <= 1e6) ||
        cost < 1 || cost > burst)
        return EBSD_EINVAL;
    struct eval *e = eval_new(&gcra, 1, limit_done, (void *)fn, arg);
    eval_arg(e, xstrdup(key));
    eval_arg(e, xasprintf("%.0f", ceil(1e6 / rate)));
    eval_arg(e, xasprintf("%.0f", floor(burst)));
    eval_arg(e, xasprintf("%u", cost));
    return eval_start(r, e);
}

/* ------------------------------------------------------------------ lock */

ebsd_status redisstate_token(char out[REDISSTATE_TOKEN_LEN + 1])
{
    unsigned char raw[REDISSTATE_TOKEN_LEN / 2];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return EBSD_EIO;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return EBSD_OK;
}

static void acquire_done(struct eval *e, const redisReply *reply, ebsd_status st)
{
    redisstate_lock_fn fn = (redisstate_lock_fn)e->fn;
    if (st != EBSD_OK) {
        fn(st, false, -1, e->arg);
        return;
    }
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer < -3) {
        fn(EBSD_EPARSE, false, -1, e->arg);
        return;
    }
    if (reply->integer == -3)
        fn(EBSD_OK, true, -1, e->arg);
    else
        fn(EBSD_OK, false, reply->integer >= 0 ? reply->integer : -1, e->arg);
}

ebsd_status redisstate_lock_acquire(struct redis *r, const char *key, const char *token,
                                    uint32_t ttl_ms, redisstate_lock_fn fn, void *arg)
{
    if (!key || !token || !*token || !fn || ttl_ms == 0)
        return EBSD_EINVAL;
    struct eval *e = eval_new(&acquire, 1, acquire_done, (void *)fn, arg);
    eval_arg(e, xstrdup(key));
    eval_arg(e, xstrdup(token));
    eval_arg(e, xasprintf("%u", ttl_ms));
    return eval_start(r, e);
}

static void done_result(struct eval *e, const redisReply *reply, ebsd_status st)
{
    redisstate_done_fn fn = (redisstate_done_fn)e->fn;
    if (!fn)
        return;
    if (st != EBSD_OK) {
        fn(st, false, e->arg);
        return;
    }
    if (reply->type != REDIS_REPLY_INTEGER) {
        fn(EBSD_EPARSE, false, e->arg);
        return;
    }
    fn(EBSD_OK, reply->integer == 1, e->arg);
}

ebsd_status redisstate_lock_release(struct redis *r, const char *prefix, const char *key,
                                    const char *token, redisstate_done_fn fn, void *arg)
{
    if (!prefix || !key || !token || !*token)
        return EBSD_EINVAL;
    struct eval *e = eval_new(&release, 1, done_result, (void *)fn, arg);
    eval_arg(e, xstrdup(key));
    eval_arg(e, xstrdup(token));
    eval_arg(e, xasprintf("%swake:%s", prefix, key));
    eval_arg(e, xstrdup("released"));
    return eval_start(r, e);
}

ebsd_status redisstate_lock_extend(struct redis *r, const char *key, const char *token,
                                   uint32_t ttl_ms, redisstate_done_fn fn, void *arg)
{
    if (!key || !token || !*token || ttl_ms == 0)
        return EBSD_EINVAL;
    struct eval *e = eval_new(&extend, 1, done_result, (void *)fn, arg);
    eval_arg(e, xstrdup(key));
    eval_arg(e, xstrdup(token));
    eval_arg(e, xasprintf("%u", ttl_ms));
    return eval_start(r, e);
}

char *redisstate_wake_pattern(const char *prefix)
{
    return xasprintf("%swake:*", prefix ? prefix : "");
}

/* ------------------------------------------------------------------ replicas */

static void count_done(struct eval *e, const redisReply *reply, ebsd_status st)
{
    redisstate_count_fn fn = (redisstate_count_fn)e->fn;
    if (!fn)
        return;
    if (st != EBSD_OK) {
        fn(st, 0, e->arg);
        return;
    }
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 0) {
        fn(EBSD_EPARSE, 0, e->arg);
        return;
    }
    fn(EBSD_OK, reply->integer, e->arg);
}

static ebsd_status announce_call(struct redis *r, const char *prefix, const char *id,
                                 const char *ttl, redisstate_count_fn fn, void *arg)
{
    if (!part_ok(prefix, true) || !part_ok(id, false) || strlen(id) > 128)
        return EBSD_EINVAL;
    struct eval *e = eval_new(&announce, 1, count_done, (void *)fn, arg);
    eval_arg(e, xasprintf("%sreplicas", prefix));
    eval_arg(e, xstrdup(id));
    eval_arg(e, xstrdup(ttl));
    return eval_start(r, e);
}

ebsd_status redisstate_announce(struct redis *r, const char *prefix, const char *id,
                                uint32_t ttl_ms, redisstate_count_fn fn, void *arg)
{
    if (!fn || ttl_ms == 0)
        return EBSD_EINVAL;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", ttl_ms);
    return announce_call(r, prefix, id, ttl, fn, arg);
}

ebsd_status redisstate_withdraw(struct redis *r, const char *prefix, const char *id,
                                redisstate_count_fn fn, void *arg)
{
    return announce_call(r, prefix, id, "", fn, arg);
}
