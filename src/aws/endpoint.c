/* endpoint.c - partition-aware default endpoints and the SDKs' environment overrides. */
#include "endpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mem.h"

struct partition {
    const char *prefix; /* region prefix, longest first where prefixes nest */
    const char *name;
    const char *suffix;
};

/* botocore's partitions.json, by regionRegex; "aws" is the fallback. us-isob-/us-isof- are
 * listed before us-iso- so the longer prefix wins. */
static const struct partition partitions[] = {
    {"cn-", "aws-cn", "amazonaws.com.cn"},
    {"us-gov-", "aws-us-gov", "amazonaws.com"},
    {"us-isob-", "aws-iso-b", "sc2s.sgov.gov"},
    {"us-isof-", "aws-iso-f", "csp.hci.ic.gov"},
    {"us-iso-", "aws-iso", "c2s.ic.gov"},
    {"eu-isoe-", "aws-iso-e", "cloud.adc-e.uk"},
};

static const struct partition *find(const char *region)
{
    if (region)
        for (size_t i = 0; i < sizeof partitions / sizeof partitions[0]; i++)
            if (strncmp(region, partitions[i].prefix, strlen(partitions[i].prefix)) == 0)
                return &partitions[i];
    return NULL;
}

const char *endpoint_partition(const char *region)
{
    const struct partition *p = find(region);
    return p ? p->name : "aws";
}

const char *endpoint_dns_suffix(const char *region)
{
    const struct partition *p = find(region);
    return p ? p->suffix : "amazonaws.com";
}

void endpoint_default(const char *service, const char *region, char *out, size_t outlen)
{
    if (!region || !*region)
        region = "us-east-1";
    snprintf(out, outlen, "https://%s.%s.%s", service, region, endpoint_dns_suffix(region));
}

bool endpoint_ignore_configured(void)
{
    const char *v = getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    return v && strcasecmp(v, "true") == 0;
}

const char *endpoint_configured(const char *env_id, const char **var)
{
    if (endpoint_ignore_configured())
        return NULL;
    char name[64];
    snprintf(name, sizeof name, "AWS_ENDPOINT_URL_%s", env_id);
    /* The static copy lets *var point at the name after this call returns. */
    static char last_name[64];
    const char *v = getenv(name);
    if (v && *v) {
        snprintf(last_name, sizeof last_name, "%s", name);
        if (var)
            *var = last_name;
        return v;
    }
    v = getenv("AWS_ENDPOINT_URL");
    if (v && *v) {
        if (var)
            *var = "AWS_ENDPOINT_URL";
        return v;
    }
    return NULL;
}

char *endpoint_resolve(const char *service, const char *env_id, const char *region)
{
    const char *c = endpoint_configured(env_id, NULL);
    if (c)
        return xstrdup(c);
    char out[256];
    endpoint_default(service, region, out, sizeof out);
    return xstrdup(out);
}
