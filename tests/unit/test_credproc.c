/* test_credproc.c - credential_process: botocore's word splitting, the JSON contract, and
 * real runs of small shell scripts written here (success with and without expiry, non-zero
 * exit without its stderr in the message, a hang killed at the deadline together with its
 * child, output over the cap, a missing program, a bad Version). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "credproc.h"
#include "harness.h"
#include "mem.h"

static void check_split(const char *cmd, const char *const *want)
{
    char **argv = NULL;
    char err[200] = "";
    CHECK_INT(credproc_split(cmd, &argv, err, sizeof err), EBSD_OK);
    if (!argv)
        return;
    size_t i = 0;
    for (; want[i]; i++)
        CHECK_STR(argv[i], want[i]);
    CHECK(argv[i] == NULL);
    credproc_argv_free(argv);
}

/* Expected words are those of Python's shlex.split(cmd) (posix=True). */
static void test_split(void)
{
    check_split("/bin/echo a b", (const char *const[]){"/bin/echo", "a", "b", NULL});
    check_split("  tool\t--x  'a b'  ", (const char *const[]){"tool", "--x", "a b", NULL});
    check_split("a'b c'd", (const char *const[]){"ab cd", NULL});
    check_split("x \"a \\\" \\\\ \\$ b\"",
                (const char *const[]){"x", "a \" \\ \\$ b", NULL});
    check_split("x a\\ b \\'q", (const char *const[]){"x", "a b", "'q", NULL});
    check_split("x '' \"\"", (const char *const[]){"x", "", "", NULL});
    check_split("x $HOME ~ *.c # c", (const char *const[]){"x", "$HOME", "~", "*.c", "#",
                                                           "c", NULL});
    check_split("x 'it''s'", (const char *const[]){"x", "its", NULL});

    static const char *const bad[] = {"", "   ", "x 'open", "x \"open", "x \\"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char **argv = NULL;
        char err[200] = "";
        CHECK_INT(credproc_split(bad[i], &argv, err, sizeof err), EBSD_EINVAL);
        CHECK(argv == NULL && err[0]);
    }
}

static void test_parse(void)
{
    struct creds c;
    char err[200];
    const char *ok = "{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC\", \"SecretAccessKey\": "
                     "\"s3cr3t\", \"SessionToken\": \"tok\", "
                     "\"Expiration\": \"2030-01-02T03:04:05Z\"}";
    CHECK_INT(credproc_parse(ok, strlen(ok), "profile:p", &c, err, sizeof err), EBSD_OK);
    CHECK_STR(c.access_key_id, "AKIDPROC");
    CHECK_STR(c.secret_access_key, "s3cr3t");
    CHECK_STR(c.session_token, "tok");
    CHECK_STR(c.source, "profile:p");
    CHECK_INT(c.expiration, 1893553445);
    const char *lt = "{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\","
                     "\"SessionToken\":null}";
    CHECK_INT(credproc_parse(lt, strlen(lt), "p", &c, err, sizeof err), EBSD_OK);
    CHECK_STR(c.session_token, "");
    CHECK_INT(c.expiration, 0);

    static const char *const bad[] = {
        "not json",
        "[1]",
        "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}",
        "{\"Version\":2,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}",
        "{\"Version\":\"1\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}",
        "{\"Version\":1,\"SecretAccessKey\":\"S\"}",
        "{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"\"}",
        "{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":7}",
        "{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":null}", /* fuzz */
        "{\"Version\":1,\"AccessKeyId\":null,\"SecretAccessKey\":\"S\"}",
        "{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"hunter2\","
        "\"Expiration\":\"tomorrow\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK_INT(credproc_parse(bad[i], strlen(bad[i]), "p", &c, err, sizeof err),
                  EBSD_EPARSE);
        CHECK(err[0] != '\0');
        CHECK(strstr(err, "hunter2") == NULL);
    }
}

static char dir[64];

/* Writes an executable script dir/name with body; returns its path (static). */
static const char *script(const char *name, const char *body)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return path;
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    CHECK(chmod(path, 0700) == 0);
    return path;
}

static ebsd_status run(const char *cmd, int64_t timeout_ms, struct creds *c, char *err,
                       size_t errlen, int64_t *ms)
{
    int64_t t0 = clock_now_ms();
    ebsd_status st = credproc_run(cmd, t0 + timeout_ms, "profile:p", c, err, errlen);
    *ms = clock_now_ms() - t0;
    return st;
}

static void test_run(void)
{
    snprintf(dir, sizeof dir, "/tmp/ebsd-credproc-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    struct creds c;
    char err[512];
    int64_t ms;

    /* arguments arrive as split, no shell expands them; expiry is honoured */
    const char *ok = script("ok.sh",
        "[ \"$1\" = 'a b' ] && [ \"$2\" = '$HOME' ] || exit 3\n"
        "echo 'some noise on stderr' >&2\n"
        "printf '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC\", \"SecretAccessKey\": "
        "\"procsecret\", \"SessionToken\": \"proctoken\", \"Expiration\": "
        "\"2031-01-01T00:00:00Z\"}'");
    char *cmd = xasprintf("%s 'a b' '$HOME'", ok);
    CHECK_INT(run(cmd, 5000, &c, err, sizeof err, &ms), EBSD_OK);
    CHECK_STR(c.access_key_id, "AKIDPROC");
    CHECK_STR(c.secret_access_key, "procsecret");
    CHECK_STR(c.session_token, "proctoken");
    CHECK_INT(c.expiration, 1924992000);
    free(cmd);

    /* found through PATH */
    const char *old_path = getenv("PATH");
    char *saved = xstrdup(old_path ? old_path : "/usr/bin:/bin");
    char *np = xasprintf("%s:%s", dir, saved);
    setenv("PATH", np, 1);
    CHECK_INT(run("ok.sh 'a b' '$HOME'", 5000, &c, err, sizeof err, &ms), EBSD_OK);
    setenv("PATH", saved, 1);
    free(np);
    free(saved);

    /* non-zero exit: an error that names the program and the status, never the stderr */
    const char *fail = script("fail.sh", "echo 'secret-in-stderr' >&2; exit 4");
    CHECK_INT(run(fail, 5000, &c, err, sizeof err, &ms), EBSD_EAUTH);
    CHECK(strstr(err, "fail.sh") != NULL);
    CHECK(strstr(err, "status 4") != NULL);
    CHECK(strstr(err, "secret-in-stderr") == NULL);

    /* a hang, with a grandchild holding the pipe: killed at the deadline, quickly */
    const char *hang = script("hang.sh", "sleep 30 & sleep 30");
    CHECK_INT(run(hang, 300, &c, err, sizeof err, &ms), EBSD_ETIMEDOUT);
    CHECK(ms >= 290 && ms < 2000);
    CHECK(strstr(err, "deadline") != NULL);

    /* output over the cap */
    const char *big = script("big.sh", "head -c 200000 /dev/zero | tr '\\0' x");
    CHECK_INT(run(big, 5000, &c, err, sizeof err, &ms), EBSD_ETOOBIG);

    /* a Version 2 answer, and an answer whose secret must not leak into the message */
    const char *v2 = script("v2.sh", "echo '{\"Version\": 2, \"AccessKeyId\": \"A\", "
                                     "\"SecretAccessKey\": \"leakme\"}'");
    CHECK_INT(run(v2, 5000, &c, err, sizeof err, &ms), EBSD_EPARSE);
    CHECK(strstr(err, "Version") != NULL);
    CHECK(strstr(err, "leakme") == NULL);

    /* missing and non-executable programs */
    CHECK_INT(run("/nonexistent/credential-helper --x", 5000, &c, err, sizeof err, &ms),
              EBSD_ENOTFOUND);
    CHECK(strstr(err, "credential-helper") != NULL);
    CHECK(strstr(err, "--x") == NULL);
    char *noexec = xasprintf("%s/noexec", dir);
    int fd = open(noexec, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    CHECK_INT(run(noexec, 5000, &c, err, sizeof err, &ms), EBSD_ENOTFOUND);
    unlink(noexec);
    free(noexec);

    /* a descriptor of ours that is not close-on-exec does not reach the program */
    const char *fds = script("fds.sh",
        "[ -e /proc/$$/fd/$1 ] && exit 9\n"
        "echo '{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}'");
    int extra = open("/dev/null", O_RDONLY);
    CHECK(extra > 2);
    char *fcmd = xasprintf("%s %d", fds, extra);
    CHECK_INT(run(fcmd, 5000, &c, err, sizeof err, &ms), EBSD_OK);
    free(fcmd);
    /* the check itself can fail: fd 1 is there */
    fcmd = xasprintf("%s 1", fds);
    CHECK_INT(run(fcmd, 5000, &c, err, sizeof err, &ms), EBSD_EAUTH);
    free(fcmd);
    if (extra >= 0)
        close(extra);

    const char *names[] = {"ok.sh", "fail.sh", "hang.sh", "big.sh", "v2.sh", "fds.sh"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

TEST_MAIN(T(test_split), T(test_parse), T(test_run))
