/* fanout.c - forked children per request, bounded and deadline-enforced (see fanout.h).
 *
 * A job is a set of tasks; each task runs in one forked child that makes its EC2 calls with
 * its own client and reports frames over its pipe:
 *   LIST       DescribeInstances pages -> INSTANCES frames, one per page, then DONE
 *   VOLUMES    DescribeVolumes filtered by attachment.instance-id for a group of ids
 *   INSTANCE   DescribeInstances InstanceId.1 (the per-instance route's lookup)
 *   SEQUENTIAL the seed's strategy: list instances, then one DescribeVolumes per instance
 *   CREDS      resolves credentials (refresh ahead of expiry)
 * The parent schedules at most max_children children at once across all jobs, starts the
 * volume work of a page while the lister fetches the next, and aggregates at the end. */
#include "fanout.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "ec2.h"
#include "frame.h"
#include "log.h"
#include "mem.h"
#include "proc.h"
#include "ratelimit.h"
#include "sigv4.h"
#include "skew.h"

enum task_kind { T_LIST, T_VOLUMES, T_INSTANCE, T_SEQUENTIAL, T_CREDS };
enum frame_type { F_INSTANCES = 1, F_VOLUMES = 2, F_DONE = 3, F_ERROR = 4, F_CREDS = 5 };

#define ID_LEN 24
#define LIST_SHARE 500 /* instances per lister when the listing is split (auto) */
#define FRAME_MAX (64u << 20)

struct inst {
    char id[ID_LEN];
    char state[16];
    unsigned nvol;
    int64_t gib;
};

struct vattach {
    char instance_id[ID_LEN];
    char device[32];
    char state[16];
    bool dot;
};

struct vol {
    char id[32];
    int64_t size_gib;
    char type[16];
    int iops, throughput;
    char state[16];
    bool encrypted, multi;
    unsigned nattach;
    struct vattach attach[4]; /* EC2 multi-attach allows up to 16; we keep the first 4 */
};

struct task;

struct fanout_job {
    struct fanout_query q;
    int64_t deadline;
    int64_t started_us;        /* for the debug timeline of its tasks */
    fanout_done_fn done;
    void *arg;
    bool finished;             /* done called or cancelled */
    unsigned tasks;            /* queued + running tasks still referring to the job */
    unsigned pending;          /* tasks whose result (DONE) has not arrived yet */
    unsigned children, ec2_calls;
    long max_rss_kb;
    unsigned listing;          /* listers (or the sequential worker) yet to send DONE */
    unsigned partitions;       /* listers the listing was split into */
    size_t group_size;         /* instance ids per VOLUMES task (see volume_group_size) */
    struct loop_timer *deadline_timer, *queue_timer;
    struct inst *inst;
    size_t ninst, capinst;
    size_t dispatched;         /* instances [0, dispatched) have their volume work queued */
    struct vol *vols;
    size_t nvols, capvols;
    bool instance_seen;        /* FANOUT_INSTANCE: DescribeInstances found it */
    bool no_creds;             /* started before credentials were usable */
};

struct task {
    enum task_kind kind;
    struct fanout_job *job;    /* NULL for CREDS */
    char (*ids)[ID_LEN];
    size_t nids;
    unsigned part, nparts;     /* T_LIST: this lister's share of the listing */
    bool own_volumes;          /* T_LIST: also fetches the volumes of what it lists */
    int64_t deadline;
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
    /* limits and EC2 settings, copied from the config */
    unsigned max_children, group_size, queue_timeout_ms;
    unsigned list_partitions;  /* 0: sized from the last count; 1: never split */
    unsigned worker_nice;
    bool partitions_off;       /* a split listing came back empty: do not split again */
    unsigned max_attempts, instance_page, volume_page;
    unsigned connect_timeout_ms, read_timeout_ms; /* per EC2 attempt */
    double rate, burst;
    char endpoint[512];
    char ca_bundle[512];
    struct creds creds;
    bool have_creds;
    bool creds_refreshing;
    struct loop_timer *creds_timer;
    struct loop_timer *kick;   /* runs schedule() from the loop */
    struct loop_timer *trim;   /* malloc_trim once a large job's memory is freed */
    /* The process-wide EC2 budget: one token per worker started (a worker makes about one
     * call; see docs/ARCHITECTURE.md), so many workers cannot multiply the rate. */
    struct ratelimit bucket;
    struct loop_timer *bucket_timer;
    struct task *queue_head, *queue_tail;
    struct task *running;
    unsigned nrunning, nqueued;
    struct fanout_stats stats;
    /* Instances the last full listing of each region found: sizes the next listing's split */
    struct {
        char region[32];
        size_t instances;
    } seen[16];
    unsigned nseen;
} g;

static void schedule(void);
static void kick(void);
static void job_maybe_finish(struct fanout_job *job);
static void creds_schedule_refresh(void);

const struct fanout_stats *fanout_stats(void)
{
    g.stats.running = g.nrunning;
    g.stats.queued = g.nqueued;
    g.stats.max_children = g.max_children;
    return &g.stats;
}

bool fanout_creds_ready(const char **source, int64_t *expires_in_s)
{
    if (source)
        *source = g.have_creds ? g.creds.source : "none";
    if (expires_in_s)
        *expires_in_s = g.have_creds && g.creds.expiration
                            ? (int64_t)g.creds.expiration - (int64_t)time(NULL)
                            : -1;
    return g.have_creds;
}

/* ================================================================ the child side */

static void add_stats(cJSON *o, const struct ec2_stats *s)
{
    cJSON_AddNumberToObject(o, "calls", s->calls);
    cJSON_AddNumberToObject(o, "di", s->describe_instances);
    cJSON_AddNumberToObject(o, "dv", s->describe_volumes);
    cJSON_AddNumberToObject(o, "retries", s->retries);
    cJSON_AddNumberToObject(o, "throttled", s->throttled);
    cJSON_AddNumberToObject(o, "quota", s->retry_quota);
    if (s->clock_offset_set) /* the parent adopts it: later workers sign right at once */
        cJSON_AddNumberToObject(o, "clock_offset_ms", (double)s->clock_offset_ms);
}

static ebsd_status put_error(int fd, ebsd_status st, const struct ec2_error *e, const struct ec2_stats *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "status", st);
    cJSON_AddNumberToObject(o, "http_status", (double)e->http_status);
    cJSON_AddStringToObject(o, "code", e->code);
    cJSON_AddStringToObject(o, "message", e->message[0] ? e->message : status_str(st));
    if (s)
        add_stats(o, s);
    char *txt = cJSON_PrintUnformatted(o);
    ebsd_status wst = frame_write(fd, F_ERROR, txt, strlen(txt));
    free(txt);
    cJSON_Delete(o);
    return wst;
}

static ebsd_status put_json(int fd, int type, cJSON *o)
{
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    ebsd_status st = frame_write(fd, (uint8_t)type, txt, strlen(txt));
    free(txt);
    return st;
}

/* A worker's record array: zeroed; past 64 KiB a private mapping in one huge page or more,
 * since each 4 KiB page of a fresh heap area would be a page fault of its own. */
static bool records_private(size_t bytes) { return bytes > (64u << 10); }

static void *records_new(size_t n, size_t size)
{
    size_t bytes = (n ? n : 1) * size;
    if (!records_private(bytes))
        return xcalloc(1, bytes);
    size_t huge = xprivate_huge_size();
    return xprivate_realloc(NULL, bytes > huge ? bytes : huge);
}

static void records_free(void *a, size_t n, size_t size)
{
    if (records_private((n ? n : 1) * size))
        xprivate_free(a);
    else
        free(a);
}

/* INSTANCES and VOLUMES frames carry arrays of the fixed-size records below, copied as they
 * are: parent and child are the same binary, and the parent checks the length and terminates
 * every string before use, so a corrupt frame can fail its request but never overrun. At
 * 10,000 instances this is what keeps the parent cheap (no JSON built or parsed per item). */
static ebsd_status put_instances(int fd, const struct ec2_instance_page *p)
{
    struct inst *a = records_new(p->n, sizeof *a);
    for (size_t i = 0; i < p->n; i++) {
        str_copy(a[i].id, sizeof a[i].id, p->items[i].id);
        str_copy(a[i].state, sizeof a[i].state, p->items[i].state);
    }
    ebsd_status st = frame_write(fd, F_INSTANCES, a, p->n * sizeof *a);
    records_free(a, p->n, sizeof *a);
    return st;
}

static ebsd_status put_volumes(int fd, const struct ec2_volume_page *p)
{
    struct vol *a = records_new(p->n, sizeof *a);
    for (size_t i = 0; i < p->n; i++) {
        const struct ec2_volume *v = &p->items[i];
        struct vol *o = &a[i];
        str_copy(o->id, sizeof o->id, v->id);
        o->size_gib = v->size_gib;
        str_copy(o->type, sizeof o->type, v->type);
        o->iops = v->iops;
        o->throughput = v->throughput;
        str_copy(o->state, sizeof o->state, v->state);
        o->encrypted = v->encrypted;
        o->multi = v->multi_attach;
        for (size_t k = 0; k < v->nattach && o->nattach < 4; k++) {
            struct vattach *x = &o->attach[o->nattach++];
            str_copy(x->instance_id, sizeof x->instance_id, v->attach[k].instance_id);
            str_copy(x->device, sizeof x->device, v->attach[k].device);
            str_copy(x->state, sizeof x->state, v->attach[k].state);
            x->dot = v->attach[k].delete_on_termination;
        }
    }
    ebsd_status st = frame_write(fd, F_VOLUMES, a, p->n * sizeof *a);
    records_free(a, p->n, sizeof *a);
    return st;
}

/* Pagination state: the token to send next and the one sent before it. */
struct pager {
    char *token;
    char *prev;
};

/* Moves to the page after one that returned next (NULL: it was the last). Returns true if
 * there is another page to fetch; false at the end, or with *st = EBSD_EUPSTREAM when EC2
 * repeats the token it was just sent (a loop that would never end). */
static bool advance_token(struct pager *pg, const char *next, struct ec2_error *err,
                          ebsd_status *st)
{
    free(pg->prev);
    pg->prev = pg->token;
    pg->token = next ? xstrdup(next) : NULL;
    if (!pg->token)
        return false;
    if (pg->prev && strcmp(pg->prev, pg->token) == 0) {
        snprintf(err->message, sizeof err->message, "EC2 repeated a pagination token");
        *st = EBSD_EUPSTREAM;
        return false;
    }
    return true;
}

static void pager_free(struct pager *pg)
{
    free(pg->token);
    free(pg->prev);
}

static ebsd_status child_volumes(int fd, struct ec2_client *c, const char *const *ids, size_t n,
                                 int64_t deadline, struct ec2_error *err)
{
    struct pager pg = {0};
    ebsd_status st = EBSD_OK;
    for (;;) {
        struct ec2_volume_page p = {0};
        st = ec2_describe_volumes(c, ids, n, pg.token, deadline, &p, err);
        if (st != EBSD_OK)
            break;
        st = put_volumes(fd, &p);
        bool more = st == EBSD_OK && advance_token(&pg, p.next_token, err, &st);
        ec2_volume_page_free(&p);
        if (!more)
            break;
    }
    pager_free(&pg);
    return st;
}

static ebsd_status child_list(int fd, struct ec2_client *c, const struct task *t,
                              struct ec2_error *err)
{
    bool sequential = t->kind == T_SEQUENTIAL;
    int64_t deadline = t->deadline;
    struct pager pg = {0};
    ebsd_status st = EBSD_OK;
    for (;;) {
        struct ec2_instance_page p = {0};
        st = ec2_describe_instances_part(c, t->part, t->nparts ? t->nparts : 1, pg.token,
                                         deadline, &p, err);
        if (st != EBSD_OK)
            break;
        st = put_instances(fd, &p);
        if (st == EBSD_OK && t->own_volumes && p.n > 0) {
            /* this lister's share fits one page: its volumes come from here, with no
             * worker of their own to fork and no round trip through the parent */
            const char *ids[EC2_MAX_IDS];
            for (size_t i = 0; i < p.n && st == EBSD_OK; i += EC2_MAX_IDS) {
                size_t n = p.n - i < EC2_MAX_IDS ? p.n - i : EC2_MAX_IDS;
                for (size_t k = 0; k < n; k++)
                    ids[k] = p.items[i + k].id;
                st = child_volumes(fd, c, ids, n, deadline, err);
            }
        }
        if (st == EBSD_OK && sequential) {
            /* the seed: one DescribeVolumes call (and its pages) per instance */
            for (size_t i = 0; i < p.n && st == EBSD_OK; i++) {
                const char *one = p.items[i].id;
                st = child_volumes(fd, c, &one, 1, deadline, err);
            }
        }
        bool more = st == EBSD_OK && advance_token(&pg, p.next_token, err, &st);
        ec2_instance_page_free(&p);
        if (!more)
            break;
    }
    pager_free(&pg);
    return st;
}

static int child_main(int fd, void *arg)
{
    struct task *t = arg;
    /* Large buffers (response bodies, parsed pages) come from fresh mappings, not from free
     * chunks of the heap inherited from the parent: writing to those would copy every page
     * (and, on some virtual machines, interrupt the parent's CPU for each). */
    (void)mallopt(M_MMAP_THRESHOLD, 64 << 10);
    struct ec2_error err = {0};
    ebsd_status st;
    if (t->kind == T_CREDS) {
        struct creds c;
        struct creds_error ce = {0};
        memset(&c, 0, sizeof c);
        st = creds_resolve(t->deadline, &c, &ce);
        if (st != EBSD_OK) {
            snprintf(err.code, sizeof err.code, "CredentialsUnavailable");
            snprintf(err.message, sizeof err.message, "%.60s: %.180s", ce.source, ce.message);
            return put_error(fd, st, &err, NULL) == EBSD_OK ? 0 : 1;
        }
        st = frame_write(fd, F_CREDS, &c, sizeof c);
        creds_wipe(&c);
        return st == EBSD_OK ? 0 : 1;
    }
    struct ec2_options opt = {
        .region = t->job->q.region,
        .endpoint = g.endpoint[0] ? g.endpoint : NULL,
        .ca_bundle = g.ca_bundle[0] ? g.ca_bundle : NULL,
        .creds = &g.creds,
        .max_attempts = (int)g.max_attempts,
        .instance_page_size = (int)g.instance_page,
        .volume_page_size = (int)g.volume_page,
        /* Parallel workers were admitted by the parent's bucket; the sequential worker
         * makes all its calls alone, so it paces itself with the same budget. */
        .rate_per_s = t->kind == T_SEQUENTIAL ? g.rate : 0,
        .rate_burst = g.burst,
        .connect_timeout_ms = (int)g.connect_timeout_ms,
        .read_timeout_ms = (int)g.read_timeout_ms,
    };
    struct ec2_client *c = NULL;
    st = ec2_client_new(&opt, &c);
    if (st != EBSD_OK) {
        snprintf(err.message, sizeof err.message, "cannot create the EC2 client: %s",
                 status_str(st));
        return put_error(fd, st, &err, NULL) == EBSD_OK ? 0 : 1;
    }
    const char *ids[1024];
    size_t n = t->nids < 1024 ? t->nids : 1024;
    for (size_t i = 0; i < n; i++)
        ids[i] = t->ids[i];
    switch (t->kind) {
    case T_LIST:
    case T_SEQUENTIAL:
        st = child_list(fd, c, t, &err);
        break;
    case T_VOLUMES:
        st = child_volumes(fd, c, ids, n, t->deadline, &err);
        break;
    case T_INSTANCE: {
        struct ec2_instance_page p = {0};
        st = ec2_describe_instances(c, ids, n, NULL, t->deadline, &p, &err);
        if (st == EBSD_OK) {
            st = put_instances(fd, &p);
            ec2_instance_page_free(&p);
        }
        break;
    }
    default:
        st = EBSD_EINVAL;
        break;
    }
    const struct ec2_stats *s = ec2_client_stats(c);
    if (st == EBSD_OK) {
        cJSON *o = cJSON_CreateObject();
        add_stats(o, s);
        /* the worker's peak so far, which is its peak: nothing big is allocated after DONE */
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            cJSON_AddNumberToObject(o, "rss", (double)ru.ru_maxrss);
        if (put_json(fd, F_DONE, o) != EBSD_OK)
            st = EBSD_EIO;
    } else if (put_error(fd, st, &err, s) != EBSD_OK) {
        st = EBSD_EIO;
    }
    ec2_client_free(c);
    return st == EBSD_EIO ? 1 : 0;
}

/* ================================================================ the parent side */

static void job_fail(struct fanout_job *job, unsigned http, const char *code, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

static void kill_job_children(struct fanout_job *job)
{
    for (struct task *t = g.running; t; t = t->next)
        if (t->job == job && !t->reaped && t->pid > 0)
            proc_kill(t->pid);
}

static void drop_queued(struct fanout_job *job)
{
    struct task **pp = &g.queue_head;
    g.queue_tail = NULL;
    while (*pp) {
        struct task *t = *pp;
        if (t->job == job) {
            *pp = t->next;
            job->tasks--;
            g.nqueued--;
            free(t->ids);
            free(t);
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

static void job_free(struct fanout_job *job)
{
    if ((job->ninst >= 1000 || job->nvols >= 1000) && !g.trim && g.loop)
        g.trim = loop_timer_start(g.loop, clock_now_ms(), on_trim, NULL);
    if (job->deadline_timer)
        loop_timer_stop(g.loop, job->deadline_timer);
    if (job->queue_timer)
        loop_timer_stop(g.loop, job->queue_timer);
    xprivate_free(job->inst);
    xprivate_free(job->vols);
    free(job);
}

static void job_release(struct fanout_job *job)
{
    if (job->finished && job->tasks == 0)
        job_free(job);
}

static void job_deliver(struct fanout_job *job, struct fanout_result *res)
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
    res->children = job->children;
    res->ec2_calls = job->ec2_calls;
    res->max_rss_kb = job->max_rss_kb;
    res->fetched_at = clock_wall_ms();
    if (res->http_status != 200)
        g.stats.jobs_failed++;
    fanout_done_fn done = job->done;
    void *arg = job->arg;
    job->done = NULL;
    if (done)
        done(arg, res);
    else
        cJSON_Delete(res->data);
}

static void job_fail(struct fanout_job *job, unsigned http, const char *code, const char *fmt, ...)
{
    if (job->finished)
        return;
    struct fanout_result res = {.http_status = http};
    snprintf(res.code, sizeof res.code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res.message, sizeof res.message, fmt, ap);
    va_end(ap);
    if (http == 503)
        res.retry_after_s = 1;
    kill_job_children(job);
    drop_queued(job);
    job_deliver(job, &res);
    job_release(job);
}

static void on_deadline(struct loop *l, void *arg)
{
    struct fanout_job *job = arg;
    job->deadline_timer = NULL;
    for (struct task *t = g.running; t; t = t->next)
        if (t->job == job && !t->reaped)
            g.stats.killed_deadline++;
    job_fail(job, 504, "TaskTimedOut", "EC2 calls did not finish by the deadline");
}

static void on_queue_timeout(struct loop *l, void *arg)
{
    struct fanout_job *job = arg;
    job->queue_timer = NULL;
    if (job->children == 0)
        job_fail(job, 503, "Busy", "no capacity to start EC2 calls within %u ms (%u children "
                 "running)", g.queue_timeout_ms, g.nrunning);
}

static void on_no_creds(struct loop *l, void *arg)
{
    struct fanout_job *job = arg;
    job->queue_timer = NULL;
    job_fail(job, 503, "CredentialsUnavailable",
             "no usable AWS credentials yet; see /readyz and the log");
}

static const char *const task_names[] = {"LIST", "VOLUMES", "INSTANCE", "SEQUENTIAL", "CREDS"};

/* At log level debug, each task's start and end in ms from its job's start: the timeline of a
 * fan-out (how long the listing took, when volume work started, where the time went). */
static void trace_task(const struct task *t, const char *what)
{
    if (!t->job || !log_enabled(LOGL_DEBUG))
        return;
    log_debug("fanout", "job %p: %s %s (%zu ids, share %u/%u) at +%.1f ms", (void *)t->job,
              task_names[t->kind], what, t->nids, t->part, t->nparts,
              (double)(clock_now_us() - t->job->started_us) / 1000.0);
}

static void enqueue(struct fanout_job *job, enum task_kind kind, char (*ids)[ID_LEN], size_t nids)
{
    struct task *t = xcalloc(1, sizeof *t);
    t->kind = kind;
    t->job = job;
    t->ids = ids;
    t->nids = nids;
    t->fd = -1;
    t->deadline = job ? job->deadline : clock_now_ms() + 10000;
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
}

/* Starts the volume work for the instances listed so far and not yet given out: full groups
 * of group_size ids while listers are still at work (a partial group waits for more ids),
 * and once the listing is complete whatever is left, in groups of equal size. Each group is
 * one DescribeVolumes child, started as soon as there is capacity. */
static void enqueue_volume_groups(struct fanout_job *job)
{
    size_t left = job->ninst - job->dispatched;
    size_t per = job->group_size;
    if (job->listing == 0 && left > 0) {
        size_t groups = (left + per - 1) / per;
        per = (left + groups - 1) / groups;
    }
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
static void listing_seen(const struct fanout_job *job);

static unsigned num(const cJSON *o, const char *k)
{
    double v = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k));
    return v > 0 && v < 1e9 ? (unsigned)v : 0;
}

/* Adds a child's EC2 call counts to its job and to the process totals. */
static void account_stats(struct fanout_job *job, const cJSON *o)
{
    job->ec2_calls += num(o, "calls");
    g.stats.ec2_calls += num(o, "calls");
    g.stats.describe_instances += num(o, "di");
    g.stats.describe_volumes += num(o, "dv");
    g.stats.ec2_retries += num(o, "retries");
    g.stats.ec2_throttled += num(o, "throttled");
    if (cJSON_GetObjectItemCaseSensitive(o, "quota"))
        g.stats.retry_quota = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "quota"));
    /* a worker learned a clock offset: later workers inherit it (skew.h) */
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(o, "clock_offset_ms");
    if (cJSON_IsNumber(off) && off->valuedouble > -1e12 && off->valuedouble < 1e12)
        skew_adopt((int64_t)off->valuedouble);
}

static void count_error_code(const char *code)
{
    for (size_t i = 0; i < g.stats.nerror_codes; i++) {
        if (strcmp(g.stats.error_codes[i].code, code) == 0) {
            g.stats.error_codes[i].count++;
            return;
        }
    }
    if (g.stats.nerror_codes < sizeof g.stats.error_codes / sizeof g.stats.error_codes[0]) {
        size_t i = g.stats.nerror_codes++;
        snprintf(g.stats.error_codes[i].code, sizeof g.stats.error_codes[i].code, "%s", code);
        g.stats.error_codes[i].count = 1;
    }
}

#define TERMINATE(field) ((field)[sizeof(field) - 1] = '\0')

/* A bool copied from a frame is read as a byte first: any other value than 0 or 1 in a bool
 * would be undefined behaviour. */
static void fix_bool(bool *b)
{
    unsigned char c;
    memcpy(&c, b, 1);
    *b = c != 0;
}

/* Room for n more records of size in a parent-private array of *cap records, *len used. */
static void *room_for(void *arr, size_t *cap, size_t len, size_t n, size_t size)
{
    if (len + n > *cap) {
        *cap = (len + n) * 2;
        arr = xprivate_realloc(arr, *cap * size);
    }
    return arr;
}

/* Appends an INSTANCES or VOLUMES frame's records to the job; false if the frame is not a
 * whole number of records. */
static bool take_records(struct task *t, int type, const char *data, size_t len)
{
    struct fanout_job *job = t->job;
    if (type == F_INSTANCES) {
        if (len % sizeof(struct inst) != 0)
            return false;
        size_t n = len / sizeof(struct inst);
        job->inst = room_for(job->inst, &job->capinst, job->ninst, n, sizeof *job->inst);
        for (size_t i = 0; i < n; i++) {
            struct inst *in = &job->inst[job->ninst];
            memcpy(in, data + i * sizeof *in, sizeof *in);
            TERMINATE(in->id);
            TERMINATE(in->state);
            in->nvol = 0;
            in->gib = 0;
            if (in->id[0])
                job->ninst++;
        }
        if (t->kind == T_INSTANCE)
            job->instance_seen = job->ninst > 0;
        else if (t->kind == T_LIST && t->own_volumes)
            job->dispatched = job->ninst; /* the lister fetches these volumes itself */
        else if (t->kind == T_LIST)
            enqueue_volume_groups(job);
        return true;
    }
    if (len % sizeof(struct vol) != 0)
        return false;
    size_t n = len / sizeof(struct vol);
    job->vols = room_for(job->vols, &job->capvols, job->nvols, n, sizeof *job->vols);
    for (size_t i = 0; i < n; i++) {
        struct vol *v = &job->vols[job->nvols];
        memcpy(v, data + i * sizeof *v, sizeof *v);
        TERMINATE(v->id);
        TERMINATE(v->type);
        TERMINATE(v->state);
        fix_bool(&v->encrypted);
        fix_bool(&v->multi);
        if (v->nattach > 4)
            v->nattach = 4;
        for (unsigned k = 0; k < v->nattach; k++) {
            TERMINATE(v->attach[k].instance_id);
            TERMINATE(v->attach[k].device);
            TERMINATE(v->attach[k].state);
            fix_bool(&v->attach[k].dot);
        }
        if (v->id[0])
            job->nvols++;
    }
    return true;
}

static void task_on_frame(struct task *t, int type, const char *data, size_t len)
{
    struct fanout_job *job = t->job;
    if (t->kind == T_CREDS) {
        if (type == F_CREDS && len == sizeof(struct creds)) {
            memcpy(&g.creds, data, sizeof g.creds);
            g.have_creds = true;
            t->got_done = true;
            log_info("credentials", "credentials loaded from %s", g.creds.source);
        } else if (type == F_ERROR) {
            cJSON *o = cJSON_ParseWithLength(data, len);
            const cJSON *m = o ? cJSON_GetObjectItemCaseSensitive(o, "message") : NULL;
            log_warn("credentials", "credential refresh failed: %s",
                     cJSON_IsString(m) ? m->valuestring : "(unreadable answer)");
            cJSON_Delete(o);
            t->got_done = true;
        }
        return;
    }
    if (!job || job->finished)
        return;
    if (type == F_INSTANCES || type == F_VOLUMES) {
        if (!take_records(t, type, data, len)) {
            t->failed = true;
            job_fail(job, 502, "ChildFailed", "a worker process sent a malformed result");
        }
        return;
    }
    cJSON *o = cJSON_ParseWithLength(data, len);
    if (!o) {
        t->failed = true;
        job_fail(job, 502, "ChildFailed", "a worker process sent an unreadable result");
        return;
    }
    switch (type) {
    case F_DONE:
        t->got_done = true;
        account_stats(job, o);
        long rss = (long)num(o, "rss");
        if (rss > job->max_rss_kb)
            job->max_rss_kb = rss;
        job->pending--;
        if ((t->kind == T_LIST || t->kind == T_SEQUENTIAL) && job->listing > 0) {
            job->listing--;
            if (t->kind == T_LIST && job->listing == 0)
                enqueue_volume_groups(job); /* the rest, now that the listing is complete */
        }
        break;
    case F_ERROR: {
        t->got_done = true;
        t->failed = true;
        account_stats(job, o);
        ebsd_status st = (ebsd_status)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "status"));
        long http = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "http_status"));
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "message");
        const char *c = cJSON_IsString(code) && code->valuestring[0] ? code->valuestring : NULL;
        const char *m = cJSON_IsString(msg) ? msg->valuestring : "";
        count_error_code(c ? c : status_str(st));
        if (c && strcmp(c, "InvalidInstanceID.NotFound") == 0)
            job_fail(job, 404, "NotFound", "instance %s does not exist in %s",
                     job->q.instance_id, job->q.region);
        else if (st == EBSD_ETIMEDOUT)
            job_fail(job, 504, "TaskTimedOut", "EC2 calls did not finish by the deadline");
        else if (st == EBSD_ETHROTTLED || (c && http == 503))
            job_fail(job, 503, c ? c : "RequestLimitExceeded", "EC2 throttled the calls: %s", m);
        else if (st == EBSD_ENETWORK)
            job_fail(job, 502, "UpstreamUnreachable", "EC2 could not be reached: %s", m);
        else if (st == EBSD_EAUTH || st == EBSD_EUPSTREAM)
            job_fail(job, 502, c ? c : "UpstreamError", "EC2 answered HTTP %ld: %s", http, m);
        else
            job_fail(job, 502, c ? c : "UpstreamError", "EC2 call failed: %s", m);
        break;
    }
    default:
        t->failed = true;
        job_fail(job, 502, "ChildFailed", "a worker process sent an unknown frame type %d", type);
        break;
    }
    cJSON_Delete(o);
    if (type == F_DONE)
        job_maybe_finish(job);
}

static void on_task_readable(struct loop *l, int fd, uint32_t events, void *arg)
{
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
            job_fail(t->job, 502, "ChildFailed", "a worker process sent garbage on its pipe");
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

static void spawn(struct task *t)
{
    struct proc_spec spec = {
        .fn = child_main,
        .arg = t,
        .mem_limit_bytes = t->job ? (size_t)t->job->q.memory_mb << 20 : 0,
        .nice = g.worker_nice,
    };
    struct proc_child pc;
    fflush(stdout);
    fflush(stderr);
    ebsd_status st = proc_spawn(&spec, &pc);
    if (st != EBSD_OK) {
        if (t->job) {
            t->job->tasks--;
            job_fail(t->job, 503, "Busy", "cannot start a worker process: %s", status_str(st));
            job_release(t->job);
        }
        free(t->ids);
        free(t);
        return;
    }
    t->pid = pc.pid;
    t->fd = pc.fd;
    trace_task(t, "started");
    frame_reader_init(&t->rd, FRAME_MAX);
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

static void on_bucket(struct loop *l, void *arg)
{
    g.bucket_timer = NULL;
    schedule();
}

static void schedule(void)
{
    while (g.queue_head && g.nrunning < g.max_children) {
        struct task *t = g.queue_head;
        if (t->kind != T_CREDS && !(t->job && t->job->finished)) {
            int64_t wait_us = ratelimit_take_at(&g.bucket, clock_now_us());
            if (wait_us > 0) {
                if (!g.bucket_timer)
                    g.bucket_timer = loop_timer_start(g.loop, clock_now_ms() + wait_us / 1000 + 1,
                                                      on_bucket, NULL);
                return;
            }
        }
        g.queue_head = t->next;
        if (!g.queue_head)
            g.queue_tail = NULL;
        t->next = NULL;
        g.nqueued--;
        if (t->job && (t->job->finished || clock_remaining_ms(t->job->deadline) == 0)) {
            struct fanout_job *job = t->job;
            job->tasks--;
            free(t->ids);
            free(t);
            job_release(job);
            continue;
        }
        spawn(t);
    }
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
    struct fanout_job *job = t->job;
    trace_task(t, "ended");
    long rss = t->exit.maxrss_kb;
    g.stats.last_child_rss_kb = rss;
    if (t->exit.kind == PROC_EXIT_OOM)
        g.stats.killed_memory++;
    else if (t->exit.kind == PROC_EXIT_CRASHED)
        g.stats.crashed++;
    if (t->kind == T_CREDS) {
        g.creds_refreshing = false;
        creds_schedule_refresh();
    }
    if (job) {
        if (rss > job->max_rss_kb)
            job->max_rss_kb = rss;
        if (!job->finished && !t->got_done) {
            if (t->exit.kind == PROC_EXIT_OOM)
                job_fail(job, 502, "MemoryLimitExceeded",
                         "a worker process exceeded the memory limit of %u MB", job->q.memory_mb);
            else if (t->exit.kind == PROC_EXIT_CRASHED || t->exit.kind == PROC_EXIT_SIGNALED)
                job_fail(job, 502, "ChildFailed", "a worker process died (signal %d)",
                         t->exit.signal);
            else
                job_fail(job, 502, "ChildFailed", "a worker process exited (status %d) "
                         "without a result", t->exit.code);
        }
        job->tasks--;
        if (!job->finished)
            job_maybe_finish(job);
        job_release(job);
    }
    frame_reader_free(&t->rd);
    free(t->ids);
    free(t);
    schedule();
}

void fanout_on_sigchld(void)
{
    struct proc_exit ex;
    while (proc_reap_any(&ex) == EBSD_OK) {
        struct task *t = g.running;
        while (t && t->pid != ex.pid)
            t = t->next;
        if (!t)
            continue; /* not ours (should not happen) */
        t->exit = ex;
        t->reaped = true;
        if (t->eof)
            task_done(t);
    }
}

/* ---------------------------------------------------------------- aggregation */

static int cmp_inst(const void *a, const void *b)
{
    return strcmp(((const struct inst *)a)->id, ((const struct inst *)b)->id);
}

static int cmp_vol(const void *a, const void *b)
{
    return strcmp(((const struct vol *)a)->id, ((const struct vol *)b)->id);
}

/* qsort and bsearch may not be given a NULL base, even with no elements. */
static void sort_items(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

static bool attach_counts(const char *state)
{
    return strcmp(state, "attached") == 0 || strcmp(state, "attaching") == 0 ||
           strcmp(state, "detaching") == 0 || state[0] == '\0';
}

static cJSON *aggregate_total(struct fanout_job *job)
{
    sort_items(job->inst, job->ninst, sizeof *job->inst, cmp_inst);
    sort_items(job->vols, job->nvols, sizeof *job->vols, cmp_vol);
    int64_t total = 0;
    size_t nvol = 0;
    for (size_t i = 0; i < job->nvols; i++) {
        const struct vol *v = &job->vols[i];
        if (i > 0 && strcmp(v->id, job->vols[i - 1].id) == 0)
            continue; /* a multi-attach volume reported by two groups */
        bool counted = false;
        for (unsigned k = 0; k < v->nattach; k++) {
            if (!attach_counts(v->attach[k].state))
                continue;
            struct inst key;
            snprintf(key.id, sizeof key.id, "%s", v->attach[k].instance_id);
            struct inst *in = job->ninst ? bsearch(&key, job->inst, job->ninst,
                                                   sizeof *job->inst, cmp_inst) : NULL;
            if (!in)
                continue;
            in->nvol++;
            in->gib += v->size_gib;
            counted = true;
        }
        if (counted) {
            total += v->size_gib;
            nvol++;
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "region", job->q.region);
    cJSON_AddNumberToObject(o, "total_gib", (double)total);
    cJSON_AddNumberToObject(o, "instance_count", (double)job->ninst);
    cJSON_AddNumberToObject(o, "volume_count", (double)nvol);
    cJSON *arr = cJSON_AddArrayToObject(o, "instances");
    for (size_t i = 0; i < job->ninst; i++) {
        const struct inst *in = &job->inst[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "instance_id", in->id);
        cJSON_AddStringToObject(x, "state", in->state);
        cJSON_AddNumberToObject(x, "volume_count", in->nvol);
        cJSON_AddNumberToObject(x, "total_gib", (double)in->gib);
        cJSON_AddItemToArray(arr, x);
    }
    return o;
}

static cJSON *aggregate_instance(struct fanout_job *job)
{
    sort_items(job->vols, job->nvols, sizeof *job->vols, cmp_vol);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "instance_id", job->q.instance_id);
    cJSON_AddStringToObject(o, "region", job->q.region);
    cJSON_AddStringToObject(o, "state", job->ninst ? job->inst[0].state : "unknown");
    int64_t total = 0;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < job->nvols; i++) {
        const struct vol *v = &job->vols[i];
        if (i > 0 && strcmp(v->id, job->vols[i - 1].id) == 0)
            continue;
        const struct vattach *a = NULL;
        for (unsigned k = 0; k < v->nattach; k++)
            if (strcmp(v->attach[k].instance_id, job->q.instance_id) == 0)
                a = &v->attach[k];
        if (!a || !attach_counts(a->state))
            continue;
        total += v->size_gib;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "volume_id", v->id);
        cJSON_AddNumberToObject(x, "size_gib", (double)v->size_gib);
        cJSON_AddStringToObject(x, "type", v->type);
        if (v->iops)
            cJSON_AddNumberToObject(x, "iops", v->iops);
        else
            cJSON_AddNullToObject(x, "iops");
        if (v->throughput)
            cJSON_AddNumberToObject(x, "throughput", v->throughput);
        else
            cJSON_AddNullToObject(x, "throughput");
        cJSON_AddStringToObject(x, "state", v->state);
        cJSON_AddStringToObject(x, "device", a->device);
        cJSON_AddStringToObject(x, "attach_state", a->state[0] ? a->state : "attached");
        cJSON_AddBoolToObject(x, "delete_on_termination", a->dot);
        cJSON_AddBoolToObject(x, "encrypted", v->encrypted);
        cJSON_AddBoolToObject(x, "multi_attach", v->multi);
        cJSON_AddItemToArray(arr, x);
    }
    cJSON_AddNumberToObject(o, "total_gib", (double)total);
    cJSON_AddNumberToObject(o, "volume_count", cJSON_GetArraySize(arr));
    cJSON_AddItemToObject(o, "volumes", arr);
    return o;
}

static void job_maybe_finish(struct fanout_job *job)
{
    /* A job is done when every task has sent DONE: the answer does not wait for the workers
     * to exit and be reaped (that happens after, off the request's critical path). */
    if (job->finished || job->listing || job->pending > 0)
        return;
    struct fanout_result res = {.http_status = 200};
    if (job->q.kind == FANOUT_INSTANCE) {
        if (!job->instance_seen) {
            job_fail(job, 404, "NotFound", "instance %s does not exist in %s",
                     job->q.instance_id, job->q.region);
            return;
        }
        res.data = aggregate_instance(job);
    } else {
        listing_seen(job);
        res.data = aggregate_total(job);
    }
    job_deliver(job, &res);
}


static void on_kick(struct loop *l, void *arg)
{
    g.kick = NULL;
    schedule();
}

static void kick(void)
{
    if (!g.kick && g.loop)
        g.kick = loop_timer_start(g.loop, clock_now_ms(), on_kick, NULL);
}

/* ---------------------------------------------------------------- listing split */

static size_t *seen_slot(const char *region, bool create)
{
    for (unsigned i = 0; i < g.nseen; i++)
        if (strcmp(g.seen[i].region, region) == 0)
            return &g.seen[i].instances;
    if (!create)
        return NULL;
    unsigned i = g.nseen < sizeof g.seen / sizeof g.seen[0] ? g.nseen++ : 0;
    snprintf(g.seen[i].region, sizeof g.seen[i].region, "%s", region);
    g.seen[i].instances = 0;
    return &g.seen[i].instances;
}

/* How many listers list a region: the configured number, or (auto) one per 500 instances
 * the last listing of the region found, as a power of two up to 16; 1 the first time. One
 * lister would page through a fleet of 10,000 one 1,000-instance page after another. */
static unsigned list_partitions(const char *region)
{
    unsigned want = g.list_partitions;
    if (g.partitions_off)
        return 1;
    if (want == 0) {
        const size_t *seen = seen_slot(region, false);
        size_t n = seen ? *seen : 0;
        want = (unsigned)((n + LIST_SHARE - 1) / LIST_SHARE);
        if (want > 16)
            want = 16;
    }
    unsigned p = 1;
    while (p < want && p < 16)
        p *= 2;
    return p;
}

/* Instance ids per VOLUMES worker: fanout.group_size, unless the region's last count says the
 * fleet needs more groups of that size than there are workers left beside the listers; then
 * groups grow (up to EC2_MAX_IDS) so the volume work runs in one wave. A worker costs about
 * 10 ms of CPU to fork, set up and tear down, more than a DescribeVolumes page of 500
 * volumes costs to parse: at 10,000 instances, 16 workers of 625 ids were 25% faster than
 * 50 of 200 (docs/PERFORMANCE.md). */
static size_t volume_group_size(const char *region, unsigned listers)
{
    size_t group = g.group_size;
    const size_t *seen = seen_slot(region, false);
    unsigned budget = g.max_children > listers ? g.max_children - listers : 1;
    if (seen && *seen > group * budget) {
        group = (*seen + budget - 1) / budget;
        if (group > EC2_MAX_IDS)
            group = EC2_MAX_IDS;
    }
    return group;
}

/* Whether each lister should fetch its own share's volumes: when the region's last count
 * says every share fits one DescribeInstances page and is no larger than the volume group
 * the parent would hand out (group, as grown by volume_group_size). Then the listing and
 * the volume work run in the same workers: half as many forks, and a share's volume calls
 * start the moment its listing arrives, where the parent's groups would not have made the
 * volume work any wider. With spare workers, groups stay smaller than a share and the
 * parent spreads them (at 1,000 instances: 2 shares of 500, 5 groups of 200). Not on the
 * first listing of a region, whose size is unknown. */
static bool listers_own_volumes(const char *region, unsigned listers, size_t group)
{
    const size_t *seen = seen_slot(region, false);
    if (!seen || *seen == 0)
        return false;
    size_t share = (*seen + listers - 1) / listers;
    size_t page = g.instance_page ? g.instance_page : 1000;
    return share <= group && share <= page && share <= EC2_MAX_IDS;
}

/* Remembers what a complete listing found. A split listing that found nothing where the last
 * one found instances suggests an endpoint without filter wildcards: split no more. */
static void listing_seen(const struct fanout_job *job)
{
    size_t *seen = seen_slot(job->q.region, true);
    if (job->partitions > 1 && job->ninst == 0 && *seen > 0) {
        g.partitions_off = true;
        log_warn("fanout", "a listing split %u ways found no instances in %s where the last "
                 "one found %zu: listing unsplit from now on (fanout.list_partitions: 1 "
                 "makes this the rule)", job->partitions, job->q.region, *seen);
    }
    *seen = job->ninst;
}

/* ---------------------------------------------------------------- public API */

struct fanout_job *fanout_start(const struct fanout_query *q, int64_t deadline,
                                fanout_done_fn done, void *arg)
{
    struct fanout_job *job = xcalloc(1, sizeof *job);
    job->q = *q;
    job->deadline = deadline;
    job->started_us = clock_now_us();
    job->done = done;
    job->arg = arg;
    g.stats.jobs++;
    job->deadline_timer = loop_timer_start(g.loop, deadline, on_deadline, job);
    if (g.nrunning >= g.max_children)
        job->queue_timer =
            loop_timer_start(g.loop, clock_now_ms() + g.queue_timeout_ms, on_queue_timeout, job);
    if (!g.have_creds) {
        job->no_creds = true;
        /* answered from the loop, never from inside fanout_start */
        if (job->queue_timer)
            loop_timer_stop(g.loop, job->queue_timer);
        job->queue_timer = loop_timer_start(g.loop, clock_now_ms(), on_no_creds, job);
        return job;
    }
    if (q->kind == FANOUT_INSTANCE) {
        char(*a)[ID_LEN] = xmalloc(ID_LEN), (*b)[ID_LEN] = xmalloc(ID_LEN);
        snprintf(a[0], ID_LEN, "%s", q->instance_id);
        snprintf(b[0], ID_LEN, "%s", q->instance_id);
        enqueue(job, T_INSTANCE, a, 1);
        enqueue(job, T_VOLUMES, b, 1);
    } else {
        unsigned parts = q->sequential ? 1 : list_partitions(q->region);
        job->partitions = parts;
        job->group_size = volume_group_size(q->region, parts);
        job->listing = parts;
        bool own = !q->sequential && listers_own_volumes(q->region, parts, job->group_size);
        for (unsigned i = 0; i < parts; i++) {
            enqueue(job, q->sequential ? T_SEQUENTIAL : T_LIST, NULL, 0);
            g.queue_tail->part = i;
            g.queue_tail->nparts = parts;
            g.queue_tail->own_volumes = own;
        }
    }
    kick(); /* children are forked from the loop, so done never runs inside fanout_start */
    return job;
}

void fanout_job_counts(const struct fanout_job *job, unsigned *children, unsigned *ec2_calls,
                       long *max_rss_kb)
{
    *children = job ? job->children : 0;
    *ec2_calls = job ? job->ec2_calls : 0;
    *max_rss_kb = job ? job->max_rss_kb : 0;
}

void fanout_cancel(struct fanout_job *job)
{
    if (!job || job->finished)
        return;
    job->done = NULL;
    job->finished = true;
    kill_job_children(job);
    drop_queued(job);
    job_release(job);
}

static void on_creds_timer(struct loop *l, void *arg)
{
    g.creds_timer = NULL;
    if (g.creds_refreshing)
        return;
    g.creds_refreshing = true;
    enqueue(NULL, T_CREDS, NULL, 0);
    schedule();
}

static void creds_schedule_refresh(void)
{
    if (g.creds_timer || g.creds_refreshing || !g.loop)
        return;
    int64_t in_ms;
    if (!g.have_creds) {
        in_ms = 30000; /* try again */
    } else if (!g.creds.expiration) {
        return; /* static credentials never expire */
    } else {
        /* refresh 5 minutes (or half the remaining life) ahead of expiry */
        int64_t left = ((int64_t)g.creds.expiration - (int64_t)time(NULL)) * 1000;
        int64_t ahead = 300000 < left / 2 ? 300000 : left / 2;
        in_ms = left - ahead;
        if (in_ms < 1000)
            in_ms = 1000;
    }
    g.creds_timer = loop_timer_start(g.loop, clock_now_ms() + in_ms, on_creds_timer, NULL);
}

/* Signs a dummy request once, so that OpenSSL fetches and caches SHA-256 and HMAC in the
 * parent: otherwise every worker would do those fetches (and their allocations) again. */
static void warm_up_crypto(void)
{
    const struct sigv4_header h[] = {{"Host", "ec2.us-east-1.amazonaws.com"}};
    const struct sigv4_credentials creds = {"AKIDEXAMPLE", "warm-up", NULL};
    const struct sigv4_request req = {"POST", "/", NULL, h, 1, "Action=DescribeInstances", 24};
    const struct sigv4_params params = {&creds, "us-east-1", "ec2", 1440938160, true, false,
                                        false, false};
    struct sigv4_signed out;
    if (sigv4_sign(&req, &params, &out) == EBSD_OK)
        sigv4_signed_free(&out);
}

void fanout_init(struct loop *l, const struct config *cfg)
{
    g.loop = l;
    g.max_children = cfg->max_children;
    g.group_size = cfg->group_size ? cfg->group_size : 100;
    g.list_partitions = cfg->list_partitions;
    g.queue_timeout_ms = cfg->queue_timeout_ms;
    g.worker_nice = cfg->worker_nice;
    g.max_attempts = cfg->max_attempts;
    g.instance_page = cfg->instance_page_size;
    g.volume_page = cfg->volume_page_size;
    g.connect_timeout_ms = cfg->connect_timeout_ms;
    g.read_timeout_ms = cfg->read_timeout_ms;
    if (g.rate != cfg->rate_limit || g.burst != cfg->rate_burst || !g.ready)
        ratelimit_init(&g.bucket, cfg->rate_limit, cfg->rate_burst, clock_now_us());
    g.rate = cfg->rate_limit;
    g.burst = cfg->rate_burst;
    snprintf(g.endpoint, sizeof g.endpoint, "%s", cfg->ec2_endpoint ? cfg->ec2_endpoint : "");
    snprintf(g.ca_bundle, sizeof g.ca_bundle, "%s", cfg->ca_bundle ? cfg->ca_bundle : "");
    if (!g.ready) {
        g.ready = true;
        /* No fastbins in the parent: glibc leaves small freed chunks there unmerged, and the
         * first large allocation in each forked child merges them all, writing to (and so
         * copying) every heap page that holds one. After a 10,000-instance result that made
         * every child pay tens of milliseconds of page copies. */
        (void)mallopt(M_MXFAST, 0);
        warm_up_crypto();
        struct creds_error ce = {0};
        if (creds_resolve(clock_now_ms() + 5000, &g.creds, &ce) == EBSD_OK) {
            g.have_creds = true;
            log_info("credentials", "credentials loaded from %s", g.creds.source);
        } else {
            log_warn("credentials", "no usable credentials yet (%s: %s); retrying in the "
                     "background", ce.source, ce.message);
        }
        creds_schedule_refresh();
    }
    schedule();
}

/* Frees a task at shutdown, and its job once no task refers to it (nobody waits any more). */
static void task_drop(struct task *t)
{
    struct fanout_job *job = t->job;
    free(t->ids);
    free(t);
    if (job) {
        job->tasks--;
        job->finished = true;
        job->done = NULL;
        job_release(job);
    }
}

void fanout_shutdown(void)
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
                if (t->fd >= 0) {
                    loop_del_fd(g.loop, t->fd);
                    close(t->fd);
                }
                frame_reader_free(&t->rd);
                task_drop(t);
                continue;
            }
            pp = &t->next;
        }
        if (g.running)
            usleep(5000);
    }
    while (g.queue_head) {
        struct task *t = g.queue_head;
        g.queue_head = t->next;
        task_drop(t);
    }
    g.queue_tail = NULL;
    if (g.creds_timer)
        loop_timer_stop(g.loop, g.creds_timer);
    g.creds_timer = NULL;
    if (g.bucket_timer)
        loop_timer_stop(g.loop, g.bucket_timer);
    g.bucket_timer = NULL;
    if (g.kick)
        loop_timer_stop(g.loop, g.kick);
    g.kick = NULL;
    if (g.trim)
        loop_timer_stop(g.loop, g.trim);
    g.trim = NULL;
    creds_wipe(&g.creds);
    g.have_creds = false;
    g.ready = false;
}

/* ---------------------------------------------------------------- --once */

struct once_state {
    struct loop *loop;
    struct fanout_result res;
    bool done;
};

static void once_done(void *arg, struct fanout_result *res)
{
    struct once_state *os = arg;
    os->res = *res;
    os->done = true;
    loop_stop(os->loop);
}

static void once_sigchld(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
        ;
    fanout_on_sigchld();
}

int fanout_once(const struct config *cfg, const char *query, const char *instance_id,
                const char *region)
{
    int rc = 1;
    struct once_state os = {0};
    int sfd = -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (loop_new(&os.loop) != EBSD_OK)
        return 1;
    sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_add_fd(os.loop, sfd, EPOLLIN, once_sigchld, NULL) != EBSD_OK) {
        fprintf(stderr, "ebsd: signalfd: %s\n", strerror(errno));
        goto out;
    }
    const char *reg = region ? region : cfg->regions[0];
    if (!config_region_allowed(cfg, reg)) {
        fprintf(stderr, "ebsd: region '%s' is not configured\n", reg);
        rc = 2;
        goto out;
    }
    struct fanout_query q = {0};
    snprintf(q.region, sizeof q.region, "%s", reg);
    const struct config_route *route = &cfg->volumes_total;
    if (instance_id) {
        if (!ec2_instance_id_valid(instance_id)) {
            fprintf(stderr, "ebsd: '%s' is not an instance id\n", instance_id);
            rc = 2;
            goto out;
        }
        q.kind = FANOUT_INSTANCE;
        snprintf(q.instance_id, sizeof q.instance_id, "%s", instance_id);
        route = &cfg->instance_volumes;
    } else {
        q.kind = FANOUT_TOTAL;
    }
    q.memory_mb = route->memory_mb;
    fanout_init(os.loop, cfg);
    if (!g.have_creds) {
        fprintf(stderr, "ebsd: no usable AWS credentials (see the log above)\n");
        goto out;
    }
    int64_t t0 = clock_now_ms();
    fanout_start(&q, t0 + route->timeout_ms, once_done, &os);
    if (loop_run(os.loop) != EBSD_OK || !os.done)
        goto out;
    if (os.res.http_status == 200) {
        cJSON *o = os.res.data;
        cJSON *src = cJSON_AddObjectToObject(o, "source");
        char ts[40];
        cJSON_AddStringToObject(src, "fetched_at",
                                clock_format_rfc3339(os.res.fetched_at, ts, sizeof ts));
        cJSON_AddNumberToObject(src, "age_s", 0);
        cJSON_AddStringToObject(src, "cache", "miss");
        cJSON_AddNumberToObject(src, "ec2_calls", os.res.ec2_calls);
        cJSON_AddNumberToObject(src, "children", os.res.children);
        cJSON_AddNumberToObject(src, "duration_ms", (double)(clock_now_ms() - t0));
        char *txt = cJSON_Print(o);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
        rc = 0;
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(e, "code", os.res.code);
        cJSON_AddStringToObject(e, "message", os.res.http_status == 504
                                                  ? "Task timed out" : os.res.message);
        cJSON_AddNumberToObject(e, "http_status", os.res.http_status);
        char *txt = cJSON_Print(o);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    }
out:
    fanout_shutdown();
    if (sfd >= 0) {
        loop_del_fd(os.loop, sfd);
        close(sfd);
    }
    loop_free(os.loop);
    return rc;
}
