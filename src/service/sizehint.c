/* sizehint.c - per-target instance and volume counts kept across restarts (file and Redis),
 * so the first listing after a start is split like the later ones (sizehint.h). */
#include "sizehint.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "clock.h"
#include "engine.h"
#include "file.h"
#include "log.h"
#include "mem.h"
#include "redis.h"
#include "redisshare.h"
#include "redisstate.h"

/* ------------------------------------------------------------------ the file format */

static bool part_ok(const char *s, size_t len)
{
    if (len == 0 || len >= sizeof ((struct target *)0)->account)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '/')
            return false;
    return true;
}

/* "ACCOUNT/REGION" into t; false for anything else */
static bool name_parse(const char *name, struct target *t)
{
    const char *slash = strchr(name, '/');
    if (!slash || !part_ok(name, (size_t)(slash - name)) ||
        !part_ok(slash + 1, strlen(slash + 1)))
        return false;
    memset(t, 0, sizeof *t);
    memcpy(t->account, name, (size_t)(slash - name));
    str_copy(t->region, sizeof t->region, slash + 1);
    return true;
}

ebsd_status sizehint_parse(const char *text, size_t len, struct sizehint_entry *out, size_t cap,
                           size_t *n, unsigned *skipped)
{
    *n = 0;
    if (skipped)
        *skipped = 0;
    if (len > SIZEHINT_MAX_BYTES)
        return EBSD_ETOOBIG;
    const char *end = NULL;
    /* require_null_terminated with a length: nothing but white space may follow the value */
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, false);
    ebsd_status st = EBSD_EPARSE;
    if (!doc)
        goto out;
    for (; end && end < text + len; end++)
        if (*end != ' ' && *end != '\n' && *end != '\r' && *end != '\t')
            goto out;
    st = EBSD_EINVAL;
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(doc, "version");
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(doc, "targets");
    if (!cJSON_IsObject(doc) || !cJSON_IsNumber(version) ||
        version->valuedouble != SIZEHINT_VERSION || !cJSON_IsObject(targets))
        goto out;
    const cJSON *e;
    cJSON_ArrayForEach(e, targets)
    {
        struct target t;
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        bool ok = e->string && name_parse(e->string, &t) && v >= 0 &&
                  v <= SIZEHINT_MAX_COUNT && (double)(size_t)v == v && *n < cap;
        for (size_t i = 0; ok && i < *n; i++)
            ok = !target_equal(&out[i].target, &t); /* a repeated name: the first wins */
        if (!ok) {
            if (skipped)
                (*skipped)++;
            continue;
        }
        out[*n].target = t;
        out[*n].instances = (size_t)v;
        out[*n].volumes = 0;
        (*n)++;
    }
    const cJSON *volumes = cJSON_GetObjectItemCaseSensitive(doc, "volumes");
    if (volumes && !cJSON_IsObject(volumes)) {
        *n = 0;
        goto out;
    }
    cJSON_ArrayForEach(e, volumes)
    {
        struct target t;
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        size_t i = 0;
        bool ok = e->string && name_parse(e->string, &t) && v >= 0 &&
                  v <= SIZEHINT_MAX_VOLUMES && (double)(size_t)v == v;
        while (ok && i < *n && !target_equal(&out[i].target, &t))
            i++;
        if (!ok || i == *n || out[i].volumes) { /* no such target, or a repeated name */
            if (skipped)
                (*skipped)++;
            continue;
        }
        out[i].volumes = (size_t)v;
    }
    st = EBSD_OK;
out:
    cJSON_Delete(doc);
    return st;
}

char *sizehint_format(const struct sizehint_entry *e, size_t n)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *targets = cJSON_CreateObject();
    if (!doc || !targets)
        abort(); /* out of memory, as xmalloc */
    cJSON_AddItemToObject(doc, "targets", targets);
    if (!cJSON_AddNumberToObject(doc, "version", SIZEHINT_VERSION))
        abort();
    cJSON *volumes = NULL;
    for (size_t i = 0; i < n; i++) {
        char name[sizeof e->target.account + sizeof e->target.region + 1];
        snprintf(name, sizeof name, "%s/%s", e[i].target.account, e[i].target.region);
        if (!cJSON_AddNumberToObject(targets, name, (double)e[i].instances))
            abort();
        if (e[i].volumes && !volumes && !(volumes = cJSON_AddObjectToObject(doc, "volumes")))
            abort();
        if (e[i].volumes && !cJSON_AddNumberToObject(volumes, name, (double)e[i].volumes))
            abort();
    }
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!text)
        abort();
    char *copy = xstrdup(text); /* ours to free with free(), whatever cJSON's allocator */
    cJSON_free(text);
    return copy;
}

ebsd_status sizehint_read(const char *path, struct sizehint_entry *out, size_t cap, size_t *n,
                          unsigned *skipped)
{
    *n = 0;
    if (skipped)
        *skipped = 0;
    char *text = NULL;
    size_t len = 0;
    /* a FIFO or a symbolic link put there must not hang the start or lead elsewhere */
    ebsd_status st = file_read(path, SIZEHINT_MAX_BYTES, FILE_NOFOLLOW | FILE_REGULAR, &text,
                               &len, NULL, NULL);
    if (st == EBSD_EINVAL)
        st = EBSD_EIO; /* not a regular file: unreadable, as sizehint.h says */
    if (st == EBSD_OK)
        st = sizehint_parse(text, len, out, cap, n, skipped);
    free(text);
    return st;
}

ebsd_status sizehint_write(const char *path, const struct sizehint_entry *e, size_t n)
{
    char *text = sizehint_format(e, n);
    char *tmp = xasprintf("%s.tmp", path);
    ebsd_status st = EBSD_EIO;
    int saved = 0;
    (void)unlink(tmp); /* a leftover of a crash; O_EXCL below refuses anything put there */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        goto out;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto out;
        off += (size_t)w;
    }
    /* fchmod: a umask cannot widen 0600, but say it outright */
    if (fchmod(fd, 0600) != 0 || close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto out;
    st = EBSD_OK;
out:
    if (st != EBSD_OK) {
        saved = errno;
        if (fd >= 0)
            close(fd);
        (void)unlink(tmp);
        errno = saved;
    }
    free(tmp);
    free(text);
    return st;
}

/* ------------------------------------------------------------------ the service */

#define REDIS_POLL_MS 250    /* how often the start looks whether Redis is up yet */
#define REDIS_POLL_TRIES 40  /* and for how long (10 s): later, the listings fill in */

static struct {
    struct loop *loop;
    bool on;
    char *path;                /* "" = no file */
    struct sizehint_entry e[SIZEHINT_MAX_TARGETS]; /* the configured targets */
    struct sizehint_entry written[SIZEHINT_MAX_TARGETS];   /* what the file holds */
    struct sizehint_entry published[SIZEHINT_MAX_TARGETS]; /* what Redis was last given */
    bool from_file[SIZEHINT_MAX_TARGETS];
    size_t n;
    bool dirty;
    int64_t last_write_ms;
    struct loop_timer *write_timer, *redis_timer;
    unsigned redis_tries;
} g;

/* A count worth writing down: more than a tenth away from the last one, or to or from 0. */
static bool material_count(size_t before, size_t now)
{
    if ((before == 0) != (now == 0))
        return true;
    size_t d = before > now ? before - now : now - before;
    return d > before / 10;
}

static bool material(const struct sizehint_entry *before, const struct sizehint_entry *now)
{
    return material_count(before->instances, now->instances) ||
           material_count(before->volumes, now->volumes);
}

static void write_now(void)
{
    g.dirty = false;
    g.last_write_ms = clock_now_ms();
    if (sizehint_write(g.path, g.e, g.n) != EBSD_OK) {
        log_warn("sizehint", "cannot write fanout.state_file %s: %s (the next start lists "
                 "unsplit at first)", g.path, strerror(errno));
        return;
    }
    for (size_t i = 0; i < g.n; i++)
        g.written[i] = g.e[i];
}

static void on_write_timer(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
    g.write_timer = NULL;
    if (g.dirty)
        write_now();
}

/* PREFIX{A:R}:hint (the instances), or PREFIX{A:R}:hint:volumes; NULL when Redis is off */
static char *hint_key(const struct target *t, const char *name)
{
    const char *prefix = redisshare_prefix();
    return prefix ? redisstate_key(prefix, t->account, t->region, "hint", name) : NULL;
}

static void on_set_reply(struct redis *r, const redisReply *reply, ebsd_status st, void *arg)
{
    (void)r;
    (void)arg;
    if (st != EBSD_OK || !reply || reply->type == REDIS_REPLY_ERROR)
        log_debug("sizehint", "storing a size hint in Redis failed: %s", status_str(st));
}

/* SET key count EX a day; true when sent */
static bool publish_count(struct redis *r, const char *key, size_t count)
{
    char text[24], ttl[24];
    snprintf(text, sizeof text, "%zu", count);
    snprintf(ttl, sizeof ttl, "%d", SIZEHINT_REDIS_TTL_S);
    const char *argv[] = {"SET", key, text, "EX", ttl};
    return redis_command(r, 5, argv, NULL, on_set_reply, NULL) == EBSD_OK;
}

/* Two keys, so that a replica of a build before the volumes reads its one key unchanged. */
static void publish(size_t i)
{
    struct redis *r = redisshare_connection();
    char *key = r ? hint_key(&g.e[i].target, NULL) : NULL;
    char *vkey = key ? hint_key(&g.e[i].target, "volumes") : NULL;
    if (vkey && publish_count(r, key, g.e[i].instances) &&
        (!g.e[i].volumes || publish_count(r, vkey, g.e[i].volumes)))
        g.published[i] = g.e[i];
    free(key);
    free(vkey);
}

static void on_seen(const struct target *t, size_t instances, size_t volumes)
{
    for (size_t i = 0; i < g.n; i++) {
        if (!target_equal(&g.e[i].target, t))
            continue;
        g.e[i].instances = instances;
        g.e[i].volumes = volumes;
        if (material(&g.published[i], &g.e[i]))
            publish(i);
        if (!*g.path || !material(&g.written[i], &g.e[i]))
            return;
        g.dirty = true;
        if (!g.write_timer) {
            int64_t at = g.last_write_ms + SIZEHINT_WRITE_EVERY_MS, now = clock_now_ms();
            g.write_timer = loop_timer_start(g.loop, at > now ? at : now, on_write_timer, NULL);
        }
        return;
    }
}

/* A count in a reply: a whole number in 0..max; false for anything else (nil included). */
static bool reply_count(const redisReply *reply, unsigned long long max, size_t *out)
{
    char text[24];
    if (reply->type != REDIS_REPLY_STRING || reply->len == 0 || reply->len >= sizeof text)
        return false;
    memcpy(text, reply->str, reply->len);
    text[reply->len] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || text[0] < '0' || text[0] > '9' || v > max)
        return false;
    *out = (size_t)v;
    return true;
}

/* An MGET reply of the instances and the volumes: the instances, a whole number within
 * bounds, seed the engine (with the volumes when they are one too); anything else is
 * ignored. */
static void on_get_reply(struct redis *r, const redisReply *reply, ebsd_status st, void *arg)
{
    (void)r;
    size_t i = (size_t)(uintptr_t)arg;
    if (!g.on || i >= g.n || st != EBSD_OK || !reply || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 2 || reply->element[0]->type == REDIS_REPLY_NIL)
        return;
    struct sizehint_entry got = {.target = g.e[i].target};
    if (!reply_count(reply->element[0], SIZEHINT_MAX_COUNT, &got.instances)) {
        log_warn("sizehint", "ignoring a malformed size hint in Redis for %s/%s",
                 g.e[i].target.account, g.e[i].target.region);
        return;
    }
    if (reply->element[1]->type != REDIS_REPLY_NIL &&
        !reply_count(reply->element[1], SIZEHINT_MAX_VOLUMES, &got.volumes))
        log_warn("sizehint", "ignoring a malformed volume count in Redis for %s/%s",
                 g.e[i].target.account, g.e[i].target.region);
    engine_seen_hint(&got.target, got.instances, got.volumes);
    g.published[i] = got;
    log_info("sizehint", "%s/%s: %zu instances and %zu attached volumes (0: not known) at "
             "the last listing (from Redis)", got.target.account, got.target.region,
             got.instances, got.volumes);
}

static void on_redis_timer(struct loop *l, void *arg)
{
    (void)arg;
    g.redis_timer = NULL;
    struct redis *r = redisshare_connection();
    if (!r)
        return; /* Redis is off */
    if (!redis_is_up(r)) {
        if (++g.redis_tries < REDIS_POLL_TRIES)
            g.redis_timer = loop_timer_start(l, clock_now_ms() + REDIS_POLL_MS, on_redis_timer,
                                             NULL);
        return;
    }
    for (size_t i = 0; i < g.n; i++) {
        char *key = g.from_file[i] ? NULL : hint_key(&g.e[i].target, NULL);
        char *vkey = key ? hint_key(&g.e[i].target, "volumes") : NULL;
        const char *argv[] = {"MGET", key, vkey}; /* one hash slot: {ACCOUNT:REGION} */
        if (vkey && redis_command(r, 3, argv, NULL, on_get_reply, (void *)(uintptr_t)i) !=
                        EBSD_OK)
            log_debug("sizehint", "asking Redis for a size hint was refused");
        free(key);
        free(vkey);
    }
}

static void load_file(void)
{
    struct sizehint_entry got[SIZEHINT_MAX_TARGETS];
    size_t n = 0;
    unsigned skipped = 0;
    ebsd_status st = sizehint_read(g.path, got, SIZEHINT_MAX_TARGETS, &n, &skipped);
    if (st == EBSD_ENOTFOUND) {
        log_info("sizehint", "no fanout.state_file %s yet: the first listing is sized as it "
                 "goes", g.path);
        return;
    }
    if (st != EBSD_OK) {
        log_warn("sizehint", "ignoring fanout.state_file %s: %s (%s)", g.path,
                 st == EBSD_ETOOBIG ? "larger than 64 KiB"
                 : st == EBSD_EIO   ? "unreadable or not a regular file"
                                    : "not a size hint file",
                 status_str(st));
        return;
    }
    unsigned unknown = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = 0;
        while (i < g.n && !target_equal(&g.e[i].target, &got[k].target))
            i++;
        if (i == g.n) {
            unknown++; /* a target no longer configured */
            continue;
        }
        g.e[i] = g.written[i] = got[k];
        g.from_file[i] = true;
        engine_seen_hint(&got[k].target, got[k].instances, got[k].volumes);
    }
    log_info("sizehint", "read fanout.state_file %s: %zu targets, %u unknown, %u skipped as "
             "malformed", g.path, n - unknown, unknown, skipped);
}

void sizehint_start(struct loop *l, const struct config *cfg)
{
    sizehint_stop();
    g.loop = l;
    g.path = xstrdup(cfg->fanout_state_file ? cfg->fanout_state_file : "");
    g.n = 0;
    struct target t;
    struct target_cursor c = {0};
    while (g.n < SIZEHINT_MAX_TARGETS && target_next(cfg, &c, &t)) {
        memset(&g.e[g.n], 0, sizeof g.e[g.n]);
        g.e[g.n].target = t;
        g.written[g.n] = g.published[g.n] = g.e[g.n];
        g.from_file[g.n] = false;
        g.n++;
    }
    g.on = true;
    g.last_write_ms = 0;
    g.redis_tries = 0;
    if (*g.path)
        load_file();
    if (redisshare_connection())
        g.redis_timer = loop_timer_start(l, clock_now_ms(), on_redis_timer, NULL);
    engine_set_seen_fn(on_seen);
}

void sizehint_stop(void)
{
    if (!g.on)
        return;
    engine_set_seen_fn(NULL);
    if (g.write_timer)
        loop_timer_stop(g.loop, g.write_timer);
    if (g.redis_timer)
        loop_timer_stop(g.loop, g.redis_timer);
    g.write_timer = g.redis_timer = NULL;
    if (g.dirty && *g.path)
        write_now();
    g.on = false;
    free(g.path);
    g.path = NULL;
}
