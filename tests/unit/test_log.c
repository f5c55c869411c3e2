/* test_log.c - the in-place line builder (log_rec_*) writes exactly what log_fields writes
 * through cJSON, in both formats, for the fields the access line uses; REPORT numbers. */
#include "harness.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs fn with stdout sent to a temporary file; returns what it wrote (caller frees). */
static char *capture(void (*fn)(const void *), const void *arg)
{
    fflush(stdout);
    FILE *tmp = tmpfile();
    int saved = dup(STDOUT_FILENO);
    if (!tmp || saved < 0)
        return NULL;
    dup2(fileno(tmp), STDOUT_FILENO);
    fn(arg);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    off_t n = lseek(fileno(tmp), 0, SEEK_END); /* the descriptor stdout shared */
    char *out = calloc(1, n > 0 ? (size_t)n + 1 : 1);
    if (out && n > 0) {
        lseek(fileno(tmp), 0, SEEK_SET);
        if (read(fileno(tmp), out, (size_t)n) != n)
            out[0] = '\0';
    }
    fclose(tmp);
    return out;
}

struct fields {
    const char *path;
    long long status, bytes, cents;
};

static void via_cjson(const void *arg)
{
    const struct fields *f = arg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", f->path);
    cJSON_AddNumberToObject(o, "status", (double)f->status);
    cJSON_AddNumberToObject(o, "bytes", (double)f->bytes);
    cJSON_AddNumberToObject(o, "duration_ms", (double)f->cents / 100.0);
    log_fields(LOGL_INFO, "access", o);
}

static void via_rec(const void *arg)
{
    const struct fields *f = arg;
    struct log_rec l;
    log_rec_begin(&l, LOGL_INFO, "access");
    log_rec_str(&l, "path", f->path);
    log_rec_num(&l, "status", f->status);
    log_rec_num(&l, "bytes", f->bytes);
    log_rec_cents(&l, "duration_ms", f->cents);
    log_rec_end(&l);
}

/* Both lines minus their time stamps (taken a moment apart). */
static void same_line(const struct fields *f)
{
    char *a = capture(via_cjson, f), *b = capture(via_rec, f);
    CHECK(a && b);
    if (!a || !b)
        goto out;
    const char *ta = strstr(a, "level"), *tb = strstr(b, "level");
    if (!ta) { /* text format: the time stamp is the first word */
        ta = strchr(a, ' ');
        tb = strchr(b, ' ');
    }
    CHECK(ta && tb);
    if (ta && tb)
        CHECK_STR(tb, ta);
out:
    free(a);
    free(b);
}

static void matches_cjson(void)
{
    static char long_path[3000];
    memset(long_path, 'p', sizeof long_path - 1); /* past the stack buffer: the heap path */
    long_path[0] = '/';
    const struct fields cases[] = {
        {"/volumes/total", 200, 187, 53},
        {"/instances/i-0123456789abcdef0/volumes", 404, 0, 1250},
        {"/a\"b\\c\n\t\x01\x7f/\xc3\xa9", 499, 12345678901LL, 100},
        {"", 0, 0, 0},
        {long_path, 431, 1, 99999},
        {"/x", 200, 5, 7},
    };
    for (int fmt = LOG_FORMAT_JSON; fmt <= LOG_FORMAT_TEXT; fmt++) {
        log_setup((enum log_format)fmt, LOGL_INFO);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            same_line(&cases[i]);
    }
    log_setup(LOG_FORMAT_JSON, LOGL_INFO);
}

static void report_numbers(const void *arg)
{
    (void)arg;
    const long long cents[] = {1234, 5, 100, 0, 123456789};
    for (size_t i = 0; i < sizeof cents / sizeof cents[0]; i++) {
        struct log_rec l;
        log_rec_text(&l);
        log_rec_raw(&l, "D: ");
        log_rec_fixed2(&l, cents[i]);
        log_rec_raw(&l, " N: ");
        log_rec_u(&l, 18446744073709551615ULL);
        log_rec_end(&l);
    }
}

static void fixed_two_decimals(void)
{
    char *out = capture(report_numbers, NULL);
    CHECK_STR(out, "D: 12.34 N: 18446744073709551615\n"
                   "D: 0.05 N: 18446744073709551615\n"
                   "D: 1.00 N: 18446744073709551615\n"
                   "D: 0.00 N: 18446744073709551615\n"
                   "D: 1234567.89 N: 18446744073709551615\n");
    free(out);
}

TEST_MAIN(T(matches_cjson), T(fixed_two_decimals))
