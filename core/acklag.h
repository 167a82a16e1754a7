/*
 * acklag: how long each transaction waited between its Commit reaching walnotify and the status
 * update that acknowledged it, measured on the reader thread where both times are known (a
 * sampler of the slot's position cannot see milliseconds). Reader thread only; no locking.
 */
#ifndef WN_ACKLAG_H
#define WN_ACKLAG_H

#include <stdint.h>

#include "lsn.h"

#define WN_ACKLAG_PENDING 4096 /* commits awaiting their acknowledgement; more are not timed */
#define WN_ACKLAG_FINE 1000    /* 20 µs buckets up to 20 ms, */
#define WN_ACKLAG_BUCKETS 3000 /* then 1 ms buckets up to about 2 s (the last holds the rest) */

typedef struct wn_acklag {
    struct {
        wn_lsn end;    /* the Commit's end LSN */
        int64_t at_us; /* monotonic time it was received */
    } pending[WN_ACKLAG_PENDING];
    uint64_t head, tail; /* pending[head % N ... tail % N) wait, oldest first */
    uint64_t buckets[WN_ACKLAG_BUCKETS];
    uint64_t count; /* transactions timed */
    int64_t max_us;
} wn_acklag;

/* A Commit ending at end came in at now_us. */
void wn_acklag_received(wn_acklag *lag, wn_lsn end, int64_t now_us);
/* A status update acknowledging flush left at now_us: every commit up to it is timed. */
void wn_acklag_acknowledged(wn_acklag *lag, wn_lsn flush, int64_t now_us);
/* The lag (µs, to the bucket's upper bound) under which fraction p (0..1) of the timed
 * transactions fell; 0 when none was timed. */
int64_t wn_acklag_quantile(const wn_acklag *lag, double p);

#endif
