/* frame.c - length-prefixed messages over a pipe, with a bounded reader (see frame.h). */
#include "frame.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"

/* The first buffer; doubled as needed up to one maximum frame. */
#define FRAME_FIRST_CAP 4096

/* The buffers of freed readers, kept for the next ones: the parent reads from dozens of
 * workers per cold request, and a fresh buffer grows page by page (each growth a mremap,
 * each new page a fault) only to be unmapped when its worker ends. At most POOL_MAX buffers
 * of at most POOL_KEEP bytes each are kept (private mappings, never inherited by a fork). */
#define POOL_MAX 16
#define POOL_KEEP ((size_t)1 << 20)
static struct {
    unsigned char *buf[POOL_MAX];
    size_t cap[POOL_MAX];
    unsigned n;
} pool;

/* Frames are written whole, one at a time in a process: a worker's threads (a lister and the
 * volume shares it carries, worker.c) share its pipe, and a frame larger than PIPE_BUF may go
 * out in several writes. */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

/* Writes the nv buffers of v whole (blocking; EINTR and short writes resumed). */
static ebsd_status write_all(int fd, struct iovec *v, int nv)
{
    while (nv > 0) {
        ssize_t n = writev(fd, v, nv);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EPIPE)
                log_error("frame", "writev: %s", strerror(errno));
            return EBSD_EIO;
        }
        size_t done = (size_t)n;
        while (nv > 0 && done >= v->iov_len) {
            done -= v->iov_len;
            v++;
            nv--;
        }
        if (nv > 0) {
            v->iov_base = (char *)v->iov_base + done;
            v->iov_len -= done;
        }
    }
    return EBSD_OK;
}

ebsd_status frame_write(int fd, uint8_t type, const void *data, size_t len)
{
    if (type == 0 || len > FRAME_MAX_LIMIT || (len && !data))
        return EBSD_EINVAL;
    unsigned char hdr[FRAME_HEADER_LEN];
    hdr[0] = type;
    hdr[1] = (unsigned char)(len >> 24);
    hdr[2] = (unsigned char)(len >> 16);
    hdr[3] = (unsigned char)(len >> 8);
    hdr[4] = (unsigned char)len;
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)data, len}};
    pthread_mutex_lock(&write_lock);
    ebsd_status st = write_all(fd, iov, len ? 2 : 1);
    pthread_mutex_unlock(&write_lock);
    return st;
}

void frame_reader_init(struct frame_reader *r, size_t max_payload)
{
    memset(r, 0, sizeof *r);
    if (max_payload == 0)
        max_payload = FRAME_DEFAULT_MAX;
    if (max_payload > FRAME_MAX_LIMIT)
        max_payload = FRAME_MAX_LIMIT;
    r->max_payload = max_payload;
    /* the largest kept buffer within this reader's bound (one maximum frame) */
    unsigned best = POOL_MAX;
    for (unsigned i = 0; i < pool.n; i++)
        if (pool.cap[i] <= FRAME_HEADER_LEN + max_payload &&
            (best == POOL_MAX || pool.cap[i] > pool.cap[best]))
            best = i;
    if (best < POOL_MAX) {
        r->buf = pool.buf[best];
        r->cap = pool.cap[best];
        pool.n--;
        pool.buf[best] = pool.buf[pool.n];
        pool.cap[best] = pool.cap[pool.n];
    }
}

void frame_reader_set_type_check(struct frame_reader *r, frame_type_ok_fn ok) { r->type_ok = ok; }

void frame_reader_free(struct frame_reader *r)
{
    if (r->buf && r->cap <= POOL_KEEP && pool.n < POOL_MAX) {
        pool.buf[pool.n] = r->buf;
        pool.cap[pool.n] = r->cap;
        pool.n++;
    } else {
        xprivate_free(r->buf);
    }
    r->buf = NULL;
    r->cap = r->start = r->end = 0;
}

/* Checks the header at r->start (needs FRAME_HEADER_LEN bytes); returns the payload length
 * or marks the reader failed. */
static ebsd_status header(struct frame_reader *r, uint8_t *type, size_t *len)
{
    const unsigned char *h = r->buf + r->start;
    size_t n = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | (size_t)h[4];
    if (h[0] == 0 || n > r->max_payload || (r->type_ok && !r->type_ok(h[0]))) {
        r->failed = true;
        return EBSD_EPARSE;
    }
    *type = h[0];
    *len = n;
    return EBSD_OK;
}

/* Makes room to read into: compacts, then grows towards what the current frame needs.
 * Returns false when the buffer already holds a whole maximum frame's worth. */
static bool make_room(struct frame_reader *r)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end < r->cap)
        return true;
    size_t limit = FRAME_HEADER_LEN + r->max_payload;
    if (r->cap >= limit)
        return false;
    size_t want = r->cap ? r->cap * 2 : FRAME_FIRST_CAP;
    if (r->end >= FRAME_HEADER_LEN) {
        const unsigned char *h = r->buf;
        size_t need = FRAME_HEADER_LEN + ((size_t)h[1] << 24 | (size_t)h[2] << 16 |
                                          (size_t)h[3] << 8 | (size_t)h[4]);
        if (need > want)
            want = need;
    }
    if (want > limit)
        want = limit;
    r->buf = xprivate_realloc(r->buf, want);
    r->cap = want;
    return true;
}

ebsd_status frame_reader_feed(struct frame_reader *r, int fd, bool *eof)
{
    if (r->failed)
        return EBSD_EPARSE;
    while (!r->eof) {
        /* Refuse a garbage length before growing the buffer for it. */
        if (r->end - r->start >= FRAME_HEADER_LEN) {
            uint8_t t;
            size_t n;
            if (header(r, &t, &n) != EBSD_OK)
                return EBSD_EPARSE;
        }
        if (!make_room(r))
            break; /* full: the caller takes frames out, level-triggered readiness recalls us */
        ssize_t n = read(fd, r->buf + r->end, r->cap - r->end);
        if (n > 0) {
            r->end += (size_t)n;
        } else if (n == 0) {
            r->eof = true;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            log_error("frame", "read: %s", strerror(errno));
            return EBSD_EIO;
        }
    }
    if (r->end - r->start >= FRAME_HEADER_LEN) {
        uint8_t t;
        size_t n;
        if (header(r, &t, &n) != EBSD_OK)
            return EBSD_EPARSE;
    }
    if (eof)
        *eof = r->eof;
    return EBSD_OK;
}

ebsd_status frame_reader_next(struct frame_reader *r, uint8_t *type, const char **data,
                              size_t *len)
{
    if (r->failed)
        return EBSD_EPARSE;
    if (r->end - r->start < FRAME_HEADER_LEN)
        return EBSD_ENOTFOUND;
    uint8_t t;
    size_t n;
    if (header(r, &t, &n) != EBSD_OK)
        return EBSD_EPARSE;
    if (r->end - r->start - FRAME_HEADER_LEN < n)
        return EBSD_ENOTFOUND;
    *type = t;
    *data = (const char *)r->buf + r->start + FRAME_HEADER_LEN;
    *len = n;
    r->start += FRAME_HEADER_LEN + n;
    return EBSD_OK;
}

size_t frame_reader_pending(const struct frame_reader *r) { return r->end - r->start; }
