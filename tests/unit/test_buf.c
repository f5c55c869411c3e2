/* test_buf.c - capped buffers stop cleanly at their cap; large buffers move to a private
 * mapping without losing a byte. */
#include "buf.h"
#include "harness.h"
#include "mem.h"
#include <stdint.h>
#include <stdlib.h>

static void cap_is_enforced(void)
{
    struct buf b;
    buf_init(&b, 10);
    CHECK(buf_puts(&b, "hello") == EBSD_OK);
    CHECK(buf_puts(&b, "world") == EBSD_OK);
    CHECK(buf_puts(&b, "!") == EBSD_ETOOBIG);
    CHECK_STR(b.data, "helloworld");
    CHECK_INT(b.len, 10);
    buf_free(&b);
}

static void printf_appends(void)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i < 1000; i++)
        CHECK(buf_printf(&b, "%d,", i) == EBSD_OK);
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    char *s = buf_steal(&b);
    CHECK(b.data == NULL);
    free(s);
}

/* An EC2 body: appended in curl-sized pieces past 64 KiB (the move to a private mapping),
 * past one huge page (growth by mremap), up to its cap; reset keeps it; steal copies it. */
static void large_grows_and_keeps_bytes(void)
{
    const size_t max = 5u << 20, piece = 16384;
    struct buf b;
    buf_init_large(&b, max);
    char chunk[16384];
    size_t total = 0;
    for (unsigned k = 0; total + piece <= max; k++) {
        for (size_t i = 0; i < piece; i++)
            chunk[i] = (char)((k * 31 + i) & 0xff) ? (char)((k * 31 + i) & 0xff) : 'x';
        CHECK(buf_append(&b, chunk, piece) == EBSD_OK);
        total += piece;
        if (total == 128 * 1024) /* moved: a whole huge page's room at once */
            CHECK(b.cap >= xprivate_huge_size());
    }
    CHECK_INT(b.len, total);
    CHECK(b.data[total] == '\0');
    CHECK(buf_append(&b, chunk, piece) == EBSD_ETOOBIG);
    /* every byte is where it was put */
    size_t bad = 0;
    for (size_t off = 0; off < total; off++) {
        size_t k = off / piece, i = off % piece;
        char want = (char)((k * 31 + i) & 0xff) ? (char)((k * 31 + i) & 0xff) : 'x';
        bad += b.data[off] != want;
    }
    CHECK_INT(bad, 0);
    char first = b.data[0];
    char *s = buf_steal(&b);
    CHECK(b.data == NULL && b.len == 0);
    CHECK(s[0] == first && s[total] == '\0');
    free(s); /* a malloc copy */
    CHECK(buf_puts(&b, "again") == EBSD_OK); /* usable after steal, small again */
    CHECK_STR(b.data, "again");
    buf_free(&b);
}

static void private_sizes(void)
{
    CHECK(xprivate_huge_size() > (1u << 20) && xprivate_huge_size() < (2u << 20));
    /* fills a huge page's worth and more; the content survives growth */
    unsigned char *p = xprivate_realloc(NULL, xprivate_huge_size());
    for (size_t i = 0; i < xprivate_huge_size(); i += 4096)
        p[i] = (unsigned char)(i >> 12);
    p = xprivate_realloc(p, 3 * xprivate_huge_size());
    size_t bad = 0;
    for (size_t i = 0; i < xprivate_huge_size(); i += 4096)
        bad += p[i] != (unsigned char)(i >> 12);
    CHECK_INT(bad, 0);
    CHECK(p[3 * xprivate_huge_size() - 1] == 0); /* fresh memory is zero */
    xprivate_free(p);
}

TEST_MAIN(T(cap_is_enforced), T(printf_appends), T(large_grows_and_keeps_bytes), T(private_sizes))
