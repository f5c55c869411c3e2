/* sts.h - AWS STS over the Query API: AssumeRole (SigV4-signed with source credentials)
 * and AssumeRoleWithWebIdentity (unsigned), answers parsed with expat. Used by the
 * credential chain (creds.c) for role_arn profiles and web identity tokens. */
#ifndef EBSD_STS_H
#define EBSD_STS_H
#include <stddef.h>
#include <stdint.h>
#include "credentials.h"
#include "httpc.h"
#include "status.h"

struct sts_assume {
    const char *role_arn;
    const char *session_name;
    const char *external_id;        /* AssumeRole only; NULL for none */
    int duration_s;                 /* 0: STS's default (1 h) */
    const char *web_identity_token; /* set: AssumeRoleWithWebIdentity, unsigned */
    const struct creds *source;     /* AssumeRole: the credentials that sign the call */
    const char *region;             /* signing region and default endpoint's region */
    const char *endpoint;           /* "https://sts.us-east-1.amazonaws.com" or an override */
    int64_t deadline;               /* monotonic ms; 0 = 30 s from the call */
    int connect_timeout_ms;         /* per attempt; 0: STS_DEFAULT_CONNECT_TIMEOUT_MS */
    int read_timeout_ms;            /* per attempt, first byte then stalls; 0: the default */
};

/* Per-attempt bounds (the EC2 client's defaults): a hung attempt leaves time to retry. */
#define STS_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define STS_DEFAULT_READ_TIMEOUT_MS 2500

/* Calls STS and fills *out (source left for the caller to set). Up to 3 attempts as the
 * SDKs' standard mode retries (5xx, throttling, connection errors, connect and read
 * timeouts), within the deadline; AssumeRole is signed with the skew-corrected clock and
 * re-signed at once after a clock-skew correction. On failure err holds a message naming
 * the call and STS's error code (of the last attempt), never a secret or the token:
 * EBSD_EUPSTREAM (STS answered with an error), EBSD_EPARSE, EBSD_ETIMEDOUT,
 * EBSD_ENETWORK, EBSD_EINVAL (bad endpoint). Borrowed: everything in *a. */
EBSD_MUST_CHECK ebsd_status sts_assume_role(struct httpc *h, const struct sts_assume *a,
                                            struct creds *out, char *err, size_t errlen);

/* Parses an STS response body (AssumeRole*Response or ErrorResponse) into *out. Exposed
 * for tests. EBSD_EUPSTREAM with err = "Code: Message" for an ErrorResponse. */
EBSD_MUST_CHECK ebsd_status sts_parse_response(const char *xml, size_t len, struct creds *out,
                                               char *err, size_t errlen);

/* The STS endpoint for region: AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL, else
 * https://sts.REGION.amazonaws.com. Caller frees. */
char *sts_endpoint(const char *region);

#endif
