/* answer.c - aggregation of records into the data routes' JSON, and outcome to HTTP status
 * and error code (see answer.h). */
#include "answer.h"

#include "buf.h"
#include "clock.h"
#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_inst(const void *a, const void *b)
{
    return strcmp(((const struct wire_inst *)a)->id, ((const struct wire_inst *)b)->id);
}

static int cmp_vol(const void *a, const void *b)
{
    return strcmp(((const struct wire_vol *)a)->id, ((const struct wire_vol *)b)->id);
}

/* Sorts n records of size bytes. One outcome is aggregated more than once (the answer, the
 * storage gauges), and a second qsort of sorted input would still copy every record (glibc's
 * merge sort), so sorted input is left as it is. n < 2 never reaches qsort, which may not be
 * given a NULL base. */
static void sort_items(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    const char *p = base;
    size_t i = 1;
    while (i < n && cmp(p + (i - 1) * size, p + i * size) <= 0)
        i++;
    if (i < n)
        qsort(base, n, size, cmp);
}

static bool attach_counts(const char *state)
{
    return strcmp(state, "attached") == 0 || strcmp(state, "attaching") == 0 ||
           strcmp(state, "detaching") == 0 || state[0] == '\0';
}

static int cmp_id_inst(const void *id, const void *b)
{
    return strcmp(id, ((const struct wire_inst *)b)->id);
}

/* The instance of id in inst (sorted), or NULL. */
static struct wire_inst *find_inst(struct wire_inst *inst, size_t ninst, const char *id)
{
    return ninst ? bsearch(id, inst, ninst, sizeof *inst, cmp_id_inst) : NULL;
}

cJSON *answer_total(const char *region, struct wire_inst *inst, size_t ninst,
                    struct wire_vol *vols, size_t nvols, const struct wire_attach *atts,
                    bool instances)
{
    sort_items(inst, ninst, sizeof *inst, cmp_inst);
    sort_items(vols, nvols, sizeof *vols, cmp_vol);
    int64_t total = 0;
    size_t nvol = 0;
    for (size_t i = 0; i < nvols; i++) {
        const struct wire_vol *v = &vols[i];
        if (i > 0 && strcmp(v->id, vols[i - 1].id) == 0)
            continue; /* a multi-attach volume reported by two groups */
        bool counted = false;
        const struct wire_attach *va = atts + v->attach_at;
        for (unsigned k = 0; k < v->nattach; k++) {
            if (!attach_counts(va[k].state))
                continue;
            struct wire_inst *in = find_inst(inst, ninst, va[k].instance_id);
            if (!in)
                continue;
            in->nvol++;
            in->gib += v->size_gib;
            counted = true;
        }
        if (counted) {
            total += v->size_gib;
            nvol++;
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "region", region);
    cJSON_AddNumberToObject(o, "total_gib", (double)total);
    cJSON_AddNumberToObject(o, "instance_count", (double)ninst);
    cJSON_AddNumberToObject(o, "volume_count", (double)nvol);
    if (!instances)
        return o; /* 10,000 objects built only to be deleted cost the parent a fifth of its
                   * CPU per cold request */
    cJSON *arr = cJSON_AddArrayToObject(o, "instances");
    for (size_t i = 0; i < ninst; i++) {
        const struct wire_inst *in = &inst[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "instance_id", in->id);
        cJSON_AddStringToObject(x, "state", in->state);
        cJSON_AddNumberToObject(x, "volume_count", in->nvol);
        cJSON_AddNumberToObject(x, "total_gib", (double)in->gib);
        cJSON_AddItemToArray(arr, x);
    }
    return o;
}

cJSON *answer_instance(const char *region, const char *instance_id, const char *state,
                       struct wire_vol *vols, size_t nvols, const struct wire_attach *atts)
{
    sort_items(vols, nvols, sizeof *vols, cmp_vol);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "instance_id", instance_id);
    cJSON_AddStringToObject(o, "region", region);
    cJSON_AddStringToObject(o, "state", state);
    int64_t total = 0;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < nvols; i++) {
        const struct wire_vol *v = &vols[i];
        if (i > 0 && strcmp(v->id, vols[i - 1].id) == 0)
            continue;
        const struct wire_attach *a = NULL, *va = atts + v->attach_at;
        for (unsigned k = 0; k < v->nattach; k++)
            if (strcmp(va[k].instance_id, instance_id) == 0)
                a = &va[k];
        if (!a || !attach_counts(a->state))
            continue;
        total += v->size_gib;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "volume_id", v->id);
        cJSON_AddNumberToObject(x, "size_gib", (double)v->size_gib);
        cJSON_AddStringToObject(x, "type", v->type);
        if (v->iops)
            cJSON_AddNumberToObject(x, "iops", v->iops);
        else
            cJSON_AddNullToObject(x, "iops");
        if (v->throughput)
            cJSON_AddNumberToObject(x, "throughput", v->throughput);
        else
            cJSON_AddNullToObject(x, "throughput");
        cJSON_AddStringToObject(x, "state", v->state);
        cJSON_AddStringToObject(x, "device", a->device);
        cJSON_AddStringToObject(x, "attach_state", a->state[0] ? a->state : "attached");
        cJSON_AddBoolToObject(x, "delete_on_termination", a->dot);
        cJSON_AddBoolToObject(x, "encrypted", v->encrypted);
        cJSON_AddBoolToObject(x, "multi_attach", v->multi);
        cJSON_AddItemToArray(arr, x);
    }
    cJSON_AddNumberToObject(o, "total_gib", (double)total);
    cJSON_AddNumberToObject(o, "volume_count", cJSON_GetArraySize(arr));
    cJSON_AddItemToObject(o, "volumes", arr);
    return o;
}

/* ---------------------------------------------------------------- breakdowns */

/* One key's value for a counted volume and the instance it is grouped with; NULL: untagged. */
static const char *group_value(const struct wire_vol *v, const struct wire_inst *in,
                               const struct wire_tag *tags, const char *key)
{
    if (strcmp(key, "volume_type") == 0)
        return v->type;
    if (strcmp(key, "availability_zone") == 0)
        return v->az;
    if (strcmp(key, "instance_state") == 0)
        return in->state;
    if (strcmp(key, "instance_type") == 0)
        return in->type;
    bool on_instance = false;
    const char *tag = wire_group_tag(key, &on_instance);
    if (!tag)
        return NULL;
    return on_instance ? wire_tag_get(tags + in->tags_at, in->ntags, tag)
                       : wire_tag_get(tags + v->tags_at, v->ntags, tag);
}

struct member {
    char *key;     /* the values, each 'v' + value or 'n' (null), each ended by 0x1f */
    size_t vol;
};

static int cmp_member(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->vol < y->vol ? -1 : x->vol > y->vol);
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

struct group {
    cJSON *json;
    int64_t gib;
    const char *sort;
};

static int cmp_group(const void *a, const void *b)
{
    const struct group *x = a, *y = b;
    if (x->gib != y->gib)
        return x->gib > y->gib ? -1 : 1;
    return strcmp(x->sort, y->sort);
}

/* Appends one key's value to a group's sort key: 'v' + value, or 'n' for null (untagged),
 * ended by 0x1f, so that the keys sort and compare as the values do. */
static void key_put(struct buf *b, const char *val)
{
    if (buf_puts(b, val ? "v" : "n") != EBSD_OK || buf_puts(b, val ? val : "") != EBSD_OK ||
        buf_append(b, "\x1f", 1) != EBSD_OK)
        abort(); /* cannot happen: the values are bounded by the records (or by the answers
                  * they were built from) and the buffer's cap is above them */
}

/* The group of sort key skey (key_put's encoding of the nkeys values), with its counts. */
static struct group group_make(const char *const *keys, size_t nkeys, const char *skey,
                               int64_t gib, double volumes, double instances)
{
    cJSON *g = cJSON_CreateObject();
    cJSON *key = cJSON_AddObjectToObject(g, "key");
    const char *p = skey;
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
    cJSON_AddNumberToObject(g, "volume_count", volumes);
    cJSON_AddNumberToObject(g, "instance_count", instances);
    return (struct group){g, gib, skey};
}

/* The groups as the answer's array, in the answer's order (sorts groups in place). */
static cJSON *groups_sorted(struct group *groups, size_t ngroups)
{
    if (ngroups > 1)
        qsort(groups, ngroups, sizeof *groups, cmp_group);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < ngroups; i++)
        cJSON_AddItemToArray(arr, groups[i].json);
    return arr;
}

/* The listed instance of v's first counted attachment (sorted inst), or NULL: v does not count. */
static struct wire_inst *owner_of(const struct wire_vol *v, struct wire_inst *inst, size_t ninst,
                                  const struct wire_attach *atts)
{
    struct wire_inst *owner = NULL;
    for (unsigned k = 0; k < v->nattach && !owner; k++)
        if (attach_counts(atts[v->attach_at + k].state))
            owner = find_inst(inst, ninst, atts[v->attach_at + k].instance_id);
    return owner;
}

void answer_foreach_counted(struct wire_inst *inst, size_t ninst, struct wire_vol *vols,
                            size_t nvols, const struct wire_attach *atts,
                            answer_counted_fn fn, void *ctx)
{
    sort_items(inst, ninst, sizeof *inst, cmp_inst);
    sort_items(vols, nvols, sizeof *vols, cmp_vol);
    for (size_t i = 0; i < nvols; i++) {
        if (i > 0 && strcmp(vols[i].id, vols[i - 1].id) == 0)
            continue; /* a multi-attach volume reported by two groups */
        const struct wire_inst *owner = owner_of(&vols[i], inst, ninst, atts);
        if (owner)
            fn(ctx, &vols[i], owner);
    }
}

void answer_foreach_unattached(struct wire_vol *vols, size_t nvols,
                               void (*fn)(void *ctx, const struct wire_vol *v), void *ctx)
{
    sort_items(vols, nvols, sizeof *vols, cmp_vol);
    for (size_t i = 0; i < nvols; i++)
        if (i == 0 || strcmp(vols[i].id, vols[i - 1].id) != 0)
            fn(ctx, &vols[i]); /* once: a volume may be seen on two pages */
}

/* answer_groups' members: each counted volume's key values, in id order. */
struct members {
    const char *const *keys;
    size_t nkeys;
    const struct wire_tag *tags;
    const struct wire_vol *vols;
    struct member *m;
    size_t n;
};

static void add_member(void *ctx, const struct wire_vol *v, const struct wire_inst *owner)
{
    struct members *x = ctx;
    struct buf b;
    buf_init(&b, 4096); /* two values of at most WIRE_TAG_VALUE or 32 bytes */
    for (size_t k = 0; k < x->nkeys; k++)
        key_put(&b, group_value(v, owner, x->tags, x->keys[k]));
    x->m[x->n].key = buf_steal(&b);
    x->m[x->n].vol = (size_t)(v - x->vols);
    x->n++;
}

cJSON *answer_groups(const char *const *keys, size_t nkeys, struct wire_inst *inst, size_t ninst,
                     struct wire_vol *vols, size_t nvols, const struct wire_attach *atts,
                     const struct wire_tag *tags)
{
    struct members mb = {keys, nkeys, tags, vols, xmalloc((nvols + 1) * sizeof *mb.m), 0};
    answer_foreach_counted(inst, ninst, vols, nvols, atts, add_member, &mb);
    struct member *m = mb.m;
    size_t n = mb.n;
    if (n > 1)
        qsort(m, n, sizeof *m, cmp_member);
    struct group *groups = xmalloc((n + 1) * sizeof *groups);
    size_t ngroups = 0;
    const struct wire_inst **seen = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i, nseen = 0;
        int64_t gib = 0;
        for (; j < n && strcmp(m[j].key, m[i].key) == 0; j++) {
            const struct wire_vol *v = &vols[m[j].vol];
            gib += v->size_gib;
            for (unsigned k = 0; k < v->nattach; k++) {
                const struct wire_inst *in =
                    attach_counts(atts[v->attach_at + k].state)
                        ? find_inst(inst, ninst, atts[v->attach_at + k].instance_id) : NULL;
                if (!in)
                    continue;
                if (nseen == cap) {
                    cap = cap ? cap * 2 : 64;
                    seen = xrealloc(seen, cap * sizeof *seen);
                }
                seen[nseen++] = in;
            }
        }
        if (nseen > 1)
            qsort(seen, nseen, sizeof *seen, cmp_ptr);
        size_t distinct = 0;
        for (size_t k = 0; k < nseen; k++)
            distinct += k == 0 || seen[k] != seen[k - 1];
        groups[ngroups++] = group_make(keys, nkeys, m[i].key, gib, (double)(j - i),
                                       (double)distinct);
        i = j;
    }
    cJSON *arr = groups_sorted(groups, ngroups);
    for (size_t i = 0; i < n; i++)
        free(m[i].key);
    free(m);
    free(groups);
    free(seen);
    return arr;
}

/* One group of one part: its sort key and where its counts are. */
struct part_group {
    char *key;
    const cJSON *json;
};

static int cmp_part_group(const void *a, const void *b)
{
    return strcmp(((const struct part_group *)a)->key, ((const struct part_group *)b)->key);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

cJSON *answer_groups_merge(const char *const *keys, size_t nkeys, const cJSON *const *lists,
                           size_t nlists)
{
    size_t n = 0;
    for (size_t i = 0; i < nlists; i++)
        n += (size_t)cJSON_GetArraySize(lists[i]);
    struct part_group *m = xmalloc((n + 1) * sizeof *m);
    n = 0;
    for (size_t i = 0; i < nlists; i++) {
        const cJSON *g;
        cJSON_ArrayForEach(g, lists[i])
        {
            const cJSON *key = cJSON_GetObjectItemCaseSensitive(g, "key");
            struct buf b;
            buf_init(&b, 4096); /* the values came from answer_groups: bounded as there */
            for (size_t k = 0; k < nkeys; k++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(key, keys[k]);
                key_put(&b, cJSON_IsString(v) ? v->valuestring : NULL);
            }
            m[n].key = buf_steal(&b);
            m[n].json = g;
            n++;
        }
    }
    if (n > 1)
        qsort(m, n, sizeof *m, cmp_part_group);
    struct group *groups = xmalloc((n + 1) * sizeof *groups);
    size_t ngroups = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        double gib = 0, volumes = 0, instances = 0;
        for (; j < n && strcmp(m[j].key, m[i].key) == 0; j++) {
            gib += num(m[j].json, "total_gib");
            volumes += num(m[j].json, "volume_count");
            /* the parts are disjoint targets: their instances are distinct */
            instances += num(m[j].json, "instance_count");
        }
        groups[ngroups++] = group_make(keys, nkeys, m[i].key, (int64_t)gib, volumes, instances);
        i = j;
    }
    cJSON *arr = groups_sorted(groups, ngroups);
    for (size_t i = 0; i < n; i++)
        free(m[i].key);
    free(m);
    free(groups);
    return arr;
}

/* ---------------------------------------------------------------- unattached */

/* A create time in seconds; an unreadable one sorts last. */
static int64_t create_s(const char *text)
{
    time_t t;
    return text && clock_parse_rfc3339(text, &t) ? (int64_t)t : INT64_MAX;
}

/* The orders of `largest` (size, largest first, then id) and `oldest` (create time, then
 * id), on the fields whatever holds the volume: a record, or an answer's entry. */
static int order_largest(int64_t sx, const char *idx, int64_t sy, const char *idy)
{
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return strcmp(idx, idy);
}

static int order_oldest(int64_t tx, const char *idx, int64_t ty, const char *idy)
{
    if (tx != ty)
        return tx < ty ? -1 : 1;
    return strcmp(idx, idy);
}

static int cmp_largest(const void *a, const void *b)
{
    const struct wire_vol *x = *(const struct wire_vol *const *)a;
    const struct wire_vol *y = *(const struct wire_vol *const *)b;
    return order_largest(x->size_gib, x->id, y->size_gib, y->id);
}

static int cmp_oldest(const void *a, const void *b)
{
    const struct wire_vol *x = *(const struct wire_vol *const *)a;
    const struct wire_vol *y = *(const struct wire_vol *const *)b;
    return order_oldest(create_s(x->create_time), x->id, create_s(y->create_time), y->id);
}

/* Adds gib and count to by[name] ({total_gib, volume_count}, created at 0). */
static void bump(cJSON *by, const char *name, double gib, double count)
{
    cJSON *g = cJSON_GetObjectItemCaseSensitive(by, name);
    if (!g) {
        g = cJSON_AddObjectToObject(by, name);
        cJSON_AddNumberToObject(g, "total_gib", 0);
        cJSON_AddNumberToObject(g, "volume_count", 0);
    }
    cJSON *t = cJSON_GetObjectItemCaseSensitive(g, "total_gib");
    cJSON *c = cJSON_GetObjectItemCaseSensitive(g, "volume_count");
    cJSON_SetNumberValue(t, t->valuedouble + gib);
    cJSON_SetNumberValue(c, c->valuedouble + count);
}

static void add_brief(cJSON *arr, const struct wire_vol *v, const struct wire_tag *tags)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "volume_id", v->id);
    cJSON_AddNumberToObject(o, "size_gib", (double)v->size_gib);
    cJSON_AddStringToObject(o, "volume_type", v->type);
    cJSON_AddStringToObject(o, "availability_zone", v->az);
    cJSON_AddStringToObject(o, "create_time", v->create_time);
    cJSON *obj = cJSON_AddObjectToObject(o, "tags");
    const struct wire_tag *vt = tags + v->tags_at;
    for (unsigned t = 0; t < v->ntags; t++)
        cJSON_AddStringToObject(obj, vt[t].key, vt[t].value);
    cJSON_AddItemToArray(arr, o);
}

/* answer_unattached's sums and list, a volume at a time. */
struct unattached {
    const struct wire_vol **list;
    size_t n;
    int64_t gib;
    cJSON *by_type, *by_az;
};

static void add_unattached(void *ctx, const struct wire_vol *v)
{
    struct unattached *u = ctx;
    u->list[u->n++] = v;
    u->gib += v->size_gib;
    bump(u->by_type, v->type, (double)v->size_gib, 1);
    bump(u->by_az, v->az, (double)v->size_gib, 1);
}

cJSON *answer_unattached(const char *region, struct wire_vol *vols, size_t nvols,
                         const struct wire_tag *tags, unsigned limit)
{
    struct unattached u = {xmalloc((nvols + 1) * sizeof *u.list), 0, 0, cJSON_CreateObject(),
                           cJSON_CreateObject()};
    answer_foreach_unattached(vols, nvols, add_unattached, &u);
    const struct wire_vol **list = u.list;
    size_t n = u.n;
    int64_t gib = u.gib;
    cJSON *by_type = u.by_type, *by_az = u.by_az;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "region", region);
    cJSON_AddNumberToObject(o, "total_gib", (double)gib);
    cJSON_AddNumberToObject(o, "volume_count", (double)n);
    cJSON_AddItemToObject(o, "by_type", by_type);
    cJSON_AddItemToObject(o, "by_availability_zone", by_az);
    cJSON_AddNumberToObject(o, "limit", limit);
    cJSON *largest = cJSON_AddArrayToObject(o, "largest");
    cJSON *oldest = cJSON_AddArrayToObject(o, "oldest");
    if (n > 1)
        qsort(list, n, sizeof *list, cmp_largest);
    for (size_t i = 0; i < n && i < limit; i++)
        add_brief(largest, list[i], tags);
    if (n > 1)
        qsort(list, n, sizeof *list, cmp_oldest);
    for (size_t i = 0; i < n && i < limit; i++)
        add_brief(oldest, list[i], tags);
    free(list);
    return o;
}

/* One volume of a part's list, with its part (for the merged lists' order). */
struct part_vol {
    const cJSON *json;
    const struct answer_part *part;
    int64_t size, created;
    const char *id;
};

/* Ties of id (two targets' volumes) go by account, then region: a stable order. */
static int cmp_part_tie(const struct part_vol *x, const struct part_vol *y)
{
    int c = strcmp(x->part->account, y->part->account);
    return c ? c : strcmp(x->part->region, y->part->region);
}

static int cmp_part_largest(const void *a, const void *b)
{
    const struct part_vol *x = a, *y = b;
    int c = order_largest(x->size, x->id, y->size, y->id);
    return c ? c : cmp_part_tie(x, y);
}

static int cmp_part_oldest(const void *a, const void *b)
{
    const struct part_vol *x = a, *y = b;
    int c = order_oldest(x->created, x->id, y->created, y->id);
    return c ? c : cmp_part_tie(x, y);
}

/* The parts' list `name` merged into into's array `name`: the first limit in the order of
 * cmp, each volume copied with its account and region. */
static void merge_list(cJSON *into, const char *name, const struct answer_part *parts,
                       size_t nparts, unsigned limit, int (*cmp)(const void *, const void *))
{
    size_t n = 0;
    for (size_t i = 0; i < nparts; i++)
        n += (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(parts[i].data, name));
    struct part_vol *all = xmalloc((n + 1) * sizeof *all);
    n = 0;
    for (size_t i = 0; i < nparts; i++) {
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(parts[i].data, name))
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, "volume_id");
            const cJSON *ct = cJSON_GetObjectItemCaseSensitive(v, "create_time");
            all[n++] = (struct part_vol){.json = v, .part = &parts[i],
                                         .size = (int64_t)num(v, "size_gib"),
                                         .created = create_s(cJSON_GetStringValue(ct)),
                                         .id = cJSON_IsString(id) ? id->valuestring : ""};
        }
    }
    if (n > 1)
        qsort(all, n, sizeof *all, cmp);
    cJSON *arr = cJSON_AddArrayToObject(into, name);
    for (size_t i = 0; i < n && i < limit; i++) {
        cJSON *c = cJSON_Duplicate(all[i].json, 1);
        cJSON_AddStringToObject(c, "account", all[i].part->account);
        cJSON_AddStringToObject(c, "region", all[i].part->region);
        cJSON_AddItemToArray(arr, c);
    }
    free(all);
}

/* Sums the parts' tallies {value: {total_gib, volume_count}} named name into into. */
static void merge_tallies(cJSON *into, const char *name, const struct answer_part *parts,
                          size_t nparts)
{
    cJSON *by = cJSON_AddObjectToObject(into, name);
    for (size_t i = 0; i < nparts; i++) {
        const cJSON *g;
        cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(parts[i].data, name))
            bump(by, g->string, num(g, "total_gib"), num(g, "volume_count"));
    }
}

void answer_unattached_merge(cJSON *into, const struct answer_part *parts, size_t nparts,
                             unsigned limit)
{
    double gib = 0, count = 0;
    for (size_t i = 0; i < nparts; i++) {
        gib += num(parts[i].data, "total_gib");
        count += num(parts[i].data, "volume_count");
    }
    cJSON_AddNumberToObject(into, "total_gib", gib);
    cJSON_AddNumberToObject(into, "volume_count", count);
    merge_tallies(into, "by_type", parts, nparts);
    merge_tallies(into, "by_availability_zone", parts, nparts);
    cJSON_AddNumberToObject(into, "limit", limit);
    merge_list(into, "largest", parts, nparts, limit, cmp_part_largest);
    merge_list(into, "oldest", parts, nparts, limit, cmp_part_oldest);
}

static void fail(struct answer *a, unsigned http, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct answer *a, unsigned http, const char *code, const char *fmt, ...)
{
    a->http_status = http;
    snprintf(a->code, sizeof a->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->message, sizeof a->message, fmt, ap);
    va_end(ap);
    if (http == 503)
        a->retry_after_s = 1;
}

/* An EC2 failure reported by a worker, in the API's terms. */
static void map_ec2(const struct engine_query *q, const struct engine_outcome *o,
                    struct answer *a)
{
    const char *c = o->ec2_code[0] ? o->ec2_code : NULL;
    const char *m = o->message;
    ebsd_status st = o->status;
    if (c && strcmp(c, "InvalidInstanceID.NotFound") == 0)
        fail(a, 404, "NotFound", "instance %s does not exist in %s", q->instance_id,
             q->target.region);
    else if (st == EBSD_ETIMEDOUT)
        fail(a, 504, "TaskTimedOut", "EC2 calls did not finish by the deadline");
    else if (st == EBSD_ETHROTTLED || (c && o->ec2_http == 503))
        fail(a, 503, c ? c : "RequestLimitExceeded", "EC2 throttled the calls: %s", m);
    else if (st == EBSD_ENETWORK)
        fail(a, 502, "UpstreamUnreachable", "EC2 could not be reached: %s", m);
    else if (st == EBSD_EAUTH || st == EBSD_EUPSTREAM)
        fail(a, 502, c ? c : "UpstreamError", "EC2 answered HTTP %ld: %s", o->ec2_http, m);
    else
        fail(a, 502, c ? c : "UpstreamError", "EC2 call failed: %s", m);
}

/* The engine's own verdicts. */
static void map_engine(const struct engine_query *q, const struct engine_outcome *o,
                       struct answer *a)
{
    switch (o->status) {
    case EBSD_ETIMEDOUT:
        fail(a, 504, "TaskTimedOut", "%s", o->message);
        break;
    case EBSD_EBUSY:
        fail(a, 503, "Busy", "%s", o->message);
        break;
    case EBSD_ETHROTTLED:
        fail(a, 503, "RequestLimitExceeded", "%s", o->message);
        break;
    case EBSD_EAUTH:
        fail(a, 503, "CredentialsUnavailable", "%s", o->message);
        break;
    case EBSD_ENOTFOUND:
        fail(a, 404, "NotFound", "instance %s does not exist in %s", q->instance_id,
             q->target.region);
        break;
    case EBSD_ENOMEM:
        fail(a, 502, "MemoryLimitExceeded", "%s", o->message);
        break;
    default:
        fail(a, 502, "ChildFailed", "%s", o->message);
        break;
    }
}

void answer_from_outcome(const struct engine_query *q, struct engine_outcome *o, bool instances,
                         struct answer *out)
{
    memset(out, 0, sizeof *out);
    out->children = o->children;
    out->ec2_calls = o->ec2_calls;
    out->max_rss_kb = o->max_rss_kb;
    out->fetched_at = o->fetched_at;
    if (o->status != EBSD_OK) {
        if (o->from_ec2)
            map_ec2(q, o, out);
        else
            map_engine(q, o, out);
        if (out->http_status == 503 && o->retry_after_s)
            out->retry_after_s = o->retry_after_s; /* from ebsd's EC2 budget */
        return;
    }
    out->http_status = 200;
    if (q->kind == ENGINE_INSTANCE)
        out->data = answer_instance(q->target.region, q->instance_id,
                                    o->ninst ? o->inst[0].state : "unknown", o->vols, o->nvols,
                                    o->atts);
    else if (q->kind == ENGINE_UNATTACHED)
        out->data = answer_unattached(q->target.region, o->vols, o->nvols, o->tags,
                                      q->limit ? q->limit : 10);
    else
        out->data = answer_total(q->target.region, o->inst, o->ninst, o->vols, o->nvols,
                                 o->atts, instances);
    if (q->kind == ENGINE_TOTAL && q->ngroup > 0) {
        const char *keys[ENGINE_MAX_GROUPS];
        for (unsigned i = 0; i < q->ngroup && i < ENGINE_MAX_GROUPS; i++)
            keys[i] = q->group_by[i];
        cJSON *by = cJSON_AddArrayToObject(out->data, "group_by");
        for (unsigned i = 0; i < q->ngroup && i < ENGINE_MAX_GROUPS; i++)
            cJSON_AddItemToArray(by, cJSON_CreateString(keys[i]));
        cJSON_AddItemToObject(out->data, "groups",
                              answer_groups(keys, q->ngroup, o->inst, o->ninst, o->vols,
                                            o->nvols, o->atts, o->tags));
    }
}
