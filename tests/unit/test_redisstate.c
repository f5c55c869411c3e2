/* test_redisstate.c - what of the Redis modules needs no server: URL fields, the key layout
 * with one hash tag per target, lock tokens, the password file rules. The connection and
 * the scripts run against a real redis-server in tests/integration/test_redis.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "redis.h"
#include "redisstate.h"
#include "redisurl.h"

static void test_url_fields(void)
{
    struct redis_url u;
    char why[128];
    CHECK_INT(redis_url_parse("rediss://ebsd@cache.example:6380/3", &u, why, sizeof why),
              EBSD_OK);
    CHECK_INT(u.kind, REDIS_URL_TLS);
    CHECK_STR(u.host, "cache.example");
    CHECK_INT(u.port, 6380);
    CHECK_STR(u.user, "ebsd");
    CHECK_INT(u.db, 3);
    CHECK_INT(redis_url_parse("redis://[::1]", &u, why, sizeof why), EBSD_OK);
    CHECK_INT(u.kind, REDIS_URL_TCP);
    CHECK_STR(u.host, "::1");
    CHECK_INT(u.port, 6379);
    CHECK_STR(u.user, "");
    CHECK_INT(u.db, 0);
    CHECK_INT(redis_url_parse("redis://h/", &u, why, sizeof why), EBSD_OK);
    CHECK_INT(u.db, 0);
    CHECK_INT(redis_url_parse("unix:///run/r.sock", &u, why, sizeof why), EBSD_OK);
    CHECK_INT(u.kind, REDIS_URL_UNIX);
    CHECK_STR(u.path, "/run/r.sock");
    CHECK_INT(redis_url_parse("redis://@h", &u, why, sizeof why), EBSD_EINVAL);
    CHECK_INT(redis_url_parse("redis://h:", &u, why, sizeof why), EBSD_EINVAL);
    CHECK_INT(redis_url_parse("redis://h:+1", &u, why, sizeof why), EBSD_EINVAL);
    CHECK_INT(redis_url_parse("redis://h/65536", &u, why, sizeof why), EBSD_EINVAL);
    CHECK_INT(redis_url_parse("REDIS://h", &u, why, sizeof why), EBSD_EINVAL);
    CHECK_INT(redis_url_parse("", &u, why, sizeof why), EBSD_EINVAL);
    CHECK_STR(why, "is empty");
}

static void test_keys(void)
{
    char *k = redisstate_key("ebsd:", "123456789012", "us-east-1", "budget", "DescribeVolumes");
    CHECK_STR(k, "ebsd:{123456789012:us-east-1}:budget:DescribeVolumes");
    free(k);
    k = redisstate_key("", "123456789012", "eu-west-1", "flight", NULL);
    CHECK_STR(k, "{123456789012:eu-west-1}:flight");
    free(k);
    CHECK(redisstate_key("ebsd:", "12{3", "us-east-1", "budget", "x") == NULL);
    CHECK(redisstate_key("ebsd:", "123", "us east", "budget", "x") == NULL);
    CHECK(redisstate_key("ebsd:", "", "us-east-1", "budget", "x") == NULL);
    CHECK(redisstate_key("ebsd:", "1", "r", "cache", "a}b") == NULL);
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(redisstate_key("ebsd:", "1", "r", "cache", big) == NULL);
    char *p = redisstate_wake_pattern("ebsd:");
    CHECK_STR(p, "ebsd:wake:*");
    free(p);
}

static void test_tokens(void)
{
    char a[REDISSTATE_TOKEN_LEN + 1], b[REDISSTATE_TOKEN_LEN + 1];
    CHECK_INT(redisstate_token(a), EBSD_OK);
    CHECK_INT(redisstate_token(b), EBSD_OK);
    CHECK_INT(strlen(a), REDISSTATE_TOKEN_LEN);
    CHECK(strspn(a, "0123456789abcdef") == REDISSTATE_TOKEN_LEN);
    CHECK(strcmp(a, b) != 0);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
}

static void test_password_file(void)
{
    char path[] = "/tmp/test_redisstate.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    char *pw = NULL;
    write_file(path, "s3cret\n", 7);
    CHECK_INT(redis_password_load(path, &pw), EBSD_OK);
    CHECK_STR(pw, "s3cret");
    free(pw);
    write_file(path, "s3cret\r\n", 8);
    CHECK_INT(redis_password_load(path, &pw), EBSD_OK);
    CHECK_STR(pw, "s3cret");
    free(pw);
    write_file(path, "two\nlines\n", 10);
    CHECK_INT(redis_password_load(path, &pw), EBSD_EINVAL);
    write_file(path, "\n", 1);
    CHECK_INT(redis_password_load(path, &pw), EBSD_EINVAL);
    char *big = malloc(REDIS_MAX_SECRET + 10);
    memset(big, 'x', REDIS_MAX_SECRET + 10);
    write_file(path, big, REDIS_MAX_SECRET + 10);
    free(big);
    CHECK_INT(redis_password_load(path, &pw), EBSD_ETOOBIG);
    unlink(path);
    CHECK_INT(redis_password_load(path, &pw), EBSD_EIO);
}

TEST_MAIN(T(test_url_fields), T(test_keys), T(test_tokens), T(test_password_file))
