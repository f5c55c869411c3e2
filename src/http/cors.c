/* cors.c - decides the CORS headers of an answer and the answer to a preflight, from
 * server.cors_origins. Origins are compared byte for byte, as the Fetch standard compares a
 * response's Access-Control-Allow-Origin with the request's origin. */
#include "cors.h"

#include <string.h>

#define CORS_MAX_ORIGIN 512 /* scheme + host (253) + port, with room to spare */

static bool is_lower_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

bool cors_origin_valid(const char *text, const char **why)
{
    *why = "";
    if (strcmp(text, "*") == 0)
        return true;
    size_t len = strlen(text);
    if (len > CORS_MAX_ORIGIN) {
        *why = "is longer than an origin can be";
        return false;
    }
    const char *p;
    if (strncmp(text, "https://", 8) == 0)
        p = text + 8;
    else if (strncmp(text, "http://", 7) == 0)
        p = text + 7;
    else {
        *why = "is not \"*\" or an origin starting with http:// or https://";
        return false;
    }
    const char *host = p;
    if (*p == '[') {
        /* an IPv6 literal: hex digits, colons and dots, lower case */
        for (p++; *p && *p != ']'; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == ':' ||
                  *p == '.')) {
                *why = "has an IPv6 host with characters other than lower-case hex, ':' and '.'";
                return false;
            }
        if (*p != ']' || p == host + 1) {
            *why = "has an unterminated or empty [IPv6] host";
            return false;
        }
        p++;
    } else {
        for (; *p && *p != ':'; p++)
            if (!is_lower_host_char(*p)) {
                *why = *p == '/' ? "has a path or trailing slash (an origin is scheme://host[:port])"
                                 : "has a host with characters other than a-z, 0-9, '-' and '.' "
                                   "(browsers send hosts in lower case)";
                return false;
            }
        if (p == host) {
            *why = "has no host";
            return false;
        }
    }
    if (*p == ':') {
        unsigned port = 0;
        size_t nd = 0;
        for (p++; *p >= '0' && *p <= '9' && nd < 6; p++, nd++)
            port = port * 10 + (unsigned)(*p - '0');
        if (nd == 0 || nd > 5 || port < 1 || port > 65535 || *p) {
            *why = *p == '/' ? "has a path or trailing slash (an origin is scheme://host[:port])"
                             : "has a port that is not 1..65535";
            return false;
        }
    }
    if (*p) {
        *why = "has a path or trailing slash (an origin is scheme://host[:port])";
        return false;
    }
    return true;
}

static bool has_star(const char *const *origins, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(origins[i], "*") == 0)
            return true;
    return false;
}

const char *cors_allow_origin(const char *const *origins, size_t n, const char *origin)
{
    if (n == 0)
        return NULL;
    if (has_star(origins, n))
        return "*";
    if (!origin || !*origin)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(origins[i], origin) == 0)
            return origin;
    return NULL;
}

size_t cors_response_headers(const char *const *origins, size_t n, const char *origin,
                             struct cors_header out[CORS_MAX_HEADERS])
{
    size_t k = 0;
    if (n == 0)
        return 0;
    const char *allow = cors_allow_origin(origins, n, origin);
    if (allow) {
        out[k++] = (struct cors_header){"Access-Control-Allow-Origin", allow};
        out[k++] = (struct cors_header){"Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS};
    }
    /* With "*" the answer is the same for every origin; otherwise it depends on Origin,
     * even when this one gets no header (the next origin may). */
    if (!has_star(origins, n))
        out[k++] = (struct cors_header){"Vary", "Origin"};
    return k;
}

int cors_preflight(const char *const *origins, size_t n, const char *origin,
                   const char *request_method, struct cors_header out[CORS_MAX_HEADERS],
                   size_t *nout)
{
    size_t k = 0;
    *nout = 0;
    if (n == 0 || !origin || !*origin || !request_method || !*request_method)
        return 0;
    bool star = has_star(origins, n);
    if (!star)
        out[k++] = (struct cors_header){"Vary", "Origin"};
    const char *allow = cors_allow_origin(origins, n, origin);
    /* Methods are case-sensitive tokens (RFC 9110); browsers upper-case GET and HEAD. */
    bool method_ok = strcmp(request_method, "GET") == 0 || strcmp(request_method, "HEAD") == 0;
    if (!allow || !method_ok) {
        *nout = k;
        return 403;
    }
    out[k++] = (struct cors_header){"Access-Control-Allow-Origin", allow};
    out[k++] = (struct cors_header){"Access-Control-Allow-Methods", CORS_ALLOW_METHODS};
    out[k++] = (struct cors_header){"Access-Control-Allow-Headers", CORS_ALLOW_HEADERS};
    out[k++] = (struct cors_header){"Access-Control-Max-Age", CORS_MAX_AGE};
    *nout = k;
    return 204;
}
