/* page.h - the human page at GET / (Accept: text/html): one self-contained HTML document
 * with the totals per account and region, a bar chart of storage by volume type (inline
 * SVG), unattached storage and the age of the data. No script and no external asset; the
 * only inline style is allowed by its SHA-256 hash in a strict Content-Security-Policy.
 * The browser's own reload (and a <meta http-equiv="refresh">) keeps it current. */
#ifndef EBSD_PAGE_H
#define EBSD_PAGE_H
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "status.h"

#define PAGE_CONTENT_TYPE "text/html; charset=utf-8"
#define PAGE_MAX_TARGETS 1024 /* accounts x regions a page shows */
#define PAGE_MAX_TYPES 32     /* volume types per target (EC2 has 8) */
#define PAGE_MAX_BYTES (8u * 1024 * 1024)
#define PAGE_DEFAULT_REFRESH_S 60

/* GiB of one volume type. */
struct page_type_gib {
    char type[32];
    double gib;
};

/* One target's latest answer, as the page shows it. */
struct page_target {
    char account[64];          /* "123456789012" or a configured name */
    char region[32];           /* "us-east-1" */
    double total_gib;          /* attached storage, each volume once */
    uint64_t instance_count;
    uint64_t volume_count;
    struct page_type_gib by_type[PAGE_MAX_TYPES];
    size_t ntypes;
    double unattached_gib;     /* < 0: unknown (not fetched) */
    double age_s;              /* age of the data in seconds; < 0: no data yet */
    char error[256];           /* "" or why the latest fetch failed (shown escaped) */
};

/* What the page shows. Filled by page_input_from_json (or by the server directly). */
struct page_input {
    struct page_target *targets; /* owned; page_input_free frees */
    size_t ntargets;
    char generated_at[40];     /* "2026-12-02T17:00:00Z" or "" */
    unsigned refresh_s;        /* meta refresh; 0 = none; default PAGE_DEFAULT_REFRESH_S */
};

/* Reads the page's input from a JSON object:
 *   {"generated_at": "...", "refresh_s": 60,
 *    "targets": [{"account": "...", "region": "...", "total_gib": N, "instance_count": N,
 *                 "volume_count": N, "by_type": {"gp3": N, ...}, "unattached_gib": N,
 *                 "age_s": N, "error": "..."}]}
 * account, region and total_gib are required per target; counts default to 0,
 * unattached_gib and age_s to -1 (unknown), by_type to empty. Strings longer than their
 * field are an error, not cut. On success caller frees with page_input_free; on failure
 * (EBSD_EINVAL, EBSD_ETOOBIG) nothing to free and why (whysz bytes) says what is wrong. */
EBSD_MUST_CHECK ebsd_status page_input_from_json(const cJSON *obj, struct page_input *out,
                                                 char *why, size_t whysz);

void page_input_free(struct page_input *in);

/* Appends to targets (a cJSON array) one target in page_input_from_json's shape, from the
 * latest cached GET /volumes/total answer of (account, region): body[0..len) is that
 * answer's JSON (total_gib, instance_count, volume_count; by_type when the answer has it),
 * age_s its age. body NULL (no answer yet) or unreadable: the target without age_s (no data:
 * total_gib 0) and, when unreadable, an error. Never starts a fetch: the caller only reads the cache. */
void page_target_from_answer(cJSON *targets, const char *account, const char *region,
                             const char *body, size_t len, double age_s);

/* Renders the page into out, which this initialises with a PAGE_MAX_BYTES cap (caller frees
 * with buf_free or takes it with buf_steal). Every text from the input is HTML-escaped.
 * EBSD_ETOOBIG if the page would pass the cap. */
EBSD_MUST_CHECK ebsd_status page_render(const struct page_input *in, struct buf *out);

/* The Content-Security-Policy header value to send with the page: default-src 'none', the
 * page's one inline style allowed by its sha256 hash, no base, no forms, no framing.
 * Static storage, computed on first call (OpenSSL SHA-256 of the style the page embeds). */
const char *page_csp(void);

/* True if a request with this Accept header (NULL if absent) should get the HTML page rather
 * than JSON: text/html is listed explicitly with q > 0, and above the q application/json
 * gets (explicitly, else through application/(any) or (any)/(any)), or equal to it when
 * application/json is not named (a tie named by the client goes to JSON). Browsers send "text/html,...,(any)/(any);q=0.8" and
 * get the page; curl sends "(any)/(any)" and keeps getting JSON. */
bool page_wants_html(const char *accept);

#endif
