/* aggregate.h - account=all and/or region=all on /volumes/total (with group_by and
 * detail=instances) and on /volumes/unattached (issues 16, 18): every matching target
 * (account x region) fetched side by side through volumes.c's per-target cache and single
 * flight, summed (answer.c's merges), each target's outcome listed; one failing target does
 * not fail the others, and the request's deadline covers the whole aggregate. */
#ifndef EBSD_AGGREGATE_H
#define EBSD_AGGREGATE_H
#include "route.h"
#include "server.h"

/* Answers r on route kind (ROUTE_TOTAL or ROUTE_UNATTACHED; parameters prm, already
 * checked by route_check_params) with the aggregate: 200 with `complete` and `targets`
 * while at least one target answered, 502 AllTargetsFailed when none did, 400 for an
 * instance route (instance_id set) or a selection with no target. Suspends r when a target
 * must be fetched. */
void aggregate_handle(struct request *r, enum route kind, const char *instance_id,
                      const struct route_params *prm);

#endif
