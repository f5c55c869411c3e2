/* mem.h - the out-of-memory policy of ebsd, chosen once: allocation failure is fatal.
 * ebsd's working set is small and bounded by configured caps; an allocator that fails
 * means the process (or a child under its RLIMIT_AS) cannot do useful work, so these
 * wrappers log one line to stderr and abort (in a child: _exit(EBSD_EXIT_OOM)), like
 * redis' zmalloc. Callers never check for NULL. */
#ifndef EBSD_MEM_H
#define EBSD_MEM_H
#include <stdbool.h>
#include <stddef.h>

/* Exit status a forked child uses when an allocation fails (its memory limit was hit). */
#define EBSD_EXIT_OOM 113

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Copies src into dst (size bytes, at least 1), cut to fit; always terminated. */
void str_copy(char *dst, size_t size, const char *src);
/* printf into a newly allocated string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable buffers that forked children do not inherit (mmap + MADV_DONTFORK). The parent
 * fills its frame buffers and result arrays while dozens of children are alive: in memory
 * it shares copy-on-write with them, every first write to a page after a fork is a page
 * fault plus a TLB shootdown, which at 10,000 instances was most of the parent's time.
 * A child must never touch such a buffer (it is not mapped there). NULL is a valid p;
 * sizes are rounded up to whole pages. */
void *xprivate_realloc(void *p, size_t n);
void xprivate_free(void *p);
/* The largest size that fits one huge page: a buffer expected to grow past 1 MiB may as well
 * start at this size (from 1 MiB on, private buffers come in 2 MiB huge pages). */
size_t xprivate_huge_size(void);

/* A buffer that grows on the heap while it is small and moves to a private mapping
 * (xprivate_realloc) of at least one huge page once it passes heap_max bytes, so a large one
 * never fills its first 2 MiB page by page, each 4 KiB a fault of its own, and a small one
 * costs no map, fault and unmap of its own. *cap is its size in bytes (0 when p is NULL);
 * keep is how many leading bytes to carry over when it moves. Returns it grown to at least
 * want bytes (as it is when already that large), *cap updated. A buffer is freed with
 * xtiered_free, and is a mapping exactly when its cap is past heap_max (xtiered_mapped). */
void *xtiered_grow(void *p, size_t *cap, size_t want, size_t keep, size_t heap_max);
void xtiered_free(void *p, size_t cap, size_t heap_max);
static inline bool xtiered_mapped(size_t cap, size_t heap_max) { return cap > heap_max; }

/* Called once in a forked child: from then on allocation failure exits with EBSD_EXIT_OOM. */
void mem_set_child_mode(void);

#endif
