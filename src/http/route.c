/* route.c - routing and query validation as pure functions (see route.h): the decisions
 * api.c, server.c and volumes.c take on a live request, testable and fuzzable. */
#include "route.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "wire.h"

enum route route_match(const char *path, char *instance_id_out, size_t len)
{
    static const struct {
        const char *path;
        enum route route;
    } fixed[] = {
        {"/healthz", ROUTE_HEALTH},       {"/readyz", ROUTE_READY},
        {"/openapi.yaml", ROUTE_SPEC},    {"/metrics", ROUTE_METRICS},
        {"/volumes/total", ROUTE_TOTAL},  {"/", ROUTE_HOME},
        {"/volumes/unattached", ROUTE_UNATTACHED},
        {"/accounts", ROUTE_ACCOUNTS},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(path, fixed[i].path) == 0)
            return fixed[i].route;
    if (strncmp(path, "/instances/", 11) != 0)
        return ROUTE_NONE;
    const char *id = path + 11;
    const char *slash = strchr(id, '/');
    if (!slash || strcmp(slash, "/volumes") != 0)
        return ROUTE_NONE;
    size_t n = (size_t)(slash - id);
    if (n >= ROUTE_ID_MAX || n >= len)
        return ROUTE_NONE;
    memcpy(instance_id_out, id, n);
    instance_id_out[n] = '\0';
    return ROUTE_INSTANCE;
}

const char *route_label(enum route r)
{
    switch (r) {
    case ROUTE_HEALTH: return "/healthz";
    case ROUTE_READY: return "/readyz";
    case ROUTE_SPEC: return "/openapi.yaml";
    case ROUTE_METRICS: return "/metrics";
    case ROUTE_HOME: return "/";
    case ROUTE_TOTAL: return "/volumes/total";
    case ROUTE_INSTANCE: return "/instances/{id}/volumes";
    case ROUTE_UNATTACHED: return "/volumes/unattached";
    case ROUTE_ACCOUNTS: return "/accounts";
    case ROUTE_NONE: break;
    }
    return "other";
}

size_t route_unescape(char *s)
{
    char *w = s;
    for (const char *p = s; *p; p++) {
        int hi, lo;
        if (p[0] == '%' && (hi = hex_digit(p[1])) >= 0 && (lo = hex_digit(p[2])) >= 0) {
            int b = hi * 16 + lo;
            *w++ = b ? (char)b : 0x7f;
            p += 2;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* libmicrohttpd's '+' handling, then ebsd's percent-decoder, in place. */
static void decode(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '+')
            *p = ' ';
    (void)route_unescape(s);
}

bool route_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void route_params_init(struct route_params *p)
{
    p->region = p->detail = p->mode = p->timeout_ms = p->limit = NULL;
    p->ngroup = 0;
    p->account = NULL;
}

ebsd_status route_params_set(struct route_params *p, const char *key, const char *value,
                             char *err, size_t errlen)
{
    if (strcmp(key, "group_by") == 0) {
        if (p->ngroup >= ROUTE_MAX_GROUPS) {
            set_err(err, errlen, "group_by is given more than %d times", ROUTE_MAX_GROUPS);
            return EBSD_EINVAL;
        }
        p->group_by[p->ngroup++] = value;
        return EBSD_OK;
    }
    const char **slot = strcmp(key, "region") == 0       ? &p->region
                        : strcmp(key, "limit") == 0      ? &p->limit
                        : strcmp(key, "detail") == 0     ? &p->detail
                        : strcmp(key, "mode") == 0       ? &p->mode
                        : strcmp(key, "timeout_ms") == 0 ? &p->timeout_ms
                        : strcmp(key, "account") == 0    ? &p->account
                                                         : NULL;
    if (!slot) {
        set_err(err, errlen, "unknown query parameter '%.48s'", key);
        /* the key is printable once server.c has checked it; a direct caller's may not be */
        for (char *c = err; errlen && *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                *c = '?';
        return EBSD_EINVAL;
    }
    if (*slot) {
        set_err(err, errlen, "query parameter '%.48s' is given more than once", key);
        return EBSD_EINVAL;
    }
    *slot = value;
    return EBSD_OK;
}

void route_query_init(struct route_query *q, const char *path)
{
    q->len = path ? strlen(path) : 0;
    q->bad = path && !route_printable(path);
    q->nparams = 0;
    q->dup = NULL;
}

void route_query_add(struct route_query *q, const char *key, const char *value)
{
    q->len += strlen(key) + (value ? strlen(value) : 0) + 2;
    if (!route_printable(key) || (value && !route_printable(value)))
        q->bad = true;
    for (unsigned i = 0; i < q->nparams && i < ROUTE_MAX_PARAMS && !q->dup; i++)
        if (strcmp(q->keys[i], key) == 0 && strcmp(key, "group_by") != 0)
            q->dup = q->keys[i];
    if (q->nparams < ROUTE_MAX_PARAMS)
        q->keys[q->nparams] = key;
    q->nparams++;
}

static ebsd_status refuse(char *code, size_t codelen, const char *c);

ebsd_status route_query_verdict(const struct route_query *q, char *code, size_t codelen,
                                char *err, size_t errlen)
{
    if (codelen)
        code[0] = '\0';
    if (errlen)
        err[0] = '\0';
    if (q->bad) {
        set_err(err, errlen, "%s",
                "the path and query must be printable ASCII once percent-decoded "
                "(no NUL, control or non-ASCII bytes)");
        return refuse(code, codelen, "InvalidRequest");
    }
    if (q->nparams > ROUTE_MAX_PARAMS) {
        set_err(err, errlen, "more than %u query parameters", ROUTE_MAX_PARAMS);
        return refuse(code, codelen, "InvalidParameter");
    }
    if (q->dup) {
        set_err(err, errlen, "query parameter '%.48s' is given more than once", q->dup);
        return refuse(code, codelen, "InvalidParameter");
    }
    return EBSD_OK;
}

ebsd_status route_parse_query(const char *raw_query, struct route_params *out, char *err,
                              size_t errlen)
{
    struct route_params *p = out;
    const char *vals[ROUTE_MAX_PARAMS];
    struct route_query q;

    route_params_init(p);
    route_query_init(&q, NULL);
    p->storage[0] = '\0';
    if (errlen)
        err[0] = '\0';
    if (!raw_query || !*raw_query)
        return EBSD_OK;
    /* The raw query is at most three times its decoded keys and values. */
    size_t rawlen = strlen(raw_query);
    if (rawlen > ROUTE_MAX_RAW_QUERY) {
        set_err(err, errlen, "the URL is longer than %u bytes", ROUTE_MAX_QUERY);
        return EBSD_ETOOBIG;
    }
    memcpy(p->storage, raw_query, rawlen + 1);

    /* Split as libmicrohttpd's MHD_parse_arguments_ does: a segment without '=' is a key
     * with no value; an empty trailing segment is no parameter. */
    char *args = p->storage;
    while (args && *args) {
        char *amper = strchr(args, '&');
        if (amper)
            *amper++ = '\0';
        char *equals = strchr(args, '=');
        if (equals)
            *equals++ = '\0';
        decode(args);
        if (equals)
            decode(equals);
        if (q.nparams < ROUTE_MAX_PARAMS)
            vals[q.nparams] = equals ? equals : args + strlen(args); /* "" in storage */
        route_query_add(&q, args, equals);
        args = amper;
    }
    /* The request path's checks, in its order. */
    if (q.len > ROUTE_MAX_QUERY) {
        set_err(err, errlen, "the URL is longer than %u bytes", ROUTE_MAX_QUERY);
        return EBSD_ETOOBIG;
    }
    char code[32];
    if (route_query_verdict(&q, code, sizeof code, err, errlen) != EBSD_OK)
        return EBSD_EINVAL;
    /* volumes.c's collection: known keys only, in query order. */
    for (size_t i = 0; i < q.nparams; i++) {
        if (route_params_set(p, q.keys[i], vals[i], err, errlen) != EBSD_OK) {
            route_params_init(p);
            return EBSD_EINVAL;
        }
    }
    return EBSD_OK;
}

static ebsd_status refuse(char *code, size_t codelen, const char *c)
{
    if (codelen)
        snprintf(code, codelen, "%s", c);
    return EBSD_EINVAL;
}

bool route_group_key_valid(const char *key)
{
    static const char *const fixed[] = {"volume_type", "availability_zone", "instance_state",
                                        "instance_type"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(key, fixed[i]) == 0)
            return true;
    const char *name = wire_group_tag(key, NULL);
    size_t n = name ? strlen(name) : 0;
    return n >= 1 && n <= ROUTE_MAX_TAG_KEY;
}

/* A whole number from 1 to max, digits only (strtol alone would take "+5" and " 5"). */
static bool whole_in(const char *v, long max)
{
    size_t nd = strspn(v, "0123456789");
    char *end;
    long n = nd ? strtol(v, &end, 10) : 0; /* overflow: LONG_MAX */
    return nd && !v[nd] && n >= 1 && n <= max;
}

static ebsd_status check_groups(const struct route_params *p, char *code, size_t codelen,
                                char *err, size_t errlen)
{
    for (unsigned i = 0; i < p->ngroup; i++) {
        const char *k = p->group_by[i] ? p->group_by[i] : "";
        if (!route_group_key_valid(k)) {
            set_err(err, errlen,
                    "group_by key '%.80s' is not one of volume_type, availability_zone, "
                    "instance_state, instance_type, instance_tag:NAME, volume_tag:NAME "
                    "(NAME 1 to %d bytes)", k, ROUTE_MAX_TAG_KEY);
            return refuse(code, codelen, "InvalidParameter");
        }
        for (unsigned j = 0; j < i; j++)
            if (strcmp(p->group_by[j], k) == 0) {
                set_err(err, errlen, "group_by key '%.80s' is given twice", k);
                return refuse(code, codelen, "InvalidParameter");
            }
    }
    return EBSD_OK;
}

ebsd_status route_check_params(enum route r, const struct route_params *p,
                               const struct config *cfg, char *code, size_t codelen, char *err,
                               size_t errlen)
{
    if (codelen)
        code[0] = '\0';
    if (errlen)
        err[0] = '\0';
    const char *region = p->region ? p->region : cfg->regions[0];
    bool all_regions = strcmp(region, "all") == 0;
    if (!all_regions && !config_region_allowed(cfg, region)) {
        if (errlen)
            snprintf(err, errlen, "region '%.32s' is not one this service is configured for",
                     strlen(region) < 32 ? region : "(too long)");
        return refuse(code, codelen, "InvalidRegion");
    }
    if (p->account && strcmp(p->account, "all") != 0) {
        const struct config_account *a = config_account_find(cfg, p->account);
        if (!a) {
            set_err(err, errlen, "account '%.32s' is not one this service is configured for",
                    strlen(p->account) < 32 ? p->account : "(too long)");
            for (char *c = err; errlen && *c; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                    *c = '?';
            return refuse(code, codelen, "InvalidAccount");
        }
        if (!all_regions && p->region && !config_account_region_allowed(cfg, a, region)) {
            set_err(err, errlen, "region '%s' is not one of account '%s'", region, a->name);
            return refuse(code, codelen, "InvalidRegion");
        }
    }
    bool aggregate = all_regions || (p->account && strcmp(p->account, "all") == 0);
    if (aggregate && r != ROUTE_TOTAL && r != ROUTE_UNATTACHED) {
        set_err(err, errlen, "%s", "account=all and region=all aggregate /volumes/total and "
                "/volumes/unattached only");
        return refuse(code, codelen, "InvalidParameter");
    }
    if (r != ROUTE_TOTAL) {
        if (p->detail || p->mode || p->ngroup) {
            set_err(err, errlen, "'%s' applies to /volumes/total only",
                    p->detail ? "detail" : p->mode ? "mode" : "group_by");
            return refuse(code, codelen, "InvalidParameter");
        }
    }
    if (r != ROUTE_UNATTACHED && p->limit) {
        set_err(err, errlen, "%s", "'limit' applies to /volumes/unattached only");
        return refuse(code, codelen, "InvalidParameter");
    }
    if (r == ROUTE_UNATTACHED && p->limit && !whole_in(p->limit, ROUTE_MAX_LIMIT)) {
        set_err(err, errlen, "limit must be a whole number from 1 to %d", ROUTE_MAX_LIMIT);
        return refuse(code, codelen, "InvalidParameter");
    }
    if (r == ROUTE_TOTAL) {
        if (check_groups(p, code, codelen, err, errlen) != EBSD_OK)
            return EBSD_EINVAL;
        if (p->detail && strcmp(p->detail, "instances") != 0) {
            set_err(err, errlen, "%s", "detail takes the value 'instances'");
            return refuse(code, codelen, "InvalidParameter");
        }
        if (p->mode && strcmp(p->mode, "sequential") != 0 && strcmp(p->mode, "parallel") != 0) {
            set_err(err, errlen, "%s", "mode takes the value 'parallel' or 'sequential'");
            return refuse(code, codelen, "InvalidParameter");
        }
    }
    if (p->timeout_ms) {
        /* digits only: strtol alone would take "+5000" and " 5000" (from %205000) */
        size_t nd = strspn(p->timeout_ms, "0123456789");
        char *end;
        long v = nd ? strtol(p->timeout_ms, &end, 10) : 0; /* overflow: LONG_MAX */
        if (!nd || p->timeout_ms[nd] || v < 1 || v > (long)cfg->max_timeout_ms) {
            if (errlen)
                snprintf(err, errlen, "timeout_ms must be a whole number from 1 to %u",
                         cfg->max_timeout_ms);
            return refuse(code, codelen, "InvalidParameter");
        }
    }
    return EBSD_OK;
}
