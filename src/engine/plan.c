/* plan.c - listing split and group sizing: pure policy (see plan.h). */
#include "plan.h"

#include "config.h"

unsigned plan_listers(unsigned configured, bool split_off, size_t seen)
{
    if (split_off)
        return 1;
    unsigned want = configured;
    if (want == 0) {
        size_t n = (seen + PLAN_LIST_SHARE - 1) / PLAN_LIST_SHARE;
        want = n > PLAN_MAX_LISTERS ? PLAN_MAX_LISTERS : (unsigned)n;
    }
    unsigned p = 1;
    while (p < want && p < PLAN_MAX_LISTERS)
        p *= 2;
    return p;
}

/* A worker costs about 10 ms of CPU to fork, set up and tear down, more than a
 * DescribeVolumes page of 500 volumes costs to parse: at 10,000 instances, 16 workers of 625
 * ids were 25% faster than 50 of 200 (docs/PERFORMANCE.md). */
size_t plan_group_size(size_t group, size_t seen, unsigned max_children, unsigned listers,
                       size_t max_ids)
{
    unsigned budget = max_children > listers ? max_children - listers : 1;
    if (seen > group * budget) {
        group = (seen + budget - 1) / budget;
        if (group > max_ids)
            group = max_ids;
    }
    return group;
}

/* Then the listing and the volume work run in the same workers: half as many forks, and a
 * share's volume calls start the moment its listing arrives, where the parent's groups would
 * not have made the volume work any wider. With spare workers, groups stay smaller than a
 * share and the parent spreads them (at 1,000 instances: 2 shares of 500, 5 groups of 200).
 * Not on the first listing of a target, whose size is unknown. */
bool plan_listers_own_volumes(size_t seen, unsigned listers, size_t group, size_t page,
                              size_t max_ids)
{
    if (seen == 0 || listers == 0)
        return false;
    size_t share = (seen + listers - 1) / listers;
    return share <= group && share <= page && share <= max_ids;
}

/* The critical path is then one round trip and a share's pages instead of the listing's
 * round trip and then the volumes' (docs/ARCHITECTURE.md, "The fan-out"). */
unsigned plan_volume_shares(unsigned configured, bool split_off, size_t seen, size_t volumes,
                            size_t page)
{
    if (configured == CONFIG_VOLUME_SHARES_OFF)
        return 0;
    if (split_off)
        return configured || seen ? 1 : 0;
    if (configured)
        return configured > PLAN_MAX_VOLUME_SHARES ? PLAN_MAX_VOLUME_SHARES : configured;
    if (seen == 0)
        return 0;
    size_t fill = page >= 10 ? page * 9 / 10 : 1;
    size_t n = (plan_expected_volumes(seen, volumes) + fill - 1) / fill;
    return n > PLAN_AUTO_VOLUME_SHARES ? PLAN_AUTO_VOLUME_SHARES : n ? (unsigned)n : 1;
}

size_t plan_expected_volumes(size_t seen, size_t volumes)
{
    return volumes ? volumes : seen * PLAN_VOLUMES_PER_10_INSTANCES / 10;
}

/* A lister's pages cost a round trip each like a share's: more listers than it takes to
 * keep up with the shares would only add forks. */
unsigned plan_share_listers(unsigned configured, bool split_off, size_t seen, size_t volumes,
                            unsigned shares, size_t instance_page, size_t volume_page)
{
    if (configured || split_off || shares == 0 || seen == 0)
        return plan_listers(configured, split_off, seen);
    size_t per_share = (plan_expected_volumes(seen, volumes) + shares - 1) / shares;
    size_t pages = volume_page ? (per_share + volume_page - 1) / volume_page : 1;
    if (pages == 0)
        pages = 1;
    size_t per_lister = instance_page * pages; /* instances a lister may take in as many pages */
    unsigned p = 1;
    while (p < PLAN_MAX_LISTERS && (seen + p - 1) / p > per_lister)
        p *= 2;
    return p;
}

size_t plan_last_groups(size_t left, size_t group)
{
    if (left == 0 || group == 0)
        return 0;
    size_t groups = (left + group - 1) / group;
    return (left + groups - 1) / groups;
}
