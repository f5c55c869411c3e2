/* test_daemon.c - the composition root run in this process on a real loop: the server it
 * wires answers on 127.0.0.1, the workers it wires fetch from ec2sim (started here), and
 * the signals it owns are sent with kill(getpid()). The systemd notifications are read from
 * a datagram socket bound here as NOTIFY_SOCKET. Asserted: READY=1 once serving; SIGHUP
 * re-reads the file (RELOADING=1 with MONOTONIC_USEC, then READY=1) and the new settings
 * rule (bearer tokens turned on: 401 without one); a broken file is refused and the running
 * settings kept (READY=1 again, still 401); SIGTERM sends STOPPING=1, closes the listener
 * (a new connection is refused), lets the request in flight finish with its 200 and only
 * then returns from daemon_run; without --config SIGHUP is ignored (no RELOADING=1); a
 * request still in flight at the end of drain_timeout_s is answered 503 and daemon_run
 * returns at that deadline. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "harness.h"
#include "loop.h"
#include "mem.h"

#define TOKEN "unit-test-token-0123456789"

static struct harness_sim sim;
static char dir[] = "/tmp/test_daemon_XXXXXX";
static char cfg_path[256], token_path[256], notify_path[100];
static int notify_fd = -1;
static int port;

/* ---------------------------------------------------------------- helpers */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void write_config(const char *extra, unsigned drain_s)
{
    FILE *f = fopen(cfg_path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f,
            "listen: \"127.0.0.1:%d\"\n"
            "regions: [us-east-1]\n"
            "ec2:\n  endpoint: \"%s\"\n"
            "server:\n  drain_timeout_s: %u\n"
            "refresh:\n  interval_s: 0\n"
            "log:\n  level: warn\n"
            "%s",
            port, sim.url, drain_s, extra);
    fclose(f);
}

/* The notifications received so far, joined with '|' (newlines inside one kept). */
static char notes[4096];

static void read_notes(void)
{
    char buf[512];
    ssize_t n;
    while ((n = recv(notify_fd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
        buf[n] = '\0';
        size_t len = strlen(notes);
        snprintf(notes + len, sizeof notes - len, "%s|", buf);
    }
}

static int count_notes(const char *what)
{
    int n = 0;
    for (const char *p = notes; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* An HTTP client in a forked child (the loop serving it runs in this process): it writes
 * the answer's status (-1: no connection) to the returned pipe and exits. */
static int client(const char *path, bool with_token)
{
    int p[2];
    CHECK(pipe(p) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        int status = -1;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            char req[512];
            int n = snprintf(req, sizeof req,
                             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n",
                             path, with_token ? "Authorization: Bearer " TOKEN "\r\n" : "");
            char resp[64] = "";
            if (write(fd, req, (size_t)n) == n && read(fd, resp, sizeof resp - 1) > 12)
                status = (int)strtol(resp + 9, NULL, 10);
        }
        dprintf(p[1], "%d", status);
        _exit(0);
    }
    close(p[1]);
    CHECK(pid > 0);
    return p[0];
}

/* The status a client wrote, once it has (-2 while it has not; blocking: wait for it). */
static int client_result(int fd, bool block)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, block ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
    char buf[16] = "";
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return -2;
    close(fd);
    return (int)strtol(buf, NULL, 10);
}

static void sim_latency(int ms)
{
    char body[128];
    snprintf(body, sizeof body, "{\"latency\": {\"DescribeInstances\": %d}}", ms);
    CHECK(harness_sim_faults(&sim, body));
}

/* ---------------------------------------------------------------- the first daemon */

struct run1 {
    int state;
    int fd;                    /* the client in progress */
    int healthz, unauth, kept, refused;
    int fd_inflight;           /* the request in flight at SIGTERM */
    int64_t term_at, state_at;
    char reload_note[128];
};
static struct run1 r1;

static void drive1(struct loop *l, void *arg)
{
    (void)arg;
    read_notes();
    int64_t now = clock_now_ms();
    int res;
    switch (r1.state) {
    case 0: /* serving: READY=1 */
        if (count_notes("READY=1") == 1) {
            r1.fd = client("/healthz", false);
            r1.state = 1;
        }
        break;
    case 1:
        if ((res = client_result(r1.fd, false)) == -2)
            break;
        r1.healthz = res;
        /* turn bearer tokens on and reload */
        char extra[400];
        snprintf(extra, sizeof extra, "security:\n  auth_tokens_file: \"%s\"\n", token_path);
        write_config(extra, 5);
        kill(getpid(), SIGHUP);
        r1.state = 2;
        break;
    case 2:
        if (count_notes("READY=1") == 2) {
            const char *rl = strstr(notes, "RELOADING=1");
            snprintf(r1.reload_note, sizeof r1.reload_note, "%s", rl ? rl : "");
            r1.fd = client("/volumes/total", false);
            r1.state = 3;
        }
        break;
    case 3:
        if ((res = client_result(r1.fd, false)) == -2)
            break;
        r1.unauth = res;
        /* a broken file: refused, the running settings kept */
        FILE *f = fopen(cfg_path, "w");
        if (f) {
            fputs("server:\n  drain_timeout_s: many\n", f);
            fclose(f);
        }
        kill(getpid(), SIGHUP);
        r1.state = 4;
        break;
    case 4:
        if (count_notes("READY=1") == 3) {
            r1.fd = client("/volumes/total", false);
            r1.state = 5;
        }
        break;
    case 5:
        if ((res = client_result(r1.fd, false)) == -2)
            break;
        r1.kept = res;
        sim_latency(800);
        r1.fd_inflight = client("/volumes/total", true);
        r1.state = 6;
        r1.state_at = now;
        break;
    case 6: /* the request is in flight (its lister waits 800 ms): SIGTERM */
        if (now - r1.state_at < 250)
            break;
        r1.term_at = now;
        kill(getpid(), SIGTERM);
        r1.state = 7;
        break;
    case 7:
        if (count_notes("STOPPING=1") == 1) {
            r1.fd = client("/healthz", false);
            r1.state = 8;
        }
        break;
    case 8:
        if ((res = client_result(r1.fd, false)) == -2)
            break;
        r1.refused = res;
        r1.state = 9;
        break;
    default:
        break;
    }
    (void)loop_timer_start(l, now + 10, drive1, NULL);
}

static void test_signals_reload_drain(void)
{
    port = free_port();
    write_config("", 5);
    struct loop *l = NULL;
    CHECK_INT(loop_new(&l), EBSD_OK);
    struct config *cfg = xcalloc(1, sizeof *cfg);
    struct config_error err;
    CHECK_INT(config_load(cfg_path, cfg, &err), EBSD_OK);
    struct daemon *d = NULL;
    CHECK_INT(daemon_new(l, cfg, cfg_path, NULL, &d), EBSD_OK);
    if (!d)
        return;
    memset(&r1, 0, sizeof r1);
    r1.healthz = r1.unauth = r1.kept = r1.refused = -3;
    notes[0] = '\0';
    (void)loop_timer_start(l, clock_now_ms(), drive1, NULL);
    CHECK_INT(daemon_run(d), EBSD_OK);
    int64_t returned = clock_now_ms();
    read_notes();
    int inflight = r1.fd_inflight > 0 ? client_result(r1.fd_inflight, true) : -3;
    if (r1.state == 8) { /* the refused client may finish after the loop stopped */
        r1.refused = client_result(r1.fd, true);
        r1.state = 9;
    }
    daemon_free(d);
    loop_free(l);

    CHECK_INT(r1.state, 9);
    CHECK_INT(r1.healthz, 200);
    /* the reload: RELOADING=1 with the monotonic clock (µs), then READY=1 */
    CHECK(strncmp(r1.reload_note, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
    long long usec = strtoll(r1.reload_note + 27, NULL, 10);
    CHECK(usec > 0 && usec <= clock_now_us() && usec > clock_now_us() - 10000000);
    CHECK_INT(count_notes("RELOADING=1"), 2);
    CHECK_INT(r1.unauth, 401); /* the reloaded file's tokens are in force */
    CHECK_INT(r1.kept, 401);   /* the broken file changed nothing */
    CHECK_INT(count_notes("READY=1"), 3);
    CHECK_INT(count_notes("STOPPING=1"), 1);
    CHECK_INT(r1.refused, -1); /* draining: the listener is closed */
    CHECK_INT(inflight, 200);  /* the request in flight was finished, not cut */
    CHECK(returned - r1.term_at >= 400); /* daemon_run waited for it (800 ms lister) */
    CHECK(returned - r1.term_at < 4000); /* and not for the drain timeout */
    /* the order systemd saw */
    const char *ready1 = strstr(notes, "READY=1"), *stopping = strstr(notes, "STOPPING=1");
    CHECK(ready1 && stopping && ready1 < strstr(notes, "RELOADING=1") && stopping > ready1);
}

/* ---------------------------------------------------------------- the second daemon */

struct run2 {
    int state;
    int fd_inflight;
    int64_t term_at, state_at;
};
static struct run2 r2;

static void drive2(struct loop *l, void *arg)
{
    (void)arg;
    read_notes();
    int64_t now = clock_now_ms();
    switch (r2.state) {
    case 0:
        if (count_notes("READY=1") == 1) {
            kill(getpid(), SIGHUP); /* no --config: nothing to re-read */
            r2.state = 1;
            r2.state_at = now;
        }
        break;
    case 1:
        if (now - r2.state_at < 200)
            break;
        r2.fd_inflight = client("/volumes/total", false);
        r2.state = 2;
        r2.state_at = now;
        break;
    case 2:
        if (now - r2.state_at < 250)
            break;
        r2.term_at = now;
        kill(getpid(), SIGTERM);
        r2.state = 3;
        break;
    default:
        break;
    }
    (void)loop_timer_start(l, now + 10, drive2, NULL);
}

static void test_drain_timeout_and_no_config(void)
{
    port = free_port();
    write_config("", 1);
    struct loop *l = NULL;
    CHECK_INT(loop_new(&l), EBSD_OK);
    struct config *cfg = xcalloc(1, sizeof *cfg);
    struct config_error err;
    CHECK_INT(config_load(cfg_path, cfg, &err), EBSD_OK);
    sim_latency(2500); /* longer than drain_timeout_s */
    struct daemon *d = NULL;
    CHECK_INT(daemon_new(l, cfg, NULL, NULL, &d), EBSD_OK);
    if (!d)
        return;
    memset(&r2, 0, sizeof r2);
    notes[0] = '\0';
    (void)loop_timer_start(l, clock_now_ms(), drive2, NULL);
    CHECK_INT(daemon_run(d), EBSD_OK);
    int64_t returned = clock_now_ms();
    read_notes();
    int inflight = r2.fd_inflight > 0 ? client_result(r2.fd_inflight, true) : -3;
    daemon_free(d);
    loop_free(l);
    sim_latency(0);

    CHECK_INT(r2.state, 3);
    CHECK_INT(count_notes("RELOADING=1"), 0); /* SIGHUP without a file: ignored */
    CHECK_INT(count_notes("READY=1"), 1);
    CHECK_INT(count_notes("STOPPING=1"), 1);
    CHECK(returned - r2.term_at >= 1000); /* drain_timeout_s: 1 */
    CHECK(returned - r2.term_at < 2500);
    CHECK_INT(inflight, 503); /* answered "shutting down", not left hanging */
}

/* ---------------------------------------------------------------- set-up */

static void test_setup(void)
{
    static const char *const args[] = {"--instances", "10", NULL};
    if (!harness_sim_start(&sim, args) || !mkdtemp(dir))
        exit(1);
    snprintf(cfg_path, sizeof cfg_path, "%s/ebsd.yaml", dir);
    snprintf(token_path, sizeof token_path, "%s/tokens", dir);
    snprintf(notify_path, sizeof notify_path, "%s/notify", dir);
    FILE *t = fopen(token_path, "w");
    CHECK(t != NULL);
    if (!t)
        exit(1);
    fputs(TOKEN "\n", t);
    fclose(t);
    chmod(token_path, 0600);
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, notify_path, strlen(notify_path) + 1);
    CHECK(bind(notify_fd, (struct sockaddr *)&a, sizeof a) == 0);
    setenv("NOTIFY_SOCKET", notify_path, 1);
    static char home[300];
    snprintf(home, sizeof home, "%s", dir);
    harness_aws_env(home, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
}

static void test_teardown(void)
{
    unsetenv("NOTIFY_SOCKET");
    close(notify_fd);
    unlink(notify_path);
    unlink(cfg_path);
    unlink(token_path);
    rmdir(dir);
    harness_sim_stop(&sim);
}

TEST_MAIN(T(test_setup), T(test_signals_reload_drain), T(test_drain_timeout_and_no_config),
          T(test_teardown))
