/* loop.c - epoll plus a binary min-heap of timers; the only loop in the ebsd process. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "mem.h"

struct watch {
    int fd;
    loop_fd_fn fn;
    void *arg;
    struct watch *next;
};

struct loop_timer {
    int64_t deadline;
    uint64_t seq;         /* ties broken in arming order */
    loop_timer_fn fn;
    void *arg;
    size_t index;         /* position in the heap */
};

struct loop {
    int epfd;
    int stop;
    struct watch **buckets; /* fd -> watch, chained by fd % nbuckets */
    size_t nbuckets;
    struct loop_timer **heap;
    size_t nheap, capheap;
    uint64_t seq;
    loop_prepare_fn prepare;
    void *prepare_arg;
};

ebsd_status loop_new(struct loop **out)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        log_error("loop", "epoll_create1: %s", strerror(errno));
        return EBSD_EIO;
    }
    struct loop *l = xcalloc(1, sizeof *l);
    l->epfd = epfd;
    l->nbuckets = 256;
    l->buckets = xcalloc(l->nbuckets, sizeof *l->buckets);
    *out = l;
    return EBSD_OK;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nbuckets; i++) {
        struct watch *w = l->buckets[i];
        while (w) {
            struct watch *n = w->next;
            free(w);
            w = n;
        }
    }
    for (size_t i = 0; i < l->nheap; i++)
        free(l->heap[i]);
    free(l->heap);
    free(l->buckets);
    close(l->epfd);
    free(l);
}

static struct watch **find_slot(struct loop *l, int fd)
{
    struct watch **pp = &l->buckets[(size_t)fd % l->nbuckets];
    while (*pp && (*pp)->fd != fd)
        pp = &(*pp)->next;
    return pp;
}

ebsd_status loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *arg)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        log_error("loop", "epoll_ctl(ADD, %d): %s", fd, strerror(errno));
        return EBSD_EIO;
    }
    struct watch *w = xcalloc(1, sizeof *w);
    w->fd = fd;
    w->fn = fn;
    w->arg = arg;
    struct watch **slot = &l->buckets[(size_t)fd % l->nbuckets];
    w->next = *slot;
    *slot = w;
    return EBSD_OK;
}

ebsd_status loop_mod_fd(struct loop *l, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) != 0) {
        log_error("loop", "epoll_ctl(MOD, %d): %s", fd, strerror(errno));
        return EBSD_EIO;
    }
    return EBSD_OK;
}

void loop_del_fd(struct loop *l, int fd)
{
    struct watch **pp = find_slot(l, fd);
    if (!*pp)
        return;
    struct watch *w = *pp;
    *pp = w->next;
    free(w);
    /* The fd may already be closed (then epoll dropped it itself). */
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* --- timers: a binary min-heap on (deadline, seq) --- */

static int timer_less(const struct loop_timer *a, const struct loop_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_swap(struct loop *l, size_t i, size_t j)
{
    struct loop_timer *t = l->heap[i];
    l->heap[i] = l->heap[j];
    l->heap[j] = t;
    l->heap[i]->index = i;
    l->heap[j]->index = j;
}

static void sift_up(struct loop *l, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!timer_less(l->heap[i], l->heap[p]))
            break;
        heap_swap(l, i, p);
        i = p;
    }
}

static void sift_down(struct loop *l, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < l->nheap && timer_less(l->heap[c], l->heap[m]))
            m = c;
        if (c + 1 < l->nheap && timer_less(l->heap[c + 1], l->heap[m]))
            m = c + 1;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

struct loop_timer *loop_timer_start(struct loop *l, int64_t deadline, loop_timer_fn fn, void *arg)
{
    if (l->nheap == l->capheap) {
        l->capheap = l->capheap ? l->capheap * 2 : 64;
        l->heap = xrealloc(l->heap, l->capheap * sizeof *l->heap);
    }
    struct loop_timer *t = xcalloc(1, sizeof *t);
    t->deadline = deadline;
    t->seq = l->seq++;
    t->fn = fn;
    t->arg = arg;
    t->index = l->nheap;
    l->heap[l->nheap++] = t;
    sift_up(l, t->index);
    return t;
}

static void heap_remove(struct loop *l, struct loop_timer *t)
{
    size_t i = t->index;
    l->nheap--;
    if (i != l->nheap) {
        heap_swap(l, i, l->nheap);
        sift_down(l, i);
        sift_up(l, i);
    }
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
    if (!t)
        return;
    heap_remove(l, t);
    free(t);
}

void loop_set_prepare(struct loop *l, loop_prepare_fn fn, void *arg)
{
    l->prepare = fn;
    l->prepare_arg = arg;
}

void loop_stop(struct loop *l) { l->stop = 1; }

static void run_timers(struct loop *l)
{
    int64_t now = clock_now_ms();
    while (l->nheap && l->heap[0]->deadline <= now) {
        struct loop_timer *t = l->heap[0];
        heap_remove(l, t);
        loop_timer_fn fn = t->fn;
        void *arg = t->arg;
        free(t);
        fn(l, arg);
    }
}

ebsd_status loop_run(struct loop *l)
{
    struct epoll_event evs[64];
    l->stop = 0;
    while (!l->stop) {
        int64_t wait = -1;
        if (l->prepare)
            wait = l->prepare(l, l->prepare_arg);
        if (l->stop)
            break;
        if (l->nheap) {
            int64_t t = l->heap[0]->deadline - clock_now_ms();
            if (t < 0)
                t = 0;
            if (wait < 0 || t < wait)
                wait = t;
        }
        if (wait > 60000)
            wait = 60000;
        /* Batched log lines go out once per iteration, not once per line (log_batch). */
        log_flush();
        int n = epoll_wait(l->epfd, evs, 64, (int)wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("loop", "epoll_wait: %s", strerror(errno));
            return EBSD_EIO;
        }
        for (int i = 0; i < n; i++) {
            struct watch *w = *find_slot(l, evs[i].data.fd);
            if (w) /* may have been removed by an earlier callback in this batch */
                w->fn(l, w->fd, evs[i].events, w->arg);
        }
        run_timers(l);
    }
    return EBSD_OK;
}
