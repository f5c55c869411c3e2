/* main.c - ebsd's command line: run the service, check a config, or run one query. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fanout.h"
#include "httpc.h"
#include "log.h"
#include "loop.h"
#include "mem.h"
#include "reqid.h"
#include "server.h"
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
            "  -V, --version            print the version and exit\n"
            "  -h, --help               print this help and exit\n"
            "\n"
            "Environment: AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_EC2,\n"
            "AWS_ENDPOINT_URL and the AWS SDKs' credential variables.\n"
            "Signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads the config file.\n");
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *listen_override = NULL, *check_path = NULL;
    const char *once = NULL, *region = NULL;
    enum { OPT_CHECK = 1000, OPT_ONCE, OPT_REGION };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"check-config", required_argument, NULL, OPT_CHECK},
        {"once", required_argument, NULL, OPT_ONCE},
        {"region", required_argument, NULL, OPT_REGION},
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
        int rc = fanout_once(cfg, once, id, region);
        config_free(cfg);
        free(cfg);
        return rc;
    }

    struct loop *loop = NULL;
    struct server *srv = NULL;
    int rc = 1;
    if (loop_new(&loop) != EBSD_OK)
        goto out;
    if (server_new(loop, cfg, config_path, &srv) != EBSD_OK) {
        config_free(cfg);
        free(cfg);
        goto out;
    }
    cfg = NULL; /* owned by the server now */
    if (server_run(srv) == EBSD_OK)
        rc = 0;
out:
    server_free(srv);
    loop_free(loop);
    return rc;
}
