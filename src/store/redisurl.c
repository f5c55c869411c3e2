/* redisurl.c - parses the Redis URL forms ebsd accepts (see src/store/redisurl.h). Strict:
 * anything not in the documented grammar is refused, so a typo is a config error rather
 * than a connection to somewhere unexpected. */
#include "redisurl.h"

#include <stdio.h>
#include <string.h>

#include "mem.h"

static ebsd_status bad(char *why, size_t whylen, const char *msg)
{
    str_copy(why, whylen, msg);
    return EBSD_EINVAL;
}

/* Digits only, value <= max; no sign, no leading '+', no empty string. */
static bool parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
        if (v > max)
            return false;
    }
    *out = v;
    return true;
}

static bool host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

static bool user_char_ok(char c)
{
    /* RFC 3986 unreserved plus a few sub-delims; ACL user names are plain words. */
    return host_char_ok(c) || c == '~' || c == '+' || c == '!' || c == '$' || c == '*';
}

ebsd_status redis_url_parse(const char *s, struct redis_url *out, char *why, size_t whylen)
{
    struct redis_url u;
    memset(&u, 0, sizeof u);
    if (!s || !*s)
        return bad(why, whylen, "is empty");
    if (strchr(s, '?') || strchr(s, '#'))
        return bad(why, whylen, "has a query or fragment; none is supported");
    const char *p;
    if (strncmp(s, "unix://", 7) == 0) {
        p = s + 7;
        if (p[0] != '/')
            return bad(why, whylen, "needs an absolute socket path: unix:///path");
        if (strlen(p) >= sizeof u.path)
            return bad(why, whylen, "socket path is longer than 107 bytes");
        for (const char *q = p; *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                return bad(why, whylen, "socket path has a control character");
        u.kind = REDIS_URL_UNIX;
        str_copy(u.path, sizeof u.path, p);
        *out = u;
        return EBSD_OK;
    }
    if (strncmp(s, "redis://", 8) == 0) {
        u.kind = REDIS_URL_TCP;
        p = s + 8;
    } else if (strncmp(s, "rediss://", 9) == 0) {
        u.kind = REDIS_URL_TLS;
        p = s + 9;
    } else {
        return bad(why, whylen, "must start with redis://, rediss:// or unix://");
    }
    /* authority ends at the first '/' */
    const char *slash = strchr(p, '/');
    size_t alen = slash ? (size_t)(slash - p) : strlen(p);
    const char *at = memchr(p, '@', alen);
    if (at) {
        size_t ulen = (size_t)(at - p);
        if (memchr(p, ':', ulen))
            return bad(why, whylen, "carries a password; put it in redis.password_file");
        if (ulen == 0 || ulen >= sizeof u.user)
            return bad(why, whylen, "has an empty or overlong user name");
        for (size_t i = 0; i < ulen; i++)
            if (!user_char_ok(p[i]))
                return bad(why, whylen, "user name has a character outside [A-Za-z0-9-._~+!$*]");
        memcpy(u.user, p, ulen);
        alen -= ulen + 1;
        p = at + 1;
    }
    const char *host = p, *hend;
    const char *rest;
    if (alen > 0 && host[0] == '[') {
        const char *close = memchr(host, ']', alen);
        if (!close)
            return bad(why, whylen, "has an unclosed [ in the host");
        host++;
        hend = close;
        rest = close + 1;
        for (const char *q = host; q < hend; q++)
            if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') ||
                  (*q >= 'A' && *q <= 'F') || *q == ':' || *q == '.'))
                return bad(why, whylen, "has an invalid IPv6 address");
    } else {
        hend = host;
        while (hend < p + alen && *hend != ':')
            hend++;
        rest = hend;
        for (const char *q = host; q < hend; q++)
            if (!host_char_ok(*q))
                return bad(why, whylen, "host has a character outside [A-Za-z0-9-._]");
    }
    size_t hlen = (size_t)(hend - host);
    if (hlen == 0)
        return bad(why, whylen, "has no host");
    if (hlen >= sizeof u.host)
        return bad(why, whylen, "host is longer than 255 bytes");
    memcpy(u.host, host, hlen);
    u.port = REDIS_URL_DEFAULT_PORT;
    const char *aend = p + alen;
    if (rest < aend) {
        unsigned long port;
        if (*rest != ':' || !parse_uint(rest + 1, (size_t)(aend - rest - 1), 65535, &port) ||
            port == 0)
            return bad(why, whylen, "port is not a number in 1..65535");
        u.port = (uint16_t)port;
    }
    if (slash && slash[1]) {
        unsigned long db;
        if (!parse_uint(slash + 1, strlen(slash + 1), REDIS_URL_MAX_DB, &db))
            return bad(why, whylen, "database is not a number in 0..65535");
        u.db = (unsigned)db;
    }
    *out = u;
    return EBSD_OK;
}
