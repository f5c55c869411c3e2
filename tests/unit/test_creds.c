/* test_creds.c - the pieces of the credential chain that need no network: RFC 3339 times,
 * expiry, the container URL allow-list, the shared files (long values included), STS
 * answers, and the environment source through creds_resolve. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "awsconfig.h"
#include "creds.h"
#include "harness.h"
#include "mem.h"
#include "sts.h"

static void test_parse_time(void)
{
    time_t t;
    CHECK(creds_parse_time("2015-08-30T12:36:00Z", &t));
    CHECK_INT(t, 1440938160);
    CHECK(creds_parse_time("2015-08-30T12:36:00.123456Z", &t));
    CHECK_INT(t, 1440938160);
    CHECK(creds_parse_time("2015-08-30T14:36:00+02:00", &t));
    CHECK_INT(t, 1440938160);
    CHECK(creds_parse_time("2015-08-30t12:36:00z", &t));
    CHECK(!creds_parse_time("2015-08-30T12:36:00", &t));
    CHECK(!creds_parse_time("2015-08-30", &t));
    CHECK(!creds_parse_time("tomorrow", &t));
    CHECK(!creds_parse_time("2015-13-30T12:36:00Z", &t));
    CHECK(!creds_parse_time("2015-08-30T12:36:00Zjunk", &t));
    CHECK(!creds_parse_time(NULL, &t));
}

static void test_expiring(void)
{
    struct creds c;
    memset(&c, 0, sizeof c);
    CHECK(!creds_expiring(&c, 1000, 300)); /* static: never */
    c.expiration = 1000 + 301;
    CHECK(!creds_expiring(&c, 1000, 300));
    c.expiration = 1000 + 300;
    CHECK(creds_expiring(&c, 1000, 300));
    c.expiration = 900;
    CHECK(creds_expiring(&c, 1000, 0));
    snprintf(c.secret_access_key, sizeof c.secret_access_key, "secret");
    snprintf(c.session_token, sizeof c.session_token, "token");
    creds_wipe(&c);
    CHECK(c.secret_access_key[0] == '\0' && c.session_token[0] == '\0');
}

static void clear_container_env(void)
{
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
}

static ebsd_status container_url_for(const char *full, char **url, struct creds_error *err)
{
    clear_container_env();
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", full, 1);
    memset(err, 0, sizeof *err);
    return creds_container_url(url, err);
}

static void test_container_url(void)
{
    static const char *const allowed[] = {
        "http://127.0.0.1:8080/creds", "http://127.1.2.3/x",       "http://localhost/x",
        "http://[::1]:9/x",            "http://169.254.170.2/v2/c", "http://169.254.170.23/v1/c",
        "http://[fd00:ec2::23]/v1/c",  "https://example.com/creds", "HTTPS://creds.internal/x",
    };
    static const char *const refused[] = {
        "http://example.com/creds", "http://10.0.0.1/x",    "http://169.254.169.254/x",
        "http://[fd00:ec2::24]/x",  "http://user@127.0.0.1/", "ftp://127.0.0.1/x",
        "http:///x",                "http://128.0.0.1/x",   "http://[::1/x",
    };
    char *url;
    struct creds_error err;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        ebsd_status st = container_url_for(allowed[i], &url, &err);
        CHECK_INT(st, EBSD_OK);
        if (st == EBSD_OK) {
            CHECK_STR(url, allowed[i]);
            free(url);
        } else {
            fprintf(stderr, "refused %s: %s\n", allowed[i], err.message);
        }
    }
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        ebsd_status st = container_url_for(refused[i], &url, &err);
        CHECK_INT(st, EBSD_EINVAL);
        if (st == EBSD_OK) {
            fprintf(stderr, "allowed %s\n", refused[i]);
            free(url);
        }
        CHECK_STR(err.source, "container");
    }
    /* RELATIVE_URI goes to the ECS agent's address and wins over FULL_URI. */
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc", 1);
    CHECK_INT(creds_container_url(&url, &err), EBSD_OK);
    CHECK_STR(url, "http://169.254.170.2/v2/credentials/abc");
    free(url);
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/no-slash", 1);
    CHECK_INT(creds_container_url(&url, &err), EBSD_EINVAL);
    clear_container_env();
    CHECK_INT(creds_container_url(&url, &err), EBSD_ENOTFOUND);
}

static char *write_temp(const char *text)
{
    char *path = xstrdup("/tmp/ebsd-test-creds-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
        close(fd);
    }
    return path;
}

static void test_awsconfig(void)
{
    char token[3001];
    memset(token, 'T', 3000);
    token[3000] = '\0';
    char *long_comment = xasprintf("# %0400d\n", 0);
    char *cred_text = xasprintf("[default]\naws_access_key_id = AKIADEF\n"
                                "aws_secret_access_key = sk/def+1\n%s"
                                "aws_session_token = %s\n\n[dev]\naws_access_key_id=AKIADEV\n"
                                "region = from-credentials\n",
                                long_comment, token);
    char *conf_text = xstrdup("; comment\n[default]\nregion = us-west-2\n"
                              "[profile dev]\nregion = eu-west-1\nrole_arn = arn:x\n"
                              "[sso-session s]\nsso_region = x\n"
                              "[profile  spaced ]\nregion=ap-south-1\n"
                              "[services x]\nec2 =\n  endpoint_url = http://x\n");
    char *cred = write_temp(cred_text), *conf = write_temp(conf_text);
    struct awsconfig *c = NULL;
    char err[256] = "";
    ebsd_status st = awsconfig_load(conf, cred, &c, err, sizeof err);
    CHECK_INT(st, EBSD_OK);
    if (st == EBSD_OK) {
        CHECK_STR(awsconfig_get(c, "default", "aws_access_key_id"), "AKIADEF");
        CHECK_STR(awsconfig_get(c, "default", "aws_secret_access_key"), "sk/def+1");
        CHECK_STR(awsconfig_get(c, "default", "aws_session_token"), token);
        CHECK_STR(awsconfig_get(c, "default", "region"), "us-west-2");
        CHECK_STR(awsconfig_get(c, "dev", "region"), "from-credentials"); /* file wins */
        CHECK_STR(awsconfig_get(c, "dev", "role_arn"), "arn:x");
        CHECK_STR(awsconfig_get(c, "spaced", "region"), "ap-south-1");
        CHECK(awsconfig_get(c, "s", "sso_region") == NULL);
        CHECK(!awsconfig_has_profile(c, "s"));
        CHECK(!awsconfig_has_profile(c, "nope"));
        CHECK(awsconfig_has_profile(c, "dev"));
        awsconfig_free(c);
    }
    /* Missing files add nothing; a malformed one names file and line but no value. */
    CHECK_INT(awsconfig_load("/nonexistent/config", NULL, &c, err, sizeof err), EBSD_OK);
    awsconfig_free(c);
    char *bad = write_temp("[default]\naws_secret_access_key = hidden\nno equals sign\n");
    CHECK_INT(awsconfig_load(NULL, bad, &c, err, sizeof err), EBSD_EPARSE);
    CHECK(strstr(err, "line 3") != NULL);
    CHECK(strstr(err, "hidden") == NULL);
    unlink(cred);
    unlink(conf);
    unlink(bad);
    free(cred);
    free(conf);
    free(bad);
    free(cred_text);
    free(conf_text);
    free(long_comment);
}

static void test_sts_parse(void)
{
    static const char ok_xml[] =
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
        "  <AssumeRoleResult>\n    <SourceIdentity>x</SourceIdentity>\n"
        "    <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn>"
        "<AssumedRoleId>ARO:s</AssumedRoleId></AssumedRoleUser>\n"
        "    <Credentials>\n      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>\n"
        "      <SecretAccessKey>wJalr/EXAMPLE</SecretAccessKey>\n"
        "      <SessionToken>FwoG&amp;token</SessionToken>\n"
        "      <Expiration>2019-11-09T13:34:41Z</Expiration>\n    </Credentials>\n"
        "  </AssumeRoleResult>\n  <ResponseMetadata><RequestId>r</RequestId>"
        "</ResponseMetadata>\n</AssumeRoleResponse>\n";
    struct creds c;
    char err[512];
    CHECK_INT(sts_parse_response(ok_xml, strlen(ok_xml), &c, err, sizeof err), EBSD_OK);
    CHECK_STR(c.access_key_id, "ASIAEXAMPLE");
    CHECK_STR(c.secret_access_key, "wJalr/EXAMPLE");
    CHECK_STR(c.session_token, "FwoG&token");
    CHECK_INT(c.expiration, 1573306481);

    static const char err_xml[] =
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
        "<Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized"
        "</Message></Error><RequestId>r</RequestId></ErrorResponse>";
    CHECK_INT(sts_parse_response(err_xml, strlen(err_xml), &c, err, sizeof err),
              EBSD_EUPSTREAM);
    CHECK_STR(err, "AccessDenied: User is not authorized");

    static const char *const bad[] = {
        "not xml",
        "<AssumeRoleResponse><Credentials><AccessKeyId>A</AccessKeyId></Credentials>"
        "</AssumeRoleResponse>",
        "<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>",
        "<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
        "<SessionToken>T</SessionToken><Expiration>soon</Expiration></Credentials></R>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(sts_parse_response(bad[i], strlen(bad[i]), &c, err, sizeof err), EBSD_EPARSE);
        CHECK(err[0] != '\0');
    }
}

static void test_sts_endpoint(void)
{
    unsetenv("AWS_ENDPOINT_URL_STS");
    unsetenv("AWS_ENDPOINT_URL");
    char *e = sts_endpoint("eu-west-1");
    CHECK_STR(e, "https://sts.eu-west-1.amazonaws.com");
    free(e);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
    e = sts_endpoint("eu-west-1");
    CHECK_STR(e, "http://127.0.0.1:1");
    free(e);
    setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2", 1);
    e = sts_endpoint(NULL);
    CHECK_STR(e, "http://127.0.0.1:2");
    free(e);
    unsetenv("AWS_ENDPOINT_URL_STS");
    unsetenv("AWS_ENDPOINT_URL");
}

static void test_resolve_environment(void)
{
    struct creds c;
    struct creds_error err;
    setenv("AWS_ACCESS_KEY_ID", "AKIAUNIT", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "unit-secret-value", 1);
    setenv("AWS_SESSION_TOKEN", "unit-token-value", 1);
    CHECK_INT(creds_resolve(0, &c, &err), EBSD_OK);
    CHECK_STR(c.source, "environment");
    CHECK_STR(c.access_key_id, "AKIAUNIT");
    CHECK_STR(c.session_token, "unit-token-value");
    CHECK_INT(c.expiration, 0);
    unsetenv("AWS_SECRET_ACCESS_KEY");
    CHECK_INT(creds_resolve(0, &c, &err), EBSD_EAUTH);
    CHECK_STR(err.source, "environment");
    CHECK(strstr(err.message, "unit-token-value") == NULL);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SESSION_TOKEN");
}

TEST_MAIN(T(test_parse_time), T(test_expiring), T(test_container_url), T(test_awsconfig),
          T(test_sts_parse), T(test_sts_endpoint), T(test_resolve_environment))
