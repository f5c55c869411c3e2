/* ec2api.c - DescribeInstances and DescribeVolumes over the fleet model, written as EC2
 * writes them (element names, nesting, nextToken, error envelope). */
#include "ec2api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "buf.h"
#include "clock.h"
#include "mem.h"
#include "xmlw.h"

#define MAX_FILTERS 50
#define MAX_FILTER_VALUES 1000
#define MAX_IDS 1000

/* ---- responses ---------------------------------------------------------------------- */

void ec2_response_free(struct ec2_response *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

void ec2api_error(struct ec2_response *out, int status, const char *code, const char *message,
                  const char *request_id)
{
    struct xw w = {.st = EBSD_OK};
    buf_init(&w.b, 64 * 1024);
    xw_puts(&w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>");
    xw_elem(&w, "Code", code);
    xw_elem(&w, "Message", message);
    xw_puts(&w, "</Error></Errors>");
    xw_elem(&w, "RequestID", request_id);
    xw_puts(&w, "</Response>");
    out->status = status;
    snprintf(out->code, sizeof out->code, "%s", code);
    out->len = w.b.len;
    out->body = buf_steal(&w.b);
}

static void finish(struct xw *w, struct ec2_response *out, const char *request_id)
{
    if (w->st != EBSD_OK) {
        buf_free(&w->b);
        ec2api_error(out, 500, "InternalError",
                     "The response is larger than the simulator allows; use MaxResults.",
                     request_id);
        return;
    }
    out->status = 200;
    out->code[0] = '\0';
    out->len = w->b.len;
    out->body = buf_steal(&w->b);
}

/* ---- parameters ----------------------------------------------------------------------- */

struct filter {
    long n;
    const char *name;
    const char **values;
    size_t nvalues;
    const char **exact; /* the values sorted, when none has a wildcard (NULL otherwise) */
};

struct call {
    const char *action;
    bool has_max;
    long max_results;
    const char *max_raw;
    const char *next_token;
    bool dry_run;
    const char **ids;
    size_t nids;
    struct filter filters[MAX_FILTERS];
    size_t nfilters;
};

struct failure {
    int status;
    char code[64];
    char message[512];
};

static void fail(struct failure *e, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct failure *e, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    snprintf(e->code, sizeof e->code, "%s", code);
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* "12" -> 12 within [1, max]; false otherwise. */
static bool parse_index(const char *s, size_t len, long max, long *out)
{
    if (len == 0 || len > 6)
        return false;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > max)
        return false;
    *out = v;
    return true;
}

static struct filter *filter_slot(struct call *c, long n, struct failure *e)
{
    for (size_t i = 0; i < c->nfilters; i++)
        if (c->filters[i].n == n)
            return &c->filters[i];
    if (c->nfilters == MAX_FILTERS) {
        fail(e, 400, "FilterLimitExceeded", "The maximum number of filters is %d.", MAX_FILTERS);
        return NULL;
    }
    struct filter *f = &c->filters[c->nfilters++];
    memset(f, 0, sizeof *f);
    f->n = n;
    return f;
}

static void call_free(struct call *c)
{
    free(c->ids);
    for (size_t i = 0; i < c->nfilters; i++) {
        free(c->filters[i].values);
        free(c->filters[i].exact);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A filter of plain values (no '*', '?' or '\') is matched by binary search in a sorted copy:
 * 50 DescribeVolumes calls of 200 attachment.instance-id values over 28,000 volumes would
 * otherwise cost the simulator more CPU than the client it measures. The request's own order
 * of values is kept for the page-token hash. */
static bool g_literal; /* --no-wildcards: filter values match only themselves */

void ec2api_set_literal_filters(bool on)
{
    g_literal = on;
}

static void prepare_exact(struct filter *f)
{
    for (size_t i = 0; i < f->nvalues && !g_literal; i++)
        if (strpbrk(f->values[i], "*?\\"))
            return;
    f->exact = xmalloc(f->nvalues * sizeof *f->exact);
    memcpy(f->exact, f->values, f->nvalues * sizeof *f->exact);
    qsort(f->exact, f->nvalues, sizeof *f->exact, cmp_str);
}

/* Sorts the request's parameters into *c; the id parameter is "InstanceId" or "VolumeId". */
static bool parse_call(const struct query *q, const char *idparam, struct call *c,
                       struct failure *e)
{
    size_t idlen = strlen(idparam);
    for (size_t i = 0; i < q->n; i++) {
        const char *k = q->v[i].key, *v = q->v[i].value;
        long n, m;
        if (strcmp(k, "Action") == 0 || strcmp(k, "Version") == 0 ||
            strncmp(k, "X-Amz-", 6) == 0)
            continue;
        if (strcmp(k, "MaxResults") == 0) {
            char *end;
            errno = 0;
            long mr = strtol(v, &end, 10);
            if (errno || end == v || *end) {
                fail(e, 400, "InvalidParameterValue",
                     "Invalid value '%s' for maxResults. It must be an integer.", v);
                return false;
            }
            c->has_max = true;
            c->max_results = mr;
            c->max_raw = v;
        } else if (strcmp(k, "NextToken") == 0) {
            c->next_token = v;
        } else if (strcmp(k, "DryRun") == 0) {
            c->dry_run = strcmp(v, "true") == 0;
        } else if (strncmp(k, idparam, idlen) == 0 && k[idlen] == '.' &&
                   parse_index(k + idlen + 1, strlen(k + idlen + 1), 100000, &n)) {
            if (c->nids == MAX_IDS) {
                fail(e, 400, "InvalidParameterValue", "The maximum number of ids is %d.",
                     MAX_IDS);
                return false;
            }
            if (!c->ids)
                c->ids = xmalloc(MAX_IDS * sizeof *c->ids);
            c->ids[c->nids++] = v;
        } else if (strncmp(k, "Filter.", 7) == 0) {
            const char *p = k + 7;
            const char *dot = strchr(p, '.');
            if (!dot || !parse_index(p, (size_t)(dot - p), 1000, &n))
                goto unknown;
            struct filter *f;
            if (strcmp(dot + 1, "Name") == 0) {
                if (!(f = filter_slot(c, n, e)))
                    return false;
                f->name = v;
            } else if (strncmp(dot + 1, "Value.", 6) == 0 &&
                       parse_index(dot + 7, strlen(dot + 7), 100000, &m)) {
                if (!(f = filter_slot(c, n, e)))
                    return false;
                if (f->nvalues == MAX_FILTER_VALUES) {
                    fail(e, 400, "FilterLimitExceeded",
                         "The maximum number of filter values specified on a single call is %d",
                         MAX_FILTER_VALUES);
                    return false;
                }
                if (!f->values)
                    f->values = xmalloc(MAX_FILTER_VALUES * sizeof *f->values);
                f->values[f->nvalues++] = v;
            } else {
                goto unknown;
            }
        } else {
        unknown:
            fail(e, 400, "UnknownParameter", "The parameter %s is not recognized", k);
            return false;
        }
    }
    for (size_t i = 0; i < c->nfilters; i++) {
        if (!c->filters[i].name) {
            fail(e, 400, "InvalidParameterValue", "The filter 'null' is invalid");
            return false;
        }
        if (c->filters[i].nvalues == 0) {
            fail(e, 400, "InvalidParameterValue",
                 "The filter '%s' must have at least one value", c->filters[i].name);
            return false;
        }
        prepare_exact(&c->filters[i]);
    }
    return true;
}

/* EC2's filter wildcards: '*' any run, '?' one character, '\' escapes. */
static bool glob_match(const char *p, const char *s)
{
    if (p[0] == '*' && !strpbrk(p + 1, "*?\\")) {
        /* "*suffix", as ebsd's listing shares send: a suffix compare, not a search from
         * every position (the simulator shares the benchmark machine's CPU with ebsd) */
        size_t lp = strlen(p + 1), ls = strlen(s);
        return ls >= lp && memcmp(s + ls - lp, p + 1, lp) == 0;
    }
    while (*p) {
        if (*p == '*') {
            while (*p == '*')
                p++;
            if (!*p)
                return true;
            for (; *s; s++)
                if (glob_match(p, s))
                    return true;
            return glob_match(p, s);
        }
        if (!*s)
            return false;
        if (*p == '\\' && p[1]) {
            p++;
            if (*p != *s)
                return false;
        } else if (*p != '?' && *p != *s) {
            return false;
        }
        p++;
        s++;
    }
    return *s == '\0';
}

static bool any_value(const struct filter *f, const char *s)
{
    if (f->exact)
        return bsearch(&s, f->exact, f->nvalues, sizeof *f->exact, cmp_str) != NULL;
    for (size_t i = 0; i < f->nvalues; i++)
        if (glob_match(f->values[i], s))
            return true;
    return false;
}

/* ---- pagination tokens: base64(version, kind, offset, request hash, HMAC[0..8)) -------- */

struct token {
    unsigned char version, kind;
    uint32_t offset;
    uint64_t hash;
};

/* The order in which a record's filters are tried: the id filters first. Every filter must
 * match, so the order changes no answer; but a listing share's id filter rules out most
 * records at once, and trying it before the status filter spares the simulator a search per
 * record and share (its CPU is the benchmark machine's, which ebsd's answer is timed on). */
static void filter_order(size_t n, const bool *first, size_t *order)
{
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if (first[i] == (pass == 0))
                order[k++] = i;
}

/* A "tag:KEY" filter: the tag KEY has one of the filter's values. */
static bool tag_matches(const struct filter *fl, const struct fleet_tag *tags, size_t ntags)
{
    const char *val = fleet_tag_get(tags, ntags, fl->name + 4);
    return val && any_value(fl, val);
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    h ^= 0xff; /* separator, so ("ab","c") != ("a","bc") */
    return h * 0x100000001b3ULL;
}

/* Binds a token to the ids and filters it was issued for. */
static uint64_t call_hash(const struct call *c)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv(h, c->action);
    for (size_t i = 0; i < c->nids; i++)
        h = fnv(h, c->ids[i]);
    for (size_t i = 0; i < c->nfilters; i++) {
        h = fnv(h, c->filters[i].name);
        for (size_t j = 0; j < c->filters[i].nvalues; j++)
            h = fnv(h, c->filters[i].values[j]);
    }
    return h;
}

static void token_encode(const struct token *t, const unsigned char key[32], char out[64])
{
    unsigned char raw[22];
    raw[0] = t->version;
    raw[1] = t->kind;
    for (int i = 0; i < 4; i++)
        raw[2 + i] = (unsigned char)(t->offset >> (8 * i));
    for (int i = 0; i < 8; i++)
        raw[6 + i] = (unsigned char)(t->hash >> (8 * i));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), key, 32, raw, 14, mac, &maclen);
    memcpy(raw + 14, mac, 8);
    EVP_EncodeBlock((unsigned char *)out, raw, (int)sizeof raw);
}

static bool token_decode(const char *s, const unsigned char key[32], struct token *t)
{
    unsigned char raw[48];
    size_t len = strlen(s);
    if (len != 32)
        return false;
    if (EVP_DecodeBlock(raw, (const unsigned char *)s, (int)len) != 24)
        return false; /* 22 bytes + 2 padding zeros */
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), key, 32, raw, 14, mac, &maclen);
    if (CRYPTO_memcmp(mac, raw + 14, 8) != 0 || raw[0] != 1)
        return false;
    t->version = raw[0];
    t->kind = raw[1];
    t->offset = 0;
    t->hash = 0;
    for (int i = 0; i < 4; i++)
        t->offset |= (uint32_t)raw[2 + i] << (8 * i);
    for (int i = 0; i < 8; i++)
        t->hash |= (uint64_t)raw[6 + i] << (8 * i);
    return true;
}

/* Validates MaxResults and NextToken; sets *start and *limit. */
static bool paging(const struct call *c, unsigned char kind, long lo, long hi, bool clamp,
                   size_t total, const unsigned char key[32], size_t *start, size_t *limit,
                   struct failure *e)
{
    *start = 0;
    *limit = SIZE_MAX;
    if (c->has_max) {
        if (c->nids) {
            fail(e, 400, "InvalidParameterCombination",
                 "The parameter %s cannot be used with the parameter maxResults",
                 kind == 'i' ? "instancesSet" : "volumeSet");
            return false;
        }
        if (c->max_results < lo) {
            fail(e, 400, "InvalidParameterValue",
                 "Value ( %s ) for parameter maxResults is invalid. Expecting a value greater "
                 "than %ld.",
                 c->max_raw, lo - 1);
            return false;
        }
        if (c->max_results > hi && !clamp) {
            fail(e, 400, "InvalidParameterValue",
                 "Value ( %s ) for parameter maxResults is invalid. Expecting a value less "
                 "than %ld.",
                 c->max_raw, hi + 1);
            return false;
        }
        *limit = (size_t)(c->max_results > hi ? hi : c->max_results);
    }
    if (c->next_token && *c->next_token) {
        struct token t;
        if (!token_decode(c->next_token, key, &t) || t.kind != kind || t.hash != call_hash(c) ||
            t.offset > total) {
            fail(e, 400, "InvalidParameterValue", "Invalid value '%s' for nextToken",
                 c->next_token);
            return false;
        }
        *start = t.offset;
    }
    return true;
}

/* ---- DescribeInstances ---------------------------------------------------------------- */

enum ifilter { IF_ID, IF_STATE, IF_STATE_CODE, IF_TYPE, IF_AZ, IF_RESV, IF_VOLUME, IF_TAG };

static bool ifilter_kind(const char *name, enum ifilter *k)
{
    static const struct {
        const char *name;
        enum ifilter k;
    } names[] = {{"instance-id", IF_ID},
                 {"instance-state-name", IF_STATE},
                 {"instance-state-code", IF_STATE_CODE},
                 {"instance-type", IF_TYPE},
                 {"availability-zone", IF_AZ},
                 {"reservation-id", IF_RESV},
                 {"block-device-mapping.volume-id", IF_VOLUME}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            *k = names[i].k;
            return true;
        }
    if (strncmp(name, "tag:", 4) == 0 && name[4]) {
        *k = IF_TAG;
        return true;
    }
    return false;
}

static bool instance_matches(const struct fleet *f, const struct fleet_instance *in,
                             const struct call *c, const enum ifilter *kinds,
                             const size_t *order)
{
    for (size_t j = 0; j < c->nfilters; j++) {
        size_t i = order[j];
        const struct filter *fl = &c->filters[i];
        bool ok = false;
        char code[8];
        switch (kinds[i]) {
        case IF_ID: ok = any_value(fl, in->id); break;
        case IF_STATE: ok = any_value(fl, fleet_state_name(in->state)); break;
        case IF_STATE_CODE:
            snprintf(code, sizeof code, "%d", fleet_state_code(in->state));
            ok = any_value(fl, code);
            break;
        case IF_TYPE: ok = any_value(fl, in->type); break;
        case IF_AZ: ok = any_value(fl, in->az); break;
        case IF_RESV: ok = any_value(fl, f->reservations[in->reservation].id); break;
        case IF_VOLUME:
            for (size_t b = 0; b < in->nbdm && !ok; b++)
                ok = any_value(fl, f->volumes[in->bdm[b].volume].id);
            break;
        case IF_TAG: ok = tag_matches(fl, in->tags, in->ntags); break;
        }
        if (!ok)
            return false;
    }
    return true;
}

/* <tagSet> as EC2 writes it; nothing at all when there are no tags. */
static void write_tags(struct xw *w, const struct fleet_tag *tags, size_t ntags)
{
    if (!ntags)
        return;
    xw_puts(w, "<tagSet>");
    for (size_t t = 0; t < ntags; t++) {
        xw_puts(w, "<item>");
        xw_elem(w, "key", tags[t].key);
        xw_elem(w, "value", tags[t].value);
        xw_puts(w, "</item>");
    }
    xw_puts(w, "</tagSet>");
}

static void write_instance(struct xw *w, const struct fleet *f, const struct fleet_instance *in)
{
    xw_puts(w, "<item>");
    xw_elem(w, "instanceId", in->id);
    xw_elem(w, "imageId", in->image_id);
    xw_puts(w, "<instanceState>");
    xw_int(w, "code", fleet_state_code(in->state));
    xw_elem(w, "name", fleet_state_name(in->state));
    xw_puts(w, "</instanceState>");
    bool live = in->state != INST_TERMINATED;
    char dns[64];
    int dl = snprintf(dns, sizeof dns, "ip-%s", in->private_ip);
    for (int k = 0; k < dl && k < (int)sizeof dns; k++)
        if (dns[k] == '.')
            dns[k] = '-';
    /* us-east-1's private names end in ec2.internal, other regions' in REGION.compute.internal */
    if (strcmp(f->region, "us-east-1") == 0)
        snprintf(dns + strlen(dns), sizeof dns - strlen(dns), ".ec2.internal");
    else
        snprintf(dns + strlen(dns), sizeof dns - strlen(dns), ".%s.compute.internal", f->region);
    xw_elem(w, "privateDnsName", live ? dns : "");
    xw_elem(w, "dnsName", "");
    xw_elem(w, "reason", in->state == INST_STOPPED ? "User initiated (2024-01-01 00:00:00 GMT)"
                         : in->state == INST_TERMINATED
                             ? "User initiated (2024-01-01 00:00:00 GMT)"
                             : "");
    xw_int(w, "amiLaunchIndex", 0);
    xw_puts(w, "<productCodes/>");
    xw_elem(w, "instanceType", in->type);
    xw_time(w, "launchTime", in->launch_time);
    xw_puts(w, "<placement>");
    xw_elem(w, "availabilityZone", in->az);
    xw_elem(w, "groupName", "");
    xw_elem(w, "tenancy", "default");
    xw_puts(w, "</placement>");
    xw_puts(w, "<monitoring><state>disabled</state></monitoring>");
    if (live)
        xw_elem(w, "privateIpAddress", in->private_ip);
    xw_puts(w, "<groupSet/>");
    if (in->state == INST_STOPPED || in->state == INST_TERMINATED ||
        in->state == INST_STOPPING || in->state == INST_SHUTTING_DOWN) {
        xw_puts(w, "<stateReason>");
        xw_elem(w, "code", "Client.UserInitiatedShutdown");
        xw_elem(w, "message", "Client.UserInitiatedShutdown: User initiated shutdown");
        xw_puts(w, "</stateReason>");
    }
    xw_elem(w, "architecture", strstr(in->type, "g.") ? "arm64" : "x86_64");
    xw_elem(w, "rootDeviceType", "ebs");
    xw_elem(w, "rootDeviceName", "/dev/xvda");
    if (in->nbdm == 0) {
        xw_puts(w, "<blockDeviceMapping/>");
    } else {
        xw_puts(w, "<blockDeviceMapping>");
        for (size_t b = 0; b < in->nbdm; b++) {
            const struct fleet_volume *v = &f->volumes[in->bdm[b].volume];
            const struct fleet_attachment *a = &v->att[in->bdm[b].att];
            xw_puts(w, "<item>");
            xw_elem(w, "deviceName", a->device);
            xw_puts(w, "<ebs>");
            xw_elem(w, "volumeId", v->id);
            xw_elem(w, "status", a->state);
            xw_time(w, "attachTime", a->attach_time);
            xw_bool(w, "deleteOnTermination", a->delete_on_termination);
            xw_puts(w, "</ebs></item>");
        }
        xw_puts(w, "</blockDeviceMapping>");
    }
    xw_elem(w, "virtualizationType", "hvm");
    xw_elem(w, "clientToken", "");
    write_tags(w, in->tags, in->ntags);
    xw_elem(w, "hypervisor", "xen");
    xw_bool(w, "ebsOptimized", strncmp(in->type, "t3", 2) != 0);
    xw_puts(w, "</item>");
}

static void write_volume(struct xw *w, const struct fleet *f, const struct fleet_volume *v);

/* A record's <item>, rendered once into its fleet's slot (fleet.h) and copied into each page
 * that lists it. Two threads may render the same record at once: the first to store wins,
 * the other's copy is dropped. NULL when the record does not fit the writer's cap. */
static const struct fleet_xml *rendered(const struct fleet *f, size_t i, bool volume)
{
    _Atomic(struct fleet_xml *) *slot = volume ? &f->vol_xml[i] : &f->inst_xml[i];
    struct fleet_xml *x = atomic_load_explicit(slot, memory_order_acquire);
    if (x)
        return x;
    struct xw w = {.st = EBSD_OK};
    buf_init(&w.b, 1u << 20);
    if (volume)
        write_volume(&w, f, &f->volumes[i]);
    else
        write_instance(&w, f, &f->instances[i]);
    if (w.st != EBSD_OK) {
        buf_free(&w.b);
        return NULL;
    }
    x = xmalloc(sizeof *x + w.b.len);
    x->len = w.b.len;
    memcpy(x->data, w.b.data, w.b.len);
    buf_free(&w.b);
    struct fleet_xml *was = NULL;
    if (!atomic_compare_exchange_strong_explicit(slot, &was, x, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(x);
        x = was;
    }
    return x;
}

static void put_record(struct xw *w, const struct fleet *f, size_t i, bool volume)
{
    const struct fleet_xml *x = rendered(f, i, volume);
    if (!x) {
        if (w->st == EBSD_OK)
            w->st = EBSD_ETOOBIG;
        return;
    }
    xw_raw(w, x->data, x->len);
}

static void xw_open_response(struct xw *w, const char *action, const char *request_id)
{
    buf_init(&w->b, EC2_RESPONSE_MAX);
    w->st = EBSD_OK;
    xw_puts(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
    xw_puts(w, action);
    xw_puts(w, "Response xmlns=\"" EC2_XMLNS "\">");
    xw_elem(w, "requestId", request_id);
}

static void describe_instances(const struct fleet *f, const struct call *c,
                               const char *request_id, const unsigned char key[32],
                               struct ec2_response *out, struct failure *e)
{
    enum ifilter kinds[MAX_FILTERS];
    unsigned char *selected = NULL;
    for (size_t i = 0; i < c->nfilters; i++)
        if (!ifilter_kind(c->filters[i].name, &kinds[i])) {
            fail(e, 400, "InvalidParameterValue", "The filter '%s' is invalid",
                 c->filters[i].name);
            return;
        }
    bool first[MAX_FILTERS];
    size_t order[MAX_FILTERS];
    for (size_t i = 0; i < c->nfilters; i++)
        first[i] = kinds[i] == IF_ID;
    filter_order(c->nfilters, first, order);
    size_t start, limit;
    if (!paging(c, 'i', 5, 1000, false, f->ninstances, key, &start, &limit, e))
        return;
    if (c->nids) {
        struct buf missing;
        buf_init(&missing, 64 * 1024);
        size_t nmissing = 0;
        selected = xcalloc(f->ninstances + 1, 1);
        for (size_t i = 0; i < c->nids; i++) {
            if (!fleet_id_valid(c->ids[i], "i-")) {
                fail(e, 400, "InvalidInstanceID.Malformed", "Invalid id: \"%s\"", c->ids[i]);
                buf_free(&missing);
                goto out;
            }
            size_t idx = fleet_find_instance(f, c->ids[i]);
            if (idx == SIZE_MAX) {
                if (buf_printf(&missing, "%s%s", nmissing ? ", " : "", c->ids[i]) != EBSD_OK) {
                    /* the message is long enough already */
                }
                nmissing++;
            } else {
                selected[idx] = 1;
            }
        }
        if (nmissing) {
            if (nmissing == 1)
                fail(e, 400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist",
                     missing.data);
            else
                fail(e, 400, "InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist",
                     missing.data);
            buf_free(&missing);
            goto out;
        }
        buf_free(&missing);
    }
    if (c->dry_run) {
        fail(e, 412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.");
        goto out;
    }

    struct xw w;
    xw_open_response(&w, "DescribeInstances", request_id);
    size_t count = 0, i = start, next = SIZE_MAX;
    size_t open_resv = SIZE_MAX;
    bool any = false;
    for (; i < f->ninstances; i++) {
        const struct fleet_instance *in = &f->instances[i];
        if (selected && !selected[i])
            continue;
        if (!instance_matches(f, in, c, kinds, order))
            continue;
        if (count == limit) {
            next = i;
            break;
        }
        if (!any) {
            xw_puts(&w, "<reservationSet>");
            any = true;
        }
        if (in->reservation != open_resv) {
            if (open_resv != SIZE_MAX)
                xw_puts(&w, "</instancesSet></item>");
            const struct fleet_reservation *r = &f->reservations[in->reservation];
            xw_puts(&w, "<item>");
            xw_elem(&w, "reservationId", r->id);
            xw_elem(&w, "ownerId", r->owner_id);
            xw_puts(&w, "<groupSet/><instancesSet>");
            open_resv = in->reservation;
        }
        put_record(&w, f, i, false);
        count++;
    }
    if (any)
        xw_puts(&w, "</instancesSet></item></reservationSet>");
    else
        xw_puts(&w, "<reservationSet/>");
    if (next != SIZE_MAX) {
        struct token t = {1, 'i', (uint32_t)next, call_hash(c)};
        char tok[64];
        token_encode(&t, key, tok);
        xw_elem(&w, "nextToken", tok);
    }
    xw_puts(&w, "</DescribeInstancesResponse>");
    finish(&w, out, request_id);
out:
    free(selected);
}

/* ---- DescribeVolumes ------------------------------------------------------------------ */

enum vfilter { VF_ATT_INSTANCE, VF_ATT_STATUS, VF_ATT_DEVICE, VF_STATUS, VF_ID, VF_TYPE, VF_AZ,
               VF_SIZE, VF_MULTI, VF_ENCRYPTED, VF_TAG };

static bool vfilter_kind(const char *name, enum vfilter *k)
{
    static const struct {
        const char *name;
        enum vfilter k;
    } names[] = {{"attachment.instance-id", VF_ATT_INSTANCE},
                 {"attachment.status", VF_ATT_STATUS},
                 {"attachment.device", VF_ATT_DEVICE},
                 {"status", VF_STATUS},
                 {"volume-id", VF_ID},
                 {"volume-type", VF_TYPE},
                 {"availability-zone", VF_AZ},
                 {"size", VF_SIZE},
                 {"multi-attach-enabled", VF_MULTI},
                 {"encrypted", VF_ENCRYPTED}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            *k = names[i].k;
            return true;
        }
    if (strncmp(name, "tag:", 4) == 0 && name[4]) {
        *k = VF_TAG;
        return true;
    }
    return false;
}

static bool volume_matches(const struct fleet *f, const struct fleet_volume *v,
                           const struct call *c, const enum vfilter *kinds, const size_t *order)
{
    for (size_t j = 0; j < c->nfilters; j++) {
        size_t i = order[j];
        const struct filter *fl = &c->filters[i];
        bool ok = false;
        char num[16];
        switch (kinds[i]) {
        case VF_ATT_INSTANCE:
            for (size_t a = 0; a < v->natt && !ok; a++)
                ok = any_value(fl, f->instances[v->att[a].instance].id);
            break;
        case VF_ATT_STATUS:
            for (size_t a = 0; a < v->natt && !ok; a++)
                ok = any_value(fl, v->att[a].state);
            break;
        case VF_ATT_DEVICE:
            for (size_t a = 0; a < v->natt && !ok; a++)
                ok = any_value(fl, v->att[a].device);
            break;
        case VF_STATUS: ok = any_value(fl, v->status); break;
        case VF_ID: ok = any_value(fl, v->id); break;
        case VF_TYPE: ok = any_value(fl, v->type); break;
        case VF_AZ: ok = any_value(fl, v->az); break;
        case VF_SIZE:
            snprintf(num, sizeof num, "%d", v->size_gib);
            ok = any_value(fl, num);
            break;
        case VF_MULTI: ok = any_value(fl, v->multi_attach ? "true" : "false"); break;
        case VF_ENCRYPTED: ok = any_value(fl, v->encrypted ? "true" : "false"); break;
        case VF_TAG: ok = tag_matches(fl, v->tags, v->ntags); break;
        }
        if (!ok)
            return false;
    }
    return true;
}

static void write_volume(struct xw *w, const struct fleet *f, const struct fleet_volume *v)
{
    xw_puts(w, "<item>");
    xw_elem(w, "volumeId", v->id);
    xw_int(w, "size", v->size_gib);
    xw_elem(w, "snapshotId", v->snapshot_id);
    xw_elem(w, "availabilityZone", v->az);
    xw_elem(w, "status", v->status);
    xw_time(w, "createTime", v->create_time);
    if (v->natt == 0) {
        xw_puts(w, "<attachmentSet/>");
    } else {
        xw_puts(w, "<attachmentSet>");
        for (size_t a = 0; a < v->natt; a++) {
            const struct fleet_attachment *at = &v->att[a];
            xw_puts(w, "<item>");
            xw_elem(w, "volumeId", v->id);
            xw_elem(w, "instanceId", f->instances[at->instance].id);
            xw_elem(w, "device", at->device);
            xw_elem(w, "status", at->state);
            xw_time(w, "attachTime", at->attach_time);
            xw_bool(w, "deleteOnTermination", at->delete_on_termination);
            xw_puts(w, "</item>");
        }
        xw_puts(w, "</attachmentSet>");
    }
    write_tags(w, v->tags, v->ntags);
    xw_elem(w, "volumeType", v->type);
    if (v->iops)
        xw_int(w, "iops", v->iops);
    xw_bool(w, "encrypted", v->encrypted);
    if (v->throughput)
        xw_int(w, "throughput", v->throughput);
    xw_bool(w, "multiAttachEnabled", v->multi_attach);
    xw_puts(w, "</item>");
}

static void describe_volumes(const struct fleet *f, const struct call *c, const char *request_id,
                             const unsigned char key[32], struct ec2_response *out,
                             struct failure *e)
{
    enum vfilter kinds[MAX_FILTERS];
    unsigned char *selected = NULL;
    for (size_t i = 0; i < c->nfilters; i++)
        if (!vfilter_kind(c->filters[i].name, &kinds[i])) {
            fail(e, 400, "InvalidParameterValue", "The filter '%s' is invalid",
                 c->filters[i].name);
            return;
        }
    bool first[MAX_FILTERS];
    size_t order[MAX_FILTERS];
    for (size_t i = 0; i < c->nfilters; i++)
        first[i] = kinds[i] == VF_ID || kinds[i] == VF_ATT_INSTANCE;
    filter_order(c->nfilters, first, order);
    size_t start, limit;
    if (!paging(c, 'v', 5, 500, true, f->nvolumes, key, &start, &limit, e))
        return;
    if (c->nids) {
        selected = xcalloc(f->nvolumes + 1, 1);
        for (size_t i = 0; i < c->nids; i++) {
            if (!fleet_id_valid(c->ids[i], "vol-")) {
                fail(e, 400, "InvalidVolumeID.Malformed",
                     "Invalid id: \"%s\" (expecting \"vol-...\")", c->ids[i]);
                goto out;
            }
            size_t idx = fleet_find_volume(f, c->ids[i]);
            if (idx == SIZE_MAX) {
                fail(e, 400, "InvalidVolume.NotFound", "The volume '%s' does not exist.",
                     c->ids[i]);
                goto out;
            }
            selected[idx] = 1;
        }
    }
    if (c->dry_run) {
        fail(e, 412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.");
        goto out;
    }
    struct xw w;
    xw_open_response(&w, "DescribeVolumes", request_id);
    size_t count = 0, next = SIZE_MAX;
    bool any = false;
    for (size_t i = start; i < f->nvolumes; i++) {
        const struct fleet_volume *v = &f->volumes[i];
        if (selected && !selected[i])
            continue;
        if (!volume_matches(f, v, c, kinds, order))
            continue;
        if (count == limit) {
            next = i;
            break;
        }
        if (!any) {
            xw_puts(&w, "<volumeSet>");
            any = true;
        }
        put_record(&w, f, i, true);
        count++;
    }
    xw_puts(&w, any ? "</volumeSet>" : "<volumeSet/>");
    if (next != SIZE_MAX) {
        struct token t = {1, 'v', (uint32_t)next, call_hash(c)};
        char tok[64];
        token_encode(&t, key, tok);
        xw_elem(&w, "nextToken", tok);
    }
    xw_puts(&w, "</DescribeVolumesResponse>");
    finish(&w, out, request_id);
out:
    free(selected);
}

void ec2api_handle(const struct fleet *f, const struct query *q, const char *request_id,
                   const unsigned char token_key[32], struct ec2_response *out)
{
    struct failure e = {0};
    struct call c;
    memset(&c, 0, sizeof c);
    memset(out, 0, sizeof *out);
    const char *action = query_get(q, "Action");
    c.action = action ? action : "";
    if (!action || !*action) {
        fail(&e, 400, "MissingAction", "The request must contain the parameter Action");
    } else if (strcmp(action, "DescribeInstances") == 0) {
        if (parse_call(q, "InstanceId", &c, &e))
            describe_instances(f, &c, request_id, token_key, out, &e);
    } else if (strcmp(action, "DescribeVolumes") == 0) {
        if (parse_call(q, "VolumeId", &c, &e))
            describe_volumes(f, &c, request_id, token_key, out, &e);
    } else {
        fail(&e, 400, "InvalidAction", "The action %s is not valid for this web service.",
             action);
    }
    if (e.status)
        ec2api_error(out, e.status, e.code, e.message, request_id);
    call_free(&c);
}
