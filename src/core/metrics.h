/* metrics.h - a small Prometheus registry: counters, gauges and histograms with up to
 * METRICS_MAX_LABELS labels, rendered in the text exposition format 0.0.4 into a capped
 * buffer. Single-threaded (the event loop owns it): no locks, no atomics.
 *
 * Families are registered once (name, help, type, label names) and render in registration
 * order, with HELP and TYPE even before they have a series. Series are created on first use
 * by label values and render in creation order. To stop label explosions each family holds
 * at most max_series series (METRICS_MAX_SERIES_DEFAULT unless changed); an update for a new
 * label set beyond that goes to one overflow series whose every label value is
 * METRICS_OVERFLOW_VALUE, and is counted in the registry's own counter
 * ebsd_metrics_series_overflow_total{family="<name>"}, so totals stay right and the
 * overflow is visible. */
#ifndef EBSD_METRICS_H
#define EBSD_METRICS_H
#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "status.h"

#define METRICS_MAX_LABELS 4
#define METRICS_MAX_BUCKETS 32
#define METRICS_MAX_SERIES_DEFAULT 100
/* Longer label values are cut to this many bytes (at a UTF-8 boundary). */
#define METRICS_MAX_VALUE_LEN 128
#define METRICS_OVERFLOW_VALUE "other"
#define METRICS_OVERFLOW_FAMILY "ebsd_metrics_series_overflow_total"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics;
struct metric_family;

/* Request latency buckets in seconds, 0.001 .. 30 (for metrics_histogram). */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_buckets_n;

/* Creates a registry holding only the overflow counter family. Never NULL (OOM aborts).
 * Caller frees with metrics_free, which frees every family and series. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *r);

/* Register a family; name and label names are copied. The nlabels arguments after nlabels
 * are the label names (const char *). Returns the family (owned by the registry, valid until
 * metrics_free), or NULL on a programming error: invalid metric or label name (Prometheus
 * rules; "__" prefixes and, for histograms, "le" are reserved), nlabels above
 * METRICS_MAX_LABELS, or a name already registered with a different type or labels.
 * Registering the same family twice returns the first one. help is required and non-empty
 * (promtool flags metrics without help text). */
struct metric_family *metrics_counter(struct metrics *r, const char *name, const char *help,
                                      size_t nlabels, ...);
struct metric_family *metrics_gauge(struct metrics *r, const char *name, const char *help,
                                    size_t nlabels, ...);
/* bounds: 1..METRICS_MAX_BUCKETS finite upper bounds, strictly increasing (copied); the
 * +Inf bucket is implicit. Also NULL if the bounds are bad or differ from an earlier
 * registration of the same name. */
struct metric_family *metrics_histogram(struct metrics *r, const char *name, const char *help,
                                        const double *bounds, size_t nbounds, size_t nlabels,
                                        ...);

/* An unlabeled gauge or counter whose value fn(arg) computes at each render (cache bytes,
 * evictions kept by another module). arg is the caller's, never freed. Returns the family,
 * or NULL for an invalid or already registered name, or a NULL fn. Updates on such a family
 * are ignored. */
typedef double (*metrics_value_fn)(void *arg);
struct metric_family *metrics_gauge_fn(struct metrics *r, const char *name, const char *help,
                                       metrics_value_fn fn, void *arg);
struct metric_family *metrics_counter_fn(struct metrics *r, const char *name, const char *help,
                                         metrics_value_fn fn, void *arg);

/* Changes how many series f may hold (at least 1) before updates go to the overflow series.
 * Series already created are kept. */
void metrics_set_max_series(struct metric_family *f, size_t max_series);

/* Updates. Exactly the family's nlabels label values (const char *, NULL taken as "") follow
 * v. Updates that do not fit the family's type are ignored, so a metric can never break a
 * request:
 *   metrics_inc      counter (v >= 0 and not NaN) or gauge (any v): adds v
 *   metrics_set      gauge, or counter mirroring a count kept elsewhere (caller keeps it
 *                    monotonic): sets v
 *   metrics_observe  histogram, v not NaN: counts v in the first bucket with v <= le */
void metrics_inc(struct metric_family *f, double v, ...);
void metrics_set(struct metric_family *f, double v, ...);
void metrics_observe(struct metric_family *f, double v, ...);

/* Appends the whole registry to out in text format 0.0.4 (Content-Type
 * "text/plain; version=0.0.4; charset=utf-8"). Returns EBSD_OK, or EBSD_ETOOBIG when out's
 * cap is hit (out then holds a partial text the caller must not serve). */
EBSD_MUST_CHECK ebsd_status metrics_render(const struct metrics *r, struct buf *out);

/* Series f holds (the overflow series included), and updates sent to its overflow series. */
size_t metrics_series_count(const struct metric_family *f);
uint64_t metrics_overflowed(const struct metric_family *f);

#endif
