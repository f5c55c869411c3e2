/* credproc.h - credential_process, the AWS CLI/SDK contract for credentials from an external
 * command named in a shared-config profile: the command is split into words as botocore
 * splits it (shlex, POSIX rules; no shell runs it), executed with stdin on /dev/null, and
 * must print {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken"?,
 * "Expiration"?} on stdout and exit 0. Blocking: call it where blocking is allowed (the
 * credential chain runs in a worker, and once at start). Nothing the command prints is
 * ever put in a message or a log: stdout holds the secret, stderr may. */
#ifndef EBSD_CREDPROC_H
#define EBSD_CREDPROC_H
#include <stddef.h>
#include <stdint.h>
#include "creds.h"
#include "status.h"

#define CREDPROC_MAX_STDOUT (64u << 10) /* more is EBSD_ETOOBIG: the command is killed */
#define CREDPROC_MAX_WORDS 256
#define CREDPROC_DEFAULT_TIMEOUT_MS 30000 /* when the caller gives no deadline */

/* Splits command into words with shlex.split's POSIX rules (what botocore's
 * compat_shell_split does on POSIX): space, tab, CR and LF separate words; '...' is
 * literal; in "..." a backslash escapes only \ and " (before anything else it stays);
 * elsewhere a backslash escapes the next character; quoted pieces join the word they touch
 * and '' is an empty word; no expansion of variables, globs or ~, no comments. On success *argv_out is a
 * NULL-terminated array (free with credproc_argv_free) with at least one word. EBSD_EINVAL
 * with err filled for an unterminated quote, a trailing backslash, no words or more than
 * CREDPROC_MAX_WORDS. err never quotes the command (it may carry a secret). */
EBSD_MUST_CHECK ebsd_status credproc_split(const char *command, char ***argv_out, char *err,
                                           size_t errlen);
void credproc_argv_free(char **argv);

/* Parses the command's stdout (need not be NUL-terminated) into *out with out->source set
 * to source: Version must be the number 1; AccessKeyId and SecretAccessKey non-empty
 * strings; SessionToken optional; Expiration, when present, an RFC 3339 time (then the
 * credentials expire and are refreshed like STS's). EBSD_EPARSE (not JSON, Version other
 * than 1, a field missing or of the wrong type, a bad Expiration), EBSD_ETOOBIG (a field
 * too long for struct creds). err names the field, never a value. */
EBSD_MUST_CHECK ebsd_status credproc_parse(const char *json, size_t len, const char *source,
                                           struct creds *out, char *err, size_t errlen);

/* Runs command (credproc_split, then execve of the first word, looked up in PATH when it
 * has no '/', with this process's environment), reads stdout up to CREDPROC_MAX_STDOUT,
 * drains and discards stderr, and parses stdout (credproc_parse). The command runs in its
 * own process group, which is killed (SIGKILL) and reaped when the deadline (monotonic ms;
 * 0: CREDPROC_DEFAULT_TIMEOUT_MS from now) passes. Statuses: those of credproc_split and
 * credproc_parse; EBSD_ENOTFOUND (the program is not found or not executable),
 * EBSD_EAUTH (it exited non-zero or died of a signal: err says which, without stderr),
 * EBSD_ETIMEDOUT, EBSD_ETOOBIG, EBSD_EIO (pipe or fork failed). err names the program
 * (the first word only) and never holds anything it printed. */
EBSD_MUST_CHECK ebsd_status credproc_run(const char *command, int64_t deadline,
                                         const char *source, struct creds *out, char *err,
                                         size_t errlen);

#endif
