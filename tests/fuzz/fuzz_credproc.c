/* fuzz_credproc.c - what a credential_process helper prints (credproc_parse) and the
 * command line a profile gives (credproc_split, on the same bytes): both come from outside
 * ebsd's control. */
#include <string.h>

#include "credproc.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct creds c;
    char err[200];
    memset(err, 0x41, sizeof err);
    ebsd_status st = credproc_parse((const char *)data, size, "profile:f", &c, err, sizeof err);
    if (st == EBSD_OK)
        FUZZ_ASSERT(c.access_key_id[0] && c.secret_access_key[0] &&
                    memchr(c.session_token, '\0', sizeof c.session_token) != NULL);
    else
        FUZZ_ASSERT(memchr(err, '\0', sizeof err) != NULL);

    char *cmd = fuzz_strdup(data, size);
    char **argv = NULL;
    st = credproc_split(cmd, &argv, err, sizeof err);
    if (st == EBSD_OK) {
        size_t n = 0, total = 0;
        for (; argv[n]; n++)
            total += strlen(argv[n]);
        FUZZ_ASSERT(n >= 1 && n <= CREDPROC_MAX_WORDS && total <= strlen(cmd));
        credproc_argv_free(argv);
    } else {
        FUZZ_ASSERT(argv == NULL);
    }
    free(cmd);
    return 0;
}
