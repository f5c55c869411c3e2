/* test_target.c - (account, region) pairs and their cache-key part. */
#include <string.h>

#include "config.h"
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

/* Accounts in config order, each with the top-level regions its own list allows. */
static void test_walk_of_the_configured_targets(void)
{
    static struct config cfg;
    static struct config_account acc[2];
    cfg.regions[0] = "us-east-1";
    cfg.regions[1] = "eu-west-1";
    cfg.regions[2] = "ap-southeast-2";
    cfg.nregions = 3;
    acc[0].name = "prod";
    acc[1].name = "dev";
    acc[1].regions[0] = "ap-southeast-2";
    acc[1].regions[1] = "us-east-1";
    acc[1].nregions = 2;
    cfg.accounts = acc;
    cfg.naccounts = 2;
    static const char *const want[] = {"prod/us-east-1", "prod/eu-west-1",
                                       "prod/ap-southeast-2", "dev/us-east-1",
                                       "dev/ap-southeast-2"};
    struct target_cursor c = {0};
    struct target t, n;
    char k[80];
    size_t i = 0;
    while (target_next(&cfg, &c, &t)) {
        CHECK(i < 5);
        if (i >= 5)
            break;
        CHECK_STR(target_key(&t, k, sizeof k), want[i]);
        CHECK(target_nth(&cfg, i, &n) && target_equal(&t, &n));
        i++;
    }
    CHECK_INT(i, 5);
    CHECK(!target_nth(&cfg, 5, &n));
    CHECK(!target_next(&cfg, &c, &t)); /* stays past the end */
}

TEST_MAIN(T(test_default_account_keeps_todays_keys), T(test_cut_to_fit),
          T(test_walk_of_the_configured_targets))
