/* realip_probe - prints the client address realip_client gives for each case on stdin, for
 * test_realip_nginx.py to compare with what nginx's realip module says for the same case.
 * Usage: realip_probe CIDR...   (the trusted networks)
 * Each input line: PEER, then each X-Forwarded-For header value, separated by tabs.
 * Each output line: the client address, or "error" for a bad peer. */
#include <stdio.h>
#include <string.h>

#include "realip.h"

#define MAX_TRUSTED 16
#define MAX_HEADERS 8

int main(int argc, char **argv)
{
    struct realip_cidr trusted[MAX_TRUSTED];
    size_t ntrusted = 0;
    for (int i = 1; i < argc && ntrusted < MAX_TRUSTED; i++) {
        const char *why;
        if (realip_cidr_parse(argv[i], &trusted[ntrusted], &why) != EBSD_OK) {
            fprintf(stderr, "realip_probe: %s %s\n", argv[i], why);
            return 2;
        }
        ntrusted++;
    }
    char line[8192];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        const char *fields[1 + MAX_HEADERS];
        size_t n = 0;
        char *p = line;
        fields[n++] = p;
        while (n < 1 + MAX_HEADERS && (p = strchr(p, '\t'))) {
            *p++ = '\0';
            fields[n++] = p;
        }
        struct realip_addr peer;
        char out[REALIP_ADDRSTRLEN];
        if (realip_addr_parse(fields[0], strlen(fields[0]), &peer) != EBSD_OK) {
            puts("error");
            continue;
        }
        realip_client(trusted, ntrusted, &peer, fields + 1, n - 1, NULL, out);
        puts(out);
    }
    return 0;
}
