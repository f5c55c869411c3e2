/* test_endpoint.c - partitions, default endpoints and the environment's overrides. */
#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "harness.h"

static void test_partitions(void)
{
    CHECK_STR(endpoint_partition("us-east-1"), "aws");
    CHECK_STR(endpoint_partition("cn-north-1"), "aws-cn");
    CHECK_STR(endpoint_partition("us-gov-east-1"), "aws-us-gov");
    CHECK_STR(endpoint_partition("us-iso-east-1"), "aws-iso");
    CHECK_STR(endpoint_partition("us-isob-east-1"), "aws-iso-b");
    CHECK_STR(endpoint_partition("eu-isoe-west-1"), "aws-iso-e");
    CHECK_STR(endpoint_partition("us-isof-south-1"), "aws-iso-f");
    CHECK_STR(endpoint_partition(NULL), "aws");
    char buf[128];
    endpoint_default("sts", "cn-north-1", buf, sizeof buf);
    CHECK_STR(buf, "https://sts.cn-north-1.amazonaws.com.cn");
    endpoint_default("ec2", "us-iso-east-1", buf, sizeof buf);
    CHECK_STR(buf, "https://ec2.us-iso-east-1.c2s.ic.gov");
    endpoint_default("ec2", "eu-isoe-west-1", buf, sizeof buf);
    CHECK_STR(buf, "https://ec2.eu-isoe-west-1.cloud.adc-e.uk");
    endpoint_default("sts", NULL, buf, sizeof buf);
    CHECK_STR(buf, "https://sts.us-east-1.amazonaws.com");
}

static void test_configured(void)
{
    const char *var = NULL;
    unsetenv("AWS_ENDPOINT_URL_EC2");
    unsetenv("AWS_ENDPOINT_URL_STS");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    CHECK(endpoint_configured("STS", &var) == NULL);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
    CHECK_STR(endpoint_configured("STS", &var), "http://127.0.0.1:1");
    CHECK_STR(var, "AWS_ENDPOINT_URL");
    setenv("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:2", 1);
    CHECK_STR(endpoint_configured("EC2", &var), "http://127.0.0.1:2");
    CHECK_STR(var, "AWS_ENDPOINT_URL_EC2");
    /* the EC2 variable is not STS's */
    CHECK_STR(endpoint_configured("STS", NULL), "http://127.0.0.1:1");
    setenv("AWS_ENDPOINT_URL_STS", "", 1); /* empty is unset */
    CHECK_STR(endpoint_configured("STS", NULL), "http://127.0.0.1:1");
    char *r = endpoint_resolve("sts", "STS", "eu-west-1");
    CHECK_STR(r, "http://127.0.0.1:1");
    free(r);
    setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE", 1);
    CHECK(endpoint_ignore_configured());
    CHECK(endpoint_configured("EC2", &var) == NULL);
    r = endpoint_resolve("sts", "STS", "eu-west-1");
    CHECK_STR(r, "https://sts.eu-west-1.amazonaws.com");
    free(r);
    setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false", 1);
    CHECK(!endpoint_ignore_configured());
    CHECK_STR(endpoint_configured("EC2", NULL), "http://127.0.0.1:2");
    unsetenv("AWS_ENDPOINT_URL_EC2");
    unsetenv("AWS_ENDPOINT_URL_STS");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
}

TEST_MAIN(T(test_partitions), T(test_configured))
