/* acctcreds.h - the credentials of one configured account: the base credential chain's
 * own (and their account id, from STS GetCallerIdentity), or STS AssumeRole of the
 * account's role signed with the base credentials. Blocking (HTTP to STS): call it in a
 * worker (the credentials service's refresh) or once at start. Never logs; messages carry
 * no secret. */
#ifndef EBSD_ACCTCREDS_H
#define EBSD_ACCTCREDS_H
#include <stdbool.h>
#include <stdint.h>
#include "creds.h"
#include "status.h"

/* One account as the config describes it (issue 16's accounts block). Borrowed strings. */
struct acctcreds_spec {
    const char *name;          /* ebsd's account name ("prod"), for source and messages */
    const char *role_arn;      /* NULL or "": the base credentials themselves */
    const char *external_id;   /* NULL or "": none */
    const char *session_name;  /* NULL or "": "ebsd-<hostname>" (sts_default_session_name) */
    int duration_s;            /* 0: STS's default (3600); else 900..43200 */
    const char *region;        /* the STS region (regional endpoint, signing scope): the
                                * account's first region or the default region */
    bool want_account_id;      /* without a role: ask GetCallerIdentity for the account id
                                * (one more STS call); with a role it comes free */
};

struct acctcreds_result {
    struct creds creds;        /* creds.source: "assume-role:NAME" or the base's source */
    char account_id[13];       /* 12 digits; "" when unknown */
    char code[64];             /* on failure: STS's error code ("AccessDenied"), or
                                * "CredentialsUnavailable" when the base chain failed */
};

/* Fills *out for account spec by deadline (monotonic ms). base: the base credentials
 * (the credentials service's current ones), or NULL to run the chain (creds_resolve) here.
 * With a role: sts_assume_role(base -> role_arn, external_id, session_name, duration_s,
 * region), out->creds expiring when STS says, out->account_id the role's account. Without:
 * the base credentials as they are, and with want_account_id their account from
 * GetCallerIdentity (a failure there is an error too: the caller asked). On failure err
 * names the account ("account prod: ...") and out->code the reason, statuses as
 * sts_assume_role's (EBSD_EAUTH for AccessDenied...) or creds_resolve's. out is wiped on
 * failure. */
EBSD_MUST_CHECK ebsd_status acctcreds_fetch(const struct acctcreds_spec *spec,
                                            const struct creds *base, int64_t deadline,
                                            struct acctcreds_result *out,
                                            struct creds_error *err);

#endif
