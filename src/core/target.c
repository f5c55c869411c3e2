/* target.c - (account, region) pairs (see target.h). */
#include "target.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "mem.h"

struct target target_make(const char *account, const char *region)
{
    struct target t;
    str_copy(t.account, sizeof t.account, account ? account : TARGET_DEFAULT_ACCOUNT);
    str_copy(t.region, sizeof t.region, region ? region : "");
    return t;
}

bool target_nth(const struct config *cfg, size_t i, struct target *out)
{
    for (size_t a = 0; a < cfg->naccounts; a++)
        for (size_t r = 0; r < cfg->nregions; r++)
            if (config_account_region_allowed(cfg, &cfg->accounts[a], cfg->regions[r]) &&
                i-- == 0) {
                *out = target_make(cfg->accounts[a].name, cfg->regions[r]);
                return true;
            }
    return false;
}

bool target_equal(const struct target *a, const struct target *b)
{
    return strcmp(a->account, b->account) == 0 && strcmp(a->region, b->region) == 0;
}

const char *target_key(const struct target *t, char *out, size_t len)
{
    if (strcmp(t->account, TARGET_DEFAULT_ACCOUNT) == 0)
        snprintf(out, len, "%s", t->region);
    else
        snprintf(out, len, "%s/%s", t->account, t->region);
    return out;
}
