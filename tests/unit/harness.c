/* harness.c - runner for the unit test harness (see harness.h). */
#include "harness.h"

#include <stdlib.h>

int harness_failures;
const char *harness_current = "";

int harness_run(const struct harness_test *tests, size_t n)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        int before = harness_failures;
        harness_current = tests[i].name;
        tests[i].fn();
        if (harness_failures == before) {
            passed++;
            printf("ok   %s\n", tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", tests[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

char *harness_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    size_t r;
    while ((r = fread(p + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0)
            p = realloc(p, cap *= 2);
    }
    fclose(f);
    p[n] = '\0';
    if (len)
        *len = n;
    return p;
}

const char *harness_shared_path(const char *rel)
{
    static char path[4096];
    const char *base = getenv("EBSD_SHARED_DIR");
    snprintf(path, sizeof path, "%s/%s", base ? base : "../shared", rel);
    return path;
}
