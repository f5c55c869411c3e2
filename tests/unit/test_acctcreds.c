/* test_acctcreds.c - the no-network paths of acctcreds_fetch: an account without a role
 * gets the base credentials as given (no STS call unless its account id is wanted); with no
 * base credentials anywhere, the failure names the account and says CredentialsUnavailable.
 * The STS paths run against ec2sim in test_sts_assume.py::test_account_credentials. */
#include <stdlib.h>
#include <string.h>

#include "acctcreds.h"
#include "clock.h"
#include "harness.h"

static void test_base_as_given(void)
{
    struct creds base;
    memset(&base, 0, sizeof base);
    strcpy(base.access_key_id, "AKIDBASE");
    strcpy(base.secret_access_key, "basesecret");
    strcpy(base.source, "environment");
    base.expiration = 1900000000;
    /* an endpoint nobody answers on: any STS call would fail */
    setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9", 1);
    struct acctcreds_spec spec = {.name = "default", .region = "us-east-1"};
    struct acctcreds_result r;
    struct creds_error ce;
    CHECK_INT(acctcreds_fetch(&spec, &base, clock_now_ms() + 2000, &r, &ce), EBSD_OK);
    CHECK_STR(r.creds.access_key_id, "AKIDBASE");
    CHECK_STR(r.creds.secret_access_key, "basesecret");
    CHECK_STR(r.creds.source, "environment");
    CHECK_INT(r.creds.expiration, 1900000000);
    CHECK_STR(r.account_id, "");
    /* asking for the account id does call STS, and its failure is the account's */
    spec.want_account_id = true;
    CHECK(acctcreds_fetch(&spec, &base, clock_now_ms() + 2000, &r, &ce) != EBSD_OK);
    CHECK(strncmp(ce.message, "account default: ", 17) == 0);
    CHECK_STR(ce.source, "account:default");
    CHECK_STR(r.creds.secret_access_key, ""); /* wiped */
    CHECK(strstr(ce.message, "basesecret") == NULL);
    unsetenv("AWS_ENDPOINT_URL_STS");
}

static void test_no_base_credentials(void)
{
    const char *vars[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                          "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
                          "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                          "AWS_CONTAINER_CREDENTIALS_FULL_URI"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    struct acctcreds_spec spec = {.name = "prod",
                                  .role_arn = "arn:aws:iam::111122223333:role/r",
                                  .region = "us-east-1"};
    struct acctcreds_result r;
    struct creds_error ce;
    CHECK_INT(acctcreds_fetch(&spec, NULL, clock_now_ms() + 2000, &r, &ce), EBSD_ENOTFOUND);
    CHECK_STR(r.code, "CredentialsUnavailable");
    CHECK(strstr(ce.message, "account prod: base credentials: ") == ce.message);
}

TEST_MAIN(T(test_base_as_given), T(test_no_base_credentials))
