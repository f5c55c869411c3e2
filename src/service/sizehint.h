/* sizehint.h - the size hint that survives restarts (issue 19): how many instances and
 * attached volumes each target's last listing found, kept in a small state file
 * (fanout.state_file) and, with Redis, under PREFIX{ACCOUNT:REGION}:hint (instances) and
 * PREFIX{ACCOUNT:REGION}:hint:volumes for a day, so the first listing after a start (or on a
 * new replica) is split as the later ones are: its listers by the instances, its volume
 * shares by the volumes. The engine sizes its split from these counts (engine_seen_hint);
 * plan.c stays a pure function of them.
 *
 * The file is JSON: {"version":1,"targets":{"ACCOUNT/REGION": N, ...},
 * "volumes":{"ACCOUNT/REGION": V, ...}}. "volumes" is optional (files written before it
 * existed, and older builds, which ignore it, read the same file). It is untrusted input: at
 * most SIZEHINT_MAX_BYTES, a regular file; a structural fault rejects it whole, an entry
 * with a bad name or count (or volumes for a target not in "targets") is skipped. It holds
 * counts only: no credential. */
#ifndef EBSD_SIZEHINT_H
#define EBSD_SIZEHINT_H
#include <stddef.h>
#include "config.h"
#include "loop.h"
#include "status.h"
#include "target.h"

#define SIZEHINT_VERSION 1
#define SIZEHINT_MAX_BYTES 65536     /* a larger file is ignored */
#define SIZEHINT_MAX_TARGETS 64      /* targets with a hint: the first 64 configured (target_next
                                     * order); more entries in a file are skipped */
#define SIZEHINT_MAX_COUNT 1000000u  /* more instances than this in one target is absurd */
#define SIZEHINT_MAX_VOLUMES 16000000u /* and more attached volumes than 16 an instance */
#define SIZEHINT_WRITE_EVERY_MS 5000 /* the file is written at most this often */
#define SIZEHINT_REDIS_TTL_S 86400   /* a hint in Redis expires after a day */

struct sizehint_entry {
    struct target target;
    size_t instances;
    size_t volumes; /* attached volumes; 0 = not known */
};

/* Parses len bytes of text (a state file's content; no NUL needed) into out (cap entries),
 * *n the entries kept and *skipped (may be NULL) the entries dropped for a bad name (not
 * "ACCOUNT/REGION" with both parts 1..31 printable bytes), a count that is not a whole
 * number in 0..SIZEHINT_MAX_COUNT, or no room. EBSD_EPARSE: not JSON (or trailing bytes);
 * EBSD_EINVAL: not an object, version not SIZEHINT_VERSION, targets not an object;
 * EBSD_ETOOBIG: len over SIZEHINT_MAX_BYTES. On failure *n is 0. */
EBSD_MUST_CHECK ebsd_status sizehint_parse(const char *text, size_t len,
                                           struct sizehint_entry *out, size_t cap, size_t *n,
                                           unsigned *skipped);

/* The file's text for n entries (a new string; caller frees). */
char *sizehint_format(const struct sizehint_entry *e, size_t n);

/* Reads and parses the file at path (as sizehint_parse). EBSD_ENOTFOUND: no such file;
 * EBSD_EIO: unreadable, or not a regular file (a symlink is not followed); EBSD_ETOOBIG:
 * larger than SIZEHINT_MAX_BYTES; else as sizehint_parse. */
EBSD_MUST_CHECK ebsd_status sizehint_read(const char *path, struct sizehint_entry *out,
                                          size_t cap, size_t *n, unsigned *skipped);

/* Writes n entries to path atomically: PATH.tmp (created anew, mode 0600), then renamed
 * over path. EBSD_EIO (errno kept) when any step fails; the old file is left as it was. */
EBSD_MUST_CHECK ebsd_status sizehint_write(const char *path, const struct sizehint_entry *e,
                                           size_t n);

/* At start, after engine_init and redisshare_start: reads cfg's fanout.state_file (when
 * set) and gives the engine the counts of the targets cfg configures; asks Redis (when
 * configured) for the targets the file did not cover once its connection is up; then
 * follows the engine's listings, writing the file and Redis when a count changes by more
 * than a tenth (the file at most every SIZEHINT_WRITE_EVERY_MS). Never fails: a bad file
 * or an unreachable Redis costs a log line and an unsplit first listing. */
void sizehint_start(struct loop *l, const struct config *cfg);

/* At exit, before redisshare_stop: writes the file once more if a count changed since the
 * last write, and stops following the engine. */
void sizehint_stop(void);

#endif
