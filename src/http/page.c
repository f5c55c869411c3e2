/* page.c - renders the human page at GET /: totals per account and region, storage by
 * volume type as an inline SVG bar chart, unattached storage and the age of the data, in one
 * self-contained HTML document under a strict Content-Security-Policy (no script at all; the
 * one <style> is allowed by its SHA-256 hash, computed here with OpenSSL). */
#include "page.h"

#include <math.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "markup.h"
#include "mem.h"

/* The page's only style. Its exact bytes are hashed into the CSP: change it freely, the
 * hash follows. No style attributes anywhere (they would need 'unsafe-inline'): the SVG uses
 * presentation attributes (fill, x, width), which CSP does not govern. */
static const char page_style[] =
    "\n:root{color-scheme:light dark;--fg:#1d232a;--mute:#5c6873;--line:#d8dee4;--bg:#fff;"
    "--card:#f5f7f9;--bad:#b42318}\n"
    "@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--mute:#9aa7b2;--line:#30363d;"
    "--bg:#0d1117;--card:#161b22;--bad:#ff7b72}}\n"
    "body{font:15px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;margin:0;"
    "padding:24px 32px;color:var(--fg);background:var(--bg)}\n"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}\n"
    ".sub{color:var(--mute);margin:0}\n"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:20px}\n"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:8px;"
    "padding:12px 16px;min-width:150px}\n"
    ".card .label{color:var(--mute);font-size:13px}.card .value{font-size:22px;"
    "font-weight:600;font-variant-numeric:tabular-nums}\n"
    "table{border-collapse:collapse;width:100%;max-width:1100px}\n"
    "th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left}\n"
    "th{color:var(--mute);font-weight:600;font-size:13px}\n"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    "th,td.num,td.region{white-space:nowrap}\n"
    ".err{color:var(--bad)}.ok{color:var(--mute)}\n"
    "svg text{fill:var(--fg);font-size:13px}svg .axis{fill:var(--mute)}\n"
    "footer{margin-top:28px;color:var(--mute);font-size:13px}\n"
    "a{color:inherit}\n";

/* ------------------------------------------------------------------ input */

static ebsd_status fail(char *why, size_t whysz, ebsd_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ebsd_status fail(char *why, size_t whysz, ebsd_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(why, whysz, fmt, ap) < 0 && whysz)
        why[0] = '\0';
    va_end(ap);
    return st;
}

/* Copies a JSON string member into dst; absent is "" unless required. */
static ebsd_status get_str(const cJSON *o, const char *name, bool required, char *dst,
                           size_t size, size_t index, char *why, size_t whysz)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    dst[0] = '\0';
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return fail(why, whysz, EBSD_EINVAL, "targets[%zu].%s is missing", index, name);
        return EBSD_OK;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return fail(why, whysz, EBSD_EINVAL, "targets[%zu].%s is not a string", index, name);
    if (strlen(v->valuestring) >= size)
        return fail(why, whysz, EBSD_ETOOBIG, "targets[%zu].%s is longer than %zu bytes", index,
                    name, size - 1);
    str_copy(dst, size, v->valuestring);
    return EBSD_OK;
}

/* A finite, non-negative JSON number member; absent gives dflt unless required. */
static ebsd_status get_num(const cJSON *o, const char *name, bool required, double dflt,
                           double *dst, size_t index, char *why, size_t whysz)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return fail(why, whysz, EBSD_EINVAL, "targets[%zu].%s is missing", index, name);
        *dst = dflt;
        return EBSD_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
        return fail(why, whysz, EBSD_EINVAL, "targets[%zu].%s is not a number >= 0", index,
                    name);
    *dst = v->valuedouble;
    return EBSD_OK;
}

static ebsd_status read_target(const cJSON *o, struct page_target *t, size_t i, char *why,
                               size_t whysz)
{
    ebsd_status st;
    double d = 0;
    if (!cJSON_IsObject(o))
        return fail(why, whysz, EBSD_EINVAL, "targets[%zu] is not an object", i);
    if ((st = get_str(o, "account", true, t->account, sizeof t->account, i, why, whysz)) ||
        (st = get_str(o, "region", true, t->region, sizeof t->region, i, why, whysz)) ||
        (st = get_str(o, "error", false, t->error, sizeof t->error, i, why, whysz)) ||
        (st = get_num(o, "total_gib", true, 0, &t->total_gib, i, why, whysz)) ||
        (st = get_num(o, "unattached_gib", false, -1, &t->unattached_gib, i, why, whysz)) ||
        (st = get_num(o, "age_s", false, -1, &t->age_s, i, why, whysz)))
        return st;
    if ((st = get_num(o, "instance_count", false, 0, &d, i, why, whysz)))
        return st;
    t->instance_count = (uint64_t)d;
    if ((st = get_num(o, "volume_count", false, 0, &d, i, why, whysz)))
        return st;
    t->volume_count = (uint64_t)d;
    const cJSON *bt = cJSON_GetObjectItemCaseSensitive(o, "by_type");
    if (bt && !cJSON_IsNull(bt)) {
        const cJSON *e;
        if (!cJSON_IsObject(bt))
            return fail(why, whysz, EBSD_EINVAL, "targets[%zu].by_type is not an object", i);
        cJSON_ArrayForEach(e, bt)
        {
            if (t->ntypes == PAGE_MAX_TYPES)
                return fail(why, whysz, EBSD_ETOOBIG, "targets[%zu].by_type has more than %d types",
                            i, PAGE_MAX_TYPES);
            struct page_type_gib *tg = &t->by_type[t->ntypes];
            if (!e->string || strlen(e->string) >= sizeof tg->type)
                return fail(why, whysz, EBSD_ETOOBIG, "targets[%zu].by_type has a type name "
                            "longer than %zu bytes", i, sizeof tg->type - 1);
            if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || e->valuedouble < 0)
                return fail(why, whysz, EBSD_EINVAL, "targets[%zu].by_type.%s is not a number "
                            ">= 0", i, e->string);
            str_copy(tg->type, sizeof tg->type, e->string);
            tg->gib = e->valuedouble;
            t->ntypes++;
        }
    }
    return EBSD_OK;
}

ebsd_status page_input_from_json(const cJSON *obj, struct page_input *out, char *why,
                                 size_t whysz)
{
    ebsd_status st = EBSD_EINVAL;
    struct page_input in = {.refresh_s = PAGE_DEFAULT_REFRESH_S};
    if (whysz)
        why[0] = '\0';
    if (!cJSON_IsObject(obj)) {
        st = fail(why, whysz, EBSD_EINVAL, "input is not a JSON object");
        goto out;
    }
    const cJSON *ga = cJSON_GetObjectItemCaseSensitive(obj, "generated_at");
    if (ga && !cJSON_IsNull(ga)) {
        if (!cJSON_IsString(ga) || strlen(ga->valuestring) >= sizeof in.generated_at) {
            st = fail(why, whysz, EBSD_EINVAL, "generated_at is not a short string");
            goto out;
        }
        str_copy(in.generated_at, sizeof in.generated_at, ga->valuestring);
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(obj, "refresh_s");
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsNumber(rs) || rs->valuedouble < 0 || rs->valuedouble > 86400 ||
            rs->valuedouble != floor(rs->valuedouble)) {
            st = fail(why, whysz, EBSD_EINVAL, "refresh_s is not a whole number 0..86400");
            goto out;
        }
        in.refresh_s = (unsigned)rs->valuedouble;
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(obj, "targets");
    if (!cJSON_IsArray(ts)) {
        st = fail(why, whysz, EBSD_EINVAL, "targets is not an array");
        goto out;
    }
    int n = cJSON_GetArraySize(ts);
    if (n > PAGE_MAX_TARGETS) {
        st = fail(why, whysz, EBSD_ETOOBIG, "more than %d targets", PAGE_MAX_TARGETS);
        goto out;
    }
    in.targets = xcalloc((size_t)n + 1, sizeof *in.targets);
    const cJSON *t;
    cJSON_ArrayForEach(t, ts)
    {
        st = read_target(t, &in.targets[in.ntargets], in.ntargets, why, whysz);
        if (st != EBSD_OK)
            goto out;
        in.ntargets++;
    }
    st = EBSD_OK;
    *out = in;
out:
    if (st != EBSD_OK)
        page_input_free(&in);
    return st;
}

void page_input_free(struct page_input *in)
{
    free(in->targets);
    memset(in, 0, sizeof *in);
}

/* ------------------------------------------------------------------ output helpers */

/* Appends s with &, <, >, " and ' escaped: safe in text and in quoted attributes. */
static ebsd_status put_esc(struct buf *b, const char *s)
{
    ebsd_status st = EBSD_OK;
    const char *run = s;
    for (; *s && st == EBSD_OK; s++) {
        const char *rep = markup_entity(*s, "&#39;");
        if (!rep)
            continue;
        st = buf_append(b, run, (size_t)(s - run));
        if (st == EBSD_OK)
            st = buf_puts(b, rep);
        run = s + 1;
    }
    if (st == EBSD_OK)
        st = buf_puts(b, run);
    return st;
}

/* A count or GiB figure with thousands separators: "12,345" or, when not whole, "12,345.6". */
static void fmt_num(double v, char out[48])
{
    char raw[40];
    bool whole = fabs(v - round(v)) < 0.05;
    snprintf(raw, sizeof raw, whole ? "%.0f" : "%.1f", v);
    const char *dot = strchr(raw, '.');
    size_t intlen = dot ? (size_t)(dot - raw) : strlen(raw), k = 0;
    for (size_t i = 0; i < intlen; i++) {
        if (i > 0 && (intlen - i) % 3 == 0)
            out[k++] = ',';
        out[k++] = raw[i];
    }
    out[k] = '\0';
    if (dot)
        str_copy(out + k, 48 - k, dot);
}

/* An age as people read it: "42 s", "5 min 3 s", "2 h 7 min", "3 d 4 h". */
static void fmt_age(double s, char out[32])
{
    unsigned long v = (unsigned long)(s + 0.5);
    if (s < 0)
        str_copy(out, 32, "no data");
    else if (v < 60)
        snprintf(out, 32, "%lu s", v);
    else if (v < 3600)
        snprintf(out, 32, "%lu min %lu s", v / 60, v % 60);
    else if (v < 86400)
        snprintf(out, 32, "%lu h %lu min", v / 3600, v % 3600 / 60);
    else
        snprintf(out, 32, "%lu d %lu h", v / 86400, v % 86400 / 3600);
}

/* Fill colour per volume type: gp2 stands out (the gp3 migration), others calm. */
static const char *type_colour(const char *type)
{
    static const struct {
        const char *type, *colour;
    } colours[] = {{"gp3", "#2f9e44"}, {"gp2", "#f08c00"}, {"io2", "#1c7ed6"},
                   {"io1", "#4dabf7"}, {"st1", "#ae3ec9"}, {"sc1", "#e64980"},
                   {"standard", "#868e96"}};
    for (size_t i = 0; i < sizeof colours / sizeof colours[0]; i++)
        if (strcmp(colours[i].type, type) == 0)
            return colours[i].colour;
    return "#5c7cfa";
}

struct type_sum {
    char type[32];
    double gib;
};

static int by_gib_desc(const void *a, const void *b)
{
    const struct type_sum *x = a, *y = b;
    if (x->gib != y->gib)
        return x->gib < y->gib ? 1 : -1;
    return strcmp(x->type, y->type);
}

/* Storage by volume type over every target, largest first. Returns how many; sums has room
 * for PAGE_MAX_TYPES * ntargets (bounded by distinct names, at most that). */
static size_t sum_types(const struct page_input *in, struct type_sum *sums, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < in->ntargets; i++)
        for (size_t j = 0; j < in->targets[i].ntypes; j++) {
            const struct page_type_gib *tg = &in->targets[i].by_type[j];
            size_t k = 0;
            while (k < n && strcmp(sums[k].type, tg->type) != 0)
                k++;
            if (k == n) {
                if (n == cap)
                    continue;
                str_copy(sums[n].type, sizeof sums[n].type, tg->type);
                sums[n].gib = 0;
                n++;
            }
            sums[k].gib += tg->gib;
        }
    qsort(sums, n, sizeof *sums, by_gib_desc);
    return n;
}

/* ------------------------------------------------------------------ sections */

static ebsd_status put_card(struct buf *b, const char *id, const char *label, const char *value,
                            const char *unit)
{
    ebsd_status st = buf_printf(b, "<div class=\"card\"><div class=\"label\">%s</div>"
                                   "<div class=\"value\" id=\"%s\">",
                                label, id);
    if (st == EBSD_OK)
        st = put_esc(b, value);
    if (st == EBSD_OK)
        st = buf_printf(b, "%s%s</div></div>\n", unit[0] ? " " : "", unit);
    return st;
}

static ebsd_status put_cards(struct buf *b, const struct page_input *in)
{
    double attached = 0, unattached = 0, oldest = -1;
    uint64_t instances = 0, volumes = 0;
    bool unattached_known = false;
    for (size_t i = 0; i < in->ntargets; i++) {
        const struct page_target *t = &in->targets[i];
        attached += t->total_gib;
        instances += t->instance_count;
        volumes += t->volume_count;
        if (t->unattached_gib >= 0) {
            unattached += t->unattached_gib;
            unattached_known = true;
        }
        if (t->age_s > oldest)
            oldest = t->age_s;
    }
    char n1[48], n2[48], n3[48], n4[48], age[32];
    fmt_num(attached, n1);
    fmt_num(unattached, n2);
    fmt_num((double)instances, n3);
    fmt_num((double)volumes, n4);
    fmt_age(oldest, age);
    ebsd_status st = buf_puts(b, "<section class=\"cards\">\n");
    if (st == EBSD_OK)
        st = put_card(b, "sum-attached", "Attached storage", n1, "GiB");
    if (st == EBSD_OK)
        st = put_card(b, "sum-unattached", "Unattached storage", unattached_known ? n2 : "unknown",
                      unattached_known ? "GiB" : "");
    if (st == EBSD_OK)
        st = put_card(b, "sum-instances", "Instances", n3, "");
    if (st == EBSD_OK)
        st = put_card(b, "sum-volumes", "Attached volumes", n4, "");
    if (st == EBSD_OK)
        st = put_card(b, "sum-age", "Oldest data", age, "");
    if (st == EBSD_OK)
        st = buf_puts(b, "</section>\n");
    return st;
}

static ebsd_status put_table(struct buf *b, const struct page_input *in)
{
    ebsd_status st = buf_puts(
        b, "<h2>Per account and region</h2>\n<table id=\"targets\">\n<thead><tr><th>Account</th>"
           "<th>Region</th><th class=\"num\">Attached GiB</th><th class=\"num\">Instances</th>"
           "<th class=\"num\">Volumes</th><th class=\"num\">Unattached GiB</th>"
           "<th class=\"num\">Data age</th><th>Status</th></tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < in->ntargets && st == EBSD_OK; i++) {
        const struct page_target *t = &in->targets[i];
        char total[48], inst[48], vols[48], un[48], age[32];
        fmt_num(t->total_gib, total);
        fmt_num((double)t->instance_count, inst);
        fmt_num((double)t->volume_count, vols);
        if (t->unattached_gib >= 0)
            fmt_num(t->unattached_gib, un);
        else
            str_copy(un, sizeof un, "unknown");
        fmt_age(t->age_s, age);
        st = buf_puts(b, "<tr class=\"target\"><td class=\"account\">");
        if (st == EBSD_OK)
            st = put_esc(b, t->account);
        if (st == EBSD_OK)
            st = buf_puts(b, "</td><td class=\"region\">");
        if (st == EBSD_OK)
            st = put_esc(b, t->region);
        if (st == EBSD_OK)
            st = buf_printf(b, "</td><td class=\"num total\">%s</td><td class=\"num instances\">"
                               "%s</td><td class=\"num volumes\">%s</td>"
                               "<td class=\"num unattached\">%s</td><td class=\"num age\">%s</td>",
                            total, inst, vols, un, age);
        if (st == EBSD_OK && t->error[0]) {
            st = buf_puts(b, "<td class=\"status err\">");
            if (st == EBSD_OK)
                st = put_esc(b, t->error);
            if (st == EBSD_OK)
                st = buf_puts(b, "</td></tr>\n");
        } else if (st == EBSD_OK) {
            st = buf_puts(b, "<td class=\"status ok\">ok</td></tr>\n");
        }
    }
    if (st == EBSD_OK)
        st = buf_puts(b, "</tbody>\n</table>\n");
    return st;
}

/* Horizontal bars, one per volume type, scaled to the largest. */
static ebsd_status put_chart(struct buf *b, const struct page_input *in)
{
    enum { LABEL_W = 90, BAR_W = 440, VALUE_W = 150, ROW_H = 30, BAR_H = 20 };
    size_t cap = PAGE_MAX_TYPES * (in->ntargets ? in->ntargets : 1);
    struct type_sum *sums = xcalloc(cap, sizeof *sums);
    size_t n = sum_types(in, sums, cap);
    double max = n ? sums[0].gib : 0;
    unsigned height = (unsigned)(n ? n * ROW_H + 10 : 40);
    ebsd_status st = buf_printf(
        b, "<h2>Attached storage by volume type</h2>\n<svg id=\"by-type\" role=\"img\" "
           "width=\"%d\" height=\"%u\" viewBox=\"0 0 %d %u\" "
           "xmlns=\"http://www.w3.org/2000/svg\"><title>Attached storage by volume type "
           "(GiB)</title>\n",
        LABEL_W + BAR_W + VALUE_W, height, LABEL_W + BAR_W + VALUE_W, height);
    if (st == EBSD_OK && n == 0)
        st = buf_puts(b, "<text class=\"axis\" x=\"0\" y=\"24\">no attached storage</text>\n");
    for (size_t i = 0; i < n && st == EBSD_OK; i++) {
        char v[48];
        fmt_num(sums[i].gib, v);
        double w = max > 0 ? sums[i].gib / max * BAR_W : 0;
        if (sums[i].gib > 0 && w < 2)
            w = 2; /* a sliver stays visible */
        unsigned y = (unsigned)(i * ROW_H + 5);
        st = buf_printf(b, "<g class=\"bar\"><text class=\"type\" x=\"0\" y=\"%u\">", y + 15);
        if (st == EBSD_OK)
            st = put_esc(b, sums[i].type);
        if (st == EBSD_OK)
            st = buf_printf(b, "</text><rect x=\"%d\" y=\"%u\" width=\"%.1f\" height=\"%d\" "
                               "rx=\"3\" fill=\"%s\"></rect><text class=\"gib\" x=\"%.1f\" "
                               "y=\"%u\">%s GiB</text></g>\n",
                            LABEL_W, y, w, BAR_H, type_colour(sums[i].type), LABEL_W + w + 8,
                            y + 15, v);
    }
    if (st == EBSD_OK)
        st = buf_puts(b, "</svg>\n");
    free(sums);
    return st;
}

ebsd_status page_render(const struct page_input *in, struct buf *out)
{
    ebsd_status st;
    buf_init(out, PAGE_MAX_BYTES);
    st = buf_puts(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    if (st == EBSD_OK && in->refresh_s)
        st = buf_printf(out, "<meta http-equiv=\"refresh\" content=\"%u\">\n", in->refresh_s);
    if (st == EBSD_OK)
        st = buf_printf(out, "<title>EBS storage - ebsd</title>\n<style>%s</style>\n</head>\n"
                             "<body>\n<header><h1>EBS storage</h1>\n<p class=\"sub\">",
                        page_style);
    if (st == EBSD_OK && in->generated_at[0]) {
        st = buf_puts(out, "Data as of <time id=\"generated-at\">");
        if (st == EBSD_OK)
            st = put_esc(out, in->generated_at);
        if (st == EBSD_OK)
            st = buf_puts(out, "</time>. ");
    }
    if (st == EBSD_OK)
        st = buf_printf(out, "%zu target%s (account &times; region).", in->ntargets,
                        in->ntargets == 1 ? "" : "s");
    if (st == EBSD_OK && in->refresh_s)
        st = buf_printf(out, " Reloads every %u s.", in->refresh_s);
    if (st == EBSD_OK)
        st = buf_puts(out, "</p></header>\n");
    if (st == EBSD_OK)
        st = put_cards(out, in);
    if (st == EBSD_OK)
        st = put_chart(out, in);
    if (st == EBSD_OK)
        st = put_table(out, in);
    if (st == EBSD_OK)
        st = buf_puts(out, "<footer>JSON: <a href=\"/volumes/total?account=all&amp;region=all\">"
                           "/volumes/total</a> &middot; metrics: <a href=\"/metrics\">/metrics"
                           "</a> &middot; API: <a href=\"/openapi.yaml\">/openapi.yaml</a>"
                           "</footer>\n</body>\n</html>\n");
    if (st != EBSD_OK)
        buf_free(out);
    return st;
}

/* ------------------------------------------------------------------ headers */

void page_target_from_answer(cJSON *targets, const char *account, const char *region,
                             const char *body, size_t len, double age_s)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "account", account);
    cJSON_AddStringToObject(t, "region", region);
    cJSON *a = body ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(a, "total_gib");
    if (!cJSON_IsNumber(total)) {
        cJSON_AddNumberToObject(t, "total_gib", 0); /* no age_s: no data yet */
        if (body)
            cJSON_AddStringToObject(t, "error", "the cached answer is unreadable");
        cJSON_AddItemToArray(targets, t);
        cJSON_Delete(a);
        return;
    }
    cJSON_AddNumberToObject(t, "total_gib", total->valuedouble);
    static const char *const counts[] = {"instance_count", "volume_count"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(a, counts[i]);
        cJSON_AddNumberToObject(t, counts[i], cJSON_IsNumber(n) ? n->valuedouble : 0);
    }
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(a, "by_type");
    if (cJSON_IsObject(by))
        cJSON_AddItemToObject(t, "by_type", cJSON_Duplicate(by, true));
    cJSON_AddNumberToObject(t, "age_s", age_s < 0 ? 0 : age_s);
    cJSON_AddItemToArray(targets, t);
    cJSON_Delete(a);
}

const char *page_csp(void)
{
    static char csp[256];
    if (csp[0])
        return csp;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    if (EVP_Digest(page_style, sizeof page_style - 1, md, &mdlen, EVP_sha256(), NULL) != 1) {
        /* Without the hash the style is refused: the page still reads, unstyled. */
        str_copy(csp, sizeof csp, "default-src 'none'; base-uri 'none'; form-action 'none'; "
                                  "frame-ancestors 'none'");
        return csp;
    }
    EVP_EncodeBlock(b64, md, (int)mdlen);
    snprintf(csp, sizeof csp,
             "default-src 'none'; style-src 'sha256-%s'; base-uri 'none'; form-action 'none'; "
             "frame-ancestors 'none'",
             (const char *)b64);
    return csp;
}

/* Media-range q-values of an Accept header for the two representations ebsd has. */
static void accept_qs(const char *accept, int *html_q, int *json_q, bool *json_explicit)
{
    int q_html = -1, q_json = -1, q_app = -1, q_any = -1;
    const char *p = accept;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t n = (size_t)(p - s);
        int q = 1000;
        while (*p && *p != ',') {
            if (*p == ';') {
                p++;
                while (*p == ' ' || *p == '\t')
                    p++;
                if ((*p == 'q' || *p == 'Q') && p[1] == '=') {
                    p += 2;
                    const char *v = p;
                    while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
                        p++;
                    char tmp[8] = {0};
                    size_t vl = (size_t)(p - v);
                    q = 0;
                    if (vl > 0 && vl < sizeof tmp) {
                        memcpy(tmp, v, vl);
                        char *end;
                        double d = strtod(tmp, &end);
                        q = *end || d < 0 || d > 1 ? 0 : (int)(d * 1000 + 0.5);
                    }
                    continue;
                }
            } else {
                p++;
            }
        }
#define IS(lit) (n == sizeof lit - 1 && strncasecmp(s, lit, n) == 0)
        if (IS("text/html") && q_html < 0)
            q_html = q;
        else if (IS("application/json") && q_json < 0)
            q_json = q;
        else if (IS("application/*") && q_app < 0)
            q_app = q;
        else if (IS("*/*") && q_any < 0)
            q_any = q;
#undef IS
    }
    *json_explicit = q_json >= 0;
    *html_q = q_html >= 0 ? q_html : 0; /* only an explicit text/html asks for the page */
    *json_q = q_json >= 0 ? q_json : q_app >= 0 ? q_app : q_any >= 0 ? q_any : 0;
}

bool page_wants_html(const char *accept)
{
    int html_q, json_q;
    bool json_explicit;
    if (!accept)
        return false;
    accept_qs(accept, &html_q, &json_q, &json_explicit);
    if (html_q <= 0)
        return false;
    return html_q > json_q || (html_q == json_q && !json_explicit);
}
