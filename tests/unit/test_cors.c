/* test_cors.c - CORS decisions: which origin is allowed, Vary, exposed headers, preflights,
 * and which server.cors_origins entries are valid. */
#include "cors.h"
#include "harness.h"

/* The value of header name among out[0..n), or NULL. */
static const char *hdr(const struct cors_header *out, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(out[i].name, name) == 0)
            return out[i].value;
    return NULL;
}

static void test_origin_valid(void)
{
    const char *why;
    static const char *const good[] = {"*", "https://grafana.example.com", "http://localhost:3000",
                                       "http://127.0.0.1:8080", "https://[::1]:8443",
                                       "https://a-b.c0.example", "http://x:65535"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        harness_current = good[i];
        CHECK(cors_origin_valid(good[i], &why));
    }
    static const char *const bad[] = {"",
                                      "**",
                                      "null",
                                      "grafana.example.com",
                                      "https://",
                                      "https://Grafana.example.com",
                                      "https://grafana.example.com/",
                                      "https://grafana.example.com/d/x",
                                      "ftp://x.example",
                                      "https://x:0",
                                      "https://x:65536",
                                      "https://x:",
                                      "https://x:80/",
                                      "https://[::1",
                                      "https://[]",
                                      "https://[::G]",
                                      "https://a b",
                                      "https://user@host",
                                      "https://x.example?q",
                                      " https://x.example"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        harness_current = bad[i];
        why = NULL;
        CHECK(!cors_origin_valid(bad[i], &why));
        CHECK(why && why[0]);
    }
}

static void test_off(void)
{
    struct cors_header out[CORS_MAX_HEADERS];
    size_t n = 99;
    CHECK(cors_allow_origin(NULL, 0, "https://a.example") == NULL);
    CHECK_INT(cors_response_headers(NULL, 0, "https://a.example", out), 0);
    CHECK_INT(cors_preflight(NULL, 0, "https://a.example", "GET", out, &n), 0);
    CHECK_INT(n, 0);
}

static void test_exact_list(void)
{
    const char *const origins[] = {"https://grafana.example.com", "http://localhost:3000"};
    struct cors_header out[CORS_MAX_HEADERS];
    size_t n = cors_response_headers(origins, 2, "http://localhost:3000", out);
    CHECK_INT(n, 3);
    CHECK_STR(hdr(out, n, "Access-Control-Allow-Origin"), "http://localhost:3000");
    CHECK_STR(hdr(out, n, "Access-Control-Expose-Headers"), "ETag, Age, X-Cache, X-Request-Id");
    CHECK_STR(hdr(out, n, "Vary"), "Origin");
    /* exact, byte for byte: another port, scheme, case or a trailing slash is another origin */
    static const char *const others[] = {"http://localhost:3001", "https://localhost:3000",
                                         "https://GRAFANA.example.com",
                                         "https://grafana.example.com/", "null", ""};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        harness_current = others[i];
        n = cors_response_headers(origins, 2, others[i], out);
        CHECK_INT(n, 1);
        CHECK_STR(hdr(out, n, "Vary"), "Origin"); /* the answer still depends on Origin */
        CHECK(hdr(out, n, "Access-Control-Allow-Origin") == NULL);
    }
    harness_current = "test_exact_list";
    n = cors_response_headers(origins, 2, NULL, out);
    CHECK_INT(n, 1);
    CHECK_STR(hdr(out, n, "Vary"), "Origin");
}

static void test_star(void)
{
    const char *const origins[] = {"https://grafana.example.com", "*"};
    struct cors_header out[CORS_MAX_HEADERS];
    size_t n = cors_response_headers(origins, 2, "https://anything.example", out);
    CHECK_INT(n, 2);
    CHECK_STR(hdr(out, n, "Access-Control-Allow-Origin"), "*");
    CHECK(hdr(out, n, "Vary") == NULL); /* the same answer for every origin */
    n = cors_response_headers(origins + 1, 1, NULL, out);
    CHECK_STR(hdr(out, n, "Access-Control-Allow-Origin"), "*");
    CHECK_STR(cors_allow_origin(origins, 2, "https://grafana.example.com"), "*");
}

static void test_preflight(void)
{
    const char *const origins[] = {"https://grafana.example.com"};
    struct cors_header out[CORS_MAX_HEADERS];
    size_t n;
    CHECK_INT(cors_preflight(origins, 1, "https://grafana.example.com", "GET", out, &n), 204);
    CHECK_INT(n, 5);
    CHECK_STR(hdr(out, n, "Access-Control-Allow-Origin"), "https://grafana.example.com");
    CHECK_STR(hdr(out, n, "Access-Control-Allow-Methods"), "GET, HEAD, OPTIONS");
    CHECK_STR(hdr(out, n, "Access-Control-Allow-Headers"),
              "If-None-Match, Cache-Control, Authorization, X-Request-Id");
    CHECK_STR(hdr(out, n, "Access-Control-Max-Age"), "600");
    CHECK_STR(hdr(out, n, "Vary"), "Origin");
    CHECK_INT(cors_preflight(origins, 1, "https://grafana.example.com", "HEAD", out, &n), 204);
    /* not offered: other methods, lower-case method names, other origins */
    CHECK_INT(cors_preflight(origins, 1, "https://grafana.example.com", "POST", out, &n), 403);
    CHECK_INT(n, 1);
    CHECK(hdr(out, n, "Access-Control-Allow-Origin") == NULL);
    CHECK_INT(cors_preflight(origins, 1, "https://grafana.example.com", "get", out, &n), 403);
    CHECK_INT(cors_preflight(origins, 1, "https://evil.example", "GET", out, &n), 403);
    CHECK(hdr(out, n, "Access-Control-Allow-Methods") == NULL);
    /* not a preflight: no Origin, or no Access-Control-Request-Method */
    CHECK_INT(cors_preflight(origins, 1, NULL, "GET", out, &n), 0);
    CHECK_INT(cors_preflight(origins, 1, "https://grafana.example.com", NULL, out, &n), 0);
    CHECK_INT(cors_preflight(origins, 1, "https://grafana.example.com", "", out, &n), 0);
    CHECK_INT(n, 0);
    /* "*": no Vary */
    const char *const star[] = {"*"};
    CHECK_INT(cors_preflight(star, 1, "https://x.example", "GET", out, &n), 204);
    CHECK_INT(n, 4);
    CHECK_STR(hdr(out, n, "Access-Control-Allow-Origin"), "*");
    CHECK(hdr(out, n, "Vary") == NULL);
}

TEST_MAIN(T(test_origin_valid), T(test_off), T(test_exact_list), T(test_star), T(test_preflight))
