/* storage.c - the latest storage figures of each target as gauges (see storage.h). */
#include "storage.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "answer.h"

struct tally {
    char name[16];
    double gib, count;
};

struct tallies {
    struct tally v[STORAGE_MAX_VALUES + 1]; /* the last one is "other" */
    unsigned n;
};

struct slot {
    struct target target;
    bool have_total, have_unattached;
    int64_t total_at, unattached_at;    /* wall ms of each part's fetch */
    struct tallies attached, unattached, states;
};

static struct {
    struct slot s[STORAGE_MAX_TARGETS];
    unsigned n;
} g;

static struct slot *slot_for(const struct target *t)
{
    for (unsigned i = 0; i < g.n; i++)
        if (target_equal(&g.s[i].target, t))
            return &g.s[i];
    if (g.n >= STORAGE_MAX_TARGETS)
        return NULL; /* more targets than configured ones can be: not exported */
    struct slot *s = &g.s[g.n++];
    memset(s, 0, sizeof *s);
    s->target = *t;
    return s;
}

/* EC2's values are words like "gp3" or "shutting-down"; anything else is "other", so a
 * label never carries what an upstream made up. */
static bool word(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n >= sizeof((struct tally *)0)->name)
        return false;
    for (; *v; v++)
        if (!((*v >= 'a' && *v <= 'z') || (*v >= '0' && *v <= '9') || *v == '-' || *v == '.'))
            return false;
    return true;
}

static void add(struct tallies *t, const char *name, double gib, double count)
{
    struct tally *x = NULL;
    if (word(name) && strcmp(name, "other") != 0) {
        for (unsigned i = 0; i < t->n && !x; i++)
            if (strcmp(t->v[i].name, name) == 0)
                x = &t->v[i];
        if (!x && t->n < STORAGE_MAX_VALUES) {
            x = &t->v[t->n++];
            snprintf(x->name, sizeof x->name, "%s", name);
        }
    }
    if (!x) {
        x = &t->v[STORAGE_MAX_VALUES];
        snprintf(x->name, sizeof x->name, "other");
    }
    x->gib += gib;
    x->count += count;
}

static void add_volume(void *ctx, const struct wire_vol *v)
{
    add(ctx, v->type, (double)v->size_gib, 1);
}

static void add_attached(void *ctx, const struct wire_vol *v, const struct wire_inst *owner)
{
    (void)owner;
    add_volume(ctx, v);
}

void storage_note_total(const struct target *t, struct wire_inst *inst, size_t ninst,
                        struct wire_vol *vols, size_t nvols, const struct wire_attach *atts,
                        int64_t fetched_at)
{
    struct slot *s = slot_for(t);
    if (!s)
        return;
    memset(&s->attached, 0, sizeof s->attached);
    memset(&s->states, 0, sizeof s->states);
    /* by volume type, as a group_by=volume_type answer would say, but in one pass without
     * building the groups: this runs after every total, before its answer goes out */
    answer_foreach_counted(inst, ninst, vols, nvols, atts, add_attached, &s->attached);
    for (size_t i = 0; i < ninst; i++)
        add(&s->states, inst[i].state, 0, 1);
    s->have_total = true;
    s->total_at = fetched_at;
}

void storage_note_unattached(const struct target *t, struct wire_vol *vols, size_t nvols,
                             int64_t fetched_at)
{
    struct slot *s = slot_for(t);
    if (!s)
        return;
    memset(&s->unattached, 0, sizeof s->unattached);
    /* by volume type, as the answer's by_type, in one pass without building the answer */
    answer_foreach_unattached(vols, nvols, add_volume, &s->unattached);
    s->have_unattached = true;
    s->unattached_at = fetched_at;
}

void storage_page_fill(const struct target *t, cJSON *obj)
{
    for (unsigned i = 0; i < g.n; i++) {
        const struct slot *s = &g.s[i];
        if (!target_equal(&s->target, t))
            continue;
        if (s->have_total && !cJSON_GetObjectItemCaseSensitive(obj, "by_type")) {
            cJSON *by = cJSON_AddObjectToObject(obj, "by_type");
            for (unsigned k = 0; k <= STORAGE_MAX_VALUES; k++)
                if (s->attached.v[k].name[0] && s->attached.v[k].count > 0)
                    cJSON_AddNumberToObject(by, s->attached.v[k].name, s->attached.v[k].gib);
        }
        if (s->have_unattached && !cJSON_GetObjectItemCaseSensitive(obj, "unattached_gib")) {
            double gib = 0;
            for (unsigned k = 0; k <= STORAGE_MAX_VALUES; k++)
                gib += s->unattached.v[k].gib;
            cJSON_AddNumberToObject(obj, "unattached_gib", gib);
        }
        return;
    }
}

void storage_reset(void) { memset(&g, 0, sizeof g); }

void storage_forget_account(const char *account)
{
    unsigned kept = 0;
    for (unsigned i = 0; i < g.n; i++)
        if (strcmp(g.s[i].target.account, account) != 0)
            g.s[kept++] = g.s[i]; /* in order: the series keep their order */
    g.n = kept;
}

/* A label value in the text format: backslash, quote and newline escaped. */
static ebsd_status put_label(struct buf *b, const char *name, const char *v)
{
    ebsd_status st = buf_printf(b, "%s=\"", name);
    for (; st == EBSD_OK && *v; v++) {
        if (*v == '\\' || *v == '"')
            st = buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            st = buf_puts(b, "\\n");
        else
            st = buf_append(b, v, 1);
    }
    return st == EBSD_OK ? buf_puts(b, "\"") : st;
}

static ebsd_status put_head(struct buf *b, const char *name, const char *help)
{
    return buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static ebsd_status put_sample(struct buf *b, const char *name, const struct target *t,
                              const char *lname, const char *lval, double v)
{
    ebsd_status st = buf_printf(b, "%s{", name);
    if (st == EBSD_OK)
        st = put_label(b, "account", t->account);
    if (st == EBSD_OK)
        st = buf_puts(b, ",");
    if (st == EBSD_OK)
        st = put_label(b, "region", t->region);
    if (st == EBSD_OK && lname) {
        st = buf_puts(b, ",");
        if (st == EBSD_OK)
            st = put_label(b, lname, lval);
    }
    /* whole numbers (counts, bytes below 2^53) exactly, an age to the millisecond */
    if (st == EBSD_OK)
        st = v == (double)(int64_t)v && v < 9007199254740992.0 ? buf_printf(b, "} %.0f\n", v)
                                                               : buf_printf(b, "} %.3f\n", v);
    return st;
}

enum part { ATTACHED, UNATTACHED, STATES };

static ebsd_status put_family(struct buf *b, const char *name, const char *help, enum part p,
                              bool bytes, const char *lname)
{
    ebsd_status st = put_head(b, name, help);
    for (unsigned i = 0; st == EBSD_OK && i < g.n; i++) {
        const struct slot *s = &g.s[i];
        if ((p == UNATTACHED && !s->have_unattached) || (p != UNATTACHED && !s->have_total))
            continue;
        const struct tallies *t = p == ATTACHED ? &s->attached
                                  : p == UNATTACHED ? &s->unattached : &s->states;
        for (unsigned k = 0; st == EBSD_OK && k <= STORAGE_MAX_VALUES; k++) {
            const struct tally *x = &t->v[k];
            if (k >= t->n && k < STORAGE_MAX_VALUES)
                continue;
            if (!x->name[0])
                continue; /* "other" unused */
            double v = bytes ? x->gib * 1073741824.0 : x->count;
            st = put_sample(b, name, &s->target, lname, x->name, v);
        }
    }
    return st;
}

ebsd_status storage_render(struct buf *out, int64_t now)
{
    ebsd_status st = put_family(out, "ebsd_storage_attached_bytes",
                                "EBS storage attached to instances (latest answer), bytes.",
                                ATTACHED, true, "volume_type");
    if (st == EBSD_OK)
        st = put_family(out, "ebsd_storage_attached_volumes",
                        "EBS volumes attached to instances (latest answer).", ATTACHED, false,
                        "volume_type");
    if (st == EBSD_OK)
        st = put_family(out, "ebsd_storage_unattached_bytes",
                        "EBS storage attached to nothing (latest answer), bytes.", UNATTACHED,
                        true, "volume_type");
    if (st == EBSD_OK)
        st = put_family(out, "ebsd_storage_unattached_volumes",
                        "EBS volumes attached to nothing (latest answer).", UNATTACHED, false,
                        "volume_type");
    if (st == EBSD_OK)
        st = put_family(out, "ebsd_instances", "EC2 instances by state (latest answer).", STATES,
                        false, "state");
    if (st == EBSD_OK)
        st = put_head(out, "ebsd_storage_data_age_seconds",
                      "Age of the oldest part of the latest storage figures, seconds.");
    for (unsigned i = 0; st == EBSD_OK && i < g.n; i++) {
        const struct slot *s = &g.s[i];
        if (!s->have_total && !s->have_unattached)
            continue;
        int64_t at = !s->have_total ? s->unattached_at
                     : !s->have_unattached ? s->total_at
                     : s->total_at < s->unattached_at ? s->total_at : s->unattached_at;
        double age = (double)(now - at) / 1000.0;
        st = put_sample(out, "ebsd_storage_data_age_seconds", &s->target, NULL, NULL,
                        age > 0 ? age : 0);
    }
    return st;
}
