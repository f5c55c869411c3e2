/* simauth.c - the simulator's credentials (static and STS-issued), accounts of access keys,
 * regions of credential scopes, and the call into sigv4_verify(). */
#include "simauth.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "clock.h"
#include "mem.h"

#define MAX_CREDS 256
#define MAX_REGIONS 64
/* Sessions are kept (expired ones too, so their callers get ExpiredToken and not an unknown
 * key) until the table is full; then the longest-expired slot is reused. */
#define MAX_SESSIONS 16384

struct cred {
    char *access_key;
    char *secret;
    char account[SIMAUTH_ACCOUNT_LEN]; /* "" = derived from the key */
};

struct session {
    struct simauth_session s;
    char account[SIMAUTH_ACCOUNT_LEN];
    char arn[384];
    char user_id[160];
};

/* Filled before the server starts, read-only afterwards. */
static struct cred creds[MAX_CREDS] = {
    {SIMAUTH_DEFAULT_ACCESS_KEY, SIMAUTH_DEFAULT_SECRET, SIMAUTH_DEFAULT_ACCOUNT}};
static size_t ncreds = 1;
static char regions[MAX_REGIONS][SIMAUTH_REGION_LEN];
static size_t nregions; /* 0 = any */

static atomic_long clock_offset;
static pthread_mutex_t sess_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session *sessions; /* MAX_SESSIONS slots, allocated on first issue */
static size_t nsessions, issued_total;

bool simauth_account_valid(const char *account)
{
    size_t n = 0;
    for (; account[n]; n++)
        if (account[n] < '0' || account[n] > '9')
            return false;
    return n == 12;
}

static bool region_well_formed(const char *r)
{
    size_t n = strlen(r);
    if (n < 4 || n >= SIMAUTH_REGION_LEN || r[0] == '-' || r[n - 1] == '-' || !strchr(r, '-'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
            return false;
    return true;
}

void simauth_set_clock_offset(long seconds) { atomic_store(&clock_offset, seconds); }
long simauth_clock_offset(void) { return atomic_load(&clock_offset); }
time_t simauth_now(void) { return time(NULL) + (time_t)atomic_load(&clock_offset); }

ebsd_status simauth_add(const char *spec)
{
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || !colon[1] || ncreds == MAX_CREDS)
        return EBSD_EINVAL;
    const char *colon2 = strchr(colon + 1, ':');
    char account[SIMAUTH_ACCOUNT_LEN] = "";
    if (colon2) {
        if (colon2 == colon + 1 || strlen(colon2 + 1) != 12 || !simauth_account_valid(colon2 + 1))
            return EBSD_EINVAL;
        memcpy(account, colon2 + 1, 13);
    }
    size_t klen = (size_t)(colon - spec);
    if (klen >= 128)
        return EBSD_EINVAL;
    creds[ncreds].access_key = xstrndup(spec, klen);
    creds[ncreds].secret = colon2 ? xstrndup(colon + 1, (size_t)(colon2 - colon - 1))
                                  : xstrdup(colon + 1);
    memcpy(creds[ncreds].account, account, sizeof account);
    ncreds++;
    return EBSD_OK;
}

ebsd_status simauth_set_regions(const char *list)
{
    size_t n = 0;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n == MAX_REGIONS || len == 0 || len >= SIMAUTH_REGION_LEN)
            return EBSD_EINVAL;
        memcpy(regions[n], p, len);
        regions[n][len] = '\0';
        if (!region_well_formed(regions[n]))
            return EBSD_EINVAL;
        n++;
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0)
        return EBSD_EINVAL;
    nregions = n;
    return EBSD_OK;
}

bool simauth_region_allowed(const char *region)
{
    if (!region_well_formed(region))
        return false;
    if (nregions == 0)
        return true;
    for (size_t i = 0; i < nregions; i++)
        if (strcmp(regions[i], region) == 0)
            return true;
    return false;
}

void simauth_account_of(const char *access_key, char out[SIMAUTH_ACCOUNT_LEN])
{
    for (size_t i = 0; i < ncreds; i++)
        if (strcmp(creds[i].access_key, access_key) == 0 && creds[i].account[0]) {
            memcpy(out, creds[i].account, SIMAUTH_ACCOUNT_LEN);
            return;
        }
    size_t n = strlen(access_key);
    if (n >= 12 && simauth_account_valid(access_key + n - 12)) {
        memcpy(out, access_key + n - 12, SIMAUTH_ACCOUNT_LEN);
        return;
    }
    /* Any other key is in the home account, so a second key pair (--credentials AKID:SECRET)
     * sees the same fleet as AKIDEXAMPLE, as it did before ec2sim had accounts. */
    memcpy(out, SIMAUTH_DEFAULT_ACCOUNT, SIMAUTH_ACCOUNT_LEN);
}

/* ---- sessions ----------------------------------------------------------------------------- */

static void random_chars(char *out, size_t n, const char *alphabet)
{
    unsigned char raw[512];
    size_t al = strlen(alphabet);
    if (n > sizeof raw || RAND_bytes(raw, (int)n) != 1)
        abort(); /* the CSPRNG failing is as fatal as running out of memory */
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[raw[i] % al];
    out[n] = '\0';
}

ebsd_status simauth_issue(const char *account, const char *arn, const char *user_id,
                          int64_t expires_ms, struct simauth_session *out)
{
    static const char upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    ebsd_status st = EBSD_ETOOBIG;
    pthread_mutex_lock(&sess_lock);
    if (!sessions)
        sessions = xcalloc(MAX_SESSIONS, sizeof *sessions);
    size_t slot = nsessions;
    if (nsessions == MAX_SESSIONS) {
        int64_t now = clock_wall_ms(), oldest = now;
        slot = SIZE_MAX;
        for (size_t i = 0; i < MAX_SESSIONS; i++)
            if (sessions[i].s.expires_ms <= oldest) {
                oldest = sessions[i].s.expires_ms;
                slot = i;
            }
        if (slot == SIZE_MAX)
            goto out;
    }
    struct session *se = &sessions[slot];
    memset(se, 0, sizeof *se);
    memcpy(se->s.access_key, "ASIA", 4);
    random_chars(se->s.access_key + 4, 16, upper);
    random_chars(se->s.secret, 40, b64);
    /* Real session tokens are long opaque base64 strings; keep the shape. */
    memcpy(se->s.token, "IQoJb3JpZ2luX2VjE", 17);
    random_chars(se->s.token + 17, 300, b64);
    se->s.expires_ms = expires_ms;
    snprintf(se->account, sizeof se->account, "%s", account);
    snprintf(se->arn, sizeof se->arn, "%s", arn);
    snprintf(se->user_id, sizeof se->user_id, "%s", user_id);
    if (slot == nsessions)
        nsessions++;
    issued_total++;
    *out = se->s;
    st = EBSD_OK;
out:
    pthread_mutex_unlock(&sess_lock);
    return st;
}

size_t simauth_expire_sessions(void)
{
    size_t live = 0;
    pthread_mutex_lock(&sess_lock);
    int64_t now = clock_wall_ms();
    for (size_t i = 0; i < nsessions; i++)
        if (sessions[i].s.expires_ms > now) {
            sessions[i].s.expires_ms = now;
            live++;
        }
    pthread_mutex_unlock(&sess_lock);
    return live;
}

void simauth_session_counts(size_t *issued, size_t *live)
{
    pthread_mutex_lock(&sess_lock);
    int64_t now = clock_wall_ms();
    size_t n = 0;
    for (size_t i = 0; i < nsessions; i++)
        n += sessions[i].s.expires_ms > now;
    *issued = issued_total;
    *live = n;
    pthread_mutex_unlock(&sess_lock);
}

/* ---- verification ------------------------------------------------------------------------- */

/* What the lookup found, copied out under the lock: a session slot may be reused later. */
struct found {
    bool temporary;
    char secret[128];
    char token[400];
    char account[SIMAUTH_ACCOUNT_LEN];
    char arn[384];
    char user_id[160];
    int64_t expires_ms;
};

static const char *lookup(const char *access_key_id, void *ctx)
{
    struct found *f = ctx;
    for (size_t i = 0; i < ncreds; i++)
        if (strcmp(creds[i].access_key, access_key_id) == 0) {
            snprintf(f->secret, sizeof f->secret, "%s", creds[i].secret);
            return f->secret;
        }
    if (strncmp(access_key_id, "ASIA", 4) != 0)
        return NULL;
    const char *ret = NULL;
    pthread_mutex_lock(&sess_lock);
    for (size_t i = 0; i < nsessions; i++) {
        const struct session *se = &sessions[i];
        if (strcmp(se->s.access_key, access_key_id) == 0) {
            f->temporary = true;
            memcpy(f->secret, se->s.secret, sizeof se->s.secret);
            memcpy(f->token, se->s.token, sizeof se->s.token);
            memcpy(f->account, se->account, sizeof f->account);
            memcpy(f->arn, se->arn, sizeof f->arn);
            memcpy(f->user_id, se->user_id, sizeof f->user_id);
            f->expires_ms = se->s.expires_ms;
            ret = f->secret;
            break;
        }
    }
    pthread_mutex_unlock(&sess_lock);
    return ret;
}

static const char *header(const struct sigv4_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* Copies part `idx` (0-based, '/'-separated) of the Credential= value of an Authorization
 * header ("AKID/20150830/us-east-1/ec2/aws4_request"): the scope that names the key, the
 * region and the service. "" when absent. */
static void scope_part(const char *auth, int idx, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *p = auth ? strstr(auth, "Credential=") : NULL;
    if (!p)
        return;
    p += 11;
    for (int i = 0; i < idx; i++) {
        const char *slash = strpbrk(p, "/, ");
        if (!slash || *slash != '/')
            return;
        p = slash + 1;
    }
    size_t n = strcspn(p, "/, ");
    if (n >= outlen)
        return;
    memcpy(out, p, n);
    out[n] = '\0';
}

static enum simauth_fail fail_of(const char *code)
{
    if (strcmp(code, "MissingAuthenticationToken") == 0)
        return SIMAUTH_MISSING;
    if (strcmp(code, "IncompleteSignature") == 0)
        return SIMAUTH_INCOMPLETE;
    if (strcmp(code, "RequestExpired") == 0)
        return SIMAUTH_SKEW;
    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        return SIMAUTH_BAD_SIGNATURE;
    return SIMAUTH_UNKNOWN_KEY;
}

enum simauth_fail simauth_check(const struct sigv4_request *req, bool verify, int max_skew,
                                struct sigv4_verdict *verdict, struct simauth_identity *who)
{
    memset(verdict, 0, sizeof *verdict);
    memset(who, 0, sizeof *who);
    const char *auth = header(req, "Authorization");
    scope_part(auth, 0, who->access_key, sizeof who->access_key);
    scope_part(auth, 2, who->region, sizeof who->region);
    scope_part(auth, 3, who->service, sizeof who->service);
    struct found f;
    memset(&f, 0, sizeof f);
    if (verify) {
        ebsd_status st = sigv4_verify(req, lookup, &f, simauth_now(), max_skew, verdict);
        if (st != EBSD_OK) {
            if (!verdict->code[0])
                snprintf(verdict->code, sizeof verdict->code, "AuthFailure");
            enum simauth_fail why = fail_of(verdict->code);
            /* An expired session says so even when its signature is also stale. */
            if (f.temporary && f.expires_ms <= clock_wall_ms() && why != SIMAUTH_MISSING &&
                why != SIMAUTH_INCOMPLETE)
                why = SIMAUTH_EXPIRED_TOKEN;
            return why;
        }
    } else if (who->access_key[0]) {
        (void)lookup(who->access_key, &f); /* a session's account, when it is one */
    }
    if (f.temporary) {
        const char *tok = header(req, "X-Amz-Security-Token");
        size_t tl = tok ? strlen(tok) : 0;
        if (verify && (tl != strlen(f.token) || CRYPTO_memcmp(tok, f.token, tl) != 0)) {
            snprintf(verdict->message, sizeof verdict->message,
                     "The security token included in the request is invalid.");
            return SIMAUTH_BAD_TOKEN;
        }
        if (verify && f.expires_ms <= clock_wall_ms()) {
            snprintf(verdict->message, sizeof verdict->message,
                     "The security token included in the request is expired");
            return SIMAUTH_EXPIRED_TOKEN;
        }
        who->temporary = true;
        memcpy(who->account, f.account, sizeof who->account);
        snprintf(who->arn, sizeof who->arn, "%s", f.arn);
        snprintf(who->user_id, sizeof who->user_id, "%s", f.user_id);
    } else {
        if (who->access_key[0])
            simauth_account_of(who->access_key, who->account);
        else
            snprintf(who->account, sizeof who->account, "%s", SIMAUTH_DEFAULT_ACCOUNT);
        snprintf(who->arn, sizeof who->arn, "arn:aws:iam::%s:user/ec2sim", who->account);
        snprintf(who->user_id, sizeof who->user_id, "AIDA%.12sEC2SIM", who->account);
    }
    /* STS is served in every region (its global endpoint signs for us-east-1). */
    if (verify && strcmp(who->service, "sts") != 0 && !simauth_region_allowed(who->region)) {
        snprintf(verdict->message, sizeof verdict->message,
                 "AWS was not able to validate the provided access credentials");
        return SIMAUTH_REGION;
    }
    if (!verify && !simauth_region_allowed(who->region))
        who->region[0] = '\0';
    return SIMAUTH_OK;
}
