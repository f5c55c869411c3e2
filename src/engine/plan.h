/* plan.h - how the engine cuts a listing into work: how many listers split a target's
 * listing, how many instance ids go to each volume worker, and whether listers fetch their
 * own share's volumes. Pure functions of the configuration and of what the target's last
 * complete listing found (docs/ARCHITECTURE.md, "The fan-out", has the measurements). */
#ifndef EBSD_PLAN_H
#define EBSD_PLAN_H
#include <stdbool.h>
#include <stddef.h>

#define PLAN_LIST_SHARE 500   /* instances per lister when the listing is split (auto) */
#define PLAN_MAX_LISTERS 16   /* the hex digits an instance id can end in */
#define PLAN_MAX_VOLUME_SHARES 256      /* the last two hex digits of a volume id */
#define PLAN_AUTO_VOLUME_SHARES 16      /* at most, sized automatically */
/* The guess while no listing has counted volumes, in tenths: 2.5 volumes an instance */
#define PLAN_VOLUMES_PER_10_INSTANCES 25

/* Listers for a listing: configured (fanout.list_partitions; 0 = auto: one per
 * PLAN_LIST_SHARE instances of seen, the last count), rounded up to a power of two, at most
 * PLAN_MAX_LISTERS; 1 when split_off (an endpoint that ignored the split) or when seen is 0
 * under auto. */
unsigned plan_listers(unsigned configured, bool split_off, size_t seen);

/* Instance ids per volume worker: group (fanout.group_size), grown (up to max_ids) when seen
 * instances would need more groups than the max_children - listers workers left, so the
 * volume work runs in one wave. */
size_t plan_group_size(size_t group, size_t seen, unsigned max_children, unsigned listers,
                       size_t max_ids);

/* True when each lister should fetch its own share's volumes: seen is known and every share
 * fits one page (page ids), one group and max_ids. */
bool plan_listers_own_volumes(size_t seen, unsigned listers, size_t group, size_t page,
                              size_t max_ids);

/* Shares of the attached volumes, listed side by side with the instance listers instead of
 * by instance ids after them: configured (fanout.volume_shares, at most
 * PLAN_MAX_VOLUME_SHARES), or with 0 (auto) enough that each share fits nine tenths of a
 * page (page volumes) of the expected volumes, at most PLAN_AUTO_VOLUME_SHARES: as many
 * DescribeVolumes calls as the volumes need pages. 0 under auto while the target's size is
 * unknown (seen 0): its volumes are then listed by instance ids, so a small fleet's first
 * listing costs no call more. 1 when split_off (an endpoint that ignored the split); 0 when
 * configured is CONFIG_VOLUME_SHARES_OFF. */
unsigned plan_volume_shares(unsigned configured, bool split_off, size_t seen, size_t volumes,
                            size_t page);

/* The volumes a target is expected to have: what its last listing found (volumes), or
 * PLAN_VOLUMES_PER_10_INSTANCES per 10 seen instances when none counted them (a size hint). */
size_t plan_expected_volumes(size_t seen, size_t volumes);

/* Listers beside shares volume shares: plan_listers when configured, split off or without
 * shares; otherwise the fewest (a power of two, at most PLAN_MAX_LISTERS) that page through
 * their share of seen instances in no more pages (instance_page each) than a volume share
 * needs (volume_page each). */
unsigned plan_share_listers(unsigned configured, bool split_off, size_t seen, size_t volumes,
                            unsigned shares, size_t instance_page, size_t volume_page);

/* The size of the groups the last left ids are cut into once the listing is complete: groups
 * of equal size (within one), none larger than group. 0 when left is 0. */
size_t plan_last_groups(size_t left, size_t group);

#endif
