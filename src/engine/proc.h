/* proc.h - the process code of ebsd, kept in one place (nginx src/os/unix style): fork a
 * worker child with a pipe back to the parent, limit it, kill it, reap it, classify how it
 * ended. Nothing here blocks the parent except proc_wait (shutdown and tests only).
 *
 * Model. The parent is one single-threaded event loop with its signals blocked and taken
 * through a signalfd; fork is safe at any moment because no other thread exists. A child:
 *   - gets every signal disposition reset to SIG_DFL and an empty signal mask (it inherits
 *     the parent's blocked mask otherwise, and SIGTERM/SIGKILL-at-deadline must work);
 *   - before anything else, lowers its CPU priority: its nice value becomes the parent's
 *     plus spec->nice (capped at 19; fanout.worker_nice, 10 by default: at +10 a CPU-bound task
 *     weighs about a tenth of one at the parent's nice value in the fair scheduler), so a parent woken by a deadline timer or a
 *     client is scheduled ahead of workers busy parsing XML (with workers at the parent's
 *     priority, a CPU-saturated machine made deadline answers hundreds of ms late;
 *     docs/SOAK.md has the numbers). Nice weighs tasks against each other within one
 *     cgroup (or autogroup), so in a container it orders ebsd's own processes only;
 *   - keeps only its pipe's write end (moved to descriptor 3) and 0/1/2 (for logging);
 *     everything else it inherited is closed (close_range, or /proc/self/fd as fallback);
 *   - dies with its parent (PR_SET_PDEATHSIG SIGKILL, with the getppid() race checked);
 *   - runs under RLIMIT_CORE 0, the memory limit below and an optional RLIMIT_CPU;
 *   - calls mem_set_child_mode(), so an allocation failure exits with EBSD_EXIT_OOM (113);
 *   - runs spec->fn and leaves with _exit(its return value): never returns into the parent's
 *     code, never runs atexit handlers. It flushes stdout/stderr before _exit so its own
 *     log lines are not lost - hence the caller's duty below.
 *
 * CALLER'S DUTY: fflush(stdout) and fflush(stderr) before proc_spawn. Whatever sits in a
 * stdio buffer at fork time is copied into the child and would be written twice.
 *
 * Memory limit. spec->mem_limit_bytes is how much writable private memory (heap, mmap'd
 * anonymous memory, thread stacks) the child may add on top of the image it inherited from
 * the parent. It is enforced with RLIMIT_DATA set to (VmData at fork + limit). Why not an
 * absolute RLIMIT_AS, as the classic recipe says:
 *   - RLIMIT_AS counts every mapping: shared library text, PROT_NONE reservations (glibc
 *     reserves 64 MiB of address space per malloc arena, e.g. for libcurl's resolver
 *     thread) and the parent's whole heap, so a parent whose cache grows would make its
 *     children fail at random. RLIMIT_DATA counts only writable private mappings (and brk),
 *     which is what "memory a child uses" means for us;
 *   - the fork image is shared copy-on-write with the parent, so only growth is the child's;
 *   - under AddressSanitizer both absolute limits are unusable (the shadow memory alone is
 *     terabytes of VmData/VmSize), while the relative limit works unchanged: ASan's
 *     allocator maps from PROT_NONE reservations that become writable, which RLIMIT_DATA
 *     counts. So one mechanism works in every build. Under ASan, ASan's quarantine keeps
 *     freed memory for a while, so a churning child reaches its limit sooner.
 * For ASan the process must run with allocator_may_return_null=1, or an exhausted child
 * tries to print a report, cannot map memory for it and hangs in a CHECK failure instead of
 * exiting; proc.c supplies that default through __asan_default_options (ASAN_OPTIONS in
 * the environment still overrides it). "Max Memory Used" comes from ru_maxrss, which also
 * counts the inherited pages the child has resident, so it is an upper bound of the
 * child's own use. */
#ifndef EBSD_PROC_H
#define EBSD_PROC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "status.h"

/* Exit status of a child whose setup (rlimits, descriptors, signals) failed before fn ran. */
#define PROC_EXIT_SETUP 114
/* The descriptor number of the pipe's write end inside the child. */
#define PROC_CHILD_FD 3

/* Runs in the child. out_fd is the pipe's write end (blocking); returns the exit status
 * (0..255; EBSD_EXIT_OOM is reserved for allocation failure). */
typedef int (*proc_fn)(int out_fd, void *arg);
/* Runs in a child started from a message (proc_spec.msg): its own copy of the bytes. */
typedef int (*proc_msg_fn)(int out_fd, const void *msg, size_t len);

/* The largest message a child can be started with. */
#define PROC_MSG_MAX (64u * 1024)

/* The stack of a worker's threads (worker.c): 1 MiB, not glibc's 8, since the memory limit
 * counts it. The zygote starts and joins two such threads before its first fork (proc.c). */
#define PROC_THREAD_STACK ((size_t)1 << 20)

struct proc_spec {
    proc_fn fn;
    void *arg;                /* passed to fn in the child (a copy of the parent's memory) */
    size_t mem_limit_bytes;   /* memory the child may add (see above); 0 = no limit */
    unsigned cpu_limit_s;     /* RLIMIT_CPU seconds (SIGKILL when passed); 0 = no limit */
    const char *name;         /* process name shown by ps/top (15 chars kept); NULL = keep */
    unsigned nice;            /* nice increment over the parent (capped at 19); 0 = same */
    /* Instead of fn and arg: the child runs proc_zygote_start's function on a copy of these
     * bytes (at most PROC_MSG_MAX), forked from the zygote while it runs, else from the
     * parent. Such a child must need nothing of the parent's memory but what the zygote
     * inherited at its start and the message. */
    const void *msg;
    size_t msg_len;
};

struct proc_child {
    pid_t pid;
    int fd;                   /* parent's read end: O_NONBLOCK|O_CLOEXEC; caller closes it */
    int64_t start_ms;         /* monotonic ms at fork */
};

enum proc_exit_kind {
    PROC_EXIT_CODE = 0,  /* exited normally with code (0 = success); not 113 */
    PROC_EXIT_OOM,       /* exited with EBSD_EXIT_OOM: hit its memory limit */
    PROC_EXIT_CRASHED,   /* killed by SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGSYS, SIGTRAP
                          * (a libc or library that could not map memory may also end so) */
    PROC_EXIT_SIGNALED   /* killed by another signal: SIGKILL (proc_kill, the deadline, the
                          * kernel OOM killer, RLIMIT_CPU's hard limit), SIGTERM, ... */
};

struct proc_exit {
    pid_t pid;
    enum proc_exit_kind kind;
    int code;                 /* exit code (PROC_EXIT_CODE, PROC_EXIT_OOM), else -1 */
    int signal;               /* terminating signal (CRASHED, SIGNALED), else 0 */
    bool core_dumped;
    long maxrss_kb;           /* ru_maxrss: peak resident set, KiB */
    int64_t user_ms, sys_ms;  /* CPU time used */
    int raw_status;           /* wait status as returned by wait4 */
};


/* Forks a child that runs spec->fn, or the zygote's function on spec->msg (see the model
 * above). On success fills *out; the caller
 * owns out->fd (close it after EOF) and must reap out->pid. EBSD_EBUSY if fork hit a process
 * limit (EAGAIN), EBSD_EIO for other failures (logged); nothing is left behind on failure.
 * Caller flushes stdio first. */
EBSD_MUST_CHECK ebsd_status proc_spawn(const struct proc_spec *spec, struct proc_child *out);

/* proc_spawn for n children at once: sts[i] is specs[i]'s status and outs[i] its child
 * (when EBSD_OK). The zygote is sent every message before any answer is awaited, so it forks
 * the workers back to back rather than one per round trip with this process (an aggregate
 * starts a worker for each of its targets in one pass). Caller flushes stdio first. */
void proc_spawn_many(const struct proc_spec *specs, size_t n, struct proc_child *outs,
                     ebsd_status *sts);

/* Sends SIGKILL to pid. Safe on a child that already exited but is not reaped yet; refuses
 * pid <= 0 (never signals a process group). Reap it afterwards. */
void proc_kill(pid_t pid);

/* Reaps pid if it has ended, without blocking. EBSD_OK: *out filled. EBSD_EBUSY: still
 * running. EBSD_ENOTFOUND: no such child (already reaped, or never ours). EBSD_EIO: other. */
EBSD_MUST_CHECK ebsd_status proc_reap(pid_t pid, struct proc_exit *out);

/* Reaps any one ended child, without blocking; call in a loop on SIGCHLD until it stops
 * returning EBSD_OK. EBSD_EBUSY: children exist but none has ended. EBSD_ENOTFOUND: no
 * children at all. EBSD_EIO: other. */
EBSD_MUST_CHECK ebsd_status proc_reap_any(struct proc_exit *out);

/* Waits for pid to end, up to timeout_ms (polling every millisecond). BLOCKS: for shutdown
 * and tests only, never on the loop. EBSD_ETIMEDOUT if still running at the end. */
EBSD_MUST_CHECK ebsd_status proc_wait(pid_t pid, int64_t timeout_ms, struct proc_exit *out);

/* The zygote. Forking a worker from the parent costs the parent the copy of its page tables,
 * then a page copy (and on a virtual machine a TLB shootdown on the other CPUs) for every
 * page it writes while the worker lives, and the worker the teardown of the parent's whole
 * image when it exits. So workers started with a message are forked from the zygote
 * instead: a small helper forked from the parent at start-up, before the parent's heap grows
 * with caches and results, that does nothing but fork.
 *
 * How a worker is started: the parent makes the pipe and sends the zygote one datagram on a
 * SOCK_SEQPACKET socket pair (a sequence number, the limits and the message, with the pipe's
 * write end as SCM_RIGHTS). The zygote forks the worker with CLONE_PARENT (a raw clone: see
 * fork_sibling in proc.c for why that is safe there), so the worker is the parent's own child:
 * the parent reaps it with wait4 and its rusage, and kills it by pid with no risk of reuse,
 * exactly as a worker it forked itself; the worker sets up as in the model above. The
 * zygote answers with the worker's pid, and wipes the message it kept. It dies with the
 * parent, and ends when the parent closes its end of the socket.
 *
 * The parent blocks for the answer (one fork of a small process, well under a millisecond;
 * its own fork blocked it longer). A zygote that does not answer within a second, or is gone,
 * is ended and started again at the next spawn (at most once a second); meanwhile workers are
 * forked from the parent as before, running the same function on the same message.
 *
 * proc_zygote_start(fn) sets the function every message runs (in either case) and forks a
 * new zygote, ending the one before. The zygote keeps what the parent had at that moment, so
 * what may change later (a reload) belongs in the messages. proc_zygote_stop ends it for good (shutdown). proc_zygote_pid is its
 * pid (0 when none runs), and proc_zygote_gone tells proc that a pid the caller reaped and
 * does not know may be the zygote's: true when it was. */
ebsd_status proc_zygote_start(proc_msg_fn fn);
/* Spare workers: asks the zygote to keep n of them ready (at most 64; 0: none), forking the
 * ones missing now. A spare is forked ahead of its request and has done the set-up that
 * needs no message (its signals, death with the parent; named "ebsd-spare"); the zygote
 * hands the next worker's message and pipe to a spare, if one is ready, instead of forking,
 * and answers with the spare's pid. So a request's workers skip the fork and part of their
 * set-up, which on a small machine contend with the other workers of an aggregate.
 * A spare is this process's child (CLONE_PARENT) before it is a worker: reap it like any
 * (it ends when the zygote ends or keeps fewer). Call it when nothing runs: the forks cost
 * CPU. Does nothing without a zygote; nothing is answered. */
void proc_spares(unsigned n);
/* What each spare runs before it waits for its message (worker_spare_warm): set before
 * proc_zygote_start, whose zygote inherits it. The descriptors it opens stay open in the
 * worker (a spare closed what it inherited before it ran fn). */
void proc_spares_warm(void (*fn)(void));
void proc_zygote_stop(void);
pid_t proc_zygote_pid(void);
bool proc_zygote_gone(pid_t pid);

/* Megabytes for a REPORT line's "Max Memory Used": KiB rounded up to whole MiB. */
long proc_kb_to_mb(long kb);

/* A short description of how a child ended ("exited 0", "out of memory (exit 113)",
 * "crashed: SIGSEGV", "killed: SIGKILL") written into buf. Returns buf. */
const char *proc_exit_describe(const struct proc_exit *e, char *buf, size_t len);

/* The peak resident set of a live child so far (VmHWM of /proc/PID/status, KiB: what
 * wait4's ru_maxrss will say once it is reaped); 0 when it cannot be read. */
long proc_peak_rss_kb(pid_t pid);

#endif
