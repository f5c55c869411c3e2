/* accounts.h - GET /accounts (issue 16): the configured accounts and their regions, each with
 * its account id, credential source, credential expiry and the last fetch outcome, from the
 * credentials service (credsvc.h). Never a secret. */
#ifndef EBSD_ACCOUNTS_H
#define EBSD_ACCOUNTS_H
#include "server.h"

/* Answers r with {"accounts": [...]} (200). */
void accounts_handle(struct request *r);

#endif
