/* test_cache.c - cache states over a fake clock, LRU and byte/entry bounds, ETags, stats. */
#include "cache.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

#define BIG (1u << 20)

static ebsd_status put(struct cache *c, const char *key, const char *body, int64_t now,
                       int64_t ttl)
{
    return cache_put(c, key, 200, body, strlen(body), 1700000000000 + now, now, ttl);
}

static void ttl_states(void)
{
    struct cache *c = cache_new(10, BIG, 500, 2000);
    struct cache_view v;
    CHECK(cache_lookup(c, "k", 0, &v) == CACHE_MISS);
    CHECK(put(c, "k", "{\"a\":1}", 1000, 1000) == EBSD_OK);

    CHECK(cache_lookup(c, "k", 1000, &v) == CACHE_FRESH);
    CHECK_INT(v.age_ms, 0);
    CHECK_INT(v.status, 200);
    CHECK_INT(v.len, 7);
    CHECK_STR(v.body, "{\"a\":1}");
    CHECK_STR(v.key, "k");
    CHECK_INT(v.ttl_ms, 1000);
    CHECK_INT(v.stored_at_ms, 1000);
    CHECK_INT(v.fetched_at_wall_ms, 1700000001000);

    CHECK(cache_lookup(c, "k", 1999, &v) == CACHE_FRESH);
    CHECK_INT(v.age_ms, 999);
    CHECK(cache_lookup(c, "k", 2000, &v) == CACHE_STALE_SWR); /* age == ttl */
    CHECK(cache_lookup(c, "k", 2499, &v) == CACHE_STALE_SWR);
    CHECK(cache_lookup(c, "k", 2500, &v) == CACHE_STALE_ONLY_IF_ERROR);
    CHECK(cache_lookup(c, "k", 3999, &v) == CACHE_STALE_ONLY_IF_ERROR);
    CHECK_INT(v.age_ms, 2999);
    v.age_ms = -42;
    CHECK(cache_lookup(c, "k", 4000, &v) == CACHE_MISS);
    CHECK_INT(v.age_ms, -42); /* untouched on a miss */
    /* A clock that seems to go backwards gives age 0, not a negative age. */
    CHECK(cache_lookup(c, "k", 10, &v) == CACHE_FRESH);
    CHECK_INT(v.age_ms, 0);

    /* The expired entry still exists until cache_expire reclaims it. */
    struct cache_stats st;
    cache_get_stats(c, &st);
    CHECK_INT(st.entries, 1);
    CHECK_INT(cache_expire(c, 3999), 0);
    CHECK_INT(cache_expire(c, 4000), 1);
    cache_get_stats(c, &st);
    CHECK_INT(st.entries, 0);
    CHECK_INT(st.bytes, 0);
    CHECK_INT(st.expirations, 1);
    cache_free(c);
}

static void swr_longer_than_sie(void)
{
    /* When the SWR window is the longer one, stale entries stay serve-and-refresh. */
    struct cache *c = cache_new(10, BIG, 3000, 1000);
    struct cache_view v;
    CHECK(put(c, "k", "x", 0, 100) == EBSD_OK);
    CHECK(cache_lookup(c, "k", 1500, &v) == CACHE_STALE_SWR);
    CHECK(cache_lookup(c, "k", 3099, &v) == CACHE_STALE_SWR);
    CHECK(cache_lookup(c, "k", 3100, &v) == CACHE_MISS);
    cache_free(c);

    /* No windows at all: fresh, then miss. ttl 0 is never fresh. */
    c = cache_new(10, BIG, 0, -5);
    CHECK(put(c, "k", "x", 0, 100) == EBSD_OK);
    CHECK(cache_lookup(c, "k", 99, &v) == CACHE_FRESH);
    CHECK(cache_lookup(c, "k", 100, &v) == CACHE_MISS);
    CHECK(put(c, "z", "x", 0, 0) == EBSD_OK);
    CHECK(cache_lookup(c, "z", 0, &v) == CACHE_MISS);
    cache_free(c);
}

static void lru_order_entry_bound(void)
{
    struct cache *c = cache_new(3, BIG, 0, 0);
    struct cache_view v;
    CHECK(put(c, "a", "1", 0, 1000) == EBSD_OK);
    CHECK(put(c, "b", "2", 0, 1000) == EBSD_OK);
    CHECK(put(c, "c", "3", 0, 1000) == EBSD_OK);
    /* Touch a: b becomes the least recently used. */
    CHECK(cache_lookup(c, "a", 1, &v) == CACHE_FRESH);
    CHECK(put(c, "d", "4", 2, 1000) == EBSD_OK);
    CHECK(cache_lookup(c, "b", 3, &v) == CACHE_MISS);
    CHECK(cache_lookup(c, "a", 3, &v) == CACHE_FRESH);
    CHECK(cache_lookup(c, "c", 3, &v) == CACHE_FRESH);
    CHECK(cache_lookup(c, "d", 3, &v) == CACHE_FRESH);
    /* Order now (most recent first): d c a. */
    CHECK(put(c, "e", "5", 4, 1000) == EBSD_OK);
    CHECK(cache_lookup(c, "a", 5, &v) == CACHE_MISS);
    struct cache_stats st;
    cache_get_stats(c, &st);
    CHECK_INT(st.entries, 3);
    CHECK_INT(st.evictions, 2);
    CHECK_INT(st.max_entries, 3);

    /* Replacing a key is not an eviction and keeps the count. */
    CHECK(put(c, "e", "55", 6, 1000) == EBSD_OK);
    CHECK(cache_lookup(c, "e", 6, &v) == CACHE_FRESH);
    CHECK_STR(v.body, "55");
    cache_get_stats(c, &st);
    CHECK_INT(st.entries, 3);
    CHECK_INT(st.evictions, 2);
    cache_free(c);
}

static void byte_bound(void)
{
    /* Room for exactly three entries with 1-byte keys and 100-byte bodies. */
    size_t one = 1 + 100 + CACHE_ENTRY_OVERHEAD;
    struct cache *c = cache_new(100, 3 * one, 0, 0);
    char body[101];
    memset(body, 'x', 100);
    body[100] = '\0';
    struct cache_view v;
    struct cache_stats st;
    CHECK(put(c, "a", body, 0, 1000) == EBSD_OK);
    CHECK(put(c, "b", body, 0, 1000) == EBSD_OK);
    CHECK(put(c, "c", body, 0, 1000) == EBSD_OK);
    cache_get_stats(c, &st);
    CHECK_INT(st.bytes, 3 * one);
    CHECK_INT(st.evictions, 0);
    /* A bigger entry needs two slots' worth: a and b go (LRU), c stays. */
    char big[180];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(put(c, "d", big, 1, 1000) == EBSD_OK);
    CHECK(cache_lookup(c, "a", 2, &v) == CACHE_MISS);
    CHECK(cache_lookup(c, "b", 2, &v) == CACHE_MISS);
    CHECK(cache_lookup(c, "c", 2, &v) == CACHE_FRESH);
    CHECK(cache_lookup(c, "d", 2, &v) == CACHE_FRESH);
    CHECK_INT(v.len, 179);
    cache_get_stats(c, &st);
    CHECK_INT(st.entries, 2);
    CHECK_INT(st.evictions, 2);
    CHECK_INT(st.bytes, one + 1 + 179 + CACHE_ENTRY_OVERHEAD);
    CHECK(st.bytes <= st.max_bytes);
    cache_free(c);
}

static void oversized_refused(void)
{
    size_t max = 1000;
    struct cache *c = cache_new(10, max, 0, 0);
    struct cache_view v;
    struct cache_stats st;
    size_t n = max - CACHE_ENTRY_OVERHEAD - 1; /* exactly fits with a 1-byte key */
    char *body = malloc(n + 2);
    memset(body, 'z', n + 1);
    body[n] = '\0';
    CHECK(put(c, "o", "small", 0, 1000) == EBSD_OK);
    CHECK(put(c, "k", body, 0, 1000) == EBSD_OK); /* evicts "o" to fit */
    cache_get_stats(c, &st);
    CHECK_INT(st.bytes, max);
    CHECK_INT(st.entries, 1);
    body[n] = 'z';
    body[n + 1] = '\0';
    CHECK(put(c, "k", body, 1, 1000) == EBSD_ETOOBIG);
    /* The refused answer supersedes the old one: nothing stale is left under the key. */
    CHECK(cache_lookup(c, "k", 1, &v) == CACHE_MISS);
    cache_get_stats(c, &st);
    CHECK_INT(st.entries, 0);
    CHECK_INT(st.bytes, 0);
    CHECK_INT(st.refused, 1);
    free(body);

    /* A huge len does not overflow the size arithmetic. */
    CHECK(cache_put(c, "h", 200, "x", (size_t)-1, 0, 0, 1) == EBSD_ETOOBIG);
    cache_free(c);

    c = cache_new(0, BIG, 0, 0);
    CHECK(put(c, "k", "x", 0, 1000) == EBSD_ETOOBIG);
    cache_free(c);
}

static void bad_arguments(void)
{
    struct cache *c = cache_new(10, BIG, 0, 0);
    CHECK(cache_put(c, NULL, 200, "x", 1, 0, 0, 1) == EBSD_EINVAL);
    CHECK(cache_put(c, "k", 200, NULL, 1, 0, 0, 1) == EBSD_EINVAL);
    CHECK(cache_put(c, "k", 99, "x", 1, 0, 0, 1) == EBSD_EINVAL);
    CHECK(cache_put(c, "k", 600, "x", 1, 0, 0, 1) == EBSD_EINVAL);
    CHECK(cache_put(c, "k", 200, "x", 1, 0, 0, -1) == EBSD_EINVAL);
    /* An empty body is fine, with a NULL or non-NULL pointer. */
    CHECK(cache_put(c, "e", 200, NULL, 0, 0, 0, 10) == EBSD_OK);
    struct cache_view v;
    CHECK(cache_lookup(c, "e", 0, &v) == CACHE_FRESH);
    CHECK_INT(v.len, 0);
    CHECK_STR(v.body, "");
    CHECK(cache_lookup(c, NULL, 0, &v) == CACHE_MISS);
    CHECK(!cache_remove(c, NULL));
    cache_free(c);
    cache_free(NULL);
}

static void etags(void)
{
    struct cache *c = cache_new(10, BIG, 0, 0);
    struct cache_view v;
    CHECK(put(c, "a", "{\"total_gib\":10}", 0, 1000) == EBSD_OK);
    CHECK(put(c, "b", "{\"total_gib\":10}", 0, 1000) == EBSD_OK);
    CHECK(put(c, "c", "{\"total_gib\":11}", 0, 1000) == EBSD_OK);
    char ea[CACHE_ETAG_SIZE], eb[CACHE_ETAG_SIZE], ec[CACHE_ETAG_SIZE];
    CHECK(cache_lookup(c, "a", 0, &v) == CACHE_FRESH);
    snprintf(ea, sizeof ea, "%s", v.etag);
    CHECK(cache_lookup(c, "b", 0, &v) == CACHE_FRESH);
    snprintf(eb, sizeof eb, "%s", v.etag);
    CHECK(cache_lookup(c, "c", 0, &v) == CACHE_FRESH);
    snprintf(ec, sizeof ec, "%s", v.etag);
    CHECK_STR(ea, eb);
    CHECK(strcmp(ea, ec) != 0);
    CHECK_INT(strlen(ea), CACHE_ETAG_SIZE - 1);
    CHECK(ea[0] == '"' && ea[33] == '"');
    /* First 128 bits of SHA-256(""), hex, quoted. */
    char e0[CACHE_ETAG_SIZE];
    cache_etag("", 0, e0);
    CHECK_STR(e0, "\"e3b0c44298fc1c149afbf4c8996fb924\"");
    cache_etag("abc", 3, e0);
    CHECK_STR(e0, "\"ba7816bf8f01cfea414140de5dae2223\"");
    /* Re-putting the same body keeps the ETag. */
    CHECK(put(c, "a", "{\"total_gib\":10}", 5, 1000) == EBSD_OK);
    CHECK(cache_lookup(c, "a", 5, &v) == CACHE_FRESH);
    CHECK_STR(v.etag, ea);
    cache_free(c);
}

static void negative_entries(void)
{
    struct cache *c = cache_new(10, BIG, 0, 5000);
    struct cache_view v;
    const char *nf = "{\"error\":{\"code\":\"InvalidInstanceID.NotFound\"}}";
    CHECK(cache_put(c, "us-east-1|instance|i-0123456789abcdef0", 404, nf, strlen(nf), 1, 100,
                    200) == EBSD_OK);
    CHECK(cache_lookup(c, "us-east-1|instance|i-0123456789abcdef0", 250, &v) == CACHE_FRESH);
    CHECK_INT(v.status, 404);
    CHECK_STR(v.body, nf);
    CHECK(cache_lookup(c, "us-east-1|instance|i-0123456789abcdef0", 300, &v) ==
          CACHE_STALE_ONLY_IF_ERROR);
    /* A later 200 replaces the negative entry. */
    CHECK(cache_put(c, "us-east-1|instance|i-0123456789abcdef0", 200, "{}", 2, 2, 400, 1000) ==
          EBSD_OK);
    CHECK(cache_lookup(c, "us-east-1|instance|i-0123456789abcdef0", 400, &v) == CACHE_FRESH);
    CHECK_INT(v.status, 200);
    cache_free(c);
}

static void stats_and_remove(void)
{
    struct cache *c = cache_new(10, BIG, 100, 100);
    struct cache_view v;
    struct cache_stats st;
    CHECK(put(c, "us-east-1|total|detail=0", "{}", 0, 10) == EBSD_OK);
    CHECK(put(c, "us-east-1|total|detail=1", "{\"x\":1}", 0, 10) == EBSD_OK);
    CHECK(cache_lookup(c, "us-east-1|total|detail=0", 5, &v) == CACHE_FRESH);
    CHECK(cache_lookup(c, "us-east-1|total|detail=0", 50, &v) == CACHE_STALE_SWR);
    CHECK(cache_lookup(c, "nope", 5, &v) == CACHE_MISS);
    CHECK(cache_lookup(c, "us-east-1|total|detail=1", 500, &v) == CACHE_MISS);
    cache_get_stats(c, &st);
    CHECK_INT(st.entries, 2);
    CHECK_INT(st.bytes, (24 + 2 + CACHE_ENTRY_OVERHEAD) + (24 + 7 + CACHE_ENTRY_OVERHEAD));
    CHECK_INT(st.hits, 1);
    CHECK_INT(st.stale_hits, 1);
    CHECK_INT(st.misses, 2);
    CHECK_INT(st.evictions, 0);
    CHECK_INT(st.max_bytes, BIG);

    CHECK(cache_remove(c, "us-east-1|total|detail=0"));
    CHECK(!cache_remove(c, "us-east-1|total|detail=0"));
    CHECK(cache_lookup(c, "us-east-1|total|detail=0", 5, &v) == CACHE_MISS);
    cache_get_stats(c, &st);
    CHECK_INT(st.entries, 1);
    CHECK_INT(st.bytes, 24 + 7 + CACHE_ENTRY_OVERHEAD);
    CHECK_STR(cache_state_str(CACHE_FRESH), "fresh");
    CHECK_STR(cache_state_str(CACHE_STALE_SWR), "stale-swr");
    CHECK_STR(cache_state_str(CACHE_STALE_ONLY_IF_ERROR), "stale-if-error");
    CHECK_STR(cache_state_str(CACHE_MISS), "miss");
    cache_free(c);
}

static bool starts_with_prod(const char *key, void *arg)
{
    (void)arg;
    return strncmp(key, "prod/", 5) == 0;
}

/* A reload that changes an account drops that account's entries and no other's. */
static void remove_matching(void)
{
    struct cache *c = cache_new(10, BIG, 100, 100);
    struct cache_view v;
    struct cache_stats st;
    CHECK(put(c, "prod/us-east-1|total|-", "{}", 0, 10) == EBSD_OK);
    CHECK(put(c, "prod/eu-west-1|instance|i-1", "{}", 0, 10) == EBSD_OK);
    CHECK(put(c, "production/us-east-1|total|-", "{}", 0, 10) == EBSD_OK);
    CHECK(put(c, "us-east-1|total|-", "{\"x\":1}", 0, 10) == EBSD_OK);
    CHECK_INT(cache_remove_matching(c, starts_with_prod, NULL), 2);
    CHECK(cache_lookup(c, "prod/us-east-1|total|-", 5, &v) == CACHE_MISS);
    CHECK(cache_lookup(c, "production/us-east-1|total|-", 5, &v) == CACHE_FRESH);
    CHECK(cache_lookup(c, "us-east-1|total|-", 5, &v) == CACHE_FRESH);
    cache_get_stats(c, &st);
    CHECK_INT(st.entries, 2);
    CHECK_INT(st.bytes, (28 + 2 + CACHE_ENTRY_OVERHEAD) + (17 + 7 + CACHE_ENTRY_OVERHEAD));
    CHECK_INT(cache_remove_matching(c, starts_with_prod, NULL), 0);
    cache_free(c);
}

static void views_survive_lookups(void)
{
    /* A view stays valid across lookups (even ones that find the entry expired). */
    struct cache *c = cache_new(10, BIG, 0, 0);
    struct cache_view v1, v2;
    CHECK(put(c, "a", "alpha", 0, 100) == EBSD_OK);
    CHECK(put(c, "b", "beta", 0, 1000) == EBSD_OK);
    CHECK(cache_lookup(c, "a", 10, &v1) == CACHE_FRESH);
    CHECK(cache_lookup(c, "a", 200, &v2) == CACHE_MISS);
    CHECK(cache_lookup(c, "b", 200, &v2) == CACHE_FRESH);
    CHECK_STR(v1.body, "alpha");
    CHECK_STR(v2.body, "beta");
    cache_free(c);
}

static void many_keys(void)
{
    /* Enough keys to make the table grow several times; bounds hold throughout. */
    struct cache *c = cache_new(1000, BIG, 0, 0);
    char key[64];
    struct cache_view v;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "us-east-1|instance|i-%017d", i);
        CHECK(put(c, key, "{}", i, 1000000) == EBSD_OK);
    }
    struct cache_stats st;
    cache_get_stats(c, &st);
    CHECK_INT(st.entries, 1000);
    CHECK_INT(st.evictions, 4000);
    CHECK(st.bytes <= BIG);
    snprintf(key, sizeof key, "us-east-1|instance|i-%017d", 3999);
    CHECK(cache_lookup(c, key, 6000, &v) == CACHE_MISS);
    snprintf(key, sizeof key, "us-east-1|instance|i-%017d", 4000);
    CHECK(cache_lookup(c, key, 6000, &v) == CACHE_FRESH);
    cache_free(c);
}

/* cache_attach: kept with its entry (seen by later lookups, charged to the byte budget,
 * evicting others but never its own entry), refused for a replaced entry, dropped by a put. */
static void attached_representation(void)
{
    struct cache *c = cache_new(10, 3 * CACHE_ENTRY_OVERHEAD + 300, 0, 0);
    struct cache_view v;
    const char *stored = NULL;
    CHECK(put(c, "old", "o", 0, 1000) == EBSD_OK);
    CHECK(put(c, "k", "{\"a\":1}", 0, 1000) == EBSD_OK);
    CHECK(cache_lookup(c, "k", 1, &v) == CACHE_FRESH);
    CHECK(v.alt == NULL && v.alt_len == 0);
    char etag[CACHE_ETAG_SIZE];
    memcpy(etag, v.etag, sizeof etag);
    struct cache_stats st0, st1;
    cache_get_stats(c, &st0);
    CHECK(cache_attach(c, "k", etag, "ZZZ", 3, &stored) == EBSD_OK);
    cache_get_stats(c, &st1);
    CHECK_INT(st1.bytes, st0.bytes + 3);
    CHECK(cache_lookup(c, "k", 2, &v) == CACHE_FRESH);
    CHECK(v.alt == stored && v.alt_len == 3 && memcmp(v.alt, "ZZZ", 3) == 0);
    /* replacing it charges the difference only */
    CHECK(cache_attach(c, "k", etag, "YY", 2, &stored) == EBSD_OK);
    cache_get_stats(c, &st1);
    CHECK_INT(st1.bytes, st0.bytes + 2);
    /* another ETag (the entry was replaced): refused */
    CHECK(cache_attach(c, "k", "\"nope\"", "X", 1, &stored) == EBSD_ENOTFOUND);
    CHECK(cache_attach(c, "missing", etag, "X", 1, &stored) == EBSD_ENOTFOUND);
    /* room is made by evicting the least recently used entry, not k itself */
    char big[600];
    memset(big, 'b', sizeof big);
    CHECK(cache_lookup(c, "k", 3, &v) == CACHE_FRESH);
    CHECK(cache_attach(c, "k", etag, big, sizeof big, &stored) == EBSD_OK);
    CHECK(cache_lookup(c, "old", 3, &v) == CACHE_MISS);
    CHECK(cache_lookup(c, "k", 3, &v) == CACHE_FRESH && v.alt_len == sizeof big);
    /* larger than the whole budget: refused, the entry keeps what it had */
    char huge[4 * CACHE_ENTRY_OVERHEAD];
    memset(huge, 'h', sizeof huge);
    CHECK(cache_attach(c, "k", etag, huge, sizeof huge, &stored) == EBSD_ETOOBIG);
    CHECK(cache_lookup(c, "k", 3, &v) == CACHE_FRESH && v.alt_len == sizeof big);
    /* a new answer for the key drops it */
    CHECK(put(c, "k", "{\"a\":2}", 4, 1000) == EBSD_OK);
    CHECK(cache_lookup(c, "k", 5, &v) == CACHE_FRESH && v.alt == NULL);
    cache_free(c);
}

TEST_MAIN(T(ttl_states), T(swr_longer_than_sie), T(lru_order_entry_bound), T(byte_bound),
          T(oversized_refused), T(bad_arguments), T(etags), T(negative_entries),
          T(stats_and_remove), T(remove_matching), T(views_survive_lookups), T(many_keys),
          T(attached_representation))
