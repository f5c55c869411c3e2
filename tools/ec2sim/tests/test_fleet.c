/* test_fleet.c - the fleet generator is deterministic and realistic, keeps its invariants
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

TEST_MAIN(T(deterministic), T(limits), T(invariants), T(realistic_mix), T(truth_sums),
          T(json_round_trip), T(yaml_file), T(bad_files), T(id_syntax))
