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
/* Counts one refusal by the per-client limits: reason "connections" (a peer's connections,
 * server.max_connections_per_ip) or "requests" (a client's requests in flight). */
void telemetry_client_refused(const char *reason);
/* Renders every metric in the text format 0.0.4 into out (capped). */
EBSD_MUST_CHECK ebsd_status telemetry_render(struct buf *out);

#endif
