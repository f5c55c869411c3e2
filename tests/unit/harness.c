/* harness.c - runner for the unit test harness (see harness.h). */
#include "harness.h"

#include "engine.h"
#include "loop.h"

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

/* ---------------------------------------------------------------- the simulator */
#include <arpa/inet.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *sim_bin(void)
{
    static char path[4096];
    const char *env = getenv("EC2SIM_BIN");
    if (env && *env)
        return env;
    /* the unit tests are built in BUILD/tests, the simulator in BUILD/tools/ec2sim */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return "ec2sim";
    self[n] = '\0';
    snprintf(path, sizeof path, "%s/../tools/ec2sim/ec2sim", dirname(self));
    return path;
}

bool harness_sim_start(struct harness_sim *s, const char *const *args)
{
    memset(s, 0, sizeof *s);
    s->pid = -1;
    int p[2];
    if (pipe(p) != 0)
        return false;
    const char *argv[64];
    size_t n = 0;
    argv[n++] = sim_bin();
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    for (size_t i = 0; args && args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    s->pid = pid;
    char line[128];
    size_t len = 0;
    while (len < sizeof line - 1) {
        ssize_t r = read(p[0], line + len, 1);
        if (r <= 0 || line[len] == '\n')
            break;
        len++;
    }
    line[len] = '\0';
    close(p[0]); /* ec2sim writes nothing more to stdout that we need */
    const char *colon = strrchr(line, ':');
    if (strncmp(line, "http://127.0.0.1:", 17) != 0 || !colon) {
        fprintf(stderr, "ec2sim (%s) did not start: '%s'\n", argv[0], line);
        harness_sim_stop(s);
        return false;
    }
    s->port = (int)strtol(colon + 1, NULL, 10);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
    return true;
}

void harness_sim_stop(struct harness_sim *s)
{
    if (s->pid > 0) {
        /* SIGTERM lets it finish its requests; one sleeping in injected latency may hold
         * it for seconds, which a test need not wait for */
        kill(s->pid, SIGTERM);
        pid_t r = 0;
        for (int i = 0; i < 50 && (r = waitpid(s->pid, NULL, WNOHANG)) == 0; i++)
            usleep(10000);
        if (r == 0) {
            kill(s->pid, SIGKILL);
            (void)waitpid(s->pid, NULL, 0);
        }
    }
    s->pid = -1;
}

char *harness_sim_call(const struct harness_sim *s, const char *method, const char *path,
                       const char *body, int *status)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char *out = NULL;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        goto out;
    char head[1024];
    size_t blen = body ? strlen(body) : 0;
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n", method, path, blen);
    if (write(fd, head, (size_t)hl) != hl || (blen && write(fd, body, blen) != (ssize_t)blen))
        goto out;
    size_t cap = 65536, len = 0;
    char *resp = malloc(cap);
    ssize_t r;
    while ((r = read(fd, resp + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (cap - len - 1 == 0)
            resp = realloc(resp, cap *= 2);
    }
    resp[len] = '\0';
    char *sep = strstr(resp, "\r\n\r\n");
    if (status)
        *status = len > 12 ? (int)strtol(resp + 9, NULL, 10) : 0;
    if (sep) {
        size_t off = (size_t)(sep + 4 - resp);
        memmove(resp, sep + 4, len - off + 1);
        out = resp;
    } else {
        free(resp);
    }
out:
    close(fd);
    return out;
}

bool harness_sim_faults(const struct harness_sim *s, const char *json)
{
    int cleared = 0, set = 0;
    free(harness_sim_call(s, "POST", "/_sim/faults", "{\"clear\": true}", &cleared));
    free(harness_sim_call(s, "POST", "/_sim/faults", json, &set));
    return cleared == 200 && set == 200;
}

void harness_aws_env(const char *home, const char *key_id, const char *secret)
{
    setenv("HOME", home, 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    static const char *const unset[] = {
        "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_EC2", "EBSD_REDIS_URL"};
    for (size_t i = 0; i < sizeof unset / sizeof unset[0]; i++)
        unsetenv(unset[i]);
    setenv("AWS_ACCESS_KEY_ID", key_id, 1);
    setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
}

int harness_sigchld_watch(struct loop *l)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd >= 0 && loop_add_fd(l, fd, EPOLLIN, harness_on_sigchld, NULL) != EBSD_OK) {
        close(fd);
        return -1;
    }
    return fd;
}

void harness_on_sigchld(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)events;
    (void)arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
        ;
    engine_on_sigchld();
}
