/* awsid.h - the syntax of the AWS identifiers ebsd's configuration names: IAM role ARNs,
 * STS external ids and role session names, and ebsd's own account names. Pure functions
 * (no I/O, no allocation) for the config loader and the STS client. */
#ifndef EBSD_AWSID_H
#define EBSD_AWSID_H
#include <stdbool.h>
#include <stddef.h>

#define AWSID_ACCOUNT_NAME_MAX 32   /* [a-z0-9][a-z0-9-]{0,31} */
#define AWSID_SESSION_NAME_MIN 2    /* STS RoleSessionName: 2..64 of [\w+=,.@-] */
#define AWSID_SESSION_NAME_MAX 64
#define AWSID_EXTERNAL_ID_MIN 2     /* STS ExternalId: 2..1224 of [\w+=,.@:/-] */
#define AWSID_EXTERNAL_ID_MAX 1224
#define AWSID_DURATION_MIN_S 900    /* STS DurationSeconds */
#define AWSID_DURATION_MAX_S 43200
#define AWSID_ROLE_ARN_MAX 2048

/* True when arn is an IAM role ARN: "arn:PARTITION:iam::ACCOUNT:role/NAME" or
 * "arn:PARTITION:iam::ACCOUNT:role/PATH/NAME", PARTITION one of aws, aws-cn, aws-us-gov,
 * aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, ACCOUNT 12 digits, PATH segments of printable
 * ASCII without spaces (IAM's path rules, at most 512 characters), NAME 1..64 of
 * [\w+=,.@-]. When account_out is not NULL and the ARN is valid, the account id is copied
 * there (13 bytes). why, when not NULL, is set to a static phrase saying what is wrong. */
bool awsid_role_arn_valid(const char *arn, char account_out[13], const char **why);

/* True for ebsd's account names: [a-z0-9][a-z0-9-]{0,31} (used in URLs, metric labels and
 * cache keys, so deliberately narrow). */
bool awsid_account_name_valid(const char *name);

/* True for an STS ExternalId: 2..1224 characters of [A-Za-z0-9_+=,.@:/-]. */
bool awsid_external_id_valid(const char *id);

/* True for an STS RoleSessionName: 2..64 characters of [A-Za-z0-9_+=,.@-]. */
bool awsid_session_name_valid(const char *name);

/* True for an STS DurationSeconds: 900..43200. */
bool awsid_duration_valid(long seconds);

/* Makes a valid RoleSessionName of raw into out (outlen >= AWSID_SESSION_NAME_MAX + 1 for
 * no truncation beyond STS's): each character outside the set becomes '-', the result is
 * cut to 64 characters, and one shorter than 2 is padded with '-'. */
void awsid_session_name_sanitize(const char *raw, char *out, size_t outlen);

#endif
