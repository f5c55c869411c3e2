/* wire.c - the worker-to-parent frames: fixed-size records and small JSON (see wire.h). */
#include "wire.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "frame.h"
#include "mem.h"

/* ================================================================ the child side */

static void add_stats(cJSON *o, const struct ec2_stats *s)
{
    cJSON_AddNumberToObject(o, "calls", s->calls);
    cJSON_AddNumberToObject(o, "di", s->describe_instances);
    cJSON_AddNumberToObject(o, "dv", s->describe_volumes);
    cJSON_AddNumberToObject(o, "retries", s->retries);
    cJSON_AddNumberToObject(o, "throttled", s->throttled);
    cJSON_AddNumberToObject(o, "quota", s->retry_quota);
    if (s->clock_offset_set) /* the parent adopts it: later workers sign right at once */
        cJSON_AddNumberToObject(o, "clock_offset_ms", (double)s->clock_offset_ms);
}

static ebsd_status put_json(int fd, int type, cJSON *o)
{
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    ebsd_status st = frame_write(fd, (uint8_t)type, txt, strlen(txt));
    free(txt);
    return st;
}

ebsd_status wire_put_error(int fd, ebsd_status st, const struct ec2_error *e,
                           const struct ec2_stats *s, long rss_kb)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "status", st);
    cJSON_AddNumberToObject(o, "http_status", (double)e->http_status);
    cJSON_AddStringToObject(o, "code", e->code);
    cJSON_AddStringToObject(o, "message", e->message[0] ? e->message : status_str(st));
    if (s)
        add_stats(o, s);
    if (rss_kb > 0)
        cJSON_AddNumberToObject(o, "rss", (double)rss_kb);
    return put_json(fd, WIRE_ERROR, o);
}

ebsd_status wire_put_done(int fd, const struct ec2_stats *s, long rss_kb)
{
    cJSON *o = cJSON_CreateObject();
    if (s)
        add_stats(o, s);
    if (rss_kb > 0)
        cJSON_AddNumberToObject(o, "rss", (double)rss_kb);
    return put_json(fd, WIRE_DONE, o);
}

/* On the wire a record is followed by its ntags tags (a volume's after its attachments), so
 * a frame carries only the tags a query asked for. tags_at and attach_at travel as they are
 * and are set by the decoder. */
#define INST_HEAD sizeof(struct wire_inst)
#define VOL_HEAD sizeof(struct wire_vol)

/* A worker's frame buffer, kept for the thread's next frame: a fresh one per page would be
 * faulted in and given back again for every page of the listing. Up to half a huge page it
 * is the heap's, which a worker never trims (worker.c), so only the pages a frame touches are
 * faulted in (a 500-volume page's frame is about 100 KiB, and a huge page zeroed for it was
 * 2 MiB of zeroing in every thread of every worker); larger (a page of 1,000 instances with
 * tags) a private mapping in huge pages (xtiered_grow). Not zeroed: every byte a frame sends
 * is written first. One per thread: a lister and the volume shares it carries build their
 * frames side by side (worker.c). */
static _Thread_local struct {
    char *a;
    size_t cap;
} scratch;

static char *records_new(size_t bytes)
{
    scratch.a = xtiered_grow(scratch.a, &scratch.cap, bytes ? bytes : 1, 0,
                             xprivate_huge_size() / 2);
    return scratch.a;
}

/* A copy cut at dstlen - 1 bytes, on a UTF-8 boundary. */
static void cut_copy(char *dst, size_t dstlen, const char *src)
{
    size_t n = strlen(src);
    if (n >= dstlen) {
        n = dstlen - 1;
        while (n && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool tag_fits(const struct ec2_tag *t) { return strlen(t->key) < WIRE_TAG_KEY; }

unsigned wire_pick_tags(const struct ec2_tag *src, size_t n, const struct wire_tag_pick *pick,
                        struct wire_tag *dst)
{
    unsigned out = 0;
    if (!pick)
        return 0;
    bool taken[EC2_MAX_TAGS] = {false};
    size_t lim = n < EC2_MAX_TAGS ? n : EC2_MAX_TAGS;
    for (unsigned k = 0; k < pick->nkeys && k < WIRE_PICK_KEYS; k++)
        for (size_t i = 0; i < lim && out < WIRE_MAX_TAGS; i++)
            if (!taken[i] && tag_fits(&src[i]) && strcmp(src[i].key, pick->keys[k]) == 0) {
                cut_copy(dst[out].key, sizeof dst[out].key, src[i].key);
                cut_copy(dst[out].value, sizeof dst[out].value, src[i].value);
                taken[i] = true;
                out++;
                break;
            }
    for (size_t i = 0; pick->all && i < lim && out < WIRE_MAX_TAGS; i++)
        if (!taken[i] && tag_fits(&src[i])) {
            cut_copy(dst[out].key, sizeof dst[out].key, src[i].key);
            cut_copy(dst[out].value, sizeof dst[out].value, src[i].value);
            out++;
        }
    return out;
}

const char *wire_tag_get(const struct wire_tag *tags, unsigned ntags, const char *key)
{
    for (unsigned i = 0; i < ntags && i < WIRE_MAX_TAGS; i++)
        if (strcmp(tags[i].key, key) == 0)
            return tags[i].value;
    return NULL;
}

/* The most tags pick keeps per record: what a frame's buffer reserves for them, since the
 * tags are picked once, as each record is written. */
static unsigned pick_max(const struct wire_tag_pick *pick)
{
    if (!pick)
        return 0;
    if (pick->all)
        return WIRE_MAX_TAGS;
    return pick->nkeys < WIRE_MAX_TAGS ? pick->nkeys : WIRE_MAX_TAGS;
}

/* Appends ntags tags at *at and moves it past them. */
static void put_tags(char **at, const struct wire_tag *tags, unsigned ntags)
{
    memcpy(*at, tags, ntags * sizeof(struct wire_tag));
    *at += ntags * sizeof(struct wire_tag);
}

/* No JSON is built or parsed per item: at 10,000 instances this is what keeps the parent
 * cheap. Each record is followed by the tags it carries (tags travel only when a query asks
 * for them): the buffer has room for the most pick can keep, the frame is what was written. */
ebsd_status wire_put_instances(int fd, const struct ec2_instance_page *p,
                               const struct wire_tag_pick *pick)
{
    size_t cap = p->n * (INST_HEAD + pick_max(pick) * sizeof(struct wire_tag));
    char *a = records_new(cap), *at = a;
    for (size_t i = 0; i < p->n; i++) {
        struct wire_inst o;
        struct wire_tag tags[WIRE_MAX_TAGS];
        memset(&o, 0, sizeof o);
        str_copy(o.id, sizeof o.id, p->items[i].id);
        str_copy(o.state, sizeof o.state, p->items[i].state);
        str_copy(o.type, sizeof o.type, p->items[i].type);
        o.ntags = wire_pick_tags(p->items[i].tags, p->items[i].ntags, pick, tags);
        memcpy(at, &o, INST_HEAD);
        at += INST_HEAD;
        put_tags(&at, tags, o.ntags);
    }
    return frame_write(fd, WIRE_INSTANCES, a, (size_t)(at - a));
}

static unsigned attach_count(const struct ec2_volume *v)
{
    return v->nattach < WIRE_MAX_ATTACH ? (unsigned)v->nattach : WIRE_MAX_ATTACH;
}

/* Records follow each other unaligned (a struct wire_attach is 73 bytes): both sides copy
 * them with memcpy. */
ebsd_status wire_put_volumes(int fd, const struct ec2_volume_page *p,
                             const struct wire_tag_pick *pick)
{
    size_t cap = 0;
    for (size_t i = 0; i < p->n; i++)
        cap += VOL_HEAD + attach_count(&p->items[i]) * sizeof(struct wire_attach) +
               pick_max(pick) * sizeof(struct wire_tag);
    char *a = records_new(cap), *at = a;
    for (size_t i = 0; i < p->n; i++) {
        const struct ec2_volume *v = &p->items[i];
        struct wire_vol o;
        struct wire_tag tags[WIRE_MAX_TAGS];
        memset(&o, 0, sizeof o);
        str_copy(o.id, sizeof o.id, v->id);
        o.size_gib = v->size_gib;
        str_copy(o.type, sizeof o.type, v->type);
        o.iops = v->iops;
        o.throughput = v->throughput;
        str_copy(o.state, sizeof o.state, v->state);
        o.encrypted = v->encrypted;
        o.multi = v->multi_attach;
        str_copy(o.az, sizeof o.az, v->az);
        str_copy(o.create_time, sizeof o.create_time, v->create_time);
        o.ntags = wire_pick_tags(v->tags, v->ntags, pick, tags);
        o.nattach = attach_count(v);
        memcpy(at, &o, VOL_HEAD);
        at += VOL_HEAD;
        for (size_t k = 0; k < o.nattach; k++) {
            struct wire_attach x;
            memset(&x, 0, sizeof x);
            str_copy(x.instance_id, sizeof x.instance_id, v->attach[k].instance_id);
            str_copy(x.device, sizeof x.device, v->attach[k].device);
            str_copy(x.state, sizeof x.state, v->attach[k].state);
            x.dot = v->attach[k].delete_on_termination;
            memcpy(at, &x, sizeof x);
            at += sizeof x;
        }
        put_tags(&at, tags, o.ntags);
    }
    return frame_write(fd, WIRE_VOLUMES, a, (size_t)(at - a));
}

/* ================================================================ the parent side */

#define TERMINATE(field) ((field)[sizeof(field) - 1] = '\0')

/* A bool copied from a frame is read as a byte first: any other value than 0 or 1 in a bool
 * would be undefined behaviour. */
static void fix_bool(bool *b)
{
    unsigned char c;
    memcpy(&c, b, 1);
    *b = c != 0;
}

/* Copies a record's n tags from the frame at *off into dst, terminated; moves *off past
 * them. The counting functions checked that they are there. */
static void take_tags(const char *data, size_t *off, unsigned n, struct wire_tag *dst)
{
    if (!n)
        return; /* dst may be NULL: no room was needed */
    memcpy(dst, data + *off, n * sizeof *dst);
    *off += n * sizeof *dst;
    for (unsigned i = 0; i < n; i++) {
        TERMINATE(dst[i].key);
        TERMINATE(dst[i].value);
    }
}

/* The unsigned at offset off of a record at data (not aligned: read by copy). */
static unsigned field_at(const char *data, size_t off)
{
    unsigned n;
    memcpy(&n, data + off, sizeof n);
    return n;
}

size_t wire_records(int type, const char *data, size_t len, size_t *ntags)
{
    *ntags = 0;
    if (type != WIRE_INSTANCES)
        return (size_t)-1;
    size_t off = 0, n = 0, tags = 0;
    while (off < len) {
        if (len - off < INST_HEAD)
            return (size_t)-1;
        unsigned nt = field_at(data + off, offsetof(struct wire_inst, ntags));
        off += INST_HEAD;
        if (nt > WIRE_MAX_TAGS || (len - off) / sizeof(struct wire_tag) < nt)
            return (size_t)-1;
        off += nt * sizeof(struct wire_tag);
        tags += nt;
        n++;
    }
    *ntags = tags;
    return n;
}

/* The nattach of the volume record at data (not aligned: read by copy). */
static unsigned nattach_at(const char *data)
{
    unsigned n;
    memcpy(&n, data + offsetof(struct wire_vol, nattach), sizeof n);
    return n;
}

bool wire_count_volumes(const char *data, size_t len, size_t *nvols, size_t *natts,
                        size_t *ntags)
{
    size_t off = 0, nv = 0, na = 0, ntg = 0;
    while (off < len) {
        if (len - off < VOL_HEAD)
            return false;
        unsigned n = nattach_at(data + off);
        unsigned nt = field_at(data + off, offsetof(struct wire_vol, ntags));
        if (n > WIRE_MAX_ATTACH || nt > WIRE_MAX_TAGS)
            return false;
        off += VOL_HEAD;
        if ((len - off) / sizeof(struct wire_attach) < n)
            return false;
        off += n * sizeof(struct wire_attach);
        if ((len - off) / sizeof(struct wire_tag) < nt)
            return false;
        off += nt * sizeof(struct wire_tag);
        nv++;
        na += n;
        ntg += nt;
    }
    *nvols = nv;
    *natts = na;
    *ntags = ntg;
    return true;
}

size_t wire_take_instances(const char *data, size_t len, struct wire_inst *out,
                           struct wire_tag *tags, size_t tags_base, size_t *ntags_kept)
{
    size_t off = 0, kept = 0, nt = 0;
    while (off + INST_HEAD <= len) {
        struct wire_inst *in = &out[kept];
        memcpy(in, data + off, INST_HEAD);
        off += INST_HEAD;
        if (in->ntags > WIRE_MAX_TAGS)
            in->ntags = WIRE_MAX_TAGS;
        if ((len - off) / sizeof(struct wire_tag) < in->ntags)
            in->ntags = (unsigned)((len - off) / sizeof(struct wire_tag));
        take_tags(data, &off, in->ntags, tags + nt);
        in->tags_at = tags_base + nt;
        TERMINATE(in->id);
        TERMINATE(in->state);
        TERMINATE(in->type);
        in->nvol = 0;
        in->gib = 0;
        if (in->id[0]) {
            kept++;
            nt += in->ntags;
        }
    }
    *ntags_kept = nt;
    return kept;
}

size_t wire_take_volumes(const char *data, size_t len, struct wire_vol *vols,
                         struct wire_attach *atts, size_t atts_base, size_t *natts_kept,
                         struct wire_tag *tags, size_t tags_base, size_t *ntags_kept)
{
    size_t off = 0, kept = 0, na = 0, nt = 0;
    while (off + VOL_HEAD <= len) {
        struct wire_vol *v = &vols[kept];
        memcpy(v, data + off, VOL_HEAD);
        off += VOL_HEAD;
        TERMINATE(v->id);
        TERMINATE(v->type);
        TERMINATE(v->state);
        TERMINATE(v->az);
        TERMINATE(v->create_time);
        fix_bool(&v->encrypted);
        fix_bool(&v->multi);
        if (v->nattach > WIRE_MAX_ATTACH)
            v->nattach = WIRE_MAX_ATTACH;
        if ((len - off) / sizeof(struct wire_attach) < v->nattach)
            v->nattach = (unsigned)((len - off) / sizeof(struct wire_attach));
        v->attach_at = atts_base + na;
        for (unsigned k = 0; k < v->nattach; k++) {
            struct wire_attach *x = &atts[na + k];
            memcpy(x, data + off, sizeof *x);
            off += sizeof *x;
            TERMINATE(x->instance_id);
            TERMINATE(x->device);
            TERMINATE(x->state);
            fix_bool(&x->dot);
        }
        if (v->ntags > WIRE_MAX_TAGS)
            v->ntags = WIRE_MAX_TAGS;
        if ((len - off) / sizeof(struct wire_tag) < v->ntags)
            v->ntags = (unsigned)((len - off) / sizeof(struct wire_tag));
        take_tags(data, &off, v->ntags, tags + nt);
        v->tags_at = tags_base + nt;
        if (v->id[0]) {
            kept++;
            na += v->nattach;
            nt += v->ntags;
        }
    }
    *natts_kept = na;
    *ntags_kept = nt;
    return kept;
}

static unsigned num(const cJSON *o, const char *k)
{
    double v = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k));
    return v > 0 && v < 1e9 ? (unsigned)v : 0;
}

static void take_stats(const cJSON *o, struct wire_stats *s)
{
    memset(s, 0, sizeof *s);
    s->calls = num(o, "calls");
    s->describe_instances = num(o, "di");
    s->describe_volumes = num(o, "dv");
    s->retries = num(o, "retries");
    s->throttled = num(o, "throttled");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "quota");
    double qv = cJSON_GetNumberValue(q);
    s->has_quota = cJSON_IsNumber(q) && qv > -1e9 && qv < 1e9;
    s->retry_quota = s->has_quota ? (int)qv : 0;
    s->rss_kb = (long)num(o, "rss");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(o, "clock_offset_ms");
    s->clock_offset_set = cJSON_IsNumber(off) && off->valuedouble > -1e12 && off->valuedouble < 1e12;
    s->clock_offset_ms = s->clock_offset_set ? (int64_t)off->valuedouble : 0;
}

ebsd_status wire_decode_done(const char *data, size_t len, struct wire_stats *out)
{
    cJSON *o = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return EBSD_EPARSE;
    }
    take_stats(o, out);
    cJSON_Delete(o);
    return EBSD_OK;
}

ebsd_status wire_decode_error(const char *data, size_t len, struct wire_error *out)
{
    cJSON *o = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return EBSD_EPARSE;
    }
    memset(out, 0, sizeof *out);
    take_stats(o, &out->stats);
    double st = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "status"));
    /* >= 1, not > 0: a fraction below one would truncate to EBSD_OK (found by fuzz_wire) */
    out->status = st >= 1 && st <= EBSD_EUNSUPPORTED ? (ebsd_status)st : EBSD_EIO;
    double http = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "http_status"));
    out->http_status = http > 0 && http < 1000 ? (long)http : 0;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "message");
    if (cJSON_IsString(code))
        str_copy(out->code, sizeof out->code, code->valuestring);
    if (cJSON_IsString(msg))
        str_copy(out->message, sizeof out->message, msg->valuestring);
    cJSON_Delete(o);
    return EBSD_OK;
}

#define INSTANCE_TAG "instance_tag:"
#define VOLUME_TAG "volume_tag:"

const char *wire_group_tag(const char *key, bool *on_instance)
{
    bool inst = strncmp(key, INSTANCE_TAG, sizeof INSTANCE_TAG - 1) == 0;
    if (!inst && strncmp(key, VOLUME_TAG, sizeof VOLUME_TAG - 1) != 0)
        return NULL;
    if (on_instance)
        *on_instance = inst;
    return key + (inst ? sizeof INSTANCE_TAG : sizeof VOLUME_TAG) - 1;
}
