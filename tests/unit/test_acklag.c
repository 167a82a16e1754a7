/* Unit tests of the acknowledgement lag's bookkeeping: which commits an acknowledgement times,
 * and the quantiles of what they waited. */
#include <check.h>
#include <stdlib.h>

#include "acklag.h"
#include "run_suite.h"

static wn_acklag *new_lag(void)
{
    wn_acklag *lag = calloc(1, sizeof *lag);

    ck_assert_ptr_nonnull(lag);
    return lag;
}

/* An acknowledgement times the commits it covers, oldest first, and only those. */
START_TEST(times_what_is_acknowledged)
{
    wn_acklag *lag = new_lag();

    wn_acklag_received(lag, 100, 1000);
    wn_acklag_received(lag, 200, 2000);
    wn_acklag_received(lag, 300, 3000);
    wn_acklag_acknowledged(lag, 250, 5000);
    ck_assert_uint_eq(lag->count, 2);
    ck_assert_int_eq(lag->max_us, 4000);
    wn_acklag_acknowledged(lag, 250, 9000);
    ck_assert_uint_eq(lag->count, 2);
    wn_acklag_acknowledged(lag, 300, 4000);
    ck_assert_uint_eq(lag->count, 3);
    ck_assert_int_eq(wn_acklag_quantile(lag, 0.5), 3020);
    ck_assert_int_eq(wn_acklag_quantile(lag, 0.99), 4020);
    free(lag);
}
END_TEST

/* 20 µs steps up to 20 ms, then 1 ms steps; a wait beyond the last bucket still counts. */
START_TEST(quantiles_of_many)
{
    wn_acklag *lag = new_lag();

    ck_assert_int_eq(wn_acklag_quantile(lag, 0.99), 0);
    for (int i = 0; i < 99; i++) {
        wn_acklag_received(lag, (wn_lsn)i + 1, 0);
        wn_acklag_acknowledged(lag, (wn_lsn)i + 1, 1000);
    }
    wn_acklag_received(lag, 1000, 0);
    wn_acklag_acknowledged(lag, 1000, 50000);
    ck_assert_int_eq(wn_acklag_quantile(lag, 0.5), 1020);
    ck_assert_int_eq(wn_acklag_quantile(lag, 0.99), 1020);
    ck_assert_int_eq(wn_acklag_quantile(lag, 1.0), 51000);
    wn_acklag_received(lag, 2000, 0);
    wn_acklag_acknowledged(lag, 2000, 10000000);
    ck_assert_int_eq(lag->max_us, 10000000);
    ck_assert_uint_eq(lag->count, 101);
    free(lag);
}
END_TEST

/* More commits than it can hold waiting: the rest go untimed, nothing is overwritten. */
START_TEST(full_ring_drops_new_commits)
{
    wn_acklag *lag = new_lag();

    for (int i = 0; i < WN_ACKLAG_PENDING + 10; i++)
        wn_acklag_received(lag, (wn_lsn)i + 1, i);
    wn_acklag_acknowledged(lag, (wn_lsn)WN_ACKLAG_PENDING + 10, WN_ACKLAG_PENDING + 10);
    ck_assert_uint_eq(lag->count, WN_ACKLAG_PENDING);
    free(lag);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("acklag");
    TCase *tc = tcase_create("acklag");

    tcase_add_test(tc, times_what_is_acknowledged);
    tcase_add_test(tc, quantiles_of_many);
    tcase_add_test(tc, full_ring_drops_new_commits);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
