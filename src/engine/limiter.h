/* limiter.h - the EC2 budget: EC2 calls per second per target (account x region) and per
 * class of EC2 actions that EC2 meters apart. EC2 throttles per account and region, and all
 * the Describe* (non-mutating) actions draw on one shared bucket, so today every call ebsd
 * makes is LIMITER_DESCRIBE.
 *
 * Each bucket is a GCRA (a token bucket kept as one "theoretical arrival time") in a
 * MAP_SHARED anonymous mapping made by limiter_configure before any fork, updated with C11
 * atomics (CAS), so every worker process takes a token right before each EC2 HTTP attempt
 * (retries included) without asking the parent, and the parent reads the same buckets for
 * scheduling and /metrics. CLOCK_MONOTONIC is system-wide, so times agree across processes.
 *
 * Across replicas (src/service/budgetshare.c) the buckets are *refilled*: time no longer
 * fills them; each bucket keeps a clock of its own that only limiter_refill moves (by the
 * tokens the parent got from Redis, or by time at this replica's share of the rate while
 * Redis is lost), holds at most this replica's share of the burst, and its waits are
 * paced at this replica's share of the rate. Workers take exactly as before, never
 * waiting on anything but the mapping. */
#ifndef EBSD_LIMITER_H
#define EBSD_LIMITER_H
#include <stdbool.h>
#include <stdint.h>
#include "target.h"

/* Buckets kept (targets x classes); past that the last one is shared. */
#define LIMITER_MAX 64

enum limiter_class {
    LIMITER_DESCRIBE   /* DescribeInstances, DescribeVolumes: EC2's non-mutating bucket */
};

/* The label /metrics gives class c ("Describe"). */
const char *limiter_class_name(enum limiter_class c);

/* Sets the rate (calls per second; <= 0: no limit) and burst of every bucket. Maps the shared
 * buckets at the first call (call it before forking workers). Buckets are refilled to full
 * when the values change, kept otherwise. */
void limiter_configure(double rate, double burst, int64_t now_us);

/* Takes one token of t's class c budget at now_us, or reserves the next one when it comes
 * within max_wait_us: returns 0 (taken now), the microseconds the caller must wait before
 * calling EC2 (reserved: the token is the caller's then), or -(microseconds until a token
 * would be there) when that is past max_wait_us (nothing taken: a refusal). background work
 * may only use the bucket above a reserve of half the burst, so requests someone waits for
 * go first. Counts waits and refusals. Safe from any process. */
int64_t limiter_take(const struct target *t, enum limiter_class c, int64_t now_us,
                     int64_t max_wait_us, bool background);

/* How long (us, 0: now) until one more token of t's class c budget is there for a
 * foreground (or background) call, after `ahead` tokens others are about to take; takes
 * nothing. 0 when the budget is off. */
int64_t limiter_wait_us(const struct target *t, enum limiter_class c, int64_t now_us,
                        bool background, unsigned ahead);

/* Counts a refusal made on the budget's word without a take (the engine refusing a job). */
void limiter_count_refusal(const struct target *t, enum limiter_class c);

/* Calls fn for each bucket in use: its target, class, tokens now (may be negative while
 * callers wait for reserved tokens), waits and refusals so far. */
typedef void (*limiter_visit_fn)(void *arg, const struct target *t, enum limiter_class c,
                                 double tokens, uint64_t waits, uint64_t refusals);
void limiter_foreach(int64_t now_us, limiter_visit_fn fn, void *arg);

/* Whether the budget limits anything (rate > 0). */
bool limiter_enabled(void);

/* Refilled mode on (true) or off: buckets keep their tokens across the switch; on, they
 * fill only through limiter_refill. Call from the parent. */
void limiter_set_refilled(bool on, int64_t now_us);

/* Refilled mode: the replicas the budget is split among (>= 1; 0 counts as 1): each
 * bucket here holds at most ceil(burst / replicas) tokens, and waits are estimated at
 * rate / replicas. */
void limiter_set_share(unsigned replicas);

/* The tokens one bucket may hold here (the burst, or its share in refilled mode). */
double limiter_local_burst(void);

/* Refilled mode: adds tokens (> 0, fractions kept) to t's class c bucket; past the local
 * burst they are lost. Safe from any process; meant for the parent. */
void limiter_refill(const struct target *t, enum limiter_class c, double tokens);

/* Forgets every bucket (the mapping is kept) and leaves refilled mode. */
void limiter_reset(void);

#endif
