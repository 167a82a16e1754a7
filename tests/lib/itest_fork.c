/* itest_fork: forking while helper threads run; see itest_fork.h. */
#include "itest_fork.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Held by a helper thread while it works, and by the forking thread across fork. */
static pthread_mutex_t helper_work = PTHREAD_MUTEX_INITIALIZER;

pid_t itest_fork(void)
{
    pid_t pid;
    int saved;

    fflush(NULL);
    pthread_mutex_lock(&helper_work);
    pid = fork();
    saved = errno;
    /* In the child too: the forking thread owned the lock, and the child is that thread. */
    pthread_mutex_unlock(&helper_work);
    ck_assert_msg(pid >= 0, "fork: %s", strerror(saved));
    return pid;
}

void itest_helper_busy(void)
{
    pthread_mutex_lock(&helper_work);
}

void itest_helper_idle(void)
{
    pthread_mutex_unlock(&helper_work);
}
