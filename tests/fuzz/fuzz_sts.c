/* fuzz_sts.c - STS answers (AssumeRole*Response, ErrorResponse; sts_parse_response in
 * src/aws/sts.c), the XML half of the web identity and role_arn credential sources. */
#include <string.h>

#include "fuzz.h"
#include "sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct creds c;
    char err[256];
    memset(err, 0x41, sizeof err);
    ebsd_status st = sts_parse_response((const char *)data, size, &c, err, sizeof err);
    if (st == EBSD_OK)
        FUZZ_ASSERT(memchr(c.session_token, '\0', sizeof c.session_token) != NULL);
    else
        FUZZ_ASSERT(memchr(err, '\0', sizeof err) != NULL);
    return 0;
}
