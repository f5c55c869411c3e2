/* ec2xml.h - limits of the EC2 response parser (the parse functions themselves are declared
 * in ec2.h: ec2_parse_instances, ec2_parse_volumes, ec2_parse_error).
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

#define EC2XML_MAX_BYTES (64u << 20)  /* whole document */
#define EC2XML_MAX_DEPTH 64           /* element nesting */
#define EC2XML_MAX_TEXT 8192          /* text of one captured element (nextToken, Message) */
#define EC2XML_MAX_ITEMS 100000       /* instances or volumes in one document */
#define EC2XML_MAX_ATTACH 64          /* attachments of one volume (multi-attach: 16) */

#endif
