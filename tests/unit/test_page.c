/* test_page.c - the human page: input validation, escaping, the figures it shows, the CSP
 * hash of its one style, and which Accept headers get it. */
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdlib.h>

#include "harness.h"
#include "page.h"

static const char *sample =
    "{\"generated_at\":\"2026-12-02T17:00:00Z\",\"refresh_s\":30,\"targets\":["
    "{\"account\":\"111122223333\",\"region\":\"us-east-1\",\"total_gib\":12345,"
    "\"instance_count\":500,\"volume_count\":1234,\"by_type\":{\"gp3\":10000,\"gp2\":2000,"
    "\"io2\":345},\"unattached_gib\":640,\"age_s\":42},"
    "{\"account\":\"<b>prod</b> & \\\"co\\\"\",\"region\":\"eu-west-1\",\"total_gib\":100.5,"
    "\"instance_count\":3,\"volume_count\":4,\"by_type\":{\"gp2\":100.5},\"age_s\":3725,"
    "\"error\":\"<script>alert(1)</script>\"}]}";

static char *render(const char *json, ebsd_status *st_out, char *why, size_t whysz)
{
    cJSON *j = cJSON_Parse(json);
    struct page_input in;
    struct buf out;
    char *html = NULL;
    CHECK(j != NULL);
    ebsd_status st = page_input_from_json(j, &in, why, whysz);
    if (st == EBSD_OK) {
        st = page_render(&in, &out);
        if (st == EBSD_OK)
            html = buf_steal(&out);
        page_input_free(&in);
    }
    cJSON_Delete(j);
    *st_out = st;
    return html;
}

static void test_figures_and_escaping(void)
{
    ebsd_status st;
    char why[256];
    char *h = render(sample, &st, why, sizeof why);
    CHECK_INT(st, EBSD_OK);
    if (!h)
        return;
    CHECK(strncmp(h, "<!DOCTYPE html>", 15) == 0);
    CHECK(strstr(h, "<meta http-equiv=\"refresh\" content=\"30\">") != NULL);
    CHECK(strstr(h, "<td class=\"num total\">12,345</td>") != NULL);
    CHECK(strstr(h, "<td class=\"num total\">100.5</td>") != NULL);
    CHECK(strstr(h, "<td class=\"num instances\">500</td>") != NULL);
    CHECK(strstr(h, "<td class=\"num volumes\">1,234</td>") != NULL);
    CHECK(strstr(h, "<td class=\"num unattached\">640</td>") != NULL);
    CHECK(strstr(h, "<td class=\"num unattached\">unknown</td>") != NULL);
    CHECK(strstr(h, "<td class=\"num age\">42 s</td>") != NULL);
    CHECK(strstr(h, "<td class=\"num age\">1 h 2 min</td>") != NULL);
    /* totals over targets */
    CHECK(strstr(h, "id=\"sum-attached\">12,445.5 GiB<") != NULL);
    CHECK(strstr(h, "id=\"sum-unattached\">640 GiB<") != NULL);
    CHECK(strstr(h, "id=\"sum-instances\">503<") != NULL);
    CHECK(strstr(h, "id=\"sum-age\">1 h 2 min<") != NULL);
    /* chart: gp3 10000, gp2 2000 + 100.5, io2 345, largest first */
    const char *gp3 = strstr(h, ">gp3</text>"), *gp2 = strstr(h, ">gp2</text>"),
               *io2 = strstr(h, ">io2</text>");
    CHECK(gp3 && gp2 && io2 && gp3 < gp2 && gp2 < io2);
    CHECK(strstr(h, ">2,100.5 GiB</text>") != NULL);
    CHECK(strstr(h, "width=\"440.0\"") != NULL); /* the largest bar is full width */
    /* everything from the input is escaped */
    CHECK(strstr(h, "<script") == NULL);
    CHECK(strstr(h, "<b>prod") == NULL);
    CHECK(strstr(h, "&lt;b&gt;prod&lt;/b&gt; &amp; &quot;co&quot;") != NULL);
    CHECK(strstr(h, "&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
    /* nothing external, no inline style attributes, no script */
    CHECK(strstr(h, "src=") == NULL);
    CHECK(strstr(h, " style=") == NULL);
    CHECK(strstr(h, "http://") == NULL || strstr(h, "http://www.w3.org/2000/svg") != NULL);
    free(h);
}

static void test_csp_hash_matches_style(void)
{
    ebsd_status st;
    char why[256];
    char *h = render("{\"targets\":[]}", &st, why, sizeof why);
    CHECK_INT(st, EBSD_OK);
    if (!h)
        return;
    CHECK(strstr(h, "no attached storage") != NULL);
    const char *s = strstr(h, "<style>"), *e = strstr(h, "</style>");
    CHECK(s && e && s < e);
    s += 7;
    unsigned char md[EVP_MAX_MD_SIZE], b64[64];
    unsigned mdlen = 0;
    CHECK(EVP_Digest(s, (size_t)(e - s), md, &mdlen, EVP_sha256(), NULL) == 1);
    EVP_EncodeBlock(b64, md, (int)mdlen);
    char want[128];
    snprintf(want, sizeof want, "style-src 'sha256-%s';", (const char *)b64);
    const char *csp = page_csp();
    CHECK(strstr(csp, want) != NULL);
    CHECK(strncmp(csp, "default-src 'none';", 19) == 0);
    CHECK(strstr(csp, "unsafe-inline") == NULL);
    CHECK(strstr(csp, "script-src") == NULL); /* none: default-src 'none' covers it */
    CHECK(strstr(csp, "frame-ancestors 'none'") != NULL);
    CHECK(page_csp() == csp); /* computed once */
    /* exactly one <style> */
    CHECK(strstr(e + 1, "<style") == NULL);
    free(h);
}

static void test_bad_input(void)
{
    static const char *const bad[] = {
        "[]",
        "{}",
        "{\"targets\":{}}",
        "{\"targets\":[1]}",
        "{\"targets\":[{\"region\":\"us-east-1\",\"total_gib\":1}]}",
        "{\"targets\":[{\"account\":\"a\",\"total_gib\":1}]}",
        "{\"targets\":[{\"account\":\"a\",\"region\":\"r\"}]}",
        "{\"targets\":[{\"account\":\"a\",\"region\":\"r\",\"total_gib\":-1}]}",
        "{\"targets\":[{\"account\":\"a\",\"region\":\"r\",\"total_gib\":\"1\"}]}",
        "{\"targets\":[{\"account\":5,\"region\":\"r\",\"total_gib\":1}]}",
        "{\"targets\":[{\"account\":\"a\",\"region\":\"r\",\"total_gib\":1,\"by_type\":[]}]}",
        "{\"targets\":[{\"account\":\"a\",\"region\":\"r\",\"total_gib\":1,\"by_type\":{\"gp3\":"
        "\"x\"}}]}",
        "{\"targets\":[{\"account\":\"a\",\"region\":\"r\",\"total_gib\":1,\"age_s\":-3}]}",
        "{\"targets\":[{\"account\":\"a\",\"region\":\"r-much-longer-than-thirty-two-bytes-x\","
        "\"total_gib\":1}]}",
        "{\"refresh_s\":1.5,\"targets\":[]}",
        "{\"refresh_s\":-1,\"targets\":[]}",
        "{\"generated_at\":7,\"targets\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        harness_current = bad[i];
        ebsd_status st;
        char why[256] = "";
        char *h = render(bad[i], &st, why, sizeof why);
        CHECK(st != EBSD_OK);
        CHECK(h == NULL);
        CHECK(why[0] != '\0');
        free(h);
    }
    harness_current = "test_bad_input";
    ebsd_status st;
    char why[256];
    char *h = render("{\"refresh_s\":0,\"targets\":[{\"account\":\"a\",\"region\":\"r\","
                     "\"total_gib\":0}]}",
                     &st, why, sizeof why);
    CHECK_INT(st, EBSD_OK);
    CHECK(h && strstr(h, "http-equiv=\"refresh\"") == NULL);
    CHECK(h && strstr(h, "id=\"sum-age\">no data<") != NULL);
    free(h);
}

static void test_wants_html(void)
{
    struct {
        const char *accept;
        bool html;
    } cases[] = {
        {NULL, false},
        {"", false},
        {"*/*", false},
        {"application/json", false},
        {"text/html", true},
        {"TEXT/HTML", true},
        {"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
         true},
        {"text/html;q=0.5, */*", false},
        {"text/html;q=0, */*", false},
        {"text/html, application/json", false},
        {"application/json;q=0.5, text/html", true},
        {"text/html;q=0.9, application/json;q=0.9", false},
        {"text/*", false},
        {"application/*, text/html", true},
        {"application/json, text/html", false},
        {"text/html; charset=utf-8", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        harness_current = cases[i].accept ? cases[i].accept : "(null)";
        CHECK(page_wants_html(cases[i].accept) == cases[i].html);
    }
}

TEST_MAIN(T(test_figures_and_escaping), T(test_csp_hash_matches_style), T(test_bad_input),
          T(test_wants_html))
