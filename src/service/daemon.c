/* daemon.c - the composition root: module wiring, signals, drain, reload, sd_notify (see
 * daemon.h). */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "api.h"
#include "budgetshare.h"
#include "clock.h"
#include "credsvc.h"
#include "engine.h"
#include "log.h"
#include "mem.h"
#include "redis.h"
#include "redisshare.h"
#include "sizehint.h"
#include "storage.h"
#include "sdnotify.h"
#include "server.h"
#include "telemetry.h"
#include "volumes.h"
#include "refresh.h"
#include "worker.h"

struct daemon {
    struct loop *loop;
    struct server *srv;
    char *config_path;
    int sig_fd;
    bool draining;
    struct loop_timer *drain_timer;
};

/* Readiness notices to systemd are best effort: a failure is worth a debug line only. */
static void notify(ebsd_status st)
{
    if (st != EBSD_OK)
        log_debug("sdnotify", "notification to systemd failed: %s", status_str(st));
}

/* Gives every module the running config: at start and after each reload. */
static void configure(struct daemon *d, const struct config *cfg, bool first)
{
    if (first)
        telemetry_init();
    worker_configure(cfg, credsvc_current);
    if (first)
        worker_prepare(); /* before engine_init forks the zygote, which inherits it */
    engine_init(d->loop, cfg, credsvc_ready);
    if (first) {
        credsvc_configure(cfg);
        credsvc_init(d->loop);
    }
    volumes_configure(d->srv, cfg);
    refresh_configure(d->loop, d->srv, cfg);
}

static void on_drain_deadline(struct loop *l, void *arg)
{
    (void)l;
    struct daemon *d = arg;
    d->drain_timer = NULL;
    const struct config *cfg = server_config(d->srv);
    log_warn("drain", "drain time of %u s is over with %u requests in flight; stopping",
             cfg->drain_timeout_s, server_inflight(d->srv));
    server_stop_now(d->srv);
}

static void start_drain(struct daemon *d, const char *why)
{
    if (d->draining)
        return;
    d->draining = true;
    refresh_shutdown(); /* no new background work while draining */
    engine_drain();     /* and no spare workers */
    notify(sdnotify_stopping());
    const struct config *cfg = server_config(d->srv);
    log_info("drain", "%s: no longer accepting connections; draining %u in-flight requests "
             "for up to %u s", why, server_inflight(d->srv), cfg->drain_timeout_s);
    d->drain_timer = loop_timer_start(d->loop,
                                      clock_now_ms() + (int64_t)cfg->drain_timeout_s * 1000,
                                      on_drain_deadline, d);
    server_quiesce(d->srv);
}

/* What ebsd knows of an account whose credentials a reload changed or removed. */
static void forget_account(const char *name)
{
    volumes_forget_account(name);
    storage_forget_account(name);
}

static void reload(struct daemon *d)
{
    if (!d->config_path) {
        log_warn("reload", "SIGHUP ignored: ebsd was started without --config");
        return;
    }
    notify(sdnotify_reloading());
    struct config *next = xcalloc(1, sizeof *next);
    struct config_error err;
    if (config_load(d->config_path, next, &err) != EBSD_OK) {
        log_error("reload", "keeping the running configuration: %s", err.message);
        free(next);
        notify(sdnotify_ready());
        return;
    }
    struct auth *auth = NULL;
    if (next->auth_tokens_file[0]) {
        char msg[600];
        if (auth_load(next->auth_tokens_file, &auth, msg, sizeof msg) != EBSD_OK) {
            log_error("reload", "keeping the running configuration and tokens: %s", msg);
            config_free(next);
            free(next);
            notify(sdnotify_ready());
            return;
        }
    }
    bool accounts_changed = !config_accounts_equal(server_config(d->srv), next);
    server_reconfigure(d->srv, next, auth);
    const struct config *cfg = server_config(d->srv);
    log_setup(log_format_parse(cfg->log_format), log_level_parse(cfg->log_level));
    configure(d, cfg, false);
    redisshare_reload(cfg);
    budgetshare_configure(cfg);
    if (accounts_changed) {
        /* the router already takes the new names; credsvc fetches what is new or changed
         * in workers, and the answers of a changed or removed account are dropped */
        credsvc_reconfigure(cfg, forget_account);
        sizehint_start(d->loop, cfg); /* the new targets' hints, from the file or Redis */
    }
    log_info("reload", "configuration reloaded from %s", d->config_path);
    notify(sdnotify_ready());
}

static void on_signal(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)events;
    struct daemon *d = arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        switch (si.ssi_signo) {
        case SIGTERM:
            start_drain(d, "SIGTERM");
            break;
        case SIGINT:
            start_drain(d, "SIGINT");
            break;
        case SIGHUP:
            reload(d);
            break;
        case SIGCHLD:
            engine_on_sigchld();
            break;
        default:
            break;
        }
    }
}

static ebsd_status setup_signals(struct daemon *d)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        log_error("signals", "sigprocmask: %s", strerror(errno));
        return EBSD_EIO;
    }
    signal(SIGPIPE, SIG_IGN);
    d->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (d->sig_fd < 0) {
        log_error("signals", "signalfd: %s", strerror(errno));
        return EBSD_EIO;
    }
    return loop_add_fd(d->loop, d->sig_fd, EPOLLIN, on_signal, d);
}

ebsd_status daemon_new(struct loop *l, struct config *cfg, const char *config_path,
                       struct auth *auth, struct daemon **out)
{
    struct daemon *d = xcalloc(1, sizeof *d);
    d->loop = l;
    d->sig_fd = -1;
    d->config_path = config_path ? xstrdup(config_path) : NULL;
    ebsd_status st = setup_signals(d);
    if (st != EBSD_OK)
        goto fail;
    if (cfg->redis_url && *cfg->redis_url && *cfg->redis_password_file) {
        /* an unreadable password file is a start-up error, like the token file */
        char *pw = NULL;
        st = redis_password_load(cfg->redis_password_file, &pw);
        if (pw) {
            memset(pw, 0, strlen(pw));
            free(pw);
        }
        if (st != EBSD_OK) {
            log_error("redis", "cannot read redis.password_file %s: %s",
                      cfg->redis_password_file, status_str(st));
            goto fail;
        }
    }
    st = server_new(l, cfg, auth, api_dispatch, telemetry_request, &d->srv);
    if (st != EBSD_OK)
        goto fail; /* the caller still owns cfg and auth */
    configure(d, cfg, true);
    /* after the credentials service (ElastiCache IAM tokens are made from its credentials);
     * Redis is optional at run time, so a failure here leaves the replica on its own */
    if (redisshare_start(l, cfg) != EBSD_OK)
        log_error("redis", "not sharing with other replicas: Redis could not be set up");
    budgetshare_start(l, cfg); /* on redisshare's connection: nothing without it */
    sizehint_start(l, cfg);    /* after engine_init and redisshare_start */
    *out = d;
    return EBSD_OK;
fail:
    if (d->sig_fd >= 0) {
        loop_del_fd(l, d->sig_fd);
        close(d->sig_fd);
    }
    free(d->config_path);
    free(d);
    return st;
}

ebsd_status daemon_run(struct daemon *d)
{
    server_announce(d->srv);
    notify(sdnotify_ready());
    return server_run(d->srv);
}

void daemon_free(struct daemon *d)
{
    if (!d)
        return;
    if (d->drain_timer)
        loop_timer_stop(d->loop, d->drain_timer);
    refresh_shutdown();
    server_close(d->srv); /* resumes suspended requests first: their owners detach */
    volumes_shutdown();
    budgetshare_stop();
    sizehint_stop(); /* the last counts to the file, before Redis goes */
    redisshare_stop();
    engine_shutdown();
    credsvc_shutdown();
    telemetry_shutdown();
    server_free(d->srv);
    if (d->sig_fd >= 0) {
        loop_del_fd(d->loop, d->sig_fd);
        close(d->sig_fd);
    }
    free(d->config_path);
    free(d);
}
