/* sigv4.c - AWS Signature Version 4 (HMAC-SHA256): canonical request, string to sign,
 * signing key (cached per day/region/service), the Authorization header, presigned query
 * strings, and verification of received requests for the EC2 simulator.
 * Hashing and HMAC go through OpenSSL EVP. If OpenSSL cannot compute a SHA-256 or an HMAC
 * the library is unusable (like running out of memory), so that aborts (see mem.h). */
#include "sigv4.h"

#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "hex.h"
#include "mem.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
/* Caps on what is canonicalized: a request bigger than this is refused, not truncated. */
#define MAX_CANONICAL (4u << 20)
#define MAX_PARAMS 10000
#define MAX_HEADERS 1000
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- hashing ---------------------------------------------------------------------------- */

static void crypto_fail(const char *what)
{
    fprintf(stderr, "ebsd: OpenSSL %s failed\n", what);
    abort();
}

static void hex32(const unsigned char in[32], char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[64] = '\0';
}

/* SHA-256 and HMAC fetched from OpenSSL's providers once: EVP_sha256() and EVP_Q_mac
 * fetch their implementation again on every call (a lock and a lookup in the provider
 * store), which in a freshly forked worker was about a tenth of its CPU for a small fleet.
 * HMAC's template context has its digest set; each MAC starts from a copy of it. Both are
 * kept for the life of the process. */
static struct {
    pthread_once_t once;
    EVP_MD *sha256;
    EVP_MAC_CTX *hmac;
} algs = {.once = PTHREAD_ONCE_INIT};

static void fetch_algs(void)
{
    algs.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    algs.hmac = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context holds its own reference */
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end()};
    if (!algs.sha256 || !algs.hmac || !EVP_MAC_CTX_set_params(algs.hmac, params))
        crypto_fail("fetching SHA-256 and HMAC");
}

static void sha256(const void *data, size_t len, unsigned char out[32])
{
    pthread_once(&algs.once, fetch_algs);
    unsigned int mdlen = 0;
    if (!EVP_Digest(data ? data : "", len, out, &mdlen, algs.sha256, NULL) || mdlen != 32)
        crypto_fail("EVP_Digest(SHA-256)");
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    sha256(data, len, md);
    hex32(md, out);
}

static void hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        unsigned char out[32])
{
    pthread_once(&algs.once, fetch_algs);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(algs.hmac);
    size_t outlen = 0;
    if (!ctx || !EVP_MAC_init(ctx, key, keylen, NULL) || !EVP_MAC_update(ctx, data, len) ||
        !EVP_MAC_final(ctx, out, &outlen, 32) || outlen != 32)
        crypto_fail("HMAC-SHA256");
    EVP_MAC_CTX_free(ctx);
}

/* ---- signing key cache ------------------------------------------------------------------
 * Deriving the key costs four HMACs; it changes only with the day, region, service or
 * secret. Entries are keyed by a SHA-256 of the secret, never by the secret itself. */

struct key_entry {
    bool used;
    unsigned char secret_fp[32];
    char date[9];
    char region[64];
    char service[64];
    unsigned char key[32];
};

static struct key_entry key_cache[8];
static unsigned key_cache_next;
static pthread_mutex_t key_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void signing_key(const char *secret, const char *date, const char *region,
                        const char *service, unsigned char key[32])
{
    unsigned char fp[32];
    sha256(secret, strlen(secret), fp);
    bool cacheable = strlen(region) < sizeof key_cache[0].region &&
                     strlen(service) < sizeof key_cache[0].service && strlen(date) == 8;

    pthread_mutex_lock(&key_cache_lock);
    for (size_t i = 0; cacheable && i < sizeof key_cache / sizeof key_cache[0]; i++) {
        struct key_entry *e = &key_cache[i];
        if (e->used && memcmp(e->secret_fp, fp, 32) == 0 && strcmp(e->date, date) == 0 &&
            strcmp(e->region, region) == 0 && strcmp(e->service, service) == 0) {
            memcpy(key, e->key, 32);
            pthread_mutex_unlock(&key_cache_lock);
            return;
        }
    }
    pthread_mutex_unlock(&key_cache_lock);

    size_t slen = strlen(secret);
    char *k0 = xmalloc(slen + 5);
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, slen + 1);
    unsigned char kdate[32], kregion[32], kservice[32];
    hmac_sha256(k0, slen + 4, date, strlen(date), kdate);
    hmac_sha256(kdate, 32, region, strlen(region), kregion);
    hmac_sha256(kregion, 32, service, strlen(service), kservice);
    hmac_sha256(kservice, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(k0, slen + 4);
    free(k0);
    OPENSSL_cleanse(kdate, 32);
    OPENSSL_cleanse(kregion, 32);
    OPENSSL_cleanse(kservice, 32);

    if (cacheable) {
        pthread_mutex_lock(&key_cache_lock);
        struct key_entry *e = &key_cache[key_cache_next++ % (sizeof key_cache / sizeof key_cache[0])];
        e->used = true;
        memcpy(e->secret_fp, fp, 32);
        snprintf(e->date, sizeof e->date, "%s", date);
        snprintf(e->region, sizeof e->region, "%s", region);
        snprintf(e->service, sizeof e->service, "%s", service);
        memcpy(e->key, key, 32);
        pthread_mutex_unlock(&key_cache_lock);
    }
}

/* ---- encoding --------------------------------------------------------------------------- */

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

static size_t encode_into(char *out, const char *s, size_t len, bool encode_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (c == '/' && !encode_slash)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = digits[c >> 4];
            out[o++] = digits[c & 15];
        }
    }
    out[o] = '\0';
    return o;
}

char *sigv4_uri_encode(const char *s, size_t len, bool encode_slash)
{
    char *out = xmalloc(3 * len + 1);
    encode_into(out, s, len, encode_slash);
    return out;
}

/* Decodes %XX (a '%' not followed by two hex digits stays literal; '+' stays '+': SigV4
 * does not treat it as a space). Returns the decoded length; out holds len + 1 bytes. */
static size_t percent_decode(char *out, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hex_digit(s[i + 1])) >= 0 &&
            (lo = hex_digit(s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return o;
}

/* Encodes a query key or value the SigV4 way, after undoing the client's own encoding, so
 * that "%E1%88%B4" and a raw "ሴ" both become "%E1%88%B4". Caller frees. */
static char *query_component(const char *s, size_t len)
{
    char *dec = xmalloc(len + 1);
    size_t n = percent_decode(dec, s, len);
    char *enc = sigv4_uri_encode(dec, n, true);
    free(dec);
    return enc;
}

/* ---- canonical parts -------------------------------------------------------------------- */

/* Removes "." and ".." segments and merges repeated slashes, as botocore and aws-c-auth do:
 * a trailing slash survives only if something is left before it. Caller frees. */
static char *remove_dot_segments(const char *path)
{
    size_t len = strlen(path);
    char **segs = xmalloc((len + 1) * sizeof *segs);
    size_t *lens = xmalloc((len + 1) * sizeof *lens);
    size_t n = 0;
    const char *p = path;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t sl = slash ? (size_t)(slash - p) : strlen(p);
        if (sl == 2 && p[0] == '.' && p[1] == '.') {
            if (n)
                n--;
        } else if (sl && !(sl == 1 && p[0] == '.')) {
            segs[n] = (char *)p;
            lens[n++] = sl;
        }
        p += sl;
        if (*p == '/')
            p++;
    }
    char *out = xmalloc(len + 2);
    size_t o = 0;
    if (path[0] == '/')
        out[o++] = '/';
    for (size_t i = 0; i < n; i++) {
        if (i)
            out[o++] = '/';
        memcpy(out + o, segs[i], lens[i]);
        o += lens[i];
    }
    if (n && len && path[len - 1] == '/')
        out[o++] = '/';
    out[o] = '\0';
    free(segs);
    free(lens);
    return out;
}

static char *canonical_uri(const char *path, bool normalize, bool double_encode)
{
    if (!path || !*path)
        return xstrdup("/");
    char *p = normalize ? remove_dot_segments(path) : xstrdup(path);
    if (!*p) {
        free(p);
        return xstrdup("/");
    }
    if (!double_encode)
        return p;
    char *enc = sigv4_uri_encode(p, strlen(p), false);
    free(p);
    return enc;
}

struct qparam {
    char *key;
    char *value;
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

/* Canonical query: each key and value encoded, sorted by key then value, repeated keys
 * kept. "a" and "a=" both give "a=". */
static ebsd_status canonical_query(const char *query, char **out)
{
    ebsd_status st = EBSD_ETOOBIG;
    struct qparam *params = NULL;
    size_t n = 0, cap = 0;
    struct buf b;
    buf_init(&b, MAX_CANONICAL);

    const char *p = query ? query : "";
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len) {
            if (n == MAX_PARAMS)
                goto out;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                params = xrealloc(params, cap * sizeof *params);
            }
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            params[n].key = query_component(p, klen);
            params[n].value = eq ? query_component(eq + 1, len - klen - 1) : xstrdup("");
            n++;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    if (n)
        qsort(params, n, sizeof *params, qparam_cmp);
    buf_reset(&b);
    if (buf_puts(&b, "") != EBSD_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if ((i && buf_puts(&b, "&") != EBSD_OK) || buf_puts(&b, params[i].key) != EBSD_OK ||
            buf_puts(&b, "=") != EBSD_OK || buf_puts(&b, params[i].value) != EBSD_OK)
            goto out;
    }
    *out = buf_steal(&b);
    st = EBSD_OK;
out:
    for (size_t i = 0; i < n; i++) {
        free(params[i].key);
        free(params[i].value);
    }
    free(params);
    buf_free(&b);
    return st;
}

struct chdr {
    char *name;  /* lowercase */
    char *value; /* trimmed, inner whitespace runs collapsed to one space */
    size_t order;
};

static int chdr_cmp(const void *a, const void *b)
{
    const struct chdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Trims and collapses whitespace; folded (obs-fold) lines become single spaces. */
static char *canonical_value(const char *v)
{
    size_t len = strlen(v);
    char *out = xmalloc(len + 1);
    size_t o = 0;
    bool pending = false;
    for (size_t i = 0; i < len; i++) {
        if (is_ws(v[i])) {
            pending = o > 0;
            continue;
        }
        if (pending)
            out[o++] = ' ';
        pending = false;
        out[o++] = v[i];
    }
    out[o] = '\0';
    return out;
}

static char *lowercase(const char *s)
{
    char *out = xstrdup(s);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return out;
}

/* Headers never signed (they change in transit or are added by proxies), as botocore. */
static bool skipped_header(const char *lname)
{
    static const char *const skip[] = {"authorization", "user-agent", "expect",
                                       "x-amzn-trace-id"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcmp(lname, skip[i]) == 0)
            return true;
    return false;
}

static bool in_list(const char *lname, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(lname, list[i]) == 0)
            return true;
    return false;
}

/* Builds the canonical headers block ("name:value\n" per name) and the SignedHeaders list
 * from two header arrays (the request's and the ones signing adds). With only != NULL,
 * exactly those names are used (verification); otherwise all but the skipped ones. */
static ebsd_status canonical_headers(const struct sigv4_header *h1, size_t n1,
                                     const struct sigv4_header *h2, size_t n2,
                                     const char *const *only, size_t nonly, char **block,
                                     char **signed_headers)
{
    ebsd_status st = EBSD_EINVAL;
    struct chdr *hs = NULL;
    size_t n = 0;
    bool have_host = false;
    struct buf bb, sb;
    buf_init(&bb, MAX_CANONICAL);
    buf_init(&sb, MAX_CANONICAL);

    if (n1 + n2 > MAX_HEADERS) {
        st = EBSD_ETOOBIG;
        goto out;
    }
    hs = xcalloc(n1 + n2 + 1, sizeof *hs);
    for (size_t i = 0; i < n1 + n2; i++) {
        const struct sigv4_header *h = i < n1 ? &h1[i] : &h2[i - n1];
        if (!h->name || !h->value)
            goto out;
        char *lname = lowercase(h->name);
        if (only ? !in_list(lname, only, nonly) : skipped_header(lname)) {
            free(lname);
            continue;
        }
        if (strcmp(lname, "host") == 0)
            have_host = true;
        hs[n].name = lname;
        hs[n].value = canonical_value(h->value);
        hs[n].order = i;
        n++;
    }
    if (!have_host)
        goto out;
    qsort(hs, n, sizeof *hs, chdr_cmp);
    st = EBSD_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        bool same = i && strcmp(hs[i].name, hs[i - 1].name) == 0;
        if (same) {
            /* Replace the "\n" of the previous line with ",value\n". */
            bb.len--;
            if (buf_printf(&bb, ",%s\n", hs[i].value) != EBSD_OK)
                goto out;
            continue;
        }
        if (buf_printf(&bb, "%s:%s\n", hs[i].name, hs[i].value) != EBSD_OK ||
            buf_printf(&sb, "%s%s", sb.len ? ";" : "", hs[i].name) != EBSD_OK)
            goto out;
    }
    *block = buf_steal(&bb);
    *signed_headers = buf_steal(&sb);
    st = EBSD_OK;
out:
    for (size_t i = 0; hs && i < n; i++) {
        free(hs[i].name);
        free(hs[i].value);
    }
    free(hs);
    buf_free(&bb);
    buf_free(&sb);
    return st;
}

static const char *find_header(const struct sigv4_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].name && strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

/* "20150830T123600Z" -> seconds; false if malformed. */
static bool parse_amz_date(const char *s, time_t *out)
{
    if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && (s[i] < '0' || s[i] > '9'))
            return false;
    int v[6];
    static const int pos[6] = {0, 4, 6, 9, 11, 13}, len[6] = {4, 2, 2, 2, 2, 2};
    for (int k = 0; k < 6; k++) {
        v[k] = 0;
        for (int j = 0; j < len[k]; j++)
            v[k] = v[k] * 10 + (s[pos[k] + j] - '0');
    }
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
        return false;
    struct tm tm = {.tm_year = v[0] - 1900, .tm_mon = v[1] - 1, .tm_mday = v[2],
                    .tm_hour = v[3], .tm_min = v[4], .tm_sec = v[5]};
    *out = timegm(&tm);
    return true;
}

/* ---- assembling ------------------------------------------------------------------------- */

struct canon {
    char *creq;
    char *sts;
    char *signed_headers;
    char signature[65];
};

static void canon_free(struct canon *c)
{
    free(c->creq);
    free(c->sts);
    free(c->signed_headers);
    memset(c, 0, sizeof *c);
}

/* Canonical request, string to sign and signature from already-chosen pieces. */
static ebsd_status compute(const char *method, const char *uri, const char *query,
                           const char *hblock, const char *signed_headers,
                           const char *payload_hash, const char *amz_date, const char *region,
                           const char *service, const char *secret, struct canon *out)
{
    char creq_hash[65];
    unsigned char key[32], sig[32];
    char *creq = xasprintf("%s\n%s\n%s\n%s\n%s\n%s", method, uri, query, hblock,
                           signed_headers, payload_hash);
    if (strlen(creq) > MAX_CANONICAL) {
        free(creq);
        return EBSD_ETOOBIG;
    }
    sigv4_sha256_hex(creq, strlen(creq), creq_hash);
    char date[9];
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    char *sts = xasprintf(ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s", amz_date, date, region,
                          service, creq_hash);
    signing_key(secret, date, region, service, key);
    hmac_sha256(key, 32, sts, strlen(sts), sig);
    OPENSSL_cleanse(key, sizeof key);
    out->creq = creq;
    out->sts = sts;
    out->signed_headers = xstrdup(signed_headers);
    hex32(sig, out->signature);
    return EBSD_OK;
}

static bool valid_params(const struct sigv4_request *req, const struct sigv4_params *params)
{
    return req && params && params->creds && params->creds->access_key_id &&
           params->creds->secret_access_key && params->region && params->service &&
           req->method && (req->body || req->body_len == 0) && (req->headers || !req->nheaders);
}

/* The signing time: the request's own X-Amz-Date if it has one, else params->when. */
static ebsd_status amz_date_for(const struct sigv4_request *req, time_t when, char out[17])
{
    const char *given = find_header(req->headers, req->nheaders, "x-amz-date");
    time_t t;
    if (given) {
        char *v = canonical_value(given);
        bool ok = parse_amz_date(v, &t);
        if (ok)
            memcpy(out, v, 17);
        free(v);
        return ok ? EBSD_OK : EBSD_EINVAL;
    }
    struct tm tm;
    if (!gmtime_r(&when, &tm) || strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        return EBSD_EINVAL;
    return EBSD_OK;
}

static void payload_hash_for(const struct sigv4_request *req, char out[65])
{
    const char *given = find_header(req->headers, req->nheaders, "x-amz-content-sha256");
    if (given) {
        char *v = canonical_value(given);
        snprintf(out, 65, "%s", v);
        free(v);
        return;
    }
    sigv4_sha256_hex(req->body, req->body_len, out);
}

ebsd_status sigv4_sign(const struct sigv4_request *req, const struct sigv4_params *params,
                       struct sigv4_signed *out)
{
    ebsd_status st = EBSD_EINVAL;
    char *uri = NULL, *query = NULL, *hblock = NULL, *signed_headers = NULL;
    struct canon c = {0};
    struct sigv4_signed s;
    memset(&s, 0, sizeof s);
    struct sigv4_header extra[3];
    size_t nextra = 0;

    if (!valid_params(req, params))
        goto out;
    const struct sigv4_credentials *cr = params->creds;
    if ((st = amz_date_for(req, params->when, s.amz_date)) != EBSD_OK)
        goto out;
    payload_hash_for(req, s.payload_hash);

    bool has_date = find_header(req->headers, req->nheaders, "x-amz-date") != NULL;
    bool has_token = find_header(req->headers, req->nheaders, "x-amz-security-token") != NULL;
    bool has_sha = find_header(req->headers, req->nheaders, "x-amz-content-sha256") != NULL;
    bool token = cr->session_token && *cr->session_token && !has_token;
    if (token)
        s.token_copy = xstrdup(cr->session_token);

    /* Headers that are signed: the date, the token (unless it goes on after signing), and
     * the payload hash when asked. */
    if (!has_date)
        extra[nextra++] = (struct sigv4_header){"X-Amz-Date", s.amz_date};
    if (token && !params->omit_session_token)
        extra[nextra++] = (struct sigv4_header){"X-Amz-Security-Token", s.token_copy};
    if (params->sign_body && !has_sha)
        extra[nextra++] = (struct sigv4_header){"x-amz-content-sha256", s.payload_hash};

    uri = canonical_uri(req->path, params->normalize_path, !params->no_double_encode);
    if ((st = canonical_query(req->query, &query)) != EBSD_OK)
        goto out;
    if ((st = canonical_headers(req->headers, req->nheaders, extra, nextra, NULL, 0, &hblock,
                                &signed_headers)) != EBSD_OK)
        goto out;
    if ((st = compute(req->method, uri, query, hblock, signed_headers, s.payload_hash,
                      s.amz_date, params->region, params->service, cr->secret_access_key,
                      &c)) != EBSD_OK)
        goto out;

    char date[9];
    memcpy(date, s.amz_date, 8);
    date[8] = '\0';
    s.authorization = xasprintf(ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, "
                                          "SignedHeaders=%s, Signature=%s",
                                cr->access_key_id, date, params->region, params->service,
                                signed_headers, c.signature);
    memcpy(s.signature, c.signature, sizeof s.signature);
    s.canonical_request = c.creq;
    s.string_to_sign = c.sts;
    c.creq = c.sts = NULL;

    if (!has_date)
        s.add[s.nadd++] = (struct sigv4_header){"X-Amz-Date", s.amz_date};
    if (token)
        s.add[s.nadd++] = (struct sigv4_header){"X-Amz-Security-Token", s.token_copy};
    if (params->sign_body && !has_sha)
        s.add[s.nadd++] = (struct sigv4_header){"x-amz-content-sha256", s.payload_hash};
    s.add[s.nadd++] = (struct sigv4_header){"Authorization", s.authorization};
    st = EBSD_OK;
out:
    free(uri);
    free(query);
    free(hblock);
    free(signed_headers);
    canon_free(&c);
    if (st == EBSD_OK) {
        *out = s;
        /* add[] points into s; re-point it into *out. */
        for (size_t i = 0; i < out->nadd; i++) {
            if (out->add[i].value == s.amz_date)
                out->add[i].value = out->amz_date;
            else if (out->add[i].value == s.payload_hash)
                out->add[i].value = out->payload_hash;
        }
    } else {
        free(s.token_copy);
    }
    return st;
}

void sigv4_signed_free(struct sigv4_signed *s)
{
    if (!s)
        return;
    free(s->canonical_request);
    free(s->string_to_sign);
    free(s->authorization);
    if (s->token_copy) {
        OPENSSL_cleanse(s->token_copy, strlen(s->token_copy));
        free(s->token_copy);
    }
    memset(s, 0, sizeof *s);
}

ebsd_status sigv4_presign(const struct sigv4_request *req, const struct sigv4_params *params,
                          long expires_s, struct sigv4_presigned *out)
{
    ebsd_status st = EBSD_EINVAL;
    char *uri = NULL, *query = NULL, *hblock = NULL, *signed_headers = NULL;
    char *cred = NULL, *sh_enc = NULL, *tok_enc = NULL, *signed_q = NULL, *full_q = NULL;
    struct canon c = {0};
    char amz_date[17], payload[65];

    if (!valid_params(req, params) || expires_s <= 0)
        goto out;
    const struct sigv4_credentials *cr = params->creds;
    if ((st = amz_date_for(req, params->when, amz_date)) != EBSD_OK)
        goto out;
    payload_hash_for(req, payload);
    if ((st = canonical_headers(req->headers, req->nheaders, NULL, 0, NULL, 0, &hblock,
                                &signed_headers)) != EBSD_OK)
        goto out;

    char date[9];
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    char *scope = xasprintf("%s/%s/%s/%s/aws4_request", cr->access_key_id, date,
                            params->region, params->service);
    cred = sigv4_uri_encode(scope, strlen(scope), true);
    free(scope);
    sh_enc = sigv4_uri_encode(signed_headers, strlen(signed_headers), true);
    bool token = cr->session_token && *cr->session_token;
    if (token)
        tok_enc = sigv4_uri_encode(cr->session_token, strlen(cr->session_token), true);
    const char *orig = req->query ? req->query : "";
    /* What is signed: the original query plus the X-Amz-* parameters (canonical_query
     * sorts them). What is sent: the same in the documented order, signature last. */
    signed_q = xasprintf("%s%sX-Amz-Algorithm=" ALGORITHM "&X-Amz-Credential=%s&X-Amz-Date=%s"
                         "&X-Amz-Expires=%ld%s%s&X-Amz-SignedHeaders=%s",
                         orig, *orig ? "&" : "", cred, amz_date, expires_s,
                         token && !params->omit_session_token ? "&X-Amz-Security-Token=" : "",
                         token && !params->omit_session_token ? tok_enc : "", sh_enc);
    uri = canonical_uri(req->path, params->normalize_path, !params->no_double_encode);
    if ((st = canonical_query(signed_q, &query)) != EBSD_OK)
        goto out;
    if ((st = compute(req->method, uri, query, hblock, signed_headers, payload, amz_date,
                      params->region, params->service, cr->secret_access_key, &c)) != EBSD_OK)
        goto out;
    full_q = xasprintf("%s%sX-Amz-Algorithm=" ALGORITHM "&X-Amz-Credential=%s&X-Amz-Date=%s"
                       "&X-Amz-SignedHeaders=%s&X-Amz-Expires=%ld%s%s&X-Amz-Signature=%s",
                       orig, *orig ? "&" : "", cred, amz_date, sh_enc, expires_s,
                       token ? "&X-Amz-Security-Token=" : "", token ? tok_enc : "",
                       c.signature);
    out->canonical_request = c.creq;
    out->string_to_sign = c.sts;
    memcpy(out->signature, c.signature, sizeof out->signature);
    out->query = full_q;
    c.creq = c.sts = NULL;
    full_q = NULL;
    st = EBSD_OK;
out:
    free(uri);
    free(query);
    free(hblock);
    free(signed_headers);
    free(cred);
    free(sh_enc);
    free(tok_enc);
    free(signed_q);
    free(full_q);
    canon_free(&c);
    return st;
}

void sigv4_presigned_free(struct sigv4_presigned *p)
{
    if (!p)
        return;
    free(p->canonical_request);
    free(p->string_to_sign);
    free(p->query);
    memset(p, 0, sizeof *p);
}

/* ---- verification ----------------------------------------------------------------------- */

static ebsd_status refuse(struct sigv4_verdict *v, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static ebsd_status refuse(struct sigv4_verdict *v, const char *code, const char *fmt, ...)
{
    va_list ap;
    snprintf(v->code, sizeof v->code, "%s", code);
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof v->message, fmt, ap);
    va_end(ap);
    return EBSD_EAUTH;
}

struct auth_parts {
    char *credential;     /* "AK/DATE/REGION/SERVICE/aws4_request" */
    char *signed_headers; /* "host;x-amz-date" */
    char *signature;
    /* Pieces of credential (pointers into cred_copy). */
    char *cred_copy;
    const char *ak, *date, *region, *service, *term;
};

static void auth_parts_free(struct auth_parts *a)
{
    free(a->credential);
    free(a->signed_headers);
    free(a->signature);
    free(a->cred_copy);
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Parses "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...". Returns NULL
 * or a static description of what is wrong. */
static const char *parse_authorization(const char *value, struct auth_parts *a)
{
    const char *p = skip_ws(value);
    size_t alen = strlen(ALGORITHM);
    if (strncmp(p, ALGORITHM, alen) != 0 || (p[alen] != ' ' && p[alen] != '\t'))
        return "Unsupported AWS 'algorithm': the Authorization header must start with "
               "'" ALGORITHM " '";
    p += alen;
    while (*p) {
        p = skip_ws(p);
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t tl = len;
        while (tl && (p[tl - 1] == ' ' || p[tl - 1] == '\t'))
            tl--;
        char **slot = NULL;
        size_t plen = 0;
        if (tl > 11 && strncmp(p, "Credential=", 11) == 0) {
            slot = &a->credential;
            plen = 11;
        } else if (tl > 14 && strncmp(p, "SignedHeaders=", 14) == 0) {
            slot = &a->signed_headers;
            plen = 14;
        } else if (tl > 10 && strncmp(p, "Signature=", 10) == 0) {
            slot = &a->signature;
            plen = 10;
        } else if (tl) {
            return "Authorization header has an unknown or empty component";
        }
        if (slot) {
            if (*slot)
                return "Authorization header repeats a component";
            *slot = xstrndup(p + plen, tl - plen);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (!a->credential)
        return "Authorization header requires 'Credential' parameter";
    if (!a->signed_headers)
        return "Authorization header requires 'SignedHeaders' parameter";
    if (!a->signature)
        return "Authorization header requires 'Signature' parameter";

    a->cred_copy = xstrdup(a->credential);
    char *parts[5];
    int n = 0;
    char *q = a->cred_copy;
    parts[n++] = q;
    for (; *q; q++) {
        if (*q == '/') {
            if (n == 5)
                return "Credential must have exactly 5 slash-delimited elements, "
                       "e.g. keyid/date/region/service/term";
            *q = '\0';
            parts[n++] = q + 1;
        }
    }
    if (n != 5)
        return "Credential must have exactly 5 slash-delimited elements, "
               "e.g. keyid/date/region/service/term";
    for (int i = 0; i < 5; i++)
        if (!*parts[i])
            return "Credential has an empty element";
    if (strcmp(parts[4], "aws4_request") != 0)
        return "Credential should be scoped with a valid terminator: 'aws4_request'";
    if (strlen(parts[1]) != 8 || strspn(parts[1], "0123456789") != 8)
        return "Credential date must be YYYYMMDD";
    a->ak = parts[0];
    a->date = parts[1];
    a->region = parts[2];
    a->service = parts[3];
    a->term = parts[4];
    if (strlen(a->signature) != 64 || strspn(a->signature, "0123456789abcdef") != 64)
        return "Signature must be 64 lowercase hexadecimal characters";
    for (const char *s = a->signed_headers; *s; s++)
        if (*s == ' ' || *s == '\t' || (*s >= 'A' && *s <= 'Z'))
            return "SignedHeaders must be lowercase names separated by ';'";
    return NULL;
}

ebsd_status sigv4_verify(const struct sigv4_request *req, sigv4_secret_fn lookup, void *ctx,
                         time_t now, int max_skew, struct sigv4_verdict *verdict)
{
    ebsd_status st = EBSD_EAUTH;
    struct auth_parts a = {0};
    char **names = NULL;
    size_t nnames = 0;
    char *uri = NULL, *query = NULL, *hblock = NULL, *signed_headers = NULL, *date_v = NULL;
    struct canon c = {0};
    memset(verdict, 0, sizeof *verdict);

    const char *auth = find_header(req->headers, req->nheaders, "authorization");
    if (!auth || !*skip_ws(auth)) {
        st = refuse(verdict, "MissingAuthenticationToken",
                    "Request is missing Authentication Token");
        goto out;
    }
    const char *why = parse_authorization(auth, &a);
    if (why) {
        st = refuse(verdict, "IncompleteSignature", "%s", why);
        goto out;
    }
    snprintf(verdict->access_key_id, sizeof verdict->access_key_id, "%s", a.ak);

    /* SignedHeaders names, split. */
    names = xcalloc(strlen(a.signed_headers) + 1, sizeof *names);
    for (const char *p = a.signed_headers; *p;) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        if (!len) {
            st = refuse(verdict, "IncompleteSignature", "SignedHeaders has an empty name");
            goto out;
        }
        names[nnames++] = xstrndup(p, len);
        p += len;
        if (*p == ';')
            p++;
    }
    if (!in_list("host", (const char *const *)names, nnames)) {
        st = refuse(verdict, "IncompleteSignature", "SignedHeaders must include 'host'");
        goto out;
    }
    const char *date_h = find_header(req->headers, req->nheaders, "x-amz-date");
    time_t when;
    if (!date_h) {
        st = refuse(verdict, "IncompleteSignature",
                    "Authorization header requires existence of an 'X-Amz-Date' header");
        goto out;
    }
    date_v = canonical_value(date_h);
    if (!parse_amz_date(date_v, &when)) {
        st = refuse(verdict, "IncompleteSignature",
                    "X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'");
        goto out;
    }

    const char *secret = lookup(a.ak, ctx);
    if (!secret) {
        st = refuse(verdict, "AuthFailure",
                    "AWS was not able to validate the provided access credentials");
        goto out;
    }
    if ((now > when && now - when > max_skew) || (when > now && when - now > max_skew)) {
        st = refuse(verdict, "RequestExpired",
                    "Request has expired: X-Amz-Date %s is more than %d seconds from the "
                    "server's time",
                    date_v, max_skew);
        goto out;
    }
    if (strncmp(a.date, date_v, 8) != 0) {
        st = refuse(verdict, "SignatureDoesNotMatch",
                    "Date in Credential scope does not match YYYYMMDD from X-Amz-Date");
        goto out;
    }
    for (size_t i = 0; i < nnames; i++) {
        if (!find_header(req->headers, req->nheaders, names[i])) {
            st = refuse(verdict, "SignatureDoesNotMatch",
                        "The request does not carry signed header '%.64s'", names[i]);
            goto out;
        }
    }
    char body_hash[65];
    sigv4_sha256_hex(req->body, req->body_len, body_hash);
    const char *sha_h = find_header(req->headers, req->nheaders, "x-amz-content-sha256");
    if (sha_h) {
        char *v = canonical_value(sha_h);
        bool ok = strcmp(v, body_hash) == 0;
        free(v);
        if (!ok) {
            st = refuse(verdict, "SignatureDoesNotMatch",
                        "x-amz-content-sha256 does not match the SHA-256 of the body");
            goto out;
        }
    }

    uri = canonical_uri(req->path, true, true);
    if (canonical_query(req->query, &query) != EBSD_OK ||
        canonical_headers(req->headers, req->nheaders, NULL, 0, (const char *const *)names,
                          nnames, &hblock, &signed_headers) != EBSD_OK) {
        st = refuse(verdict, "IncompleteSignature", "The request is too large to verify");
        goto out;
    }
    if (strcmp(signed_headers, a.signed_headers) != 0) {
        st = refuse(verdict, "SignatureDoesNotMatch",
                    "SignedHeaders must be sorted and without repeats");
        goto out;
    }
    if (compute(req->method, uri, query, hblock, signed_headers, body_hash, date_v, a.region,
                a.service, secret, &c) != EBSD_OK) {
        st = refuse(verdict, "IncompleteSignature", "The request is too large to verify");
        goto out;
    }
    if (CRYPTO_memcmp(c.signature, a.signature, 64) != 0) {
        st = refuse(verdict, "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your AWS Secret Access Key and signing method.");
        goto out;
    }
    st = EBSD_OK;
out:
    auth_parts_free(&a);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    free(uri);
    free(query);
    free(hblock);
    free(signed_headers);
    free(date_v);
    canon_free(&c);
    return st;
}
