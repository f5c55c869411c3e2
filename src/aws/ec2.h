/* ec2.h - a client for the two EC2 Query API calls ebsd needs, DescribeInstances and
 * DescribeVolumes: SigV4-signed POST form bodies, XML parsed by a real parser, pagination,
 * the SDKs' standard retry mode with a retry quota, a client-side token bucket, and a
 * deadline on every call. One client per process: a forked child builds its own. */
#ifndef EBSD_EC2_H
#define EBSD_EC2_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "creds.h"
#include "status.h"

struct ec2_client; /* opaque */

struct ec2_options {
    const char *region;            /* required */
    const char *endpoint;          /* NULL: https://ec2.REGION.amazonaws.com(.cn) */
    const char *ca_bundle;         /* NULL: system trust store */
    const struct creds *creds;     /* borrowed; must outlive the client */
    int max_attempts;              /* 0: retry_settings_get()->max_attempts (3 unless
                                    * AWS_MAX_ATTEMPTS / the profile say otherwise) */
    int instance_page_size;        /* MaxResults for DescribeInstances; 0: 1000 */
    int volume_page_size;          /* MaxResults for DescribeVolumes; 0: 500 */
    double rate_per_s;             /* client token bucket refill; 0: off */
    double rate_burst;             /* bucket size */
    size_t max_response_bytes;     /* 0: 16 MiB */
    bool tags;                     /* parse the tag sets of instances and volumes (breakdowns
                                    * by tag, unattached volumes); false: skipped unread */
    bool deterministic_backoff;    /* tests only: no jitter (sleep the cap) */
    int connect_timeout_ms;        /* per attempt: TCP and TLS set-up; 0: 2000 */
    int read_timeout_ms;           /* per attempt: wait for the first byte of the answer,
                                    * then for each next byte; 0: 2500 */
    /* The EC2 call budget (limiter.h), asked right before every HTTP attempt (retries
     * included): EBSD_OK to send (it may have slept for its token), EBSD_ETHROTTLED to send
     * nothing (no token within the wait allowed). NULL: no budget. */
    ebsd_status (*budget)(void *arg, int volumes, int64_t deadline_ms);
    void *budget_arg;              /* volumes: 1 for DescribeVolumes, 0 DescribeInstances */
};

/* The per-attempt defaults: room for the standard mode's 3 attempts and their backoff
 * inside the default 10 s request deadline (config/ebsd.yaml has the arithmetic). */
#define EC2_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define EC2_DEFAULT_READ_TIMEOUT_MS 2500

/* An error answered by EC2 (or the reason there was no answer). */
struct ec2_error {
    long http_status;              /* 0 when no HTTP response */
    char code[64];                 /* EC2's code ("RequestLimitExceeded") or "" */
    char message[256];
    char request_id[64];
};

struct ec2_stats {
    unsigned calls;                /* HTTP requests sent (attempts) */
    unsigned describe_instances;   /* of which DescribeInstances */
    unsigned describe_volumes;     /* of which DescribeVolumes */
    unsigned retries;
    unsigned throttled;            /* throttling answers seen */
    unsigned errors;               /* calls that failed after retries */
    int retry_quota;               /* tokens left in the retry quota */
    unsigned timeouts;             /* attempts abandoned at a connect or read timeout */
    unsigned skew_retries;         /* of the retries, those re-signed after a clock-skew
                                    * correction */
    bool clock_offset_set;         /* this client learned a clock offset (skew.h) ... */
    int64_t clock_offset_ms;       /* ... this one (AWS's clock minus ours): the worker
                                    * reports it so the parent adopts it (skew_adopt) */
};

/* A resource tag as EC2 lists it. Tags are untrusted input: a key is cut at 128 bytes and a
 * value at 256 (EC2's own limits, in characters), on a UTF-8 boundary, and an item keeps at
 * most EC2_MAX_TAGS of them (EC2's limit; more are ignored). */
#define EC2_MAX_TAGS 50
struct ec2_tag {
    char key[129];
    char value[257];
};

struct ec2_instance {
    char id[24];                   /* "i-0123456789abcdef0" */
    char state[16];                /* pending|running|shutting-down|terminated|stopping|stopped */
    char type[32];
    char az[32];
    size_t ntags;
    struct ec2_tag *tags;          /* owned by the page */
};

struct ec2_attachment {
    char instance_id[24];
    char device[32];
    char state[16];                /* attaching|attached|detaching|detached */
    bool delete_on_termination;
};

struct ec2_volume {
    char id[32];
    int64_t size_gib;
    char type[16];
    int iops;                      /* 0 when absent */
    int throughput;                /* 0 when absent */
    char state[16];                /* creating|available|in-use|deleting|deleted|error */
    bool encrypted;
    bool multi_attach;
    size_t nattach;
    struct ec2_attachment *attach; /* owned by the page */
    char az[32];                   /* availabilityZone */
    char create_time[32];          /* createTime as EC2 wrote it (ISO 8601, UTC) */
    size_t ntags;
    struct ec2_tag *tags;          /* owned by the page */
};

struct ec2_instance_page {
    struct ec2_instance *items;
    size_t n;
    char *next_token;              /* NULL when this was the last page */
};

struct ec2_volume_page {
    struct ec2_volume *items;
    size_t n;
    char *next_token;
};

/* Creates a client. Caller frees with ec2_client_free. EBSD_EINVAL for a missing or
 * malformed region, missing creds, or an endpoint that is not http(s)://host[:port][/path]
 * (plain http only ever comes from an explicit endpoint).
 * Every call below: deadline 0 means 30 s from the call. The client's token bucket
 * (rate_per_s) limits this process only: see ratelimit.h. */
EBSD_MUST_CHECK ebsd_status ec2_client_new(const struct ec2_options *opt,
                                           struct ec2_client **out);
void ec2_client_free(struct ec2_client *c);
const struct ec2_stats *ec2_client_stats(const struct ec2_client *c);
/* The endpoint URL in use (valid while the client lives). */
const char *ec2_client_endpoint(const struct ec2_client *c);

/* One page of DescribeInstances. With ids (nids > 0) no MaxResults is sent, as EC2
 * forbids the combination. next_token NULL for the first page. On EBSD_EUPSTREAM,
 * EBSD_ETHROTTLED, EBSD_ETIMEDOUT or EBSD_ENETWORK, *err says what EC2 (or the network)
 * said. Caller frees *out with ec2_instance_page_free. */
EBSD_MUST_CHECK ebsd_status ec2_describe_instances(struct ec2_client *c, const char *const *ids,
                                                   size_t nids, const char *next_token,
                                                   int64_t deadline,
                                                   struct ec2_instance_page *out,
                                                   struct ec2_error *err);

/* One page of one partition of the whole listing: the instances whose id ends in a hex
 * digit d with d % nparts == part (an instance-id filter of "*d" values; EC2 filters take
 * '*' wildcards). nparts is 1, 2, 4, 8 or 16 and the partitions are disjoint and cover every
 * instance, so nparts listers can page through a large fleet side by side. nparts 1 is the
 * plain unfiltered listing. */
EBSD_MUST_CHECK ebsd_status ec2_describe_instances_part(struct ec2_client *c, unsigned part,
                                                        unsigned nparts, const char *next_token,
                                                        int64_t deadline,
                                                        struct ec2_instance_page *out,
                                                        struct ec2_error *err);

/* One page of DescribeVolumes, filtered by attachment.instance-id when nids > 0. */
EBSD_MUST_CHECK ebsd_status ec2_describe_volumes(struct ec2_client *c,
                                                 const char *const *instance_ids, size_t nids,
                                                 const char *next_token, int64_t deadline,
                                                 struct ec2_volume_page *out,
                                                 struct ec2_error *err);

/* One page of one share of the attached volumes: DescribeVolumes with Filter.1.Name=
 * attachment.status (attaching, attached, detaching) and, split, Filter.2.Name=volume-id with
 * "*d" values, the volume ids whose last hex digit d has d % nparts == part (when nparts
 * divides 16), or else "*xy" values, the last two digits as a number x (x % nparts == part).
 * nparts is 1 to 256; the shares are disjoint and cover every attached volume, so they can be
 * listed side by side with the instances: each volume names its instances in its
 * attachments. */
EBSD_MUST_CHECK ebsd_status ec2_describe_attached_part(struct ec2_client *c, unsigned part,
                                                       unsigned nparts, const char *next_token,
                                                       int64_t deadline,
                                                       struct ec2_volume_page *out,
                                                       struct ec2_error *err);
/* Its request body (exposed for tests): EBSD_EINVAL unless nparts is 1 to 256 and part <
 * nparts. Caller frees *out. */
EBSD_MUST_CHECK ebsd_status ec2_attached_part_body(unsigned part, unsigned nparts,
                                                   const char *next_token, int max_results,
                                                   char **out);

/* One page of the volumes attached to nothing: DescribeVolumes with Filter.1.Name=status,
 * values available and creating (a volume in either state has no attachment). */
EBSD_MUST_CHECK ebsd_status ec2_describe_unattached_volumes(struct ec2_client *c,
                                                            const char *next_token,
                                                            int64_t deadline,
                                                            struct ec2_volume_page *out,
                                                            struct ec2_error *err);
/* Its request body (exposed for tests). Caller frees *out. */
EBSD_MUST_CHECK ebsd_status ec2_unattached_body(const char *next_token, int max_results,
                                                char **out);

void ec2_instance_page_free(struct ec2_instance_page *p);
void ec2_volume_page_free(struct ec2_volume_page *p);

/* The one pagination loop's state, used by the workers and by ec2_list_*_all: the token to
 * send next (NULL for the first page) and the one sent before it. */
struct ec2_pager {
    char *token;
    char *prev;
    size_t pages;
};
void ec2_pager_init(struct ec2_pager *pg);
/* Moves past a page that returned *next (taken over; *next becomes NULL). Returns true when
 * there is another page to fetch (with pg->token); false at the end, or with *st set when
 * the service repeats the token it was just sent (EBSD_EUPSTREAM) or after 100,000 pages
 * (EBSD_ETOOBIG), *err's message saying which. */
bool ec2_pager_next(struct ec2_pager *pg, char **next, struct ec2_error *err, ebsd_status *st);
void ec2_pager_free(struct ec2_pager *pg);

/* Follows nextToken to the end: every instance (or every volume, filtered by
 * attachment.instance-id when nids > 0) into one page (next_token NULL), within deadline.
 * Guards: a token repeated by the service is EBSD_EUPSTREAM (message says so), more than
 * max_items items (0: 1,000,000) is EBSD_ETOOBIG. Caller frees *out with the page free. */
EBSD_MUST_CHECK ebsd_status ec2_list_instances_all(struct ec2_client *c, const char *const *ids,
                                                   size_t nids, int64_t deadline,
                                                   size_t max_items,
                                                   struct ec2_instance_page *out,
                                                   struct ec2_error *err);
EBSD_MUST_CHECK ebsd_status ec2_list_volumes_all(struct ec2_client *c,
                                                 const char *const *instance_ids, size_t nids,
                                                 int64_t deadline, size_t max_items,
                                                 struct ec2_volume_page *out,
                                                 struct ec2_error *err);

/* Request bodies as sent (exposed for tests): Action, Version=2016-11-15, then
 * InstanceId.N (and no MaxResults) or MaxResults, or for volumes Filter.1.Name=
 * attachment.instance-id with Filter.1.Value.N, MaxResults; NextToken when given; values
 * percent-encoded (RFC 3986 unreserved kept). EBSD_EINVAL for more than EC2_MAX_IDS ids or
 * an id that is not ec2_instance_id_valid. Caller frees *out. */
#define EC2_API_VERSION "2016-11-15"
#define EC2_MAX_IDS 1000
EBSD_MUST_CHECK ebsd_status ec2_instances_body(const char *const *ids, size_t nids,
                                               const char *next_token, int max_results,
                                               char **out);
EBSD_MUST_CHECK ebsd_status ec2_volumes_body(const char *const *instance_ids, size_t nids,
                                             const char *next_token, int max_results,
                                             char **out);
/* The body of a partition's page (see ec2_describe_instances_part): Filter.1.Name=
 * instance-id with one "*d" value per hex digit of the partition; EBSD_EINVAL unless nparts
 * is a power of two from 1 to 16 and part < nparts. */
EBSD_MUST_CHECK ebsd_status ec2_instances_part_body(unsigned part, unsigned nparts,
                                                    const char *next_token, int max_results,
                                                    char **out);
/* Percent-encodes s for a form value. Caller frees. */
char *ec2_form_encode(const char *s);

/* True for instance ids EC2 would accept: "i-" then 8 or 17 lowercase hex digits. */
bool ec2_instance_id_valid(const char *id);

/* The default endpoint for a region, into out. */
void ec2_default_endpoint(const char *region, char *out, size_t outlen);

#endif
