/* mem.c - allocation wrappers implementing the abort-on-OOM policy (see mem.h). */
#include "mem.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int child_mode;

void mem_set_child_mode(void) { child_mode = 1; }

static void oom(size_t n)
{
    if (child_mode)
        _exit(EBSD_EXIT_OOM);
    fprintf(stderr, "ebsd: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void str_copy(char *dst, size_t size, const char *src)
{
    size_t len = strnlen(src, size - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    char *p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* A private buffer is one mapping: a header holding the mapping's length, then the data. */
#define PRIVATE_HDR 64

/* From 1 MiB on, a private buffer is a whole number of 2 MiB huge pages (the kernel aligns
 * such anonymous mappings) and asks for transparent huge pages: on the virtual machines we
 * run on a 4 KiB page fault costs about 10 us, and filling a 10 MB result array page by
 * page was 25 ms of faults; one 2 MiB fault zeroes the page in well under a tenth of that. */
#define PRIVATE_HUGE ((size_t)2 << 20)

static size_t private_len(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (n >= PRIVATE_HUGE / 2)
        page = PRIVATE_HUGE;
    if (n > SIZE_MAX - PRIVATE_HDR - page)
        oom(n);
    return (n + PRIVATE_HDR + page - 1) / page * page;
}

size_t xprivate_huge_size(void) { return PRIVATE_HUGE - PRIVATE_HDR; }

void *xprivate_realloc(void *p, size_t n)
{
    size_t len = private_len(n);
    char *base;
    if (!p) {
        base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    } else {
        char *old = (char *)p - PRIVATE_HDR;
        size_t oldlen;
        memcpy(&oldlen, old, sizeof oldlen);
        if (len <= oldlen)
            return p;
        base = mremap(old, oldlen, len, MREMAP_MAYMOVE);
    }
    if (base == MAP_FAILED)
        oom(n);
    /* mremap keeps the flag; set it again all the same, it costs one system call */
    if (madvise(base, len, MADV_DONTFORK) != 0) {
        munmap(base, len);
        oom(n);
    }
    if (len % PRIVATE_HUGE == 0)
        (void)madvise(base, len, MADV_HUGEPAGE); /* a hint: EINVAL where THP is off */
    memcpy(base, &len, sizeof len);
    return base + PRIVATE_HDR;
}

void *xtiered_grow(void *p, size_t *cap, size_t want, size_t keep, size_t heap_max)
{
    if (want <= *cap)
        return p;
    if (want <= heap_max) {
        *cap = want;
        return xrealloc(p, want);
    }
    size_t len = want > xprivate_huge_size() ? want : xprivate_huge_size();
    if (xtiered_mapped(*cap, heap_max)) {
        p = xprivate_realloc(p, len);
    } else { /* from the heap to a mapping */
        void *m = xprivate_realloc(NULL, len);
        if (keep)
            memcpy(m, p, keep);
        free(p);
        p = m;
    }
    *cap = len;
    return p;
}

void xtiered_free(void *p, size_t cap, size_t heap_max)
{
    if (xtiered_mapped(cap, heap_max))
        xprivate_free(p);
    else
        free(p);
}

void xprivate_free(void *p)
{
    if (!p)
        return;
    char *base = (char *)p - PRIVATE_HDR;
    size_t len;
    memcpy(&len, base, sizeof len);
    munmap(base, len);
}
