/* realip.c - the client address behind trusted proxies, walked exactly as nginx's
 * ngx_http_get_forwarded_addr (src/http/ngx_http_core_module.c) does with real_ip_recursive
 * on, so that ebsd behind nginx, an ALB or an ingress sees the address nginx would log. */
#include "realip.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "mem.h"

/* An address written as text is at most this long; "[v6]:port" adds 8. Longer is garbage. */
#define REALIP_MAX_TOKEN 64

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void set_v6(struct realip_addr *out, const uint8_t b[16])
{
    memset(out, 0, sizeof *out);
    out->family = AF_INET6;
    memcpy(out->bytes, b, 16);
}

static bool is_v4mapped(const struct realip_addr *a)
{
    return a->family == AF_INET6 && memcmp(a->bytes, v4mapped_prefix, sizeof v4mapped_prefix) == 0;
}

ebsd_status realip_addr_parse(const char *text, size_t len, struct realip_addr *out)
{
    char tmp[REALIP_MAX_TOKEN];
    uint8_t b[16];
    if (len == 0 || len >= sizeof tmp || memchr(text, '\0', len))
        return EBSD_EINVAL;
    memcpy(tmp, text, len);
    tmp[len] = '\0';
    if (inet_pton(AF_INET, tmp, b) == 1) {
        memset(out, 0, sizeof *out);
        out->family = AF_INET;
        memcpy(out->bytes, b, 4);
        return EBSD_OK;
    }
    if (inet_pton(AF_INET6, tmp, b) == 1) {
        set_v6(out, b);
        return EBSD_OK;
    }
    return EBSD_EINVAL;
}

ebsd_status realip_addr_from_sockaddr(const struct sockaddr *sa, struct realip_addr *out)
{
    if (!sa)
        return EBSD_EINVAL;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memset(out, 0, sizeof *out);
        out->family = AF_INET;
        memcpy(out->bytes, &in->sin_addr, 4);
        return EBSD_OK;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        set_v6(out, in6->sin6_addr.s6_addr);
        return EBSD_OK;
    }
    return EBSD_EINVAL;
}

/* True if the first bits of a and b agree. */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

ebsd_status realip_cidr_parse(const char *text, struct realip_cidr *out, const char **why)
{
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    struct realip_cidr c;
    *why = "";
    if (realip_addr_parse(text, alen, &c.net) != EBSD_OK) {
        *why = "is not an IPv4 or IPv6 address or CIDR (like 10.0.0.0/8 or fd00::/8)";
        return EBSD_EINVAL;
    }
    /* nginx matches a v4-mapped address against IPv4 networks only, so a v4-mapped IPv6
     * network ("::ffff:10.0.0.0/104") would never match anything: say so. */
    unsigned max = c.net.family == AF_INET ? 32 : 128;
    if (is_v4mapped(&c.net)) {
        *why = "is an IPv4-mapped IPv6 network: write it as IPv4 (v4-mapped peers match IPv4 "
               "networks)";
        return EBSD_EINVAL;
    }
    c.bits = max;
    if (slash) {
        const char *p = slash + 1;
        unsigned v = 0;
        size_t nd = 0;
        for (; *p >= '0' && *p <= '9' && nd < 4; p++, nd++)
            v = v * 10 + (unsigned)(*p - '0');
        if (nd == 0 || *p != '\0' || v > max || (nd > 1 && slash[1] == '0')) {
            *why = c.net.family == AF_INET ? "has a prefix length that is not 0..32"
                                           : "has a prefix length that is not 0..128";
            return EBSD_EINVAL;
        }
        c.bits = v;
    }
    /* Host bits set ("10.1.2.3/8") is almost always a typo for another network; nginx masks
     * them with a warning, ebsd refuses the file so the mistake is seen. */
    struct realip_addr masked = c.net;
    unsigned whole = c.bits / 8, rest = c.bits % 8, nbytes = max / 8;
    if (whole < nbytes) {
        if (rest)
            masked.bytes[whole] &= (uint8_t)(0xff << (8 - rest));
        else
            masked.bytes[whole] = 0;
        memset(masked.bytes + whole + 1, 0, nbytes - whole - 1);
    }
    if (memcmp(masked.bytes, c.net.bytes, nbytes) != 0) {
        *why = "has host bits set after the prefix (write the network address)";
        return EBSD_EINVAL;
    }
    *out = c;
    return EBSD_OK;
}

bool realip_trusted(const struct realip_cidr *trusted, size_t n, const struct realip_addr *addr)
{
    struct realip_addr v4;
    if (is_v4mapped(addr)) {
        /* ngx_cidr_match: a v4-mapped address is matched as the IPv4 address it carries */
        memset(&v4, 0, sizeof v4);
        v4.family = AF_INET;
        memcpy(v4.bytes, addr->bytes + 12, 4);
        addr = &v4;
    }
    for (size_t i = 0; i < n; i++)
        if (trusted[i].net.family == addr->family &&
            prefix_equal(trusted[i].net.bytes, addr->bytes, trusted[i].bits))
            return true;
    return false;
}

void realip_addr_str(const struct realip_addr *addr, char out[REALIP_ADDRSTRLEN])
{
    if (!inet_ntop(addr->family, addr->bytes, out, REALIP_ADDRSTRLEN))
        str_copy(out, REALIP_ADDRSTRLEN, "?");
}

/* ngx_parse_addr_port: an address, "IPv4:port", or "[IPv6]:port" (port 1..65535, digits). */
static bool parse_addr_port(const char *t, size_t len, struct realip_addr *out)
{
    if (realip_addr_parse(t, len, out) == EBSD_OK)
        return true;
    const char *last = t + len, *colon;
    if (len && t[0] == '[') {
        const char *rb = memchr(t, ']', len);
        if (!rb || rb == last - 1 || rb[1] != ':')
            return false;
        colon = rb + 1;
        t++;
        len -= 2;
    } else {
        colon = memchr(t, ':', len);
        if (!colon)
            return false;
    }
    const char *p = colon + 1;
    size_t plen = (size_t)(last - p);
    unsigned port = 0;
    if (plen == 0 || plen > 5)
        return false;
    for (size_t i = 0; i < plen; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        port = port * 10 + (unsigned)(p[i] - '0');
    }
    if (port < 1 || port > 65535)
        return false;
    len -= plen + 1;
    return realip_addr_parse(t, len, out) == EBSD_OK;
}

enum walk_rc { WALK_OK, WALK_DONE, WALK_DECLINED };

static bool is_sep(char c)
{
    return c == ' ' || c == ',';
}

/* ngx_http_get_forwarded_addr_internal, recursive, index for pointer: one header value. */
static enum walk_rc walk_one(const struct realip_cidr *trusted, size_t ntrusted,
                             struct realip_addr *cand, const char *xff, size_t xfflen)
{
    bool found = false;
    for (;;) {
        if (!realip_trusted(trusted, ntrusted, cand))
            return found ? WALK_DONE : WALK_DECLINED;
        if (xfflen == 0)
            return found ? WALK_DONE : WALK_DECLINED;
        /* Like nginx, the scans below never look at index 0 as a separator: a value that
         * starts with "," or " " leaves it in the left-most entry, which then fails. */
        size_t p = xfflen - 1;
        for (; p > 0; p--, xfflen--)
            if (!is_sep(xff[p]))
                break;
        for (; p > 0; p--)
            if (is_sep(xff[p])) {
                p++;
                break;
            }
        struct realip_addr a;
        if (!parse_addr_port(xff + p, xfflen - p, &a))
            return found ? WALK_DONE : WALK_DECLINED;
        *cand = a;
        found = true;
        if (p == 0)
            return WALK_OK;
        xfflen = p - 1;
    }
}

bool realip_client(const struct realip_cidr *trusted, size_t ntrusted,
                   const struct realip_addr *peer, const char *const *xff, size_t nxff,
                   struct realip_addr *client, char out[REALIP_ADDRSTRLEN])
{
    struct realip_addr cand = *peer;
    bool found_any = false;
    enum walk_rc rc = WALK_DECLINED;
    /* The realip module looks at the peer first; then every header, last first. */
    if (ntrusted > 0 && realip_trusted(trusted, ntrusted, peer)) {
        for (size_t i = nxff; i-- > 0;) {
            const char *v = xff[i];
            if (!v)
                continue;
            /* An HTTP parser hands header values without surrounding whitespace. */
            size_t len = strlen(v);
            while (len && (*v == ' ' || *v == '\t')) {
                v++;
                len--;
            }
            while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
                len--;
            rc = walk_one(trusted, ntrusted, &cand, v, len);
            if (rc == WALK_DECLINED && found_any) {
                rc = WALK_DONE;
                break;
            }
            if (rc != WALK_OK)
                break;
            found_any = true;
        }
    }
    bool from_xff = rc != WALK_DECLINED;
    if (!from_xff)
        cand = *peer;
    if (client)
        *client = cand;
    realip_addr_str(&cand, out);
    return from_xff;
}
