/* refresh.h - the background refresher (`refresh.interval_s`): keeps every configured
 * target's storage answer (/volumes/total and /volumes/unattached, default queries) fresh,
 * so /metrics and dashboards never wait on EC2. The 2 x targets fetches are spread evenly
 * over the interval; each is a background fetch through volumes.c (same cache, single flight
 * and EC2 budget), skipped when a fresh enough answer is cached or a fetch is in flight, and
 * postponed while requests wait for workers or budget (background work gives way). */
#ifndef EBSD_REFRESH_H
#define EBSD_REFRESH_H
#include "buf.h"
#include "config.h"
#include "loop.h"
#include "server.h"
#include "status.h"

/* (Re)starts the refresher on loop l with s's config (call at start and after each reload):
 * interval_s 0 stops it. */
void refresh_configure(struct loop *l, struct server *s, const struct config *cfg);
/* Stops it (drain, shutdown). */
void refresh_shutdown(void);

/* Appends ebsd_refresh_total{outcome="started|skipped|deferred"} (a counter, text format
 * 0.0.4) to out. EBSD_ETOOBIG when out's cap is reached. */
EBSD_MUST_CHECK ebsd_status refresh_render(struct buf *out);

#endif
