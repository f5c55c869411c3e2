/* target.h - what every query, cache key, EC2 budget and credential lookup is about: an
 * (account, region) pair. One account exists today, TARGET_DEFAULT_ACCOUNT, with the
 * process's own credentials; the next accounts get their rooms in the credentials service
 * (credsvc.h) and the limiter (limiter.h) by their name here. */
#ifndef EBSD_TARGET_H
#define EBSD_TARGET_H
#include <stdbool.h>
#include <stddef.h>

#define TARGET_DEFAULT_ACCOUNT "default"

struct target {
    char account[32];
    char region[32];
};

/* A target for account (NULL: the default account) and region; both are cut to fit. */
struct target target_make(const char *account, const char *region);

struct config;
/* Where a walk over the configured targets stands; start it zeroed. */
struct target_cursor {
    size_t account, region;
};
/* The next target cfg configures: accounts in config order, each with its regions in the
 * order of the top-level list (an account's own `regions` narrow it). False past the last.
 * A whole walk costs accounts x regions checks. */
bool target_next(const struct config *cfg, struct target_cursor *c, struct target *out);
/* The i-th target of that walk (a walk of i + 1 steps). */
bool target_nth(const struct config *cfg, size_t i, struct target *out);

/* Whether a and b name the same account and region. */
bool target_equal(const struct target *a, const struct target *b);

/* The target's part of a cache key, into out (len bytes): the region alone for the default
 * account, so today's keys are unchanged, "account/region" for any other. Returns out. */
const char *target_key(const struct target *t, char *out, size_t len);

#endif
