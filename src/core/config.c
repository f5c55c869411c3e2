/* config.c - loads ebsd's YAML configuration. libcyaml turns the document into C values,
 * but it is lenient ("1.5" loads as 1, "010" as 8, "maybe" as true) and gives only a
 * mapping's line for an unknown or repeated key. So first a libyaml walk checks the whole
 * document against the same libcyaml schema, strictly and in document order, and records
 * the line of every key. Range checks run last. Every error names file, line and key. */
#include "config.h"

#include <cyaml/cyaml.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <yaml.h>

#include "awsid.h"
#include "buf.h"
#include "cors.h"
#include "endpoint.h"
#include "file.h"
#include "log.h"
#include "mem.h"
#include "realip.h"
#include "redisurl.h"
#include "retrycfg.h"

#define CONFIG_MAX_FILE (1024 * 1024) /* a config file is a few KiB; refuse anything huge */
#define CONFIG_MAX_STRING 4096        /* paths, URLs and names; PATH_MAX on Linux */
#define CONFIG_MAX_DEPTH 8            /* the schema is 3 mappings deep */

/* ------------------------------------------------------------------ the schema */

/* The document as libcyaml loads it: every value is a pointer, NULL when the key is absent,
 * so the defaults already in struct config stay where the file says nothing. */
struct doc_route {
    uint32_t *timeout_ms, *memory_mb, *cache_ttl_s;
};
struct doc_routes {
    uint32_t *max_timeout_ms;
    struct doc_route *volumes_total, *instance_volumes;
};
struct doc_ec2 {
    char *endpoint, *ca_bundle;
    uint32_t *max_attempts, *instance_page_size, *volume_page_size;
    double *rate_limit, *rate_burst;
    uint32_t *connect_timeout_ms, *read_timeout_ms;
};
struct doc_server {
    uint32_t *max_connections, *max_connections_per_ip, *idle_timeout_s, *header_timeout_s,
        *max_header_bytes, *drain_timeout_s;
    char **trusted_proxies;
    unsigned trusted_proxies_count;
    char **cors_origins;
    unsigned cors_origins_count;
};
struct doc_fanout {
    uint32_t *max_children, *group_size, *list_partitions, *queue_timeout_ms, *worker_nice;
    uint32_t *spare_workers;
    char *state_file, *volume_shares;
};
struct doc_cache {
    uint32_t *max_entries;
    uint64_t *max_bytes;
    uint32_t *stale_if_error_s, *stale_while_revalidate_s, *negative_ttl_s, *min_refresh_s;
};
struct doc_log {
    char *format, *level;
};
struct doc_security {
    char *auth_tokens_file, *run_as_user;
    bool *allow_root;
};
struct doc_iam_auth {
    char *user, *cache;
    bool *serverless;
};
struct doc_redis {
    char *url, *password_file, *key_prefix, *ca_file;
    uint32_t *connect_timeout_ms, *command_timeout_ms;
    struct doc_iam_auth *iam_auth;
    uint32_t *replicas_hint;
};
struct doc_refresh {
    uint32_t *interval_s;
};
struct doc_account {
    char *name, *role_arn, *external_id, *session_name;
    uint32_t *duration_s;
    char **regions;
    unsigned regions_count;
};
struct doc {
    char *listen;
    char **regions;
    unsigned regions_count;
    struct doc_ec2 *ec2;
    struct doc_server *server;
    struct doc_routes *routes;
    struct doc_fanout *fanout;
    struct doc_cache *cache;
    struct doc_log *log;
    struct doc_security *security;
    struct doc_redis *redis;
    struct doc_refresh *refresh;
    struct doc_account *accounts;
    unsigned accounts_count;
};

#define OPT CYAML_FLAG_OPTIONAL
/* A section may be present but empty (every line under it commented out). */
#define SECTION (CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER_NULL_STR)
#define STR(key, st, m) CYAML_FIELD_STRING_PTR(key, OPT, st, m, 0, CONFIG_MAX_STRING)

static const cyaml_schema_field_t route_fields[] = {
    CYAML_FIELD_UINT_PTR("timeout_ms", OPT, struct doc_route, timeout_ms),
    CYAML_FIELD_UINT_PTR("memory_mb", OPT, struct doc_route, memory_mb),
    CYAML_FIELD_UINT_PTR("cache_ttl_s", OPT, struct doc_route, cache_ttl_s),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t routes_fields[] = {
    CYAML_FIELD_UINT_PTR("max_timeout_ms", OPT, struct doc_routes, max_timeout_ms),
    CYAML_FIELD_MAPPING_PTR("volumes_total", SECTION, struct doc_routes, volumes_total,
                            route_fields),
    CYAML_FIELD_MAPPING_PTR("instance_volumes", SECTION, struct doc_routes, instance_volumes,
                            route_fields),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t ec2_fields[] = {
    STR("endpoint", struct doc_ec2, endpoint),
    STR("ca_bundle", struct doc_ec2, ca_bundle),
    CYAML_FIELD_UINT_PTR("max_attempts", OPT, struct doc_ec2, max_attempts),
    CYAML_FIELD_UINT_PTR("instance_page_size", OPT, struct doc_ec2, instance_page_size),
    CYAML_FIELD_UINT_PTR("volume_page_size", OPT, struct doc_ec2, volume_page_size),
    CYAML_FIELD_FLOAT_PTR("rate_limit", OPT, struct doc_ec2, rate_limit),
    CYAML_FIELD_FLOAT_PTR("rate_burst", OPT, struct doc_ec2, rate_burst),
    CYAML_FIELD_UINT_PTR("connect_timeout_ms", OPT, struct doc_ec2, connect_timeout_ms),
    CYAML_FIELD_UINT_PTR("read_timeout_ms", OPT, struct doc_ec2, read_timeout_ms),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t server_string_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CONFIG_MAX_STRING),
};
static const cyaml_schema_field_t server_fields[] = {
    CYAML_FIELD_UINT_PTR("max_connections", OPT, struct doc_server, max_connections),
    CYAML_FIELD_UINT_PTR("max_connections_per_ip", OPT, struct doc_server,
                         max_connections_per_ip),
    CYAML_FIELD_UINT_PTR("idle_timeout_s", OPT, struct doc_server, idle_timeout_s),
    CYAML_FIELD_UINT_PTR("header_timeout_s", OPT, struct doc_server, header_timeout_s),
    CYAML_FIELD_UINT_PTR("max_header_bytes", OPT, struct doc_server, max_header_bytes),
    CYAML_FIELD_UINT_PTR("drain_timeout_s", OPT, struct doc_server, drain_timeout_s),
    CYAML_FIELD_SEQUENCE("trusted_proxies", OPT | CYAML_FLAG_POINTER, struct doc_server,
                         trusted_proxies, &server_string_entry, 0, CONFIG_MAX_TRUSTED_PROXIES),
    CYAML_FIELD_SEQUENCE("cors_origins", OPT | CYAML_FLAG_POINTER, struct doc_server,
                         cors_origins, &server_string_entry, 0, CONFIG_MAX_CORS_ORIGINS),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t fanout_fields[] = {
    CYAML_FIELD_UINT_PTR("max_children", OPT, struct doc_fanout, max_children),
    CYAML_FIELD_UINT_PTR("group_size", OPT, struct doc_fanout, group_size),
    CYAML_FIELD_UINT_PTR("list_partitions", OPT, struct doc_fanout, list_partitions),
    STR("volume_shares", struct doc_fanout, volume_shares),
    CYAML_FIELD_UINT_PTR("queue_timeout_ms", OPT, struct doc_fanout, queue_timeout_ms),
    CYAML_FIELD_UINT_PTR("worker_nice", OPT, struct doc_fanout, worker_nice),
    CYAML_FIELD_UINT_PTR("spare_workers", OPT, struct doc_fanout, spare_workers),
    STR("state_file", struct doc_fanout, state_file),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t refresh_fields[] = {
    CYAML_FIELD_UINT_PTR("interval_s", OPT, struct doc_refresh, interval_s),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t cache_fields[] = {
    CYAML_FIELD_UINT_PTR("max_entries", OPT, struct doc_cache, max_entries),
    CYAML_FIELD_UINT_PTR("max_bytes", OPT, struct doc_cache, max_bytes),
    CYAML_FIELD_UINT_PTR("stale_if_error_s", OPT, struct doc_cache, stale_if_error_s),
    CYAML_FIELD_UINT_PTR("stale_while_revalidate_s", OPT, struct doc_cache,
                         stale_while_revalidate_s),
    CYAML_FIELD_UINT_PTR("negative_ttl_s", OPT, struct doc_cache, negative_ttl_s),
    CYAML_FIELD_UINT_PTR("min_refresh_s", OPT, struct doc_cache, min_refresh_s),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t logsec_fields[] = {
    STR("format", struct doc_log, format),
    STR("level", struct doc_log, level),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t security_fields[] = {
    STR("auth_tokens_file", struct doc_security, auth_tokens_file),
    STR("run_as_user", struct doc_security, run_as_user),
    CYAML_FIELD_BOOL_PTR("allow_root", OPT, struct doc_security, allow_root),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t iam_auth_fields[] = {
    STR("user", struct doc_iam_auth, user),
    STR("cache", struct doc_iam_auth, cache),
    CYAML_FIELD_BOOL_PTR("serverless", OPT, struct doc_iam_auth, serverless),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t redis_fields[] = {
    STR("url", struct doc_redis, url),
    STR("password_file", struct doc_redis, password_file),
    STR("key_prefix", struct doc_redis, key_prefix),
    CYAML_FIELD_UINT_PTR("connect_timeout_ms", OPT, struct doc_redis, connect_timeout_ms),
    CYAML_FIELD_UINT_PTR("command_timeout_ms", OPT, struct doc_redis, command_timeout_ms),
    STR("ca_file", struct doc_redis, ca_file),
    CYAML_FIELD_MAPPING_PTR("iam_auth", SECTION, struct doc_redis, iam_auth, iam_auth_fields),
    CYAML_FIELD_UINT_PTR("replicas_hint", OPT, struct doc_redis, replicas_hint),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t region_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CONFIG_MAX_STRING),
};
static const cyaml_schema_field_t account_fields[] = {
    STR("name", struct doc_account, name),
    STR("role_arn", struct doc_account, role_arn),
    STR("external_id", struct doc_account, external_id),
    STR("session_name", struct doc_account, session_name),
    CYAML_FIELD_UINT_PTR("duration_s", OPT, struct doc_account, duration_s),
    CYAML_FIELD_SEQUENCE("regions", OPT | CYAML_FLAG_POINTER, struct doc_account, regions,
                         &region_entry, 0, CONFIG_MAX_REGIONS),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t account_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct doc_account, account_fields),
};
static const cyaml_schema_field_t doc_fields[] = {
    STR("listen", struct doc, listen),
    CYAML_FIELD_SEQUENCE("regions", OPT | CYAML_FLAG_POINTER, struct doc, regions,
                         &region_entry, 0, CONFIG_MAX_REGIONS),
    CYAML_FIELD_MAPPING_PTR("ec2", SECTION, struct doc, ec2, ec2_fields),
    CYAML_FIELD_MAPPING_PTR("server", SECTION, struct doc, server, server_fields),
    CYAML_FIELD_MAPPING_PTR("routes", SECTION, struct doc, routes, routes_fields),
    CYAML_FIELD_MAPPING_PTR("fanout", SECTION, struct doc, fanout, fanout_fields),
    CYAML_FIELD_MAPPING_PTR("cache", SECTION, struct doc, cache, cache_fields),
    CYAML_FIELD_MAPPING_PTR("log", SECTION, struct doc, log, logsec_fields),
    CYAML_FIELD_MAPPING_PTR("security", SECTION, struct doc, security, security_fields),
    CYAML_FIELD_MAPPING_PTR("redis", SECTION, struct doc, redis, redis_fields),
    CYAML_FIELD_MAPPING_PTR("refresh", SECTION, struct doc, refresh, refresh_fields),
    CYAML_FIELD_SEQUENCE("accounts", OPT | CYAML_FLAG_POINTER, struct doc, accounts,
                         &account_entry, 1, CONFIG_MAX_ACCOUNTS),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t doc_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct doc, doc_fields),
};

/* ------------------------------------------------------------------ errors */

struct keyline {
    char path[sizeof(((struct config_error *)0)->key)];
    unsigned line;
};

/* State of one load: where errors go and the line of every key seen. */
struct load {
    const char *name;
    struct config_error *err;
    struct keyline *lines; /* grows with the document; bounded by the schema */
    size_t nlines, caplines;
    /* libcyaml's first error and the backtrace that follows it (innermost first) */
    char cy_msg[256];
    char cy_keys[CONFIG_MAX_DEPTH][64];
    unsigned cy_nkeys, cy_line;
    bool cy_seen;
};

/* Fills the error: message "FILE:LINE: key 'KEY': WHAT", leaving out what is unknown. */
static ebsd_status fail_at(struct load *ld, ebsd_status st, unsigned line, const char *key,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static ebsd_status fail_at(struct load *ld, ebsd_status st, unsigned line, const char *key,
                           const char *fmt, ...)
{
    struct config_error *e = ld->err;
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (n < 0)
        str_copy(what, sizeof what, "(unprintable message)");
    str_copy(e->file, sizeof e->file, ld->name);
    str_copy(e->key, sizeof e->key, key ? key : "");
    e->line = line;
    char where[sizeof e->file + 16];
    if (line > 0)
        n = snprintf(where, sizeof where, "%s:%u", e->file, line);
    else
        n = snprintf(where, sizeof where, "%s", e->file);
    if (n < 0)
        where[0] = '\0';
    if (e->key[0])
        n = snprintf(e->message, sizeof e->message, "%s: key '%s': %s", where, e->key, what);
    else
        n = snprintf(e->message, sizeof e->message, "%s: %s", where, what);
    if (n < 0)
        str_copy(e->message, sizeof e->message, what);
    return st;
}

static void lines_add(struct load *ld, const char *path, unsigned line)
{
    if (ld->nlines == ld->caplines) {
        ld->caplines = ld->caplines ? ld->caplines * 2 : 64;
        ld->lines = xrealloc(ld->lines, ld->caplines * sizeof *ld->lines);
    }
    str_copy(ld->lines[ld->nlines].path, sizeof ld->lines[0].path, path);
    ld->lines[ld->nlines].line = line;
    ld->nlines++;
}

static bool lines_has(const struct load *ld, const char *path)
{
    for (size_t i = 0; i < ld->nlines; i++)
        if (strcmp(ld->lines[i].path, path) == 0)
            return true;
    return false;
}

/* Line of path in the document; else of its nearest recorded parent; else 0. */
static unsigned lines_find(const struct load *ld, const char *path)
{
    char p[sizeof ld->lines[0].path];
    str_copy(p, sizeof p, path);
    for (;;) {
        for (size_t i = 0; i < ld->nlines; i++)
            if (strcmp(ld->lines[i].path, p) == 0)
                return ld->lines[i].line;
        char *cut = strrchr(p, '.');
        char *br = strrchr(p, '[');
        if (br && (!cut || br > cut))
            cut = br;
        if (!cut)
            return 0;
        *cut = '\0';
    }
}

/* Fails on key, at the line where the document gives it. */
#define fail_key(ld, st, key, ...) fail_at(ld, st, lines_find(ld, key), key, __VA_ARGS__)

/* A scalar as an error message shows it: at most 40 bytes, non-printing bytes as '?'. */
static const char *shown(const char *s, size_t len, char out[48])
{
    size_t n = len > 40 ? 40 : len, j = 0;
    for (size_t i = 0; i < n; i++)
        out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (len > n) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
    return out;
}

/* ------------------------------------------------------------------ the libyaml walk */

struct frame {
    const cyaml_schema_value_t *schema; /* mapping or sequence schema; NULL in pass 1 */
    bool mapping;
    bool want_value;                    /* mapping: the next node is a value, not a key */
    size_t pathlen;                     /* path length of this container */
    const cyaml_schema_field_t *field;  /* mapping: field whose value is next */
    uint64_t seen;                      /* mapping: bit per field given */
    unsigned seen_line[64];             /* mapping: line of each field given */
    unsigned count;                     /* sequence: entries so far */
};

/* The document is walked twice: pass 1 (check false) only parses, so that a syntax error
 * anywhere wins over a schema error before it; pass 2 checks against the schema. Both
 * track the dotted path of the node at hand for error messages. */
struct walk {
    struct load *ld;
    bool check;
    struct frame stack[CONFIG_MAX_DEPTH];
    int depth;
    unsigned overflow; /* pass 1: containers nested below the stack, not tracked */
    char path[sizeof(((struct config_error *)0)->key)];
    bool root_mapping; /* the document has a top-level mapping (else: nothing to load) */
};

static const char *event_noun(yaml_event_type_t t)
{
    switch (t) {
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_ALIAS_EVENT: return "an alias";
    default: return "a scalar";
    }
}

static const char *type_noun(const cyaml_schema_value_t *v)
{
    switch (v->type) {
    case CYAML_UINT: return "an unsigned integer";
    case CYAML_BOOL: return "true or false";
    case CYAML_FLOAT: return "a number";
    case CYAML_STRING: return "a string";
    case CYAML_MAPPING: return "a mapping";
    case CYAML_SEQUENCE: return "a sequence";
    default: return "a value";
    }
}

static bool scalar_is_null(const yaml_event_t *ev)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (strcmp((const char *)ev->data.scalar.value, nulls[i]) == 0)
            return true;
    return false;
}

/* Checks a scalar against a scalar schema as strictly as YAML 1.2's core schema, so that
 * what libcyaml then converts means what it says. */
static ebsd_status check_scalar(struct walk *w, const cyaml_schema_value_t *v,
                                const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    unsigned line = (unsigned)ev->start_mark.line + 1;
    char show[48];
    if (memchr(s, '\0', len))
        return fail_at(w->ld, EBSD_EPARSE, line, w->path, "value contains a NUL byte");
    switch (v->type) {
    case CYAML_STRING:
        if (len > v->string.max)
            return fail_at(w->ld, EBSD_EPARSE, line, w->path, "string longer than %u bytes",
                           (unsigned)v->string.max);
        return EBSD_OK;
    case CYAML_UINT: {
        bool digits = len > 0 && len <= 20;
        for (size_t i = 0; digits && i < len; i++)
            digits = s[i] >= '0' && s[i] <= '9';
        if (!digits)
            return fail_at(w->ld, EBSD_EPARSE, line, w->path,
                           "expected an unsigned integer, got '%s'", shown(s, len, show));
        if (len > 1 && s[0] == '0') /* libcyaml would read it as octal */
            return fail_at(w->ld, EBSD_EPARSE, line, w->path,
                           "'%s': leading zeros are not allowed", shown(s, len, show));
        errno = 0;
        unsigned long long n = strtoull(s, NULL, 10);
        unsigned long long max = v->data_size >= 8 ? UINT64_MAX : (1ULL << (8 * v->data_size)) - 1;
        if (errno == ERANGE || n > max)
            return fail_at(w->ld, EBSD_EINVAL, line, w->path, "value %s is larger than %llu",
                           shown(s, len, show), max);
        return EBSD_OK;
    }
    case CYAML_BOOL: {
        static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE"};
        for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
            if (strcmp(s, bools[i]) == 0)
                return EBSD_OK;
        return fail_at(w->ld, EBSD_EPARSE, line, w->path, "expected true or false, got '%s'",
                       shown(s, len, show));
    }
    case CYAML_FLOAT: {
        char *end = NULL;
        errno = 0;
        double d = len > 0 && ((s[0] >= '0' && s[0] <= '9') || s[0] == '.' || s[0] == '-')
                           && !strpbrk(s, "xX")
                       ? strtod(s, &end)
                       : 0;
        if (!end || *end != '\0')
            return fail_at(w->ld, EBSD_EPARSE, line, w->path, "expected a number, got '%s'",
                           shown(s, len, show));
        if (errno == ERANGE || !isfinite(d))
            return fail_at(w->ld, EBSD_EINVAL, line, w->path, "number %s is out of range",
                           shown(s, len, show));
        return EBSD_OK;
    }
    default:
        return fail_at(w->ld, EBSD_EPARSE, line, w->path, "unsupported value type");
    }
}

/* Appends ".key" (or "key" at the top), or "[index]" when key is NULL, to the path,
 * truncating if it must. */
static void path_push(struct walk *w, const char *key, unsigned index)
{
    size_t at = strlen(w->path), room = sizeof w->path - at;
    int n;
    if (key)
        n = snprintf(w->path + at, room, "%s%s", at ? "." : "", key);
    else
        n = snprintf(w->path + at, room, "[%u]", index);
    if (n < 0)
        w->path[at] = '\0';
}

/* The last node of the top frame's current entry is complete: forget its key. */
static void entry_done(struct walk *w)
{
    if (w->depth == 0)
        return;
    struct frame *f = &w->stack[w->depth - 1];
    f->field = NULL;
    f->want_value = false;
    w->path[f->pathlen] = '\0';
}

static ebsd_status push_frame(struct walk *w, const cyaml_schema_value_t *v,
                              const yaml_event_t *ev)
{
    if (w->depth == CONFIG_MAX_DEPTH) {
        if (!w->check) {
            w->overflow++;
            return EBSD_OK;
        }
        /* cannot happen with this schema; keeps the stack safe */
        return fail_at(w->ld, EBSD_EPARSE, (unsigned)ev->start_mark.line + 1, w->path,
                       "nested too deeply");
    }
    struct frame *f = &w->stack[w->depth++];
    memset(f, 0, sizeof *f);
    f->schema = v;
    f->mapping = ev->type == YAML_MAPPING_START_EVENT;
    f->pathlen = strlen(w->path);
    return EBSD_OK;
}

/* A mapping key: must be a known field of the mapping, given once. */
static ebsd_status on_key(struct walk *w, struct frame *f, const yaml_event_t *ev)
{
    unsigned line = (unsigned)ev->start_mark.line + 1;
    if (ev->type != YAML_SCALAR_EVENT) {
        if (!w->check) /* a complex key: its path is not worth tracking */
            return ev->type == YAML_ALIAS_EVENT ? EBSD_OK : push_frame(w, NULL, ev);
        return fail_at(w->ld, EBSD_EPARSE, line, w->path, "keys must be plain strings, got %s",
                       event_noun(ev->type));
    }
    const char *key = (const char *)ev->data.scalar.value;
    path_push(w, key, 0);
    f->want_value = true;
    if (!w->check)
        return EBSD_OK;
    const cyaml_schema_field_t *fields = f->schema->mapping.fields;
    size_t i;
    for (i = 0; fields[i].key; i++)
        if (strcmp(fields[i].key, key) == 0)
            break;
    if (!fields[i].key) {
        char known[256] = "";
        size_t at = 0;
        for (size_t j = 0; fields[j].key && at < sizeof known; j++) {
            int n = snprintf(known + at, sizeof known - at, "%s%s", j ? ", " : "", fields[j].key);
            if (n < 0)
                break;
            at += (size_t)n;
        }
        return fail_at(w->ld, EBSD_EPARSE, line, w->path, "unknown key (known here: %s)", known);
    }
    if (f->seen & (1ULL << i))
        return fail_at(w->ld, EBSD_EPARSE, line, w->path,
                       "duplicate key (first given on line %u)", f->seen_line[i]);
    f->seen |= 1ULL << i;
    f->seen_line[i] = line;
    f->field = &fields[i];
    lines_add(w->ld, w->path, line);
    return EBSD_OK;
}

/* A node where a value of schema v is expected. */
static ebsd_status on_value(struct walk *w, const cyaml_schema_value_t *v, bool nullable,
                            const yaml_event_t *ev)
{
    unsigned line = (unsigned)ev->start_mark.line + 1;
    if (!w->check) {
        if (ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT)
            return push_frame(w, NULL, ev);
        entry_done(w);
        return EBSD_OK;
    }
    if (ev->type == YAML_ALIAS_EVENT)
        return fail_at(w->ld, EBSD_EPARSE, line, w->path,
                       "aliases (*%s) are not supported; write the value out",
                       (const char *)ev->data.alias.anchor);
    bool container = v->type == CYAML_MAPPING || v->type == CYAML_SEQUENCE;
    yaml_event_type_t want = v->type == CYAML_MAPPING    ? YAML_MAPPING_START_EVENT
                             : v->type == CYAML_SEQUENCE ? YAML_SEQUENCE_START_EVENT
                                                         : YAML_SCALAR_EVENT;
    if (ev->type != want) {
        if (container && nullable && ev->type == YAML_SCALAR_EVENT && scalar_is_null(ev)) {
            entry_done(w); /* an empty section: every key keeps its default */
            return EBSD_OK;
        }
        return fail_at(w->ld, EBSD_EPARSE, line, w->path, "expected %s, got %s", type_noun(v),
                       event_noun(ev->type));
    }
    if (!container) {
        ebsd_status st = check_scalar(w, v, ev);
        if (st == EBSD_OK)
            entry_done(w);
        return st;
    }
    return push_frame(w, v, ev);
}

/* One event of the document. *done is set at the end of the stream. */
static ebsd_status on_event(struct walk *w, const yaml_event_t *ev, unsigned *docs)
{
    unsigned line = (unsigned)ev->start_mark.line + 1;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*docs > 1 && w->check)
            return fail_at(w->ld, EBSD_EPARSE, line, "", "only one YAML document is allowed");
        return EBSD_OK;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        if (w->overflow > 0) {
            w->overflow--;
            return EBSD_OK;
        }
        w->depth--;
        w->path[w->stack[w->depth].pathlen] = '\0';
        entry_done(w);
        return EBSD_OK;
    case YAML_SCALAR_EVENT:
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
    case YAML_ALIAS_EVENT:
        break;
    default:
        return EBSD_OK;
    }
    if (w->overflow > 0) {
        if (ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT)
            w->overflow++;
        return EBSD_OK;
    }
    if (w->depth == 0) { /* the root node */
        if (!w->check)
            return on_value(w, NULL, false, ev);
        if (ev->type == YAML_SCALAR_EVENT && scalar_is_null(ev))
            return EBSD_OK; /* an empty document: all defaults */
        if (ev->type != YAML_MAPPING_START_EVENT)
            return fail_at(w->ld, EBSD_EPARSE, line, "",
                           "the top level must be a mapping of keys, got %s",
                           event_noun(ev->type));
        w->root_mapping = true;
        return on_value(w, &doc_schema, false, ev);
    }
    struct frame *f = &w->stack[w->depth - 1];
    if (!f->mapping) {
        if (w->check && f->count == f->schema->sequence.max)
            return fail_at(w->ld, EBSD_EINVAL, line, w->path, "more than %u entries",
                           (unsigned)f->schema->sequence.max);
        path_push(w, NULL, f->count);
        if (w->check)
            lines_add(w->ld, w->path, line);
        f->count++;
        return on_value(w, w->check ? f->schema->sequence.entry : NULL, false, ev);
    }
    if (!f->want_value)
        return on_key(w, f, ev);
    return on_value(w, w->check ? &f->field->value : NULL,
                    w->check && (f->field->value.flags & CYAML_FLAG_POINTER_NULL) != 0, ev);
}

/* Walks the whole document: pass 1 (check false) its syntax; pass 2 its structure, keys
 * and scalar forms, recording the line of each key. */
static ebsd_status walk_document(struct load *ld, const char *data, size_t len, bool check,
                                 bool *root_mapping)
{
    ebsd_status st = EBSD_EPARSE;
    struct walk w = {.ld = ld, .check = check};
    unsigned docs = 0;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        abort(); /* libyaml allocates here: out of memory is fatal (mem.h) */
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            if (p.error == YAML_MEMORY_ERROR)
                abort();
            unsigned line = (unsigned)p.problem_mark.line + 1;
            if (p.context)
                fail_at(ld, EBSD_EPARSE, line, w.path, "invalid YAML: %s (%s on line %u)",
                        p.problem ? p.problem : "syntax error", p.context,
                        (unsigned)p.context_mark.line + 1);
            else
                fail_at(ld, EBSD_EPARSE, line, w.path, "invalid YAML: %s",
                        p.problem ? p.problem : "syntax error");
            goto out;
        }
        bool end = ev.type == YAML_STREAM_END_EVENT;
        ebsd_status est = on_event(&w, &ev, &docs);
        yaml_event_delete(&ev);
        if (est != EBSD_OK) {
            st = est;
            goto out;
        }
        if (end)
            break;
    }
    *root_mapping = w.root_mapping;
    st = EBSD_OK;
out:
    yaml_parser_delete(&p);
    return st;
}

/* ------------------------------------------------------------------ libcyaml */

/* Keeps libcyaml's first error message and its backtrace ("  in mapping field 'K' (line:
 * N, column: M)", innermost first) so that an error the walk did not foresee still names
 * its key and line. */
static void cyaml_capture(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    struct load *ld = ctx;
    char line[256];
    if (level < CYAML_LOG_ERROR || vsnprintf(line, sizeof line, fmt, args) < 0)
        return;
    line[strcspn(line, "\n")] = '\0';
    const char *s = line;
    if (strncmp(s, "Load: ", 6) == 0)
        s += 6;
    const char *field = strstr(s, "in mapping field '");
    if (field && ld->cy_seen) {
        field += strlen("in mapping field '");
        const char *q = strchr(field, '\'');
        if (q && ld->cy_nkeys < CONFIG_MAX_DEPTH) {
            size_t n = (size_t)(q - field);
            if (n >= sizeof ld->cy_keys[0])
                n = sizeof ld->cy_keys[0] - 1;
            memcpy(ld->cy_keys[ld->cy_nkeys], field, n);
            ld->cy_keys[ld->cy_nkeys][n] = '\0';
            const char *l = strstr(q, "(line: ");
            if (ld->cy_nkeys == 0 && l)
                ld->cy_line = (unsigned)strtoul(l + 7, NULL, 10);
            ld->cy_nkeys++;
        }
        return;
    }
    if (!ld->cy_seen && strncmp(s, "Backtrace", 9) != 0 && strncmp(s, "  in ", 5) != 0) {
        str_copy(ld->cy_msg, sizeof ld->cy_msg, s);
        ld->cy_seen = true;
    }
}

static ebsd_status cyaml_fail(struct load *ld, cyaml_err_t e)
{
    char key[sizeof ld->err->key] = "";
    size_t at = 0;
    for (unsigned i = ld->cy_nkeys; i-- > 0 && at < sizeof key;) {
        int n = snprintf(key + at, sizeof key - at, "%s%s", at ? "." : "", ld->cy_keys[i]);
        if (n < 0)
            break;
        at += (size_t)n;
    }
    unsigned line = ld->cy_line ? ld->cy_line : lines_find(ld, key);
    return fail_at(ld, EBSD_EPARSE, line, key, "%s",
                   ld->cy_seen ? ld->cy_msg : cyaml_strerror(e));
}

/* ------------------------------------------------------------------ validation */

/* "HOST:PORT": HOST empty (every interface), a name or IPv4 address, or [IPv6]. */
static bool listen_valid(const char *s, const char **why)
{
    const char *colon;
    *why = "must be HOST:PORT (IPv6 as [::1]:8080)";
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        char host[64];
        struct in6_addr a;
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
            return false;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        if (inet_pton(AF_INET6, host, &a) != 1) {
            *why = "the address in brackets is not an IPv6 address";
            return false;
        }
        colon = end + 1;
    } else {
        colon = strchr(s, ':');
        if (!colon || strchr(colon + 1, ':'))
            return false; /* none, or an IPv6 address without brackets */
        if (colon - s > 253)
            return false;
        for (const char *c = s; c < colon; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '-'))
                return false;
    }
    const char *port = colon + 1;
    size_t n = strlen(port);
    *why = "the port must be a number 0..65535";
    if (n == 0 || n > 5 || strspn(port, "0123456789") != n)
        return false;
    return strtoul(port, NULL, 10) <= 65535;
}

static bool region_valid(const char *s)
{
    regex_t re;
    if (strlen(s) > 64)
        return false;
    if (regcomp(&re, "^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", REG_EXTENDED | REG_NOSUB) != 0)
        abort(); /* a constant pattern: only out of memory can fail */
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* "" or an http(s) URL with a host. */
static bool endpoint_valid(const char *s)
{
    const char *rest = NULL;
    if (s[0] == '\0')
        return true;
    if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    if (!rest || rest[0] == '\0' || rest[0] == '/' || rest[0] == ':')
        return false;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return false;
    return true;
}

struct range {
    const char *key;
    size_t offset; /* of a uint32_t in struct config */
    uint32_t lo, hi;
};

#define R(key, member, lo, hi) {key, offsetof(struct config, member), lo, hi}
/* Ranges in document order; config/ebsd.yaml gives the reason for each. */
static const struct range ranges[] = {
    R("ec2.max_attempts", max_attempts, 1, 10),
    R("ec2.instance_page_size", instance_page_size, 5, 1000),
    R("ec2.volume_page_size", volume_page_size, 5, 500),
    R("ec2.connect_timeout_ms", connect_timeout_ms, 10, 60000),
    R("ec2.read_timeout_ms", read_timeout_ms, 10, 900000),
    R("server.max_connections", max_connections, 1, 100000),
    R("server.max_connections_per_ip", max_connections_per_ip, 1, 100000),
    R("server.idle_timeout_s", idle_timeout_s, 1, 3600),
    R("server.header_timeout_s", header_timeout_s, 1, 300),
    R("server.max_header_bytes", max_header_bytes, 1024, 1048576),
    R("server.drain_timeout_s", drain_timeout_s, 0, 300),
    R("routes.max_timeout_ms", max_timeout_ms, 100, 900000),
    R("routes.volumes_total.timeout_ms", volumes_total.timeout_ms, 100, 900000),
    R("routes.volumes_total.memory_mb", volumes_total.memory_mb, 4, 10240),
    R("routes.volumes_total.cache_ttl_s", volumes_total.cache_ttl_s, 0, 86400),
    R("routes.instance_volumes.timeout_ms", instance_volumes.timeout_ms, 100, 900000),
    R("routes.instance_volumes.memory_mb", instance_volumes.memory_mb, 4, 10240),
    R("routes.instance_volumes.cache_ttl_s", instance_volumes.cache_ttl_s, 0, 86400),
    R("fanout.max_children", max_children, 1, 1024),
    R("fanout.group_size", group_size, 1, 1000),
    R("fanout.list_partitions", list_partitions, 0, 16),
    R("fanout.queue_timeout_ms", queue_timeout_ms, 0, 900000),
    R("fanout.worker_nice", worker_nice, 0, 19),
    R("fanout.spare_workers", spare_workers, 0, 64),
    R("cache.max_entries", cache_max_entries, 0, 10000000),
    R("cache.stale_if_error_s", stale_if_error_s, 0, 86400),
    R("cache.stale_while_revalidate_s", stale_while_revalidate_s, 0, 3600),
    R("cache.negative_ttl_s", negative_ttl_s, 0, 3600),
    R("cache.min_refresh_s", min_refresh_s, 0, 86400),
    R("redis.connect_timeout_ms", redis_connect_timeout_ms, 10, 60000),
    R("redis.command_timeout_ms", redis_command_timeout_ms, 1, 60000),
    R("redis.replicas_hint", redis_replicas_hint, 1, 1000),
    R("refresh.interval_s", refresh_interval_s, 0, 86400),
};
#undef R

#define CACHE_MAX_BYTES_LIMIT (64ULL << 30) /* 64 GiB: far above any sane cache */

/* The key to blame for a rule between two keys: the first one the file gives. */
static const char *blame(const struct load *ld, const char *a, const char *b)
{
    return lines_has(ld, a) || !lines_has(ld, b) ? a : b;
}

/* server.trusted_proxies were parsed by merge_edge; an entry that did not parse is reported
 * here, in document order, with its key and line. */
static ebsd_status validate_edge(struct load *ld, const struct config *c)
{
    char key[64];
    for (size_t i = 0; i < c->ntrusted_proxy_texts; i++) {
        const char *why;
        struct realip_cidr cidr;
        snprintf(key, sizeof key, "server.trusted_proxies[%zu]", i);
        if (realip_cidr_parse(c->trusted_proxy_texts[i], &cidr, &why) != EBSD_OK)
            return fail_key(ld, EBSD_EINVAL, key, "'%.64s' %s", c->trusted_proxy_texts[i], why);
    }
    for (size_t i = 0; i < c->ncors_origins; i++) {
        const char *why;
        snprintf(key, sizeof key, "server.cors_origins[%zu]", i);
        if (!cors_origin_valid(c->cors_origins[i], &why))
            return fail_key(ld, EBSD_EINVAL, key, "'%.64s' %s", c->cors_origins[i], why);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->cors_origins[i], c->cors_origins[j]) == 0)
                return fail_key(ld, EBSD_EINVAL, key, "'%.64s' is listed twice",
                                c->cors_origins[i]);
    }
    return EBSD_OK;
}

/* A key prefix is written into every key: printable, no space, no hash-tag braces (the
 * braces are ebsd's own, one per target, for cluster slots). */
static bool key_prefix_valid(const char *s)
{
    if (strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (*s <= 0x20 || *s >= 0x7f || *s == '{' || *s == '}')
            return false;
    return true;
}

static ebsd_status validate_redis(struct load *ld, const struct config *c)
{
    char why[128];
    struct redis_url u;
    if (*c->redis_url && redis_url_parse(c->redis_url, &u, why, sizeof why) != EBSD_OK)
        return fail_key(ld, EBSD_EINVAL, "redis.url", "%s", why);
    if (!key_prefix_valid(c->redis_key_prefix))
        return fail_key(ld, EBSD_EINVAL, "redis.key_prefix",
                        "must be at most 64 printable bytes without space, '{' or '}'");
    if (*c->redis_iam_user && !*c->redis_iam_cache)
        return fail_key(ld, EBSD_EINVAL, "redis.iam_auth.cache",
                        "is required when redis.iam_auth.user is set");
    if (*c->redis_iam_cache && !*c->redis_iam_user)
        return fail_key(ld, EBSD_EINVAL, "redis.iam_auth.user",
                        "is required when redis.iam_auth.cache is set");
    if (*c->redis_iam_user && *c->redis_password_file)
        return fail_key(ld, EBSD_EINVAL,
                        blame(ld, "redis.password_file", "redis.iam_auth.user"),
                        "iam_auth and password_file exclude each other");
    if (*c->redis_iam_user && *c->redis_url && strncmp(c->redis_url, "rediss://", 9) != 0)
        return fail_key(ld, EBSD_EINVAL, blame(ld, "redis.url", "redis.iam_auth.user"),
                        "ElastiCache IAM auth needs a rediss:// URL (the token is a credential)");
    for (const char *q = c->redis_iam_user; *q; q++)
        if (*q <= 0x20 || *q >= 0x7f)
            return fail_key(ld, EBSD_EINVAL, "redis.iam_auth.user", "has a space or control byte");
    for (const char *q = c->redis_iam_cache; *q; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
              *q == '-'))
            return fail_key(ld, EBSD_EINVAL, "redis.iam_auth.cache",
                            "is not a cache name ([A-Za-z0-9-])");
    return EBSD_OK;
}

/* accounts: names, roles, external ids, session names, durations and regions (awsid.h). */
static ebsd_status validate_accounts(struct load *ld, const struct config *c)
{
    for (size_t i = 0; i < c->naccounts; i++) {
        const struct config_account *a = &c->accounts[i];
        char key[96];
        snprintf(key, sizeof key, "accounts[%zu].name", i);
        if (!a->name[0])
            return fail_key(ld, EBSD_EINVAL, key, "every account needs a name");
        if (!awsid_account_name_valid(a->name))
            return fail_key(ld, EBSD_EINVAL, key, "'%.40s' is not [a-z0-9][a-z0-9-]{0,31}",
                            a->name);
        if (strcmp(a->name, "all") == 0)
            return fail_key(ld, EBSD_EINVAL, key, "'all' is reserved (account=all aggregates)");
        for (size_t j = 0; j < i; j++)
            if (strcmp(a->name, c->accounts[j].name) == 0)
                return fail_key(ld, EBSD_EINVAL, key, "'%s' is already the name of accounts[%zu]",
                                a->name, j);
        const char *why = NULL;
        snprintf(key, sizeof key, "accounts[%zu].role_arn", i);
        if (a->role_arn[0] && !awsid_role_arn_valid(a->role_arn, NULL, &why))
            return fail_key(ld, EBSD_EINVAL, key, "'%.80s' is not an IAM role ARN: %s",
                            a->role_arn, why ? why : "malformed");
        snprintf(key, sizeof key, "accounts[%zu].external_id", i);
        if (a->external_id[0] && !awsid_external_id_valid(a->external_id))
            return fail_key(ld, EBSD_EINVAL, key, "is not 2..1224 of [A-Za-z0-9_+=,.@:/-]");
        snprintf(key, sizeof key, "accounts[%zu].session_name", i);
        if (a->session_name[0] && !awsid_session_name_valid(a->session_name))
            return fail_key(ld, EBSD_EINVAL, key, "'%.64s' is not 2..64 of [A-Za-z0-9_+=,.@-]",
                            a->session_name);
        snprintf(key, sizeof key, "accounts[%zu].duration_s", i);
        if (!awsid_duration_valid((long)a->duration_s))
            return fail_key(ld, EBSD_EINVAL, key, "value %u out of range %d..%d", a->duration_s,
                            AWSID_DURATION_MIN_S, AWSID_DURATION_MAX_S);
        for (size_t r = 0; r < a->nregions; r++) {
            snprintf(key, sizeof key, "accounts[%zu].regions[%zu]", i, r);
            if (!config_region_allowed(c, a->regions[r]))
                return fail_key(ld, EBSD_EINVAL, key,
                                "'%.64s' is not one of the top-level regions", a->regions[r]);
            for (size_t q = 0; q < r; q++)
                if (strcmp(a->regions[r], a->regions[q]) == 0)
                    return fail_key(ld, EBSD_EINVAL, key, "'%s' is listed twice", a->regions[r]);
        }
    }
    return EBSD_OK;
}

static ebsd_status validate(struct load *ld, const struct config *c)
{
    const char *why;
    if (!listen_valid(c->listen, &why))
        return fail_key(ld, EBSD_EINVAL, "listen", "'%s' %s", c->listen, why);
    if (c->nregions < 1)
        return fail_key(ld, EBSD_EINVAL, "regions", "needs 1..%d regions", CONFIG_MAX_REGIONS);
    for (size_t i = 0; i < c->nregions; i++) {
        char key[32];
        snprintf(key, sizeof key, "regions[%zu]", i);
        if (!region_valid(c->regions[i]))
            return fail_key(ld, EBSD_EINVAL, key, "'%.64s' is not a region name like us-east-1",
                            c->regions[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->regions[i], c->regions[j]) == 0)
                return fail_key(ld, EBSD_EINVAL, key, "'%s' is listed twice", c->regions[i]);
    }
    if (!endpoint_valid(c->ec2_endpoint))
        return fail_key(ld, EBSD_EINVAL, "ec2.endpoint",
                        "'%.200s' is not an http:// or https:// URL (or \"\")", c->ec2_endpoint);
    if (!(c->rate_limit >= 0 && c->rate_limit <= 100000))
        return fail_key(ld, EBSD_EINVAL, "ec2.rate_limit", "value %g out of range 0..100000",
                        c->rate_limit);
    if (!(c->rate_burst >= 1 && c->rate_burst <= 100000))
        return fail_key(ld, EBSD_EINVAL, "ec2.rate_burst", "value %g out of range 1..100000",
                        c->rate_burst);
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        const struct range *r = &ranges[i];
        uint32_t v;
        memcpy(&v, (const char *)c + r->offset, sizeof v);
        if (v < r->lo || v > r->hi)
            return fail_key(ld, EBSD_EINVAL, r->key, "value %u out of range %u..%u", v, r->lo,
                            r->hi);
    }
    if (c->max_connections_per_ip > c->max_connections)
        return fail_key(ld, EBSD_EINVAL,
                        blame(ld, "server.max_connections_per_ip", "server.max_connections"),
                        "max_connections_per_ip %u exceeds max_connections %u",
                        c->max_connections_per_ip, c->max_connections);
    static const char *const route_keys[] = {"routes.volumes_total.timeout_ms",
                                             "routes.instance_volumes.timeout_ms"};
    const struct config_route *routes[] = {&c->volumes_total, &c->instance_volumes};
    for (size_t i = 0; i < 2; i++)
        if (routes[i]->timeout_ms > c->max_timeout_ms)
            return fail_key(ld, EBSD_EINVAL, blame(ld, route_keys[i], "routes.max_timeout_ms"),
                            "timeout_ms %u exceeds routes.max_timeout_ms %u",
                            routes[i]->timeout_ms, c->max_timeout_ms);
    if (c->cache_max_bytes > CACHE_MAX_BYTES_LIMIT)
        return fail_key(ld, EBSD_EINVAL, "cache.max_bytes", "value %llu out of range 0..%llu",
                        (unsigned long long)c->cache_max_bytes, CACHE_MAX_BYTES_LIMIT);
    if (log_format_parse(c->log_format) < 0)
        return fail_key(ld, EBSD_EINVAL, "log.format", "'%.64s' is not json or text",
                        c->log_format);
    if (log_level_parse(c->log_level) < 0)
        return fail_key(ld, EBSD_EINVAL, "log.level", "'%.64s' is not debug, info, warn or error",
                        c->log_level);
    ebsd_status st = validate_edge(ld, c);
    if (st != EBSD_OK)
        return st;
    st = validate_accounts(ld, c);
    if (st != EBSD_OK)
        return st;
    st = validate_redis(ld, c);
    if (st != EBSD_OK)
        return st;
    uint32_t shares;
    if (!config_volume_shares_parse(c->fanout_volume_shares, &shares))
        return fail_key(ld, EBSD_EINVAL, "fanout.volume_shares",
                        "'%.64s' is not auto, off or a number from 1 to 256",
                        c->fanout_volume_shares);
    /* the size hint's file is written beside a temporary of the same name: a directory
     * path or a relative one (the working directory is / under systemd) is a mistake */
    if (*c->fanout_state_file && (c->fanout_state_file[0] != '/' ||
                                  c->fanout_state_file[strlen(c->fanout_state_file) - 1] == '/'))
        return fail_key(ld, EBSD_EINVAL, "fanout.state_file",
                        "'%.64s' is not an absolute file path", c->fanout_state_file);
    return EBSD_OK;
}

/* ------------------------------------------------------------------ merging */

static void set_str(char **dst, const char *src)
{
    if (!src)
        return;
    free(*dst);
    *dst = xstrdup(src);
}

#define SET(dst, src)       \
    do {                    \
        if (src)            \
            (dst) = *(src); \
    } while (0)

static void merge_route(struct config_route *r, const struct doc_route *d)
{
    if (!d)
        return;
    SET(r->timeout_ms, d->timeout_ms);
    SET(r->memory_mb, d->memory_mb);
    SET(r->cache_ttl_s, d->cache_ttl_s);
}

/* server.trusted_proxies and server.cors_origins: the texts as given (validate checks them),
 * and the networks that parse, so a valid file needs no second pass. */
static void merge_edge(struct config *c, const struct doc_server *d)
{
    if (d->trusted_proxies) {
        c->ntrusted_proxies = 0;
        c->ntrusted_proxy_texts = 0;
        c->trusted_proxies = xcalloc(d->trusted_proxies_count + 1, sizeof *c->trusted_proxies);
        c->trusted_proxy_texts = xcalloc(d->trusted_proxies_count + 1, sizeof(char *));
        for (unsigned i = 0; i < d->trusted_proxies_count; i++) {
            const char *why;
            c->trusted_proxy_texts[c->ntrusted_proxy_texts++] = xstrdup(d->trusted_proxies[i]);
            if (realip_cidr_parse(d->trusted_proxies[i], &c->trusted_proxies[c->ntrusted_proxies],
                                  &why) == EBSD_OK)
                c->ntrusted_proxies++;
        }
    }
    if (d->cors_origins) {
        c->ncors_origins = 0;
        c->cors_origins = xcalloc(d->cors_origins_count + 1, sizeof(char *));
        for (unsigned i = 0; i < d->cors_origins_count; i++)
            c->cors_origins[c->ncors_origins++] = xstrdup(d->cors_origins[i]);
    }
}

static void accounts_free(struct config *c)
{
    for (size_t i = 0; i < c->naccounts; i++) {
        struct config_account *a = &c->accounts[i];
        free(a->name);
        free(a->role_arn);
        free(a->external_id);
        free(a->session_name);
        for (size_t r = 0; r < a->nregions; r++)
            free(a->regions[r]);
    }
    free(c->accounts);
    c->accounts = NULL;
    c->naccounts = 0;
}

/* The one account of a file without `accounts:`: the credential chain, every region. */
static void accounts_default(struct config *c)
{
    c->accounts = xcalloc(1, sizeof *c->accounts);
    c->naccounts = 1;
    c->accounts[0] = (struct config_account){.name = xstrdup("default"),
                                             .role_arn = xstrdup(""),
                                             .external_id = xstrdup(""),
                                             .session_name = xstrdup(""),
                                             .duration_s = 3600};
}

/* Fills a (zeroed) with owned copies of an account's fields (NULL strings are ""). */
static void account_fill(struct config_account *a, const char *name, const char *role_arn,
                         const char *external_id, const char *session_name,
                         uint32_t duration_s, char *const *regions, size_t nregions)
{
    a->name = xstrdup(name ? name : "");
    a->role_arn = xstrdup(role_arn ? role_arn : "");
    if (!a->role_arn[0] || !awsid_role_arn_valid(a->role_arn, a->role_account, NULL))
        a->role_account[0] = '\0'; /* a malformed ARN fails validation (config error) */
    a->external_id = xstrdup(external_id ? external_id : "");
    a->session_name = xstrdup(session_name ? session_name : "");
    a->duration_s = duration_s;
    for (size_t r = 0; r < nregions && r < CONFIG_MAX_REGIONS; r++)
        a->regions[a->nregions++] = xstrdup(regions[r]);
}

static void merge_accounts(struct config *c, const struct doc *d)
{
    accounts_free(c);
    c->accounts_given = true;
    c->accounts = xcalloc(d->accounts_count ? d->accounts_count : 1, sizeof *c->accounts);
    for (unsigned i = 0; i < d->accounts_count; i++) {
        const struct doc_account *da = &d->accounts[i];
        account_fill(&c->accounts[c->naccounts++], da->name, da->role_arn, da->external_id,
                     da->session_name, da->duration_s ? *da->duration_s : 3600, da->regions,
                     da->regions_count);
    }
}

/* Copies every value the file gives over the defaults in c. */
static void merge(struct config *c, const struct doc *d, bool regions_given)
{
    set_str(&c->listen, d->listen);
    if (d->accounts)
        merge_accounts(c, d);
    if (regions_given) {
        for (size_t i = 0; i < c->nregions; i++)
            free(c->regions[i]);
        c->nregions = 0;
        for (unsigned i = 0; i < d->regions_count && i < CONFIG_MAX_REGIONS; i++)
            c->regions[c->nregions++] = xstrdup(d->regions[i]);
    }
    if (d->ec2) {
        set_str(&c->ec2_endpoint, d->ec2->endpoint);
        set_str(&c->ca_bundle, d->ec2->ca_bundle);
        SET(c->max_attempts, d->ec2->max_attempts);
        SET(c->instance_page_size, d->ec2->instance_page_size);
        SET(c->volume_page_size, d->ec2->volume_page_size);
        SET(c->rate_limit, d->ec2->rate_limit);
        SET(c->rate_burst, d->ec2->rate_burst);
        SET(c->connect_timeout_ms, d->ec2->connect_timeout_ms);
        SET(c->read_timeout_ms, d->ec2->read_timeout_ms);
    }
    if (d->server) {
        SET(c->max_connections, d->server->max_connections);
        SET(c->max_connections_per_ip, d->server->max_connections_per_ip);
        SET(c->idle_timeout_s, d->server->idle_timeout_s);
        SET(c->header_timeout_s, d->server->header_timeout_s);
        SET(c->max_header_bytes, d->server->max_header_bytes);
        SET(c->drain_timeout_s, d->server->drain_timeout_s);
        merge_edge(c, d->server);
    }
    if (d->routes) {
        SET(c->max_timeout_ms, d->routes->max_timeout_ms);
        merge_route(&c->volumes_total, d->routes->volumes_total);
        merge_route(&c->instance_volumes, d->routes->instance_volumes);
    }
    if (d->fanout) {
        SET(c->max_children, d->fanout->max_children);
        SET(c->group_size, d->fanout->group_size);
        SET(c->list_partitions, d->fanout->list_partitions);
        set_str(&c->fanout_volume_shares, d->fanout->volume_shares);
        SET(c->queue_timeout_ms, d->fanout->queue_timeout_ms);
        SET(c->worker_nice, d->fanout->worker_nice);
        SET(c->spare_workers, d->fanout->spare_workers);
        set_str(&c->fanout_state_file, d->fanout->state_file);
    }
    if (d->cache) {
        SET(c->cache_max_entries, d->cache->max_entries);
        SET(c->cache_max_bytes, d->cache->max_bytes);
        SET(c->stale_if_error_s, d->cache->stale_if_error_s);
        SET(c->stale_while_revalidate_s, d->cache->stale_while_revalidate_s);
        SET(c->negative_ttl_s, d->cache->negative_ttl_s);
        SET(c->min_refresh_s, d->cache->min_refresh_s);
    }
    if (d->refresh)
        SET(c->refresh_interval_s, d->refresh->interval_s);
    if (d->log) {
        set_str(&c->log_format, d->log->format);
        set_str(&c->log_level, d->log->level);
    }
    if (d->security) {
        set_str(&c->auth_tokens_file, d->security->auth_tokens_file);
        set_str(&c->run_as_user, d->security->run_as_user);
        SET(c->allow_root, d->security->allow_root);
    }
    if (d->redis) {
        set_str(&c->redis_url, d->redis->url);
        set_str(&c->redis_password_file, d->redis->password_file);
        set_str(&c->redis_key_prefix, d->redis->key_prefix);
        SET(c->redis_connect_timeout_ms, d->redis->connect_timeout_ms);
        SET(c->redis_command_timeout_ms, d->redis->command_timeout_ms);
        set_str(&c->redis_ca_file, d->redis->ca_file);
        SET(c->redis_replicas_hint, d->redis->replicas_hint);
        if (d->redis->iam_auth) {
            set_str(&c->redis_iam_user, d->redis->iam_auth->user);
            set_str(&c->redis_iam_cache, d->redis->iam_auth->cache);
            SET(c->redis_iam_serverless, d->redis->iam_auth->serverless);
        }
    }
}
#undef SET

/* ------------------------------------------------------------------ public */

/* The region AWS tooling names in the environment, if any: AWS_REGION wins. */
static const char *env_region(void)
{
    const char *r = getenv("AWS_REGION");
    if (!r || !*r)
        r = getenv("AWS_DEFAULT_REGION");
    return r && *r ? r : NULL;
}

bool config_volume_shares_parse(const char *s, uint32_t *out)
{
    if (strcmp(s, "auto") == 0) {
        *out = 0;
        return true;
    }
    if (strcmp(s, "off") == 0) {
        *out = CONFIG_VOLUME_SHARES_OFF;
        return true;
    }
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    if (s[0] < '1' || s[0] > '9' || *end || errno || n > 256)
        return false;
    *out = (uint32_t)n;
    return true;
}

void config_defaults(struct config *c)
{
    const char *region = env_region();
    memset(c, 0, sizeof *c);
    c->listen = xstrdup("127.0.0.1:8080");
    c->regions[0] = xstrdup(region && region_valid(region) ? region : "us-east-1");
    c->nregions = 1;
    c->ec2_endpoint = xstrdup("");
    c->ca_bundle = xstrdup("");
    c->max_attempts = 3;
    c->instance_page_size = 1000;
    c->volume_page_size = 500;
    c->rate_limit = 10;
    c->rate_burst = 50;
    c->connect_timeout_ms = 2000;
    c->read_timeout_ms = 2500;
    c->max_connections = 4096;
    c->max_connections_per_ip = 2048;
    c->idle_timeout_s = 75;
    c->header_timeout_s = 10;
    c->max_header_bytes = 16384;
    c->drain_timeout_s = 25;
    c->volumes_total = (struct config_route){.timeout_ms = 10000, .memory_mb = 128,
                                             .cache_ttl_s = 60};
    c->instance_volumes = c->volumes_total;
    c->max_timeout_ms = 29000;
    c->max_children = 32;
    c->group_size = 200;
    c->list_partitions = 0; /* auto */
    c->fanout_volume_shares = xstrdup("auto");
    c->queue_timeout_ms = 2000;
    c->worker_nice = 10;
    c->spare_workers = 16;
    c->cache_max_entries = 10000;
    c->cache_max_bytes = 67108864;
    c->stale_if_error_s = 300;
    c->stale_while_revalidate_s = 30;
    c->negative_ttl_s = 10;
    c->min_refresh_s = 10;
    c->refresh_interval_s = 300;
    c->log_format = xstrdup("json");
    c->log_level = xstrdup("info");
    c->auth_tokens_file = xstrdup("");
    c->fanout_state_file = xstrdup("");
    c->run_as_user = xstrdup("");
    c->allow_root = false;
    c->redis_url = xstrdup("");
    c->redis_password_file = xstrdup("");
    c->redis_key_prefix = xstrdup("ebsd:");
    c->redis_connect_timeout_ms = 500;
    c->redis_command_timeout_ms = 200;
    c->redis_ca_file = xstrdup("");
    c->redis_iam_user = xstrdup("");
    c->redis_iam_cache = xstrdup("");
    c->redis_iam_serverless = false;
    c->redis_replicas_hint = 1;
    accounts_default(c);
}

/* Region: the environment's region becomes the default when it is one of the configured
 * regions (with no `regions` in the file the list is already just that region); one the file
 * does not allow is ignored, since the file is the operator's allow-list. Endpoint: as in the
 * AWS SDKs, AWS_ENDPOINT_URL_EC2, else AWS_ENDPOINT_URL, wins over the file (neither with
 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true; endpoint.h). Retries: retrycfg.h. Invalid values
 * are ignored with a warning. */
void config_apply_env(struct config *c)
{
    const char *region = env_region();
    if (region) {
        size_t i;
        for (i = 0; i < c->nregions; i++)
            if (strcmp(c->regions[i], region) == 0)
                break;
        if (i == c->nregions) {
            log_warn("config", "region %.64s from the environment is not among the configured "
                     "regions; the default stays %s", region, c->regions[0]);
        } else if (i > 0) {
            char *r = c->regions[i];
            memmove(&c->regions[1], &c->regions[0], i * sizeof c->regions[0]);
            c->regions[0] = r;
        }
    }
    const char *var = NULL;
    const char *ep = endpoint_configured("EC2", &var);
    if (ep && *ep) {
        if (endpoint_valid(ep))
            set_str(&c->ec2_endpoint, ep);
        else
            log_warn("config", "ignoring %s: not an http:// or https:// URL", var);
    }
    /* A malformed EBSD_REDIS_URL fails config_load_buffer; here (no file) it is refused
     * with a warning and the configured URL stays. */
    const char *rurl = getenv("EBSD_REDIS_URL");
    if (rurl && *rurl) {
        char why[128];
        struct redis_url u;
        if (redis_url_parse(rurl, &u, why, sizeof why) == EBSD_OK)
            set_str(&c->redis_url, rurl);
        else
            log_warn("config", "ignoring EBSD_REDIS_URL: %s", why);
    }
    /* AWS_MAX_ATTEMPTS / AWS_RETRY_MODE, then the profile's max_attempts / retry_mode, over
     * ec2.max_attempts (retrycfg.h); the mode becomes this process's (workers inherit it). */
    struct retry_settings rs;
    char note[300];
    if (retrycfg_load((int)c->max_attempts, &rs, note, sizeof note) != EBSD_OK)
        log_warn("config", "%s", note);
    else if (note[0])
        log_info("config", "%s", note);
    c->max_attempts = (uint32_t)rs.max_attempts;
    retry_settings_set(&rs);
}

ebsd_status config_load_buffer(const char *name, const char *data, size_t len,
                               struct config *cfg, struct config_error *err)
{
    ebsd_status st;
    struct load ld = {.name = name, .err = err};
    struct config c;
    struct doc *d = NULL;
    bool root_mapping = false;
    const cyaml_config_t cy = {
        .log_fn = cyaml_capture,
        .log_ctx = &ld,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR,
        .flags = CYAML_CFG_DEFAULT,
    };
    memset(err, 0, sizeof *err);
    config_defaults(&c);
    st = walk_document(&ld, data, len, false, &root_mapping);
    if (st == EBSD_OK)
        st = walk_document(&ld, data, len, true, &root_mapping);
    if (st != EBSD_OK)
        goto out;
    if (root_mapping) {
        cyaml_err_t e = cyaml_load_data((const uint8_t *)data, len, &cy, &doc_schema,
                                        (cyaml_data_t **)&d, NULL);
        if (e != CYAML_OK) {
            st = cyaml_fail(&ld, e);
            goto out;
        }
        if (d)
            merge(&c, d, lines_has(&ld, "regions"));
    }
    st = validate(&ld, &c);
    if (st != EBSD_OK)
        goto out;
    const char *rurl = getenv("EBSD_REDIS_URL");
    if (rurl && *rurl) {
        char why[128];
        struct redis_url u;
        if (redis_url_parse(rurl, &u, why, sizeof why) != EBSD_OK) {
            st = fail_at(&ld, EBSD_EINVAL, 0, "EBSD_REDIS_URL", "environment: %s", why);
            goto out;
        }
    }
    config_apply_env(&c);
    *cfg = c;
out:
    if (d)
        cyaml_free(&cy, &doc_schema, d, 0);
    free(ld.lines);
    if (st != EBSD_OK) {
        config_free(&c);
        memset(cfg, 0, sizeof *cfg);
    }
    return st;
}

ebsd_status config_load(const char *path, struct config *cfg, struct config_error *err)
{
    struct load ld = {.name = path, .err = err};
    memset(err, 0, sizeof *err);
    memset(cfg, 0, sizeof *cfg);
    char *data = NULL;
    size_t len = 0;
    struct file_error fe;
    ebsd_status st = file_read(path, CONFIG_MAX_FILE, 0, &data, &len, NULL, &fe);
    if (st == EBSD_ETOOBIG)
        return fail_at(&ld, EBSD_ETOOBIG, 0, "", "file is larger than %d bytes", CONFIG_MAX_FILE);
    if (st != EBSD_OK)
        return fail_at(&ld, EBSD_EIO, 0, "", "%s: %s", fe.op, strerror(fe.err_no));
    st = config_load_buffer(path, data, len, cfg, err);
    free(data);
    return st;
}

const struct config_account *config_account_find(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->naccounts; i++)
        if (strcmp(cfg->accounts[i].name, name) == 0)
            return &cfg->accounts[i];
    return NULL;
}

bool config_account_region_allowed(const struct config *cfg, const struct config_account *a,
                                   const char *region)
{
    if (!a || !a->nregions)
        return config_region_allowed(cfg, region);
    for (size_t i = 0; region && i < a->nregions; i++)
        if (strcmp(a->regions[i], region) == 0)
            return true;
    return false;
}

bool config_region_allowed(const struct config *cfg, const char *region)
{
    if (!region)
        return false;
    for (size_t i = 0; i < cfg->nregions; i++)
        if (strcmp(cfg->regions[i], region) == 0)
            return true;
    return false;
}

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool account_equal(const struct config_account *a, const struct config_account *b)
{
    if (!str_eq(a->name, b->name) || !str_eq(a->role_arn, b->role_arn) ||
        !str_eq(a->external_id, b->external_id) || !str_eq(a->session_name, b->session_name) ||
        a->duration_s != b->duration_s || a->nregions != b->nregions)
        return false;
    for (size_t r = 0; r < a->nregions; r++)
        if (!str_eq(a->regions[r], b->regions[r]))
            return false;
    return true;
}

bool config_accounts_equal(const struct config *a, const struct config *b)
{
    if (a->naccounts != b->naccounts || a->accounts_given != b->accounts_given)
        return false;
    for (size_t i = 0; i < a->naccounts; i++)
        if (!account_equal(&a->accounts[i], &b->accounts[i]))
            return false;
    return true;
}

void config_free(struct config *cfg)
{
    free(cfg->listen);
    for (size_t i = 0; i < cfg->nregions && i < CONFIG_MAX_REGIONS; i++)
        free(cfg->regions[i]);
    free(cfg->ec2_endpoint);
    free(cfg->ca_bundle);
    free(cfg->log_format);
    free(cfg->log_level);
    free(cfg->auth_tokens_file);
    free(cfg->fanout_state_file);
    free(cfg->fanout_volume_shares);
    free(cfg->run_as_user);
    for (size_t i = 0; i < cfg->ntrusted_proxy_texts; i++)
        free(cfg->trusted_proxy_texts[i]);
    free(cfg->trusted_proxy_texts);
    free(cfg->trusted_proxies);
    for (size_t i = 0; i < cfg->ncors_origins; i++)
        free(cfg->cors_origins[i]);
    free(cfg->cors_origins);
    free(cfg->redis_url);
    free(cfg->redis_password_file);
    free(cfg->redis_key_prefix);
    free(cfg->redis_ca_file);
    free(cfg->redis_iam_user);
    free(cfg->redis_iam_cache);
    accounts_free(cfg);
    memset(cfg, 0, sizeof *cfg);
}
