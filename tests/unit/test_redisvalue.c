/* test_redisvalue.c - the Redis cache value codec: round trips, and every way a value read
 * back from Redis can be truncated or poisoned is a counted refusal. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "redisvalue.h"

static struct redis_value sample(void)
{
    struct redis_value v = {.status = 200, .fetched_at_ms = 1764000000123ULL, .ttl_s = 60,
                            .stale_while_revalidate_s = 30, .stale_if_error_s = 300,
                            .etag = "\"abc123\"", .etag_len = 8,
                            .body = "{\"total_gib\":42}", .body_len = 16};
    return v;
}

static void test_round_trip(void)
{
    struct redis_value v = sample(), d;
    char *enc;
    size_t len;
    CHECK_INT(redis_value_encode(&v, &enc, &len), EBSD_OK);
    CHECK_INT(len, REDIS_VALUE_HEADER + 8 + 16);
    CHECK(memcmp(enc, "EBSD\x01\x00\x00\xc8", 8) == 0); /* magic, version, flags, 200 */
    uint64_t before = redis_value_rejected();
    CHECK_INT(redis_value_decode(enc, len, 1024, &d), EBSD_OK);
    CHECK_INT(redis_value_rejected(), before);
    CHECK_INT(d.status, 200);
    CHECK(d.fetched_at_ms == 1764000000123ULL);
    CHECK_INT(d.ttl_s, 60);
    CHECK_INT(d.stale_while_revalidate_s, 30);
    CHECK_INT(d.stale_if_error_s, 300);
    CHECK_INT(d.etag_len, 8);
    CHECK(memcmp(d.etag, "\"abc123\"", 8) == 0);
    CHECK_INT(d.body_len, 16);
    CHECK(memcmp(d.body, "{\"total_gib\":42}", 16) == 0);
    free(enc);

    /* empty ETag and body (a negative answer) */
    v.etag_len = 0;
    v.body_len = 0;
    v.status = 404;
    CHECK_INT(redis_value_encode(&v, &enc, &len), EBSD_OK);
    CHECK_INT(len, REDIS_VALUE_HEADER);
    CHECK_INT(redis_value_decode(enc, len, 0, &d), EBSD_OK);
    CHECK_INT(d.status, 404);
    free(enc);
}

static void test_encode_refuses(void)
{
    char *enc = NULL;
    size_t len;
    struct redis_value v = sample();
    v.status = 99;
    CHECK_INT(redis_value_encode(&v, &enc, &len), EBSD_EINVAL);
    v = sample();
    v.etag = "has space";
    v.etag_len = 9;
    CHECK_INT(redis_value_encode(&v, &enc, &len), EBSD_EINVAL);
    v = sample();
    v.ttl_s = REDIS_VALUE_MAX_TTL_S + 1;
    CHECK_INT(redis_value_encode(&v, &enc, &len), EBSD_EINVAL);
    v = sample();
    v.fetched_at_ms = 0;
    CHECK_INT(redis_value_encode(&v, &enc, &len), EBSD_EINVAL);
    CHECK(enc == NULL);
}

/* Decodes a copy of enc with byte i set to b; returns the status. */
static ebsd_status poke(const char *enc, size_t len, size_t i, unsigned char b)
{
    char *c = malloc(len);
    memcpy(c, enc, len);
    c[i] = (char)b;
    struct redis_value d;
    ebsd_status st = redis_value_decode(c, len, 1024, &d);
    free(c);
    return st;
}

static void test_poisoned(void)
{
    struct redis_value v = sample(), d;
    char *enc;
    size_t len;
    CHECK_INT(redis_value_encode(&v, &enc, &len), EBSD_OK);
    uint64_t before = redis_value_rejected();
    /* every truncation, and one byte too many */
    for (size_t n = 0; n < len; n++)
        CHECK_INT(redis_value_decode(enc, n, 1024, &d), EBSD_EPARSE);
    char *longer = malloc(len + 1);
    memcpy(longer, enc, len);
    longer[len] = 'x';
    CHECK_INT(redis_value_decode(longer, len + 1, 1024, &d), EBSD_EPARSE);
    free(longer);
    CHECK_INT(redis_value_rejected(), before + len + 1);
    CHECK_INT(poke(enc, len, 0, 'X'), EBSD_EPARSE);      /* magic */
    CHECK_INT(poke(enc, len, 4, 2), EBSD_EPARSE);        /* version */
    CHECK_INT(poke(enc, len, 5, 1), EBSD_EPARSE);        /* flags */
    CHECK_INT(poke(enc, len, 6, 0x7f), EBSD_EPARSE);     /* status 0x7fc8 */
    CHECK_INT(poke(enc, len, 16, 0x10), EBSD_EPARSE);    /* ttl */
    CHECK_INT(poke(enc, len, 29, 9), EBSD_EPARSE);       /* etag_len vs length */
    CHECK_INT(poke(enc, len, 31, 1), EBSD_EPARSE);       /* reserved */
    CHECK_INT(poke(enc, len, 35, 15), EBSD_EPARSE);      /* body_len vs length */
    CHECK_INT(poke(enc, len, 39, 1), EBSD_EPARSE);       /* reserved */
    CHECK_INT(poke(enc, len, 40, ' '), EBSD_EPARSE);     /* etag byte */
    CHECK_INT(poke(enc, len, 41, 0x80), EBSD_EPARSE);    /* etag byte */
    CHECK_INT(poke(enc, len, 8, 0x80), EBSD_EPARSE);     /* fetched_at > INT64_MAX */
    CHECK_INT(poke(enc, len, len - 1, 0), EBSD_OK);      /* body bytes are opaque */
    /* body over the caller's cap; a declared size far beyond the input */
    CHECK_INT(redis_value_decode(enc, len, 15, &d), EBSD_ETOOBIG);
    CHECK_INT(poke(enc, len, 32, 0x7f), EBSD_ETOOBIG);
    CHECK_INT(redis_value_decode(NULL, 0, 10, &d), EBSD_EPARSE);
    free(enc);
}

TEST_MAIN(T(test_round_trip), T(test_encode_refuses), T(test_poisoned))
