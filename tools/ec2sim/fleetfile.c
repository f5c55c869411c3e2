/* fleetfile.c - fleet files: a JSON document (or the same structure in YAML, converted to
 * cJSON with libyaml) describing instances and volumes; format in docs/ec2sim.md. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yaml.h>

#include "fleet.h"
#include "mem.h"

#define FLEET_FILE_MAX (256u << 20)

static void seterr(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* "2023-01-02T03:04:05[.mmm]Z" -> wall ms; -1 if malformed. */
static int64_t parse_time(const char *s)
{
    int y, mo, d, h, mi, sec;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6)
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return (int64_t)timegm(&tm) * 1000;
}

static const char *get_str(const cJSON *o, const char *key, const char *def)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) ? it->valuestring : def;
}

/* Numbers may come as JSON numbers or (from YAML) numeric strings. */
static bool get_num(const cJSON *o, const char *key, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(it)) {
        *out = it->valuedouble;
        return true;
    }
    if (cJSON_IsString(it)) {
        char *end;
        double v = strtod(it->valuestring, &end);
        if (end != it->valuestring && *end == '\0') {
            *out = v;
            return true;
        }
    }
    return false;
}

static bool get_bool(const cJSON *o, const char *key, bool def)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(it))
        return cJSON_IsTrue(it);
    if (cJSON_IsString(it))
        return strcmp(it->valuestring, "true") == 0;
    return def;
}

static void copy(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src); }

/* Deterministic filler ids for entries that omit one. */
static void filler_id(const char *prefix, uint64_t k, char out[FLEET_ID_LEN])
{
    uint64_t z = k * 0x9e3779b97f4a7c15ULL + 0x1234567ULL;
    z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ULL;
    snprintf(out, FLEET_ID_LEN, "%s%017llx", prefix,
             (unsigned long long)(z & 0xfffffffffffffffULL) | (k & 0xf) << 60);
}

/* An entry's "tags" map ({key: value}; a non-string value is ""), appended to *tags. */
static void load_tags(const cJSON *entry, struct fleet_tag **tags, size_t *ntags)
{
    const cJSON *tg;
    cJSON_ArrayForEach(tg, cJSON_GetObjectItemCaseSensitive(entry, "tags"))
    {
        if (!tg->string)
            continue;
        *tags = xrealloc(*tags, (*ntags + 1) * sizeof **tags);
        (*tags)[*ntags].key = xstrdup(tg->string);
        (*tags)[*ntags].value = xstrdup(cJSON_IsString(tg) ? tg->valuestring : "");
        (*ntags)++;
    }
}

ebsd_status fleet_from_json(const cJSON *doc, struct fleet **out, char *errbuf, size_t errlen)
{
    ebsd_status st = EBSD_EPARSE;
    struct fleet *f = xcalloc(1, sizeof *f);
    size_t *order = NULL;
    struct fleet_instance *sorted = NULL;
    if (!cJSON_IsObject(doc)) {
        seterr(errbuf, errlen, "fleet: the document must be an object");
        goto out;
    }
    copy(f->region, sizeof f->region, get_str(doc, "region", "us-east-1"));
    const cJSON *insts = cJSON_GetObjectItemCaseSensitive(doc, "instances");
    const cJSON *vols = cJSON_GetObjectItemCaseSensitive(doc, "volumes");
    if ((insts && !cJSON_IsArray(insts)) || (vols && !cJSON_IsArray(vols))) {
        seterr(errbuf, errlen, "fleet: instances and volumes must be lists");
        goto out;
    }
    size_t ni = (size_t)cJSON_GetArraySize(insts), nv = (size_t)cJSON_GetArraySize(vols);
    if (ni > FLEET_MAX_INSTANCES) {
        seterr(errbuf, errlen, "fleet: more than %d instances", FLEET_MAX_INSTANCES);
        goto out;
    }
    f->instances = xcalloc(ni + 1, sizeof *f->instances);
    f->reservations = xcalloc(ni + 1, sizeof *f->reservations);
    f->volumes = xcalloc(nv + 1, sizeof *f->volumes);
    size_t *resv_of = xcalloc(ni + 1, sizeof *resv_of);
    order = resv_of;

    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, insts)
    {
        struct fleet_instance *in = &f->instances[i];
        const char *id = get_str(it, "id", NULL);
        if (!id || !fleet_id_valid(id, "i-")) {
            seterr(errbuf, errlen, "fleet: instances[%zu]: missing or malformed id", i);
            goto out;
        }
        copy(in->id, sizeof in->id, id);
        int s = fleet_state_parse(get_str(it, "state", "running"));
        if (s < 0) {
            seterr(errbuf, errlen, "fleet: instances[%zu]: unknown state", i);
            goto out;
        }
        in->state = (enum inst_state)s;
        copy(in->type, sizeof in->type, get_str(it, "type", "m5.large"));
        copy(in->az, sizeof in->az, get_str(it, "az", "us-east-1a"));
        const char *ami = get_str(it, "image_id", NULL);
        if (ami)
            copy(in->image_id, sizeof in->image_id, ami);
        else
            filler_id("ami-", i, in->image_id);
        const char *ip = get_str(it, "private_ip", NULL);
        if (ip)
            copy(in->private_ip, sizeof in->private_ip, ip);
        else
            snprintf(in->private_ip, sizeof in->private_ip, "10.0.%zu.%zu", (i / 250) % 256,
                     1 + i % 250);
        const char *lt = get_str(it, "launch_time", "2024-01-01T00:00:00.000Z");
        in->launch_time = parse_time(lt);
        if (in->launch_time < 0) {
            seterr(errbuf, errlen, "fleet: instances[%zu]: bad launch_time", i);
            goto out;
        }
        load_tags(it, &in->tags, &in->ntags);
        /* Reservations in order of first appearance; no id means a reservation of its own. */
        const char *rid = get_str(it, "reservation", NULL);
        size_t r = f->nreservations;
        if (rid)
            for (size_t k = 0; k < f->nreservations; k++)
                if (strcmp(f->reservations[k].id, rid) == 0) {
                    r = k;
                    break;
                }
        if (r == f->nreservations) {
            if (rid)
                copy(f->reservations[r].id, sizeof f->reservations[r].id, rid);
            else
                filler_id("r-", i, f->reservations[r].id);
            copy(f->reservations[r].owner_id, sizeof f->reservations[r].owner_id,
                 get_str(it, "owner_id", "123456789012"));
            f->nreservations++;
        }
        resv_of[i] = r;
        in->reservation = r;
        i++;
        f->ninstances = i; /* so fleet_free sees the tags allocated so far */
    }

    /* A reservation's instances must be adjacent: stable order by reservation. */
    sorted = xcalloc(ni + 1, sizeof *sorted);
    size_t k = 0;
    for (size_t r = 0; r < f->nreservations; r++)
        for (size_t j = 0; j < ni; j++)
            if (resv_of[j] == r)
                sorted[k++] = f->instances[j];
    free(f->instances);
    f->instances = sorted;
    sorted = NULL;
    fleet_index(f); /* instance lookups for the attachments below */

    size_t v = 0;
    cJSON_ArrayForEach(it, vols)
    {
        struct fleet_volume *vol = &f->volumes[v];
        f->nvolumes = v + 1; /* so fleet_free sees its attachments on an error */
        const char *id = get_str(it, "id", NULL);
        if (id && !fleet_id_valid(id, "vol-")) {
            seterr(errbuf, errlen, "fleet: volumes[%zu]: malformed id", v);
            goto out;
        }
        if (id)
            copy(vol->id, sizeof vol->id, id);
        else
            filler_id("vol-", v + 1000000, vol->id);
        double num;
        if (!get_num(it, "size", &num) || num < 1 || num > 65536) {
            seterr(errbuf, errlen, "fleet: volumes[%zu]: size must be 1..65536 GiB", v);
            goto out;
        }
        vol->size_gib = (int)num;
        copy(vol->type, sizeof vol->type, get_str(it, "type", "gp3"));
        vol->iops = get_num(it, "iops", &num) ? (int)num : 0;
        vol->throughput = get_num(it, "throughput", &num) ? (int)num : 0;
        if (!vol->iops && strcmp(vol->type, "gp3") == 0)
            vol->iops = 3000;
        if (!vol->throughput && strcmp(vol->type, "gp3") == 0)
            vol->throughput = 125;
        vol->encrypted = get_bool(it, "encrypted", false);
        vol->multi_attach = get_bool(it, "multi_attach", false);
        copy(vol->snapshot_id, sizeof vol->snapshot_id, get_str(it, "snapshot_id", ""));
        vol->create_time = parse_time(get_str(it, "create_time", "2024-01-01T00:00:00.000Z"));
        if (vol->create_time < 0) {
            seterr(errbuf, errlen, "fleet: volumes[%zu]: bad create_time", v);
            goto out;
        }
        load_tags(it, &vol->tags, &vol->ntags);
        const cJSON *atts = cJSON_GetObjectItemCaseSensitive(it, "attachments");
        const cJSON *at;
        cJSON_ArrayForEach(at, atts)
        {
            if (vol->natt == FLEET_MAX_ATTACH) {
                seterr(errbuf, errlen, "fleet: volumes[%zu]: at most %d attachments", v,
                       FLEET_MAX_ATTACH);
                goto out;
            }
            const char *iid = get_str(at, "instance", "");
            size_t idx = fleet_find_instance(f, iid);
            if (idx == SIZE_MAX) {
                seterr(errbuf, errlen, "fleet: volumes[%zu]: unknown instance '%s'", v, iid);
                goto out;
            }
            vol->att = xrealloc(vol->att, (vol->natt + 1) * sizeof *vol->att);
            struct fleet_attachment *a = &vol->att[vol->natt++];
            a->instance = idx;
            copy(a->device, sizeof a->device, get_str(at, "device", "/dev/sdf"));
            copy(a->state, sizeof a->state, get_str(at, "state", "attached"));
            a->attach_time = parse_time(get_str(at, "attach_time", "2024-01-01T00:00:00.000Z"));
            if (a->attach_time < 0)
                a->attach_time = vol->create_time;
            a->delete_on_termination = get_bool(at, "delete_on_termination", false);
        }
        copy(vol->az, sizeof vol->az,
             get_str(it, "az", vol->natt ? f->instances[vol->att[0].instance].az : "us-east-1a"));
        copy(vol->status, sizeof vol->status,
             get_str(it, "status", vol->natt ? "in-use" : "available"));
        v++;
        f->nvolumes = v;
    }
    fleet_index(f);
    const char *bad = fleet_check(f);
    if (bad) {
        seterr(errbuf, errlen, "fleet: %s", bad);
        goto out;
    }
    *out = f;
    f = NULL;
    st = EBSD_OK;
out:
    free(order);
    free(sorted);
    fleet_free(f);
    return st;
}

/* ---- YAML -> cJSON ---------------------------------------------------------------------- */

static cJSON *yaml_scalar(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (strcmp(s, "true") == 0)
            return cJSON_CreateTrue();
        if (strcmp(s, "false") == 0)
            return cJSON_CreateFalse();
        if (strcmp(s, "null") == 0 || strcmp(s, "~") == 0 || s[0] == '\0')
            return cJSON_CreateNull();
        char *end;
        double d = strtod(s, &end);
        if (end != s && *end == '\0')
            return cJSON_CreateNumber(d);
    }
    return cJSON_CreateString(s);
}

static cJSON *yaml_to_json(yaml_document_t *doc, yaml_node_t *n, int depth)
{
    if (!n || depth > 32)
        return NULL;
    if (n->type == YAML_SCALAR_NODE)
        return yaml_scalar(n);
    if (n->type == YAML_SEQUENCE_NODE) {
        cJSON *a = cJSON_CreateArray();
        for (yaml_node_item_t *p = n->data.sequence.items.start; p < n->data.sequence.items.top;
             p++) {
            cJSON *c = yaml_to_json(doc, yaml_document_get_node(doc, *p), depth + 1);
            if (!c) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, c);
        }
        return a;
    }
    if (n->type == YAML_MAPPING_NODE) {
        cJSON *o = cJSON_CreateObject();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            cJSON *c = yaml_to_json(doc, yaml_document_get_node(doc, p->value), depth + 1);
            if (!k || k->type != YAML_SCALAR_NODE || !c) {
                cJSON_Delete(c);
                cJSON_Delete(o);
                return NULL;
            }
            cJSON_AddItemToObject(o, (const char *)k->data.scalar.value, c);
        }
        return o;
    }
    return NULL;
}

static cJSON *parse_yaml(const char *text, size_t len, char *errbuf, size_t errlen)
{
    yaml_parser_t p;
    yaml_document_t doc;
    cJSON *out = NULL;
    if (!yaml_parser_initialize(&p)) {
        seterr(errbuf, errlen, "fleet: yaml_parser_initialize failed");
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        seterr(errbuf, errlen, "fleet: YAML error at line %zu: %s", p.problem_mark.line + 1,
               p.problem ? p.problem : "?");
        yaml_parser_delete(&p);
        return NULL;
    }
    out = yaml_to_json(&doc, yaml_document_get_root_node(&doc), 0);
    if (!out)
        seterr(errbuf, errlen, "fleet: YAML document has an unsupported shape");
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return out;
}

ebsd_status fleet_load_file(const char *path, struct fleet **out, char *errbuf, size_t errlen)
{
    ebsd_status st = EBSD_EIO;
    char *text = NULL;
    cJSON *doc = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        seterr(errbuf, errlen, "fopen %s: %s", path, strerror(errno));
        goto out;
    }
    size_t cap = 1 << 16, len = 0;
    text = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= FLEET_FILE_MAX) {
                st = EBSD_ETOOBIG;
                seterr(errbuf, errlen, "fleet: %s is larger than %u bytes", path, FLEET_FILE_MAX);
                goto out;
            }
            cap *= 2;
            text = xrealloc(text, cap);
        }
        size_t n = fread(text + len, 1, cap - len - 1, fp);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(fp)) {
        seterr(errbuf, errlen, "fread %s: %s", path, strerror(errno));
        goto out;
    }
    text[len] = '\0';
    size_t pl = strlen(path);
    bool yaml = (pl > 5 && strcmp(path + pl - 5, ".yaml") == 0) ||
                (pl > 4 && strcmp(path + pl - 4, ".yml") == 0);
    st = EBSD_EPARSE;
    if (yaml) {
        doc = parse_yaml(text, len, errbuf, errlen);
    } else {
        doc = cJSON_ParseWithLength(text, len);
        if (!doc)
            seterr(errbuf, errlen, "fleet: %s is not valid JSON", path);
    }
    if (!doc)
        goto out;
    st = fleet_from_json(doc, out, errbuf, errlen);
out:
    if (fp)
        fclose(fp);
    free(text);
    cJSON_Delete(doc);
    return st;
}
