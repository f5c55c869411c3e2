/* route.h - ebsd's routing and query validation as pure functions (no request, no
 * libmicrohttpd): which route a decoded path names, and the query string of a data route
 * decoded and checked the way server.c (on_request) and volumes.c (volumes_handle) do it.
 * api.c routes with route_match (telemetry.c labels metrics with it and route_label),
 * server.c decodes with route_unescape and checks the URL with route_query_add and
 * route_query_verdict, volumes.c collects and checks parameters with route_params_set and
 * route_check_params; route_parse_query splits a raw query as libmicrohttpd does and runs
 * those same functions, for the tests and tests/fuzz/fuzz_route.c. */
#ifndef EBSD_ROUTE_H
#define EBSD_ROUTE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "status.h"

enum route {
    ROUTE_NONE = 0,  /* 404 */
    ROUTE_HEALTH,    /* /healthz */
    ROUTE_READY,     /* /readyz */
    ROUTE_SPEC,      /* /openapi.yaml */
    ROUTE_METRICS,   /* /metrics */
    ROUTE_TOTAL,     /* /volumes/total */
    ROUTE_INSTANCE,  /* /instances/{id}/volumes */
    ROUTE_HOME,      /* / (the page for browsers, JSON otherwise) */
    ROUTE_UNATTACHED, /* /volumes/unattached */
    ROUTE_ACCOUNTS   /* /accounts (issue 16) */
};

/* group_by may be given up to ROUTE_MAX_GROUPS times (the one repeatable parameter); a tag
 * key in instance_tag:NAME / volume_tag:NAME is 1 to ROUTE_MAX_TAG_KEY bytes (what a worker
 * record holds, wire.h). /volumes/unattached's limit is 1 to ROUTE_MAX_LIMIT, by default
 * ROUTE_DEFAULT_LIMIT. */
#define ROUTE_MAX_GROUPS 2
#define ROUTE_MAX_TAG_KEY 63
#define ROUTE_MAX_LIMIT 100
#define ROUTE_DEFAULT_LIMIT 10

/* Longest instance id segment routed (api.c's idbuf); a longer one is ROUTE_NONE. */
#define ROUTE_ID_MAX 64
/* Longest query (keys plus values, 2 bytes each for '=' and '&') and most parameters, as
 * server.c's SERVER_MAX_URL and SERVER_MAX_PARAMS. */
#define ROUTE_MAX_QUERY 4096u
#define ROUTE_MAX_PARAMS 32u
/* Longest raw query taken (each decoded byte may be a 3-byte escape). */
#define ROUTE_MAX_RAW_QUERY (3 * ROUTE_MAX_QUERY)

/* The route of an already percent-decoded path. For ROUTE_INSTANCE the id segment (not
 * yet validated: the caller answers 400 when ec2_instance_id_valid says no) is copied into
 * instance_id_out, which must hold len bytes; an id that does not fit (or is ROUTE_ID_MAX
 * bytes or longer) gives ROUTE_NONE. instance_id_out is only written for ROUTE_INSTANCE. */
enum route route_match(const char *path, char *instance_id_out, size_t len);
/* The route's label in metrics: its path ("/instances/{id}/volumes" for ROUTE_INSTANCE),
 * "other" for ROUTE_NONE. */
const char *route_label(enum route r);

/* ebsd's percent-decoder, in place (libmicrohttpd's unescape callback): "%XX" becomes the
 * byte, except "%00", which becomes DEL (0x7f) so that route_printable rejects it instead of
 * the string being cut; a malformed escape stays as it is. Returns the new length. */
size_t route_unescape(char *s);

/* Whether s is printable ASCII (0x20..0x7e) throughout: decoded paths, keys and values
 * must be. */
bool route_printable(const char *s);

/* The URL checks of the request path, fed one parameter at a time (as libmicrohttpd hands
 * them out): the length of path, keys and values, printable ASCII, the parameter count and
 * a key given twice (group_by excepted: it repeats). Keys are not copied: they must outlive the check. */
struct route_query {
    size_t len;                /* path plus keys and values (2 bytes each for '=' and '&') */
    bool bad;                  /* a byte outside printable ASCII */
    unsigned nparams;
    const char *keys[ROUTE_MAX_PARAMS];
    const char *dup;           /* a key given twice */
};
/* Starts the check of a URL whose decoded path is path (NULL: the query alone). */
void route_query_init(struct route_query *q, const char *path);
/* Counts one decoded parameter (value NULL for "?k"). */
void route_query_add(struct route_query *q, const char *key, const char *value);
/* The verdict after the length (which the caller compares with its cap first: 414, and the
 * header size, 431, comes in between): EBSD_OK, or EBSD_EINVAL (400) with the error code of
 * the answer in code ("InvalidRequest", "InvalidParameter") and its message in err, for, in
 * this order, a byte outside printable ASCII, more than ROUTE_MAX_PARAMS parameters, or a
 * key given twice. */
EBSD_MUST_CHECK ebsd_status route_query_verdict(const struct route_query *q, char *code,
                                                size_t codelen, char *err, size_t errlen);

/* The parameters of a data route. Values point into storage (route_parse_query: the
 * struct must not be copied; valid while it lives) or at the strings given to
 * route_params_set. NULL when the parameter was not given; "" for "?k" or
 * "?k=". */
struct route_params {
    const char *region, *detail, *mode, *timeout_ms, *limit;
    const char *group_by[ROUTE_MAX_GROUPS];   /* in query order */
    unsigned ngroup;
    const char *account; /* issue 16: a configured account's name, or "all" */
    char storage[ROUTE_MAX_RAW_QUERY + 1];
};

/* Clears the parameters of p (storage is left alone). */
void route_params_init(struct route_params *p);

/* Sets the data-route parameter key of p to value, which is not copied (it must outlive
 * p's use). EBSD_OK; EBSD_EINVAL (400) for a key that is not a parameter of the data routes
 * ("unknown query parameter") or one already set, with the message of the answer in err. */
EBSD_MUST_CHECK ebsd_status route_params_set(struct route_params *p, const char *key,
                                             const char *value, char *err, size_t errlen);

/* Decodes a raw query string (what follows '?'; NULL or "" for none) as libmicrohttpd does
 * ('&' separates, the first '=' splits, '+' is a space, then ebsd's percent-decoding: "%00"
 * becomes DEL, a malformed escape stays as it is), then applies the request path's checks
 * (route_query_add and route_query_verdict, after the length) and volumes.c's collection
 * (route_params_set: unknown key, in query order). EBSD_OK with *out filled; EBSD_ETOOBIG (414) when longer
 * than ROUTE_MAX_QUERY once decoded (or ROUTE_MAX_RAW_QUERY raw); the path is not counted
 * here, as server.c counts it; EBSD_EINVAL (400) otherwise; err holds the message of the answer. */
EBSD_MUST_CHECK ebsd_status route_parse_query(const char *raw_query, struct route_params *out,
                                              char *err, size_t errlen);

/* Whether key is a group_by key: volume_type, availability_zone, instance_state,
 * instance_type, instance_tag:NAME or volume_tag:NAME (NAME 1..ROUTE_MAX_TAG_KEY bytes). */
bool route_group_key_valid(const char *key);
/* volumes_handle's value checks for route (ROUTE_TOTAL, ROUTE_INSTANCE or ROUTE_UNATTACHED),
 * in its order: region allowed by cfg or "all" (400 InvalidRegion), account configured or "all" (400
 * InvalidAccount), a region the account has (400 InvalidRegion), "all" only on /volumes/total
 * and /volumes/unattached (400 InvalidParameter), detail/mode/group_by only on
 * /volumes/total, limit only on /volumes/unattached, detail is "instances", mode is
 * "parallel" or "sequential", each group_by key valid (the message names it) and not given
 * twice, limit a whole number from 1 to ROUTE_MAX_LIMIT, timeout_ms a whole number from 1 to
 * cfg->max_timeout_ms. EBSD_OK, or EBSD_EINVAL with the error code of the answer in code
 * ("InvalidRegion", "InvalidParameter"; codelen bytes) and its message in err. */
EBSD_MUST_CHECK ebsd_status route_check_params(enum route r, const struct route_params *p,
                                               const struct config *cfg, char *code,
                                               size_t codelen, char *err, size_t errlen);
#endif
