/* backoff: exponential delays with jitter, for reconnecting and for waiting on a busy slot. */
#ifndef WN_BACKOFF_H
#define WN_BACKOFF_H

typedef struct wn_backoff {
    int next_ms; /* the current step, before jitter */
    int max_ms;  /* the cap of the step */
} wn_backoff;

/* A backoff starting at initial_ms and doubling up to max_ms (both at least 1). */
wn_backoff wn_backoff_start(int initial_ms, int max_ms);

/* The next delay: the current step ±20 % (so that many hosts restarted together do not knock at
 * once); the step then doubles up to the cap. seed is rand_r's. */
int wn_backoff_next(wn_backoff *backoff, unsigned *seed);

#endif
