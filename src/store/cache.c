/* cache.c - bounded LRU cache of response bodies with TTL/SWR/SIE states (see cache.h).
 * The index is a uthash table keyed by the entry's own key bytes; recency is a utlist
 * doubly linked list, most recently used at the head, so the LRU victim is head->prev. */
#include "cache.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "mem.h"

/* uthash allocates through ebsd's OOM policy: xmalloc never returns NULL. */
#define uthash_malloc(sz) xmalloc(sz)
#define uthash_free(ptr, sz) free(ptr)
#include <uthash.h>
#include <utlist.h>

struct cache_entry {
    UT_hash_handle hh;
    struct cache_entry *prev, *next; /* recency list */
    char *key;
    size_t keylen;
    char *body;
    size_t len;
    size_t cost;
    int status;
    int64_t fetched_at_wall_ms;
    int64_t stored_at_ms;
    int64_t ttl_ms;
    char etag[CACHE_ETAG_SIZE];
    char *alt;     /* another representation of body (cache_attach), or NULL */
    size_t alt_len;
};

_Static_assert(sizeof(struct cache_entry) <= CACHE_ENTRY_OVERHEAD,
               "CACHE_ENTRY_OVERHEAD must cover the entry struct");

struct cache {
    struct cache_entry *table; /* uthash head */
    struct cache_entry *lru;   /* utlist head: most recently used first */
    int64_t swr_ms;
    int64_t sie_ms;
    struct cache_stats st;
};

/* a + b without overflowing past INT64_MAX (both are >= 0 here). */
static int64_t add_sat(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

struct cache *cache_new(size_t max_entries, size_t max_bytes, int64_t swr_ms, int64_t sie_ms)
{
    struct cache *c = xcalloc(1, sizeof *c);
    c->swr_ms = swr_ms > 0 ? swr_ms : 0;
    c->sie_ms = sie_ms > 0 ? sie_ms : 0;
    c->st.max_entries = max_entries;
    c->st.max_bytes = max_bytes;
    return c;
}

static void entry_free(struct cache_entry *e)
{
    free(e->key);
    free(e->body);
    free(e->alt);
    free(e);
}

/* Unlinks e from the index and the recency list, fixes the totals and frees it. */
static void entry_drop(struct cache *c, struct cache_entry *e)
{
    HASH_DELETE(hh, c->table, e);
    DL_DELETE(c->lru, e);
    c->st.entries--;
    c->st.bytes -= e->cost;
    entry_free(e);
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    struct cache_entry *e, *tmp;
    HASH_ITER(hh, c->table, e, tmp) {
        HASH_DELETE(hh, c->table, e);
        entry_free(e);
    }
    free(c);
}

static struct cache_entry *find(const struct cache *c, const char *key)
{
    struct cache_entry *e = NULL;
    size_t keylen = strlen(key);
    HASH_FIND(hh, c->table, key, keylen, e);
    return e;
}

static enum cache_state state_at(const struct cache *c, const struct cache_entry *e,
                                 int64_t age)
{
    if (age < e->ttl_ms)
        return CACHE_FRESH;
    if (age < add_sat(e->ttl_ms, c->swr_ms))
        return CACHE_STALE_SWR;
    if (age < add_sat(e->ttl_ms, c->sie_ms))
        return CACHE_STALE_ONLY_IF_ERROR;
    return CACHE_MISS;
}

static int64_t age_at(const struct cache_entry *e, int64_t now_ms)
{
    return now_ms > e->stored_at_ms ? now_ms - e->stored_at_ms : 0;
}

enum cache_state cache_lookup(struct cache *c, const char *key, int64_t now_ms,
                              struct cache_view *out)
{
    struct cache_entry *e = key ? find(c, key) : NULL;
    if (!e) {
        c->st.misses++;
        return CACHE_MISS;
    }
    int64_t age = age_at(e, now_ms);
    enum cache_state s = state_at(c, e, age);
    if (s == CACHE_MISS) {
        c->st.misses++;
        return CACHE_MISS;
    }
    if (s == CACHE_FRESH)
        c->st.hits++;
    else
        c->st.stale_hits++;
    if (c->lru != e) {
        DL_DELETE(c->lru, e);
        DL_PREPEND(c->lru, e);
    }
    out->key = e->key;
    out->body = e->body;
    out->len = e->len;
    out->status = e->status;
    out->etag = e->etag;
    out->fetched_at_wall_ms = e->fetched_at_wall_ms;
    out->stored_at_ms = e->stored_at_ms;
    out->ttl_ms = e->ttl_ms;
    out->age_ms = age;
    out->alt = e->alt;
    out->alt_len = e->alt_len;
    return s;
}

ebsd_status cache_attach(struct cache *c, const char *key, const char *etag, const void *alt,
                         size_t len, const char **stored)
{
    struct cache_entry *e = key ? find(c, key) : NULL;
    if (!e || strcmp(e->etag, etag) != 0)
        return EBSD_ENOTFOUND;
    size_t cost = e->cost - e->alt_len;
    if (len > c->st.max_bytes || cost > c->st.max_bytes - len)
        return EBSD_ETOOBIG;
    /* room for it: least recently used entries go first, never e itself */
    while (c->lru && c->lru->prev != e && c->st.bytes - e->alt_len + len > c->st.max_bytes) {
        entry_drop(c, c->lru->prev);
        c->st.evictions++;
    }
    if (c->st.bytes - e->alt_len + len > c->st.max_bytes)
        return EBSD_ETOOBIG;
    c->st.bytes = c->st.bytes - e->alt_len + len;
    free(e->alt);
    e->alt = xmalloc(len ? len : 1);
    if (len)
        memcpy(e->alt, alt, len);
    e->alt_len = len;
    e->cost = cost + len;
    *stored = e->alt;
    return EBSD_OK;
}

void cache_etag(const char *body, size_t len, char out[CACHE_ETAG_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    /* EVP_Digest only fails on allocation failure inside OpenSSL; treat it like ours. */
    if (EVP_Digest(body ? body : "", len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 16)
        abort();
    out[0] = '"';
    for (size_t i = 0; i < 16; i++) {
        out[1 + 2 * i] = hex[md[i] >> 4];
        out[2 + 2 * i] = hex[md[i] & 0xf];
    }
    out[33] = '"';
    out[34] = '\0';
}

ebsd_status cache_put(struct cache *c, const char *key, int status, const char *body,
                      size_t len, int64_t fetched_at_wall_ms, int64_t now_ms, int64_t ttl_ms)
{
    if (!key || (!body && len) || status < 100 || status > 599 || ttl_ms < 0)
        return EBSD_EINVAL;
    size_t keylen = strlen(key);
    struct cache_entry *old = find(c, key);
    if (old)
        entry_drop(c, old);

    size_t cost = CACHE_ENTRY_OVERHEAD;
    size_t max = c->st.max_bytes;
    if (c->st.max_entries == 0 || keylen > max || len > max - keylen ||
        cost > max - keylen - len) {
        c->st.refused++;
        return EBSD_ETOOBIG;
    }
    cost += keylen + len;

    while (c->lru && (c->st.entries >= c->st.max_entries || c->st.bytes + cost > c->st.max_bytes)) {
        entry_drop(c, c->lru->prev);
        c->st.evictions++;
    }

    struct cache_entry *e = xcalloc(1, sizeof *e);
    e->key = xstrndup(key, keylen);
    e->keylen = keylen;
    e->body = xmalloc(len + 1);
    if (len)
        memcpy(e->body, body, len);
    e->body[len] = '\0';
    e->len = len;
    e->cost = cost;
    e->status = status;
    e->fetched_at_wall_ms = fetched_at_wall_ms;
    e->stored_at_ms = now_ms;
    e->ttl_ms = ttl_ms;
    cache_etag(e->body, len, e->etag);
    HASH_ADD_KEYPTR(hh, c->table, e->key, e->keylen, e);
    DL_PREPEND(c->lru, e);
    c->st.entries++;
    c->st.bytes += cost;
    return EBSD_OK;
}

bool cache_remove(struct cache *c, const char *key)
{
    struct cache_entry *e = key ? find(c, key) : NULL;
    if (!e)
        return false;
    entry_drop(c, e);
    return true;
}

size_t cache_remove_matching(struct cache *c, bool (*match)(const char *key, void *arg),
                             void *arg)
{
    size_t n = 0;
    struct cache_entry *e, *tmp;
    HASH_ITER(hh, c->table, e, tmp) {
        if (match(e->key, arg)) {
            entry_drop(c, e);
            n++;
        }
    }
    return n;
}

size_t cache_expire(struct cache *c, int64_t now_ms)
{
    size_t n = 0;
    struct cache_entry *e, *tmp;
    HASH_ITER(hh, c->table, e, tmp) {
        if (state_at(c, e, age_at(e, now_ms)) == CACHE_MISS) {
            entry_drop(c, e);
            n++;
        }
    }
    c->st.expirations += n;
    return n;
}

void cache_get_stats(const struct cache *c, struct cache_stats *out) { *out = c->st; }

const char *cache_state_str(enum cache_state s)
{
    switch (s) {
    case CACHE_FRESH:
        return "fresh";
    case CACHE_STALE_SWR:
        return "stale-swr";
    case CACHE_STALE_ONLY_IF_ERROR:
        return "stale-if-error";
    case CACHE_MISS:
        break;
    }
    return "miss";
}
