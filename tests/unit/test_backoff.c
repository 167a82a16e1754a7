/* Unit tests of the reconnection backoff: doubling, cap, and jitter within ±20 %. */
#include <check.h>
#include <stdlib.h>

#include "backoff.h"
#include "run_suite.h"

START_TEST(doubles_up_to_the_cap_within_jitter)
{
    wn_backoff backoff = wn_backoff_start(1000, 60000);
    unsigned seed = 42;
    int step = 1000;

    for (int i = 0; i < 20; i++) {
        int delay = wn_backoff_next(&backoff, &seed);

        ck_assert_int_ge(delay, step - step / 5);
        ck_assert_int_le(delay, step + step / 5);
        step = step * 2 > 60000 ? 60000 : step * 2;
    }
    ck_assert_int_eq(backoff.next_ms, 60000);
}
END_TEST

START_TEST(jitter_spreads_the_delays)
{
    unsigned seed = 7;
    int low = 0, high = 0;

    for (int i = 0; i < 1000; i++) {
        wn_backoff backoff = wn_backoff_start(10000, 10000);
        int delay = wn_backoff_next(&backoff, &seed);

        low += delay < 9500;
        high += delay > 10500;
    }
    /* Hosts restarted together must not all knock at the same moment. */
    ck_assert_int_gt(low, 100);
    ck_assert_int_gt(high, 100);
}
END_TEST

START_TEST(degenerate_settings_stay_positive)
{
    unsigned seed = 1;
    wn_backoff backoff = wn_backoff_start(0, 0);

    ck_assert_int_ge(wn_backoff_next(&backoff, &seed), 1);
    backoff = wn_backoff_start(5000, 100);
    ck_assert_int_le(wn_backoff_next(&backoff, &seed), 120);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("backoff");
    TCase *tc = tcase_create("backoff");

    tcase_add_test(tc, doubles_up_to_the_cap_within_jitter);
    tcase_add_test(tc, jitter_spreads_the_delays);
    tcase_add_test(tc, degenerate_settings_stay_positive);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
