/* registry.c - fleets per (account, region), generated lazily and kept. */
#include "registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fleet_params params;
static struct fleet *file_fleet;
static char home_account[16], home_region[24];
static struct registry_entry *entries[REGISTRY_MAX];
static size_t nentries;

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void registry_init(const struct fleet_params *base, struct fleet *file, const char *account)
{
    params = *base;
    file_fleet = file;
    snprintf(home_account, sizeof home_account, "%s", account);
    snprintf(home_region, sizeof home_region, "%s", file ? file->region : base->region);
}

const char *registry_home_account(void) { return home_account; }
const char *registry_home_region(void) { return home_region; }

static void token_key(uint64_t seed, unsigned char key[32])
{
    for (size_t i = 0; i < 32; i++)
        key[i] = (unsigned char)((seed * 0x9e3779b97f4a7c15ULL) >> (i % 8 * 8)) ^
                 (unsigned char)(i * 37 + 11);
}

/* Builds the entry; NULL if the generator refuses the pair. Reads only what registry_init
 * set, but for the home pair (which takes file_fleet: called with the lock held). */
static struct registry_entry *build(const char *account, const char *region)
{
    bool home = strcmp(account, home_account) == 0 && strcmp(region, home_region) == 0;
    struct fleet *f = NULL;
    uint64_t seed = params.seed;
    if (home && file_fleet) {
        f = file_fleet;
        file_fleet = NULL;
    } else {
        struct fleet_params p = params;
        if (!home)
            seed = mix(params.seed ^ mix(fnv(fnv(1469598103934665603ULL, account), region)));
        p.seed = seed;
        snprintf(p.region, sizeof p.region, "%s", region);
        snprintf(p.account, sizeof p.account, "%s", account);
        if (strlen(region) >= sizeof p.region || fleet_generate_with(&p, &f) != EBSD_OK)
            return NULL;
    }
    struct registry_entry *e = xcalloc(1, sizeof *e);
    snprintf(e->account, sizeof e->account, "%s", account);
    snprintf(e->region, sizeof e->region, "%s", region);
    e->fleet = f;
    cJSON *t = fleet_truth(f);
    cJSON_AddStringToObject(t, "account_id", account);
    e->truth = cJSON_PrintUnformatted(t);
    cJSON_Delete(t);
    if (!e->truth)
        abort(); /* cJSON's allocation failed: same policy as xmalloc */
    e->truth_len = strlen(e->truth);
    token_key(seed, e->token_key);
    return e;
}

/* The entry of the pair, or NULL. Called with the lock held. */
static struct registry_entry *find(const char *account, const char *region)
{
    for (size_t i = 0; i < nentries; i++)
        if (strcmp(entries[i]->account, account) == 0 && strcmp(entries[i]->region, region) == 0)
            return entries[i];
    return NULL;
}

static void entry_free(struct registry_entry *e)
{
    fleet_free(e->fleet);
    free(e->truth);
    free(e);
}

const struct registry_entry *registry_get(const char *account, const char *region)
{
    if (!account || !*account)
        account = home_account;
    if (!region || !*region)
        region = home_region;
    if (strlen(account) >= sizeof entries[0]->account ||
        strlen(region) >= sizeof entries[0]->region)
        return NULL;
    pthread_mutex_lock(&lock);
    struct registry_entry *found = find(account, region);
    bool home = strcmp(account, home_account) == 0 && strcmp(region, home_region) == 0;
    if (!found && home) /* the file's fleet moves into its entry once: build it locked */
        found = build(account, region);
    if (found && home && find(account, region) != found && nentries < REGISTRY_MAX)
        entries[nentries++] = found;
    pthread_mutex_unlock(&lock);
    if (found || home)
        return found;
    /* Another pair is generated unlocked, so first calls to several pairs build their fleets
     * side by side; when two threads race for one pair, the first one in wins. */
    struct registry_entry *made = build(account, region);
    if (!made)
        return NULL;
    pthread_mutex_lock(&lock);
    found = find(account, region);
    if (!found && nentries < REGISTRY_MAX) {
        entries[nentries++] = made;
        found = made;
        made = NULL;
    }
    pthread_mutex_unlock(&lock);
    if (made)
        entry_free(made);
    return found;
}

cJSON *registry_to_json(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "home_account", home_account);
    cJSON_AddStringToObject(o, "home_region", home_region);
    cJSON *arr = cJSON_AddArrayToObject(o, "fleets");
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nentries; i++) {
        cJSON *t = cJSON_Parse(entries[i]->truth);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "account", entries[i]->account);
        cJSON_AddStringToObject(e, "region", entries[i]->region);
        cJSON_AddNumberToObject(e, "instance_count", (double)entries[i]->fleet->ninstances);
        cJSON_AddNumberToObject(e, "total_gib",
                                cJSON_GetNumberValue(cJSON_GetObjectItem(t, "total_gib")));
        cJSON_Delete(t);
        cJSON_AddItemToArray(arr, e);
    }
    pthread_mutex_unlock(&lock);
    return o;
}

void registry_free(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nentries; i++)
        entry_free(entries[i]);
    nentries = 0;
    fleet_free(file_fleet);
    file_fleet = NULL;
    pthread_mutex_unlock(&lock);
}
