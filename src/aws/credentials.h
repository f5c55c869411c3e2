/* credentials.h - the value every credential source yields (creds.c's chain, sts.c's
 * AssumeRole answers): fixed-size and self-contained (no heap), so it can cross a pipe from a
 * forked child and be copied freely. Never log its secret fields. */
#ifndef EBSD_CREDENTIALS_H
#define EBSD_CREDENTIALS_H
#include <time.h>

struct creds {
    char access_key_id[128];
    char secret_access_key[128];
    char session_token[4096];  /* "" when none */
    time_t expiration;         /* UTC seconds; 0 = does not expire */
    char source[64];           /* "environment", "web-identity", "profile:NAME",
                                  "container", "imds" - safe to log */
};

#endif
