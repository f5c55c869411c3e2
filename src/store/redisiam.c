/* redisiam.c - ElastiCache IAM auth tokens (src/store/redisiam.h): a presigned SigV4 URL
 * from src/aws/sigv4.c, and a loop timer that renews it and re-AUTHs the connections. */
#include "redisiam.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "clock.h"
#include "log.h"
#include "loop.h"
#include "mem.h"

#define RETRY_MS (60 * 1000)

ebsd_status redis_iam_token(const struct redis_iam_params *p,
                            const struct sigv4_credentials *creds, time_t now, char **out)
{
    if (!p || !p->user || !*p->user || !p->cache || !*p->cache || !p->region || !*p->region ||
        !creds || !creds->access_key_id || !creds->secret_access_key)
        return EBSD_EINVAL;
    char *user = sigv4_uri_encode(p->user, strlen(p->user), true);
    char *query = xasprintf("Action=connect&User=%s%s", user,
                            p->serverless ? "&ResourceType=ServerlessCache" : "");
    free(user);
    const struct sigv4_header host = {"Host", p->cache};
    const struct sigv4_request req = {.method = "GET", .path = "/", .query = query,
                                      .headers = &host, .nheaders = 1};
    const struct sigv4_params params = {.creds = creds, .region = p->region,
                                        .service = "elasticache", .when = now,
                                        .normalize_path = true};
    struct sigv4_presigned ps;
    ebsd_status st = sigv4_presign(&req, &params, REDIS_IAM_EXPIRES_S, &ps);
    free(query);
    if (st != EBSD_OK)
        return st;
    /* the URL is http://CACHE/?QUERY; the token is that URL without "http://" */
    *out = xasprintf("%s/?%s", p->cache, ps.query);
    sigv4_presigned_free(&ps);
    return EBSD_OK;
}

struct redis_iam_renewer {
    struct loop *loop;
    char *user, *cache, *region;
    bool serverless;
    redis_iam_creds_fn fn;
    void *arg;
    struct redis **conns;
    size_t nconns;
    uint32_t renew_ms;
    struct loop_timer *timer;
};

/* Makes a token and hands it to every connection. */
static ebsd_status renew(struct redis_iam_renewer *rn, bool reauth)
{
    struct sigv4_credentials c = {0};
    char *token = NULL;
    ebsd_status st = rn->fn(&c, rn->arg);
    if (st == EBSD_OK) {
        const struct redis_iam_params p = {rn->user, rn->cache, rn->serverless, rn->region};
        st = redis_iam_token(&p, &c, time(NULL), &token);
    }
    if (st != EBSD_OK) {
        log_warn("redis", "cannot make an ElastiCache IAM token: %s", status_str(st));
        return st;
    }
    for (size_t i = 0; i < rn->nconns; i++)
        redis_set_auth(rn->conns[i], rn->user, token, reauth);
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    return EBSD_OK;
}

static void on_timer(struct loop *l, void *arg)
{
    struct redis_iam_renewer *rn = arg;
    ebsd_status st = renew(rn, true);
    uint32_t next = st == EBSD_OK || rn->renew_ms < RETRY_MS ? rn->renew_ms : RETRY_MS;
    rn->timer = loop_timer_start(l, clock_now_ms() + next, on_timer, rn);
}

ebsd_status redis_iam_start(struct loop *l, const struct redis_iam_params *p,
                            redis_iam_creds_fn fn, void *arg, struct redis *const *conns,
                            size_t nconns, uint32_t renew_ms, struct redis_iam_renewer **out)
{
    if (!l || !p || !p->user || !p->cache || !p->region || !fn)
        return EBSD_EINVAL;
    struct redis_iam_renewer *rn = xcalloc(1, sizeof *rn);
    rn->loop = l;
    rn->user = xstrdup(p->user);
    rn->cache = xstrdup(p->cache);
    rn->region = xstrdup(p->region);
    rn->serverless = p->serverless;
    rn->fn = fn;
    rn->arg = arg;
    rn->nconns = nconns;
    rn->conns = xcalloc(nconns ? nconns : 1, sizeof *rn->conns);
    for (size_t i = 0; i < nconns; i++)
        rn->conns[i] = conns[i];
    rn->renew_ms = renew_ms ? renew_ms : REDIS_IAM_RENEW_MS;
    if (renew(rn, false) != EBSD_OK) {
        redis_iam_stop(rn);
        return EBSD_EAUTH;
    }
    rn->timer = loop_timer_start(l, clock_now_ms() + rn->renew_ms, on_timer, rn);
    *out = rn;
    return EBSD_OK;
}

void redis_iam_stop(struct redis_iam_renewer *rn)
{
    if (!rn)
        return;
    loop_timer_stop(rn->loop, rn->timer);
    free(rn->user);
    free(rn->cache);
    free(rn->region);
    free(rn->conns);
    free(rn);
}
