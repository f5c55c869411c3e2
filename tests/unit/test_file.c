/* test_file.c - the one capped whole-file reader (src/core/file.c): contents, the cap by
 * size and by what was read, a missing file, and the refusals (a FIFO without blocking, a
 * symbolic link, a directory), each with the step that failed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "harness.h"

static char dir[64];

/* dir/name, in one of two buffers: two calls may share one expression */
static const char *at(const char *name)
{
    static char path[2][128];
    static unsigned k;
    char *p = path[k++ % 2];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    return p;
}

static void put(const char *name, const char *text, size_t n)
{
    FILE *f = fopen(at(name), "w");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(text, 1, n, f) == n);
        fclose(f);
    }
}

static void test_reads_whole_and_caps(void)
{
    char *data = NULL;
    size_t len = 0;
    struct file_error fe;
    struct stat sb;
    put("ten", "0123456789", 10);
    CHECK_INT(file_read(at("ten"), 10, 0, &data, &len, &sb, &fe), EBSD_OK);
    CHECK_INT(len, 10);
    CHECK_STR(data, "0123456789"); /* NUL-terminated */
    CHECK_INT(sb.st_size, 10);
    free(data);
    CHECK_INT(file_read(at("ten"), 9, FILE_SECRET, &data, &len, NULL, &fe), EBSD_ETOOBIG);
    CHECK(data == NULL);
    put("empty", "", 0);
    CHECK_INT(file_read(at("empty"), 4, FILE_REGULAR, &data, &len, NULL, NULL), EBSD_OK);
    CHECK_INT(len, 0);
    CHECK_STR(data, "");
    free(data);
    /* st_size 0 but content: the cap holds by what was read, through the growth path */
    CHECK_INT(file_read("/proc/self/status", 16, 0, &data, &len, NULL, &fe), EBSD_ETOOBIG);
    CHECK_INT(file_read("/proc/self/status", 1 << 20, 0, &data, &len, NULL, &fe), EBSD_OK);
    CHECK(len > 16 && data[len] == '\0' && strstr(data, "Pid:") != NULL);
    free(data);
}

static void test_refusals_name_the_step(void)
{
    char *data = NULL;
    size_t len = 0;
    struct file_error fe;
    CHECK_INT(file_read(at("missing"), 10, 0, &data, &len, NULL, &fe), EBSD_ENOTFOUND);
    CHECK(data == NULL);
    CHECK_STR(fe.op, "open");
    CHECK_INT(fe.err_no, ENOENT);
    CHECK_INT(mkfifo(at("fifo"), 0600), 0);
    /* FILE_REGULAR never blocks on a FIFO with no writer */
    CHECK_INT(file_read(at("fifo"), 10, FILE_REGULAR, &data, &len, NULL, &fe), EBSD_EINVAL);
    CHECK_STR(fe.op, "");
    put("target", "x", 1);
    CHECK_INT(symlink(at("target"), at("link")), 0);
    CHECK_INT(file_read(at("link"), 10, 0, &data, &len, NULL, &fe), EBSD_OK);
    free(data);
    CHECK_INT(file_read(at("link"), 10, FILE_NOFOLLOW, &data, &len, NULL, &fe), EBSD_EIO);
    CHECK_STR(fe.op, "open");
    CHECK_INT(fe.err_no, ELOOP);
    /* a directory: its st_size is past a small cap; under a large one, read says EISDIR */
    CHECK_INT(file_read(dir, 1 << 20, 0, &data, &len, NULL, &fe), EBSD_EIO);
    CHECK_STR(fe.op, "read");
    CHECK_INT(fe.err_no, EISDIR);
    CHECK_INT(file_read(dir, 1 << 20, FILE_REGULAR, &data, &len, NULL, &fe), EBSD_EINVAL);
    unlink(at("fifo"));
    unlink(at("link"));
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ebsd-test-file-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static void teardown(void)
{
    const char *names[] = {"ten", "empty", "target", "fifo", "link"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(at(names[i]));
    rmdir(dir);
}

static void test_all(void)
{
    setup();
    test_reads_whole_and_caps();
    test_refusals_name_the_step();
    teardown();
}

TEST_MAIN(T(test_all))
