/* retry.c - SDK standard-mode retry decisions, retry quota, fork-aware jitter RNG, the
 * process's retry settings and the adaptive mode's CUBIC client rate limiter. */
#include "retry.h"

#include <math.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char *const throttling_codes[] = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
};

static const char *const transient_codes[] = {
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
};

static const char *const clock_skew_codes[] = {
    "RequestExpired",
    "RequestTimeTooSkewed",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
};

static bool in_list(const char *code, const char *const *list, size_t n)
{
    if (!code || !*code)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(code, list[i]) == 0)
            return true;
    return false;
}

bool retry_is_throttling_code(const char *code)
{
    return in_list(code, throttling_codes, sizeof throttling_codes / sizeof throttling_codes[0]);
}

bool retry_is_transient_code(const char *code)
{
    return in_list(code, transient_codes, sizeof transient_codes / sizeof transient_codes[0]);
}

bool retry_is_clock_skew_code(const char *code)
{
    return in_list(code, clock_skew_codes, sizeof clock_skew_codes / sizeof clock_skew_codes[0]);
}

enum retry_class retry_classify(ebsd_status transport, bool timed_out, long http_status,
                                const char *code)
{
    if (transport == EBSD_ENETWORK)
        return timed_out ? RETRY_TIMEOUT : RETRY_TRANSIENT;
    if (transport != EBSD_OK)
        return RETRY_NONE;
    if (http_status >= 200 && http_status < 300)
        return RETRY_NONE;
    /* 429 is not in botocore's standard lists, but it is HTTP's own "slow down" (and the
     * legacy mode retries it): treated as throttling. */
    if (retry_is_throttling_code(code) || http_status == 429)
        return RETRY_THROTTLE;
    if (retry_is_transient_code(code))
        return RETRY_TRANSIENT;
    if (http_status == 500 || http_status == 502 || http_status == 503 || http_status == 504)
        return RETRY_TRANSIENT;
    return RETRY_NONE;
}

void retry_quota_init(struct retry_quota *q)
{
    q->available = RETRY_QUOTA_INITIAL;
    q->last_acquired = 0;
}

bool retry_quota_acquire(struct retry_quota *q, enum retry_class cls)
{
    int cost = cls == RETRY_TIMEOUT ? RETRY_QUOTA_TIMEOUT_COST : RETRY_QUOTA_COST;
    if (cost > q->available)
        return false;
    q->available -= cost;
    q->last_acquired = cost;
    return true;
}

void retry_quota_success(struct retry_quota *q)
{
    int give = q->last_acquired ? q->last_acquired : RETRY_QUOTA_SUCCESS;
    q->available += give;
    if (q->available > RETRY_QUOTA_INITIAL)
        q->available = RETRY_QUOTA_INITIAL;
    q->last_acquired = 0;
}

void retry_quota_failure(struct retry_quota *q)
{
    q->last_acquired = 0;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void retry_rng_seed(struct retry_rng *r, uint64_t seed)
{
    r->state = seed;
    r->pid = getpid();
}

static void reseed(struct retry_rng *r)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ ((uint64_t)getpid() << 16);
    }
    retry_rng_seed(r, seed);
}

double retry_rng_uniform(struct retry_rng *r)
{
    if (r->pid != getpid())
        reseed(r);
    return (double)(splitmix64(&r->state) >> 11) * 0x1.0p-53;
}

int64_t retry_backoff_cap_ms(int attempt)
{
    if (attempt < 1)
        attempt = 1;
    if (attempt > 6) /* 2^5 = 32 > 20 already */
        return (int64_t)RETRY_MAX_BACKOFF_S * 1000;
    int64_t cap = (int64_t)1 << (attempt - 1);
    if (cap > RETRY_MAX_BACKOFF_S)
        cap = RETRY_MAX_BACKOFF_S;
    return cap * 1000;
}

int64_t retry_backoff_ms(int attempt, double u)
{
    if (u < 0)
        u = 0;
    if (u > 1)
        u = 1;
    return (int64_t)(u * (double)retry_backoff_cap_ms(attempt));
}

int64_t retry_delay_ms(enum retry_class cls, int attempt, double u)
{
    return cls == RETRY_CLOCK_SKEW ? 0 : retry_backoff_ms(attempt, u);
}

/* ---- settings --------------------------------------------------------------------------- */

static struct retry_settings settings = {RETRY_DEFAULT_MAX_ATTEMPTS, RETRY_MODE_STANDARD};

void retry_settings_set(const struct retry_settings *s)
{
    settings.max_attempts = s->max_attempts < 1 ? 1
                            : s->max_attempts > RETRY_MAX_ATTEMPTS_CAP ? RETRY_MAX_ATTEMPTS_CAP
                                                                       : s->max_attempts;
    settings.mode = s->mode == RETRY_MODE_ADAPTIVE ? RETRY_MODE_ADAPTIVE : RETRY_MODE_STANDARD;
}

const struct retry_settings *retry_settings_get(void)
{
    return &settings;
}

const char *retry_mode_name(enum retry_mode m)
{
    return m == RETRY_MODE_ADAPTIVE ? "adaptive" : "standard";
}

/* ---- adaptive mode ---------------------------------------------------------------------- */

/* bucket.py TokenBucket._refill */
static void bucket_refill(struct retry_adaptive *a, double now)
{
    if (!a->refilled_once) {
        a->refilled_once = true;
        a->last_refill = now;
        return;
    }
    double c = a->capacity + (now - a->last_refill) * a->fill_rate;
    a->capacity = c < a->max_capacity ? c : a->max_capacity;
    a->last_refill = now;
}

/* bucket.py TokenBucket.max_rate setter */
static void bucket_set_rate(struct retry_adaptive *a, double rate, double now)
{
    bucket_refill(a, now);
    a->fill_rate = rate > RETRY_ADAPTIVE_MIN_RATE ? rate : RETRY_ADAPTIVE_MIN_RATE;
    a->max_capacity = rate >= 1 ? rate : 1;
    if (a->capacity > a->max_capacity)
        a->capacity = a->max_capacity;
}

static double cubic_zero_point(double w_max)
{
    return pow(w_max * (1 - RETRY_ADAPTIVE_BETA) / RETRY_ADAPTIVE_SCALE, 1.0 / 3.0);
}

void retry_adaptive_init(struct retry_adaptive *a, double now_s)
{
    memset(a, 0, sizeof *a);
    a->w_max = 0;
    a->k = cubic_zero_point(0);
    a->last_fail = now_s;
    a->last_bucket = floor(now_s);
    /* TokenBucket(max_rate=1): capacity 0, no refill time yet */
    a->fill_rate = 1;
    a->max_capacity = 1;
    a->refilled_once = true; /* the constructor's max_rate setter refills once */
    a->last_refill = now_s;
}

double retry_adaptive_acquire(struct retry_adaptive *a, double now_s)
{
    if (!a->enabled)
        return 0;
    bucket_refill(a, now_s);
    /* The tolerance: a caller that slept exactly the wait given must get its token, not a
     * rounding error's worth of further waiting. */
    if (a->capacity >= 1 - 1e-9) {
        a->capacity = a->capacity > 1 ? a->capacity - 1 : 0;
        return 0;
    }
    return (1 - a->capacity) / a->fill_rate;
}

/* adaptive.py RateClocker.record: the smoothed send rate over half-second buckets. */
static double clocker_record(struct retry_adaptive *a, double now)
{
    double bucket = floor(now * 2) / 2;
    a->count += 1;
    if (bucket > a->last_bucket) {
        double rate = a->count / (bucket - a->last_bucket);
        a->measured_rate = rate * 0.8 + a->measured_rate * 0.2;
        a->count = 0;
        a->last_bucket = bucket;
    }
    return a->measured_rate;
}

void retry_adaptive_update(struct retry_adaptive *a, double now_s, bool throttled)
{
    double measured = clocker_record(a, now_s);
    double new_rate;
    if (!throttled) {
        double dt = now_s - a->last_fail - a->k;
        new_rate = RETRY_ADAPTIVE_SCALE * dt * dt * dt + a->w_max;
    } else {
        double use = !a->enabled ? measured
                     : measured < a->fill_rate ? measured : a->fill_rate;
        a->w_max = use;
        a->k = cubic_zero_point(use);
        a->last_fail = now_s;
        new_rate = use * RETRY_ADAPTIVE_BETA;
        a->enabled = true;
    }
    double cap = 2.0 * measured;
    bucket_set_rate(a, new_rate < cap ? new_rate : cap, now_s);
}

double retry_adaptive_rate(const struct retry_adaptive *a)
{
    return a->fill_rate;
}
