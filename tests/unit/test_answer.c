/* test_answer.c - aggregation of records into the data routes' JSON, and the mapping of a
 * job's outcome to the API's status and error code. */
#include <stdio.h>
#include <string.h>

#include "answer.h"
#include "harness.h"

static void inst(struct wire_inst *i, int n, const char *state)
{
    memset(i, 0, sizeof *i);
    snprintf(i->id, sizeof i->id, "i-%017x", n);
    snprintf(i->state, sizeof i->state, "%s", state);
}

/* The attachments of the volumes below, in the order they are added (each volume's are
 * contiguous, as the decoder lays them out). */
static struct wire_attach atts[64];
static size_t natts;

static void vol(struct wire_vol *v, const char *id, int64_t gib)
{
    memset(v, 0, sizeof *v);
    v->attach_at = natts;
    snprintf(v->id, sizeof v->id, "%s", id);
    v->size_gib = gib;
    snprintf(v->type, sizeof v->type, "io2");
    snprintf(v->state, sizeof v->state, "in-use");
}

static void attach(struct wire_vol *v, int n, const char *state)
{
    struct wire_attach *a = &atts[natts++];
    v->nattach++;
    snprintf(a->instance_id, sizeof a->instance_id, "i-%017x", n);
    snprintf(a->device, sizeof a->device, "/dev/sdf");
    snprintf(a->state, sizeof a->state, "%s", state);
}

static double num(const cJSON *o, const char *k)
{
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static const cJSON *instance_of(const cJSON *o, int n)
{
    char id[24];
    snprintf(id, sizeof id, "i-%017x", n);
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(o, "instances"))
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "instance_id")),
                   id) == 0)
            return x;
    return NULL;
}

/* The bug this guards: a multi-attach volume on a fifth (up to a sixteenth) instance must
 * count in that instance's total too. */
static void test_total_counts_all_16_attachments(void)
{
    struct wire_inst in[17];
    for (int i = 0; i < 17; i++)
        inst(&in[16 - i], i + 1, "running"); /* out of order: the answer sorts */
    struct wire_vol v[4];
    vol(&v[0], "vol-multi", 50);
    v[0].multi = true;
    for (int i = 1; i <= 16; i++)
        attach(&v[0], i, "attached");
    v[1] = v[0]; /* the same volume reported by a second group */
    vol(&v[2], "vol-root", 8);
    attach(&v[2], 17, "attached");
    vol(&v[3], "vol-elsewhere", 1000);
    attach(&v[3], 99, "attached"); /* attached to an instance not listed */
    cJSON *o = answer_total("us-east-1", in, 17, v, 4, atts);
    CHECK_INT(num(o, "total_gib"), 58);
    CHECK_INT(num(o, "volume_count"), 2);
    CHECK_INT(num(o, "instance_count"), 17);
    for (int i = 1; i <= 16; i++) {
        const cJSON *x = instance_of(o, i);
        CHECK(x != NULL);
        CHECK_INT(num(x, "total_gib"), 50);
        CHECK_INT(num(x, "volume_count"), 1);
    }
    CHECK_INT(num(instance_of(o, 17), "total_gib"), 8);
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "instances"), 0);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "instance_id")),
              "i-00000000000000001");
    cJSON_Delete(o);
}

static void test_total_skips_detached(void)
{
    struct wire_inst in[2];
    inst(&in[0], 1, "running");
    inst(&in[1], 2, "stopped");
    struct wire_vol v[2];
    vol(&v[0], "vol-a", 10);
    attach(&v[0], 1, "detached");
    vol(&v[1], "vol-b", 20);
    attach(&v[1], 2, "detaching"); /* still counts, as EC2 still bills it there */
    cJSON *o = answer_total("eu-west-1", in, 2, v, 2, atts);
    CHECK_INT(num(o, "total_gib"), 20);
    CHECK_INT(num(instance_of(o, 1), "volume_count"), 0);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "region")), "eu-west-1");
    cJSON_Delete(o);
}

static void test_instance_sixteenth_attachment(void)
{
    struct wire_vol v[1];
    vol(&v[0], "vol-multi", 50);
    v[0].multi = true;
    for (int i = 1; i <= 16; i++)
        attach(&v[0], i, "attached");
    cJSON *o = answer_instance("us-east-1", "i-00000000000000010", "running", v, 1, atts);
    CHECK_INT(num(o, "total_gib"), 50);
    CHECK_INT(num(o, "volume_count"), 1);
    const cJSON *x = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "volumes"), 0);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "multi_attach")));
    cJSON_Delete(o);
}

static void mapped(ebsd_status st, bool from_ec2, const char *code, long http,
                   unsigned want_status, const char *want_code)
{
    struct engine_query q = {.kind = ENGINE_INSTANCE, .target = {"default", "us-east-1"},
                             .instance_id = "i-0123456789abcdef0"};
    struct engine_outcome o = {.status = st, .from_ec2 = from_ec2, .ec2_http = http};
    snprintf(o.ec2_code, sizeof o.ec2_code, "%s", code);
    snprintf(o.message, sizeof o.message, "detail");
    struct answer a;
    answer_from_outcome(&q, &o, &a);
    CHECK_INT(a.http_status, want_status);
    CHECK_STR(a.code, want_code);
    CHECK(a.data == NULL);
    CHECK_INT(a.retry_after_s, want_status == 503 ? 1 : 0);
}

static void test_outcome_mapping(void)
{
    mapped(EBSD_ETIMEDOUT, false, "", 0, 504, "TaskTimedOut");
    mapped(EBSD_EBUSY, false, "", 0, 503, "Busy");
    mapped(EBSD_EAUTH, false, "", 0, 503, "CredentialsUnavailable");
    mapped(EBSD_ENOTFOUND, false, "", 0, 404, "NotFound");
    mapped(EBSD_ENOMEM, false, "", 0, 502, "MemoryLimitExceeded");
    mapped(EBSD_ECHILD, false, "", 0, 502, "ChildFailed");
    mapped(EBSD_EUPSTREAM, true, "InvalidInstanceID.NotFound", 400, 404, "NotFound");
    mapped(EBSD_ETIMEDOUT, true, "", 0, 504, "TaskTimedOut");
    mapped(EBSD_ETHROTTLED, true, "", 0, 503, "RequestLimitExceeded");
    mapped(EBSD_EUPSTREAM, true, "Unavailable", 503, 503, "Unavailable");
    mapped(EBSD_ENETWORK, true, "", 0, 502, "UpstreamUnreachable");
    mapped(EBSD_EAUTH, true, "AuthFailure", 401, 502, "AuthFailure");
    mapped(EBSD_EUPSTREAM, true, "", 500, 502, "UpstreamError");
    mapped(EBSD_EIO, true, "", 0, 502, "UpstreamError");
    struct engine_query q = {.kind = ENGINE_INSTANCE, .target = {"default", "us-east-1"},
                             .instance_id = "i-0123456789abcdef0"};
    struct engine_outcome o = {.status = EBSD_EUPSTREAM, .from_ec2 = true, .ec2_http = 500};
    snprintf(o.message, sizeof o.message, "We encountered an internal error");
    struct answer a;
    answer_from_outcome(&q, &o, &a);
    CHECK_STR(a.message, "EC2 answered HTTP 500: We encountered an internal error");
    o = (struct engine_outcome){.status = EBSD_ENOTFOUND};
    answer_from_outcome(&q, &o, &a);
    CHECK_STR(a.message, "instance i-0123456789abcdef0 does not exist in us-east-1");
}

static void test_outcome_ok(void)
{
    struct engine_query q = {.kind = ENGINE_TOTAL, .target = {"default", "us-east-1"}};
    struct wire_inst in[1];
    inst(&in[0], 1, "running");
    struct engine_outcome o = {.status = EBSD_OK, .inst = in, .ninst = 1, .children = 3,
                               .ec2_calls = 4, .fetched_at = 1234};
    struct answer a;
    answer_from_outcome(&q, &o, &a);
    CHECK_INT(a.http_status, 200);
    CHECK(a.data != NULL);
    CHECK_INT(a.children, 3);
    CHECK_INT(a.ec2_calls, 4);
    CHECK_INT(a.fetched_at, 1234);
    CHECK_INT(num(a.data, "instance_count"), 1);
    cJSON_Delete(a.data);
}

TEST_MAIN(T(test_total_counts_all_16_attachments), T(test_total_skips_detached),
          T(test_instance_sixteenth_attachment), T(test_outcome_mapping), T(test_outcome_ok))
