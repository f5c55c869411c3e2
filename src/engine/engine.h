/* engine.h - the work engine: jobs in, records out. A job (a query for one target) becomes
 * tasks; each task runs in a forked worker (worker.h) that reports records over its pipe
 * (wire.h). The engine bounds how many workers live at once, takes one token of the
 * target's EC2 budget (limiter.h) per worker, queues the rest FIFO, kills a job's workers at its deadline, reaps
 * them, and hands back an outcome: a status, what EC2 said, and the records. It knows
 * nothing of HTTP, JSON answers or credentials. Runs on the loop; never blocks on a child. */
#ifndef EBSD_ENGINE_H
#define EBSD_ENGINE_H
#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "loop.h"
#include "proc.h"
#include "status.h"
#include "target.h"
#include "wire.h"

enum engine_kind { ENGINE_TOTAL, ENGINE_INSTANCE, ENGINE_UNATTACHED };

/* Longest group_by key ("instance_tag:" and a tag key of up to WIRE_TAG_KEY - 1 bytes). */
#define ENGINE_GROUP_LEN 80
#define ENGINE_MAX_GROUPS 2
_Static_assert(ENGINE_MAX_GROUPS <= WIRE_PICK_KEYS, "a tag pick holds every group_by key");

struct engine_query {
    enum engine_kind kind;
    struct target target;      /* the account and region asked about */
    char instance_id[24];      /* ENGINE_INSTANCE */
    bool sequential;           /* the seed's one-call-after-another strategy */
    unsigned memory_mb;        /* each worker's memory limit */
    /* ENGINE_TOTAL: the breakdown asked (route.c checked the keys); the tags named by
     * instance_tag:/volume_tag: keys are what the workers keep in their records.
     * ENGINE_UNATTACHED (DescribeVolumes status=available|creating) keeps a bounded set. */
    char group_by[ENGINE_MAX_GROUPS][ENGINE_GROUP_LEN];
    unsigned ngroup;
    unsigned limit;            /* ENGINE_UNATTACHED: largest/oldest listed (0: 10) */
    bool background;           /* nobody waits (refresh ahead): its EC2 calls leave the
                                * budget's reserve (half the burst) to requests */
};

/* The tags the workers of q put in their records (pointers into q). */
struct wire_tag_pick engine_tag_pick(const struct engine_query *q);

/* What a job produced. status EBSD_OK: the records are the answer's material. Otherwise:
 *  - from_ec2: a worker's EC2 call failed with status; ec2_code and ec2_http say what EC2
 *    answered ("" and 0 when it did not), message is EC2's message;
 *  - else the engine's own verdict, message in words: EBSD_ETIMEDOUT (the deadline),
 *    EBSD_EBUSY (no worker could start), EBSD_EAUTH (the gate said the target is not ready),
 *    EBSD_ENOTFOUND (the instance does not exist), EBSD_ENOMEM (a worker's memory limit),
 *    EBSD_ECHILD (a worker died or sent garbage), EBSD_ETHROTTLED (ebsd's EC2 budget has no
 *    token in time: retry_after_s says when it will).
 * The record arrays belong to the engine and are valid during the done callback only (the
 * callback may reorder them). */
struct engine_outcome {
    ebsd_status status;
    bool from_ec2;
    char ec2_code[64];
    long ec2_http;
    char message[512];
    struct wire_inst *inst;
    size_t ninst;
    struct wire_vol *vols;
    size_t nvols;
    struct wire_attach *atts;  /* the volumes' attachments (wire_vol.attach_at) */
    size_t natts;
    struct wire_tag *tags;     /* the records' tags (wire_inst.tags_at, wire_vol.tags_at) */
    size_t ntags;
    unsigned children;         /* workers forked */
    unsigned ec2_calls;        /* EC2 HTTP requests made */
    long max_rss_kb;           /* largest worker's ru_maxrss */
    int64_t fetched_at;        /* wall ms when the job finished */
    unsigned retry_after_s;    /* EBSD_ETHROTTLED by ebsd's own EC2 budget: when it has a
                                * token again (s); 0 otherwise */
};

struct engine_job;
typedef void (*engine_done_fn)(void *arg, struct engine_outcome *out);

/* Whether jobs for target may start (its credentials are there); asked at each start. */
typedef bool (*engine_gate_fn)(const struct target *t);

/* Prepares the engine on loop l with cfg's limits (call again after a reload). gate may be
 * NULL (always ready). */
void engine_init(struct loop *l, const struct config *cfg, engine_gate_fn gate);
/* Kills and reaps every worker, drops every queued task; jobs are not called back. */
void engine_shutdown(void);
/* Draining (SIGTERM): no request will come that a spare worker could serve, so the ready
 * spares are let go now and none is forked any more (fanout.spare_workers, proc_spares). */
void engine_drain(void);

/* Starts a job; done is called exactly once (unless engine_cancel comes first), from the
 * loop, never from inside engine_start. deadline is monotonic ms: the job's workers are
 * given it as the deadline their EC2 calls must respect, and are killed when it passes. */
struct engine_job *engine_start(const struct engine_query *q, int64_t deadline,
                                engine_done_fn done, void *arg);
/* Moves a job's deadline later (an earlier one is ignored): the job is killed at the new
 * one, and workers started from now on are given it; running workers keep theirs. */
void engine_extend(struct engine_job *job, int64_t deadline);
/* Detaches the caller: done will not be called; the job's workers are killed. */
void engine_cancel(struct engine_job *job);

/* What a job has cost so far: workers forked, EC2 calls reported, largest worker RSS. */
void engine_job_counts(const struct engine_job *job, unsigned *children, unsigned *ec2_calls,
                       long *max_rss_kb);

/* A service task: fn runs in a worker (no job, no deadline kill, no EC2 budget token, but
 * counted against max_children); on_frame gets each frame it writes, on_end is called once
 * after it has exited and been reaped. Used by the credentials service's refresh. */
struct engine_service {
    proc_fn fn;
    void *arg;
    void (*on_frame)(void *arg, int type, const char *data, size_t len);
    void (*on_end)(void *arg);
};
void engine_run_service(const struct engine_service *svc);

/* The instances and attached volumes each complete listing of a target found, for the size
 * hint that survives restarts (src/service/sizehint.c). fn (NULL: none) is called from the
 * loop after every complete listing; t is valid during the call only. */
typedef void (*engine_seen_fn)(const struct target *t, size_t instances, size_t volumes);
void engine_set_seen_fn(engine_seen_fn fn);
/* Seeds t's counts from a hint (a state file, Redis) so the first listing after start is
 * split as a later one would be: its listers by the instances, its volume shares by the
 * volumes (0: not known, 2.5 an instance is assumed). Counts a listing of t already found
 * win. */
void engine_seen_hint(const struct target *t, size_t instances, size_t volumes);

/* Reaps exited workers (call on SIGCHLD). */
void engine_on_sigchld(void);

/* Counters for /metrics. */
#define ENGINE_MAX_SIGNAL 65

struct engine_stats {
    unsigned long long forked, killed_deadline, killed_memory, crashed, jobs, jobs_failed;
    unsigned long long killed_signal[ENGINE_MAX_SIGNAL]; /* by signal number: workers killed
                                                          * from outside (operator, OOM killer) */
    int retry_quota;            /* left in the last worker's client */
    unsigned running, queued, max_children;
    long last_child_rss_kb;
};
const struct engine_stats *engine_stats(void);

#define ENGINE_MAX_ERROR_CODES 16

/* The EC2 calls made for one target so far, by action, its retries and throttling answers,
 * and its failed calls by error code (the account and region labels of
 * ebsd_ec2_calls_total, ebsd_ec2_retries_total, ebsd_ec2_throttled_total and
 * ebsd_ec2_errors_total). Only targets a job asked about appear: the configured ones. */
struct engine_target_calls {
    struct target target;
    unsigned long long describe_instances, describe_volumes, retries, throttled;
    struct {
        char code[64];
        unsigned long long count;
    } errors[ENGINE_MAX_ERROR_CODES]; /* EC2 calls that failed after retries, by error code
                                       * (the first 16 distinct codes of this target) */
    size_t nerrors;
};
typedef void (*engine_target_fn)(void *arg, const struct engine_target_calls *c);
/* Calls fn(arg, c) for each target with calls, in the order they first made one; c is
 * valid during the call only. */
void engine_foreach_target(engine_target_fn fn, void *arg);

#endif
