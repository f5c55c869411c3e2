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
    bool retired;             /* dropped by a reload while its refresh ran: freed at its end */
    struct acct *next_retired;
    struct loop_timer *timer;
    char last_outcome[64];
    char last_message[256];
    int64_t last_fetch_wall_ms;
    unsigned long long refreshes, failures;
};

/* Each account is its own allocation: a refresh in flight and its timer hold a pointer to
 * it, which a reload that adds or drops other accounts must not move. */
static struct {
    struct loop *loop;
    bool ready;
    struct acct **accts;
    size_t n;
    struct acct *retired; /* dropped, their refresh still running */
} g;

static void schedule_refresh(struct acct *a);

static struct acct *acct_new(const char *name, const char *role, const char *ext,
                             const char *session, int duration, const char *region, bool want_id)
{
    struct acct *a = xcalloc(1, sizeof *a);
    str_copy(a->name, sizeof a->name, name);
    a->role_arn = xstrdup(role ? role : "");
    a->external_id = xstrdup(ext ? ext : "");
    a->session_name = xstrdup(session ? session : "");
    a->duration_s = duration;
    str_copy(a->region, sizeof a->region, region ? region : "us-east-1");
    a->want_id = want_id;
    return a;
}

/* Whether a and b fetch the same credentials: the same name and the same spec. */
static bool acct_same(const struct acct *a, const struct acct *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->role_arn, b->role_arn) == 0 &&
           strcmp(a->external_id, b->external_id) == 0 &&
           strcmp(a->session_name, b->session_name) == 0 && a->duration_s == b->duration_s &&
           strcmp(a->region, b->region) == 0 && a->want_id == b->want_id;
}

static void acct_free(struct acct *a)
{
    if (a->timer)
        loop_timer_stop(g.loop, a->timer);
    creds_wipe(&a->creds);
    free(a->role_arn);
    free(a->external_id);
    free(a->session_name);
    free(a);
}

/* The one account there is without `accounts:`: the chain's own, no STS call for its id. */
static struct acct *default_acct(const char *region)
{
    return acct_new(TARGET_DEFAULT_ACCOUNT, NULL, NULL, NULL, 0, region, false);
}

/* cfg's accounts, none of them fetched yet; *n gets their number (at least 1). */
static struct acct **accounts_of(const struct config *cfg, size_t *n)
{
    *n = cfg->naccounts ? cfg->naccounts : 1;
    struct acct **v = xcalloc(*n, sizeof *v);
    if (!cfg->naccounts) {
        v[0] = default_acct(cfg->regions[0]);
        return v;
    }
    for (size_t i = 0; i < cfg->naccounts; i++) {
        const struct config_account *c = &cfg->accounts[i];
        /* without `accounts:` nothing changes: no STS call for the chain's account id */
        v[i] = acct_new(c->name, c->role_arn, c->external_id, c->session_name,
                        (int)c->duration_s, c->nregions ? c->regions[0] : cfg->regions[0],
                        cfg->accounts_given);
    }
    return v;
}

void credsvc_configure(const struct config *cfg)
{
    if (g.accts)
        return;
    g.accts = accounts_of(cfg, &g.n);
}

static void ensure_accounts(void)
{
    if (g.accts)
        return;
    g.n = 1;
    g.accts = xcalloc(1, sizeof *g.accts);
    g.accts[0] = default_acct("us-east-1");
}

/* The account of target t; an unknown name (the default account's callers) is the first. */
static struct acct *find(const char *name)
{
    ensure_accounts();
    for (size_t i = 0; name && i < g.n; i++)
        if (strcmp(g.accts[i]->name, name) == 0)
            return g.accts[i];
    return g.accts[0];
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
    const struct acct *a = g.accts[i];
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
        if (strcmp(g.accts[i]->name, name) == 0)
            return g.accts[i]->account_id;
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
    if (a->retired)
        return; /* fetched for a spec a reload dropped */
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
    if (!a->retired) {
        schedule_refresh(a);
        return;
    }
    struct acct **pp = &g.retired;
    while (*pp && *pp != a)
        pp = &(*pp)->next_retired;
    if (*pp)
        *pp = a->next_retired;
    acct_free(a);
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
        struct acct *a = g.accts[i];
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

/* Takes a out of service: now, or at the end of its refresh in flight. */
static void retire(struct acct *a)
{
    if (a->timer)
        loop_timer_stop(g.loop, a->timer);
    a->timer = NULL;
    creds_wipe(&a->creds);
    a->have_creds = false;
    if (!a->refreshing) {
        acct_free(a);
        return;
    }
    a->retired = true;
    a->next_retired = g.retired;
    g.retired = a;
}

void credsvc_reconfigure(const struct config *cfg, credsvc_forget_fn forget)
{
    ensure_accounts();
    size_t n;
    struct acct **next = accounts_of(cfg, &n);
    unsigned kept = 0, added = 0, changed = 0, removed = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < g.n && (!g.accts[j] || strcmp(g.accts[j]->name, next[i]->name) != 0))
            j++;
        struct acct *old = j < g.n ? g.accts[j] : NULL;
        if (old && acct_same(old, next[i])) {
            acct_free(next[i]);
            next[i] = old; /* its credentials and its refresh go on */
            kept++;
        } else {
            if (old) {
                log_info("credentials", "account %s changed: its credentials are fetched anew "
                         "and its cached answers dropped", old->name);
                if (forget)
                    forget(old->name);
                retire(old);
                changed++;
            } else {
                added++;
            }
            /* fetched in a worker at once, never on the loop; until then its targets answer
             * CredentialsUnavailable */
            if (g.loop)
                next[i]->timer = loop_timer_start(g.loop, clock_now_ms(), on_timer, next[i]);
        }
        if (old)
            g.accts[j] = NULL;
    }
    for (size_t j = 0; j < g.n; j++) {
        if (!g.accts[j])
            continue;
        log_info("credentials", "account %s removed: its credentials are wiped and its cached "
                 "answers dropped", g.accts[j]->name);
        if (forget)
            forget(g.accts[j]->name);
        retire(g.accts[j]);
        removed++;
    }
    free(g.accts);
    g.accts = next;
    g.n = n;
    if (added || changed || removed)
        log_info("credentials", "accounts reloaded: %u kept, %u added, %u changed, %u removed",
                 kept, added, changed, removed);
}

void credsvc_shutdown(void)
{
    /* after engine_shutdown: no refresh ends any more, the retired ones included */
    for (size_t i = 0; i < g.n; i++)
        acct_free(g.accts[i]);
    while (g.retired) {
        struct acct *a = g.retired;
        g.retired = a->next_retired;
        acct_free(a);
    }
    free(g.accts);
    g.accts = NULL;
    g.n = 0;
    g.ready = false;
}
