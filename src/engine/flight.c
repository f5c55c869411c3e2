/* flight.c - single-flight table of in-progress fetches and their waiters (see flight.h). */
#include "flight.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define uthash_malloc(sz) xmalloc(sz)
#define uthash_free(ptr, sz) free(ptr)
#include <uthash.h>

struct flight {
    UT_hash_handle hh;
    char *key;
    uint64_t id;
    void *data;
    void **waiters; /* arrival order */
    size_t nwaiters;
    size_t cap;
};

struct flight_table {
    struct flight *flights; /* uthash head */
    uint64_t next_id;
};

struct flight_table *flight_table_new(void)
{
    struct flight_table *t = xcalloc(1, sizeof *t);
    t->next_id = 1;
    return t;
}

static void flight_free(struct flight *f)
{
    free(f->key);
    free(f->waiters);
    free(f);
}

void flight_table_free_with(struct flight_table *t, void (*free_data)(void *data))
{
    if (!t)
        return;
    struct flight *f, *tmp;
    HASH_ITER(hh, t->flights, f, tmp) {
        HASH_DELETE(hh, t->flights, f);
        if (free_data && flight_data(f))
            free_data(flight_data(f));
        flight_free(f);
    }
    free(t);
}

void flight_table_free(struct flight_table *t) { flight_table_free_with(t, NULL); }

struct flight *flight_find(const struct flight_table *t, const char *key)
{
    struct flight *f = NULL;
    if (key)
        HASH_FIND(hh, t->flights, key, strlen(key), f);
    return f;
}

struct flight *flight_start(struct flight_table *t, const char *key)
{
    if (!key || flight_find(t, key))
        return NULL;
    struct flight *f = xcalloc(1, sizeof *f);
    f->key = xstrdup(key);
    f->id = t->next_id++;
    HASH_ADD_KEYPTR(hh, t->flights, f->key, strlen(f->key), f);
    return f;
}

void flight_finish(struct flight_table *t, struct flight *f)
{
    HASH_DELETE(hh, t->flights, f);
    flight_free(f);
}

uint64_t flight_id(const struct flight *f) { return f->id; }
const char *flight_key(const struct flight *f) { return f->key; }
void flight_set_data(struct flight *f, void *data) { f->data = data; }
void *flight_data(const struct flight *f) { return f->data; }

void flight_add_waiter(struct flight *f, void *waiter)
{
    if (f->nwaiters == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 4;
        f->waiters = xrealloc(f->waiters, f->cap * sizeof *f->waiters);
    }
    f->waiters[f->nwaiters++] = waiter;
}

static void remove_at(struct flight *f, size_t i)
{
    memmove(&f->waiters[i], &f->waiters[i + 1], (f->nwaiters - i - 1) * sizeof *f->waiters);
    f->nwaiters--;
}

bool flight_remove_waiter(struct flight *f, void *waiter)
{
    for (size_t i = 0; i < f->nwaiters; i++) {
        if (f->waiters[i] == waiter) {
            remove_at(f, i);
            return true;
        }
    }
    return false;
}

void *flight_pop_waiter(struct flight *f)
{
    if (f->nwaiters == 0)
        return NULL;
    void *w = f->waiters[0];
    remove_at(f, 0);
    return w;
}

size_t flight_waiter_count(const struct flight *f) { return f->nwaiters; }

void *flight_waiter(const struct flight *f, size_t i)
{
    return i < f->nwaiters ? f->waiters[i] : NULL;
}

size_t flight_count(const struct flight_table *t) { return HASH_COUNT(t->flights); }
