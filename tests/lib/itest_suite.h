/*
 * itest_suite: an integration test's main, in Check's terms: its test cases, each bounded by
 * ITEST_TIMEOUT_S, and the run of its suite.
 */
#ifndef WN_TEST_ITEST_SUITE_H
#define WN_TEST_ITEST_SUITE_H

#include <check.h>

/* A test case named name, bounded by ITEST_TIMEOUT_S, added to suite (run in the order made). */
TCase *itest_tcase(Suite *suite, const char *name);
/* Runs every test of suite with Check's normal output; returns how many failed. */
int itest_run_suite(Suite *suite);

#endif
