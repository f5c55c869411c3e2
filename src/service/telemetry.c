/* telemetry.c - the process's metric registry (see telemetry.h). */
#include "telemetry.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "credsvc.h"
#include "clock.h"
#include "engine.h"
#include "limiter.h"
#include "metrics.h"
#include "budgetshare.h"
#include "redisshare.h"
#include "refresh.h"
#include "storage.h"
#include "route.h"
#include "skew.h"
#include "version.h"
#include "volumes.h"

static struct {
    struct metrics *reg;
    struct metric_family *requests, *latency;
    struct metric_family *cache_lookups, *cache_entries, *cache_bytes, *cache_evictions;
    struct metric_family *flights;
    struct metric_family *forked, *killed, *crashed, *running, *queued, *max_children, *child_rss;
    struct metric_family *ec2_calls, *ec2_retries, *ec2_throttled, *ec2_errors, *retry_quota;
    struct metric_family *creds_info, *creds_expiry, *build;
    struct metric_family *redis_up, *redis_errors, *redis_fallbacks, *redis_rejected,
        *redis_shared, *redis_budget_grants, *redis_budget_tokens, *redis_budget_local,
        *redis_live;
    struct metric_family *client_refused, *gzip_responses, *gzip_bodies;
    struct metric_family *budget_tokens, *budget_waits, *budget_refusals, *killed_signal;
    struct metric_family *acct_info, *acct_expiry, *acct_fetches; /* per account (issue 16) */
} t;

void telemetry_init(void)
{
    if (t.reg)
        return;
    struct metrics *r = t.reg = metrics_new();
    t.requests = metrics_counter(r, "ebsd_http_requests_total", "HTTP requests by route and status.",
                                 2, "route", "status");
    t.latency = metrics_histogram(r, "ebsd_http_request_duration_seconds",
                                  "HTTP request latency by route.", metrics_latency_buckets,
                                  metrics_latency_buckets_n, 1, "route");
    t.cache_lookups = metrics_counter(r, "ebsd_cache_requests_total",
                                      "Data requests by cache outcome (hit, miss, coalesced, "
                                      "refreshed, stale, refresh_ahead, not_modified, limited).",
                                      1, "outcome");
    t.cache_entries = metrics_gauge(r, "ebsd_cache_entries", "Entries in the response cache.", 0);
    t.cache_bytes = metrics_gauge(r, "ebsd_cache_bytes", "Bytes held by the response cache.", 0);
    t.cache_evictions = metrics_counter(r, "ebsd_cache_evictions_total",
                                        "Cache entries evicted to stay within bounds.", 0);
    t.flights = metrics_gauge(r, "ebsd_fetches_in_flight", "EC2 fetches in progress (single flights).", 0);
    t.forked = metrics_counter(r, "ebsd_children_forked_total", "Worker processes forked.", 0);
    t.killed = metrics_counter(r, "ebsd_children_killed_total",
                               "Worker processes killed, by reason (deadline, memory).", 1, "reason");
    t.crashed = metrics_counter(r, "ebsd_children_crashed_total",
                                "Worker processes that died of a signal they did not ask for.", 0);
    t.running = metrics_gauge(r, "ebsd_children_running", "Worker processes alive now.", 0);
    t.queued = metrics_gauge(r, "ebsd_children_queued", "Worker tasks waiting for capacity.", 0);
    t.max_children = metrics_gauge(r, "ebsd_children_max", "Configured bound on live workers.", 0);
    t.child_rss = metrics_gauge(r, "ebsd_child_max_rss_bytes",
                                "Peak resident memory of the last worker reaped.", 0);
    t.ec2_calls = metrics_counter(r, "ebsd_ec2_calls_total",
                                  "EC2 HTTP requests by target (account, region) and action.", 3,
                                  "account", "region", "action");
    /* one series per configured target and action: bounded by the config, never by clients */
    metrics_set_max_series(t.ec2_calls, (size_t)CONFIG_MAX_ACCOUNTS * CONFIG_MAX_REGIONS * 2);
    t.ec2_retries = metrics_counter(r, "ebsd_ec2_retries_total",
                                    "EC2 requests retried, by target (account, region).", 2,
                                    "account", "region");
    metrics_set_max_series(t.ec2_retries, (size_t)CONFIG_MAX_ACCOUNTS * CONFIG_MAX_REGIONS);
    t.ec2_throttled = metrics_counter(r, "ebsd_ec2_throttled_total",
                                      "EC2 answers that were throttling errors, by target "
                                      "(account, region).", 2, "account", "region");
    metrics_set_max_series(t.ec2_throttled, (size_t)CONFIG_MAX_ACCOUNTS * CONFIG_MAX_REGIONS);
    t.ec2_errors = metrics_counter(r, "ebsd_ec2_errors_total",
                                   "EC2 calls that failed after retries, by target (account, "
                                   "region) and error code.", 3, "account", "region", "code");
    metrics_set_max_series(t.ec2_errors, (size_t)CONFIG_MAX_ACCOUNTS * CONFIG_MAX_REGIONS *
                                             ENGINE_MAX_ERROR_CODES);
    t.retry_quota = metrics_gauge(r, "ebsd_ec2_retry_quota_remaining",
                                  "Retry quota left in the last worker's EC2 client.", 0);
    t.creds_info = metrics_gauge(r, "ebsd_credentials_info",
                                 "1 for the credential source in use.", 1, "source");
    t.creds_expiry = metrics_gauge(r, "ebsd_credentials_expiry_seconds",
                                   "Seconds until the credentials expire (-1: they do not).", 0);
    t.acct_info = metrics_gauge(r, "ebsd_account_credentials_info",
                                "1 while the account has credentials (0: none), by source.", 3,
                                "account", "account_id", "source");
    t.acct_expiry = metrics_gauge(r, "ebsd_account_credentials_expiry_seconds",
                                  "Seconds until the account's credentials expire (-1: never or "
                                  "none).", 1, "account");
    t.acct_fetches = metrics_counter(r, "ebsd_account_credentials_fetches_total",
                                     "Credential fetches (AssumeRole...) of each account by "
                                     "outcome.", 2, "account", "outcome");
    t.build = metrics_gauge(r, "ebsd_build_info", "Build information.", 1, "version");
    t.budget_tokens = metrics_gauge(r, "ebsd_ec2_budget_tokens",
                                    "EC2 calls ebsd's budget allows at once now, per target and "
                                    "action class (negative: tokens promised to waiting calls).",
                                    3, "account", "region", "action");
    t.budget_waits = metrics_counter(r, "ebsd_ec2_budget_waits_total",
                                     "EC2 calls that waited for a budget token.", 3, "account",
                                     "region", "action");
    t.budget_refusals = metrics_counter(r, "ebsd_ec2_budget_refusals_total",
                                        "Requests refused (503 RequestLimitExceeded) because the "
                                        "budget had no token within fanout.queue_timeout_ms.",
                                        3, "account", "region", "action");
    t.killed_signal = metrics_counter(r, "ebsd_children_killed_by_signal_total",
                                      "Worker processes killed from outside (an operator, the "
                                      "OOM killer), by signal.", 1, "signal");
    (void)metrics_gauge_fn(r, "ebsd_clock_offset_seconds",
                           "AWS's clock minus this host's, learned from a server's Date header "
                           "(0 until a clock-skew error taught it); requests are signed with it.",
                           skew_metric_seconds, NULL);
    metrics_set(t.build, 1, EBSD_VERSION);
    t.redis_up = metrics_gauge(r, "ebsd_redis_up",
                               "1 while both Redis connections are up, 0 while down (absent without redis.url).", 0);
    t.redis_errors = metrics_counter(r, "ebsd_redis_errors_total",
                                     "Redis commands that failed (error reply, timeout, refused "
                                     "while down, malformed reply) and failed connection attempts.",
                                     1, "kind");
    t.redis_fallbacks = metrics_counter(r, "ebsd_redis_fallbacks_total",
                                        "Misses fetched locally because Redis failed.", 0);
    t.redis_rejected = metrics_counter(r, "ebsd_redis_rejected_total",
                                       "Values read from Redis that failed validation (a miss).", 0);
    t.redis_shared = metrics_counter(r, "ebsd_redis_shared_total",
                                     "Shared-cache outcomes: value (answer from Redis), owner "
                                     "(fetched for every replica), waited (for another "
                                     "replica's fetch), update (L1 refreshed by a wake message).",
                                     1, "outcome");
    t.redis_budget_grants = metrics_counter(r, "ebsd_redis_budget_grants_total",
                                            "Asks for EC2 budget tokens from Redis, every 100 ms "
                                            "per target and action that spent some: granted, "
                                            "refused (the shared budget was empty), failed "
                                            "(Redis lost: refilled by time at rate / live "
                                            "replicas).", 1, "outcome");
    t.redis_budget_tokens = metrics_counter(r, "ebsd_redis_budget_tokens_granted_total",
                                            "EC2 budget tokens Redis granted this replica.", 0);
    t.redis_budget_local = metrics_counter(r, "ebsd_redis_budget_local_refills_total",
                                           "Refills of the EC2 budget by time, at this replica's "
                                           "share of the rate, while Redis was lost.", 0);
    t.redis_live = metrics_gauge(r, "ebsd_redis_live_replicas",
                                 "Replicas the EC2 budget is split among when Redis is lost: "
                                 "the live count last read from Redis (redis.replicas_hint "
                                 "before any).", 0);
    t.client_refused = metrics_counter(r, "ebsd_http_client_refused_total",
                                       "Refusals by the per-client limits, by what was counted "
                                       "(connections of one peer address, requests in flight "
                                       "of one client address behind trusted proxies).",
                                       1, "reason");
    t.gzip_responses = metrics_counter(r, "ebsd_gzip_responses_total",
                                       "Data answers sent gzipped (Accept-Encoding: gzip).", 0);
    t.gzip_bodies = metrics_counter(r, "ebsd_gzip_bodies_compressed_total",
                                    "Answer bodies compressed: once per cached answer, kept "
                                    "beside it for later hits.", 0);
}

void telemetry_shutdown(void)
{
    metrics_free(t.reg);
    memset(&t, 0, sizeof t);
}

void telemetry_request(const char *path, unsigned status, double seconds)
{
    if (!t.reg)
        return;
    char st[8] = "???";
    if (status >= 100 && status <= 999) { /* always, for HTTP statuses (499 included) */
        st[0] = (char)('0' + status / 100);
        st[1] = (char)('0' + status / 10 % 10);
        st[2] = (char)('0' + status % 10);
    } else {
        snprintf(st, sizeof st, "%u", status);
    }
    char id[ROUTE_ID_MAX];
    const char *route = route_label(route_match(path, id, sizeof id));
    metrics_inc(t.requests, 1, route, st);
    metrics_observe(t.latency, seconds, route);
}

static void budget_visit(void *arg, const struct target *tg, enum limiter_class c,
                         double tokens, uint64_t waits, uint64_t refusals)
{
    (void)arg;
    const char *action = limiter_class_name(c);
    metrics_set(t.budget_tokens, tokens, tg->account, tg->region, action);
    metrics_set(t.budget_waits, (double)waits, tg->account, tg->region, action);
    metrics_set(t.budget_refusals, (double)refusals, tg->account, tg->region, action);
}

static void calls_visit(void *arg, const struct engine_target_calls *c)
{
    (void)arg;
    const struct target *tg = &c->target;
    metrics_set(t.ec2_calls, (double)c->describe_instances, tg->account, tg->region,
                "DescribeInstances");
    metrics_set(t.ec2_calls, (double)c->describe_volumes, tg->account, tg->region,
                "DescribeVolumes");
    metrics_set(t.ec2_retries, (double)c->retries, tg->account, tg->region);
    metrics_set(t.ec2_throttled, (double)c->throttled, tg->account, tg->region);
    for (size_t i = 0; i < c->nerrors; i++)
        metrics_set(t.ec2_errors, (double)c->errors[i].count, tg->account, tg->region,
                    c->errors[i].code);
}

ebsd_status telemetry_render(struct buf *out)
{
    telemetry_init();
    struct volumes_stats vs;
    volumes_get_stats(&vs);
    metrics_set(t.cache_lookups, (double)vs.hits, "hit");
    metrics_set(t.cache_lookups, (double)vs.misses, "miss");
    metrics_set(t.cache_lookups, (double)vs.coalesced, "coalesced");
    metrics_set(t.cache_lookups, (double)vs.refreshed, "refreshed");
    metrics_set(t.cache_lookups, (double)vs.stale_served, "stale");
    metrics_set(t.cache_lookups, (double)vs.refresh_ahead, "refresh_ahead");
    metrics_set(t.cache_lookups, (double)vs.not_modified, "not_modified");
    metrics_set(t.cache_lookups, (double)vs.refresh_limited, "limited");
    metrics_set(t.cache_entries, (double)vs.entries);
    unsigned long long refused_conns, refused_reqs;
    server_refused(&refused_conns, &refused_reqs);
    metrics_set(t.client_refused, (double)refused_conns, "connections");
    metrics_set(t.client_refused, (double)refused_reqs, "requests");
    metrics_set(t.cache_bytes, (double)vs.bytes);
    metrics_set(t.cache_evictions, (double)vs.evictions);
    metrics_set(t.flights, (double)vs.flights);
    metrics_set(t.gzip_responses, (double)vs.gzipped);
    metrics_set(t.gzip_bodies, (double)vs.gzip_bodies);

    const struct engine_stats *fs = engine_stats();
    metrics_set(t.forked, (double)fs->forked);
    metrics_set(t.killed, (double)fs->killed_deadline, "deadline");
    metrics_set(t.killed, (double)fs->killed_memory, "memory");
    metrics_set(t.crashed, (double)fs->crashed);
    unsigned long long by_signal = 0;
    for (int sig = 1; sig < ENGINE_MAX_SIGNAL; sig++) {
        if (!fs->killed_signal[sig])
            continue;
        by_signal += fs->killed_signal[sig];
        const char *name = sigabbrev_np(sig);
        char num[16];
        snprintf(num, sizeof num, "%d", sig);
        metrics_set(t.killed_signal, (double)fs->killed_signal[sig], name ? name : num);
    }
    metrics_set(t.killed, (double)by_signal, "signal");
    limiter_foreach(clock_now_us(), budget_visit, NULL);
    metrics_set(t.running, fs->running);
    metrics_set(t.queued, fs->queued);
    metrics_set(t.max_children, fs->max_children);
    metrics_set(t.child_rss, (double)fs->last_child_rss_kb * 1024.0);
    engine_foreach_target(calls_visit, NULL);
    metrics_set(t.retry_quota, fs->retry_quota);

    const char *source;
    int64_t expires_in;
    bool ok = credsvc_status(&source, &expires_in);
    metrics_set(t.creds_info, ok ? 1 : 0, source);
    metrics_set(t.creds_expiry, (double)expires_in);
    for (size_t i = 0; i < credsvc_count(); i++) {
        struct credsvc_account a;
        if (!credsvc_account_at(i, &a))
            break;
        metrics_set(t.acct_info, a.ready ? 1 : 0, a.name, a.account_id, a.source);
        metrics_set(t.acct_expiry, (double)a.expires_in_s, a.name);
        metrics_set(t.acct_fetches, (double)a.refreshes, a.name, "ok");
        metrics_set(t.acct_fetches, (double)a.failures, a.name, "error");
    }

    struct redisshare_stats rs;
    redisshare_get_stats(&rs);
    if (rs.enabled) { /* no series without Redis: an alert on ebsd_redis_up == 0 stays quiet */
        metrics_set(t.redis_up, rs.up && rs.sub_up ? 1 : 0);
        metrics_set(t.redis_errors, (double)rs.errors, "command");
        metrics_set(t.redis_errors, (double)rs.connect_failures, "connect");
        metrics_set(t.redis_fallbacks, (double)rs.fallbacks);
        metrics_set(t.redis_rejected, (double)rs.rejected);
        metrics_set(t.redis_shared, (double)rs.l2_hits, "value");
        metrics_set(t.redis_shared, (double)rs.owned, "owner");
        metrics_set(t.redis_shared, (double)rs.waited, "waited");
        metrics_set(t.redis_shared, (double)rs.updates, "update");
    }
    struct budgetshare_stats bs;
    budgetshare_get_stats(&bs);
    if (bs.enabled) {
        metrics_set(t.redis_budget_grants, (double)bs.granted, "granted");
        metrics_set(t.redis_budget_grants, (double)bs.refused, "refused");
        metrics_set(t.redis_budget_grants, (double)bs.failed, "failed");
        metrics_set(t.redis_budget_tokens, (double)bs.tokens_granted);
        metrics_set(t.redis_budget_local, (double)bs.local_refills);
        metrics_set(t.redis_live, (double)bs.live_replicas);
    }
    ebsd_status st = metrics_render(t.reg, out);
    /* the storage gauges: the latest answer of each target, never a fetch (storage.h) */
    if (st == EBSD_OK)
        st = storage_render(out, clock_wall_ms());
    return st == EBSD_OK ? refresh_render(out) : st;
}
