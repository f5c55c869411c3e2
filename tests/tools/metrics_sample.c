/* metrics_sample.c - renders a registry with every metric kind to stdout, so the integration
 * test can hold the exposition text to `promtool check metrics`. */
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "metrics.h"

static double cache_bytes(void *arg)
{
    (void)arg;
    return 123456;
}

static double evictions(void *arg)
{
    (void)arg;
    return 7;
}

int main(void)
{
    struct metrics *r = metrics_new();
    struct metric_family *req =
        metrics_counter(r, "ebsd_http_requests_total", "HTTP requests answered, by route and code.",
                        3, "route", "method", "code");
    struct metric_family *inflight =
        metrics_gauge(r, "ebsd_http_inflight_requests", "Requests in progress.", 0);
    struct metric_family *lat = metrics_histogram(
        r, "ebsd_http_request_duration_seconds", "Request latency in seconds.",
        metrics_latency_buckets, metrics_latency_buckets_n, 1, "route");
    struct metric_family *plain = metrics_histogram(
        r, "ebsd_ec2_call_duration_seconds", "EC2 call latency in seconds.",
        metrics_latency_buckets, metrics_latency_buckets_n, 0);
    struct metric_family *esc = metrics_gauge(
        r, "ebsd_sample_escaping", "Help with a \\ backslash and a\nnewline.", 1, "value");
    struct metric_family *capped =
        metrics_counter(r, "ebsd_sample_capped_total", "A family over its series bound.", 1, "id");
    struct metric_family *unused =
        metrics_counter(r, "ebsd_sample_unused_total", "A family with no series yet.", 1, "x");
    struct metric_family *fg =
        metrics_gauge_fn(r, "ebsd_cache_bytes", "Bytes held by the cache.", cache_bytes, NULL);
    struct metric_family *fc = metrics_counter_fn(r, "ebsd_cache_evictions_total",
                                                  "Cache entries evicted.", evictions, NULL);
    if (!req || !inflight || !lat || !plain || !esc || !capped || !unused || !fg || !fc) {
        fprintf(stderr, "metrics_sample: a metric registration failed\n");
        metrics_free(r);
        return 1;
    }
    metrics_inc(req, 3, "/volumes/total", "GET", "200");
    metrics_inc(req, 1, "/instances/{instance_id}/volumes", "GET", "404");
    metrics_inc(req, 1, "/volumes/total", "POST", "405");
    metrics_set(inflight, 2);
    const double samples[] = {0.0004, 0.002, 0.07, 0.3, 1.5, 12, 45};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        metrics_observe(lat, samples[i], i % 2 ? "total" : "instance");
        metrics_observe(plain, samples[i]);
    }
    metrics_set(esc, 1, "back\\slash \"quoted\"\nnew line");
    metrics_set(esc, 2, "caf\xc3\xa9");
    metrics_set_max_series(capped, 2);
    const char *ids[] = {"i-1", "i-2", "i-3", "i-4"};
    for (size_t i = 0; i < 4; i++)
        metrics_inc(capped, 1, ids[i]);

    struct buf b;
    buf_init(&b, 1 << 20);
    int rc = 0;
    if (metrics_render(r, &b) != EBSD_OK) {
        fprintf(stderr, "metrics_sample: metrics_render: output too big\n");
        rc = 1;
    } else if (fwrite(b.data, 1, b.len, stdout) != b.len || fflush(stdout) != 0) {
        perror("metrics_sample: fwrite");
        rc = 1;
    }
    buf_free(&b);
    metrics_free(r);
    return rc;
}
