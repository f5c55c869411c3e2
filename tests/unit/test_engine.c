/* test_engine.c - the scheduler on a real loop with real forked workers against ec2sim
 * (started here): a job's records match the simulator's truth; a job past its deadline is
 * killed and answered EBSD_ETIMEDOUT; engine_extend moves the deadline (and an earlier one is
 * ignored); with one child slot a queued job starts when the slot frees, and one that cannot
 * start within queue_timeout_ms is EBSD_EBUSY; a cancelled job is never called back and its
 * worker is killed; a worker killed from outside or crashing fails its job at once
 * (EBSD_ECHILD), not at the deadline; an EC2 error is the job's outcome; the gate refuses a
 * target without credentials from the loop; the EC2 budget refuses a job it cannot serve by
 * its deadline (EBSD_ETHROTTLED, Retry-After) and lets a patient one wait for its token; a
 * service task's frames arrive in order and its end is reported once, also after garbage
 * on its pipe or a crash. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "config.h"
#include "engine.h"
#include "frame.h"
#include "harness.h"
#include "loop.h"
#include "mem.h"
#include "worker.h"

static struct loop *L;
static struct harness_sim sim;
static struct config cfg;
static int sig_fd = -1;
static bool gate_open = true;
static cJSON *truth;

/* ---------------------------------------------------------------- fixture */

static const struct creds *test_creds(const struct target *t)
{
    (void)t;
    static struct creds c = {
        .access_key_id = "AKIDEXAMPLE",
        .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        .source = "test",
    };
    return &c;
}

static bool test_gate(const struct target *t)
{
    (void)t;
    return gate_open;
}

/* The simulator's latency and faults for the next test ("{}": none). */
static void sim_faults(const char *json)
{
    CHECK(harness_sim_faults(&sim, json));
}

/* Starts the engine afresh with cfg as the test set it. */
static void engine_setup(void)
{
    engine_shutdown();
    gate_open = true;
    worker_configure(&cfg, test_creds);
    engine_init(L, &cfg, test_gate);
}

/* What a done callback saw; the record arrays are summarised, as they live only in the
 * callback. */
struct seen {
    int calls;
    ebsd_status status;
    bool from_ec2;
    char ec2_code[64];
    long ec2_http;
    char message[512];
    size_t ninst, nvols, distinct_vols;
    unsigned children, ec2_calls, retry_after_s;
    int64_t at_ms;
    bool stop_loop;
};

static int outstanding; /* done callbacks still expected before the loop stops */

static void on_done(void *arg, struct engine_outcome *o)
{
    struct seen *s = arg;
    s->calls++;
    s->status = o->status;
    s->from_ec2 = o->from_ec2;
    snprintf(s->ec2_code, sizeof s->ec2_code, "%s", o->ec2_code);
    s->ec2_http = o->ec2_http;
    snprintf(s->message, sizeof s->message, "%s", o->message);
    s->ninst = o->ninst;
    s->nvols = o->nvols;
    s->distinct_vols = 0;
    for (size_t i = 0; i < o->nvols; i++) {
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = strcmp(o->vols[i].id, o->vols[j].id) == 0;
        s->distinct_vols += !dup;
    }
    s->children = o->children;
    s->ec2_calls = o->ec2_calls;
    s->retry_after_s = o->retry_after_s;
    s->at_ms = clock_now_ms();
    if (--outstanding <= 0)
        loop_stop(L);
}

static bool guard_fired;

static void on_guard(struct loop *l, void *arg)
{
    (void)arg;
    guard_fired = true;
    loop_stop(l);
}

/* Runs the loop until `expect` done callbacks have come or max_ms passed. */
static void run_for(int expect, int64_t max_ms)
{
    outstanding = expect;
    guard_fired = false;
    struct loop_timer *g = loop_timer_start(L, clock_now_ms() + max_ms, on_guard, NULL);
    CHECK_INT(loop_run(L), EBSD_OK);
    if (!guard_fired)
        loop_timer_stop(L, g);
}

/* Lets the loop run for ms (reaping, late callbacks). */
static void settle(int64_t ms)
{
    run_for(1 << 30, ms);
}

static struct engine_query query(enum engine_kind kind)
{
    struct engine_query q = {.kind = kind, .memory_mb = 256};
    q.target = target_make(NULL, "us-east-1");
    return q;
}

static double truth_num(const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(truth, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Runs one total job to its end: its outcome, whose status and instances were checked. */
static struct seen total_job(void)
{
    struct seen s = {0};
    struct engine_query q = query(ENGINE_TOTAL);
    engine_start(&q, clock_now_ms() + 5000, on_done, &s);
    run_for(1, 8000);
    CHECK_INT(s.status, EBSD_OK);
    CHECK_INT(s.ninst, (long long)truth_num("instance_count"));
    return s;
}

/* A spare worker waiting for its message (proc_spares): not a worker of any job yet. */
static bool is_spare(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    size_t len = 0;
    char *comm = harness_read_file(path, &len);
    bool spare = comm && strncmp(comm, "ebsd-spare", 10) == 0;
    free(comm);
    return spare;
}

/* This process's children other than the simulator, the zygote and the spares: the
 * engine's workers. */
static size_t worker_pids(pid_t *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    size_t len = 0, n = 0;
    char *txt = harness_read_file(path, &len);
    if (!txt)
        return 0;
    char *p = txt;
    while (*p && n < cap) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid != sim.pid && pid != proc_zygote_pid() && !is_spare((pid_t)pid))
            out[n++] = (pid_t)pid;
        p = end;
    }
    free(txt);
    return n;
}

/* ---------------------------------------------------------------- tests */

static void test_total_matches_truth(void)
{
    engine_setup();
    sim_faults("{}");
    unsigned long long jobs0 = engine_stats()->jobs, forked0 = engine_stats()->forked;
    struct seen s = {0};
    struct engine_query q = query(ENGINE_TOTAL);
    engine_start(&q, clock_now_ms() + 5000, on_done, &s);
    CHECK_INT(s.calls, 0); /* never from inside engine_start */
    run_for(1, 8000);
    CHECK_INT(s.calls, 1);
    CHECK_INT(s.status, EBSD_OK);
    CHECK_INT(s.ninst, (long long)truth_num("instance_count"));
    CHECK_INT(s.distinct_vols, (long long)truth_num("volume_count"));
    CHECK(s.children >= 2);  /* a lister and at least one volumes worker */
    CHECK(s.ec2_calls >= 2); /* DescribeInstances and DescribeVolumes */
    CHECK_INT(engine_stats()->jobs, jobs0 + 1);
    CHECK_INT(engine_stats()->forked, forked0 + s.children);
    settle(200);
    CHECK_INT(engine_stats()->running, 0); /* every worker reaped */
    CHECK_INT(engine_stats()->queued, 0);
}

static void set_volume_shares(const char *v)
{
    free(cfg.fanout_volume_shares);
    cfg.fanout_volume_shares = xstrdup(v);
}

/* The attached volumes listed in shares beside the listers, once the target's size is known:
 * every instance and every volume, each volume once, from a lister and the shares. */
static void test_volume_shares_match_truth(void)
{
    static const struct {
        const char *setting;
        unsigned shares; /* on the second listing; the first has no size yet under auto */
    } cases[] = {{"auto", 1}, {"4", 4}, {"3", 3}, {"20", 20}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_volume_shares(cases[i].setting);
        engine_setup();
        sim_faults("{}");
        for (int round = 0; round < 2; round++) {
            struct seen s = total_job();
            CHECK_INT(s.nvols, (long long)truth_num("volume_count")); /* each once */
            CHECK_INT(s.distinct_vols, (long long)truth_num("volume_count"));
            if (round == 1) {
                /* 40 instances: one lister, which carries up to 16 shares in threads of its
                 * worker; the shares past them are workers of their own (engine.c) */
                unsigned own = cases[i].shares > WORKER_MAX_CARRIED
                                   ? cases[i].shares - WORKER_MAX_CARRIED : 0;
                CHECK_INT(s.children, 1 + own);
                CHECK_INT(s.ec2_calls, 1 + cases[i].shares);
            }
        }
    }
    set_volume_shares("off");
    engine_setup();
    settle(200);
    CHECK_INT(engine_stats()->running, 0);
}

/* An ENGINE_INSTANCE query for the fleet's first instance. */
static struct engine_query first_instance_query(void)
{
    char *fleet = harness_sim_call(&sim, "GET", "/_sim/fleet", NULL, NULL);
    cJSON *f = cJSON_Parse(fleet ? fleet : "");
    free(fleet);
    const cJSON *insts = cJSON_GetObjectItemCaseSensitive(f, "instances");
    const cJSON *first = cJSON_GetArrayItem(insts, 0);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(first, "instance_id");
    if (!cJSON_IsString(id))
        id = cJSON_GetObjectItemCaseSensitive(first, "id");
    CHECK(cJSON_IsString(id));
    struct engine_query q = query(ENGINE_INSTANCE);
    snprintf(q.instance_id, sizeof q.instance_id, "%s", cJSON_IsString(id) ? id->valuestring : "");
    cJSON_Delete(f);
    return q;
}

static void test_instance_job(void)
{
    engine_setup();
    sim_faults("{}");
    /* an instance of the fleet, and one that does not exist */
    struct seen found = {0}, missing = {0};
    struct engine_query q = first_instance_query();
    engine_start(&q, clock_now_ms() + 5000, on_done, &found);
    struct engine_query q2 = query(ENGINE_INSTANCE);
    snprintf(q2.instance_id, sizeof q2.instance_id, "i-00000000deadbeef0");
    engine_start(&q2, clock_now_ms() + 5000, on_done, &missing);
    run_for(2, 8000);
    CHECK_INT(found.status, EBSD_OK);
    CHECK_INT(found.ninst, 1);
    CHECK_INT(found.children, 2); /* DescribeInstances and DescribeVolumes side by side */
    /* EC2's own answer for an id it does not know; answer.c makes it the 404 */
    CHECK_INT(missing.status, EBSD_EUPSTREAM);
    CHECK(missing.from_ec2);
    CHECK_STR(missing.ec2_code, "InvalidInstanceID.NotFound");
    CHECK_INT(missing.ec2_http, 400);
    settle(100);
}

/* Runs the loop until job's workers have begun an EC2 call (their shared counter), at most
 * 2 s: a worker stopped or killed after that is one caught inside its call. */
static void wait_first_call(const struct engine_job *job)
{
    for (int i = 0; i < 200; i++) {
        unsigned children, calls;
        long rss;
        engine_job_counts(job, &children, &calls, &rss);
        if (calls >= 1)
            return;
        settle(10);
    }
    CHECK(!"the worker made no EC2 call within 2 s");
}

/* Stops the job's workers (SIGSTOP): a worker hung past its own deadline, which only the
 * engine's kill ends. */
static void stop_workers(void)
{
    pid_t pids[8];
    size_t n = worker_pids(pids, 8);
    CHECK(n >= 1);
    for (size_t i = 0; i < n; i++)
        kill(pids[i], SIGSTOP);
}

static void test_deadline_kills(void)
{
    engine_setup();
    sim_faults("{\"latency\": {\"DescribeInstances\": 3000}}");
    unsigned long long killed0 = engine_stats()->killed_deadline;
    struct seen s = {0};
    struct engine_query q = query(ENGINE_TOTAL);
    int64_t t0 = clock_now_ms();
    struct engine_job *job = engine_start(&q, t0 + 300, on_done, &s);
    wait_first_call(job);
    stop_workers();
    run_for(1, 5000);
    CHECK_INT(s.calls, 1);
    CHECK_INT(s.status, EBSD_ETIMEDOUT);
    CHECK(!s.from_ec2);
    CHECK_STR(s.message, "EC2 calls did not finish by the deadline");
    CHECK(s.at_ms - t0 >= 300);
    CHECK(s.at_ms - t0 < 1000); /* at the deadline, not when EC2 would have answered */
    CHECK_INT(engine_stats()->killed_deadline, killed0 + 1);
    CHECK_INT(s.ec2_calls, 1); /* the killed lister's call was counted */
    settle(200);
    CHECK_INT(engine_stats()->running, 0);
    pid_t pids[8];
    CHECK_INT(worker_pids(pids, 8), 0); /* killed and reaped: no zombie left */
}

static void test_extend(void)
{
    engine_setup();
    sim_faults("{\"latency\": {\"DescribeInstances\": 400}}");
    /* extended before its workers are forked: they get the later deadline, and the job is
     * not killed at the first one */
    struct seen ext = {0}, plain = {0}, earlier = {0};
    struct engine_query q = query(ENGINE_TOTAL);
    int64_t t0 = clock_now_ms();
    struct engine_job *a = engine_start(&q, t0 + 200, on_done, &ext);
    engine_extend(a, t0 + 5000);
    engine_start(&q, t0 + 200, on_done, &plain);
    /* an earlier deadline is ignored */
    struct engine_job *c = engine_start(&q, t0 + 5000, on_done, &earlier);
    engine_extend(c, t0 + 50);
    run_for(3, 8000);
    CHECK_INT(ext.status, EBSD_OK);
    CHECK(ext.at_ms - t0 >= 400);
    CHECK_INT(plain.status, EBSD_ETIMEDOUT);
    CHECK_INT(earlier.status, EBSD_OK);
    settle(200);
}

/* The deadline comes while one of the job's workers has sent its answer and closed its pipe
 * but its exit is not reaped yet (SIGCHLD not read: the watch is off here). The engine must
 * leave that reap to SIGCHLD: reaped at the kill, the worker stayed counted as running for
 * good (a slot lost per such race, until every request got 503 Busy). */
static void test_deadline_leaves_a_finished_worker_to_sigchld(void)
{
    engine_setup();
    sim_faults("{\"latency\": {\"DescribeVolumes\": 3000}}");
    struct seen s = {0};
    struct engine_query q = first_instance_query();
    loop_del_fd(L, sig_fd);
    int64_t t0 = clock_now_ms();
    engine_start(&q, t0 + 600, on_done, &s); /* DescribeInstances answers, DescribeVolumes hangs */
    run_for(1, 5000);
    CHECK_INT(s.status, EBSD_ETIMEDOUT);
    CHECK_INT(loop_add_fd(L, sig_fd, EPOLLIN, harness_on_sigchld, NULL), EBSD_OK);
    settle(300);
    CHECK_INT(engine_stats()->running, 0);
    pid_t pids[8];
    CHECK_INT(worker_pids(pids, 8), 0);
}

static void test_extend_running(void)
{
    engine_setup();
    sim_faults("{\"latency\": {\"DescribeInstances\": 3000}}");
    /* extended while its (hung) lister runs: the kill moves from +300 to +800 */
    struct seen s = {0};
    struct engine_query q = query(ENGINE_TOTAL);
    int64_t t0 = clock_now_ms();
    struct engine_job *job = engine_start(&q, t0 + 300, on_done, &s);
    wait_first_call(job);
    stop_workers();
    engine_extend(job, t0 + 800);
    engine_extend(job, t0 + 400); /* earlier than the current one: ignored */
    run_for(1, 5000);
    CHECK_INT(s.status, EBSD_ETIMEDOUT);
    CHECK(s.at_ms - t0 >= 800);
    CHECK(s.at_ms - t0 < 1500);
    settle(100);
}

struct probe {
    unsigned max_running, max_queued;
};


static struct probe probe_state;
static struct loop_timer *probe_timer;

static void on_probe(struct loop *l, void *arg)
{
    (void)arg;
    const struct engine_stats *st = engine_stats();
    if (st->running > probe_state.max_running)
        probe_state.max_running = st->running;
    if (st->queued > probe_state.max_queued)
        probe_state.max_queued = st->queued;
    probe_timer = loop_timer_start(l, clock_now_ms() + 10, on_probe, NULL);
}

static struct seen *later_seen;
static struct engine_query later_q;
static int64_t later_deadline_ms;

static void start_later(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
    engine_start(&later_q, clock_now_ms() + later_deadline_ms, on_done, later_seen);
}

static void test_queue_waits_for_slot(void)
{
    cfg.max_children = 1;
    cfg.queue_timeout_ms = 3000;
    engine_setup();
    sim_faults("{\"latency\": {\"DescribeVolumes\": 300}}");
    struct seen a = {0}, b = {0};
    later_q = query(ENGINE_UNATTACHED);
    later_seen = &b;
    later_deadline_ms = 5000;
    memset(&probe_state, 0, sizeof probe_state);
    probe_timer = loop_timer_start(L, clock_now_ms(), on_probe, NULL);
    int64_t t0 = clock_now_ms();
    engine_start(&later_q, t0 + 5000, on_done, &a);
    loop_timer_start(L, t0 + 50, start_later, NULL); /* after a's worker holds the slot */
    run_for(2, 8000);
    loop_timer_stop(L, probe_timer);
    CHECK_INT(a.status, EBSD_OK);
    CHECK_INT(b.status, EBSD_OK);
    CHECK_INT(probe_state.max_running, 1); /* never more than max_children */
    CHECK(probe_state.max_queued >= 1);    /* b waited in the queue */
    CHECK(b.at_ms - a.at_ms >= 250);       /* b's DescribeVolumes began when a's slot freed */
    settle(100);

    /* a job that cannot start within queue_timeout_ms: 503's EBSD_EBUSY */
    cfg.queue_timeout_ms = 200;
    engine_setup();
    sim_faults("{\"latency\": {\"DescribeVolumes\": 800}}");
    struct seen c = {0}, d = {0};
    later_seen = &d;
    t0 = clock_now_ms();
    engine_start(&later_q, t0 + 5000, on_done, &c);
    loop_timer_start(L, t0 + 50, start_later, NULL);
    run_for(1, 3000);
    CHECK_INT(d.calls, 1);
    CHECK_INT(d.status, EBSD_EBUSY);
    CHECK(d.at_ms - t0 >= 240);
    CHECK(d.at_ms - t0 < 1000);
    CHECK_INT(c.calls, 0);
    run_for(1, 3000);
    CHECK_INT(c.status, EBSD_OK);
    cfg.max_children = 32;
    cfg.queue_timeout_ms = 2000;
    settle(100);
}

/* Two jobs started in the same loop turn with one child slot: the second cannot start
 * within queue_timeout_ms either (the first holds the slot for 1 s), so it is EBSD_EBUSY at
 * about +200 ms, as for a job started while the slot is visibly taken (above); not left
 * queued until its deadline. */
static void test_queue_timeout_same_turn(void)
{
    cfg.max_children = 1;
    cfg.queue_timeout_ms = 200;
    engine_setup();
    sim_faults("{\"latency\": {\"DescribeVolumes\": 1000}}");
    struct seen a = {0}, b = {0};
    struct engine_query q = query(ENGINE_UNATTACHED);
    int64_t t0 = clock_now_ms();
    engine_start(&q, t0 + 5000, on_done, &a);
    engine_start(&q, t0 + 1500, on_done, &b);
    run_for(1, 3000);
    CHECK_INT(b.calls, 1);
    CHECK_INT(b.status, EBSD_EBUSY);
    CHECK(b.at_ms - t0 < 1000);
    CHECK_INT(b.children, 0);
    CHECK_INT(a.calls, 0);
    run_for(1, 3000);
    CHECK_INT(a.status, EBSD_OK);
    cfg.max_children = 32;
    cfg.queue_timeout_ms = 2000;
    settle(100);
}

static void test_cancel(void)
{
    engine_setup();
    sim_faults("{\"latency\": {\"DescribeInstances\": 2000}}");
    struct seen s = {0};
    struct engine_query q = query(ENGINE_TOTAL);
    struct engine_job *job = engine_start(&q, clock_now_ms() + 5000, on_done, &s);
    settle(100);
    CHECK_INT(engine_stats()->running, 1);
    engine_cancel(job);
    settle(300);
    CHECK_INT(s.calls, 0);
    CHECK_INT(engine_stats()->running, 0); /* its worker was killed and reaped */
    pid_t pids[8];
    CHECK_INT(worker_pids(pids, 8), 0);
}

/* engine_shutdown with a worker running and a task queued: both are forgotten (the
 * counters too), so the next engine_init starts with every slot free. */
static void test_shutdown_forgets_its_workers(void)
{
    cfg.max_children = 1;
    engine_setup();
    sim_faults("{\"latency\": {\"DescribeVolumes\": 3000}}");
    struct seen a = {0}, b = {0};
    struct engine_query q = query(ENGINE_UNATTACHED);
    engine_start(&q, clock_now_ms() + 5000, on_done, &a);
    engine_start(&q, clock_now_ms() + 5000, on_done, &b);
    settle(100);
    CHECK_INT(engine_stats()->running, 1);
    CHECK_INT(engine_stats()->queued, 1);
    engine_setup(); /* engine_shutdown, then engine_init */
    CHECK_INT(engine_stats()->running, 0);
    CHECK_INT(engine_stats()->queued, 0);
    CHECK_INT(a.calls + b.calls, 0); /* nobody is answered after shutdown */
    sim_faults("{}");
    struct seen c = {0};
    engine_start(&q, clock_now_ms() + 5000, on_done, &c);
    run_for(1, 5000);
    CHECK_INT(c.status, EBSD_OK); /* the one slot was free */
    cfg.max_children = 32;
    settle(100);
}

static void kill_worker(int sig)
{
    pid_t pids[8];
    size_t n = worker_pids(pids, 8);
    CHECK_INT(n, 1);
    for (size_t i = 0; i < n; i++)
        kill(pids[i], sig);
}

static void test_worker_killed_or_crashed(void)
{
    static const int sigs[] = {SIGKILL, SIGSEGV};
    for (size_t k = 0; k < 2; k++) {
        engine_setup();
        sim_faults("{\"latency\": {\"DescribeInstances\": 3000}}");
        unsigned long long by_signal0 = engine_stats()->killed_signal[SIGKILL];
        unsigned long long crashed0 = engine_stats()->crashed;
        struct seen s = {0};
        struct engine_query q = query(ENGINE_TOTAL);
        int64_t t0 = clock_now_ms();
        struct engine_job *job = engine_start(&q, t0 + 6000, on_done, &s);
        wait_first_call(job);
        kill_worker(sigs[k]);
        run_for(1, 7000);
        CHECK_INT(s.calls, 1);
        CHECK_INT(s.status, EBSD_ECHILD);
        CHECK(s.at_ms - t0 < 2900); /* when it died, not at the deadline nor EC2's answer */
        char want[64];
        snprintf(want, sizeof want, "signal %d", sigs[k]);
        CHECK(strstr(s.message, want) != NULL);
        if (sigs[k] == SIGKILL)
            CHECK_INT(engine_stats()->killed_signal[SIGKILL], by_signal0 + 1);
        else
            CHECK_INT(engine_stats()->crashed, crashed0 + 1);
        settle(100);
        CHECK_INT(engine_stats()->running, 0);
    }
}

/* Sets *arg when the query()'s target counted an InternalError that failed after retries. */
static void count_internal_errors(void *arg, const struct engine_target_calls *c)
{
    struct engine_query q = query(ENGINE_UNATTACHED);
    if (!target_equal(&c->target, &q.target))
        return;
    for (size_t i = 0; i < c->nerrors; i++)
        if (strcmp(c->errors[i].code, "InternalError") == 0 && c->errors[i].count >= 1)
            *(bool *)arg = true;
}

static void test_ec2_error(void)
{
    cfg.max_attempts = 1;
    engine_setup();
    sim_faults("{\"p_500\": 1}");
    unsigned long long failed0 = engine_stats()->jobs_failed;
    struct seen s = {0};
    struct engine_query q = query(ENGINE_UNATTACHED);
    engine_start(&q, clock_now_ms() + 5000, on_done, &s);
    run_for(1, 6000);
    CHECK_INT(s.status, EBSD_EUPSTREAM);
    CHECK(s.from_ec2);
    CHECK_STR(s.ec2_code, "InternalError");
    CHECK_INT(s.ec2_http, 500);
    CHECK_INT(engine_stats()->jobs_failed, failed0 + 1);
    bool counted = false;
    engine_foreach_target(count_internal_errors, &counted);
    CHECK(counted);
    cfg.max_attempts = 3;
    settle(100);
}

static void test_gate_closed(void)
{
    engine_setup();
    sim_faults("{}");
    gate_open = false;
    unsigned long long forked0 = engine_stats()->forked;
    struct seen s = {0};
    struct engine_query q = query(ENGINE_TOTAL);
    engine_start(&q, clock_now_ms() + 5000, on_done, &s);
    CHECK_INT(s.calls, 0); /* answered from the loop */
    run_for(1, 2000);
    CHECK_INT(s.calls, 1);
    CHECK_INT(s.status, EBSD_EAUTH);
    CHECK_INT(s.children, 0);
    CHECK_INT(engine_stats()->forked, forked0); /* no worker for a target without creds */
    gate_open = true;
}

static struct seen *budget_seen[2];
static int64_t budget_started;

static void start_budget_jobs(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
    struct engine_query q = query(ENGINE_UNATTACHED);
    budget_started = clock_now_ms();
    /* cannot get a token by its deadline (the next comes 1 s after the first job's):
     * refused at once */
    engine_start(&q, clock_now_ms() + 500, on_done, budget_seen[0]);
    /* can wait for it (queue_timeout_ms 2000, deadline 3 s) */
    engine_start(&q, clock_now_ms() + 3000, on_done, budget_seen[1]);
}

static void test_budget(void)
{
    cfg.rate_limit = 1;
    cfg.rate_burst = 1;
    cfg.queue_timeout_ms = 2000;
    engine_setup();
    sim_faults("{}");
    struct seen first = {0}, refused = {0}, waited = {0};
    budget_seen[0] = &refused;
    budget_seen[1] = &waited;
    struct engine_query q = query(ENGINE_UNATTACHED); /* one DescribeVolumes call */
    int64_t t0 = clock_now_ms();
    engine_start(&q, t0 + 3000, on_done, &first);
    loop_timer_start(L, t0 + 300, start_budget_jobs, NULL);
    run_for(3, 6000);
    CHECK_INT(first.status, EBSD_OK);
    CHECK_INT(first.ec2_calls, 1);
    CHECK_INT(refused.status, EBSD_ETHROTTLED);
    CHECK(!refused.from_ec2);
    CHECK_INT(refused.retry_after_s, 1);
    CHECK_INT(refused.children, 0);
    CHECK(refused.at_ms - budget_started < 400); /* at once, not at its deadline (+500) */
    CHECK_INT(waited.status, EBSD_OK);
    CHECK(waited.at_ms - t0 >= 800); /* its worker waited for the next token (1/s) */
    cfg.rate_limit = 10;
    cfg.rate_burst = 50;
    settle(100);
}

/* A service task (the credentials refresh's kind): its frames reach on_frame in order,
 * on_end comes once, after them, when the worker has exited and been reaped; garbage on its
 * pipe or a crash end it the same way, never hang it. */
struct svc_seen {
    int frames, ends, frames_at_end;
    char first[16];
};
static struct svc_seen svc_seen[3];

static void svc_frame(void *arg, int type, const char *data, size_t len)
{
    struct svc_seen *s = arg;
    if (s->frames++ == 0 && type == WIRE_CREDS)
        snprintf(s->first, sizeof s->first, "%.*s", (int)len, data);
}

static void svc_end(void *arg)
{
    struct svc_seen *s = arg;
    s->ends++;
    s->frames_at_end = s->frames;
    if (svc_seen[0].ends && svc_seen[1].ends && svc_seen[2].ends)
        loop_stop(L);
}

static int svc_ok(int fd, void *arg)
{
    (void)arg;
    return frame_write(fd, WIRE_CREDS, "first", 5) == EBSD_OK &&
                   frame_write(fd, WIRE_DONE, "", 0) == EBSD_OK
               ? 0
               : 1;
}

static int svc_garbage(int fd, void *arg)
{
    (void)arg;
    static const char junk[] = "\x07\xff\xff\xff\xff garbage"; /* a length over any cap */
    if (write(fd, junk, sizeof junk) < 0)
        return 1;
    pause(); /* the parent kills it */
    return 0;
}

static int svc_crash(int fd, void *arg)
{
    (void)fd;
    (void)arg;
    abort();
}

static void test_service_tasks(void)
{
    engine_setup();
    memset(svc_seen, 0, sizeof svc_seen);
    unsigned long long crashed0 = engine_stats()->crashed;
    const struct engine_service a = {svc_ok, &svc_seen[0], svc_frame, svc_end},
                                b = {svc_garbage, &svc_seen[1], svc_frame, svc_end},
                                c = {svc_crash, &svc_seen[2], svc_frame, svc_end};
    engine_run_service(&a);
    engine_run_service(&b);
    engine_run_service(&c);
    int64_t t0 = clock_now_ms();
    settle(3000); /* svc_end stops the loop once all three have ended */
    CHECK(clock_now_ms() - t0 < 2000);
    CHECK_INT(svc_seen[0].ends, 1);
    CHECK_INT(svc_seen[0].frames_at_end, 2);
    CHECK_STR(svc_seen[0].first, "first");
    CHECK_INT(svc_seen[1].ends, 1);
    CHECK_INT(svc_seen[1].frames, 0);
    CHECK_INT(svc_seen[2].ends, 1);
    CHECK_INT(svc_seen[2].frames, 0);
    CHECK_INT(engine_stats()->crashed, crashed0 + 1);
    CHECK_INT(engine_stats()->running, 0);
}

static void setup_all(void)
{
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_EC2");
    static const char *const args[] = {"--instances", "40", "--seed", "5", NULL};
    if (!harness_sim_start(&sim, args)) {
        fprintf(stderr, "cannot start ec2sim\n");
        exit(1);
    }
    char *t = harness_sim_call(&sim, "GET", "/_sim/truth", NULL, NULL);
    truth = cJSON_Parse(t ? t : "");
    free(t);
    if (!truth || truth_num("instance_count") != 40) {
        fprintf(stderr, "no truth from ec2sim\n");
        exit(1);
    }
    config_defaults(&cfg);
    free(cfg.ec2_endpoint);
    cfg.ec2_endpoint = xstrdup(sim.url);
    cfg.max_children = 32;
    /* the volumes by instance ids: these tests count workers of that plan (the shares have
     * theirs, test_volume_shares_match_truth) */
    set_volume_shares("off");
    if (loop_new(&L) != EBSD_OK)
        exit(1);
    sig_fd = harness_sigchld_watch(L);
    if (sig_fd < 0)
        exit(1);
    worker_configure(&cfg, test_creds);
    engine_init(L, &cfg, test_gate);
    worker_prepare();
}

static void teardown_all(void)
{
    engine_shutdown();
    loop_del_fd(L, sig_fd);
    close(sig_fd);
    loop_free(L);
    harness_sim_stop(&sim);
    cJSON_Delete(truth);
    config_free(&cfg);
}

/* A field of /proc/PID/status in KiB (VmSize, VmRSS), or -1. */
static long status_field_kb(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    size_t len = 0;
    char *txt = harness_read_file(path, &len);
    if (!txt)
        return -1;
    const char *p = strstr(txt, field);
    long kb = p ? strtol(p + strlen(field), NULL, 10) : -1;
    free(txt);
    return kb;
}

/* A job's workers are forked by the zygote, not by this process: they are this process's
 * children all the same (reaped here, PPid ours), yet none of them holds memory this
 * process took after the zygote started; the job's answer is the truth. */
static void test_workers_come_from_the_zygote(void)
{
    engine_setup();
    pid_t zy = proc_zygote_pid();
    CHECK(zy > 0);
    CHECK_INT(status_field_kb(zy, "PPid:"), getpid());
    /* 96 MiB taken and touched after the zygote's start: a worker forked from here would
     * have all of it in its address space */
    size_t big = (size_t)96 << 20;
    char *mem = xmalloc(big);
    memset(mem, 1, big);
    sim_faults("{\"latency\": {\"DescribeInstances\": 600}}");
    struct seen s = {0};
    struct engine_query q = query(ENGINE_TOTAL);
    engine_start(&q, clock_now_ms() + 8000, on_done, &s);
    settle(300);
    pid_t pids[8];
    size_t n = worker_pids(pids, 8);
    CHECK(n >= 1);
    long mine = status_field_kb(getpid(), "VmSize:");
    for (size_t i = 0; i < n; i++) {
        long vm = status_field_kb(pids[i], "VmSize:");
        CHECK(vm > 0 && vm < mine - (64 << 10));
        CHECK_INT(status_field_kb(pids[i], "PPid:"), getpid());
    }
    run_for(1, 8000);
    CHECK_INT(s.status, EBSD_OK);
    CHECK_INT(s.ninst, (long long)truth_num("instance_count"));
    CHECK_INT(s.distinct_vols, (long long)truth_num("volume_count"));
    free(mem);
    settle(200);
    CHECK_INT(engine_stats()->running, 0); /* every worker reaped here */
    CHECK_INT(proc_zygote_pid(), zy);
}

/* A fresh engine whose zygote was just sent sig; its pid. */
static pid_t zygote_signalled(int sig)
{
    engine_setup();
    sim_faults("{}");
    pid_t zy = proc_zygote_pid();
    CHECK(zy > 0);
    CHECK(kill(zy, sig) == 0);
    return zy;
}

/* A zygote that dies is reaped like any child; jobs go on (their workers forked from here
 * meanwhile), and a new zygote is started a second later. */
static void test_zygote_restarts(void)
{
    pid_t zy = zygote_signalled(SIGKILL);
    settle(100);
    CHECK_INT(proc_zygote_pid(), 0);
    for (int round = 0; round < 2; round++) {
        (void)total_job();
        if (round == 0)
            settle(1100); /* the restart waits a second */
    }
    CHECK(proc_zygote_pid() > 0 && proc_zygote_pid() != zy);
    settle(200);
    CHECK_INT(engine_stats()->running, 0);
}

/* A zygote that stops answering (here: stopped) is given a second, then ended; the workers
 * of the batch it was sent are forked here, those it may have received on fresh pipes, and
 * every job answers the truth. Twelve jobs at once: more messages than its socket queues (10),
 * so some of the batch were never sent. */
static void test_zygote_that_hangs_is_replaced(void)
{
    double rate = cfg.rate_limit;
    cfg.rate_limit = 0; /* every job's workers in the first pass */
    pid_t zy = zygote_signalled(SIGSTOP);
    int64_t t0 = clock_now_ms();
    enum { JOBS = 12 };
    struct seen s[JOBS];
    memset(s, 0, sizeof s);
    for (int i = 0; i < JOBS; i++) {
        struct engine_query q = query(ENGINE_TOTAL);
        engine_start(&q, t0 + 8000, on_done, &s[i]);
    }
    run_for(JOBS, 8000);
    CHECK(clock_now_ms() - t0 >= 1000); /* the one second it was given */
    for (int i = 0; i < JOBS; i++) {
        CHECK_INT(s[i].status, EBSD_OK);
        CHECK_INT(s[i].ninst, (long long)truth_num("instance_count"));
        CHECK_INT(s[i].distinct_vols, (long long)truth_num("volume_count"));
    }
    CHECK(proc_zygote_pid() != zy);
    CHECK(kill(zy, 0) != 0); /* killed and reaped */
    settle(200);
    CHECK_INT(engine_stats()->running, 0);
    cfg.rate_limit = rate;
}

/* Twenty jobs started in one loop turn: their workers are sent to the zygote in batches
 * (proc_spawn_many), more messages than a socket queue holds (10 datagrams each way), so
 * answers are read while messages are still sent; no batch ever waits for the one-second
 * failure bound (the zygote is never given up on), every job answers the truth, and every
 * worker is reaped. */
static void test_many_workers_start_in_one_pass(void)
{
    double rate = cfg.rate_limit;
    cfg.rate_limit = 0; /* no budget wait: every worker is started in the same pass */
    engine_setup();
    sim_faults("{}");
    (void)total_job(); /* the size: each job is then one lister, carrying its shares */
    pid_t zy = proc_zygote_pid();
    uint64_t forked0 = engine_stats()->forked;
    enum { JOBS = 20 };
    struct seen s[JOBS];
    memset(s, 0, sizeof s);
    int64_t t0 = clock_now_ms();
    for (int i = 0; i < JOBS; i++) {
        struct engine_query q = query(ENGINE_TOTAL);
        engine_start(&q, t0 + 8000, on_done, &s[i]);
    }
    run_for(JOBS, 8000);
    for (int i = 0; i < JOBS; i++) {
        CHECK_INT(s[i].calls, 1);
        CHECK_INT(s[i].status, EBSD_OK);
        CHECK_INT(s[i].ninst, (long long)truth_num("instance_count"));
        CHECK_INT(s[i].distinct_vols, (long long)truth_num("volume_count"));
    }
    CHECK_INT(engine_stats()->forked - forked0, JOBS);
    CHECK_INT(proc_zygote_pid(), zy);
    settle(200);
    CHECK_INT(engine_stats()->running, 0);
    cfg.rate_limit = rate;
}

static void test_setup(void)
{
    setup_all();
}

static void test_teardown(void)
{
    teardown_all();
}

TEST_MAIN(T(test_setup), T(test_total_matches_truth), T(test_workers_come_from_the_zygote),
          T(test_zygote_restarts), T(test_zygote_that_hangs_is_replaced),
          T(test_many_workers_start_in_one_pass), T(test_volume_shares_match_truth),
          T(test_instance_job),
          T(test_deadline_kills), T(test_extend), T(test_extend_running),
          T(test_deadline_leaves_a_finished_worker_to_sigchld),
          T(test_queue_waits_for_slot), T(test_queue_timeout_same_turn), T(test_cancel),
          T(test_shutdown_forgets_its_workers), T(test_worker_killed_or_crashed),
          T(test_ec2_error), T(test_gate_closed), T(test_service_tasks), T(test_budget), T(test_teardown))
