/* cache.h - the in-process cache of response bodies: bounded in entries and bytes with
 * least-recently-used eviction, O(1) lookups (uthash), per-entry TTL plus cache-wide
 * stale-while-revalidate and stale-if-error windows, and a strong ETag per body.
 * Pure data, single-threaded (the server's event loop is its only user): no locks, no clock
 * reads — every time is passed in, so tests drive it with a fake clock. */
#ifndef EBSD_CACHE_H
#define EBSD_CACHE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "status.h"

/* Bytes of an ETag including its quotes and the NUL: '"' + 32 hex + '"' + '\0'. */
#define CACHE_ETAG_SIZE 35
/* Bytes charged against max_bytes for each entry on top of its key and body (the entry
 * struct, hash handle and allocator slack). Fixed so that byte budgets are predictable. */
#define CACHE_ENTRY_OVERHEAD 256

struct cache;

/* What a lookup finds. With age = now_ms - stored_at_ms:
 *   CACHE_FRESH                age < ttl                    serve it
 *   CACHE_STALE_SWR            ttl <= age < ttl + swr       serve it, refresh in background
 *   CACHE_STALE_ONLY_IF_ERROR  (not the above), age < ttl + sie
 *                                                           fetch; serve it only if the fetch fails
 *   CACHE_MISS                 absent, or older than every window */
enum cache_state {
    CACHE_MISS = 0,
    CACHE_FRESH,
    CACHE_STALE_SWR,
    CACHE_STALE_ONLY_IF_ERROR
};

/* A read-only window on one entry. The pointers point into the cache: they stay valid
 * until the next cache_put, cache_remove, cache_expire or cache_free (cache_lookup and
 * cache_get_stats never free or move an entry's data). Copy what must live longer. */
struct cache_view {
    const char *key;
    const char *body;            /* NUL-terminated for convenience; len excludes the NUL */
    size_t len;
    int status;                  /* 200, or e.g. 404 for a negative-cached answer */
    const char *etag;            /* strong ETag with its quotes: "\"0123...\"" */
    int64_t fetched_at_wall_ms;  /* wall clock, as given to cache_put */
    int64_t stored_at_ms;        /* monotonic, as given to cache_put */
    int64_t ttl_ms;
    int64_t age_ms;              /* now_ms - stored_at_ms at lookup, never negative */
    const char *alt;             /* the representation attached by cache_attach, or NULL */
    size_t alt_len;
};

struct cache_stats {
    size_t entries;
    size_t bytes;                /* keys + bodies + CACHE_ENTRY_OVERHEAD per entry */
    size_t max_entries;
    size_t max_bytes;
    uint64_t hits;               /* lookups that returned CACHE_FRESH */
    uint64_t stale_hits;         /* lookups that returned CACHE_STALE_SWR or _ONLY_IF_ERROR */
    uint64_t misses;             /* lookups that returned CACHE_MISS */
    uint64_t evictions;          /* entries dropped to make room (LRU) */
    uint64_t expirations;        /* entries dropped by cache_expire */
    uint64_t refused;            /* cache_put calls refused as too big */
};

/* Creates an empty cache holding at most max_entries entries and max_bytes bytes; swr_ms
 * and sie_ms are the stale-while-revalidate and stale-if-error windows (>= 0; negative is
 * taken as 0). Never NULL (allocation failure aborts, see mem.h). Caller frees with
 * cache_free. */
struct cache *cache_new(size_t max_entries, size_t max_bytes, int64_t swr_ms, int64_t sie_ms);

/* Frees the cache and every entry. NULL is a no-op. */
void cache_free(struct cache *c);

/* Looks key up at monotonic time now_ms. On any result but CACHE_MISS, fills *out (see
 * struct cache_view for how long it stays valid) and marks the entry most recently used;
 * on CACHE_MISS leaves *out untouched. An entry past every window is not freed here (it is
 * reclaimed by eviction or cache_expire), so earlier views stay valid. */
enum cache_state cache_lookup(struct cache *c, const char *key, int64_t now_ms,
                              struct cache_view *out);

/* Stores a copy of body (len bytes; may be 0) under key (copied), replacing any entry for
 * the key, evicting least-recently-used entries until both bounds hold. status is the HTTP
 * status to replay (100..599), fetched_at_wall_ms when the data was fetched (wall clock),
 * now_ms the monotonic time of storing, ttl_ms >= 0 the freshness lifetime.
 * Returns EBSD_OK; EBSD_EINVAL for a bad argument (cache unchanged); EBSD_ETOOBIG if the
 * entry alone would exceed max_bytes (or max_entries is 0): then nothing is stored and the
 * key's previous entry, superseded by this answer, is removed. */
EBSD_MUST_CHECK ebsd_status cache_put(struct cache *c, const char *key, int status,
                                      const char *body, size_t len, int64_t fetched_at_wall_ms,
                                      int64_t now_ms, int64_t ttl_ms);

/* Attaches alt (len bytes, copied) to key's entry if its ETag is still etag: another
 * representation of the same body computed once by the caller (volumes.c keeps the gzip
 * member of the body there, so a hit never compresses again). Replaces an earlier one; it
 * goes with the entry (a cache_put of the key drops it) and counts in the byte budget, for
 * which least-recently-used entries other than key's are evicted. *stored then points to the
 * cache's copy (valid as a view's pointers are). EBSD_ENOTFOUND if the key has no entry with
 * that ETag (it was replaced or dropped); EBSD_ETOOBIG if it cannot fit: nothing changes. */
EBSD_MUST_CHECK ebsd_status cache_attach(struct cache *c, const char *key, const char *etag,
                                         const void *alt, size_t len, const char **stored);

/* Removes key's entry. Returns true if there was one. */
bool cache_remove(struct cache *c, const char *key);
/* Removes every entry whose key match(key, arg) accepts (O(entries)). Returns how many. */
size_t cache_remove_matching(struct cache *c, bool (*match)(const char *key, void *arg),
                             void *arg);

/* Removes every entry that no window can use any more at now_ms (O(entries); call it from
 * a periodic timer). Returns how many were removed. */
size_t cache_expire(struct cache *c, int64_t now_ms);

/* Copies the counters into *out. */
void cache_get_stats(const struct cache *c, struct cache_stats *out);

/* Writes the strong ETag of body into out: '"' + first 32 hex digits of its SHA-256 + '"'.
 * Usable for bodies that are not cached. */
void cache_etag(const char *body, size_t len, char out[CACHE_ETAG_SIZE]);

/* Returns a static name for a state ("fresh", "stale-swr", "stale-if-error", "miss"). */
const char *cache_state_str(enum cache_state s);

#endif
