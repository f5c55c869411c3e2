/* harness.h - a tiny assert harness for unit tests: CHECK() records a failure and goes on;
 * TEST_MAIN runs the listed tests and prints "N passed, N failed"; harness_sim_* run the
 * EC2 simulator for tests whose workers make real EC2 or STS calls. */
#ifndef EBSD_TEST_HARNESS_H
#define EBSD_TEST_HARNESS_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

extern int harness_failures;
extern const char *harness_current;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            harness_failures++;                                                      \
            fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n", __FILE__, __LINE__,     \
                    harness_current, #cond);                                         \
        }                                                                            \
    } while (0)
#define CHECK_STR(a, b)                                                              \
    do {                                                                             \
        const char *a_ = (a), *b_ = (b);                                             \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                     \
            harness_failures++;                                                      \
            fprintf(stderr, "%s:%d: %s: CHECK_STR failed:\n  got:  %s\n  want: %s\n", \
                    __FILE__, __LINE__, harness_current, a_ ? a_ : "(null)",         \
                    b_ ? b_ : "(null)");                                             \
        }                                                                            \
    } while (0)
#define CHECK_INT(a, b)                                                              \
    do {                                                                             \
        long long a_ = (long long)(a), b_ = (long long)(b);                          \
        if (a_ != b_) {                                                              \
            harness_failures++;                                                      \
            fprintf(stderr, "%s:%d: %s: CHECK_INT failed: %s = %lld, want %lld\n",    \
                    __FILE__, __LINE__, harness_current, #a, a_, b_);                \
        }                                                                            \
    } while (0)

struct harness_test {
    const char *name;
    void (*fn)(void);
};

/* Runs tests, prints one line per test and a summary; returns the process exit status. */
int harness_run(const struct harness_test *tests, size_t n);
/* Reads a whole file (caller frees; NULL if unreadable); *len receives its size. */
char *harness_read_file(const char *path, size_t *len);
/* Path of ../shared (from EBSD_SHARED_DIR) joined with rel; static storage. */
const char *harness_shared_path(const char *rel);

#define TEST_MAIN(...)                                                               \
    int main(void)                                                                   \
    {                                                                                \
        static const struct harness_test tests_[] = {__VA_ARGS__};                   \
        return harness_run(tests_, sizeof tests_ / sizeof tests_[0]);                \
    }
#define T(fn) {#fn, fn}

/* The EC2 simulator (tools/ec2sim) as a child process, for tests whose workers make real EC2
 * or STS calls: $EC2SIM_BIN, else tools/ec2sim/ec2sim of the build the test runs from. */
struct harness_sim {
    pid_t pid;
    int port;
    char url[64];              /* "http://127.0.0.1:PORT" */
};
/* Starts ec2sim --listen 127.0.0.1:0 plus args (NULL-terminated, may be NULL) and reads the
 * URL it prints; it dies with the test (PR_SET_PDEATHSIG). False if it did not start. */
bool harness_sim_start(struct harness_sim *s, const char *const *args);
/* Stops it (SIGTERM, then reaps it). */
void harness_sim_stop(struct harness_sim *s);
/* One HTTP/1.0 request to the simulator (its /_sim/ endpoints): the response body (caller
 * frees) or NULL; *status gets the HTTP status when not NULL. body may be NULL. */
char *harness_sim_call(const struct harness_sim *s, const char *method, const char *path,
                       const char *body, int *status);

/* The simulator's faults set to json (a /_sim/faults body) after clearing the last ones;
 * false when it did not take either. */
bool harness_sim_faults(const struct harness_sim *s, const char *json);

/* An AWS environment where the credential chain finds the static pair key_id/secret and
 * nothing else: HOME is home, no shared config or credentials files, no IMDS, no container
 * or web identity credentials, no profile, no EC2 endpoint override, no Redis override. */
void harness_aws_env(const char *home, const char *key_id, const char *secret);

struct loop;
/* A loop callback for a signalfd of SIGCHLD: drains it and lets the engine reap. */
void harness_on_sigchld(struct loop *l, int fd, uint32_t events, void *arg);
/* Blocks SIGCHLD and watches it on l with harness_on_sigchld: the signalfd, or -1. */
int harness_sigchld_watch(struct loop *l);

#endif
