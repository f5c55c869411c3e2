/* config.h - ebsd's configuration: one YAML file parsed with libcyaml against a schema
 * (every key documented in config/ebsd.yaml), then environment overrides as AWS tooling
 * sets them, then command-line overrides (applied by main). */
#ifndef EBSD_CONFIG_H
#define EBSD_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "realip.h"
#include "status.h"

#define CONFIG_MAX_REGIONS 32
#define CONFIG_MAX_TRUSTED_PROXIES 64 /* server.trusted_proxies entries */
#define CONFIG_MAX_CORS_ORIGINS 64    /* server.cors_origins entries */
#define CONFIG_MAX_ACCOUNTS 64        /* accounts entries */

/* One entry of `accounts:` (issue 16): an AWS account reached with the base credentials or
 * through AssumeRole of role_arn. Strings owned by the config; "" when not given. */
struct config_account {
    char *name;                /* [a-z0-9][a-z0-9-]{0,31}, unique */
    char *role_arn;            /* "" = the credential chain itself */
    char role_account[13];     /* the role's AWS account id (from role_arn), "" without one */
    char *external_id;         /* "" = none */
    char *session_name;        /* "" = "ebsd-<hostname>" */
    uint32_t duration_s;       /* 900..43200, default 3600 */
    char *regions[CONFIG_MAX_REGIONS]; /* allowed for this account, each in cfg->regions */
    size_t nregions;           /* 0 = every top-level region */
};

struct config_route {
    uint32_t timeout_ms;       /* default deadline (Lambda "timeout"), default 10000 */
    uint32_t memory_mb;        /* memory each child may add (Lambda "memory size"), 128 */
    uint32_t cache_ttl_s;      /* default 60 */
};

#define CONFIG_VOLUME_SHARES_OFF UINT32_MAX

struct config {
    char *listen;              /* "HOST:PORT", default "127.0.0.1:8080" */
    bool listen_overridden;    /* --listen gave it: a reload keeps it, whatever the file says */
    char *regions[CONFIG_MAX_REGIONS]; /* allowed regions; regions[0] is the default */
    size_t nregions;           /* default: 1, from AWS_REGION / AWS_DEFAULT_REGION or us-east-1 */

    /* ec2 */
    char *ec2_endpoint;        /* "" = derived from the region */
    char *ca_bundle;           /* "" = system trust store */
    uint32_t max_attempts;     /* 3 */
    uint32_t instance_page_size; /* 1000 (5..1000) */
    uint32_t volume_page_size;   /* 500 (5..500) */
    double rate_limit;         /* EC2 calls per second per target and action class, 10; 0 = off */
    double rate_burst;         /* 50 */
    uint32_t connect_timeout_ms; /* 2000: per EC2 attempt, TCP and TLS set-up */
    uint32_t read_timeout_ms;    /* 2500: per EC2 attempt, first byte, then each stall */

    /* server */
    uint32_t max_connections;  /* 1024 */
    uint32_t max_connections_per_ip; /* 128 */
    uint32_t idle_timeout_s;   /* 75 (above the ALB's 60 s idle timeout) */
    uint32_t header_timeout_s; /* 10: a request (head and body) must arrive within this */
    uint32_t max_header_bytes; /* 16384 */
    uint32_t drain_timeout_s;  /* 25 (inside the 30 s ECS and Kubernetes give) */

    /* routes */
    struct config_route volumes_total;
    struct config_route instance_volumes;
    uint32_t max_timeout_ms;   /* ceiling for ?timeout_ms=, 29000 (API Gateway's limit) */

    /* fan-out */
    uint32_t max_children;     /* 32: children alive at once across all requests */
    uint32_t group_size;       /* 200: instance ids per DescribeVolumes child */
    uint32_t list_partitions;  /* 0 (auto): DescribeInstances listers side by side */
    char *fanout_volume_shares; /* auto, off or 1..256 (config_volume_shares_parse) */
    uint32_t queue_timeout_ms; /* 2000: wait for child capacity before 503 */
    uint32_t worker_nice;      /* 10: children's nice increment over the parent */
    uint32_t spare_workers;    /* 16: workers forked ahead, while nothing runs (proc_spares) */
    char *fanout_state_file;   /* "" = off: per-target instance counts kept across restarts */

    /* cache */
    uint32_t cache_max_entries;   /* 10000 */
    uint64_t cache_max_bytes;     /* 67108864 */
    uint32_t stale_if_error_s;    /* 300 */
    uint32_t stale_while_revalidate_s; /* 30 */
    uint32_t negative_ttl_s;      /* 10 */
    uint32_t min_refresh_s;       /* 10: a forced refresh fetches only an answer this old */

    /* log */
    char *log_format;          /* "json" | "text" */
    char *log_level;           /* "debug" | "info" | "warn" | "error" */

    /* security */
    char *auth_tokens_file;    /* "" = no bearer-token auth */
    char *run_as_user;         /* "" = stay as started */
    bool allow_root;           /* false */

    /* server: the edge (realip.h, cors.h) */
    struct realip_cidr *trusted_proxies; /* server.trusted_proxies, parsed; default none */
    size_t ntrusted_proxies;
    char **trusted_proxy_texts; /* the same entries as written (logs, reload comparisons) */
    size_t ntrusted_proxy_texts;
    char **cors_origins;        /* server.cors_origins; default none = no CORS headers */
    size_t ncors_origins;
    /* redis (shared state between replicas; docs/ARCHITECTURE.md "Redis") */
    char *redis_url;           /* "" = off; EBSD_REDIS_URL overrides (src/store/redisurl.h) */
    char *redis_password_file; /* "" = no AUTH password; read at start and on reload */
    char *redis_key_prefix;    /* "ebsd:" */
    uint32_t redis_connect_timeout_ms; /* 500 */
    uint32_t redis_command_timeout_ms; /* 200 */

    /* refresh: the background refresher of every target's storage (src/service/refresh.c) */
    uint32_t refresh_interval_s;  /* 300; 0 = off */
    char *redis_ca_file;       /* rediss:// trust: "" = system store */
    char *redis_iam_user;      /* redis.iam_auth.user: "" = no ElastiCache IAM auth */
    char *redis_iam_cache;     /* redis.iam_auth.cache: replication group or serverless cache */
    bool redis_iam_serverless; /* redis.iam_auth.serverless: ResourceType=ServerlessCache */
    uint32_t redis_replicas_hint; /* 1: live replicas assumed while Redis is lost before any
                                   * count was read (src/service/budgetshare.c) */
    /* accounts (issue 16): at least one; absent = one named "default" with no role */
    struct config_account *accounts;
    size_t naccounts;
    bool accounts_given;       /* the file has an `accounts:` list */
};

struct config_error {
    char file[512];
    unsigned line;             /* 0 when unknown (unreadable file) */
    char key[128];             /* dotted path of the key ("server.idle_timeout_s"), or "" */
    char message[512];         /* full message: "FILE:LINE: key 'K': what is wrong";
                                * "FILE:LINE: what" with no key, "FILE: what" with no line */
};

/* fanout.volume_shares, the attached-volume shares listed beside the instance listers:
 * "auto" (0: sized from the last listing), "off" (CONFIG_VOLUME_SHARES_OFF: the volumes by
 * instance ids) or 1..256. False for anything else. */
bool config_volume_shares_parse(const char *s, uint32_t *out);

/* Fills cfg with every default (regions from AWS_REGION/AWS_DEFAULT_REGION, else us-east-1).
 * Caller frees with config_free. */
void config_defaults(struct config *cfg);

/* Loads path over the defaults and applies environment overrides (AWS_REGION,
 * AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL). On failure cfg is left
 * freed/empty (all zero) and err names file, line and key. EBSD_EIO (unreadable),
 * EBSD_ETOOBIG (file over 1 MiB), EBSD_EPARSE (invalid YAML, unknown or duplicate key,
 * wrong type), EBSD_EINVAL (out-of-range value). On success caller frees with config_free. */
EBSD_MUST_CHECK ebsd_status config_load(const char *path, struct config *cfg,
                                        struct config_error *err);

/* config_load on a document already in memory (the fuzzing entry point): name is what
 * errors call the file; data need not be NUL-terminated. Same results and ownership. */
EBSD_MUST_CHECK ebsd_status config_load_buffer(const char *name, const char *data, size_t len,
                                               struct config *cfg, struct config_error *err);

/* Applies environment overrides to cfg (config_load calls this; main calls it when no file).
 * Also resolves the retry settings (retrycfg.h) into cfg->max_attempts and this process's
 * retry_settings_set. */
void config_apply_env(struct config *cfg);

/* The account named name, or NULL. */
const struct config_account *config_account_find(const struct config *cfg, const char *name);
/* True if region is allowed for account a (its own regions, else the top-level ones). */
bool config_account_region_allowed(const struct config *cfg, const struct config_account *a,
                                   const char *region);

/* True if region is one of cfg->regions. */
bool config_region_allowed(const struct config *cfg, const char *region);

/* True if a and b configure the same accounts in the same order: names, roles, external
 * ids, session names, durations and regions. */
bool config_accounts_equal(const struct config *a, const struct config *b);


void config_free(struct config *cfg);

#endif
