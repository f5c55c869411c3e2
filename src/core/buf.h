/* buf.h - a growable byte buffer with a hard cap (curl's dynbuf idea): every buffer fed
 * from outside input is created with a maximum, and passing it is a clean EBSD_ETOOBIG. */
#ifndef EBSD_BUF_H
#define EBSD_BUF_H
#include <stdbool.h>
#include <stddef.h>
#include "status.h"

struct buf {
    char *data;  /* always NUL-terminated when non-NULL; owned by the buf */
    size_t len;
    size_t cap;
    size_t max;  /* hard cap on len */
    bool large;  /* buf_init_large: past 64 KiB the data is a private mapping (xtiered_grow) */
};

/* Prepares an empty buffer that may grow to max bytes. Allocates nothing yet. */
void buf_init(struct buf *b, size_t max);
/* Like buf_init, for a buffer that may grow to megabytes (an EC2 response body): past
 * 64 KiB its data moves to a private mapping in huge pages (xprivate_realloc), each page of
 * which would otherwise be a page fault of its own. buf_steal gives a malloc copy. */
void buf_init_large(struct buf *b, size_t max);
/* Appends n bytes. EBSD_ETOOBIG (buffer unchanged) if len would pass max. */
EBSD_MUST_CHECK ebsd_status buf_append(struct buf *b, const void *p, size_t n);
EBSD_MUST_CHECK ebsd_status buf_puts(struct buf *b, const char *s);
EBSD_MUST_CHECK ebsd_status buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);
/* Hands the data to the caller (caller frees; never NULL) and empties the buffer. */
char *buf_steal(struct buf *b);
void buf_free(struct buf *b);

#endif
