/* fuzz_route.c - routing and query parsing (src/http/route.c). The input is a request target
 * "PATH?QUERY"; the path is routed, the query decoded and, for the data routes, checked
 * against the default config. Invariants: what is accepted is printable ASCII, known keys
 * only, and an instance id never holds a '/'. */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "route.h"

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static bool inside(const struct route_params *p, const char *v)
{
    return !v || (v >= p->storage && v < p->storage + sizeof p->storage);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config cfg;
    static bool have_cfg;
    static struct route_params p;
    if (!have_cfg) {
        config_defaults(&cfg);
        have_cfg = true;
    }
    char *s = fuzz_strdup(data, size);
    char *query = strchr(s, '?');
    if (query)
        *query++ = '\0';
    char id[ROUTE_ID_MAX];
    size_t idlen = (size & 1) ? 10 : sizeof id; /* sometimes a buffer too small */
    enum route r = route_match(s, id, idlen);
    if (r == ROUTE_INSTANCE) {
        FUZZ_ASSERT(strlen(id) < idlen && strchr(id, '/') == NULL);
        FUZZ_ASSERT(strncmp(s, "/instances/", 11) == 0);
    }
    char err[256], code[48];
    if (route_parse_query(query, &p, err, sizeof err) == EBSD_OK) {
        const char *v[] = {p.region, p.detail, p.mode, p.timeout_ms, p.limit,
                           p.ngroup > 0 ? p.group_by[0] : NULL,
                           p.ngroup > 1 ? p.group_by[1] : NULL};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
            FUZZ_ASSERT(inside(&p, v[i]) && (!v[i] || printable(v[i])));
        FUZZ_ASSERT(p.ngroup <= ROUTE_MAX_GROUPS);
        FUZZ_ASSERT(err[0] == '\0');
        for (enum route dr = ROUTE_TOTAL; dr <= ROUTE_UNATTACHED; dr++) {
            if (route_check_params(dr, &p, &cfg, code, sizeof code, err, sizeof err) ==
                EBSD_OK) {
                FUZZ_ASSERT(!p.timeout_ms || (p.timeout_ms[0] != '\0'));
                FUZZ_ASSERT(dr == ROUTE_TOTAL || (!p.detail && !p.mode && !p.ngroup));
                FUZZ_ASSERT(dr == ROUTE_UNATTACHED || !p.limit);
                /* an accepted grouping is what the records can hold (wire.h) */
                for (unsigned g = 0; g < p.ngroup; g++)
                    FUZZ_ASSERT(route_group_key_valid(p.group_by[g]) &&
                                strlen(p.group_by[g]) < 80);
            } else {
                FUZZ_ASSERT(code[0] != '\0' && err[0] != '\0');
            }
        }
    } else {
        FUZZ_ASSERT(err[0] != '\0');
    }
    free(s);
    return 0;
}
