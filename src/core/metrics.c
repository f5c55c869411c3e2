/* metrics.c - Prometheus registry and text-format 0.0.4 renderer (see metrics.h).
 * Series are found by a uthash table keyed by their length-prefixed label values; each
 * series keeps its label set pre-rendered and escaped, so a scrape only copies text. */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define uthash_malloc(sz) xmalloc(sz)
#define uthash_free(ptr, sz) free(ptr)
#include <uthash.h>

const double metrics_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25,  0.5,    1,     2.5,  5,     10,   30};
const size_t metrics_latency_buckets_n =
    sizeof metrics_latency_buckets / sizeof metrics_latency_buckets[0];

/* Longest metric or label name accepted (real ones are far shorter). */
#define METRICS_MAX_NAME_LEN 200

struct series {
    UT_hash_handle hh; /* iteration order is creation order */
    char *key;         /* length-prefixed label values */
    size_t keylen;
    char *labels;      /* escaped 'a="x",b="y"' (empty without labels) */
    double value;      /* counter, gauge */
    double sum;        /* histogram */
    uint64_t count;
    uint64_t *buckets; /* histogram: per-bucket (not cumulative) counts */
};

struct metric_family {
    struct metrics *reg;
    struct metric_family *next; /* registration order */
    enum metric_type type;
    char *name;
    char *help;
    size_t nlabels;
    char *label_names[METRICS_MAX_LABELS];
    double *bounds;
    size_t nbounds;
    metrics_value_fn fn;
    void *fn_arg;
    struct series *series; /* uthash head */
    size_t nseries;        /* excluding the overflow series */
    size_t max_series;
    struct series *overflow;
    uint64_t overflowed;
};

struct metrics {
    struct metric_family *head, *tail;
    struct metric_family *overflow_family;
};

static bool valid_metric_name(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9') || strlen(s) > METRICS_MAX_NAME_LEN)
        return false;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == ':'))
            return false;
    }
    return true;
}

static bool valid_label_name(const char *s, enum metric_type type)
{
    if (!valid_metric_name(s) || strchr(s, ':') || strncmp(s, "__", 2) == 0)
        return false;
    return !(type == METRIC_HISTOGRAM && strcmp(s, "le") == 0);
}

static struct metric_family *find_family(const struct metrics *r, const char *name)
{
    for (struct metric_family *f = r->head; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static void series_free(struct series *s)
{
    free(s->key);
    free(s->labels);
    free(s->buckets);
    free(s);
}

static void family_free(struct metric_family *f)
{
    struct series *s, *tmp;
    HASH_ITER(hh, f->series, s, tmp) {
        HASH_DELETE(hh, f->series, s);
        series_free(s);
    }
    if (f->overflow)
        series_free(f->overflow);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->label_names[i]);
    free(f->name);
    free(f->help);
    free(f->bounds);
    free(f);
}

void metrics_free(struct metrics *r)
{
    if (!r)
        return;
    struct metric_family *f = r->head;
    while (f) {
        struct metric_family *next = f->next;
        family_free(f);
        f = next;
    }
    free(r);
}

/* Whether an existing family f matches a new registration of the same name. */
static bool same_shape(const struct metric_family *f, enum metric_type type, size_t nlabels,
                       const char *const *names, const double *bounds, size_t nbounds)
{
    if (f->fn || f->type != type || f->nlabels != nlabels || f->nbounds != nbounds)
        return false;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(f->label_names[i], names[i]) != 0)
            return false;
    for (size_t i = 0; i < nbounds; i++)
        if (f->bounds[i] != bounds[i])
            return false;
    return true;
}

static struct metric_family *family_add(struct metrics *r, enum metric_type type,
                                        const char *name, const char *help, size_t nlabels,
                                        const char *const *names, const double *bounds,
                                        size_t nbounds, metrics_value_fn fn, void *arg)
{
    if (!valid_metric_name(name) || !help || !*help || nlabels > METRICS_MAX_LABELS)
        return NULL;
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_label_name(names[i], type))
            return NULL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return NULL;
    }
    if (type == METRIC_HISTOGRAM) {
        if (!bounds || nbounds == 0 || nbounds > METRICS_MAX_BUCKETS)
            return NULL;
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
                return NULL;
    }
    struct metric_family *old = find_family(r, name);
    if (old)
        return !fn && same_shape(old, type, nlabels, names, bounds, nbounds) ? old : NULL;

    struct metric_family *f = xcalloc(1, sizeof *f);
    f->reg = r;
    f->type = type;
    f->name = xstrdup(name);
    f->help = xstrdup(help);
    f->nlabels = nlabels;
    for (size_t i = 0; i < nlabels; i++)
        f->label_names[i] = xstrdup(names[i]);
    if (nbounds) {
        f->bounds = xmalloc(nbounds * sizeof *f->bounds);
        memcpy(f->bounds, bounds, nbounds * sizeof *f->bounds);
        f->nbounds = nbounds;
    }
    f->fn = fn;
    f->fn_arg = arg;
    f->max_series = METRICS_MAX_SERIES_DEFAULT;
    if (r->tail)
        r->tail->next = f;
    else
        r->head = f;
    r->tail = f;
    return f;
}

static struct metric_family *family_add_va(struct metrics *r, enum metric_type type,
                                           const char *name, const char *help,
                                           const double *bounds, size_t nbounds,
                                           size_t nlabels, va_list ap)
{
    const char *names[METRICS_MAX_LABELS];
    if (nlabels > METRICS_MAX_LABELS)
        return NULL;
    for (size_t i = 0; i < nlabels; i++)
        names[i] = va_arg(ap, const char *);
    return family_add(r, type, name, help, nlabels, names, bounds, nbounds, NULL, NULL);
}

struct metrics *metrics_new(void)
{
    struct metrics *r = xcalloc(1, sizeof *r);
    const char *label = "family";
    r->overflow_family = family_add(r, METRIC_COUNTER, METRICS_OVERFLOW_FAMILY,
                                    "Metric updates folded into a family's overflow series "
                                    "because it reached its series limit.",
                                    1, &label, NULL, 0, NULL, NULL);
    r->overflow_family->max_series = 1000;
    return r;
}

struct metric_family *metrics_counter(struct metrics *r, const char *name, const char *help,
                                      size_t nlabels, ...)
{
    va_list ap;
    va_start(ap, nlabels);
    struct metric_family *f = family_add_va(r, METRIC_COUNTER, name, help, NULL, 0, nlabels, ap);
    va_end(ap);
    return f;
}

struct metric_family *metrics_gauge(struct metrics *r, const char *name, const char *help,
                                    size_t nlabels, ...)
{
    va_list ap;
    va_start(ap, nlabels);
    struct metric_family *f = family_add_va(r, METRIC_GAUGE, name, help, NULL, 0, nlabels, ap);
    va_end(ap);
    return f;
}

struct metric_family *metrics_histogram(struct metrics *r, const char *name, const char *help,
                                        const double *bounds, size_t nbounds, size_t nlabels,
                                        ...)
{
    va_list ap;
    va_start(ap, nlabels);
    struct metric_family *f =
        family_add_va(r, METRIC_HISTOGRAM, name, help, bounds, nbounds, nlabels, ap);
    va_end(ap);
    return f;
}

struct metric_family *metrics_gauge_fn(struct metrics *r, const char *name, const char *help,
                                       metrics_value_fn fn, void *arg)
{
    if (!fn)
        return NULL;
    return family_add(r, METRIC_GAUGE, name, help, 0, NULL, NULL, 0, fn, arg);
}

struct metric_family *metrics_counter_fn(struct metrics *r, const char *name, const char *help,
                                         metrics_value_fn fn, void *arg)
{
    if (!fn)
        return NULL;
    return family_add(r, METRIC_COUNTER, name, help, 0, NULL, NULL, 0, fn, arg);
}

void metrics_set_max_series(struct metric_family *f, size_t max_series)
{
    f->max_series = max_series ? max_series : 1;
}

size_t metrics_series_count(const struct metric_family *f)
{
    return f->nseries + (f->overflow ? 1 : 0);
}

uint64_t metrics_overflowed(const struct metric_family *f) { return f->overflowed; }

/* Appends s escaped for a label value (\\, \", \n) or, with quotes false, for HELP (\\, \n). */
static void escape_into(struct buf *b, const char *s, bool quotes, ebsd_status *st)
{
    for (; *s && *st == EBSD_OK; s++) {
        if (*s == '\\')
            *st = buf_append(b, "\\\\", 2);
        else if (*s == '\n')
            *st = buf_append(b, "\\n", 2);
        else if (*s == '"' && quotes)
            *st = buf_append(b, "\\\"", 2);
        else
            *st = buf_append(b, s, 1);
    }
}

static struct series *series_new(struct metric_family *f, const char *key, size_t keylen,
                                 const char *const *values)
{
    struct series *s = xcalloc(1, sizeof *s);
    s->key = xmalloc(keylen ? keylen : 1);
    memcpy(s->key, key, keylen);
    s->keylen = keylen;
    /* Names are valid identifiers and values at most METRICS_MAX_VALUE_LEN bytes, each
     * escaping to at most twice its size: the cap below is never reached. */
    struct buf b;
    buf_init(&b, 4096 + METRICS_MAX_LABELS * 2 * METRICS_MAX_VALUE_LEN);
    ebsd_status st = EBSD_OK;
    for (size_t i = 0; i < f->nlabels && st == EBSD_OK; i++) {
        st = buf_printf(&b, "%s%s=\"", i ? "," : "", f->label_names[i]);
        escape_into(&b, values[i], true, &st);
        if (st == EBSD_OK)
            st = buf_append(&b, "\"", 1);
    }
    s->labels = buf_steal(&b);
    if (f->type == METRIC_HISTOGRAM)
        s->buckets = xcalloc(f->nbounds, sizeof *s->buckets);
    return s;
}

/* Finds or creates the series for the nlabels values in ap; the overflow series when the
 * family is full. Never NULL. */
static struct series *series_get(struct metric_family *f, va_list ap)
{
    const char *values[METRICS_MAX_LABELS];
    char keybuf[METRICS_MAX_LABELS * (sizeof(size_t) + METRICS_MAX_VALUE_LEN)];
    size_t keylen = 0;
    char *trunc[METRICS_MAX_LABELS] = {NULL};
    for (size_t i = 0; i < f->nlabels; i++) {
        const char *v = va_arg(ap, const char *);
        values[i] = v ? v : "";
        size_t n = strlen(values[i]);
        if (n > METRICS_MAX_VALUE_LEN) {
            /* Cut at a UTF-8 character boundary so the text stays valid UTF-8. */
            n = METRICS_MAX_VALUE_LEN;
            while (n > 0 && ((unsigned char)values[i][n] & 0xC0) == 0x80)
                n--;
            values[i] = trunc[i] = xstrndup(values[i], n);
        }
    }
    for (size_t i = 0; i < f->nlabels; i++) {
        size_t n = strlen(values[i]);
        memcpy(keybuf + keylen, &n, sizeof n);
        memcpy(keybuf + keylen + sizeof n, values[i], n);
        keylen += sizeof n + n;
    }
    const char *key = keybuf;
    struct series *s = NULL;
    HASH_FIND(hh, f->series, key, keylen, s);
    if (!s && f->nseries < f->max_series) {
        s = series_new(f, key, keylen, values);
        HASH_ADD_KEYPTR(hh, f->series, s->key, s->keylen, s);
        f->nseries++;
    } else if (!s) {
        if (!f->overflow) {
            const char *other[METRICS_MAX_LABELS];
            for (size_t i = 0; i < f->nlabels; i++)
                other[i] = METRICS_OVERFLOW_VALUE;
            f->overflow = series_new(f, "", 0, other);
        }
        s = f->overflow;
        f->overflowed++;
        if (f != f->reg->overflow_family)
            metrics_inc(f->reg->overflow_family, 1, f->name);
    }
    for (size_t i = 0; i < f->nlabels; i++)
        free(trunc[i]);
    return s;
}

void metrics_inc(struct metric_family *f, double v, ...)
{
    if (f->fn || isnan(v) || f->type == METRIC_HISTOGRAM || (f->type == METRIC_COUNTER && v < 0))
        return;
    va_list ap;
    va_start(ap, v);
    struct series *s = series_get(f, ap);
    va_end(ap);
    s->value += v;
}

void metrics_set(struct metric_family *f, double v, ...)
{
    if (f->fn || f->type == METRIC_HISTOGRAM)
        return;
    va_list ap;
    va_start(ap, v);
    struct series *s = series_get(f, ap);
    va_end(ap);
    s->value = v;
}

void metrics_observe(struct metric_family *f, double v, ...)
{
    if (f->fn || isnan(v) || f->type != METRIC_HISTOGRAM)
        return;
    va_list ap;
    va_start(ap, v);
    struct series *s = series_get(f, ap);
    va_end(ap);
    size_t i = 0;
    while (i < f->nbounds && v > f->bounds[i])
        i++;
    if (i < f->nbounds)
        s->buckets[i]++;
    s->count++;
    s->sum += v;
}

/* Formats v as Prometheus expects: shortest %g that reads back exactly, +Inf/-Inf/NaN. */
static void fmt_double(double v, char *out, size_t outlen)
{
    if (isnan(v)) {
        snprintf(out, outlen, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, outlen, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static const char *type_name(enum metric_type t)
{
    switch (t) {
    case METRIC_COUNTER:
        return "counter";
    case METRIC_GAUGE:
        return "gauge";
    case METRIC_HISTOGRAM:
        break;
    }
    return "histogram";
}

/* name{labels} value\n, or name value\n without labels; extra is one more label pair. */
static ebsd_status sample(struct buf *b, const char *name, const char *suffix,
                          const char *labels, const char *extra, double v)
{
    char num[40];
    fmt_double(v, num, sizeof num);
    bool any = *labels || extra;
    return buf_printf(b, "%s%s%s%s%s%s%s %s\n", name, suffix, any ? "{" : "", labels,
                      *labels && extra ? "," : "", extra ? extra : "", any ? "}" : "", num);
}

static ebsd_status render_series(const struct metric_family *f, const struct series *s,
                                 struct buf *b)
{
    if (f->type != METRIC_HISTOGRAM)
        return sample(b, f->name, "", s->labels, NULL, s->value);
    ebsd_status st = EBSD_OK;
    uint64_t cum = 0;
    char le[64], num[40];
    for (size_t i = 0; i < f->nbounds && st == EBSD_OK; i++) {
        cum += s->buckets[i];
        fmt_double(f->bounds[i], num, sizeof num);
        snprintf(le, sizeof le, "le=\"%s\"", num);
        st = sample(b, f->name, "_bucket", s->labels, le, (double)cum);
    }
    if (st == EBSD_OK)
        st = sample(b, f->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
    if (st == EBSD_OK)
        st = sample(b, f->name, "_sum", s->labels, NULL, s->sum);
    if (st == EBSD_OK)
        st = sample(b, f->name, "_count", s->labels, NULL, (double)s->count);
    return st;
}

ebsd_status metrics_render(const struct metrics *r, struct buf *out)
{
    ebsd_status st = EBSD_OK;
    for (const struct metric_family *f = r->head; f && st == EBSD_OK; f = f->next) {
        st = buf_printf(out, "# HELP %s ", f->name);
        escape_into(out, f->help, false, &st);
        if (st == EBSD_OK)
            st = buf_printf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
        if (st == EBSD_OK && f->fn)
            st = sample(out, f->name, "", "", NULL, f->fn(f->fn_arg));
        for (const struct series *s = f->series; s && st == EBSD_OK; s = s->hh.next)
            st = render_series(f, s, out);
        if (st == EBSD_OK && f->overflow)
            st = render_series(f, f->overflow, out);
    }
    return st;
}
