/* ec2api.h - the EC2 Query API calls the simulator answers (DescribeInstances,
 * DescribeVolumes): parameter validation, filters, opaque pagination tokens, and XML
 * responses and error envelopes shaped like EC2's (API version 2016-11-15). */
#ifndef EC2SIM_EC2API_H
#define EC2SIM_EC2API_H
#include <stddef.h>
#include <stdint.h>

#include "fleet.h"
#include "query.h"

#define EC2_XMLNS "http://ec2.amazonaws.com/doc/2016-11-15/"
/* Largest response body; an unpaginated call on a huge fleet past it is InternalError. */
#define EC2_RESPONSE_MAX (768u << 20)

struct ec2_response {
    int status;      /* HTTP status */
    char *body;      /* owned; free with ec2_response_free */
    size_t len;
    char code[64];   /* error code, "" on success */
};

/* Answers one call. token_key signs pagination tokens (any stable secret). request_id is
 * echoed in the document. Always fills *out (an error envelope when the call fails). */
void ec2api_handle(const struct fleet *f, const struct query *q, const char *request_id,
                   const unsigned char token_key[32], struct ec2_response *out);

/* With on, filter values are compared as they are, '*' and '?' included: an EC2 look-alike
 * without filter wildcards (--no-wildcards). */
void ec2api_set_literal_filters(bool on);

/* Fills *out with EC2's error envelope. */
void ec2api_error(struct ec2_response *out, int status, const char *code, const char *message,
                  const char *request_id);

void ec2_response_free(struct ec2_response *r);

#endif
