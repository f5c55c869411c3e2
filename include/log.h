/* log.h - structured logging to stdout, one line per event: JSON objects by default
 * (CloudWatch Logs and Kubernetes shippers take them as they are) or readable text.
 * Never pass a secret to these functions. */
#ifndef EBSD_LOG_H
#define EBSD_LOG_H
#include <stdbool.h>

#include <cjson/cJSON.h>

enum log_level { LOGL_DEBUG = 0, LOGL_INFO, LOGL_WARN, LOGL_ERROR };
enum log_format { LOG_FORMAT_JSON = 0, LOG_FORMAT_TEXT };

void log_setup(enum log_format fmt, enum log_level min_level);
/* Parses "debug|info|warn|error" / "json|text"; return -1 if unknown. */
int log_level_parse(const char *s);
int log_format_parse(const char *s);

/* One event: {"time":..,"level":..,"event":event,"msg":<formatted>}. */
void log_msg(enum log_level lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Whether events at lvl are written: lets a caller skip building fields nobody will see. */
bool log_enabled(enum log_level lvl);
/* One event with extra fields; takes ownership of fields (a cJSON object, may be NULL). */
void log_fields(enum log_level lvl, const char *event, cJSON *fields);
/* Like log_fields, but written whatever the level: start-up notices ("listening") that
 * supervisors and tests wait for. */
void log_always(const char *event, cJSON *fields);
/* A line written as is (Lambda-style REPORT lines are tab-separated text). */
void log_line(const char *line);

/* Off by default: every line is written to stdout when logged. On: lines collect in a
 * PIPE_BUF-sized batch that reaches stdout at log_flush() (the loop calls it before it
 * waits), when the next line would not fit, before every fork, and at exit; a write never
 * splits a line. A forked child goes back to writing each line at once. */
void log_batch(bool on);
/* Writes out the batched lines, if any. */
void log_flush(void);

#define log_debug(ev, ...) log_msg(LOGL_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_msg(LOGL_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_msg(LOGL_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_msg(LOGL_ERROR, ev, __VA_ARGS__)

#endif
