/* xmlw.c - the simulator's XML writer (EC2 and STS documents). */
#include "xmlw.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "markup.h"

void xw_puts(struct xw *w, const char *s)
{
    if (w->st == EBSD_OK)
        w->st = buf_puts(&w->b, s);
}

void xw_raw(struct xw *w, const char *s, size_t len)
{
    if (w->st == EBSD_OK)
        w->st = buf_append(&w->b, s, len);
}

void xw_text(struct xw *w, const char *s)
{
    /* runs between the characters that need an entity, found with strcspn, not one
     * character at a time (names and ids have none) */
    for (;;) {
        size_t n = strcspn(s, "&<>\"'");
        if (w->st == EBSD_OK && n)
            w->st = buf_append(&w->b, s, n);
        s += n;
        if (!*s)
            return;
        xw_puts(w, markup_entity(*s, "&apos;"));
        s++;
    }
}

/* "<" name ">" (or "</" name ">", "<" name "/>") without printf: a 1,000-instance page is
 * some 60,000 tags, and the simulator's CPU should not stand in for EC2's latency. */
void xw_tag(struct xw *w, const char *open, const char *name, const char *close)
{
    if (w->st == EBSD_OK)
        w->st = buf_puts(&w->b, open);
    if (w->st == EBSD_OK)
        w->st = buf_puts(&w->b, name);
    if (w->st == EBSD_OK)
        w->st = buf_puts(&w->b, close);
}

void xw_elem(struct xw *w, const char *name, const char *text)
{
    if (!text || !*text) {
        xw_tag(w, "<", name, "/>");
        return;
    }
    xw_tag(w, "<", name, ">");
    xw_text(w, text);
    xw_tag(w, "</", name, ">");
}

void xw_int(struct xw *w, const char *name, long long v)
{
    char num[24];
    snprintf(num, sizeof num, "%lld", v);
    xw_tag(w, "<", name, ">");
    xw_puts(w, num);
    xw_tag(w, "</", name, ">");
}

void xw_bool(struct xw *w, const char *name, bool v)
{
    xw_elem(w, name, v ? "true" : "false");
}

void xw_time(struct xw *w, const char *name, int64_t ms)
{
    char ts[40];
    xw_elem(w, name, clock_format_rfc3339(ms, ts, sizeof ts));
}
