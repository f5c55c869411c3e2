/* test_realip.c - the client address behind trusted proxies, case by case against what
 * nginx's realip module (real_ip_recursive on) gives for the same peer and headers. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "harness.h"
#include "realip.h"

static struct realip_cidr trusted[8];
static size_t ntrusted;

static void trust(const char *const *cidrs)
{
    const char *why;
    ntrusted = 0;
    for (; *cidrs; cidrs++) {
        CHECK(realip_cidr_parse(*cidrs, &trusted[ntrusted], &why) == EBSD_OK);
        ntrusted++;
    }
}

/* The client for peer (text) and the headers (NULL-terminated). */
static const char *client_of(const char *peer, const char *const *xff, bool *from_xff)
{
    static char out[REALIP_ADDRSTRLEN];
    struct realip_addr p, c;
    size_t n = 0;
    CHECK(realip_addr_parse(peer, strlen(peer), &p) == EBSD_OK);
    while (xff && xff[n])
        n++;
    bool f = realip_client(trusted, ntrusted, &p, xff, n, &c, out);
    if (from_xff)
        *from_xff = f;
    return out;
}

#define H(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_cidr_parse(void)
{
    struct realip_cidr c;
    const char *why;
    static const char *const good[] = {"10.0.0.0/8", "10.0.0.1", "0.0.0.0/0", "::/0",
                                       "2001:db8::/32", "fd00::/8", "::1", "192.168.1.0/24",
                                       "172.16.0.0/12", "100.64.0.0/10", "10.0.0.0/31"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        harness_current = good[i];
        CHECK(realip_cidr_parse(good[i], &c, &why) == EBSD_OK);
    }
    static const char *const bad[] = {"",           "abc",          "10.0.0.0/33",
                                      "10.1.0.0/8", "10.0.0.0/08",  "10.0.0.0/",
                                      " 10.0.0.0/8", "10.0.0.0/8 ", "fe80::1%eth0",
                                      "::ffff:10.0.0.0/104", "2001:db8::/129", "10.0.0/8",
                                      "010.0.0.0/8", "10.0.0.0/-1", "10.0.0.0/8/8",
                                      "2001:db8::1/32", "1.2.3.4:80", "[::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        harness_current = bad[i];
        CHECK(realip_cidr_parse(bad[i], &c, &why) == EBSD_EINVAL);
        CHECK(why && why[0]);
    }
    harness_current = "test_cidr_parse";
    CHECK(realip_cidr_parse("10.0.0.1", &c, &why) == EBSD_OK);
    CHECK_INT(c.bits, 32);
    CHECK(realip_cidr_parse("::1", &c, &why) == EBSD_OK);
    CHECK_INT(c.bits, 128);
    CHECK_INT(c.net.family, AF_INET6);
}

static void test_cidr_match(void)
{
    trust(H("10.0.0.0/31", "192.168.1.0/24", "2001:db8::/32"));
    struct realip_addr a;
    struct {
        const char *addr;
        bool in;
    } cases[] = {
        {"10.0.0.0", true},      {"10.0.0.1", true},          {"10.0.0.2", false},
        {"192.168.1.255", true}, {"192.168.2.0", false},      {"192.168.0.255", false},
        {"2001:db8::1", true},   {"2001:db8:ffff::1", true},  {"2001:db9::1", false},
        {"::ffff:10.0.0.1", true}, {"::ffff:10.0.0.2", false}, {"::a00:1", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        harness_current = cases[i].addr;
        CHECK(realip_addr_parse(cases[i].addr, strlen(cases[i].addr), &a) == EBSD_OK);
        CHECK(realip_trusted(trusted, ntrusted, &a) == cases[i].in);
    }
    harness_current = "test_cidr_match";
    trust(H("0.0.0.0/0"));
    CHECK(realip_addr_parse("203.0.113.9", 11, &a) == EBSD_OK);
    CHECK(realip_trusted(trusted, ntrusted, &a));
    CHECK(realip_addr_parse("2001:db8::1", 11, &a) == EBSD_OK);
    CHECK(!realip_trusted(trusted, ntrusted, &a)); /* families never cross */
}

static void test_untrusted_peer(void)
{
    bool f = true;
    trust(H(NULL));
    CHECK_STR(client_of("203.0.113.5", H("1.2.3.4"), &f), "203.0.113.5");
    CHECK(!f);
    trust(H("10.0.0.0/8"));
    CHECK_STR(client_of("203.0.113.5", H("1.2.3.4"), &f), "203.0.113.5");
    CHECK(!f);
    /* trusted peer without the header */
    CHECK_STR(client_of("10.1.2.3", NULL, &f), "10.1.2.3");
    CHECK(!f);
}

static void test_walk_ipv4(void)
{
    bool f = false;
    trust(H("10.0.0.0/8"));
    CHECK_STR(client_of("10.0.0.7", H("1.2.3.4"), &f), "1.2.3.4");
    CHECK(f);
    /* proxies in the chain are skipped; the right-most untrusted wins over a spoofed left */
    CHECK_STR(client_of("10.0.0.7", H("1.2.3.4, 10.0.0.5"), NULL), "1.2.3.4");
    CHECK_STR(client_of("10.0.0.7", H("5.5.5.5, 1.2.3.4, 10.0.0.5"), NULL), "1.2.3.4");
    CHECK_STR(client_of("10.0.0.7", H("5.5.5.5, 1.2.3.4, 10.0.0.5, 10.9.9.9"), NULL),
              "1.2.3.4");
    /* every address trusted: the left-most */
    CHECK_STR(client_of("10.0.0.7", H("10.0.0.1, 10.0.0.2"), &f), "10.0.0.1");
    CHECK(f);
    /* separators: spaces, commas, both, repeated, trailing */
    CHECK_STR(client_of("10.0.0.7", H("1.2.3.4,10.0.0.5"), NULL), "1.2.3.4");
    CHECK_STR(client_of("10.0.0.7", H("1.2.3.4 10.0.0.5"), NULL), "1.2.3.4");
    CHECK_STR(client_of("10.0.0.7", H("1.2.3.4 ,  10.0.0.5 , "), NULL), "1.2.3.4");
    CHECK_STR(client_of("10.0.0.7", H("  1.2.3.4,,,10.0.0.5,,  "), NULL), "1.2.3.4");
    /* ports */
    CHECK_STR(client_of("10.0.0.7", H("1.2.3.4:5678"), NULL), "1.2.3.4");
    CHECK_STR(client_of("10.0.0.7", H("1.2.3.4:65535, 10.0.0.5:80"), NULL), "1.2.3.4");
}

static void test_walk_ipv6(void)
{
    trust(H("fd00::/8", "10.0.0.0/8"));
    CHECK_STR(client_of("fd00::1", H("2001:db8::7, fd12::3"), NULL), "2001:db8::7");
    CHECK_STR(client_of("fd00::1", H("[2001:db8::7]:443"), NULL), "2001:db8::7");
    CHECK_STR(client_of("fd00::1", H("2001:DB8:0:0:0:0:0:7"), NULL), "2001:db8::7");
    /* a dual-stack listener reports IPv4 peers v4-mapped; IPv4 networks still match */
    CHECK_STR(client_of("::ffff:10.0.0.9", H("198.51.100.1"), NULL), "198.51.100.1");
    CHECK_STR(client_of("::ffff:203.0.113.9", H("198.51.100.1"), NULL), "::ffff:203.0.113.9");
    /* printed as written, as nginx's $remote_addr; trusted as the IPv4 address it carries */
    CHECK_STR(client_of("10.0.0.9", H("::ffff:198.51.100.1"), NULL), "::ffff:198.51.100.1");
    CHECK_STR(client_of("10.0.0.9", H("1.2.3.4, ::ffff:10.1.1.1"), NULL), "1.2.3.4");
    /* mixed families in one chain */
    CHECK_STR(client_of("10.0.0.9", H("2001:db8::1, fd00::2, 10.1.1.1"), NULL), "2001:db8::1");
}

static void test_garbage(void)
{
    bool f = true;
    trust(H("10.0.0.0/8"));
    /* a malformed right-most entry: nothing found, the peer stays */
    CHECK_STR(client_of("10.0.0.7", H("1.2.3.4, garbage"), &f), "10.0.0.7");
    CHECK(!f);
    /* malformed after a trusted entry: the walk stops at the last good address */
    CHECK_STR(client_of("10.0.0.7", H("1.2.3.4, garbage, 10.0.0.5"), &f), "10.0.0.5");
    CHECK(f);
    static const char *const junk[] = {"", ",", " , ", "unknown", "1.2.3.4:0", "1.2.3.4:70000",
                                       "1.2.3.4:", "1.2.3.4:8x", "[::1]", "[::1]80", "[::1",
                                       "256.1.1.1", "1.2.3", "010.0.0.1", "fe80::1%eth0",
                                       ";1.2.3.4", "1.2.3.4;", "\t", "1.2.3.4\x01",
                                       "1111111111111111111111111111111111111111111111111111111111111111111111"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        harness_current = junk[i];
        CHECK_STR(client_of("10.0.0.7", H(junk[i]), &f), "10.0.0.7");
        CHECK(!f);
    }
    harness_current = "test_garbage";
    /* nginx never looks at index 0 for a separator: a leading comma spoils the first entry */
    CHECK_STR(client_of("10.0.0.7", H(",1.2.3.4"), NULL), "10.0.0.7");
    CHECK_STR(client_of("10.0.0.7", H(",10.0.0.2, 10.0.0.3"), NULL), "10.0.0.3");
    CHECK_STR(client_of("10.0.0.7", H("[::1]:80"), NULL), "::1");
}

static void test_multiple_headers(void)
{
    bool f = false;
    trust(H("10.0.0.0/8"));
    /* the last header is walked first */
    CHECK_STR(client_of("10.0.0.7", H("1.1.1.1", "2.2.2.2, 10.0.0.3"), NULL), "2.2.2.2");
    /* a header of trusted addresses only hands over to the one before it */
    CHECK_STR(client_of("10.0.0.7", H("1.1.1.1", "10.0.0.3"), &f), "1.1.1.1");
    CHECK(f);
    CHECK_STR(client_of("10.0.0.7", H("1.1.1.1, 10.0.0.4", "10.0.0.3"), NULL), "1.1.1.1");
    /* an earlier malformed header keeps what the later one found */
    CHECK_STR(client_of("10.0.0.7", H("garbage", "10.0.0.3"), &f), "10.0.0.3");
    CHECK(f);
    CHECK_STR(client_of("10.0.0.7", H("1.1.1.1", "garbage"), &f), "10.0.0.7");
    CHECK(!f);
    /* all trusted across headers: the left-most of the first header */
    CHECK_STR(client_of("10.0.0.7", H("10.0.0.1, 10.0.0.2", "10.0.0.3"), NULL), "10.0.0.1");
}

static void test_sockaddr(void)
{
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr un = {.sa_family = AF_UNIX};
    struct realip_addr a;
    char out[REALIP_ADDRSTRLEN];
    CHECK(inet_pton(AF_INET6, "::ffff:192.0.2.1", &s6.sin6_addr) == 1);
    CHECK(realip_addr_from_sockaddr((struct sockaddr *)&s6, &a) == EBSD_OK);
    realip_addr_str(&a, out);
    CHECK_STR(out, "::ffff:192.0.2.1");
    CHECK_INT(a.family, AF_INET6);
    CHECK(inet_pton(AF_INET, "192.0.2.2", &s4.sin_addr) == 1);
    CHECK(realip_addr_from_sockaddr((struct sockaddr *)&s4, &a) == EBSD_OK);
    realip_addr_str(&a, out);
    CHECK_STR(out, "192.0.2.2");
    CHECK(realip_addr_from_sockaddr(&un, &a) == EBSD_EINVAL);
    CHECK(realip_addr_from_sockaddr(NULL, &a) == EBSD_EINVAL);
}

TEST_MAIN(T(test_cidr_parse), T(test_cidr_match), T(test_untrusted_peer), T(test_walk_ipv4),
          T(test_walk_ipv6), T(test_garbage), T(test_multiple_headers), T(test_sockaddr))
