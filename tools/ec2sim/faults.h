/* faults.h - what the simulator does to a request besides answering it: added latency
 * (fixed + jitter, per action), an EC2-like token-bucket rate limit, and injected faults
 * (500, 503, hang, truncated or malformed XML, connection reset), all drawn from a seeded
 * generator so that runs repeat. Settings change at runtime (POST /_sim/faults); all
 * functions are thread-safe. */
#ifndef EC2SIM_FAULTS_H
#define EC2SIM_FAULTS_H
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "status.h"

enum fault_kind {
    FAULT_NONE = 0,
    FAULT_THROTTLE,  /* RequestLimitExceeded, 503 */
    FAULT_DISABLED,  /* the scope's region is not enabled: AuthFailure, 401 */
    FAULT_500,       /* InternalError */
    FAULT_503,       /* Unavailable */
    FAULT_HANG,      /* no answer until the client gives up (bounded by hang_max_ms) */
    FAULT_TRUNCATE,  /* a valid prefix, short of Content-Length, then close */
    FAULT_MALFORMED, /* 200 with a broken XML document */
    FAULT_RESET,     /* TCP reset instead of an answer */
    FAULT_NKINDS
};

/* Stable names used in JSON ("throttle", "disabled", "500", "503", "hang", "truncate",
 * "malformed", "reset"). */
const char *fault_kind_name(enum fault_kind k);

/* Resets every setting to "no latency, no limit, no faults" with the given seed. */
void faults_init(uint64_t seed);

/* Applies the settings present in a JSON object (see docs/ec2sim.md); absent keys keep their
 * value. With "account" and/or "region" the patch applies to that scope only (created from
 * the global settings; "remove": true deletes it); a global "clear" drops every scope.
 * All or nothing: on EBSD_EINVAL nothing changed and errbuf says why. */
EBSD_MUST_CHECK ebsd_status faults_apply_json(const cJSON *patch, char *errbuf, size_t errlen);

/* The current settings as JSON (the same keys faults_apply_json takes). Caller deletes. */
cJSON *faults_to_json(void);

/* A request's fate. */
struct fault_plan {
    int delay_ms;         /* latency to add before answering */
    enum fault_kind kind; /* FAULT_NONE: answer normally */
    int hang_max_ms;
    double cut;           /* for truncate/malformed: fraction of the body kept, in (0, 1) */
};

/* Draws the next request's plan (takes a rate-limit token) from the settings of the most
 * specific scope that selects (account, region), else the global ones. Any may be NULL. */
void faults_plan(const char *action, const char *account, const char *region,
                 struct fault_plan *out);

#endif
