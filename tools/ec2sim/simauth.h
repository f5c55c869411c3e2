/* simauth.h - SigV4 verification of EC2 requests against the simulator's credential table
 * (the test suite's AKIDEXAMPLE pair by default, plus any configured). The cryptography is
 * sigv4_verify()'s (include/sigv4.h); this module only supplies keys and maps verdicts to
 * EC2's HTTP statuses. */
#ifndef EC2SIM_SIMAUTH_H
#define EC2SIM_SIMAUTH_H
#include <stdbool.h>
#include <stddef.h>

#include "sigv4.h"
#include "status.h"

#define SIMAUTH_DEFAULT_ACCESS_KEY "AKIDEXAMPLE"
#define SIMAUTH_DEFAULT_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

/* Adds "ACCESS_KEY:SECRET" to the table. EBSD_EINVAL if malformed or the table is full. */
EBSD_MUST_CHECK ebsd_status simauth_add(const char *spec);

/* Verifies req (as received). EBSD_OK when valid; EBSD_EAUTH with *status (HTTP) and
 * *verdict filled otherwise. max_skew in seconds. */
EBSD_MUST_CHECK ebsd_status simauth_check(const struct sigv4_request *req, int max_skew,
                                          int *status, struct sigv4_verdict *verdict);

#endif
