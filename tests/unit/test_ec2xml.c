/* test_ec2xml.c - the EC2 XML parser against every captured fixture in ec2-fixtures/ (and
 * botocore's JSON twins), every prefix of them, and malformed, oversized and hostile input. */
#include <cjson/cJSON.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ec2.h"
#include "ec2xml.h"
#include "harness.h"
#include "mem.h"

enum want { W_INST, W_VOL, W_ERR, W_OTHER };

/* What each fixture is, for the ones without a botocore JSON twin (and the kind of all). */
struct fixture {
    const char *suffix;  /* path suffix under ec2-fixtures/ */
    enum want want;
    int n;               /* items (instances or volumes) */
    const char *first_id, *last_id;
    const char *code;    /* for errors */
    const char *request_id;
};

static const struct fixture fixtures[] = {
    {"botocore/tests/unit/response_parsing/xml/errors/ec2-describe-instances.xml", W_ERR, 0,
     NULL, NULL, "InvalidInstanceID.Malformed", "dfb14b43-9a55-4d8e-b676-e8034d12bbeb"},
    {"responses/ec2-attach-volume.xml", W_OTHER, 0, NULL, NULL, NULL, NULL},
    {"responses/ec2-detach-volume.xml", W_OTHER, 0, NULL, NULL, NULL, NULL},
    {"responses/ec2-describe-instances.xml", W_INST, 2, "i-fde9cece", "i-78f1b94a", NULL, NULL},
    {"responses/ec2-describe-volumes.xml", W_VOL, 2, "vol-bc71579a", "vol-a8d2e991", NULL, NULL},
    {"responses/ec2-describe-reserved-instances-offerings.xml", W_OTHER, 0, NULL, NULL, NULL,
     NULL},
    {"responses/ec2-describe-spot-price-history.xml", W_OTHER, 0, NULL, NULL, NULL, NULL},
    {"apis/ec2/src/test/resources/describe_instances_empty.xml", W_INST, 0, NULL, NULL, NULL,
     NULL},
    {"apis/ec2/src/test/resources/describe_volumes.xml", W_VOL, 2, "vol-2a21e543",
     "vol-4282672b", NULL, NULL},
    {"apis/ec2/src/test/resources/describe_volumes_single.xml", W_VOL, 1, "vol-4282672b",
     "vol-4282672b", NULL, NULL},
    {"describe_instances_2.xml", W_INST, 18, "i-8f348aee", "i-059c2564", NULL, NULL},
    {"describe_instances_3.xml", W_INST, 0, NULL, NULL, NULL, NULL},
    {"dry_run.xml", W_ERR, 0, NULL, NULL, "DryRunOperation", NULL},
    {"ec2/attach_volume.xml", W_OTHER, 0, NULL, NULL, NULL, NULL},
    {"ec2/detach_volume.xml", W_OTHER, 0, NULL, NULL, NULL, NULL},
    {"ec2/describe_instances.xml", W_INST, 2, "i-4382922a", "i-8474834a", NULL, NULL},
    {"ec2/describe_volumes.xml", W_VOL, 3, "vol-10ae5e2b", "vol-b6c851ec", NULL, NULL},
    {"ec2/describe_key_pairs_doesnt_exist.xml", W_ERR, 0, NULL, NULL, "InvalidKeyPair.NotFound",
     NULL},
    {"ec2/run_instances_idem_mismatch.xml", W_ERR, 0, NULL, NULL, "IdempotentParameterMismatch",
     "5dabd361-d2e0-4f79-937d-4b2852a3b719"},
};

#define MAX_FILES 64
static char *found[MAX_FILES];
static size_t nfound;

static int collect(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    size_t n = strlen(path);
    if (type == FTW_F && n > 4 && strcmp(path + n - 4, ".xml") == 0 && nfound < MAX_FILES)
        found[nfound++] = xstrdup(path);
    return 0;
}

static const struct fixture *fixture_for(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        size_t m = strlen(fixtures[i].suffix);
        if (n >= m && strcmp(path + n - m, fixtures[i].suffix) == 0)
            return &fixtures[i];
    }
    return NULL;
}

/* A one-line summary of a parse result, to compare whole results cheaply. */
static char *digest_instances(ebsd_status st, const struct ec2_instance_page *p,
                              const struct ec2_error *e)
{
    struct buf b;
    buf_init(&b, 1 << 24);
    CHECK(buf_printf(&b, "%d|", (int)st) == EBSD_OK);
    if (st == EBSD_OK) {
        CHECK(buf_printf(&b, "%zu|%s|", p->n, p->next_token ? p->next_token : "-") == EBSD_OK);
        for (size_t i = 0; i < p->n; i++)
            CHECK(buf_printf(&b, "%s,%s,%s,%s;", p->items[i].id, p->items[i].state,
                             p->items[i].type, p->items[i].az) == EBSD_OK);
    } else if (st == EBSD_EUPSTREAM) {
        CHECK(buf_printf(&b, "%s|%s|%s", e->code, e->message, e->request_id) == EBSD_OK);
    }
    return buf_steal(&b);
}

static char *digest_volumes(ebsd_status st, const struct ec2_volume_page *p,
                            const struct ec2_error *e)
{
    struct buf b;
    buf_init(&b, 1 << 24);
    CHECK(buf_printf(&b, "%d|", (int)st) == EBSD_OK);
    if (st == EBSD_OK) {
        CHECK(buf_printf(&b, "%zu|%s|", p->n, p->next_token ? p->next_token : "-") == EBSD_OK);
        for (size_t i = 0; i < p->n; i++) {
            const struct ec2_volume *v = &p->items[i];
            CHECK(buf_printf(&b, "%s,%lld,%s,%d,%d,%s,%d,%d[", v->id, (long long)v->size_gib,
                             v->type, v->iops, v->throughput, v->state, v->encrypted,
                             v->multi_attach) == EBSD_OK);
            for (size_t a = 0; a < v->nattach; a++)
                CHECK(buf_printf(&b, "%s,%s,%s,%d;", v->attach[a].instance_id,
                                 v->attach[a].device, v->attach[a].state,
                                 v->attach[a].delete_on_termination) == EBSD_OK);
            CHECK(buf_puts(&b, "]") == EBSD_OK);
        }
    } else if (st == EBSD_EUPSTREAM) {
        CHECK(buf_printf(&b, "%s|%s|%s", e->code, e->message, e->request_id) == EBSD_OK);
    }
    return buf_steal(&b);
}

static char *run_digest(enum want w, const char *xml, size_t len)
{
    struct ec2_error e;
    if (w == W_VOL) {
        struct ec2_volume_page p = {0};
        ebsd_status st = ec2_parse_volumes(xml, len, true, &p, &e);
        char *d = digest_volumes(st, &p, &e);
        if (st == EBSD_OK)
            ec2_volume_page_free(&p);
        return d;
    }
    if (w == W_ERR) {
        ebsd_status st = ec2_parse_error(xml, len, &e);
        return xasprintf("%d|%s|%s|%s", (int)st, st == EBSD_OK ? e.code : "",
                         st == EBSD_OK ? e.message : "", st == EBSD_OK ? e.request_id : "");
    }
    struct ec2_instance_page p = {0};
    ebsd_status st = ec2_parse_instances(xml, len, true, &p, &e);
    char *d = digest_instances(st, &p, &e);
    if (st == EBSD_OK)
        ec2_instance_page_free(&p);
    return d;
}

/* The same document fed to a stream in pieces of `piece` bytes. */
static char *stream_digest(enum want w, const char *xml, size_t len, size_t piece)
{
    struct ec2xml_stream *xs = ec2xml_stream_new(w == W_VOL, true);
    ebsd_status fed = EBSD_OK;
    for (size_t off = 0; off < len && fed == EBSD_OK; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        char *cut = xmalloc(n); /* exact size: ASan sees any overread */
        memcpy(cut, xml + off, n);
        fed = ec2xml_stream_feed(xs, cut, n);
        free(cut);
    }
    struct ec2_error e;
    char *d;
    if (w == W_VOL) {
        struct ec2_volume_page p = {0};
        ebsd_status st = ec2xml_stream_end(xs, &p, &e);
        CHECK(fed == EBSD_OK || st == fed); /* a feed's failure is the outcome */
        d = digest_volumes(st, &p, &e);
        if (st == EBSD_OK)
            ec2_volume_page_free(&p);
    } else {
        struct ec2_instance_page p = {0};
        ebsd_status st = ec2xml_stream_end(xs, &p, &e);
        CHECK(fed == EBSD_OK || st == fed);
        d = digest_instances(st, &p, &e);
        if (st == EBSD_OK)
            ec2_instance_page_free(&p);
    }
    ec2xml_stream_free(xs);
    return d;
}

/* Fed in pieces of any size, a document gives what it gives whole (as a response body
 * arrives from the network). */
static void check_pieces(const char *path, const char *xml, size_t len)
{
    static const size_t pieces[] = {1, 2, 3, 7, 64, 1000, 4096, 65537};
    for (enum want w = W_INST; w <= W_VOL; w++) {
        char *full = run_digest(w, xml, len);
        for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
            if (pieces[i] < 64 && len > 200000)
                continue; /* byte by byte through a big file proves nothing more */
            char *d = stream_digest(w, xml, len, pieces[i]);
            if (strcmp(d, full) != 0)
                fprintf(stderr, "%s: pieces of %zu gave %.200s\n", path, pieces[i], d);
            CHECK_STR(d, full);
            free(d);
        }
        free(full);
    }
}

/* Every prefix (sampled for big files) parses to a clean EBSD_EPARSE or to the full result,
 * never to a partial one. */
static void check_prefixes(const char *path, enum want w, const char *xml, size_t len)
{
    char *full = run_digest(w, xml, len);
    char parse_err[16];
    snprintf(parse_err, sizeof parse_err, "%d|", (int)EBSD_EPARSE);
    size_t stride = len <= 65536 ? 1 : len / 2048;
    size_t bad = 0, tried = 0;
    for (size_t l = 0; l < len; l += (l + 1024 >= len ? 1 : stride)) {
        char *cut = xmalloc(l ? l : 1); /* exact size: ASan sees any overread */
        memcpy(cut, xml, l);
        char *d = run_digest(w, cut, l);
        tried++;
        if (strcmp(d, full) != 0 && strncmp(d, parse_err, strlen(parse_err)) != 0) {
            if (bad++ < 3)
                fprintf(stderr, "%s: prefix %zu gave %.200s\n", path, l, d);
        }
        free(cut);
        free(d);
    }
    CHECK_INT(bad, 0);
    CHECK(tried > 0);
    free(full);
}

static char *twin_path(const char *xml_path)
{
    size_t n = strlen(xml_path);
    return xasprintf("%.*s.json", (int)(n - 4), xml_path);
}

static cJSON *load_json(const char *path)
{
    size_t len;
    char *text = harness_read_file(path, &len);
    if (!text)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void compare_instances_twin(const struct ec2_instance_page *p, const cJSON *j)
{
    size_t k = 0;
    const cJSON *res;
    cJSON_ArrayForEach(res, cJSON_GetObjectItemCaseSensitive(j, "Reservations"))
    {
        const cJSON *in;
        cJSON_ArrayForEach(in, cJSON_GetObjectItemCaseSensitive(res, "Instances"))
        {
            CHECK(k < p->n);
            if (k >= p->n)
                return;
            const struct ec2_instance *i = &p->items[k++];
            CHECK_STR(i->id, jstr(in, "InstanceId"));
            CHECK_STR(i->type, jstr(in, "InstanceType"));
            CHECK_STR(i->state, jstr(cJSON_GetObjectItemCaseSensitive(in, "State"), "Name"));
            CHECK_STR(i->az,
                      jstr(cJSON_GetObjectItemCaseSensitive(in, "Placement"), "AvailabilityZone"));
        }
    }
    CHECK_INT(k, p->n);
    CHECK(p->next_token == NULL && jstr(j, "NextToken") == NULL);
}

static void compare_volumes_twin(const struct ec2_volume_page *p, const cJSON *j)
{
    size_t k = 0;
    const cJSON *jv;
    cJSON_ArrayForEach(jv, cJSON_GetObjectItemCaseSensitive(j, "Volumes"))
    {
        CHECK(k < p->n);
        if (k >= p->n)
            return;
        const struct ec2_volume *v = &p->items[k++];
        CHECK_STR(v->id, jstr(jv, "VolumeId"));
        CHECK_STR(v->state, jstr(jv, "State"));
        CHECK_STR(v->type, jstr(jv, "VolumeType"));
        CHECK_INT(v->size_gib, cJSON_GetObjectItemCaseSensitive(jv, "Size")->valuedouble);
        size_t a = 0;
        const cJSON *ja;
        cJSON_ArrayForEach(ja, cJSON_GetObjectItemCaseSensitive(jv, "Attachments"))
        {
            CHECK(a < v->nattach);
            if (a >= v->nattach)
                return;
            const struct ec2_attachment *at = &v->attach[a++];
            CHECK_STR(at->instance_id, jstr(ja, "InstanceId"));
            CHECK_STR(at->device, jstr(ja, "Device"));
            CHECK_STR(at->state, jstr(ja, "State"));
            CHECK(at->delete_on_termination ==
                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ja, "DeleteOnTermination")));
        }
        CHECK_INT(a, v->nattach);
    }
    CHECK_INT(k, p->n);
    CHECK(p->next_token == NULL && jstr(j, "NextToken") == NULL);
}

/* Replaces the root element's name (open and close tags) so a foreign Describe answer can
 * stand in for a DescribeInstances page: its nextToken must be found, its items ignored. */
static char *rename_root(const char *xml, size_t len, const char *from, const char *to,
                         size_t *outlen)
{
    struct buf b;
    buf_init(&b, len * 2 + 64);
    size_t fl = strlen(from);
    for (size_t i = 0; i < len;) {
        if (i + fl <= len && memcmp(xml + i, from, fl) == 0 && i > 0 &&
            (xml[i - 1] == '<' || xml[i - 1] == '/')) {
            CHECK(buf_puts(&b, to) == EBSD_OK);
            i += fl;
        } else {
            CHECK(buf_append(&b, xml + i, 1) == EBSD_OK);
            i++;
        }
    }
    *outlen = b.len;
    return buf_steal(&b);
}

static void check_other_with_token(const char *path, const char *xml, size_t len,
                                   const cJSON *twin)
{
    const char *token = jstr(twin, "NextToken");
    const char *root_end = strstr(xml, "Response");
    const char *root_start = root_end;
    while (root_start > xml && root_start[-1] != '<')
        root_start--;
    char *from = xstrndup(root_start, (size_t)(root_end - root_start) + strlen("Response"));
    size_t n1, n2;
    char *asi = rename_root(xml, len, from, "DescribeInstancesResponse", &n1);
    char *asv = rename_root(xml, len, from, "DescribeVolumesResponse", &n2);
    struct ec2_instance_page ip = {0};
    struct ec2_volume_page vp = {0};
    struct ec2_error e;
    CHECK_INT(ec2_parse_instances(asi, n1, true, &ip, &e), EBSD_OK);
    CHECK_INT(ip.n, 0); /* set items of another answer are not instances */
    CHECK_STR(ip.next_token, token);
    CHECK_INT(ec2_parse_volumes(asv, n2, true, &vp, &e), EBSD_OK);
    CHECK_INT(vp.n, 0);
    CHECK_STR(vp.next_token, token);
    check_prefixes(path, W_INST, asi, n1);
    ec2_instance_page_free(&ip);
    ec2_volume_page_free(&vp);
    free(asi);
    free(asv);
    free(from);
}

static void check_fixture(const char *path)
{
    const struct fixture *fx = fixture_for(path);
    CHECK(fx != NULL);
    if (!fx) {
        fprintf(stderr, "fixture without expectations: %s\n", path);
        return;
    }
    size_t len;
    char *xml = harness_read_file(path, &len);
    CHECK(xml != NULL);
    if (!xml)
        return;
    char *tp = twin_path(path);
    cJSON *twin = load_json(tp);
    struct ec2_instance_page ip = {0};
    struct ec2_volume_page vp = {0};
    struct ec2_error e, e2, e3;
    ebsd_status sti = ec2_parse_instances(xml, len, true, &ip, &e);
    ebsd_status stv = ec2_parse_volumes(xml, len, true, &vp, &e2);
    ebsd_status ste = ec2_parse_error(xml, len, &e3);
    check_pieces(path, xml, len);

    switch (fx->want) {
    case W_INST:
        CHECK_INT(sti, EBSD_OK);
        CHECK_INT(stv, EBSD_EPARSE);
        CHECK_INT(ste, EBSD_EPARSE);
        CHECK_INT(ip.n, fx->n);
        CHECK(ip.next_token == NULL);
        if (fx->n && ip.n == (size_t)fx->n) {
            CHECK_STR(ip.items[0].id, fx->first_id);
            CHECK_STR(ip.items[ip.n - 1].id, fx->last_id);
            for (size_t i = 0; i < ip.n; i++) {
                CHECK(ec2_instance_id_valid(ip.items[i].id));
                CHECK(ip.items[i].state[0] && ip.items[i].type[0] && ip.items[i].az[0]);
            }
        }
        if (twin)
            compare_instances_twin(&ip, twin);
        break;
    case W_VOL:
        CHECK_INT(stv, EBSD_OK);
        CHECK_INT(sti, EBSD_EPARSE);
        CHECK_INT(ste, EBSD_EPARSE);
        CHECK_INT(vp.n, fx->n);
        CHECK(vp.next_token == NULL);
        if (fx->n && vp.n == (size_t)fx->n) {
            CHECK_STR(vp.items[0].id, fx->first_id);
            CHECK_STR(vp.items[vp.n - 1].id, fx->last_id);
        }
        if (twin)
            compare_volumes_twin(&vp, twin);
        break;
    case W_ERR:
        CHECK_INT(sti, EBSD_EUPSTREAM);
        CHECK_INT(stv, EBSD_EUPSTREAM);
        CHECK_INT(ste, EBSD_OK);
        CHECK_STR(e.code, fx->code);
        CHECK_STR(e2.code, fx->code);
        CHECK_STR(e3.code, fx->code);
        CHECK(e3.message[0] != '\0');
        CHECK(e3.message[0] != ' ' && e3.message[0] != '\n');
        CHECK(e3.message[strlen(e3.message) - 1] != ' ' &&
              e3.message[strlen(e3.message) - 1] != '\n');
        if (fx->request_id)
            CHECK_STR(e3.request_id, fx->request_id);
        if (twin) {
            const cJSON *je = cJSON_GetObjectItemCaseSensitive(twin, "Error");
            CHECK_STR(e3.code, jstr(je, "Code"));
            CHECK_STR(e3.message, jstr(je, "Message"));
            CHECK_STR(e3.request_id,
                      jstr(cJSON_GetObjectItemCaseSensitive(twin, "ResponseMetadata"),
                           "RequestId"));
        }
        break;
    case W_OTHER:
        /* Not a Describe answer: a clean "unexpected root" error from every parser. */
        CHECK_INT(sti, EBSD_EPARSE);
        CHECK_INT(stv, EBSD_EPARSE);
        CHECK_INT(ste, EBSD_EPARSE);
        CHECK(strstr(e.message, "unexpected root") != NULL);
        if (twin && jstr(twin, "NextToken"))
            check_other_with_token(path, xml, len, twin);
        break;
    }
    if (sti == EBSD_OK)
        ec2_instance_page_free(&ip);
    if (stv == EBSD_OK)
        ec2_volume_page_free(&vp);
    check_prefixes(path, fx->want, xml, len);
    cJSON_Delete(twin);
    free(tp);
    free(xml);
}

static void test_every_fixture(void)
{
    const char *dir = harness_shared_path("ec2-fixtures");
    char *d = xstrdup(dir);
    nfound = 0;
    CHECK_INT(nftw(d, collect, 16, FTW_PHYS), 0);
    CHECK(nfound >= sizeof fixtures / sizeof fixtures[0]);
    size_t matched[sizeof fixtures / sizeof fixtures[0]] = {0};
    for (size_t i = 0; i < nfound; i++) {
        const struct fixture *fx = fixture_for(found[i]);
        if (fx)
            matched[fx - fixtures]++;
        check_fixture(found[i]);
        free(found[i]);
    }
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        if (matched[i] != 1)
            fprintf(stderr, "fixture %s matched %zu files\n", fixtures[i].suffix, matched[i]);
        CHECK_INT(matched[i], 1);
    }
    printf("  %zu fixture files parsed\n", nfound);
    free(d);
}

static void test_fields(void)
{
    size_t len;
    char *xml = harness_read_file(
        harness_shared_path("ec2-fixtures/libcloud/libcloud/test/compute/fixtures/ec2/describe_volumes.xml"),
        &len);
    CHECK(xml != NULL);
    if (!xml)
        return;
    struct ec2_volume_page p = {0};
    struct ec2_error e;
    CHECK_INT(ec2_parse_volumes(xml, len, true, &p, &e), EBSD_OK);
    CHECK_INT(p.n, 3);
    if (p.n == 3) {
        CHECK_STR(p.items[0].type, ""); /* volumeType missing */
        CHECK_INT(p.items[0].nattach, 0);
        CHECK_STR(p.items[1].state, "in-use");
        CHECK_INT(p.items[1].nattach, 0); /* <attachmentSet/> */
        CHECK_STR(p.items[2].state, "unknown"); /* some-unknown-status does not fit */
        CHECK_INT(p.items[2].size_gib, 8);
        CHECK_INT(p.items[2].nattach, 1);
        CHECK_STR(p.items[2].attach[0].instance_id, "i-d334b4b3");
        CHECK(p.items[2].attach[0].delete_on_termination);
    }
    ec2_volume_page_free(&p);
    free(xml);

    xml = harness_read_file(harness_shared_path("ec2-fixtures/jclouds/apis/ec2/src/test/resources/"
                                                "describe_volumes.xml"),
                            &len);
    CHECK(xml != NULL);
    if (!xml)
        return;
    CHECK_INT(ec2_parse_volumes(xml, len, true, &p, &e), EBSD_OK);
    CHECK_INT(p.n, 2);
    if (p.n == 2) {
        CHECK_INT(p.items[1].size_gib, 800);
        CHECK_INT(p.items[1].iops, 0);
        CHECK(!p.items[1].encrypted);
        CHECK_INT(p.items[1].nattach, 1);
        CHECK(!p.items[1].attach[0].delete_on_termination); /* absent */
        CHECK_STR(p.items[1].attach[0].device, "/dev/sdh");
    }
    ec2_volume_page_free(&p);
    free(xml);
}

static ebsd_status inst(const char *xml, struct ec2_instance_page *p, struct ec2_error *e)
{
    memset(p, 0, sizeof *p);
    return ec2_parse_instances(xml, strlen(xml), true, p, e);
}

#define ONE_INSTANCE                                                                          \
    "<reservationSet><item><reservationId>r-1</reservationId>"                               \
    "<groupSet><item><groupId>sg-1</groupId><instanceId>i-99999999</instanceId></item></groupSet>" \
    "<instancesSet><item><instanceId>i-0123456789abcdef0</instanceId>"                       \
    "<instanceState><code>16</code><name>running</name></instanceState>"                     \
    "<instanceType>m5.large</instanceType><placement><availabilityZone>us-east-1a"            \
    "</availabilityZone></placement>"                                                         \
    "<blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs><volumeId>vol-1"        \
    "</volumeId></ebs></item></blockDeviceMapping>"                                           \
    "<tagSet><item><key>Name</key><value/></item><item><key>instanceId</key></item></tagSet>" \
    "<networkInterfaceSet><item><attachment><instanceId>i-77777777</instanceId></attachment>"  \
    "</item></networkInterfaceSet></item></instancesSet></item></reservationSet>"

static void test_namespaces(void)
{
    static const char *const heads[] = {
        "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">",
        "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15\">",
        "<DescribeInstancesResponse>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse>",
        "<?xml version=\"1.0\"?><DescribeInstancesResponse xmlns=\"urn:x\">",
        "\xEF\xBB\xBF<DescribeInstancesResponse>", /* a BOM */
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        char *xml = xasprintf("%s<requestId>abc</requestId>" ONE_INSTANCE
                              "<nextToken> tok/en= </nextToken></DescribeInstancesResponse>\n",
                              heads[i]);
        struct ec2_instance_page p;
        struct ec2_error e;
        CHECK_INT(inst(xml, &p, &e), EBSD_OK);
        CHECK_INT(p.n, 1); /* the groupSet, tagSet, bdm and eni items are not instances */
        if (p.n == 1) {
            CHECK_STR(p.items[0].id, "i-0123456789abcdef0");
            CHECK_STR(p.items[0].state, "running");
            CHECK_STR(p.items[0].type, "m5.large");
            CHECK_STR(p.items[0].az, "us-east-1a");
        }
        CHECK_STR(p.next_token, "tok/en=");
        ec2_instance_page_free(&p);
        free(xml);
    }
    /* A namespace prefix on every element. */
    const char *pref = "<ec2:DescribeInstancesResponse xmlns:ec2=\"http://ec2.amazonaws.com/doc/"
                       "2016-11-15/\"><ec2:reservationSet><ec2:item><ec2:instancesSet><ec2:item>"
                       "<ec2:instanceId>i-12345678</ec2:instanceId></ec2:item></ec2:instancesSet>"
                       "</ec2:item></ec2:reservationSet><ec2:nextToken/>"
                       "</ec2:DescribeInstancesResponse>";
    struct ec2_instance_page p;
    struct ec2_error e;
    CHECK_INT(inst(pref, &p, &e), EBSD_OK);
    CHECK_INT(p.n, 1);
    CHECK(p.next_token == NULL); /* empty = none */
    ec2_instance_page_free(&p);
    /* ISO-8859-1 declared and used. */
    const char *latin = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Response><Errors><Error>"
                        "<Code>X</Code><Message>caf\xE9</Message></Error></Errors></Response>";
    CHECK_INT(ec2_parse_error(latin, strlen(latin), &e), EBSD_OK);
    CHECK_STR(e.message, "caf\xC3\xA9");
}

static void test_error_envelope(void)
{
    struct ec2_error e;
    const char *two = "<Response><Errors><Error><Code>AuthFailure</Code><Message>\n  no\n  "
                      "</Message></Error><Error><Code>Second</Code></Error></Errors>"
                      "<RequestID> req-1 </RequestID></Response>";
    CHECK_INT(ec2_parse_error(two, strlen(two), &e), EBSD_OK);
    CHECK_STR(e.code, "AuthFailure");
    CHECK_STR(e.message, "no");
    CHECK_STR(e.request_id, "req-1");
    const char *nocode = "<Response><Errors><Error><Message>m</Message></Error></Errors></Response>";
    CHECK_INT(ec2_parse_error(nocode, strlen(nocode), &e), EBSD_EPARSE);
    struct ec2_instance_page p;
    CHECK_INT(inst(nocode, &p, &e), EBSD_EPARSE);
    /* A long message is cut to the field, on a UTF-8 boundary. */
    struct buf b;
    buf_init(&b, 1 << 20);
    CHECK(buf_puts(&b, "<Response><Errors><Error><Code>C</Code><Message>") == EBSD_OK);
    for (int i = 0; i < 400; i++)
        CHECK(buf_puts(&b, "\xC3\xA9") == EBSD_OK);
    CHECK(buf_puts(&b, "</Message></Error></Errors></Response>") == EBSD_OK);
    CHECK_INT(ec2_parse_error(b.data, b.len, &e), EBSD_OK);
    CHECK(strlen(e.message) <= sizeof e.message - 1);
    CHECK(strlen(e.message) % 2 == 0);
    buf_free(&b);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "",
        " ",
        "not xml",
        "<DescribeInstancesResponse>",
        "<DescribeInstancesResponse></DescribeVolumesResponse>",
        "<DescribeInstancesResponse><reservationSet></DescribeInstancesResponse>",
        "<DescribeInstancesResponse/><DescribeInstancesResponse/>",
        "<DescribeInstancesResponse>&undefined;</DescribeInstancesResponse>",
        "<DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceState>"
        "<name>running</name></instanceState></item></instancesSet></item></reservationSet>"
        "</DescribeInstancesResponse>", /* instance without an id */
        "<DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceId>"
        "i-0123456789abcdef0123456789</instanceId></item></instancesSet></item></reservationSet>"
        "</DescribeInstancesResponse>", /* id longer than the field */
        "<DescribeInstancesResponse>\xff\xfe</DescribeInstancesResponse>",
        "<AttachVolumeResponse><instanceId>i-12345678</instanceId></AttachVolumeResponse>",
        "<DescribeVolumesResponse/>",
        "<Errors><Error><Code>X</Code></Error></Errors>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ec2_instance_page p;
        struct ec2_error e;
        ebsd_status st = inst(bad[i], &p, &e);
        if (st != EBSD_EPARSE)
            fprintf(stderr, "case %zu: %d\n", i, (int)st);
        CHECK_INT(st, EBSD_EPARSE);
        CHECK(e.message[0] != '\0');
    }
    /* A NUL inside the document. */
    const char nul[] = "<DescribeInstancesResponse>\0</DescribeInstancesResponse>";
    struct ec2_instance_page p;
    struct ec2_error e;
    memset(&p, 0, sizeof p);
    CHECK_INT(ec2_parse_instances(nul, sizeof nul - 1, true, &p, &e), EBSD_EPARSE);

    static const char *const badvol[] = {
        "<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId><size>x</size>"
        "</item></volumeSet></DescribeVolumesResponse>",
        "<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId><size>-1</size>"
        "</item></volumeSet></DescribeVolumesResponse>",
        "<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId>"
        "</item></volumeSet></DescribeVolumesResponse>", /* no size */
        "<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId><size>1</size>"
        "<encrypted>maybe</encrypted></item></volumeSet></DescribeVolumesResponse>",
        "<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId><size>1</size>"
        "<iops>99999999999</iops></item></volumeSet></DescribeVolumesResponse>",
        "<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId><size>1</size>"
        "<attachmentSet><item><device>/dev/x</device></item></attachmentSet></item></volumeSet>"
        "</DescribeVolumesResponse>", /* attachment without instance */
    };
    for (size_t i = 0; i < sizeof badvol / sizeof badvol[0]; i++) {
        struct ec2_volume_page vp = {0};
        ebsd_status st = ec2_parse_volumes(badvol[i], strlen(badvol[i]), true, &vp, &e);
        if (st != EBSD_EPARSE)
            fprintf(stderr, "volume case %zu: %d\n", i, (int)st);
        CHECK_INT(st, EBSD_EPARSE);
    }
}

static void test_hostile(void)
{
    struct ec2_instance_page p;
    struct ec2_error e;
    const char *laughs =
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
        "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
        "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
        "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
        "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
        "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"
        "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"
        "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"
        "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>"
        "<DescribeInstancesResponse><nextToken>&lol9;</nextToken></DescribeInstancesResponse>";
    CHECK_INT(inst(laughs, &p, &e), EBSD_EPARSE);
    CHECK(strstr(e.message, "DOCTYPE") != NULL);
    const char *xxe = "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
                      "<Response><Errors><Error><Code>&x;</Code></Error></Errors></Response>";
    CHECK_INT(ec2_parse_error(xxe, strlen(xxe), &e), EBSD_EPARSE);
    const char *dt = "<!DOCTYPE DescribeInstancesResponse><DescribeInstancesResponse/>";
    CHECK_INT(inst(dt, &p, &e), EBSD_EPARSE);

    /* Nesting deeper than the cap, inside an ignored element. */
    struct buf b;
    buf_init(&b, 1 << 26);
    CHECK(buf_puts(&b, "<DescribeInstancesResponse>") == EBSD_OK);
    for (int i = 0; i < 10000; i++)
        CHECK(buf_puts(&b, "<a>") == EBSD_OK);
    CHECK_INT(inst(b.data, &p, &e), EBSD_ETOOBIG);
    buf_reset(&b);
    /* Exactly at the cap is fine. */
    CHECK(buf_puts(&b, "<DescribeInstancesResponse>") == EBSD_OK);
    for (int i = 1; i < EC2XML_MAX_DEPTH; i++)
        CHECK(buf_puts(&b, "<a>") == EBSD_OK);
    for (int i = 1; i < EC2XML_MAX_DEPTH; i++)
        CHECK(buf_puts(&b, "</a>") == EBSD_OK);
    CHECK(buf_puts(&b, "</DescribeInstancesResponse>") == EBSD_OK);
    CHECK_INT(inst(b.data, &p, &e), EBSD_OK);
    ec2_instance_page_free(&p);
    buf_reset(&b);

    /* A captured text past the cap (nextToken); uncaptured text of any size is skipped. */
    CHECK(buf_puts(&b, "<DescribeInstancesResponse><nextToken>") == EBSD_OK);
    for (int i = 0; i < EC2XML_MAX_TEXT + 1; i++)
        CHECK(buf_puts(&b, "x") == EBSD_OK);
    CHECK(buf_puts(&b, "</nextToken></DescribeInstancesResponse>") == EBSD_OK);
    CHECK_INT(inst(b.data, &p, &e), EBSD_ETOOBIG);
    buf_reset(&b);
    CHECK(buf_puts(&b, "<DescribeInstancesResponse><description>") == EBSD_OK);
    for (int i = 0; i < 1000000; i++)
        CHECK(buf_puts(&b, "y") == EBSD_OK);
    CHECK(buf_puts(&b, "</description></DescribeInstancesResponse>") == EBSD_OK);
    CHECK_INT(inst(b.data, &p, &e), EBSD_OK);
    CHECK_INT(p.n, 0);
    ec2_instance_page_free(&p);
    buf_reset(&b);

    /* More items than the cap. */
    CHECK(buf_puts(&b, "<DescribeInstancesResponse><reservationSet><item><instancesSet>") ==
          EBSD_OK);
    for (int i = 0; i < EC2XML_MAX_ITEMS + 1; i++)
        CHECK(buf_printf(&b, "<item><instanceId>i-%08x</instanceId></item>", (unsigned)i) ==
              EBSD_OK);
    CHECK(buf_puts(&b, "</instancesSet></item></reservationSet></DescribeInstancesResponse>") ==
          EBSD_OK);
    CHECK_INT(inst(b.data, &p, &e), EBSD_ETOOBIG);
    buf_reset(&b);

    /* Too many attachments on one volume. */
    CHECK(buf_puts(&b, "<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId>"
                       "<size>1</size><attachmentSet>") == EBSD_OK);
    for (int i = 0; i < EC2XML_MAX_ATTACH + 1; i++)
        CHECK(buf_printf(&b, "<item><instanceId>i-%08x</instanceId></item>", (unsigned)i) ==
              EBSD_OK);
    CHECK(buf_puts(&b, "</attachmentSet></item></volumeSet></DescribeVolumesResponse>") ==
          EBSD_OK);
    struct ec2_volume_page vp = {0};
    CHECK_INT(ec2_parse_volumes(b.data, b.len, true, &vp, &e), EBSD_ETOOBIG);
    buf_free(&b);

    /* A document larger than the whole-document cap is refused before parsing. */
    size_t big = (size_t)EC2XML_MAX_BYTES + 1;
    char *huge = xmalloc(big);
    memset(huge, ' ', big);
    memset(&p, 0, sizeof p);
    CHECK_INT(ec2_parse_instances(huge, big, true, &p, &e), EBSD_ETOOBIG);
    free(huge);
}

static void test_many_volumes(void)
{
    /* A page of 500 volumes with multi-attach, gp3 throughput and every field. */
    struct buf b;
    buf_init(&b, 1 << 24);
    CHECK(buf_puts(&b, "<DescribeVolumesResponse xmlns=\"http://ec2.amazonaws.com/doc/"
                       "2016-11-15/\"><requestId>r</requestId><volumeSet>") == EBSD_OK);
    for (int i = 0; i < 500; i++)
        CHECK(buf_printf(&b,
                         "<item><volumeId>vol-%017x</volumeId><size>%d</size><snapshotId/>"
                         "<availabilityZone>us-east-1a</availabilityZone><status>in-use</status>"
                         "<attachmentSet><item><volumeId>vol-%017x</volumeId><instanceId>"
                         "i-%017x</instanceId><device>/dev/sdf</device><status>attached</status>"
                         "<deleteOnTermination>false</deleteOnTermination></item><item>"
                         "<instanceId>i-%017x</instanceId><device>/dev/sdg</device><status>"
                         "detaching</status><deleteOnTermination>true</deleteOnTermination>"
                         "</item></attachmentSet><volumeType>io2</volumeType><iops>3000</iops>"
                         "<throughput>125</throughput><encrypted>true</encrypted>"
                         "<multiAttachEnabled>true</multiAttachEnabled><tagSet><item><key>k"
                         "</key><value>v</value></item></tagSet></item>",
                         (unsigned)i, i + 1, (unsigned)i, (unsigned)i, (unsigned)i + 1) == EBSD_OK);
    CHECK(buf_puts(&b, "</volumeSet><nextToken>abc</nextToken></DescribeVolumesResponse>") ==
          EBSD_OK);
    struct ec2_volume_page p = {0};
    struct ec2_error e;
    CHECK_INT(ec2_parse_volumes(b.data, b.len, true, &p, &e), EBSD_OK);
    CHECK_INT(p.n, 500);
    int64_t total = 0;
    for (size_t i = 0; i < p.n; i++) {
        total += p.items[i].size_gib;
        CHECK_INT(p.items[i].nattach, 2);
        CHECK(p.items[i].multi_attach && p.items[i].encrypted);
        CHECK_INT(p.items[i].iops, 3000);
        CHECK_INT(p.items[i].throughput, 125);
        CHECK_STR(p.items[i].type, "io2");
    }
    CHECK_INT(total, 500 * 501 / 2);
    if (p.n == 500) {
        CHECK_STR(p.items[499].attach[1].state, "detaching");
        CHECK(p.items[499].attach[1].delete_on_termination);
        CHECK(!p.items[499].attach[0].delete_on_termination);
    }
    CHECK_STR(p.next_token, "abc");
    ec2_volume_page_free(&p);
    buf_free(&b);
}

/* Tags, a volume's zone and create time: what breakdowns need. Tags are capped: 50 per
 * item (EC2's limit; more are ignored), keys cut at 128 bytes and values at 256. */
static void test_tags_and_breakdown_fields(void)
{
    struct ec2_instance_page p;
    struct ec2_error e;
    CHECK_INT(inst("<DescribeInstancesResponse>" ONE_INSTANCE "</DescribeInstancesResponse>", &p, &e),
              EBSD_OK);
    CHECK_INT(p.n, 1);
    if (p.n == 1) {
        CHECK_STR(p.items[0].type, "m5.large");
        CHECK_INT(p.items[0].ntags, 2);
        CHECK_STR(p.items[0].tags[0].key, "Name");
        CHECK_STR(p.items[0].tags[0].value, "");
        CHECK_STR(p.items[0].tags[1].key, "instanceId"); /* a tag, not the instance's id */
        CHECK_STR(p.items[0].id, "i-0123456789abcdef0");
    }
    ec2_instance_page_free(&p);

    struct buf b;
    buf_init(&b, 1u << 20);
    CHECK(buf_puts(&b, "<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId>"
                       "<size>8</size><availabilityZone>us-east-1b</availabilityZone>"
                       "<createTime>2024-01-02T03:04:05.000Z</createTime><tagSet>") == EBSD_OK);
    for (int i = 0; i < 60; i++)
        CHECK(buf_printf(&b, "<item><key>k%d</key><value>v%d</value></item>", i, i) == EBSD_OK);
    CHECK(buf_puts(&b, "</tagSet><attachmentSet/></item><item><volumeId>vol-2"
                       "</volumeId><size>1</size><tagSet><item><value>no key</value></item>"
                       "<item><key>") == EBSD_OK);
    for (int i = 0; i < 300; i++)
        CHECK(buf_puts(&b, "k") == EBSD_OK);
    CHECK(buf_puts(&b, "</key><value>") == EBSD_OK);
    for (int i = 0; i < 20000; i++) /* past the parser's 8 KiB text cap: read past, cut */
        CHECK(buf_puts(&b, "v") == EBSD_OK);
    CHECK(buf_puts(&b, "</value></item></tagSet></item></volumeSet></DescribeVolumesResponse>") ==
          EBSD_OK);
    struct ec2_volume_page vp = {0};
    CHECK_INT(ec2_parse_volumes(b.data, b.len, true, &vp, &e), EBSD_OK);
    CHECK_INT(vp.n, 2);
    if (vp.n == 2) {
        CHECK_STR(vp.items[0].az, "us-east-1b");
        CHECK_STR(vp.items[0].create_time, "2024-01-02T03:04:05.000Z");
        CHECK_INT(vp.items[0].ntags, EC2_MAX_TAGS);
        CHECK_STR(vp.items[0].tags[49].key, "k49");
        CHECK_STR(vp.items[0].tags[49].value, "v49");
        CHECK_INT(vp.items[1].ntags, 1); /* a tag without a key is none */
        CHECK_INT(strlen(vp.items[1].tags[0].key), 128);
        CHECK_INT(strlen(vp.items[1].tags[0].value), 256);
    }
    ec2_volume_page_free(&vp);

    /* tags false (a query that needs none): the same volumes and fields, no tag kept */
    CHECK_INT(ec2_parse_volumes(b.data, b.len, false, &vp, &e), EBSD_OK);
    CHECK_INT(vp.n, 2);
    if (vp.n == 2) {
        CHECK_STR(vp.items[0].id, "vol-1");
        CHECK_STR(vp.items[0].az, "us-east-1b");
        CHECK_INT(vp.items[0].size_gib, 8);
        CHECK_INT(vp.items[0].ntags, 0);
        CHECK(vp.items[0].tags == NULL);
        CHECK_STR(vp.items[1].id, "vol-2");
        CHECK_INT(vp.items[1].ntags, 0);
    }
    ec2_volume_page_free(&vp);
    buf_free(&b);
    CHECK_INT(ec2_parse_instances("<DescribeInstancesResponse>" ONE_INSTANCE
                                  "</DescribeInstancesResponse>",
                                  strlen("<DescribeInstancesResponse>" ONE_INSTANCE
                                         "</DescribeInstancesResponse>"),
                                  false, &p, &e),
              EBSD_OK);
    CHECK_INT(p.n, 1);
    if (p.n == 1) {
        CHECK_STR(p.items[0].id, "i-0123456789abcdef0");
        CHECK_STR(p.items[0].type, "m5.large");
        CHECK_INT(p.items[0].ntags, 0);
    }
    ec2_instance_page_free(&p);
}

/* A stream is bounded like a whole document, counted over its pieces, and a failure in one
 * piece is the outcome whatever comes after. */
static void test_stream_bounds(void)
{
    static const char head[] = "<DescribeVolumesResponse><volumeSet>";
    struct ec2xml_stream *xs = ec2xml_stream_new(true, false);
    CHECK_INT(ec2xml_stream_feed(xs, head, sizeof head - 1), EBSD_OK);
    /* past the cap: refused on its length, before a byte of it is read */
    CHECK_INT(ec2xml_stream_feed(xs, head, EC2XML_MAX_BYTES), EBSD_ETOOBIG);
    struct ec2_volume_page p = {0};
    struct ec2_error e;
    CHECK_INT(ec2xml_stream_end(xs, &p, &e), EBSD_ETOOBIG);
    CHECK(strstr(e.message, "larger than") != NULL);
    CHECK(p.items == NULL);
    ec2xml_stream_free(xs);

    static const char bad[] = "<DescribeVolumesResponse><volumeSet></item>";
    static const char rest[] = "</volumeSet></DescribeVolumesResponse>";
    xs = ec2xml_stream_new(true, false);
    CHECK_INT(ec2xml_stream_feed(xs, bad, sizeof bad - 1), EBSD_EPARSE);
    CHECK_INT(ec2xml_stream_feed(xs, rest, sizeof rest - 1), EBSD_EPARSE);
    CHECK_INT(ec2xml_stream_end(xs, &p, &e), EBSD_EPARSE);
    CHECK(strstr(e.message, "mismatched tag") != NULL);
    ec2xml_stream_free(xs);

    /* nothing fed: no document, as the whole-document parser says of "" */
    xs = ec2xml_stream_new(false, false);
    struct ec2_instance_page ip = {0};
    CHECK_INT(ec2xml_stream_end(xs, &ip, &e), EBSD_EPARSE);
    ec2xml_stream_free(xs);
    ec2xml_stream_free(NULL);
}

TEST_MAIN(T(test_every_fixture), T(test_stream_bounds), T(test_fields), T(test_namespaces), T(test_error_envelope),
          T(test_malformed), T(test_hostile), T(test_many_volumes),
          T(test_tags_and_breakdown_fields))
