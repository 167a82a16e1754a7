/*
 * run_suite: the end of every test program's main, unit or integration: its suite run with
 * Check's normal output. Header-only (static inline), so a unit test links nothing more.
 */
#ifndef WN_TEST_RUN_SUITE_H
#define WN_TEST_RUN_SUITE_H

#include <check.h>

/* Runs every test of suite (taking it over: it is freed with the runner); returns how many
 * failed. */
static inline int run_suite(Suite *suite)
{
    SRunner *runner = srunner_create(suite);
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed;
}

#endif
