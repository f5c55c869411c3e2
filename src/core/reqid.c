/* reqid.c - request ids (see reqid.h). */
#include "reqid.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint64_t g_base;
static uint32_t g_counter;

/* The low `digits` hex digits of v, most significant first. */
static void put_hex(char *out, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = hex[v & 0xf];
        v >>= 4;
    }
}

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
    /* "%016llx%08x" of the base and the counter, written by hand: one id per request */
    char id[25];
    put_hex(id, g_base, 16);
    put_hex(id + 16, ++g_counter, 8);
    id[24] = '\0';
    if (outlen == 0)
        return;
    size_t n = outlen - 1 < 24 ? outlen - 1 : 24;
    memcpy(out, id, n);
    out[n] = '\0';
}
