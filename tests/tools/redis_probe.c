/* redis_probe.c - drives src/store/redis.c and src/store/redisstate.c on a real loop for
 * tests/integration/test_redis.py: two command connections (a, b) and one subscriber to
 * one Redis, and a line protocol on stdin/stdout (one request line, one answer line), so
 * the test can kill, stop and restart redis-server between steps.
 *
 * Usage: redis_probe URL [--password-file F] [--ca-file F] [--prefix P]
 *                        [--connect-timeout-ms N] [--command-timeout-ms N]
 *                        [--max-reply-bytes N]
 *                        [--iam USER:CACHE:REGION:RENEW_MS]  (ElastiCache IAM tokens from
 *                        AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN)
 * Answers are the lines that start with "= " (log lines share stdout).
 * Requests (CONN is a or b):
 *   wait_up MS                    -> "up" | "down"   (all three connections)
 *   wait_down MS                  -> "down" | "up"   (connection a)
 *   state                         -> "a=0|1 b=0|1 sub=0|1"
 *   cmd CONN ARG...               -> "ok REPLY" | "err STATUS REPLY" (REPLY: the reply, one line)
 *   timed CONN ARG...             -> as cmd, then " ms=N" (time to the callback)
 *   limit CONN KEY RATE BURST     -> "allowed 0|1 wait=N"
 *   limitrun KEY RATE BURST MS    -> "allowed=N refused=N errors=N ms=N" (a and b in turn)
 *   lock CONN KEY TTL             -> "acquired TOKEN" | "held PTTL"
 *   release CONN KEY TOKEN        -> "released 0|1"
 *   extend CONN KEY TOKEN TTL     -> "extended 0|1"
 *   waitwake KEY MS               -> "woken ms=N" | "timeout" (a wake message for KEY)
 *   waitmsg MS                    -> "msg PAYLOAD" | "timeout" (SUBSCRIBE PREFIXprobe)
 *   announce CONN ID TTL          -> "count N"
 *   withdraw CONN ID              -> "count N"
 *   stats CONN                    -> "connects=N disconnects=N timeouts=N refused=N ..."
 *   quit */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "loop.h"
#include "mem.h"
#include "redis.h"
#include "redisiam.h"
#include "redisstate.h"

#define MAX_ARGS 16

static struct loop *L;
static struct redis *conn_a, *conn_b, *conn_sub;
static const char *prefix = "ebsd:";
static struct buf in;
static bool busy;
static bool stdin_eof;
static struct loop_timer *step_timer;
static int64_t step_start;

static void next_request(void);

static void answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void answer(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("= ", stdout); /* answers start with "= "; log lines share stdout */
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    busy = false;
    loop_timer_stop(L, step_timer);
    step_timer = NULL;
}

static struct redis *pick(const char *name)
{
    return strcmp(name, "b") == 0 ? conn_b : conn_a;
}

/* One reply on one line (strings as they are, arrays in []). */
static void show(struct buf *b, const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        if (buf_append(b, r->str, r->len) != EBSD_OK)
            return;
        break;
    case REDIS_REPLY_INTEGER:
        if (buf_printf(b, "%lld", r->integer) != EBSD_OK)
            return;
        break;
    case REDIS_REPLY_NIL:
        if (buf_puts(b, "(nil)") != EBSD_OK)
            return;
        break;
    case REDIS_REPLY_ARRAY:
        if (buf_puts(b, "[") != EBSD_OK)
            return;
        for (size_t i = 0; i < r->elements; i++) {
            if (i)
                if (buf_puts(b, " ") != EBSD_OK)
            return;
            show(b, r->element[i]);
        }
        if (buf_puts(b, "]") != EBSD_OK)
            return;
        break;
    }
}

/* ---- cmd / timed */

static bool timed_cmd;

static void on_cmd(struct redis *r, const redisReply *reply, ebsd_status st, void *arg)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    if (reply)
        show(&b, reply);
    char ms[32] = "";
    if (timed_cmd)
        snprintf(ms, sizeof ms, " ms=%lld", (long long)(clock_now_ms() - step_start));
    if (st == EBSD_OK)
        answer("ok %s%s", b.data ? b.data : "", ms);
    else
        answer("err %s %s%s", status_str(st), b.data ? b.data : "", ms);
    buf_free(&b);
}

/* ---- limiter */

static void on_limit(ebsd_status st, bool allowed, int64_t wait_ms, void *arg)
{
    if (st != EBSD_OK)
        answer("err %s", status_str(st));
    else
        answer("allowed %d wait=%lld", allowed ? 1 : 0, (long long)wait_ms);
}

static struct {
    char *key;
    double rate, burst;
    int64_t end;
    long allowed, refused, errors, inflight;
    unsigned turn;
} run;

static void run_more(void);

static void on_run_timer(struct loop *l, void *arg)
{
    step_timer = NULL; /* fired: the loop has let go of it */
    run_more();
}

static void on_run(ebsd_status st, bool allowed, int64_t wait_ms, void *arg)
{
    run.inflight--;
    if (st != EBSD_OK)
        run.errors++;
    else if (allowed)
        run.allowed++;
    else
        run.refused++;
    run_more();
}

static void run_more(void)
{
    int64_t now = clock_now_ms();
    while (now < run.end && run.inflight < 4) {
        struct redis *r = (run.turn++ & 1) ? conn_b : conn_a;
        if (redisstate_limit_take(r, run.key, run.rate, run.burst, 1, on_run, NULL) != EBSD_OK) {
            run.errors++;
            break;
        }
        run.inflight++;
    }
    if (now >= run.end && run.inflight == 0) {
        answer("allowed=%ld refused=%ld errors=%ld ms=%lld", run.allowed, run.refused,
               run.errors, (long long)(now - step_start));
        free(run.key);
        run.key = NULL;
    } else if (run.inflight == 0) {
        /* all refused at submit (down): poll again shortly */
        loop_timer_stop(L, step_timer);
        step_timer = loop_timer_start(L, now + 5, on_run_timer, NULL);
    }
}

/* ---- lock */

static char lock_token[REDISSTATE_TOKEN_LEN + 1];

static void on_lock(ebsd_status st, bool acquired, int64_t ttl_left, void *arg)
{
    if (st != EBSD_OK)
        answer("err %s", status_str(st));
    else if (acquired)
        answer("acquired %s", lock_token);
    else
        answer("held %lld", (long long)ttl_left);
}

static void on_done(ebsd_status st, bool done, void *arg)
{
    if (st != EBSD_OK)
        answer("err %s", status_str(st));
    else
        answer("%s %d", (const char *)arg, done ? 1 : 0);
}

static char *wake_key;

static void on_wake(struct redis *r, const char *ch, size_t chlen, const char *msg,
                    size_t msglen, void *arg)
{
    if (!wake_key || !busy)
        return;
    size_t plen = strlen(prefix) + 5; /* "wake:" */
    if (chlen == plen + strlen(wake_key) && memcmp(ch + plen, wake_key, chlen - plen) == 0 &&
        msglen == 8 && memcmp(msg, "released", 8) == 0) {
        free(wake_key);
        wake_key = NULL;
        answer("woken ms=%lld", (long long)(clock_now_ms() - step_start));
    }
}

static bool wait_msg;

/* Plain SUBSCRIBE (not a pattern): PREFIXprobe. */
static void on_probe_msg(struct redis *r, const char *ch, size_t chlen, const char *msg,
                         size_t msglen, void *arg)
{
    if (!wait_msg || !busy)
        return;
    wait_msg = false;
    answer("msg %.*s", (int)msglen, msg);
}

static void on_step_timeout(struct loop *l, void *arg)
{
    step_timer = NULL;
    free(wake_key);
    wake_key = NULL;
    wait_msg = false;
    answer("timeout");
}

static void on_count(ebsd_status st, int64_t n, void *arg)
{
    if (st != EBSD_OK)
        answer("err %s", status_str(st));
    else
        answer("count %lld", (long long)n);
}

/* ---- waiting for state */

static int wait_kind; /* 1 up, 2 down */
static int64_t wait_end;

static void wait_check(struct loop *l, void *arg)
{
    step_timer = NULL;
    bool up = redis_is_up(conn_a) && redis_is_up(conn_b) && redis_is_up(conn_sub);
    if (wait_kind == 1 && up) {
        answer("up");
        return;
    }
    if (wait_kind == 2 && !redis_is_up(conn_a)) {
        answer("down");
        return;
    }
    if (clock_now_ms() >= wait_end) {
        answer(wait_kind == 1 ? "down" : "up");
        return;
    }
    step_timer = loop_timer_start(L, clock_now_ms() + 10, wait_check, NULL);
}

/* ---- requests */

static void handle(char *line)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    for (char *p = line; *p && argc < MAX_ARGS;) {
        while (*p == ' ')
            *p++ = '\0';
        if (!*p)
            break;
        argv[argc++] = p;
        p += strcspn(p, " ");
    }
    if (argc == 0) {
        busy = false;
        return;
    }
    busy = true;
    step_start = clock_now_ms();
    const char *op = argv[0];
    ebsd_status st = EBSD_EINVAL;
    if (strcmp(op, "quit") == 0) {
        loop_stop(L);
        return;
    } else if ((strcmp(op, "wait_up") == 0 || strcmp(op, "wait_down") == 0) && argc == 2) {
        wait_kind = op[5] == 'u' ? 1 : 2;
        wait_end = step_start + strtoll(argv[1], NULL, 10);
        wait_check(L, NULL);
        return;
    } else if (strcmp(op, "state") == 0) {
        answer("a=%d b=%d sub=%d", redis_is_up(conn_a), redis_is_up(conn_b),
               redis_is_up(conn_sub));
        return;
    } else if ((strcmp(op, "cmd") == 0 || strcmp(op, "timed") == 0) && argc >= 3) {
        timed_cmd = op[0] == 't';
        st = redis_command(pick(argv[1]), argc - 2, (const char **)argv + 2, NULL, on_cmd, NULL);
    } else if (strcmp(op, "limit") == 0 && argc == 5) {
        st = redisstate_limit_take(pick(argv[1]), argv[2], strtod(argv[3], NULL),
                                   strtod(argv[4], NULL), 1, on_limit, NULL);
    } else if (strcmp(op, "limitrun") == 0 && argc == 5) {
        memset(&run, 0, sizeof run);
        run.key = xstrdup(argv[1]);
        run.rate = strtod(argv[2], NULL);
        run.burst = strtod(argv[3], NULL);
        run.end = step_start + strtoll(argv[4], NULL, 10);
        run_more();
        return;
    } else if (strcmp(op, "lock") == 0 && argc == 4) {
        if (redisstate_token(lock_token) != EBSD_OK) {
            answer("err token");
            return;
        }
        st = redisstate_lock_acquire(pick(argv[1]), argv[2], lock_token,
                                     (uint32_t)strtoul(argv[3], NULL, 10), on_lock, NULL);
    } else if (strcmp(op, "release") == 0 && argc == 4) {
        st = redisstate_lock_release(pick(argv[1]), prefix, argv[2], argv[3], on_done,
                                     "released");
    } else if (strcmp(op, "extend") == 0 && argc == 5) {
        st = redisstate_lock_extend(pick(argv[1]), argv[2], argv[3],
                                    (uint32_t)strtoul(argv[4], NULL, 10), on_done, "extended");
    } else if (strcmp(op, "waitwake") == 0 && argc == 3) {
        free(wake_key);
        wake_key = xstrdup(argv[1]);
        step_timer = loop_timer_start(L, step_start + strtoll(argv[2], NULL, 10),
                                      on_step_timeout, NULL);
        return;
    } else if (strcmp(op, "waitmsg") == 0 && argc == 2) {
        wait_msg = true;
        step_timer = loop_timer_start(L, step_start + strtoll(argv[1], NULL, 10),
                                      on_step_timeout, NULL);
        return;
    } else if (strcmp(op, "announce") == 0 && argc == 4) {
        st = redisstate_announce(pick(argv[1]), prefix, argv[2],
                                 (uint32_t)strtoul(argv[3], NULL, 10), on_count, NULL);
    } else if (strcmp(op, "withdraw") == 0 && argc == 3) {
        st = redisstate_withdraw(pick(argv[1]), prefix, argv[2], on_count, NULL);
    } else if (strcmp(op, "stats") == 0 && argc == 2) {
        struct redis_stats s;
        redis_get_stats(strcmp(argv[1], "sub") == 0 ? conn_sub : pick(argv[1]), &s);
        answer("connects=%llu connect_failures=%llu disconnects=%llu commands=%llu "
               "error_replies=%llu timeouts=%llu refused=%llu protocol_errors=%llu",
               (unsigned long long)s.connects, (unsigned long long)s.connect_failures,
               (unsigned long long)s.disconnects, (unsigned long long)s.commands,
               (unsigned long long)s.error_replies, (unsigned long long)s.timeouts,
               (unsigned long long)s.refused, (unsigned long long)s.protocol_errors);
        return;
    } else {
        answer("err usage");
        return;
    }
    if (st != EBSD_OK)
        answer("refused %s", status_str(st));
}

static void next_request(void)
{
    while (!busy && in.len) {
        char *nl = memchr(in.data, '\n', in.len);
        if (!nl)
            return;
        *nl = '\0';
        char *line = xstrdup(in.data);
        size_t used = (size_t)(nl - in.data) + 1;
        memmove(in.data, in.data + used, in.len - used);
        in.len -= used;
        in.data[in.len] = '\0';
        handle(line);
        free(line);
    }
    if (!busy && stdin_eof && !memchr(in.data ? in.data : "", '\n', in.len))
        loop_stop(L);
}

static void on_stdin(struct loop *l, int fd, uint32_t events, void *arg)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        loop_del_fd(l, fd);
        stdin_eof = true;
        return;
    }
    if (buf_append(&in, chunk, (size_t)n) != EBSD_OK) {
        fprintf(stderr, "redis_probe: request too long\n");
        exit(2);
    }
}

/* Requests are taken between loop iterations: answers may come from any callback. */
static int64_t prepare(struct loop *l, void *arg)
{
    next_request();
    return -1;
}

static ebsd_status env_creds(struct sigv4_credentials *out, void *arg)
{
    out->access_key_id = getenv("AWS_ACCESS_KEY_ID");
    out->secret_access_key = getenv("AWS_SECRET_ACCESS_KEY");
    out->session_token = getenv("AWS_SESSION_TOKEN");
    return out->access_key_id && out->secret_access_key ? EBSD_OK : EBSD_EAUTH;
}

int main(int argc, char **argv)
{
    char *iam = NULL;
    struct redis_iam_renewer *renewer = NULL;
    if (argc < 2) {
        fprintf(stderr, "usage: redis_probe URL [options]\n");
        return 2;
    }
    log_setup(LOG_FORMAT_TEXT, LOGL_INFO);
    struct redis_options o = {.connect_timeout_ms = 500, .command_timeout_ms = 200};
    char why[128];
    char *password = NULL;
    if (redis_url_parse(argv[1], &o.url, why, sizeof why) != EBSD_OK) {
        fprintf(stderr, "redis_probe: %s\n", why);
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--password-file") == 0) {
            if (redis_password_load(argv[i + 1], &password) != EBSD_OK) {
                fprintf(stderr, "redis_probe: cannot read %s\n", argv[i + 1]);
                return 2;
            }
        } else if (strcmp(argv[i], "--ca-file") == 0) {
            o.ca_file = argv[i + 1];
        } else if (strcmp(argv[i], "--iam") == 0) {
            iam = argv[i + 1];
        } else if (strcmp(argv[i], "--prefix") == 0) {
            prefix = argv[i + 1];
        } else if (strcmp(argv[i], "--connect-timeout-ms") == 0) {
            o.connect_timeout_ms = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--max-reply-bytes") == 0) {
            o.max_reply_bytes = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--command-timeout-ms") == 0) {
            o.command_timeout_ms = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        }
    }
    o.password = password;
    if (loop_new(&L) != EBSD_OK)
        return 1;
    o.name = "a";
    if (redis_new(L, &o, &conn_a) != EBSD_OK)
        return 1;
    o.name = "b";
    if (redis_new(L, &o, &conn_b) != EBSD_OK)
        return 1;
    o.name = "sub";
    o.subscriber = true;
    if (redis_new(L, &o, &conn_sub) != EBSD_OK)
        return 1;
    free(password);
    if (iam) {
        /* USER:CACHE:REGION:RENEW_MS, split in place */
        char *f[4] = {iam, NULL, NULL, NULL};
        for (int k = 1; k < 4; k++) {
            f[k] = f[k - 1] ? strchr(f[k - 1], ':') : NULL;
            if (f[k])
                *f[k]++ = '\0';
        }
        if (!f[3]) {
            fprintf(stderr, "redis_probe: --iam USER:CACHE:REGION:RENEW_MS\n");
            return 2;
        }
        const struct redis_iam_params ip = {.user = f[0], .cache = f[1], .region = f[2]};
        struct redis *conns[3] = {conn_a, conn_b, conn_sub};
        if (redis_iam_start(L, &ip, env_creds, NULL, conns, 3,
                            (uint32_t)strtoul(f[3], NULL, 10), &renewer) != EBSD_OK)
            return 1;
    }
    char *pattern = redisstate_wake_pattern(prefix);
    if (redis_subscribe(conn_sub, pattern, true, on_wake, NULL) != EBSD_OK)
        return 1;
    free(pattern);
    char *channel = xasprintf("%sprobe", prefix);
    if (redis_subscribe(conn_sub, channel, false, on_probe_msg, NULL) != EBSD_OK)
        return 1;
    free(channel);
    buf_init(&in, 1 << 16);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    if (loop_add_fd(L, 0, EPOLLIN, on_stdin, NULL) != EBSD_OK)
        return 1;
    loop_set_prepare(L, prepare, NULL);
    ebsd_status st = loop_run(L);
    redis_iam_stop(renewer);
    redis_free(conn_a);
    redis_free(conn_b);
    redis_free(conn_sub);
    buf_free(&in);
    free(run.key);
    free(wake_key);
    loop_free(L);
    return st == EBSD_OK ? 0 : 1;
}
