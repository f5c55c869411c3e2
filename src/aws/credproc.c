/* credproc.c - credential_process: split the command as botocore does, run it without a
 * shell in its own process group, read its JSON within a deadline and a size cap. The
 * splitter is written here (not wordexp(3)) because wordexp expands variables and globs,
 * which botocore's shlex.split does not: the same profile must run the same command. */
#include "credproc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "mem.h"

extern char **environ;

/* ---- splitting -------------------------------------------------------------------------- */

void credproc_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++) {
        OPENSSL_cleanse(*p, strlen(*p));
        free(*p);
    }
    free(argv);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

ebsd_status credproc_split(const char *command, char ***argv_out, char *err, size_t errlen)
{
    ebsd_status st = EBSD_EINVAL;
    size_t len = command ? strlen(command) : 0;
    char **argv = xcalloc(CREDPROC_MAX_WORDS + 1, sizeof *argv);
    char *word = xmalloc(len + 1);
    size_t n = 0, wl = 0;
    bool in_word = false;
    for (size_t i = 0; i < len; i++) {
        char c = command[i];
        if (is_blank(c)) {
            if (in_word) {
                if (n == CREDPROC_MAX_WORDS) {
                    snprintf(err, errlen, "credential_process has more than %d words",
                             CREDPROC_MAX_WORDS);
                    goto out;
                }
                argv[n++] = xstrndup(word, wl);
                wl = 0;
                in_word = false;
            }
            continue;
        }
        in_word = true;
        if (c == '\\') {
            if (i + 1 == len) {
                snprintf(err, errlen, "credential_process ends with a backslash");
                goto out;
            }
            word[wl++] = command[++i];
        } else if (c == '\'') {
            const char *end = strchr(command + i + 1, '\'');
            if (!end) {
                snprintf(err, errlen, "credential_process has no closing quotation");
                goto out;
            }
            size_t k = (size_t)(end - (command + i + 1));
            memcpy(word + wl, command + i + 1, k);
            wl += k;
            i = (size_t)(end - command);
        } else if (c == '"') {
            for (i++;; i++) {
                if (i == len) {
                    snprintf(err, errlen, "credential_process has no closing quotation");
                    goto out;
                }
                if (command[i] == '"')
                    break;
                if (command[i] == '\\' && i + 1 < len &&
                    (command[i + 1] == '"' || command[i + 1] == '\\'))
                    i++;
                word[wl++] = command[i];
            }
        } else {
            word[wl++] = c;
        }
    }
    if (in_word) {
        if (n == CREDPROC_MAX_WORDS) {
            snprintf(err, errlen, "credential_process has more than %d words",
                     CREDPROC_MAX_WORDS);
            goto out;
        }
        argv[n++] = xstrndup(word, wl);
    }
    if (n == 0) {
        snprintf(err, errlen, "credential_process is empty");
        goto out;
    }
    *argv_out = argv;
    argv = NULL;
    st = EBSD_OK;
out:
    OPENSSL_cleanse(word, len + 1);
    free(word);
    credproc_argv_free(argv);
    return st;
}

/* ---- parsing ---------------------------------------------------------------------------- */

static bool put(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

ebsd_status credproc_parse(const char *json, size_t len, const char *source, struct creds *out,
                           char *err, size_t errlen)
{
    ebsd_status st = EBSD_EPARSE;
    struct creds c;
    memset(&c, 0, sizeof c);
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(j)) {
        snprintf(err, errlen, "the output is not a JSON object");
        goto out;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "Version");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1.0) {
        snprintf(err, errlen, "unsupported Version (the credential_process output must have "
                              "\"Version\": 1)");
        goto out;
    }
    static const char *const names[] = {"AccessKeyId", "SecretAccessKey", "SessionToken",
                                        "Expiration"};
    const char *val[4] = {NULL};
    for (int i = 0; i < 4; i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, names[i]);
        /* SDK helpers print null for absent fields: absent is what null means here */
        if (f && !cJSON_IsNull(f) && !cJSON_IsString(f)) {
            snprintf(err, errlen, "%s is not a string", names[i]);
            goto out;
        }
        val[i] = f && cJSON_IsString(f) ? f->valuestring : NULL;
        if (i < 2 && (!val[i] || !*val[i])) {
            snprintf(err, errlen, "%s is missing or empty", names[i]);
            goto out;
        }
    }
    if (val[3] && !creds_parse_time(val[3], &c.expiration)) {
        snprintf(err, errlen, "Expiration is not an RFC 3339 time");
        goto out;
    }
    if (!put(c.access_key_id, sizeof c.access_key_id, val[0]) ||
        !put(c.secret_access_key, sizeof c.secret_access_key, val[1]) ||
        !put(c.session_token, sizeof c.session_token, val[2] ? val[2] : "")) {
        snprintf(err, errlen, "a credential is longer than ebsd accepts");
        st = EBSD_ETOOBIG;
        goto out;
    }
    snprintf(c.source, sizeof c.source, "%s", source ? source : "process");
    *out = c;
    st = EBSD_OK;
out:
    if (j) {
        /* Wipe the secrets cJSON copied. */
        for (int i = 1; i < 3; i++) {
            char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, names[i]));
            if (s)
                OPENSSL_cleanse(s, strlen(s));
        }
        cJSON_Delete(j);
    }
    OPENSSL_cleanse(&c, sizeof c);
    return st;
}

/* ---- running ---------------------------------------------------------------------------- */

/* The file to execute: word itself when it has a '/', else the first executable regular
 * file named word in PATH (execvp's rule, done before fork so that the child only calls
 * async-signal-safe functions). Caller frees; NULL when none. */
static char *find_program(const char *word)
{
    struct stat sb;
    if (strchr(word, '/'))
        return access(word, X_OK) == 0 && stat(word, &sb) == 0 && S_ISREG(sb.st_mode)
                   ? xstrdup(word)
                   : NULL;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;;) {
        size_t n = strcspn(p, ":");
        char *cand = xasprintf("%.*s/%s", (int)(n ? n : 1), n ? p : ".", word);
        if (access(cand, X_OK) == 0 && stat(cand, &sb) == 0 && S_ISREG(sb.st_mode))
            return cand;
        free(cand);
        if (!p[n])
            return NULL;
        p += n + 1;
    }
}

/* In the child: async-signal-safe calls only. */
static void child_exec(const char *file, char **argv, int devnull, int out_w, int err_w,
                       int status_w)
{
    (void)setpgid(0, 0);
    if (dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
        goto fail;
    /* Keep only 0-2 and the exec-status pipe (close-on-exec). */
    for (int fd = 3; fd < 1024; fd++)
        if (fd != status_w)
            (void)close(fd);
#if defined(SYS_close_range)
    if (status_w < 1024)
        (void)syscall(SYS_close_range, 1024U, ~0U, 0U);
#endif
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGPIPE, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    execve(file, argv, environ);
fail:;
    int e = errno;
    ssize_t w = write(status_w, &e, sizeof e);
    (void)w;
    _exit(127);
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

ebsd_status credproc_run(const char *command, int64_t deadline, const char *source,
                         struct creds *out, char *err, size_t errlen)
{
    ebsd_status st;
    char **argv = NULL;
    char *file = NULL;
    int devnull = -1, outp[2] = {-1, -1}, errp[2] = {-1, -1}, statp[2] = {-1, -1};
    pid_t pid = -1;
    bool reaped = false;
    struct buf stdout_buf;
    buf_init(&stdout_buf, CREDPROC_MAX_STDOUT);
    if (!deadline)
        deadline = clock_now_ms() + CREDPROC_DEFAULT_TIMEOUT_MS;

    if ((st = credproc_split(command, &argv, err, errlen)) != EBSD_OK)
        goto out;
    const char *prog = base_name(argv[0]);
    file = find_program(argv[0]);
    if (!file) {
        snprintf(err, errlen, "credential_process program %.100s: not found or not executable",
                 prog);
        st = EBSD_ENOTFOUND;
        goto out;
    }
    st = EBSD_EIO;
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0 ||
        pipe2(statp, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "credential_process: pipe: %s", strerror(errno));
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "credential_process: fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0)
        child_exec(file, argv, devnull, outp[1], errp[1], statp[1]);
    (void)setpgid(pid, pid); /* also here: no race with the kill below */
    close(outp[1]);
    close(errp[1]);
    close(statp[1]);
    outp[1] = errp[1] = statp[1] = -1;

    int exec_errno = 0;
    ssize_t r;
    while ((r = read(statp[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR)
        ;
    if (r == (ssize_t)sizeof exec_errno) {
        snprintf(err, errlen, "credential_process program %.100s: cannot execute: %s", prog,
                 strerror(exec_errno));
        st = exec_errno == ENOENT || exec_errno == EACCES ? EBSD_ENOTFOUND : EBSD_EIO;
        goto out;
    }
    set_nonblock(outp[0]);
    set_nonblock(errp[0]);
    char scratch[4096];
    size_t stderr_bytes = 0;
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
        int64_t left = clock_remaining_ms(deadline);
        if (left <= 0) {
            snprintf(err, errlen, "credential_process program %.100s: no answer before the "
                                  "deadline (killed)", prog);
            st = EBSD_ETIMEDOUT;
            goto out;
        }
        struct pollfd pf[2] = {{out_open ? outp[0] : -1, POLLIN, 0},
                               {err_open ? errp[0] : -1, POLLIN, 0}};
        int pr = poll(pf, 2, (int)(left > 1000 ? 1000 : left));
        if (pr < 0 && errno != EINTR) {
            snprintf(err, errlen, "credential_process: poll: %s", strerror(errno));
            goto out;
        }
        if (pr <= 0)
            continue;
        if (out_open && pf[0].revents) {
            r = read(outp[0], scratch, sizeof scratch);
            if (r > 0 && buf_append(&stdout_buf, scratch, (size_t)r) != EBSD_OK) {
                snprintf(err, errlen, "credential_process program %.100s: output larger than "
                                      "%u bytes (killed)", prog, CREDPROC_MAX_STDOUT);
                st = EBSD_ETOOBIG;
                goto out;
            }
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                out_open = false;
        }
        if (err_open && pf[1].revents) {
            r = read(errp[0], scratch, sizeof scratch);
            if (r > 0)
                stderr_bytes += (size_t)r; /* counted, never kept: it may hold a secret */
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                err_open = false;
        }
    }
    OPENSSL_cleanse(scratch, sizeof scratch);
    int wst = 0;
    for (;;) {
        pid_t w = waitpid(pid, &wst, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) {
            reaped = w == pid;
            break;
        }
        if (clock_remaining_ms(deadline) <= 0) {
            snprintf(err, errlen, "credential_process program %.100s: did not exit before the "
                                  "deadline (killed)", prog);
            st = EBSD_ETIMEDOUT;
            goto out;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!reaped) {
        snprintf(err, errlen, "credential_process: waitpid: %s", strerror(errno));
        goto out;
    }
    if (WIFSIGNALED(wst) || WEXITSTATUS(wst) != 0) {
        char how[48];
        if (WIFSIGNALED(wst))
            snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(wst));
        else
            snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(wst));
        snprintf(err, errlen, "credential_process program %.100s %s (its %zu bytes of "
                              "stderr are not logged)", prog, how, stderr_bytes);
        st = EBSD_EAUTH;
        goto out;
    }
    char perr[160] = "";
    st = credproc_parse(stdout_buf.data ? stdout_buf.data : "", stdout_buf.len, source, out,
                        perr, sizeof perr);
    if (st != EBSD_OK)
        snprintf(err, errlen, "credential_process program %.100s: %s", prog, perr);
out:
    if (pid > 0 && !reaped) {
        (void)kill(-pid, SIGKILL);
        (void)kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    int fds[] = {devnull, outp[0], outp[1], errp[0], errp[1], statp[0], statp[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (stdout_buf.data)
        OPENSSL_cleanse(stdout_buf.data, stdout_buf.len);
    buf_free(&stdout_buf);
    credproc_argv_free(argv);
    free(file);
    return st;
}
