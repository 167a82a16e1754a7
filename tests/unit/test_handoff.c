/* Unit tests of the handoff between the reader and the dispatcher thread. */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handoff.h"
#include "run_suite.h"

#define ITEMS 200000
#define STRESS_ITEMS 2000000
#define STRESS_CAPACITY 256

static void *produce(void *arg)
{
    wn_handoff *handoff = arg;

    for (wn_lsn i = 1; i <= ITEMS; i++) {
        wn_item item = {.kind = i % 7 ? WN_ITEM_DATA : WN_ITEM_KEEPALIVE, .wal_end = i};

        while (!wn_handoff_push(handoff, &item, 50))
            ;
    }
    wn_item end = {.kind = WN_ITEM_END};
    while (!wn_handoff_push(handoff, &end, 50))
        ;
    return NULL;
}

START_TEST(keeps_order_across_threads)
{
    wn_handoff *handoff = wn_handoff_create(16);
    pthread_t producer;
    wn_item item;
    wn_lsn expected = 1;

    ck_assert_ptr_nonnull(handoff);
    ck_assert_int_eq(pthread_create(&producer, NULL, produce, handoff), 0);
    for (;;) {
        if (!wn_handoff_pop(handoff, &item, 1000))
            continue;
        if (item.kind == WN_ITEM_END)
            break;
        ck_assert_uint_eq(item.wal_end, expected);
        ck_assert_int_eq(item.kind, expected % 7 ? WN_ITEM_DATA : WN_ITEM_KEEPALIVE);
        expected++;
    }
    ck_assert_uint_eq(expected, ITEMS + 1);
    pthread_join(producer, NULL);
    wn_handoff_destroy(handoff);
}
END_TEST

START_TEST(bounded_and_times_out)
{
    wn_handoff *handoff = wn_handoff_create(2);
    wn_item item = {.kind = WN_ITEM_KEEPALIVE};

    ck_assert(!wn_handoff_pop(handoff, &item, 10));
    ck_assert(wn_handoff_push(handoff, &item, 0));
    ck_assert(wn_handoff_push(handoff, &item, 0));
    ck_assert(!wn_handoff_push(handoff, &item, 10));
    ck_assert(wn_handoff_pop(handoff, &item, 0));
    ck_assert(wn_handoff_push(handoff, &item, 0));
    wn_handoff_destroy(handoff);
}
END_TEST

START_TEST(acknowledgeable_only_moves_forward)
{
    wn_handoff *handoff = wn_handoff_create(1);

    ck_assert_uint_eq(wn_handoff_acknowledgeable(handoff), 0);
    wn_handoff_set_acknowledgeable(handoff, 100);
    wn_handoff_set_acknowledgeable(handoff, 50);
    ck_assert_uint_eq(wn_handoff_acknowledgeable(handoff), 100);
    wn_handoff_set_acknowledgeable(handoff, 200);
    ck_assert_uint_eq(wn_handoff_acknowledgeable(handoff), 200);
    wn_handoff_destroy(handoff);
}
END_TEST

START_TEST(stop_wakes_and_is_pollable)
{
    wn_handoff *handoff = wn_handoff_create(1);
    wn_item item = {.kind = WN_ITEM_KEEPALIVE};
    struct pollfd pfd = {.fd = wn_handoff_stop_fd(handoff), .events = POLLIN};

    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    ck_assert(!wn_handoff_stop_requested(handoff));
    ck_assert(wn_handoff_push(handoff, &item, 0));
    wn_handoff_request_stop(handoff);
    ck_assert(wn_handoff_stop_requested(handoff));
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    /* A full queue does not make a stopping reader wait; what is queued still comes out, and
     * END goes in once there is room. */
    ck_assert(!wn_handoff_push(handoff, &item, 60000));
    ck_assert(wn_handoff_pop(handoff, &item, 60000));
    ck_assert_int_eq(item.kind, WN_ITEM_KEEPALIVE);
    wn_item end = {.kind = WN_ITEM_END};
    ck_assert(wn_handoff_push(handoff, &end, 0));
    ck_assert(wn_handoff_pop(handoff, &item, 0));
    ck_assert_int_eq(item.kind, WN_ITEM_END);
    ck_assert(!wn_handoff_dispatcher_done(handoff));
    wn_handoff_set_dispatcher_done(handoff);
    ck_assert(wn_handoff_dispatcher_done(handoff));
    wn_handoff_destroy(handoff);
}
END_TEST


/* ---- stress: one producer, one consumer, random sizes and stalls on both sides ---------------- */

typedef struct stress {
    wn_handoff *handoff;
    unsigned seed;
    uint64_t large;   /* payloads too big for the byte ring that were sent */
    bool out_of_memory;
} stress;

/* A short pause now and then: sometimes a spin, rarely a real sleep, so that each side in turn
 * finds the ring empty, full, or the other side asleep. */
static void maybe_stall(unsigned *seed)
{
    unsigned r = (unsigned)rand_r(seed) % 100000;

    if (r < 20) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(r + 1) * 20000L};

        nanosleep(&ts, NULL);
    } else if (r < 2000) {
        for (volatile unsigned i = 0; i < r; i++)
            ;
    }
}

static size_t stress_length(uint64_t seq, unsigned *seed)
{
    unsigned r = (unsigned)rand_r(seed);

    if (seq % 250000 == 17)
        return WN_HANDOFF_BYTES / 2 + r % 1000; /* travels in its own buffer */
    if (r % 64 == 0)
        return 8 + r % 20000;
    return 8 + r % 300;
}

/* The payload of item seq: its number, then bytes derived from it. */
static void fill_payload(char *p, size_t length, uint64_t seq)
{
    memcpy(p, &seq, sizeof seq);
    for (size_t i = sizeof seq; i < length; i++)
        p[i] = (char)(seq * 31 + i);
}

static int payload_ok(const char *p, size_t length, uint64_t seq)
{
    uint64_t got;

    if (length < sizeof seq)
        return 0;
    memcpy(&got, p, sizeof got);
    if (got != seq)
        return 0;
    for (size_t i = sizeof seq; i < length; i++) {
        if (p[i] != (char)(seq * 31 + i))
            return 0;
    }
    return 1;
}

static void stress_push(stress *st, const wn_item *item, uint64_t seq)
{
    /* Most items go the reader's way (put, wake after a batch), some through push. */
    if (seq % 64 != 0) {
        if (wn_handoff_put(st->handoff, item)) {
            if (seq % 64 == 32)
                wn_handoff_wake(st->handoff);
            return;
        }
    }
    while (!wn_handoff_push(st->handoff, item, 20))
        ;
}

static void *stress_produce(void *arg)
{
    stress *st = arg;

    for (uint64_t seq = 1; seq <= STRESS_ITEMS; seq++) {
        wn_item item = {.kind = WN_ITEM_KEEPALIVE, .wal_end = seq};

        if (seq % 5 != 0) {
            size_t length = stress_length(seq, &st->seed);
            char *buffer = malloc(length);

            if (buffer == NULL) {
                st->out_of_memory = true;
                break;
            }
            fill_payload(buffer, length, seq);
            item = (wn_item){.kind = WN_ITEM_DATA, .wal_end = seq, .buffer = buffer,
                             .payload = buffer, .length = length};
            if (length > WN_HANDOFF_BYTES / 4)
                st->large++;
        }
        stress_push(st, &item, seq);
        maybe_stall(&st->seed);
    }
    wn_item end = {.kind = WN_ITEM_END};
    wn_handoff_wake(st->handoff);
    while (!wn_handoff_push(st->handoff, &end, 20))
        (void)poll(NULL, 0, 1);
    return NULL;
}

/* Check's assertions cost a system call each (they record where they are), so the hot loop
 * keeps the first error and asserts once. */
typedef struct stress_check {
    uint64_t expected;
    uint64_t large;
    bool ended;
    char error[128];
} stress_check;

static void check_item(stress_check *c, wn_item *item, bool last)
{
    if (item->kind == WN_ITEM_END) {
        if (!last)
            snprintf(c->error, sizeof c->error, "END before the last item of a batch");
        c->ended = true;
        return;
    }
    if (item->wal_end != c->expected)
        snprintf(c->error, sizeof c->error, "item %llu arrived where %llu was due",
                 (unsigned long long)item->wal_end, (unsigned long long)c->expected);
    else if (item->kind != (c->expected % 5 ? WN_ITEM_DATA : WN_ITEM_KEEPALIVE))
        snprintf(c->error, sizeof c->error, "item %llu has the wrong kind",
                 (unsigned long long)c->expected);
    else if (item->kind == WN_ITEM_DATA && !payload_ok(item->payload, item->length, c->expected))
        snprintf(c->error, sizeof c->error, "payload of item %llu corrupted",
                 (unsigned long long)c->expected);
    if (item->kind == WN_ITEM_DATA && item->buffer != NULL)
        c->large++;
    wn_item_release(item);
    c->expected++;
}

START_TEST(stress_keeps_order_and_payloads)
{
    stress st = {.handoff = wn_handoff_create(STRESS_CAPACITY), .seed = 12345};
    unsigned seed = 54321;
    wn_item items[64];
    stress_check c = {.expected = 1};
    pthread_t producer;

    ck_assert_ptr_nonnull(st.handoff);
    ck_assert_int_eq(pthread_create(&producer, NULL, stress_produce, &st), 0);
    while (!c.ended && c.error[0] == '\0') {
        size_t max = 1 + (size_t)rand_r(&seed) % 64;
        size_t n = wn_handoff_pop_many(st.handoff, items, max, 1000);

        if (n > max)
            snprintf(c.error, sizeof c.error, "popped %zu items, at most %zu asked", n, max);
        for (size_t i = 0; i < n && c.error[0] == '\0'; i++)
            check_item(&c, &items[i], i + 1 == n);
        maybe_stall(&seed);
    }
    ck_assert_msg(c.error[0] == '\0', "%s", c.error);
    pthread_join(producer, NULL);
    ck_assert(!st.out_of_memory);
    ck_assert_uint_eq(c.expected, STRESS_ITEMS + 1);
    /* Only the payloads too big for the byte ring arrive in their own buffer. */
    ck_assert_uint_eq(c.large, st.large);
    ck_assert_uint_gt(c.large, 0);
    wn_handoff_destroy(st.handoff);
}
END_TEST

/* Small payloads are copied and their buffer freed at once; the copy stays until the next pop. */
START_TEST(small_payload_is_copied)
{
    wn_handoff *handoff = wn_handoff_create(4);
    char *buffer = malloc(6);
    wn_item item;

    ck_assert_ptr_nonnull(buffer);
    memcpy(buffer, "hello", 6);
    item = (wn_item){.kind = WN_ITEM_DATA, .wal_end = 1, .buffer = buffer, .payload = buffer,
                     .length = 6};
    ck_assert(wn_handoff_put(handoff, &item));
    ck_assert(wn_handoff_pop(handoff, &item, 0));
    ck_assert_ptr_null(item.buffer);
    ck_assert_uint_eq(item.length, 6);
    ck_assert_str_eq(item.payload, "hello");
    wn_handoff_destroy(handoff);
}
END_TEST

/* A payload larger than the byte ring's share travels alone: nothing with a payload is queued
 * beside it until the dispatcher is done with it. */
START_TEST(large_payload_travels_alone)
{
    wn_handoff *handoff = wn_handoff_create(8);
    size_t big = WN_HANDOFF_BYTES / 2;
    char *large = calloc(1, big), *small = malloc(4);
    wn_item item = {.kind = WN_ITEM_DATA, .buffer = large, .payload = large, .length = big};
    wn_item next = {.kind = WN_ITEM_DATA, .buffer = small, .payload = small, .length = 4};
    wn_item keepalive = {.kind = WN_ITEM_KEEPALIVE};
    wn_item got;

    ck_assert_ptr_nonnull(large);
    ck_assert_ptr_nonnull(small);
    ck_assert(wn_handoff_put(handoff, &item));
    ck_assert(!wn_handoff_put(handoff, &next));
    ck_assert(wn_handoff_put(handoff, &keepalive));
    ck_assert(wn_handoff_pop(handoff, &got, 0));
    ck_assert_ptr_eq(got.buffer, large);
    ck_assert(!wn_handoff_put(handoff, &next));
    wn_item_release(&got);
    /* The next pop gives the bytes back. */
    ck_assert(wn_handoff_pop(handoff, &got, 0));
    ck_assert_int_eq(got.kind, WN_ITEM_KEEPALIVE);
    ck_assert(wn_handoff_put(handoff, &next));
    wn_handoff_destroy(handoff);
}
END_TEST

/* A dispatcher asleep on an empty ring wakes for an item put then woken, well before its
 * timeout. */
static void *put_later(void *arg)
{
    wn_handoff *handoff = arg;
    wn_item item = {.kind = WN_ITEM_KEEPALIVE, .wal_end = 7};

    (void)poll(NULL, 0, 50);
    ck_assert(wn_handoff_put(handoff, &item));
    wn_handoff_wake(handoff);
    return NULL;
}

START_TEST(sleeping_dispatcher_wakes_promptly)
{
    wn_handoff *handoff = wn_handoff_create(4);
    struct timespec before, after;
    pthread_t thread;
    wn_item item;
    long waited_ms;

    ck_assert_int_eq(pthread_create(&thread, NULL, put_later, handoff), 0);
    clock_gettime(CLOCK_MONOTONIC, &before);
    ck_assert(wn_handoff_pop(handoff, &item, 30000));
    clock_gettime(CLOCK_MONOTONIC, &after);
    waited_ms = (after.tv_sec - before.tv_sec) * 1000 + (after.tv_nsec - before.tv_nsec) / 1000000;
    ck_assert_uint_eq(item.wal_end, 7);
    ck_assert_int_lt(waited_ms, 5000);
    pthread_join(thread, NULL);
    wn_handoff_destroy(handoff);
}
END_TEST

static void *pause_later(void *arg)
{
    (void)poll(NULL, 0, 50);
    wn_handoff_set_busy(arg, false);
    return NULL;
}

/* A dispatcher holding a group until the busy stream pauses wakes when the reader says it did,
 * with nothing to pop. */
START_TEST(pause_wakes_a_dispatcher_waiting_for_it)
{
    wn_handoff *handoff = wn_handoff_create(4);
    struct timespec before, after;
    pthread_t thread;
    wn_item items[2];
    long waited_ms;

    wn_handoff_set_busy(handoff, true);
    ck_assert(wn_handoff_busy(handoff));
    ck_assert_int_eq(pthread_create(&thread, NULL, pause_later, handoff), 0);
    clock_gettime(CLOCK_MONOTONIC, &before);
    ck_assert_uint_eq(wn_handoff_pop_many_or_pause(handoff, items, 2, 30000), 0);
    clock_gettime(CLOCK_MONOTONIC, &after);
    waited_ms = (after.tv_sec - before.tv_sec) * 1000 + (after.tv_nsec - before.tv_nsec) / 1000000;
    ck_assert(!wn_handoff_busy(handoff));
    ck_assert_int_lt(waited_ms, 5000);
    pthread_join(thread, NULL);
    wn_handoff_destroy(handoff);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("handoff");
    TCase *tc = tcase_create("handoff");

    tcase_add_test(tc, keeps_order_across_threads);
    tcase_add_test(tc, bounded_and_times_out);
    tcase_add_test(tc, acknowledgeable_only_moves_forward);
    tcase_add_test(tc, stop_wakes_and_is_pollable);
    tcase_add_test(tc, small_payload_is_copied);
    tcase_add_test(tc, large_payload_travels_alone);
    tcase_add_test(tc, sleeping_dispatcher_wakes_promptly);
    tcase_add_test(tc, pause_wakes_a_dispatcher_waiting_for_it);
    tcase_add_test(tc, stress_keeps_order_and_payloads);
    tcase_set_timeout(tc, 90);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
