/* proc.c - fork, limit, kill and reap worker children (see proc.h for the model). */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "mem.h"

#if defined(__SANITIZE_ADDRESS__)
#define PROC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PROC_ASAN 1
#endif
#endif

#ifdef PROC_ASAN
/* A child that reaches its memory limit must see malloc return NULL (and leave through
 * mem.c's _exit(EBSD_EXIT_OOM)); ASan's default is to print a report, which needs memory
 * the limit forbids, and the child hangs. ASAN_OPTIONS still overrides this. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
#endif

/* One field of a /proc status file ("\nVmHWM:" for "VmHWM:   1234 kB"), in KiB; 0 if the
 * file or the field cannot be read. Plain system calls only, no stdio and no malloc, since
 * the child side below calls it between fork and fn. */
static long status_kb(const char *path, const char *field)
{
    char b[4096];
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    for (;;) {
        ssize_t n = read(fd, b + got, sizeof b - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == sizeof b - 1)
            break;
    }
    close(fd);
    b[got] = '\0';
    const char *p = strstr(b, field);
    if (!p)
        return 0;
    p += strlen(field);
    while (*p == ' ' || *p == '\t')
        p++;
    long kb = 0;
    while (*p >= '0' && *p <= '9')
        kb = kb * 10 + (*p++ - '0');
    return kb;
}

/* ------------------------------------------------------------------ child side
 * Everything below runs between fork and fn. The parent is single-threaded, so libc is in
 * a consistent state, but we still keep to plain system calls: no stdio, no malloc. */

static void child_die(void) { _exit(PROC_EXIT_SETUP); }

/* VmData of this process in bytes, from /proc/self/status; 0 if unavailable. */
static size_t child_vmdata(void)
{
    return (size_t)status_kb("/proc/self/status", "\nVmData:") * 1024;
}

static void child_limits(const struct proc_spec *spec)
{
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_CORE, &rl) != 0)
        child_die();
    if (spec->mem_limit_bytes) {
        /* Relative to the inherited image (see proc.h). Without /proc the limit falls back
         * to an absolute one, which is stricter, never looser. */
        rlim_t lim = (rlim_t)child_vmdata() + (rlim_t)spec->mem_limit_bytes;
        struct rlimit old;
        if (getrlimit(RLIMIT_DATA, &old) != 0)
            child_die();
        if (old.rlim_max != RLIM_INFINITY && lim > old.rlim_max)
            lim = old.rlim_max;
        rl.rlim_cur = rl.rlim_max = lim;
        if (setrlimit(RLIMIT_DATA, &rl) != 0)
            child_die();
    }
    if (spec->cpu_limit_s) {
        rl.rlim_cur = rl.rlim_max = spec->cpu_limit_s;
        if (setrlimit(RLIMIT_CPU, &rl) != 0)
            child_die();
    }
}

static void child_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    /* Dispositions first, then the mask: a signal that arrives as soon as it is unblocked
     * must not run a handler of the parent's. SIGKILL, SIGSTOP and the signals glibc keeps
     * for itself refuse with EINVAL, which is fine. */
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
        child_die();
}

/* Closes every descriptor >= from, by walking /proc/self/fd (no close_range). */
static void close_from_proc(int from)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        long max = sysconf(_SC_OPEN_MAX);
        if (max < 0 || max > 65536)
            max = 65536;
        for (int fd = from; fd < max; fd++)
            (void)close(fd);
        return;
    }
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        long fd = strtol(e->d_name, NULL, 10);
        if (fd >= from && fd != self)
            (void)close((int)fd);
    }
    closedir(d);
}

/* wfd becomes PROC_CHILD_FD. With inherited, every other descriptor above stdio is closed
 * (what the child inherited); without, only wfd's old number (a spare closed what it
 * inherited when it started, and what it opened since is its own: proc_spares_warm). */
static void child_fds(int wfd, bool inherited)
{
    if (wfd != PROC_CHILD_FD) {
        if (dup2(wfd, PROC_CHILD_FD) < 0)
            child_die();
        if (!inherited)
            close(wfd);
    } else if (fcntl(wfd, F_SETFD, 0) < 0) {
        child_die();
    }
    if (!inherited)
        return;
    int rc = -1;
#if defined(SYS_close_range)
    rc = (int)syscall(SYS_close_range, PROC_CHILD_FD + 1, ~0U, 0U);
#endif
    if (rc != 0)
        close_from_proc(PROC_CHILD_FD + 1);
}

static void child_parent_death(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        child_die();
    /* The parent may have died between fork and prctl: then nobody would send the signal. */
    if (getppid() != parent)
        _exit(PROC_EXIT_SETUP);
}

/* First thing after fork: drop below the parent's CPU priority, so that a parent woken by a
 * deadline timer or a client runs ahead of busy workers (see proc.h). Raising one's own
 * nice value needs no privilege; a failure leaves the child at the parent's priority,
 * which is how ebsd ran before, so it is not fatal. */
static void child_priority(unsigned nice)
{
    if (nice == 0)
        return;
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, 0);
    if (cur == -1 && errno != 0)
        return;
    int want = cur + (int)(nice > 39 ? 39 : nice);
    if (want > 19)
        want = 19;
    (void)setpriority(PRIO_PROCESS, 0, want);
}

/* The child's set-up and spec->fn. ready: a spare whose set-up without the spec (death with
 * the parent, signals) is done. */
static void child_run(const struct proc_spec *spec, int wfd, pid_t parent, bool ready)
{
    child_priority(spec->nice);
    if (!ready) {
        child_parent_death(parent);
        child_signals();
    }
    child_fds(wfd, !ready);
    child_limits(spec);
    if (spec->name) {
        char name[16];
        snprintf(name, sizeof name, "%s", spec->name);
        (void)prctl(PR_SET_NAME, name, 0, 0, 0);
    }
    mem_set_child_mode();
    int status = spec->fn(PROC_CHILD_FD, spec->arg);
    /* Only the child's own output can be buffered here (the caller flushed before fork). */
    fflush(stdout);
    fflush(stderr);
    _exit(status & 0xff);
}

/* ------------------------------------------------------------------ parent side */

/* Moves *fd above 0/1/2 if it landed there (a daemon may run with stdio closed): a pipe end
 * sitting in the child's stdout slot would take its log lines as frames. */
static int fd_above_stdio(int *fd)
{
    if (*fd > 2)
        return 0;
    int moved = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (moved < 0)
        return -1;
    close(*fd);
    *fd = moved;
    return 0;
}

/* ------------------------------------------------------------------ the zygote (proc.h) */

/* What the zygote is sent with each worker's message (ZY_WORKER, with the pipe's write end),
 * or to keep spares ready (ZY_SPARES: spares of them, no descriptor, no answer); and what it
 * answers a ZY_WORKER. */
enum { ZY_WORKER = 0, ZY_SPARES = 1 };

struct zy_req {
    uint64_t seq;
    uint64_t mem_limit_bytes;
    uint32_t cpu_limit_s;
    uint32_t nice;
    uint32_t op;
    uint32_t spares;
    char name[16];
};

struct zy_rep {
    uint64_t seq;
    int32_t pid;    /* the worker's, or -1 */
    int32_t err;    /* errno of the failed fork */
};

static struct {
    proc_msg_fn fn;
    void (*warm)(void); /* run by each spare before it waits (proc_spares_warm) */
    pid_t pid;          /* the running zygote, 0 when none */
    int sock;           /* the parent's end, -1 when none */
    uint64_t seq;
    int64_t started_ms; /* the last start attempt, for the once-a-second restart */
} zy = {.sock = -1};

/* A message and its length, as a proc_fn's argument. */
struct msg_arg {
    const void *msg;
    size_t len;
};

static int run_msg(int fd, void *arg)
{
    const struct msg_arg *m = arg;
    return zy.fn(fd, m->msg, m->len);
}

/* The zygote's answer to the parent about the worker of request seq. */
static void zy_answer(int sock, uint64_t seq, pid_t pid, int err)
{
    struct zy_rep r = {seq, pid, err};
    (void)send(sock, &r, sizeof r, MSG_NOSIGNAL);
}

/* The worker, in the zygote's child (which is the parent's: CLONE_PARENT): the set-up of any
 * worker (child_run), on its copy of the message. */
static void zy_worker(const struct zy_req *h, const void *msg, size_t len, int wfd,
                      pid_t parent, bool ready)
{
    struct msg_arg m = {msg, len};
    struct proc_spec spec = {.fn = run_msg,
                             .arg = &m,
                             .mem_limit_bytes = (size_t)h->mem_limit_bytes,
                             .cpu_limit_s = h->cpu_limit_s,
                             .name = h->name[0] ? h->name : NULL,
                             .nice = h->nice};
    child_run(&spec, wfd, parent, ready);
}

/* fork(2) with CLONE_PARENT: the child is the caller's parent's child. The raw system call:
 * glibc has no such fork. That skips what glibc's fork does besides the system call, which
 * the zygote does not need: it is single-threaded (no lock can be held by another thread)
 * and runs nothing between its forks; the fork handlers ran when the zygote itself was
 * forked (log.c's put it in the workers' write-at-once mode), and the libraries that keep
 * random state across a fork (OpenSSL, GnuTLS) tell a new process by its pid. */
static pid_t fork_sibling(void)
{
    return (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), 0UL, 0UL, 0UL,
                          0UL);
}

static void *zy_nothing(void *arg) { return arg; }

/* Threads started and joined before the zygote forks anything: what glibc binds lazily on
 * pthread_create's paths (_dl_allocate_tls, _dl_allocate_tls_init: each looked up through
 * the hash tables of every loaded library, a page fault apiece in a fresh process, about a
 * third of a millisecond of every worker that starts a thread) is bound here, in memory the
 * workers inherit, and a stack is left in glibc's stack cache, where a worker's first thread
 * finds it instead of mapping one. The zygote is single-threaded again before its first
 * fork. */
static void zy_warm_threads(void)
{
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0)
        return;
    (void)pthread_attr_setstacksize(&attr, PROC_THREAD_STACK);
    /* twice: the second takes the first's stack from the cache, which binds what that path
     * calls (_dl_allocate_tls_init) as well */
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t, &attr, zy_nothing, NULL) == 0)
            (void)pthread_join(t, NULL);
    pthread_attr_destroy(&attr);
}

/* Sends the datagram of iov (n parts) on sock with fd attached (SCM_RIGHTS), without
 * waiting: sendmsg's result. */
static ssize_t send_with_fd(int sock, struct iovec *iov, size_t n, int fd)
{
    union {
        struct cmsghdr c;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n, .msg_control = ctl.space,
                        .msg_controllen = sizeof ctl.space};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t sent;
    do {
        sent = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (sent < 0 && errno == EINTR);
    return sent;
}

/* Room for one datagram of the largest message on each side of a zygote's socket pair. */
static void zy_buffers(int send_fd, int recv_fd, int datagrams)
{
    int sz = (int)(sizeof(struct zy_req) + PROC_MSG_MAX) * datagrams;
    (void)setsockopt(send_fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    (void)setsockopt(recv_fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

/* One datagram of at most cap bytes into buf, with the descriptor it carries in *fd (-1 when
 * none). The datagram's length; 0 when the sender has closed its end; -1 on an error. */
static ssize_t zy_recv(int sock, unsigned char *buf, size_t cap, int *fd, bool *cut)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    ssize_t n;
    struct msghdr mh;
    do {
        struct iovec iov = {buf, cap};
        mh = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space,
                             .msg_controllen = sizeof ctl.space};
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    *fd = -1;
    if (n < 0)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(fd, CMSG_DATA(c), sizeof *fd);
    *cut = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    return n;
}

/* Spare workers (proc_spares): forked by the zygote while ebsd is idle, each waiting on a
 * socket of its own for the message of one worker, which the zygote passes on with the
 * pipe's write end. The fork and the set-up that needs no message are done before the
 * request that uses the worker. */
#define ZY_SPARES_MAX 64

struct zy_spare {
    pid_t pid;
    int sock; /* the zygote's end */
};

static struct {
    struct zy_spare s[ZY_SPARES_MAX];
    unsigned n;
} zs;

/* A spare's life: the set-up any worker does (signals, death with the parent) done ahead,
 * then one message, then the worker (zy_worker, which also closes this socket). Ends when
 * the zygote closes its end (a zygote that ends or has fewer spares to keep). */
static void zy_spare_main(int sock, pid_t parent, unsigned char *buf, size_t cap)
{
    child_parent_death(parent);
    child_signals();
    child_fds(sock, true); /* this socket alone, as descriptor 3, and stdio */
    (void)prctl(PR_SET_NAME, "ebsd-spare", 0, 0, 0);
    if (zy.warm)
        zy.warm();
    int wfd;
    bool cut = false;
    ssize_t n = zy_recv(PROC_CHILD_FD, buf, cap, &wfd, &cut);
    struct zy_req h;
    if (n < (ssize_t)sizeof h || wfd < 0 || cut)
        _exit(0); /* the zygote closed its end, or sent nothing usable */
    memcpy(&h, buf, sizeof h);
    h.name[sizeof h.name - 1] = '\0';
    zy_worker(&h, buf + sizeof h, (size_t)n - sizeof h, wfd, parent, true);
}

/* Lets go of the spares that have ended (killed from outside, say): a waiting spare never
 * writes, so anything its socket has to say (a hang-up, an error) means it is gone. */
static void zy_spares_prune(void)
{
    struct pollfd pf[ZY_SPARES_MAX];
    for (unsigned i = 0; i < zs.n; i++)
        pf[i] = (struct pollfd){zs.s[i].sock, POLLIN, 0};
    if (zs.n == 0 || poll(pf, zs.n, 0) <= 0)
        return;
    unsigned kept = 0;
    for (unsigned i = 0; i < zs.n; i++) {
        if (pf[i].revents)
            close(zs.s[i].sock);
        else
            zs.s[kept++] = zs.s[i];
    }
    zs.n = kept;
}

/* Forks spares until want are ready (at most ZY_SPARES_MAX), or lets the ones past want go.
 * A worker asked for meanwhile comes first: the forks stop, and the next request to keep
 * spares (the parent's next idle moment) forks the rest. */
static void zy_spares_keep(int sock, unsigned want, pid_t parent, unsigned char *buf,
                           size_t cap)
{
    if (want > ZY_SPARES_MAX)
        want = ZY_SPARES_MAX;
    zy_spares_prune();
    while (zs.n > want)
        close(zs.s[--zs.n].sock);
    while (zs.n < want) {
        struct pollfd pf = {sock, POLLIN, 0};
        if (poll(&pf, 1, 0) != 0)
            return; /* a message waits (or the socket failed: the loop sees to it) */
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
            return;
        zy_buffers(sv[0], sv[1], 1);
        pid_t w = fork_sibling();
        if (w == 0)
            zy_spare_main(sv[1], parent, buf, cap); /* never returns */
        close(sv[1]);
        if (w < 0) {
            close(sv[0]);
            return;
        }
        zs.s[zs.n++] = (struct zy_spare){w, sv[0]};
    }
}

/* Hands the datagram in buf (n bytes) and wfd to a spare: its pid, or 0 when none took it
 * (a spare that has ended is let go, and the next one tried). */
static pid_t zy_spare_take(const unsigned char *buf, size_t n, int wfd)
{
    while (zs.n > 0) {
        struct zy_spare sp = zs.s[--zs.n];
        struct iovec iov = {(void *)buf, n};
        ssize_t sent = send_with_fd(sp.sock, &iov, 1, wfd);
        close(sp.sock);
        if (sent == (ssize_t)n)
            return sp.pid;
    }
    return 0;
}

/* The zygote's loop: one datagram, one worker; ends when the parent closes its end. */
static void zy_main(int sock, pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent)
        _exit(0);
    child_signals();
    /* a stop signal sent to every process of ebsd's group or cgroup is the parent's to act
     * on (it drains, and may start workers meanwhile); the zygote ends with the parent */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    child_fds(sock, true); /* the socket alone, as descriptor 3, and stdio */
    sock = PROC_CHILD_FD;
    /* stdio open, to /dev/null if the parent runs without: a worker's pipe received into
     * descriptor 1 would take its log lines as frames */
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
            _exit(PROC_EXIT_SETUP);
    (void)prctl(PR_SET_NAME, "ebsd-zygote", 0, 0, 0);
    zy_warm_threads();
    static unsigned char buf[sizeof(struct zy_req) + PROC_MSG_MAX];
    for (;;) {
        int wfd;
        bool cut = false;
        ssize_t n = zy_recv(sock, buf, sizeof buf, &wfd, &cut);
        if (n == 0)
            _exit(0);
        if (n < 0)
            _exit(1);
        struct zy_req h;
        memset(&h, 0, sizeof h);
        if ((size_t)n >= sizeof h)
            memcpy(&h, buf, sizeof h);
        if (h.op == ZY_SPARES && wfd < 0 && (size_t)n == sizeof h && !cut) {
            zy_spares_keep(sock, h.spares, parent, buf, sizeof buf);
            continue;
        }
        if (wfd < 0 || (size_t)n < sizeof h || cut || h.op != ZY_WORKER) {
            if (wfd >= 0)
                close(wfd);
            zy_answer(sock, h.seq, -1, EINVAL);
            continue;
        }
        h.name[sizeof h.name - 1] = '\0';
        /* a spare if one is ready, else a fork now */
        pid_t w = zy_spare_take(buf, (size_t)n, wfd);
        if (w == 0) {
            w = fork_sibling();
            if (w == 0)
                zy_worker(&h, buf + sizeof h, (size_t)n - sizeof h, wfd, parent, false);
        }
        int err = errno;
        close(wfd);
        /* the message may hold credentials: the worker has its copy, the zygote keeps none */
        explicit_bzero(buf, (size_t)n);
        zy_answer(sock, h.seq, w > 0 ? w : -1, w > 0 ? 0 : err);
    }
}

/* Ends the running zygote (if any): its socket closed, then killed and reaped here, so no
 * zombie of it is left to the caller's reaping. */
static void zy_end(void)
{
    if (zy.sock >= 0)
        close(zy.sock);
    zy.sock = -1;
    if (zy.pid > 0) {
        proc_kill(zy.pid);
        int status;
        while (waitpid(zy.pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    zy.pid = 0;
}

static ebsd_status zy_fork(void)
{
    int sv[2];
    zy.started_ms = clock_now_ms();
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        log_error("proc", "socketpair: %s", strerror(errno));
        return EBSD_EIO;
    }
    /* room for two datagrams of the largest message (PROC_MSG_MAX and the header) */
    zy_buffers(sv[0], sv[1], 2);
    if (fd_above_stdio(&sv[0]) != 0 || fd_above_stdio(&sv[1]) != 0) {
        close(sv[0]);
        close(sv[1]);
        return EBSD_EIO;
    }
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        log_error("proc", "fork (zygote): %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return EBSD_EIO;
    }
    if (pid == 0) {
        close(sv[0]);
        zy_main(sv[1], parent); /* never returns */
    }
    close(sv[1]);
    zy.sock = sv[0];
    zy.pid = pid;
    return EBSD_OK;
}

ebsd_status proc_zygote_start(proc_msg_fn fn)
{
    zy.fn = fn;
    zy_end();
    return zy_fork();
}

void proc_zygote_stop(void)
{
    zy_end();
    zy.started_ms = INT64_MAX / 2; /* never again */
}

pid_t proc_zygote_pid(void) { return zy.pid; }

void proc_spares_warm(void (*fn)(void)) { zy.warm = fn; }

void proc_spares(unsigned n)
{
    if (zy.pid <= 0 || zy.sock < 0)
        return;
    struct zy_req h = {.op = ZY_SPARES, .spares = n};
    ssize_t sent;
    do {
        sent = send(zy.sock, &h, sizeof h, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (sent < 0 && errno == EINTR);
    /* a full socket (the zygote busy with workers) or a failed zygote: no spares this time */
}

bool proc_zygote_gone(pid_t pid)
{
    if (pid <= 0 || pid != zy.pid)
        return false;
    zy.pid = 0; /* already reaped: zy_end must not wait for it */
    zy_end();
    log_warn("proc", "the zygote (pid %d) ended; workers are forked from this process until "
                     "it is started again", (int)pid);
    return true;
}

/* The worker's pipe: p[0] the parent's end (non-blocking), p[1] the worker's; both above
 * stdio and close-on-exec. */
static ebsd_status open_pipe(int p[2])
{
    p[0] = p[1] = -1;
    if (pipe2(p, O_CLOEXEC) != 0) {
        log_error("proc", "pipe2: %s", strerror(errno));
        return (errno == EMFILE || errno == ENFILE) ? EBSD_EBUSY : EBSD_EIO;
    }
    if (fd_above_stdio(&p[0]) != 0 || fd_above_stdio(&p[1]) != 0) {
        log_error("proc", "fcntl(F_DUPFD_CLOEXEC): %s", strerror(errno));
        return EBSD_EIO;
    }
    /* Only the parent's end is non-blocking; the child writes with plain blocking writes. */
    int fl = fcntl(p[0], F_GETFL);
    if (fl < 0 || fcntl(p[0], F_SETFL, fl | O_NONBLOCK) != 0) {
        log_error("proc", "fcntl(O_NONBLOCK): %s", strerror(errno));
        return EBSD_EIO;
    }
    return EBSD_OK;
}

static void close_pipe(int p[2])
{
    for (int i = 0; i < 2; i++)
        if (p[i] >= 0)
            close(p[i]);
    p[0] = p[1] = -1;
}

/* One child of a proc_spawn_many batch. */
struct slot {
    int p[2];     /* its pipe: p[0] the parent's end */
    uint64_t seq; /* the zygote's request for it, 0 when none was sent */
    pid_t pid;    /* 0 until forked */
};

/* Sends the zygote the worker of spec, with wfd as its pipe, without waiting (flags:
 * MSG_DONTWAIT). 0 with *seq; -EAGAIN when the socket takes nothing more now; -1 when the
 * zygote cannot be sent to. */
static int zy_send(const struct proc_spec *spec, int wfd, uint64_t *seq)
{
    struct zy_req h = {.seq = zy.seq + 1,
                       .mem_limit_bytes = spec->mem_limit_bytes,
                       .cpu_limit_s = spec->cpu_limit_s,
                       .nice = spec->nice};
    if (spec->name)
        snprintf(h.name, sizeof h.name, "%s", spec->name);
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)spec->msg, spec->msg_len}};
    ssize_t n = send_with_fd(zy.sock, iov, 2, wfd);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return -EAGAIN;
    if (n != (ssize_t)(sizeof h + spec->msg_len))
        return -1;
    *seq = ++zy.seq;
    return 0;
}

/* Has the zygote fork the workers of the batch's message specs (sts[i] EBSD_OK so far), all
 * sent before any answer is awaited, so it forks them back to back instead of once per round
 * trip with this process: s[i].pid for each it forked, sts[i] EBSD_EBUSY or EBSD_EIO where its
 * fork failed (as a fork here would have). When the zygote itself fails it is ended, and the
 * workers it did not answer for keep pid 0 (the caller forks them here). Answers are read
 * while messages are still sent: the zygote blocks on an answer this process does not read
 * (a socket queue holds 10 datagrams), so sending alone could wait for ever. */
static void zy_spawn_many(const struct proc_spec *specs, struct slot *s, ebsd_status *sts,
                          size_t n)
{
    size_t next = 0, waiting = 0;
    const char *why = NULL;
    int64_t until = clock_now_ms() + 1000; /* a second without progress: the zygote failed */
    for (;;) {
        for (; next < n; next++) {
            if (sts[next] != EBSD_OK || !specs[next].msg)
                continue;
            int r = zy_send(&specs[next], s[next].p[1], &s[next].seq);
            if (r == -EAGAIN)
                break;
            if (r != 0) {
                why = "cannot send it a worker";
                goto failed;
            }
            waiting++;
        }
        if (next == n && waiting == 0)
            return;
        int64_t left = until - clock_now_ms();
        struct pollfd pf = {zy.sock, (short)(POLLIN | (next < n ? POLLOUT : 0)), 0};
        int pr = left > 0 ? poll(&pf, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            why = "no answer within 1 s";
            goto failed;
        }
        if (!(pf.revents & POLLIN)) {
            if (pf.revents & (POLLERR | POLLHUP | POLLNVAL)) {
                why = "its socket failed";
                goto failed;
            }
            continue; /* room to send more */
        }
        struct zy_rep r;
        ssize_t got = recv(zy.sock, &r, sizeof r, MSG_DONTWAIT);
        if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (got != (ssize_t)sizeof r) {
            why = "its answer was cut";
            goto failed;
        }
        size_t i = 0;
        while (i < n && !(s[i].seq == r.seq && s[i].pid == 0 && sts[i] == EBSD_OK))
            i++;
        if (i == n)
            continue; /* an answer to an earlier worker, given up on */
        waiting--;
        until = clock_now_ms() + 1000;
        if (r.pid > 0) {
            s[i].pid = r.pid;
        } else {
            log_error("proc", "fork (in the zygote): %s", strerror(r.err));
            sts[i] = r.err == EAGAIN ? EBSD_EBUSY : EBSD_EIO;
        }
    }
failed:
    log_error("proc", "the zygote (pid %d) failed: %s; ending it", (int)zy.pid, why);
    zy_end();
}

/* Forks the child of spec here, on the pipe p (the function on the message when spec has
 * one). */
static ebsd_status fork_here(const struct proc_spec *spec, int p[2], pid_t *pid)
{
    struct msg_arg m = {spec->msg, spec->msg_len};
    struct proc_spec direct = *spec;
    if (spec->msg) {
        direct.fn = run_msg;
        direct.arg = &m;
    }
    pid_t parent = getpid();
    *pid = fork();
    if (*pid < 0) {
        log_error("proc", "fork: %s", strerror(errno));
        *pid = 0;
        return errno == EAGAIN ? EBSD_EBUSY : EBSD_EIO;
    }
    if (*pid == 0)
        child_run(&direct, p[1], parent, false); /* never returns */
    return EBSD_OK;
}

static bool spec_valid(const struct proc_spec *spec)
{
    return spec && (spec->fn || spec->msg) && (!spec->msg || zy.fn) &&
           spec->msg_len <= PROC_MSG_MAX;
}

void proc_spawn_many(const struct proc_spec *specs, size_t n, struct proc_child *outs,
                     ebsd_status *sts)
{
    struct slot *s = xcalloc(n ? n : 1, sizeof *s);
    int64_t start = clock_now_ms();
    size_t by_zygote = 0;
    for (size_t i = 0; i < n; i++) {
        s[i].p[0] = s[i].p[1] = -1;
        sts[i] = spec_valid(&specs[i]) ? open_pipe(s[i].p) : EBSD_EINVAL;
        if (sts[i] == EBSD_OK && specs[i].msg)
            by_zygote++;
    }
    if (by_zygote && zy.pid <= 0 && start - zy.started_ms >= 1000)
        (void)zy_fork(); /* the zygote ended or failed: again, at most once a second */
    if (by_zygote && zy.pid > 0)
        zy_spawn_many(specs, s, sts, n);
    for (size_t i = 0; i < n; i++) {
        if (sts[i] == EBSD_OK && s[i].pid == 0) {
            if (s[i].seq) {
                /* the zygote may have started a worker on this pipe before it failed: a
                 * fresh pipe for the worker forked here, so no two ever write to one */
                close_pipe(s[i].p);
                sts[i] = open_pipe(s[i].p);
            }
            if (sts[i] == EBSD_OK)
                sts[i] = fork_here(&specs[i], s[i].p, &s[i].pid);
        }
        if (sts[i] != EBSD_OK) {
            close_pipe(s[i].p);
            continue;
        }
        close(s[i].p[1]);
        outs[i].pid = s[i].pid;
        outs[i].fd = s[i].p[0];
        outs[i].start_ms = start;
    }
    free(s);
}

ebsd_status proc_spawn(const struct proc_spec *spec, struct proc_child *out)
{
    if (!spec || !out)
        return EBSD_EINVAL;
    ebsd_status st;
    proc_spawn_many(spec, 1, out, &st);
    return st;
}

void proc_kill(pid_t pid)
{
    if (pid <= 0)
        return; /* kill(0) or kill(-1) would hit the whole group or every process */
    if (kill(pid, SIGKILL) != 0 && errno != ESRCH)
        log_warn("proc", "kill(%d, SIGKILL): %s", (int)pid, strerror(errno));
}

static bool crash_signal(int sig)
{
    switch (sig) {
    case SIGSEGV:
    case SIGBUS:
    case SIGABRT:
    case SIGILL:
    case SIGFPE:
    case SIGSYS:
    case SIGTRAP:
        return true;
    default:
        return false;
    }
}

static int64_t tv_ms(struct timeval tv) { return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000; }

static void classify(pid_t pid, int status, const struct rusage *ru, struct proc_exit *out)
{
    memset(out, 0, sizeof *out);
    out->pid = pid;
    out->raw_status = status;
    out->code = -1;
    out->maxrss_kb = ru->ru_maxrss;
    out->user_ms = tv_ms(ru->ru_utime);
    out->sys_ms = tv_ms(ru->ru_stime);
    if (WIFEXITED(status)) {
        out->code = WEXITSTATUS(status);
        out->kind = out->code == EBSD_EXIT_OOM ? PROC_EXIT_OOM : PROC_EXIT_CODE;
    } else if (WIFSIGNALED(status)) {
        out->signal = WTERMSIG(status);
        out->core_dumped = WCOREDUMP(status) != 0;
        out->kind = crash_signal(out->signal) ? PROC_EXIT_CRASHED : PROC_EXIT_SIGNALED;
    }
}

/* wait4 without blocking; pid -1 = any child. */
static ebsd_status reap(pid_t pid, struct proc_exit *out)
{
    int status = 0;
    struct rusage ru;
    pid_t got;
    memset(&ru, 0, sizeof ru);
    do {
        got = wait4(pid, &status, WNOHANG, &ru);
    } while (got < 0 && errno == EINTR);
    if (got == 0)
        return EBSD_EBUSY;
    if (got < 0) {
        if (errno == ECHILD)
            return EBSD_ENOTFOUND;
        log_error("proc", "wait4(%d): %s", (int)pid, strerror(errno));
        return EBSD_EIO;
    }
    classify(got, status, &ru, out);
    return EBSD_OK;
}

ebsd_status proc_reap(pid_t pid, struct proc_exit *out)
{
    if (pid <= 0 || !out)
        return EBSD_EINVAL;
    return reap(pid, out);
}

ebsd_status proc_reap_any(struct proc_exit *out)
{
    if (!out)
        return EBSD_EINVAL;
    return reap(-1, out);
}

ebsd_status proc_wait(pid_t pid, int64_t timeout_ms, struct proc_exit *out)
{
    int64_t until = clock_now_ms() + timeout_ms;
    for (;;) {
        ebsd_status st = proc_reap(pid, out);
        if (st != EBSD_EBUSY)
            return st;
        if (clock_now_ms() >= until)
            return EBSD_ETIMEDOUT;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

long proc_kb_to_mb(long kb)
{
    if (kb <= 0)
        return 0;
    return (kb + 1023) / 1024;
}

const char *proc_exit_describe(const struct proc_exit *e, char *buf, size_t len)
{
    if (!buf || len == 0)
        return "";
    const char *sig = e->signal ? sigabbrev_np(e->signal) : NULL;
    switch (e->kind) {
    case PROC_EXIT_CODE:
        snprintf(buf, len, "exited %d", e->code);
        break;
    case PROC_EXIT_OOM:
        snprintf(buf, len, "out of memory (exit %d)", e->code);
        break;
    case PROC_EXIT_CRASHED:
        snprintf(buf, len, "crashed: SIG%s%s", sig ? sig : "?", e->core_dumped ? " (core)" : "");
        break;
    case PROC_EXIT_SIGNALED:
        snprintf(buf, len, "killed: SIG%s", sig ? sig : "?");
        break;
    }
    return buf;
}

long proc_peak_rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    return status_kb(path, "\nVmHWM:");
}
