/* test_sts.c - STS calls against a scripted server on 127.0.0.1 (forked): a hung first
 * attempt is abandoned at the read timeout and retried; a 500 is retried; RequestExpired
 * with a Date an hour ahead corrects the clock offset and the call is re-signed at once;
 * a 403 AccessDenied is not retried (EBSD_EAUTH, the code in the outcome); throttling and
 * ValidationError statuses; the account id of the assumed role; endpoints by partition.
 * (Response parsing is in test_creds.c.) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "awsid.h"
#include "clock.h"
#include "harness.h"
#include "httpc.h"
#include "mem.h"
#include "skew.h"
#include "sts.h"

#define OK_XML                                                                                \
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>" \
    "<Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>sk</SecretAccessKey>" \
    "<SessionToken>tok</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>"           \
    "</Credentials><AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId>"                     \
    "<Arn>arn:aws:sts::111122223333:assumed-role/r/s</Arn></AssumedRoleUser>"                  \
    "</AssumeRoleResult></AssumeRoleResponse>"
#define ERR_XML(code)                                                                         \
    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender"   \
    "</Type><Code>" code "</Code><Message>m</Message></Error><RequestId>r</RequestId>"        \
    "</ErrorResponse>"

struct reply {
    int status;       /* 0: no answer, wait until the client closes */
    const char *body;
    const char *date; /* Date header, or NULL */
};

/* Reads one request (head + Content-Length body); its length, or -1 at EOF. */
static ssize_t read_request(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        const char *cl = strcasestr(buf, "content-length:");
        size_t want = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
        if (n >= (size_t)(end + 4 - buf) + want)
            return (ssize_t)n;
    }
}

/* Serves the replies in order; writes each request's X-Amz-Date line (or "-") to the pipe,
 * one per line. */
static pid_t serve(const struct reply *replies, size_t n, int *port, int *log_fd)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(bind(ls, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(ls, 8) == 0);
    CHECK(getsockname(ls, (struct sockaddr *)&a, &al) == 0);
    *port = ntohs(a.sin_port);
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        static char req[1 << 16];
        size_t i = 0;
        while (i < n) {
            int fd = accept(ls, NULL, NULL);
            if (fd < 0)
                _exit(1);
            while (i < n && read_request(fd, req, sizeof req) >= 0) {
                const char *d = strcasestr(req, "\r\nX-Amz-Date: ");
                char line[32] = "-\n";
                if (d)
                    snprintf(line, sizeof line, "%.16s\n", d + 14);
                if (write(p[1], line, strlen(line)) < 0)
                    _exit(1);
                const struct reply *rp = &replies[i++];
                if (!rp->status) {
                    char c;
                    while (read(fd, &c, 1) > 0)
                        ;
                    break;
                }
                char *resp = xasprintf("HTTP/1.1 %d X\r\nContent-Type: text/xml\r\n%s%s%s"
                                       "Content-Length: %zu\r\n\r\n%s",
                                       rp->status, rp->date ? "Date: " : "",
                                       rp->date ? rp->date : "", rp->date ? "\r\n" : "",
                                       strlen(rp->body), rp->body);
                if (write(fd, resp, strlen(resp)) < 0)
                    _exit(1);
                free(resp);
            }
            close(fd);
        }
        _exit(0);
    }
    close(p[1]);
    close(ls);
    *log_fd = p[0];
    return pid;
}

/* The X-Amz-Date lines the server saw, as epoch seconds (-1 for none), into out. */
static size_t dates_seen(int fd, time_t *out, size_t cap)
{
    char buf[1024];
    size_t len = 0, n = 0;
    ssize_t r;
    while (len < sizeof buf - 1 && (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fd);
    for (char *line = buf, *nl; n < cap && (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        struct tm tm = {0};
        out[n++] = strptime(line, "%Y%m%dT%H%M%SZ", &tm) ? timegm(&tm) : -1;
    }
    return n;
}

static struct creds source_creds(void)
{
    struct creds c;
    memset(&c, 0, sizeof c);
    snprintf(c.access_key_id, sizeof c.access_key_id, "AKIDEXAMPLE");
    snprintf(c.secret_access_key, sizeof c.secret_access_key, "secret");
    return c;
}

static struct sts_outcome last_outcome;
static int attempts_allowed; /* 0: the default */

/* AssumeRole against the scripted server; *ms receives the time it took. */
static ebsd_status assume(int port, struct creds *out, char *err, size_t errlen, int64_t *ms)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    struct creds src = source_creds();
    struct sts_assume a = {.role_arn = "arn:aws:iam::123456789012:role/r",
                           .session_name = "s", .source = &src, .region = "us-east-1",
                           .endpoint = url, .deadline = clock_now_ms() + 10000,
                           .read_timeout_ms = 300, .outcome = &last_outcome,
                           .max_attempts = attempts_allowed};
    struct httpc *h = httpc_new();
    int64_t t0 = clock_now_ms();
    ebsd_status st = sts_assume_role(h, &a, out, err, errlen);
    *ms = clock_now_ms() - t0;
    httpc_free(h);
    return st;
}

static void test_hang_and_500_retried(void)
{
    static const struct reply replies[] = {
        {0, "", NULL},
        {500, ERR_XML("InternalFailure"), NULL},
        {200, OK_XML, NULL},
    };
    int port, logfd;
    pid_t pid = serve(replies, 3, &port, &logfd);
    struct creds c;
    char err[512] = "";
    int64_t ms;
    CHECK_INT(assume(port, &c, err, sizeof err, &ms), EBSD_OK);
    CHECK_STR(c.access_key_id, "ASIAEXAMPLE");
    /* 300 ms read timeout, then two backoffs of at most 1 and 2 s */
    CHECK(ms >= 290 && ms < 3800);
    waitpid(pid, NULL, 0);
    time_t d[8];
    CHECK_INT(dates_seen(logfd, d, 8), 3);
}

static void test_clock_skew_corrected(void)
{
    skew_reset();
    char ahead[64];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&(time_t){t + 3600}, &tm);
    strftime(ahead, sizeof ahead, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    const struct reply replies[] = {
        {400, ERR_XML("RequestExpired"), ahead},
        {200, OK_XML, ahead},
    };
    int port, logfd;
    pid_t pid = serve(replies, 2, &port, &logfd);
    struct creds c;
    char err[512] = "";
    int64_t ms;
    CHECK_INT(assume(port, &c, err, sizeof err, &ms), EBSD_OK);
    CHECK(ms < 900); /* re-signed at once, no backoff */
    CHECK(skew_offset_known());
    CHECK(llabs(skew_offset_ms() - 3600000) <= 2000);
    waitpid(pid, NULL, 0);
    time_t d[8];
    CHECK_INT(dates_seen(logfd, d, 8), 2);
    CHECK(llabs((long long)(d[0] - t)) <= 2);
    CHECK(llabs((long long)(d[1] - (t + 3600))) <= 2);
    skew_reset();
}

static void test_access_denied_not_retried(void)
{
    char now[64];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    /* SignatureDoesNotMatch with a Date that agrees with our clock is a wrong secret */
    static struct reply replies[] = {
        {403, ERR_XML("AccessDenied"), NULL},
        {403, ERR_XML("SignatureDoesNotMatch"), NULL},
    };
    replies[1].date = now;
    for (int i = 0; i < 2; i++) {
        int port, logfd;
        pid_t pid = serve(&replies[i], 1, &port, &logfd);
        struct creds c;
        char err[512] = "";
        int64_t ms;
        CHECK_INT(assume(port, &c, err, sizeof err, &ms), EBSD_EAUTH);
        CHECK(strstr(err, i ? "SignatureDoesNotMatch" : "AccessDenied") != NULL);
        CHECK(strstr(err, "HTTP 403") != NULL);
        CHECK_STR(last_outcome.code, i ? "SignatureDoesNotMatch" : "AccessDenied");
        CHECK_INT(last_outcome.http_status, 403);
        CHECK_INT(last_outcome.attempts, 1);
        CHECK_STR(last_outcome.account_id, "");
        waitpid(pid, NULL, 0);
        time_t d[8];
        CHECK_INT(dates_seen(logfd, d, 8), 1);
    }
    CHECK(!skew_offset_known());
}

/* Throttled on every attempt: EBSD_ETHROTTLED after max_attempts requests; a
 * ValidationError is EBSD_EINVAL at once; success reports the role's account. */
static void test_statuses_and_outcome(void)
{
    static const struct reply throttled[] = {
        {400, ERR_XML("Throttling"), NULL},
        {400, ERR_XML("Throttling"), NULL},
    };
    int port, logfd;
    struct creds c;
    char err[512] = "";
    int64_t ms;
    time_t d[8];
    attempts_allowed = 2;
    pid_t pid = serve(throttled, 2, &port, &logfd);
    CHECK_INT(assume(port, &c, err, sizeof err, &ms), EBSD_ETHROTTLED);
    CHECK_STR(last_outcome.code, "Throttling");
    CHECK_INT(last_outcome.attempts, 2);
    waitpid(pid, NULL, 0);
    CHECK_INT(dates_seen(logfd, d, 8), 2);
    attempts_allowed = 0;

    static const struct reply invalid[] = {{400, ERR_XML("ValidationError"), NULL}};
    pid = serve(invalid, 1, &port, &logfd);
    CHECK_INT(assume(port, &c, err, sizeof err, &ms), EBSD_EINVAL);
    CHECK(strstr(err, "ValidationError") != NULL);
    waitpid(pid, NULL, 0);
    CHECK_INT(dates_seen(logfd, d, 8), 1);

    static const struct reply ok[] = {{200, OK_XML, NULL}};
    pid = serve(ok, 1, &port, &logfd);
    CHECK_INT(assume(port, &c, err, sizeof err, &ms), EBSD_OK);
    CHECK_STR(last_outcome.account_id, "111122223333");
    CHECK_STR(last_outcome.assumed_role_arn, "arn:aws:sts::111122223333:assumed-role/r/s");
    CHECK_STR(last_outcome.code, "");
    CHECK_INT(last_outcome.http_status, 200);
    waitpid(pid, NULL, 0);
    CHECK_INT(dates_seen(logfd, d, 8), 1);
}

/* GetCallerIdentity: the Account of the answer; an answer without one is EBSD_EPARSE. */
static void test_caller_identity(void)
{
    static const struct reply replies[] = {
        {200, "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
              "<GetCallerIdentityResult><Arn>arn:aws:iam::444455556666:user/u</Arn>"
              "<UserId>AIDA</UserId><Account>444455556666</Account></GetCallerIdentityResult>"
              "</GetCallerIdentityResponse>", NULL},
        {200, "<GetCallerIdentityResponse><GetCallerIdentityResult><Account>12</Account>"
              "</GetCallerIdentityResult></GetCallerIdentityResponse>", NULL},
    };
    for (int i = 0; i < 2; i++) {
        int port, logfd;
        pid_t pid = serve(&replies[i], 1, &port, &logfd);
        char url[64], err[512] = "";
        snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
        struct creds src = source_creds();
        struct sts_assume a = {.source = &src, .region = "us-east-1", .endpoint = url,
                               .deadline = clock_now_ms() + 5000};
        struct sts_outcome o;
        struct httpc *h = httpc_new();
        ebsd_status st = sts_get_caller_identity(h, &a, &o, err, sizeof err);
        httpc_free(h);
        waitpid(pid, NULL, 0);
        time_t d[4];
        CHECK_INT(dates_seen(logfd, d, 4), 1); /* signed: X-Amz-Date present */
        CHECK(d[0] > 0);
        if (i == 0) {
            CHECK_INT(st, EBSD_OK);
            CHECK_STR(o.account_id, "444455556666");
            CHECK_STR(o.assumed_role_arn, "arn:aws:iam::444455556666:user/u");
        } else {
            CHECK_INT(st, EBSD_EPARSE);
            CHECK(strstr(err, "Account") != NULL);
        }
    }
}

/* The endpoint: partition-aware default, the STS variable over the generic one, both off
 * with AWS_IGNORE_CONFIGURED_ENDPOINT_URLS; the default session name is valid for STS. */
static void test_endpoint_and_session_name(void)
{
    unsetenv("AWS_ENDPOINT_URL_STS");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    char *e = sts_endpoint("cn-northwest-1");
    CHECK_STR(e, "https://sts.cn-northwest-1.amazonaws.com.cn");
    free(e);
    e = sts_endpoint("us-gov-west-1");
    CHECK_STR(e, "https://sts.us-gov-west-1.amazonaws.com");
    free(e);
    e = sts_endpoint("us-isob-east-1");
    CHECK_STR(e, "https://sts.us-isob-east-1.sc2s.sgov.gov");
    free(e);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
    setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2", 1);
    e = sts_endpoint("eu-west-1");
    CHECK_STR(e, "http://127.0.0.1:2");
    free(e);
    setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "True", 1);
    e = sts_endpoint("eu-west-1");
    CHECK_STR(e, "https://sts.eu-west-1.amazonaws.com");
    free(e);
    unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    unsetenv("AWS_ENDPOINT_URL_STS");
    unsetenv("AWS_ENDPOINT_URL");

    char name[AWSID_SESSION_NAME_MAX + 1];
    sts_default_session_name(name, sizeof name);
    CHECK(strncmp(name, "ebsd-", 5) == 0);
    CHECK(awsid_session_name_valid(name));

    CHECK(sts_auth_code("AccessDenied"));
    CHECK(sts_auth_code("ExpiredToken"));
    CHECK(!sts_auth_code("Throttling"));
    CHECK(!sts_auth_code(""));
}

TEST_MAIN(T(test_hang_and_500_retried), T(test_clock_skew_corrected),
          T(test_access_denied_not_retried), T(test_statuses_and_outcome),
          T(test_endpoint_and_session_name), T(test_caller_identity))
