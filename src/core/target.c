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

bool target_next(const struct config *cfg, struct target_cursor *c, struct target *out)
{
    for (; c->account < cfg->naccounts; c->account++, c->region = 0)
        while (c->region < cfg->nregions) {
            const struct config_account *a = &cfg->accounts[c->account];
            const char *r = cfg->regions[c->region++];
            if (config_account_region_allowed(cfg, a, r)) {
                *out = target_make(a->name, r);
                return true;
            }
        }
    return false;
}

bool target_nth(const struct config *cfg, size_t i, struct target *out)
{
    struct target_cursor c = {0};
    while (target_next(cfg, &c, out))
        if (i-- == 0)
            return true;
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
