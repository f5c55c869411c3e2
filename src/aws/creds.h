/* creds.h - AWS credentials, found in the AWS SDKs' order: environment, web identity token
 * (EKS IRSA, via STS AssumeRoleWithWebIdentity), shared config/credentials files with
 * profiles (and role_arn + source_profile via STS AssumeRole), container credentials (ECS,
 * EKS Pod Identity), EC2 instance metadata (IMDSv2 first).
 * struct creds (credentials.h) is what every source yields. */
#ifndef EBSD_CREDS_H
#define EBSD_CREDS_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "credentials.h"
#include "status.h"

struct creds_error {
    char source[64];           /* which source failed */
    char message[512];         /* never contains a secret */
};

/* Walks the chain and fills *out with the first source that yields credentials. Reads the
 * process environment; every network call ends by deadline (monotonic ms; 0 = 10 s).
 * EBSD_ENOTFOUND when no source is configured; other errors name the failing source. */
EBSD_MUST_CHECK ebsd_status creds_resolve(int64_t deadline, struct creds *out,
                                          struct creds_error *err);

/* True when creds expire within margin_s seconds of now (never for static creds). */
bool creds_expiring(const struct creds *c, time_t now, int margin_s);

/* Overwrites the secret fields (OPENSSL_cleanse). */
void creds_wipe(struct creds *c);

/* An expiration time as the credential sources write it: clock_parse_rfc3339. */
bool creds_parse_time(const char *s, time_t *out);

/* The container credentials URL from AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 * (http://169.254.170.2 + uri) or AWS_CONTAINER_CREDENTIALS_FULL_URI, which must be https
 * or name a loopback host, 169.254.170.2, or EKS Pod Identity's 169.254.170.23 /
 * [fd00:ec2::23]. EBSD_OK with *url (caller frees); EBSD_ENOTFOUND when neither is set;
 * EBSD_EINVAL with *err filled for a refused URL. Exposed for tests. */
EBSD_MUST_CHECK ebsd_status creds_container_url(char **url, struct creds_error *err);

/* Parses the JSON credentials answer of the container endpoints and of IMDS (what the chain
 * does with their bodies; exposed for tests and fuzzers). source names the source in *err
 * and out->source ("container", "imds"); token_required: Token and Expiration must be
 * present (IMDS). EBSD_OK with *out filled; EBSD_EPARSE (not a JSON object, a field
 * missing, a bad Expiration), EBSD_EUPSTREAM (Code other than "Success"), EBSD_EAUTH (an
 * empty key), EBSD_ETOOBIG (a field too long for struct creds). body need not be
 * NUL-terminated. */
EBSD_MUST_CHECK ebsd_status creds_parse_json(const char *source, const char *body, size_t len,
                                             bool token_required, struct creds *out,
                                             struct creds_error *err);

#endif
