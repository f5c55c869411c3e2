/* stats.h - counters of what the simulator served: calls by Action (as received), errors
 * by code, faults injected by kind, requests in flight and their peak. Thread-safe. */
#ifndef EC2SIM_STATS_H
#define EC2SIM_STATS_H
#include <cjson/cJSON.h>

#include "faults.h"

/* A request arrived / finished (every EC2 request, whatever its fate). */
void stats_begin(void);
void stats_end(void);
/* Counts one call of action (NULL or "" counts as "(none)"); names past 64 bytes are cut and
 * past 256 distinct names go to "(other)". */
void stats_call(const char *action);
/* Counts a call of action that asks for a first page (no NextToken): a listing started, so
 * a client's side-by-side shares of one listing each count once, whatever their pages. */
void stats_first_page(const char *action);
/* Counts one EC2 call served from the fleet of (account, region) ("ACCOUNT/REGION"). */
void stats_target(const char *account, const char *region);
void stats_error(const char *code);
void stats_fault(enum fault_kind k);
/* Zeroes every counter; the peak restarts from the requests in flight now. */
void stats_reset(void);
/* {"calls":{..},"first_pages":{..},"requests":n,"errors":{..},"faults":{kind:n},"in_flight":n,
 *  "peak_in_flight":n,"targets":{"ACCOUNT/REGION":n}}. Caller deletes. */
cJSON *stats_to_json(void);

#endif
