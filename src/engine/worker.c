/* worker.c - the workers' bodies: EC2 calls in a forked child, results as frames (worker.h). */
#include "worker.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "clock.h"
#include "ec2.h"
#include "ec2xml.h"
#include "httpc.h"
#include "limiter.h"
#include "mem.h"
#include "proc.h"
#include "sigv4.h"

static struct {
    worker_creds_fn creds;
    struct worker_settings set;
} g;

void worker_configure(const struct config *cfg, worker_creds_fn creds)
{
    g.creds = creds;
    struct worker_settings *s = &g.set;
    memset(s, 0, sizeof *s); /* whole: the settings travel in workers' messages */
    s->max_attempts = cfg->max_attempts;
    s->instance_page = cfg->instance_page_size;
    s->volume_page = cfg->volume_page_size;
    s->connect_timeout_ms = cfg->connect_timeout_ms;
    s->read_timeout_ms = cfg->read_timeout_ms;
    s->budget_wait_ms = cfg->queue_timeout_ms;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", cfg->ec2_endpoint ? cfg->ec2_endpoint : "");
    snprintf(s->ca_bundle, sizeof s->ca_bundle, "%s", cfg->ca_bundle ? cfg->ca_bundle : "");
}

const struct worker_settings *worker_settings(void) { return &g.set; }

void worker_settings_adopt(const struct worker_settings *s) { g.set = *s; }

const struct creds *worker_creds(const struct target *t)
{
    return g.creds ? g.creds(t) : NULL;
}

void worker_prepare(void)
{
    const struct sigv4_header h[] = {{"Host", "ec2.us-east-1.amazonaws.com"}};
    const struct sigv4_credentials creds = {"AKIDEXAMPLE", "warm-up", NULL};
    const struct sigv4_request req = {"POST", "/", NULL, h, 1, "Action=DescribeInstances", 24};
    const struct sigv4_params params = {&creds, "us-east-1", "ec2", 1440938160, true, false,
                                        false, false};
    struct sigv4_signed out;
    if (sigv4_sign(&req, &params, &out) == EBSD_OK)
        sigv4_signed_free(&out);
    /* a page parsed, so the symbols expat binds lazily (its first calls into libc) are bound
     * here: each lookup walks the hash tables of every loaded library, a page fault apiece in
     * a fresh worker (about a sixth of a small worker's page faults before). The page takes
     * the paths a real one does: fed in pieces that cut tokens (expat moves what is left of
     * one, memmove), and with more distinct element names than expat's first name table
     * holds (it grows, memset). */
    char page[8192];
    int len = snprintf(page, sizeof page, "%s",
                       "<DescribeVolumesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
                       "<requestId>warm-up</requestId><volumeSet><item><volumeId>"
                       "vol-0123456789abcdef0</volumeId><size>8</size><volumeType>gp3"
                       "</volumeType><attachmentSet><item><instanceId>i-0123456789abcdef0"
                       "</instanceId><status>attached</status></item></attachmentSet><tagSet>"
                       "<item><key>team</key><value>a</value></item></tagSet></item>"
                       "</volumeSet><warmUp>");
    for (int i = 0; i < 64 && len > 0 && (size_t)len < sizeof page - 128; i++)
        len += snprintf(page + len, sizeof page - (size_t)len,
                        "<element%d>text of some length, %d</element%d>", i, i, i);
    if (len <= 0 || (size_t)len >= sizeof page - 64)
        return;
    len += snprintf(page + len, sizeof page - (size_t)len, "</warmUp></DescribeVolumesResponse>");
    struct ec2xml_stream *xs = ec2xml_stream_new(true, true);
    for (int off = 0; off < len; off += 500)
        (void)ec2xml_stream_feed(xs, page + off, (size_t)(len - off < 500 ? len - off : 500));
    struct ec2_volume_page p = {0};
    struct ec2_error err;
    if (ec2xml_stream_end(xs, &p, &err) == EBSD_OK)
        ec2_volume_page_free(&p);
    ec2xml_stream_free(xs);
}

void worker_spare_warm(void)
{
    /* a lister and the volume share it carries: the two clients of a small target's worker */
    httpc_warm(2);
    /* ...and what each worker signs and parses first (worker_prepare) */
    worker_prepare();
}

/* Every page of the volumes of a group of instance ids (ids), of one share of the attached
 * volumes (share: its part of nparts) or, with neither, of the unattached ones. */
static ebsd_status worker_volumes(int fd, struct ec2_client *c, const char *const *ids, size_t n,
                                  const struct worker_task *share, int64_t deadline,
                                  const struct wire_tag_pick *pick, struct ec2_error *err)
{
    struct ec2_pager pg;
    ec2_pager_init(&pg);
    ebsd_status st = EBSD_OK;
    for (;;) {
        struct ec2_volume_page p = {0};
        if (ids)
            st = ec2_describe_volumes(c, ids, n, pg.token, deadline, &p, err);
        else if (share)
            st = ec2_describe_attached_part(c, share->part, share->nparts, pg.token, deadline,
                                            &p, err);
        else
            st = ec2_describe_unattached_volumes(c, pg.token, deadline, &p, err);
        if (st != EBSD_OK)
            break;
        st = wire_put_volumes(fd, &p, pick);
        bool more = st == EBSD_OK && ec2_pager_next(&pg, &p.next_token, err, &st);
        ec2_volume_page_free(&p);
        if (!more)
            break;
    }
    ec2_pager_free(&pg);
    return st;
}

static ebsd_status worker_list(int fd, struct ec2_client *c, const struct worker_task *t,
                               struct ec2_error *err)
{
    bool sequential = t->kind == WORKER_SEQUENTIAL;
    int64_t deadline = t->deadline;
    struct ec2_pager pg;
    ec2_pager_init(&pg);
    ebsd_status st = EBSD_OK;
    for (;;) {
        struct ec2_instance_page p = {0};
        st = ec2_describe_instances_part(c, t->part, t->nparts ? t->nparts : 1, pg.token,
                                         deadline, &p, err);
        if (st != EBSD_OK)
            break;
        st = wire_put_instances(fd, &p, &t->tags);
        if (st == EBSD_OK && t->own_volumes && p.n > 0) {
            /* this lister's share fits one page: its volumes come from here, with no
             * worker of their own to fork and no round trip through the parent */
            const char *ids[EC2_MAX_IDS];
            for (size_t i = 0; i < p.n && st == EBSD_OK; i += EC2_MAX_IDS) {
                size_t n = p.n - i < EC2_MAX_IDS ? p.n - i : EC2_MAX_IDS;
                for (size_t k = 0; k < n; k++)
                    ids[k] = p.items[i + k].id;
                st = worker_volumes(fd, c, ids, n, NULL, deadline, &t->tags, err);
            }
        }
        if (st == EBSD_OK && sequential) {
            /* the seed: one DescribeVolumes call (and its pages) per instance */
            for (size_t i = 0; i < p.n && st == EBSD_OK; i++) {
                const char *one = p.items[i].id;
                st = worker_volumes(fd, c, &one, 1, NULL, deadline, &t->tags, err);
            }
        }
        bool more = st == EBSD_OK && ec2_pager_next(&pg, &p.next_token, err, &st);
        ec2_instance_page_free(&p);
        if (!more)
            break;
    }
    ec2_pager_free(&pg);
    return st;
}

/* The EC2 budget, right before each attempt: takes (or reserves and sleeps for) a token of
 * the target's shared bucket when it comes within fanout.queue_timeout_ms and the deadline;
 * otherwise refuses, and the request is answered 503 at once. */
static ebsd_status take_budget(void *arg, int volumes, int64_t deadline_ms)
{
    const struct worker_task *t = arg;
    int64_t now = clock_now_us();
    int64_t max_wait = (int64_t)g.set.budget_wait_ms * 1000;
    if (deadline_ms && deadline_ms * 1000 - now < max_wait)
        max_wait = deadline_ms * 1000 - now;
    int64_t wait = limiter_take(t->target, LIMITER_DESCRIBE, now, max_wait < 0 ? 0 : max_wait,
                                t->background);
    if (wait < 0)
        return EBSD_ETHROTTLED;
    if (wait > 0) {
        struct timespec ts = {.tv_sec = wait / 1000000, .tv_nsec = (long)(wait % 1000000) * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    if (t->calls) {
        atomic_fetch_add(&t->calls[volumes ? 1 : 0], 1);
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss > 0)
            atomic_store(&t->calls[2], (unsigned)ru.ru_maxrss);
    }
    return EBSD_OK;
}

/* The EC2 client of task t (budget and counters t's). */
static ebsd_status client_for(const struct worker_task *t, struct ec2_client **c)
{
    struct ec2_options opt = {
        .region = t->target->region,
        .endpoint = g.set.endpoint[0] ? g.set.endpoint : NULL,
        .ca_bundle = g.set.ca_bundle[0] ? g.set.ca_bundle : NULL,
        .creds = t->creds,
        .max_attempts = (int)g.set.max_attempts,
        .instance_page_size = (int)g.set.instance_page,
        .volume_page_size = (int)g.set.volume_page,
        /* every worker, the sequential one too, takes a token of the shared budget per call */
        .budget = take_budget,
        .budget_arg = (void *)t,
        .connect_timeout_ms = (int)g.set.connect_timeout_ms,
        .read_timeout_ms = (int)g.set.read_timeout_ms,
        /* tags cost parse time and memory in every record: only a query that uses some */
        .tags = t->tags.nkeys > 0 || t->tags.all,
    };
    return ec2_client_new(&opt, c);
}

/* Adds b's counts to a (a worker's clients, the lister's and its shares', make one DONE or
 * ERROR). */
static void stats_add(struct ec2_stats *a, const struct ec2_stats *b)
{
    a->calls += b->calls;
    a->describe_instances += b->describe_instances;
    a->describe_volumes += b->describe_volumes;
    a->retries += b->retries;
    a->throttled += b->throttled;
    a->errors += b->errors;
    a->timeouts += b->timeouts;
    a->skew_retries += b->skew_retries;
    if (b->retry_quota < a->retry_quota)
        a->retry_quota = b->retry_quota;
    if (b->clock_offset_set && !a->clock_offset_set) {
        a->clock_offset_set = true;
        a->clock_offset_ms = b->clock_offset_ms;
    }
}

/* A volume share a lister carries (worker_carried_share), listed by a thread of the lister's
 * process with a client of its own: one fork, one client set-up and one exit less than a
 * worker of its own, and the share still runs beside the listing and the other shares. Every
 * thread writes to the one pipe; frame_write writes each frame whole. */
struct carried {
    int fd;
    struct worker_task task; /* the share as a task: WORKER_ATTACHED, part of nparts */
    struct ec2_client *c;
    struct ec2_error err;
    ebsd_status st;
    bool threaded; /* running in a thread of its own (else after the listing, in this one) */
    pthread_t thread;
};

static void *carried_main(void *arg)
{
    struct carried *k = arg;
    k->st = worker_volumes(k->fd, k->c, NULL, 0, &k->task, k->task.deadline, &k->task.tags,
                           &k->err);
    return NULL;
}

/* Starts the shares lister t carries, each with a client of its own, in k (*nk of them). A
 * share whose thread cannot be had runs after the listing (carried_end). EBSD_OK, or the
 * status of a client that could not be made. */
static ebsd_status carried_start(int fd, const struct worker_task *t, struct carried *k,
                                 unsigned *nk)
{
    *nk = 0;
    if (t->kind != WORKER_LIST || t->vol_nparts == 0)
        return EBSD_OK;
    /* one heap for every thread, the one worker_main grows and keeps (its thresholds are the
     * main heap's): an arena per thread is a 64 MiB reservation of its own, grown page by page
     * apart from it */
    (void)mallopt(M_ARENA_MAX, 1);
    pthread_attr_t attr;
    bool attr_ok = pthread_attr_init(&attr) == 0;
    /* a stack of 1 MiB, not 8: the same limit counts each (16 shares: 16 MiB) */
    if (attr_ok)
        (void)pthread_attr_setstacksize(&attr, PROC_THREAD_STACK);
    ebsd_status st = EBSD_OK;
    for (int s; st == EBSD_OK &&
                (s = worker_carried_share(t->part, t->nparts, t->vol_nparts, *nk)) >= 0;) {
        struct carried *x = &k[(*nk)++];
        *x = (struct carried){.fd = fd, .task = *t, .st = EBSD_OK};
        x->task.kind = WORKER_ATTACHED;
        x->task.part = (unsigned)s;
        x->task.nparts = t->vol_nparts;
        x->task.own_volumes = false;
        x->task.vol_nparts = 0;
        st = client_for(&x->task, &x->c);
        if (st == EBSD_OK && attr_ok)
            x->threaded = pthread_create(&x->thread, &attr, carried_main, x) == 0;
    }
    if (attr_ok)
        pthread_attr_destroy(&attr);
    return st;
}

/* Waits for the carried shares (running the unthreaded ones now, while *st is EBSD_OK), adds
 * their counts to *s and their first failure to *st and *err, and frees their clients. */
static void carried_end(struct carried *k, unsigned nk, ebsd_status *st, struct ec2_error *err,
                        struct ec2_stats *s)
{
    for (unsigned i = 0; i < nk; i++) {
        if (k[i].threaded)
            (void)pthread_join(k[i].thread, NULL);
        else if (*st == EBSD_OK && k[i].c) /* no thread to be had: after the listing */
            carried_main(&k[i]);
        if (*st == EBSD_OK && k[i].st != EBSD_OK) {
            *st = k[i].st;
            *err = k[i].err;
        }
        if (k[i].c)
            stats_add(s, ec2_client_stats(k[i].c));
        ec2_client_free(k[i].c);
        k[i].c = NULL;
    }
}

/* worker.h: a task's calls, its frames, then DONE or ERROR for the whole worker. */
int worker_main(int fd, const struct worker_task *t)
{
    /* A worker forked by the zygote inherits a heap of a few free chunks: its parsed pages
     * come from the heap's own growth and stay there for the next page (no trim, no mapping
     * per large array), so a listing faults its pages in once, not once a page, and unmaps
     * nothing until it exits (about 45 ms less CPU per cold 10,000-instance request than a
     * mapping per array of 64 KiB or more). */
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
    struct ec2_error err = {0};
    struct ec2_client *c = NULL;
    struct carried k[WORKER_MAX_CARRIED];
    unsigned nk = 0;
    ebsd_status st = client_for(t, &c);
    if (st == EBSD_OK)
        st = carried_start(fd, t, k, &nk);
    if (st != EBSD_OK) {
        snprintf(err.message, sizeof err.message, "cannot create the EC2 client: %s",
                 status_str(st));
        /* shares already started end with this process (_exit), which the ERROR ends too */
        return wire_put_error(fd, st, &err, NULL, 0) == EBSD_OK ? 0 : 1;
    }
    const char *ids[EC2_MAX_IDS];
    size_t n = t->nids < EC2_MAX_IDS ? t->nids : EC2_MAX_IDS;
    for (size_t i = 0; i < n; i++)
        ids[i] = t->ids[i];
    switch (t->kind) {
    case WORKER_LIST:
    case WORKER_SEQUENTIAL:
        st = worker_list(fd, c, t, &err);
        break;
    case WORKER_VOLUMES:
        st = worker_volumes(fd, c, ids, n, NULL, t->deadline, &t->tags, &err);
        break;
    case WORKER_ATTACHED:
        st = worker_volumes(fd, c, NULL, 0, t, t->deadline, &t->tags, &err);
        break;
    case WORKER_UNATTACHED: /* ids NULL: the status filter instead of attachment ids */
        st = worker_volumes(fd, c, NULL, 0, NULL, t->deadline, &t->tags, &err);
        break;
    case WORKER_INSTANCE: {
        struct ec2_instance_page p = {0};
        st = ec2_describe_instances(c, ids, n, NULL, t->deadline, &p, &err);
        if (st == EBSD_OK) {
            st = wire_put_instances(fd, &p, &t->tags);
            ec2_instance_page_free(&p);
        }
        break;
    }
    default:
        st = EBSD_EINVAL;
        break;
    }
    struct ec2_stats s = *ec2_client_stats(c);
    carried_end(k, nk, &st, &err, &s);
    /* the worker's peak so far, which is its peak: nothing big is allocated after DONE or
     * ERROR, and the parent's REPORT may be written before this worker is reaped */
    struct rusage ru;
    long rss = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
    if (st == EBSD_OK) {
        if (wire_put_done(fd, &s, rss) != EBSD_OK)
            st = EBSD_EIO;
    } else if (wire_put_error(fd, st, &err, &s, rss) != EBSD_OK) {
        st = EBSD_EIO;
    }
    ec2_client_free(c);
    return st == EBSD_EIO ? 1 : 0;
}
