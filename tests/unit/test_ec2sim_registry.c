/* test_ec2sim_registry.c - ec2sim's fleets per (account, region): the home pair is the
 * command line's fleet unchanged, every other pair a fleet of its own with the account as
 * owner and the region's AZs, the same on every build; and the account of an access key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"
#include "harness.h"
#include "registry.h"
#include "simauth.h"

static char *dump(const struct fleet *f)
{
    cJSON *j = fleet_to_json(f);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static void fleets_per_pair(void)
{
    struct fleet_params p;
    fleet_params_default(&p);
    p.instances = 300;
    p.seed = 21;
    registry_init(&p, NULL, SIMAUTH_DEFAULT_ACCOUNT);
    CHECK_STR(registry_home_account(), "123456789012");
    CHECK_STR(registry_home_region(), "us-east-1");
    struct fleet *plain = NULL;
    CHECK(fleet_generate(300, 21, &plain) == EBSD_OK);
    const struct registry_entry *home = registry_get(NULL, NULL);
    CHECK(home != NULL);
    CHECK(registry_get("123456789012", "us-east-1") == home);
    const struct registry_entry *a = registry_get("111122223333", "eu-west-1");
    const struct registry_entry *b = registry_get("111122223333", "us-east-1");
    const struct registry_entry *c = registry_get("444455556666", "eu-west-1");
    CHECK(a && b && c && a != b && a != c);
    if (!home || !a || !b || !c || !plain)
        goto out;
    char *dp = dump(plain), *dh = dump(home->fleet), *da = dump(a->fleet), *db = dump(b->fleet);
    CHECK(strcmp(dp, dh) == 0); /* the home fleet is the command line's, unchanged */
    CHECK(strcmp(da, dh) != 0 && strcmp(da, db) != 0);
    free(dp);
    free(dh);
    free(db);
    CHECK_STR(a->fleet->region, "eu-west-1");
    for (size_t i = 0; i < a->fleet->ninstances; i++) {
        const struct fleet_instance *in = &a->fleet->instances[i];
        CHECK(strncmp(in->az, "eu-west-1", 9) == 0 && strlen(in->az) == 10);
        CHECK_STR(a->fleet->reservations[in->reservation].owner_id, "111122223333");
    }
    CHECK(fleet_check(a->fleet) == NULL);
    cJSON *t = cJSON_Parse(a->truth);
    CHECK_STR(cJSON_GetObjectItem(t, "account_id")->valuestring, "111122223333");
    CHECK_STR(cJSON_GetObjectItem(t, "region")->valuestring, "eu-west-1");
    CHECK_INT(cJSON_GetObjectItem(t, "instance_count")->valuedouble, 300);
    cJSON_Delete(t);
    /* the same flags give the same fleets: rebuild and compare */
    registry_free();
    registry_init(&p, NULL, SIMAUTH_DEFAULT_ACCOUNT);
    const struct registry_entry *a2 = registry_get("111122223333", "eu-west-1");
    CHECK(a2 != NULL);
    if (a2) {
        char *d2 = dump(a2->fleet);
        CHECK(strcmp(da, d2) == 0);
        free(d2);
    }
    free(da);
    CHECK(registry_get("111122223333", "a-region-name-too-long-for-an-az") == NULL);
out:
    registry_free();
    fleet_free(plain);
}

static void accounts_of_keys(void)
{
    char acc[SIMAUTH_ACCOUNT_LEN];
    simauth_account_of(SIMAUTH_DEFAULT_ACCESS_KEY, acc);
    CHECK_STR(acc, "123456789012");
    simauth_account_of("AKIDPROD111122223333", acc);
    CHECK_STR(acc, "111122223333");
    CHECK(simauth_add("AKIDMAPPED:secret:444455556666") == EBSD_OK);
    simauth_account_of("AKIDMAPPED", acc);
    CHECK_STR(acc, "444455556666");
    /* a key with no account of its own is in the home account (today's fleet) */
    simauth_account_of("AKIDSOMEONE", acc);
    CHECK_STR(acc, "123456789012");
    CHECK(simauth_add("AKIDBAD:secret:1234") == EBSD_EINVAL);
    CHECK(simauth_add("nocolon") == EBSD_EINVAL);
    CHECK(simauth_region_allowed("eu-west-1"));
    CHECK(!simauth_region_allowed("EU_WEST"));
    CHECK(simauth_set_regions("us-east-1,eu-west-1") == EBSD_OK);
    CHECK(simauth_region_allowed("eu-west-1") && !simauth_region_allowed("us-west-2"));
    CHECK(simauth_set_regions("us-east-1,,x") == EBSD_EINVAL);
}

TEST_MAIN(T(fleets_per_pair), T(accounts_of_keys))
