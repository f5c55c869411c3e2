/* fleet.c - the simulated region's instances and volumes: a seeded generator with a
 * realistic mix of states, sizes and attachment cases, id indexes, and the truth. */
#include "fleet.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "mem.h"

static const char *const state_names[INST_NSTATES] = {
    "pending", "running", "shutting-down", "terminated", "stopping", "stopped"};
static const int state_codes[INST_NSTATES] = {0, 16, 32, 48, 64, 80};

const char *fleet_state_name(enum inst_state s) { return state_names[s]; }
int fleet_state_code(enum inst_state s) { return state_codes[s]; }

int fleet_state_parse(const char *name)
{
    for (int i = 0; i < INST_NSTATES; i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

bool fleet_attachment_counts(const char *state)
{
    return strcmp(state, "attaching") == 0 || strcmp(state, "attached") == 0 ||
           strcmp(state, "detaching") == 0;
}

bool fleet_id_valid(const char *id, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (strncmp(id, prefix, pl) != 0)
        return false;
    const char *h = id + pl;
    size_t n = strlen(h);
    if (n != 8 && n != 17)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

/* splitmix64: small, fast, and the same sequence on every platform. */
struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static uint64_t rng_below(struct rng *r, uint64_t n) { return n ? rng_next(r) % n : 0; }
/* Percent chance. */
static bool rng_pct(struct rng *r, unsigned pct) { return rng_below(r, 100) < pct; }

static void make_id(struct rng *r, const char *prefix, char out[FLEET_ID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = rng_next(r), b = rng_next(r);
    size_t pl = strlen(prefix);
    memcpy(out, prefix, pl);
    for (int i = 0; i < 17; i++) {
        uint64_t *src = i < 16 ? &a : &b;
        out[pl + (size_t)i] = hex[*src & 15];
        *src >>= 4;
    }
    out[pl + 17] = '\0';
}

static int cmp_inst_id(const void *a, const void *b, void *ctx)
{
    const struct fleet *f = ctx;
    return strcmp(f->instances[*(const size_t *)a].id, f->instances[*(const size_t *)b].id);
}

static int cmp_vol_id(const void *a, const void *b, void *ctx)
{
    const struct fleet *f = ctx;
    return strcmp(f->volumes[*(const size_t *)a].id, f->volumes[*(const size_t *)b].id);
}

static void free_xml(_Atomic(struct fleet_xml *) *slots, size_t n)
{
    for (size_t i = 0; slots && i < n; i++)
        free(atomic_load(&slots[i]));
    free(slots);
}

void fleet_index(struct fleet *f)
{
    free(f->inst_by_id);
    free(f->vol_by_id);
    free_xml(f->inst_xml, f->ninst_xml);
    free_xml(f->vol_xml, f->nvol_xml);
    f->inst_xml = xcalloc(f->ninstances + 1, sizeof *f->inst_xml);
    f->vol_xml = xcalloc(f->nvolumes + 1, sizeof *f->vol_xml);
    f->ninst_xml = f->ninstances;
    f->nvol_xml = f->nvolumes;
    f->inst_by_id = xmalloc((f->ninstances + 1) * sizeof(size_t));
    f->vol_by_id = xmalloc((f->nvolumes + 1) * sizeof(size_t));
    for (size_t i = 0; i < f->ninstances; i++)
        f->inst_by_id[i] = i;
    for (size_t i = 0; i < f->nvolumes; i++)
        f->vol_by_id[i] = i;
    qsort_r(f->inst_by_id, f->ninstances, sizeof(size_t), cmp_inst_id, f);
    qsort_r(f->vol_by_id, f->nvolumes, sizeof(size_t), cmp_vol_id, f);

    for (size_t i = 0; i < f->ninstances; i++) {
        free(f->instances[i].bdm);
        f->instances[i].bdm = NULL;
        f->instances[i].nbdm = 0;
    }
    size_t *counts = xcalloc(f->ninstances + 1, sizeof(size_t));
    for (size_t v = 0; v < f->nvolumes; v++)
        for (size_t a = 0; a < f->volumes[v].natt; a++)
            counts[f->volumes[v].att[a].instance]++;
    for (size_t i = 0; i < f->ninstances; i++)
        if (counts[i])
            f->instances[i].bdm = xmalloc(counts[i] * sizeof(struct fleet_bdm));
    for (size_t v = 0; v < f->nvolumes; v++)
        for (size_t a = 0; a < f->volumes[v].natt; a++) {
            struct fleet_instance *in = &f->instances[f->volumes[v].att[a].instance];
            in->bdm[in->nbdm].volume = v;
            in->bdm[in->nbdm].att = a;
            in->nbdm++;
        }
    free(counts);
}

size_t fleet_find_instance(const struct fleet *f, const char *id)
{
    size_t lo = 0, hi = f->ninstances;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->instances[f->inst_by_id[mid]].id, id);
        if (c == 0)
            return f->inst_by_id[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

size_t fleet_find_volume(const struct fleet *f, const char *id)
{
    size_t lo = 0, hi = f->nvolumes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->volumes[f->vol_by_id[mid]].id, id);
        if (c == 0)
            return f->vol_by_id[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

void fleet_free(struct fleet *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->ninstances; i++) {
        for (size_t t = 0; t < f->instances[i].ntags; t++) {
            free(f->instances[i].tags[t].key);
            free(f->instances[i].tags[t].value);
        }
        free(f->instances[i].tags);
        free(f->instances[i].bdm);
    }
    for (size_t v = 0; v < f->nvolumes; v++) {
        free(f->volumes[v].att);
        for (size_t t = 0; t < f->volumes[v].ntags; t++) {
            free(f->volumes[v].tags[t].key);
            free(f->volumes[v].tags[t].value);
        }
        free(f->volumes[v].tags);
    }
    free(f->instances);
    free(f->reservations);
    free(f->volumes);
    free(f->inst_by_id);
    free(f->vol_by_id);
    free_xml(f->inst_xml, f->ninst_xml);
    free_xml(f->vol_xml, f->nvol_xml);
    free(f);
}

/* ---- generator ---------------------------------------------------------------------- */

struct itype {
    const char *name;
    unsigned weight;
};
static const struct itype itypes[] = {
    {"t3.micro", 10}, {"t3.medium", 12}, {"t3.large", 8},   {"m5.large", 14}, {"m5.xlarge", 10},
    {"m6i.2xlarge", 6}, {"c5.xlarge", 8}, {"c6g.2xlarge", 5}, {"r5.large", 6}, {"r6i.4xlarge", 4},
    {"i3.xlarge", 3},  {"m7g.medium", 6}, {"x2idn.16xlarge", 1}, {"p3.2xlarge", 1},
};

static const char *pick_itype(struct rng *r)
{
    unsigned total = 0;
    for (size_t i = 0; i < sizeof itypes / sizeof itypes[0]; i++)
        total += itypes[i].weight;
    unsigned x = (unsigned)rng_below(r, total);
    for (size_t i = 0; i < sizeof itypes / sizeof itypes[0]; i++) {
        if (x < itypes[i].weight)
            return itypes[i].name;
        x -= itypes[i].weight;
    }
    return itypes[0].name;
}

static enum inst_state pick_state(struct rng *r)
{
    unsigned x = (unsigned)rng_below(r, 100);
    if (x < 72)
        return INST_RUNNING;
    if (x < 86)
        return INST_STOPPED;
    if (x < 93)
        return INST_TERMINATED;
    if (x < 96)
        return INST_PENDING;
    if (x < 99)
        return INST_STOPPING;
    return INST_SHUTTING_DOWN;
}

/* 2022-01-01T00:00:00Z plus up to ~2 years. */
static int64_t pick_time(struct rng *r)
{
    return 1640995200000LL + (int64_t)rng_below(r, 730ULL * 86400) * 1000;
}

static void set_perf(struct fleet_volume *v, struct rng *r)
{
    v->iops = 0;
    v->throughput = 0;
    if (strcmp(v->type, "gp3") == 0) {
        v->iops = rng_pct(r, 80) ? 3000 : 6000 + 1000 * (int)rng_below(r, 10);
        v->throughput = rng_pct(r, 80) ? 125 : 250 + 125 * (int)rng_below(r, 6);
    } else if (strcmp(v->type, "gp2") == 0) {
        int base = v->size_gib * 3;
        v->iops = base < 100 ? 100 : base > 16000 ? 16000 : base;
    } else if (strcmp(v->type, "io1") == 0 || strcmp(v->type, "io2") == 0) {
        v->iops = 1000 * (1 + (int)rng_below(r, 32));
    }
}

/* A data volume's type and size, weighted like a typical account. */
static void pick_data_volume(struct rng *r, struct fleet_volume *v)
{
    static const int gp_sizes[] = {20, 50, 100, 100, 200, 250, 500, 500, 1000, 2000, 4096, 16384};
    static const int hdd_sizes[] = {125, 500, 1000, 2000, 4000, 12500, 16384};
    unsigned x = (unsigned)rng_below(r, 100);
    const char *type;
    if (x < 50)
        type = "gp3";
    else if (x < 75)
        type = "gp2";
    else if (x < 82)
        type = "io1";
    else if (x < 88)
        type = "io2";
    else if (x < 93)
        type = "st1";
    else if (x < 97)
        type = "sc1";
    else
        type = "standard";
    snprintf(v->type, sizeof v->type, "%s", type);
    if (type[0] == 's' && type[1] != 't') /* sc1 */
        v->size_gib = hdd_sizes[rng_below(r, sizeof hdd_sizes / sizeof hdd_sizes[0])];
    else if (strcmp(type, "st1") == 0)
        v->size_gib = hdd_sizes[rng_below(r, sizeof hdd_sizes / sizeof hdd_sizes[0])];
    else if (strcmp(type, "standard") == 0)
        v->size_gib = 1 + (int)rng_below(r, 1024);
    else
        v->size_gib = gp_sizes[rng_below(r, sizeof gp_sizes / sizeof gp_sizes[0])];
}

static void init_volume(struct fleet_volume *v, struct rng *r, const char *az, int64_t t)
{
    memset(v, 0, sizeof *v);
    make_id(r, "vol-", v->id);
    snprintf(v->az, sizeof v->az, "%s", az);
    v->encrypted = rng_pct(r, 60);
    v->create_time = t;
    if (rng_pct(r, 40))
        make_id(r, "snap-", v->snapshot_id);
}

static void attach(struct fleet_volume *v, size_t inst, const char *device, const char *state,
                   int64_t t, bool dot)
{
    v->att = xrealloc(v->att, (v->natt + 1) * sizeof *v->att);
    struct fleet_attachment *a = &v->att[v->natt++];
    a->instance = inst;
    snprintf(a->device, sizeof a->device, "%s", device);
    snprintf(a->state, sizeof a->state, "%s", state);
    a->attach_time = t;
    a->delete_on_termination = dot;
}

static struct fleet_volume *new_volume(struct fleet *f, size_t *cap)
{
    if (f->nvolumes == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        f->volumes = xrealloc(f->volumes, *cap * sizeof *f->volumes);
    }
    return &f->volumes[f->nvolumes++];
}

static void tag_add(struct fleet_tag **tags, size_t *ntags, const char *k, const char *v)
{
    *tags = xrealloc(*tags, (*ntags + 1) * sizeof **tags);
    (*tags)[*ntags].key = xstrdup(k);
    (*tags)[*ntags].value = xstrdup(v);
    (*ntags)++;
}

static void add_tag(struct fleet_instance *in, const char *k, const char *v)
{
    tag_add(&in->tags, &in->ntags, k, v);
}

const char *fleet_tag_get(const struct fleet_tag *tags, size_t ntags, const char *key)
{
    for (size_t t = 0; t < ntags; t++)
        if (strcmp(tags[t].key, key) == 0)
            return tags[t].value;
    return NULL;
}

/* Tags drawn after the fleet is built, from a stream of their own, so that the rest of a
 * fleet stays what it was before volumes had tags. Volumes mostly carry their instance's
 * team and env (some are untagged, as in real accounts); with tag_values, instances get
 * team-NNNN values from that many. */
static void tag_fleet(struct fleet *f, const struct fleet_params *p)
{
    struct rng r = {p->seed ^ 0x7a657461677321ULL};
    char team[24];
    if (p->tag_values) {
        for (size_t i = 0; i < f->ninstances; i++) {
            struct fleet_instance *in = &f->instances[i];
            for (size_t t = 0; t < in->ntags; t++)
                if (strcmp(in->tags[t].key, "team") == 0) {
                    free(in->tags[t].key);
                    free(in->tags[t].value);
                    in->tags[t] = in->tags[--in->ntags];
                    break;
                }
            if (rng_pct(&r, 75)) {
                snprintf(team, sizeof team, "team-%04u", (unsigned)rng_below(&r, p->tag_values));
                add_tag(in, "team", team);
            }
        }
    }
    static const char *const envs[] = {"prod", "staging", "dev"};
    for (size_t v = 0; v < f->nvolumes; v++) {
        struct fleet_volume *vol = &f->volumes[v];
        if (vol->natt) {
            const struct fleet_instance *in = &f->instances[vol->att[0].instance];
            const char *t = fleet_tag_get(in->tags, in->ntags, "team");
            const char *e = fleet_tag_get(in->tags, in->ntags, "env");
            bool tagged = rng_pct(&r, 85);
            if (tagged && t)
                tag_add(&vol->tags, &vol->ntags, "team", t);
            if (tagged && e)
                tag_add(&vol->tags, &vol->ntags, "env", e);
        } else if (rng_pct(&r, 50)) {
            if (p->tag_values)
                snprintf(team, sizeof team, "team-%04u", (unsigned)rng_below(&r, p->tag_values));
            else
                snprintf(team, sizeof team, "%s", rng_pct(&r, 50) ? "platform" : "data");
            tag_add(&vol->tags, &vol->ntags, "team", team);
            tag_add(&vol->tags, &vol->ntags, "env", envs[rng_below(&r, 3)]);
        }
    }
}

void fleet_params_default(struct fleet_params *p)
{
    memset(p, 0, sizeof *p);
    p->instances = 100;
    p->seed = 1;
    p->multi_attach_max = 2;
    snprintf(p->region, sizeof p->region, "us-east-1");
    snprintf(p->account, sizeof p->account, "123456789012");
}

ebsd_status fleet_generate(size_t n, uint64_t seed, struct fleet **out)
{
    struct fleet_params p;
    fleet_params_default(&p);
    p.instances = n;
    p.seed = seed;
    return fleet_generate_with(&p, out);
}

/* Attaches v (already attached to instance a) to more live instances of a's AZ, from b on,
 * until it has want attachments or the search gives up. */
static void attach_more(struct fleet *f, struct fleet_volume *v, size_t a, size_t b,
                        size_t want, const char *dev)
{
    size_t n = f->ninstances;
    for (size_t k = 0; k < 64 * want && k < n && v->natt < want; k++) {
        size_t c = (b + k) % n;
        bool taken = false;
        for (size_t j = 0; j < v->natt; j++)
            taken |= v->att[j].instance == c;
        if (!taken && f->instances[c].state != INST_TERMINATED &&
            strcmp(f->instances[c].az, f->instances[a].az) == 0)
            attach(v, c, dev, "attached", v->create_time, false);
    }
}

ebsd_status fleet_generate_with(const struct fleet_params *p, struct fleet **out)
{
    size_t n = p->instances;
    uint64_t seed = p->seed;
    static const char *const east_azs[] = {"us-east-1a", "us-east-1b", "us-east-1c",
                                           "us-east-1d", "us-east-1f"};
    char other_azs[3][sizeof p->region + 1]; /* region + a letter */
    const char *azs_buf[5];
    const char *const *azs = east_azs;
    size_t nazs = 5;
    if (strcmp(p->region, "us-east-1") != 0) {
        /* an AZ must fit an instance's az[24] */
        if (strlen(p->region) + 2 > sizeof(((struct fleet_instance *)0)->az) || !p->region[0])
            return EBSD_EINVAL;
        for (size_t z = 0; z < 3; z++) {
            snprintf(other_azs[z], sizeof other_azs[z], "%s%c", p->region, (char)('a' + z));
            azs_buf[z] = other_azs[z];
        }
        azs = azs_buf;
        nazs = 3;
    }
    static const char *const roles[] = {"web", "api", "db", "cache", "batch", "worker", "ml"};
    static const char *const envs[] = {"prod", "staging", "dev"};
    if (n > FLEET_MAX_INSTANCES || p->multi_attach_max < 2 ||
        p->multi_attach_max > FLEET_MAX_ATTACH)
        return EBSD_EINVAL;
    struct rng r = {seed ^ 0x5eed0ec2ULL};
    struct fleet *f = xcalloc(1, sizeof *f);
    snprintf(f->region, sizeof f->region, "%s", p->region);
    f->instances = xcalloc(n + 1, sizeof *f->instances);
    f->reservations = xcalloc(n + 1, sizeof *f->reservations);
    size_t vcap = 0;

    /* Reservations: most launch one instance, some several (an ASG or a RunInstances count). */
    size_t i = 0;
    while (i < n) {
        size_t count = 1;
        if (rng_pct(&r, 20))
            count = 2 + (size_t)rng_below(&r, 4);
        if (count > n - i)
            count = n - i;
        struct fleet_reservation *res = &f->reservations[f->nreservations];
        make_id(&r, "r-", res->id);
        snprintf(res->owner_id, sizeof res->owner_id, "%s", p->account);
        const char *az = azs[rng_below(&r, nazs)];
        const char *type = pick_itype(&r);
        int64_t launch = pick_time(&r);
        const char *role = roles[rng_below(&r, sizeof roles / sizeof roles[0])];
        const char *env = envs[rng_below(&r, sizeof envs / sizeof envs[0])];
        char ami[FLEET_ID_LEN];
        make_id(&r, "ami-", ami);
        for (size_t k = 0; k < count; k++, i++) {
            struct fleet_instance *in = &f->instances[i];
            make_id(&r, "i-", in->id);
            in->reservation = f->nreservations;
            in->state = pick_state(&r);
            snprintf(in->type, sizeof in->type, "%s", type);
            snprintf(in->az, sizeof in->az, "%s", az);
            snprintf(in->image_id, sizeof in->image_id, "%s", ami);
            snprintf(in->private_ip, sizeof in->private_ip, "10.%u.%u.%u",
                     (unsigned)rng_below(&r, 256), (unsigned)rng_below(&r, 256),
                     1 + (unsigned)rng_below(&r, 254));
            in->launch_time = launch + (int64_t)k * 1000;
            char name[64];
            snprintf(name, sizeof name, "%s-%s-%zu", env, role, i);
            add_tag(in, "Name", name);
            add_tag(in, "env", env);
            if (rng_pct(&r, 30))
                add_tag(in, "team", rng_pct(&r, 50) ? "platform" : "data & analytics <ml>");
            if (in->state == INST_TERMINATED)
                continue; /* terminated instances keep no volumes */

            /* Root volume, then 0-3 data volumes. */
            size_t nvol = 1 + (size_t)rng_below(&r, 4);
            for (size_t d = 0; d < nvol; d++) {
                struct fleet_volume *v = new_volume(f, &vcap);
                init_volume(v, &r, az, launch - (int64_t)rng_below(&r, 86400) * 1000);
                char dev[16];
                const char *astate = "attached";
                bool dot;
                if (d == 0) {
                    snprintf(v->type, sizeof v->type, "%s", rng_pct(&r, 70) ? "gp3" : "gp2");
                    v->size_gib = 8 + 8 * (int)rng_below(&r, 12);
                    snprintf(dev, sizeof dev, "/dev/xvda");
                    dot = true;
                } else {
                    pick_data_volume(&r, v);
                    snprintf(dev, sizeof dev, "/dev/sd%c", (char)('e' + d));
                    dot = rng_pct(&r, 20);
                    if (rng_pct(&r, 4))
                        astate = "detaching";
                }
                if (in->state == INST_PENDING && rng_pct(&r, 50))
                    astate = "attaching";
                set_perf(v, &r);
                snprintf(v->status, sizeof v->status, "in-use");
                attach(v, i, dev, astate, in->launch_time, dot);
            }
        }
        f->nreservations++;
    }
    f->ninstances = n;

    /* Multi-attach: io1/io2 volumes shared by two live instances in the same AZ. */
    size_t nshared = n / 60 + (n >= 2 ? 1 : 0);
    bool shown_max = false;
    for (size_t s = 0; s < nshared; s++) {
        size_t a = (size_t)rng_below(&r, n), b = (size_t)rng_below(&r, n);
        if (f->instances[a].state == INST_TERMINATED)
            continue;
        struct fleet_volume *v = new_volume(f, &vcap);
        init_volume(v, &r, f->instances[a].az, pick_time(&r));
        snprintf(v->type, sizeof v->type, "%s", rng_pct(&r, 50) ? "io1" : "io2");
        v->size_gib = 100 * (1 + (int)rng_below(&r, 40));
        v->multi_attach = true;
        set_perf(v, &r);
        snprintf(v->status, sizeof v->status, "in-use");
        char dev[16];
        snprintf(dev, sizeof dev, "/dev/sd%c", (char)('p' + rng_below(&r, 10)));
        attach(v, a, dev, "attached", v->create_time, false);
        /* Multi-attach needs every instance in the volume's AZ: take the next such ones.
         * Past 2, the first shared volume gets the most, so a fleet always shows the limit;
         * the extra draw happens only then, so default fleets stay as they were. */
        size_t want = 2;
        if (p->multi_attach_max > 2)
            want = !shown_max ? (size_t)p->multi_attach_max
                              : 2 + (size_t)rng_below(&r, (uint64_t)p->multi_attach_max - 1);
        attach_more(f, v, a, b, want, dev);
        shown_max |= v->natt == want;
    }

    /* Unattached volumes: leftovers, some still being created. */
    size_t nfree = n / 20 + (n ? 1 : 0);
    for (size_t u = 0; u < nfree; u++) {
        struct fleet_volume *v = new_volume(f, &vcap);
        init_volume(v, &r, azs[rng_below(&r, nazs)], pick_time(&r));
        pick_data_volume(&r, v);
        set_perf(v, &r);
        snprintf(v->status, sizeof v->status, "%s", rng_pct(&r, 10) ? "creating" : "available");
    }

    tag_fleet(f, p);
    fleet_index(f);
    *out = f;
    return EBSD_OK;
}

/* ---- truth and checks ----------------------------------------------------------------- */

/* True when at least one attachment of vol counts (it is in ebsd's totals). */
static bool volume_counts(const struct fleet *f, const struct fleet_volume *vol)
{
    for (size_t a = 0; a < vol->natt; a++)
        if (vol->att[a].instance < f->ninstances && fleet_attachment_counts(vol->att[a].state))
            return true;
    return false;
}

static void bump_group(cJSON *by, const char *name, int gib)
{
    cJSON *g = cJSON_GetObjectItemCaseSensitive(by, name);
    if (!g) {
        g = cJSON_AddObjectToObject(by, name);
        cJSON_AddNumberToObject(g, "total_gib", 0);
        cJSON_AddNumberToObject(g, "volume_count", 0);
    }
    cJSON *t = cJSON_GetObjectItemCaseSensitive(g, "total_gib");
    cJSON *n = cJSON_GetObjectItemCaseSensitive(g, "volume_count");
    cJSON_SetNumberValue(t, t->valuedouble + gib);
    cJSON_SetNumberValue(n, n->valuedouble + 1);
}

static const struct fleet *g_sort_fleet; /* qsort's context for the unattached lists */

static int cmp_largest(const void *a, const void *b)
{
    const struct fleet_volume *x = &g_sort_fleet->volumes[*(const size_t *)a];
    const struct fleet_volume *y = &g_sort_fleet->volumes[*(const size_t *)b];
    if (x->size_gib != y->size_gib)
        return x->size_gib > y->size_gib ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int cmp_oldest(const void *a, const void *b)
{
    const struct fleet_volume *x = &g_sort_fleet->volumes[*(const size_t *)a];
    const struct fleet_volume *y = &g_sort_fleet->volumes[*(const size_t *)b];
    if (x->create_time != y->create_time)
        return x->create_time < y->create_time ? -1 : 1;
    return strcmp(x->id, y->id);
}

static void add_volume_brief(cJSON *arr, const struct fleet_volume *v)
{
    char ts[40];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "volume_id", v->id);
    cJSON_AddNumberToObject(o, "size_gib", v->size_gib);
    cJSON_AddStringToObject(o, "volume_type", v->type);
    cJSON_AddStringToObject(o, "availability_zone", v->az);
    cJSON_AddStringToObject(o, "create_time", clock_format_rfc3339(v->create_time, ts, sizeof ts));
    cJSON *tags = cJSON_AddObjectToObject(o, "tags");
    for (size_t t = 0; t < v->ntags; t++)
        cJSON_AddStringToObject(tags, v->tags[t].key, v->tags[t].value);
    cJSON_AddItemToArray(arr, o);
}

/* Volumes attached to nothing (no counted attachment): totals, by type and AZ, and the 10
 * largest and oldest (ties by id). */
static void add_unattached(cJSON *o, const struct fleet *f)
{
    static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
    cJSON *u = cJSON_AddObjectToObject(o, "unattached");
    cJSON *by_type = cJSON_CreateObject(), *by_az = cJSON_CreateObject();
    size_t *idx = xmalloc((f->nvolumes + 1) * sizeof *idx), n = 0;
    uint64_t gib = 0;
    for (size_t v = 0; v < f->nvolumes; v++) {
        const struct fleet_volume *vol = &f->volumes[v];
        if (volume_counts(f, vol))
            continue;
        idx[n++] = v;
        gib += (uint64_t)vol->size_gib;
        bump_group(by_type, vol->type, vol->size_gib);
        bump_group(by_az, vol->az, vol->size_gib);
    }
    cJSON_AddNumberToObject(u, "total_gib", (double)gib);
    cJSON_AddNumberToObject(u, "volume_count", (double)n);
    cJSON_AddItemToObject(u, "by_volume_type", by_type);
    cJSON_AddItemToObject(u, "by_availability_zone", by_az);
    cJSON *largest = cJSON_AddArrayToObject(u, "largest");
    cJSON *oldest = cJSON_AddArrayToObject(u, "oldest");
    pthread_mutex_lock(&sort_lock);
    g_sort_fleet = f;
    qsort(idx, n, sizeof *idx, cmp_largest);
    for (size_t i = 0; i < n && i < 10; i++)
        add_volume_brief(largest, &f->volumes[idx[i]]);
    qsort(idx, n, sizeof *idx, cmp_oldest);
    for (size_t i = 0; i < n && i < 10; i++)
        add_volume_brief(oldest, &f->volumes[idx[i]]);
    pthread_mutex_unlock(&sort_lock);
    free(idx);
}

bool fleet_group_key_valid(const char *key)
{
    return strcmp(key, "volume_type") == 0 || strcmp(key, "availability_zone") == 0 ||
           strcmp(key, "instance_state") == 0 || strcmp(key, "instance_type") == 0 ||
           (strncmp(key, "instance_tag:", 13) == 0 && key[13]) ||
           (strncmp(key, "volume_tag:", 11) == 0 && key[11]);
}

/* One key's value for a counted volume and its owner instance; NULL for "untagged". */
static const char *group_value(const struct fleet_volume *v, const struct fleet_instance *in,
                               const char *key)
{
    if (strcmp(key, "volume_type") == 0)
        return v->type;
    if (strcmp(key, "availability_zone") == 0)
        return v->az;
    if (strcmp(key, "instance_state") == 0)
        return fleet_state_name(in->state);
    if (strcmp(key, "instance_type") == 0)
        return in->type;
    if (strncmp(key, "instance_tag:", 13) == 0)
        return fleet_tag_get(in->tags, in->ntags, key + 13);
    return fleet_tag_get(v->tags, v->ntags, key + 11);
}

struct member {
    char *key;     /* the values joined, each prefixed by 'v' (a value) or 'n' (null) */
    size_t volume;
};

static int cmp_member(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->volume < y->volume ? -1 : x->volume > y->volume);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_group_json(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    double gx = cJSON_GetObjectItem(x, "total_gib")->valuedouble;
    double gy = cJSON_GetObjectItem(y, "total_gib")->valuedouble;
    if (gx != gy)
        return gx > gy ? -1 : 1;
    return strcmp(cJSON_GetObjectItem(x, "sort")->valuestring,
                  cJSON_GetObjectItem(y, "sort")->valuestring);
}

cJSON *fleet_truth_groups(const struct fleet *f, const char *const *keys, size_t nkeys)
{
    struct member *m = xmalloc((f->nvolumes + 1) * sizeof *m);
    size_t n = 0;
    for (size_t v = 0; v < f->nvolumes; v++) {
        const struct fleet_volume *vol = &f->volumes[v];
        size_t owner = SIZE_MAX;
        for (size_t a = 0; a < vol->natt && owner == SIZE_MAX; a++)
            if (vol->att[a].instance < f->ninstances && fleet_attachment_counts(vol->att[a].state))
                owner = vol->att[a].instance;
        if (owner == SIZE_MAX)
            continue;
        struct buf b;
        buf_init(&b, 1u << 20);
        for (size_t k = 0; k < nkeys; k++) {
            const char *val = group_value(vol, &f->instances[owner], keys[k]);
            if (buf_puts(&b, val ? "v" : "n") != EBSD_OK || buf_puts(&b, val ? val : "") != EBSD_OK ||
                buf_append(&b, "\x1f", 1) != EBSD_OK)
                abort(); /* tag values are short: 1 MiB is never reached */
        }
        m[n].key = buf_steal(&b);
        m[n].volume = v;
        n++;
    }
    qsort(m, n, sizeof *m, cmp_member);
    size_t ngroups = 0;
    cJSON **groups = xmalloc((n + 1) * sizeof *groups);
    size_t *insts = NULL, ninsts = 0, cap = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t gib = 0;
        ninsts = 0;
        for (; j < n && strcmp(m[j].key, m[i].key) == 0; j++) {
            const struct fleet_volume *vol = &f->volumes[m[j].volume];
            gib += (uint64_t)vol->size_gib;
            for (size_t a = 0; a < vol->natt; a++) {
                if (vol->att[a].instance >= f->ninstances ||
                    !fleet_attachment_counts(vol->att[a].state))
                    continue;
                if (ninsts == cap) {
                    cap = cap ? cap * 2 : 64;
                    insts = xrealloc(insts, cap * sizeof *insts);
                }
                insts[ninsts++] = vol->att[a].instance;
            }
        }
        qsort(insts, ninsts, sizeof *insts, cmp_size);
        size_t distinct = 0;
        for (size_t k = 0; k < ninsts; k++)
            distinct += k == 0 || insts[k] != insts[k - 1];
        cJSON *g = cJSON_CreateObject();
        cJSON *key = cJSON_AddObjectToObject(g, "key");
        const char *p = m[i].key;
        for (size_t k = 0; k < nkeys; k++) {
            const char *end = strchr(p, '\x1f');
            if (*p == 'n') {
                cJSON_AddNullToObject(key, keys[k]);
            } else {
                char *val = xstrndup(p + 1, (size_t)(end - p - 1));
                cJSON_AddStringToObject(key, keys[k], val);
                free(val);
            }
            p = end + 1;
        }
        cJSON_AddNumberToObject(g, "total_gib", (double)gib);
        cJSON_AddNumberToObject(g, "volume_count", (double)(j - i));
        cJSON_AddNumberToObject(g, "instance_count", (double)distinct);
        cJSON_AddStringToObject(g, "sort", m[i].key);
        groups[ngroups++] = g;
        i = j;
    }
    qsort(groups, ngroups, sizeof *groups, cmp_group_json);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < ngroups; i++) {
        cJSON_DeleteItemFromObject(groups[i], "sort");
        cJSON_AddItemToArray(arr, groups[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(m[i].key);
    free(m);
    free(groups);
    free(insts);
    return arr;
}

cJSON *fleet_truth(const struct fleet *f)
{
    uint64_t *gib = xcalloc(f->ninstances + 1, sizeof *gib);
    uint64_t *cnt = xcalloc(f->ninstances + 1, sizeof *cnt);
    uint64_t total = 0, counted = 0, free_gib = 0, free_n = 0;
    for (size_t v = 0; v < f->nvolumes; v++) {
        const struct fleet_volume *vol = &f->volumes[v];
        bool any = false;
        for (size_t a = 0; a < vol->natt; a++) {
            const struct fleet_attachment *at = &vol->att[a];
            if (at->instance >= f->ninstances || !fleet_attachment_counts(at->state))
                continue;
            gib[at->instance] += (uint64_t)vol->size_gib;
            cnt[at->instance]++;
            any = true;
        }
        if (any) {
            total += (uint64_t)vol->size_gib;
            counted++;
        } else {
            free_gib += (uint64_t)vol->size_gib;
            free_n++;
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "total_gib", (double)total);
    cJSON_AddNumberToObject(o, "instance_count", (double)f->ninstances);
    cJSON_AddNumberToObject(o, "volume_count", (double)counted);
    cJSON_AddNumberToObject(o, "volumes_total", (double)f->nvolumes);
    cJSON_AddNumberToObject(o, "unattached_volumes", (double)free_n);
    cJSON_AddNumberToObject(o, "unattached_gib", (double)free_gib);
    cJSON_AddStringToObject(o, "region", f->region);
    add_unattached(o, f);
    /* Every instance by state, with or without volumes (the instances gauge by state). */
    size_t by_state[INST_NSTATES] = {0};
    for (size_t i = 0; i < f->ninstances; i++)
        by_state[f->instances[i].state]++;
    cJSON *states = cJSON_AddObjectToObject(o, "instance_states");
    for (int k = 0; k < INST_NSTATES; k++)
        if (by_state[k])
            cJSON_AddNumberToObject(states, state_names[k], (double)by_state[k]);
    cJSON *per = cJSON_AddObjectToObject(o, "instances");
    cJSON *pern = cJSON_AddObjectToObject(o, "instance_volumes");
    for (size_t i = 0; i < f->ninstances; i++) {
        cJSON_AddNumberToObject(per, f->instances[i].id, (double)gib[i]);
        cJSON_AddNumberToObject(pern, f->instances[i].id, (double)cnt[i]);
    }
    free(gib);
    free(cnt);
    return o;
}

const char *fleet_check(const struct fleet *f)
{
    for (size_t i = 0; i < f->ninstances; i++) {
        if (!fleet_id_valid(f->instances[i].id, "i-"))
            return "malformed instance id";
        if (i && strcmp(f->instances[f->inst_by_id[i - 1]].id,
                        f->instances[f->inst_by_id[i]].id) == 0)
            return "duplicate instance id";
        if (f->instances[i].reservation >= f->nreservations)
            return "instance without reservation";
    }
    for (size_t v = 0; v < f->nvolumes; v++) {
        const struct fleet_volume *vol = &f->volumes[v];
        if (!fleet_id_valid(vol->id, "vol-"))
            return "malformed volume id";
        if (v && strcmp(f->volumes[f->vol_by_id[v - 1]].id, f->volumes[f->vol_by_id[v]].id) == 0)
            return "duplicate volume id";
        if (vol->natt > FLEET_MAX_ATTACH || (vol->natt > 1 && !vol->multi_attach))
            return "too many attachments";
        if (vol->multi_attach && strcmp(vol->type, "io1") != 0 && strcmp(vol->type, "io2") != 0)
            return "multi-attach needs an io1 or io2 volume";
        for (size_t a = 0; a < vol->natt; a++)
            for (size_t b = a + 1; b < vol->natt; b++)
                if (vol->att[a].instance == vol->att[b].instance)
                    return "volume attached twice to one instance";
        for (size_t a = 0; a < vol->natt; a++) {
            if (vol->att[a].instance >= f->ninstances)
                return "attachment to a missing instance";
            if (f->instances[vol->att[a].instance].state == INST_TERMINATED)
                return "volume attached to a terminated instance";
        }
        if (vol->size_gib < 1 || vol->size_gib > 65536)
            return "volume size out of range";
    }
    return NULL;
}

/* ---- export ----------------------------------------------------------------------------- */

static void add_time(cJSON *o, const char *key, int64_t ms)
{
    char ts[40];
    cJSON_AddStringToObject(o, key, clock_format_rfc3339(ms, ts, sizeof ts));
}

cJSON *fleet_to_json(const struct fleet *f)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "region", f->region);
    cJSON *insts = cJSON_AddArrayToObject(doc, "instances");
    for (size_t i = 0; i < f->ninstances; i++) {
        const struct fleet_instance *in = &f->instances[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", in->id);
        cJSON_AddStringToObject(o, "reservation", f->reservations[in->reservation].id);
        cJSON_AddStringToObject(o, "owner_id", f->reservations[in->reservation].owner_id);
        cJSON_AddStringToObject(o, "state", fleet_state_name(in->state));
        cJSON_AddStringToObject(o, "type", in->type);
        cJSON_AddStringToObject(o, "az", in->az);
        cJSON_AddStringToObject(o, "image_id", in->image_id);
        cJSON_AddStringToObject(o, "private_ip", in->private_ip);
        add_time(o, "launch_time", in->launch_time);
        cJSON *tags = cJSON_AddObjectToObject(o, "tags");
        for (size_t t = 0; t < in->ntags; t++)
            cJSON_AddStringToObject(tags, in->tags[t].key, in->tags[t].value);
        cJSON_AddItemToArray(insts, o);
    }
    cJSON *vols = cJSON_AddArrayToObject(doc, "volumes");
    for (size_t v = 0; v < f->nvolumes; v++) {
        const struct fleet_volume *vol = &f->volumes[v];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", vol->id);
        cJSON_AddNumberToObject(o, "size", vol->size_gib);
        cJSON_AddStringToObject(o, "type", vol->type);
        if (vol->iops)
            cJSON_AddNumberToObject(o, "iops", vol->iops);
        if (vol->throughput)
            cJSON_AddNumberToObject(o, "throughput", vol->throughput);
        cJSON_AddBoolToObject(o, "encrypted", vol->encrypted);
        cJSON_AddBoolToObject(o, "multi_attach", vol->multi_attach);
        cJSON_AddStringToObject(o, "az", vol->az);
        cJSON_AddStringToObject(o, "status", vol->status);
        if (vol->snapshot_id[0])
            cJSON_AddStringToObject(o, "snapshot_id", vol->snapshot_id);
        add_time(o, "create_time", vol->create_time);
        if (vol->ntags) {
            cJSON *tags = cJSON_AddObjectToObject(o, "tags");
            for (size_t t = 0; t < vol->ntags; t++)
                cJSON_AddStringToObject(tags, vol->tags[t].key, vol->tags[t].value);
        }
        cJSON *atts = cJSON_AddArrayToObject(o, "attachments");
        for (size_t a = 0; a < vol->natt; a++) {
            cJSON *ao = cJSON_CreateObject();
            cJSON_AddStringToObject(ao, "instance", f->instances[vol->att[a].instance].id);
            cJSON_AddStringToObject(ao, "device", vol->att[a].device);
            cJSON_AddStringToObject(ao, "state", vol->att[a].state);
            add_time(ao, "attach_time", vol->att[a].attach_time);
            cJSON_AddBoolToObject(ao, "delete_on_termination", vol->att[a].delete_on_termination);
            cJSON_AddItemToArray(atts, ao);
        }
        cJSON_AddItemToArray(vols, o);
    }
    return doc;
}
