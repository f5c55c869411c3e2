/* refresh.c - the background refresher (see refresh.h). */
#include "refresh.h"

#include <string.h>

#include "clock.h"
#include "engine.h"
#include "log.h"
#include "target.h"
#include "volumes.h"

/* While requests wait, a refresh is tried again this soon (never later than its turn). */
#define GIVE_WAY_MS 1000

/* What the refresher did, for ebsd_refresh_total (refresh_render). */
struct refresh_stats {
    unsigned long long started;   /* background fetches started */
    unsigned long long skipped;   /* a fresh enough answer was cached, or in flight */
    unsigned long long deferred;  /* postponed: requests were waiting */
};

static struct {
    struct loop *loop;
    struct server *srv;
    struct loop_timer *timer;
    int64_t interval_ms, step_ms;
    unsigned next, nitems;        /* item i: target i / 2, unattached when i is odd */
    struct refresh_stats st;
} g;

static void on_tick(struct loop *l, void *arg);

static void arm(int64_t at)
{
    g.timer = loop_timer_start(g.loop, at, on_tick, NULL);
}

static void on_tick(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
    g.timer = NULL;
    const struct config *cfg = server_config(g.srv);
    if (!cfg || g.nitems == 0)
        return;
    int64_t now = clock_now_ms();
    const struct engine_stats *es = engine_stats();
    if (es->queued > 0) {
        /* someone's request waits for a worker or for budget: it goes first */
        g.st.deferred++;
        arm(now + (g.step_ms < GIVE_WAY_MS ? g.step_ms : GIVE_WAY_MS));
        return;
    }
    unsigned i = g.next % g.nitems;
    struct target t;
    if (target_nth(cfg, i / 2, &t)) {
        /* an answer younger than half the interval (a client's, or the last round's) is
         * fresh enough: skipping it saves the budget */
        if (volumes_refresh(cfg, &t, i % 2 == 1, g.interval_ms / 2))
            g.st.started++;
        else
            g.st.skipped++;
    }
    g.next = (i + 1) % g.nitems;
    arm(now + g.step_ms);
}

void refresh_configure(struct loop *l, struct server *s, const struct config *cfg)
{
    refresh_shutdown();
    g.loop = l;
    g.srv = s;
    g.interval_ms = (int64_t)cfg->refresh_interval_s * 1000;
    struct target t;
    struct target_cursor c = {0};
    unsigned ntargets = 0;
    while (target_next(cfg, &c, &t))
        ntargets++;
    g.nitems = ntargets * 2; /* each target's total and its unattached volumes */
    g.next = 0;
    if (g.interval_ms <= 0 || g.nitems == 0)
        return;
    g.step_ms = g.interval_ms / g.nitems;
    if (g.step_ms < 1)
        g.step_ms = 1;
    /* The first refresh comes one step after start, not at once: a client's first request
     * (which fills the gauges too) should not find its answer already being fetched, and a
     * restart loop must not become a burst of EC2 calls. */
    arm(clock_now_ms() + g.step_ms);
    log_info("refresh", "refreshing %u targets every %u s", ntargets,
             cfg->refresh_interval_s);
}

void refresh_shutdown(void)
{
    if (g.timer && g.loop)
        loop_timer_stop(g.loop, g.timer);
    g.timer = NULL;
}

/* The stale-data alert compares each target's data age with 3 of these. */
#define INTERVAL_METRIC "ebsd_refresh_interval_seconds"

ebsd_status refresh_render(struct buf *out)
{
    return buf_printf(out,
                      "# HELP ebsd_refresh_total Background refreshes of the storage answers, "
                      "by outcome.\n# TYPE ebsd_refresh_total counter\n"
                      "ebsd_refresh_total{outcome=\"started\"} %llu\n"
                      "ebsd_refresh_total{outcome=\"skipped\"} %llu\n"
                      "ebsd_refresh_total{outcome=\"deferred\"} %llu\n"
                      "# HELP %s refresh.interval_s: seconds between two fetches of one "
                      "target's answers (0: the refresher is off).\n# TYPE %s gauge\n%s %lld\n",
                      g.st.started, g.st.skipped, g.st.deferred, INTERVAL_METRIC,
                      INTERVAL_METRIC, INTERVAL_METRIC, (long long)(g.interval_ms / 1000));
}
