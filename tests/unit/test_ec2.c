/* test_ec2.c - the EC2 client without the simulator: id validation, endpoint derivation and
 * validation, request body encoding, and the request loop against a scripted HTTP server on
 * 127.0.0.1 (forked): signed POSTs, a repeated nextToken, a 2xx error envelope, a hung
 * attempt retried after its read timeout, a clock-skew error corrected and re-signed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "creds.h"
#include "ec2.h"
#include "harness.h"
#include "httpc.h"
#include "mem.h"
#include "skew.h"

static void test_instance_ids(void)
{
    CHECK(ec2_instance_id_valid("i-12345678"));
    CHECK(ec2_instance_id_valid("i-0123456789abcdef0"));
    CHECK(ec2_instance_id_valid("i-abcdef01"));
    CHECK(!ec2_instance_id_valid("i-1234567"));
    CHECK(!ec2_instance_id_valid("i-123456789"));
    CHECK(!ec2_instance_id_valid("i-0123456789abcdef"));
    CHECK(!ec2_instance_id_valid("i-0123456789abcdef01"));
    CHECK(!ec2_instance_id_valid("i-0123456789ABCDEF0"));
    CHECK(!ec2_instance_id_valid("i-0123456789abcdeg0"));
    CHECK(!ec2_instance_id_valid("I-12345678"));
    CHECK(!ec2_instance_id_valid("vol-12345678"));
    CHECK(!ec2_instance_id_valid("i_12345678"));
    CHECK(!ec2_instance_id_valid("i-1234 678"));
    CHECK(!ec2_instance_id_valid("i-12345678\n"));
    CHECK(!ec2_instance_id_valid(""));
    CHECK(!ec2_instance_id_valid("i-"));
    CHECK(!ec2_instance_id_valid(NULL));
}

static struct creds test_creds(void)
{
    struct creds c;
    memset(&c, 0, sizeof c);
    snprintf(c.access_key_id, sizeof c.access_key_id, "AKIDEXAMPLE");
    snprintf(c.secret_access_key, sizeof c.secret_access_key, "secret");
    return c;
}

static void test_endpoints(void)
{
    char buf[128];
    ec2_default_endpoint("us-east-1", buf, sizeof buf);
    CHECK_STR(buf, "https://ec2.us-east-1.amazonaws.com");
    ec2_default_endpoint("eu-west-3", buf, sizeof buf);
    CHECK_STR(buf, "https://ec2.eu-west-3.amazonaws.com");
    ec2_default_endpoint("cn-north-1", buf, sizeof buf);
    CHECK_STR(buf, "https://ec2.cn-north-1.amazonaws.com.cn");
    ec2_default_endpoint("cn-northwest-1", buf, sizeof buf);
    CHECK_STR(buf, "https://ec2.cn-northwest-1.amazonaws.com.cn");

    struct creds cr = test_creds();
    struct ec2_client *c = NULL;
    struct ec2_options o = {.region = "cn-north-1", .creds = &cr};
    CHECK_INT(ec2_client_new(&o, &c), EBSD_OK);
    if (c)
        CHECK_STR(ec2_client_endpoint(c), "https://ec2.cn-north-1.amazonaws.com.cn");
    ec2_client_free(c);
    c = NULL;
    o.region = "us-west-2";
    o.endpoint = "http://127.0.0.1:4566";
    CHECK_INT(ec2_client_new(&o, &c), EBSD_OK);
    if (c)
        CHECK_STR(ec2_client_endpoint(c), "http://127.0.0.1:4566");
    ec2_client_free(c);

    static const char *const bad_endpoints[] = {
        "ftp://127.0.0.1/", "127.0.0.1:80", "http://", "http:///x", "http://u:p@127.0.0.1/",
        "http://127.0.0.1/ x", "http://127.0.0.1/?a=b", "https://h/#f", "file:///etc/passwd",
    };
    for (size_t i = 0; i < sizeof bad_endpoints / sizeof bad_endpoints[0]; i++) {
        c = NULL;
        o.endpoint = bad_endpoints[i];
        ebsd_status st = ec2_client_new(&o, &c);
        if (st != EBSD_EINVAL)
            fprintf(stderr, "accepted endpoint %s\n", bad_endpoints[i]);
        CHECK_INT(st, EBSD_EINVAL);
        CHECK(c == NULL);
    }
    o.endpoint = NULL;
    static const char *const bad_regions[] = {"", "US-EAST-1", "us east", "us-east-1.evil.com",
                                              "-x", "a/b", "x-"};
    for (size_t i = 0; i < sizeof bad_regions / sizeof bad_regions[0]; i++) {
        o.region = bad_regions[i];
        c = NULL;
        CHECK_INT(ec2_client_new(&o, &c), EBSD_EINVAL);
    }
    o.region = NULL;
    CHECK_INT(ec2_client_new(&o, &c), EBSD_EINVAL);
    o.region = "us-east-1";
    o.creds = NULL;
    CHECK_INT(ec2_client_new(&o, &c), EBSD_EINVAL);
    CHECK_INT(ec2_client_new(NULL, &c), EBSD_EINVAL);
}

static void test_bodies(void)
{
    char *b = NULL;
    CHECK_INT(ec2_instances_body(NULL, 0, NULL, 0, &b), EBSD_OK);
    CHECK_STR(b, "Action=DescribeInstances&Version=2016-11-15&MaxResults=1000");
    free(b);
    CHECK_INT(ec2_instances_body(NULL, 0, "JqBdtVdGsvMjUysyEgwy/jVBCGAjj9G4/ivkfsXHt9A=", 200, &b),
              EBSD_OK);
    CHECK_STR(b, "Action=DescribeInstances&Version=2016-11-15&MaxResults=200&NextToken="
                 "JqBdtVdGsvMjUysyEgwy%2FjVBCGAjj9G4%2FivkfsXHt9A%3D");
    free(b);
    const char *ids[] = {"i-12345678", "i-0123456789abcdef0"};
    CHECK_INT(ec2_instances_body(ids, 2, NULL, 200, &b), EBSD_OK);
    CHECK_STR(b, "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-12345678"
                 "&InstanceId.2=i-0123456789abcdef0"); /* no MaxResults with ids */
    free(b);
    CHECK_INT(ec2_instances_body(NULL, 0, NULL, 2, &b), EBSD_OK); /* clamped to EC2's range */
    CHECK_STR(b, "Action=DescribeInstances&Version=2016-11-15&MaxResults=5");
    free(b);
    CHECK_INT(ec2_instances_body(NULL, 0, NULL, 5000, &b), EBSD_OK);
    CHECK_STR(b, "Action=DescribeInstances&Version=2016-11-15&MaxResults=1000");
    free(b);

    /* a split listing: disjoint instance-id wildcards on the last hex digit */
    CHECK_INT(ec2_instances_part_body(0, 1, NULL, 1000, &b), EBSD_OK);
    CHECK_STR(b, "Action=DescribeInstances&Version=2016-11-15&MaxResults=1000");
    free(b);
    CHECK_INT(ec2_instances_part_body(3, 4, "t/1", 1000, &b), EBSD_OK);
    CHECK_STR(b, "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-id"
                 "&Filter.1.Value.1=%2A3&Filter.1.Value.2=%2A7&Filter.1.Value.3=%2Ab"
                 "&Filter.1.Value.4=%2Af&MaxResults=1000&NextToken=t%2F1");
    free(b);
    CHECK_INT(ec2_instances_part_body(15, 16, NULL, 1000, &b), EBSD_OK);
    CHECK_STR(b, "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-id"
                 "&Filter.1.Value.1=%2Af&MaxResults=1000");
    free(b);
    b = NULL;
    CHECK_INT(ec2_instances_part_body(0, 3, NULL, 1000, &b), EBSD_EINVAL);
    CHECK_INT(ec2_instances_part_body(0, 32, NULL, 1000, &b), EBSD_EINVAL);
    CHECK_INT(ec2_instances_part_body(0, 0, NULL, 1000, &b), EBSD_EINVAL);
    CHECK_INT(ec2_instances_part_body(4, 4, NULL, 1000, &b), EBSD_EINVAL);
    CHECK(b == NULL);

    /* the attached volumes in shares: one hex digit up to 16, two beyond */
#define ATTACHED "Action=DescribeVolumes&Version=2016-11-15&Filter.1.Name=attachment.status" \
                 "&Filter.1.Value.1=attaching&Filter.1.Value.2=attached" \
                 "&Filter.1.Value.3=detaching"
    CHECK_INT(ec2_attached_part_body(0, 1, NULL, 500, &b), EBSD_OK);
    CHECK_STR(b, ATTACHED "&MaxResults=500");
    free(b);
    CHECK_INT(ec2_attached_part_body(5, 8, "t/2", 0, &b), EBSD_OK); /* 0: the default page */
    CHECK_STR(b, ATTACHED "&Filter.2.Name=volume-id&Filter.2.Value.1=%2A5"
                 "&Filter.2.Value.2=%2Ad&MaxResults=500&NextToken=t%2F2");
    free(b);
    CHECK_INT(ec2_attached_part_body(33, 64, NULL, 500, &b), EBSD_OK);
    CHECK_STR(b, ATTACHED "&Filter.2.Name=volume-id&Filter.2.Value.1=%2A21"
                 "&Filter.2.Value.2=%2A61&Filter.2.Value.3=%2Aa1&Filter.2.Value.4=%2Ae1"
                 "&MaxResults=500");
    free(b);
    CHECK_INT(ec2_attached_part_body(255, 256, NULL, 500, &b), EBSD_OK);
    CHECK_STR(b, ATTACHED "&Filter.2.Name=volume-id&Filter.2.Value.1=%2Aff&MaxResults=500");
    free(b);
#undef ATTACHED
    /* 3 does not divide 16: the last two digits, x % 3 == part of 0..255 (86, 85, 85) */
    CHECK_INT(ec2_attached_part_body(2, 3, NULL, 500, &b), EBSD_OK);
    CHECK(strstr(b, "&Filter.2.Value.1=%2A02&Filter.2.Value.2=%2A05&") != NULL);
    CHECK(strstr(b, "&Filter.2.Value.85=%2Afe&MaxResults=500") != NULL);
    free(b);
    b = NULL;
    CHECK_INT(ec2_attached_part_body(0, 512, NULL, 500, &b), EBSD_EINVAL);
    CHECK_INT(ec2_attached_part_body(0, 0, NULL, 500, &b), EBSD_EINVAL);
    CHECK_INT(ec2_attached_part_body(8, 8, NULL, 500, &b), EBSD_EINVAL);
    CHECK(b == NULL);

    CHECK_INT(ec2_volumes_body(NULL, 0, NULL, 0, &b), EBSD_OK);
    CHECK_STR(b, "Action=DescribeVolumes&Version=2016-11-15&MaxResults=500");
    free(b);
    CHECK_INT(ec2_volumes_body(ids, 2, "a b+c", 100, &b), EBSD_OK);
    CHECK_STR(b, "Action=DescribeVolumes&Version=2016-11-15&Filter.1.Name=attachment.instance-id"
                 "&Filter.1.Value.1=i-12345678&Filter.1.Value.2=i-0123456789abcdef0"
                 "&MaxResults=100&NextToken=a%20b%2Bc");
    free(b);

    /* Bad ids and too many ids never make a body. */
    const char *bad[] = {"i-12345678", "i-1234&Action=RunInstances"};
    b = NULL;
    CHECK_INT(ec2_instances_body(bad, 2, NULL, 0, &b), EBSD_EINVAL);
    CHECK_INT(ec2_volumes_body(bad, 2, NULL, 0, &b), EBSD_EINVAL);
    CHECK(b == NULL);
    const char **many = xcalloc(EC2_MAX_IDS + 1, sizeof *many);
    for (size_t i = 0; i <= EC2_MAX_IDS; i++)
        many[i] = "i-12345678";
    CHECK_INT(ec2_volumes_body(many, EC2_MAX_IDS + 1, NULL, 0, &b), EBSD_EINVAL);
    CHECK_INT(ec2_volumes_body(many, EC2_MAX_IDS, NULL, 0, &b), EBSD_OK);
    CHECK(b && strstr(b, "Filter.1.Value.1000=i-12345678&MaxResults=500"));
    free(b);
    free(many);

    char *e = ec2_form_encode("AZaz09-_.~ /=+&%\xc3\xa9");
    CHECK_STR(e, "AZaz09-_.~%20%2F%3D%2B%26%25%C3%A9");
    free(e);
}

/* ---- a scripted server ------------------------------------------------------------------ */

struct reply {
    int status;
    const char *body;
    bool hang;        /* no answer: wait until the client gives up and closes */
    const char *date; /* a Date header to send, or NULL */
};

/* Reads one HTTP request (headers + Content-Length body) from fd; returns its length or -1. */
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

/* Serves the replies in order, one request each (keep-alive), then exits. Writes every
 * request it received, NUL-separated, to the pipe. */
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
            while (i < n) {
                ssize_t r = read_request(fd, req, sizeof req);
                if (r < 0)
                    break;
                if (write(p[1], req, (size_t)r + 1) < 0)
                    _exit(1);
                if (replies[i++].hang) {
                    char c;
                    while (read(fd, &c, 1) > 0)
                        ;
                    break; /* the client retries on a new connection */
                }
                const struct reply *rp = &replies[i - 1];
                char *resp = xasprintf("HTTP/1.1 %d X\r\nContent-Type: text/xml\r\n"
                                       "%s%s%sContent-Length: %zu\r\n\r\n%s",
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

static char *drain(int fd, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *b = xmalloc(cap);
    ssize_t r;
    while ((r = read(fd, b + n, cap - n)) > 0) {
        n += (size_t)r;
        if (n == cap)
            b = xrealloc(b, cap *= 2);
    }
    close(fd);
    *len = n;
    return b;
}

#define PAGE(tok)                                                                             \
    "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"          \
    "<reservationSet><item><instancesSet><item><instanceId>i-12345678</instanceId>"          \
    "<instanceState><name>running</name></instanceState></item></instancesSet></item>"       \
    "</reservationSet>" tok "</DescribeInstancesResponse>"

static void test_requests_and_repeated_token(void)
{
    static const struct reply replies[] = {
        {200, PAGE("<nextToken>t/1=</nextToken>"), false, NULL},
        {200, PAGE("<nextToken>t/2=</nextToken>"), false, NULL},
        {200, PAGE("<nextToken>t/2=</nextToken>"), false, NULL}, /* the service repeats itself */
    };
    int port = 0, logfd = -1;
    pid_t pid = serve(replies, 3, &port, &logfd);
    struct creds cr = test_creds();
    snprintf(cr.session_token, sizeof cr.session_token, "TOKEN");
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    struct ec2_options o = {.region = "us-east-1", .endpoint = url, .creds = &cr,
                            .instance_page_size = 100};
    struct ec2_client *c = NULL;
    CHECK_INT(ec2_client_new(&o, &c), EBSD_OK);
    if (!c)
        return;
    struct ec2_instance_page p = {0};
    struct ec2_error e;
    ebsd_status st = ec2_list_instances_all(c, NULL, 0, clock_now_ms() + 10000, 0, &p, &e);
    CHECK_INT(st, EBSD_EUPSTREAM);
    CHECK(strstr(e.message, "nextToken") != NULL);
    CHECK_INT(ec2_client_stats(c)->calls, 3);
    CHECK_INT(ec2_client_stats(c)->retries, 0);
    ec2_client_free(c);
    int status = 0;
    waitpid(pid, &status, 0);
    size_t len;
    char *log = drain(logfd, &len);
    /* First request: the signed form POST. */
    CHECK(strncmp(log, "POST / HTTP/1.1\r\n", 17) == 0);
    CHECK(strcasestr(log, "\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8"));
    CHECK(strcasestr(log, "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    CHECK(strstr(log, "/us-east-1/ec2/aws4_request"));
    CHECK(strcasestr(log, "\r\nX-Amz-Date: "));
    CHECK(strcasestr(log, "\r\nX-Amz-Security-Token: TOKEN"));
    CHECK(strstr(log, "\r\n\r\nAction=DescribeInstances&Version=2016-11-15&MaxResults=100"));
    /* Second: the token, percent-encoded. */
    const char *second = log + strlen(log) + 1;
    CHECK(second < log + len);
    CHECK(strstr(second, "&MaxResults=100&NextToken=t%2F1%3D"));
    free(log);
}

static void test_error_answers(void)
{
    static const struct reply replies[] = {
        /* an envelope under 200 is still an error (not retried: not a retryable code) */
        {200, "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>"
              "The instance ID 'i-1a2b3c4d' does not exist</Message></Error></Errors>"
              "<RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>",
         false, NULL},
        /* 400 with a body that is not XML */
        {400, "oops", false, NULL},
        /* a 200 with another action's answer is a parse error, retried, then reported */
        {200, "<AttachVolumeResponse/>", false, NULL},
        {200, "<AttachVolumeResponse/>", false, NULL},
    };
    int port = 0, logfd = -1;
    pid_t pid = serve(replies, 4, &port, &logfd);
    struct creds cr = test_creds();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    struct ec2_options o = {.region = "us-east-1", .endpoint = url, .creds = &cr,
                            .max_attempts = 2, .deterministic_backoff = true};
    struct ec2_client *c = NULL;
    CHECK_INT(ec2_client_new(&o, &c), EBSD_OK);
    if (!c)
        return;
    const char *ids[] = {"i-1a2b3c4d"};
    struct ec2_instance_page p = {0};
    struct ec2_error e;
    CHECK_INT(ec2_describe_instances(c, ids, 1, NULL, 0, &p, &e), EBSD_EUPSTREAM);
    CHECK_STR(e.code, "InvalidInstanceID.NotFound");
    CHECK_STR(e.request_id, "ea966190-f9aa-478e-9ede-example");
    CHECK_INT(e.http_status, 200);
    CHECK_INT(ec2_describe_instances(c, ids, 1, NULL, 0, &p, &e), EBSD_EUPSTREAM);
    CHECK_STR(e.code, "");
    CHECK_INT(e.http_status, 400);
    int64_t t0 = clock_now_ms();
    CHECK_INT(ec2_describe_instances(c, ids, 1, NULL, 0, &p, &e), EBSD_EPARSE);
    CHECK(clock_now_ms() - t0 >= 1000); /* one deterministic backoff of 1 s */
    const struct ec2_stats *s = ec2_client_stats(c);
    CHECK_INT(s->calls, 4);
    CHECK_INT(s->retries, 1);
    CHECK_INT(s->errors, 3);
    CHECK_INT(s->retry_quota, 495);
    /* Bad ids are refused before any call. */
    const char *bad[] = {"i-nothex!!"};
    CHECK_INT(ec2_describe_volumes(c, bad, 1, NULL, 0, NULL, &e), EBSD_EINVAL);
    CHECK_INT(s->calls, 4);
    ec2_client_free(c);
    int status = 0;
    waitpid(pid, &status, 0);
    size_t len;
    free(drain(logfd, &len));
}

/* A hung attempt is abandoned at the read timeout and retried, well inside the deadline. */
static void test_hung_attempt_retried(void)
{
    static const struct reply replies[] = {
        {0, "", true, NULL},
        {200, PAGE(""), false, NULL},
    };
    int port = 0, logfd = -1;
    pid_t pid = serve(replies, 2, &port, &logfd);
    struct creds cr = test_creds();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    struct ec2_options o = {.region = "us-east-1", .endpoint = url, .creds = &cr,
                            .read_timeout_ms = 300, .deterministic_backoff = true};
    struct ec2_client *c = NULL;
    CHECK_INT(ec2_client_new(&o, &c), EBSD_OK);
    if (!c)
        return;
    struct ec2_instance_page p = {0};
    struct ec2_error e;
    int64_t t0 = clock_now_ms();
    CHECK_INT(ec2_describe_instances(c, NULL, 0, NULL, t0 + 10000, &p, &e), EBSD_OK);
    int64_t ms = clock_now_ms() - t0;
    CHECK_INT(p.n, 1);
    /* 300 ms read timeout + the deterministic 1 s backoff, far from the 10 s deadline */
    CHECK(ms >= 1290 && ms < 3000);
    const struct ec2_stats *s = ec2_client_stats(c);
    CHECK_INT(s->calls, 2);
    CHECK_INT(s->retries, 1);
    CHECK_INT(s->timeouts, 1);
    CHECK_INT(s->retry_quota, 500); /* the 10 a timeout retry cost came back on success */
    ec2_instance_page_free(&p);
    ec2_client_free(c);
    waitpid(pid, NULL, 0);
    size_t len;
    free(drain(logfd, &len));
}

/* The X-Amz-Date of the n-th request (0-based) in the server's NUL-separated log, as epoch
 * seconds; -1 if absent. */
static time_t amz_date(const char *log, size_t len, int n)
{
    const char *r = log;
    for (int i = 0; i < n && r < log + len; i++)
        r += strlen(r) + 1;
    const char *h = r < log + len ? strcasestr(r, "\r\nX-Amz-Date: ") : NULL;
    struct tm tm = {0};
    if (!h || !strptime(h + 14, "%Y%m%dT%H%M%SZ", &tm))
        return -1;
    return timegm(&tm);
}

/* RequestExpired with a Date an hour ahead: the offset is corrected and the call re-signed
 * and retried at once (no backoff); the next call is signed right the first time. A
 * SignatureDoesNotMatch whose Date agrees with our clock is a wrong secret: no retry. */
static void test_clock_skew_corrected(void)
{
    char ahead[64];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&(time_t){t + 3600}, &tm);
    strftime(ahead, sizeof ahead, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    const struct reply replies[] = {
        {400, "<Response><Errors><Error><Code>RequestExpired</Code><Message>Request has "
              "expired.</Message></Error></Errors><RequestID>r1</RequestID></Response>",
         false, ahead},
        {200, PAGE(""), false, ahead},
        {200, PAGE(""), false, ahead},
        {403, "<Response><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>no"
              "</Message></Error></Errors><RequestID>r4</RequestID></Response>",
         false, ahead}, /* by then our corrected clock agrees with this Date */
    };
    int port = 0, logfd = -1;
    skew_reset();
    pid_t pid = serve(replies, 4, &port, &logfd);
    struct creds cr = test_creds();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    struct ec2_options o = {.region = "us-east-1", .endpoint = url, .creds = &cr,
                            .deterministic_backoff = true};
    struct ec2_client *c = NULL;
    CHECK_INT(ec2_client_new(&o, &c), EBSD_OK);
    if (!c)
        return;
    struct ec2_instance_page p = {0};
    struct ec2_error e;
    int64_t t0 = clock_now_ms();
    CHECK_INT(ec2_describe_instances(c, NULL, 0, NULL, t0 + 10000, &p, &e), EBSD_OK);
    CHECK(clock_now_ms() - t0 < 900); /* no backoff (a deterministic one would be 1 s) */
    ec2_instance_page_free(&p);
    const struct ec2_stats *s = ec2_client_stats(c);
    CHECK_INT(s->calls, 2);
    CHECK_INT(s->retries, 1);
    CHECK_INT(s->skew_retries, 1);
    CHECK(s->clock_offset_set);
    CHECK(s->clock_offset_ms > 3600000 - 2000 && s->clock_offset_ms < 3600000 + 2000);
    CHECK(skew_offset_known());
    /* the next call needs no correction */
    CHECK_INT(ec2_describe_instances(c, NULL, 0, NULL, 0, &p, &e), EBSD_OK);
    ec2_instance_page_free(&p);
    CHECK_INT(s->calls, 3);
    CHECK_INT(s->retries, 1);
    /* a signature error that is not the clock's: returned as it is */
    CHECK_INT(ec2_describe_instances(c, NULL, 0, NULL, 0, &p, &e), EBSD_EUPSTREAM);
    CHECK_STR(e.code, "SignatureDoesNotMatch");
    CHECK_INT(s->calls, 4);
    CHECK_INT(s->retries, 1);
    ec2_client_free(c);
    waitpid(pid, NULL, 0);
    size_t len;
    char *log = drain(logfd, &len);
    /* signed with our clock first, then with AWS's */
    CHECK(labs((long)(amz_date(log, len, 0) - t)) <= 2);
    CHECK(labs((long)(amz_date(log, len, 1) - (t + 3600))) <= 2);
    CHECK(labs((long)(amz_date(log, len, 2) - (t + 3600))) <= 2);
    free(log);
    skew_reset();
}

TEST_MAIN(T(test_instance_ids), T(test_endpoints), T(test_bodies),
          T(test_requests_and_repeated_token), T(test_error_answers),
          T(test_hung_attempt_retried), T(test_clock_skew_corrected))
