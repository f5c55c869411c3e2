/* test_gzip.c - Accept-Encoding q-values, the size threshold, a gzip round trip through
 * zlib's inflate, the per-encoding ETag and Vary merging. */
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#include "gzip.h"
#include "harness.h"
#include "mem.h"

static void test_accept_q(void)
{
    struct {
        const char *ae;
        unsigned q;
    } cases[] = {
        {NULL, 0},
        {"", 0},
        {"gzip", 1000},
        {"GZIP", 1000},
        {"x-gzip", 1000},
        {"deflate, gzip, br", 1000},
        {"gzip;q=0", 0},
        {"gzip; q=0", 0},
        {"gzip ;Q=0.000", 0},
        {"gzip;q=0.5", 500},
        {"gzip;q=0.05", 50},
        {"gzip;q=0.001", 1},
        {"gzip;q=1", 1000},
        {"gzip;q=1.000", 1000},
        {"gzip;q=1.001", 0}, /* malformed: refuses its coding */
        {"gzip;q=2", 0},
        {"gzip;q=0.1234", 0},
        {"gzip;q=", 0},
        {"gzip;q=abc", 0},
        {"gzip;q", 0},
        {"gzip;", 0},
        {"gzip;level=9", 1000}, /* an unknown parameter is not a refusal */
        {"*", 1000},
        {"*;q=0.3", 300},
        {"*;q=0", 0},
        {"identity", 0},
        {"br, deflate", 0},
        {"br;q=1.0, *;q=0.2", 200},
        {"gzip;q=0, *", 0},          /* named coding wins over "*" */
        {"*, gzip;q=0", 0},
        {"*;q=0, gzip;q=0.8", 800},
        {"gzip;q=0.7, gzip;q=0", 700}, /* the first listing counts */
        {"  gzip  ,  deflate  ", 1000},
        {",,gzip,,", 1000},
        {"gzipx", 0},
        {"xgzip", 0},
        {"gzip/1", 0},
        {"deflate;q=0.5, gzip;q=0.9, identity;q=0", 900},
        {"gzip\t;\tq=0.25", 250},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        harness_current = cases[i].ae ? cases[i].ae : "(null)";
        CHECK_INT(gzip_accept_q(cases[i].ae), cases[i].q);
    }
}

static void test_threshold(void)
{
    CHECK(!gzip_wanted("gzip", GZIP_MIN_BYTES - 1, GZIP_MIN_BYTES));
    CHECK(gzip_wanted("gzip", GZIP_MIN_BYTES, GZIP_MIN_BYTES));
    CHECK(!gzip_wanted("gzip;q=0", 1 << 20, GZIP_MIN_BYTES));
    CHECK(!gzip_wanted(NULL, 1 << 20, GZIP_MIN_BYTES));
    CHECK(gzip_wanted("*", 5000, GZIP_MIN_BYTES));
    CHECK(gzip_wanted("gzip", 10, 0));
    CHECK(!gzip_varies(GZIP_MIN_BYTES - 1, GZIP_MIN_BYTES));
    CHECK(gzip_varies(GZIP_MIN_BYTES, GZIP_MIN_BYTES));
}

/* Inflates a gzip stream (zlib, gzip wrapper only) into a new buffer; NULL on error. */
static char *gunzip(const char *in, size_t len, size_t *outlen, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + 15) != Z_OK)
        return NULL;
    char *out = xmalloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)cap;
    int rc = inflate(&zs, Z_FINISH);
    *outlen = zs.total_out;
    inflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

static void roundtrip(const char *body, size_t len)
{
    struct buf z;
    CHECK(gzip_compress(body, len, &z) == EBSD_OK);
    CHECK(z.len >= 18);
    /* RFC 1952: magic 1f 8b, method 8 (deflate) */
    CHECK((unsigned char)z.data[0] == 0x1f && (unsigned char)z.data[1] == 0x8b && z.data[2] == 8);
    size_t n = 0;
    char *back = gunzip(z.data, z.len, &n, len + 16);
    CHECK(back != NULL);
    CHECK_INT(n, len);
    CHECK(back && memcmp(back, body, len) == 0);
    free(back);
    buf_free(&z);
}

static void test_roundtrip(void)
{
    roundtrip("", 0);
    roundtrip("{}", 2);
    /* a detail=instances answer: repetitive JSON, where gzip pays */
    struct buf b;
    buf_init(&b, 4 << 20);
    CHECK(buf_puts(&b, "{\"instances\":[") == EBSD_OK);
    for (int i = 0; i < 10000; i++)
        CHECK(buf_printf(&b, "%s{\"instance_id\":\"i-%017x\",\"total_gib\":%d,\"volume_count\":%d}",
                         i ? "," : "", (unsigned)i * 2654435761u, 8 + i % 500, 1 + i % 3) ==
              EBSD_OK);
    CHECK(buf_puts(&b, "]}") == EBSD_OK);
    roundtrip(b.data, b.len);
    struct buf z;
    CHECK(gzip_compress(b.data, b.len, &z) == EBSD_OK);
    CHECK(z.len * 3 < b.len); /* at least 3x smaller */
    buf_free(&z);
    buf_free(&b);
    /* incompressible bytes still round-trip */
    unsigned char rnd[5000];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof rnd; i++) {
        x = x * 1103515245u + 12345u;
        rnd[i] = (unsigned char)(x >> 16);
    }
    roundtrip((const char *)rnd, sizeof rnd);
}

/* An open stream closed with a tail decompresses to body + tail, in one member: inflate
 * checks the CRC-32 and length in the trailer, and reports Z_STREAM_END with no input left. */
static void open_close(const char *body, size_t len, const char *tail, size_t tlen)
{
    struct buf o, z;
    CHECK(gzip_open(body, len, &o) == EBSD_OK);
    CHECK(o.len > GZIP_OPEN_STATE + 10);
    for (int round = 0; round < 2; round++) { /* the open part is reusable */
        CHECK(gzip_close(o.data, o.len, tail, tlen, &z) == EBSD_OK);
        size_t n = 0;
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        CHECK(inflateInit2(&zs, 16 + 15) == Z_OK);
        char *out = xmalloc(len + tlen + 16);
        zs.next_in = (Bytef *)z.data;
        zs.avail_in = (uInt)z.len;
        zs.next_out = (Bytef *)out;
        zs.avail_out = (uInt)(len + tlen + 16);
        CHECK_INT(inflate(&zs, Z_FINISH), Z_STREAM_END);
        CHECK_INT(zs.avail_in, 0); /* one member, nothing after it */
        n = zs.total_out;
        inflateEnd(&zs);
        CHECK_INT(n, len + tlen);
        CHECK(memcmp(out, body, len) == 0 && memcmp(out + len, tail, tlen) == 0);
        /* a corrupted trailer is caught by the decoder: the CRC is real */
        z.data[z.len - 5] ^= 1;
        size_t bad = 0;
        char *back = gunzip(z.data, z.len, &bad, len + tlen + 16);
        CHECK(back == NULL);
        free(out);
        buf_free(&z);
    }
    buf_free(&o);
}

static void test_open_close(void)
{
    open_close("", 0, "", 0);
    open_close("{\"a\":1", 6, ",\"b\":2}\n", 9);
    struct buf b;
    buf_init(&b, 4 << 20);
    for (int i = 0; i < 20000; i++)
        CHECK(buf_printf(&b, "{\"instance_id\":\"i-%017x\",\"total_gib\":%d},",
                         (unsigned)i * 2654435761u, 8 + i % 500) == EBSD_OK);
    const char tail[] = ",\"source\":{\"cache\":\"hit\"},\"request_id\":\"abc\"}\n";
    open_close(b.data, b.len, tail, sizeof tail - 1);
    buf_free(&b);
    struct buf z;
    CHECK(gzip_close("short", 5, "x", 1, &z) == EBSD_EINVAL);
}

static void test_etag(void)
{
    char out[64];
    CHECK(gzip_etag("\"abc\"", out, sizeof out) == EBSD_OK);
    CHECK_STR(out, "\"abc-gzip\"");
    CHECK(gzip_etag("W/\"abc\"", out, sizeof out) == EBSD_OK);
    CHECK_STR(out, "W/\"abc-gzip\"");
    CHECK(gzip_etag("\"\"", out, sizeof out) == EBSD_OK);
    CHECK_STR(out, "\"-gzip\"");
    CHECK(gzip_etag("abc", out, sizeof out) == EBSD_EINVAL);
    CHECK(gzip_etag("\"abc", out, sizeof out) == EBSD_EINVAL);
    CHECK(gzip_etag("\"a\"b\"", out, sizeof out) == EBSD_EINVAL);
    CHECK(gzip_etag("W/", out, sizeof out) == EBSD_EINVAL);
    CHECK(gzip_etag("\"", out, sizeof out) == EBSD_EINVAL);
    CHECK(gzip_etag("\"abc\"", out, 10) == EBSD_ETOOBIG);
    CHECK(gzip_etag("\"abc\"", out, 11) == EBSD_OK);
    CHECK_STR(out, "\"abc-gzip\"");
}

static void test_vary(void)
{
    char out[64];
    CHECK(gzip_vary_add(NULL, GZIP_VARY, out, sizeof out) == EBSD_OK);
    CHECK_STR(out, "Accept-Encoding");
    CHECK(gzip_vary_add("", GZIP_VARY, out, sizeof out) == EBSD_OK);
    CHECK_STR(out, "Accept-Encoding");
    CHECK(gzip_vary_add("Origin", GZIP_VARY, out, sizeof out) == EBSD_OK);
    CHECK_STR(out, "Origin, Accept-Encoding");
    CHECK(gzip_vary_add("Origin, accept-encoding", GZIP_VARY, out, sizeof out) == EBSD_OK);
    CHECK_STR(out, "Origin, accept-encoding");
    CHECK(gzip_vary_add("*", GZIP_VARY, out, sizeof out) == EBSD_OK);
    CHECK_STR(out, "*");
    CHECK(gzip_vary_add("Origin", GZIP_VARY, out, 23) == EBSD_ETOOBIG);
    CHECK(gzip_vary_add("Origin", GZIP_VARY, out, 24) == EBSD_OK);
}

TEST_MAIN(T(test_accept_q), T(test_threshold), T(test_roundtrip), T(test_open_close), T(test_etag), T(test_vary))
