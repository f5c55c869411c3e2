/* simauth.h - who signed a request to the simulator: SigV4 verification against its
 * credential table (the test suite's AKIDEXAMPLE pair by default, plus any configured, plus
 * the temporary credentials its STS endpoint issued), the caller's account (a key -> account
 * map, or an account id derived from the access key) and the region and service of the
 * credential scope. The cryptography is sigv4_verify()'s (src/aws/sigv4.h). Thread-safe. */
#ifndef EC2SIM_SIMAUTH_H
#define EC2SIM_SIMAUTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sigv4.h"
#include "status.h"

#define SIMAUTH_DEFAULT_ACCESS_KEY "AKIDEXAMPLE"
#define SIMAUTH_DEFAULT_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
/* The account of AKIDEXAMPLE: the simulator's home account (today's single fleet). */
#define SIMAUTH_DEFAULT_ACCOUNT "123456789012"
#define SIMAUTH_ACCOUNT_LEN 13 /* 12 digits + NUL */
#define SIMAUTH_REGION_LEN 32

/* Why a request was refused; each API maps it to its own error code and status. */
enum simauth_fail {
    SIMAUTH_OK = 0,
    SIMAUTH_MISSING,       /* unsigned */
    SIMAUTH_INCOMPLETE,    /* malformed Authorization */
    SIMAUTH_UNKNOWN_KEY,   /* access key not in the table */
    SIMAUTH_SKEW,          /* X-Amz-Date too far from the clock */
    SIMAUTH_BAD_SIGNATURE, /* wrong secret or altered request */
    SIMAUTH_BAD_TOKEN,     /* temporary key without its session token, or another one */
    SIMAUTH_EXPIRED_TOKEN, /* temporary credentials past their expiration */
    SIMAUTH_REGION,        /* region outside --regions */
};

/* The caller, as far as the request tells. */
struct simauth_identity {
    char access_key[128];
    char account[SIMAUTH_ACCOUNT_LEN];
    char region[SIMAUTH_REGION_LEN]; /* from the credential scope; "" when unsigned */
    char service[16];                /* from the credential scope ("ec2", "sts"), or "" */
    char arn[384];                   /* caller ARN: a user, or an assumed role */
    char user_id[160];               /* GetCallerIdentity's UserId */
    bool temporary;                  /* credentials issued by the STS endpoint */
};

/* Adds "ACCESS_KEY:SECRET[:ACCOUNT]" to the table (ACCOUNT: 12 digits; absent = derived,
 * see simauth_account_of). EBSD_EINVAL if malformed or the table is full. Before serving. */
EBSD_MUST_CHECK ebsd_status simauth_add(const char *spec);

/* Restricts the regions requests may be signed for to a comma-separated list (default: any
 * well-formed region). EBSD_EINVAL if malformed. Before serving. */
EBSD_MUST_CHECK ebsd_status simauth_set_regions(const char *list);

/* True when region is well formed and allowed. */
bool simauth_region_allowed(const char *region);

/* True for 12 decimal digits. */
bool simauth_account_valid(const char *account);

/* The account of an access key: the one configured with it; else, when the key ends in 12
 * digits, those digits; else the home account. out gets 13 bytes. */
void simauth_account_of(const char *access_key, char out[SIMAUTH_ACCOUNT_LEN]);

/* Verifies req (all headers as received) with max_skew seconds of clock skew allowed, and
 * fills *who. SIMAUTH_OK when valid; otherwise *verdict carries sigv4_verify's message. With
 * verify false (--no-auth) only *who is filled, from whatever the request carries. */
enum simauth_fail simauth_check(const struct sigv4_request *req, bool verify, int max_skew,
                                struct sigv4_verdict *verdict, struct simauth_identity *who);

/* Temporary credentials issued by the STS endpoint. */
struct simauth_session {
    char access_key[24];   /* "ASIA" + 16 */
    char secret[48];
    char token[400];
    int64_t expires_ms;    /* wall ms */
};

/* Issues temporary credentials for account, valid until expires_ms, whose caller ARN and
 * user id are arn and user_id. EBSD_ETOOBIG when the session table is full of unexpired
 * sessions. */
EBSD_MUST_CHECK ebsd_status simauth_issue(const char *account, const char *arn,
                                          const char *user_id, int64_t expires_ms,
                                          struct simauth_session *out);

/* Makes every issued session expire now (refresh tests). Returns how many were live. */
size_t simauth_expire_sessions(void);

/* The simulator's clock: the host's plus an offset (seconds, settable at runtime) that tests
 * use to play a server whose clock differs from the client's. It signs the Date header and
 * judges X-Amz-Date; session expirations stay on the host's clock. */
void simauth_set_clock_offset(long seconds);
long simauth_clock_offset(void);
time_t simauth_now(void);

/* Sessions issued so far and those not yet expired. */
void simauth_session_counts(size_t *issued, size_t *live);

#endif
