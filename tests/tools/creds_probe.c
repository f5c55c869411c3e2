/* creds_probe.c - runs creds_resolve once and prints one JSON line:
 *   {"source","access_key_id","has_session_token","expiration","expiring"} (exit 0) or
 *   {"error","source","status"} (exit 1).
 * It never prints the secret key or the session token.
 * Usage: creds_probe [--deadline-ms N] [--margin-s N] (margin for "expiring", default 300) */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "creds.h"
#include "httpc.h"

static long arg_long(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0) {
        fprintf(stderr, "creds_probe: bad number %s\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    long deadline_ms = 10000, margin = 300;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--deadline-ms") == 0 && i + 1 < argc)
            deadline_ms = arg_long(argv[++i]);
        else if (strcmp(argv[i], "--margin-s") == 0 && i + 1 < argc)
            margin = arg_long(argv[++i]);
        else {
            fprintf(stderr, "usage: creds_probe [--deadline-ms N] [--margin-s N]\n");
            return 2;
        }
    }
    httpc_global_init();
    struct creds c;
    struct creds_error err;
    int64_t t0 = clock_now_ms();
    ebsd_status st = creds_resolve(t0 + deadline_ms, &c, &err);
    cJSON *o = cJSON_CreateObject();
    if (st == EBSD_OK) {
        cJSON_AddStringToObject(o, "source", c.source);
        cJSON_AddStringToObject(o, "access_key_id", c.access_key_id);
        cJSON_AddBoolToObject(o, "has_session_token", c.session_token[0] != '\0');
        if (c.expiration) {
            char when[32];
            struct tm tm;
            gmtime_r(&c.expiration, &tm);
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
            cJSON_AddStringToObject(o, "expiration", when);
        } else {
            cJSON_AddNullToObject(o, "expiration");
        }
        cJSON_AddBoolToObject(o, "expiring", creds_expiring(&c, time(NULL), (int)margin));
        creds_wipe(&c);
    } else {
        cJSON_AddStringToObject(o, "error", err.message);
        cJSON_AddStringToObject(o, "source", err.source);
        cJSON_AddStringToObject(o, "status", status_str(st));
    }
    cJSON_AddNumberToObject(o, "elapsed_ms", (double)(clock_now_ms() - t0));
    char *text = cJSON_PrintUnformatted(o);
    puts(text);
    free(text);
    cJSON_Delete(o);
    return st == EBSD_OK ? 0 : 1;
}
