/* retrycfg.c - AWS_MAX_ATTEMPTS / AWS_RETRY_MODE and the profile's max_attempts /
 * retry_mode over ebsd's ec2.max_attempts. */
#include "retrycfg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "awsconfig.h"
#include "mem.h"

static bool set(const char *s)
{
    return s && *s;
}

static void add_note(char *note, size_t notelen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends one remark to note, "; "-separated. */
static void add_note(char *note, size_t notelen, const char *fmt, ...)
{
    size_t n = strlen(note);
    if (n + 2 >= notelen)
        return;
    if (n) {
        snprintf(note + n, notelen - n, "; ");
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(note + n, notelen - n, fmt, ap);
    va_end(ap);
}

/* max_attempts: an integer >= 1 (botocore refuses less). */
static bool parse_attempts(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1)
        return false;
    *out = v > 1000 ? 1000 : (int)v;
    return true;
}

static bool parse_mode(const char *s, enum retry_mode *out, bool *legacy)
{
    *legacy = false;
    if (strcasecmp(s, "standard") == 0)
        *out = RETRY_MODE_STANDARD;
    else if (strcasecmp(s, "adaptive") == 0)
        *out = RETRY_MODE_ADAPTIVE;
    else if (strcasecmp(s, "legacy") == 0) {
        *out = RETRY_MODE_STANDARD;
        *legacy = true;
    } else
        return false;
    return true;
}

ebsd_status retrycfg_resolve(const char *env_max_attempts, const char *env_mode,
                             const char *profile_max_attempts, const char *profile_mode,
                             int config_max_attempts, struct retry_settings *out, char *note,
                             size_t notelen)
{
    ebsd_status st = EBSD_OK;
    note[0] = '\0';
    out->max_attempts = config_max_attempts > 0 ? config_max_attempts
                                                : RETRY_DEFAULT_MAX_ATTEMPTS;
    out->mode = RETRY_MODE_STANDARD;

    const struct {
        const char *value, *name;
    } attempts[] = {{env_max_attempts, "AWS_MAX_ATTEMPTS"},
                    {profile_max_attempts, "profile max_attempts"}},
      modes[] = {{env_mode, "AWS_RETRY_MODE"}, {profile_mode, "profile retry_mode"}};
    for (int i = 0; i < 2; i++) {
        int v;
        if (!set(attempts[i].value))
            continue;
        if (parse_attempts(attempts[i].value, &v)) {
            if (v > RETRY_MAX_ATTEMPTS_CAP) {
                add_note(note, notelen, "%s=%.16s is more than ebsd's 10 attempts: using 10",
                         attempts[i].name, attempts[i].value);
                v = RETRY_MAX_ATTEMPTS_CAP;
            }
            out->max_attempts = v;
            break;
        }
        add_note(note, notelen, "ignoring %s=%.16s: not an integer >= 1", attempts[i].name,
                 attempts[i].value);
        st = EBSD_EINVAL;
    }
    for (int i = 0; i < 2; i++) {
        enum retry_mode m;
        bool legacy;
        if (!set(modes[i].value))
            continue;
        if (parse_mode(modes[i].value, &m, &legacy)) {
            if (legacy)
                add_note(note, notelen, "%s=%.16s: ebsd retries in standard mode",
                         modes[i].name, modes[i].value);
            out->mode = m;
            break;
        }
        add_note(note, notelen, "ignoring %s=%.16s: not standard, adaptive or legacy",
                 modes[i].name, modes[i].value);
        st = EBSD_EINVAL;
    }
    if (out->max_attempts > RETRY_MAX_ATTEMPTS_CAP)
        out->max_attempts = RETRY_MAX_ATTEMPTS_CAP;
    return st;
}

ebsd_status retrycfg_load(int config_max_attempts, struct retry_settings *out, char *note,
                          size_t notelen)
{
    char *path = NULL;
    const char *home = getenv("HOME");
    const char *cf = getenv("AWS_CONFIG_FILE");
    if (cf && *cf)
        path = xstrdup(cf);
    else if (home && *home)
        path = xasprintf("%s/.aws/config", home);
    const char *profile = getenv("AWS_PROFILE");
    if (!profile || !*profile)
        profile = "default";
    struct awsconfig *cfg = NULL;
    char err[256];
    const char *pm = NULL, *pr = NULL;
    if (path && awsconfig_load(path, NULL, &cfg, err, sizeof err) == EBSD_OK) {
        pm = awsconfig_get(cfg, profile, "max_attempts");
        pr = awsconfig_get(cfg, profile, "retry_mode");
    }
    ebsd_status st = retrycfg_resolve(getenv("AWS_MAX_ATTEMPTS"), getenv("AWS_RETRY_MODE"), pm,
                                      pr, config_max_attempts, out, note, notelen);
    awsconfig_free(cfg);
    free(path);
    return st;
}
