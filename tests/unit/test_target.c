/* test_target.c - (account, region) pairs and their cache-key part. */
#include <string.h>

#include "harness.h"
#include "target.h"

static void test_default_account_keeps_todays_keys(void)
{
    struct target t = target_make(NULL, "us-east-1");
    CHECK_STR(t.account, TARGET_DEFAULT_ACCOUNT);
    char k[80];
    CHECK_STR(target_key(&t, k, sizeof k), "us-east-1");
    struct target o = target_make("prod", "us-east-1");
    CHECK_STR(target_key(&o, k, sizeof k), "prod/us-east-1");
    CHECK(!target_equal(&t, &o));
    struct target t2 = target_make("default", "us-east-1");
    CHECK(target_equal(&t, &t2));
    struct target r = target_make(NULL, "eu-west-1");
    CHECK(!target_equal(&t, &r));
}

static void test_cut_to_fit(void)
{
    struct target t = target_make("an-account-name-far-longer-than-thirty-two-bytes", "x");
    CHECK_INT(strlen(t.account), sizeof t.account - 1);
}

TEST_MAIN(T(test_default_account_keeps_todays_keys), T(test_cut_to_fit))
