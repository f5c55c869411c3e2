/* redisvalue.c - the cache value codec of src/store/redisvalue.h: fixed header, strict
 * validation, exact length. Written by hand because it is ebsd's own format (40 bytes of
 * big-endian integers), not a general serialization a library would provide. */
#include "redisvalue.h"

#include <stdbool.h>
#include <string.h>

#include "mem.h"

static const char magic[4] = {'E', 'B', 'S', 'D'};
static uint64_t rejected;

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The rules both directions share. */
static bool fields_ok(const struct redis_value *v)
{
    if (v->status < 100 || v->status > 599 || v->fetched_at_ms == 0 ||
        v->fetched_at_ms > (uint64_t)INT64_MAX)
        return false;
    if (v->ttl_s > REDIS_VALUE_MAX_TTL_S || v->stale_while_revalidate_s > REDIS_VALUE_MAX_TTL_S ||
        v->stale_if_error_s > REDIS_VALUE_MAX_TTL_S)
        return false;
    if (v->etag_len > REDIS_VALUE_MAX_ETAG || (v->etag_len && !v->etag))
        return false;
    for (size_t i = 0; i < v->etag_len; i++)
        if (v->etag[i] < 0x21 || v->etag[i] > 0x7e)
            return false;
    if (v->body_len > REDIS_VALUE_MAX_BODY || (v->body_len && !v->body))
        return false;
    return true;
}

ebsd_status redis_value_encode(const struct redis_value *v, char **out, size_t *len)
{
    if (!fields_ok(v))
        return EBSD_EINVAL;
    size_t n = REDIS_VALUE_HEADER + v->etag_len + v->body_len;
    unsigned char *p = xmalloc(n);
    memcpy(p, magic, 4);
    p[4] = REDIS_VALUE_VERSION;
    p[5] = 0;
    put16(p + 6, v->status);
    put64(p + 8, v->fetched_at_ms);
    put32(p + 16, v->ttl_s);
    put32(p + 20, v->stale_while_revalidate_s);
    put32(p + 24, v->stale_if_error_s);
    put16(p + 28, (uint16_t)v->etag_len);
    put16(p + 30, 0);
    put32(p + 32, (uint32_t)v->body_len);
    put32(p + 36, 0);
    if (v->etag_len)
        memcpy(p + REDIS_VALUE_HEADER, v->etag, v->etag_len);
    if (v->body_len)
        memcpy(p + REDIS_VALUE_HEADER + v->etag_len, v->body, v->body_len);
    *out = (char *)p;
    *len = n;
    return EBSD_OK;
}

ebsd_status redis_value_decode(const void *data, size_t len, size_t max_body,
                               struct redis_value *out)
{
    const unsigned char *p = data;
    ebsd_status st = EBSD_EPARSE;
    struct redis_value v;
    if (max_body > REDIS_VALUE_MAX_BODY)
        max_body = REDIS_VALUE_MAX_BODY;
    if (len > REDIS_VALUE_HEADER + REDIS_VALUE_MAX_ETAG + max_body) {
        st = EBSD_ETOOBIG;
        goto out;
    }
    if (!p || len < REDIS_VALUE_HEADER || memcmp(p, magic, 4) != 0 ||
        p[4] != REDIS_VALUE_VERSION || p[5] != 0 || get16(p + 30) != 0 || get32(p + 36) != 0)
        goto out;
    memset(&v, 0, sizeof v);
    v.status = get16(p + 6);
    v.fetched_at_ms = get64(p + 8);
    v.ttl_s = get32(p + 16);
    v.stale_while_revalidate_s = get32(p + 20);
    v.stale_if_error_s = get32(p + 24);
    v.etag_len = get16(p + 28);
    v.body_len = get32(p + 32);
    if (v.body_len > max_body) {
        st = EBSD_ETOOBIG;
        goto out;
    }
    /* exact length: no truncation, no trailing bytes (sizes are small, no overflow) */
    if (len != REDIS_VALUE_HEADER + v.etag_len + v.body_len)
        goto out;
    v.etag = (const char *)p + REDIS_VALUE_HEADER;
    v.body = (const char *)p + REDIS_VALUE_HEADER + v.etag_len;
    if (!fields_ok(&v))
        goto out;
    *out = v;
    st = EBSD_OK;
out:
    if (st != EBSD_OK)
        rejected++;
    return st;
}

uint64_t redis_value_rejected(void)
{
    return rejected;
}
