/* fuzz_ec2_xml.c - DescribeInstances and DescribeVolumes answers (src/aws/ec2xml.c): every input
 * goes through both parsers; an answer that parses must be internally consistent. */
#include <string.h>

#include "ec2.h"
#include "ec2xml.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *xml = (const char *)data;
    struct ec2_error err;
    struct ec2_instance_page ip;
    memset(&ip, 0, sizeof ip);
    if (ec2_parse_instances(xml, size, true, &ip, &err) == EBSD_OK) {
        FUZZ_ASSERT(ip.n == 0 || ip.items != NULL);
        for (size_t i = 0; i < ip.n; i++)
            FUZZ_ASSERT(memchr(ip.items[i].id, '\0', sizeof ip.items[i].id) != NULL);
        ec2_instance_page_free(&ip);
    }
    struct ec2_volume_page vp;
    memset(&vp, 0, sizeof vp);
    if (ec2_parse_volumes(xml, size, true, &vp, &err) == EBSD_OK) {
        FUZZ_ASSERT(vp.n == 0 || vp.items != NULL);
        for (size_t i = 0; i < vp.n; i++) {
            FUZZ_ASSERT(vp.items[i].nattach == 0 || vp.items[i].attach != NULL);
            FUZZ_ASSERT(memchr(vp.items[i].id, '\0', sizeof vp.items[i].id) != NULL);
        }
        ec2_volume_page_free(&vp);
    }
    return 0;
}
