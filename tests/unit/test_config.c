/* test_config.c - config: defaults, a full file, the annotated example, every error kind
 * naming file, line and key, and the environment overrides. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "retry.h"

static void clear_env(void)
{
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    unsetenv("AWS_ENDPOINT_URL_EC2");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    unsetenv("AWS_MAX_ATTEMPTS");
    unsetenv("AWS_RETRY_MODE");
    setenv("AWS_CONFIG_FILE", "/nonexistent/ebsd-test-aws-config", 1); /* no profile settings */
    unsetenv("EBSD_REDIS_URL");
}

/* Writes text to a new temp file; its path goes to path (size 64). */
static void write_temp(char path[64], const char *text)
{
    snprintf(path, 64, "/tmp/test_config.XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    size_t len = strlen(text);
    CHECK(write(fd, text, len) == (ssize_t)len);
    close(fd);
}

/* Loads text from a temp file; returns the status; cfg is the caller's to free. */
static ebsd_status load_text(const char *text, struct config *cfg, struct config_error *err,
                             char path[64])
{
    write_temp(path, text);
    ebsd_status st = config_load(path, cfg, err);
    unlink(path);
    return st;
}

/* A load that must fail with st at line, naming key, with message suffix what. */
static void expect_error(const char *text, ebsd_status st, unsigned line, const char *key,
                         const char *what)
{
    struct config cfg;
    struct config_error err;
    char path[64], want[1024];
    CHECK_INT(load_text(text, &cfg, &err, path), st);
    CHECK_INT(err.line, line);
    CHECK_STR(err.key, key);
    CHECK_STR(err.file, path);
    if (key[0])
        snprintf(want, sizeof want, "%s:%u: key '%s': %s", path, line, key, what);
    else
        snprintf(want, sizeof want, "%s:%u: %s", path, line, what);
    CHECK_STR(err.message, want);
    /* a failed load leaves nothing to free */
    CHECK(cfg.listen == NULL && cfg.nregions == 0 && cfg.log_level == NULL);
}

static void check_defaults(const struct config *c)
{
    CHECK_STR(c->listen, "127.0.0.1:8080");
    CHECK_INT(c->nregions, 1);
    CHECK_STR(c->regions[0], "us-east-1");
    CHECK_STR(c->ec2_endpoint, "");
    CHECK_STR(c->ca_bundle, "");
    CHECK_INT(c->max_attempts, 3);
    CHECK_INT(c->instance_page_size, 1000);
    CHECK_INT(c->volume_page_size, 500);
    CHECK(c->rate_limit == 10);
    CHECK(c->rate_burst == 50);
    CHECK_INT(c->connect_timeout_ms, 2000);
    CHECK_INT(c->read_timeout_ms, 2500);
    CHECK_INT(c->max_connections, 4096);
    CHECK_INT(c->max_connections_per_ip, 2048);
    CHECK_INT(c->ntrusted_proxies, 0);
    CHECK_INT(c->ncors_origins, 0);
    CHECK_INT(c->idle_timeout_s, 75);
    CHECK_INT(c->header_timeout_s, 10);
    CHECK_INT(c->max_header_bytes, 16384);
    CHECK_INT(c->drain_timeout_s, 25);
    CHECK_INT(c->max_timeout_ms, 29000);
    CHECK_INT(c->volumes_total.timeout_ms, 10000);
    CHECK_INT(c->volumes_total.memory_mb, 128);
    CHECK_INT(c->volumes_total.cache_ttl_s, 60);
    CHECK_INT(c->instance_volumes.timeout_ms, 10000);
    CHECK_INT(c->instance_volumes.memory_mb, 128);
    CHECK_INT(c->instance_volumes.cache_ttl_s, 60);
    CHECK_INT(c->max_children, 32);
    CHECK_INT(c->group_size, 200);
    CHECK_INT(c->list_partitions, 0);
    CHECK_STR(c->fanout_volume_shares, "auto");
    CHECK_INT(c->worker_nice, 10);
    CHECK_INT(c->spare_workers, 16);
    CHECK_INT(c->queue_timeout_ms, 2000);
    CHECK_INT(c->cache_max_entries, 10000);
    CHECK_INT(c->cache_max_bytes, 67108864);
    CHECK_INT(c->stale_if_error_s, 300);
    CHECK_INT(c->stale_while_revalidate_s, 30);
    CHECK_INT(c->negative_ttl_s, 10);
    CHECK_INT(c->min_refresh_s, 10);
    CHECK_INT(c->refresh_interval_s, 300);
    CHECK_STR(c->log_format, "json");
    CHECK_STR(c->log_level, "info");
    CHECK_STR(c->auth_tokens_file, "");
    CHECK_STR(c->fanout_state_file, "");
    CHECK_STR(c->run_as_user, "");
    CHECK(!c->allow_root);
    CHECK_STR(c->redis_url, "");
    CHECK_STR(c->redis_password_file, "");
    CHECK_STR(c->redis_key_prefix, "ebsd:");
    CHECK_INT(c->redis_connect_timeout_ms, 500);
    CHECK_INT(c->redis_command_timeout_ms, 200);
    CHECK_INT(c->redis_replicas_hint, 1);
    CHECK_STR(c->redis_ca_file, "");
    CHECK_STR(c->redis_iam_user, "");
    CHECK_STR(c->redis_iam_cache, "");
    CHECK(!c->redis_iam_serverless);
}

static void test_defaults(void)
{
    clear_env();
    struct config c;
    config_defaults(&c);
    check_defaults(&c);
    CHECK(config_region_allowed(&c, "us-east-1"));
    CHECK(!config_region_allowed(&c, "eu-west-1"));
    CHECK(!config_region_allowed(&c, NULL));
    config_free(&c);
    config_free(&c); /* freeing twice is harmless: config_free zeroes */

    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    config_defaults(&c);
    CHECK_STR(c.regions[0], "eu-west-1");
    config_free(&c);
    setenv("AWS_REGION", "ap-south-1", 1); /* AWS_REGION wins */
    config_defaults(&c);
    CHECK_STR(c.regions[0], "ap-south-1");
    config_free(&c);
    setenv("AWS_REGION", "not a region", 1);
    config_defaults(&c);
    CHECK_STR(c.regions[0], "us-east-1");
    config_free(&c);
    clear_env();
}

static void test_empty_documents(void)
{
    clear_env();
    static const char *const empties[] = {
        "", "# nothing but a comment\n", "~\n", "---\n", "{}\n",
        "server:\n  # max_connections: 10\nroutes:\n  volumes_total:\n",
        "server: ~\nec2: null\n",
    };
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        struct config c;
        struct config_error err;
        char path[64];
        ebsd_status st = load_text(empties[i], &c, &err, path);
        CHECK_INT(st, EBSD_OK);
        if (st != EBSD_OK) {
            fprintf(stderr, "  document %zu: %s\n", i, err.message);
            continue;
        }
        check_defaults(&c);
        config_free(&c);
    }
}

static const char full_yaml[] =
    "# every key, none at its default\n"
    "listen: \"[::1]:9090\"\n"
    "regions: [eu-west-1, us-gov-west-1, us-isob-east-1, cn-north-1]\n"
    "ec2:\n"
    "  endpoint: \"http://127.0.0.1:4566\"\n"
    "  ca_bundle: /etc/ssl/ca.pem\n"
    "  max_attempts: 5\n"
    "  instance_page_size: 200\n"
    "  volume_page_size: 100\n"
    "  rate_limit: 2.5\n"
    "  rate_burst: 10\n"
    "  connect_timeout_ms: 300\n"
    "  read_timeout_ms: 700\n"
    "server: {max_connections: 50, max_connections_per_ip: 5, idle_timeout_s: 10,\n"
    "         header_timeout_s: 7,\n"
    "         max_header_bytes: 8192, drain_timeout_s: 0}\n"
    "routes:\n"
    "  max_timeout_ms: 60000\n"
    "  volumes_total: {timeout_ms: 50000, memory_mb: 256, cache_ttl_s: 0}\n"
    "  instance_volumes:\n"
    "    timeout_ms: 5000\n"
    "    memory_mb: 64\n"
    "    cache_ttl_s: 120\n"
    "fanout: {max_children: 8, group_size: 200, queue_timeout_ms: 0, worker_nice: 3,\n"
    "         spare_workers: 0}\n"
    "cache:\n"
    "  max_entries: 0\n"
    "  max_bytes: 8589934592\n"
    "  stale_if_error_s: 0\n"
    "  stale_while_revalidate_s: 5\n"
    "  negative_ttl_s: 1\n"
    "  min_refresh_s: 0\n"
    "log: {format: text, level: debug}\n"
    "security:\n"
    "  auth_tokens_file: /etc/ebsd/tokens\n"
    "  run_as_user: ebsd\n"
    "  allow_root: True\n";

static void test_full_file(void)
{
    clear_env();
    struct config c;
    struct config_error err;
    char path[64];
    ebsd_status st = load_text(full_yaml, &c, &err, path);
    CHECK_INT(st, EBSD_OK);
    if (st != EBSD_OK) {
        fprintf(stderr, "  %s\n", err.message);
        return;
    }
    CHECK_STR(c.listen, "[::1]:9090");
    CHECK_INT(c.nregions, 4);
    CHECK_STR(c.regions[0], "eu-west-1");
    CHECK_STR(c.regions[1], "us-gov-west-1");
    CHECK_STR(c.regions[2], "us-isob-east-1");
    CHECK_STR(c.regions[3], "cn-north-1");
    CHECK_STR(c.ec2_endpoint, "http://127.0.0.1:4566");
    CHECK_STR(c.ca_bundle, "/etc/ssl/ca.pem");
    CHECK_INT(c.max_attempts, 5);
    CHECK_INT(c.instance_page_size, 200);
    CHECK_INT(c.volume_page_size, 100);
    CHECK(c.rate_limit == 2.5);
    CHECK(c.rate_burst == 10);
    CHECK_INT(c.connect_timeout_ms, 300);
    CHECK_INT(c.read_timeout_ms, 700);
    CHECK_INT(c.max_connections, 50);
    CHECK_INT(c.max_connections_per_ip, 5);
    CHECK_INT(c.idle_timeout_s, 10);
    CHECK_INT(c.header_timeout_s, 7);
    CHECK_INT(c.max_header_bytes, 8192);
    CHECK_INT(c.drain_timeout_s, 0);
    CHECK_INT(c.max_timeout_ms, 60000);
    CHECK_INT(c.volumes_total.timeout_ms, 50000);
    CHECK_INT(c.volumes_total.memory_mb, 256);
    CHECK_INT(c.volumes_total.cache_ttl_s, 0);
    CHECK_INT(c.instance_volumes.timeout_ms, 5000);
    CHECK_INT(c.instance_volumes.memory_mb, 64);
    CHECK_INT(c.instance_volumes.cache_ttl_s, 120);
    CHECK_INT(c.max_children, 8);
    CHECK_INT(c.group_size, 200);
    CHECK_INT(c.queue_timeout_ms, 0);
    CHECK_INT(c.worker_nice, 3);
    CHECK_INT(c.spare_workers, 0);
    CHECK_INT(c.cache_max_entries, 0);
    CHECK_INT(c.cache_max_bytes, 8589934592LL);
    CHECK_INT(c.stale_if_error_s, 0);
    CHECK_INT(c.stale_while_revalidate_s, 5);
    CHECK_INT(c.negative_ttl_s, 1);
    CHECK_INT(c.min_refresh_s, 0);
    CHECK_STR(c.log_format, "text");
    CHECK_STR(c.log_level, "debug");
    CHECK_STR(c.auth_tokens_file, "/etc/ebsd/tokens");
    CHECK_STR(c.run_as_user, "ebsd");
    CHECK(c.allow_root);
    CHECK(config_region_allowed(&c, "us-gov-west-1"));
    CHECK(!config_region_allowed(&c, "us-east-1"));
    config_free(&c);
}

static void test_partial_file_keeps_defaults(void)
{
    clear_env();
    struct config c;
    struct config_error err;
    char path[64];
    CHECK_INT(load_text("server:\n  idle_timeout_s: 90\nsecurity: {allow_root: FALSE}\n", &c,
                        &err, path),
              EBSD_OK);
    CHECK_INT(c.idle_timeout_s, 90);
    CHECK_INT(c.max_connections, 4096);
    CHECK(!c.allow_root);
    CHECK_STR(c.listen, "127.0.0.1:8080");
    config_free(&c);
}

/* The annotated example documents every default: it must load and equal them. */
static void test_example_file(void)
{
    clear_env();
    const char *src = getenv("EBSD_SOURCE_DIR");
    CHECK(src != NULL);
    if (!src)
        return;
    char path[1024];
    snprintf(path, sizeof path, "%s/config/ebsd.yaml", src);
    struct config c;
    struct config_error err;
    ebsd_status st = config_load(path, &c, &err);
    CHECK_INT(st, EBSD_OK);
    if (st != EBSD_OK) {
        fprintf(stderr, "  %s\n", err.message);
        return;
    }
    check_defaults(&c);
    config_free(&c);
}

static void test_unknown_keys(void)
{
    clear_env();
    expect_error("listen: \"127.0.0.1:1\"\nbogus: 1\n", EBSD_EPARSE, 2, "bogus",
                 "unknown key (known here: listen, regions, ec2, server, routes, fanout, "
                 "cache, log, security, redis, refresh, accounts)");
    expect_error("server:\n  max_connections: 10\n\n  idle_timeout: 5\n", EBSD_EPARSE, 4,
                 "server.idle_timeout",
                 "unknown key (known here: max_connections, max_connections_per_ip, "
                 "idle_timeout_s, header_timeout_s, max_header_bytes, drain_timeout_s, "
                 "trusted_proxies, cors_origins)");
    expect_error("routes:\n  volumes_total:\n    timeout_ms: 100\n    memory: 64\n", EBSD_EPARSE,
                 4, "routes.volumes_total.memory",
                 "unknown key (known here: timeout_ms, memory_mb, cache_ttl_s)");
    /* keys are case-sensitive */
    expect_error("Listen: x\n", EBSD_EPARSE, 1, "Listen",
                 "unknown key (known here: listen, regions, ec2, server, routes, fanout, "
                 "cache, log, security, redis, refresh, accounts)");
}

static void test_wrong_types(void)
{
    clear_env();
    expect_error("server:\n  header_timeout_s: 0\n", EBSD_EINVAL, 2, "server.header_timeout_s",
                 "value 0 out of range 1..300");
    expect_error("server:\n  header_timeout_s: 301\n", EBSD_EINVAL, 2,
                 "server.header_timeout_s", "value 301 out of range 1..300");
    expect_error("server:\n  idle_timeout_s: seventy\n", EBSD_EPARSE, 2,
                 "server.idle_timeout_s", "expected an unsigned integer, got 'seventy'");
    expect_error("server:\n  idle_timeout_s: 1.5\n", EBSD_EPARSE, 2, "server.idle_timeout_s",
                 "expected an unsigned integer, got '1.5'");
    expect_error("server:\n  idle_timeout_s: -1\n", EBSD_EPARSE, 2, "server.idle_timeout_s",
                 "expected an unsigned integer, got '-1'");
    expect_error("server:\n  idle_timeout_s: 010\n", EBSD_EPARSE, 2, "server.idle_timeout_s",
                 "'010': leading zeros are not allowed");
    expect_error("server:\n  idle_timeout_s: 4294967296\n", EBSD_EINVAL, 2,
                 "server.idle_timeout_s", "value 4294967296 is larger than 4294967295");
    expect_error("server:\n  idle_timeout_s:\n", EBSD_EPARSE, 2, "server.idle_timeout_s",
                 "expected an unsigned integer, got ''");
    expect_error("server:\n  idle_timeout_s: [1]\n", EBSD_EPARSE, 2, "server.idle_timeout_s",
                 "expected an unsigned integer, got a sequence");
    expect_error("security:\n  allow_root: maybe\n", EBSD_EPARSE, 2, "security.allow_root",
                 "expected true or false, got 'maybe'");
    expect_error("security:\n  allow_root: yes\n", EBSD_EPARSE, 2, "security.allow_root",
                 "expected true or false, got 'yes'");
    expect_error("ec2:\n  rate_limit: fast\n", EBSD_EPARSE, 2, "ec2.rate_limit",
                 "expected a number, got 'fast'");
    expect_error("ec2:\n  rate_limit: .inf\n", EBSD_EPARSE, 2, "ec2.rate_limit",
                 "expected a number, got '.inf'");
    expect_error("ec2:\n  rate_limit: 1e999\n", EBSD_EINVAL, 2, "ec2.rate_limit",
                 "number 1e999 is out of range");
    expect_error("server: 5\n", EBSD_EPARSE, 1, "server", "expected a mapping, got a scalar");
    expect_error("listen: {host: x}\n", EBSD_EPARSE, 1, "listen",
                 "expected a string, got a mapping");
    expect_error("regions: us-east-1\n", EBSD_EPARSE, 1, "regions",
                 "expected a sequence, got a scalar");
    expect_error("regions:\n  - us-east-1\n  - [eu-west-1]\n", EBSD_EPARSE, 3, "regions[1]",
                 "expected a string, got a sequence");
    expect_error("- listen\n", EBSD_EPARSE, 1, "",
                 "the top level must be a mapping of keys, got a sequence");
    expect_error("base: &b {timeout_ms: 100}\n", EBSD_EPARSE, 1, "base",
                 "unknown key (known here: listen, regions, ec2, server, routes, fanout, "
                 "cache, log, security, redis, refresh, accounts)");
    expect_error("routes:\n  volumes_total: &r {timeout_ms: 100}\n  instance_volumes: *r\n",
                 EBSD_EPARSE, 3, "routes.instance_volumes",
                 "aliases (*r) are not supported; write the value out");
    expect_error("listen: \"a\\0b:1\"\n", EBSD_EPARSE, 1, "listen", "value contains a NUL byte");
}

static void test_out_of_range(void)
{
    clear_env();
    expect_error("# comment\n\nserver:\n  max_connections: 10\n  idle_timeout_s: 0\n",
                 EBSD_EINVAL, 5, "server.idle_timeout_s", "value 0 out of range 1..3600");
    expect_error("ec2: {max_attempts: 11}\n", EBSD_EINVAL, 1, "ec2.max_attempts",
                 "value 11 out of range 1..10");
    expect_error("ec2:\n  volume_page_size: 501\n", EBSD_EINVAL, 2, "ec2.volume_page_size",
                 "value 501 out of range 5..500");
    expect_error("ec2:\n  connect_timeout_ms: 9\n", EBSD_EINVAL, 2, "ec2.connect_timeout_ms",
                 "value 9 out of range 10..60000");
    expect_error("ec2: {read_timeout_ms: 900001}\n", EBSD_EINVAL, 1, "ec2.read_timeout_ms",
                 "value 900001 out of range 10..900000");
    expect_error("ec2:\n  rate_limit: -1\n", EBSD_EINVAL, 2, "ec2.rate_limit",
                 "value -1 out of range 0..100000");
    expect_error("routes:\n  instance_volumes:\n    memory_mb: 3\n", EBSD_EINVAL, 3,
                 "routes.instance_volumes.memory_mb", "value 3 out of range 4..10240");
    expect_error("fanout: {group_size: 1001}\n", EBSD_EINVAL, 1, "fanout.group_size",
                 "value 1001 out of range 1..1000");
    expect_error("fanout:\n  list_partitions: 17\n", EBSD_EINVAL, 2, "fanout.list_partitions",
                 "value 17 out of range 0..16");
    static const char *const bad_shares[] = {"0", "257", "-1", "many", "08", "4x", "\"\""};
    for (size_t i = 0; i < sizeof bad_shares / sizeof bad_shares[0]; i++) {
        char text[64], want[96];
        snprintf(text, sizeof text, "fanout:\n  volume_shares: %s\n", bad_shares[i]);
        snprintf(want, sizeof want, "'%s' is not auto, off or a number from 1 to 256",
                 strcmp(bad_shares[i], "\"\"") == 0 ? "" : bad_shares[i]);
        expect_error(text, EBSD_EINVAL, 2, "fanout.volume_shares", want);
    }
    expect_error("cache:\n  min_refresh_s: 86401\n", EBSD_EINVAL, 2, "cache.min_refresh_s",
                 "value 86401 out of range 0..86400");
    expect_error("fanout:\n  worker_nice: 20\n", EBSD_EINVAL, 2, "fanout.worker_nice",
                 "value 20 out of range 0..19");
    expect_error("fanout:\n  spare_workers: 65\n", EBSD_EINVAL, 2, "fanout.spare_workers",
                 "value 65 out of range 0..64");
    expect_error("server:\n  drain_timeout_s: 301\n", EBSD_EINVAL, 2, "server.drain_timeout_s",
                 "value 301 out of range 0..300");
    expect_error("listen: localhost\n", EBSD_EINVAL, 1, "listen",
                 "'localhost' must be HOST:PORT (IPv6 as [::1]:8080)");
    expect_error("listen: \"127.0.0.1:65536\"\n", EBSD_EINVAL, 1, "listen",
                 "'127.0.0.1:65536' the port must be a number 0..65535");
    expect_error("listen: \"::1:80\"\n", EBSD_EINVAL, 1, "listen",
                 "'::1:80' must be HOST:PORT (IPv6 as [::1]:8080)");
    expect_error("listen: \"[::g]:80\"\n", EBSD_EINVAL, 1, "listen",
                 "'[::g]:80' the address in brackets is not an IPv6 address");
    expect_error("regions: []\n", EBSD_EINVAL, 1, "regions", "needs 1..32 regions");
    expect_error("regions:\n  - us-east-1\n  - Europe\n", EBSD_EINVAL, 3, "regions[1]",
                 "'Europe' is not a region name like us-east-1");
    expect_error("regions: [us-east-1, eu-west-1, us-east-1]\n", EBSD_EINVAL, 1, "regions[2]",
                 "'us-east-1' is listed twice");
    expect_error("ec2:\n  endpoint: localhost:4566\n", EBSD_EINVAL, 2, "ec2.endpoint",
                 "'localhost:4566' is not an http:// or https:// URL (or \"\")");
    expect_error("log:\n  format: xml\n", EBSD_EINVAL, 2, "log.format", "'xml' is not json or text");
    expect_error("log:\n  level: verbose\n", EBSD_EINVAL, 2, "log.level",
                 "'verbose' is not debug, info, warn or error");
    expect_error("cache: {max_bytes: 18446744073709551615}\n", EBSD_EINVAL, 1, "cache.max_bytes",
                 "value 18446744073709551615 out of range 0..68719476736");

    /* 33 regions: one more than CONFIG_MAX_REGIONS */
    char many[2048] = "regions:\n";
    for (int i = 1; i <= 33; i++) {
        char line[32];
        snprintf(line, sizeof line, "  - us-east-%d\n", i);
        strncat(many, line, sizeof many - strlen(many) - 1);
    }
    expect_error(many, EBSD_EINVAL, 34, "regions", "more than 32 entries");
}

static void test_cross_field_rules(void)
{
    clear_env();
    expect_error("routes:\n  volumes_total:\n    timeout_ms: 30000\n", EBSD_EINVAL, 3,
                 "routes.volumes_total.timeout_ms",
                 "timeout_ms 30000 exceeds routes.max_timeout_ms 29000");
    /* the file lowers only the ceiling: the ceiling is to blame */
    expect_error("routes:\n  max_timeout_ms: 5000\n", EBSD_EINVAL, 2, "routes.max_timeout_ms",
                 "timeout_ms 10000 exceeds routes.max_timeout_ms 5000");
    expect_error("routes:\n  max_timeout_ms: 5000\n  instance_volumes: {timeout_ms: 6000}\n"
                 "  volumes_total: {timeout_ms: 5000}\n",
                 EBSD_EINVAL, 3, "routes.instance_volumes.timeout_ms",
                 "timeout_ms 6000 exceeds routes.max_timeout_ms 5000");
    expect_error("server:\n  max_connections: 100\n", EBSD_EINVAL, 2, "server.max_connections",
                 "max_connections_per_ip 2048 exceeds max_connections 100");
}

static void test_duplicate_keys(void)
{
    clear_env();
    expect_error("server:\n  idle_timeout_s: 10\n  max_connections: 5\n  idle_timeout_s: 20\n",
                 EBSD_EPARSE, 4, "server.idle_timeout_s", "duplicate key (first given on line 2)");
    expect_error("log: {level: info}\nlisten: \"a:1\"\nlog: {format: json}\n", EBSD_EPARSE, 3,
                 "log", "duplicate key (first given on line 1)");
}

static void test_invalid_yaml(void)
{
    clear_env();
    expect_error("server:\n  idle_timeout_s: [1, 2\nlog: {}\n", EBSD_EPARSE, 3,
                 "server.idle_timeout_s",
                 "invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence "
                 "on line 2)");
    expect_error("listen: \"unterminated\n", EBSD_EPARSE, 2, "listen",
                 "invalid YAML: found unexpected end of stream (while scanning a quoted scalar "
                 "on line 1)");
    /* the stray indent belongs to no key: the top-level mapping is what broke */
    expect_error("server:\n  a: 1\n b: 2\n", EBSD_EPARSE, 3, "",
                 "invalid YAML: did not find expected key (while parsing a block mapping on "
                 "line 1)");
    /* a syntax error wins over a schema error before it */
    expect_error("bogus: 1\nlisten: [\n", EBSD_EPARSE, 3, "listen",
                 "invalid YAML: did not find expected node content (while parsing a flow node "
                 "on line 3)");
    expect_error("\tlisten: x\n", EBSD_EPARSE, 1, "",
                 "invalid YAML: found character that cannot start any token (while scanning "
                 "for the next token on line 1)");
    expect_error("listen: \"a:1\"\n---\nlisten: \"b:2\"\n", EBSD_EPARSE, 2, "",
                 "only one YAML document is allowed");
}

static void test_unreadable(void)
{
    clear_env();
    struct config c;
    struct config_error err;
    CHECK_INT(config_load("/nonexistent/ebsd.yaml", &c, &err), EBSD_EIO);
    CHECK_INT(err.line, 0);
    CHECK_STR(err.key, "");
    CHECK_STR(err.file, "/nonexistent/ebsd.yaml");
    CHECK_STR(err.message, "/nonexistent/ebsd.yaml: open: No such file or directory");
    CHECK(c.listen == NULL);

    CHECK_INT(config_load("/tmp", &c, &err), EBSD_EIO);
    CHECK_STR(err.message, "/tmp: read: Is a directory");

    /* over the 1 MiB cap: a clean error, not an unbounded read */
    char path[64];
    write_temp(path, "");
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        for (int i = 0; i < 70000; i++)
            fputs("# padding line\n", f);
        fclose(f);
    }
    CHECK_INT(config_load(path, &c, &err), EBSD_ETOOBIG);
    char want[128];
    snprintf(want, sizeof want, "%s: file is larger than 1048576 bytes", path);
    CHECK_STR(err.message, want);
    unlink(path);
}

static void test_load_buffer(void)
{
    clear_env();
    struct config c;
    struct config_error err;
    /* not NUL-terminated: the length is what counts */
    const char data[] = {'l', 'o', 'g', ':', ' ', '{', 'l', 'e', 'v', 'e', 'l', ':', ' ',
                         'w', 'a', 'r', 'n', '}', '\n', 'X'};
    CHECK_INT(config_load_buffer("<memory>", data, sizeof data - 1, &c, &err), EBSD_OK);
    CHECK_STR(c.log_level, "warn");
    config_free(&c);
    CHECK_INT(config_load_buffer("<memory>", "log: {level: loud}", 18, &c, &err), EBSD_EINVAL);
    CHECK_STR(err.message, "<memory>:1: key 'log.level': 'loud' is not debug, info, warn or error");
}

static void test_env_region(void)
{
    clear_env();
    struct config c;
    struct config_error err;
    char path[64];

    /* no regions in the file: the environment's region is the one region */
    setenv("AWS_REGION", "eu-central-1", 1);
    CHECK_INT(load_text("listen: \"127.0.0.1:0\"\n", &c, &err, path), EBSD_OK);
    CHECK_INT(c.nregions, 1);
    CHECK_STR(c.regions[0], "eu-central-1");
    config_free(&c);

    /* the file's list, and the environment names one of them: it becomes the default */
    const char *yaml = "regions: [us-east-1, us-west-2, eu-west-1]\n";
    setenv("AWS_REGION", "eu-west-1", 1);
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_INT(c.nregions, 3);
    CHECK_STR(c.regions[0], "eu-west-1");
    CHECK_STR(c.regions[1], "us-east-1");
    CHECK_STR(c.regions[2], "us-west-2");
    config_free(&c);

    /* not in the file's list: the file's default stays */
    setenv("AWS_REGION", "ap-south-1", 1);
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_STR(c.regions[0], "us-east-1");
    CHECK(!config_region_allowed(&c, "ap-south-1"));
    config_free(&c);

    /* AWS_DEFAULT_REGION when AWS_REGION is unset or empty */
    setenv("AWS_REGION", "", 1);
    setenv("AWS_DEFAULT_REGION", "us-west-2", 1);
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_STR(c.regions[0], "us-west-2");
    CHECK_STR(c.regions[1], "us-east-1");
    CHECK_STR(c.regions[2], "eu-west-1");
    config_free(&c);
    clear_env();
}

static void test_env_endpoint(void)
{
    clear_env();
    struct config c;
    struct config_error err;
    char path[64];
    const char *yaml = "ec2: {endpoint: \"https://file.example\"}\n";

    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_STR(c.ec2_endpoint, "https://file.example");
    config_free(&c);

    /* as in the AWS SDKs, the environment wins over the file */
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000", 1);
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_STR(c.ec2_endpoint, "http://127.0.0.1:5000");
    config_free(&c);

    /* the service-specific variable wins over the general one */
    setenv("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:6000", 1);
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_STR(c.ec2_endpoint, "http://127.0.0.1:6000");
    config_free(&c);

    /* AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true switches the variables off */
    setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_STR(c.ec2_endpoint, "https://file.example");
    config_free(&c);
    unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");

    /* an invalid value is ignored (with a warning) */
    setenv("AWS_ENDPOINT_URL_EC2", "not a url", 1);
    unsetenv("AWS_ENDPOINT_URL");
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_STR(c.ec2_endpoint, "https://file.example");
    config_free(&c);

    /* without a file (main's path): defaults, then the environment */
    setenv("AWS_ENDPOINT_URL_EC2", "http://localhost:4566", 1);
    setenv("AWS_REGION", "sa-east-1", 1);
    config_defaults(&c);
    config_apply_env(&c);
    CHECK_STR(c.ec2_endpoint, "http://localhost:4566");
    CHECK_STR(c.regions[0], "sa-east-1");
    CHECK_INT(c.nregions, 1);
    config_free(&c);
    clear_env();
}

/* AWS_MAX_ATTEMPTS (else the profile's max_attempts) replaces ec2.max_attempts, and
 * AWS_RETRY_MODE becomes the process's retry mode; an invalid value keeps the file's. */
static void test_env_retry(void)
{
    char path[64];
    struct config c;
    struct config_error err;
    clear_env();
    const char *yaml = "ec2:\n  max_attempts: 4\n";
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_INT(c.max_attempts, 4);
    CHECK_INT(retry_settings_get()->mode, RETRY_MODE_STANDARD);
    config_free(&c);
    setenv("AWS_MAX_ATTEMPTS", "7", 1);
    setenv("AWS_RETRY_MODE", "adaptive", 1);
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_INT(c.max_attempts, 7);
    CHECK_INT(retry_settings_get()->max_attempts, 7);
    CHECK_INT(retry_settings_get()->mode, RETRY_MODE_ADAPTIVE);
    config_free(&c);
    setenv("AWS_MAX_ATTEMPTS", "many", 1);
    setenv("AWS_RETRY_MODE", "standard", 1);
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_INT(c.max_attempts, 4);
    CHECK_INT(retry_settings_get()->mode, RETRY_MODE_STANDARD);
    config_free(&c);
    clear_env();
    struct retry_settings dflt = {3, RETRY_MODE_STANDARD};
    retry_settings_set(&dflt);
}

/* server.trusted_proxies and server.cors_origins: lists, each entry checked with its line. */
static void test_edge_lists(void)
{
    clear_env();
    struct config cfg;
    struct config_error err;
    char path[64];
    CHECK_INT(load_text("server:\n  trusted_proxies:\n    - 10.0.0.0/16\n    - 172.16.0.0/12\n"
                        "    - \"fd00::/8\"\n    - 192.0.2.7\n"
                        "  cors_origins: [\"https://grafana.example.com\", "
                        "\"http://localhost:3000\"]\n",
                        &cfg, &err, path),
              EBSD_OK);
    CHECK_INT(cfg.ntrusted_proxies, 4);
    CHECK_INT(cfg.ntrusted_proxy_texts, 4);
    CHECK_STR(cfg.trusted_proxy_texts[2], "fd00::/8");
    CHECK_INT(cfg.trusted_proxies[0].bits, 16);
    CHECK_INT(cfg.trusted_proxies[3].bits, 32);
    struct realip_addr a;
    CHECK(realip_addr_parse("10.0.255.1", 10, &a) == EBSD_OK);
    CHECK(realip_trusted(cfg.trusted_proxies, cfg.ntrusted_proxies, &a));
    CHECK(realip_addr_parse("10.1.0.1", 8, &a) == EBSD_OK);
    CHECK(!realip_trusted(cfg.trusted_proxies, cfg.ntrusted_proxies, &a));
    CHECK_INT(cfg.ncors_origins, 2);
    CHECK_STR(cfg.cors_origins[1], "http://localhost:3000");
    config_free(&cfg);
    CHECK_INT(load_text("server:\n  cors_origins: [\"*\"]\n  trusted_proxies: []\n", &cfg, &err,
                        path),
              EBSD_OK);
    CHECK_INT(cfg.ncors_origins, 1);
    CHECK_STR(cfg.cors_origins[0], "*");
    CHECK_INT(cfg.ntrusted_proxies, 0);
    config_free(&cfg);

    expect_error("server:\n  trusted_proxies:\n    - 10.0.0.0/16\n    - 10.0.0.0/33\n",
                 EBSD_EINVAL, 4, "server.trusted_proxies[1]",
                 "'10.0.0.0/33' has a prefix length that is not 0..32");
    expect_error("server:\n  trusted_proxies: [10.1.0.0/8]\n", EBSD_EINVAL, 2,
                 "server.trusted_proxies[0]",
                 "'10.1.0.0/8' has host bits set after the prefix (write the network address)");
    expect_error("server:\n  trusted_proxies:\n    - alb.internal\n", EBSD_EINVAL, 3,
                 "server.trusted_proxies[0]",
                 "'alb.internal' is not an IPv4 or IPv6 address or CIDR (like 10.0.0.0/8 or "
                 "fd00::/8)");
    expect_error("server:\n  trusted_proxies: 10.0.0.0/8\n", EBSD_EPARSE, 2,
                 "server.trusted_proxies", "expected a sequence, got a scalar");
    expect_error("server:\n  cors_origins:\n    - https://a.example\n    - https://b.example/\n",
                 EBSD_EINVAL, 4, "server.cors_origins[1]",
                 "'https://b.example/' has a path or trailing slash (an origin is "
                 "scheme://host[:port])");
    expect_error("server:\n  cors_origins: [grafana.example.com]\n", EBSD_EINVAL, 2,
                 "server.cors_origins[0]",
                 "'grafana.example.com' is not \"*\" or an origin starting with http:// or "
                 "https://");
    expect_error("server:\n  cors_origins: [\"https://a.example\", \"https://a.example\"]\n",
                 EBSD_EINVAL, 2, "server.cors_origins[1]", "'https://a.example' is listed twice");
}

/* ---- redis: block, URL forms, errors naming file, line and key, EBSD_REDIS_URL */

/* fanout.state_file: a path, absolute and naming a file; "" (the default) is off */
static void test_fanout_state_file(void)
{
    clear_env();
    struct config c;
    struct config_error err;
    char path[64];
    CHECK_INT(load_text("fanout:\n  state_file: /var/lib/ebsd/sizehint.json\n", &c, &err, path),
              EBSD_OK);
    CHECK_STR(c.fanout_state_file, "/var/lib/ebsd/sizehint.json");
    CHECK_INT(c.list_partitions, 0); /* the other fanout keys keep their defaults */
    config_free(&c);
    /* fanout.volume_shares: auto, off or a count */
    static const struct {
        const char *text;
        uint32_t want;
    } shares[] = {{"auto", 0}, {"off", CONFIG_VOLUME_SHARES_OFF}, {"1", 1}, {"256", 256},
                  {"\"12\"", 12}};
    for (size_t i = 0; i < sizeof shares / sizeof shares[0]; i++) {
        char text[64];
        uint32_t got = 7;
        snprintf(text, sizeof text, "fanout:\n  volume_shares: %s\n", shares[i].text);
        CHECK_INT(load_text(text, &c, &err, path), EBSD_OK);
        CHECK(config_volume_shares_parse(c.fanout_volume_shares, &got));
        CHECK_INT(got, shares[i].want);
        config_free(&c);
    }
    CHECK_INT(load_text("fanout:\n  state_file: \"\"\n", &c, &err, path), EBSD_OK);
    CHECK_STR(c.fanout_state_file, "");
    config_free(&c);
    expect_error("fanout:\n  max_children: 4\n  state_file: sizehint.json\n", EBSD_EINVAL, 3,
                 "fanout.state_file", "'sizehint.json' is not an absolute file path");
    expect_error("fanout:\n  state_file: /var/lib/ebsd/\n", EBSD_EINVAL, 2, "fanout.state_file",
                 "'/var/lib/ebsd/' is not an absolute file path");
}

static void test_redis_block(void)
{
    clear_env();
    struct config c;
    struct config_error err;
    char path[64];
    CHECK_INT(load_text("redis:\n"
                        "  url: rediss://ebsd@cache.example:6380/3\n"
                        "  password_file: /run/secrets/redis\n"
                        "  key_prefix: \"prod:\"\n"
                        "  connect_timeout_ms: 800\n"
                        "  command_timeout_ms: 50\n"
                        "  ca_file: /etc/ca.pem\n",
                        &c, &err, path),
              EBSD_OK);
    CHECK_STR(c.redis_url, "rediss://ebsd@cache.example:6380/3");
    CHECK_STR(c.redis_password_file, "/run/secrets/redis");
    CHECK_STR(c.redis_key_prefix, "prod:");
    CHECK_INT(c.redis_connect_timeout_ms, 800);
    CHECK_INT(c.redis_command_timeout_ms, 50);
    CHECK_STR(c.redis_ca_file, "/etc/ca.pem");
    CHECK_INT(c.redis_replicas_hint, 1); /* default: this replica alone */
    config_free(&c);

    CHECK_INT(load_text("redis:\n  url: redis://h\n  replicas_hint: 6\n", &c, &err, path),
              EBSD_OK);
    CHECK_INT(c.redis_replicas_hint, 6);
    config_free(&c);

    CHECK_INT(load_text("redis:\n"
                        "  url: rediss://cfg.abc.use1.cache.amazonaws.com:6379\n"
                        "  iam_auth:\n"
                        "    user: ebsd-user\n"
                        "    cache: my-cache\n"
                        "    serverless: true\n",
                        &c, &err, path),
              EBSD_OK);
    CHECK_STR(c.redis_iam_user, "ebsd-user");
    CHECK_STR(c.redis_iam_cache, "my-cache");
    CHECK(c.redis_iam_serverless);
    config_free(&c);

    static const char *const good[] = {"redis://127.0.0.1", "redis://h:1/0",
                                       "redis://[::1]:6379/15", "unix:///run/redis.sock",
                                       "redis://user@host", "rediss://a.b-c_d:65535/65535"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "redis:\n  url: \"%s\"\n", good[i]);
        CHECK_INT(load_text(text, &c, &err, path), EBSD_OK);
        if (c.redis_url)
            CHECK_STR(c.redis_url, good[i]);
        config_free(&c);
    }
}

/* refresh.interval_s: 0 turns the refresher off; a day at most; errors name the key. */
static void test_refresh_block(void)
{
    clear_env();
    struct config c;
    struct config_error err;
    char path[64];
    CHECK_INT(load_text("refresh:\n  interval_s: 0\n", &c, &err, path), EBSD_OK);
    CHECK_INT(c.refresh_interval_s, 0);
    config_free(&c);
    CHECK_INT(load_text("refresh:\n  interval_s: 60\n", &c, &err, path), EBSD_OK);
    CHECK_INT(c.refresh_interval_s, 60);
    config_free(&c);
    CHECK_INT(load_text("refresh:\n", &c, &err, path), EBSD_OK);
    CHECK_INT(c.refresh_interval_s, 300);
    config_free(&c);
    expect_error("refresh:\n  interval_s: 86401\n", EBSD_EINVAL, 2, "refresh.interval_s",
                 "value 86401 out of range 0..86400");
    expect_error("refresh:\n  interval_s: soon\n", EBSD_EPARSE, 2, "refresh.interval_s",
                 "expected an unsigned integer, got 'soon'");
}

static void test_redis_errors(void)
{
    clear_env();
    expect_error("listen: 127.0.0.1:1\nredis:\n  url: http://h\n", EBSD_EINVAL, 3, "redis.url",
                 "must start with redis://, rediss:// or unix://");
    expect_error("redis:\n  url: redis://u:secret@h\n", EBSD_EINVAL, 2, "redis.url",
                 "carries a password; put it in redis.password_file");
    expect_error("redis:\n  url: redis://h:0\n", EBSD_EINVAL, 2, "redis.url",
                 "port is not a number in 1..65535");
    expect_error("redis:\n  url: redis://h:65536\n", EBSD_EINVAL, 2, "redis.url",
                 "port is not a number in 1..65535");
    expect_error("redis:\n  url: redis://h/x\n", EBSD_EINVAL, 2, "redis.url",
                 "database is not a number in 0..65535");
    expect_error("redis:\n  url: redis://\n", EBSD_EINVAL, 2, "redis.url", "has no host");
    expect_error("redis:\n  url: redis://h o\n", EBSD_EINVAL, 2, "redis.url",
                 "host has a character outside [A-Za-z0-9-._]");
    expect_error("redis:\n  url: unix://relative\n", EBSD_EINVAL, 2, "redis.url",
                 "needs an absolute socket path: unix:///path");
    expect_error("redis:\n  url: redis://h?db=1\n", EBSD_EINVAL, 2, "redis.url",
                 "has a query or fragment; none is supported");
    expect_error("redis:\n  url: redis://[::1\n", EBSD_EINVAL, 2, "redis.url",
                 "has an unclosed [ in the host");
    expect_error("redis:\n  key_prefix: \"a{b}\"\n", EBSD_EINVAL, 2, "redis.key_prefix",
                 "must be at most 64 printable bytes without space, '{' or '}'");
    expect_error("redis:\n  connect_timeout_ms: 5\n", EBSD_EINVAL, 2,
                 "redis.connect_timeout_ms", "value 5 out of range 10..60000");
    expect_error("redis:\n  command_timeout_ms: 0\n", EBSD_EINVAL, 2,
                 "redis.command_timeout_ms", "value 0 out of range 1..60000");
    expect_error("redis:\n  iam_auth:\n    user: u\n", EBSD_EINVAL, 2, "redis.iam_auth.cache",
                 "is required when redis.iam_auth.user is set");
    expect_error("redis:\n  iam_auth:\n    cache: c\n", EBSD_EINVAL, 2, "redis.iam_auth.user",
                 "is required when redis.iam_auth.cache is set");
    expect_error("redis:\n  password_file: /p\n  iam_auth:\n    user: u\n    cache: c\n",
                 EBSD_EINVAL, 2, "redis.password_file",
                 "iam_auth and password_file exclude each other");
    expect_error("redis:\n  iam_auth:\n    user: u\n    cache: c.d\n", EBSD_EINVAL, 4,
                 "redis.iam_auth.cache", "is not a cache name ([A-Za-z0-9-])");
    expect_error("redis:\n  url: redis://h\n  iam_auth:\n    user: u\n    cache: c\n",
                 EBSD_EINVAL, 2, "redis.url",
                 "ElastiCache IAM auth needs a rediss:// URL (the token is a credential)");
    expect_error("redis:\n  nope: 1\n", EBSD_EPARSE, 2, "redis.nope",
                 "unknown key (known here: url, password_file, key_prefix, connect_timeout_ms, "
                 "command_timeout_ms, ca_file, iam_auth, replicas_hint)");
    expect_error("redis:\n  replicas_hint: 0\n", EBSD_EINVAL, 2, "redis.replicas_hint",
                 "value 0 out of range 1..1000");
    expect_error("redis:\n  replicas_hint: 1001\n", EBSD_EINVAL, 2, "redis.replicas_hint",
                 "value 1001 out of range 1..1000");
    expect_error("redis:\n  replicas_hint: many\n", EBSD_EPARSE, 2, "redis.replicas_hint",
                 "expected an unsigned integer, got 'many'");
}

static void test_env_redis_url(void)
{
    clear_env();
    struct config c;
    struct config_error err;
    char path[64];
    const char *yaml = "redis:\n  url: redis://file.example\n";
    setenv("EBSD_REDIS_URL", "unix:///tmp/r.sock", 1);
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_STR(c.redis_url, "unix:///tmp/r.sock");
    config_free(&c);
    /* empty: the file's value stays */
    setenv("EBSD_REDIS_URL", "", 1);
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_STR(c.redis_url, "redis://file.example");
    config_free(&c);
    /* malformed: a config error naming the variable */
    setenv("EBSD_REDIS_URL", "redis://u:pw@h", 1);
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_EINVAL);
    CHECK_STR(err.key, "EBSD_REDIS_URL");
    CHECK(strstr(err.message, "password_file") != NULL);
    CHECK(strstr(err.message, "pw") == NULL); /* the password is never echoed */
    /* no file: defaults, then the environment; a bad URL is ignored */
    config_defaults(&c);
    config_apply_env(&c);
    CHECK_STR(c.redis_url, "");
    config_free(&c);
    setenv("EBSD_REDIS_URL", "redis://127.0.0.1:7000/2", 1);
    config_defaults(&c);
    config_apply_env(&c);
    CHECK_STR(c.redis_url, "redis://127.0.0.1:7000/2");
    config_free(&c);
    clear_env();
}

static void test_accounts(void)
{
    clear_env();
    struct config c;
    struct config_error err;
    char path[64];
    /* absent: one account named "default", no role, every region */
    CHECK_INT(load_text("regions: [us-east-1, eu-west-1]\n", &c, &err, path), EBSD_OK);
    CHECK_INT((int)c.naccounts, 1);
    CHECK_STR(c.accounts[0].name, "default");
    CHECK_STR(c.accounts[0].role_arn, "");
    CHECK(!c.accounts_given);
    CHECK(config_account_region_allowed(&c, &c.accounts[0], "eu-west-1"));
    config_free(&c);
    const char *yaml = "regions: [us-east-1, eu-west-1]\n"
                       "accounts:\n"
                       "  - name: prod\n"
                       "    role_arn: \"arn:aws:iam::111122223333:role/ebsd-read\"\n"
                       "    external_id: \"ext-1\"\n"
                       "    session_name: \"ebsd\"\n"
                       "    duration_s: 900\n"
                       "    regions: [eu-west-1]\n"
                       "  - name: base\n";
    CHECK_INT(load_text(yaml, &c, &err, path), EBSD_OK);
    CHECK_INT((int)c.naccounts, 2);
    CHECK(c.accounts_given);
    const struct config_account *a = config_account_find(&c, "prod");
    CHECK(a != NULL);
    CHECK_STR(a->role_arn, "arn:aws:iam::111122223333:role/ebsd-read");
    CHECK_STR(a->external_id, "ext-1");
    CHECK_STR(a->session_name, "ebsd");
    CHECK_INT((int)a->duration_s, 900);
    CHECK(config_account_region_allowed(&c, a, "eu-west-1"));
    CHECK(!config_account_region_allowed(&c, a, "us-east-1"));
    a = config_account_find(&c, "base");
    CHECK(a != NULL && a->role_arn[0] == '\0' && a->duration_s == 3600);
    CHECK(config_account_region_allowed(&c, a, "us-east-1"));
    CHECK(config_account_find(&c, "nope") == NULL);
    config_free(&c);
    expect_error("accounts:\n  - name: a\n  - name: a\n", EBSD_EINVAL, 3, "accounts[1].name",
                 "'a' is already the name of accounts[0]");
    expect_error("accounts:\n  - name: Prod\n", EBSD_EINVAL, 2, "accounts[0].name",
                 "'Prod' is not [a-z0-9][a-z0-9-]{0,31}");
    expect_error("accounts:\n  - name: all\n", EBSD_EINVAL, 2, "accounts[0].name",
                 "'all' is reserved (account=all aggregates)");
    expect_error("accounts:\n  - role_arn: \"\"\n", EBSD_EINVAL, 2, "accounts[0].name",
                 "every account needs a name");
    struct config bad;
    CHECK_INT(load_text("accounts:\n  - name: p\n    role_arn: \"arn:aws:iam::12:role/r\"\n", &bad,
                        &err, path), EBSD_EINVAL);
    CHECK_STR(err.key, "accounts[0].role_arn");
    CHECK_INT((int)err.line, 3);
    CHECK(strstr(err.message, "is not an IAM role ARN") != NULL);
    expect_error("accounts:\n  - name: p\n    duration_s: 899\n", EBSD_EINVAL, 3,
                 "accounts[0].duration_s", "value 899 out of range 900..43200");
    expect_error("accounts:\n  - name: p\n    duration_s: 43201\n", EBSD_EINVAL, 3,
                 "accounts[0].duration_s", "value 43201 out of range 900..43200");
    expect_error("regions: [us-east-1]\naccounts:\n  - name: p\n    regions: [us-east-1, "
                 "eu-west-1]\n", EBSD_EINVAL, 4, "accounts[0].regions[1]",
                 "'eu-west-1' is not one of the top-level regions");
    expect_error("accounts:\n  - name: p\n    external_id: \"x\"\n", EBSD_EINVAL, 3,
                 "accounts[0].external_id", "is not 2..1224 of [A-Za-z0-9_+=,.@:/-]");
    expect_error("accounts:\n  - name: p\n    session_name: \"a b\"\n", EBSD_EINVAL, 3,
                 "accounts[0].session_name", "'a b' is not 2..64 of [A-Za-z0-9_+=,.@-]");
    expect_error("accounts:\n  - name: p\n    colour: red\n", EBSD_EPARSE, 3,
                 "accounts[0].colour",
                 "unknown key (known here: name, role_arn, external_id, session_name, "
                 "duration_s, regions)");
}

static void load_str(const char *text, struct config *c)
{
    struct config_error err;
    CHECK_INT(config_load_buffer("<memory>", text, strlen(text), c, &err), EBSD_OK);
}

/* A reload applies changed accounts (credsvc_reconfigure): equality over every field tells
 * whether there is anything to apply. */
static void test_keep_accounts(void)
{
    const char *run = "regions: [us-east-1, eu-west-1]\n"
                      "accounts:\n"
                      "  - name: prod\n"
                      "    role_arn: \"arn:aws:iam::111122223333:role/r\"\n"
                      "    external_id: \"x-1\"\n"
                      "    regions: [eu-west-1]\n"
                      "  - name: dev\n";
    struct config cur, same, next, gone, none;
    load_str(run, &cur);
    load_str(run, &same);
    CHECK(config_accounts_equal(&cur, &same));
    load_str("regions: [us-east-1, eu-west-1, ap-south-1]\n"
             "accounts:\n"
             "  - name: prod\n"
             "    role_arn: \"arn:aws:iam::111122223333:role/r\"\n"
             "    external_id: \"x-2\"\n"
             "    regions: [eu-west-1]\n"
             "  - name: dev\n", &next);
    CHECK(!config_accounts_equal(&cur, &next)); /* one external id */
    load_str("regions: [us-east-1]\n", &gone);
    CHECK(!config_accounts_equal(&cur, &gone));
    load_str("regions: [us-east-1]\n", &none);
    CHECK(config_accounts_equal(&gone, &none));
    config_free(&cur);
    config_free(&same);
    config_free(&next);
    config_free(&gone);
    config_free(&none);
}

TEST_MAIN(T(test_accounts), T(test_defaults), T(test_empty_documents), T(test_full_file),
          T(test_partial_file_keeps_defaults), T(test_example_file), T(test_unknown_keys),
          T(test_wrong_types), T(test_out_of_range), T(test_cross_field_rules),
          T(test_duplicate_keys), T(test_invalid_yaml), T(test_unreadable), T(test_load_buffer),
          T(test_env_region), T(test_env_endpoint), T(test_edge_lists), T(test_redis_block), T(test_fanout_state_file),
          T(test_redis_errors), T(test_env_redis_url), T(test_env_retry), T(test_refresh_block),
          T(test_keep_accounts))
