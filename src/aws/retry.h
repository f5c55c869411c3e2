/* retry.h - the AWS SDKs' "standard" retry mode, as botocore implements it
 * (botocore/retries/standard.py and quota.py): which answers are retried, the full-jitter
 * exponential backoff rand(0,1) * min(2^(attempt-1), 20) s, and the retry quota (a token
 * bucket of 500 that retries spend and successes refill). Plus a small per-process RNG that
 * reseeds itself after fork, so sibling children never draw the same jitter.
 * No I/O and no sleeping here: the EC2 client owns the loop. */
#ifndef EBSD_RETRY_H
#define EBSD_RETRY_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "status.h"

#define RETRY_DEFAULT_MAX_ATTEMPTS 3
#define RETRY_MAX_BACKOFF_S 20
#define RETRY_QUOTA_INITIAL 500
#define RETRY_QUOTA_COST 5          /* per retry */
#define RETRY_QUOTA_TIMEOUT_COST 10 /* per retry after a connect/read timeout */
#define RETRY_QUOTA_SUCCESS 1       /* given back by a first-try success */

/* Why an attempt failed, as far as retrying is concerned. */
enum retry_class {
    RETRY_NONE = 0,   /* success, or an error not worth retrying (AuthFailure, 400s, ...) */
    RETRY_TRANSIENT,  /* 500/502/503/504, RequestTimeout..., connection errors */
    RETRY_THROTTLE,   /* a throttling code (RequestLimitExceeded, Throttling, ...) or 429 */
    RETRY_TIMEOUT,    /* a connect or read timeout before the caller's deadline */
    RETRY_CLOCK_SKEW, /* a clock-skew error after the clock offset was corrected (skew.h):
                       * re-signed and retried at once, costing what a transient retry
                       * costs; set by the client, never by retry_classify (it needs the
                       * answer's Date header) */
};

/* True for the standard mode's throttling codes (EC2's RequestLimitExceeded included). */
bool retry_is_throttling_code(const char *code);
/* True for RequestTimeout, RequestTimeoutException, PriorRequestNotComplete. */
bool retry_is_transient_code(const char *code);

/* True for the codes AWS answers a request signed at the wrong time with:
 * RequestExpired, RequestTimeTooSkewed, InvalidSignatureException, SignatureDoesNotMatch
 * (the last two also mean a wrong secret: the answer's Date tells the two apart). */
bool retry_is_clock_skew_code(const char *code);

/* Classifies one attempt. transport is what the HTTP layer returned: EBSD_OK when an answer
 * arrived (then http_status and the EC2 error code, "" if none, decide); EBSD_ENETWORK is
 * RETRY_TRANSIENT, or RETRY_TIMEOUT when timed_out; anything else (EBSD_ETIMEDOUT: the
 * caller's deadline passed; EBSD_ETOOBIG) is RETRY_NONE. Throttling wins over transient
 * (a 503 RequestLimitExceeded is a throttle). */
enum retry_class retry_classify(ebsd_status transport, bool timed_out, long http_status,
                                const char *code);

/* The retry quota of one client. Plain data: embed it. */
struct retry_quota {
    int available;      /* tokens left, 0..RETRY_QUOTA_INITIAL */
    int last_acquired;  /* cost of the last retry of the current operation, 0 if none */
};

void retry_quota_init(struct retry_quota *q);
/* Takes the cost of one retry of class cls (10 for RETRY_TIMEOUT, else 5). False, quota
 * unchanged, when not enough is left: then the caller must not retry. */
bool retry_quota_acquire(struct retry_quota *q, enum retry_class cls);
/* Call when an operation succeeds: gives back 1 on a first-try success, else the amount the
 * last retry acquired; never above the initial capacity. Resets last_acquired. */
void retry_quota_success(struct retry_quota *q);
/* Call when an operation ends in failure: forgets last_acquired (nothing given back). */
void retry_quota_failure(struct retry_quota *q);

/* A small RNG (splitmix64) that notices fork: the first draw in a new process reseeds from
 * getrandom() (falling back to time and pid). Plain data: embed it. */
struct retry_rng {
    uint64_t state;
    pid_t pid;          /* process the state was seeded in; 0 = never seeded */
};

/* Uniform double in [0, 1). */
double retry_rng_uniform(struct retry_rng *r);
/* Seeds explicitly (tests); the state is then kept until the process changes. */
void retry_rng_seed(struct retry_rng *r, uint64_t seed);

/* The backoff cap before retry number `attempt` (1 after the first failed attempt):
 * min(2^(attempt-1), 20) seconds, in milliseconds. */
int64_t retry_backoff_cap_ms(int attempt);
/* The full-jitter delay: u * cap, with u in [0, 1) (u = 1 gives the cap: deterministic). */
int64_t retry_backoff_ms(int attempt, double u);
/* The delay before retrying an attempt of class cls: 0 for RETRY_CLOCK_SKEW (the answer
 * said what was wrong and the offset fixes it; waiting would only spend the deadline),
 * else retry_backoff_ms(attempt, u). */
int64_t retry_delay_ms(enum retry_class cls, int attempt, double u);

/* ---- retry mode and the adaptive mode's client-side rate limiter ------------------------ */

/* The SDKs' retry modes. "legacy" is read as standard (ebsd has no legacy mode). */
enum retry_mode {
    RETRY_MODE_DEFAULT = 0, /* unset: retry_settings_set reads it as standard */
    RETRY_MODE_STANDARD,
    RETRY_MODE_ADAPTIVE,
};

/* The settings in force in this process: set once in the parent (retrycfg.h resolves them
 * from AWS_MAX_ATTEMPTS / AWS_RETRY_MODE, the profile and ebsd's config) and inherited by
 * forked workers. An EC2 client takes max_attempts from here when its options leave it at 0,
 * and the mode always. */
struct retry_settings {
    int max_attempts;     /* 1..RETRY_MAX_ATTEMPTS_CAP; default 3 */
    enum retry_mode mode; /* default RETRY_MODE_STANDARD */
};
#define RETRY_MAX_ATTEMPTS_CAP 10

/* Sets this process's settings (values out of range are clamped; mode DEFAULT is standard). */
void retry_settings_set(const struct retry_settings *s);
/* This process's settings; {3, standard} until set. Never NULL. */
const struct retry_settings *retry_settings_get(void);
/* "standard" or "adaptive". */
const char *retry_mode_name(enum retry_mode m);

/* botocore's adaptive mode (botocore/retries/adaptive.py, bucket.py, throttling.py): a token
 * bucket in front of every attempt, off until the first throttling answer; its rate follows
 * CUBIC: on throttling the rate drops to beta (0.7) times the rate measured at the time and
 * that rate becomes w_max; on every other answer it grows as
 * 0.4 * (t - last_fail - K)^3 + w_max, K = cbrt(w_max * (1 - beta) / 0.4), and never above
 * twice the measured send rate. The measured rate is smoothed (0.8) over half-second
 * buckets. Rates are in requests per second, times in seconds (any monotonic origin).
 * Plain data; one per client, as botocore has one per client. Not thread-safe. */
struct retry_adaptive {
    /* token bucket (bucket.py) */
    double fill_rate, max_capacity, capacity, last_refill;
    bool refilled_once;
    /* CUBIC (throttling.py) */
    double w_max, k, last_fail;
    /* measured send rate (adaptive.py RateClocker) */
    double measured_rate, last_bucket, count;
    bool enabled; /* the bucket is consulted only after the first throttle */
};

#define RETRY_ADAPTIVE_MIN_RATE 0.5 /* bucket.py _MIN_RATE */
#define RETRY_ADAPTIVE_BETA 0.7
#define RETRY_ADAPTIVE_SCALE 0.4

/* botocore's register_retry_handler: CUBIC from w_max 0 at now_s, a bucket of rate 1. */
void retry_adaptive_init(struct retry_adaptive *a, double now_s);
/* Before sending an attempt: 0 when it may go (a token was taken, or the limiter is not
 * enabled yet), else the seconds to wait before asking again (nothing taken). */
double retry_adaptive_acquire(struct retry_adaptive *a, double now_s);
/* After every attempt (answers and transport errors alike): throttled is true for a
 * throttling answer (RETRY_THROTTLE). Updates the measured rate and the bucket's rate. */
void retry_adaptive_update(struct retry_adaptive *a, double now_s, bool throttled);
/* The bucket's current rate (its max_rate in botocore). */
double retry_adaptive_rate(const struct retry_adaptive *a);

#endif
