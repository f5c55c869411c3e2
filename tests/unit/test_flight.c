/* test_flight.c - single-flight table: start/find, waiters in order, removal, hand-out. */
#include <stdlib.h>
#include "flight.h"
#include "harness.h"

static void start_find_finish(void)
{
    struct flight_table *t = flight_table_new();
    CHECK(flight_find(t, "us-east-1|total|detail=0") == NULL);
    struct flight *f = flight_start(t, "us-east-1|total|detail=0");
    CHECK(f != NULL);
    CHECK(flight_find(t, "us-east-1|total|detail=0") == f);
    CHECK(flight_find(t, "us-east-1|total|detail=1") == NULL);
    CHECK(flight_find(t, NULL) == NULL);
    CHECK_STR(flight_key(f), "us-east-1|total|detail=0");
    CHECK_INT(flight_id(f), 1);
    /* One flight per key. */
    CHECK(flight_start(t, "us-east-1|total|detail=0") == NULL);
    CHECK(flight_start(t, NULL) == NULL);
    struct flight *g = flight_start(t, "us-east-1|total|detail=1");
    CHECK(g != NULL && g != f);
    CHECK_INT(flight_id(g), 2);
    CHECK_INT(flight_count(t), 2);

    int job;
    CHECK(flight_data(f) == NULL);
    flight_set_data(f, &job);
    CHECK(flight_data(f) == &job);

    flight_finish(t, f);
    CHECK(flight_find(t, "us-east-1|total|detail=0") == NULL);
    CHECK_INT(flight_count(t), 1);
    /* A restarted flight for the same key gets a new generation. */
    f = flight_start(t, "us-east-1|total|detail=0");
    CHECK(f != NULL);
    CHECK_INT(flight_id(f), 3);
    /* The table frees flights still in progress. */
    flight_table_free(t);
    flight_table_free(NULL);
}

static void waiters(void)
{
    struct flight_table *t = flight_table_new();
    struct flight *f = flight_start(t, "k");
    int w[10];
    CHECK_INT(flight_waiter_count(f), 0);
    CHECK(flight_pop_waiter(f) == NULL);
    CHECK(flight_waiter(f, 0) == NULL);
    for (int i = 0; i < 10; i++)
        flight_add_waiter(f, &w[i]);
    CHECK_INT(flight_waiter_count(f), 10);
    for (size_t i = 0; i < 10; i++)
        CHECK(flight_waiter(f, i) == &w[i]);
    CHECK(flight_waiter(f, 10) == NULL);

    /* A waiter whose deadline passed leaves; the others keep their order. */
    CHECK(flight_remove_waiter(f, &w[3]));
    CHECK(!flight_remove_waiter(f, &w[3]));
    CHECK(flight_remove_waiter(f, &w[0]));
    CHECK(flight_remove_waiter(f, &w[9]));
    CHECK_INT(flight_waiter_count(f), 7);
    CHECK(flight_waiter(f, 0) == &w[1]);
    CHECK(flight_waiter(f, 2) == &w[4]);
    CHECK(flight_waiter(f, 6) == &w[8]);

    /* Hand-out: pop in arrival order; a delivery may remove a later waiter meanwhile. */
    int order[10], n = 0;
    void *p;
    while ((p = flight_pop_waiter(f)) != NULL) {
        order[n++] = (int)((int *)p - w);
        if (p == &w[2])
            CHECK(flight_remove_waiter(f, &w[6]));
    }
    CHECK_INT(n, 6);
    int want[] = {1, 2, 4, 5, 7, 8};
    for (int i = 0; i < 6 && i < n; i++)
        CHECK_INT(order[i], want[i]);
    CHECK_INT(flight_waiter_count(f), 0);
    flight_finish(t, f);
    CHECK_INT(flight_count(t), 0);
    flight_table_free(t);
}

static void finish_with_waiters_left(void)
{
    /* Waiters are the server's: finishing a flight that still has some never frees them
     * (ASan would catch a free of these stack addresses). */
    struct flight_table *t = flight_table_new();
    struct flight *f = flight_start(t, "k");
    int a, b;
    flight_add_waiter(f, &a);
    flight_add_waiter(f, &b);
    flight_finish(t, f);
    f = flight_start(t, "k2");
    flight_add_waiter(f, &a);
    flight_table_free(t);
}

static void many_flights(void)
{
    struct flight_table *t = flight_table_new();
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        CHECK(flight_start(t, key) != NULL);
    }
    CHECK_INT(flight_count(t), 1000);
    for (int i = 0; i < 1000; i += 2) {
        snprintf(key, sizeof key, "key-%d", i);
        struct flight *f = flight_find(t, key);
        CHECK(f != NULL);
        if (f)
            flight_finish(t, f);
    }
    CHECK_INT(flight_count(t), 500);
    CHECK(flight_find(t, "key-998") == NULL);
    CHECK(flight_find(t, "key-999") != NULL);
    flight_table_free(t);
}

static int freed;
static void count_free(void *data)
{
    freed++;
    free(data);
}

/* At shutdown the owner's data of the flights still running goes with them; a flight with
 * none is passed over. */
static void free_with_data(void)
{
    struct flight_table *t = flight_table_new();
    flight_set_data(flight_start(t, "a"), malloc(16));
    flight_set_data(flight_start(t, "b"), malloc(16));
    (void)flight_start(t, "c");
    struct flight *done = flight_start(t, "d");
    flight_set_data(done, NULL);
    flight_finish(t, done);
    freed = 0;
    flight_table_free_with(t, count_free);
    CHECK_INT(freed, 2);
    flight_table_free_with(NULL, count_free);
    CHECK_INT(freed, 2);
}

TEST_MAIN(T(start_find_finish), T(waiters), T(finish_with_waiters_left), T(many_flights),
          T(free_with_data))
