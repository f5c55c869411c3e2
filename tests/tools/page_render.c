/* page_render - writes the page at GET / for a fixed JSON input, for test_page.py to open in
 * headless Chromium. Usage: page_render INPUT.json OUT.html [OUT.csp]
 * OUT.csp receives the Content-Security-Policy header value the server sends with it. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "page.h"

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t n = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || n != len) {
        perror(path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 1;
    char *text = NULL;
    cJSON *json = NULL;
    struct page_input in = {0};
    struct buf html;
    bool rendered = false;
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: page_render INPUT.json OUT.html [OUT.csp]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    size_t cap = 1 << 20, len = 0;
    text = xmalloc(cap + 1);
    len = fread(text, 1, cap, f);
    fclose(f);
    text[len] = '\0';
    json = cJSON_ParseWithLength(text, len);
    if (!json) {
        fprintf(stderr, "%s: not JSON\n", argv[1]);
        goto out;
    }
    char why[256];
    if (page_input_from_json(json, &in, why, sizeof why) != EBSD_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], why);
        goto out;
    }
    if (page_render(&in, &html) != EBSD_OK) {
        fprintf(stderr, "page_render failed\n");
        goto out;
    }
    rendered = true;
    if (write_file(argv[2], html.data, html.len) != 0)
        goto out;
    if (argc == 4 && write_file(argv[3], page_csp(), strlen(page_csp())) != 0)
        goto out;
    rc = 0;
out:
    if (rendered)
        buf_free(&html);
    page_input_free(&in);
    cJSON_Delete(json);
    free(text);
    return rc;
}
