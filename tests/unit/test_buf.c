/* test_buf.c - capped buffers stop cleanly at their cap. */
#include "buf.h"
#include "harness.h"
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

TEST_MAIN(T(cap_is_enforced), T(printf_appends))
