/* faults.c - latency, rate limit and fault injection settings and the seeded draw. */
#include "faults.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"

#define MAX_ACTION_LATENCIES 16
#define MAX_NEXT 64

struct latency {
    char action[64]; /* "" = every action */
    int ms;
    int jitter_ms;
};

struct settings {
    uint64_t seed;
    struct latency all;
    struct latency per_action[MAX_ACTION_LATENCIES];
    size_t nper_action;
    double rate_bucket; /* 0 = no limit */
    double rate_refill; /* tokens per second */
    double p[FAULT_NKINDS];
    int hang_max_ms;
    bool region_disabled; /* every call is AuthFailure, as in a region not enabled */
    enum fault_kind next[MAX_NEXT]; /* the fates of the next calls, in order, before any draw */
    size_t nnext;
};

/* Settings for the requests of one account, one region or both ("" = any); scopes[0] is
 * the global one, the others override it for the requests they select. */
struct scope {
    char account[16];
    char region[32];
    struct settings s;
    double tokens;
    int64_t last_refill_us;
};

#define MAX_SCOPES 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct scope scopes[MAX_SCOPES];
static size_t nscopes = 1;
static uint64_t seq;

static const char *const kind_names[FAULT_NKINDS] = {"none", "throttle", "disabled", "500", "503",
                                                     "hang", "truncate", "malformed", "reset"};
/* JSON keys of the probabilities, by kind (throttle is the bucket, not a probability). */
static const char *const p_keys[FAULT_NKINDS] = {NULL,     NULL, NULL,   "p_500",       "p_503",
                                                 "p_hang", "p_truncate", "p_malformed", "p_reset"};

const char *fault_kind_name(enum fault_kind k) { return kind_names[k]; }

void faults_init(uint64_t seed)
{
    pthread_mutex_lock(&lock);
    memset(scopes, 0, sizeof scopes);
    nscopes = 1;
    scopes[0].s.seed = seed;
    scopes[0].s.hang_max_ms = 120000;
    seq = 0;
    scopes[0].last_refill_us = clock_now_us();
    pthread_mutex_unlock(&lock);
}

static bool num(const cJSON *o, const char *key, double lo, double hi, double *out, char *errbuf,
                size_t errlen, bool *bad)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it)
        return false;
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= lo && it->valuedouble <= hi)) {
        snprintf(errbuf, errlen, "%s must be a number in [%g, %g]", key, lo, hi);
        *bad = true;
        return false;
    }
    *out = it->valuedouble;
    return true;
}

static bool parse_latency(const cJSON *o, struct latency *l, char *errbuf, size_t errlen)
{
    bool bad = false;
    double v;
    if (cJSON_IsNumber(o)) {
        if (o->valuedouble < 0 || o->valuedouble > 600000) {
            snprintf(errbuf, errlen, "latency must be 0..600000 ms");
            return false;
        }
        l->ms = (int)o->valuedouble;
        return true;
    }
    if (!cJSON_IsObject(o)) {
        snprintf(errbuf, errlen, "latency entries are numbers or {\"ms\", \"jitter_ms\"}");
        return false;
    }
    if (num(o, "ms", 0, 600000, &v, errbuf, errlen, &bad))
        l->ms = (int)v;
    if (num(o, "jitter_ms", 0, 600000, &v, errbuf, errlen, &bad))
        l->jitter_ms = (int)v;
    return !bad;
}

ebsd_status faults_apply_json(const cJSON *patch, char *errbuf, size_t errlen)
{
    if (!cJSON_IsObject(patch)) {
        snprintf(errbuf, errlen, "the body must be a JSON object");
        return EBSD_EINVAL;
    }
    const cJSON *sel_a = cJSON_GetObjectItemCaseSensitive(patch, "account");
    const cJSON *sel_r = cJSON_GetObjectItemCaseSensitive(patch, "region");
    if ((sel_a && (!cJSON_IsString(sel_a) || strlen(sel_a->valuestring) >= 16)) ||
        (sel_r && (!cJSON_IsString(sel_r) || strlen(sel_r->valuestring) >= 32))) {
        snprintf(errbuf, errlen, "account and region select a scope: short strings");
        return EBSD_EINVAL;
    }
    const char *acc = sel_a ? sel_a->valuestring : "", *reg = sel_r ? sel_r->valuestring : "";
    bool scoped = *acc || *reg;
    if (scoped && cJSON_GetObjectItemCaseSensitive(patch, "seed")) {
        snprintf(errbuf, errlen, "the seed is global: set it without account or region");
        return EBSD_EINVAL;
    }
    pthread_mutex_lock(&lock);
    size_t target = 0;
    if (scoped) {
        target = 1;
        while (target < nscopes && (strcmp(scopes[target].account, acc) != 0 ||
                                    strcmp(scopes[target].region, reg) != 0))
            target++;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(patch, "remove"))) {
            if (target < nscopes)
                scopes[target] = scopes[--nscopes];
            pthread_mutex_unlock(&lock);
            return EBSD_OK;
        }
        if (target == nscopes && nscopes == MAX_SCOPES) {
            snprintf(errbuf, errlen, "more than %d fault scopes", MAX_SCOPES - 1);
            pthread_mutex_unlock(&lock);
            return EBSD_EINVAL;
        }
    }
    /* A new scope starts from the global settings. */
    struct settings s = target < nscopes ? scopes[target].s : scopes[0].s;
    bool bad = false, reseed = false;
    double v;
    const cJSON *it;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(patch, "clear"))) {
        uint64_t seed = s.seed;
        memset(&s, 0, sizeof s);
        s.seed = seed;
        s.hang_max_ms = 120000;
    }
    if (num(patch, "seed", 0, 9007199254740991.0, &v, errbuf, errlen, &bad)) {
        s.seed = (uint64_t)v;
        reseed = true;
    }
    if (num(patch, "latency_ms", 0, 600000, &v, errbuf, errlen, &bad))
        s.all.ms = (int)v;
    if (num(patch, "jitter_ms", 0, 600000, &v, errbuf, errlen, &bad))
        s.all.jitter_ms = (int)v;
    if (num(patch, "rate_bucket", 0, 1e9, &v, errbuf, errlen, &bad))
        s.rate_bucket = v;
    if (num(patch, "rate_refill", 0, 1e9, &v, errbuf, errlen, &bad))
        s.rate_refill = v;
    if (num(patch, "hang_max_ms", 0, 600000, &v, errbuf, errlen, &bad))
        s.hang_max_ms = (int)v;
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(patch, "next");
    if (next && !bad) {
        bool ok = cJSON_IsArray(next) && cJSON_GetArraySize(next) <= MAX_NEXT;
        s.nnext = 0;
        cJSON_ArrayForEach(it, next)
        {
            int k = FAULT_THROTTLE;
            while (k < FAULT_NKINDS &&
                   !(cJSON_IsString(it) && strcmp(it->valuestring, kind_names[k]) == 0))
                k++;
            ok = ok && k < FAULT_NKINDS && k != FAULT_DISABLED;
            if (ok)
                s.next[s.nnext++] = (enum fault_kind)k;
        }
        if (!ok) {
            snprintf(errbuf, errlen, "next is a list of up to %d of throttle, 500, 503, hang, "
                                     "truncate, malformed, reset", MAX_NEXT);
            bad = true;
        }
    }
    const cJSON *dis = cJSON_GetObjectItemCaseSensitive(patch, "region_disabled");
    if (dis && !cJSON_IsBool(dis)) {
        snprintf(errbuf, errlen, "region_disabled must be true or false");
        bad = true;
    } else if (dis) {
        s.region_disabled = cJSON_IsTrue(dis);
    }
    for (int k = 0; k < FAULT_NKINDS; k++)
        if (p_keys[k] && num(patch, p_keys[k], 0, 1, &v, errbuf, errlen, &bad))
            s.p[k] = v;
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(patch, "latency");
    if (lat && !bad) {
        if (!cJSON_IsObject(lat)) {
            snprintf(errbuf, errlen, "latency must be an object {Action: ms or {ms, jitter_ms}}");
            bad = true;
        }
        cJSON_ArrayForEach(it, lat)
        {
            if (bad)
                break;
            size_t i = 0;
            while (i < s.nper_action && strcmp(s.per_action[i].action, it->string) != 0)
                i++;
            if (i == s.nper_action) {
                if (s.nper_action == MAX_ACTION_LATENCIES || strlen(it->string) >= 64) {
                    snprintf(errbuf, errlen, "too many or too long latency actions");
                    bad = true;
                    break;
                }
                memset(&s.per_action[i], 0, sizeof s.per_action[i]);
                snprintf(s.per_action[i].action, sizeof s.per_action[i].action, "%s",
                         it->string);
                s.nper_action++;
            }
            if (!parse_latency(it, &s.per_action[i], errbuf, errlen))
                bad = true;
        }
    }
    double total = 0;
    for (int k = 0; k < FAULT_NKINDS; k++)
        total += s.p[k];
    if (!bad && total > 1.0 + 1e-9) {
        snprintf(errbuf, errlen, "the fault probabilities add up to more than 1");
        bad = true;
    }
    if (!bad) {
        bool created = target == nscopes;
        if (created) {
            memset(&scopes[target], 0, sizeof scopes[target]);
            snprintf(scopes[target].account, sizeof scopes[target].account, "%s", acc);
            snprintf(scopes[target].region, sizeof scopes[target].region, "%s", reg);
            nscopes++;
        }
        struct scope *sc = &scopes[target];
        bool bucket_changed = created || s.rate_bucket != sc->s.rate_bucket;
        sc->s = s;
        if (reseed)
            seq = 0;
        if (bucket_changed) {
            sc->tokens = s.rate_bucket;
            sc->last_refill_us = clock_now_us();
        }
        if (!scoped && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(patch, "clear")))
            nscopes = 1; /* a global clear drops the scopes too */
    }
    pthread_mutex_unlock(&lock);
    return bad ? EBSD_EINVAL : EBSD_OK;
}

static void settings_json(cJSON *o, const struct settings *sp)
{
    struct settings s = *sp;
    cJSON_AddNumberToObject(o, "latency_ms", s.all.ms);
    cJSON_AddNumberToObject(o, "jitter_ms", s.all.jitter_ms);
    cJSON *lat = cJSON_AddObjectToObject(o, "latency");
    for (size_t i = 0; i < s.nper_action; i++) {
        cJSON *l = cJSON_AddObjectToObject(lat, s.per_action[i].action);
        cJSON_AddNumberToObject(l, "ms", s.per_action[i].ms);
        cJSON_AddNumberToObject(l, "jitter_ms", s.per_action[i].jitter_ms);
    }
    cJSON_AddNumberToObject(o, "rate_bucket", s.rate_bucket);
    cJSON_AddNumberToObject(o, "rate_refill", s.rate_refill);
    for (int k = 0; k < FAULT_NKINDS; k++)
        if (p_keys[k])
            cJSON_AddNumberToObject(o, p_keys[k], s.p[k]);
    cJSON_AddNumberToObject(o, "hang_max_ms", s.hang_max_ms);
    cJSON_AddBoolToObject(o, "region_disabled", s.region_disabled);
    cJSON *next = cJSON_AddArrayToObject(o, "next");
    for (size_t i = 0; i < s.nnext; i++)
        cJSON_AddItemToArray(next, cJSON_CreateString(kind_names[s.next[i]]));
}

cJSON *faults_to_json(void)
{
    pthread_mutex_lock(&lock);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seed", (double)scopes[0].s.seed);
    settings_json(o, &scopes[0].s);
    cJSON *arr = cJSON_AddArrayToObject(o, "scopes");
    for (size_t i = 1; i < nscopes; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "account", scopes[i].account);
        cJSON_AddStringToObject(e, "region", scopes[i].region);
        settings_json(e, &scopes[i].s);
        cJSON_AddItemToArray(arr, e);
    }
    pthread_mutex_unlock(&lock);
    return o;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double unit(uint64_t x) { return (double)(x >> 11) / 9007199254740992.0; }

/* The scope for a request: account and region both matching, then the region, then the
 * account, then the global one. Called with the lock held. */
static struct scope *scope_for(const char *account, const char *region)
{
    size_t best = 0;
    int best_rank = 0;
    for (size_t i = 1; i < nscopes; i++) {
        const struct scope *sc = &scopes[i];
        bool a = !sc->account[0] || (account && strcmp(sc->account, account) == 0);
        bool r = !sc->region[0] || (region && strcmp(sc->region, region) == 0);
        if (!a || !r)
            continue;
        int rank = (sc->account[0] && sc->region[0]) ? 3 : sc->region[0] ? 2 : 1;
        if (rank > best_rank) {
            best = i;
            best_rank = rank;
        }
    }
    return &scopes[best];
}

void faults_plan(const char *action, const char *account, const char *region,
                 struct fault_plan *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&lock);
    uint64_t n = seq++;
    struct scope *sc = scope_for(account, region);
    const struct settings *st = &sc->s;
    if (st->region_disabled) { /* refused before it costs a token */
        pthread_mutex_unlock(&lock);
        out->kind = FAULT_DISABLED;
        return;
    }
    struct latency l = st->all;
    for (size_t i = 0; action && i < st->nper_action; i++)
        if (strcmp(st->per_action[i].action, action) == 0)
            l = st->per_action[i];
    enum fault_kind queued = FAULT_NONE;
    if (sc->s.nnext) {
        queued = sc->s.next[0];
        memmove(sc->s.next, sc->s.next + 1, --sc->s.nnext * sizeof sc->s.next[0]);
    }
    bool throttled = queued == FAULT_THROTTLE;
    if (st->rate_bucket > 0 && queued == FAULT_NONE) {
        int64_t now = clock_now_us();
        sc->tokens += (double)(now - sc->last_refill_us) / 1e6 * st->rate_refill;
        if (sc->tokens > st->rate_bucket)
            sc->tokens = st->rate_bucket;
        sc->last_refill_us = now;
        if (sc->tokens >= 1.0)
            sc->tokens -= 1.0;
        else
            throttled = true;
    }
    double p[FAULT_NKINDS];
    memcpy(p, st->p, sizeof p);
    uint64_t seed = scopes[0].s.seed;
    out->hang_max_ms = st->hang_max_ms;
    pthread_mutex_unlock(&lock);

    /* One independent stream per request number: the n-th request's fate depends only on
     * the seed and n, not on thread timing. */
    uint64_t r1 = mix(seed ^ mix(n)), r2 = mix(r1), r3 = mix(r2);
    out->delay_ms = l.ms + (l.jitter_ms ? (int)(unit(r1) * (l.jitter_ms + 1)) : 0);
    out->cut = 0.2 + 0.6 * unit(r3);
    if (throttled) {
        out->kind = FAULT_THROTTLE;
        out->delay_ms = 0;
        return;
    }
    if (queued != FAULT_NONE) {
        out->kind = queued;
        return;
    }
    double u = unit(r2), acc = 0;
    for (int k = FAULT_500; k < FAULT_NKINDS; k++) {
        acc += p[k];
        if (u < acc) {
            out->kind = (enum fault_kind)k;
            return;
        }
    }
}
