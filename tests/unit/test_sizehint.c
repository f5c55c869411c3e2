/* test_sizehint.c - the size hint's file: round trip, and every kind of bad file ignored. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "harness.h"
#include "sizehint.h"

static size_t parse(const char *text, ebsd_status want, unsigned want_skipped,
                    struct sizehint_entry *out)
{
    size_t n = 99;
    unsigned skipped = 99;
    CHECK_INT(sizehint_parse(text, strlen(text), out, SIZEHINT_MAX_TARGETS, &n, &skipped), want);
    if (want == EBSD_OK)
        CHECK_INT(skipped, want_skipped);
    else
        CHECK_INT(n, 0);
    return n;
}

static void test_round_trip(void)
{
    struct sizehint_entry e[3] = {
        {.target = target_make(NULL, "eu-west-1"), .instances = 10000, .volumes = 26000},
        {.target = target_make("prod", "us-east-1"), .instances = 0},
        {.target = target_make("prod", "ap-south-1"), .instances = SIZEHINT_MAX_COUNT,
         .volumes = SIZEHINT_MAX_VOLUMES},
    };
    char *text = sizehint_format(e, 3);
    CHECK_STR(text, "{\"targets\":{\"default/eu-west-1\":10000,\"prod/us-east-1\":0,"
                    "\"prod/ap-south-1\":1000000},\"version\":1,\"volumes\":{"
                    "\"default/eu-west-1\":26000,\"prod/ap-south-1\":16000000}}");
    struct sizehint_entry got[SIZEHINT_MAX_TARGETS];
    CHECK_INT(parse(text, EBSD_OK, 0, got), 3);
    for (size_t i = 0; i < 3; i++) {
        CHECK(target_equal(&got[i].target, &e[i].target));
        CHECK_INT(got[i].instances, e[i].instances);
        CHECK_INT(got[i].volumes, e[i].volumes);
    }
    free(text);
    /* no volume known: no "volumes" member, as the files before it */
    text = sizehint_format(e + 1, 1);
    CHECK_STR(text, "{\"targets\":{\"prod/us-east-1\":0},\"version\":1}");
    free(text);

    char dir[] = "/tmp/test_sizehint.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64], tmp[80];
    snprintf(path, sizeof path, "%s/hint.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    size_t n = 0;
    unsigned skipped = 0;
    CHECK_INT(sizehint_read(path, got, SIZEHINT_MAX_TARGETS, &n, &skipped), EBSD_ENOTFOUND);
    umask(0); /* the file is 0600 whatever the umask */
    CHECK_INT(sizehint_write(path, e, 3), EBSD_OK);
    umask(022);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK(access(tmp, F_OK) != 0); /* renamed, not left behind */
    CHECK_INT(sizehint_read(path, got, SIZEHINT_MAX_TARGETS, &n, &skipped), EBSD_OK);
    CHECK_INT(n, 3);
    CHECK_INT(got[0].instances, 10000);
    /* a second write replaces it */
    e[0].instances = 12;
    CHECK_INT(sizehint_write(path, e, 1), EBSD_OK);
    CHECK_INT(sizehint_read(path, got, SIZEHINT_MAX_TARGETS, &n, &skipped), EBSD_OK);
    CHECK_INT(n, 1);
    CHECK_INT(got[0].instances, 12);
    unlink(path);
    rmdir(dir);
}

static void test_corrupted(void)
{
    struct sizehint_entry got[SIZEHINT_MAX_TARGETS];
    parse("", EBSD_EPARSE, 0, got);
    parse("not json", EBSD_EPARSE, 0, got);
    /* truncated: a write cut short */
    parse("{\"version\":1,\"targets\":{\"default/eu-west-1\":100", EBSD_EPARSE, 0, got);
    parse("{\"version\":1,\"targets\":{\"default/eu-west-1\":100}", EBSD_EPARSE, 0, got);
    /* trailing garbage after a good document */
    parse("{\"version\":1,\"targets\":{}} x", EBSD_EPARSE, 0, got);
    CHECK_INT(parse("{\"version\":1,\"targets\":{}}\n", EBSD_OK, 0, got), 0);
}

static void test_wrong_types(void)
{
    struct sizehint_entry got[SIZEHINT_MAX_TARGETS];
    parse("[1,2]", EBSD_EINVAL, 0, got);
    parse("42", EBSD_EINVAL, 0, got);
    parse("{\"targets\":{\"default/eu-west-1\":5}}", EBSD_EINVAL, 0, got); /* no version */
    parse("{\"version\":2,\"targets\":{}}", EBSD_EINVAL, 0, got);
    parse("{\"version\":\"1\",\"targets\":{}}", EBSD_EINVAL, 0, got);
    parse("{\"version\":1,\"targets\":[]}", EBSD_EINVAL, 0, got);
    parse("{\"version\":1,\"targets\":null}", EBSD_EINVAL, 0, got);
    /* bad entries are skipped, the good ones kept */
    size_t n = parse("{\"version\":1,\"targets\":{"
                     "\"default/eu-west-1\":\"5\","    /* a string */
                     "\"default/eu-west-2\":true,"     /* a bool */
                     "\"default/eu-west-3\":{},"       /* an object */
                     "\"eu-west-1\":5,"                /* no account */
                     "\"/eu-west-1\":5,"               /* empty account */
                     "\"default/\":5,"                 /* empty region */
                     "\"a/b/c\":5,"                    /* two slashes */
                     "\"default/eu west\":5,"          /* a space */
                     "\"default/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":5," /* too long */
                     "\"default/us-east-1\":7,"
                     "\"default/us-east-1\":9}}",      /* repeated: the first wins */
                     EBSD_OK, 10, got);
    CHECK_INT(n, 1);
    CHECK_STR(got[0].target.region, "us-east-1");
    CHECK_INT(got[0].instances, 7);
}

static void test_counts(void)
{
    struct sizehint_entry got[SIZEHINT_MAX_TARGETS];
    size_t n = parse("{\"version\":1,\"targets\":{\"a/r1\":-1,\"a/r2\":1e300,\"a/r3\":1000001,"
                     "\"a/r4\":2.5,\"a/r5\":-0.5,\"a/r6\":18446744073709551616,"
                     "\"a/r7\":1000000,\"a/r8\":0}}",
                     EBSD_OK, 6, got);
    CHECK_INT(n, 2);
    CHECK_INT(got[0].instances, 1000000);
    CHECK_INT(got[1].instances, 0);
}

/* "volumes" is optional and additive: a file without it reads as before (0: not known); its
 * bad entries are skipped like the targets' (volumes of a target not in "targets" too); a
 * "volumes" that is not an object is a structural fault. */
static void test_volumes(void)
{
    struct sizehint_entry got[SIZEHINT_MAX_TARGETS];
    CHECK_INT(parse("{\"version\":1,\"targets\":{\"a/r1\":10}}", EBSD_OK, 0, got), 1);
    CHECK_INT(got[0].volumes, 0);
    size_t n = parse("{\"volumes\":{\"a/r1\":25,\"a/r2\":-1,\"a/r3\":2.5,\"a/r4\":\"7\","
                     "\"a/r5\":16000001,\"a/r9\":5,\"a/r1\":99,\"a r6\":1,\"a/r6\":16000000},"
                     "\"version\":1,\"targets\":{\"a/r1\":10,\"a/r2\":20,\"a/r3\":30,"
                     "\"a/r4\":40,\"a/r5\":50,\"a/r6\":60}}",
                     EBSD_OK, 7, got);
    CHECK_INT(n, 6);
    CHECK_INT(got[0].volumes, 25); /* repeated: the first wins */
    for (size_t i = 1; i < 5; i++)
        CHECK_INT(got[i].volumes, 0);
    CHECK_INT(got[5].volumes, SIZEHINT_MAX_VOLUMES);
    CHECK_INT(got[5].instances, 60);
    parse("{\"version\":1,\"targets\":{\"a/r1\":10},\"volumes\":[25]}", EBSD_EINVAL, 0, got);
    parse("{\"version\":1,\"targets\":{\"a/r1\":10},\"volumes\":3}", EBSD_EINVAL, 0, got);
}

static void test_oversized(void)
{
    struct sizehint_entry got[SIZEHINT_MAX_TARGETS];
    /* more entries than room: the rest are skipped */
    char *text = malloc(SIZEHINT_MAX_BYTES * 2);
    size_t len = (size_t)snprintf(text, 64, "{\"version\":1,\"targets\":{");
    for (unsigned i = 0; i < SIZEHINT_MAX_TARGETS + 5; i++)
        len += (size_t)snprintf(text + len, 64, "%s\"a/r%u\":%u", i ? "," : "", i, i);
    len += (size_t)snprintf(text + len, 64, "}}");
    size_t n = 0;
    unsigned skipped = 0;
    CHECK_INT(sizehint_parse(text, len, got, SIZEHINT_MAX_TARGETS, &n, &skipped), EBSD_OK);
    CHECK_INT(n, SIZEHINT_MAX_TARGETS);
    CHECK_INT(skipped, 5);
    /* a document past the cap is refused before it is parsed, even when well formed */
    len = (size_t)snprintf(text, 64, "{\"version\":1,\"targets\":{}}");
    memset(text + len, ' ', SIZEHINT_MAX_BYTES);
    len += SIZEHINT_MAX_BYTES;
    CHECK_INT(sizehint_parse(text, len, got, SIZEHINT_MAX_TARGETS, &n, &skipped), EBSD_ETOOBIG);
    CHECK_INT(n, 0);

    char dir[] = "/tmp/test_sizehint.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64], link[64];
    snprintf(path, sizeof path, "%s/hint.json", dir);
    snprintf(link, sizeof link, "%s/link.json", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, text, len) == (ssize_t)len);
    close(fd);
    CHECK_INT(sizehint_read(path, got, SIZEHINT_MAX_TARGETS, &n, &skipped), EBSD_ETOOBIG);
    /* a symlink is not followed; a directory is not a file */
    CHECK_INT(sizehint_write(path, NULL, 0), EBSD_OK);
    CHECK(symlink(path, link) == 0);
    CHECK_INT(sizehint_read(link, got, SIZEHINT_MAX_TARGETS, &n, &skipped), EBSD_EIO);
    CHECK_INT(sizehint_read(dir, got, SIZEHINT_MAX_TARGETS, &n, &skipped), EBSD_EIO);
    CHECK_INT(sizehint_read(path, got, SIZEHINT_MAX_TARGETS, &n, &skipped), EBSD_OK);
    /* a write where the directory is gone fails and leaves nothing */
    char nodir[96];
    snprintf(nodir, sizeof nodir, "%s/missing/hint.json", dir);
    CHECK_INT(sizehint_write(nodir, NULL, 0), EBSD_EIO);
    unlink(link);
    unlink(path);
    rmdir(dir);
    free(text);
}

TEST_MAIN(T(test_round_trip), T(test_corrupted), T(test_wrong_types), T(test_counts),
          T(test_volumes), T(test_oversized))
