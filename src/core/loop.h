/* loop.h - the one event loop of the ebsd process: epoll for descriptors plus a min-heap of
 * timers. Single-threaded by design, so the process may fork at any time (see
 * docs/ARCHITECTURE.md). Callbacks run on the loop; none may block. */
#ifndef EBSD_LOOP_H
#define EBSD_LOOP_H
#include <stdint.h>
#include "status.h"

struct loop;
struct loop_timer;

/* Called when fd is ready; events are EPOLLIN/EPOLLOUT/EPOLLHUP/... bits. */
typedef void (*loop_fd_fn)(struct loop *l, int fd, uint32_t events, void *arg);
/* Called once when a timer's deadline (monotonic ms) is reached. */
typedef void (*loop_timer_fn)(struct loop *l, void *arg);
/* Called before each wait; returns the longest the loop may sleep in ms (-1 = no limit). */
typedef int64_t (*loop_prepare_fn)(struct loop *l, void *arg);

/* Creates a loop (caller frees with loop_free). */
EBSD_MUST_CHECK ebsd_status loop_new(struct loop **out);
void loop_free(struct loop *l);

/* Watches fd for events until loop_del_fd. The loop does not own fd. */
EBSD_MUST_CHECK ebsd_status loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn,
                                        void *arg);
/* Changes the events watched on fd (a Redis socket switches between read and write). */
EBSD_MUST_CHECK ebsd_status loop_mod_fd(struct loop *l, int fd, uint32_t events);
void loop_del_fd(struct loop *l, int fd);

/* Arms a timer at deadline (monotonic ms). The returned handle is owned by the loop and
 * valid until the timer fires or loop_timer_stop is called (whichever comes first). */
struct loop_timer *loop_timer_start(struct loop *l, int64_t deadline, loop_timer_fn fn, void *arg);
/* Cancels a pending timer. Passing NULL is a no-op. */
void loop_timer_stop(struct loop *l, struct loop_timer *t);

/* Sets the hook run before each wait (one per loop). */
void loop_set_prepare(struct loop *l, loop_prepare_fn fn, void *arg);

/* Runs until loop_stop. Returns EBSD_EIO if epoll_wait fails for good. */
EBSD_MUST_CHECK ebsd_status loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
