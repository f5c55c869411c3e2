/* ec2xml.h - the EC2 response parser: ec2_parse_instances, ec2_parse_volumes,
 * ec2_parse_error (the page and error types are ec2.h's), and its limits.
 *
 * The parser is expat in streaming (SAX) mode with namespace processing off: an element's
 * name is compared after any "prefix:" is dropped, so documents with or without xmlns (with
 * or without the trailing slash EC2 puts on it), with or without an XML declaration, parse
 * alike. The Content-Type of the answer is never consulted.
 *
 * What each document gives:
 *  - the expected <DescribeXxxResponse> root: EBSD_OK with the items;
 *  - the EC2 error envelope <Response><Errors><Error>: EBSD_EUPSTREAM with *err filled;
 *  - any other root (AttachVolumeResponse, a DescribeVolumes answer handed to the instances
 *    parser, ...): EBSD_EPARSE, "unexpected root element" - never a silent "zero items";
 *  - malformed, truncated, or carrying a DOCTYPE / entity declaration (refused outright,
 *    which stops entity-expansion attacks before any expansion): EBSD_EPARSE;
 *  - over one of the caps below: EBSD_ETOOBIG.
 * On any failure no partial result is returned and all memory is released. */
#ifndef EBSD_EC2XML_H
#define EBSD_EC2XML_H
#include <stdbool.h>
#include <stddef.h>
#include "ec2.h"
#include "status.h"

#define EC2XML_MAX_BYTES (64u << 20)  /* whole document */
#define EC2XML_MAX_DEPTH 64           /* element nesting */
#define EC2XML_MAX_TEXT 8192          /* text of one captured element (nextToken, Message) */
#define EC2XML_MAX_ITEMS 100000       /* instances or volumes in one document */
#define EC2XML_MAX_ATTACH 64          /* attachments of one volume (multi-attach: 16) */

/* Parses a DescribeInstances / DescribeVolumes response body (no network), or an EC2 error
 * envelope (returns EBSD_EUPSTREAM with *err filled). Used by the client and the fuzzers.
 * Any other document (another action's answer) is EBSD_EPARSE; limits above.
 * tags: keep the instances' and volumes' tag sets (breakdowns by tag, unattached volumes);
 * false skips them unread, as a query that needs none does.
 * ec2_parse_error returns EBSD_OK when the document is an error envelope with a Code. */
EBSD_MUST_CHECK ebsd_status ec2_parse_instances(const char *xml, size_t len, bool tags,
                                                struct ec2_instance_page *out,
                                                struct ec2_error *err);
EBSD_MUST_CHECK ebsd_status ec2_parse_volumes(const char *xml, size_t len, bool tags,
                                              struct ec2_volume_page *out,
                                              struct ec2_error *err);
/* The same parse over a document that arrives in pieces (a response body as the network
 * gives it), so that no copy of the whole document is ever kept: new, feed each piece as it
 * comes, end (the outcome and *out exactly as ec2_parse_instances / ec2_parse_volumes give
 * them for the whole document), free. A feed returns the first failure so far (EBSD_OK while
 * the document may still be good); after one, later pieces are not looked at. out is a
 * struct ec2_volume_page (volumes) or struct ec2_instance_page. */
struct ec2xml_stream;
struct ec2xml_stream *ec2xml_stream_new(bool volumes, bool tags);
ebsd_status ec2xml_stream_feed(struct ec2xml_stream *s, const char *piece, size_t n);
EBSD_MUST_CHECK ebsd_status ec2xml_stream_end(struct ec2xml_stream *s, void *out,
                                              struct ec2_error *err);
void ec2xml_stream_free(struct ec2xml_stream *s);

EBSD_MUST_CHECK ebsd_status ec2_parse_error(const char *xml, size_t len, struct ec2_error *err);

#endif
