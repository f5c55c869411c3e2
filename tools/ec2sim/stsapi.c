/* stsapi.c - AssumeRole, AssumeRoleWithWebIdentity and GetCallerIdentity as STS answers them,
 * with the role settings tests steer (refused roles, required external ids, a cap on the
 * lifetime of the credentials). */
#include "stsapi.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "mem.h"
#include "xmlw.h"

#define MAX_ROLES 64
#define ROLE_LEN 2048 /* STS's limit on a role ARN */
#define EXTID_LEN 1225

struct ext_id {
    char role[ROLE_LEN];
    char id[EXTID_LEN];
};

struct sts_settings {
    char deny[MAX_ROLES][ROLE_LEN]; /* role ARNs or 12-digit account ids */
    size_t ndeny;
    struct ext_id ext[MAX_ROLES];
    size_t next;
    long max_duration_s; /* 0 = no cap */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct sts_settings cur;

static const char *const sts_actions[] = {"AssumeRole", "AssumeRoleWithWebIdentity",
                                          "GetCallerIdentity"};

bool stsapi_is_sts(const char *scope_service, const struct query *q)
{
    if (scope_service && *scope_service)
        return strcmp(scope_service, "sts") == 0;
    const char *v = query_get(q, "Version"), *a = query_get(q, "Action");
    if (v && strcmp(v, STS_VERSION) == 0)
        return true;
    for (size_t i = 0; a && i < sizeof sts_actions / sizeof sts_actions[0]; i++)
        if (strcmp(a, sts_actions[i]) == 0)
            return true;
    return false;
}

bool stsapi_unsigned_action(const char *action)
{
    return action && strcmp(action, "AssumeRoleWithWebIdentity") == 0;
}

/* ---- settings --------------------------------------------------------------------------- */

static bool deny_has(const struct sts_settings *s, const char *v, size_t *at)
{
    for (size_t i = 0; i < s->ndeny; i++)
        if (strcmp(s->deny[i], v) == 0) {
            if (at)
                *at = i;
            return true;
        }
    return false;
}

static bool str_list(const cJSON *a, const char *key, char *errbuf, size_t errlen)
{
    if (!a)
        return true;
    bool ok = cJSON_IsArray(a);
    const cJSON *it;
    cJSON_ArrayForEach(it, a) ok = ok && cJSON_IsString(it) && strlen(it->valuestring) > 0 &&
                                   strlen(it->valuestring) < ROLE_LEN;
    if (!ok)
        snprintf(errbuf, errlen, "%s must be a list of role ARNs or account ids", key);
    return ok;
}

ebsd_status stsapi_apply_json(const cJSON *patch, char *errbuf, size_t errlen)
{
    if (!cJSON_IsObject(patch)) {
        snprintf(errbuf, errlen, "the body must be a JSON object");
        return EBSD_EINVAL;
    }
    const cJSON *deny = cJSON_GetObjectItemCaseSensitive(patch, "deny");
    const cJSON *allow = cJSON_GetObjectItemCaseSensitive(patch, "allow");
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(patch, "external_ids");
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(patch, "max_duration_s");
    if (!str_list(deny, "deny", errbuf, errlen) || !str_list(allow, "allow", errbuf, errlen))
        return EBSD_EINVAL;
    if (ext && !cJSON_IsObject(ext)) {
        snprintf(errbuf, errlen, "external_ids must be an object {role ARN: external id}");
        return EBSD_EINVAL;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, ext) if (!cJSON_IsString(it) || strlen(it->string) >= ROLE_LEN ||
                                    strlen(it->valuestring) >= EXTID_LEN)
    {
        snprintf(errbuf, errlen, "external_ids values must be strings (\"\" removes one)");
        return EBSD_EINVAL;
    }
    if (cap && (!cJSON_IsNumber(cap) || cap->valuedouble < 0 || cap->valuedouble > 43200)) {
        snprintf(errbuf, errlen, "max_duration_s must be a number in [0, 43200]");
        return EBSD_EINVAL;
    }
    struct sts_settings *s = xmalloc(sizeof *s);
    ebsd_status st = EBSD_EINVAL;
    pthread_mutex_lock(&lock);
    *s = cur;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(patch, "clear")))
        memset(s, 0, sizeof *s);
    cJSON_ArrayForEach(it, deny)
    {
        if (deny_has(s, it->valuestring, NULL))
            continue;
        if (s->ndeny == MAX_ROLES) {
            snprintf(errbuf, errlen, "more than %d refused roles", MAX_ROLES);
            goto out;
        }
        snprintf(s->deny[s->ndeny++], ROLE_LEN, "%s", it->valuestring);
    }
    cJSON_ArrayForEach(it, allow)
    {
        size_t at;
        if (deny_has(s, it->valuestring, &at)) {
            memmove(s->deny[at], s->deny[s->ndeny - 1], ROLE_LEN);
            s->ndeny--;
        }
    }
    cJSON_ArrayForEach(it, ext)
    {
        size_t i = 0;
        while (i < s->next && strcmp(s->ext[i].role, it->string) != 0)
            i++;
        if (!it->valuestring[0]) {
            if (i < s->next)
                s->ext[i] = s->ext[--s->next];
            continue;
        }
        if (i == s->next) {
            if (s->next == MAX_ROLES) {
                snprintf(errbuf, errlen, "more than %d roles with external ids", MAX_ROLES);
                goto out;
            }
            s->next++;
        }
        snprintf(s->ext[i].role, ROLE_LEN, "%s", it->string);
        snprintf(s->ext[i].id, EXTID_LEN, "%s", it->valuestring);
    }
    if (cap)
        s->max_duration_s = (long)cap->valuedouble;
    cur = *s;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(patch, "expire_sessions")))
        (void)simauth_expire_sessions();
    st = EBSD_OK;
out:
    pthread_mutex_unlock(&lock);
    free(s);
    return st;
}

cJSON *stsapi_to_json(void)
{
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&lock);
    cJSON *deny = cJSON_AddArrayToObject(o, "deny");
    for (size_t i = 0; i < cur.ndeny; i++)
        cJSON_AddItemToArray(deny, cJSON_CreateString(cur.deny[i]));
    cJSON *ext = cJSON_AddObjectToObject(o, "external_ids");
    for (size_t i = 0; i < cur.next; i++)
        cJSON_AddStringToObject(ext, cur.ext[i].role, cur.ext[i].id);
    cJSON_AddNumberToObject(o, "max_duration_s", (double)cur.max_duration_s);
    pthread_mutex_unlock(&lock);
    size_t issued, live;
    simauth_session_counts(&issued, &live);
    cJSON_AddNumberToObject(o, "sessions_issued", (double)issued);
    cJSON_AddNumberToObject(o, "sessions_live", (double)live);
    return o;
}

/* ---- answers ---------------------------------------------------------------------------- */

void stsapi_error(struct ec2_response *out, int status, const char *code, const char *message,
                  const char *request_id)
{
    struct xw w = {.st = EBSD_OK};
    buf_init(&w.b, 64 * 1024);
    xw_puts(&w, "<ErrorResponse xmlns=\"" STS_XMLNS "\">\n  <Error>");
    xw_elem(&w, "Type", status >= 500 ? "Receiver" : "Sender");
    xw_elem(&w, "Code", code);
    xw_elem(&w, "Message", message);
    xw_puts(&w, "</Error>\n  ");
    xw_elem(&w, "RequestId", request_id);
    xw_puts(&w, "\n</ErrorResponse>\n");
    out->status = status;
    snprintf(out->code, sizeof out->code, "%s", code);
    out->len = w.b.len;
    out->body = buf_steal(&w.b);
}

void stsapi_auth_error(struct ec2_response *out, enum simauth_fail why, const char *message,
                       const char *request_id)
{
    switch (why) {
    case SIMAUTH_MISSING:
        stsapi_error(out, 403, "MissingAuthenticationToken",
                     "Request is missing Authentication Token", request_id);
        break;
    case SIMAUTH_INCOMPLETE: stsapi_error(out, 400, "IncompleteSignature", message, request_id); break;
    case SIMAUTH_SKEW:
        /* STS says a stale signature is a wrong one, with the reason in the message. */
        stsapi_error(out, 403, "SignatureDoesNotMatch", message, request_id);
        break;
    case SIMAUTH_BAD_SIGNATURE:
        stsapi_error(out, 403, "SignatureDoesNotMatch", message, request_id);
        break;
    case SIMAUTH_EXPIRED_TOKEN:
        stsapi_error(out, 400, "ExpiredToken",
                     "The security token included in the request is expired", request_id);
        break;
    case SIMAUTH_REGION:
    case SIMAUTH_UNKNOWN_KEY:
    case SIMAUTH_BAD_TOKEN:
    default:
        stsapi_error(out, 403, "InvalidClientTokenId",
                     "The security token included in the request is invalid.", request_id);
        break;
    }
}

static void begin(struct xw *w, const char *action)
{
    buf_init(&w->b, 64 * 1024);
    w->st = EBSD_OK;
    xw_tag(w, "<", action, "Response xmlns=\"" STS_XMLNS "\">\n  <");
    xw_tag(w, "", action, "Result>\n");
}

static void end(struct xw *w, const char *action, const char *request_id,
                struct ec2_response *out)
{
    xw_tag(w, "  </", action, "Result>\n  <ResponseMetadata>\n    ");
    xw_elem(w, "RequestId", request_id);
    xw_tag(w, "\n  </ResponseMetadata>\n</", action, "Response>\n");
    out->status = 200;
    out->code[0] = '\0';
    out->len = w->b.len;
    out->body = buf_steal(&w->b);
}

/* arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME -> account and name; false if malformed. */
static bool parse_role_arn(const char *arn, char account[SIMAUTH_ACCOUNT_LEN], const char **name)
{
    static const char *const prefixes[] = {"arn:aws:iam::", "arn:aws-cn:iam::",
                                           "arn:aws-us-gov:iam::"};
    size_t len = strlen(arn);
    if (len < 20 || len >= ROLE_LEN)
        return false;
    const char *p = NULL;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0] && !p; i++)
        if (strncmp(arn, prefixes[i], strlen(prefixes[i])) == 0)
            p = arn + strlen(prefixes[i]);
    if (!p || strlen(p) < 18 || p[12] != ':' || strncmp(p + 13, "role/", 5) != 0)
        return false;
    memcpy(account, p, 12);
    account[12] = '\0';
    if (!simauth_account_valid(account))
        return false;
    const char *slash = strrchr(p + 13, '/');
    *name = slash + 1;
    return **name != '\0';
}

/* RoleSessionName: 2..64 of [\w+=,.@-]. */
static bool session_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("_+=,.@-", c)))
            return false;
    }
    return true;
}

static void validation(struct ec2_response *out, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void validation(struct ec2_response *out, const char *request_id, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    stsapi_error(out, 400, "ValidationError", msg, request_id);
}

/* STS writes expirations without milliseconds: 2019-11-09T13:34:41Z. */
static void expiration_text(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void assume_role(const struct query *q, const struct simauth_identity *who, bool web,
                        const char *request_id, struct ec2_response *out)
{
    const char *action = web ? "AssumeRoleWithWebIdentity" : "AssumeRole";
    const char *arn = query_get(q, "RoleArn");
    const char *session = query_get(q, "RoleSessionName");
    const char *dur = query_get(q, "DurationSeconds");
    const char *extid = query_get(q, "ExternalId");
    const char *wit = query_get(q, "WebIdentityToken");
    char account[SIMAUTH_ACCOUNT_LEN];
    const char *role_name = NULL;
    if (!arn) {
        validation(out, request_id, "1 validation error detected: Value null at 'roleArn' "
                                    "failed to satisfy constraint: Member must not be null");
        return;
    }
    if (!session) {
        validation(out, request_id, "1 validation error detected: Value null at "
                                    "'roleSessionName' failed to satisfy constraint: Member "
                                    "must not be null");
        return;
    }
    if (!parse_role_arn(arn, account, &role_name)) {
        validation(out, request_id, "%s is invalid", arn);
        return;
    }
    if (!session_name_valid(session)) {
        validation(out, request_id,
                   "1 validation error detected: Value '%s' at 'roleSessionName' failed to "
                   "satisfy constraint: Member must satisfy regular expression pattern: "
                   "[\\w+=,.@-]*",
                   session);
        return;
    }
    if (web && (!wit || strlen(wit) < 4)) {
        validation(out, request_id, "1 validation error detected: Value null at "
                                    "'webIdentityToken' failed to satisfy constraint: Member "
                                    "must have length greater than or equal to 4");
        return;
    }
    long duration = 3600;
    if (dur) {
        char *end;
        errno = 0;
        duration = strtol(dur, &end, 10);
        if (errno || end == dur || *end || duration < 900 || duration > 43200) {
            validation(out, request_id,
                       "1 validation error detected: Value '%s' at 'durationSeconds' failed to "
                       "satisfy constraint: Member must have value greater than or equal to "
                       "900 and less than or equal to 43200",
                       dur);
            return;
        }
    }
    bool refused = false;
    long cap;
    pthread_mutex_lock(&lock);
    refused = deny_has(&cur, arn, NULL) || deny_has(&cur, account, NULL);
    for (size_t i = 0; i < cur.next && !refused; i++)
        if (strcmp(cur.ext[i].role, arn) == 0)
            refused = !extid || strcmp(extid, cur.ext[i].id) != 0;
    cap = cur.max_duration_s;
    pthread_mutex_unlock(&lock);
    if (refused) {
        char msg[ROLE_LEN + 512];
        if (web)
            snprintf(msg, sizeof msg, "Not authorized to perform sts:AssumeRoleWithWebIdentity");
        else
            snprintf(msg, sizeof msg,
                     "User: %s is not authorized to perform: sts:AssumeRole on resource: %s",
                     who->arn, arn);
        stsapi_error(out, 403, "AccessDenied", msg, request_id);
        return;
    }
    if (cap > 0 && cap < duration)
        duration = cap;

    char assumed_arn[ROLE_LEN + 128], role_id[160];
    int pl = (int)(strchr(arn + 4, ':') - arn); /* "arn:aws" / "arn:aws-cn" ... */
    snprintf(assumed_arn, sizeof assumed_arn, "%.*s:sts::%s:assumed-role/%s/%s", pl, arn,
             account, role_name, session);
    /* A stable role id per role: AROA + 17 characters from a hash of the ARN. */
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = arn; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    snprintf(role_id, sizeof role_id, "AROA%017llX:%s",
             (unsigned long long)(h & 0xFFFFFFFFFFFFFULL) * 16ULL + 10ULL, session);
    struct simauth_session cr;
    int64_t expires = clock_wall_ms() + (int64_t)duration * 1000;
    if (simauth_issue(account, assumed_arn, role_id, expires, &cr) != EBSD_OK) {
        stsapi_error(out, 503, "ServiceUnavailable", "Too many live sessions in ec2sim.",
                     request_id);
        return;
    }
    char exp[32];
    expiration_text(cr.expires_ms, exp);
    struct xw w;
    begin(&w, action);
    if (web) {
        xw_puts(&w, "    ");
        xw_elem(&w, "SubjectFromWebIdentityToken", "ec2sim-subject");
        xw_puts(&w, "\n    ");
        xw_elem(&w, "Audience", "sts.amazonaws.com");
        xw_puts(&w, "\n    ");
        xw_elem(&w, "Provider", "ec2sim");
        xw_puts(&w, "\n");
    }
    xw_puts(&w, "    <AssumedRoleUser>\n      ");
    xw_elem(&w, "Arn", assumed_arn);
    xw_puts(&w, "\n      ");
    xw_elem(&w, "AssumedRoleId", role_id);
    xw_puts(&w, "\n    </AssumedRoleUser>\n    <Credentials>\n      ");
    xw_elem(&w, "AccessKeyId", cr.access_key);
    xw_puts(&w, "\n      ");
    xw_elem(&w, "SecretAccessKey", cr.secret);
    xw_puts(&w, "\n      ");
    xw_elem(&w, "SessionToken", cr.token);
    xw_puts(&w, "\n      ");
    xw_elem(&w, "Expiration", exp);
    xw_puts(&w, "\n    </Credentials>\n");
    end(&w, action, request_id, out);
    explicit_bzero(&cr, sizeof cr);
}

static void caller_identity(const struct simauth_identity *who, const char *request_id,
                            struct ec2_response *out)
{
    struct xw w;
    begin(&w, "GetCallerIdentity");
    xw_puts(&w, "    ");
    xw_elem(&w, "Arn", who->arn);
    xw_puts(&w, "\n    ");
    xw_elem(&w, "UserId", who->user_id);
    xw_puts(&w, "\n    ");
    xw_elem(&w, "Account", who->account);
    xw_puts(&w, "\n");
    end(&w, "GetCallerIdentity", request_id, out);
}

void stsapi_handle(const struct query *q, const struct simauth_identity *who,
                   const char *request_id, struct ec2_response *out)
{
    memset(out, 0, sizeof *out);
    const char *action = query_get(q, "Action");
    const char *version = query_get(q, "Version");
    if (!action || !*action) {
        stsapi_error(out, 400, "MissingAction", "Missing Action", request_id);
    } else if (!version || strcmp(version, STS_VERSION) != 0) {
        stsapi_error(out, 400, "InvalidParameterValue",
                     "Could not find operation for the version given", request_id);
    } else if (strcmp(action, "AssumeRole") == 0) {
        assume_role(q, who, false, request_id, out);
    } else if (strcmp(action, "AssumeRoleWithWebIdentity") == 0) {
        assume_role(q, who, true, request_id, out);
    } else if (strcmp(action, "GetCallerIdentity") == 0) {
        caller_identity(who, request_id, out);
    } else {
        char msg[160];
        snprintf(msg, sizeof msg, "Could not find operation %.64s for version " STS_VERSION,
                 action);
        stsapi_error(out, 400, "InvalidAction", msg, request_id);
    }
}
