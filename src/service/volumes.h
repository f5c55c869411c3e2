/* volumes.h - the two data endpoints: request validation, the cache (with refresh ahead,
 * stale-while-revalidate and stale-if-error), single flight over the fan-out, per-waiter
 * deadlines, and HTTP caching (ETag / If-None-Match / Cache-Control / Age). */
#ifndef EBSD_VOLUMES_H
#define EBSD_VOLUMES_H
#include <stdbool.h>
#include <stdint.h>
#include <stdbool.h>
#include "cache.h"
#include "config.h"
#include "engine.h"
#include "route.h"
#include "server.h"
#include "target.h"

/* (Re)applies the config: cache bounds and windows, TTLs. The cache survives reloads when
 * its bounds do not change. */
void volumes_configure(struct server *s, const struct config *cfg);
void volumes_shutdown(void);
/* Drops the locally cached answers of account (a reload removed it or changed its
 * credentials). A fetch already running for it still lands; Redis' shared copies expire
 * with their TTL. */
void volumes_forget_account(const char *account);

/* GET /volumes/total (instance_id NULL) and GET /instances/{id}/volumes (id validated). */
void volumes_handle(struct request *r, const char *instance_id);

/* The engine query of data route kind (ROUTE_TOTAL, ROUTE_UNATTACHED, ROUTE_INSTANCE with
 * instance_id) for target t, from parameters route_check_params accepted: the grouping,
 * the limit, the mode and the route's memory size. Fills *q whole. */
void volumes_query(const struct config *cfg, enum route kind, const char *instance_id,
                   const struct route_params *prm, const struct target *t,
                   struct engine_query *q);

/* The latest cached GET /volumes/total answer of target t (with or without
 * ?detail=instances, parallel or sequential: the most recently fetched), in any state a
 * cache lookup still returns (stale ones included), for the page at /. Never starts a fetch.
 * False if there is none. *out is valid as cache_lookup's views are (cache.h). */
bool volumes_latest(const struct target *t, struct cache_view *out);

/* GET /volumes/unattached: volumes attached to nothing, through the same cache, single
 * flight and budget (the route takes /volumes/total's timeout, memory and TTL). */
void volumes_handle_unattached(struct request *r);
/* The background refresher's hook (refresh.c): starts a background fetch of t's default
 * answer (/volumes/total, or /volumes/unattached with the default limit) unless one is in
 * flight or the cached one is younger than max_age_ms. Returns whether it started one. */
bool volumes_refresh(const struct config *cfg, const struct target *t, bool unattached,
                     int64_t max_age_ms);
/* One target's answer as aggregate.c gets it: status 200 with the cached JSON (without
 * source and request_id; valid only during the callback), or an error. */
struct volumes_target_result {
    int status;                /* 200, or the HTTP status the error would have */
    const char *body;          /* 200: the answer's JSON object */
    size_t len;
    const char *label;         /* hit, miss, coalesced, stale */
    const char *stale_reason;  /* label "stale": the error code or "TaskTimedOut"; else NULL */
    const char *code, *message; /* errors */
    int64_t fetched_at_wall_ms;
    unsigned ec2_calls, children;
};
typedef void (*volumes_target_cb)(void *ctx, const struct volumes_target_result *res);
struct volumes_sub;

/* Gets the answer of query q (a total, detail adding its instances) through the same
 * cache, single flight and stale-if-error as a request for that target: cb(ctx, ...) is
 * called once, at once for a cached answer (then NULL is returned), else when the flight
 * lands. The fetch runs at most to deadline (monotonic ms) unless a stale answer is at
 * hand; the caller ends a pending one at its deadline with volumes_target_expire. */
struct volumes_sub *volumes_target_get(const struct engine_query *q, bool detail,
                                       int64_t deadline, volumes_target_cb cb, void *ctx);
/* The caller's deadline for sub: cb gets the stale answer (label "stale", reason
 * TaskTimedOut) when stale-if-error has one, else a 504 TaskTimedOut; the fetch is
 * abandoned when nobody else waits and no stale answer wants refreshing. */
void volumes_target_expire(struct volumes_sub *sub);
/* Drops sub without calling cb (the request is gone). */
void volumes_target_cancel(struct volumes_sub *sub);

/* Counters for /metrics. */
struct volumes_stats {
    unsigned long long hits, misses, coalesced, refreshed, stale_served, refresh_ahead,
        not_modified, waiter_timeouts, refresh_limited, gzipped,
        gzip_bodies; /* gzip answers sent; cached bodies compressed (once per entry) */
    unsigned long long entries, bytes, evictions;
    unsigned flights;
};
void volumes_get_stats(struct volumes_stats *out);

#endif
