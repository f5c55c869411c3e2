/* registry.h - the simulator's fleets, one per (account, region): the home pair serves the
 * fleet of the command line (generated from --seed, or --fleet's file), and every other pair
 * gets its own fleet, generated on first use from the seed mixed with the account and the
 * region, so the same flags always give the same fleets. Entries live until registry_free;
 * the table is thread-safe. */
#ifndef EC2SIM_REGISTRY_H
#define EC2SIM_REGISTRY_H
#include <stddef.h>

#include "fleet.h"
#include "status.h"

#define REGISTRY_MAX 1024 /* (account, region) pairs served */

struct registry_entry {
    char account[16];
    char region[24];
    struct fleet *fleet;         /* owned by the registry */
    char *truth;                 /* fleet_truth as JSON text, computed once */
    size_t truth_len;
    unsigned char token_key[32]; /* signs this fleet's pagination tokens */
};

/* Sets the generator's parameters (base->seed is the home fleet's seed) and the home pair:
 * home_account with file's region when file is given (the registry takes file), else
 * base->region. Call once, before serving. */
void registry_init(const struct fleet_params *base, struct fleet *file,
                   const char *home_account);

const char *registry_home_account(void);
const char *registry_home_region(void);

/* The entry of (account, region), built on first use; "" or NULL for either means the home
 * one. NULL when the pair cannot be built (a region too long for the model, the table
 * full). The entry stays valid until registry_free. */
const struct registry_entry *registry_get(const char *account, const char *region);

/* {"home_account","home_region","fleets":[{"account","region","instance_count",
 *  "total_gib"}]} of the fleets built so far, in the order they were built. Caller deletes. */
cJSON *registry_to_json(void);

/* Frees every entry. */
void registry_free(void);

#endif
