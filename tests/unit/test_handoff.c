/* Unit tests of the handoff between the reader and the dispatcher thread. */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>

#include "handoff.h"

#define ITEMS 200000

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

int main(void)
{
    Suite *suite = suite_create("handoff");
    TCase *tc = tcase_create("handoff");
    SRunner *runner;
    int failed;

    tcase_add_test(tc, keeps_order_across_threads);
    tcase_add_test(tc, bounded_and_times_out);
    tcase_add_test(tc, acknowledgeable_only_moves_forward);
    tcase_add_test(tc, stop_wakes_and_is_pollable);
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
