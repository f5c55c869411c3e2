/* answer.h - what the data routes answer: the aggregation of a job's records into the API's
 * JSON, and the mapping of a job's outcome to an HTTP status and error code. */
#ifndef EBSD_ANSWER_H
#define EBSD_ANSWER_H
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "engine.h"
#include "wire.h"

/* A route's answer. http_status 200: data is the JSON (the owner deletes it). Otherwise
 * data is NULL and code/message are the API's error; retry_after_s is set for 503. */
struct answer {
    unsigned http_status;
    char code[64];
    char message[512];
    unsigned retry_after_s;
    cJSON *data;
    unsigned children;         /* workers forked */
    unsigned ec2_calls;        /* EC2 HTTP requests made */
    long max_rss_kb;           /* largest worker's ru_maxrss */
    int64_t fetched_at;        /* wall ms when the fetch finished */
};

/* The answer to query q given its job's outcome (aggregated, or mapped to an error).
 * instances: a total lists its instances (?detail=instances); else the list is not built. */
void answer_from_outcome(const struct engine_query *q, struct engine_outcome *o, bool instances,
                         struct answer *out);

/* /volumes/total: instances and volumes sorted by id (in place); a volume reported twice
 * (multi-attach, two groups) counts once in total_gib and once in each listed instance it
 * is attached to; a volume attached to no listed instance is not counted. With instances, an
 * "instances" array lists each instance's count and total. Caller deletes. */
cJSON *answer_total(const char *region, struct wire_inst *inst, size_t ninst,
                    struct wire_vol *vols, size_t nvols, const struct wire_attach *atts,
                    bool instances);
/* The groups of a breakdown of /volumes/total by keys (route_group_key_valid ones, nkeys
 * 1..2), as the simulator's truth defines them (docs/ec2sim.md): the counted volumes (as in
 * answer_total) partitioned by their values, volume keys from the volume, instance keys from
 * the instance of its first counted attachment; a missing tag is null; instance_count is the
 * distinct instances with a counted attachment to a volume of the group. Sorted by
 * total_gib (largest first), then by the values. Sorts inst and vols in place. atts, tags:
 * the attachments and tags (attach_at, tags_at). Caller deletes the array. */
cJSON *answer_groups(const char *const *keys, size_t nkeys, struct wire_inst *inst, size_t ninst,
                     struct wire_vol *vols, size_t nvols, const struct wire_attach *atts,
                     const struct wire_tag *tags);
/* The counted volumes (as in answer_total) one at a time, in id order: fn(ctx, v, owner) for
 * each, owner the listed instance of its first counted attachment, with no allocation. The
 * volumes answer_groups partitions, and what the storage gauges sum by volume type after
 * every total. Sorts inst and vols. */
typedef void (*answer_counted_fn)(void *ctx, const struct wire_vol *v,
                                  const struct wire_inst *owner);
void answer_foreach_counted(struct wire_inst *inst, size_t ninst, struct wire_vol *vols,
                            size_t nvols, const struct wire_attach *atts,
                            answer_counted_fn fn, void *ctx);
/* The volumes of an unattached listing once each (a volume seen on two pages counts once), in
 * id order: what answer_unattached sums, and the storage gauges after every listing. Sorts
 * vols. */
void answer_foreach_unattached(struct wire_vol *vols, size_t nvols,
                               void (*fn)(void *ctx, const struct wire_vol *v), void *ctx);
/* account=all / region=all: the groups of several targets' breakdowns by the same keys
 * (lists: their `groups` arrays, read only) summed by key (total_gib, volume_count, and
 * instance_count: the targets' instances are distinct), null (untagged) keys merging as any
 * value does, sorted as answer_groups sorts. Caller deletes the array. */
cJSON *answer_groups_merge(const char *const *keys, size_t nkeys, const cJSON *const *lists,
                           size_t nlists);
/* One target's answer in a merge: its JSON (read only) and where it came from. */
struct answer_part {
    const cJSON *data;
    const char *account, *region;
};
/* account=all / region=all on /volumes/unattached: adds to into the parts' answers (each an
 * answer_unattached with the same limit) summed: total_gib, volume_count, by_type,
 * by_availability_zone, limit, and the limit largest and oldest of all the parts' lists in
 * answer_unattached's orders (ties of id by account, then region), each volume with its
 * account and region. */
void answer_unattached_merge(cJSON *into, const struct answer_part *parts, size_t nparts,
                             unsigned limit);
/* /volumes/unattached from the records of an ENGINE_UNATTACHED job: total_gib, volume_count,
 * by_type and by_availability_zone ({value: {total_gib, volume_count}}), and the limit
 * largest (ties by id) and oldest (by create time, ties by id) volumes. Sorts vols in place.
 * Caller deletes. */
cJSON *answer_unattached(const char *region, struct wire_vol *vols, size_t nvols,
                         const struct wire_tag *tags, unsigned limit);
/* /instances/{id}/volumes: the volumes attached to instance_id (sorted in place); state is
 * the instance's state. Caller deletes. (atts: the attachments, wire_vol.attach_at.) */
cJSON *answer_instance(const char *region, const char *instance_id, const char *state,
                       struct wire_vol *vols, size_t nvols, const struct wire_attach *atts);

#endif
