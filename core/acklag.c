/* acklag: a ring of commits awaiting acknowledgement, and a histogram of their waits. */
#include "acklag.h"

static int bucket_of(int64_t us)
{
    int64_t b;

    if (us < 0)
        us = 0;
    b = us < 20 * WN_ACKLAG_FINE ? us / 20 : WN_ACKLAG_FINE + (us - 20 * WN_ACKLAG_FINE) / 1000;
    return b >= WN_ACKLAG_BUCKETS ? WN_ACKLAG_BUCKETS - 1 : (int)b;
}

/* The bucket's upper bound, in µs. */
static int64_t bucket_top(int b)
{
    if (b < WN_ACKLAG_FINE)
        return (int64_t)(b + 1) * 20;
    return 20 * WN_ACKLAG_FINE + (int64_t)(b - WN_ACKLAG_FINE + 1) * 1000;
}

void wn_acklag_received(wn_acklag *lag, wn_lsn end, int64_t now_us)
{
    if (lag->tail - lag->head >= WN_ACKLAG_PENDING)
        return;
    lag->pending[lag->tail % WN_ACKLAG_PENDING].end = end;
    lag->pending[lag->tail % WN_ACKLAG_PENDING].at_us = now_us;
    lag->tail++;
}

void wn_acklag_acknowledged(wn_acklag *lag, wn_lsn flush, int64_t now_us)
{
    while (lag->head != lag->tail && lag->pending[lag->head % WN_ACKLAG_PENDING].end <= flush) {
        int64_t waited = now_us - lag->pending[lag->head % WN_ACKLAG_PENDING].at_us;

        lag->buckets[bucket_of(waited)]++;
        lag->count++;
        if (waited > lag->max_us)
            lag->max_us = waited;
        lag->head++;
    }
}

int64_t wn_acklag_quantile(const wn_acklag *lag, double p)
{
    uint64_t want = (uint64_t)(p * (double)lag->count + 0.5);
    uint64_t seen = 0;

    if (lag->count == 0)
        return 0;
    if (want == 0)
        want = 1;
    for (int b = 0; b < WN_ACKLAG_BUCKETS; b++) {
        seen += lag->buckets[b];
        if (seen >= want)
            return bucket_top(b);
    }
    return lag->max_us;
}
