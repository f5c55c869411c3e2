/* test_route.c - unit tests for route.c: the routes api.c answers, and the query checks of
 * server.c and volumes.c (decoding, repeated and unknown keys, values). */
#include <string.h>

#include "harness.h"
#include "route.h"

static void test_match(void)
{
    char id[ROUTE_ID_MAX] = "untouched";
    CHECK_INT(route_match("/healthz", id, sizeof id), ROUTE_HEALTH);
    CHECK_INT(route_match("/readyz", id, sizeof id), ROUTE_READY);
    CHECK_INT(route_match("/openapi.yaml", id, sizeof id), ROUTE_SPEC);
    CHECK_INT(route_match("/metrics", id, sizeof id), ROUTE_METRICS);
    CHECK_INT(route_match("/", id, sizeof id), ROUTE_HOME);
    CHECK_INT(route_match("/volumes/total", id, sizeof id), ROUTE_TOTAL);
    CHECK_STR(id, "untouched");
    CHECK_INT(route_match("/instances/i-0123456789abcdef0/volumes", id, sizeof id),
              ROUTE_INSTANCE);
    CHECK_STR(id, "i-0123456789abcdef0");
    /* Not validated here: api.c answers 400 for a malformed id, not 404. */
    CHECK_INT(route_match("/instances/bogus/volumes", id, sizeof id), ROUTE_INSTANCE);
    CHECK_STR(id, "bogus");
    CHECK_INT(route_match("/instances//volumes", id, sizeof id), ROUTE_INSTANCE);
    CHECK_STR(id, "");

    const char *none[] = {"", "/healthz/", "/HEALTHZ", "/volumes", "/volumes/total/",
                          "/instances/i-1/volumes/", "/instances/i-1", "/instances/i-1/",
                          "/instances/a/b/volumes", "/instances/i-1/volumesx", "/instances"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        CHECK_INT(route_match(none[i], id, sizeof id), ROUTE_NONE);

    /* api.c's idbuf is 64 bytes: a 63-byte id routes, a 64-byte one is 404. */
    char path[128], want[64];
    memset(want, 'a', 63);
    want[63] = '\0';
    snprintf(path, sizeof path, "/instances/%s/volumes", want);
    CHECK_INT(route_match(path, id, sizeof id), ROUTE_INSTANCE);
    CHECK_STR(id, want);
    snprintf(path, sizeof path, "/instances/%sb/volumes", want);
    CHECK_INT(route_match(path, id, sizeof id), ROUTE_NONE);
    char small[4];
    CHECK_INT(route_match("/instances/i-12/volumes", small, sizeof small), ROUTE_NONE);
    CHECK_INT(route_match("/instances/i-1/volumes", small, sizeof small), ROUTE_INSTANCE);
    CHECK_STR(small, "i-1");
}

static struct route_params p;

static ebsd_status parse(const char *q, char *err, size_t errlen)
{
    return route_parse_query(q, &p, err, errlen);
}

static void test_query(void)
{
    char err[256];
    CHECK_INT(parse(NULL, err, sizeof err), EBSD_OK);
    CHECK(!p.region && !p.detail && !p.mode && !p.timeout_ms);
    CHECK_INT(parse("", err, sizeof err), EBSD_OK);
    CHECK_INT(parse("region=us-east-1&detail=instances&mode=sequential&timeout_ms=3000", err,
                    sizeof err),
              EBSD_OK);
    CHECK_STR(p.region, "us-east-1");
    CHECK_STR(p.detail, "instances");
    CHECK_STR(p.mode, "sequential");
    CHECK_STR(p.timeout_ms, "3000");
    CHECK_STR(err, "");

    /* Decoding: percent escapes, '+' is a space, a bad escape stays, no value is "". */
    CHECK_INT(parse("region=eu%2dwest%2D1&mode&timeout_ms=", err, sizeof err), EBSD_OK);
    CHECK_STR(p.region, "eu-west-1");
    CHECK_STR(p.mode, "");
    CHECK_STR(p.timeout_ms, "");
    CHECK_INT(parse("region=a+b%zz%4", err, sizeof err), EBSD_OK);
    CHECK_STR(p.region, "a b%zz%4");
    CHECK_INT(parse("mode=x=y&", err, sizeof err), EBSD_OK);
    CHECK_STR(p.mode, "x=y");
    CHECK_INT(parse("reg%69on=x", err, sizeof err), EBSD_OK);
    CHECK_STR(p.region, "x");

    /* server.c's checks. */
    CHECK_INT(parse("region=%00", err, sizeof err), EBSD_EINVAL);
    CHECK(strstr(err, "printable ASCII") != NULL);
    CHECK_INT(parse("region=%c3%a9", err, sizeof err), EBSD_EINVAL);
    CHECK_INT(parse("region=a%0ab", err, sizeof err), EBSD_EINVAL);
    CHECK_INT(parse("mode=1&mode=2", err, sizeof err), EBSD_EINVAL);
    CHECK_STR(err, "query parameter 'mode' is given more than once");
    CHECK_INT(parse("x=1&x=2&region=%01", err, sizeof err), EBSD_EINVAL);
    CHECK(strstr(err, "printable ASCII") != NULL); /* server.c checks bytes before dups */
    char many[512] = "";
    for (int i = 0; i < 33; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sk%d=v", i ? "&" : "", i);
    CHECK_INT(parse(many, err, sizeof err), EBSD_EINVAL);
    CHECK_STR(err, "more than 32 query parameters");
    static char big[ROUTE_MAX_QUERY + 16];
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "region=", 7);
    CHECK_INT(parse(big, err, sizeof err), EBSD_ETOOBIG);
    CHECK_STR(err, "the URL is longer than 4096 bytes");

    /* volumes.c's collect_param: unknown keys, in query order. */
    CHECK_INT(parse("region=x&foo=1&bar=2", err, sizeof err), EBSD_EINVAL);
    CHECK_STR(err, "unknown query parameter 'foo'");
    CHECK(!p.region);
    CHECK_INT(parse("&", err, sizeof err), EBSD_EINVAL);
    CHECK_STR(err, "unknown query parameter ''");
    CHECK_INT(parse("Region=x", err, sizeof err), EBSD_EINVAL);
    CHECK_INT(parse("region=x&", err, sizeof err), EBSD_OK); /* a trailing '&' is nothing */

    /* A small err buffer is cut, not overrun; errlen 0 writes nothing. */
    char tiny[8];
    CHECK_INT(parse("foo", tiny, sizeof tiny), EBSD_EINVAL);
    CHECK_STR(tiny, "unknown");
    CHECK_INT(parse("foo", NULL, 0), EBSD_EINVAL);
}

static void test_check(void)
{
    struct config cfg;
    config_defaults(&cfg);
    char code[48], err[256];
    const char *region = cfg.regions[0];
    char q[128];

    CHECK_INT(parse("", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_OK);
    CHECK_STR(code, "");
    snprintf(q, sizeof q, "region=%s&detail=instances&mode=parallel&timeout_ms=%u", region,
             cfg.max_timeout_ms);
    CHECK_INT(parse(q, err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_OK);
    /* detail and mode belong to /volumes/total only. */
    CHECK_INT(route_check_params(ROUTE_INSTANCE, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    CHECK_STR(code, "InvalidParameter");
    CHECK_STR(err, "'detail' applies to /volumes/total only");

    CHECK_INT(parse("region=mars-north-1", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_INSTANCE, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    CHECK_STR(code, "InvalidRegion");
    CHECK_STR(err, "region 'mars-north-1' is not one this service is configured for");
    CHECK_INT(parse("region=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    CHECK_STR(err, "region '(too long)' is not one this service is configured for");

    CHECK_INT(parse("detail=volumes", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    CHECK_STR(err, "detail takes the value 'instances'");
    CHECK_INT(parse("mode=fast", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    CHECK_STR(err, "mode takes the value 'parallel' or 'sequential'");
    CHECK_INT(parse("mode=sequential", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_INSTANCE, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    CHECK_STR(err, "'mode' applies to /volumes/total only");

    const char *bad_timeouts[] = {"timeout_ms=0", "timeout_ms=-5", "timeout_ms=", "timeout_ms",
                                  "timeout_ms=12x", "timeout_ms=1.5", "timeout_ms=99999999999",
                                  /* digits only: no sign, no blanks (strtol takes both) */
                                  "timeout_ms=%2B5000", "timeout_ms=+5000",
                                  "timeout_ms=%205000", "timeout_ms=5000%20",
                                  "timeout_ms=-0", "timeout_ms=0x10",
                                  "timeout_ms=99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad_timeouts / sizeof bad_timeouts[0]; i++) {
        CHECK_INT(parse(bad_timeouts[i], err, sizeof err), EBSD_OK);
        CHECK_INT(route_check_params(ROUTE_INSTANCE, &p, &cfg, code, sizeof code, err,
                                     sizeof err),
                  EBSD_EINVAL);
        CHECK_STR(code, "InvalidParameter");
    }
    snprintf(q, sizeof q, "timeout_ms=%u", cfg.max_timeout_ms + 1);
    CHECK_INT(parse(q, err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    char want[128];
    snprintf(want, sizeof want, "timeout_ms must be a whole number from 1 to %u",
             cfg.max_timeout_ms);
    CHECK_STR(err, want);
    CHECK_INT(parse("timeout_ms=1", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_INSTANCE, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_OK);
    CHECK_INT(parse("timeout_ms=05000", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_OK);

    /* account=all / region=all aggregate /volumes/total (with group_by) and
     * /volumes/unattached (with limit), never one instance's volumes */
    CHECK_INT(parse("account=all&region=all&group_by=volume_type&group_by=instance_tag:team",
                    err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_OK);
    CHECK_INT(parse("region=all&limit=5", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_UNATTACHED, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_OK);
    CHECK_INT(parse("account=all", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_UNATTACHED, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_INSTANCE, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    CHECK_STR(code, "InvalidParameter");
    CHECK_STR(err, "account=all and region=all aggregate /volumes/total and /volumes/unattached "
                   "only");
    config_free(&cfg);
}

/* The pieces server.c and volumes.c call on a live request. */
static void test_pieces(void)
{
    char s[64];
    snprintf(s, sizeof s, "%s", "/healthz%00/x%2Fy%zz%4");
    CHECK_INT(route_unescape(s), 18);
    CHECK_STR(s, "/healthz\x7f/x/y%zz%4");
    CHECK(!route_printable(s));
    CHECK(route_printable("/volumes/total ~"));
    CHECK(!route_printable("a\tb"));
    CHECK(!route_printable("caf\xc3\xa9"));

    struct route_params rp;
    char err[128];
    route_params_init(&rp);
    CHECK_INT(route_params_set(&rp, "mode", "sequential", err, sizeof err), EBSD_OK);
    CHECK_INT(route_params_set(&rp, "region", "", err, sizeof err), EBSD_OK);
    CHECK_STR(rp.mode, "sequential");
    CHECK_STR(rp.region, "");
    CHECK(!rp.detail && !rp.timeout_ms);
    CHECK_INT(route_params_set(&rp, "mode", "parallel", err, sizeof err), EBSD_EINVAL);
    CHECK_STR(err, "query parameter 'mode' is given more than once");
    CHECK_INT(route_params_set(&rp, "fo\x01o", "1", err, sizeof err), EBSD_EINVAL);
    CHECK_STR(err, "unknown query parameter 'fo?o'");
    route_params_init(&rp);
    CHECK(!rp.region && !rp.mode);
}

/* Metric labels: one per route, the path template for instances, "other" for the rest. */
static void labels(void)
{
    char id[ROUTE_ID_MAX];
    CHECK_STR(route_label(route_match("/volumes/total", id, sizeof id)), "/volumes/total");
    CHECK_STR(route_label(route_match("/instances/i-0123456789abcdef0/volumes", id, sizeof id)),
              "/instances/{id}/volumes");
    CHECK_STR(route_label(route_match("/healthz", id, sizeof id)), "/healthz");
    CHECK_STR(route_label(route_match("/readyz", id, sizeof id)), "/readyz");
    CHECK_STR(route_label(route_match("/metrics", id, sizeof id)), "/metrics");
    CHECK_STR(route_label(route_match("/openapi.yaml", id, sizeof id)), "/openapi.yaml");
    CHECK_STR(route_label(route_match("/nope", id, sizeof id)), "other");
}

/* group_by repeats up to twice with valid keys only (the message names the bad key);
 * limit belongs to /volumes/unattached, 1..ROUTE_MAX_LIMIT. */
static void test_group_by_and_limit(void)
{
    struct config cfg;
    config_defaults(&cfg);
    char code[48], err[256], id[ROUTE_ID_MAX];
    CHECK_INT(route_match("/volumes/unattached", id, sizeof id), ROUTE_UNATTACHED);
    CHECK_STR(route_label(ROUTE_UNATTACHED), "/volumes/unattached");
    CHECK_INT(parse("group_by=volume_type&group_by=instance_tag:team", err, sizeof err), EBSD_OK);
    CHECK_INT(p.ngroup, 2);
    CHECK_STR(p.group_by[1], "instance_tag:team");
    CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_INSTANCE, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    CHECK_STR(err, "'group_by' applies to /volumes/total only");
    CHECK_INT(route_check_params(ROUTE_UNATTACHED, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    CHECK_INT(parse("group_by=a&group_by=b&group_by=c", err, sizeof err), EBSD_EINVAL);
    CHECK_STR(err, "group_by is given more than 2 times");
    const char *bad[] = {"bogus", "", "instance_tag:", "volume_tag:", "Volume_type",
                         "instance_tag:0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char q[160];
        snprintf(q, sizeof q, "group_by=%s", bad[i]);
        CHECK_INT(parse(q, err, sizeof err), EBSD_OK);
        CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
                  EBSD_EINVAL);
        CHECK_STR(code, "InvalidParameter");
        char want[120];
        snprintf(want, sizeof want, "group_by key '%.80s' is not one of", bad[i]);
        CHECK(strncmp(err, want, strlen(want)) == 0);
    }
    CHECK(route_group_key_valid("volume_tag:a"));
    CHECK(route_group_key_valid("instance_tag:012345678901234567890123456789012345678901234567890123456789012"));
    CHECK_INT(parse("group_by=volume_type&group_by=volume_type", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    CHECK_STR(err, "group_by key 'volume_type' is given twice");
    CHECK_INT(parse("limit=100", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_UNATTACHED, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_TOTAL, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    CHECK_STR(err, "'limit' applies to /volumes/unattached only");
    const char *badlim[] = {"0", "101", "+5", "", "1x", "99999999999999999999"};
    for (size_t i = 0; i < sizeof badlim / sizeof badlim[0]; i++) {
        char q[64];
        snprintf(q, sizeof q, "limit=%s", badlim[i]);
        CHECK_INT(parse(q, err, sizeof err), EBSD_OK);
        CHECK_INT(route_check_params(ROUTE_UNATTACHED, &p, &cfg, code, sizeof code, err,
                                     sizeof err), EBSD_EINVAL);
        CHECK_STR(err, "limit must be a whole number from 1 to 100");
    }
    CHECK_INT(parse("detail=instances", err, sizeof err), EBSD_OK);
    CHECK_INT(route_check_params(ROUTE_UNATTACHED, &p, &cfg, code, sizeof code, err, sizeof err),
              EBSD_EINVAL);
    config_free(&cfg);
}

TEST_MAIN(T(labels), T(test_match), T(test_query), T(test_check), T(test_pieces),
          T(test_group_by_and_limit))
