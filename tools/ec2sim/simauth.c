/* simauth.c - the simulator's credentials and the call into sigv4_verify(). */
#include "simauth.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mem.h"

#define MAX_CREDS 64

struct cred {
    char *access_key;
    char *secret;
};

/* Filled before the server starts, read-only afterwards. */
static struct cred creds[MAX_CREDS] = {{SIMAUTH_DEFAULT_ACCESS_KEY, SIMAUTH_DEFAULT_SECRET}};
static size_t ncreds = 1;

ebsd_status simauth_add(const char *spec)
{
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || !colon[1] || ncreds == MAX_CREDS)
        return EBSD_EINVAL;
    creds[ncreds].access_key = xstrndup(spec, (size_t)(colon - spec));
    creds[ncreds].secret = xstrdup(colon + 1);
    ncreds++;
    return EBSD_OK;
}

static const char *lookup(const char *access_key_id, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < ncreds; i++)
        if (strcmp(creds[i].access_key, access_key_id) == 0)
            return creds[i].secret;
    return NULL;
}

static int status_of(const char *code)
{
    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        return 403;
    if (strcmp(code, "AuthFailure") == 0 || strcmp(code, "MissingAuthenticationToken") == 0)
        return 401;
    return 400; /* RequestExpired, IncompleteSignature */
}

ebsd_status simauth_check(const struct sigv4_request *req, int max_skew, int *status,
                          struct sigv4_verdict *verdict)
{
    memset(verdict, 0, sizeof *verdict);
    ebsd_status st = sigv4_verify(req, lookup, NULL, time(NULL), max_skew, verdict);
    if (st != EBSD_OK) {
        if (!verdict->code[0])
            snprintf(verdict->code, sizeof verdict->code, "AuthFailure");
        *status = status_of(verdict->code);
        return EBSD_EAUTH;
    }
    return EBSD_OK;
}
