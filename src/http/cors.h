/* cors.h - Cross-Origin Resource Sharing for dashboards that run in a browser: which
 * origins may read ebsd's answers (server.cors_origins), the headers a data answer carries,
 * and the answer to a preflight OPTIONS. Pure functions: the caller adds the headers. */
#ifndef EBSD_CORS_H
#define EBSD_CORS_H
#include <stdbool.h>
#include <stddef.h>

/* Most headers any cors_* function hands back. */
#define CORS_MAX_HEADERS 6

/* What a preflight may ask for and how long a browser may remember the answer. */
#define CORS_ALLOW_METHODS "GET, HEAD, OPTIONS"
#define CORS_ALLOW_HEADERS "If-None-Match, Cache-Control, Authorization, X-Request-Id"
#define CORS_EXPOSE_HEADERS "ETag, Age, X-Cache, X-Request-Id"
#define CORS_MAX_AGE "600"

/* One response header. name and value point to static strings or into the arguments given
 * (the request's Origin): valid as long as those are. */
struct cors_header {
    const char *name;
    const char *value;
};

/* True if text is a valid entry of server.cors_origins: "*", or an origin as browsers send
 * it: "http://" or "https://", a lower-case host (DNS name, IPv4, or [IPv6]), an optional
 * ":port" (1..65535), nothing else (no path, no trailing slash). Otherwise *why says what is
 * wrong (static string). */
bool cors_origin_valid(const char *text, const char **why);

/* The Access-Control-Allow-Origin value for a request whose Origin header is origin (NULL if
 * absent) under the configured origins[0..n): "*" when "*" is configured, origin itself when
 * it is listed exactly (byte for byte), else NULL (no CORS headers). */
const char *cors_allow_origin(const char *const *origins, size_t n, const char *origin);

/* Headers for a data answer (any GET/HEAD response, errors and 304 included): with CORS off
 * (n == 0) none; else Access-Control-Allow-Origin and Access-Control-Expose-Headers when the
 * origin is allowed, and "Vary: Origin" whenever the answer depends on Origin (every list
 * without "*"), so a shared cache never hands one origin's answer to another. Returns how
 * many entries of out it filled. */
size_t cors_response_headers(const char *const *origins, size_t n, const char *origin,
                             struct cors_header out[CORS_MAX_HEADERS]);

/* A preflight: OPTIONS with Origin and Access-Control-Request-Method. Returns 0 when the
 * request is not one (CORS off, no Origin, or no Access-Control-Request-Method): the caller
 * answers as for any other method (405 with Allow). Otherwise the status to answer, with
 * *nout headers in out: 204 with Allow-Origin, Allow-Methods, Allow-Headers, Max-Age (and
 * Vary: Origin) when the origin is allowed and the method is GET or HEAD; 403 with only the
 * Vary header when the origin is not allowed or the method is not offered. */
int cors_preflight(const char *const *origins, size_t n, const char *origin,
                   const char *request_method, struct cors_header out[CORS_MAX_HEADERS],
                   size_t *nout);

#endif
