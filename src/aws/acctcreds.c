/* acctcreds.c - one account's credentials: the base chain's, or AssumeRole of its role. */
#include "acctcreds.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "httpc.h"
#include "sts.h"

static void set_err(struct creds_error *err, const char *name, const char *what, const char *msg)
{
    snprintf(err->source, sizeof err->source, "account:%.40s", name ? name : "");
    snprintf(err->message, sizeof err->message, "account %.40s: %s%s%.400s", name ? name : "",
             what, *what ? ": " : "", msg);
}

ebsd_status acctcreds_fetch(const struct acctcreds_spec *spec, const struct creds *base,
                            int64_t deadline, struct acctcreds_result *out,
                            struct creds_error *err)
{
    ebsd_status st;
    struct creds chain;
    struct httpc *h = NULL;
    memset(&chain, 0, sizeof chain);
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    if (!base) {
        struct creds_error ce = {0};
        st = creds_resolve(deadline, &chain, &ce);
        if (st != EBSD_OK) {
            set_err(err, spec->name, "base credentials", ce.message);
            snprintf(out->code, sizeof out->code, "CredentialsUnavailable");
            goto out;
        }
        base = &chain;
    }
    char msg[600] = "";
    struct sts_outcome o;
    memset(&o, 0, sizeof o);
    struct sts_assume a = {.role_arn = spec->role_arn, .external_id = spec->external_id,
                           .session_name = spec->session_name, .duration_s = spec->duration_s,
                           .source = base, .region = spec->region, .deadline = deadline,
                           .outcome = &o};
    if (spec->role_arn && *spec->role_arn) {
        h = httpc_new();
        st = sts_assume_role(h, &a, &out->creds, msg, sizeof msg);
        if (st != EBSD_OK) {
            set_err(err, spec->name, "", msg);
            snprintf(out->code, sizeof out->code, "%s", o.code[0] ? o.code : status_str(st));
            goto out;
        }
        snprintf(out->creds.source, sizeof out->creds.source, "assume-role:%.40s",
                 spec->name ? spec->name : "");
        snprintf(out->account_id, sizeof out->account_id, "%s", o.account_id);
        goto out;
    }
    if (spec->want_account_id) {
        h = httpc_new();
        st = sts_get_caller_identity(h, &a, &o, msg, sizeof msg);
        if (st != EBSD_OK) {
            set_err(err, spec->name, "", msg);
            snprintf(out->code, sizeof out->code, "%s", o.code[0] ? o.code : status_str(st));
            goto out;
        }
        snprintf(out->account_id, sizeof out->account_id, "%s", o.account_id);
    }
    out->creds = *base;
    st = EBSD_OK;
out:
    if (st != EBSD_OK) {
        char code[sizeof out->code];
        memcpy(code, out->code, sizeof code);
        OPENSSL_cleanse(out, sizeof *out);
        memcpy(out->code, code, sizeof code);
    }
    creds_wipe(&chain);
    httpc_free(h);
    return st;
}
