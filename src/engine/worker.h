/* worker.h - the bodies of the forked workers: each makes its EC2 calls with a client of its
 * own and reports what it found as frames (wire.h) on its pipe. Runs only in a child. */
#ifndef EBSD_WORKER_H
#define EBSD_WORKER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "credentials.h"
#include "target.h"
#include "wire.h"

enum worker_kind {
    WORKER_LIST,        /* DescribeInstances pages (one share of the listing) */
    WORKER_VOLUMES,     /* DescribeVolumes for a group of instance ids */
    WORKER_INSTANCE,    /* DescribeInstances InstanceId.1 */
    WORKER_SEQUENTIAL,  /* the seed: list, then one DescribeVolumes per instance */
    WORKER_UNATTACHED,  /* DescribeVolumes status=available|creating, paginated */
    WORKER_ATTACHED     /* DescribeVolumes of one share of the attached volumes, paginated */
};

struct worker_task {
    enum worker_kind kind;
    const struct target *target;
    const char (*ids)[WIRE_ID_LEN];
    size_t nids;
    unsigned part, nparts;     /* WORKER_LIST, WORKER_ATTACHED: this worker's share */
    bool own_volumes;          /* WORKER_LIST: also fetch the volumes of what it lists */
    unsigned vol_nparts;       /* WORKER_LIST: also list the shares of vol_nparts of the
                                * attached volumes that are this lister's
                                * (worker_carried_share), beside the listing, each in a thread
                                * of this process (0: none) */
    int64_t deadline;          /* monotonic ms every EC2 call (and retry) must respect */
    struct wire_tag_pick tags; /* which tags go into the records */
    bool background;           /* nobody waits (refresh ahead): the budget's reserve is not
                                * this worker's to use */
    _Atomic unsigned *calls;   /* shared with the parent: [0] DescribeInstances, [1]
                                * DescribeVolumes, one more before each EC2 attempt, so
                                * calls are counted even if the worker is killed; [2] its
                                * peak RSS in KiB as of its last attempt (for a REPORT of a
                                * worker not reaped yet); NULL: not counted */
    const struct creds *creds; /* the target's credentials (worker_creds at the start); NULL:
                                * none yet */
};

/* The most volume shares one lister carries in threads of its worker; shares past listers
 * times this are workers of their own. */
#define WORKER_MAX_CARRIED 16

/* The i-th volume share (from 0) that lister part of nparts carries of vol_nparts shares:
 * part, part + nparts, ..., at most WORKER_MAX_CARRIED of them; -1 past its last. The engine
 * plans with the same function, so every share is listed exactly once. */
static inline int worker_carried_share(unsigned part, unsigned nparts, unsigned vol_nparts,
                                       unsigned i)
{
    unsigned s = part + i * nparts;
    return nparts > 0 && i < WORKER_MAX_CARRIED && s < vol_nparts ? (int)s : -1;
}

/* A target's current credentials (NULL: none), as the credentials service hands them. */
typedef const struct creds *(*worker_creds_fn)(const struct target *t);

/* The EC2 client settings a worker runs with (from the config, worker_configure). */
struct worker_settings {
    unsigned max_attempts, instance_page, volume_page;
    unsigned connect_timeout_ms, read_timeout_ms; /* per EC2 attempt */
    unsigned budget_wait_ms; /* fanout.queue_timeout_ms: longest wait for a budget token */
    char endpoint[512];
    char ca_bundle[512];
};

/* The settings as configured now (parent), to send in a worker's message; and, in the
 * worker, the ones its message brought (the zygote's copy is from its start). */
const struct worker_settings *worker_settings(void);
void worker_settings_adopt(const struct worker_settings *s);

/* Takes the EC2 client settings from cfg (endpoint, CA bundle, attempts, page sizes, rate)
 * and where the credentials come from; call in the parent, before forking and after each
 * reload. */
void worker_configure(const struct config *cfg, worker_creds_fn creds);

/* The target's credentials now (NULL: none yet), from the function worker_configure was
 * given: in the parent, when a worker is started. */
const struct creds *worker_creds(const struct target *t);

/* Signs a dummy request and parses a dummy page once in the parent, so OpenSSL's algorithm
 * fetches and the symbols expat binds lazily are inherited instead of redone in every
 * worker. */
void worker_prepare(void);

/* Run by each spare worker before it waits for its message (proc_spares_warm): makes the
 * HTTP handles of a small target's two clients ahead (httpc_warm) and redoes
 * worker_prepare's signing and parsing, so the page writes they cost are the spare's, not
 * the request's. */
void worker_spare_warm(void);

/* Runs task t in the child, writing frames to fd: INSTANCES / VOLUMES frames, then DONE,
 * or ERROR. Returns the child's exit status (0, or 1 when the pipe failed). */
int worker_main(int fd, const struct worker_task *t);

#endif
