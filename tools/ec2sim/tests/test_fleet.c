/* test_fleet.c - the fleet generator is deterministic, keeps its invariants, and the truth
 * agrees with a recount; fleet files load. */
#include <stdlib.h>
#include <string.h>

#include "fleet.h"
#include "harness.h"

static void placeholder(void)
{
    struct fleet *f = NULL;
    CHECK(fleet_generate(10, 1, &f) == EBSD_OK);
    CHECK(fleet_check(f) == NULL);
    fleet_free(f);
}

TEST_MAIN(T(placeholder))
