/* fanout.h - the work engine: plans a query, forks children that make the EC2 calls and
 * report over pipes, bounds how many children live at once, enforces each job's deadline
 * (SIGKILL at the deadline) and aggregates what the children found. Runs on the loop; the
 * parent never blocks on a child. */
#ifndef EBSD_FANOUT_H
#define EBSD_FANOUT_H
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "config.h"
#include "creds.h"
#include "loop.h"
#include "status.h"

enum fanout_kind { FANOUT_TOTAL, FANOUT_INSTANCE };

struct fanout_query {
    enum fanout_kind kind;
    char region[32];
    char instance_id[24];      /* FANOUT_INSTANCE */
    bool sequential;           /* the seed's one-call-after-another strategy */
    unsigned memory_mb;        /* each child's memory limit */
};

/* What a job produced. On success http_status is 200 and data holds the answer (the
 * callback takes ownership of data). On failure data is NULL and code/message describe
 * it in the API's terms (502/503/504/404). */
struct fanout_result {
    unsigned http_status;
    char code[64];
    char message[512];
    unsigned retry_after_s;    /* for 503 */
    cJSON *data;
    unsigned children;         /* children forked */
    unsigned ec2_calls;        /* EC2 HTTP requests made */
    long max_rss_kb;           /* largest child's ru_maxrss */
    int64_t fetched_at;        /* wall ms when the fetch finished */
};

struct fanout_job;
typedef void (*fanout_done_fn)(void *arg, struct fanout_result *res);

/* Prepares the engine on loop l with cfg's limits (call again after a reload). Resolves
 * credentials on first call (blocking, bounded); refreshes them ahead of expiry in a child. */
void fanout_init(struct loop *l, const struct config *cfg);
void fanout_shutdown(void);

/* Starts a job; done is called exactly once (unless fanout_cancel comes first), from the
 * loop, never from inside fanout_start. deadline is monotonic ms. */
struct fanout_job *fanout_start(const struct fanout_query *q, int64_t deadline,
                                fanout_done_fn done, void *arg);
/* Detaches the caller: done will not be called; the job's children are killed. */
void fanout_cancel(struct fanout_job *job);

/* What a job has cost so far: children forked, EC2 calls reported, largest child RSS. */
void fanout_job_counts(const struct fanout_job *job, unsigned *children, unsigned *ec2_calls,
                       long *max_rss_kb);

/* Reaps exited children (call on SIGCHLD). */
void fanout_on_sigchld(void);

/* Whether usable credentials are loaded, and their source (safe to show). */
bool fanout_creds_ready(const char **source, int64_t *expires_in_s);

/* Counters for /metrics. */
struct fanout_stats {
    unsigned long long forked, killed_deadline, killed_memory, crashed, jobs, jobs_failed;
    unsigned long long ec2_calls, ec2_throttled, ec2_retries;
    unsigned long long describe_instances, describe_volumes;
    struct {
        char code[64];
        unsigned long long count;
    } error_codes[16];          /* EC2 error codes seen (the first 16 distinct ones) */
    size_t nerror_codes;
    int retry_quota;            /* left in the last worker's client */
    unsigned running, queued, max_children;
    long last_child_rss_kb;
};
const struct fanout_stats *fanout_stats(void);

/* Runs one query to completion on a private loop and prints the endpoint's JSON. Returns
 * the process exit status (0 on a 200). */
int fanout_once(const struct config *cfg, const char *query, const char *instance_id,
                const char *region);

#endif
