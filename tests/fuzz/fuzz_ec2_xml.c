/* fuzz_ec2_xml.c - DescribeInstances and DescribeVolumes answers (src/aws/ec2xml.c): every input
 * goes through both parsers; an answer that parses must be internally consistent; fed to the
 * streaming parser in three pieces (cut where the input's first bytes say), it must give what
 * it gives whole. */
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
    ebsd_status whole = ec2_parse_volumes(xml, size, true, &vp, &err);
    if (whole == EBSD_OK) {
        FUZZ_ASSERT(vp.n == 0 || vp.items != NULL);
        for (size_t i = 0; i < vp.n; i++) {
            FUZZ_ASSERT(vp.items[i].nattach == 0 || vp.items[i].attach != NULL);
            FUZZ_ASSERT(memchr(vp.items[i].id, '\0', sizeof vp.items[i].id) != NULL);
        }
    }
    size_t cut1 = size ? data[0] % (size + 1) : 0;
    size_t cut2 = size > 1 ? cut1 + data[1] % (size - cut1 + 1) : cut1;
    struct ec2xml_stream *xs = ec2xml_stream_new(true, true);
    (void)ec2xml_stream_feed(xs, xml, cut1);
    (void)ec2xml_stream_feed(xs, xml + cut1, cut2 - cut1);
    (void)ec2xml_stream_feed(xs, xml + cut2, size - cut2);
    struct ec2_volume_page sp;
    memset(&sp, 0, sizeof sp);
    FUZZ_ASSERT(ec2xml_stream_end(xs, &sp, &err) == whole);
    FUZZ_ASSERT(sp.n == vp.n);
    ec2xml_stream_free(xs);
    if (whole == EBSD_OK) {
        ec2_volume_page_free(&sp);
        ec2_volume_page_free(&vp);
    }
    return 0;
}
