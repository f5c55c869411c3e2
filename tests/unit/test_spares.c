/* test_spares.c - spare workers (proc_spares) with real forks: the zygote forks them ahead,
 * each runs the warm-up once and waits; a worker's message goes to a spare (its pid the
 * answer) with the same clean slate as a freshly forked worker, then to a fork once none is
 * left; fewer spares asked for, a spare that died and a zygote that ends all leave no
 * process behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"
#include "proc.h"

/* Set by the warm-up in the spare that runs it (never in this process). */
static pid_t warmed_in;
static int warm_fd = -1;

static void warm(void)
{
    warmed_in = getpid();
    warm_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* The workers' function: "MSG warmed=W fds=LIST nice=N", then the exit status the message
 * asks for (its first byte's digit). W is 1 when this process ran the warm-up, LIST the open
 * descriptors, N the nice value. */
static int worker(int fd, const void *msg, size_t len)
{
    char fds[128] = "";
    size_t used = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        int self = dirfd(d);
        int list[64], n = 0;
        while ((e = readdir(d)) != NULL && n < 64)
            if (e->d_name[0] != '.' && atoi(e->d_name) != self)
                list[n++] = atoi(e->d_name);
        closedir(d);
        for (int i = 0; i < n; i++) /* sorted: a small insertion sort */
            for (int j = i; j > 0 && list[j - 1] > list[j]; j--) {
                int t = list[j];
                list[j] = list[j - 1];
                list[j - 1] = t;
            }
        for (int i = 0; i < n; i++)
            used += (size_t)snprintf(fds + used, sizeof fds - used, "%s%d", i ? "," : "",
                                     list[i]);
    }
    char out[256];
    int n = snprintf(out, sizeof out, "%.*s warmed=%d fds=%s nice=%d", (int)len,
                     (const char *)msg, warmed_in == getpid(), fds,
                     getpriority(PRIO_PROCESS, 0));
    if (write(fd, out, (size_t)n) != n)
        return 1;
    return ((const char *)msg)[0] - '0';
}

/* The comm of pid ("" when it is gone). */
static void comm_of(pid_t pid, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    size_t len = 0;
    char *txt = harness_read_file(path, &len);
    snprintf(out, cap, "%s", txt ? txt : "");
    out[strcspn(out, "\n")] = '\0';
    free(txt);
}

/* This process's children named ebsd-spare (alive), up to cap. */
static int spares(pid_t *out, int cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    size_t len = 0;
    char *txt = harness_read_file(path, &len);
    int n = 0;
    for (char *p = txt, *end; p && *p && n < cap; p = end) {
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        char comm[32];
        comm_of((pid_t)pid, comm, sizeof comm);
        char st[256];
        snprintf(st, sizeof st, "/proc/%ld/stat", pid);
        char *stat = harness_read_file(st, &len);
        bool zombie = stat && strstr(stat, ") Z ");
        free(stat);
        if (strcmp(comm, "ebsd-spare") == 0 && !zombie)
            out[n++] = (pid_t)pid;
    }
    free(txt);
    return n;
}

/* Waits until exactly want spares are up (2 s at most); their number. */
static int wait_spares(int want, pid_t *out, int cap)
{
    int64_t until = clock_now_ms() + 2000;
    int n;
    while ((n = spares(out, cap)) != want && clock_now_ms() < until)
        usleep(5000);
    return n;
}

/* Starts the worker of msg; its pid (0 on failure), its output in out and its exit. */
static pid_t run_worker(const char *msg, unsigned nice, char *out, size_t cap,
                        struct proc_exit *ex)
{
    struct proc_spec spec = {.msg = msg, .msg_len = strlen(msg), .name = "ebsd-worker",
                             .nice = nice};
    struct proc_child c;
    fflush(stdout);
    fflush(stderr);
    if (proc_spawn(&spec, &c) != EBSD_OK)
        return 0;
    size_t used = 0;
    int64_t until = clock_now_ms() + 5000;
    for (;;) {
        struct pollfd pf = {c.fd, POLLIN, 0};
        (void)poll(&pf, 1, 100);
        ssize_t r = read(c.fd, out + used, cap - 1 - used);
        if (r > 0)
            used += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EINTR) || clock_now_ms() > until)
            break;
    }
    out[used] = '\0';
    close(c.fd);
    CHECK_INT(proc_wait(c.pid, 5000, ex), EBSD_OK);
    return c.pid;
}

static bool has(const pid_t *v, int n, pid_t pid)
{
    for (int i = 0; i < n; i++)
        if (v[i] == pid)
            return true;
    return false;
}

/* Ends the zygote and reaps the n spares it kept (each ends when its socket closes). */
static void stop_and_reap(const pid_t *v, int n)
{
    proc_zygote_stop();
    for (int i = 0; i < n; i++) {
        struct proc_exit ex;
        CHECK_INT(proc_wait(v[i], 2000, &ex), EBSD_OK);
    }
}

static void start(void)
{
    proc_spares_warm(warm);
    CHECK_INT(proc_zygote_start(worker), EBSD_OK);
}

/* ---------------------------------------------------------------- tests */

static void test_workers_come_from_the_spares_then_from_forks(void)
{
    start();
    pid_t sp[8];
    proc_spares(3);
    CHECK_INT(wait_spares(3, sp, 8), 3);
    int base = getpriority(PRIO_PROCESS, 0);
    char want_fds[32];
    /* the spare's own descriptor (the warm-up's) stays; nothing else it inherited does */
    for (int i = 0; i < 3; i++) {
        char out[256], msg[32];
        struct proc_exit ex;
        snprintf(msg, sizeof msg, "%d spare %d", i, i);
        pid_t pid = run_worker(msg, 5, out, sizeof out, &ex);
        CHECK(has(sp, 3, pid));
        CHECK_INT(ex.kind, PROC_EXIT_CODE);
        CHECK_INT(ex.code, i);
        char want[200];
        snprintf(want_fds, sizeof want_fds, "0,1,2,%d,4", PROC_CHILD_FD);
        snprintf(want, sizeof want, "%s warmed=1 fds=%s nice=%d", msg, want_fds,
                 base + 5 > 19 ? 19 : base + 5);
        CHECK_STR(out, want);
    }
    /* none left: forked now, with no warm-up and the same slate */
    char out[256];
    struct proc_exit ex;
    pid_t pid = run_worker("0 forked", 0, out, sizeof out, &ex);
    CHECK(pid > 0 && !has(sp, 3, pid));
    char want[200];
    snprintf(want, sizeof want, "0 forked warmed=0 fds=0,1,2,%d nice=%d", PROC_CHILD_FD, base);
    CHECK_STR(out, want);
    CHECK_INT(spares(sp, 8), 0);
    proc_zygote_stop();
}

static void test_fewer_spares_let_the_rest_go(void)
{
    start();
    pid_t sp[8];
    proc_spares(4);
    CHECK_INT(wait_spares(4, sp, 8), 4);
    proc_spares(1);
    pid_t left[8];
    CHECK_INT(wait_spares(1, left, 8), 1);
    int gone = 0;
    for (int i = 0; i < 4; i++) {
        if (sp[i] == left[0])
            continue;
        struct proc_exit ex;
        if (proc_wait(sp[i], 2000, &ex) == EBSD_OK && ex.kind == PROC_EXIT_CODE && ex.code == 0)
            gone++;
    }
    CHECK_INT(gone, 3);
    /* asked again for more than are up: only the missing ones are forked */
    proc_spares(2);
    pid_t now[8];
    CHECK_INT(wait_spares(2, now, 8), 2);
    CHECK(has(now, 2, left[0]));
    stop_and_reap(now, 2);
}

static void test_a_dead_spare_is_passed_over(void)
{
    start();
    pid_t sp[8];
    proc_spares(2);
    CHECK_INT(wait_spares(2, sp, 8), 2);
    /* both die before any worker is asked for */
    proc_kill(sp[0]);
    proc_kill(sp[1]);
    struct proc_exit ex;
    CHECK_INT(proc_wait(sp[0], 2000, &ex), EBSD_OK);
    CHECK_INT(proc_wait(sp[1], 2000, &ex), EBSD_OK);
    char out[256];
    pid_t pid = run_worker("7 after", 0, out, sizeof out, &ex);
    CHECK(pid > 0 && !has(sp, 2, pid));
    CHECK_INT(ex.code, 7);
    CHECK(strncmp(out, "7 after warmed=0 ", 17) == 0);
    /* one of two killed: the zygote lets it go at the next request for spares, and forks one
     * in its place (it is not counted as ready) */
    proc_spares(2);
    CHECK_INT(wait_spares(2, sp, 8), 2);
    proc_kill(sp[1]);
    CHECK_INT(proc_wait(sp[1], 2000, &ex), EBSD_OK);
    proc_spares(2);
    pid_t now[8];
    CHECK_INT(wait_spares(2, now, 8), 2);
    CHECK(has(now, 2, sp[0]) && !has(now, 2, sp[1]));
    stop_and_reap(now, 2);
}

static void test_spares_end_with_the_zygote(void)
{
    start();
    pid_t sp[8];
    proc_spares(3);
    CHECK_INT(wait_spares(3, sp, 8), 3);
    proc_zygote_stop();
    for (int i = 0; i < 3; i++) {
        struct proc_exit ex;
        CHECK_INT(proc_wait(sp[i], 2000, &ex), EBSD_OK);
        CHECK_INT(ex.kind, PROC_EXIT_CODE);
    }
    /* no zygote: asking for spares does nothing, and workers are forked here */
    proc_spares(3);
    usleep(50000);
    CHECK_INT(spares(sp, 8), 0);
    char out[256];
    struct proc_exit ex;
    CHECK(run_worker("0 here", 0, out, sizeof out, &ex) > 0);
    CHECK(strncmp(out, "0 here warmed=0 ", 16) == 0);
}

/* None asked for: none forked; more than the bound: the bound. (A spare dies with the parent
 * through the same PR_SET_PDEATHSIG as every worker: test_proc.c's test_dies_with_parent.) */
static void test_zero_spares(void)
{
    start();
    pid_t sp[8];
    proc_spares(0);
    usleep(50000);
    CHECK_INT(spares(sp, 8), 0);
    proc_spares(70); /* past the bound: 64 at most */
    pid_t many[80];
    CHECK_INT(wait_spares(64, many, 80), 64);
    stop_and_reap(many, 64);
}

TEST_MAIN(T(test_workers_come_from_the_spares_then_from_forks),
          T(test_fewer_spares_let_the_rest_go), T(test_a_dead_spare_is_passed_over),
          T(test_spares_end_with_the_zygote), T(test_zero_spares))
