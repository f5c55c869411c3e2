/* engine.c - jobs in, records out: the scheduler of forked workers (see engine.h).
 *
 * A job is a set of tasks; each task runs in one forked worker (worker.c) and reports
 * frames over its pipe (wire.c):
 *   LIST       DescribeInstances pages -> INSTANCES frames, one per page, then DONE
 *   VOLUMES    DescribeVolumes filtered by attachment.instance-id for a group of ids
 *   INSTANCE   DescribeInstances InstanceId.1 (the per-instance route's lookup)
 *   SEQUENTIAL the seed's strategy: list instances, then one DescribeVolumes per instance
 *   SERVICE    a function of another module (the credentials refresh), outside any job
 * The engine schedules at most max_children workers at once across all jobs, starts the
 * volume work of a page while the lister fetches the next (plan.c sizes the split and the
 * groups), and hands the records back when every task has sent DONE. */
#include "engine.h"

#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clock.h"
#include "credentials.h"
#include "ec2.h"
#include "frame.h"
#include "limiter.h"
#include "log.h"
#include "mem.h"
#include "plan.h"
#include "skew.h"
#include "worker.h"

enum task_kind { T_LIST, T_VOLUMES, T_INSTANCE, T_SEQUENTIAL, T_UNATTACHED, T_ATTACHED,
                 T_SERVICE };

#define ID_LEN WIRE_ID_LEN
/* Call counter slots: more than fanout.max_children's bound of 1,024 running workers. */
#define COUNTERS 1100
/* The job's own kill comes just after its deadline: the waiters' timers, set for the same
 * millisecond, answer first (504), and a flight left with no waiter is cancelled then. */
#define DEADLINE_GRACE_MS 1

struct task;

struct engine_job {
    struct engine_query q;
    int64_t deadline;
    int64_t started_us;        /* for the debug timeline of its tasks */
    engine_done_fn done;
    void *arg;
    bool finished;             /* done called or cancelled */
    unsigned tasks;            /* queued + running tasks still referring to the job */
    unsigned pending;          /* tasks whose result (DONE) has not arrived yet */
    unsigned children, ec2_calls;
    long max_rss_kb;
    unsigned listing;          /* listers (or the sequential worker) yet to send DONE */
    unsigned partitions;       /* listers the listing was split into */
    size_t group_size;         /* instance ids per VOLUMES task (plan_group_size) */
    unsigned volume_shares;    /* ATTACHED tasks listing the volumes beside the listers (0:
                                * the volumes are listed by the listed instance ids) */
    bool relisted, revolumed;  /* a split that found nothing, done again unsplit */
    struct loop_timer *deadline_timer, *queue_timer;
    struct wire_inst *inst;
    size_t ninst, capinst;
    size_t dispatched;         /* instances [0, dispatched) have their volume work queued */
    struct wire_vol *vols;
    size_t nvols, capvols;
    struct wire_attach *atts;  /* the volumes' attachments (wire_vol.attach_at) */
    size_t natts, capatts;
    struct wire_tag *tags;     /* the records' tags (tags_at) */
    size_t ntags, captags;
    bool instance_seen;        /* ENGINE_INSTANCE: DescribeInstances found it */
    bool budget_wait;          /* a task of the job waits for the EC2 budget */
};

struct task {
    enum task_kind kind;
    struct engine_job *job;    /* NULL for SERVICE */
    struct engine_service svc; /* SERVICE */
    char (*ids)[ID_LEN];
    size_t nids;
    unsigned part, nparts;     /* T_LIST, T_ATTACHED: this worker's share of the listing */
    bool own_volumes;          /* T_LIST: also fetches the volumes of what it lists */
    unsigned vol_nparts;       /* T_LIST: also lists its shares of this many volume shares
                                * (worker_carried_share), each in a thread of its worker (0:
                                * none) */
    int64_t deadline;
    int64_t queued_ms;         /* when it was queued: the budget wait is bounded from here */
    _Atomic unsigned *calls;   /* shared with the worker: its EC2 calls by action, as it goes
                                * (a slot of g.counters) */
    bool calls_counted;        /* ...added to the job's and the process's counts */
    bool killed;               /* by the engine (deadline, failed job), not from outside */
    pid_t pid;
    int fd;
    struct frame_reader rd;
    bool eof, reaped, got_done, failed;
    struct proc_exit exit;
    struct task *next;         /* in the queue or the running list */
};

static struct {
    struct loop *loop;
    bool ready;
    engine_gate_fn gate;
    /* limits, copied from the config */
    unsigned max_children, group_size, queue_timeout_ms;
    unsigned list_partitions;  /* 0: sized from the last count; 1: never split */
    unsigned volume_shares;    /* 0: sized from the last count; 1: one share, unsplit */
    unsigned volume_page;
    unsigned worker_nice;
    unsigned spare_workers;    /* kept ready by the zygote while nothing runs (keep_spares) */
    bool draining;             /* engine_drain: no spares any more, whatever a reload says */
    unsigned instance_page;
    bool partitions_off;       /* a split listing came back empty: do not split again */
    bool volume_split_off;     /* ...and the same for the attached volumes */
    struct loop_timer *wake;   /* runs schedule() from the loop: now, or when the budget */
    int64_t wake_at;           /* has a token again */
    struct loop_timer *trim;   /* malloc_trim once a large job's memory is freed */
    struct loop_timer *spares_timer; /* keep_spares: when nothing has run for a while */
    /* The EC2 budget (limiter.c) is taken by the workers, a token per EC2 call; the engine
     * only looks at it before forking (budget_check). */
    struct task *queue_head, *queue_tail;
    struct task *running;
    unsigned nrunning, nqueued;
    struct engine_stats stats;
    /* Instances the last full listing of each target found: sizes the next listing's split */
    struct seen {
        struct target target;
        size_t instances;
        size_t volumes;        /* 0 when not known (a hint without them, sizehint.c) */
    } seen[16];
    unsigned nseen;
    engine_seen_fn on_seen;    /* sizehint.c keeps the counts across restarts */
    /* EC2 calls per target (the configured targets only: the table is bounded by config) */
    struct engine_target_calls *calls;
    size_t ncalls, calls_cap;
    /* The workers' shared call counters (task.calls): one mapping, made before the zygote
     * is forked so that every worker inherits it, a slot a running task; NULL when it could
     * not be mapped (then calls are counted from DONE only). */
    _Atomic unsigned (*counters)[3];
    bool counter_used[COUNTERS];
    unsigned counter_next;
    bool zygote_tried;         /* proc_zygote_start called (proc restarts it if it ends) */
} g;

static void schedule(void);
static void kick(void);
static int task_msg_main(int fd, const void *msg, size_t len);
static void job_fail_budget(struct engine_job *job);
static void wake_at(int64_t at);
static void job_maybe_finish(struct engine_job *job);

const struct engine_stats *engine_stats(void)
{
    g.stats.running = g.nrunning;
    g.stats.queued = g.nqueued;
    g.stats.max_children = g.max_children;
    return &g.stats;
}

/* ================================================================ jobs */

static void job_fail(struct engine_job *job, ebsd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The EC2 call counts of job's target (created at 0 on its first call). */
static struct engine_target_calls *target_calls(const struct engine_job *job)
{
    const struct target *t = &job->q.target;
    size_t i = 0;
    while (i < g.ncalls && !target_equal(&g.calls[i].target, t))
        i++;
    if (i == g.ncalls) {
        if (g.ncalls == g.calls_cap) {
            g.calls_cap = g.calls_cap ? g.calls_cap * 2 : 16;
            g.calls = xrealloc(g.calls, g.calls_cap * sizeof *g.calls);
        }
        g.calls[g.ncalls++] = (struct engine_target_calls){.target = *t};
    }
    return &g.calls[i];
}

/* Counts a worker's EC2 calls of job, by action, and its retries and throttled answers, in
 * its target's counters (the metrics are per target). */
static void count_calls(struct engine_job *job, unsigned di, unsigned dv, unsigned retries,
                        unsigned throttled)
{
    struct engine_target_calls *c = target_calls(job);
    c->describe_instances += di;
    c->describe_volumes += dv;
    c->retries += retries;
    c->throttled += throttled;
}

void engine_foreach_target(engine_target_fn fn, void *arg)
{
    for (size_t i = 0; i < g.ncalls; i++)
        fn(arg, &g.calls[i]);
}

static void kill_job_children(struct engine_job *job)
{
    for (struct task *t = g.running; t; t = t->next)
        if (t->job == job && !t->reaped && t->pid > 0) {
            t->killed = true;
            proc_kill(t->pid);
        }
}

/* Adds what a worker that sent no DONE (killed, crashed) did before it ended: the EC2 calls
 * it counted in its shared counters, and its peak memory once reaped. */
static void account_unfinished(struct task *t)
{
    struct engine_job *job = t->job;
    if (!job || t->got_done || t->calls_counted || !t->calls)
        return;
    t->calls_counted = true;
    unsigned di = atomic_load(&t->calls[0]), dv = atomic_load(&t->calls[1]);
    job->ec2_calls += di + dv;
    count_calls(job, di, dv, 0, 0);
}

/* kb, or the peak the worker last recorded before an EC2 call when that is higher. */
static long with_recorded_peak(const struct task *t, long kb)
{
    long recorded = t->calls ? (long)atomic_load(&t->calls[2]) : 0;
    return recorded > kb ? recorded : kb;
}

/* A worker's peak memory: wait4's once it is reaped, else its VmHWM, else (it has exited
 * but is not reaped: a zombie has no VmHWM) the peak it recorded before its last EC2 call. */
static long task_peak_rss(const struct task *t)
{
    if (t->reaped)
        return t->exit.maxrss_kb;
    return with_recorded_peak(t, proc_peak_rss_kb(t->pid));
}

/* Kills the job's workers and reaps them at once (a SIGKILLed process is gone within a few
 * ms), so the job's counts include their calls and peak memory before it is answered. */
static void kill_and_count(struct engine_job *job)
{
    kill_job_children(job);
    /* this blocks the loop: briefly, since a worker not reaped in time still counts (below) */
    int64_t until = clock_now_ms() + 20;
    for (struct task *t = g.running; t; t = t->next) {
        if (t->job != job || t->reaped || t->pid <= 0)
            continue;
        struct proc_exit ex;
        int64_t left = until - clock_now_ms();
        /* Not one whose pipe has closed (it has exited or is exiting): only SIGCHLD's reap
         * ends it (task_done needs end of file and the reap), and a reap here would leave it
         * counted as running, and its job held, for good. */
        if (!t->eof && left > 0 && proc_wait(t->pid, left, &ex) == EBSD_OK) {
            t->exit = ex;
            t->reaped = true;
        }
        /* reaped: wait4's figures; not reaped in time (a busy machine): its peak so far as it
         * last said, and its calls from the shared counters (it is SIGKILLed: it makes no
         * more) */
        long rss = task_peak_rss(t);
        if (rss > job->max_rss_kb)
            job->max_rss_kb = rss;
        account_unfinished(t);
    }
}

static _Atomic unsigned *counter_take(void)
{
    if (!g.counters)
        return NULL;
    for (unsigned n = 0; n < COUNTERS; n++) {
        unsigned i = (g.counter_next + n) % COUNTERS;
        if (g.counter_used[i])
            continue;
        g.counter_used[i] = true;
        g.counter_next = (i + 1) % COUNTERS;
        for (unsigned k = 0; k < 3; k++)
            atomic_store(&g.counters[i][k], 0);
        return g.counters[i];
    }
    return NULL;
}

static void counter_give(_Atomic unsigned *c)
{
    if (c && g.counters)
        g.counter_used[(c - g.counters[0]) / 3] = false;
}

static void task_free(struct task *t)
{
    counter_give(t->calls);
    free(t->ids);
    free(t);
}

static void job_release(struct engine_job *job);

/* Frees t, a task without a running worker; its job counts it no more, and is freed once it
 * is finished and has no task left. */
static void task_drop(struct task *t)
{
    struct engine_job *job = t->job;
    task_free(t);
    if (job) {
        job->tasks--;
        job_release(job);
    }
}

static void drop_queued(struct engine_job *job)
{
    struct task **pp = &g.queue_head;
    g.queue_tail = NULL;
    while (*pp) {
        struct task *t = *pp;
        if (t->job == job) {
            *pp = t->next;
            job->tasks--;
            g.nqueued--;
            task_free(t);
            continue;
        }
        g.queue_tail = t;
        pp = &t->next;
    }
}

static void on_trim(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
    g.trim = NULL;
    /* Return the free pages a large result left in the heap: fewer pages for the next fork
     * to share copy-on-write, and a resident size that comes back down. */
    (void)malloc_trim(0);
}

static void array_free(void *arr, size_t cap, size_t size);

static void job_free(struct engine_job *job)
{
    if ((job->ninst >= 1000 || job->nvols >= 1000) && !g.trim && g.loop)
        g.trim = loop_timer_start(g.loop, clock_now_ms(), on_trim, NULL);
    if (job->deadline_timer)
        loop_timer_stop(g.loop, job->deadline_timer);
    if (job->queue_timer)
        loop_timer_stop(g.loop, job->queue_timer);
    array_free(job->inst, job->capinst, sizeof *job->inst);
    array_free(job->vols, job->capvols, sizeof *job->vols);
    array_free(job->atts, job->capatts, sizeof *job->atts);
    array_free(job->tags, job->captags, sizeof *job->tags);
    free(job);
}

static void job_release(struct engine_job *job)
{
    if (job->finished && job->tasks == 0)
        job_free(job);
}

static void job_deliver(struct engine_job *job, struct engine_outcome *out)
{
    job->finished = true;
    if (job->deadline_timer) {
        loop_timer_stop(g.loop, job->deadline_timer);
        job->deadline_timer = NULL;
    }
    if (job->queue_timer) {
        loop_timer_stop(g.loop, job->queue_timer);
        job->queue_timer = NULL;
    }
    out->children = job->children;
    out->ec2_calls = job->ec2_calls;
    out->max_rss_kb = job->max_rss_kb;
    out->fetched_at = clock_wall_ms();
    if (out->status != EBSD_OK)
        g.stats.jobs_failed++;
    engine_done_fn done = job->done;
    void *arg = job->arg;
    job->done = NULL;
    if (done)
        done(arg, out);
}

/* Ends a job with the engine's own verdict st. */
static void job_end_failed(struct engine_job *job, struct engine_outcome *out)
{
    kill_job_children(job);
    drop_queued(job);
    job_deliver(job, out);
    job_release(job);
}

static void job_fail(struct engine_job *job, ebsd_status st, const char *fmt, ...)
{
    if (job->finished)
        return;
    struct engine_outcome out = {.status = st};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out.message, sizeof out.message, fmt, ap);
    va_end(ap);
    job_end_failed(job, &out);
}

/* Seconds until t's budget has a token again, for Retry-After (at least 1). */
static unsigned budget_retry_after(const struct engine_job *job)
{
    int64_t us = limiter_wait_us(&job->q.target, LIMITER_DESCRIBE, clock_now_us(),
                                 job->q.background, 0);
    int64_t s = (us + 999999) / 1000000;
    return s < 1 ? 1 : (unsigned)s;
}

/* Ends a job the EC2 budget cannot serve in time: 503 RequestLimitExceeded, Retry-After
 * from the budget. */
static void job_fail_budget(struct engine_job *job)
{
    if (job->finished)
        return;
    struct engine_outcome out = {.status = EBSD_ETHROTTLED, .retry_after_s = budget_retry_after(job)};
    snprintf(out.message, sizeof out.message, "ebsd's EC2 call budget for %s/%s (%s) has no "
             "token within fanout.queue_timeout_ms and the deadline",
             job->q.target.account, job->q.target.region, limiter_class_name(LIMITER_DESCRIBE));
    job_end_failed(job, &out);
}

/* Ends a job with what a worker's EC2 call answered. */
static void job_fail_ec2(struct engine_job *job, const struct wire_error *e)
{
    if (job->finished)
        return;
    struct engine_outcome out = {.status = e->status, .from_ec2 = true, .ec2_http = e->http_status};
    if (e->status == EBSD_ETHROTTLED && e->http_status == 0) {
        /* nothing was sent: the worker's budget (or adaptive limiter) refused the call, an
         * engine verdict rather than EC2's answer */
        out.from_ec2 = false;
        out.retry_after_s = budget_retry_after(job);
    }
    snprintf(out.ec2_code, sizeof out.ec2_code, "%s", e->code);
    snprintf(out.message, sizeof out.message, "%s", e->message);
    job_end_failed(job, &out);
}

static void on_deadline(struct loop *l, void *arg)
{
    (void)l;
    struct engine_job *job = arg;
    job->deadline_timer = NULL;
    for (struct task *t = g.running; t; t = t->next)
        if (t->job == job && !t->reaped)
            g.stats.killed_deadline++;
    kill_and_count(job);
    job_fail(job, EBSD_ETIMEDOUT, "EC2 calls did not finish by the deadline");
}

static void on_queue_timeout(struct loop *l, void *arg)
{
    (void)l;
    struct engine_job *job = arg;
    job->queue_timer = NULL;
    if (job->budget_wait)
        job_fail_budget(job);
    else if (job->children == 0)
        job_fail(job, EBSD_EBUSY, "no capacity to start EC2 calls within %u ms (%u children "
                 "running)", g.queue_timeout_ms, g.nrunning);
}

static void on_not_ready(struct loop *l, void *arg)
{
    (void)l;
    struct engine_job *job = arg;
    job->queue_timer = NULL;
    job_fail(job, EBSD_EAUTH, "no usable AWS credentials yet; see /readyz and the log");
}

static const char *const task_names[] = {"LIST",       "VOLUMES",  "INSTANCE", "SEQUENTIAL",
                                          "UNATTACHED", "ATTACHED", "SERVICE"};

/* At log level debug, each task's start and end in ms from its job's start: the timeline of a
 * fan-out (how long the listing took, when volume work started, where the time went). */
static void trace_task(const struct task *t, const char *what)
{
    if (!t->job || !log_enabled(LOGL_DEBUG))
        return;
    unsigned carried = 0;
    while (worker_carried_share(t->part, t->nparts, t->vol_nparts, carried) >= 0)
        carried++;
    log_debug("fanout", "job %p: %s %s (%zu ids, share %u/%u, %u volume shares of %u carried) "
              "at +%.1f ms", (void *)t->job, task_names[t->kind], what, t->nids, t->part,
              t->nparts, carried, t->vol_nparts,
              (double)(clock_now_us() - t->job->started_us) / 1000.0);
}

static struct task *enqueue(struct engine_job *job, enum task_kind kind, char (*ids)[ID_LEN],
                            size_t nids)
{
    struct task *t = xcalloc(1, sizeof *t);
    t->kind = kind;
    t->job = job;
    t->ids = ids;
    t->nids = nids;
    t->fd = -1;
    t->deadline = job ? job->deadline : clock_now_ms() + 10000;
    t->queued_ms = clock_now_ms();
    if (job) {
        job->tasks++;
        job->pending++;
    }
    if (g.queue_tail)
        g.queue_tail->next = t;
    else
        g.queue_head = t;
    g.queue_tail = t;
    g.nqueued++;
    return t;
}

/* Queues a worker of job on share part of nparts (T_LIST, T_SEQUENTIAL, T_ATTACHED). */
static struct task *enqueue_share(struct engine_job *job, enum task_kind kind, unsigned part,
                                  unsigned nparts)
{
    struct task *t = enqueue(job, kind, NULL, 0);
    t->part = part;
    t->nparts = nparts;
    return t;
}

/* Starts the volume work for the instances listed so far and not yet given out: full groups
 * of group_size ids while listers are still at work (a partial group waits for more ids),
 * and once the listing is complete whatever is left, in groups of equal size. Each group is
 * one DescribeVolumes worker, started as soon as there is capacity. */
static void enqueue_volume_groups(struct engine_job *job)
{
    size_t left = job->ninst - job->dispatched;
    size_t per = job->group_size;
    if (job->listing == 0 && left > 0)
        per = plan_last_groups(left, per);
    bool queued = false;
    while (job->ninst - job->dispatched >= per ||
           (job->listing == 0 && job->ninst > job->dispatched)) {
        size_t i = job->dispatched;
        size_t n = job->ninst - i < per ? job->ninst - i : per;
        char(*ids)[ID_LEN] = xmalloc(n * ID_LEN);
        for (size_t k = 0; k < n; k++)
            memcpy(ids[k], job->inst[i + k].id, ID_LEN);
        enqueue(job, T_VOLUMES, ids, n);
        job->dispatched += n;
        queued = true;
    }
    if (queued)
        schedule();
}

static void task_done(struct task *t);
static bool retry_unsplit(struct engine_job *job);
static void listing_seen(const struct engine_job *job);

/* Adds a worker's EC2 call counts to its job and to the process totals. */
static void account_stats(struct engine_job *job, const struct wire_stats *s)
{
    job->ec2_calls += s->calls;
    count_calls(job, s->describe_instances, s->describe_volumes, s->retries, s->throttled);
    if (s->has_quota)
        g.stats.retry_quota = s->retry_quota;
    if (s->clock_offset_set) /* later workers inherit it (skew.h) */
        skew_adopt(s->clock_offset_ms);
}

/* A worker that has answered (DONE or ERROR) is no longer asked for its peak memory until it
 * is reaped, and its job may be answered before that: its peak goes to the job now, what
 * it said, else what it last recorded before an EC2 call. */
static void note_peak(struct engine_job *job, const struct task *t, long said_kb)
{
    long rss = with_recorded_peak(t, said_kb);
    if (rss > job->max_rss_kb)
        job->max_rss_kb = rss;
}

/* Counts an EC2 call of job that failed after retries, by code, in its target's counters. */
static void count_error_code(const struct engine_job *job, const char *code)
{
    struct engine_target_calls *c = target_calls(job);
    for (size_t i = 0; i < c->nerrors; i++) {
        if (strcmp(c->errors[i].code, code) == 0) {
            c->errors[i].count++;
            return;
        }
    }
    if (c->nerrors < ENGINE_MAX_ERROR_CODES) {
        size_t i = c->nerrors++;
        snprintf(c->errors[i].code, sizeof c->errors[i].code, "%s", code);
        c->errors[i].count = 1;
    }
}

/* A job's record arrays up to this size live on the heap; larger ones in private mappings. */
#define ARRAY_SMALL ((size_t)64 << 10)

/* Room for n more records of size in an array of *cap records, *len used (xtiered_grow). A
 * small array is the heap's: a private mapping for it cost a map, a page fault and an unmap
 * with its TLB flush for every array of every job, a fifth of the parent's CPU on an
 * aggregate over small targets. Past ARRAY_SMALL it is a private mapping (parent-only, never
 * inherited by a fork) of a whole huge page or more, so it never holds small pages that would
 * keep its first 2 MiB from being one: filling a 10,000-instance job's arrays page by page
 * was about 1,200 faults (17-20 ms of the parent's CPU) per request. */
static void *room_for(void *arr, size_t *cap, size_t len, size_t n, size_t size)
{
    if (len + n > *cap) {
        size_t bytes = *cap * size;
        arr = xtiered_grow(arr, &bytes, (len + n) * 2 * size, len * size, ARRAY_SMALL);
        *cap = bytes / size;
    }
    return arr;
}

/* Frees an array of room_for's. */
static void array_free(void *arr, size_t cap, size_t size)
{
    xtiered_free(arr, cap * size, ARRAY_SMALL);
}

/* Appends an INSTANCES or VOLUMES frame's records to the job; false if the frame is not a
 * whole number of records. */
static bool take_records(struct task *t, int type, const char *data, size_t len)
{
    struct engine_job *job = t->job;
    if (type == WIRE_INSTANCES) {
        size_t nt, kept_tags;
        size_t n = wire_records(type, data, len, &nt);
        if (n == (size_t)-1)
            return false;
        job->inst = room_for(job->inst, &job->capinst, job->ninst, n, sizeof *job->inst);
        job->tags = room_for(job->tags, &job->captags, job->ntags, nt, sizeof *job->tags);
        job->ninst += wire_take_instances(data, len, job->inst + job->ninst,
                                          job->tags + job->ntags, job->ntags, &kept_tags);
        job->ntags += kept_tags;
        if (t->kind == T_INSTANCE)
            job->instance_seen = job->ninst > 0;
        else if (t->kind == T_LIST && (t->own_volumes || job->volume_shares))
            job->dispatched = job->ninst; /* the lister itself, or the shares, list them */
        else if (t->kind == T_LIST)
            enqueue_volume_groups(job);
        return true;
    }
    size_t nv, na, nt, kept_atts, kept_tags;
    if (!wire_count_volumes(data, len, &nv, &na, &nt))
        return false;
    job->vols = room_for(job->vols, &job->capvols, job->nvols, nv, sizeof *job->vols);
    job->atts = room_for(job->atts, &job->capatts, job->natts, na, sizeof *job->atts);
    job->tags = room_for(job->tags, &job->captags, job->ntags, nt, sizeof *job->tags);
    job->nvols += wire_take_volumes(data, len, job->vols + job->nvols, job->atts + job->natts,
                                    job->natts, &kept_atts, job->tags + job->ntags, job->ntags,
                                    &kept_tags);
    job->natts += kept_atts;
    job->ntags += kept_tags;
    return true;
}

static void task_on_frame(struct task *t, int type, const char *data, size_t len)
{
    struct engine_job *job = t->job;
    if (t->kind == T_SERVICE) {
        if (type == WIRE_CREDS || type == WIRE_ERROR || type == WIRE_DONE)
            t->got_done = true;
        if (t->svc.on_frame)
            t->svc.on_frame(t->svc.arg, type, data, len);
        return;
    }
    if (!job || job->finished)
        return;
    if (type == WIRE_INSTANCES || type == WIRE_VOLUMES) {
        if (!take_records(t, type, data, len)) {
            t->failed = true;
            job_fail(job, EBSD_ECHILD, "a worker process sent a malformed result");
        }
        return;
    }
    switch (type) {
    case WIRE_DONE: {
        struct wire_stats s;
        if (wire_decode_done(data, len, &s) != EBSD_OK) {
            t->failed = true;
            job_fail(job, EBSD_ECHILD, "a worker process sent an unreadable result");
            return;
        }
        t->got_done = true;
        account_stats(job, &s);
        note_peak(job, t, s.rss_kb);
        job->pending--;
        if ((t->kind == T_LIST || t->kind == T_SEQUENTIAL) && job->listing > 0) {
            job->listing--;
            if (t->kind == T_LIST && job->listing == 0)
                enqueue_volume_groups(job); /* the rest, now that the listing is complete */
        }
        job_maybe_finish(job);
        break;
    }
    case WIRE_ERROR: {
        struct wire_error e;
        if (wire_decode_error(data, len, &e) != EBSD_OK) {
            t->failed = true;
            job_fail(job, EBSD_ECHILD, "a worker process sent an unreadable result");
            return;
        }
        t->got_done = true;
        t->failed = true;
        account_stats(job, &e.stats);
        note_peak(job, t, e.stats.rss_kb);
        if (!(e.status == EBSD_ETHROTTLED && e.http_status == 0)) /* sent nothing */
            count_error_code(job, e.code[0] ? e.code : status_str(e.status));
        job_fail_ec2(job, &e);
        break;
    }
    default:
        t->failed = true;
        job_fail(job, EBSD_ECHILD, "a worker process sent an unknown frame type %d", type);
        break;
    }
}

static void on_task_readable(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)events;
    struct task *t = arg;
    bool eof = false;
    ebsd_status st = frame_reader_feed(&t->rd, fd, &eof);
    uint8_t type;
    const char *data;
    size_t len;
    while (st == EBSD_OK) {
        ebsd_status nx = frame_reader_next(&t->rd, &type, &data, &len);
        if (nx == EBSD_ENOTFOUND)
            break;
        if (nx != EBSD_OK) {
            st = nx;
            break;
        }
        task_on_frame(t, type, data, len);
    }
    if (st != EBSD_OK) {
        t->failed = true;
        if (t->job)
            job_fail(t->job, EBSD_ECHILD, "a worker process sent garbage on its pipe");
        proc_kill(t->pid);
        eof = true;
    }
    /* Level-triggered: with data left after a hang-up we are called again until read()
     * returns 0, so only end of file closes the pipe. */
    if (eof) {
        t->eof = true;
        loop_del_fd(g.loop, t->fd);
        close(t->fd);
        t->fd = -1;
        if (t->reaped)
            task_done(t);
    }
}

/* In a service worker: its body. */
static int task_main(int fd, void *arg)
{
    const struct task *t = arg;
    return t->svc.fn(fd, t->svc.arg);
}

/* A job task's worker input, as the bytes a worker is started with (proc.h): all it needs of
 * the parent's state at that moment. The ids come last, and only nids of them are sent. */
struct task_msg {
    uint8_t kind; /* enum task_kind */
    bool own_volumes, background, have_creds, skew_known, all_tags;
    uint8_t log_format, log_level; /* as log_setup has them now */
    struct worker_settings settings;
    struct target target;
    unsigned part, nparts, ntags;
    unsigned vol_nparts; /* the lister carries its shares of this many (0: none) */
    int calls_slot; /* -1: not counted */
    int64_t deadline, skew_offset_ms;
    char tags[WIRE_PICK_KEYS][256];
    struct creds creds;
    size_t nids;
    char ids[EC2_MAX_IDS][ID_LEN];
};

/* Writes t's message into m; returns its length. */
static size_t task_msg_fill(struct task_msg *m, const struct task *t)
{
    memset(m, 0, offsetof(struct task_msg, ids));
    const struct engine_query *q = &t->job->q;
    m->kind = (uint8_t)t->kind;
    enum log_format fmt;
    enum log_level lvl;
    log_settings(&fmt, &lvl);
    m->log_format = (uint8_t)fmt;
    m->log_level = (uint8_t)lvl;
    m->settings = *worker_settings(); /* zeroed whole by worker_configure, strings included */
    m->own_volumes = t->own_volumes;
    m->background = q->background;
    /* strings by value, never whole arrays: no byte past a string's end is sent */
    snprintf(m->target.account, sizeof m->target.account, "%s", q->target.account);
    snprintf(m->target.region, sizeof m->target.region, "%s", q->target.region);
    m->part = t->part;
    m->nparts = t->nparts;
    m->vol_nparts = t->vol_nparts;
    m->deadline = t->deadline;
    m->calls_slot = t->calls ? (int)((t->calls - g.counters[0]) / 3) : -1;
    m->skew_known = skew_offset_known();
    m->skew_offset_ms = skew_offset_ms();
    struct wire_tag_pick pick = engine_tag_pick(q);
    m->all_tags = pick.all;
    for (unsigned i = 0; i < pick.nkeys && i < WIRE_PICK_KEYS; i++)
        snprintf(m->tags[m->ntags++], sizeof m->tags[0], "%s", pick.keys[i]);
    const struct creds *c = worker_creds(&q->target);
    if (c) {
        struct creds *d = &m->creds;
        snprintf(d->access_key_id, sizeof d->access_key_id, "%s", c->access_key_id);
        snprintf(d->secret_access_key, sizeof d->secret_access_key, "%s", c->secret_access_key);
        snprintf(d->session_token, sizeof d->session_token, "%s", c->session_token);
        snprintf(d->source, sizeof d->source, "%s", c->source);
        d->expiration = c->expiration;
        m->have_creds = true;
    }
    m->nids = t->nids < EC2_MAX_IDS ? t->nids : EC2_MAX_IDS;
    memset(m->ids, 0, m->nids * sizeof m->ids[0]);
    for (size_t i = 0; i < m->nids; i++)
        snprintf(m->ids[i], sizeof m->ids[i], "%s", t->ids[i]);
    return offsetof(struct task_msg, ids) + m->nids * sizeof m->ids[0];
}

/* In a job's worker: its body, from its message. */
static int task_msg_main(int fd, const void *msg, size_t len)
{
    static const enum worker_kind kinds[] = {WORKER_LIST,       WORKER_VOLUMES,
                                             WORKER_INSTANCE,   WORKER_SEQUENTIAL,
                                             WORKER_UNATTACHED, WORKER_ATTACHED};
    const struct task_msg *m = msg;
    if (len < offsetof(struct task_msg, ids) || m->nids > EC2_MAX_IDS ||
        len != offsetof(struct task_msg, ids) + m->nids * sizeof m->ids[0] ||
        m->kind >= sizeof kinds / sizeof kinds[0] || m->ntags > WIRE_PICK_KEYS ||
        m->calls_slot >= COUNTERS)
        return PROC_EXIT_SETUP;
    if (m->log_format > LOG_FORMAT_TEXT || m->log_level > LOGL_ERROR)
        return PROC_EXIT_SETUP;
    /* what a reload may have changed since the zygote started */
    log_setup((enum log_format)m->log_format, (enum log_level)m->log_level);
    worker_settings_adopt(&m->settings);
    if (m->skew_known)
        skew_inherit(m->skew_offset_ms);
    struct wire_tag_pick pick = {.nkeys = m->ntags, .all = m->all_tags};
    for (unsigned i = 0; i < m->ntags; i++)
        pick.keys[i] = m->tags[i];
    const struct worker_task wt = {
        .kind = kinds[m->kind],
        .target = &m->target,
        .ids = m->ids,
        .nids = m->nids,
        .part = m->part,
        .nparts = m->nparts,
        .own_volumes = m->own_volumes,
        .vol_nparts = m->vol_nparts,
        .deadline = m->deadline,
        .tags = pick,
        .background = m->background,
        .calls = m->calls_slot >= 0 && g.counters ? g.counters[m->calls_slot] : NULL,
        .creds = m->have_creds ? &m->creds : NULL,
    };
    return worker_main(fd, &wt);
}

/* Fills spec (and m, for a job's worker) to start t with. */
static void spawn_prepare(struct task *t, struct proc_spec *spec, struct task_msg *m)
{
    /* a worker is given its job's deadline as it stands now: its EC2 calls and retries end
     * by it (the child's copy of t is taken at fork) */
    if (t->job)
        t->deadline = t->job->deadline;
    *spec = (struct proc_spec){
        .fn = task_main,
        .arg = t,
        .mem_limit_bytes = t->job ? (size_t)t->job->q.memory_mb << 20 : 0,
        .nice = g.worker_nice,
    };
    /* a job's worker starts from its message, forked by the zygote (proc.h) */
    if (t->job) {
        t->calls = counter_take();
        spec->name = "ebsd-worker";
        spec->fn = NULL;
        spec->msg = m;
        spec->msg_len = task_msg_fill(m, t);
    }
}

/* t's worker runs as pc: watched, counted, its job's. */
static void spawn_started(struct task *t, const struct proc_child *pc)
{
    t->pid = pc->pid;
    t->fd = pc->fd;
    if (t->job)
        t->job->budget_wait = false;
    trace_task(t, "started");
    frame_reader_init(&t->rd, WIRE_FRAME_MAX);
    t->next = g.running;
    g.running = t;
    g.nrunning++;
    g.stats.forked++;
    if (t->job) {
        t->job->children++;
        if (t->job->queue_timer) {
            loop_timer_stop(g.loop, t->job->queue_timer);
            t->job->queue_timer = NULL;
        }
    }
    if (loop_add_fd(g.loop, t->fd, EPOLLIN, on_task_readable, t) != EBSD_OK) {
        proc_kill(t->pid);
        t->eof = true;
        close(t->fd);
        t->fd = -1;
    }
}

static void spawn_failed(struct task *t, ebsd_status st)
{
    if (t->job) {
        /* t still counts while the job fails, so the job outlives job_fail */
        job_fail(t->job, EBSD_EBUSY, "cannot start a worker process: %s", status_str(st));
        task_drop(t);
        return;
    }
    if (t->svc.on_end)
        t->svc.on_end(t->svc.arg);
    task_free(t);
}

/* The most workers started in one proc_spawn_many. */
#define SPAWN_BATCH 16

/* Starts the n (at most SPAWN_BATCH) tasks of ts at once: the zygote is sent every message
 * before any answer is awaited, so it forks them back to back (an aggregate over nine targets
 * had its nine listers forked one round trip with the zygote after another). Every worker
 * started is registered before any failure is handled: a failed job kills its workers. */
static void spawn_many(struct task **ts, size_t n)
{
    static struct task_msg msgs[SPAWN_BATCH];
    struct proc_spec specs[SPAWN_BATCH];
    struct proc_child pcs[SPAWN_BATCH];
    ebsd_status sts[SPAWN_BATCH];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ts[i]->job && ts[i]->job->finished) { /* failed since it left the queue */
            task_drop(ts[i]);
            continue;
        }
        ts[k] = ts[i];
        spawn_prepare(ts[k], &specs[k], &msgs[k]);
        k++;
    }
    n = k;
    fflush(stdout);
    fflush(stderr);
    proc_spawn_many(specs, n, pcs, sts);
    for (size_t i = 0; i < n; i++) {
        if (ts[i]->job)
            explicit_bzero(&msgs[i].creds, sizeof msgs[i].creds); /* no copy of a secret */
        if (sts[i] == EBSD_OK)
            spawn_started(ts[i], &pcs[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (sts[i] != EBSD_OK)
            spawn_failed(ts[i], sts[i]);
}

enum budget_verdict { BUDGET_GO, BUDGET_WAIT, BUDGET_REFUSED };

/* The EC2 budget before a job's worker is forked (each of its calls takes its own token;
 * ahead: workers just forked for the same target that have not taken theirs yet): with a
 * token there, go; when the next comes within fanout.queue_timeout_ms of the task's queueing
 * and the job's deadline, wait (the wake timer set for it, the job's queue timer armed);
 * when it would come later, the job is refused at once: 503 RequestLimitExceeded with
 * Retry-After, and its tasks leave the queue. */
static enum budget_verdict budget_check(struct task *t, unsigned ahead)
{
    struct engine_job *job = t->job;
    int64_t now_us = clock_now_us();
    int64_t wait_us = limiter_wait_us(&job->q.target, LIMITER_DESCRIBE, now_us,
                                      job->q.background, ahead);
    if (wait_us == 0) {
        job->budget_wait = false;
        return BUDGET_GO;
    }
    int64_t now = now_us / 1000, ready = now + (wait_us + 999) / 1000;
    int64_t limit = t->queued_ms + g.queue_timeout_ms;
    if (job->deadline < limit)
        limit = job->deadline;
    if (ready > limit) {
        limiter_count_refusal(&job->q.target, LIMITER_DESCRIBE);
        job_fail_budget(job);
        return BUDGET_REFUSED;
    }
    job->budget_wait = true;
    if (!job->queue_timer)
        job->queue_timer = loop_timer_start(g.loop, limit, on_queue_timeout, job);
    wake_at(ready);
    return BUDGET_WAIT;
}

/* Starts queued tasks while there are child slots, in queue order except that a task whose
 * EC2 budget has no token yet stays queued and those behind it may go (background work waits
 * for tokens above the reserve, and requests behind it need not). */
static void schedule(void)
{
    struct task *prev = NULL, *t = g.queue_head;
    /* workers forked in this pass have not taken their first token yet: count them ahead */
    struct {
        const struct target *target;
        unsigned n;
    } pass[8];
    unsigned npass = 0;
    struct task *batch[SPAWN_BATCH];
    size_t nbatch = 0;
    while (t && g.nrunning + nbatch < g.max_children) {
        if (t->kind != T_SERVICE && t->job && !t->job->finished) {
            unsigned ahead = 0, k = 0;
            for (; k < npass; k++)
                if (target_equal(pass[k].target, &t->job->q.target)) {
                    ahead = pass[k].n;
                    break;
                }
            enum budget_verdict v = budget_check(t, ahead);
            if (v == BUDGET_REFUSED) { /* the job's tasks left the queue: start over */
                prev = NULL;
                t = g.queue_head;
                continue;
            }
            if (v == BUDGET_WAIT) {
                prev = t;
                t = t->next;
                continue;
            }
            if (k < npass)
                pass[k].n++;
            else if (npass < sizeof pass / sizeof pass[0])
                pass[npass++] = (__typeof__(pass[0])){&t->job->q.target, 1};
        }
        struct task *next = t->next;
        if (prev)
            prev->next = next;
        else
            g.queue_head = next;
        if (g.queue_tail == t)
            g.queue_tail = prev;
        t->next = NULL;
        g.nqueued--;
        if (t->job && (t->job->finished || clock_remaining_ms(t->job->deadline) == 0)) {
            task_drop(t);
        } else {
            batch[nbatch++] = t;
            if (nbatch == SPAWN_BATCH) {
                spawn_many(batch, nbatch);
                nbatch = 0;
            }
        }
        t = next;
    }
    if (nbatch)
        spawn_many(batch, nbatch);
    /* Out of slots: a job none of whose workers has started gets its queue timeout from
     * when it was queued. engine_start arms it only when the slots are already taken, and
     * jobs started in the same loop turn (forked from the loop) all see them free. */
    for (; t && g.nrunning >= g.max_children; t = t->next) {
        struct engine_job *job = t->job;
        if (job && !job->finished && job->children == 0 && !job->queue_timer)
            job->queue_timer =
                loop_timer_start(g.loop, t->queued_ms + g.queue_timeout_ms, on_queue_timeout, job);
    }
}

/* How long nothing must have run before the spares are forked again. Their forks and
 * warm-ups cost CPU: right after a request they would compete with the next one when
 * requests come back to back (bench/cold_total.py's cold requests were 5-7 % slower so). */
#define SPARES_IDLE_MS 100

static void on_spares(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
    g.spares_timer = NULL;
    if (g.nrunning == 0 && g.nqueued == 0)
        proc_spares(g.draining ? 0 : g.spare_workers);
}

/* When nothing runs, has the zygote keep the spares (none while draining) once nothing has
 * run for SPARES_IDLE_MS: the ones the last workers used are forked again while the machine
 * is idle, rather than on the next request's path. */
static void keep_spares(void)
{
    if (g.nrunning || g.nqueued || !g.loop)
        return;
    if (g.spares_timer)
        loop_timer_stop(g.loop, g.spares_timer);
    g.spares_timer = loop_timer_start(g.loop, clock_now_ms() + SPARES_IDLE_MS, on_spares, NULL);
}

static void task_done(struct task *t)
{
    struct task **pp = &g.running;
    while (*pp && *pp != t)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = t->next;
        g.nrunning--;
    }
    struct engine_job *job = t->job;
    trace_task(t, "ended");
    long rss = t->exit.maxrss_kb;
    g.stats.last_child_rss_kb = rss;
    account_unfinished(t);
    if (!t->killed && t->exit.kind == PROC_EXIT_SIGNALED && t->exit.signal > 0 &&
        t->exit.signal < ENGINE_MAX_SIGNAL) {
        g.stats.killed_signal[t->exit.signal]++;
        char what[64];
        log_warn("fanout", "worker %d was killed from outside (%s): its job fails; "
                 "counted in ebsd_children_killed_total{reason=\"signal\"}", (int)t->pid,
                 proc_exit_describe(&t->exit, what, sizeof what));
    }
    if (t->exit.kind == PROC_EXIT_OOM)
        g.stats.killed_memory++;
    else if (t->exit.kind == PROC_EXIT_CRASHED)
        g.stats.crashed++;
    if (t->kind == T_SERVICE && t->svc.on_end)
        t->svc.on_end(t->svc.arg);
    if (job) {
        if (rss > job->max_rss_kb)
            job->max_rss_kb = rss;
        if (!job->finished && !t->got_done) {
            if (t->exit.kind == PROC_EXIT_OOM)
                job_fail(job, EBSD_ENOMEM, "a worker process exceeded the memory limit of %u MB",
                         job->q.memory_mb);
            else if (t->exit.kind == PROC_EXIT_CRASHED || t->exit.kind == PROC_EXIT_SIGNALED)
                job_fail(job, EBSD_ECHILD, "a worker process died (signal %d)", t->exit.signal);
            else
                job_fail(job, EBSD_ECHILD, "a worker process exited (status %d) "
                         "without a result", t->exit.code);
        }
        job->tasks--;
        if (!job->finished)
            job_maybe_finish(job);
        job_release(job);
    }
    frame_reader_free(&t->rd);
    task_free(t);
    schedule();
    keep_spares();
}

void engine_on_sigchld(void)
{
    struct proc_exit ex;
    while (proc_reap_any(&ex) == EBSD_OK) {
        struct task *t = g.running;
        while (t && t->pid != ex.pid)
            t = t->next;
        if (!t) {
            (void)proc_zygote_gone(ex.pid); /* the zygote is the one child no task owns */
            continue;
        }
        t->exit = ex;
        t->reaped = true;
        if (t->eof)
            task_done(t);
    }
}

static void job_maybe_finish(struct engine_job *job)
{
    /* A job is done when every task has sent DONE: the answer does not wait for the workers
     * to exit and be reaped (that happens after, off the request's critical path). */
    if (job->finished || job->listing || job->pending > 0)
        return;
    if (job->q.kind == ENGINE_INSTANCE && !job->instance_seen) {
        job_fail(job, EBSD_ENOTFOUND, "instance %s does not exist in %s", job->q.instance_id,
                 job->q.target.region);
        return;
    }
    if (job->q.kind == ENGINE_TOTAL) {
        if (retry_unsplit(job))
            return;
        listing_seen(job);
    }
    struct engine_outcome out = {
        .status = EBSD_OK,
        .inst = job->inst,
        .ninst = job->ninst,
        .vols = job->vols,
        .nvols = job->nvols,
        .atts = job->atts,
        .natts = job->natts,
        .tags = job->tags,
        .ntags = job->ntags,
    };
    job_deliver(job, &out);
}

static void on_wake(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
    g.wake = NULL;
    schedule();
}

/* One timer runs schedule(): the earliest of the times asked for. */
static void wake_at(int64_t at)
{
    if (!g.loop || (g.wake && g.wake_at <= at))
        return;
    if (g.wake)
        loop_timer_stop(g.loop, g.wake);
    g.wake_at = at;
    g.wake = loop_timer_start(g.loop, at, on_wake, NULL);
}

static void kick(void)
{
    wake_at(clock_now_ms());
}

/* ---------------------------------------------------------------- what listings found */

static struct seen *seen_slot(const struct target *t, bool create)
{
    for (unsigned i = 0; i < g.nseen; i++)
        if (target_equal(&g.seen[i].target, t))
            return &g.seen[i];
    if (!create)
        return NULL;
    unsigned i = g.nseen < sizeof g.seen / sizeof g.seen[0] ? g.nseen++ : 0;
    g.seen[i] = (struct seen){.target = *t};
    return &g.seen[i];
}

static struct seen last_seen(const struct target *t)
{
    const struct seen *seen = seen_slot(t, false);
    return seen ? *seen : (struct seen){0};
}

/* A split listing (or volume listing) that found nothing where the target's last listing
 * found something: an endpoint without filter wildcards, or a fleet that is gone. Either way
 * the job asks once more, unsplit, before it answers (listing_seen tells which it was).
 * True when it did. */
static bool retry_unsplit(struct engine_job *job)
{
    struct seen last = last_seen(&job->q.target);
    bool again = false;
    if (job->partitions > 1 && job->ninst == 0 && last.instances > 0 && !job->relisted) {
        job->relisted = true;
        job->partitions = 1;
        job->listing = 1;
        enqueue_share(job, T_LIST, 0, 1);
        again = true;
    }
    if (job->volume_shares > 1 && job->nvols == 0 && last.volumes > 0 && !job->revolumed) {
        job->revolumed = true;
        job->volume_shares = 1;
        enqueue_share(job, T_ATTACHED, 0, 1);
        again = true;
    }
    if (again)
        schedule();
    return again;
}

/* Remembers what a complete listing found. A split that found nothing where the same listing
 * unsplit found something means an endpoint without filter wildcards: split no more. */
static void listing_seen(const struct engine_job *job)
{
    struct seen *seen = seen_slot(&job->q.target, true);
    if (job->relisted && job->ninst > 0) {
        g.partitions_off = true;
        log_warn("fanout", "a split listing found no instances in %s where the same listing "
                 "unsplit found %zu (no filter wildcards?): listing unsplit from now on "
                 "(fanout.list_partitions: 1 makes this the rule)", job->q.target.region,
                 job->ninst);
    }
    if (job->revolumed && job->nvols > 0) {
        g.volume_split_off = true;
        log_warn("fanout", "volume shares found no attached volume in %s where one unsplit "
                 "share found %zu (no filter wildcards?): one share from now on "
                 "(fanout.volume_shares: 1 makes this the rule)", job->q.target.region,
                 job->nvols);
    }
    seen->instances = job->ninst;
    seen->volumes = job->nvols;
    if (g.on_seen)
        g.on_seen(&job->q.target, job->ninst, job->nvols);
}

void engine_set_seen_fn(engine_seen_fn fn)
{
    g.on_seen = fn;
}

void engine_seen_hint(const struct target *t, size_t instances, size_t volumes)
{
    if (last_seen(t).instances > 0)
        return; /* a listing of this process found it: fresher than any hint */
    struct seen *seen = seen_slot(t, true);
    seen->instances = instances;
    seen->volumes = volumes;
}

/* ---------------------------------------------------------------- public API */

struct engine_job *engine_start(const struct engine_query *q, int64_t deadline,
                                engine_done_fn done, void *arg)
{
    struct engine_job *job = xcalloc(1, sizeof *job);
    job->q = *q;
    job->deadline = deadline;
    job->started_us = clock_now_us();
    job->done = done;
    job->arg = arg;
    g.stats.jobs++;
    job->deadline_timer = loop_timer_start(g.loop, deadline + DEADLINE_GRACE_MS, on_deadline, job);
    if (g.nrunning >= g.max_children)
        job->queue_timer =
            loop_timer_start(g.loop, clock_now_ms() + g.queue_timeout_ms, on_queue_timeout, job);
    if (g.gate && !g.gate(&q->target)) {
        /* answered from the loop, never from inside engine_start */
        if (job->queue_timer)
            loop_timer_stop(g.loop, job->queue_timer);
        job->queue_timer = loop_timer_start(g.loop, clock_now_ms(), on_not_ready, job);
        return job;
    }
    if (q->kind == ENGINE_UNATTACHED) {
        enqueue(job, T_UNATTACHED, NULL, 0);
    } else if (q->kind == ENGINE_INSTANCE) {
        char(*a)[ID_LEN] = xmalloc(ID_LEN), (*b)[ID_LEN] = xmalloc(ID_LEN);
        snprintf(a[0], ID_LEN, "%s", q->instance_id);
        snprintf(b[0], ID_LEN, "%s", q->instance_id);
        enqueue(job, T_INSTANCE, a, 1);
        enqueue(job, T_VOLUMES, b, 1);
    } else {
        struct seen last = last_seen(&q->target);
        size_t seen = last.instances;
        size_t ipage = g.instance_page ? g.instance_page : 1000;
        size_t vpage = g.volume_page ? g.volume_page : 500;
        job->volume_shares =
            q->sequential ? 0
                          : plan_volume_shares(g.volume_shares, g.volume_split_off, seen,
                                               last.volumes, vpage);
        unsigned parts =
            q->sequential ? 1
                          : plan_share_listers(g.list_partitions, g.partitions_off, seen,
                                               last.volumes, job->volume_shares, ipage, vpage);
        job->partitions = parts;
        job->group_size = plan_group_size(g.group_size, seen, g.max_children, parts,
                                          EC2_MAX_IDS);
        job->listing = parts;
        bool own = !q->sequential && !job->volume_shares &&
                   plan_listers_own_volumes(seen, parts, job->group_size, ipage, EC2_MAX_IDS);
        enum task_kind lister = q->sequential ? T_SEQUENTIAL : T_LIST;
        /* The listers carry the volume shares, each in a thread of its worker (share s is
         * lister s mod parts's, worker_carried_share): a fork, a client set-up and an exit
         * less per share, about 6 ms of CPU each, which an aggregate over many targets pays
         * for every target. Shares past what the listers carry get workers of their own. */
        bool carry = lister == T_LIST && job->volume_shares > 0;
        for (unsigned i = 0; i < parts; i++) {
            struct task *lt = enqueue_share(job, lister, i, parts);
            lt->own_volumes = own;
            if (carry)
                lt->vol_nparts = job->volume_shares;
        }
        for (unsigned s = 0; s < job->volume_shares; s++)
            if (!carry || worker_carried_share(s % parts, parts, job->volume_shares,
                                               s / parts) < 0)
                enqueue_share(job, T_ATTACHED, s, job->volume_shares);
    }
    kick(); /* workers are forked from the loop, so done never runs inside engine_start */
    return job;
}

struct wire_tag_pick engine_tag_pick(const struct engine_query *q)
{
    struct wire_tag_pick p = {.all = q->kind == ENGINE_UNATTACHED};
    for (unsigned i = 0; i < q->ngroup && i < ENGINE_MAX_GROUPS; i++) {
        const char *tag = wire_group_tag(q->group_by[i], NULL);
        if (tag)
            p.keys[p.nkeys++] = tag;
    }
    return p;
}

void engine_extend(struct engine_job *job, int64_t deadline)
{
    if (!job || job->finished || deadline <= job->deadline)
        return;
    job->deadline = deadline;
    if (job->deadline_timer)
        loop_timer_stop(g.loop, job->deadline_timer);
    job->deadline_timer = loop_timer_start(g.loop, deadline + DEADLINE_GRACE_MS, on_deadline, job);
}

void engine_job_counts(const struct engine_job *job, unsigned *children, unsigned *ec2_calls,
                       long *max_rss_kb)
{
    *children = job ? job->children : 0;
    *ec2_calls = job ? job->ec2_calls : 0;
    *max_rss_kb = job ? job->max_rss_kb : 0;
    if (!job)
        return;
    /* Workers still at work (a request answered at its deadline before they are killed):
     * the calls they have counted so far and their peak memory (VmHWM, what wait4's
     * ru_maxrss will say once they are reaped). */
    for (const struct task *t = g.running; t; t = t->next) {
        if (t->job != job || t->got_done || t->calls_counted)
            continue;
        if (t->calls)
            *ec2_calls += atomic_load(&t->calls[0]) + atomic_load(&t->calls[1]);
        long rss = task_peak_rss(t);
        if (rss > *max_rss_kb)
            *max_rss_kb = rss;
    }
}

void engine_cancel(struct engine_job *job)
{
    if (!job || job->finished)
        return;
    job->done = NULL;
    job->finished = true;
    kill_job_children(job);
    drop_queued(job);
    job_release(job);
}

void engine_run_service(const struct engine_service *svc)
{
    struct task *t = enqueue(NULL, T_SERVICE, NULL, 0);
    t->svc = *svc;
    schedule();
}

void engine_init(struct loop *l, const struct config *cfg, engine_gate_fn gate)
{
    g.loop = l;
    g.gate = gate;
    g.max_children = cfg->max_children;
    g.group_size = cfg->group_size ? cfg->group_size : 100;
    g.list_partitions = cfg->list_partitions;
    uint32_t shares = 0; /* validated with the config */
    (void)config_volume_shares_parse(cfg->fanout_volume_shares, &shares);
    g.volume_shares = shares;
    g.volume_page = cfg->volume_page_size;
    g.queue_timeout_ms = cfg->queue_timeout_ms;
    g.worker_nice = cfg->worker_nice;
    /* no more spares than workers may run at once */
    g.spare_workers =
        cfg->spare_workers < cfg->max_children ? cfg->spare_workers : cfg->max_children;
    g.instance_page = cfg->instance_page_size;
    limiter_configure(cfg->rate_limit, cfg->rate_burst, clock_now_us());
    if (!g.counters) {
        void *p = mmap(NULL, sizeof(_Atomic unsigned[3]) * COUNTERS, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        g.counters = p == MAP_FAILED ? NULL : p;
    }
    /* once, after what the workers inherit for good is set (the limiter's and the counters'
     * shared mappings above): what a reload changes comes in each worker's message */
    if (!g.zygote_tried) {
        g.zygote_tried = true;
        proc_spares_warm(worker_spare_warm);
        (void)proc_zygote_start(task_msg_main);
    }
    if (!g.ready) {
        g.ready = true;
        /* No fastbins in the parent: glibc leaves small freed chunks there unmerged, and the
         * first large allocation in each forked worker merges them all, writing to (and so
         * copying) every heap page that holds one. After a 10,000-instance result that made
         * every worker pay tens of milliseconds of page copies. */
        (void)mallopt(M_MXFAST, 0);
    }
    schedule();
    keep_spares(); /* a reload may ask for more, or fewer */
}

void engine_drain(void)
{
    g.draining = true;
    proc_spares(0); /* whatever runs: the ready ones are let go now */
}

/* Frees a task at shutdown, and its job once no task refers to it (nobody waits any more). */
static void task_drop_at_shutdown(struct task *t)
{
    if (t->job) {
        t->job->finished = true;
        t->job->done = NULL;
    }
    task_drop(t);
}

void engine_shutdown(void)
{
    for (struct task *t = g.running; t; t = t->next)
        if (!t->reaped)
            proc_kill(t->pid);
    /* reap what we killed so nothing outlives us as a zombie of init's */
    int64_t until = clock_now_ms() + 1000;
    while (g.running && clock_now_ms() < until) {
        struct proc_exit ex;
        while (proc_reap_any(&ex) == EBSD_OK) {
            for (struct task *t = g.running; t; t = t->next)
                if (t->pid == ex.pid)
                    t->reaped = true;
        }
        struct task **pp = &g.running;
        while (*pp) {
            struct task *t = *pp;
            if (t->reaped) {
                *pp = t->next;
                g.nrunning--;
                if (t->fd >= 0) {
                    loop_del_fd(g.loop, t->fd);
                    close(t->fd);
                }
                frame_reader_free(&t->rd);
                task_drop_at_shutdown(t);
                continue;
            }
            pp = &t->next;
        }
        if (g.running)
            usleep(5000);
    }
    if (g.running)
        log_warn("fanout", "%u workers were not reaped within 1 s of shutdown", g.nrunning);
    while (g.queue_head) {
        struct task *t = g.queue_head;
        g.queue_head = t->next;
        task_drop_at_shutdown(t);
    }
    g.queue_tail = NULL;
    g.nqueued = 0;
    if (g.wake)
        loop_timer_stop(g.loop, g.wake);
    g.wake = NULL;
    if (g.trim)
        loop_timer_stop(g.loop, g.trim);
    g.trim = NULL;
    if (g.spares_timer)
        loop_timer_stop(g.loop, g.spares_timer);
    g.spares_timer = NULL;
    proc_zygote_stop();
    g.zygote_tried = false;
    limiter_reset();
    free(g.calls);
    g.calls = NULL;
    g.ncalls = g.calls_cap = 0;
    g.ready = false;
}
