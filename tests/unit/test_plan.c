/* test_plan.c - the listing split and group sizing policy. */
#include "harness.h"
#include "plan.h"

static void test_listers(void)
{
    CHECK_INT(plan_listers(0, false, 0), 1);       /* first listing: size unknown */
    CHECK_INT(plan_listers(0, false, 500), 1);
    CHECK_INT(plan_listers(0, false, 501), 2);
    CHECK_INT(plan_listers(0, false, 1000), 2);
    CHECK_INT(plan_listers(0, false, 1500), 4);    /* 3 rounded up to a power of two */
    CHECK_INT(plan_listers(0, false, 10000), 16);
    CHECK_INT(plan_listers(0, false, 100000), 16); /* at most one per hex digit */
    CHECK_INT(plan_listers(3, false, 0), 4);       /* configured, rounded up */
    CHECK_INT(plan_listers(16, false, 0), 16);
    CHECK_INT(plan_listers(1, false, 10000), 1);
    CHECK_INT(plan_listers(8, true, 10000), 1);    /* splitting turned off */
}

static void test_group_size(void)
{
    /* enough workers: the configured group */
    CHECK_INT(plan_group_size(100, 1000, 64, 2, 1000), 100);
    CHECK_INT(plan_group_size(100, 0, 64, 1, 1000), 100);
    /* 10,000 instances, 32 workers, 16 listers: 16 groups of 625 */
    CHECK_INT(plan_group_size(200, 10000, 32, 16, 1000), 625);
    /* never more than EC2 takes in one filter */
    CHECK_INT(plan_group_size(200, 100000, 32, 16, 1000), 1000);
    /* no worker left beside the listers: one wave of one worker */
    CHECK_INT(plan_group_size(100, 500, 4, 4, 1000), 500);
}

static void test_listers_own_volumes(void)
{
    CHECK(!plan_listers_own_volumes(0, 16, 625, 1000, 1000)); /* unknown size */
    CHECK(plan_listers_own_volumes(10000, 16, 625, 1000, 1000));
    CHECK(!plan_listers_own_volumes(10000, 16, 600, 1000, 1000)); /* share > group */
    CHECK(!plan_listers_own_volumes(1000, 2, 200, 1000, 1000));   /* spare workers */
    CHECK(!plan_listers_own_volumes(20000, 16, 1000, 1000, 1000)); /* share > a page */
    CHECK(!plan_listers_own_volumes(800, 1, 1000, 500, 1000));     /* smaller pages */
}

static void test_last_groups(void)
{
    CHECK_INT(plan_last_groups(0, 100), 0);
    CHECK_INT(plan_last_groups(50, 100), 50);
    CHECK_INT(plan_last_groups(100, 100), 100);
    CHECK_INT(plan_last_groups(101, 100), 51); /* two groups of 51 and 50, not 100 and 1 */
    CHECK_INT(plan_last_groups(250, 100), 84);
}

static void test_volume_shares(void)
{
    /* unknown size: the volumes by instance ids, as many calls as the old plan */
    CHECK_INT(plan_volume_shares(0, false, 0, 0, 500), 0);
    /* the last listing's volumes, nine tenths of a page a share */
    CHECK_INT(plan_volume_shares(0, false, 100, 232, 500), 1);
    CHECK_INT(plan_volume_shares(0, false, 1000, 2324, 500), 6);
    CHECK_INT(plan_volume_shares(0, false, 10000, 23242, 500), 16); /* at most 16 on auto */
    /* a size hint without volumes: 2.5 an instance */
    CHECK_INT(plan_expected_volumes(1000, 0), 2500);
    CHECK_INT(plan_expected_volumes(1000, 7), 7);
    CHECK_INT(plan_volume_shares(0, false, 1000, 0, 500), 6);
    CHECK_INT(plan_volume_shares(0, false, 1000, 2324, 100), 16);  /* smaller pages */
    /* configured: as given, first listing included, at most 256 */
    CHECK_INT(plan_volume_shares(5, false, 0, 0, 500), 5);
    CHECK_INT(plan_volume_shares(1000, false, 0, 0, 500), 256);
    /* an endpoint that ignored the split: one share, or by ids while the size is unknown */
    CHECK_INT(plan_volume_shares(8, true, 0, 0, 500), 1);
    CHECK_INT(plan_volume_shares(0, true, 1000, 2324, 500), 1);
    CHECK_INT(plan_volume_shares(0, true, 0, 0, 500), 0);
}

static void test_share_listers(void)
{
    /* 1,000 instances, 6 shares of one page: one lister's page of 1,000 keeps up */
    CHECK_INT(plan_share_listers(0, false, 1000, 2324, 6, 1000, 500), 1);
    /* 10,000 instances, 16 shares of 3 pages: 4 listers of 2,500 (3 pages each) */
    CHECK_INT(plan_share_listers(0, false, 10000, 23242, 16, 1000, 500), 4);
    /* 100,000 instances: shares of 30 pages, 4 listers of 25 pages; never more than 16 */
    CHECK_INT(plan_share_listers(0, false, 100000, 232420, 16, 1000, 500), 4);
    CHECK_INT(plan_share_listers(0, false, 100000, 100, 16, 1000, 500), 16);
    /* configured, split off, or no shares: plan_listers */
    CHECK_INT(plan_share_listers(2, false, 10000, 23242, 16, 1000, 500), 2);
    CHECK_INT(plan_share_listers(0, true, 10000, 23242, 16, 1000, 500), 1);
    CHECK_INT(plan_share_listers(0, false, 10000, 23242, 0, 1000, 500), 16);
}

TEST_MAIN(T(test_listers), T(test_group_size), T(test_listers_own_volumes),
          T(test_last_groups), T(test_volume_shares), T(test_share_listers))
