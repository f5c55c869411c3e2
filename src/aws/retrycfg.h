/* retrycfg.h - the retry settings as the AWS SDKs read them: AWS_MAX_ATTEMPTS and
 * AWS_RETRY_MODE from the environment, then max_attempts and retry_mode in the shared
 * config file's profile (AWS_CONFIG_FILE or ~/.aws/config; AWS_PROFILE or default), then
 * ebsd's own ec2.max_attempts. retry_mode is standard or adaptive; legacy is read as
 * standard (ebsd has one classic mode), with a note. */
#ifndef EBSD_RETRYCFG_H
#define EBSD_RETRYCFG_H
#include <stddef.h>
#include "retry.h"
#include "status.h"

/* Pure: resolves from the given strings (NULL or "" = unset), each level overriding the
 * next: env, profile, config_max_attempts (mode: standard). Always fills *out with usable
 * settings. EBSD_OK, with note set (or "") when something deserves a word (legacy read as
 * standard, a count above RETRY_MAX_ATTEMPTS_CAP clamped); EBSD_EINVAL when a value was not
 * valid (max_attempts not an integer >= 1, an unknown retry_mode) and was skipped: note
 * names the variable or key and the value. */
EBSD_MUST_CHECK ebsd_status retrycfg_resolve(const char *env_max_attempts, const char *env_mode,
                                             const char *profile_max_attempts,
                                             const char *profile_mode, int config_max_attempts,
                                             struct retry_settings *out, char *note,
                                             size_t notelen);

/* retrycfg_resolve with the process environment and the shared config file (read here:
 * blocking file I/O, call it at start and on reload). A config file that cannot be read
 * counts as no profile settings (the credential chain reports such files). */
EBSD_MUST_CHECK ebsd_status retrycfg_load(int config_max_attempts, struct retry_settings *out,
                                          char *note, size_t notelen);

#endif
