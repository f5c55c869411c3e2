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
    cJSON *o = answer_total("us-east-1", in, 17, v, 4, atts, true);
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
    /* without the list: the same totals, no "instances" built */
    o = answer_total("us-east-1", in, 17, v, 4, atts, false);
    CHECK_INT(num(o, "total_gib"), 58);
    CHECK_INT(num(o, "volume_count"), 2);
    CHECK_INT(num(o, "instance_count"), 17);
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "instances") == NULL);
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
    cJSON *o = answer_total("eu-west-1", in, 2, v, 2, atts, true);
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
    answer_from_outcome(&q, &o, true, &a);
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
    answer_from_outcome(&q, &o, true, &a);
    CHECK_STR(a.message, "EC2 answered HTTP 500: We encountered an internal error");
    o = (struct engine_outcome){.status = EBSD_ENOTFOUND};
    answer_from_outcome(&q, &o, true, &a);
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
    answer_from_outcome(&q, &o, true, &a);
    CHECK_INT(a.http_status, 200);
    CHECK(a.data != NULL);
    CHECK_INT(a.children, 3);
    CHECK_INT(a.ec2_calls, 4);
    CHECK_INT(a.fetched_at, 1234);
    CHECK_INT(num(a.data, "instance_count"), 1);
    cJSON_Delete(a.data);
}

/* The records' tags, beside them as the decoder lays them out (tags_at): a record's tags
 * are added together. */
static struct wire_tag tags[64];
static size_t ntags;

static void tag(size_t *at, unsigned *n, const char *k, const char *v)
{
    if (*n == 0)
        *at = ntags;
    snprintf(tags[ntags].key, sizeof tags[ntags].key, "%s", k);
    snprintf(tags[ntags].value, sizeof tags[ntags].value, "%s", v);
    ntags++;
    (*n)++;
}

/* The group rule: counted volumes once each, instance keys from the first counted
 * attachment, untagged as null, instance_count distinct, sorted by size then values. */
struct visit {
    unsigned n;
    int64_t gib;
    char ids[128];
};

static void on_counted(void *ctx, const struct wire_vol *v, const struct wire_inst *owner)
{
    (void)owner;
    struct visit *x = ctx;
    x->n++;
    x->gib += v->size_gib;
    size_t used = strlen(x->ids);
    snprintf(x->ids + used, sizeof x->ids - used, "%s,", v->id);
}

static void test_groups(void)
{
    natts = 0;
    struct wire_inst in[3];
    inst(&in[0], 1, "running");
    inst(&in[1], 2, "stopped");
    inst(&in[2], 3, "running");
    tag(&in[0].tags_at, &in[0].ntags, "team", "a");
    tag(&in[1].tags_at, &in[1].ntags, "team", "b");
    struct wire_vol v[5];
    vol(&v[0], "vol-1", 100);
    attach(&v[0], 2, "detached");   /* not counted: the owner is instance 1 */
    attach(&v[0], 1, "attached");
    attach(&v[0], 3, "attached");   /* multi-attach: counts instance 3 too */
    vol(&v[1], "vol-2", 30);
    attach(&v[1], 2, "attached");
    vol(&v[2], "vol-3", 30);
    attach(&v[2], 3, "attached");   /* instance 3 has no team tag: null */
    vol(&v[3], "vol-4", 500);       /* attached to nothing listed: not counted */
    attach(&v[3], 9, "attached");
    v[4] = v[1];                    /* vol-2 reported twice: counted once */
    const char *keys[] = {"instance_tag:team", "instance_state"};
    cJSON *g = answer_groups(keys, 2, in, 3, v, 5, atts, tags);
    CHECK_INT(cJSON_GetArraySize(g), 3);
    const cJSON *g0 = cJSON_GetArrayItem(g, 0), *g1 = cJSON_GetArrayItem(g, 1),
                *g2 = cJSON_GetArrayItem(g, 2);
    const cJSON *k0 = cJSON_GetObjectItemCaseSensitive(g0, "key");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(k0, "instance_tag:team")->valuestring, "a");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(k0, "instance_state")->valuestring, "running");
    CHECK_INT(num(g0, "total_gib"), 100);
    CHECK_INT(num(g0, "instance_count"), 2);
    /* 30 and 30: ties by the values, 'n' (null) before 'v' */
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g1, "key"),
                                                      "instance_tag:team")));
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g2, "key"),
                                               "instance_state")->valuestring, "stopped");
    CHECK_INT(num(g1, "volume_count") + num(g2, "volume_count"), 2);
    cJSON_Delete(g);

    /* the storage gauges' one pass visits exactly the counted volumes, once each */
    struct visit vs = {0};
    answer_foreach_counted(in, 3, v, 5, atts, on_counted, &vs);
    CHECK_INT(vs.n, 3);
    CHECK_INT(vs.gib, 160);
    CHECK_STR(vs.ids, "vol-1,vol-2,vol-3,");
}

static void test_unattached(void)
{
    struct wire_vol v[4];
    vol(&v[0], "vol-b", 50);
    snprintf(v[0].create_time, sizeof v[0].create_time, "2020-01-01T00:00:00.000Z");
    snprintf(v[0].az, sizeof v[0].az, "us-east-1a");
    tag(&v[0].tags_at, &v[0].ntags, "env", "dev");
    vol(&v[1], "vol-a", 50);
    snprintf(v[1].create_time, sizeof v[1].create_time, "2019-06-01T00:00:00Z");
    snprintf(v[1].az, sizeof v[1].az, "us-east-1b");
    vol(&v[2], "vol-c", 10);
    snprintf(v[2].type, sizeof v[2].type, "gp3");
    snprintf(v[2].create_time, sizeof v[2].create_time, "2018-01-01T00:00:00.000Z");
    snprintf(v[2].az, sizeof v[2].az, "us-east-1a");
    v[3] = v[0]; /* seen on two pages: once */
    cJSON *o = answer_unattached("us-east-1", v, 4, tags, 2);
    CHECK_INT(num(o, "total_gib"), 110);
    CHECK_INT(num(o, "volume_count"), 3);
    const cJSON *bt = cJSON_GetObjectItemCaseSensitive(o, "by_type");
    CHECK_INT(num(cJSON_GetObjectItemCaseSensitive(bt, "io2"), "total_gib"), 100);
    CHECK_INT(num(cJSON_GetObjectItemCaseSensitive(bt, "gp3"), "volume_count"), 1);
    const cJSON *largest = cJSON_GetObjectItemCaseSensitive(o, "largest");
    const cJSON *oldest = cJSON_GetObjectItemCaseSensitive(o, "oldest");
    CHECK_INT(cJSON_GetArraySize(largest), 2);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(largest, 0), "volume_id")->valuestring,
              "vol-a"); /* 50 and 50: ties by id */
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(oldest, 0), "volume_id")->valuestring,
              "vol-c");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(oldest, 1), "volume_id")->valuestring,
              "vol-a"); /* create times with and without milliseconds compare as times */
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(largest, 1), "tags");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(jt, "env")->valuestring, "dev");
    cJSON_Delete(o);
}

static const char *key_value(const cJSON *group, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(group, "key"), key);
    return cJSON_IsNull(v) ? "(null)" : cJSON_GetStringValue(v);
}

/* account=all: the targets' groups summed by key, nulls merged, in answer_groups' order. */
static void test_groups_merge(void)
{
    cJSON *a = cJSON_Parse(
        "[{\"key\":{\"volume_type\":\"gp3\",\"instance_tag:team\":\"a\"},\"total_gib\":10,"
        "\"volume_count\":1,\"instance_count\":1},"
        "{\"key\":{\"volume_type\":\"gp2\",\"instance_tag:team\":null},\"total_gib\":5,"
        "\"volume_count\":2,\"instance_count\":2}]");
    cJSON *b = cJSON_Parse(
        "[{\"key\":{\"volume_type\":\"io2\",\"instance_tag:team\":\"a\"},\"total_gib\":15,"
        "\"volume_count\":1,\"instance_count\":1},"
        "{\"key\":{\"volume_type\":\"gp2\",\"instance_tag:team\":null},\"total_gib\":10,"
        "\"volume_count\":3,\"instance_count\":1},"
        "{\"key\":{\"volume_type\":\"gp3\",\"instance_tag:team\":\"a\"},\"total_gib\":5,"
        "\"volume_count\":1,\"instance_count\":1}]");
    const cJSON *lists[] = {a, NULL, b}; /* a target that answered no groups is skipped */
    const char *keys[] = {"volume_type", "instance_tag:team"};
    cJSON *m = answer_groups_merge(keys, 2, lists, 3);
    /* 15, 15, 15: ties by the values, volume_type first: gp2 < gp3 < io2 */
    CHECK_INT(cJSON_GetArraySize(m), 3);
    const cJSON *g0 = cJSON_GetArrayItem(m, 0), *g1 = cJSON_GetArrayItem(m, 1),
                *g2 = cJSON_GetArrayItem(m, 2);
    CHECK_STR(key_value(g0, "volume_type"), "gp2");
    CHECK_STR(key_value(g0, "instance_tag:team"), "(null)");
    CHECK_INT(num(g0, "total_gib"), 15);
    CHECK_INT(num(g0, "volume_count"), 5);
    CHECK_INT(num(g0, "instance_count"), 3);
    CHECK_STR(key_value(g1, "volume_type"), "gp3");
    CHECK_INT(num(g1, "volume_count"), 2);
    CHECK_STR(key_value(g2, "volume_type"), "io2");
    cJSON_Delete(m);
    /* a null sorts before any value on a tie, as in answer_groups */
    cJSON *c = cJSON_Parse("[{\"key\":{\"t\":\"\"},\"total_gib\":1,\"volume_count\":1,"
                           "\"instance_count\":1},{\"key\":{\"t\":null},\"total_gib\":1,"
                           "\"volume_count\":1,\"instance_count\":1}]");
    const cJSON *one[] = {c};
    const char *tk[] = {"t"};
    m = answer_groups_merge(tk, 1, one, 1);
    CHECK_STR(key_value(cJSON_GetArrayItem(m, 0), "t"), "(null)");
    CHECK_STR(key_value(cJSON_GetArrayItem(m, 1), "t"), "");
    cJSON_Delete(m);
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
}

static const char *field(const cJSON *arr, int i, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, i), k));
}

/* account=all on /volumes/unattached: sums, tallies, and the lists merged to the limit. */
static void test_unattached_merge(void)
{
    struct wire_vol v[3];
    vol(&v[0], "vol-1", 50);
    snprintf(v[0].create_time, sizeof v[0].create_time, "2020-01-01T00:00:00Z");
    snprintf(v[0].az, sizeof v[0].az, "us-east-1a");
    vol(&v[1], "vol-2", 20);
    snprintf(v[1].create_time, sizeof v[1].create_time, "2017-01-01T00:00:00Z");
    snprintf(v[1].az, sizeof v[1].az, "us-east-1b");
    cJSON *x = answer_unattached("us-east-1", v, 2, tags, 2);
    vol(&v[0], "vol-1", 50); /* the same id in another target: ties go by account */
    snprintf(v[0].create_time, sizeof v[0].create_time, "2019-01-01T00:00:00.000Z");
    snprintf(v[0].az, sizeof v[0].az, "eu-west-1a");
    vol(&v[1], "vol-0", 10);
    snprintf(v[1].type, sizeof v[1].type, "gp3");
    snprintf(v[1].create_time, sizeof v[1].create_time, "2018-06-01T00:00:00Z");
    snprintf(v[1].az, sizeof v[1].az, "eu-west-1a");
    cJSON *y = answer_unattached("eu-west-1", v, 2, tags, 2);
    struct answer_part parts[] = {{x, "prod", "us-east-1"}, {y, "dev", "eu-west-1"}};
    cJSON *o = cJSON_CreateObject();
    answer_unattached_merge(o, parts, 2, 2);
    CHECK_INT(num(o, "total_gib"), 130);
    CHECK_INT(num(o, "volume_count"), 4);
    CHECK_INT(num(o, "limit"), 2);
    const cJSON *bt = cJSON_GetObjectItemCaseSensitive(o, "by_type");
    CHECK_INT(num(cJSON_GetObjectItemCaseSensitive(bt, "io2"), "total_gib"), 120);
    CHECK_INT(num(cJSON_GetObjectItemCaseSensitive(bt, "io2"), "volume_count"), 3);
    CHECK_INT(num(cJSON_GetObjectItemCaseSensitive(bt, "gp3"), "total_gib"), 10);
    const cJSON *az = cJSON_GetObjectItemCaseSensitive(o, "by_availability_zone");
    CHECK_INT(num(cJSON_GetObjectItemCaseSensitive(az, "eu-west-1a"), "volume_count"), 2);
    const cJSON *largest = cJSON_GetObjectItemCaseSensitive(o, "largest");
    CHECK_INT(cJSON_GetArraySize(largest), 2);
    CHECK_STR(field(largest, 0, "volume_id"), "vol-1");
    CHECK_STR(field(largest, 0, "account"), "dev"); /* 50 and 50, same id: dev < prod */
    CHECK_STR(field(largest, 0, "region"), "eu-west-1");
    CHECK_STR(field(largest, 1, "account"), "prod");
    const cJSON *oldest = cJSON_GetObjectItemCaseSensitive(o, "oldest");
    CHECK_INT(cJSON_GetArraySize(oldest), 2);
    CHECK_STR(field(oldest, 0, "volume_id"), "vol-2"); /* 2017, prod */
    CHECK_STR(field(oldest, 0, "account"), "prod");
    CHECK_STR(field(oldest, 1, "volume_id"), "vol-0"); /* 2018, dev */
    CHECK_STR(field(oldest, 1, "region"), "eu-west-1");
    cJSON_Delete(o);
    cJSON_Delete(x);
    cJSON_Delete(y);
}

TEST_MAIN(T(test_groups), T(test_unattached), T(test_groups_merge), T(test_unattached_merge),
          T(test_total_counts_all_16_attachments), T(test_total_skips_detached),
          T(test_instance_sixteenth_attachment), T(test_outcome_mapping), T(test_outcome_ok))
