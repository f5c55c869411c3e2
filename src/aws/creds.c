/* creds.c - the AWS credential chain in the SDKs' order: environment, web identity token
 * (STS AssumeRoleWithWebIdentity), shared config/credentials files (static keys,
 * credential_process, or role_arn via STS AssumeRole), container credentials (ECS, EKS Pod
 * Identity), EC2 instance metadata (IMDSv2, IMDSv1 only where the SDKs fall back to it).
 * A source that is not configured passes to the next; a configured source that fails
 * stops the chain with an error naming it, except IMDS, which is only tried and so ends
 * the chain with "no credentials found" when nothing answers. Messages never carry a
 * secret, a token or a response body. */
#include "creds.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "awsconfig.h"
#include "clock.h"
#include "credproc.h"
#include "file.h"
#include "httpc.h"
#include "mem.h"
#include "sigv4.h"
#include "sts.h"

#define DEFAULT_DEADLINE_MS 10000
#define IMDS_STEP_MS 1000      /* each IMDS call: short, so startup off EC2 stays quick */
#define CONTAINER_MS 5000      /* cap on the container call */
#define MAX_TOKEN_FILE (16u << 10)
#define MAX_JSON (64u << 10)
#define MAX_ROLE_CHAIN 4
#define CONTAINER_HOST "http://169.254.170.2"
#define IMDS_HOST "http://169.254.169.254"
#define IMDS_HOST6 "http://[fd00:ec2::254]"

struct chain {
    struct httpc *h; /* created on first network call */
    int64_t deadline;
    char imds_note[200]; /* why IMDS gave nothing, for the final message */
};

static void set_err(struct creds_error *err, const char *source, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(struct creds_error *err, const char *source, const char *fmt, ...)
{
    va_list ap;
    snprintf(err->source, sizeof err->source, "%s", source);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool env_true(const char *name)
{
    const char *v = env(name);
    return v && strcasecmp(v, "true") == 0;
}

static const char *env_region(void)
{
    const char *r = env("AWS_REGION");
    return r ? r : env("AWS_DEFAULT_REGION");
}

static struct httpc *chain_http(struct chain *x)
{
    if (!x->h)
        x->h = httpc_new();
    return x->h;
}

/* Deadline for one step: the chain's, or now + cap_ms if sooner. */
static int64_t step_deadline(const struct chain *x, int64_t cap_ms)
{
    int64_t d = clock_now_ms() + cap_ms;
    return d < x->deadline ? d : x->deadline;
}

/* ---- helpers ---------------------------------------------------------------------------- */

bool creds_parse_time(const char *s, time_t *out)
{
    return clock_parse_rfc3339(s, out);
}

static void format_time(time_t t, char out[32])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 32, "%lld", (long long)t);
}

bool creds_expiring(const struct creds *c, time_t now, int margin_s)
{
    return c->expiration != 0 && c->expiration - now <= (time_t)margin_s;
}

void creds_wipe(struct creds *c)
{
    OPENSSL_cleanse(c->secret_access_key, sizeof c->secret_access_key);
    OPENSSL_cleanse(c->session_token, sizeof c->session_token);
}

/* Fills *out from strings, checking they fit. */
static ebsd_status fill(struct creds *out, const char *source, const char *ak, const char *sk,
                        const char *token, time_t expiration, struct creds_error *err)
{
    if (!ak || !*ak || !sk || !*sk) {
        set_err(err, source, "%s: %s is empty", source, !ak || !*ak ? "access key id" :
                                                                       "secret access key");
        return EBSD_EAUTH;
    }
    if (strlen(ak) >= sizeof out->access_key_id || strlen(sk) >= sizeof out->secret_access_key ||
        (token && strlen(token) >= sizeof out->session_token)) {
        set_err(err, source, "%s: a credential is longer than ebsd accepts", source);
        return EBSD_ETOOBIG;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->access_key_id, sizeof out->access_key_id, "%s", ak);
    snprintf(out->secret_access_key, sizeof out->secret_access_key, "%s", sk);
    snprintf(out->session_token, sizeof out->session_token, "%s", token ? token : "");
    snprintf(out->source, sizeof out->source, "%s", source);
    out->expiration = expiration;
    return EBSD_OK;
}

/* Reads a small secret file (token files), trimmed of surrounding whitespace. */
static ebsd_status read_token_file(const char *path, const char *source, char **out,
                                   struct creds_error *err)
{
    char *data = NULL;
    size_t len = 0;
    struct file_error fe;
    ebsd_status st = file_read(path, MAX_TOKEN_FILE, FILE_SECRET, &data, &len, NULL, &fe);
    if (st == EBSD_ENOTFOUND)
        st = EBSD_EIO; /* fe says open: ENOENT */
    if (st == EBSD_ETOOBIG) {
        set_err(err, source, "%s: %s is larger than %u bytes", source, path, MAX_TOKEN_FILE);
        return st;
    }
    if (st != EBSD_OK) {
        set_err(err, source, "%s: %s %s: %s", source, fe.op, path, strerror(fe.err_no));
        return st;
    }
    size_t a = strspn(data, " \t\r\n");
    while (len > a && strchr(" \t\r\n", data[len - 1]))
        data[--len] = '\0';
    if (len == a) {
        set_err(err, source, "%s: %s is empty", source, path);
        st = EBSD_EAUTH;
    } else {
        *out = xstrdup(data + a);
    }
    OPENSSL_cleanse(data, len);
    free(data);
    return st;
}

/* A URL for messages: without its query string. Caller frees. */
static char *url_for_message(const char *url)
{
    return xstrndup(url, strcspn(url, "?#"));
}

/* ---- 1. environment --------------------------------------------------------------------- */

static ebsd_status from_env(struct chain *x, struct creds *out, struct creds_error *err)
{
    const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY");
    if (!ak && !sk)
        return EBSD_ENOTFOUND;
    if (!ak || !sk) {
        set_err(err, "environment", "environment: %s is set but %s is not",
                ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return EBSD_EAUTH;
    }
    return fill(out, "environment", ak, sk, env("AWS_SESSION_TOKEN"), 0, err);
}

/* ---- 2. web identity -------------------------------------------------------------------- */

static ebsd_status call_sts(struct chain *x, const char *source, struct sts_assume *a,
                            struct creds *out, struct creds_error *err)
{
    char msg[sizeof err->message];
    char *endpoint = sts_endpoint(a->region);
    char session[64];
    snprintf(session, sizeof session, "ebsd-session-%lld", (long long)time(NULL));
    if (!a->session_name || !*a->session_name)
        a->session_name = session;
    a->endpoint = endpoint;
    a->deadline = x->deadline;
    ebsd_status st = sts_assume_role(chain_http(x), a, out, msg, sizeof msg);
    if (st == EBSD_OK)
        snprintf(out->source, sizeof out->source, "%s", source);
    else
        set_err(err, source, "%s: %s", source, msg);
    free(endpoint);
    return st;
}

static ebsd_status web_identity(struct chain *x, const char *source, const char *token_file,
                                const char *role_arn, const char *session, const char *region,
                                struct creds *out, struct creds_error *err)
{
    char *token = NULL;
    ebsd_status st = read_token_file(token_file, source, &token, err);
    if (st != EBSD_OK)
        return st;
    struct sts_assume a = {.role_arn = role_arn, .session_name = session,
                           .web_identity_token = token,
                           .region = region ? region : "us-east-1"};
    st = call_sts(x, source, &a, out, err);
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    return st;
}

static ebsd_status from_web_identity(struct chain *x, struct creds *out,
                                     struct creds_error *err)
{
    const char *tf = env("AWS_WEB_IDENTITY_TOKEN_FILE"), *arn = env("AWS_ROLE_ARN");
    if (!tf && !arn)
        return EBSD_ENOTFOUND;
    if (!tf || !arn) {
        set_err(err, "web-identity", "web-identity: %s is set but %s is not",
                tf ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN",
                tf ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE");
        return EBSD_EINVAL;
    }
    return web_identity(x, "web-identity", tf, arn, env("AWS_ROLE_SESSION_NAME"), env_region(),
                        out, err);
}

/* ---- 3. shared files -------------------------------------------------------------------- */

static ebsd_status from_container(struct chain *x, struct creds *out, struct creds_error *err);
static ebsd_status from_imds(struct chain *x, struct creds *out, struct creds_error *err);

static ebsd_status resolve_profile(struct chain *x, const struct awsconfig *cfg,
                                   const char *name, int depth, struct creds *out,
                                   struct creds_error *err);

/* The credentials a role profile signs its AssumeRole call with. */
static ebsd_status role_source(struct chain *x, const struct awsconfig *cfg, const char *name,
                               int depth, const char *source, struct creds *src,
                               struct creds_error *err)
{
    const char *sp = awsconfig_get(cfg, name, "source_profile");
    const char *cs = awsconfig_get(cfg, name, "credential_source");
    ebsd_status st;
    if (sp && cs) {
        set_err(err, source, "%s: source_profile and credential_source are both set", source);
        return EBSD_EINVAL;
    }
    if (sp && strcmp(sp, name) == 0) {
        /* A profile may be its own source: its static keys sign the call. */
        const char *ak = awsconfig_get(cfg, name, "aws_access_key_id");
        const char *sk = awsconfig_get(cfg, name, "aws_secret_access_key");
        if (!ak || !sk) {
            set_err(err, source, "%s: source_profile is the profile itself but it has no "
                                 "aws_access_key_id/aws_secret_access_key", source);
            return EBSD_EAUTH;
        }
        return fill(src, source, ak, sk, awsconfig_get(cfg, name, "aws_session_token"), 0,
                    err);
    }
    if (sp) {
        if (!awsconfig_has_profile(cfg, sp)) {
            set_err(err, source, "%s: source_profile %.64s is not defined", source, sp);
            return EBSD_ENOTFOUND;
        }
        st = resolve_profile(x, cfg, sp, depth + 1, src, err);
        if (st == EBSD_ENOTFOUND)
            set_err(err, source, "%s: source_profile %.64s has no credentials", source, sp);
        return st == EBSD_ENOTFOUND ? EBSD_EAUTH : st;
    }
    if (cs) {
        if (strcmp(cs, "Environment") == 0)
            st = from_env(x, src, err);
        else if (strcmp(cs, "EcsContainer") == 0)
            st = from_container(x, src, err);
        else if (strcmp(cs, "Ec2InstanceMetadata") == 0)
            st = from_imds(x, src, err);
        else {
            set_err(err, source, "%s: credential_source %.32s is not one of Environment, "
                                 "EcsContainer, Ec2InstanceMetadata", source, cs);
            return EBSD_EINVAL;
        }
        if (st == EBSD_ENOTFOUND) {
            set_err(err, source, "%s: credential_source %.32s gave no credentials", source, cs);
            st = EBSD_EAUTH;
        }
        return st;
    }
    set_err(err, source, "%s: role_arn needs source_profile, credential_source or "
                         "web_identity_token_file", source);
    return EBSD_EINVAL;
}

/* credential_process (credproc.h): blocking, which the chain may be. */
static ebsd_status from_process(struct chain *x, const char *source, const char *command,
                                struct creds *out, struct creds_error *err)
{
    char msg[sizeof err->message - 70];
    ebsd_status st = credproc_run(command, x->deadline, source, out, msg, sizeof msg);
    if (st != EBSD_OK) {
        set_err(err, source, "%s: %s", source, msg);
        if (st == EBSD_ENOTFOUND) /* configured but unusable: stop the chain */
            st = EBSD_EAUTH;
    }
    return st;
}

static ebsd_status resolve_profile(struct chain *x, const struct awsconfig *cfg,
                                   const char *name, int depth, struct creds *out,
                                   struct creds_error *err)
{
    char source[64];
    snprintf(source, sizeof source, "profile:%.55s", name);
    if (depth > MAX_ROLE_CHAIN) {
        set_err(err, source, "%s: role chain longer than %d profiles (a source_profile loop?)",
                source, MAX_ROLE_CHAIN);
        return EBSD_EINVAL;
    }
    const char *role_arn = awsconfig_get(cfg, name, "role_arn");
    const char *region = awsconfig_get(cfg, name, "region");
    if (!region)
        region = env_region();
    if (!role_arn) {
        const char *ak = awsconfig_get(cfg, name, "aws_access_key_id");
        const char *sk = awsconfig_get(cfg, name, "aws_secret_access_key");
        const char *process = awsconfig_get(cfg, name, "credential_process");
        if (!ak && !sk && process)
            return from_process(x, source, process, out, err);
        if (!ak && !sk)
            return EBSD_ENOTFOUND;
        if (!ak || !sk) {
            set_err(err, source, "%s: %s is set but %s is not", source,
                    ak ? "aws_access_key_id" : "aws_secret_access_key",
                    ak ? "aws_secret_access_key" : "aws_access_key_id");
            return EBSD_EAUTH;
        }
        return fill(out, source, ak, sk, awsconfig_get(cfg, name, "aws_session_token"), 0, err);
    }

    const char *session = awsconfig_get(cfg, name, "role_session_name");
    const char *wif = awsconfig_get(cfg, name, "web_identity_token_file");
    if (wif)
        return web_identity(x, source, wif, role_arn, session, region, out, err);

    int duration = 0;
    const char *ds = awsconfig_get(cfg, name, "duration_seconds");
    if (ds) {
        char *end;
        long v = strtol(ds, &end, 10);
        if (*end || v < 900 || v > 43200) {
            set_err(err, source, "%s: duration_seconds must be 900..43200", source);
            return EBSD_EINVAL;
        }
        duration = (int)v;
    }
    struct creds src;
    memset(&src, 0, sizeof src);
    ebsd_status st = role_source(x, cfg, name, depth, source, &src, err);
    if (st == EBSD_OK) {
        struct sts_assume a = {.role_arn = role_arn, .session_name = session,
                               .external_id = awsconfig_get(cfg, name, "external_id"),
                               .duration_s = duration, .source = &src,
                               .region = region ? region : "us-east-1"};
        st = call_sts(x, source, &a, out, err);
    }
    creds_wipe(&src);
    return st;
}

static ebsd_status from_profile(struct chain *x, struct creds *out, struct creds_error *err)
{
    ebsd_status st;
    struct awsconfig *cfg = NULL;
    char *config = NULL, *credentials = NULL;
    const char *home = env("HOME");
    const char *explicit_profile = env("AWS_PROFILE");
    const char *name = explicit_profile ? explicit_profile : "default";
    char source[64], msg[400];
    snprintf(source, sizeof source, "profile:%.55s", name);

    if (env("AWS_CONFIG_FILE"))
        config = xstrdup(env("AWS_CONFIG_FILE"));
    else if (home)
        config = xasprintf("%s/.aws/config", home);
    if (env("AWS_SHARED_CREDENTIALS_FILE"))
        credentials = xstrdup(env("AWS_SHARED_CREDENTIALS_FILE"));
    else if (home)
        credentials = xasprintf("%s/.aws/credentials", home);

    if ((st = awsconfig_load(config, credentials, &cfg, msg, sizeof msg)) != EBSD_OK) {
        set_err(err, source, "%s: %s", source, msg);
        goto out;
    }
    if (!awsconfig_has_profile(cfg, name)) {
        st = EBSD_ENOTFOUND;
        if (explicit_profile) {
            /* Naming a profile that does not exist is a mistake, not "not configured". */
            set_err(err, source, "%s: AWS_PROFILE names a profile found in neither %s nor %s",
                    source, config ? config : "(no config file)",
                    credentials ? credentials : "(no credentials file)");
            st = EBSD_EINVAL;
        }
        goto out;
    }
    st = resolve_profile(x, cfg, name, 0, out, err);
    if (st != EBSD_OK && st != EBSD_ENOTFOUND) /* the message names any inner profile */
        snprintf(err->source, sizeof err->source, "%s", source);
out:
    awsconfig_free(cfg);
    free(config);
    free(credentials);
    return st;
}

/* ---- 4. container ----------------------------------------------------------------------- */

/* True for hosts the SDKs let FULL_URI reach over plain http. */
static bool container_host_allowed(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "169.254.170.2") == 0 ||
        strcmp(host, "169.254.170.23") == 0)
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        static const unsigned char eks[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                              0,    0,    0,    0,    0, 0, 0, 0x23};
        return IN6_IS_ADDR_LOOPBACK(&a6) || memcmp(&a6, eks, 16) == 0;
    }
    return false;
}

ebsd_status creds_container_url(char **url, struct creds_error *err)
{
    const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (rel) {
        if (rel[0] != '/') {
            set_err(err, "container", "container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI "
                                      "must start with '/'");
            return EBSD_EINVAL;
        }
        *url = xasprintf("%s%s", CONTAINER_HOST, rel);
        return EBSD_OK;
    }
    if (!full)
        return EBSD_ENOTFOUND;
    bool https = strncasecmp(full, "https://", 8) == 0;
    if (!https && strncasecmp(full, "http://", 7) != 0) {
        set_err(err, "container", "container: AWS_CONTAINER_CREDENTIALS_FULL_URI must be an "
                                  "http or https URL");
        return EBSD_EINVAL;
    }
    const char *auth = full + (https ? 8 : 7);
    size_t alen = strcspn(auth, "/?#");
    if (!alen || memchr(auth, '@', alen)) {
        set_err(err, "container", "container: AWS_CONTAINER_CREDENTIALS_FULL_URI has no host "
                                  "or carries user information");
        return EBSD_EINVAL;
    }
    char host[256];
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close || (size_t)(close - auth - 1) >= sizeof host) {
            set_err(err, "container", "container: AWS_CONTAINER_CREDENTIALS_FULL_URI has a "
                                      "malformed IPv6 host");
            return EBSD_EINVAL;
        }
        snprintf(host, sizeof host, "%.*s", (int)(close - auth - 1), auth + 1);
    } else {
        size_t hl = strcspn(auth, ":/?#");
        snprintf(host, sizeof host, "%.*s", (int)(hl < sizeof host ? hl : sizeof host - 1),
                 auth);
    }
    if (!https && !container_host_allowed(host)) {
        set_err(err, "container", "container: AWS_CONTAINER_CREDENTIALS_FULL_URI host %.64s "
                                  "is refused over plain http (allowed: loopback, "
                                  "169.254.170.2, 169.254.170.23, [fd00:ec2::23], or https)",
                host);
        return EBSD_EINVAL;
    }
    *url = xstrdup(full);
    return EBSD_OK;
}

static const char *json_str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* Parses the JSON both the container endpoints and IMDS answer with. */
static ebsd_status parse_creds_json(const char *source, const char *body, size_t len,
                                    bool token_required, struct creds *out,
                                    struct creds_error *err)
{
    ebsd_status st = EBSD_EPARSE;
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(j)) {
        set_err(err, source, "%s: the answer is not a JSON object", source);
        goto out;
    }
    const char *code = json_str(j, "Code");
    if (code && strcmp(code, "Success") != 0) {
        set_err(err, source, "%s: the answer has Code %.64s", source, code);
        st = EBSD_EUPSTREAM;
        goto out;
    }
    const char *ak = json_str(j, "AccessKeyId"), *sk = json_str(j, "SecretAccessKey");
    const char *token = json_str(j, "Token"), *exp = json_str(j, "Expiration");
    const char *missing = !ak ? "AccessKeyId" : !sk ? "SecretAccessKey"
                        : !token && token_required ? "Token"
                        : !exp && token_required ? "Expiration" : NULL;
    if (missing) {
        set_err(err, source, "%s: the answer lacks %s", source, missing);
        goto out;
    }
    time_t expiration = 0;
    if (exp && !creds_parse_time(exp, &expiration)) {
        set_err(err, source, "%s: Expiration is not an RFC 3339 time", source);
        goto out;
    }
    st = fill(out, source, ak, sk, token, expiration, err);
out:
    if (j) {
        /* Wipe the secrets cJSON copied. */
        const char *keys[] = {"SecretAccessKey", "Token"};
        for (size_t i = 0; i < 2; i++) {
            char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, keys[i]));
            if (v)
                OPENSSL_cleanse(v, strlen(v));
        }
        cJSON_Delete(j);
    }
    return st;
}

ebsd_status creds_parse_json(const char *source, const char *body, size_t len,
                             bool token_required, struct creds *out, struct creds_error *err)
{
    return parse_creds_json(source, body, len, token_required, out, err);
}

static void wipe_response(struct httpc_response *r)
{
    if (r->body.data)
        OPENSSL_cleanse(r->body.data, r->body.len);
    httpc_response_free(r);
}

static ebsd_status from_container(struct chain *x, struct creds *out, struct creds_error *err)
{
    ebsd_status st;
    char *url = NULL, *shown = NULL, *token = NULL, *auth_line = NULL;
    struct httpc_response resp;
    bool have_resp = false;
    if ((st = creds_container_url(&url, err)) != EBSD_OK)
        return st;
    shown = url_for_message(url);

    const char *tf = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (tf) {
        if ((st = read_token_file(tf, "container", &token, err)) != EBSD_OK)
            goto out;
    } else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
        token = xstrdup(env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
    }
    if (token && strpbrk(token, "\r\n")) {
        set_err(err, "container", "container: the authorization token contains a line break");
        st = EBSD_EINVAL;
        goto out;
    }
    const char *hdrs[3] = {"Accept: application/json", NULL, NULL};
    if (token)
        hdrs[1] = auth_line = xasprintf("Authorization: %s", token);
    struct httpc_request req = {.method = "GET", .url = url, .headers = hdrs,
                                .deadline = step_deadline(x, CONTAINER_MS),
                                .max_response = MAX_JSON};
    st = httpc_perform(chain_http(x), &req, &resp);
    have_resp = true;
    if (st != EBSD_OK) {
        set_err(err, "container", "container: GET %s: %s", shown,
                resp.timed_out ? "no answer before the deadline" : resp.error);
        goto out;
    }
    if (resp.status != 200) {
        set_err(err, "container", "container: GET %s: HTTP %ld", shown, resp.status);
        st = EBSD_EUPSTREAM;
        goto out;
    }
    st = parse_creds_json("container", resp.body.data ? resp.body.data : "", resp.body.len,
                          false, out, err);
out:
    if (have_resp)
        wipe_response(&resp);
    if (token) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
    }
    if (auth_line) {
        OPENSSL_cleanse(auth_line, strlen(auth_line));
        free(auth_line);
    }
    free(url);
    free(shown);
    return st;
}

/* ---- 5. instance metadata --------------------------------------------------------------- */

/* One IMDS call with the short per-step deadline. */
static ebsd_status imds_call(struct chain *x, const char *method, const char *url,
                             const char *token, struct httpc_response *resp)
{
    char *tok_line = token ? xasprintf("X-aws-ec2-metadata-token: %s", token) : NULL;
    const char *hdrs[2] = {NULL, NULL};
    if (strcmp(method, "PUT") == 0)
        hdrs[0] = "X-aws-ec2-metadata-token-ttl-seconds: 21600";
    else
        hdrs[0] = tok_line;
    struct httpc_request req = {.method = method, .url = url, .headers = hdrs,
                                .deadline = step_deadline(x, IMDS_STEP_MS),
                                .max_response = MAX_JSON};
    ebsd_status st = httpc_perform(chain_http(x), &req, resp);
    if (tok_line) {
        OPENSSL_cleanse(tok_line, strlen(tok_line));
        free(tok_line);
    }
    return st;
}

static bool chain_expired(const struct chain *x) { return clock_remaining_ms(x->deadline) <= 0; }

static ebsd_status from_imds(struct chain *x, struct creds *out, struct creds_error *err)
{
    ebsd_status st = EBSD_ENOTFOUND;
    char *base = NULL, *url = NULL, *token = NULL, *role = NULL;
    struct httpc_response resp;
    bool have_resp = false;
    if (env_true("AWS_EC2_METADATA_DISABLED")) {
        snprintf(x->imds_note, sizeof x->imds_note, "disabled by AWS_EC2_METADATA_DISABLED");
        return EBSD_ENOTFOUND;
    }
    const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    const char *mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    base = xstrdup(ep ? ep : mode && strcasecmp(mode, "IPv6") == 0 ? IMDS_HOST6 : IMDS_HOST);
    for (size_t n = strlen(base); n && base[n - 1] == '/'; n--)
        base[n - 1] = '\0';
    bool v1_disabled = env_true("AWS_EC2_METADATA_V1_DISABLED");

    /* IMDSv2 session token. */
    url = xasprintf("%s/latest/api/token", base);
    st = imds_call(x, "PUT", url, NULL, &resp);
    have_resp = true;
    bool v1 = false;
    if (st == EBSD_OK && resp.status == 200 && resp.body.len > 0) {
        token = xstrndup(resp.body.data, strcspn(resp.body.data, "\r\n"));
    } else if (st == EBSD_OK && (resp.status == 404 || resp.status == 405)) {
        v1 = true; /* an IMDS without IMDSv2 (or a proxy that refuses PUT) */
    } else if (st == EBSD_OK && resp.status == 403) {
        set_err(err, "imds", "imds: PUT %s refused with HTTP 403 (IMDS disabled for this "
                             "instance, or the token hop limit is too low)", url);
        st = EBSD_EAUTH;
        goto out;
    } else if (st == EBSD_OK) {
        set_err(err, "imds", "imds: PUT %s: HTTP %ld", url, resp.status);
        st = EBSD_EUPSTREAM;
        goto out;
    } else if (resp.connect_failed) {
        snprintf(x->imds_note, sizeof x->imds_note, "cannot connect to %s (not on EC2?)", base);
        st = EBSD_ENOTFOUND;
        goto out;
    } else if (resp.timed_out && !chain_expired(x)) {
        v1 = true; /* the SDKs fall back when the token call times out */
    } else {
        set_err(err, "imds", "imds: PUT %s: %s", url,
                resp.timed_out ? "no answer before the deadline" : resp.error);
        goto out;
    }
    if (v1 && v1_disabled) {
        set_err(err, "imds", "imds: no IMDSv2 token (%s) and IMDSv1 is disabled by "
                             "AWS_EC2_METADATA_V1_DISABLED",
                resp.timed_out ? "timed out" : resp.status == 404 ? "HTTP 404" : "HTTP 405");
        st = EBSD_EAUTH;
        goto out;
    }
    bool token_timed_out = v1 && resp.timed_out;
    wipe_response(&resp);
    have_resp = false;

    /* The role name. */
    free(url);
    url = xasprintf("%s/latest/meta-data/iam/security-credentials/", base);
    st = imds_call(x, "GET", url, token, &resp);
    have_resp = true;
    if (st != EBSD_OK) {
        if (token_timed_out && resp.timed_out && !chain_expired(x)) {
            snprintf(x->imds_note, sizeof x->imds_note, "%s did not answer within %d ms "
                                                        "(not on EC2?)", base, IMDS_STEP_MS);
            st = EBSD_ENOTFOUND;
        } else {
            set_err(err, "imds", "imds: GET %s: %s", url,
                    resp.timed_out ? "no answer before the deadline" : resp.error);
        }
        goto out;
    }
    if (resp.status == 404) {
        set_err(err, "imds", "imds: no IAM role is attached to this instance (GET %s: "
                             "HTTP 404)", url);
        st = EBSD_ENOTFOUND;
        snprintf(x->imds_note, sizeof x->imds_note, "no IAM role attached to the instance");
        goto out;
    }
    if (resp.status != 200) {
        set_err(err, "imds", "imds: GET %s: HTTP %ld%s", url, resp.status,
                resp.status == 401 ? " (IMDSv2 token refused)" : "");
        st = EBSD_EUPSTREAM;
        goto out;
    }
    role = xstrndup(resp.body.data ? resp.body.data : "",
                    strcspn(resp.body.data ? resp.body.data : "", "\r\n"));
    if (!*role || strchr(role, '/')) {
        set_err(err, "imds", "imds: GET %s gave no usable role name", url);
        st = EBSD_EUPSTREAM;
        goto out;
    }
    wipe_response(&resp);
    have_resp = false;

    /* The role's credentials. */
    free(url);
    char *enc = sigv4_uri_encode(role, strlen(role), true);
    url = xasprintf("%s/latest/meta-data/iam/security-credentials/%s", base, enc);
    free(enc);
    st = imds_call(x, "GET", url, token, &resp);
    have_resp = true;
    if (st != EBSD_OK) {
        set_err(err, "imds", "imds: GET %s: %s", url,
                resp.timed_out ? "no answer before the deadline" : resp.error);
        goto out;
    }
    if (resp.status != 200) {
        set_err(err, "imds", "imds: GET %s: HTTP %ld", url, resp.status);
        st = EBSD_EUPSTREAM;
        goto out;
    }
    st = parse_creds_json("imds", resp.body.data ? resp.body.data : "", resp.body.len, true,
                          out, err);
out:
    if (have_resp)
        wipe_response(&resp);
    if (token) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
    }
    free(role);
    free(base);
    free(url);
    return st;
}

/* ---- the chain -------------------------------------------------------------------------- */

ebsd_status creds_resolve(int64_t deadline, struct creds *out, struct creds_error *err)
{
    static const struct {
        const char *name;
        ebsd_status (*fn)(struct chain *, struct creds *, struct creds_error *);
    } sources[] = {{"environment", from_env},
                   {"web-identity", from_web_identity},
                   {"profile", from_profile},
                   {"container", from_container},
                   {"imds", from_imds}};
    ebsd_status st = EBSD_ENOTFOUND;
    struct chain x = {.deadline = deadline ? deadline : clock_now_ms() + DEFAULT_DEADLINE_MS};
    struct creds c;
    memset(&c, 0, sizeof c);
    memset(err, 0, sizeof *err);

    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        st = sources[i].fn(&x, &c, err);
        if (st == EBSD_ENOTFOUND && i + 1 < sizeof sources / sizeof sources[0])
            continue;
        break;
    }
    if (st == EBSD_ENOTFOUND) {
        set_err(err, "chain", "no credentials found: no AWS_ACCESS_KEY_ID, no web identity "
                              "token, no credentials in profile %.64s, no container "
                              "credentials URI; instance metadata: %s",
                env("AWS_PROFILE") ? env("AWS_PROFILE") : "default",
                x.imds_note[0] ? x.imds_note : "no answer");
        goto out;
    }
    if (st != EBSD_OK)
        goto out;
    time_t now = time(NULL);
    if (c.expiration && c.expiration <= now) {
        char when[32];
        format_time(c.expiration, when);
        set_err(err, c.source, "%s: the credentials expired at %s", c.source, when);
        st = EBSD_EAUTH;
        goto out;
    }
    *out = c;
out:
    creds_wipe(&c);
    httpc_free(x.h);
    return st;
}
