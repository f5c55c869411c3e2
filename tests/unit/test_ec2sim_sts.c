/* test_ec2sim_sts.c - ec2sim's STS calls without a server: which requests are STS's,
 * AssumeRole's answer (role account, ARNs, credentials that simauth then knows), refusals
 * (denied roles and accounts, external ids), validation, the duration cap, and settings
 * patches that are all or nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "harness.h"
#include "query.h"
#include "simauth.h"
#include "stsapi.h"

/* Answers the form body as the caller `who` (an IAM user of the home account). */
static struct ec2_response call(const char *form)
{
    struct query q;
    struct ec2_response r;
    memset(&r, 0, sizeof r);
    if (query_parse(form, strlen(form), &q) != EBSD_OK) {
        CHECK(!"query_parse");
        return r;
    }
    struct simauth_identity who;
    memset(&who, 0, sizeof who);
    snprintf(who.account, sizeof who.account, "123456789012");
    snprintf(who.arn, sizeof who.arn, "arn:aws:iam::123456789012:user/ec2sim");
    snprintf(who.user_id, sizeof who.user_id, "AIDAEXAMPLE");
    stsapi_handle(&q, &who, "req-1", &r);
    query_free(&q);
    return r;
}

/* The text of <name>…</name> in body, copied into out (empty when absent). */
static void element(const char *body, const char *name, char *out, size_t outlen)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", name);
    snprintf(close, sizeof close, "</%s>", name);
    out[0] = '\0';
    const char *a = body ? strstr(body, open) : NULL;
    const char *b = a ? strstr(a, close) : NULL;
    if (a && b && (size_t)(b - a) - strlen(open) < outlen)
        snprintf(out, outlen, "%.*s", (int)((size_t)(b - a) - strlen(open)), a + strlen(open));
}

static void which_requests(void)
{
    struct query q;
    CHECK(query_parse("Action=AssumeRole&Version=2011-06-15", 36, &q) == EBSD_OK);
    CHECK(stsapi_is_sts("", &q));
    CHECK(stsapi_is_sts("sts", &q));
    CHECK(!stsapi_is_sts("ec2", &q)); /* the scope decides for signed requests */
    query_free(&q);
    CHECK(query_parse("Action=DescribeVolumes&Version=2016-11-15", 41, &q) == EBSD_OK);
    CHECK(!stsapi_is_sts(NULL, &q));
    query_free(&q);
    CHECK(stsapi_unsigned_action("AssumeRoleWithWebIdentity"));
    CHECK(!stsapi_unsigned_action("AssumeRole") && !stsapi_unsigned_action(NULL));
}

static void assume_role_answer(void)
{
    int64_t before = clock_wall_ms();
    struct ec2_response r = call("Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A"
                                 "111122223333%3Arole%2Fteam%2Febsd-read&RoleSessionName=s1&"
                                 "DurationSeconds=900");
    CHECK_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "<AssumeRoleResponse xmlns=\"" STS_XMLNS "\">"));
    char v[512], key[64], secret[64], token[512], exp[64];
    element(r.body, "Arn", v, sizeof v);
    CHECK_STR(v, "arn:aws:sts::111122223333:assumed-role/ebsd-read/s1");
    element(r.body, "AccessKeyId", key, sizeof key);
    element(r.body, "SecretAccessKey", secret, sizeof secret);
    element(r.body, "SessionToken", token, sizeof token);
    element(r.body, "Expiration", exp, sizeof exp);
    element(r.body, "RequestId", v, sizeof v);
    CHECK_STR(v, "req-1");
    CHECK(strncmp(key, "ASIA", 4) == 0 && strlen(key) == 20);
    CHECK(strlen(secret) == 40 && strlen(token) > 100);
    /* 2026-01-01T00:00:00Z: no milliseconds, as STS writes it; 900 s from now */
    CHECK(strlen(exp) == 20 && exp[19] == 'Z');
    struct tm tm = {0};
    CHECK(strptime(exp, "%Y-%m-%dT%H:%M:%SZ", &tm) != NULL);
    int64_t left = (int64_t)timegm(&tm) * 1000 - before;
    CHECK(left > 895000 && left <= 901000);
    size_t issued, live;
    simauth_session_counts(&issued, &live);
    CHECK(issued >= 1 && live >= 1);
    ec2_response_free(&r);
}

static void refusals_and_validation(void)
{
    char err[256];
    cJSON *patch = cJSON_Parse("{\"deny\": [\"222233334444\"], \"external_ids\": "
                               "{\"arn:aws:iam::333344445555:role/r\": \"x-1\"}}");
    CHECK(stsapi_apply_json(patch, err, sizeof err) == EBSD_OK);
    cJSON_Delete(patch);
    static const struct {
        const char *form;
        int status;
        const char *code;
    } cases[] = {
        {"RoleArn=arn:aws:iam::222233334444:role/r&RoleSessionName=s1", 403, "AccessDenied"},
        {"RoleArn=arn:aws:iam::333344445555:role/r&RoleSessionName=s1", 403, "AccessDenied"},
        {"RoleArn=arn:aws:iam::333344445555:role/r&RoleSessionName=s1&ExternalId=x-2", 403,
         "AccessDenied"},
        {"RoleArn=arn:aws:iam::333344445555:role/r&RoleSessionName=s1&ExternalId=x-1", 200, ""},
        {"RoleArn=arn:aws:iam::3333:role/r&RoleSessionName=s1", 400, "ValidationError"},
        {"RoleArn=arn:aws:s3:::bucket/role/r&RoleSessionName=s1", 400, "ValidationError"},
        {"RoleSessionName=s1", 400, "ValidationError"},
        {"RoleArn=arn:aws:iam::111122223333:role/r", 400, "ValidationError"},
        {"RoleArn=arn:aws:iam::111122223333:role/r&RoleSessionName=s", 400, "ValidationError"},
        {"RoleArn=arn:aws:iam::111122223333:role/r&RoleSessionName=s1&DurationSeconds=43201",
         400, "ValidationError"},
        {"RoleArn=arn:aws-cn:iam::111122223333:role/r&RoleSessionName=s1", 200, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char form[512];
        snprintf(form, sizeof form, "Action=AssumeRole&Version=2011-06-15&%s", cases[i].form);
        struct ec2_response r = call(form);
        CHECK_INT(r.status, cases[i].status);
        CHECK_STR(r.code, cases[i].code);
        if (r.status == 403)
            CHECK(strstr(r.body, "<Type>Sender</Type>") &&
                  strstr(r.body, "User: arn:aws:iam::123456789012:user/ec2sim is not authorized"));
        ec2_response_free(&r);
    }
    /* a bad patch changes nothing */
    patch = cJSON_Parse("{\"allow\": [\"222233334444\"], \"max_duration_s\": 50000}");
    CHECK(stsapi_apply_json(patch, err, sizeof err) == EBSD_EINVAL);
    CHECK(strstr(err, "max_duration_s") != NULL);
    cJSON_Delete(patch);
    cJSON *now = stsapi_to_json();
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(now, "deny")), 1);
    cJSON_Delete(now);
    patch = cJSON_Parse("{\"clear\": true, \"max_duration_s\": 60}");
    CHECK(stsapi_apply_json(patch, err, sizeof err) == EBSD_OK);
    cJSON_Delete(patch);
    int64_t before = clock_wall_ms();
    struct ec2_response r = call("Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::"
                                 "222233334444:role/r&RoleSessionName=s1&DurationSeconds=3600");
    CHECK_INT(r.status, 200);
    char exp[64];
    element(r.body, "Expiration", exp, sizeof exp);
    struct tm tm = {0};
    CHECK(strptime(exp, "%Y-%m-%dT%H:%M:%SZ", &tm) != NULL);
    int64_t left = (int64_t)timegm(&tm) * 1000 - before;
    CHECK(left > 55000 && left <= 61000);
    ec2_response_free(&r);
    r = call("Action=GetCallerIdentity&Version=2011-06-15");
    char acc[32];
    element(r.body, "Account", acc, sizeof acc);
    CHECK_STR(acc, "123456789012");
    ec2_response_free(&r);
    r = call("Action=GetSessionToken&Version=2011-06-15");
    CHECK_STR(r.code, "InvalidAction");
    ec2_response_free(&r);
    r = call("Action=GetCallerIdentity&Version=2016-11-15");
    CHECK_INT(r.status, 400);
    ec2_response_free(&r);
}

TEST_MAIN(T(which_requests), T(assume_role_answer), T(refusals_and_validation))
