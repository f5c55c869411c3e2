/* limiter.c - EC2 budgets keyed by target and action class: GCRA buckets in memory shared
 * with every worker process (see limiter.h). */
#include "limiter.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"


enum { SLOT_FREE, SLOT_CLAIMED, SLOT_READY };

struct slot {
    _Atomic int state;
    struct target t;            /* written once, before state becomes SLOT_READY */
    enum limiter_class c;
    _Atomic int64_t tat_us;     /* GCRA theoretical arrival time (monotonic us) */
    _Atomic int64_t vnow_us;    /* refilled mode: the bucket's own clock, moved by refills */
    _Atomic uint64_t waits, refusals;
};

struct shared {
    _Atomic int64_t interval_us; /* 1e6 / rate; 0: no limit */
    _Atomic int64_t burst;       /* tokens */
    _Atomic int refilled;        /* 1: buckets fill by limiter_refill only, not by time */
    _Atomic int64_t share;       /* refilled mode: replicas the budget is split among (>= 1) */
    struct slot slot[LIMITER_MAX];
};

static struct {
    struct shared *sh;
    double rate, burst;
    struct shared local; /* when the mapping cannot be made: this process only */
} g;

const char *limiter_class_name(enum limiter_class c)
{
    (void)c;
    return "Describe";
}

static struct shared *sh(void)
{
    return g.sh ? g.sh : &g.local;
}

static void clear_slots(struct shared *s)
{
    for (unsigned i = 0; i < LIMITER_MAX; i++) {
        atomic_store(&s->slot[i].state, SLOT_FREE);
        atomic_store(&s->slot[i].tat_us, 0);
        atomic_store(&s->slot[i].vnow_us, 0);
        atomic_store(&s->slot[i].waits, 0);
        atomic_store(&s->slot[i].refusals, 0);
    }
}

void limiter_configure(double rate, double burst, int64_t now_us)
{
    (void)now_us; /* a tat of 0 is a full bucket */
    if (!g.sh) {
        void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            log_warn("budget", "cannot map the shared EC2 budget: each process keeps its own");
        else
            g.sh = p; /* zero-filled: every slot free */
    } else if (g.rate == rate && g.burst == burst) {
        return;
    }
    g.rate = rate;
    g.burst = burst;
    struct shared *s = sh();
    atomic_store(&s->interval_us, rate > 0 ? (int64_t)(1e6 / rate) : 0);
    if (rate > 0 && atomic_load(&s->interval_us) < 1)
        atomic_store(&s->interval_us, 1);
    atomic_store(&s->burst, burst >= 1 ? (int64_t)burst : 1);
    if (atomic_load(&s->share) < 1)
        atomic_store(&s->share, 1);
    for (unsigned i = 0; i < LIMITER_MAX; i++)
        atomic_store(&s->slot[i].tat_us, 0); /* at or before any clock: full */
}

void limiter_set_refilled(bool on, int64_t now_us)
{
    struct shared *s = sh();
    if ((atomic_load(&s->refilled) != 0) == on)
        return;
    /* each bucket keeps its tokens across the switch: its clock becomes the other one */
    for (unsigned i = 0; i < LIMITER_MAX; i++) {
        struct slot *x = &s->slot[i];
        int64_t tat = atomic_load(&x->tat_us), vnow = atomic_load(&x->vnow_us);
        if (on) {
            atomic_store(&x->vnow_us, now_us);
        } else {
            int64_t owed = tat - vnow;
            atomic_store(&x->tat_us, owed > 0 ? now_us + owed : 0);
        }
    }
    atomic_store(&s->refilled, on ? 1 : 0);
}

void limiter_set_share(unsigned replicas)
{
    atomic_store(&sh()->share, replicas >= 1 ? (int64_t)replicas : 1);
}

/* The burst one bucket may hold here: all of it, or this replica's share when refilled. */
static int64_t local_burst(struct shared *s)
{
    int64_t burst = atomic_load(&s->burst);
    if (!atomic_load(&s->refilled))
        return burst;
    int64_t n = atomic_load(&s->share);
    int64_t b = n > 1 ? (burst + n - 1) / n : burst;
    return b < 1 ? 1 : b;
}

double limiter_local_burst(void)
{
    return (double)local_burst(sh());
}

/* The slot's clock: the monotonic clock, or in refilled mode its own, which only refills
 * move. Waits on it are turned into real time by pace(): at the replica's share of the
 * rate, a refilled bucket's clock runs 1 / share as fast as the real one. */
static int64_t slot_now(struct shared *s, struct slot *x, int64_t now_us)
{
    return atomic_load(&s->refilled) ? atomic_load(&x->vnow_us) : now_us;
}

static int64_t pace(struct shared *s, int64_t wait)
{
    if (!atomic_load(&s->refilled) || wait <= 0)
        return wait;
    return wait * atomic_load(&s->share);
}

bool limiter_enabled(void)
{
    return atomic_load(&sh()->interval_us) > 0;
}

/* The slot of (t, c), claimed when there is none yet. */
static struct slot *find(const struct target *t, enum limiter_class c, bool create)
{
    struct shared *s = sh();
    for (unsigned i = 0; i < LIMITER_MAX; i++) {
        struct slot *x = &s->slot[i];
        int st = atomic_load(&x->state);
        if (st == SLOT_FREE) {
            if (!create)
                return NULL;
            int expect = SLOT_FREE;
            if (atomic_compare_exchange_strong(&x->state, &expect, SLOT_CLAIMED)) {
                x->t = *t;
                x->c = c;
                atomic_store(&x->state, SLOT_READY);
                return x;
            }
            st = atomic_load(&x->state);
        }
        while (st == SLOT_CLAIMED) /* another process is writing the key: a few stores */
            st = atomic_load(&x->state);
        if (x->c == c && target_equal(&x->t, t))
            return x;
    }
    return create ? &s->slot[LIMITER_MAX - 1] : NULL;
}

/* The earliest time the next call may go: tat - tolerance, the tolerance being the burst
 * (less the reserve for background work). */
static int64_t allowed_at(int64_t tat, int64_t interval, int64_t burst, bool background)
{
    int64_t room = background ? burst - burst / 2 : burst;
    if (room < 1)
        room = 1;
    return tat + interval - room * interval;
}

int64_t limiter_take(const struct target *t, enum limiter_class c, int64_t now_us,
                     int64_t max_wait_us, bool background)
{
    struct shared *s = sh();
    int64_t interval = atomic_load(&s->interval_us);
    if (interval <= 0)
        return 0;
    int64_t burst = local_burst(s);
    struct slot *x = find(t, c, true);
    int64_t tat = atomic_load(&x->tat_us);
    int64_t vnow = slot_now(s, x, now_us);
    for (;;) {
        int64_t base = tat > vnow ? tat : vnow;
        int64_t wait = pace(s, allowed_at(base, interval, burst, background) - vnow);
        if (wait < 0)
            wait = 0;
        if (wait > max_wait_us) {
            atomic_fetch_add(&x->refusals, 1);
            return -wait;
        }
        if (atomic_compare_exchange_weak(&x->tat_us, &tat, base + interval)) {
            if (wait > 0)
                atomic_fetch_add(&x->waits, 1);
            return wait;
        }
    }
}

int64_t limiter_wait_us(const struct target *t, enum limiter_class c, int64_t now_us,
                        bool background, unsigned ahead)
{
    struct shared *s = sh();
    int64_t interval = atomic_load(&s->interval_us);
    if (interval <= 0)
        return 0;
    struct slot *x = find(t, c, true);
    int64_t tat = atomic_load(&x->tat_us);
    int64_t vnow = slot_now(s, x, now_us);
    int64_t base = (tat > vnow ? tat : vnow) + (int64_t)ahead * interval;
    int64_t wait = pace(s, allowed_at(base, interval, local_burst(s), background) - vnow);
    return wait > 0 ? wait : 0;
}

void limiter_count_refusal(const struct target *t, enum limiter_class c)
{
    atomic_fetch_add(&find(t, c, true)->refusals, 1);
}

void limiter_foreach(int64_t now_us, limiter_visit_fn fn, void *arg)
{
    struct shared *s = sh();
    int64_t interval = atomic_load(&s->interval_us);
    int64_t burst = local_burst(s);
    for (unsigned i = 0; i < LIMITER_MAX; i++) {
        struct slot *x = &s->slot[i];
        if (atomic_load(&x->state) != SLOT_READY)
            continue;
        double tokens = 0;
        if (interval > 0) {
            int64_t tat = atomic_load(&x->tat_us), vnow = slot_now(s, x, now_us);
            tokens = (double)burst;
            if (tat > vnow)
                tokens -= (double)(tat - vnow) / (double)interval;
        }
        fn(arg, &x->t, x->c, tokens, atomic_load(&x->waits), atomic_load(&x->refusals));
    }
}

void limiter_refill(const struct target *t, enum limiter_class c, double tokens)
{
    struct shared *s = sh();
    int64_t interval = atomic_load(&s->interval_us);
    if (interval <= 0 || !(tokens > 0))
        return;
    struct slot *x = find(t, c, true);
    /* the clock moves on by the tokens' emission intervals; a bucket still holds at most
     * its burst (a take starts from max(tat, clock)), so tokens past it are lost, as
     * time's are */
    atomic_fetch_add(&x->vnow_us, (int64_t)(tokens * (double)interval));
}

void limiter_reset(void)
{
    clear_slots(sh());
    atomic_store(&sh()->refilled, 0);
    atomic_store(&sh()->share, 1);
    g.rate = g.burst = -1;
}
