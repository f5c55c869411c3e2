/* limiter.h - the EC2 budget: one token bucket (ratelimit.h) per target and per class of
 * EC2 actions that EC2 meters apart. EC2 throttles per account and region, and all the
 * Describe* (non-mutating) actions draw on one shared bucket, so today every call ebsd
 * makes is LIMITER_DESCRIBE. The engine takes one token per worker it starts. */
#ifndef EBSD_LIMITER_H
#define EBSD_LIMITER_H
#include <stdint.h>
#include "target.h"

enum limiter_class {
    LIMITER_DESCRIBE   /* DescribeInstances, DescribeVolumes: EC2's non-mutating bucket */
};

/* Sets the rate (tokens per second; <= 0: off) and burst of every bucket. Buckets are
 * refilled to full when the values change (and at the first call), kept otherwise. */
void limiter_configure(double rate, double burst, int64_t now_us);

/* Takes one token of t's class c budget at now_us: 0, or the microseconds until one will be
 * there (nothing taken). */
int64_t limiter_take(const struct target *t, enum limiter_class c, int64_t now_us);

/* Forgets every bucket. */
void limiter_reset(void);

#endif
