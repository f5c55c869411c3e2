/* ec2_probe.c - drives the EC2 client from the command line for integration tests: lists
 * instances and/or volumes through pagination (or one instance), applies ebsd's counting
 * rules, and prints one JSON object with the counts, the totals and the client's stats.
 *
 *   ec2_probe --endpoint URL --region R [--list-instances|--list-volumes|--instance ID]
 *             [--page-size N] [--deadline-ms N] [--max-attempts N] [--group N]
 *             [--rate R --burst B] [--ca-bundle FILE] [--deterministic]
 *
 * With no mode: the region total (instances, then volumes). --group N lists the volumes with
 * the attachment.instance-id filter, N instance ids per call (as ebsd's children do), else
 * unfiltered. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN; the retry settings from AWS_MAX_ATTEMPTS / AWS_RETRY_MODE and the
 * profile (retrycfg_load; --max-attempts wins). Exit status: 0 ok, 1 the EC2 call failed, 2 bad usage. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "creds.h"
#include "ec2.h"
#include "httpc.h"
#include "mem.h"
#include "retry.h"
#include "retrycfg.h"

enum mode { M_TOTAL, M_INSTANCES, M_VOLUMES, M_ONE };

struct opts {
    const char *endpoint, *region, *instance, *ca;
    enum mode mode;
    long page, deadline_ms, attempts, group;
    double rate, burst;
    bool deterministic;
};

static int usage(const char *why)
{
    fprintf(stderr, "ec2_probe: %s\nusage: ec2_probe --endpoint URL --region R "
                    "[--list-instances|--list-volumes|--instance ID] [--page-size N] "
                    "[--deadline-ms N] [--max-attempts N] [--group N] [--rate R --burst B] "
                    "[--ca-bundle FILE] [--deterministic]\n",
            why);
    return 2;
}

static bool parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < 0)
        return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(a, "--list-instances") == 0) {
            o->mode = M_INSTANCES;
            takes = false;
        } else if (strcmp(a, "--list-volumes") == 0) {
            o->mode = M_VOLUMES;
            takes = false;
        } else if (strcmp(a, "--deterministic") == 0) {
            o->deterministic = true;
            takes = false;
        } else if (!v) {
            return usage("missing value");
        } else if (strcmp(a, "--endpoint") == 0) {
            o->endpoint = v;
        } else if (strcmp(a, "--region") == 0) {
            o->region = v;
        } else if (strcmp(a, "--instance") == 0) {
            o->mode = M_ONE;
            o->instance = v;
        } else if (strcmp(a, "--ca-bundle") == 0) {
            o->ca = v;
        } else if (strcmp(a, "--page-size") == 0) {
            if (!parse_long(v, &o->page))
                return usage("bad --page-size");
        } else if (strcmp(a, "--deadline-ms") == 0) {
            if (!parse_long(v, &o->deadline_ms))
                return usage("bad --deadline-ms");
        } else if (strcmp(a, "--max-attempts") == 0) {
            if (!parse_long(v, &o->attempts))
                return usage("bad --max-attempts");
        } else if (strcmp(a, "--group") == 0) {
            if (!parse_long(v, &o->group) || o->group > EC2_MAX_IDS)
                return usage("bad --group");
        } else if (strcmp(a, "--rate") == 0) {
            if (!parse_double(v, &o->rate))
                return usage("bad --rate");
        } else if (strcmp(a, "--burst") == 0) {
            if (!parse_double(v, &o->burst))
                return usage("bad --burst");
        } else {
            return usage("unknown option");
        }
        if (takes)
            i++;
    }
    if (!o->region)
        return usage("--region is required");
    return 0;
}

static bool attachment_counts(const char *state)
{
    return strcmp(state, "attaching") == 0 || strcmp(state, "attached") == 0 ||
           strcmp(state, "detaching") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_vol(const void *a, const void *b)
{
    return strcmp(((const struct ec2_volume *)a)->id, ((const struct ec2_volume *)b)->id);
}

/* Volumes of the given (sorted) instance ids, by groups of `group` ids with the filter;
 * merged, de-duplicated by volume id (a multi-attached volume comes back once per group). */
static ebsd_status volumes_grouped(struct ec2_client *c, const char **ids, size_t nids,
                                   size_t group, int64_t deadline, struct ec2_volume_page *out,
                                   struct ec2_error *err)
{
    ebsd_status st = EBSD_OK;
    struct ec2_volume_page all = {0};
    size_t cap = 0;
    for (size_t off = 0; off < nids && st == EBSD_OK; off += group) {
        size_t n = nids - off < group ? nids - off : group;
        struct ec2_volume_page p = {0};
        st = ec2_list_volumes_all(c, ids + off, n, deadline, 0, &p, err);
        if (st != EBSD_OK)
            break;
        if (all.n + p.n > cap) {
            while (all.n + p.n > cap)
                cap = cap ? cap * 2 : 1024;
            all.items = xrealloc(all.items, cap * sizeof *all.items);
        }
        for (size_t i = 0; i < p.n; i++)
            all.items[all.n++] = p.items[i];
        p.n = 0; /* attachments moved */
        ec2_volume_page_free(&p);
    }
    if (st == EBSD_OK && all.n) {
        qsort(all.items, all.n, sizeof *all.items, cmp_vol);
        size_t w = 1;
        for (size_t i = 1; i < all.n; i++) {
            if (strcmp(all.items[i].id, all.items[w - 1].id) == 0) {
                free(all.items[i].attach); /* a duplicate (multi-attach across groups) */
                free(all.items[i].tags);
            } else
                all.items[w++] = all.items[i];
        }
        all.n = w;
    }
    if (st == EBSD_OK) {
        *out = all;
        memset(&all, 0, sizeof all);
    }
    ec2_volume_page_free(&all);
    return st;
}

static cJSON *stats_json(const struct ec2_stats *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "calls", s->calls);
    cJSON_AddNumberToObject(o, "describe_instances", s->describe_instances);
    cJSON_AddNumberToObject(o, "describe_volumes", s->describe_volumes);
    cJSON_AddNumberToObject(o, "retries", s->retries);
    cJSON_AddNumberToObject(o, "throttled", s->throttled);
    cJSON_AddNumberToObject(o, "errors", s->errors);
    cJSON_AddNumberToObject(o, "retry_quota", s->retry_quota);
    return o;
}

static cJSON *volume_json(const struct ec2_volume *v)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", v->id);
    cJSON_AddNumberToObject(o, "size_gib", (double)v->size_gib);
    cJSON_AddStringToObject(o, "type", v->type);
    cJSON_AddNumberToObject(o, "iops", v->iops);
    cJSON_AddNumberToObject(o, "throughput", v->throughput);
    cJSON_AddStringToObject(o, "state", v->state);
    cJSON_AddBoolToObject(o, "encrypted", v->encrypted);
    cJSON_AddBoolToObject(o, "multi_attach", v->multi_attach);
    cJSON *a = cJSON_AddArrayToObject(o, "attachments");
    for (size_t i = 0; i < v->nattach; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "instance_id", v->attach[i].instance_id);
        cJSON_AddStringToObject(x, "device", v->attach[i].device);
        cJSON_AddStringToObject(x, "state", v->attach[i].state);
        cJSON_AddBoolToObject(x, "delete_on_termination", v->attach[i].delete_on_termination);
        cJSON_AddItemToArray(a, x);
    }
    return o;
}

/* Counting rules: a volume counts once when at least one of its attachments is attaching,
 * attached or detaching to an instance in the (sorted) set; with no set, to any instance. */
static void count(cJSON *out, const struct ec2_volume_page *vp, const char **ids, size_t nids,
                  bool restrict_to_ids)
{
    double total = 0, counted = 0;
    for (size_t i = 0; i < vp->n; i++) {
        const struct ec2_volume *v = &vp->items[i];
        bool any = false;
        for (size_t a = 0; a < v->nattach && !any; a++) {
            if (!attachment_counts(v->attach[a].state))
                continue;
            const char *key = v->attach[a].instance_id;
            any = !restrict_to_ids || bsearch(&key, ids, nids, sizeof *ids, cmp_str) != NULL;
        }
        if (any) {
            total += (double)v->size_gib;
            counted++;
        }
    }
    cJSON_AddNumberToObject(out, "volume_count", counted);
    cJSON_AddNumberToObject(out, "volumes_listed", (double)vp->n);
    cJSON_AddNumberToObject(out, "total_gib", total);
}

int main(int argc, char **argv)
{
    struct opts o = {.deadline_ms = 120000};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    struct creds cr;
    memset(&cr, 0, sizeof cr);
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *tok = getenv("AWS_SESSION_TOKEN");
    if (!ak || !sk)
        return usage("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
    snprintf(cr.access_key_id, sizeof cr.access_key_id, "%s", ak);
    snprintf(cr.secret_access_key, sizeof cr.secret_access_key, "%s", sk);
    snprintf(cr.session_token, sizeof cr.session_token, "%s", tok ? tok : "");
    snprintf(cr.source, sizeof cr.source, "environment");

    httpc_global_init();
    /* AWS_MAX_ATTEMPTS / AWS_RETRY_MODE and the profile, as ebsd applies them at start */
    struct retry_settings rs;
    char note[300];
    if (retrycfg_load(0, &rs, note, sizeof note) != EBSD_OK)
        fprintf(stderr, "ec2_probe: %s\n", note);
    retry_settings_set(&rs);
    struct ec2_options eo = {.region = o.region,
                             .endpoint = o.endpoint,
                             .ca_bundle = o.ca,
                             .creds = &cr,
                             .max_attempts = (int)o.attempts,
                             .instance_page_size = (int)o.page,
                             .volume_page_size = (int)o.page,
                             .rate_per_s = o.rate,
                             .rate_burst = o.burst,
                             .deterministic_backoff = o.deterministic};
    struct ec2_client *c = NULL;
    if (ec2_client_new(&eo, &c) != EBSD_OK)
        return usage("ec2_client_new refused the options");

    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "retry_mode", retry_mode_name(retry_settings_get()->mode));
    cJSON_AddNumberToObject(out, "max_attempts", retry_settings_get()->max_attempts);
    struct ec2_instance_page ip = {0};
    struct ec2_volume_page vp = {0};
    struct ec2_error err;
    memset(&err, 0, sizeof err);
    const char **ids = NULL;
    ebsd_status st = EBSD_OK;
    int64_t t0 = clock_now_ms();
    int64_t deadline = t0 + o.deadline_ms;
    cJSON_AddStringToObject(out, "endpoint", ec2_client_endpoint(c));

    if (o.mode == M_ONE) {
        const char *one[1] = {o.instance};
        if (!ec2_instance_id_valid(o.instance)) {
            st = EBSD_EINVAL;
            goto done;
        }
        st = ec2_describe_instances(c, one, 1, NULL, deadline, &ip, &err);
        if (st != EBSD_OK)
            goto done;
        cJSON_AddNumberToObject(out, "instance_count", (double)ip.n);
        if (ip.n == 0) {
            cJSON_AddBoolToObject(out, "found", false);
            goto done;
        }
        cJSON_AddBoolToObject(out, "found", true);
        cJSON_AddStringToObject(out, "state", ip.items[0].state);
        cJSON_AddStringToObject(out, "type", ip.items[0].type);
        cJSON_AddStringToObject(out, "az", ip.items[0].az);
        st = ec2_list_volumes_all(c, one, 1, deadline, 0, &vp, &err);
        if (st != EBSD_OK)
            goto done;
        cJSON *arr = cJSON_AddArrayToObject(out, "volumes");
        for (size_t i = 0; i < vp.n; i++)
            cJSON_AddItemToArray(arr, volume_json(&vp.items[i]));
        count(out, &vp, one, 1, true);
        goto done;
    }
    if (o.mode != M_VOLUMES) {
        st = ec2_list_instances_all(c, NULL, 0, deadline, 0, &ip, &err);
        if (st != EBSD_OK)
            goto done;
        cJSON_AddNumberToObject(out, "instance_count", (double)ip.n);
        ids = xcalloc(ip.n + 1, sizeof *ids);
        for (size_t i = 0; i < ip.n; i++)
            ids[i] = ip.items[i].id;
        qsort(ids, ip.n, sizeof *ids, cmp_str);
        size_t dup = 0;
        for (size_t i = 1; i < ip.n; i++)
            dup += strcmp(ids[i - 1], ids[i]) == 0;
        cJSON_AddNumberToObject(out, "duplicate_instances", (double)dup);
        cJSON *states = cJSON_AddObjectToObject(out, "states");
        for (size_t i = 0; i < ip.n; i++) {
            cJSON *n = cJSON_GetObjectItemCaseSensitive(states, ip.items[i].state);
            if (n)
                cJSON_SetNumberValue(n, n->valuedouble + 1);
            else
                cJSON_AddNumberToObject(states, ip.items[i].state, 1);
        }
    }
    if (o.mode == M_INSTANCES)
        goto done;
    if (o.group > 0 && o.mode == M_TOTAL)
        st = volumes_grouped(c, ids, ip.n, (size_t)o.group, deadline, &vp, &err);
    else
        st = ec2_list_volumes_all(c, NULL, 0, deadline, 0, &vp, &err);
    if (st != EBSD_OK)
        goto done;
    count(out, &vp, ids, ip.n, o.mode == M_TOTAL);

done:
    cJSON_AddBoolToObject(out, "ok", st == EBSD_OK);
    cJSON_AddStringToObject(out, "status", status_str(st));
    cJSON_AddNumberToObject(out, "elapsed_ms", (double)(clock_now_ms() - t0));
    if (st != EBSD_OK) {
        cJSON *e = cJSON_AddObjectToObject(out, "error");
        cJSON_AddStringToObject(e, "code", err.code);
        cJSON_AddStringToObject(e, "message", err.message);
        cJSON_AddNumberToObject(e, "http_status", (double)err.http_status);
        cJSON_AddStringToObject(e, "request_id", err.request_id);
    }
    cJSON_AddItemToObject(out, "stats", stats_json(ec2_client_stats(c)));
    char *text = cJSON_PrintUnformatted(out);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(out);
    free(ids);
    ec2_instance_page_free(&ip);
    ec2_volume_page_free(&vp);
    ec2_client_free(c);
    return st == EBSD_OK ? 0 : st == EBSD_EINVAL ? 2 : 1;
}
