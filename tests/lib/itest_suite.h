/*
 * itest_suite: an integration test's main, in Check's terms: its test cases, each bounded by
 * ITEST_TIMEOUT_S, and the run of its suite (run_suite.h, which the unit tests share).
 */
#ifndef WN_TEST_ITEST_SUITE_H
#define WN_TEST_ITEST_SUITE_H

#include <check.h>

#include "run_suite.h"

/* A test case named name, bounded by ITEST_TIMEOUT_S, added to suite (run in the order made). */
TCase *itest_tcase(Suite *suite, const char *name);

#endif
