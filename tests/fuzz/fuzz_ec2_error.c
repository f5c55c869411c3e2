/* fuzz_ec2_error.c - EC2 error envelopes (<Response><Errors><Error>, src/aws/ec2xml.c): the
 * fields of struct ec2_error must always come back NUL-terminated. */
#include <string.h>

#include "ec2.h"
#include "ec2xml.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ec2_error err;
    memset(&err, 0x41, sizeof err);
    if (ec2_parse_error((const char *)data, size, &err) == EBSD_OK) {
        FUZZ_ASSERT(memchr(err.code, '\0', sizeof err.code) != NULL);
        FUZZ_ASSERT(err.code[0] != '\0');
        FUZZ_ASSERT(memchr(err.message, '\0', sizeof err.message) != NULL);
        FUZZ_ASSERT(memchr(err.request_id, '\0', sizeof err.request_id) != NULL);
    }
    return 0;
}
