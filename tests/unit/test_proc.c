/* test_proc.c - proc_spawn/kill/reap with real forks: frames back over the pipe, exit
 * classification (code, crash, out of memory, killed), the child's clean slate (descriptors,
 * signals, parent-death signal) and no zombies or descriptor leaks after many cycles. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "frame.h"
#include "harness.h"
#include "mem.h"
#include "proc.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static ebsd_status spawn(proc_fn fn, void *arg, size_t mem, struct proc_child *c)
{
    struct proc_spec spec = {.fn = fn, .arg = arg, .mem_limit_bytes = mem, .name = "ebsd-test"};
    fflush(stdout);
    fflush(stderr);
    return proc_spawn(&spec, c);
}

/* Reads frames until EOF into out[] (up to max, each payload NUL-terminated in a copy);
 * returns the number read, or -1 on a reader error. Gives up after timeout_ms. */
static int collect(int fd, char **out, int max, int64_t timeout_ms, ebsd_status *err)
{
    struct frame_reader r;
    frame_reader_init(&r, 1u << 20);
    int n = 0;
    bool eof = false;
    int64_t until = clock_now_ms() + timeout_ms;
    *err = EBSD_OK;
    while (!eof && clock_now_ms() < until) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) < 0 && errno != EINTR)
            break;
        ebsd_status st = frame_reader_feed(&r, fd, &eof);
        uint8_t type;
        const char *data;
        size_t len;
        while (st == EBSD_OK && (st = frame_reader_next(&r, &type, &data, &len)) == EBSD_OK) {
            if (n < max && out)
                out[n] = xstrndup(data, len);
            n++;
        }
        if (st != EBSD_OK && st != EBSD_ENOTFOUND) {
            *err = st;
            break;
        }
    }
    frame_reader_free(&r);
    return n;
}

static void free_all(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
}

/* ---------------------------------------------------------------- children */

static int child_frames(int fd, void *arg)
{
    int n = *(int *)arg;
    char big[200000];
    for (int i = 0; i < n; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "frame %d", i);
        if (frame_write(fd, 1, msg, (size_t)len) != EBSD_OK)
            return 1;
    }
    memset(big, 'b', sizeof big); /* bigger than a pipe buffer */
    if (frame_write(fd, 2, big, sizeof big) != EBSD_OK)
        return 1;
    return 0;
}

static int child_code(int fd, void *arg) { return *(int *)arg; }

static int child_segv(int fd, void *arg)
{
    raise(SIGSEGV);
    return 0;
}

static int child_abort(int fd, void *arg)
{
    abort();
}

/* Allocates and touches `*arg` MiB in 1 MiB steps through xmalloc. */
static int child_alloc(int fd, void *arg)
{
    size_t mib = *(size_t *)arg;
    for (size_t i = 0; i < mib; i++) {
        char *p = xmalloc(1u << 20);
        memset(p, (int)i, 1u << 20);
    }
    return 0;
}

static int child_sleep(int fd, void *arg)
{
    if (frame_write(fd, 1, "up", 2) != EBSD_OK)
        return 1;
    for (;;)
        pause();
}

static int child_garbage(int fd, void *arg)
{
    const unsigned char bad[] = {1, 0x7f, 0xff, 0xff, 0xff, 'x', 'y'};
    return write(fd, bad, sizeof bad) == (ssize_t)sizeof bad ? 0 : 1;
}

/* Reports its open descriptors as "0,1,2,3". */
static int child_fds_report(int fd, void *arg)
{
    char list[256] = "";
    size_t used = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 1;
    int self = dirfd(d);
    int fds[64], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64) {
        if (e->d_name[0] == '.')
            continue;
        int v = (int)strtol(e->d_name, NULL, 10);
        if (v != self)
            fds[n++] = v;
    }
    closedir(d);
    for (int i = 0; i < n; i++) /* readdir order is not sorted everywhere: sort */
        for (int j = i + 1; j < n; j++)
            if (fds[j] < fds[i]) {
                int t = fds[i];
                fds[i] = fds[j];
                fds[j] = t;
            }
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", i ? "," : "", fds[i]);
    return frame_write(fd, 1, list, used) == EBSD_OK ? 0 : 1;
}

/* Reports "mask=<blocked count> usr1=<dfl?> pipe=<dfl?> term=<dfl?> pdeath=<sig>". */
static int child_signals_report(int fd, void *arg)
{
    sigset_t cur;
    sigprocmask(SIG_SETMASK, NULL, &cur);
    int blocked = 0;
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&cur, s) == 1)
            blocked++;
    struct sigaction usr1, pipe_, term;
    sigaction(SIGUSR1, NULL, &usr1);
    sigaction(SIGPIPE, NULL, &pipe_);
    sigaction(SIGTERM, NULL, &term);
    int pdeath = 0;
    prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0);
    struct rlimit core;
    getrlimit(RLIMIT_CORE, &core);
    char msg[128];
    int len = snprintf(msg, sizeof msg, "mask=%d usr1=%d pipe=%d term=%d pdeath=%d core=%lu",
                       blocked, usr1.sa_handler == SIG_DFL, pipe_.sa_handler == SIG_DFL,
                       term.sa_handler == SIG_DFL, pdeath, (unsigned long)core.rlim_cur);
    return frame_write(fd, 1, msg, (size_t)len) == EBSD_OK ? 0 : 1;
}

/* ---------------------------------------------------------------- tests */

/* Several children stream frames; the parent drives them like the ebsd loop: poll on the
 * pipes and a signalfd for SIGCHLD, reaping with proc_reap_any until it says stop. */
static void test_frames_and_sigchld_loop(void)
{
    enum { N = 5 };
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &chld, &old) == 0);
    int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    CHECK(sfd >= 0);

    struct proc_child c[N];
    struct frame_reader rd[N];
    int frames[N] = {0}, big[N] = {0}, nframes = 300;
    bool eof[N] = {false}, reaped[N] = {false};
    struct proc_exit ex[N];
    for (int i = 0; i < N; i++) {
        CHECK(spawn(child_frames, &nframes, 64u << 20, &c[i]) == EBSD_OK);
        frame_reader_init(&rd[i], 1u << 20);
    }
    int left = 2 * N;
    int64_t until = clock_now_ms() + 10000;
    while (left > 0 && clock_now_ms() < until) {
        struct pollfd pf[N + 1];
        pf[N] = (struct pollfd){sfd, POLLIN, 0};
        for (int i = 0; i < N; i++)
            pf[i] = (struct pollfd){eof[i] ? -1 : c[i].fd, POLLIN, 0};
        if (poll(pf, N + 1, 1000) <= 0)
            continue;
        for (int i = 0; i < N; i++) {
            if (eof[i] || !pf[i].revents)
                continue;
            ebsd_status st = frame_reader_feed(&rd[i], c[i].fd, &eof[i]);
            CHECK_INT(st, EBSD_OK);
            uint8_t type;
            const char *data;
            size_t len;
            while (frame_reader_next(&rd[i], &type, &data, &len) == EBSD_OK) {
                if (type == 1) {
                    char want[32];
                    int wl = snprintf(want, sizeof want, "frame %d", frames[i]);
                    CHECK(len == (size_t)wl && memcmp(data, want, len) == 0);
                    frames[i]++;
                } else if (type == 2 && len == 200000 && data[0] == 'b' && data[len - 1] == 'b') {
                    big[i]++;
                }
            }
            if (eof[i]) {
                CHECK_INT(frame_reader_pending(&rd[i]), 0);
                left--;
            }
        }
        if (pf[N].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                ;
            struct proc_exit e;
            while (proc_reap_any(&e) == EBSD_OK)
                for (int i = 0; i < N; i++)
                    if (c[i].pid == e.pid && !reaped[i]) {
                        reaped[i] = true;
                        ex[i] = e;
                        left--;
                    }
        }
    }
    CHECK_INT(left, 0);
    for (int i = 0; i < N; i++) {
        CHECK_INT(frames[i], nframes);
        CHECK_INT(big[i], 1);
        CHECK(reaped[i]);
        if (reaped[i]) {
            CHECK_INT(ex[i].kind, PROC_EXIT_CODE);
            CHECK_INT(ex[i].code, 0);
            CHECK(ex[i].maxrss_kb > 0);
            CHECK(proc_kb_to_mb(ex[i].maxrss_kb) >= 1);
        }
        frame_reader_free(&rd[i]);
        close(c[i].fd);
    }
    struct proc_exit e;
    CHECK_INT(proc_reap_any(&e), EBSD_ENOTFOUND);
    close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void test_exit_codes(void)
{
    int codes[] = {0, 7, 255};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        struct proc_child c;
        CHECK(spawn(child_code, &codes[i], 0, &c) == EBSD_OK);
        struct proc_exit e;
        CHECK_INT(proc_wait(c.pid, 5000, &e), EBSD_OK);
        CHECK_INT(e.kind, PROC_EXIT_CODE);
        CHECK_INT(e.code, codes[i]);
        CHECK_INT(e.signal, 0);
        close(c.fd);
    }
    char buf[64];
    struct proc_exit e = {.kind = PROC_EXIT_CODE, .code = 3};
    CHECK_STR(proc_exit_describe(&e, buf, sizeof buf), "exited 3");
    e = (struct proc_exit){.kind = PROC_EXIT_SIGNALED, .signal = SIGKILL, .code = -1};
    CHECK_STR(proc_exit_describe(&e, buf, sizeof buf), "killed: SIGKILL");
    CHECK_INT(proc_kb_to_mb(0), 0);
    CHECK_INT(proc_kb_to_mb(1), 1);
    CHECK_INT(proc_kb_to_mb(1024), 1);
    CHECK_INT(proc_kb_to_mb(1025), 2);
}

static void test_crash(void)
{
    struct proc_child c;
    CHECK(spawn(child_segv, NULL, 0, &c) == EBSD_OK);
    struct proc_exit e;
    CHECK_INT(proc_wait(c.pid, 5000, &e), EBSD_OK);
    CHECK_INT(e.kind, PROC_EXIT_CRASHED);
    CHECK_INT(e.signal, SIGSEGV);
    CHECK(!e.core_dumped); /* RLIMIT_CORE 0 */
    char buf[64];
    CHECK_STR(proc_exit_describe(&e, buf, sizeof buf), "crashed: SIGSEGV");
    close(c.fd);

    CHECK(spawn(child_abort, NULL, 0, &c) == EBSD_OK);
    CHECK_INT(proc_wait(c.pid, 5000, &e), EBSD_OK);
    CHECK_INT(e.kind, PROC_EXIT_CRASHED);
    CHECK_INT(e.signal, SIGABRT);
    close(c.fd);
}

/* 64 MiB limit: 256 MiB of touched allocations die cleanly with EBSD_EXIT_OOM, while 16 MiB
 * fit. The limit is relative to what the child inherited, so this holds under ASan too. */
static void test_memory_limit(void)
{
    struct proc_child c;
    struct proc_exit e;
    size_t mib = 256;
    int64_t t0 = clock_now_ms();
    CHECK(spawn(child_alloc, &mib, 64u << 20, &c) == EBSD_OK);
    CHECK_INT(proc_wait(c.pid, 20000, &e), EBSD_OK);
    CHECK_INT(e.kind, PROC_EXIT_OOM);
    CHECK_INT(e.code, EBSD_EXIT_OOM);
    /* it got close to the limit before failing, and no further */
    fprintf(stderr, "  oom child: maxrss %ld KB, %lld ms\n", e.maxrss_kb,
            (long long)(clock_now_ms() - t0));
    struct rusage self;
    getrusage(RUSAGE_SELF, &self);
    CHECK(e.maxrss_kb < self.ru_maxrss + 64 * 1024 + 8 * 1024);
    CHECK(e.maxrss_kb > 32 * 1024);
    close(c.fd);

    mib = 16;
    CHECK(spawn(child_alloc, &mib, 64u << 20, &c) == EBSD_OK);
    CHECK_INT(proc_wait(c.pid, 20000, &e), EBSD_OK);
    CHECK_INT(e.kind, PROC_EXIT_CODE);
    CHECK_INT(e.code, 0);
    close(c.fd);

    /* no limit: the same 256 MiB are fine */
    mib = 256;
    CHECK(spawn(child_alloc, &mib, 0, &c) == EBSD_OK);
    CHECK_INT(proc_wait(c.pid, 20000, &e), EBSD_OK);
    CHECK_INT(e.kind, PROC_EXIT_CODE);
    CHECK(e.maxrss_kb > 200 * 1024);
    close(c.fd);
}

/* The deadline: the parent kills a child that would never finish; it is reaped as killed
 * promptly and its pipe reaches EOF. */
static void test_kill_at_deadline(void)
{
    struct proc_child c;
    CHECK(spawn(child_sleep, NULL, 0, &c) == EBSD_OK);
    struct proc_exit e;
    CHECK_INT(proc_reap(c.pid, &e), EBSD_EBUSY);
    CHECK_INT(proc_reap_any(&e), EBSD_EBUSY);
    char *got[1] = {NULL};
    struct pollfd pf = {c.fd, POLLIN, 0};
    CHECK(poll(&pf, 1, 5000) == 1); /* "up" */
    int64_t t0 = clock_now_us();
    proc_kill(c.pid);
    CHECK_INT(proc_wait(c.pid, 1000, &e), EBSD_OK);
    int64_t us = clock_now_us() - t0;
    fprintf(stderr, "  kill-to-reap: %lld us\n", (long long)us);
    CHECK(us < 100000);
    CHECK_INT(e.kind, PROC_EXIT_SIGNALED);
    CHECK_INT(e.signal, SIGKILL);
    ebsd_status err;
    int n = collect(c.fd, got, 1, 1000, &err);
    CHECK_INT(n, 1);
    CHECK_INT(err, EBSD_OK);
    if (n == 1)
        CHECK_STR(got[0], "up");
    free_all(got, n < 1 ? n : 1);
    close(c.fd);
    /* reaped: no longer ours, and killing it again is harmless */
    CHECK_INT(proc_reap(c.pid, &e), EBSD_ENOTFOUND);
    proc_kill(c.pid);
    proc_kill(0);
    proc_kill(-1);
}

static void test_garbage_from_child(void)
{
    struct proc_child c;
    CHECK(spawn(child_garbage, NULL, 0, &c) == EBSD_OK);
    ebsd_status err;
    int n = collect(c.fd, NULL, 0, 5000, &err);
    CHECK_INT(n, 0);
    CHECK_INT(err, EBSD_EPARSE);
    proc_kill(c.pid);
    struct proc_exit e;
    CHECK_INT(proc_wait(c.pid, 5000, &e), EBSD_OK);
    close(c.fd);
}

/* The child holds only 0/1/2 and its pipe, whatever the parent had open (even descriptors
 * without O_CLOEXEC and other children's pipes). */
static void test_child_fds(void)
{
    int extra[6];
    for (int i = 0; i < 4; i++)
        extra[i] = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, &extra[4]) == 0);
    struct proc_child other;
    CHECK(spawn(child_sleep, NULL, 0, &other) == EBSD_OK);

    struct proc_child c;
    CHECK(spawn(child_fds_report, NULL, 0, &c) == EBSD_OK);
    char *got[1] = {NULL};
    ebsd_status err;
    int n = collect(c.fd, got, 1, 5000, &err);
    CHECK_INT(n, 1);
    char want[32] = "";
    size_t used = 0;
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            used += (size_t)snprintf(want + used, sizeof want - used, "%d,", fd);
    snprintf(want + used, sizeof want - used, "%d", PROC_CHILD_FD);
    if (n == 1)
        CHECK_STR(got[0], want);
    free_all(got, n < 1 ? n : 1);
    struct proc_exit e;
    CHECK_INT(proc_wait(c.pid, 5000, &e), EBSD_OK);
    CHECK_INT(e.code, 0);
    close(c.fd);
    proc_kill(other.pid);
    CHECK_INT(proc_wait(other.pid, 5000, &e), EBSD_OK);
    close(other.fd);
    for (int i = 0; i < 6; i++)
        close(extra[i]);
}

static void on_usr1(int sig) { (void)sig; }

/* The parent blocks signals (as for its signalfd), catches some and ignores SIGPIPE; the
 * child starts with none of that, dies with its parent and dumps no core. */
static void test_child_signals(void)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &block, &old) == 0);
    struct sigaction sa, old_usr1, old_pipe;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, &old_usr1);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old_pipe);

    struct proc_child c;
    CHECK(spawn(child_signals_report, NULL, 0, &c) == EBSD_OK);
    char *got[1] = {NULL};
    ebsd_status err;
    int n = collect(c.fd, got, 1, 5000, &err);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_STR(got[0], "mask=0 usr1=1 pipe=1 term=1 pdeath=9 core=0");
    free_all(got, n < 1 ? n : 1);
    struct proc_exit e;
    CHECK_INT(proc_wait(c.pid, 5000, &e), EBSD_OK);
    CHECK_INT(e.code, 0);
    close(c.fd);

    sigaction(SIGUSR1, &old_usr1, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* PR_SET_PDEATHSIG for real: an intermediate process spawns a sleeping child and exits;
 * the child dies by SIGKILL and, with us as subreaper, is reaped here. */
static void test_dies_with_parent(void)
{
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
    int p[2];
    CHECK(pipe(p) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t mid = fork();
    if (mid == 0) {
        struct proc_child c;
        struct proc_spec spec = {.fn = child_sleep};
        if (proc_spawn(&spec, &c) != EBSD_OK)
            _exit(1);
        struct pollfd pf = {c.fd, POLLIN, 0};
        (void)poll(&pf, 1, 5000); /* the child is past its setup */
        (void)!write(p[1], &c.pid, sizeof c.pid);
        _exit(0);
    }
    close(p[1]);
    pid_t grandchild = 0;
    CHECK(read(p[0], &grandchild, sizeof grandchild) == (ssize_t)sizeof grandchild);
    close(p[0]);
    int status;
    CHECK(waitpid(mid, &status, 0) == mid);
    struct proc_exit e;
    if (grandchild > 0) {
        CHECK_INT(proc_wait(grandchild, 5000, &e), EBSD_OK);
        CHECK_INT(e.kind, PROC_EXIT_SIGNALED);
        CHECK_INT(e.signal, SIGKILL);
    }
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) == 0);
}

static int child_spin(int fd, void *arg)
{
    volatile unsigned long x = 0;
    while (x != ~0UL)
        x++;
    return 0;
}

static void test_cpu_limit(void)
{
    struct proc_spec spec = {.fn = child_spin, .cpu_limit_s = 1};
    struct proc_child c;
    fflush(stdout);
    CHECK(proc_spawn(&spec, &c) == EBSD_OK);
    struct proc_exit e;
    /* 1 s of CPU takes far longer in wall time on a busy 2-core machine */
    CHECK_INT(proc_wait(c.pid, 60000, &e), EBSD_OK);
    CHECK_INT(e.kind, PROC_EXIT_SIGNALED);
    CHECK(e.signal == SIGKILL || e.signal == SIGXCPU);
    /* the limit tripped on CPU time, not wall time: about 1 s of it (tick-sampled CPU
     * accounting reads low on a busy machine) */
    CHECK(e.user_ms + e.sys_ms >= 600);
    close(c.fd);
}

/* 200 spawn/read/reap cycles leave no zombie and no descriptor behind. */
static void test_no_leaks(void)
{
    int before = count_fds();
    int ok = 0;
    int64_t t0 = clock_now_us();
    for (int i = 0; i < 200; i++) {
        int nframes = 3;
        struct proc_child c;
        if (spawn(child_frames, &nframes, 0, &c) != EBSD_OK)
            continue;
        ebsd_status err;
        int n = collect(c.fd, NULL, 0, 5000, &err);
        struct proc_exit e;
        if (n == 4 && err == EBSD_OK && proc_wait(c.pid, 5000, &e) == EBSD_OK &&
            e.kind == PROC_EXIT_CODE && e.code == 0)
            ok++;
        close(c.fd);
    }
    fprintf(stderr, "  200 cycles: %lld us per spawn+read+reap\n",
            (long long)((clock_now_us() - t0) / 200));
    CHECK_INT(ok, 200);
    CHECK_INT(count_fds(), before);
    struct proc_exit e;
    CHECK_INT(proc_reap_any(&e), EBSD_ENOTFOUND);
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
}

/* The child reports its nice value as its exit code (nice + 20, so 0..39). */
static int child_nice(int fd, void *arg)
{
    errno = 0;
    int n = getpriority(PRIO_PROCESS, 0);
    return n == -1 && errno ? 99 : n + 20;
}

/* A child runs spec.nice below the parent (capped at nice 19); 0 keeps the parent's. */
static void test_child_priority(void)
{
    errno = 0;
    int parent = getpriority(PRIO_PROCESS, 0);
    CHECK(!(parent == -1 && errno));
    const unsigned nices[] = {0, 3, 10, 19};
    for (size_t i = 0; i < sizeof nices / sizeof nices[0]; i++) {
        int want = parent + (int)nices[i] > 19 ? 19 : parent + (int)nices[i];
        struct proc_spec spec = {.fn = child_nice, .nice = nices[i]};
        struct proc_child c;
        struct proc_exit e;
        fflush(stdout);
        fflush(stderr);
        CHECK(proc_spawn(&spec, &c) == EBSD_OK);
        CHECK_INT(proc_wait(c.pid, 5000, &e), EBSD_OK);
        CHECK_INT(e.kind, PROC_EXIT_CODE);
        CHECK_INT(e.code - 20, want);
        close(c.fd);
    }
    /* Ours is unchanged: only the child lowered its priority. */
    CHECK_INT(getpriority(PRIO_PROCESS, 0), parent);
}

static void test_bad_args(void)
{
    struct proc_child c;
    struct proc_spec none = {0};
    CHECK_INT(proc_spawn(&none, &c), EBSD_EINVAL);
    CHECK_INT(proc_spawn(NULL, &c), EBSD_EINVAL);
    struct proc_exit e;
    CHECK_INT(proc_reap(0, &e), EBSD_EINVAL);
    CHECK_INT(proc_reap(-1, &e), EBSD_EINVAL);
}

/* proc_peak_rss_kb reads VmHWM, the peak that getrusage's ru_maxrss also reports; a pid
 * that cannot exist (above any pid_max) reads as 0. */
static void test_peak_rss(void)
{
    char *touched = xmalloc(8 << 20);
    memset(touched, 1, 8 << 20);
    struct rusage ru;
    CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
    long kb = proc_peak_rss_kb(getpid());
    CHECK(kb >= 8 * 1024);
    CHECK(kb >= ru.ru_maxrss - 1024 && kb <= ru.ru_maxrss + 1024);
    CHECK_INT(proc_peak_rss_kb(2147483647), 0);
    free(touched);
}

TEST_MAIN(T(test_frames_and_sigchld_loop), T(test_exit_codes), T(test_crash),
          T(test_memory_limit), T(test_kill_at_deadline), T(test_garbage_from_child),
          T(test_child_fds), T(test_child_signals), T(test_dies_with_parent), T(test_cpu_limit),
          T(test_no_leaks), T(test_child_priority), T(test_bad_args), T(test_peak_rss))
