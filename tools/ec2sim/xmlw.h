/* xmlw.h - a small XML writer with a sticky error: the first failure (the buffer's cap) wins
 * and later writes are no-ops, so a document is built without checking every call and
 * checked once at the end (w->st). Used for the EC2 and STS answers. */
#ifndef EC2SIM_XMLW_H
#define EC2SIM_XMLW_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

struct xw {
    struct buf b; /* the caller initializes it (buf_init) and owns it */
    ebsd_status st;
};

/* Appends s as is (markup). */
void xw_puts(struct xw *w, const char *s);
/* Appends len bytes of markup as they are. */
void xw_raw(struct xw *w, const char *s, size_t len);
/* Appends s with &, <, >, " and ' escaped. */
void xw_text(struct xw *w, const char *s);
/* Appends open, name, close ("<", "item", ">"). */
void xw_tag(struct xw *w, const char *open, const char *name, const char *close);
/* <name>text</name>, or <name/> for an empty or NULL text. */
void xw_elem(struct xw *w, const char *name, const char *text);
void xw_int(struct xw *w, const char *name, long long v);
void xw_bool(struct xw *w, const char *name, bool v);
/* <name>2024-01-01T00:00:00.000Z</name> (EC2's form) from wall ms. */
void xw_time(struct xw *w, const char *name, int64_t ms);

#endif
