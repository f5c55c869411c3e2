/* credsvc.c - the process's credentials and their refresh in a worker (see credsvc.h). */
#include "credsvc.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "engine.h"
#include "frame.h"
#include "log.h"
#include "wire.h"

static struct {
    struct loop *loop;
    bool ready;
    struct creds creds;
    bool have_creds;
    bool refreshing;
    struct loop_timer *timer;
} g;

static void schedule_refresh(void);

/* One identity today: every target of the default account uses it. */
bool credsvc_ready(const struct target *t)
{
    (void)t;
    return g.have_creds;
}

const struct creds *credsvc_current(const struct target *t)
{
    (void)t;
    return g.have_creds ? &g.creds : NULL;
}

bool credsvc_status(const char **source, int64_t *expires_in_s)
{
    if (source)
        *source = g.have_creds ? g.creds.source : "none";
    if (expires_in_s)
        *expires_in_s = g.have_creds && g.creds.expiration
                            ? (int64_t)g.creds.expiration - (int64_t)time(NULL)
                            : -1;
    return g.have_creds;
}

/* In the worker: the chain, then one CREDS frame (or ERROR). */
static int refresh_main(int fd, void *arg)
{
    (void)arg;
    struct creds c;
    struct creds_error ce = {0};
    memset(&c, 0, sizeof c);
    ebsd_status st = creds_resolve(clock_now_ms() + 10000, &c, &ce);
    if (st != EBSD_OK) {
        struct ec2_error err = {0};
        snprintf(err.code, sizeof err.code, "CredentialsUnavailable");
        snprintf(err.message, sizeof err.message, "%.60s: %.180s", ce.source, ce.message);
        return wire_put_error(fd, st, &err, NULL) == EBSD_OK ? 0 : 1;
    }
    st = frame_write(fd, WIRE_CREDS, &c, sizeof c);
    creds_wipe(&c);
    return st == EBSD_OK ? 0 : 1;
}

static void on_refresh_frame(void *arg, int type, const char *data, size_t len)
{
    (void)arg;
    if (type == WIRE_CREDS && len == sizeof(struct creds)) {
        memcpy(&g.creds, data, sizeof g.creds);
        g.creds.source[sizeof g.creds.source - 1] = '\0';
        g.have_creds = true;
        log_info("credentials", "credentials loaded from %s", g.creds.source);
    } else if (type == WIRE_ERROR) {
        struct wire_error e;
        log_warn("credentials", "credential refresh failed: %s",
                 wire_decode_error(data, len, &e) == EBSD_OK ? e.message
                                                             : "(unreadable answer)");
    }
}

static void on_refresh_end(void *arg)
{
    (void)arg;
    g.refreshing = false;
    schedule_refresh();
}

static void on_timer(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
    g.timer = NULL;
    if (g.refreshing)
        return;
    g.refreshing = true;
    const struct engine_service svc = {refresh_main, NULL, on_refresh_frame, on_refresh_end};
    engine_run_service(&svc);
}

static void schedule_refresh(void)
{
    if (g.timer || g.refreshing || !g.loop)
        return;
    int64_t in_ms;
    if (!g.have_creds) {
        in_ms = 30000; /* try again */
    } else if (!g.creds.expiration) {
        return; /* static credentials never expire */
    } else {
        /* refresh 5 minutes (or half the remaining life) ahead of expiry */
        int64_t left = ((int64_t)g.creds.expiration - (int64_t)time(NULL)) * 1000;
        int64_t ahead = 300000 < left / 2 ? 300000 : left / 2;
        in_ms = left - ahead;
        if (in_ms < 1000)
            in_ms = 1000;
    }
    g.timer = loop_timer_start(g.loop, clock_now_ms() + in_ms, on_timer, NULL);
}

void credsvc_init(struct loop *l)
{
    g.loop = l;
    if (g.ready)
        return;
    g.ready = true;
    struct creds_error ce = {0};
    if (creds_resolve(clock_now_ms() + 5000, &g.creds, &ce) == EBSD_OK) {
        g.have_creds = true;
        log_info("credentials", "credentials loaded from %s", g.creds.source);
    } else {
        log_warn("credentials", "no usable credentials yet (%s: %s); retrying in the "
                 "background", ce.source, ce.message);
    }
    schedule_refresh();
}

void credsvc_shutdown(void)
{
    if (g.timer)
        loop_timer_stop(g.loop, g.timer);
    g.timer = NULL;
    g.refreshing = false;
    creds_wipe(&g.creds);
    g.have_creds = false;
    g.ready = false;
}
