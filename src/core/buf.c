/* buf.c - capped growable buffers (see buf.h). */
#include "buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->large = false;
}

void buf_init_large(struct buf *b, size_t max)
{
    buf_init(b, max);
    b->large = true;
}

#define LARGE_FROM ((size_t)64 << 10)

/* Where a buffer's data may stay on the heap (xtiered_grow): a large one up to 64 KiB. */
static size_t heap_max(const struct buf *b) { return b->large ? LARGE_FROM : SIZE_MAX; }

static ebsd_status reserve(struct buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return EBSD_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return EBSD_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->data = xtiered_grow(b->data, &b->cap, cap, b->len ? b->len + 1 : 0, heap_max(b));
    return EBSD_OK;
}

ebsd_status buf_append(struct buf *b, const void *p, size_t n)
{
    ebsd_status st = reserve(b, n);
    if (st != EBSD_OK)
        return st;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return EBSD_OK;
}

ebsd_status buf_puts(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

ebsd_status buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return EBSD_EINVAL;
    ebsd_status st = reserve(b, (size_t)n);
    if (st != EBSD_OK)
        return st;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return EBSD_OK;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *buf_steal(struct buf *b)
{
    if (xtiered_mapped(b->cap, heap_max(b))) {
        char *p = xmalloc(b->len + 1);
        memcpy(p, b->data, b->len + 1);
        buf_free(b);
        return p;
    }
    char *p = b->data ? b->data : xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void buf_free(struct buf *b)
{
    xtiered_free(b->data, b->cap, heap_max(b));
    b->data = NULL;
    b->len = b->cap = 0;
}
