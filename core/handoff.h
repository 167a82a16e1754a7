/*
 * handoff: the one narrow path between the reader thread (owns the connection) and the
 * dispatcher thread (decodes and calls plugins).
 *
 *   reader -> dispatcher: a bounded FIFO of items (data messages and keepalive positions, in
 *                         the order the server sent them);
 *   dispatcher -> reader: one value, the position that is safe to acknowledge;
 *   either way:           a stop request, and the dispatcher's "final position published".
 */
#ifndef WN_HANDOFF_H
#define WN_HANDOFF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

typedef enum wn_item_kind {
    WN_ITEM_DATA,      /* one XLogData message */
    WN_ITEM_KEEPALIVE, /* a primary keepalive: everything before wal_end has been sent */
    WN_ITEM_END        /* the reader stopped: no item follows */
} wn_item_kind;

typedef struct wn_item {
    wn_item_kind kind;
    wn_lsn wal_start;    /* DATA: the message's WAL position (0 for some messages) */
    wn_lsn wal_end;      /* DATA and KEEPALIVE: the server's current end of WAL */
    char *buffer;        /* DATA: libpq's buffer, owned by the item: release with
                            wn_item_release */
    const char *payload; /* DATA: the pgoutput message inside buffer */
    size_t length;       /* DATA: bytes of payload */
} wn_item;

typedef struct wn_handoff wn_handoff;

/* A handoff whose queue holds at most `capacity` items. NULL when out of memory. */
wn_handoff *wn_handoff_create(size_t capacity);
/* Releases the handoff and every item still queued. */
void wn_handoff_destroy(wn_handoff *handoff);

/*
 * The queue is a single-producer, single-consumer ring: exactly one thread pushes and exactly one
 * pops. A DATA item's payload of ordinary size is copied into the handoff's own byte ring and
 * libpq's buffer freed at once, on the pushing thread; a larger one travels in its buffer, alone
 * (nothing else is queued beside it), so the memory in flight stays bounded by
 * WN_HANDOFF_BYTES plus one message.
 */
#define WN_HANDOFF_BYTES (1u << 20) /* bytes of payload the ring holds; a power of two */

/* Reader: appends item, waiting up to timeout_ms for room, and wakes the dispatcher if it
 * sleeps. false on timeout or stop (the item is then still the caller's). */
bool wn_handoff_push(wn_handoff *handoff, const wn_item *item, int timeout_ms);
/* Reader: appends item if there is room now, without waking the dispatcher: the item becomes
 * visible at once, but a sleeping dispatcher only wakes at the next wn_handoff_wake or
 * wn_handoff_push. false when full (the item is then still the caller's). */
bool wn_handoff_put(wn_handoff *handoff, const wn_item *item);
/* Reader: wakes the dispatcher if it sleeps waiting for items; costs no system call otherwise.
 * Call after a batch of wn_handoff_put. */
void wn_handoff_wake(wn_handoff *handoff);
/* Dispatcher: takes the oldest item, waiting up to timeout_ms. false on timeout or stop. */
bool wn_handoff_pop(wn_handoff *handoff, wn_item *item, int timeout_ms);
/* Dispatcher: takes up to max of the oldest items, in order, waiting up to timeout_ms for the
 * first. Returns how many (0 on timeout or stop). */
size_t wn_handoff_pop_many(wn_handoff *handoff, wn_item *items, size_t max, int timeout_ms);
/* Dispatcher: the same, but also returns (with nothing) once the reader says the stream is no
 * longer busy: a group of transactions held while the stream was busy ends when it pauses. */
size_t wn_handoff_pop_many_or_pause(wn_handoff *handoff, wn_item *items, size_t max,
                                    int timeout_ms);
/* Frees what a DATA item owns. A payload held in the handoff's byte ring (buffer NULL) stays
 * valid until the dispatcher's next pop: release items before popping again. */
void wn_item_release(wn_item *item);

/* Dispatcher: true when no item waits in the queue (the reader may be putting one now). */
bool wn_handoff_queue_empty(wn_handoff *handoff);

/* Reader: the highest WAL position the server has sent so far (every message and keepalive up to
 * it is queued or handled). Dispatcher: what the server had sent when it looked. */
void wn_handoff_set_received(wn_handoff *handoff, wn_lsn lsn);
wn_lsn wn_handoff_received(const wn_handoff *handoff);

/* Reader: whether messages come fast enough that an empty queue only means the reader is
 * between reads (false wakes a dispatcher waiting for the pause). Dispatcher: what the reader
 * last said. */
void wn_handoff_set_busy(wn_handoff *handoff, bool busy);
bool wn_handoff_busy(const wn_handoff *handoff);

/* The position every plugin has handled (not yet made durable): what the server is told was
 * written. Only ever moves forward; reported with the next status update, no wake-up. */
void wn_handoff_set_handled(wn_handoff *handoff, wn_lsn lsn);
wn_lsn wn_handoff_handled(const wn_handoff *handoff);

/* A way to send a newly published position from the dispatcher's thread at once; it says
 * whether it did. Without one, or when it did not, the reader is woken to send it. Set before
 * the threads start. */
typedef bool (*wn_ack_sender)(void *arg);
void wn_handoff_set_ack_sender(wn_handoff *handoff, wn_ack_sender send, void *arg);

/* The position PostgreSQL may be told is flushed. Only ever moves forward. */
void wn_handoff_set_acknowledgeable(wn_handoff *handoff, wn_lsn lsn);
wn_lsn wn_handoff_acknowledgeable(const wn_handoff *handoff);
/* A file descriptor that becomes readable when the acknowledgeable position moves, for poll();
 * wn_handoff_ack_seen makes it unreadable again. */
int wn_handoff_ack_fd(const wn_handoff *handoff);
void wn_handoff_ack_seen(wn_handoff *handoff);

/* Dispatcher: the events delivered so far in this stream, for the reader's progress line (which
 * goes on while a plugin blocks). A relaxed store: it costs nothing per event. */
/* Items queued and not yet popped, at a glance (either thread). */
size_t wn_handoff_length(const wn_handoff *handoff);

void wn_handoff_set_delivered(wn_handoff *handoff, uint64_t events);
uint64_t wn_handoff_delivered(const wn_handoff *handoff);

/* Asks both threads to stop; wakes whoever waits. Async-signal-unsafe: call from a thread. */
void wn_handoff_request_stop(wn_handoff *handoff);
bool wn_handoff_stop_requested(const wn_handoff *handoff);
/* A file descriptor that becomes readable once stop is requested, for poll(). */
int wn_handoff_stop_fd(const wn_handoff *handoff);

/* Dispatcher: its final position is published; the reader may send it and close. */
void wn_handoff_set_dispatcher_done(wn_handoff *handoff);
bool wn_handoff_dispatcher_done(const wn_handoff *handoff);

#endif
