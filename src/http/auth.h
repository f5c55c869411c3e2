/* auth.h - optional bearer-token authentication for the data endpoints: tokens from a file
 * (one per line), kept only as SHA-256 digests and compared in constant time. */
#ifndef EBSD_AUTH_H
#define EBSD_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include "status.h"

struct auth;

/* Most tokens a file may hold, and the longest token (bytes). */
#define AUTH_MAX_TOKENS 1024
#define AUTH_MAX_TOKEN_LEN 4096

/* Loads the tokens of path: one per line, surrounding blanks trimmed, blank lines and lines
 * starting with '#' ignored. The file must be a regular file that is not readable by
 * "other" (mode & 0004 == 0), at most 1 MiB, and hold at least one token. On success *out
 * owns the tokens (free with auth_free). On failure msg (msglen bytes) says why, naming the
 * file: EBSD_EIO (unreadable), EBSD_EINVAL (world-readable, not a regular file, no tokens,
 * a token with a control character), EBSD_ETOOBIG (file, token or count over the caps).
 * The tokens themselves never appear in msg. */
EBSD_MUST_CHECK ebsd_status auth_load(const char *path, struct auth **out, char *msg,
                                      size_t msglen);

/* Loads from memory (data need not be NUL-terminated); the unit-test and fuzzing entry
 * point: same parsing and results as auth_load except for the file checks. */
EBSD_MUST_CHECK ebsd_status auth_load_buffer(const char *name, const char *data, size_t len,
                                             struct auth **out, char *msg, size_t msglen);

/* True if header (the Authorization value, may be NULL) is "Bearer <token>" (scheme
 * case-insensitive) with one of a's tokens. Time does not depend on which token matched,
 * nor on the length of any token: every token's digest is compared in full. */
bool auth_check(const struct auth *a, const char *header);

/* Number of tokens loaded. */
size_t auth_count(const struct auth *a);

void auth_free(struct auth *a);

#endif
