/* test_storage.c - the storage gauges: what a finished answer leaves for /metrics, bounded
 * label values, escaping, bytes = GiB x 2^30 and the data age. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "storage.h"

static struct wire_attach atts[8];
static size_t natts;

static void vol(struct wire_vol *v, int n, const char *type, int64_t gib, const char *inst)
{
    memset(v, 0, sizeof *v);
    snprintf(v->id, sizeof v->id, "vol-%017x", n);
    snprintf(v->type, sizeof v->type, "%s", type);
    v->size_gib = gib;
    v->attach_at = natts;
    if (inst) {
        struct wire_attach *a = &atts[natts++];
        memset(a, 0, sizeof *a);
        snprintf(a->instance_id, sizeof a->instance_id, "%s", inst);
        snprintf(a->state, sizeof a->state, "attached");
        v->nattach = 1;
    }
}

static char *render(struct buf *b, int64_t now)
{
    buf_init(b, 1u << 20);
    CHECK(storage_render(b, now) == EBSD_OK);
    CHECK(buf_puts(b, "") == EBSD_OK);
    return b->data ? b->data : "";
}

static void test_figures_and_age(void)
{
    storage_reset();
    struct buf b;
    char *t = render(&b, 1000);
    CHECK(strstr(t, "# TYPE ebsd_storage_attached_bytes gauge") != NULL);
    CHECK(strstr(t, "ebsd_storage_attached_bytes{") == NULL); /* no answer yet: no series */
    buf_free(&b);

    struct target tg = target_make(NULL, "eu-west-1");
    struct wire_inst in[2];
    memset(in, 0, sizeof in);
    snprintf(in[0].id, sizeof in[0].id, "i-00000000000000001");
    snprintf(in[0].state, sizeof in[0].state, "running");
    snprintf(in[1].id, sizeof in[1].id, "i-00000000000000002");
    snprintf(in[1].state, sizeof in[1].state, "stopped");
    struct wire_vol v[3];
    vol(&v[0], 1, "gp3", 100, "i-00000000000000001");
    vol(&v[1], 2, "gp3", 28, "i-00000000000000002");
    vol(&v[2], 3, "gp2", 5, "i-00000000000000009"); /* not a listed instance: not counted */
    storage_note_total(&tg, in, 2, v, 3, atts, 10000);
    struct wire_vol u[1];
    vol(&u[0], 4, "st1", 7, NULL);
    storage_note_unattached(&tg, u, 1, 4000);
    t = render(&b, 14500);
    CHECK(strstr(t, "ebsd_storage_attached_bytes{account=\"default\",region=\"eu-west-1\","
                    "volume_type=\"gp3\"} 137438953472\n") != NULL);
    CHECK(strstr(t, "ebsd_storage_attached_volumes{account=\"default\",region=\"eu-west-1\","
                    "volume_type=\"gp3\"} 2\n") != NULL);
    CHECK(strstr(t, "volume_type=\"gp2\"") == NULL);
    CHECK(strstr(t, "ebsd_storage_unattached_bytes{account=\"default\",region=\"eu-west-1\","
                    "volume_type=\"st1\"} 7516192768\n") != NULL);
    CHECK(strstr(t, "ebsd_instances{account=\"default\",region=\"eu-west-1\",state=\"stopped\"} 1\n") != NULL);
    /* the age of the older part: the unattached answer, 10.5 s */
    CHECK(strstr(t, "ebsd_storage_data_age_seconds{account=\"default\",region=\"eu-west-1\"} 10.500\n") != NULL);
    buf_free(&b);
}

/* Values an upstream makes up never become labels: over 16 distinct ones, or anything but a
 * short lower-case word, count as "other". */
static void test_bounded_labels(void)
{
    storage_reset();
    struct target tg = target_make(NULL, "us-east-1");
    struct wire_inst in[40];
    memset(in, 0, sizeof in);
    for (int i = 0; i < 40; i++) {
        snprintf(in[i].id, sizeof in[i].id, "i-%017x", i + 1);
        snprintf(in[i].state, sizeof in[i].state, "s%d", i);
    }
    snprintf(in[0].state, sizeof in[0].state, "a\"b\\c");
    storage_note_total(&tg, in, 40, NULL, 0, atts, 0);
    struct buf b;
    char *t = render(&b, 0);
    int n = 0;
    for (const char *p = t; (p = strstr(p, "\nebsd_instances{")) != NULL; p++)
        n++;
    CHECK_INT(n, 17);
    CHECK(strstr(t, "state=\"other\"} 24\n") != NULL);
    CHECK(strstr(t, "a\\\"b") == NULL);
    buf_free(&b);
    /* more targets than the table holds are not exported */
    for (int i = 0; i < STORAGE_MAX_TARGETS + 5; i++) {
        char r[32];
        snprintf(r, sizeof r, "r-%d", i);
        struct target x = target_make(NULL, r);
        storage_note_unattached(&x, NULL, 0, 0);
    }
    t = render(&b, 0);
    CHECK(strstr(t, "region=\"r-62\"") != NULL);
    CHECK(strstr(t, "region=\"r-63\"") == NULL);
    buf_free(&b);
    storage_reset();
}

/* An account a reload changed or removed leaves the series; the others keep theirs, in order. */
static void test_forget_account(void)
{
    storage_reset();
    const char *accounts[] = {"prod", "dev", "prod", "default"};
    const char *regions[] = {"us-east-1", "us-east-1", "eu-west-1", "us-east-1"};
    for (int i = 0; i < 4; i++) {
        struct target x = target_make(accounts[i], regions[i]);
        storage_note_unattached(&x, NULL, 0, 0);
    }
    storage_forget_account("prod");
    struct buf b;
    char *t = render(&b, 0);
    CHECK(strstr(t, "account=\"prod\"") == NULL);
    const char *dev = strstr(t, "account=\"dev\",region=\"us-east-1\"");
    const char *def = strstr(t, "account=\"default\",region=\"us-east-1\"");
    CHECK(dev && def && dev < def);
    buf_free(&b);
    storage_forget_account("nosuch"); /* nothing to forget */
    t = render(&b, 0);
    CHECK(strstr(t, "account=\"dev\"") != NULL);
    buf_free(&b);
    storage_reset();
}

TEST_MAIN(T(test_figures_and_age), T(test_bounded_labels), T(test_forget_account))
