/*
 * itest_fork: the tests' one way to start a child process, safe while a helper thread runs.
 *
 * A child of a threaded process inherits every lock as it was at the fork. A helper thread in
 * the middle of malloc leaves the allocator's lock held in the child for ever: AddressSanitizer's
 * allocator (gcc 12) does not take its locks around fork, and a child that then allocates, as a
 * writer does in libpq, hangs without a word. So a helper thread does its work between
 * itest_helper_busy and itest_helper_idle, and itest_fork forks only while none is busy.
 */
#ifndef WN_TEST_ITEST_FORK_H
#define WN_TEST_ITEST_FORK_H

#include <sys/types.h>

/* fflush(NULL) and fork once no helper thread is busy; fails the test when fork fails. Returns
 * 0 in the child, the child's PID in the parent. */
pid_t itest_fork(void);

/* Around a helper thread's work (libpq, stdio, anything that allocates); it sleeps outside. */
void itest_helper_busy(void);
void itest_helper_idle(void);

#endif
