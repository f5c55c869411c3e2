/* log.c - one structured line per event on stdout (see log.h). */
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

void log_setup(enum log_format fmt, enum log_level min_level)
{
    g_format = fmt;
    g_min = min_level;
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
    fflush(stdout);
    if (on && !g_atfork_set) {
        /* flush before every fork, so a child never inherits (and repeats) our batch */
        if (pthread_atfork(log_flush, NULL, on_fork_child) != 0)
            return; /* only ENOMEM: stay unbatched */
        g_atfork_set = true;
    }
    if (on && setvbuf(stdout, g_batch_buf, _IOFBF, sizeof g_batch_buf) != 0)
        return;
    g_batch = on;
}

void log_flush(void)
{
    if (__fpending(stdout))
        fflush(stdout);
}

static void write_line(const char *line, size_t len)
{
    if (g_batch && __fpending(stdout) + len + 1 > sizeof g_batch_buf)
        fflush(stdout);
    fwrite(line, 1, len, stdout);
    fputc('\n', stdout);
    if (!g_batch)
        fflush(stdout);
}

void log_line(const char *line) { write_line(line, strlen(line)); }

bool log_enabled(enum log_level lvl) { return lvl >= g_min; }

static void emit(enum log_level lvl, const char *event, cJSON *fields);

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
