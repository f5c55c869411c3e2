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

TEST_MAIN(T(test_listers), T(test_group_size), T(test_listers_own_volumes),
          T(test_last_groups))
