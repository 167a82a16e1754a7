/* itest_time: the clock and the bounds of waits; see itest_time.h. */
#include "itest_time.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

long long itest_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Under valgrind (tests/valgrind.sh) the host runs many times slower: every bound grows by
 * CK_TIMEOUT_MULTIPLIER, the factor Check applies to the tests' own time limits. */
static long long time_multiplier(void)
{
    const char *text = getenv("CK_TIMEOUT_MULTIPLIER");
    long long factor = text ? atoll(text) : 1;

    return factor >= 1 && factor <= 100 ? factor : 1;
}

itest_deadline itest_deadline_in(int ms)
{
    return (itest_deadline){.end_ms = itest_now_ms() + (long long)ms * time_multiplier()};
}

bool itest_expired(const itest_deadline *deadline)
{
    return itest_now_ms() >= deadline->end_ms;
}

void itest_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
