/* credsvc.h - the credentials service: hands out a target's current AWS credentials and
 * keeps them fresh. The first resolution is blocking and bounded (at start, before the loop
 * runs); after that a refresh runs in a worker ahead of expiry (5 minutes, or half the
 * remaining life) and never blocks the loop. A failed refresh keeps the old credentials and
 * tries again on the same rule; with none yet, every 30 s. One identity today, for every
 * target; the place where per-account credentials will live. */
#ifndef EBSD_CREDSVC_H
#define EBSD_CREDSVC_H
#include <stdbool.h>
#include <stdint.h>
#include "creds.h"
#include "loop.h"
#include "target.h"

/* Resolves the credentials on the first call (blocking, at most 5 s; a failure is logged
 * and retried in the background), then schedules the refreshes on loop l. */
void credsvc_init(struct loop *l);
/* Stops the refresh timer and wipes the credentials. */
void credsvc_shutdown(void);

/* Whether usable credentials are loaded for target t (the engine's gate). */
bool credsvc_ready(const struct target *t);
/* The credentials for target t, or NULL when there are none. Valid until the next
 * refresh lands (in a worker: for its whole life, as it holds a copy). */
const struct creds *credsvc_current(const struct target *t);
/* Whether credentials are loaded, their source (safe to show: "environment", "imds", ...)
 * and the seconds until they expire (-1: they do not, or there are none). */
bool credsvc_status(const char **source, int64_t *expires_in_s);

#endif
