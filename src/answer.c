/* answer.c - aggregation of records into the data routes' JSON, and outcome to HTTP status
 * and error code (see answer.h). */
#include "answer.h"

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

/* qsort and bsearch may not be given a NULL base, even with no elements. */
static void sort_items(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

static bool attach_counts(const char *state)
{
    return strcmp(state, "attached") == 0 || strcmp(state, "attaching") == 0 ||
           strcmp(state, "detaching") == 0 || state[0] == '\0';
}

cJSON *answer_total(const char *region, struct wire_inst *inst, size_t ninst,
                    struct wire_vol *vols, size_t nvols, const struct wire_attach *atts)
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
            struct wire_inst key;
            snprintf(key.id, sizeof key.id, "%s", va[k].instance_id);
            struct wire_inst *in =
                ninst ? bsearch(&key, inst, ninst, sizeof *inst, cmp_inst) : NULL;
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

void answer_from_outcome(const struct engine_query *q, struct engine_outcome *o,
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
    else
        out->data = answer_total(q->target.region, o->inst, o->ninst, o->vols, o->nvols,
                                 o->atts);
}
