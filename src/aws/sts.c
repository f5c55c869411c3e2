/* sts.c - STS AssumeRole (SigV4-signed) and AssumeRoleWithWebIdentity (unsigned) over the
 * Query API, with the XML answer parsed by expat; per-attempt timeouts, the SDKs' standard
 * retries within the deadline, and clock-skew correction (skew.h). */
#include "sts.h"

#include <errno.h>
#include <expat.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "awsid.h"
#include "clock.h"
#include "endpoint.h"
#include "mem.h"
#include "retry.h"
#include "sigv4.h"
#include "skew.h"

#define STS_VERSION "2011-06-15"
#define MAX_RESPONSE (64u << 10)
#define MAX_TEXT (8u << 10)

/* ---- response parsing ------------------------------------------------------------------- */

struct xml_ctx {
    XML_Parser p;
    int depth;
    bool in_creds, in_error, in_user, too_big, doctype;
    struct buf text;
    char *ak, *sk, *token, *exp, *code, *message, *user_arn;
    char *account, *caller_arn; /* GetCallerIdentityResult */
};

static const char *local_name(const char *name)
{
    const char *colon = strrchr(name, ':');
    return colon ? colon + 1 : name;
}

static void on_start(void *ud, const char *name, const char **attrs)
{
    struct xml_ctx *x = ud;
    const char *n = local_name(name);
    x->depth++;
    if (strcmp(n, "Credentials") == 0)
        x->in_creds = true;
    else if (strcmp(n, "Error") == 0)
        x->in_error = true;
    else if (strcmp(n, "AssumedRoleUser") == 0)
        x->in_user = true;
    buf_reset(&x->text);
}

static void keep(char **slot, struct buf *text)
{
    free(*slot);
    *slot = xstrndup(text->data ? text->data : "", text->len);
}

static void on_end(void *ud, const char *name)
{
    struct xml_ctx *x = ud;
    const char *n = local_name(name);
    x->depth--;
    if (x->in_creds) {
        if (strcmp(n, "AccessKeyId") == 0)
            keep(&x->ak, &x->text);
        else if (strcmp(n, "SecretAccessKey") == 0)
            keep(&x->sk, &x->text);
        else if (strcmp(n, "SessionToken") == 0)
            keep(&x->token, &x->text);
        else if (strcmp(n, "Expiration") == 0)
            keep(&x->exp, &x->text);
        else if (strcmp(n, "Credentials") == 0)
            x->in_creds = false;
    } else if (x->in_error) {
        if (strcmp(n, "Code") == 0)
            keep(&x->code, &x->text);
        else if (strcmp(n, "Message") == 0)
            keep(&x->message, &x->text);
        else if (strcmp(n, "Error") == 0)
            x->in_error = false;
    } else if (x->in_user) {
        if (strcmp(n, "Arn") == 0)
            keep(&x->user_arn, &x->text);
        else if (strcmp(n, "AssumedRoleUser") == 0)
            x->in_user = false;
    } else if (strcmp(n, "Account") == 0) {
        keep(&x->account, &x->text);
    } else if (strcmp(n, "Arn") == 0) {
        keep(&x->caller_arn, &x->text);
    }
    buf_reset(&x->text);
}

static void on_text(void *ud, const char *s, int len)
{
    struct xml_ctx *x = ud;
    if (buf_append(&x->text, s, (size_t)len) != EBSD_OK) {
        x->too_big = true;
        XML_StopParser(x->p, XML_FALSE);
    }
}

/* No DTDs: STS never sends one, and entity tricks start there. */
static void on_doctype(void *ud, const char *name, const char *sysid, const char *pubid,
                       int has_internal)
{
    struct xml_ctx *x = ud;
    x->doctype = true;
    XML_StopParser(x->p, XML_FALSE);
}

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static bool copy_field(char *dst, size_t dstlen, const char *src)
{
    size_t n = strlen(src);
    if (n >= dstlen)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

/* The account id in an assumed-role ARN "arn:PARTITION:sts::ACCOUNT:assumed-role/R/S". */
static void account_of(const char *arn, char out[13])
{
    out[0] = '\0';
    const char *p = arn;
    for (int field = 0; field < 4 && p; field++) {
        p = strchr(p, ':');
        if (p)
            p++;
    }
    if (p && strspn(p, "0123456789") == 12 && p[12] == ':') {
        memcpy(out, p, 12);
        out[12] = '\0';
    }
}

/* sts_parse_response, also giving the error code of an ErrorResponse in code and the
 * assumed role's ARN and account in *o (when not NULL). out NULL: a GetCallerIdentity
 * answer, whose Account and Arn go to *o (then required). */
static ebsd_status parse_response(const char *xml, size_t len, struct creds *out, char *err,
                                  size_t errlen, char *code, size_t codelen,
                                  struct sts_outcome *o)
{
    ebsd_status st = EBSD_EPARSE;
    struct xml_ctx x = {0};
    struct creds c;
    memset(&c, 0, sizeof c);
    buf_init(&x.text, MAX_TEXT);
    x.p = XML_ParserCreate("UTF-8");
    if (!x.p) {
        fprintf(stderr, "ebsd: XML_ParserCreate failed\n");
        abort(); /* allocation failure: the OOM policy of mem.h */
    }
    XML_SetUserData(x.p, &x);
    XML_SetElementHandler(x.p, on_start, on_end);
    XML_SetCharacterDataHandler(x.p, on_text);
    XML_SetStartDoctypeDeclHandler(x.p, on_doctype);
    if (XML_Parse(x.p, xml, (int)len, XML_TRUE) != XML_STATUS_OK) {
        if (x.too_big)
            snprintf(err, errlen, "an element of the answer is longer than %u bytes",
                     MAX_TEXT);
        else if (x.doctype)
            snprintf(err, errlen, "the answer has a DOCTYPE");
        else
            snprintf(err, errlen, "the answer is not XML: %s at line %lu",
                     XML_ErrorString(XML_GetErrorCode(x.p)),
                     (unsigned long)XML_GetCurrentLineNumber(x.p));
        goto out;
    }
    if (x.code) {
        snprintf(err, errlen, "%.64s: %.300s", x.code, x.message ? x.message : "");
        if (codelen)
            snprintf(code, codelen, "%s", x.code);
        st = EBSD_EUPSTREAM;
        goto out;
    }
    if (!out) {
        if (!o || !x.account || strlen(x.account) != 12 ||
            strspn(x.account, "0123456789") != 12) {
            snprintf(err, errlen, "the answer lacks a 12-digit GetCallerIdentityResult/Account");
            goto out;
        }
        snprintf(o->account_id, sizeof o->account_id, "%s", x.account);
        snprintf(o->assumed_role_arn, sizeof o->assumed_role_arn, "%s",
                 x.caller_arn ? x.caller_arn : "");
        st = EBSD_OK;
        goto out;
    }
    if (!x.ak || !x.sk || !x.token || !x.exp) {
        snprintf(err, errlen, "the answer lacks %s", !x.ak ? "Credentials/AccessKeyId"
                                                     : !x.sk ? "Credentials/SecretAccessKey"
                                                     : !x.token ? "Credentials/SessionToken"
                                                                : "Credentials/Expiration");
        goto out;
    }
    if (!clock_parse_rfc3339(x.exp, &c.expiration)) {
        snprintf(err, errlen, "Credentials/Expiration is not an RFC 3339 time");
        goto out;
    }
    if (!*x.ak || !*x.sk || !copy_field(c.access_key_id, sizeof c.access_key_id, x.ak) ||
        !copy_field(c.secret_access_key, sizeof c.secret_access_key, x.sk) ||
        !copy_field(c.session_token, sizeof c.session_token, x.token)) {
        snprintf(err, errlen, "a credential in the answer is empty or too long");
        goto out;
    }
    if (o) {
        snprintf(o->assumed_role_arn, sizeof o->assumed_role_arn, "%s",
                 x.user_arn ? x.user_arn : "");
        account_of(o->assumed_role_arn, o->account_id);
    }
    *out = c;
    st = EBSD_OK;
out:
    XML_ParserFree(x.p);
    buf_free(&x.text);
    free(x.ak);
    wipe_free(x.sk);
    wipe_free(x.token);
    free(x.exp);
    free(x.code);
    free(x.message);
    free(x.user_arn);
    free(x.account);
    free(x.caller_arn);
    OPENSSL_cleanse(&c, sizeof c);
    return st;
}

ebsd_status sts_parse_response(const char *xml, size_t len, struct creds *out, char *err,
                               size_t errlen)
{
    return parse_response(xml, len, out, err, errlen, NULL, 0, NULL);
}

/* ---- the call --------------------------------------------------------------------------- */

char *sts_endpoint(const char *region)
{
    return endpoint_resolve("sts", "STS", region);
}

void sts_default_session_name(char *out, size_t outlen)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "host");
    char raw[300];
    snprintf(raw, sizeof raw, "ebsd-%s", host);
    awsid_session_name_sanitize(raw, out, outlen);
}

bool sts_auth_code(const char *code)
{
    static const char *const codes[] = {
        "AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "ExpiredToken",
        "ExpiredTokenException", "MissingAuthenticationToken", "UnrecognizedClientException",
        "SignatureDoesNotMatch", "InvalidIdentityToken", "IDPRejectedClaim",
    };
    for (size_t i = 0; code && i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return false;
}

/* Splits "scheme://authority/path?x" into authority and path ("/" when empty). */
static bool split_url(const char *url, char **authority, char **path)
{
    const char *p = strstr(url, "://");
    if (!p || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        return false;
    p += 3;
    size_t alen = strcspn(p, "/?#");
    if (!alen)
        return false;
    *authority = xstrndup(p, alen);
    const char *rest = p + alen;
    size_t plen = strcspn(rest, "?#");
    *path = plen ? xstrndup(rest, plen) : xstrdup("/");
    return true;
}

static void form_add(struct buf *b, const char *key, const char *value, bool *ok)
{
    char *v = sigv4_uri_encode(value, strlen(value), true);
    if (buf_printf(b, "%s%s=%s", b->len ? "&" : "", key, v) != EBSD_OK)
        *ok = false;
    OPENSSL_cleanse(v, strlen(v));
    free(v);
}

/* One attempt: signs (AssumeRole) with the skew-corrected clock, sends, parses. On failure
 * err says why and *cls whether it is worth retrying; a clock-skew error whose Date shows
 * our clock far from STS's corrects the offset (skew.h) and is RETRY_CLOCK_SKEW. */
static ebsd_status attempt(struct httpc *h, const struct sts_assume *a, const char *action,
                           const char *authority, const char *path, const char *url,
                           const struct buf *body, int64_t deadline, struct creds *out,
                           char *err, size_t errlen, enum retry_class *cls,
                           struct sts_outcome *o)
{
    ebsd_status st;
    bool web = a->web_identity_token != NULL;
    char *hdr_lines[8] = {0};
    const char *hdrs[8] = {0};
    size_t nh = 0;
    struct sigv4_signed sig;
    bool signed_ok = false;
    struct httpc_response resp;
    bool have_resp = false;
    *cls = RETRY_NONE;

    static const char ctype[] = "application/x-www-form-urlencoded; charset=utf-8";
    /* Host is sent explicitly so that what is signed is what curl sends. */
    hdr_lines[nh++] = xasprintf("Host: %s", authority);
    hdr_lines[nh++] = xasprintf("Content-Type: %s", ctype);
    if (!web) {
        struct sigv4_header sh[2] = {{"Host", authority}, {"Content-Type", ctype}};
        struct sigv4_credentials sc = {a->source->access_key_id,
                                       a->source->secret_access_key,
                                       a->source->session_token};
        struct sigv4_params sp = {.creds = &sc, .region = a->region ? a->region : "us-east-1",
                                  .service = "sts", .when = skew_now(),
                                  .normalize_path = true};
        struct sigv4_request sr = {.method = "POST", .path = path, .headers = sh,
                                   .nheaders = 2, .body = body->data, .body_len = body->len};
        if ((st = sigv4_sign(&sr, &sp, &sig)) != EBSD_OK) {
            snprintf(err, errlen, "STS %s: signing failed: %s", action, status_str(st));
            goto out;
        }
        signed_ok = true;
        for (size_t i = 0; i < sig.nadd; i++)
            hdr_lines[nh++] = xasprintf("%s: %s", sig.add[i].name, sig.add[i].value);
    }
    for (size_t i = 0; i < nh; i++)
        hdrs[i] = hdr_lines[i];
    struct httpc_request req = {
        .method = "POST", .url = url, .headers = hdrs, .body = body->data,
        .body_len = body->len, .deadline = deadline, .max_response = MAX_RESPONSE,
        .connect_timeout_ms =
            a->connect_timeout_ms > 0 ? a->connect_timeout_ms : STS_DEFAULT_CONNECT_TIMEOUT_MS,
        .read_timeout_ms =
            a->read_timeout_ms > 0 ? a->read_timeout_ms : STS_DEFAULT_READ_TIMEOUT_MS};
    st = httpc_perform(h, &req, &resp);
    have_resp = true;
    o->attempts++;
    o->http_status = resp.status;
    o->code[0] = '\0';
    if (st != EBSD_OK) {
        snprintf(err, errlen, "STS %s at %s: %s%s%s", action, url,
                 st == EBSD_ETIMEDOUT ? "no answer before the deadline" : status_str(st),
                 resp.error[0] ? ": " : "", resp.error);
        *cls = retry_classify(st, resp.timed_out, 0, NULL);
        goto out;
    }
    char perr[400] = "", code[64] = "";
    st = parse_response(resp.body.data ? resp.body.data : "", resp.body.len, out, perr,
                        sizeof perr, code, sizeof code, o);
    snprintf(o->code, sizeof o->code, "%s", code);
    if (resp.status != 200) {
        snprintf(err, errlen, "STS %s at %s: HTTP %ld%s%s", action, url, resp.status,
                 st == EBSD_EUPSTREAM ? ": " : "", st == EBSD_EUPSTREAM ? perr : "");
        if (st == EBSD_OK && out)
            OPENSSL_cleanse(out, sizeof *out); /* credentials under an error status: unused */
        *cls = retry_classify(EBSD_OK, false, resp.status, code);
        st = *cls == RETRY_THROTTLE ? EBSD_ETHROTTLED
             : sts_auth_code(code)  ? EBSD_EAUTH
             : strcmp(code, "ValidationError") == 0 ? EBSD_EINVAL
                                                    : EBSD_EUPSTREAM;
        if (!web && retry_is_clock_skew_code(code) && skew_correct_from_date(resp.date)) {
            *cls = RETRY_CLOCK_SKEW;
            skew_announce();
        }
        goto out;
    }
    if (st != EBSD_OK)
        snprintf(err, errlen, "STS %s at %s: %s", action, url, perr);
out:
    if (have_resp) {
        if (resp.body.data)
            OPENSSL_cleanse(resp.body.data, resp.body.len);
        httpc_response_free(&resp);
    }
    if (signed_ok)
        sigv4_signed_free(&sig);
    for (size_t i = 0; i < nh; i++) {
        OPENSSL_cleanse(hdr_lines[i], strlen(hdr_lines[i]));
        free(hdr_lines[i]);
    }
    return st;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Sends body to the endpoint with the retries of the standard mode, within a->deadline.
 * out NULL: a GetCallerIdentity call (its answer goes to *o). */
static ebsd_status send_with_retries(struct httpc *h, const struct sts_assume *a,
                                     const char *action, const char *endpoint,
                                     const struct buf *body, struct creds *out,
                                     struct sts_outcome *o, char *err, size_t errlen)
{
    ebsd_status st = EBSD_EINVAL;
    char *authority = NULL, *path = NULL, *url = NULL;
    /* STS is called once per credential refresh, so there is no retry quota to share: the
     * attempts and the deadline bound the retries. */
    static struct retry_rng rng;
    if (!split_url(endpoint, &authority, &path)) {
        snprintf(err, errlen, "STS %s: bad endpoint URL", action);
        goto out;
    }
    /* The endpoint as given, path included (the query part, if any, is dropped). */
    url = xasprintf("%.*s%s%s", (int)(strstr(endpoint, "://") + 3 - endpoint), endpoint,
                    authority, path);
    int64_t deadline = a->deadline ? a->deadline : clock_now_ms() + 30000;
    int max_attempts = a->max_attempts > 0 ? a->max_attempts
                                           : retry_settings_get()->max_attempts;
    for (int n = 1;; n++) {
        enum retry_class cls;
        st = attempt(h, a, action, authority, path, url, body, deadline, out, err, errlen,
                     &cls, o);
        if (st == EBSD_OK || cls == RETRY_NONE || n >= max_attempts)
            break;
        int64_t delay = retry_delay_ms(cls, n, retry_rng_uniform(&rng));
        if (clock_now_ms() + delay >= deadline)
            break; /* keep the last error */
        if (delay > 0)
            sleep_ms(delay);
    }
out:
    free(authority);
    free(path);
    free(url);
    return st;
}

ebsd_status sts_assume_role(struct httpc *h, const struct sts_assume *a, struct creds *out,
                            char *err, size_t errlen)
{
    ebsd_status st = EBSD_EINVAL;
    bool web = a->web_identity_token != NULL;
    const char *action = web ? "AssumeRoleWithWebIdentity" : "AssumeRole";
    char *endpoint = NULL;
    struct sts_outcome scratch;
    struct sts_outcome *o = a->outcome ? a->outcome : &scratch;
    memset(o, 0, sizeof *o);
    struct creds got;
    memset(&got, 0, sizeof got);
    struct buf body;
    buf_init(&body, 64u << 10);

    endpoint = a->endpoint && *a->endpoint ? xstrdup(a->endpoint) : sts_endpoint(a->region);
    if (!a->role_arn || !*a->role_arn) {
        snprintf(err, errlen, "STS %s: no role ARN", action);
        goto out;
    }
    if (!web && !a->source) {
        snprintf(err, errlen, "STS %s: no source credentials", action);
        goto out;
    }
    char session[AWSID_SESSION_NAME_MAX + 1];
    if (a->session_name && *a->session_name)
        snprintf(session, sizeof session, "%s", a->session_name);
    else
        sts_default_session_name(session, sizeof session);
    /* Parameters in the order botocore serializes them (the request shape's member order),
     * so the same inputs give the same bytes and the same signature. */
    bool ok = true;
    form_add(&body, "Action", action, &ok);
    form_add(&body, "Version", STS_VERSION, &ok);
    form_add(&body, "RoleArn", a->role_arn, &ok);
    form_add(&body, "RoleSessionName", session, &ok);
    if (web)
        form_add(&body, "WebIdentityToken", a->web_identity_token, &ok);
    if (a->duration_s > 0) {
        char d[16];
        snprintf(d, sizeof d, "%d", a->duration_s);
        form_add(&body, "DurationSeconds", d, &ok);
    }
    if (!web && a->external_id && *a->external_id)
        form_add(&body, "ExternalId", a->external_id, &ok);
    if (!ok) {
        snprintf(err, errlen, "STS %s: request body too large", action);
        st = EBSD_ETOOBIG;
        goto out;
    }
    st = send_with_retries(h, a, action, endpoint, &body, &got, o, err, errlen);
    if (st == EBSD_OK)
        *out = got;
out:
    OPENSSL_cleanse(&got, sizeof got);
    if (body.data)
        OPENSSL_cleanse(body.data, body.len);
    buf_free(&body);
    free(endpoint);
    return st;
}

ebsd_status sts_get_caller_identity(struct httpc *h, const struct sts_assume *a,
                                    struct sts_outcome *o, char *err, size_t errlen)
{
    ebsd_status st = EBSD_EINVAL;
    memset(o, 0, sizeof *o);
    char *endpoint =
        a->endpoint && *a->endpoint ? xstrdup(a->endpoint) : sts_endpoint(a->region);
    struct buf body;
    buf_init(&body, 256);
    if (!a->source || a->web_identity_token) {
        snprintf(err, errlen, "STS GetCallerIdentity: no credentials to sign with");
        goto out;
    }
    bool ok = true;
    form_add(&body, "Action", "GetCallerIdentity", &ok);
    form_add(&body, "Version", STS_VERSION, &ok);
    if (!ok) {
        st = EBSD_ETOOBIG;
        goto out;
    }
    st = send_with_retries(h, a, "GetCallerIdentity", endpoint, &body, NULL, o, err, errlen);
out:
    buf_free(&body);
    free(endpoint);
    return st;
}
