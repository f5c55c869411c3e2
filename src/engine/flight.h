/* flight.h - single-flight bookkeeping: a table of in-flight fetches keyed by the cache key,
 * each with the requests waiting for its result, so concurrent misses for one key share one
 * fan-out. Pure data, single-threaded (the event loop is its only user).
 *
 * Ownership: the table owns its flights; a flight lives from flight_start until
 * flight_finish (or flight_table_free). Waiters are opaque pointers owned by the server:
 * a flight stores them, never dereferences and never frees them. A pointer to a flight
 * stays valid until flight_finish on it, so the server's usual pattern is
 *
 *     while ((w = flight_pop_waiter(f)) != NULL)   // each waiter learns the flight is over
 *         deliver(w, result);
 *     flight_finish(t, f);
 *
 * flight_pop_waiter tolerates deliver() adding or removing waiters of f meanwhile. */
#ifndef EBSD_FLIGHT_H
#define EBSD_FLIGHT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct flight_table;
struct flight;

/* Creates an empty table. Never NULL (OOM aborts). Caller frees with flight_table_free. */
struct flight_table *flight_table_new(void);

/* Frees the table and every flight still in it; waiters are left alone. NULL is a no-op. */
void flight_table_free(struct flight_table *t);
/* The same, with free_data called on each flight's data (flight_set_data) that is not NULL:
 * at shutdown, the owner's state of the flights still running. */
void flight_table_free_with(struct flight_table *t, void (*free_data)(void *data));

/* Returns the flight in progress for key, or NULL. Owned by the table. */
struct flight *flight_find(const struct flight_table *t, const char *key);

/* Starts a flight for key (copied) with no waiters and a new id. Returns it (owned by the
 * table), or NULL if a flight for key is already in progress (use flight_find first). */
struct flight *flight_start(struct flight_table *t, const char *key);

/* Removes f from the table and frees it. Waiters still attached are dropped, not freed. */
void flight_finish(struct flight_table *t, struct flight *f);

/* The flight's id: unique within its table, increasing from 1 (a generation number that
 * tells a restarted flight for the same key from the one a waiter joined). */
uint64_t flight_id(const struct flight *f);

/* The flight's key; owned by the flight, valid until flight_finish. */
const char *flight_key(const struct flight *f);

/* An opaque pointer the server attaches (e.g. the fan-out job); never freed by the flight.
 * NULL until set. */
void flight_set_data(struct flight *f, void *data);
void *flight_data(const struct flight *f);

/* Appends waiter (not NULL) to f's waiters, in arrival order. The flight does not check
 * for duplicates. */
void flight_add_waiter(struct flight *f, void *waiter);

/* Removes the first occurrence of waiter (its deadline passed, or its client went away),
 * keeping the others' order. Returns true if it was there. */
bool flight_remove_waiter(struct flight *f, void *waiter);

/* Removes and returns the oldest waiter, or NULL when there is none. */
void *flight_pop_waiter(struct flight *f);

/* Number of waiters, and the i-th (0 = oldest; NULL if i is out of range), for iterating
 * without removing. Do not add or remove waiters while iterating this way. */
size_t flight_waiter_count(const struct flight *f);
void *flight_waiter(const struct flight *f, size_t i);

/* Number of flights in progress. */
size_t flight_count(const struct flight_table *t);

#endif
