/* stats.c - request counters for GET /_sim/stats. */
#include "stats.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MAX_NAMES 256
#define NAME_LEN 65

struct counter {
    char name[NAME_LEN];
    unsigned long long n;
};

struct table {
    struct counter v[MAX_NAMES + 1]; /* the extra slot is "(other)" */
    size_t n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct table calls, firsts, errors, targets;
static unsigned long long requests, faults[FAULT_NKINDS];
static long in_flight, peak;

static void bump(struct table *t, const char *name)
{
    char key[NAME_LEN];
    snprintf(key, sizeof key, "%s", name && *name ? name : "(none)");
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].name, key) == 0) {
            t->v[i].n++;
            return;
        }
    if (t->n == MAX_NAMES) {
        snprintf(t->v[MAX_NAMES].name, NAME_LEN, "(other)");
        t->v[MAX_NAMES].n++;
        return;
    }
    snprintf(t->v[t->n].name, NAME_LEN, "%s", key);
    t->v[t->n].n = 1;
    t->n++;
}

void stats_begin(void)
{
    pthread_mutex_lock(&lock);
    requests++;
    if (++in_flight > peak)
        peak = in_flight;
    pthread_mutex_unlock(&lock);
}

void stats_end(void)
{
    pthread_mutex_lock(&lock);
    in_flight--;
    pthread_mutex_unlock(&lock);
}

void stats_call(const char *action)
{
    pthread_mutex_lock(&lock);
    bump(&calls, action);
    pthread_mutex_unlock(&lock);
}

void stats_first_page(const char *action)
{
    pthread_mutex_lock(&lock);
    bump(&firsts, action);
    pthread_mutex_unlock(&lock);
}

void stats_target(const char *account, const char *region)
{
    char key[NAME_LEN];
    snprintf(key, sizeof key, "%s/%s", account, region);
    pthread_mutex_lock(&lock);
    bump(&targets, key);
    pthread_mutex_unlock(&lock);
}

void stats_error(const char *code)
{
    pthread_mutex_lock(&lock);
    bump(&errors, code);
    pthread_mutex_unlock(&lock);
}

void stats_fault(enum fault_kind k)
{
    pthread_mutex_lock(&lock);
    faults[k]++;
    pthread_mutex_unlock(&lock);
}

void stats_reset(void)
{
    pthread_mutex_lock(&lock);
    memset(&calls, 0, sizeof calls);
    memset(&firsts, 0, sizeof firsts);
    memset(&errors, 0, sizeof errors);
    memset(&targets, 0, sizeof targets);
    memset(faults, 0, sizeof faults);
    requests = 0;
    peak = in_flight;
    pthread_mutex_unlock(&lock);
}

static void add_table(cJSON *o, const char *key, const struct table *t)
{
    cJSON *m = cJSON_AddObjectToObject(o, key);
    for (size_t i = 0; i < t->n; i++)
        cJSON_AddNumberToObject(m, t->v[i].name, (double)t->v[i].n);
    if (t->v[MAX_NAMES].n)
        cJSON_AddNumberToObject(m, "(other)", (double)t->v[MAX_NAMES].n);
}

cJSON *stats_to_json(void)
{
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&lock);
    add_table(o, "calls", &calls);
    add_table(o, "first_pages", &firsts);
    cJSON_AddNumberToObject(o, "requests", (double)requests);
    add_table(o, "errors", &errors);
    add_table(o, "targets", &targets);
    cJSON *f = cJSON_AddObjectToObject(o, "faults");
    for (int k = FAULT_THROTTLE; k < FAULT_NKINDS; k++)
        cJSON_AddNumberToObject(f, fault_kind_name((enum fault_kind)k), (double)faults[k]);
    cJSON_AddNumberToObject(o, "in_flight", (double)in_flight);
    cJSON_AddNumberToObject(o, "peak_in_flight", (double)peak);
    pthread_mutex_unlock(&lock);
    return o;
}
