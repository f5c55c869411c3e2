/* test_redisshare.c - the shared cache's claims when Redis is off or unreachable: a claim is
 * refused at once (NULL: fetch locally, never wait), a refusal while configured counts as a
 * fallback, and the follow-up calls accept NULL. The shared paths themselves run against a
 * real redis-server in tests/integration/test_redis_share.py. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "harness.h"
#include "loop.h"
#include "mem.h"
#include "redisshare.h"

static int calls;

static void never(void *arg, enum redisshare_verdict v, const struct redis_value *val)
{
    (void)arg;
    (void)v;
    (void)val;
    calls++;
}

static void test_off_refuses_without_counting(void)
{
    struct loop *l = NULL;
    CHECK_INT(loop_new(&l), EBSD_OK);
    struct config cfg;
    config_defaults(&cfg);
    CHECK_INT(redisshare_start(l, &cfg), EBSD_OK); /* url "" = off */
    struct target t = target_make(NULL, "us-east-1");
    CHECK(redisshare_claim(&t, "us-east-1|total|-|parallel", 0, true, 1000, never, NULL) ==
          NULL);
    struct redisshare_stats st;
    redisshare_get_stats(&st);
    CHECK(!st.enabled && !st.up);
    CHECK_INT(st.fallbacks, 0);
    redisshare_done(NULL, NULL);
    redisshare_extend(NULL, 5000);
    redisshare_cancel(NULL);
    redisshare_stop();
    CHECK_INT(calls, 0);
    config_free(&cfg);
    loop_free(l);
}

static void test_unreachable_refuses_at_once_and_counts(void)
{
    struct loop *l = NULL;
    CHECK_INT(loop_new(&l), EBSD_OK);
    struct config cfg;
    config_defaults(&cfg);
    free(cfg.redis_url);
    cfg.redis_url = xstrdup("redis://127.0.0.1:1"); /* nothing listens on port 1 */
    CHECK_INT(redisshare_start(l, &cfg), EBSD_OK);  /* connecting is not starting */
    struct target t = target_make(NULL, "us-east-1");
    CHECK(redisshare_claim(&t, "us-east-1|total|-|parallel", 0, true, 1000, never, NULL) ==
          NULL);
    struct redisshare_stats st;
    redisshare_get_stats(&st);
    CHECK(st.enabled && !st.up);
    CHECK_INT(st.fallbacks, 1);
    redisshare_stop();
    redisshare_get_stats(&st);
    CHECK(!st.enabled);
    CHECK_INT(calls, 0);
    config_free(&cfg);
    loop_free(l);
}

static void test_unreadable_password_file_fails_start(void)
{
    struct loop *l = NULL;
    CHECK_INT(loop_new(&l), EBSD_OK);
    struct config cfg;
    config_defaults(&cfg);
    free(cfg.redis_url);
    cfg.redis_url = xstrdup("redis://127.0.0.1:1");
    free(cfg.redis_password_file);
    cfg.redis_password_file = xstrdup("/nonexistent/ebsd-redis-password");
    CHECK(redisshare_start(l, &cfg) != EBSD_OK);
    struct redisshare_stats st;
    redisshare_get_stats(&st);
    CHECK(!st.enabled); /* nothing left open */
    config_free(&cfg);
    loop_free(l);
}

TEST_MAIN(T(test_off_refuses_without_counting), T(test_unreachable_refuses_at_once_and_counts),
          T(test_unreadable_password_file_fails_start))
