/* redisvalue.h - one cached answer as one Redis string (PREFIX{ACCOUNT:REGION}:cache:NAME):
 * a fixed binary header with a magic and a version, then the ETag and the body. Whatever is
 * read back from Redis is untrusted: decoding checks every field and the exact length, and
 * a value that fails is a miss (counted), never a crash. Pure: no I/O, no clock.
 *
 * Layout (integers big-endian), 40 bytes then the variable parts:
 *   0  "EBSD"  magic            4  u8 version (1)      5  u8 flags (0)
 *   6  u16 status (100..599)    8  u64 fetched_at_ms (wall clock, > 0)
 *  16  u32 ttl_s                20  u32 stale_while_revalidate_s
 *  24  u32 stale_if_error_s     28  u16 etag_len (<= REDIS_VALUE_MAX_ETAG)
 *  30  u16 reserved (0)         32  u32 body_len     36  u32 reserved (0)
 *  40  etag (printable ASCII)   40+etag_len  body (any bytes) */
#ifndef EBSD_REDISVALUE_H
#define EBSD_REDISVALUE_H
#include <stddef.h>
#include <stdint.h>
#include "status.h"

#define REDIS_VALUE_VERSION 1
#define REDIS_VALUE_HEADER 40
#define REDIS_VALUE_MAX_ETAG 128
#define REDIS_VALUE_MAX_TTL_S (7u * 86400)        /* any ttl or stale window */
#define REDIS_VALUE_MAX_BODY (64u * 1024 * 1024)  /* absolute ceiling of max_body */

struct redis_value {
    uint16_t status;                 /* HTTP status of the cached answer (200, 404) */
    uint64_t fetched_at_ms;          /* when EC2 was asked (wall clock ms) */
    uint32_t ttl_s;
    uint32_t stale_while_revalidate_s;
    uint32_t stale_if_error_s;
    const char *etag;                /* decode: points into the input, not NUL-terminated */
    size_t etag_len;
    const char *body;                /* decode: points into the input */
    size_t body_len;
};

/* Encodes v into a new buffer (caller frees) of *len bytes. EBSD_EINVAL when a field is
 * out of range (same rules as decoding), so what is encoded always decodes. */
EBSD_MUST_CHECK ebsd_status redis_value_encode(const struct redis_value *v, char **out,
                                               size_t *len);

/* Decodes data (len bytes): EBSD_OK with *v pointing into data (valid while data is), or
 * EBSD_EPARSE (truncated, wrong magic/version, a field out of range, trailing bytes) or
 * EBSD_ETOOBIG (body longer than max_body, or len larger than any value could be). A
 * failure adds one to redis_value_rejected(); *v is set only on success. */
EBSD_MUST_CHECK ebsd_status redis_value_decode(const void *data, size_t len, size_t max_body,
                                               struct redis_value *v);

/* Values redis_value_decode refused since the process started (ebsd_redis_rejected_total). */
uint64_t redis_value_rejected(void);

#endif
