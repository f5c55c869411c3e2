/* awsconfig.h - the AWS shared config and credentials files (~/.aws/config and
 * ~/.aws/credentials): profiles and their settings, parsed with libinih.
 * Values may be secrets (aws_secret_access_key, aws_session_token): never log them. */
#ifndef EBSD_AWSCONFIG_H
#define EBSD_AWSCONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include "status.h"

struct awsconfig; /* opaque: every (profile, key, value) of both files */

/* Each file may be larger than this only at the cost of EBSD_ETOOBIG. */
#define AWSCONFIG_MAX_FILE (1u << 20)

/* Loads both files; either path may be NULL or name a missing file (then it adds nothing).
 * In the config file "[profile NAME]" and "[default]" name profiles (other sections are
 * ignored); in the credentials file "[NAME]" does. On success *out is set (caller frees
 * with awsconfig_free). On failure err says which file and line, never a value:
 * EBSD_EPARSE (malformed), EBSD_ETOOBIG, EBSD_EIO (unreadable). */
EBSD_MUST_CHECK ebsd_status awsconfig_load(const char *config_path,
                                           const char *credentials_path,
                                           struct awsconfig **out, char *err, size_t errlen);

/* The value of key in profile: the credentials file wins over the config file, a later
 * line over an earlier one. NULL when unset. Valid until awsconfig_free. */
const char *awsconfig_get(const struct awsconfig *c, const char *profile, const char *key);

/* True when either file has at least one setting in profile. */
bool awsconfig_has_profile(const struct awsconfig *c, const char *profile);

void awsconfig_free(struct awsconfig *c);

#endif
