/* sigv4_tool.c - signs requests given as JSON lines on stdin and prints what sigv4_sign
 * produced as JSON lines, for the cross-check against botocore
 * (tests/integration/test_sigv4_botocore.py).
 * In:  {"method","path","query","headers":[[name,value],...],"body","region","service",
 *       "time" (UTC seconds),"creds":{"access_key_id","secret_access_key","session_token"},
 *       "normalize" (default true)}
 * Out: {"canonical_request","string_to_sign","signature","authorization"} or {"error"}. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "sigv4.h"

#define MAX_LINE (4u << 20)
#define MAX_HEADERS 256

static const char *str_item(const cJSON *o, const char *key, const char *dflt)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    return s ? s : dflt;
}

/* Signs one request line; returns the JSON answer (caller frees). */
static char *sign_line(const char *line)
{
    cJSON *in = cJSON_Parse(line);
    cJSON *ans = cJSON_CreateObject();
    struct sigv4_header hs[MAX_HEADERS];
    size_t nh = 0;
    if (!in) {
        cJSON_AddStringToObject(ans, "error", "invalid JSON");
        goto out;
    }
    const cJSON *headers = cJSON_GetObjectItemCaseSensitive(in, "headers");
    const cJSON *h;
    cJSON_ArrayForEach(h, headers)
    {
        const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(h, 0));
        const char *value = cJSON_GetStringValue(cJSON_GetArrayItem(h, 1));
        if (!name || !value || nh == MAX_HEADERS) {
            cJSON_AddStringToObject(ans, "error", "headers must be [name, value] pairs");
            goto out;
        }
        hs[nh++] = (struct sigv4_header){name, value};
    }
    const cJSON *creds = cJSON_GetObjectItemCaseSensitive(in, "creds");
    struct sigv4_credentials cr = {str_item(creds, "access_key_id", ""),
                                   str_item(creds, "secret_access_key", ""),
                                   str_item(creds, "session_token", NULL)};
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(in, "normalize");
    struct sigv4_params params = {
        .creds = &cr,
        .region = str_item(in, "region", "us-east-1"),
        .service = str_item(in, "service", "ec2"),
        .when = (time_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(in, "time")),
        .normalize_path = norm ? cJSON_IsTrue(norm) : true,
    };
    const char *body = str_item(in, "body", "");
    struct sigv4_request req = {.method = str_item(in, "method", "GET"),
                                .path = str_item(in, "path", "/"),
                                .query = str_item(in, "query", ""),
                                .headers = hs,
                                .nheaders = nh,
                                .body = body,
                                .body_len = strlen(body)};
    struct sigv4_signed s;
    ebsd_status st = sigv4_sign(&req, &params, &s);
    if (st != EBSD_OK) {
        cJSON_AddStringToObject(ans, "error", status_str(st));
        goto out;
    }
    cJSON_AddStringToObject(ans, "canonical_request", s.canonical_request);
    cJSON_AddStringToObject(ans, "string_to_sign", s.string_to_sign);
    cJSON_AddStringToObject(ans, "signature", s.signature);
    cJSON_AddStringToObject(ans, "authorization", s.authorization);
    sigv4_signed_free(&s);
out:
    cJSON_Delete(in);
    char *text = cJSON_PrintUnformatted(ans);
    cJSON_Delete(ans);
    return text;
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if ((size_t)n > MAX_LINE) {
            fprintf(stderr, "sigv4_tool: line longer than %u bytes\n", MAX_LINE);
            rc = 1;
            break;
        }
        char *ans = sign_line(line);
        if (!ans) {
            rc = 1;
            break;
        }
        puts(ans);
        fflush(stdout);
        free(ans);
    }
    free(line);
    return rc;
}
