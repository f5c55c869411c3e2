/* fuzz_awsconfig.c - the shared config and credentials INI files (src/aws/awsconfig.c with
 * libinih, including its long-line side table). The input is loaded once as the config
 * file and once as the credentials file, through a memfd (no disk I/O), and looked up. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "awsconfig.h"
#include "fuzz.h"

static void lookups(const struct awsconfig *c)
{
    static const char *const profiles[] = {"default", "a", "dev", ""};
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++) {
        (void)awsconfig_has_profile(c, profiles[i]);
        const char *v = awsconfig_get(c, profiles[i], "aws_access_key_id");
        if (v)
            (void)strlen(v);
        (void)awsconfig_get(c, profiles[i], "aws_session_token");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-awsconfig", 0);
    if (fd < 0)
        abort();
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    for (int credentials = 0; credentials < 2; credentials++) {
        struct awsconfig *c = NULL;
        if (awsconfig_load(credentials ? NULL : path, credentials ? path : NULL, &c, err,
                           sizeof err) == EBSD_OK) {
            lookups(c);
            awsconfig_free(c);
        } else {
            FUZZ_ASSERT(memchr(err, '\0', sizeof err) != NULL);
        }
    }
    close(fd);
    return 0;
}
