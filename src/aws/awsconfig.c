/* awsconfig.c - the AWS shared config and credentials files, parsed with libinih.
 * Debian's libinih is built with a 200-byte line limit (INI_MAX_LINE) and cuts longer lines
 * into pieces, but session tokens are often 1 KiB or more. So before parsing, the value of
 * any long "key = value" line is moved to a side table and replaced by a short reference
 * that the handler resolves; every other line goes to libinih as it is. */
#include "awsconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "mem.h"

#define LONG_LINE 150 /* well under libinih's 200 bytes, newline included */
#define REF_MARK '\x01'

struct entry {
    char *profile;
    char *key;
    char *value;
    bool from_credentials;
};

struct awsconfig {
    struct entry *e;
    size_t n, cap;
};

struct parse_ctx {
    struct awsconfig *c;
    bool credentials;
    char **side; /* long values, by reference number */
    size_t nside;
};

static ebsd_status read_capped(const char *path, char **out, char *err, size_t errlen)
{
    size_t len;
    struct file_error fe;
    /* the credentials file holds secrets: FILE_SECRET leaves no copy behind */
    ebsd_status st = file_read(path, AWSCONFIG_MAX_FILE, FILE_SECRET, out, &len, NULL, &fe);
    if (st == EBSD_ENOTFOUND)
        return EBSD_OK; /* *out is NULL: no file */
    if (st == EBSD_ETOOBIG)
        snprintf(err, errlen, "%s is larger than %u bytes", path, AWSCONFIG_MAX_FILE);
    else if (st != EBSD_OK)
        snprintf(err, errlen, "%s %s: %s", fe.op, path, strerror(fe.err_no));
    return st;
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    return xstrndup(s, n);
}

/* Copies text with long values swapped for references into the side table. Returns the
 * 1-based number of a line that cannot be handled, or 0. */
static size_t swap_long_values(const char *text, struct parse_ctx *pc, char **out)
{
    size_t len = strlen(text);
    char *o = xmalloc(len + 1);
    size_t on = 0, lineno = 0;
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        lineno++;
        if (memchr(p, REF_MARK, ll)) {
            free(o);
            return lineno;
        }
        if (ll < LONG_LINE) {
            memcpy(o + on, p, ll);
            on += ll;
        } else {
            const char *q = p;
            while (q < p + ll && (*q == ' ' || *q == '\t'))
                q++;
            const char *eq = memchr(p, '=', ll);
            if (*q == '#' || *q == ';') {
                /* A long comment: drop it. */
            } else if (*q != '[' && eq && (size_t)(eq - p) < LONG_LINE - 24) {
                pc->side = xrealloc(pc->side, (pc->nside + 1) * sizeof *pc->side);
                pc->side[pc->nside] = trim_dup(eq + 1, ll - (size_t)(eq + 1 - p));
                memcpy(o + on, p, (size_t)(eq + 1 - p));
                on += (size_t)(eq + 1 - p);
                on += (size_t)snprintf(o + on, 24, " %c%zu%c", REF_MARK, pc->nside, REF_MARK);
                pc->nside++;
            } else {
                free(o);
                return lineno;
            }
        }
        p += ll;
        if (*p == '\n')
            o[on++] = *p++;
    }
    o[on] = '\0';
    *out = o;
    return 0;
}

static const char *resolve_ref(const struct parse_ctx *pc, const char *value)
{
    if (value[0] != REF_MARK)
        return value;
    char *end;
    unsigned long i = strtoul(value + 1, &end, 10);
    if (*end != REF_MARK || i >= pc->nside)
        return value;
    return pc->side[i];
}

/* Section name to profile name (trimmed), or NULL when the section is not a profile. */
static char *profile_of(const char *section, bool credentials)
{
    char *name = trim_dup(section, strlen(section));
    if (credentials || strcmp(name, "default") == 0)
        return name;
    char *profile = NULL;
    if (strncmp(name, "profile", 7) == 0 && (name[7] == ' ' || name[7] == '\t')) {
        const char *n = name + 7;
        while (*n == ' ' || *n == '\t')
            n++;
        if (*n)
            profile = xstrdup(n);
    }
    free(name);
    return profile;
}

static int on_value(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *pc = user;
    char *profile = profile_of(section, pc->credentials);
    if (!profile)
        return 1;
    struct awsconfig *c = pc->c;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->e = xrealloc(c->e, c->cap * sizeof *c->e);
    }
    c->e[c->n++] = (struct entry){profile, xstrdup(name), xstrdup(resolve_ref(pc, value)),
                                  pc->credentials};
    return 1;
}

static ebsd_status load_one(struct awsconfig *c, const char *path, bool credentials, char *err,
                            size_t errlen)
{
    ebsd_status st;
    char *text = NULL, *swapped = NULL;
    struct parse_ctx pc = {.c = c, .credentials = credentials};
    if (!path || !*path)
        return EBSD_OK;
    if ((st = read_capped(path, &text, err, errlen)) != EBSD_OK || !text)
        goto out;
    size_t bad = swap_long_values(text, &pc, &swapped);
    st = EBSD_EPARSE;
    if (bad) {
        snprintf(err, errlen, "%s line %zu: cannot be parsed", path, bad);
        goto out;
    }
    int rc = ini_parse_string(swapped, on_value, &pc);
    if (rc != 0) {
        snprintf(err, errlen, "%s line %d: cannot be parsed", path, rc);
        goto out;
    }
    st = EBSD_OK;
out:
    if (text) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    if (swapped) {
        OPENSSL_cleanse(swapped, strlen(swapped));
        free(swapped);
    }
    for (size_t i = 0; i < pc.nside; i++) {
        OPENSSL_cleanse(pc.side[i], strlen(pc.side[i]));
        free(pc.side[i]);
    }
    free(pc.side);
    return st;
}

ebsd_status awsconfig_load(const char *config_path, const char *credentials_path,
                           struct awsconfig **out, char *err, size_t errlen)
{
    ebsd_status st;
    struct awsconfig *c = xcalloc(1, sizeof *c);
    if ((st = load_one(c, config_path, false, err, errlen)) != EBSD_OK ||
        (st = load_one(c, credentials_path, true, err, errlen)) != EBSD_OK) {
        awsconfig_free(c);
        return st;
    }
    *out = c;
    return EBSD_OK;
}

const char *awsconfig_get(const struct awsconfig *c, const char *profile, const char *key)
{
    const char *from_config = NULL;
    for (size_t i = c->n; i-- > 0;) {
        const struct entry *e = &c->e[i];
        if (strcmp(e->profile, profile) != 0 || strcmp(e->key, key) != 0)
            continue;
        if (e->from_credentials)
            return e->value;
        if (!from_config)
            from_config = e->value;
    }
    return from_config;
}

bool awsconfig_has_profile(const struct awsconfig *c, const char *profile)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].profile, profile) == 0)
            return true;
    return false;
}

void awsconfig_free(struct awsconfig *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->e[i].profile);
        free(c->e[i].key);
        OPENSSL_cleanse(c->e[i].value, strlen(c->e[i].value));
        free(c->e[i].value);
    }
    free(c->e);
    free(c);
}
