/* realip.h - the client address behind trusted proxies, as nginx's realip module computes it
 * with `real_ip_recursive on`: when the peer is a trusted proxy, X-Forwarded-For is walked
 * from the right, skipping trusted addresses, and the right-most untrusted one is the client. */
#ifndef EBSD_REALIP_H
#define EBSD_REALIP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "status.h"

/* Longest text realip_client writes, NUL included (INET6_ADDRSTRLEN). */
#define REALIP_ADDRSTRLEN 46

/* An IPv4 or IPv6 address, in the family it was written in. IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d, which a dual-stack listener reports for IPv4 peers) stay IPv6 (and print
 * so, as nginx's $remote_addr does) but match IPv4 networks, as ngx_cidr_match does. */
struct realip_addr {
    int family;            /* AF_INET or AF_INET6 */
    uint8_t bytes[16];     /* network order; 4 used for AF_INET */
};

/* One network of server.trusted_proxies. */
struct realip_cidr {
    struct realip_addr net; /* host bits are zero */
    unsigned bits;          /* prefix length: 0..32 or 0..128 */
};

/* Parses "10.0.0.0/8", "fd00::/8", or a single address ("10.1.2.3" = /32, "::1" = /128)
 * with inet_pton. EBSD_EINVAL on anything else (prefix out of range, host bits set, a zone,
 * spaces, a v4-mapped IPv6 network, which never matches: write it as IPv4); *why then says
 * what is wrong (static string). */
EBSD_MUST_CHECK ebsd_status realip_cidr_parse(const char *text, struct realip_cidr *out,
                                              const char **why);

/* Parses an address: IPv4 dotted quad or IPv6 text (inet_pton), nothing around it.
 * EBSD_EINVAL if it is not one. */
EBSD_MUST_CHECK ebsd_status realip_addr_parse(const char *text, size_t len,
                                              struct realip_addr *out);

/* The address of a socket address (AF_INET or AF_INET6).
 * EBSD_EINVAL for other families (a UNIX socket). */
EBSD_MUST_CHECK ebsd_status realip_addr_from_sockaddr(const struct sockaddr *sa,
                                                      struct realip_addr *out);

/* True if addr is inside one of the n networks (families must match; a v4-mapped IPv6
 * address is matched as IPv4). */
bool realip_trusted(const struct realip_cidr *trusted, size_t n, const struct realip_addr *addr);

/* The client address of a request, as nginx's realip module with real_ip_recursive on:
 * peer is the connection's address; xff[0..nxff) are the X-Forwarded-For header values in
 * the order they arrived (NULL entries are skipped). If the peer is not trusted, or there is
 * no header, the peer is the client. Otherwise each header, last first, is walked from the
 * right: every entry ("a.b.c.d", "a.b.c.d:port", IPv6, "[IPv6]:port") becomes the candidate
 * while the current candidate is trusted; the walk stops at the first untrusted candidate, or
 * at a malformed entry (the candidate found so far stays the client), or at the left end
 * (a chain of trusted proxies gives its left-most address). Writes the client's address text
 * (inet_ntop form) into out; returns true if it came from X-Forwarded-For. */
bool realip_client(const struct realip_cidr *trusted, size_t ntrusted,
                   const struct realip_addr *peer, const char *const *xff, size_t nxff,
                   struct realip_addr *client, char out[REALIP_ADDRSTRLEN]);

/* Writes addr as text (inet_ntop) into out. */
void realip_addr_str(const struct realip_addr *addr, char out[REALIP_ADDRSTRLEN]);

#endif
