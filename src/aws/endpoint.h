/* endpoint.h - where an AWS service is reached: the partition-aware default endpoint of a
 * service in a region, and the SDKs' endpoint overrides from the environment
 * (AWS_ENDPOINT_URL_<SERVICE>, then AWS_ENDPOINT_URL, both off when
 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true). One resolver for EC2 and STS. Pure but for
 * getenv; no I/O. */
#ifndef EBSD_ENDPOINT_H
#define EBSD_ENDPOINT_H
#include <stdbool.h>
#include <stddef.h>

/* The partition of a region, by its prefix as in botocore's partitions.json:
 * "aws-cn" (cn-*), "aws-us-gov" (us-gov-*), "aws-iso" (us-iso-*), "aws-iso-b" (us-isob-*),
 * "aws-iso-e" (eu-isoe-*), "aws-iso-f" (us-isof-*), else "aws". Static string. */
const char *endpoint_partition(const char *region);

/* The DNS suffix of the region's partition: "amazonaws.com", "amazonaws.com.cn",
 * "c2s.ic.gov", "sc2s.sgov.gov", "cloud.adc-e.uk", "csp.hci.ic.gov". Static string. */
const char *endpoint_dns_suffix(const char *region);

/* The regional endpoint "https://SERVICE.REGION.SUFFIX" into out (truncated to outlen).
 * region NULL or "" means us-east-1. */
void endpoint_default(const char *service, const char *region, char *out, size_t outlen);

/* True when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is "true" (any case), as botocore reads it. */
bool endpoint_ignore_configured(void);

/* The endpoint URL the environment configures for a service: AWS_ENDPOINT_URL_<env_id>
 * (env_id as the SDKs spell it: "EC2", "STS"), else AWS_ENDPOINT_URL; NULL when neither is
 * set (empty counts as unset) or endpoint_ignore_configured(). *var, when var is not NULL,
 * names the variable the value came from (for messages). The string is the environment's:
 * valid until the variable changes. The caller validates it. */
const char *endpoint_configured(const char *env_id, const char **var);

/* endpoint_configured(env_id) when set, else endpoint_default(service, region). Caller
 * frees. */
char *endpoint_resolve(const char *service, const char *env_id, const char *region);

#endif
