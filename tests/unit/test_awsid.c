/* test_awsid.c - role ARN, external id, session name and account name syntax. */
#include <string.h>

#include "awsid.h"
#include "harness.h"

static void test_role_arn(void)
{
    char acct[13] = "";
    const char *why = NULL;
    CHECK(awsid_role_arn_valid("arn:aws:iam::111122223333:role/ebsd-read", acct, &why));
    CHECK_STR(acct, "111122223333");
    CHECK(awsid_role_arn_valid("arn:aws-cn:iam::222233334444:role/team/a/ebsd+x=y,z.w@q_-", acct,
                               NULL));
    CHECK_STR(acct, "222233334444");
    CHECK(awsid_role_arn_valid("arn:aws-us-gov:iam::123456789012:role/r", NULL, NULL));
    CHECK(awsid_role_arn_valid("arn:aws-iso-b:iam::123456789012:role/r", NULL, NULL));

    static const char *const bad[] = {
        "",
        "arn:aws:iam::11112222333:role/r",          /* 11 digits */
        "arn:aws:iam::1111222233334:role/r",        /* 13 digits */
        "arn:aws:iam::11112222333a:role/r",
        "arn:aws:iam:us-east-1:111122223333:role/r", /* IAM has no region */
        "arn:aws:sts::111122223333:role/r",
        "arn:aws:iam::111122223333:user/r",
        "arn:aws:iam::111122223333:role/",           /* no name */
        "arn:aws:iam::111122223333:role/a b",
        "arn:aws:iam::111122223333:role/a//b",
        "arn:aws:iam::111122223333:role/a b/c",
        "arn:foo:iam::111122223333:role/r",
        "aws:iam::111122223333:role/r",
        "arn:aws:iam::111122223333:role/r\n",
        "arn:aws:iam::111122223333:role/r:x",
        "arn:aws:iam::111122223333:role/"
        "r12345678901234567890123456789012345678901234567890123456789012345", /* 65 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        acct[0] = 'x';
        acct[1] = '\0';
        if (awsid_role_arn_valid(bad[i], acct, &why))
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK(!awsid_role_arn_valid(bad[i], acct, &why));
        CHECK(why != NULL && *why);
        CHECK_STR(acct, "x"); /* untouched on failure */
    }
    /* the longest role name is 64 */
    CHECK(awsid_role_arn_valid("arn:aws:iam::111122223333:role/"
                               "r123456789012345678901234567890123456789012345678901234567890123",
                               NULL, NULL));
    /* a path of 513 characters is too long, 512 is fine */
    char arn[700] = "arn:aws:iam::111122223333:role/";
    size_t n = strlen(arn);
    for (size_t i = 0; i < 510; i++)
        arn[n++] = 'p';
    arn[n++] = '/';
    memcpy(arn + n, "r", 2); /* path "/" + 510 + "/" = 512 */
    CHECK(awsid_role_arn_valid(arn, NULL, NULL));
    memmove(arn + n, arn + n - 1, 3);
    arn[n - 1] = 'p'; /* path 513 */
    CHECK(!awsid_role_arn_valid(arn, NULL, NULL));
}

static void test_account_name(void)
{
    CHECK(awsid_account_name_valid("prod"));
    CHECK(awsid_account_name_valid("0"));
    CHECK(awsid_account_name_valid("a-b-9"));
    CHECK(awsid_account_name_valid("a1234567890123456789012345678901")); /* 32 */
    CHECK(!awsid_account_name_valid("a12345678901234567890123456789012")); /* 33 */
    CHECK(!awsid_account_name_valid(""));
    CHECK(!awsid_account_name_valid(NULL));
    CHECK(!awsid_account_name_valid("-prod"));
    CHECK(!awsid_account_name_valid("Prod"));
    CHECK(!awsid_account_name_valid("pr_od"));
    CHECK(!awsid_account_name_valid("pr od"));
    CHECK(!awsid_account_name_valid("all!"));
}

static void test_external_id_and_session(void)
{
    CHECK(awsid_external_id_valid("ext-1"));
    CHECK(awsid_external_id_valid("a:b/c=d,e.f@g+h_i-j"));
    CHECK(!awsid_external_id_valid("x"));
    CHECK(!awsid_external_id_valid("has space"));
    CHECK(!awsid_external_id_valid("semi;colon"));
    char long_id[AWSID_EXTERNAL_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[AWSID_EXTERNAL_ID_MAX] = '\0';
    CHECK(awsid_external_id_valid(long_id));
    long_id[AWSID_EXTERNAL_ID_MAX] = 'a';
    long_id[AWSID_EXTERNAL_ID_MAX + 1] = '\0';
    CHECK(!awsid_external_id_valid(long_id));

    CHECK(awsid_session_name_valid("ebsd-host.example.com"));
    CHECK(!awsid_session_name_valid("a"));
    CHECK(!awsid_session_name_valid("a:b")); /* ':' is an external id character only */
    CHECK(!awsid_session_name_valid("a/b"));

    char out[AWSID_SESSION_NAME_MAX + 1];
    awsid_session_name_sanitize("ebsd-my host/x:y", out, sizeof out);
    CHECK_STR(out, "ebsd-my-host-x-y");
    CHECK(awsid_session_name_valid(out));
    awsid_session_name_sanitize("", out, sizeof out);
    CHECK_STR(out, "--");
    CHECK(awsid_session_name_valid(out));
    awsid_session_name_sanitize("ebsd-\xc3\xa9", out, sizeof out);
    CHECK_STR(out, "ebsd---");
    char raw[200];
    memset(raw, 'h', sizeof raw - 1);
    raw[sizeof raw - 1] = '\0';
    awsid_session_name_sanitize(raw, out, sizeof out);
    CHECK_INT(strlen(out), 64);
    CHECK(awsid_session_name_valid(out));

    CHECK(awsid_duration_valid(900));
    CHECK(awsid_duration_valid(43200));
    CHECK(!awsid_duration_valid(899));
    CHECK(!awsid_duration_valid(43201));
}

TEST_MAIN(T(test_role_arn), T(test_account_name), T(test_external_id_and_session))
