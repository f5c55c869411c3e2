/* credsvc.c - each account's credentials and their refresh in a worker (see credsvc.h). */
#include "credsvc.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acctcreds.h"
#include "clock.h"
#include "engine.h"
#include "frame.h"
#include "log.h"
#include "mem.h"
#include "wire.h"

/* One account: its spec (owned copies of the config's strings) and its state. */
struct acct {
    char name[32];
    char *role_arn, *external_id, *session_name;
    int duration_s;
    char region[32];          /* STS region: the account's first region, else the default */
    bool want_id;             /* no role: learn the account id with GetCallerIdentity */
    struct creds creds;
    bool have_creds;
    char account_id[13];
    bool refreshing;
    struct loop_timer *timer;
    char last_outcome[64];
    char last_message[256];
    int64_t last_fetch_wall_ms;
    unsigned long long refreshes, failures;
};

static struct {
    struct loop *loop;
    bool ready;
    struct acct *accts;
    size_t n;
} g;

static void schedule_refresh(struct acct *a);

static void acct_set(struct acct *a, const char *name, const char *role, const char *ext,
                     const char *session, int duration, const char *region, bool want_id)
{
    memset(a, 0, sizeof *a);
    str_copy(a->name, sizeof a->name, name);
    a->role_arn = xstrdup(role ? role : "");
    a->external_id = xstrdup(ext ? ext : "");
    a->session_name = xstrdup(session ? session : "");
    a->duration_s = duration;
    str_copy(a->region, sizeof a->region, region ? region : "us-east-1");
    a->want_id = want_id;
}

void credsvc_configure(const struct config *cfg)
{
    if (g.accts)
        return;
    g.n = cfg->naccounts ? cfg->naccounts : 1;
    g.accts = xcalloc(g.n, sizeof *g.accts);
    if (!cfg->naccounts) {
        acct_set(&g.accts[0], TARGET_DEFAULT_ACCOUNT, NULL, NULL, NULL, 0, cfg->regions[0],
                 false);
        return;
    }
    for (size_t i = 0; i < cfg->naccounts; i++) {
        const struct config_account *c = &cfg->accounts[i];
        /* without `accounts:` nothing changes: no STS call for the chain's account id */
        acct_set(&g.accts[i], c->name, c->role_arn, c->external_id, c->session_name,
                 (int)c->duration_s, c->nregions ? c->regions[0] : cfg->regions[0],
                 cfg->accounts_given);
    }
}

static void ensure_accounts(void)
{
    if (g.accts)
        return;
    g.n = 1;
    g.accts = xcalloc(1, sizeof *g.accts);
    acct_set(&g.accts[0], TARGET_DEFAULT_ACCOUNT, NULL, NULL, NULL, 0, "us-east-1", false);
}

/* The account of target t; an unknown name (the default account's callers) is the first. */
static struct acct *find(const char *name)
{
    ensure_accounts();
    for (size_t i = 0; name && i < g.n; i++)
        if (strcmp(g.accts[i].name, name) == 0)
            return &g.accts[i];
    return &g.accts[0];
}

bool credsvc_ready(const struct target *t)
{
    return find(t ? t->account : NULL)->have_creds;
}

const struct creds *credsvc_current(const struct target *t)
{
    struct acct *a = find(t ? t->account : NULL);
    return a->have_creds ? &a->creds : NULL;
}

static int64_t expires_in(const struct acct *a)
{
    return a->have_creds && a->creds.expiration
               ? (int64_t)a->creds.expiration - (int64_t)time(NULL)
               : -1;
}

bool credsvc_status(const char **source, int64_t *expires_in_s)
{
    struct acct *a = find(NULL);
    if (source)
        *source = a->have_creds ? a->creds.source : "none";
    if (expires_in_s)
        *expires_in_s = expires_in(a);
    return a->have_creds;
}

size_t credsvc_count(void)
{
    ensure_accounts();
    return g.n;
}

bool credsvc_account_at(size_t i, struct credsvc_account *out)
{
    ensure_accounts();
    if (i >= g.n)
        return false;
    const struct acct *a = &g.accts[i];
    *out = (struct credsvc_account){
        .name = a->name,
        .role_arn = a->role_arn,
        .account_id = a->account_id,
        .source = a->have_creds ? a->creds.source : "none",
        .ready = a->have_creds,
        .expires_in_s = expires_in(a),
        .expires_at_wall_ms = a->have_creds && a->creds.expiration
                                  ? (int64_t)a->creds.expiration * 1000
                                  : 0,
        .last_outcome = a->last_outcome,
        .last_message = a->last_message,
        .last_fetch_wall_ms = a->last_fetch_wall_ms,
        .refreshes = a->refreshes,
        .failures = a->failures,
    };
    return true;
}

const char *credsvc_account_id(const char *name)
{
    ensure_accounts();
    for (size_t i = 0; name && i < g.n; i++)
        if (strcmp(g.accts[i].name, name) == 0)
            return g.accts[i].account_id;
    return "";
}

bool credsvc_failure(const char *name, const char **code, const char **message)
{
    struct acct *a = find(name);
    if (a->have_creds || strcmp(a->name, name ? name : "") != 0)
        return false;
    *code = a->last_outcome[0] ? a->last_outcome : "CredentialsUnavailable";
    *message = a->last_message[0] ? a->last_message : "no credentials yet";
    return true;
}

/* One fetch of account a's credentials (blocking): the chain's in this process, then
 * AssumeRole of its role, or GetCallerIdentity for the id of a role-less account (its
 * failure costs only the id). */
static ebsd_status fetch(const struct acct *a, int64_t deadline, struct acctcreds_result *res,
                         struct creds_error *ce)
{
    struct acctcreds_spec spec = {.name = a->name, .role_arn = a->role_arn,
                                  .external_id = a->external_id,
                                  .session_name = a->session_name,
                                  .duration_s = a->duration_s, .region = a->region,
                                  .want_account_id = a->want_id};
    ebsd_status st = acctcreds_fetch(&spec, NULL, deadline, res, ce);
    if (st != EBSD_OK && a->want_id && !a->role_arn[0] &&
        strcmp(res->code, "CredentialsUnavailable") != 0) {
        spec.want_account_id = false;
        st = acctcreds_fetch(&spec, NULL, deadline, res, ce);
    }
    return st;
}

static void land(struct acct *a, const struct acctcreds_result *res)
{
    a->creds = res->creds;
    a->creds.source[sizeof a->creds.source - 1] = '\0';
    a->have_creds = true;
    if (res->account_id[0])
        memcpy(a->account_id, res->account_id, sizeof a->account_id);
    a->account_id[sizeof a->account_id - 1] = '\0';
    str_copy(a->last_outcome, sizeof a->last_outcome, "ok");
    a->last_message[0] = '\0';
    a->last_fetch_wall_ms = clock_wall_ms();
    a->refreshes++;
    log_info("credentials", "credentials of account %s loaded from %s", a->name,
             a->creds.source);
}

static void failed(struct acct *a, const char *code, const char *message)
{
    str_copy(a->last_outcome, sizeof a->last_outcome, code[0] ? code : "CredentialsUnavailable");
    str_copy(a->last_message, sizeof a->last_message, message);
    a->last_fetch_wall_ms = clock_wall_ms();
    a->failures++;
    log_warn("credentials", "credential refresh failed: %s (%s); the account's targets answer "
             "%s until a refresh succeeds", message, a->last_outcome,
             a->have_creds ? "with the older credentials" : "an error");
}

/* In the worker: one account's fetch, then one CREDS frame (or ERROR). */
static int refresh_main(int fd, void *arg)
{
    const struct acct *a = arg;
    struct acctcreds_result res;
    struct creds_error ce = {0};
    ebsd_status st = fetch(a, clock_now_ms() + 10000, &res, &ce);
    if (st != EBSD_OK) {
        struct ec2_error err = {0};
        snprintf(err.code, sizeof err.code, "%s",
                 res.code[0] ? res.code : "CredentialsUnavailable");
        snprintf(err.message, sizeof err.message, "%.250s", ce.message);
        return wire_put_error(fd, st, &err, NULL, 0) == EBSD_OK ? 0 : 1;
    }
    st = frame_write(fd, WIRE_CREDS, &res, sizeof res);
    OPENSSL_cleanse(&res, sizeof res);
    return st == EBSD_OK ? 0 : 1;
}

static void on_refresh_frame(void *arg, int type, const char *data, size_t len)
{
    struct acct *a = arg;
    if (type == WIRE_CREDS && len == sizeof(struct acctcreds_result)) {
        struct acctcreds_result res;
        memcpy(&res, data, sizeof res);
        land(a, &res);
        OPENSSL_cleanse(&res, sizeof res);
    } else if (type == WIRE_ERROR) {
        struct wire_error e;
        if (wire_decode_error(data, len, &e) == EBSD_OK)
            failed(a, e.code, e.message);
        else
            failed(a, "CredentialsUnavailable", "(unreadable answer)");
    }
}

static void on_refresh_end(void *arg)
{
    struct acct *a = arg;
    a->refreshing = false;
    schedule_refresh(a);
}

static void on_timer(struct loop *l, void *arg)
{
    (void)l;
    struct acct *a = arg;
    a->timer = NULL;
    if (a->refreshing)
        return;
    a->refreshing = true;
    const struct engine_service svc = {refresh_main, a, on_refresh_frame, on_refresh_end};
    engine_run_service(&svc);
}

static void schedule_refresh(struct acct *a)
{
    if (a->timer || a->refreshing || !g.loop)
        return;
    int64_t in_ms;
    if (!a->have_creds) {
        in_ms = 30000; /* try again */
    } else if (!a->creds.expiration) {
        return; /* static credentials never expire */
    } else {
        /* refresh 5 minutes (or half the remaining life) ahead of expiry */
        int64_t left = ((int64_t)a->creds.expiration - (int64_t)time(NULL)) * 1000;
        int64_t ahead = 300000 < left / 2 ? 300000 : left / 2;
        in_ms = left - ahead;
        if (in_ms < 1000)
            in_ms = 1000;
    }
    a->timer = loop_timer_start(g.loop, clock_now_ms() + in_ms, on_timer, a);
}

void credsvc_init(struct loop *l)
{
    g.loop = l;
    if (g.ready)
        return;
    g.ready = true;
    ensure_accounts();
    int64_t deadline = clock_now_ms() + 5000;
    for (size_t i = 0; i < g.n; i++) {
        struct acct *a = &g.accts[i];
        struct acctcreds_result res;
        struct creds_error ce = {0};
        if (fetch(a, deadline, &res, &ce) == EBSD_OK)
            land(a, &res);
        else
            failed(a, res.code, ce.message);
        OPENSSL_cleanse(&res, sizeof res);
        schedule_refresh(a);
    }
}

void credsvc_shutdown(void)
{
    for (size_t i = 0; i < g.n; i++) {
        struct acct *a = &g.accts[i];
        if (a->timer)
            loop_timer_stop(g.loop, a->timer);
        creds_wipe(&a->creds);
        free(a->role_arn);
        free(a->external_id);
        free(a->session_name);
    }
    free(g.accts);
    g.accts = NULL;
    g.n = 0;
    g.ready = false;
}
