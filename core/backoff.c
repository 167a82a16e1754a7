/* backoff: exponential delays with jitter. */
#include "backoff.h"

#include <stdint.h>
#include <stdlib.h>

#define JITTER_PERCENT 20

wn_backoff wn_backoff_start(int initial_ms, int max_ms)
{
    wn_backoff backoff;

    backoff.max_ms = max_ms > 0 ? max_ms : 1;
    backoff.next_ms = initial_ms > 0 ? initial_ms : 1;
    if (backoff.next_ms > backoff.max_ms)
        backoff.next_ms = backoff.max_ms;
    return backoff;
}

int wn_backoff_next(wn_backoff *backoff, unsigned *seed)
{
    int64_t base = backoff->next_ms;
    int64_t spread = base * JITTER_PERCENT / 100;
    int64_t delay = base - spread + (spread > 0 ? (int64_t)(rand_r(seed) % (2 * spread + 1)) : 0);

    backoff->next_ms = base * 2 > backoff->max_ms ? backoff->max_ms : (int)(base * 2);
    return delay > 0 ? (int)delay : 1;
}
