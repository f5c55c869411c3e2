/* log.c - one structured line per event on stdout, or stderr for --once (see log.h). */
#include "log.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mem.h"

static enum log_format g_format = LOG_FORMAT_JSON;
static enum log_level g_min = LOGL_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};
static bool g_stderr; /* log_to_stderr() */

/* Where the lines go: stdout, or stderr once log_to_stderr() was called. */
static FILE *out(void) { return g_stderr ? stderr : stdout; }

void log_to_stderr(void)
{
    fflush(stdout);
    g_stderr = true;
}

void log_setup(enum log_format fmt, enum log_level min_level)
{
    g_format = fmt;
    g_min = min_level;
}

void log_settings(enum log_format *fmt, enum log_level *min_level)
{
    *fmt = g_format;
    *min_level = g_min;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

int log_format_parse(const char *s)
{
    if (strcmp(s, "json") == 0)
        return LOG_FORMAT_JSON;
    if (strcmp(s, "text") == 0)
        return LOG_FORMAT_TEXT;
    return -1;
}

/* Batching (log_batch): stdout's buffer is ours and one PIPE_BUF long, and a line that
 * would not fit flushes the batch first, so every write(2) holds whole lines and is atomic
 * on a pipe: a worker's line (same stdout) can land between two of ours, never inside. */
static bool g_batch;
static char g_batch_buf[PIPE_BUF];
static bool g_atfork_set;

/* In a forked worker: lines go out at once again (a worker may be SIGKILLed at its
 * deadline or _exit on its memory limit, and would lose a batch). */
static void on_fork_child(void) { g_batch = false; }

void log_batch(bool on)
{
    fflush(out());
    if (on && !g_atfork_set) {
        /* flush before every fork, so a child never inherits (and repeats) our batch */
        if (pthread_atfork(log_flush, NULL, on_fork_child) != 0)
            return; /* only ENOMEM: stay unbatched */
        g_atfork_set = true;
    }
    if (on && setvbuf(out(), g_batch_buf, _IOFBF, sizeof g_batch_buf) != 0)
        return;
    g_batch = on;
}

void log_flush(void)
{
    if (__fpending(out()))
        fflush(out());
}

static void write_line(const char *line, size_t len)
{
    FILE *f = out();
    /* one lock for the whole line (a worker's threads, the volume shares a lister carries,
     * may log at once), and no lock per call within it */
    flockfile(f);
    if (g_batch && __fpending(f) + len + 1 > sizeof g_batch_buf)
        fflush_unlocked(f);
    fwrite_unlocked(line, 1, len, f);
    fputc_unlocked('\n', f);
    if (!g_batch)
        fflush_unlocked(f);
    funlockfile(f);
}

void log_line(const char *line) { write_line(line, strlen(line)); }

bool log_enabled(enum log_level lvl) { return lvl >= g_min; }

static void emit(enum log_level lvl, const char *event, cJSON *fields);

/* ---------------------------------------------------------------- built lines */

static void rec_room(struct log_rec *r, size_t n)
{
    if (r->len + n + 1 <= r->cap)
        return;
    size_t cap = r->cap;
    while (r->len + n + 1 > cap)
        cap *= 2;
    if (r->p == r->small) {
        r->p = xmalloc(cap);
        memcpy(r->p, r->small, r->len);
    } else {
        r->p = xrealloc(r->p, cap);
    }
    r->cap = cap;
}

static void rec_put(struct log_rec *r, const char *s, size_t n)
{
    rec_room(r, n);
    memcpy(r->p + r->len, s, n);
    r->len += n;
}

void log_rec_raw(struct log_rec *r, const char *s) { rec_put(r, s, strlen(s)); }

void log_rec_u(struct log_rec *r, unsigned long long v)
{
    char d[24];
    size_t i = sizeof d;
    do
        d[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    rec_put(r, d + i, sizeof d - i);
}

static void rec_i(struct log_rec *r, long long v)
{
    if (v < 0) {
        rec_put(r, "-", 1);
        log_rec_u(r, 0ULL - (unsigned long long)v);
    } else {
        log_rec_u(r, (unsigned long long)v);
    }
}

/* cents / 100: with both decimals, or (trim) as cJSON prints it ("12.5", "12"). */
static void rec_hundredths(struct log_rec *r, long long cents, bool trim)
{
    unsigned long long a = cents < 0 ? 0ULL - (unsigned long long)cents : (unsigned long long)cents;
    if (cents < 0)
        rec_put(r, "-", 1);
    log_rec_u(r, a / 100);
    char frac[3] = {'.', (char)('0' + a % 100 / 10), (char)('0' + a % 10)};
    if (!trim)
        rec_put(r, frac, 3);
    else if (a % 100)
        rec_put(r, frac, a % 10 ? 3 : 2);
}

void log_rec_fixed2(struct log_rec *r, long long cents) { rec_hundredths(r, cents, false); }

void log_rec_text(struct log_rec *r)
{
    r->p = r->small;
    r->cap = sizeof r->small;
    r->len = 0;
    r->nfields = 0;
    r->json = false;
}

/* A JSON string as cJSON writes it: quote, backslash and control bytes escaped, the rest
 * (UTF-8 included) as it is. */
static void rec_json_string(struct log_rec *r, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    rec_put(r, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rec_put(r, run, (size_t)(s - run));
        run = s + 1;
        char e[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': case '\\': break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            memcpy(e + 1, "u00", 3);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            n = 6;
        }
        rec_put(r, e, n);
    }
    rec_put(r, run, (size_t)(s - run));
    rec_put(r, "\"", 1);
}

void log_rec_begin(struct log_rec *r, enum log_level lvl, const char *event)
{
    char ts[40];
    clock_format_rfc3339(clock_wall_ms(), ts, sizeof ts);
    log_rec_text(r);
    r->json = g_format == LOG_FORMAT_JSON;
    if (r->json) {
        log_rec_raw(r, "{\"time\":\"");
        log_rec_raw(r, ts);
        log_rec_raw(r, "\",\"level\":\"");
        log_rec_raw(r, level_names[lvl]);
        log_rec_raw(r, "\",\"event\":");
        rec_json_string(r, event);
    } else {
        log_rec_raw(r, ts);
        log_rec_raw(r, " ");
        log_rec_raw(r, level_names[lvl]);
        rec_put(r, "     ", 5 - strlen(level_names[lvl])); /* %-5s */
        log_rec_raw(r, " ");
        log_rec_raw(r, event);
    }
}

static void rec_key(struct log_rec *r, const char *key)
{
    if (r->json) {
        rec_put(r, ",", 1);
        rec_json_string(r, key);
        rec_put(r, ":", 1);
    } else {
        rec_put(r, " ", 1);
        log_rec_raw(r, key);
        rec_put(r, "=", 1);
    }
    r->nfields++;
}

void log_rec_str(struct log_rec *r, const char *key, const char *val)
{
    rec_key(r, key);
    if (r->json)
        rec_json_string(r, val);
    else
        log_rec_raw(r, val);
}

void log_rec_num(struct log_rec *r, const char *key, long long v)
{
    rec_key(r, key);
    rec_i(r, v);
}

void log_rec_cents(struct log_rec *r, const char *key, long long cents)
{
    rec_key(r, key);
    rec_hundredths(r, cents, true);
}

void log_rec_end(struct log_rec *r)
{
    if (r->json)
        rec_put(r, "}", 1);
    write_line(r->p, r->len);
    if (r->p != r->small)
        free(r->p);
    r->p = NULL;
}

void log_fields(enum log_level lvl, const char *event, cJSON *fields)
{
    if (lvl < g_min) {
        cJSON_Delete(fields);
        return;
    }
    emit(lvl, event, fields);
}

void log_always(const char *event, cJSON *fields) { emit(LOGL_INFO, event, fields); }

static void emit(enum log_level lvl, const char *event, cJSON *fields)
{
    char ts[40];
    clock_format_rfc3339(clock_wall_ms(), ts, sizeof ts);
    if (g_format == LOG_FORMAT_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "time", ts);
        cJSON_AddStringToObject(o, "level", level_names[lvl]);
        cJSON_AddStringToObject(o, "event", event);
        if (fields) {
            cJSON *it = fields->child;
            while (it) {
                cJSON *next = it->next;
                cJSON_DetachItemViaPointer(fields, it);
                cJSON_AddItemToObject(o, it->string, it);
                it = next;
            }
        }
        char *s = cJSON_PrintUnformatted(o);
        if (s) {
            log_line(s);
            free(s);
        }
        cJSON_Delete(o);
    } else {
        char *rest = NULL;
        if (fields && fields->child) {
            /* text form: key=value pairs after the event name */
            size_t cap = 1024, len = 0;
            rest = xcalloc(1, cap);
            for (cJSON *it = fields->child; it; it = it->next) {
                char *v = cJSON_IsString(it) ? xstrdup(it->valuestring) : cJSON_PrintUnformatted(it);
                if (!v)
                    continue;
                int n = snprintf(NULL, 0, " %s=%s", it->string, v);
                if (n > 0) {
                    while (len + (size_t)n + 1 > cap)
                        rest = xrealloc(rest, cap *= 2);
                    snprintf(rest + len, cap - len, " %s=%s", it->string, v);
                    len += (size_t)n;
                }
                free(v);
            }
        }
        char *line = xasprintf("%s %-5s %s%s", ts, level_names[lvl], event, rest ? rest : "");
        log_line(line);
        free(line);
        free(rest);
    }
    cJSON_Delete(fields);
}

void log_msg(enum log_level lvl, const char *event, const char *fmt, ...)
{
    if (lvl < g_min)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "msg", msg);
    log_fields(lvl, event, f);
}
