/* fuzz_redis_value.c - a cache value as read back from Redis (redis_value_decode in
 * src/store/redisvalue.c), untrusted input. Oracle: whatever decodes re-encodes to the same
 * bytes, and every accepted field is within the documented ranges. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "redisvalue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct redis_value v;
    /* the first byte picks the caller's cap, so the ETOOBIG paths are reached too */
    size_t cap = size ? (size_t)data[0] * 4 : 0;
    uint64_t before = redis_value_rejected();
    ebsd_status st = redis_value_decode(data, size, cap, &v);
    if (st != EBSD_OK) {
        FUZZ_ASSERT(st == EBSD_EPARSE || st == EBSD_ETOOBIG);
        FUZZ_ASSERT(redis_value_rejected() == before + 1);
        return 0;
    }
    FUZZ_ASSERT(v.status >= 100 && v.status <= 599);
    FUZZ_ASSERT(v.etag_len <= REDIS_VALUE_MAX_ETAG && v.body_len <= cap);
    FUZZ_ASSERT(REDIS_VALUE_HEADER + v.etag_len + v.body_len == size);
    char *enc = NULL;
    size_t len = 0;
    FUZZ_ASSERT(redis_value_encode(&v, &enc, &len) == EBSD_OK);
    FUZZ_ASSERT(len == size && memcmp(enc, data, size) == 0);
    free(enc);
    return 0;
}
