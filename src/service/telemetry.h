/* telemetry.h - ebsd's Prometheus metrics: one registry for the process, request counters
 * and latency histograms fed by the server, and the other modules' counters mirrored in
 * at scrape time. */
#ifndef EBSD_TELEMETRY_H
#define EBSD_TELEMETRY_H
#include "buf.h"
#include "status.h"

/* Creates the registry (idempotent). */
void telemetry_init(void);
void telemetry_shutdown(void);
/* Records one finished request: its path (mapped to a route label), status and duration. */
void telemetry_request(const char *path, unsigned status, double seconds);
/* Renders every metric in the text format 0.0.4 into out (capped). */
EBSD_MUST_CHECK ebsd_status telemetry_render(struct buf *out);

#endif
