/* main.c - ebsd's command line: run the service, check a config, or run one query; and the
 * start-up privilege policy (refuse root, or drop to security.run_as_user after binding). */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "once.h"
#include "httpc.h"
#include "log.h"
#include "loop.h"
#include "mem.h"
#include "reqid.h"
#include "daemon.h"
#include "version.h"

#define EXIT_CONFIG 2

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: ebsd [--config FILE] [--listen HOST:PORT]\n"
            "       ebsd --check-config FILE\n"
            "       ebsd [--config FILE] --once volumes-total [--region R]\n"
            "       ebsd [--config FILE] --once instance-volumes ID [--region R]\n"
            "       ebsd --version | --help\n"
            "\n"
            "Serves how much EBS storage is attached to the EC2 instances of an account:\n"
            "GET /volumes/total, GET /instances/{id}/volumes, /healthz, /readyz, /metrics.\n"
            "\n"
            "  -c, --config FILE        YAML configuration (see config/ebsd.yaml)\n"
            "  -l, --listen HOST:PORT   listen address, overrides the file (port 0: any free)\n"
            "      --check-config FILE  validate FILE and exit 0 (valid) or 2 (invalid)\n"
            "      --once QUERY [ID]    run one query with the full credential chain, print\n"
            "                           the JSON the endpoint would return, and exit\n"
            "      --region R           region for --once (default: the configured default)\n"
            "      --allow-root         serve as root (uid 0) without security.run_as_user\n"
            "                           (same as security.allow_root: true)\n"
            "  -V, --version            print the version and exit\n"
            "  -h, --help               print this help and exit\n"
            "\n"
            "Environment: AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_EC2,\n"
            "AWS_ENDPOINT_URL and the AWS SDKs' credential variables.\n"
            "Signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads the config file.\n");
}

/* Raises the soft descriptor limit towards the hard one (at most 65536): every connection
 * costs a descriptor, and the common default soft limit of 1024 is below the default
 * server.max_connections. Warns when the connections could still exhaust it. */
static void raise_nofile(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_warn("rlimit", "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return;
    }
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("rlimit", "setrlimit(RLIMIT_NOFILE, %lu): %s", (unsigned long)want,
                     strerror(errno));
        else
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    /* The pipes of the workers and a few files need descriptors besides the connections. */
    uint64_t need = (uint64_t)cfg->max_connections + 2ull * cfg->max_children + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log_warn("rlimit", "descriptor limit %lu is below server.max_connections + workers "
                 "(%llu): a connection flood pauses accepting instead of being answered 503",
                 (unsigned long)rl.rlim_cur, (unsigned long long)need);
}

/* Loads the bearer tokens named by the config (none when the key is ""). */
static ebsd_status load_tokens(const struct config *cfg, struct auth **out)
{
    char msg[600];
    *out = NULL;
    if (!cfg->auth_tokens_file[0])
        return EBSD_OK;
    ebsd_status st = auth_load(cfg->auth_tokens_file, out, msg, sizeof msg);
    if (st != EBSD_OK)
        fprintf(stderr, "ebsd: security.auth_tokens_file: %s\n", msg);
    return st;
}

/* Becomes user for good (supplementary groups, gid, uid), then checks root cannot be
 * regained. EBSD_ENOTFOUND for an unknown user, EBSD_EINVAL for uid 0, EBSD_EIO when a
 * call fails. The listen socket is bound by now, so a port below 1024 still works. */
static ebsd_status drop_privileges(const char *user)
{
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        fprintf(stderr, "ebsd: security.run_as_user: no user '%s'%s%s\n", user,
                errno ? ": " : "", errno ? strerror(errno) : "");
        return EBSD_ENOTFOUND;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (uid == 0) {
        fprintf(stderr, "ebsd: security.run_as_user: '%s' is root\n", user);
        return EBSD_EINVAL;
    }
    if (initgroups(user, gid) != 0) {
        fprintf(stderr, "ebsd: initgroups(%s): %s\n", user, strerror(errno));
        return EBSD_EIO;
    }
    if (setgid(gid) != 0) {
        fprintf(stderr, "ebsd: setgid(%u): %s\n", (unsigned)gid, strerror(errno));
        return EBSD_EIO;
    }
    if (setuid(uid) != 0) {
        fprintf(stderr, "ebsd: setuid(%u): %s\n", (unsigned)uid, strerror(errno));
        return EBSD_EIO;
    }
    if (setuid(0) != -1 || geteuid() != uid || getegid() != gid) {
        fprintf(stderr, "ebsd: still able to regain root after dropping to '%s'\n", user);
        return EBSD_EIO;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        log_warn("privileges", "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
    log_info("privileges", "running as user %s (uid %u, gid %u)", user, (unsigned)uid,
             (unsigned)gid);
    return EBSD_OK;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *listen_override = NULL, *check_path = NULL;
    const char *once = NULL, *region = NULL;
    bool allow_root = false;
    enum { OPT_CHECK = 1000, OPT_ONCE, OPT_REGION, OPT_ALLOW_ROOT };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"check-config", required_argument, NULL, OPT_CHECK},
        {"once", required_argument, NULL, OPT_ONCE},
        {"region", required_argument, NULL, OPT_REGION},
        {"allow-root", no_argument, NULL, OPT_ALLOW_ROOT},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:l:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'l': listen_override = optarg; break;
        case OPT_CHECK: check_path = optarg; break;
        case OPT_ONCE: once = optarg; break;
        case OPT_REGION: region = optarg; break;
        case OPT_ALLOW_ROOT: allow_root = true; break;
        case 'V': printf("ebsd %s\n", EBSD_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_CONFIG;
        }
    }

    struct config *cfg = xcalloc(1, sizeof *cfg);
    struct config_error err;
    if (check_path) {
        if (config_load(check_path, cfg, &err) != EBSD_OK) {
            fprintf(stderr, "ebsd: %s\n", err.message);
            free(cfg);
            return EXIT_CONFIG;
        }
        struct auth *auth = NULL;
        if (load_tokens(cfg, &auth) != EBSD_OK) {
            config_free(cfg);
            free(cfg);
            return EXIT_CONFIG;
        }
        auth_free(auth);
        printf("%s: configuration is valid\n", check_path);
        config_free(cfg);
        free(cfg);
        return 0;
    }
    if (config_path) {
        if (config_load(config_path, cfg, &err) != EBSD_OK) {
            fprintf(stderr, "ebsd: %s\n", err.message);
            free(cfg);
            return EXIT_CONFIG;
        }
    } else {
        config_defaults(cfg);
        config_apply_env(cfg);
    }
    if (listen_override) {
        free(cfg->listen);
        cfg->listen = xstrdup(listen_override);
        cfg->listen_overridden = true;
    }
    log_setup(log_format_parse(cfg->log_format), log_level_parse(cfg->log_level));
    httpc_global_init();
    reqid_init();

    if (once) {
        const char *id = NULL;
        if (strcmp(once, "instance-volumes") == 0) {
            if (optind >= argc) {
                fprintf(stderr, "ebsd: --once instance-volumes needs an instance id\n");
                config_free(cfg);
                free(cfg);
                return EXIT_CONFIG;
            }
            id = argv[optind];
        } else if (strcmp(once, "volumes-total") != 0) {
            fprintf(stderr, "ebsd: --once takes volumes-total or instance-volumes ID\n");
            config_free(cfg);
            free(cfg);
            return EXIT_CONFIG;
        }
        int rc = once_run(cfg, once, id, region);
        config_free(cfg);
        free(cfg);
        return rc;
    }

    struct loop *loop = NULL;
    struct daemon *d = NULL;
    struct auth *auth = NULL;
    int rc = EXIT_CONFIG;
    bool as_root = geteuid() == 0;
    if (as_root && !cfg->run_as_user[0] && !cfg->allow_root && !allow_root) {
        fprintf(stderr, "ebsd: refusing to run as root (uid 0): set security.run_as_user to "
                "drop to an unprivileged user after binding, or allow root with "
                "security.allow_root: true or --allow-root\n");
        goto out;
    }
    if (load_tokens(cfg, &auth) != EBSD_OK)
        goto out;
    rc = 1;
    raise_nofile(cfg);
    if (loop_new(&loop) != EBSD_OK)
        goto out;
    if (daemon_new(loop, cfg, config_path, auth, &d) != EBSD_OK)
        goto out;
    auth = NULL; /* owned by the daemon now, */
    const char *user = cfg->run_as_user;
    cfg = NULL;  /* and so is cfg */
    if (user[0]) {
        if (!as_root) {
            log_info("privileges", "not started as root: security.run_as_user '%s' ignored",
                     user);
        } else {
            ebsd_status st = drop_privileges(user);
            if (st != EBSD_OK) {
                rc = st == EBSD_ENOTFOUND ? EXIT_CONFIG : 1;
                goto out;
            }
        }
    }
    if (daemon_run(d) == EBSD_OK)
        rc = 0;
out:
    auth_free(auth);
    if (cfg) {
        config_free(cfg);
        free(cfg);
    }
    daemon_free(d);
    loop_free(loop);
    return rc;
}
