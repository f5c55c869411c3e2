/* query.c - form-urlencoded parsing for EC2 Query API requests. */
#include "query.h"

#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "mem.h"

static char *decode(const char *s, size_t len)
{
    char *out = xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < len &&
                   hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
            out[o++] = (char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

ebsd_status query_parse(const char *s, size_t len, struct query *out)
{
    struct query q = {NULL, 0};
    size_t cap = 0;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '&')
            j++;
        if (j > i) {
            if (q.n == QUERY_MAX_PARAMS) {
                query_free(&q);
                return EBSD_ETOOBIG;
            }
            if (q.n == cap) {
                cap = cap ? cap * 2 : 16;
                q.v = xrealloc(q.v, cap * sizeof *q.v);
            }
            const char *eq = memchr(s + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (s + i)) : j - i;
            q.v[q.n].key = decode(s + i, klen);
            q.v[q.n].value = eq ? decode(eq + 1, (size_t)(s + j - eq - 1)) : xstrdup("");
            q.n++;
        }
        i = j + 1;
    }
    *out = q;
    return EBSD_OK;
}

const char *query_get(const struct query *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->v[i].key, key) == 0)
            return q->v[i].value;
    return NULL;
}

void query_free(struct query *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->v[i].key);
        free(q->v[i].value);
    }
    free(q->v);
    q->v = NULL;
    q->n = 0;
}
