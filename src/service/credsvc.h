/* credsvc.h - the credentials service: hands out each configured account's current AWS
 * credentials (config `accounts:`; absent, one account "default" with the credential
 * chain's) and keeps them fresh. The first resolution is blocking and bounded (at start,
 * before the loop runs, 5 s for all accounts together); after that each account refreshes
 * in a worker ahead of its expiry (5 minutes, or half the remaining life) and never blocks
 * the loop. A failed refresh keeps the old credentials and tries again on the same rule;
 * with none yet, every 30 s. An account with a role is reached through STS AssumeRole with
 * the chain's credentials (acctcreds.h); its account id comes with them. */
#ifndef EBSD_CREDSVC_H
#define EBSD_CREDSVC_H
#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "creds.h"
#include "loop.h"
#include "target.h"

/* Takes the accounts of cfg (copied; call before credsvc_init). Without this call the
 * service has the one account "default". A later call is ignored: a reload goes through
 * credsvc_reconfigure. */
void credsvc_configure(const struct config *cfg);
/* Called for an account whose credentials a reload changed or removed: what was fetched
 * with the old ones is no longer the account's. */
typedef void (*credsvc_forget_fn)(const char *name);
/* A reload's accounts (cfg's, copied), matched by name: an account whose role, external id,
 * session name, duration and STS region are unchanged keeps its credentials and refresh
 * schedule; a new one, or a changed one, is fetched in a worker at once (its targets answer
 * CredentialsUnavailable until that lands: the loop never blocks on STS); a removed one is
 * wiped (a refresh in flight finishes and is discarded). forget (may be NULL) is called
 * with the name of each changed or removed account. */
void credsvc_reconfigure(const struct config *cfg, credsvc_forget_fn forget);
/* Resolves every account's credentials on the first call (blocking, at most 5 s in all; a
 * failure is logged and retried in the background), then schedules the refreshes on l. */
void credsvc_init(struct loop *l);
/* Stops the refresh timers and wipes the credentials (after engine_shutdown). */
void credsvc_shutdown(void);

/* Whether usable credentials are loaded for target t's account (the engine's gate). An
 * account name the service does not know means its first account. */
bool credsvc_ready(const struct target *t);
/* The credentials for target t's account, or NULL when there are none. Valid until the
 * next refresh of that account lands (in a worker: for its whole life, as it holds a copy). */
const struct creds *credsvc_current(const struct target *t);
/* The first account's: whether credentials are loaded, their source (safe to show:
 * "environment", "imds", "assume-role:prod", ...) and the seconds until they expire (-1:
 * they do not, or there are none). */
bool credsvc_status(const char **source, int64_t *expires_in_s);

/* What GET /accounts and the metrics show of one account: never a secret. The strings are
 * the service's, valid until the next refresh lands. */
struct credsvc_account {
    const char *name;
    const char *role_arn;       /* "" without a role */
    const char *account_id;     /* 12 digits, or "" while unknown */
    const char *source;         /* "none" while there are no credentials */
    bool ready;
    int64_t expires_in_s;       /* -1: never, or no credentials */
    int64_t expires_at_wall_ms; /* 0: never, or no credentials */
    const char *last_outcome;   /* "ok", an STS code ("AccessDenied"), or "" before any */
    const char *last_message;   /* the failure's message (no secret), or "" */
    int64_t last_fetch_wall_ms; /* 0 before any */
    unsigned long long refreshes, failures;
};
/* The number of accounts (at least 1). */
size_t credsvc_count(void);
/* Fills *out for account i (0..credsvc_count()-1); false past the end. */
bool credsvc_account_at(size_t i, struct credsvc_account *out);
/* The account id learned for account name ("" while unknown or for an unknown name). */
const char *credsvc_account_id(const char *name);
/* The reason account name has no credentials ("AccessDenied", "CredentialsUnavailable"...)
 * and its message, for a target's error; false when it has credentials or is unknown. */
bool credsvc_failure(const char *name, const char **code, const char **message);

#endif
