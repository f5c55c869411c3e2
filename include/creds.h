/* creds.h - AWS credentials, found in the AWS SDKs' order: environment, web identity token
 * (EKS IRSA, via STS AssumeRoleWithWebIdentity), shared config/credentials files with
 * profiles (and role_arn + source_profile via STS AssumeRole), container credentials (ECS,
 * EKS Pod Identity), EC2 instance metadata (IMDSv2 first).
 * struct creds is fixed-size and self-contained (no heap), so it can cross a pipe from a
 * forked child and be copied freely. Never log its secret fields. */
#ifndef EBSD_CREDS_H
#define EBSD_CREDS_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "status.h"

struct creds {
    char access_key_id[128];
    char secret_access_key[128];
    char session_token[4096];  /* "" when none */
    time_t expiration;         /* UTC seconds; 0 = does not expire */
    char source[64];           /* "environment", "web-identity", "profile:NAME",
                                  "container", "imds" - safe to log */
};

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

#endif
