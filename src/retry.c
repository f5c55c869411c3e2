/* retry.c - SDK standard-mode retry decisions, retry quota and fork-aware jitter RNG. */
#include "retry.h"

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
