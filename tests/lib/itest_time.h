/*
 * itest_time: the bounds of every wait in the end-to-end tests, and the clock they are measured on.
 *
 * Every bound grows by CK_TIMEOUT_MULTIPLIER (the factor Check applies to the tests' own limits),
 * so the same tests run under valgrind.
 */
#ifndef WN_TEST_ITEST_TIME_H
#define WN_TEST_ITEST_TIME_H

#include <stdbool.h>

#define ITEST_WAIT_S 60     /* the bound of every wait for something to happen */
#define ITEST_RUN_S 120     /* the bound of a host run that should end by itself */
#define ITEST_POLL_MS 20
#define ITEST_TIMEOUT_S 115 /* Check's per-test limit */

typedef struct itest_deadline {
    long long end_ms;       /* on CLOCK_MONOTONIC */
} itest_deadline;

long long itest_now_ms(void); /* CLOCK_MONOTONIC, in milliseconds */
/* ms from now, times CK_TIMEOUT_MULTIPLIER. */
itest_deadline itest_deadline_in(int ms);
bool itest_expired(const itest_deadline *deadline);
void itest_sleep_ms(int ms);   /* the whole time, also when a signal arrives */

#endif
