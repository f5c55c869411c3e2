/* target.c - (account, region) pairs (see target.h). */
#include "target.h"

#include <stdio.h>
#include <string.h>

#include "mem.h"

struct target target_make(const char *account, const char *region)
{
    struct target t;
    str_copy(t.account, sizeof t.account, account ? account : TARGET_DEFAULT_ACCOUNT);
    str_copy(t.region, sizeof t.region, region ? region : "");
    return t;
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
