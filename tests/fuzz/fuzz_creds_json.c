/* fuzz_creds_json.c - the credential JSON of the container endpoints and IMDS
 * (creds_parse_json, src/aws/creds.c) and the RFC 3339 times in it (creds_parse_time). */
#include <string.h>

#include "creds.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct creds c; /* 4 KiB of token: keep it off the stack */
    struct creds_error err;
    for (int required = 0; required < 2; required++) {
        if (creds_parse_json(required ? "imds" : "container", (const char *)data, size,
                             required, &c, &err) == EBSD_OK) {
            FUZZ_ASSERT(c.access_key_id[0] && c.secret_access_key[0]);
            FUZZ_ASSERT(memchr(c.session_token, '\0', sizeof c.session_token) != NULL);
            creds_wipe(&c);
        } else {
            FUZZ_ASSERT(memchr(err.message, '\0', sizeof err.message) != NULL);
        }
    }
    char *s = fuzz_strdup(data, size);
    time_t t;
    (void)creds_parse_time(s, &t);
    free(s);
    return 0;
}
