/* awsid.c - syntax checks for role ARNs, external ids, session names and account names. */
#include "awsid.h"

#include <string.h>

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* STS's \w is ASCII letters, digits and '_' (the API takes these fields as ASCII). */
static bool in_set(char c, const char *extra)
{
    return is_alnum(c) || c == '_' || (c && strchr(extra, c) != NULL);
}

static bool all_in_set(const char *s, size_t min, size_t max, const char *extra)
{
    size_t n = s ? strlen(s) : 0;
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!in_set(s[i], extra))
            return false;
    return true;
}

bool awsid_session_name_valid(const char *name)
{
    return all_in_set(name, AWSID_SESSION_NAME_MIN, AWSID_SESSION_NAME_MAX, "+=,.@-");
}

bool awsid_external_id_valid(const char *id)
{
    return all_in_set(id, AWSID_EXTERNAL_ID_MIN, AWSID_EXTERNAL_ID_MAX, "+=,.@:/-");
}

bool awsid_duration_valid(long seconds)
{
    return seconds >= AWSID_DURATION_MIN_S && seconds <= AWSID_DURATION_MAX_S;
}

bool awsid_account_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > AWSID_ACCOUNT_NAME_MAX || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '-'))
            return false;
    return true;
}

void awsid_session_name_sanitize(const char *raw, char *out, size_t outlen)
{
    if (!outlen)
        return;
    size_t cap = outlen - 1 < AWSID_SESSION_NAME_MAX ? outlen - 1 : AWSID_SESSION_NAME_MAX;
    size_t n = 0;
    for (const char *p = raw ? raw : ""; *p && n < cap; p++)
        out[n++] = in_set(*p, "+=,.@-") ? *p : '-';
    while (n < AWSID_SESSION_NAME_MIN && n < cap)
        out[n++] = '-';
    out[n] = '\0';
}

static bool fail(const char **why, const char *msg)
{
    if (why)
        *why = msg;
    return false;
}

bool awsid_role_arn_valid(const char *arn, char account_out[13], const char **why)
{
    static const char *const partitions[] = {"aws",     "aws-cn",    "aws-us-gov", "aws-iso",
                                             "aws-iso-b", "aws-iso-e", "aws-iso-f"};
    if (!arn || !*arn)
        return fail(why, "is empty");
    if (strlen(arn) > AWSID_ROLE_ARN_MAX)
        return fail(why, "is longer than 2048 characters");
    if (strncmp(arn, "arn:", 4) != 0)
        return fail(why, "does not start with arn:");
    const char *p = arn + 4;
    size_t plen = strcspn(p, ":");
    bool known = false;
    for (size_t i = 0; i < sizeof partitions / sizeof partitions[0]; i++)
        if (strlen(partitions[i]) == plen && strncmp(p, partitions[i], plen) == 0)
            known = true;
    if (!known)
        return fail(why, "names an unknown partition (aws, aws-cn, aws-us-gov, aws-iso...)");
    p += plen;
    if (strncmp(p, ":iam::", 6) != 0)
        return fail(why, "is not an IAM ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)");
    p += 6;
    if (strspn(p, "0123456789") != 12 || p[12] != ':')
        return fail(why, "does not have a 12-digit account id");
    const char *account = p;
    p += 13;
    if (strncmp(p, "role/", 5) != 0)
        return fail(why, "is not a role ARN (...:role/NAME)");
    p += 4; /* at the '/' that starts the path */
    const char *last = strrchr(p, '/');
    size_t path_len = (size_t)(last - p) + 1; /* "/" or "/a/b/" */
    if (path_len > 512)
        return fail(why, "has a role path longer than 512 characters");
    for (const char *q = p; q < last; q++) {
        if (*q <= ' ' || *q > '~')
            return fail(why, "has a role path with spaces or non-ASCII characters");
        if (*q == '/' && q[1] == '/')
            return fail(why, "has an empty segment in its role path");
    }
    if (!all_in_set(last + 1, 1, 64, "+=,.@-"))
        return fail(why, "has a role name that is not 1..64 of [A-Za-z0-9_+=,.@-]");
    if (account_out) {
        memcpy(account_out, account, 12);
        account_out[12] = '\0';
    }
    return true;
}
