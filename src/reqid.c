/* reqid.c - request ids (see reqid.h). */
#include "reqid.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint64_t g_base;
static uint32_t g_counter;

void reqid_init(void)
{
    if (getrandom(&g_base, sizeof g_base, 0) != (ssize_t)sizeof g_base)
        g_base = (uint64_t)time(NULL) * 2654435761u;
}

bool reqid_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= 64)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '=' || c == '-'))
            return false;
    }
    return n > 0;
}

void reqid_pick(const char *xrid, const char *trace, char *out, size_t outlen)
{
    if (xrid && reqid_valid(xrid)) {
        snprintf(out, outlen, "%s", xrid);
        return;
    }
    if (trace) {
        /* "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=...;Sampled=1" */
        const char *root = strstr(trace, "Root=");
        if (root) {
            root += 5;
            size_t n = strcspn(root, ";");
            char tmp[80];
            if (n > 0 && n < sizeof tmp) {
                memcpy(tmp, root, n);
                tmp[n] = '\0';
                if (reqid_valid(tmp)) {
                    snprintf(out, outlen, "%s", tmp);
                    return;
                }
            }
        }
    }
    snprintf(out, outlen, "%016llx%08x", (unsigned long long)g_base, ++g_counter);
}
