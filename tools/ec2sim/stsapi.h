/* stsapi.h - the STS Query API calls the simulator answers (API version 2011-06-15):
 * AssumeRole (signed; ExternalId checks; AccessDenied for refused roles; temporary
 * credentials bound to the role's account, expiring after DurationSeconds or a configured
 * cap), AssumeRoleWithWebIdentity (unsigned) and GetCallerIdentity, in STS's XML and error
 * envelope. Role settings change at runtime (POST /_sim/sts); thread-safe. */
#ifndef EC2SIM_STSAPI_H
#define EC2SIM_STSAPI_H
#include <stdbool.h>

#include <cjson/cJSON.h>

#include "ec2api.h"
#include "query.h"
#include "simauth.h"
#include "status.h"

#define STS_XMLNS "https://sts.amazonaws.com/doc/2011-06-15/"
#define STS_VERSION "2011-06-15"

/* True when a request is for STS: signed for service "sts", or unsigned with STS's Version
 * or one of its actions. */
bool stsapi_is_sts(const char *scope_service, const struct query *q);

/* True for the calls STS takes unsigned (AssumeRoleWithWebIdentity). */
bool stsapi_unsigned_action(const char *action);

/* Applies settings from a JSON object: {"deny": [ARN or account id...], "allow": [...]
 * (removed from deny), "external_ids": {ARN: id}, "max_duration_s": N (0 = no cap),
 * "expire_sessions": true, "clear": true (first)}. All or nothing: EBSD_EINVAL with errbuf. */
EBSD_MUST_CHECK ebsd_status stsapi_apply_json(const cJSON *patch, char *errbuf, size_t errlen);

/* The settings and session counts as JSON (no secret). Caller deletes. */
cJSON *stsapi_to_json(void);

/* Answers one STS call from the caller *who (already verified, or unsigned for
 * AssumeRoleWithWebIdentity). Always fills *out. */
void stsapi_handle(const struct query *q, const struct simauth_identity *who,
                   const char *request_id, struct ec2_response *out);

/* Fills *out with STS's error envelope (<ErrorResponse><Error><Type/><Code/><Message/>). */
void stsapi_error(struct ec2_response *out, int status, const char *code, const char *message,
                  const char *request_id);

/* Fills *out with the STS error for an authentication failure (InvalidClientTokenId,
 * SignatureDoesNotMatch, ExpiredToken, ...); message is sigv4_verify's. */
void stsapi_auth_error(struct ec2_response *out, enum simauth_fail why, const char *message,
                       const char *request_id);

#endif
