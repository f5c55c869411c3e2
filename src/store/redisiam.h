/* redisiam.h - ElastiCache IAM authentication, the way AWS documents it: the AUTH password
 * is a SigV4-presigned URL for service "elasticache" (GET http://CACHE/?Action=connect&
 * User=USER[&ResourceType=ServerlessCache], X-Amz-Expires 900) without its "http://",
 * made from ebsd's own AWS credentials. A token is good for 15 minutes (for new
 * connections); ElastiCache closes a connection 12 hours after its last AUTH. So the
 * renewer makes a new token every 10 minutes and AUTHs every live connection with it,
 * which keeps both limits far away. Tokens are secrets: never logged, never stored. */
#ifndef EBSD_REDISIAM_H
#define EBSD_REDISIAM_H
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "redis.h"
#include "sigv4.h"
#include "status.h"

struct loop;

#define REDIS_IAM_EXPIRES_S 900        /* the token's X-Amz-Expires */
#define REDIS_IAM_RENEW_MS (600 * 1000) /* 5 minutes before the token expires */

struct redis_iam_params {
    const char *user;       /* the ElastiCache user id (redis.iam_auth.user) */
    const char *cache;      /* replication group id or serverless cache name */
    bool serverless;        /* adds ResourceType=ServerlessCache */
    const char *region;     /* the cache's region */
};

/* Makes the token for p with creds at time now. Pure. On success *out is
 * "CACHE/?Action=connect&User=USER...&X-Amz-Signature=..." (caller frees, and should wipe).
 * EBSD_EINVAL for a missing field. */
EBSD_MUST_CHECK ebsd_status redis_iam_token(const struct redis_iam_params *p,
                                            const struct sigv4_credentials *creds, time_t now,
                                            char **out);

/* The current base credentials, into *out (strings borrowed, valid during the call).
 * Anything but EBSD_OK: no token this time (the renewer retries in a minute). */
typedef ebsd_status (*redis_iam_creds_fn)(struct sigv4_credentials *out, void *arg);

struct redis_iam_renewer;

/* Makes a first token now and gives it to each of conns (redis_set_auth, no re-AUTH:
 * call this right after redis_new, before the loop runs), then every renew_ms (0 =
 * REDIS_IAM_RENEW_MS) a new token, given to each connection with a re-AUTH of the live
 * ones. The connections must outlive the renewer. EBSD_EAUTH when the first token cannot
 * be made (no credentials); caller frees with redis_iam_stop. */
EBSD_MUST_CHECK ebsd_status redis_iam_start(struct loop *l, const struct redis_iam_params *p,
                                            redis_iam_creds_fn fn, void *arg,
                                            struct redis *const *conns, size_t nconns,
                                            uint32_t renew_ms, struct redis_iam_renewer **out);
/* Stops renewing (NULL is a no-op). */
void redis_iam_stop(struct redis_iam_renewer *rn);

#endif
