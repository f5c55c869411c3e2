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
/* The format and level log_setup set (a worker's message carries them). */
void log_settings(enum log_format *fmt, enum log_level *min_level);
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
/* A line built in place, without cJSON or printf: for the lines written once per request
 * (access, REPORT). Short lines stay on the stack; a longer one moves to the heap. */
struct log_rec {
    char *p;
    size_t len, cap;
    unsigned nfields;
    bool json;
    char small[512];
};
/* An event line in the configured format, exactly as log_fields would write it: the rec_*
 * calls add fields in order and log_rec_end writes the line (and frees what it took). */
void log_rec_begin(struct log_rec *r, enum log_level lvl, const char *event);
void log_rec_str(struct log_rec *r, const char *key, const char *val);
void log_rec_num(struct log_rec *r, const char *key, long long v);
/* v / 100 as cJSON prints it: "12.5", "12", "0.07". */
void log_rec_cents(struct log_rec *r, const char *key, long long cents);
void log_rec_end(struct log_rec *r);
/* Plain text: begin with log_rec_text, append with log_rec_raw / log_rec_u / log_rec_fixed2
 * (v / 100 with exactly two decimals), write with log_rec_end. */
void log_rec_text(struct log_rec *r);
void log_rec_raw(struct log_rec *r, const char *s);
void log_rec_u(struct log_rec *r, unsigned long long v);
void log_rec_fixed2(struct log_rec *r, long long cents);

/* A line written as is (Lambda-style REPORT lines are tab-separated text). */
void log_line(const char *line);

/* Off by default: every line is written to stdout when logged. On: lines collect in a
 * PIPE_BUF-sized batch that reaches stdout at log_flush() (the loop calls it before it
 * waits), when the next line would not fit, before every fork, and at exit; a write never
 * splits a line. A forked child goes back to writing each line at once. */
void log_batch(bool on);
/* Writes out the batched lines, if any. */
void log_flush(void);
/* From now on, lines go to stderr instead of stdout (ebsd --once: stdout holds only the
 * document it prints). Workers forked later inherit it. */
void log_to_stderr(void);

#define log_debug(ev, ...) log_msg(LOGL_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_msg(LOGL_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_msg(LOGL_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_msg(LOGL_ERROR, ev, __VA_ARGS__)

#endif
