/* test_auth.c - unit tests for auth.c: token file parsing, the file checks, and matching. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "harness.h"

static struct auth *load(const char *text, ebsd_status want, const char *want_msg)
{
    struct auth *a = NULL;
    char msg[512] = "";
    ebsd_status st = auth_load_buffer("tokens", text, strlen(text), &a, msg, sizeof msg);
    CHECK_INT(st, want);
    if (want_msg)
        CHECK_STR(msg, want_msg);
    return a;
}

static void test_parse_and_match(void)
{
    struct auth *a = load("# ebsd tokens\n\n  alpha-token  \r\nbeta\n#gamma\n\t\n", EBSD_OK,
                          NULL);
    CHECK(a != NULL);
    CHECK_INT(auth_count(a), 2);
    CHECK(auth_check(a, "Bearer alpha-token"));
    CHECK(auth_check(a, "bearer beta"));
    CHECK(auth_check(a, "BEARER   beta  "));
    CHECK(!auth_check(a, "Bearer gamma"));      /* commented out */
    CHECK(!auth_check(a, "Bearer #gamma"));
    CHECK(!auth_check(a, "Bearer alpha"));      /* a prefix */
    CHECK(!auth_check(a, "Bearer alpha-token2"));
    CHECK(!auth_check(a, "Bearer "));
    CHECK(!auth_check(a, "Bearer"));
    CHECK(!auth_check(a, "Basic YWxwaGE6YmV0YQ=="));
    CHECK(!auth_check(a, "Bearerbeta"));
    CHECK(!auth_check(a, "alpha-token"));
    CHECK(!auth_check(a, NULL));
    CHECK(!auth_check(a, ""));
    CHECK(!auth_check(NULL, "Bearer beta"));
    auth_free(a);
}

static void test_bad_files(void)
{
    CHECK(load("", EBSD_EINVAL, "tokens: no tokens (one per line; blank lines and # comments "
                                "are ignored)") == NULL);
    CHECK(load("# only\n\n", EBSD_EINVAL, NULL) == NULL);
    CHECK(load("ok\ntwo words\n", EBSD_EINVAL,
               "tokens:2: a token may not contain blanks or control characters") == NULL);
    CHECK(load("a\x01" "b\n", EBSD_EINVAL, NULL) == NULL);
    char *big = malloc(AUTH_MAX_TOKEN_LEN + 3);
    memset(big, 'x', AUTH_MAX_TOKEN_LEN + 1);
    big[AUTH_MAX_TOKEN_LEN + 1] = '\n';
    big[AUTH_MAX_TOKEN_LEN + 2] = '\0';
    CHECK(load(big, EBSD_ETOOBIG, "tokens:1: token longer than 4096 bytes") == NULL);
    free(big);
    size_t n = (AUTH_MAX_TOKENS + 1) * 8;
    char *many = malloc(n + 1);
    for (size_t i = 0; i <= AUTH_MAX_TOKENS; i++)
        snprintf(many + i * 8, 9, "t%06zu\n", i);
    CHECK(load(many, EBSD_ETOOBIG, "tokens: more than 1024 tokens") == NULL);
    many[AUTH_MAX_TOKENS * 8] = '\0';
    struct auth *a = load(many, EBSD_OK, NULL);
    CHECK_INT(auth_count(a), AUTH_MAX_TOKENS);
    CHECK(auth_check(a, "Bearer t001023"));
    CHECK(auth_check(a, "Bearer t000000"));
    auth_free(a);
    free(many);
}

static void test_file_mode(void)
{
    char path[] = "/tmp/ebsd-test-tokens-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK_INT(write(fd, "s3cret\n", 7), 7);
    close(fd);
    struct auth *a = NULL;
    char msg[512];
    CHECK_INT(chmod(path, 0600), 0);
    CHECK_INT(auth_load(path, &a, msg, sizeof msg), EBSD_OK);
    CHECK(auth_check(a, "Bearer s3cret"));
    auth_free(a);
    a = NULL;
    CHECK_INT(chmod(path, 0644), 0);
    CHECK_INT(auth_load(path, &a, msg, sizeof msg), EBSD_EINVAL);
    CHECK(strstr(msg, path) != NULL);
    CHECK(strstr(msg, "readable by every user") != NULL);
    CHECK(strstr(msg, "s3cret") == NULL);
    CHECK(a == NULL);
    unlink(path);
    CHECK_INT(auth_load(path, &a, msg, sizeof msg), EBSD_EIO);
    CHECK(strstr(msg, "No such file") != NULL);
    CHECK_INT(auth_load("/tmp", &a, msg, sizeof msg), EBSD_EINVAL);
}

TEST_MAIN(T(test_parse_and_match), T(test_bad_files), T(test_file_mode))
