/* test_retrycfg.c - AWS_MAX_ATTEMPTS / AWS_RETRY_MODE over the profile's max_attempts /
 * retry_mode over ec2.max_attempts; legacy read as standard; bad values skipped with a note;
 * the profile read from AWS_CONFIG_FILE under AWS_PROFILE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "retrycfg.h"

static void test_precedence(void)
{
    struct retry_settings s;
    char note[300];
    CHECK_INT(retrycfg_resolve(NULL, NULL, NULL, NULL, 4, &s, note, sizeof note), EBSD_OK);
    CHECK_INT(s.max_attempts, 4);
    CHECK_INT(s.mode, RETRY_MODE_STANDARD);
    CHECK_STR(note, "");
    CHECK_INT(retrycfg_resolve(NULL, NULL, "5", "adaptive", 4, &s, note, sizeof note), EBSD_OK);
    CHECK_INT(s.max_attempts, 5);
    CHECK_INT(s.mode, RETRY_MODE_ADAPTIVE);
    CHECK_INT(retrycfg_resolve("2", "standard", "5", "adaptive", 4, &s, note, sizeof note),
              EBSD_OK);
    CHECK_INT(s.max_attempts, 2);
    CHECK_INT(s.mode, RETRY_MODE_STANDARD);
    CHECK_INT(retrycfg_resolve("", "", "6", "", 4, &s, note, sizeof note), EBSD_OK);
    CHECK_INT(s.max_attempts, 6); /* empty variables are unset */
    CHECK_INT(retrycfg_resolve(NULL, "ADAPTIVE", NULL, NULL, 0, &s, note, sizeof note),
              EBSD_OK);
    CHECK_INT(s.mode, RETRY_MODE_ADAPTIVE);
    CHECK_INT(s.max_attempts, 3);
}

static void test_notes_and_bad_values(void)
{
    struct retry_settings s;
    char note[300];
    CHECK_INT(retrycfg_resolve(NULL, "legacy", NULL, "adaptive", 3, &s, note, sizeof note),
              EBSD_OK);
    CHECK_INT(s.mode, RETRY_MODE_STANDARD);
    CHECK(strstr(note, "AWS_RETRY_MODE=legacy") != NULL);
    CHECK_INT(retrycfg_resolve("25", NULL, NULL, NULL, 3, &s, note, sizeof note), EBSD_OK);
    CHECK_INT(s.max_attempts, RETRY_MAX_ATTEMPTS_CAP);
    CHECK(strstr(note, "AWS_MAX_ATTEMPTS=25") != NULL);
    /* a bad env value is skipped: the profile's applies */
    CHECK_INT(retrycfg_resolve("0", "fast", "7", "adaptive", 3, &s, note, sizeof note),
              EBSD_EINVAL);
    CHECK_INT(s.max_attempts, 7);
    CHECK_INT(s.mode, RETRY_MODE_ADAPTIVE);
    CHECK(strstr(note, "AWS_MAX_ATTEMPTS=0") != NULL);
    CHECK(strstr(note, "AWS_RETRY_MODE=fast") != NULL);
    CHECK_INT(retrycfg_resolve("3x", NULL, "-1", NULL, 4, &s, note, sizeof note), EBSD_EINVAL);
    CHECK_INT(s.max_attempts, 4);
    CHECK(strstr(note, "profile max_attempts=-1") != NULL);
}

static void test_load_profile(void)
{
    char path[] = "/tmp/ebsd-retrycfg-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char text[] = "[default]\nmax_attempts = 4\n"
                        "[profile ops]\nmax_attempts = 6\nretry_mode = adaptive\n";
    CHECK(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
    close(fd);
    unsetenv("AWS_MAX_ATTEMPTS");
    unsetenv("AWS_RETRY_MODE");
    unsetenv("AWS_PROFILE");
    setenv("AWS_CONFIG_FILE", path, 1);
    struct retry_settings s;
    char note[300];
    CHECK_INT(retrycfg_load(3, &s, note, sizeof note), EBSD_OK);
    CHECK_INT(s.max_attempts, 4);
    CHECK_INT(s.mode, RETRY_MODE_STANDARD);
    setenv("AWS_PROFILE", "ops", 1);
    CHECK_INT(retrycfg_load(3, &s, note, sizeof note), EBSD_OK);
    CHECK_INT(s.max_attempts, 6);
    CHECK_INT(s.mode, RETRY_MODE_ADAPTIVE);
    setenv("AWS_MAX_ATTEMPTS", "2", 1);
    setenv("AWS_RETRY_MODE", "standard", 1);
    CHECK_INT(retrycfg_load(3, &s, note, sizeof note), EBSD_OK);
    CHECK_INT(s.max_attempts, 2);
    CHECK_INT(s.mode, RETRY_MODE_STANDARD);
    unlink(path);
    unsetenv("AWS_MAX_ATTEMPTS");
    unsetenv("AWS_RETRY_MODE");
    CHECK_INT(retrycfg_load(3, &s, note, sizeof note), EBSD_OK); /* no file: the config's */
    CHECK_INT(s.max_attempts, 3);
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_CONFIG_FILE");
}

TEST_MAIN(T(test_precedence), T(test_notes_and_bad_values), T(test_load_profile))
