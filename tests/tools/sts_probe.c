/* sts_probe.c - one sts_assume_role call from the command line, for integration tests.
 *   sts_probe --region R --role-arn ARN [--external-id X] [--session-name S]
 *             [--duration-s N] [--deadline-ms N] [--max-attempts N] [--print-secrets]
 *   sts_probe --region R --caller-identity      (GetCallerIdentity of the base credentials)
 *   sts_probe --region R --account NAME [--role-arn ARN ...]   (acctcreds_fetch, the base
 *             credentials from the chain; prints source, account_id, code)
 * The base credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN, the endpoint from sts_endpoint (AWS_ENDPOINT_URL_STS ...). Prints one
 * JSON line: {"status","account_id","assumed_role_arn","access_key_id","expiration",
 * "attempts"} (exit 0), or {"status","error","code","http_status","attempts"} (exit 1).
 * The secret key and session token are printed only with --print-secrets (the test then
 * uses the simulator's temporary credentials against its EC2). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acctcreds.h"
#include "clock.h"
#include "creds.h"
#include "httpc.h"
#include "sts.h"

static int usage(void)
{
    fprintf(stderr, "usage: sts_probe --region R --role-arn ARN [--external-id X] "
                    "[--session-name S] [--duration-s N] [--deadline-ms N] "
                    "[--max-attempts N] [--print-secrets] | --region R --caller-identity\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct sts_assume a = {0};
    long deadline_ms = 10000;
    bool secrets = false, identity = false;
    const char *account = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--print-secrets") == 0)
            secrets = true;
        else if (strcmp(argv[i], "--caller-identity") == 0)
            identity = true;
        else if (!v)
            return usage();
        else if (strcmp(argv[i], "--account") == 0)
            account = v, i++;
        else if (strcmp(argv[i], "--region") == 0)
            a.region = v, i++;
        else if (strcmp(argv[i], "--role-arn") == 0)
            a.role_arn = v, i++;
        else if (strcmp(argv[i], "--external-id") == 0)
            a.external_id = v, i++;
        else if (strcmp(argv[i], "--session-name") == 0)
            a.session_name = v, i++;
        else if (strcmp(argv[i], "--duration-s") == 0)
            a.duration_s = (int)strtol(v, NULL, 10), i++;
        else if (strcmp(argv[i], "--deadline-ms") == 0)
            deadline_ms = strtol(v, NULL, 10), i++;
        else if (strcmp(argv[i], "--max-attempts") == 0)
            a.max_attempts = (int)strtol(v, NULL, 10), i++;
        else
            return usage();
    }
    if (!a.region || (!a.role_arn && !identity && !account))
        return usage();
    httpc_global_init();
    if (account) {
        struct acctcreds_spec sp = {.name = account, .role_arn = a.role_arn,
                                    .external_id = a.external_id,
                                    .session_name = a.session_name,
                                    .duration_s = a.duration_s, .region = a.region,
                                    .want_account_id = true};
        struct acctcreds_result r;
        struct creds_error ce;
        ebsd_status ast = acctcreds_fetch(&sp, NULL, clock_now_ms() + deadline_ms, &r, &ce);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "status", status_str(ast));
        cJSON_AddStringToObject(j, "account_id", r.account_id);
        cJSON_AddStringToObject(j, "code", r.code);
        if (ast == EBSD_OK) {
            cJSON_AddStringToObject(j, "source", r.creds.source);
            cJSON_AddStringToObject(j, "access_key_id", r.creds.access_key_id);
            cJSON_AddNumberToObject(j, "expiration", (double)r.creds.expiration);
        } else {
            cJSON_AddStringToObject(j, "error", ce.message);
            cJSON_AddStringToObject(j, "error_source", ce.source);
        }
        char *txt = cJSON_PrintUnformatted(j);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(j);
        creds_wipe(&r.creds);
        return ast == EBSD_OK ? 0 : 1;
    }
    struct creds base, out;
    memset(&base, 0, sizeof base);
    memset(&out, 0, sizeof out);
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *tok = getenv("AWS_SESSION_TOKEN");
    snprintf(base.access_key_id, sizeof base.access_key_id, "%s", ak ? ak : "");
    snprintf(base.secret_access_key, sizeof base.secret_access_key, "%s", sk ? sk : "");
    snprintf(base.session_token, sizeof base.session_token, "%s", tok ? tok : "");
    struct sts_outcome o;
    a.source = &base;
    a.outcome = &o;
    a.deadline = clock_now_ms() + deadline_ms;
    char err[600] = "";
    struct httpc *h = httpc_new();
    ebsd_status st = identity ? sts_get_caller_identity(h, &a, &o, err, sizeof err)
                              : sts_assume_role(h, &a, &out, err, sizeof err);
    httpc_free(h);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", status_str(st));
    cJSON_AddNumberToObject(j, "attempts", o.attempts);
    cJSON_AddNumberToObject(j, "http_status", (double)o.http_status);
    if (st == EBSD_OK) {
        cJSON_AddStringToObject(j, "account_id", o.account_id);
        cJSON_AddStringToObject(j, "assumed_role_arn", o.assumed_role_arn);
        cJSON_AddStringToObject(j, "access_key_id", out.access_key_id);
        cJSON_AddNumberToObject(j, "expiration", (double)out.expiration);
        if (secrets) {
            cJSON_AddStringToObject(j, "secret_access_key", out.secret_access_key);
            cJSON_AddStringToObject(j, "session_token", out.session_token);
        }
    } else {
        cJSON_AddStringToObject(j, "error", err);
        cJSON_AddStringToObject(j, "code", o.code);
    }
    char *s = cJSON_PrintUnformatted(j);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(j);
    creds_wipe(&out);
    creds_wipe(&base);
    return st == EBSD_OK ? 0 : 1;
}
