/* gzip.c - gzip for big answers: Accept-Encoding negotiated by its q-values (RFC 9110),
 * the body compressed by zlib, and the ETag and Vary that tell the two representations apart. */
#include "gzip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "mem.h"

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* tchar of RFC 9110: what tokens (codings, parameter names) are made of. */
static bool is_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths; -1 if bad. */
static int parse_qvalue(const char *s, size_t len)
{
    if (len == 0 || (s[0] != '0' && s[0] != '1'))
        return -1;
    int whole = s[0] - '0', frac = 0;
    if (len == 1)
        return whole * 1000;
    if (s[1] != '.' || len > 5)
        return -1;
    static const int scale[] = {100, 10, 1};
    for (size_t i = 2; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        frac += (s[i] - '0') * scale[i - 2];
    }
    if (whole == 1 && frac != 0)
        return -1;
    return whole * 1000 + frac;
}

unsigned gzip_accept_q(const char *ae)
{
    int gzip_q = -1, star_q = -1;
    if (!ae)
        return 0;
    const char *p = ae;
    while (*p) {
        while (is_ows(*p) || *p == ',')
            p++;
        if (!*p)
            break;
        const char *tok = p;
        while (is_tchar(*p))
            p++;
        size_t toklen = (size_t)(p - tok);
        int q = 1000;
        bool valid = toklen > 0;
        while (is_ows(*p))
            p++;
        while (valid && *p == ';') {
            p++;
            while (is_ows(*p))
                p++;
            const char *name = p;
            while (is_tchar(*p))
                p++;
            size_t namelen = (size_t)(p - name);
            while (is_ows(*p))
                p++;
            if (namelen == 0 || *p != '=') {
                valid = false;
                break;
            }
            p++;
            while (is_ows(*p))
                p++;
            const char *val = p;
            while (is_tchar(*p))
                p++;
            size_t vallen = (size_t)(p - val);
            while (is_ows(*p))
                p++;
            if (namelen == 1 && (name[0] == 'q' || name[0] == 'Q')) {
                q = parse_qvalue(val, vallen);
                if (q < 0)
                    valid = false;
            } else if (vallen == 0) {
                valid = false;
            }
        }
        if (*p && *p != ',')
            valid = false;
        /* an element that does not parse refuses its coding rather than guessing */
        if (!valid)
            q = 0;
        if (toklen > 0) {
            if ((toklen == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
                (toklen == 6 && strncasecmp(tok, "x-gzip", 6) == 0)) {
                if (gzip_q < 0)
                    gzip_q = q;
            } else if (toklen == 1 && tok[0] == '*') {
                if (star_q < 0)
                    star_q = q;
            }
        }
        while (*p && *p != ',')
            p++;
    }
    if (gzip_q >= 0)
        return (unsigned)gzip_q;
    return star_q >= 0 ? (unsigned)star_q : 0;
}

bool gzip_wanted(const char *accept_encoding, size_t len, size_t min_bytes)
{
    return gzip_varies(len, min_bytes) && gzip_accept_q(accept_encoding) > 0;
}

bool gzip_varies(size_t len, size_t min_bytes)
{
    return len >= min_bytes;
}


static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

ebsd_status gzip_open(const void *in, size_t len, struct buf *out)
{
    ebsd_status st = EBSD_EIO;
    z_stream zs;
    bool inited = false;
    buf_init(out, 0);
    if (len > GZIP_MAX_INPUT)
        return EBSD_ETOOBIG;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        goto out;
    inited = true;
    /* deflateBound covers Z_FINISH's final block and trailer, more than a sync flush's
     * empty stored block (5 bytes) needs */
    uLong bound = deflateBound(&zs, (uLong)len) + 16;
    unsigned char *dst = xmalloc(GZIP_OPEN_STATE + bound + 1);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = dst + GZIP_OPEN_STATE;
    zs.avail_out = (uInt)bound;
    /* Z_SYNC_FLUSH: every byte of in is in the output, which ends byte-aligned and without
     * a final block or trailer, so more blocks may follow */
    if (deflate(&zs, Z_SYNC_FLUSH) != Z_OK || zs.avail_in != 0 || zs.avail_out == 0) {
        free(dst);
        goto out;
    }
    put_le32(dst, (uint32_t)crc32(0L, (const Bytef *)in, (uInt)len));
    put_le32(dst + 4, (uint32_t)len); /* ISIZE is the length modulo 2^32 */
    out->data = (char *)dst;
    out->len = GZIP_OPEN_STATE + zs.total_out;
    out->cap = GZIP_OPEN_STATE + bound + 1;
    out->max = out->cap - 1;
    st = EBSD_OK;
out:
    if (inited)
        deflateEnd(&zs);
    return st;
}

ebsd_status gzip_close(const void *open, size_t open_len, const void *tail, size_t tail_len,
                       struct buf *out)
{
    ebsd_status st = EBSD_EIO;
    z_stream zs;
    bool inited = false;
    buf_init(out, 0);
    if (open_len < GZIP_OPEN_STATE + 10 || tail_len > GZIP_MAX_INPUT)
        return EBSD_EINVAL;
    memset(&zs, 0, sizeof zs);
    /* raw deflate (no header), a 512-byte window and the smallest hash: a fresh stream never
     * refers back into the open part, so its blocks may follow it; about 3 KiB of state */
    if (deflateInit2(&zs, 1, Z_DEFLATED, -9, 1, Z_DEFAULT_STRATEGY) != Z_OK)
        goto out;
    inited = true;
    const unsigned char *o = open;
    size_t head = open_len - GZIP_OPEN_STATE;
    uLong bound = deflateBound(&zs, (uLong)tail_len) + 16;
    unsigned char *dst = xmalloc(head + bound + 8 + 1);
    memcpy(dst, o + GZIP_OPEN_STATE, head);
    zs.next_in = (Bytef *)(uintptr_t)tail;
    zs.avail_in = (uInt)tail_len;
    zs.next_out = dst + head;
    zs.avail_out = (uInt)bound;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        free(dst);
        goto out;
    }
    size_t n = head + zs.total_out;
    uLong crc = crc32_combine((uLong)get_le32(o), crc32(0L, (const Bytef *)tail, (uInt)tail_len),
                              (z_off_t)tail_len);
    put_le32(dst + n, (uint32_t)crc);
    put_le32(dst + n + 4, get_le32(o + 4) + (uint32_t)tail_len);
    n += 8;
    dst[n] = '\0';
    out->data = (char *)dst;
    out->len = n;
    out->cap = head + bound + 8 + 1;
    out->max = out->cap - 1;
    st = EBSD_OK;
out:
    if (inited)
        deflateEnd(&zs);
    return st;
}

ebsd_status gzip_compress(const void *in, size_t len, struct buf *out)
{
    /* one whole member: an open stream closed with nothing after it */
    struct buf open;
    ebsd_status st = gzip_open(in, len, &open);
    if (st == EBSD_OK)
        st = gzip_close(open.data, open.len, "", 0, out);
    else
        buf_init(out, 0);
    buf_free(&open);
    return st;
}


ebsd_status gzip_etag(const char *etag, char *out, size_t size)
{
    static const char suffix[] = "-gzip";
    size_t len = strlen(etag), pre = 0;
    if (len >= 2 && etag[0] == 'W' && etag[1] == '/')
        pre = 2;
    if (len < pre + 2 || etag[pre] != '"' || etag[len - 1] != '"' ||
        memchr(etag + pre + 1, '"', len - pre - 2))
        return EBSD_EINVAL;
    size_t need = len + sizeof suffix - 1 + 1;
    if (need > size)
        return EBSD_ETOOBIG;
    memcpy(out, etag, len - 1);
    memcpy(out + len - 1, suffix, sizeof suffix - 1);
    out[len - 1 + sizeof suffix - 1] = '"';
    out[len + sizeof suffix - 1] = '\0';
    return EBSD_OK;
}

/* True if the comma-separated list holds token (case-insensitive) or "*". */
static bool vary_lists(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = list;
    while (*p) {
        while (*p == ',' || is_ows(*p))
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && is_ows(e[-1]))
            e--;
        size_t n = (size_t)(e - s);
        if ((n == 1 && *s == '*') || (n == tlen && strncasecmp(s, token, n) == 0))
            return true;
    }
    return false;
}

ebsd_status gzip_vary_add(const char *existing, const char *token, char *out, size_t size)
{
    const char *src = existing && *existing ? existing : NULL;
    size_t need = src ? strlen(src) + 2 + strlen(token) + 1 : strlen(token) + 1;
    if (src && vary_lists(src, token))
        need = strlen(src) + 1;
    if (need > size)
        return EBSD_ETOOBIG;
    if (!src)
        str_copy(out, size, token);
    else if (vary_lists(src, token))
        str_copy(out, size, src);
    else
        snprintf(out, size, "%s, %s", src, token);
    return EBSD_OK;
}
