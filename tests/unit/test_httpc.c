/* test_httpc.c - the per-attempt bounds of httpc against scripted servers on 127.0.0.1
 * (forked): a server that never answers and one that stalls mid-body hit the read timeout
 * long before the deadline; a slow but steady answer does not; the deadline still wins
 * when it comes first; a listener that never completes the handshake hits the connect
 * timeout; the Date header is kept; a sink gets a 2xx body piece by piece and never a
 * non-2xx one, can stop the transfer, and is bounded by the response cap. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"
#include "httpc.h"

enum mode { SILENT, STALL, TRICKLE, DATE, ERROR503, HUNDRED };

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int listener(int backlog, int *port)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(bind(ls, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(ls, backlog) == 0);
    CHECK(getsockname(ls, (struct sockaddr *)&a, &al) == 0);
    *port = ntohs(a.sin_port);
    return ls;
}

static void put(int fd, const char *s)
{
    if (write(fd, s, strlen(s)) < 0)
        _exit(1);
}

/* Serves one connection in the given mode, then waits for the client to close it. */
static pid_t serve(enum mode m, int *port)
{
    int ls = listener(4, port);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0)
            _exit(1);
        char req[4096];
        if (read(fd, req, sizeof req) <= 0) /* the small request arrives in one piece */
            _exit(1);
        switch (m) {
        case SILENT:
            break;
        case STALL:
            put(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
            break;
        case TRICKLE:
            put(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
            for (int i = 0; i < 10; i++) {
                sleep_ms(100);
                put(fd, "x");
            }
            break;
        case ERROR503:
            put(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\n<Error/>\n");
            break;
        case HUNDRED:
            put(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
            for (int i = 0; i < 10; i++)
                put(fd, "0123456789");
            break;
        case DATE:
            put(fd, "HTTP/1.1 200 OK\r\nDate: Wed, 02 Dec 2026 17:19:33 GMT\r\n"
                    "Content-Length: 2\r\n\r\nok");
            break;
        }
        char c;
        while (read(fd, &c, 1) > 0) /* until the client closes */
            ;
        _exit(0);
    }
    close(ls);
    return pid;
}

static void finish(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* What a test's sink received; it refuses more than stop_after bytes (0: no bound). */
struct sunk {
    char data[256];
    size_t len;
    int pieces;
    size_t stop_after;
};

static bool sink(void *arg, const char *piece, size_t n)
{
    struct sunk *k = arg;
    k->pieces++;
    if (k->stop_after && k->len + n > k->stop_after)
        return false;
    if (n > sizeof k->data - k->len)
        n = sizeof k->data - k->len;
    memcpy(k->data + k->len, piece, n);
    k->len += n;
    return true;
}

/* One GET to the port with the given bounds, the body to k when given; *ms receives the
 * time it took. */
static ebsd_status get_into(int port, int64_t deadline_ms, int64_t connect_ms, int64_t read_ms,
                            struct sunk *k, size_t max_response, struct httpc_response *resp,
                            int64_t *ms)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    struct httpc *h = httpc_new();
    struct httpc_request req = {.method = "GET", .url = url,
                                .deadline = clock_now_ms() + deadline_ms,
                                .connect_timeout_ms = connect_ms, .read_timeout_ms = read_ms,
                                .max_response = max_response,
                                .sink = k ? sink : NULL, .sink_arg = k};
    int64_t t0 = clock_now_ms();
    ebsd_status st = httpc_perform(h, &req, resp);
    *ms = clock_now_ms() - t0;
    httpc_free(h);
    return st;
}

static ebsd_status get(int port, int64_t deadline_ms, int64_t connect_ms, int64_t read_ms,
                       struct httpc_response *resp, int64_t *ms)
{
    return get_into(port, deadline_ms, connect_ms, read_ms, NULL, 0, resp, ms);
}

static void test_no_answer_read_timeout(void)
{
    int port;
    pid_t pid = serve(SILENT, &port);
    struct httpc_response r;
    int64_t ms;
    CHECK_INT(get(port, 5000, 0, 300, &r, &ms), EBSD_ENETWORK);
    CHECK(r.timed_out);
    CHECK_INT(r.status, 0);
    CHECK(strstr(r.error, "no answer for 300 ms") != NULL);
    CHECK(ms >= 290 && ms < 1500);
    httpc_response_free(&r);
    finish(pid);
}

static void test_stalled_body_read_timeout(void)
{
    int port;
    pid_t pid = serve(STALL, &port);
    struct httpc_response r;
    int64_t ms;
    CHECK_INT(get(port, 5000, 0, 300, &r, &ms), EBSD_ENETWORK);
    CHECK(r.timed_out);
    CHECK_INT(r.status, 0);
    CHECK(strstr(r.error, "stalled") != NULL);
    CHECK(ms >= 290 && ms < 1500);
    httpc_response_free(&r);
    finish(pid);
}

static void test_steady_answer_is_not_cut(void)
{
    /* 10 bytes, one every 100 ms: slower in total than the 300 ms read timeout, but never
     * silent that long */
    int port;
    pid_t pid = serve(TRICKLE, &port);
    struct httpc_response r;
    int64_t ms;
    CHECK_INT(get(port, 5000, 0, 300, &r, &ms), EBSD_OK);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.body.len, 10);
    CHECK(!r.timed_out);
    CHECK(ms >= 900);
    httpc_response_free(&r);
    finish(pid);
}

static void test_deadline_before_read_timeout(void)
{
    int port;
    pid_t pid = serve(SILENT, &port);
    struct httpc_response r;
    int64_t ms;
    CHECK_INT(get(port, 250, 0, 2000, &r, &ms), EBSD_ETIMEDOUT);
    CHECK(r.timed_out);
    CHECK(ms >= 240 && ms < 1000);
    httpc_response_free(&r);
    finish(pid);
}

static void test_connect_timeout(void)
{
    /* A listener that never accepts, its queue filled: the kernel drops further SYNs, so
     * the handshake never completes. */
    int port;
    int ls = listener(0, &port);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM, 0);
        fcntl(fill[i], F_SETFL, O_NONBLOCK);
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    sleep_ms(50);
    struct httpc_response r;
    int64_t ms;
    CHECK_INT(get(port, 5000, 300, 0, &r, &ms), EBSD_ENETWORK);
    CHECK(r.timed_out);
    CHECK(ms >= 290 && ms < 1500);
    httpc_response_free(&r);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(ls);
}

static void test_date_header(void)
{
    int port;
    pid_t pid = serve(DATE, &port);
    struct httpc_response r;
    int64_t ms;
    CHECK_INT(get(port, 5000, 0, 1000, &r, &ms), EBSD_OK);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.date, "Wed, 02 Dec 2026 17:19:33 GMT");
    httpc_response_free(&r);
    finish(pid);
}

static void test_sink_takes_a_2xx_body_as_it_comes(void)
{
    int port;
    pid_t pid = serve(TRICKLE, &port);
    struct sunk k = {0};
    struct httpc_response r;
    int64_t ms;
    CHECK_INT(get_into(port, 5000, 0, 1000, &k, 0, &r, &ms), EBSD_OK);
    CHECK_INT(r.status, 200);
    CHECK(r.streamed);
    CHECK(!r.sink_stopped);
    CHECK_INT(r.body.len, 0); /* never kept whole */
    CHECK_INT(k.len, 10);
    CHECK(memcmp(k.data, "xxxxxxxxxx", 10) == 0);
    CHECK(k.pieces >= 2); /* one byte every 100 ms: given as they came */
    httpc_response_free(&r);
    finish(pid);
}

static void test_sink_never_gets_an_error_body(void)
{
    int port;
    pid_t pid = serve(ERROR503, &port);
    struct sunk k = {0};
    struct httpc_response r;
    int64_t ms;
    CHECK_INT(get_into(port, 5000, 0, 1000, &k, 0, &r, &ms), EBSD_OK);
    CHECK_INT(r.status, 503);
    CHECK(!r.streamed);
    CHECK_INT(k.pieces, 0);
    CHECK_INT(r.body.len, 9);
    CHECK(memcmp(r.body.data, "<Error/>\n", 9) == 0);
    httpc_response_free(&r);
    finish(pid);
}

static void test_sink_stops_the_transfer(void)
{
    int port;
    pid_t pid = serve(HUNDRED, &port);
    struct sunk k = {.stop_after = 5};
    struct httpc_response r;
    int64_t ms;
    CHECK_INT(get_into(port, 5000, 0, 1000, &k, 0, &r, &ms), EBSD_OK);
    CHECK_INT(r.status, 200);
    CHECK(r.streamed);
    CHECK(r.sink_stopped);
    CHECK_INT(k.len, 0);
    CHECK(ms < 1000);
    httpc_response_free(&r);
    finish(pid);
}

static void test_sink_is_bounded_by_the_cap(void)
{
    int port;
    pid_t pid = serve(HUNDRED, &port);
    struct sunk k = {0};
    struct httpc_response r;
    int64_t ms;
    CHECK_INT(get_into(port, 5000, 0, 1000, &k, 50, &r, &ms), EBSD_ETOOBIG);
    CHECK(k.len <= 50);
    CHECK(strstr(r.error, "larger than 50 bytes") != NULL);
    httpc_response_free(&r);
    finish(pid);
}

TEST_MAIN(T(test_no_answer_read_timeout), T(test_stalled_body_read_timeout),
          T(test_steady_answer_is_not_cut), T(test_deadline_before_read_timeout),
          T(test_connect_timeout), T(test_date_header),
          T(test_sink_takes_a_2xx_body_as_it_comes), T(test_sink_never_gets_an_error_body),
          T(test_sink_stops_the_transfer), T(test_sink_is_bounded_by_the_cap))
