/* test_frame.c - frame_write and the bounded, non-blocking frame_reader over real pipes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"

/* A pipe whose read end is non-blocking, as the parent's is. */
static void nb_pipe(int p[2])
{
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    CHECK(fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK) == 0);
}

static void raw_write(int fd, const void *p, size_t n)
{
    CHECK(write(fd, p, n) == (ssize_t)n);
}

static void test_roundtrip(void)
{
    int p[2];
    nb_pipe(p);
    CHECK(frame_write(p[1], 1, "hello", 5) == EBSD_OK);
    CHECK(frame_write(p[1], 2, NULL, 0) == EBSD_OK);
    CHECK(frame_write(p[1], 255, "x", 1) == EBSD_OK);
    close(p[1]);

    struct frame_reader r;
    frame_reader_init(&r, 0);
    bool eof = false;
    CHECK(frame_reader_feed(&r, p[0], &eof) == EBSD_OK);
    CHECK(eof);
    uint8_t type;
    const char *data;
    size_t len;
    CHECK(frame_reader_next(&r, &type, &data, &len) == EBSD_OK);
    CHECK_INT(type, 1);
    CHECK_INT(len, 5);
    CHECK(memcmp(data, "hello", 5) == 0);
    CHECK(frame_reader_next(&r, &type, &data, &len) == EBSD_OK);
    CHECK_INT(type, 2);
    CHECK_INT(len, 0);
    CHECK(frame_reader_next(&r, &type, &data, &len) == EBSD_OK);
    CHECK_INT(type, 255);
    CHECK_INT(len, 1);
    CHECK(frame_reader_next(&r, &type, &data, &len) == EBSD_ENOTFOUND);
    CHECK_INT(frame_reader_pending(&r), 0);
    /* EOF is sticky and feeding again is harmless */
    eof = false;
    CHECK(frame_reader_feed(&r, p[0], &eof) == EBSD_OK);
    CHECK(eof);
    frame_reader_free(&r);
    close(p[0]);
}

static void test_write_rejects(void)
{
    int p[2];
    nb_pipe(p);
    CHECK(frame_write(p[1], 0, "x", 1) == EBSD_EINVAL);
    CHECK(frame_write(p[1], 1, NULL, 3) == EBSD_EINVAL);
    CHECK(frame_write(p[1], 1, "x", (size_t)FRAME_MAX_LIMIT + 1) == EBSD_EINVAL);
    close(p[0]);
    /* the reader has gone: EPIPE is a clean EBSD_EIO (SIGPIPE ignored here) */
    signal(SIGPIPE, SIG_IGN);
    CHECK(frame_write(p[1], 1, "x", 1) == EBSD_EIO);
    signal(SIGPIPE, SIG_DFL);
    close(p[1]);
}

/* The header and payload arrive one byte at a time. */
static void test_partial(void)
{
    int p[2];
    nb_pipe(p);
    const unsigned char frame[] = {7, 0, 0, 0, 3, 'a', 'b', 'c'};
    struct frame_reader r;
    frame_reader_init(&r, 16);
    uint8_t type;
    const char *data;
    size_t len;
    bool eof = false;
    for (size_t i = 0; i < sizeof frame; i++) {
        CHECK(frame_reader_next(&r, &type, &data, &len) == EBSD_ENOTFOUND);
        raw_write(p[1], frame + i, 1);
        CHECK(frame_reader_feed(&r, p[0], &eof) == EBSD_OK);
        CHECK(!eof);
    }
    CHECK(frame_reader_next(&r, &type, &data, &len) == EBSD_OK);
    CHECK_INT(type, 7);
    CHECK_INT(len, 3);
    CHECK(memcmp(data, "abc", 3) == 0);
    /* nothing available: EAGAIN is not an error */
    CHECK(frame_reader_feed(&r, p[0], &eof) == EBSD_OK);
    CHECK(!eof);
    frame_reader_free(&r);
    close(p[0]);
    close(p[1]);
}

/* The writer dies in the middle of a frame: no frame, no error, pending bytes say so. */
static void test_truncated_at_eof(void)
{
    int p[2];
    nb_pipe(p);
    const unsigned char part[] = {1, 0, 0, 0, 10, 'a', 'b'};
    raw_write(p[1], part, sizeof part);
    close(p[1]);
    struct frame_reader r;
    frame_reader_init(&r, 0);
    bool eof = false;
    CHECK(frame_reader_feed(&r, p[0], &eof) == EBSD_OK);
    CHECK(eof);
    uint8_t type;
    const char *data;
    size_t len;
    CHECK(frame_reader_next(&r, &type, &data, &len) == EBSD_ENOTFOUND);
    CHECK_INT(frame_reader_pending(&r), sizeof part);
    frame_reader_free(&r);
    close(p[0]);
}

static bool only_odd(uint8_t t) { return t & 1; }

static void expect_garbage(const unsigned char *bytes, size_t n, size_t max, frame_type_ok_fn ok)
{
    int p[2];
    nb_pipe(p);
    raw_write(p[1], bytes, n);
    struct frame_reader r;
    frame_reader_init(&r, max);
    frame_reader_set_type_check(&r, ok);
    bool eof = false;
    uint8_t type;
    const char *data;
    size_t len;
    ebsd_status st = frame_reader_feed(&r, p[0], &eof);
    if (st == EBSD_OK)
        st = frame_reader_next(&r, &type, &data, &len);
    CHECK_INT(st, EBSD_EPARSE);
    /* sticky: the request is failed, the reader never resynchronises */
    CHECK_INT(frame_reader_next(&r, &type, &data, &len), EBSD_EPARSE);
    CHECK_INT(frame_reader_feed(&r, p[0], &eof), EBSD_EPARSE);
    /* and it did not grow a buffer for the announced length */
    CHECK(r.cap <= 4096);
    frame_reader_free(&r);
    close(p[0]);
    close(p[1]);
}

static void test_garbage(void)
{
    const unsigned char huge[] = {1, 0xff, 0xff, 0xff, 0xff, 'x'};
    expect_garbage(huge, sizeof huge, 0, NULL);
    const unsigned char over[] = {1, 0, 0, 1, 1, 'x'}; /* 257 > cap 256 */
    expect_garbage(over, sizeof over, 256, NULL);
    const unsigned char zero[] = {0, 0, 0, 0, 0};
    expect_garbage(zero, sizeof zero, 0, NULL);
    const unsigned char even[] = {4, 0, 0, 0, 0};
    expect_garbage(even, sizeof even, 0, only_odd);
    /* exactly at the cap is fine */
    int p[2];
    nb_pipe(p);
    char payload[256];
    memset(payload, 'z', sizeof payload);
    CHECK(frame_write(p[1], 3, payload, sizeof payload) == EBSD_OK);
    struct frame_reader r;
    frame_reader_init(&r, 256);
    frame_reader_set_type_check(&r, only_odd);
    bool eof;
    uint8_t type;
    const char *data;
    size_t len;
    CHECK(frame_reader_feed(&r, p[0], &eof) == EBSD_OK);
    CHECK(frame_reader_next(&r, &type, &data, &len) == EBSD_OK);
    CHECK_INT(len, 256);
    frame_reader_free(&r);
    close(p[0]);
    close(p[1]);
}

static void on_alarm(int sig) { (void)sig; }

/* Writes n frames of sizes 0..(maxlen) with a running byte pattern, under a 1 ms interval
 * timer without SA_RESTART so writev is interrupted and returns short counts. */
static void writer_child(int fd, int nframes, size_t maxlen, uint8_t type)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    unsigned char *b = malloc(maxlen ? maxlen : 1);
    for (int i = 0; i < nframes; i++) {
        size_t len = maxlen ? (size_t)(((uint64_t)i * 7919u) % (maxlen + 1)) : 0;
        if (i == nframes - 1)
            len = maxlen;
        for (size_t k = 0; k < len; k++)
            b[k] = (unsigned char)(i + k);
        if (frame_write(fd, type, b, len) != EBSD_OK)
            _exit(1);
    }
    _exit(0);
}

/* Reads everything a forked writer sends, checking each byte; returns frames seen. */
static int read_all(int fd, struct frame_reader *r, size_t *max_cap)
{
    int seen = 0;
    bool eof = false;
    while (!eof) {
        struct pollfd pf = {fd, POLLIN, 0};
        CHECK(poll(&pf, 1, 10000) == 1);
        ebsd_status st = frame_reader_feed(r, fd, &eof);
        CHECK_INT(st, EBSD_OK);
        if (st != EBSD_OK)
            break;
        if (r->cap > *max_cap)
            *max_cap = r->cap;
        uint8_t type;
        const char *data;
        size_t len;
        while ((st = frame_reader_next(r, &type, &data, &len)) == EBSD_OK) {
            int bad = 0;
            for (size_t k = 0; k < len; k++)
                if ((unsigned char)data[k] != (unsigned char)(seen + k))
                    bad++;
            CHECK_INT(bad, 0);
            seen++;
        }
        CHECK_INT(st, EBSD_ENOTFOUND);
    }
    return seen;
}

/* A frame far larger than the pipe buffer, written in interrupted pieces. */
static void test_large_interrupted(void)
{
    int p[2];
    nb_pipe(p);
    const size_t big = 8u << 20;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        writer_child(p[1], 3, big, 9);
    }
    close(p[1]);
    struct frame_reader r;
    frame_reader_init(&r, big);
    size_t max_cap = 0;
    CHECK_INT(read_all(p[0], &r, &max_cap), 3);
    CHECK(max_cap <= FRAME_HEADER_LEN + big);
    frame_reader_free(&r);
    close(p[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A child sends 20,000 frames (about 10 MB); the reader never holds more than one maximum
 * frame, however slowly it consumes. */
static void test_bounded_memory(void)
{
    int p[2];
    nb_pipe(p);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        writer_child(p[1], 20000, 1000, 5);
    }
    close(p[1]);
    usleep(20000); /* let the pipe fill up */
    struct frame_reader r;
    frame_reader_init(&r, 1000);
    size_t max_cap = 0;
    CHECK_INT(read_all(p[0], &r, &max_cap), 20000);
    CHECK(max_cap <= FRAME_HEADER_LEN + 1000);
    frame_reader_free(&r);
    close(p[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A freed reader's buffer goes to the next reader, which reads into it from the start;
 * a reader with a smaller bound never takes a buffer past it. */
static void test_buffer_reused(void)
{
    int p[2];
    nb_pipe(p);
    CHECK(frame_write(p[1], 1, "first", 5) == EBSD_OK);
    struct frame_reader r;
    frame_reader_init(&r, 0);
    bool eof = false;
    CHECK(frame_reader_feed(&r, p[0], &eof) == EBSD_OK);
    unsigned char *buf = r.buf;
    size_t cap = r.cap;
    CHECK(buf != NULL && cap >= FRAME_HEADER_LEN + 5);
    frame_reader_free(&r);
    CHECK(r.buf == NULL);

    struct frame_reader small;
    frame_reader_init(&small, cap - FRAME_HEADER_LEN - 1);
    CHECK(small.buf != buf); /* over its bound: not taken */
    frame_reader_init(&r, 0);
    CHECK(r.buf == buf);
    CHECK_INT(r.cap, cap);
    CHECK(frame_write(p[1], 2, "second", 6) == EBSD_OK);
    close(p[1]);
    CHECK(frame_reader_feed(&r, p[0], &eof) == EBSD_OK);
    uint8_t type;
    const char *data;
    size_t len;
    CHECK(frame_reader_next(&r, &type, &data, &len) == EBSD_OK);
    CHECK_INT(type, 2);
    CHECK_INT(len, 6);
    CHECK(memcmp(data, "second", 6) == 0);
    CHECK(frame_reader_next(&r, &type, &data, &len) == EBSD_ENOTFOUND);
    CHECK(eof);
    frame_reader_free(&r);
    frame_reader_free(&small);
    close(p[0]);
}

TEST_MAIN(T(test_buffer_reused), T(test_roundtrip), T(test_write_rejects), T(test_partial), T(test_truncated_at_eof),
          T(test_garbage), T(test_large_interrupted), T(test_bounded_memory))
