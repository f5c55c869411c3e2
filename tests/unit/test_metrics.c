/* test_metrics.c - exact text of a small registry, escaping, histograms, series bound. */
#include "metrics.h"
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define OVERFLOW_HEAD                                                                      \
    "# HELP ebsd_metrics_series_overflow_total Metric updates folded into a family's "     \
    "overflow series because it reached its series limit.\n"                               \
    "# TYPE ebsd_metrics_series_overflow_total counter\n"

/* Renders r into a fresh string (caller frees). */
static char *render(const struct metrics *r)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    CHECK(metrics_render(r, &b) == EBSD_OK);
    return buf_steal(&b);
}

static double forty_two(void *arg)
{
    (void)arg;
    return 42;
}

static double read_double(void *arg) { return *(double *)arg; }

static void small_registry_exact(void)
{
    struct metrics *r = metrics_new();
    struct metric_family *req =
        metrics_counter(r, "ebsd_http_requests_total", "HTTP requests answered.", 2, "route",
                        "code");
    struct metric_family *inflight =
        metrics_gauge(r, "ebsd_inflight_requests", "Requests in progress.", 0);
    struct metric_family *empty = metrics_counter(r, "ebsd_empty_total", "Never used.", 1, "x");
    double bytes = 1536;
    struct metric_family *cb =
        metrics_gauge_fn(r, "ebsd_cache_bytes", "Bytes held by the cache.", read_double, &bytes);
    struct metric_family *cf =
        metrics_counter_fn(r, "ebsd_answer_total", "Computed at scrape.", forty_two, NULL);
    CHECK(req && inflight && empty && cb && cf);
    if (!(req && inflight && empty && cb && cf)) {
        metrics_free(r);
        return;
    }
    metrics_inc(req, 1, "/volumes/total", "200");
    metrics_inc(req, 1, "/instances/{id}/volumes", "404");
    metrics_inc(req, 2, "/volumes/total", "200");
    metrics_inc(inflight, 3);
    metrics_inc(inflight, -1);
    bytes = 2048.5;
    char *text = render(r);
    CHECK_STR(text, OVERFLOW_HEAD
              "# HELP ebsd_http_requests_total HTTP requests answered.\n"
              "# TYPE ebsd_http_requests_total counter\n"
              "ebsd_http_requests_total{route=\"/volumes/total\",code=\"200\"} 3\n"
              "ebsd_http_requests_total{route=\"/instances/{id}/volumes\",code=\"404\"} 1\n"
              "# HELP ebsd_inflight_requests Requests in progress.\n"
              "# TYPE ebsd_inflight_requests gauge\n"
              "ebsd_inflight_requests 2\n"
              "# HELP ebsd_empty_total Never used.\n"
              "# TYPE ebsd_empty_total counter\n"
              "# HELP ebsd_cache_bytes Bytes held by the cache.\n"
              "# TYPE ebsd_cache_bytes gauge\n"
              "ebsd_cache_bytes 2048.5\n"
              "# HELP ebsd_answer_total Computed at scrape.\n"
              "# TYPE ebsd_answer_total counter\n"
              "ebsd_answer_total 42\n");
    free(text);
    metrics_free(r);
    metrics_free(NULL);
}

static void updates_by_type(void)
{
    struct metrics *r = metrics_new();
    struct metric_family *c = metrics_counter(r, "c_total", "c", 0);
    struct metric_family *g = metrics_gauge(r, "g", "g", 1, "region");
    double lat[] = {1};
    struct metric_family *h = metrics_histogram(r, "h_seconds", "h", lat, 1, 0);
    metrics_inc(c, 2.5);
    metrics_inc(c, -1);       /* counters never go down */
    metrics_inc(c, NAN);      /* ignored */
    metrics_observe(c, 1);    /* wrong type: ignored */
    metrics_set(g, 7, "us-east-1");
    metrics_set(g, 5, "us-east-1");
    metrics_set(g, -0.25, NULL); /* NULL value is "" */
    metrics_inc(h, 1);        /* wrong type: ignored */
    metrics_set(h, 1);        /* wrong type: ignored */
    metrics_observe(h, NAN);  /* ignored */
    metrics_set(c, 10);       /* mirroring a count kept elsewhere */
    char *text = render(r);
    CHECK_STR(text, OVERFLOW_HEAD
              "# HELP c_total c\n# TYPE c_total counter\nc_total 10\n"
              "# HELP g g\n# TYPE g gauge\ng{region=\"us-east-1\"} 5\ng{region=\"\"} -0.25\n"
              "# HELP h_seconds h\n# TYPE h_seconds histogram\n");
    free(text);
    metrics_free(r);
}

static void escaping(void)
{
    struct metrics *r = metrics_new();
    struct metric_family *f =
        metrics_gauge(r, "esc", "Help with \\ backslash,\nnewline and \"quotes\".", 1, "v");
    metrics_set(f, 1, "a\\b\"c\nd");
    metrics_set(f, 2, "caf\xc3\xa9");
    char *text = render(r);
    CHECK_STR(text, OVERFLOW_HEAD
              "# HELP esc Help with \\\\ backslash,\\nnewline and \"quotes\".\n"
              "# TYPE esc gauge\n"
              "esc{v=\"a\\\\b\\\"c\\nd\"} 1\n"
              "esc{v=\"caf\xc3\xa9\"} 2\n");
    free(text);
    metrics_free(r);
}

static void histogram_cumulative(void)
{
    struct metrics *r = metrics_new();
    double b[] = {0.1, 0.5, 1};
    struct metric_family *h =
        metrics_histogram(r, "ebsd_request_duration_seconds", "Latency.", b, 3, 1, "route");
    CHECK(h != NULL);
    metrics_observe(h, 0.05, "total");
    metrics_observe(h, 0.1, "total"); /* le is inclusive */
    metrics_observe(h, 0.3, "total");
    metrics_observe(h, 0.75, "total");
    metrics_observe(h, 2, "total"); /* only +Inf */
    metrics_observe(h, 0.2, "instance");
    char *text = render(r);
    CHECK_STR(text, OVERFLOW_HEAD
              "# HELP ebsd_request_duration_seconds Latency.\n"
              "# TYPE ebsd_request_duration_seconds histogram\n"
              "ebsd_request_duration_seconds_bucket{route=\"total\",le=\"0.1\"} 2\n"
              "ebsd_request_duration_seconds_bucket{route=\"total\",le=\"0.5\"} 3\n"
              "ebsd_request_duration_seconds_bucket{route=\"total\",le=\"1\"} 4\n"
              "ebsd_request_duration_seconds_bucket{route=\"total\",le=\"+Inf\"} 5\n"
              "ebsd_request_duration_seconds_sum{route=\"total\"} 3.2\n"
              "ebsd_request_duration_seconds_count{route=\"total\"} 5\n"
              "ebsd_request_duration_seconds_bucket{route=\"instance\",le=\"0.1\"} 0\n"
              "ebsd_request_duration_seconds_bucket{route=\"instance\",le=\"0.5\"} 1\n"
              "ebsd_request_duration_seconds_bucket{route=\"instance\",le=\"1\"} 1\n"
              "ebsd_request_duration_seconds_bucket{route=\"instance\",le=\"+Inf\"} 1\n"
              "ebsd_request_duration_seconds_sum{route=\"instance\"} 0.2\n"
              "ebsd_request_duration_seconds_count{route=\"instance\"} 1\n");
    free(text);

    /* Unlabeled histogram with the stock latency buckets. */
    struct metric_family *u = metrics_histogram(r, "u_seconds", "U.", metrics_latency_buckets,
                                                metrics_latency_buckets_n, 0);
    CHECK(u != NULL);
    CHECK_INT(metrics_latency_buckets_n, 14);
    metrics_observe(u, 0.0042);
    metrics_observe(u, 30);
    text = render(r);
    CHECK(strstr(text, "u_seconds_bucket{le=\"0.001\"} 0\nu_seconds_bucket{le=\"0.0025\"} 0\n"
                       "u_seconds_bucket{le=\"0.005\"} 1\n") != NULL);
    CHECK(strstr(text, "u_seconds_bucket{le=\"10\"} 1\nu_seconds_bucket{le=\"30\"} 2\n"
                       "u_seconds_bucket{le=\"+Inf\"} 2\nu_seconds_sum 30.0042\n"
                       "u_seconds_count 2\n") != NULL);
    free(text);
    metrics_free(r);
}

static void series_bound(void)
{
    struct metrics *r = metrics_new();
    struct metric_family *f = metrics_counter(r, "x_total", "X.", 2, "a", "b");
    metrics_set_max_series(f, 2);
    metrics_inc(f, 1, "1", "1");
    metrics_inc(f, 1, "2", "2");
    metrics_inc(f, 1, "3", "3"); /* over the bound */
    metrics_inc(f, 1, "4", "4");
    metrics_inc(f, 1, "1", "1"); /* existing series still update */
    CHECK_INT(metrics_series_count(f), 3);
    CHECK_INT(metrics_overflowed(f), 2);
    char *text = render(r);
    CHECK_STR(text, "# HELP ebsd_metrics_series_overflow_total Metric updates folded into a "
                    "family's overflow series because it reached its series limit.\n"
                    "# TYPE ebsd_metrics_series_overflow_total counter\n"
                    "ebsd_metrics_series_overflow_total{family=\"x_total\"} 2\n"
                    "# HELP x_total X.\n"
                    "# TYPE x_total counter\n"
                    "x_total{a=\"1\",b=\"1\"} 2\n"
                    "x_total{a=\"2\",b=\"2\"} 1\n"
                    "x_total{a=\"other\",b=\"other\"} 2\n");
    free(text);

    /* Default bound: a label explosion stays at METRICS_MAX_SERIES_DEFAULT + 1 series. */
    struct metric_family *g = metrics_gauge(r, "y", "Y.", 1, "id");
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "i-%d", i);
        metrics_set(g, i, id);
    }
    CHECK_INT(metrics_series_count(g), METRICS_MAX_SERIES_DEFAULT + 1);
    CHECK_INT(metrics_overflowed(g), 1000 - METRICS_MAX_SERIES_DEFAULT);

    /* Long values are cut, and the cut ones share a series. */
    struct metric_family *l = metrics_gauge(r, "long_values", "L.", 1, "v");
    char longv[300];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    metrics_set(l, 1, longv);
    longv[200] = 'b';
    metrics_set(l, 2, longv);
    CHECK_INT(metrics_series_count(l), 1);
    metrics_free(r);
}

static void registration_rules(void)
{
    struct metrics *r = metrics_new();
    double b[] = {1, 2};
    double bad[] = {2, 1};
    double inf[] = {1, INFINITY};
    CHECK(metrics_counter(r, "", "h", 0) == NULL);
    CHECK(metrics_counter(r, NULL, "h", 0) == NULL);
    CHECK(metrics_counter(r, "9lives", "h", 0) == NULL);
    CHECK(metrics_counter(r, "has-dash", "h", 0) == NULL);
    CHECK(metrics_counter(r, "ok:colon_total", "h", 0) != NULL);
    CHECK(metrics_counter(r, "no_help_total", NULL, 0) == NULL);
    CHECK(metrics_counter(r, "empty_help_total", "", 0) == NULL);
    CHECK(metrics_counter(r, "l1", "h", 1, "__reserved") == NULL);
    CHECK(metrics_counter(r, "l2", "h", 1, "bad:label") == NULL);
    CHECK(metrics_counter(r, "l3", "h", 2, "a", "a") == NULL);
    CHECK(metrics_counter(r, "l4", "h", 5, "a", "b", "c", "d", "e") == NULL);
    CHECK(metrics_counter(r, "l5", "h", 4, "a", "b", "c", "d") != NULL);
    CHECK(metrics_gauge(r, "le_ok", "h", 1, "le") != NULL);
    CHECK(metrics_histogram(r, "h1", "h", b, 2, 1, "le") == NULL);
    CHECK(metrics_histogram(r, "h2", "h", bad, 2, 0) == NULL);
    CHECK(metrics_histogram(r, "h3", "h", inf, 2, 0) == NULL);
    CHECK(metrics_histogram(r, "h4", "h", NULL, 0, 0) == NULL);
    CHECK(metrics_gauge_fn(r, "fn", "h", NULL, NULL) == NULL);

    /* Same registration twice gives the same family; a different shape is refused. */
    struct metric_family *a = metrics_counter(r, "a_total", "h", 1, "x");
    CHECK(a != NULL);
    CHECK(metrics_counter(r, "a_total", "other help", 1, "x") == a);
    CHECK(metrics_counter(r, "a_total", "h", 1, "y") == NULL);
    CHECK(metrics_gauge(r, "a_total", "h", 1, "x") == NULL);
    struct metric_family *h = metrics_histogram(r, "h_seconds", "h", b, 2, 0);
    CHECK(h != NULL);
    CHECK(metrics_histogram(r, "h_seconds", "h", b, 2, 0) == h);
    CHECK(metrics_histogram(r, "h_seconds", "h", b, 1, 0) == NULL);
    CHECK(metrics_gauge_fn(r, "a_total", "h", forty_two, NULL) == NULL);
    CHECK(metrics_gauge_fn(r, "g_fn", "h", forty_two, NULL) != NULL);
    CHECK(metrics_gauge_fn(r, "g_fn", "h", forty_two, NULL) == NULL);
    CHECK(metrics_counter(r, METRICS_OVERFLOW_FAMILY, "h", 0) == NULL);
    metrics_free(r);
}

static void values_formatting(void)
{
    struct metrics *r = metrics_new();
    struct metric_family *g = metrics_gauge(r, "v", "V.", 1, "k");
    metrics_set(g, 0.1, "a");
    metrics_set(g, 1e21, "b");
    metrics_set(g, INFINITY, "c");
    metrics_set(g, -INFINITY, "d");
    metrics_set(g, NAN, "e");
    metrics_set(g, 123456789012, "f");
    metrics_set(g, 0.1 + 0.2, "g");
    char *text = render(r);
    CHECK(strstr(text, "v{k=\"a\"} 0.1\n") != NULL);
    CHECK(strstr(text, "v{k=\"b\"} 1e+21\n") != NULL);
    CHECK(strstr(text, "v{k=\"c\"} +Inf\n") != NULL);
    CHECK(strstr(text, "v{k=\"d\"} -Inf\n") != NULL);
    CHECK(strstr(text, "v{k=\"e\"} NaN\n") != NULL);
    CHECK(strstr(text, "v{k=\"f\"} 123456789012\n") != NULL);
    CHECK(strstr(text, "v{k=\"g\"} 0.30000000000000004\n") != NULL);
    free(text);
    metrics_free(r);
}

static void render_cap(void)
{
    struct metrics *r = metrics_new();
    struct metric_family *g = metrics_gauge(r, "v", "V.", 0);
    metrics_set(g, 1);
    struct buf b;
    buf_init(&b, 64);
    CHECK(metrics_render(r, &b) == EBSD_ETOOBIG);
    buf_free(&b);
    metrics_free(r);
}

TEST_MAIN(T(small_registry_exact), T(updates_by_type), T(escaping), T(histogram_cumulative),
          T(series_bound), T(registration_rules), T(values_formatting), T(render_cap))
