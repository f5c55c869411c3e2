/* auth.c - bearer tokens for the data endpoints (see auth.h). Tokens are hashed on load and
 * only their SHA-256 digests are kept, so a candidate is compared digest to digest with
 * CRYPTO_memcmp: the comparison time leaks neither a token's length nor its prefix. */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "file.h"
#include "mem.h"

#define AUTH_MAX_FILE (1u << 20)

struct auth {
    unsigned char (*digest)[SHA256_DIGEST_LENGTH];
    size_t n;
};

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

ebsd_status auth_load_buffer(const char *name, const char *data, size_t len, struct auth **out,
                             char *msg, size_t msglen)
{
    ebsd_status st = EBSD_EINVAL;
    struct auth *a = xcalloc(1, sizeof *a);
    size_t cap = 0;
    unsigned line = 0;
    size_t i = 0;
    while (i < len) {
        size_t start = i, end;
        while (i < len && data[i] != '\n')
            i++;
        end = i;
        if (i < len)
            i++; /* the newline */
        line++;
        while (start < end && is_blank(data[start]))
            start++;
        while (end > start && is_blank(data[end - 1]))
            end--;
        if (start == end || data[start] == '#')
            continue;
        for (size_t k = start; k < end; k++) {
            unsigned char c = (unsigned char)data[k];
            if (c < 0x21 || c == 0x7f) {
                snprintf(msg, msglen, "%s:%u: a token may not contain blanks or control "
                         "characters", name, line);
                goto out;
            }
        }
        if (end - start > AUTH_MAX_TOKEN_LEN) {
            snprintf(msg, msglen, "%s:%u: token longer than %u bytes", name, line,
                     AUTH_MAX_TOKEN_LEN);
            st = EBSD_ETOOBIG;
            goto out;
        }
        if (a->n == AUTH_MAX_TOKENS) {
            snprintf(msg, msglen, "%s: more than %u tokens", name, AUTH_MAX_TOKENS);
            st = EBSD_ETOOBIG;
            goto out;
        }
        if (a->n == cap) {
            cap = cap ? cap * 2 : 8;
            a->digest = xrealloc(a->digest, cap * sizeof *a->digest);
        }
        SHA256((const unsigned char *)data + start, end - start, a->digest[a->n]);
        a->n++;
    }
    if (a->n == 0) {
        snprintf(msg, msglen, "%s: no tokens (one per line; blank lines and # comments are "
                 "ignored)", name);
        goto out;
    }
    *out = a;
    a = NULL;
    st = EBSD_OK;
out:
    auth_free(a);
    return st;
}

ebsd_status auth_load(const char *path, struct auth **out, char *msg, size_t msglen)
{
    char *data = NULL;
    size_t len = 0;
    struct stat sb;
    struct file_error fe;
    ebsd_status st = file_read(path, AUTH_MAX_FILE, FILE_REGULAR | FILE_SECRET, &data, &len, &sb,
                               &fe);
    if (st == EBSD_ENOTFOUND)
        st = EBSD_EIO; /* fe says open: ENOENT */
    if (st == EBSD_EINVAL)
        snprintf(msg, msglen, "%s: not a regular file", path);
    else if (st == EBSD_ETOOBIG)
        snprintf(msg, msglen, "%s: larger than %u bytes", path, AUTH_MAX_FILE);
    else if (st != EBSD_OK)
        snprintf(msg, msglen, "%s: %s: %s", path, fe.op, strerror(fe.err_no));
    else if (sb.st_mode & S_IROTH) {
        snprintf(msg, msglen, "%s: token file is readable by every user (mode %04o); "
                 "chmod o-rwx it", path, (unsigned)(sb.st_mode & 07777));
        st = EBSD_EINVAL;
    } else {
        st = auth_load_buffer(path, data, len, out, msg, msglen);
    }
    if (data) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
    return st;
}

bool auth_check(const struct auth *a, const char *header)
{
    if (!a || !header)
        return false;
    while (*header == ' ')
        header++;
    if (strncasecmp(header, "Bearer", 6) != 0 || header[6] != ' ')
        return false;
    const char *tok = header + 7;
    while (*tok == ' ')
        tok++;
    size_t n = strlen(tok);
    while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
        n--;
    if (n == 0 || n > AUTH_MAX_TOKEN_LEN)
        return false;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)tok, n, d);
    /* No early exit: every digest is compared, whichever matches. */
    int match = 0;
    for (size_t i = 0; i < a->n; i++)
        match |= CRYPTO_memcmp(d, a->digest[i], sizeof d) == 0;
    OPENSSL_cleanse(d, sizeof d);
    return match != 0;
}

size_t auth_count(const struct auth *a) { return a ? a->n : 0; }

void auth_free(struct auth *a)
{
    if (!a)
        return;
    if (a->digest)
        OPENSSL_cleanse(a->digest, a->n * sizeof *a->digest);
    free(a->digest);
    free(a);
}
