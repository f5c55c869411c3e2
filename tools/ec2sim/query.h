/* query.h - application/x-www-form-urlencoded parsing (POST bodies and GET query strings,
 * as the AWS SDKs send EC2 Query API calls). */
#ifndef EC2SIM_QUERY_H
#define EC2SIM_QUERY_H
#include <stddef.h>

#include "status.h"

#define QUERY_MAX_PARAMS 20000

struct query_param {
    char *key;   /* decoded, NUL-terminated */
    char *value; /* decoded; "" when the pair had no '=' */
};

struct query {
    struct query_param *v;
    size_t n;
};

/* Parses s[0..len) into out ('+' is a space, %XX decoded, malformed escapes kept as is).
 * EBSD_ETOOBIG past QUERY_MAX_PARAMS pairs. Caller calls query_free on success. */
EBSD_MUST_CHECK ebsd_status query_parse(const char *s, size_t len, struct query *out);
/* First value of key, or NULL. Valid until query_free. */
const char *query_get(const struct query *q, const char *key);
void query_free(struct query *q);

#endif
