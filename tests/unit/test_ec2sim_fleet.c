/* test_ec2sim_fleet.c - ec2sim's fleet generator is deterministic and realistic, keeps its invariants
 * (no volume on a terminated instance, ids well formed and unique), the truth agrees with
 * an independent recount, and fleet files (JSON and YAML) load and round-trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet.h"
#include "harness.h"

static char *dump(const struct fleet *f)
{
    cJSON *j = fleet_to_json(f);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static void deterministic(void)
{
    struct fleet *a = NULL, *b = NULL, *c = NULL;
    CHECK(fleet_generate(1000, 42, &a) == EBSD_OK);
    CHECK(fleet_generate(1000, 42, &b) == EBSD_OK);
    CHECK(fleet_generate(1000, 43, &c) == EBSD_OK);
    char *da = dump(a), *db = dump(b), *dc = dump(c);
    CHECK(strcmp(da, db) == 0);
    CHECK(strcmp(da, dc) != 0);
    free(da);
    free(db);
    free(dc);
    fleet_free(a);
    fleet_free(b);
    fleet_free(c);
}

static void limits(void)
{
    struct fleet *f = NULL;
    CHECK(fleet_generate(FLEET_MAX_INSTANCES + 1, 1, &f) == EBSD_EINVAL);
    CHECK(fleet_generate(0, 1, &f) == EBSD_OK);
    CHECK_INT(f->ninstances, 0);
    CHECK_INT(f->nvolumes, 0);
    cJSON *t = fleet_truth(f);
    CHECK_INT(cJSON_GetObjectItem(t, "total_gib")->valuedouble, 0);
    cJSON_Delete(t);
    fleet_free(f);
}

static void invariants(void)
{
    static const size_t sizes[] = {1, 2, 7, 100, 1000, 12000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        struct fleet *f = NULL;
        CHECK(fleet_generate(sizes[s], 7 + s, &f) == EBSD_OK);
        CHECK_INT(f->ninstances, sizes[s]);
        const char *bad = fleet_check(f);
        CHECK_STR(bad ? bad : "ok", "ok");
        for (size_t i = 0; i < f->ninstances; i++) {
            const struct fleet_instance *in = &f->instances[i];
            if (in->state == INST_TERMINATED)
                CHECK_INT(in->nbdm, 0);
            /* a reservation's instances are adjacent */
            if (i > 0 && in->reservation != f->instances[i - 1].reservation)
                CHECK(in->reservation == f->instances[i - 1].reservation + 1);
            CHECK(fleet_find_instance(f, in->id) == i);
        }
        for (size_t v = 0; v < f->nvolumes; v++) {
            const struct fleet_volume *vol = &f->volumes[v];
            CHECK(fleet_find_volume(f, vol->id) == v);
            CHECK(strcmp(vol->status, vol->natt ? "in-use" : "available") == 0 ||
                  (!vol->natt && strcmp(vol->status, "creating") == 0));
        }
        fleet_free(f);
    }
}

/* The mix a realistic account shows, at N = 1000. */
static void realistic_mix(void)
{
    struct fleet *f = NULL;
    CHECK(fleet_generate(1000, 1, &f) == EBSD_OK);
    size_t states[INST_NSTATES] = {0}, multi_res = 0, shared = 0, unattached = 0,
           detaching = 0, attaching = 0;
    for (size_t i = 0; i < f->ninstances; i++) {
        const struct fleet_instance *in = &f->instances[i];
        states[in->state]++;
        if (in->state != INST_TERMINATED) {
            size_t own = 0;
            for (size_t b = 0; b < in->nbdm; b++)
                own += !f->volumes[in->bdm[b].volume].multi_attach;
            CHECK(own >= 1 && own <= 4);
        }
        if (i > 0 && in->reservation == f->instances[i - 1].reservation)
            multi_res++;
    }
    for (size_t v = 0; v < f->nvolumes; v++) {
        const struct fleet_volume *vol = &f->volumes[v];
        shared += vol->natt == 2;
        unattached += vol->natt == 0;
        for (size_t a = 0; a < vol->natt; a++) {
            detaching += strcmp(vol->att[a].state, "detaching") == 0;
            attaching += strcmp(vol->att[a].state, "attaching") == 0;
        }
        CHECK(vol->size_gib >= 1 && vol->size_gib <= 16384);
    }
    CHECK(states[INST_RUNNING] > 500);
    CHECK(states[INST_PENDING] > 0);
    CHECK(states[INST_STOPPING] > 0);
    CHECK(states[INST_STOPPED] > 0);
    CHECK(states[INST_TERMINATED] > 0);
    CHECK(multi_res > 0);
    CHECK(shared > 0);
    CHECK(unattached > 0);
    CHECK(detaching > 0);
    CHECK(attaching > 0);
    fleet_free(f);
}

/* Recounts the truth from the volumes, independently of fleet_truth's loop. */
static void truth_sums(void)
{
    struct fleet *f = NULL;
    CHECK(fleet_generate(5000, 99, &f) == EBSD_OK);
    cJSON *t = fleet_truth(f);
    double total = 0, per_sum = 0, extra = 0, counted = 0;
    for (size_t v = 0; v < f->nvolumes; v++) {
        const struct fleet_volume *vol = &f->volumes[v];
        int n = 0;
        for (size_t a = 0; a < vol->natt; a++)
            n += fleet_attachment_counts(vol->att[a].state);
        if (n) {
            total += vol->size_gib;
            counted++;
            extra += (double)(n - 1) * vol->size_gib;
        }
    }
    cJSON *per = cJSON_GetObjectItem(t, "instances");
    CHECK_INT(cJSON_GetArraySize(per), f->ninstances);
    cJSON *it;
    cJSON_ArrayForEach(it, per)
    {
        per_sum += it->valuedouble;
        size_t idx = fleet_find_instance(f, it->string);
        CHECK(idx != SIZE_MAX);
        if (idx != SIZE_MAX && f->instances[idx].state == INST_TERMINATED)
            CHECK(it->valuedouble == 0);
    }
    CHECK(cJSON_GetObjectItem(t, "total_gib")->valuedouble == total);
    CHECK(cJSON_GetObjectItem(t, "volume_count")->valuedouble == counted);
    CHECK(per_sum == total + extra);
    CHECK(extra > 0); /* multi-attach volumes count once per instance */
    CHECK(cJSON_GetObjectItem(t, "instance_count")->valuedouble == 5000);
    cJSON_Delete(t);
    fleet_free(f);
}

static void json_round_trip(void)
{
    struct fleet *f = NULL, *g = NULL;
    CHECK(fleet_generate(300, 5, &f) == EBSD_OK);
    cJSON *doc = fleet_to_json(f);
    char err[256] = "";
    CHECK(fleet_from_json(doc, &g, err, sizeof err) == EBSD_OK);
    if (g) {
        char *a = dump(f), *b = dump(g);
        CHECK(strcmp(a, b) == 0);
        free(a);
        free(b);
        cJSON *ta = fleet_truth(f), *tb = fleet_truth(g);
        CHECK(cJSON_Compare(ta, tb, true));
        cJSON_Delete(ta);
        cJSON_Delete(tb);
    }
    cJSON_Delete(doc);
    fleet_free(f);
    fleet_free(g);
}

static const char *write_tmp(const char *suffix, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "/tmp/test_fleet_%d%s", (int)getpid(), suffix);
    FILE *fp = fopen(path, "w");
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
    return path;
}

static void yaml_file(void)
{
    const char *path = write_tmp(".yaml",
        "region: us-east-1\n"
        "instances:\n"
        "  - id: i-0123456789abcdef0\n"
        "    state: running\n"
        "    reservation: r-0123456789abcdef0\n"
        "    tags: {Name: \"web <1> & co\"}\n"
        "  - id: i-0123456789abcdef1\n"
        "    state: stopped\n"
        "    reservation: r-0123456789abcdef0\n"
        "  - id: i-0123456789abcdef2\n"
        "    state: terminated\n"
        "volumes:\n"
        "  - id: vol-0123456789abcdef0\n"
        "    size: 100\n"
        "    type: io2\n"
        "    multi_attach: true\n"
        "    attachments:\n"
        "      - {instance: i-0123456789abcdef0, device: /dev/sdf}\n"
        "      - {instance: i-0123456789abcdef1, device: /dev/sdf, state: detaching}\n"
        "  - size: 8\n"
        "    attachments: [{instance: i-0123456789abcdef0, device: /dev/xvda}]\n"
        "  - {size: 500}\n");
    struct fleet *f = NULL;
    char err[256] = "";
    ebsd_status st = fleet_load_file(path, &f, err, sizeof err);
    CHECK_STR(err[0] ? err : "ok", "ok");
    CHECK(st == EBSD_OK);
    if (f) {
        CHECK_INT(f->ninstances, 3);
        CHECK_INT(f->nreservations, 2);
        CHECK_INT(f->nvolumes, 3);
        CHECK_STR(f->volumes[2].status, "available");
        cJSON *t = fleet_truth(f);
        CHECK_INT(cJSON_GetObjectItem(t, "total_gib")->valuedouble, 108);
        cJSON *per = cJSON_GetObjectItem(t, "instances");
        CHECK_INT(cJSON_GetObjectItem(per, "i-0123456789abcdef0")->valuedouble, 108);
        CHECK_INT(cJSON_GetObjectItem(per, "i-0123456789abcdef1")->valuedouble, 100);
        CHECK_INT(cJSON_GetObjectItem(per, "i-0123456789abcdef2")->valuedouble, 0);
        cJSON_Delete(t);
    }
    fleet_free(f);
    unlink(path);
}

static void bad_files(void)
{
    static const char *const docs[] = {
        "{\"instances\":[{\"id\":\"i-zz\"}]}",
        "{\"instances\":[{\"id\":\"i-0123456789abcdef0\",\"state\":\"terminated\"}],"
        "\"volumes\":[{\"size\":8,\"attachments\":[{\"instance\":\"i-0123456789abcdef0\"}]}]}",
        "{\"volumes\":[{\"size\":8,\"attachments\":[{\"instance\":\"i-0123456789abcdef9\"}]}]}",
        "{\"volumes\":[{\"size\":0}]}",
        "[1,2]",
        "{\"instances\":[{\"id\":\"i-0123456789abcdef0\"},{\"id\":\"i-0123456789abcdef0\"}]}",
        "{\"volumes\":[{\"size\":8,\"type\":\"gp3\",\"multi_attach\":true}]}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        const char *path = write_tmp(".json", docs[i]);
        struct fleet *f = NULL;
        char err[256] = "";
        CHECK(fleet_load_file(path, &f, err, sizeof err) != EBSD_OK);
        CHECK(err[0] != '\0');
        CHECK(f == NULL);
        unlink(path);
    }
    struct fleet *f = NULL;
    char err[256] = "";
    CHECK(fleet_load_file("/nonexistent/fleet.json", &f, err, sizeof err) == EBSD_EIO);
    CHECK(strstr(err, "fopen") != NULL);
}

static void id_syntax(void)
{
    CHECK(fleet_id_valid("i-0123456789abcdef0", "i-"));
    CHECK(fleet_id_valid("i-1a2b3c4d", "i-"));
    CHECK(!fleet_id_valid("i-0123456789ABCDEF0", "i-"));
    CHECK(!fleet_id_valid("i-123", "i-"));
    CHECK(!fleet_id_valid("vol-0123456789abcdef0", "i-"));
    CHECK(fleet_id_valid("vol-0123456789abcdef0", "vol-"));
}

/* --multi-attach-max: volumes shared by up to 16 instances of one AZ; 2 keeps the default
 * fleet exactly. */
static void multi_attach_many(void)
{
    struct fleet_params p;
    fleet_params_default(&p);
    p.instances = 1000;
    p.seed = 3;
    struct fleet *def = NULL, *two = NULL, *many = NULL;
    CHECK(fleet_generate(1000, 3, &def) == EBSD_OK);
    CHECK(fleet_generate_with(&p, &two) == EBSD_OK);
    char *a = dump(def), *b = dump(two);
    CHECK(strcmp(a, b) == 0);
    free(a);
    free(b);
    p.multi_attach_max = FLEET_MAX_ATTACH + 1;
    CHECK(fleet_generate_with(&p, &many) == EBSD_EINVAL);
    p.multi_attach_max = 1;
    CHECK(fleet_generate_with(&p, &many) == EBSD_EINVAL);
    p.multi_attach_max = FLEET_MAX_ATTACH;
    CHECK(fleet_generate_with(&p, &many) == EBSD_OK);
    if (!many)
        goto out;
    const char *bad = fleet_check(many);
    CHECK_STR(bad ? bad : "ok", "ok");
    size_t most = 0, over2 = 0;
    for (size_t v = 0; v < many->nvolumes; v++) {
        const struct fleet_volume *vol = &many->volumes[v];
        if (vol->natt > most)
            most = vol->natt;
        over2 += vol->natt > 2;
        if (vol->natt > 1) {
            CHECK(vol->multi_attach);
            CHECK(strcmp(vol->type, "io1") == 0 || strcmp(vol->type, "io2") == 0);
        }
        for (size_t x = 0; x < vol->natt; x++) {
            const struct fleet_instance *in = &many->instances[vol->att[x].instance];
            CHECK_STR(in->az, vol->az);
            CHECK(in->state != INST_TERMINATED);
            for (size_t y = x + 1; y < vol->natt; y++)
                CHECK(vol->att[x].instance != vol->att[y].instance);
        }
    }
    CHECK_INT(most, FLEET_MAX_ATTACH);
    CHECK(over2 > 1);
    /* every attachment shows in its instance's block device mapping */
    size_t nbdm = 0, natt = 0;
    for (size_t i = 0; i < many->ninstances; i++)
        nbdm += many->instances[i].nbdm;
    for (size_t v = 0; v < many->nvolumes; v++)
        natt += many->volumes[v].natt;
    CHECK_INT(nbdm, natt);
    /* and the truth counts such a volume once in the total, once per instance */
    cJSON *t = fleet_truth(many);
    double per_sum = 0, extra = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(t, "instances"))
        per_sum += it->valuedouble;
    for (size_t v = 0; v < many->nvolumes; v++) {
        int n = 0;
        for (size_t x = 0; x < many->volumes[v].natt; x++)
            n += fleet_attachment_counts(many->volumes[v].att[x].state);
        if (n)
            extra += (double)(n - 1) * many->volumes[v].size_gib;
    }
    CHECK(per_sum == cJSON_GetObjectItem(t, "total_gib")->valuedouble + extra);
    cJSON_Delete(t);
out:
    fleet_free(def);
    fleet_free(two);
    fleet_free(many);
}

/* A fleet file may attach an io1/io2 volume to 16 instances, not 17. */
static void file_multi_attach_16(void)
{
    for (int n = 16; n <= 17; n++) {
        cJSON *doc = cJSON_CreateObject();
        cJSON *insts = cJSON_AddArrayToObject(doc, "instances");
        cJSON *vol = cJSON_CreateObject();
        cJSON_AddNumberToObject(vol, "size", 500);
        cJSON_AddStringToObject(vol, "type", "io2");
        cJSON_AddBoolToObject(vol, "multi_attach", true);
        cJSON *atts = cJSON_AddArrayToObject(vol, "attachments");
        for (int i = 0; i < n; i++) {
            char id[32];
            snprintf(id, sizeof id, "i-%017x", i + 1);
            cJSON *in = cJSON_CreateObject();
            cJSON_AddStringToObject(in, "id", id);
            cJSON_AddItemToArray(insts, in);
            cJSON *at = cJSON_CreateObject();
            cJSON_AddStringToObject(at, "instance", id);
            cJSON_AddItemToArray(atts, at);
        }
        cJSON *vols = cJSON_AddArrayToObject(doc, "volumes");
        cJSON_AddItemToArray(vols, vol);
        struct fleet *f = NULL;
        char err[256] = "";
        ebsd_status st = fleet_from_json(doc, &f, err, sizeof err);
        if (n == 16) {
            CHECK_STR(err[0] ? err : "ok", "ok");
            CHECK(st == EBSD_OK);
            if (f) {
                CHECK_INT(f->volumes[0].natt, 16);
                cJSON *t = fleet_truth(f);
                CHECK_INT(cJSON_GetObjectItem(t, "total_gib")->valuedouble, 500);
                cJSON *it;
                cJSON_ArrayForEach(it, cJSON_GetObjectItem(t, "instances"))
                    CHECK_INT(it->valuedouble, 500);
                cJSON_Delete(t);
            }
        } else {
            CHECK(st != EBSD_OK);
            CHECK(strstr(err, "at most 16") != NULL);
        }
        fleet_free(f);
        cJSON_Delete(doc);
    }
}

/* Groups partition the counted storage for every key; --tag-values sets the cardinality. */
static void groups_partition(void)
{
    struct fleet_params p;
    fleet_params_default(&p);
    p.instances = 2000;
    p.seed = 17;
    p.tag_values = 50;
    struct fleet *f = NULL;
    CHECK(fleet_generate_with(&p, &f) == EBSD_OK);
    if (!f)
        return;
    cJSON *t = fleet_truth(f);
    double total = cJSON_GetObjectItem(t, "total_gib")->valuedouble;
    double count = cJSON_GetObjectItem(t, "volume_count")->valuedouble;
    static const char *const keys[] = {"volume_type",       "availability_zone", "instance_state",
                                       "instance_type",     "instance_tag:team", "volume_tag:team",
                                       "volume_tag:nokey"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *two[2] = {keys[k], "volume_type"};
        for (size_t n = 1; n <= 2; n++) {
            cJSON *g = fleet_truth_groups(f, two, n);
            double sum = 0, vols = 0;
            cJSON *it;
            cJSON_ArrayForEach(it, g)
            {
                sum += cJSON_GetObjectItem(it, "total_gib")->valuedouble;
                vols += cJSON_GetObjectItem(it, "volume_count")->valuedouble;
                CHECK(cJSON_GetObjectItem(it, "instance_count")->valuedouble >= 1);
            }
            CHECK(sum == total);
            CHECK(vols == count);
            if (k == 6 && n == 1) /* a key no volume has: one null group */
                CHECK(cJSON_GetArraySize(g) == 1 &&
                      cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(
                                                           cJSON_GetArrayItem(g, 0), "key"),
                                                       "volume_tag:nokey")));
            if (k == 4 && n == 1)
                CHECK(cJSON_GetArraySize(g) > 40 && cJSON_GetArraySize(g) <= 51);
            cJSON_Delete(g);
        }
    }
    CHECK(fleet_group_key_valid("instance_tag:team") && !fleet_group_key_valid("instance_tag:"));
    CHECK(!fleet_group_key_valid("size"));
    cJSON *u = cJSON_GetObjectItem(t, "unattached");
    CHECK(cJSON_GetObjectItem(u, "volume_count")->valuedouble ==
          cJSON_GetObjectItem(t, "unattached_volumes")->valuedouble);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(u, "largest")) == 10);
    cJSON_Delete(t);
    fleet_free(f);
}

TEST_MAIN(T(deterministic), T(limits), T(invariants), T(realistic_mix), T(truth_sums),
          T(json_round_trip), T(yaml_file), T(bad_files), T(id_syntax), T(multi_attach_many),
          T(file_multi_attach_16), T(groups_partition))
