/* sts.h - AWS STS over the Query API: AssumeRole (SigV4-signed with source credentials)
 * and AssumeRoleWithWebIdentity (unsigned), answers parsed with expat. Used by the
 * credential chain (creds.c) for role_arn profiles and web identity tokens. */
#ifndef EBSD_STS_H
#define EBSD_STS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "credentials.h"
#include "httpc.h"
#include "status.h"

/* What one sts_assume_role call learned besides the credentials; filled on success and on
 * failure. Nothing here is secret. */
struct sts_outcome {
    char account_id[13];            /* the assumed role's account (from AssumedRoleUser/Arn);
                                     * "" when STS did not say */
    char assumed_role_arn[512];     /* "arn:aws:sts::111122223333:assumed-role/ROLE/SESSION" */
    char code[64];                  /* STS's error code of the last attempt ("AccessDenied"),
                                     * "" when none */
    long http_status;               /* of the last attempt; 0 when no answer arrived */
    int attempts;                   /* HTTP requests sent */
};

struct sts_assume {
    const char *role_arn;
    const char *session_name;       /* NULL or "": sts_default_session_name() */
    const char *external_id;        /* AssumeRole only; NULL or "" for none */
    int duration_s;                 /* 0: STS's default (1 h); STS wants 900..43200 */
    const char *web_identity_token; /* set: AssumeRoleWithWebIdentity, unsigned */
    const struct creds *source;     /* AssumeRole: the credentials that sign the call */
    const char *region;             /* signing region and default endpoint's region */
    const char *endpoint;           /* NULL or "": sts_endpoint(region) */
    int64_t deadline;               /* monotonic ms; 0 = 30 s from the call */
    int connect_timeout_ms;         /* per attempt; 0: STS_DEFAULT_CONNECT_TIMEOUT_MS */
    int read_timeout_ms;            /* per attempt, first byte then stalls; 0: the default */
    int max_attempts;               /* 0: retry_settings_get()->max_attempts (3 unless
                                     * AWS_MAX_ATTEMPTS / the profile say otherwise) */
    struct sts_outcome *outcome;    /* optional: filled with what the call learned */
};

/* Per-attempt bounds (the EC2 client's defaults): a hung attempt leaves time to retry. */
#define STS_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define STS_DEFAULT_READ_TIMEOUT_MS 2500

/* Calls STS and fills *out (source left for the caller to set). The form body carries
 * Action, Version, RoleArn, RoleSessionName, [WebIdentityToken,] [DurationSeconds,]
 * [ExternalId] in botocore's order; AssumeRole is a form POST signed with SigV4 for service
 * "sts" in a->region. Up to max_attempts attempts as the SDKs' standard mode retries (5xx,
 * throttling, connection errors, connect and read timeouts), within the deadline;
 * AssumeRole is signed with the skew-corrected clock and re-signed at once after a
 * clock-skew correction. On failure err holds a message naming the call, the HTTP status
 * and STS's "Code: Message" (of the last attempt), never a secret or the token, and
 * a->outcome (if set) the code:
 * EBSD_EAUTH (sts_auth_code: AccessDenied, InvalidClientTokenId, ExpiredToken, ...),
 * EBSD_ETHROTTLED (throttled on every attempt), EBSD_EINVAL (ValidationError; a bad
 * endpoint or role ARN), EBSD_EUPSTREAM (any other STS error), EBSD_EPARSE,
 * EBSD_ETIMEDOUT, EBSD_ENETWORK. Borrowed: everything in *a. */
EBSD_MUST_CHECK ebsd_status sts_assume_role(struct httpc *h, const struct sts_assume *a,
                                            struct creds *out, char *err, size_t errlen);

/* STS GetCallerIdentity signed with a->source (only source, region, endpoint, deadline,
 * timeouts and max_attempts of *a are used): the account id of the credentials themselves,
 * for an account that uses the base chain without a role. On EBSD_OK o->account_id is the
 * 12-digit Account and o->assumed_role_arn the caller's Arn ("arn:aws:iam::ID:user/x" or
 * an assumed role). Retries, statuses and messages as sts_assume_role. */
EBSD_MUST_CHECK ebsd_status sts_get_caller_identity(struct httpc *h, const struct sts_assume *a,
                                                    struct sts_outcome *o, char *err,
                                                    size_t errlen);

/* Parses an STS response body (AssumeRole*Response or ErrorResponse) into *out. Exposed
 * for tests. EBSD_EUPSTREAM with err = "Code: Message" for an ErrorResponse. */
EBSD_MUST_CHECK ebsd_status sts_parse_response(const char *xml, size_t len, struct creds *out,
                                               char *err, size_t errlen);

/* The STS endpoint for region: AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL (neither when
 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true), else STS's regional endpoint in the region's
 * partition (https://sts.REGION.amazonaws.com, .amazonaws.com.cn for cn-*; endpoint.h).
 * Caller frees. */
char *sts_endpoint(const char *region);

/* "ebsd-<hostname>" made a valid RoleSessionName (awsid_session_name_sanitize) into out;
 * outlen of AWSID_SESSION_NAME_MAX + 1 holds any. */
void sts_default_session_name(char *out, size_t outlen);

/* True for the STS error codes that mean the caller or its credentials were refused
 * (AccessDenied, InvalidClientTokenId, ExpiredToken, MissingAuthenticationToken, ...). */
bool sts_auth_code(const char *code);

#endif
