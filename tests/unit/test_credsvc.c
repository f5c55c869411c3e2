/* test_credsvc.c - the credentials service on a real loop, its refreshes in real workers,
 * against ec2sim's STS (started here, temporary credentials capped at 3 s): one entry per
 * configured account (a role, a role STS refuses, the chain's own with its account id from
 * GetCallerIdentity); what credsvc_current hands a target (its account's, the first
 * account's for an unknown name, none for an account without credentials); a refresh in a
 * worker before the credentials expire; a failed refresh keeps the old credentials and
 * records the failure; the next refresh after it succeeds again. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "credsvc.h"
#include "engine.h"
#include "harness.h"
#include "loop.h"

#define PROD_ROLE "arn:aws:iam::111122223333:role/ebsd-read"
#define DENIED_ROLE "arn:aws:iam::333344445555:role/ebsd-read"
#define BASE_KEY "AKIDEXAMPLE"
#define BASE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static struct loop *L;
static struct harness_sim sim;
static struct config cfg;
static int sig_fd = -1;

static struct credsvc_account account(const char *name)
{
    struct credsvc_account a = {0};
    for (size_t i = 0; credsvc_account_at(i, &a); i++)
        if (strcmp(a.name, name) == 0)
            return a;
    CHECK(!"account not found");
    return a;
}

/* Runs the loop (polling every 20 ms) until cond() holds or max_ms passed; cond's verdict. */
static bool (*wait_cond)(void);
static bool wait_done;
static struct loop_timer *poll_timer;

static void on_poll(struct loop *l, void *arg)
{
    (void)arg;
    poll_timer = NULL;
    if (wait_cond()) {
        wait_done = true;
        loop_stop(l);
        return;
    }
    poll_timer = loop_timer_start(l, clock_now_ms() + 20, on_poll, NULL);
}

static void on_guard(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

static bool run_until(bool (*cond)(void), int64_t max_ms)
{
    wait_cond = cond;
    wait_done = false;
    poll_timer = loop_timer_start(L, clock_now_ms(), on_poll, NULL);
    struct loop_timer *guard = loop_timer_start(L, clock_now_ms() + max_ms, on_guard, NULL);
    CHECK_INT(loop_run(L), EBSD_OK);
    if (wait_done)
        loop_timer_stop(L, guard);
    else
        loop_timer_stop(L, poll_timer);
    poll_timer = NULL;
    return wait_done;
}

static char first_key[128];
static time_t first_expiry;

static bool prod_key_changed(void)
{
    const struct target t = target_make("prod", "us-east-1");
    const struct creds *c = credsvc_current(&t);
    return c && strcmp(c->access_key_id, first_key) != 0;
}

static unsigned long long prod_failures0, prod_refreshes0;

static bool prod_failed(void)
{
    return account("prod").failures > prod_failures0;
}

static bool prod_refreshed(void)
{
    return account("prod").refreshes > prod_refreshes0;
}

static void sts_settings(const char *json)
{
    int st = 0;
    free(harness_sim_call(&sim, "POST", "/_sim/sts", json, &st));
    CHECK_INT(st, 200);
}

static void test_accounts(void)
{
    CHECK_INT(credsvc_count(), 3);
    struct credsvc_account prod = account("prod"), denied = account("denied"),
                           base = account("base");
    /* a role: AssumeRole with the chain's credentials, its account from the role */
    CHECK(prod.ready);
    CHECK_STR(prod.role_arn, PROD_ROLE);
    CHECK_STR(prod.account_id, "111122223333");
    CHECK_STR(prod.source, "assume-role:prod");
    CHECK(prod.expires_in_s >= 0 && prod.expires_in_s <= 3); /* the simulator's 3 s cap */
    CHECK_STR(prod.last_outcome, "ok");
    CHECK_INT(prod.refreshes, 1);
    CHECK_INT(prod.failures, 0);
    /* the chain's own: never expires, account id from GetCallerIdentity */
    CHECK(base.ready);
    CHECK_STR(base.account_id, "123456789012");
    CHECK_STR(base.source, "environment");
    CHECK_INT(base.expires_in_s, -1);
    CHECK_INT(base.expires_at_wall_ms, 0);
    /* refused by STS: no credentials, the reason recorded */
    CHECK(!denied.ready);
    CHECK_STR(denied.source, "none");
    CHECK_STR(denied.last_outcome, "AccessDenied");
    CHECK(denied.last_message[0] != '\0');
    CHECK(strstr(denied.last_message, BASE_SECRET) == NULL);
    CHECK_INT(denied.failures, 1);
    CHECK(denied.last_fetch_wall_ms > 0);

    /* what a target is handed */
    const struct target tp = target_make("prod", "us-east-1"),
                        tb = target_make("base", "eu-west-1"),
                        td = target_make("denied", "us-east-1"),
                        tu = target_make("nosuch", "us-east-1");
    const struct creds *cp = credsvc_current(&tp), *cb = credsvc_current(&tb);
    CHECK(cp && cb);
    if (!cp || !cb)
        return;
    CHECK(strcmp(cp->access_key_id, BASE_KEY) != 0); /* the role's, not the base's */
    CHECK(cp->session_token[0] != '\0');
    CHECK(cp->expiration > 0);
    CHECK_STR(cb->access_key_id, BASE_KEY);
    CHECK(credsvc_current(&td) == NULL);
    CHECK(!credsvc_ready(&td));
    CHECK(credsvc_ready(&tp));
    CHECK(credsvc_current(&tu) == cp); /* an unknown name is the first account */
    const char *code = NULL, *msg = NULL;
    CHECK(credsvc_failure("denied", &code, &msg));
    CHECK_STR(code, "AccessDenied");
    CHECK(!credsvc_failure("prod", &code, &msg));
    CHECK_STR(credsvc_account_id("base"), "123456789012");
    CHECK_STR(credsvc_account_id("nosuch"), "");
    const char *source = NULL;
    int64_t left = 0;
    CHECK(credsvc_status(&source, &left)); /* the first account's */
    CHECK_STR(source, "assume-role:prod");
    CHECK(left >= 0 && left <= 3);
}

static void test_refresh_ahead_of_expiry(void)
{
    const struct target tp = target_make("prod", "us-east-1");
    const struct creds *c = credsvc_current(&tp);
    CHECK(c != NULL);
    if (!c)
        return;
    snprintf(first_key, sizeof first_key, "%s", c->access_key_id);
    first_expiry = c->expiration;
    unsigned long long forked0 = engine_stats()->forked;
    CHECK(run_until(prod_key_changed, 4000));
    /* before the old ones expired, in a worker, and recorded */
    CHECK(time(NULL) < first_expiry);
    CHECK(engine_stats()->forked > forked0);
    struct credsvc_account prod = account("prod");
    CHECK_INT(prod.refreshes, 2);
    CHECK_STR(prod.last_outcome, "ok");
    CHECK(credsvc_current(&tp)->expiration >= first_expiry);
    /* the other accounts were not touched: the base never expires */
    CHECK_INT(account("base").refreshes, 1);
}

static bool a_worker_started(void) { return engine_stats()->running > 0; }
static bool no_worker_left(void) { return engine_stats()->running == 0; }

static void test_failed_refresh_keeps_credentials(void)
{
    const struct target tp = target_make("prod", "us-east-1");
    const struct creds *c = credsvc_current(&tp);
    CHECK(c != NULL);
    if (!c)
        return;
    char kept[128];
    snprintf(kept, sizeof kept, "%s", c->access_key_id);
    /* no refresh in flight: one STS already answered would land after the deny below */
    CHECK(no_worker_left() || run_until(no_worker_left, 4000));
    c = credsvc_current(&tp);
    snprintf(kept, sizeof kept, "%s", c ? c->access_key_id : "");
    sts_settings("{\"deny\": [\"" PROD_ROLE "\"]}");
    struct credsvc_account before = account("prod");
    prod_failures0 = before.failures;
    prod_refreshes0 = before.refreshes;
    CHECK(run_until(prod_failed, 4000));
    struct credsvc_account prod = account("prod");
    CHECK_INT(prod.failures, before.failures + 1);
    CHECK_INT(prod.refreshes, before.refreshes);
    CHECK_STR(prod.last_outcome, "AccessDenied");
    CHECK(prod.last_message[0] != '\0');
    CHECK(prod.ready);
    c = credsvc_current(&tp);
    CHECK(c && strcmp(c->access_key_id, kept) == 0); /* the old credentials, still handed out */
    const char *code, *msg;
    CHECK(!credsvc_failure("prod", &code, &msg)); /* it has credentials: no error to give */

    /* the next refresh, on the same rule, succeeds once STS allows the role again */
    sts_settings("{\"allow\": [\"" PROD_ROLE "\"]}");
    CHECK(run_until(prod_refreshed, 4000));
    prod = account("prod");
    CHECK_STR(prod.last_outcome, "ok");
    CHECK_STR(prod.last_message, "");
    c = credsvc_current(&tp);
    CHECK(c && strcmp(c->access_key_id, kept) != 0);
}

static char forgotten[8][32];
static unsigned nforgotten;

static void on_forget(const char *name)
{
    if (nforgotten < 8)
        snprintf(forgotten[nforgotten], sizeof forgotten[0], "%s", name);
    nforgotten++;
}

static void load_text(const char *text, struct config *out)
{
    char path[] = "/tmp/test_credsvc_cfg_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    struct config_error err;
    CHECK_INT(config_load(path, out, &err), EBSD_OK);
    unlink(path);
}

/* The reload's accounts: base as at start, prod with another duration, later new (its
 * last lines later_extra). */
static void load_reload(const char *later_extra, struct config *out)
{
    char text[512];
    snprintf(text, sizeof text,
             "regions: [us-east-1, eu-west-1]\n"
             "accounts:\n"
             "  - name: base\n"
             "  - name: prod\n"
             "    role_arn: \"" PROD_ROLE "\"\n"
             "    duration_s: 1200\n"
             "  - name: later\n"
             "    role_arn: \"" PROD_ROLE "\"\n%s", later_extra);
    load_text(text, out);
}

static bool prod_and_later_ready(void)
{
    return account("prod").ready && account("later").ready;
}


/* A reload's accounts: base unchanged (kept, not fetched again), prod changed (its
 * duration: fetched anew), denied removed, later added; the forget callback names the
 * changed and removed ones. Then an account removed while its fetch is in flight (the
 * simulator stopped under it): the fetch's answer is discarded, and its entry freed when
 * its worker ends (the Sanitize build checks that nothing leaks or is used after free). */
static void test_reconfigure(void)
{
    struct credsvc_account base0 = account("base");
    struct config next, last;
    load_reload("", &next);
    nforgotten = 0;
    credsvc_reconfigure(&next, on_forget);
    CHECK_INT(credsvc_count(), 3);
    struct credsvc_account a;
    CHECK(credsvc_account_at(0, &a) && strcmp(a.name, "base") == 0);
    CHECK(credsvc_account_at(2, &a) && strcmp(a.name, "later") == 0);
    CHECK_INT(nforgotten, 2);
    CHECK_STR(forgotten[0], "prod");
    CHECK_STR(forgotten[1], "denied");
    CHECK(!account("prod").ready && !account("later").ready); /* until their workers land */
    CHECK(account("base").ready);
    CHECK_INT(account("base").refreshes, base0.refreshes);
    CHECK(run_until(prod_and_later_ready, 4000));
    CHECK_STR(account("later").source, "assume-role:later");
    CHECK_STR(account("prod").account_id, "111122223333");
    CHECK_INT(account("base").refreshes, base0.refreshes); /* never fetched again */
    const struct target tl = target_make("later", "eu-west-1");
    CHECK(credsvc_current(&tl) != NULL);

    /* removed while its fetch runs */
    CHECK(no_worker_left() || run_until(no_worker_left, 4000));
    CHECK_INT(kill(sim.pid, SIGSTOP), 0);
    load_reload("    session_name: \"other\"\n", &last);
    nforgotten = 0;
    credsvc_reconfigure(&last, on_forget); /* later changed: fetched anew, in a worker */
    CHECK(run_until(a_worker_started, 2000));
    credsvc_reconfigure(&next, on_forget); /* and changed back while that fetch hangs */
    CHECK_INT(nforgotten, 2);
    CHECK(!account("later").ready);
    CHECK_INT(kill(sim.pid, SIGCONT), 0);
    CHECK(run_until(prod_and_later_ready, 6000));
    CHECK(run_until(no_worker_left, 6000));
    CHECK_STR(account("later").source, "assume-role:later");
    config_free(&next);
    config_free(&last);
}

static void test_setup(void)
{
    static const char *const args[] = {"--instances", "5", "--sts-max-duration", "3",
                                       "--deny-role", DENIED_ROLE, NULL};
    if (!harness_sim_start(&sim, args))
        exit(1);
    static char home[] = "/tmp/test_credsvc_XXXXXX";
    CHECK(mkdtemp(home) != NULL);
    harness_aws_env(home, BASE_KEY, BASE_SECRET);
    setenv("AWS_ENDPOINT_URL_STS", sim.url, 1);

    char path[256];
    snprintf(path, sizeof path, "%s/ebsd.yaml", home);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        exit(1);
    fprintf(f, "regions: [us-east-1, eu-west-1]\n"
               "accounts:\n"
               "  - name: prod\n"
               "    role_arn: \"" PROD_ROLE "\"\n"
               "    duration_s: 900\n"
               "  - name: denied\n"
               "    role_arn: \"" DENIED_ROLE "\"\n"
               "  - name: base\n");
    fclose(f);
    struct config_error err;
    if (config_load(path, &cfg, &err) != EBSD_OK) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    unlink(path);
    rmdir(home);
    if (loop_new(&L) != EBSD_OK)
        exit(1);
    sig_fd = harness_sigchld_watch(L);
    if (sig_fd < 0)
        exit(1);
    engine_init(L, &cfg, credsvc_ready);
    credsvc_configure(&cfg);
    int64_t t0 = clock_now_ms();
    credsvc_init(L);
    CHECK(clock_now_ms() - t0 < 5500); /* the first resolution is bounded */
}

static void test_teardown(void)
{
    engine_shutdown(); /* first, as credsvc.h asks: no refresh ends after credsvc_shutdown */
    credsvc_shutdown();
    CHECK_INT(credsvc_count(), 1); /* after shutdown: the one default account again */
    loop_del_fd(L, sig_fd);
    close(sig_fd);
    loop_free(L);
    harness_sim_stop(&sim);
    config_free(&cfg);
}

TEST_MAIN(T(test_setup), T(test_accounts), T(test_refresh_ahead_of_expiry),
          T(test_failed_refresh_keeps_credentials), T(test_reconfigure), T(test_teardown))
