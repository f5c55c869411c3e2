/* redisurl.h - the one place a Redis URL (redis.url, EBSD_REDIS_URL) is read:
 * redis://[user@]host[:port][/db], rediss://... (TLS) and unix:///path. Pure: no I/O. */
#ifndef EBSD_REDISURL_H
#define EBSD_REDISURL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "status.h"

enum redis_url_kind { REDIS_URL_TCP = 0, REDIS_URL_TLS, REDIS_URL_UNIX };

#define REDIS_URL_DEFAULT_PORT 6379
#define REDIS_URL_MAX_DB 65535

struct redis_url {
    enum redis_url_kind kind;
    char host[256];  /* TCP/TLS: a name, an IPv4 address or an IPv6 address without [] */
    uint16_t port;   /* TCP/TLS: 6379 unless given */
    char path[108];  /* UNIX: the socket path (sun_path's size) */
    char user[128];  /* ACL user ("" = the default user) */
    unsigned db;     /* SELECT db; 0 unless given */
};

/* Parses s into *out. EBSD_OK, or EBSD_EINVAL with a reason in why (never echoing a
 * password: a URL that carries one is refused, the password belongs in
 * redis.password_file). *out is set only on success. */
EBSD_MUST_CHECK ebsd_status redis_url_parse(const char *s, struct redis_url *out, char *why,
                                            size_t whylen);

#endif
