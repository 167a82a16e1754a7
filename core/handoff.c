/*
 * handoff: a bounded single-producer/single-consumer ring and two signals between the reader and
 * the dispatcher thread.
 *
 * Each side owns one index (tail: items ever pushed; head: items ever popped) and only reads the
 * other's, with acquire/release ordering, so a busy stream crosses threads without a lock or a
 * system call per message. A side that finds nothing to do (the dispatcher: no item; the reader:
 * no room) raises its `sleeping` flag and sleeps on it (a futex); the other side looks at that
 * flag after publishing and wakes it only then, one system call. Both sides put a seq_cst fence
 * between their store and their load of the other's value, so either the sleeper sees the new
 * index or the publisher sees the flag; the waker clears the flag before waking, so a sleeper
 * that has not reached the futex yet does not sleep on it: a wake-up cannot be lost.
 *
 * Payloads of ordinary size are copied into a byte ring (contiguous, a tail too short is skipped)
 * and libpq's buffer is freed on the reader's own thread, where the allocator reuses it at once;
 * the bytes of the items popped are given back at the dispatcher's next pop.
 */
#include "handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define CACHE_LINE 64
#define RING_MASK ((uint64_t)WN_HANDOFF_BYTES - 1)
#define COPY_MAX (WN_HANDOFF_BYTES / 4) /* larger payloads travel in their own buffer */

_Static_assert((WN_HANDOFF_BYTES & (WN_HANDOFF_BYTES - 1)) == 0,
               "WN_HANDOFF_BYTES must be a power of two");

typedef struct slot {
    wn_item item;
    uint64_t bytes_end; /* the producer's reserved byte count once this item was placed */
} slot;

struct wn_handoff {
    /* Written by the reader (producer) only. */
    _Alignas(CACHE_LINE) _Atomic size_t tail; /* items ever pushed */
    atomic_int producer_sleeping;             /* a futex word: 1 while the reader waits for room */
    size_t head_seen;                         /* the reader's last look at head */
    uint64_t bytes_reserved;  /* payload bytes ever reserved, skipped tails included */
    uint64_t released_seen;   /* the reader's last look at bytes_released */
    _Atomic wn_lsn received;  /* highest WAL position the server sent */
    atomic_bool busy;         /* the stream is busy (see wn_handoff_set_busy) */
    atomic_bool pause_wanted; /* the dispatcher sleeps until the stream pauses, too */

    /* Written by the dispatcher (consumer) only. */
    _Alignas(CACHE_LINE) _Atomic size_t head; /* items ever popped */
    _Atomic uint64_t bytes_released;          /* payload bytes given back */
    atomic_int consumer_sleeping; /* a futex word: 1 while the dispatcher waits for items */
    size_t tail_seen;             /* the dispatcher's last look at tail */
    uint64_t bytes_in_use;      /* bytes_end of the last item popped: given back at the next pop */
    _Atomic uint64_t delivered; /* events delivered, read once a minute by the reader */
    _Atomic wn_lsn handled;     /* every plugin handled up to here */

    /* Shared, rarely written. */
    _Alignas(CACHE_LINE) slot *ring; /* capacity slots */
    size_t capacity;
    char *bytes; /* WN_HANDOFF_BYTES of payload */
    _Atomic wn_lsn acknowledgeable;
    atomic_bool stop;
    atomic_bool dispatcher_done;
    int stop_pipe[2];         /* readable once stop is requested */
    int ack_event;            /* eventfd: readable after the acknowledgeable position moved */
    wn_ack_sender ack_sender; /* sends a moved position without the reader, when it can */
    void *ack_arg;
};

_Static_assert(sizeof(atomic_int) == sizeof(int), "a futex word is a plain int");

wn_handoff *wn_handoff_create(size_t capacity)
{
    wn_handoff *handoff = aligned_alloc(CACHE_LINE, sizeof *handoff);

    if (handoff == NULL || capacity == 0)
        goto fail_alloc;
    memset(handoff, 0, sizeof *handoff);
    handoff->ring = calloc(capacity, sizeof *handoff->ring);
    if (handoff->ring == NULL)
        goto fail_alloc;
    handoff->bytes = malloc(WN_HANDOFF_BYTES);
    if (handoff->bytes == NULL)
        goto fail_ring;
    if (pipe2(handoff->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        goto fail_bytes;
    handoff->ack_event = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (handoff->ack_event < 0)
        goto fail_pipe;
    handoff->capacity = capacity;
    atomic_init(&handoff->tail, 0);
    atomic_init(&handoff->head, 0);
    atomic_init(&handoff->bytes_released, 0);
    atomic_init(&handoff->producer_sleeping, 0);
    atomic_init(&handoff->consumer_sleeping, 0);
    atomic_init(&handoff->acknowledgeable, WN_LSN_INVALID);
    atomic_init(&handoff->delivered, 0);
    atomic_init(&handoff->received, WN_LSN_INVALID);
    atomic_init(&handoff->busy, false);
    atomic_init(&handoff->pause_wanted, false);
    atomic_init(&handoff->handled, WN_LSN_INVALID);
    atomic_init(&handoff->stop, false);
    atomic_init(&handoff->dispatcher_done, false);
    return handoff;

fail_pipe:
    close(handoff->stop_pipe[0]);
    close(handoff->stop_pipe[1]);
fail_bytes:
    free(handoff->bytes);
fail_ring:
    free(handoff->ring);
fail_alloc:
    free(handoff);
    return NULL;
}

void wn_handoff_destroy(wn_handoff *handoff)
{
    if (handoff == NULL)
        return;
    size_t tail = atomic_load(&handoff->tail);

    for (size_t i = atomic_load(&handoff->head); i != tail; i++)
        wn_item_release(&handoff->ring[i % handoff->capacity].item);
    close(handoff->stop_pipe[0]);
    close(handoff->stop_pipe[1]);
    close(handoff->ack_event);
    free(handoff->bytes);
    free(handoff->ring);
    free(handoff);
}

/* The absolute CLOCK_MONOTONIC time timeout_ms from now. */
static struct timespec deadline_after(int timeout_ms)
{
    struct timespec deadline;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    return deadline;
}

/* The time from now to deadline in *left; false once it has passed. */
static bool time_left(const struct timespec *deadline, struct timespec *left)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    left->tv_sec = deadline->tv_sec - now.tv_sec;
    left->tv_nsec = deadline->tv_nsec - now.tv_nsec;
    if (left->tv_nsec < 0) {
        left->tv_sec--;
        left->tv_nsec += 1000000000L;
    }
    return left->tv_sec > 0 || (left->tv_sec == 0 && left->tv_nsec > 0);
}

/* Sleeps while *word is 1, at most `left` (EINTR, EAGAIN and ETIMEDOUT all mean: look again). */
static void futex_wait(atomic_int *word, const struct timespec *left)
{
    (void)syscall(SYS_futex, (int *)word, FUTEX_WAIT_PRIVATE, 1, left, NULL, 0);
}

static void futex_wake(atomic_int *word)
{
    (void)syscall(SYS_futex, (int *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Wakes the side sleeping on *sleeping, if it does. The fence orders the index just published
 * before the look at the flag (see the top of the file). */
static void wake_if_sleeping(atomic_int *sleeping)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(sleeping, memory_order_relaxed) && atomic_exchange(sleeping, 0))
        futex_wake(sleeping);
}

/* What a sleeping side waits for; arg is its own (the bytes needed, the head). */
typedef bool (*ready_fn)(wn_handoff *handoff, uint64_t arg);

/* Sleeps on *sleeping until ready(), a stop, or timeout_ms. Returns ready(). */
static bool sleep_until(wn_handoff *handoff, atomic_int *sleeping, ready_fn ready, uint64_t arg,
                        int timeout_ms)
{
    struct timespec deadline, left;

    if (timeout_ms <= 0 || atomic_load(&handoff->stop))
        return ready(handoff, arg);
    deadline = deadline_after(timeout_ms);
    for (;;) {
        bool ok;

        atomic_store(sleeping, 1);
        atomic_thread_fence(memory_order_seq_cst);
        ok = ready(handoff, arg);
        if (ok || atomic_load(&handoff->stop) || !time_left(&deadline, &left)) {
            atomic_store(sleeping, 0);
            return ok;
        }
        futex_wait(sleeping, &left);
    }
}

/* Where an item's payload goes: `need` bytes of the byte ring from the reserved count on (a
 * skipped tail included), the payload itself at `offset` when copied. */
typedef struct placement {
    uint64_t need;
    size_t offset;
    bool copy;
} placement;

static placement place(const wn_handoff *handoff, const wn_item *item)
{
    placement p = {0};
    size_t start;

    if (item->kind != WN_ITEM_DATA || item->buffer == NULL)
        return p;
    if (item->length > COPY_MAX) {
        /* Reserving the whole ring makes a large message travel alone. */
        p.need = WN_HANDOFF_BYTES;
        return p;
    }
    start = (size_t)(handoff->bytes_reserved & RING_MASK);
    p.copy = true;
    if (start + item->length > WN_HANDOFF_BYTES) {
        p.need = WN_HANDOFF_BYTES - start + item->length;
        p.offset = 0;
    } else {
        p.need = item->length;
        p.offset = start;
    }
    return p;
}

/* Reader: room for one more item needing `need` bytes? Looks at the dispatcher's indexes only
 * when the cached ones say no. */
static bool has_room(wn_handoff *handoff, uint64_t need)
{
    size_t tail = atomic_load_explicit(&handoff->tail, memory_order_relaxed);

    if (tail - handoff->head_seen >= handoff->capacity) {
        handoff->head_seen = atomic_load_explicit(&handoff->head, memory_order_acquire);
        if (tail - handoff->head_seen >= handoff->capacity)
            return false;
    }
    if (handoff->bytes_reserved + need - handoff->released_seen > WN_HANDOFF_BYTES) {
        handoff->released_seen =
            atomic_load_explicit(&handoff->bytes_released, memory_order_acquire);
        if (handoff->bytes_reserved + need - handoff->released_seen > WN_HANDOFF_BYTES)
            return false;
    }
    return true;
}

bool wn_handoff_put(wn_handoff *handoff, const wn_item *item)
{
    placement p = place(handoff, item);
    size_t tail = atomic_load_explicit(&handoff->tail, memory_order_relaxed);
    slot *s;

    if (!has_room(handoff, p.need))
        return false;
    s = &handoff->ring[tail % handoff->capacity];
    s->item = *item;
    handoff->bytes_reserved += p.need;
    if (p.copy) {
        memcpy(handoff->bytes + p.offset, item->payload, item->length);
        PQfreemem(item->buffer);
        s->item.buffer = NULL;
        s->item.payload = handoff->bytes + p.offset;
    }
    s->bytes_end = handoff->bytes_reserved;
    atomic_store_explicit(&handoff->tail, tail + 1, memory_order_release);
    return true;
}

void wn_handoff_wake(wn_handoff *handoff)
{
    wake_if_sleeping(&handoff->consumer_sleeping);
}

/* Reader: sleeps until there is room for an item needing `need` bytes, a stop, or timeout_ms. */
static bool wait_for_room(wn_handoff *handoff, uint64_t need, int timeout_ms)
{
    /* Items put without a wake-up must not wait for a dispatcher that sleeps. */
    wn_handoff_wake(handoff);
    if (atomic_load(&handoff->stop))
        return false;
    return sleep_until(handoff, &handoff->producer_sleeping, has_room, need, timeout_ms);
}

bool wn_handoff_push(wn_handoff *handoff, const wn_item *item, int timeout_ms)
{
    bool pushed = wn_handoff_put(handoff, item);

    /* The END item must get through after a stop too, but never waits: the dispatcher drains
     * until it sees it, and the caller retries. */
    if (!pushed && item->kind != WN_ITEM_END &&
        wait_for_room(handoff, place(handoff, item).need, timeout_ms))
        pushed = wn_handoff_put(handoff, item);
    if (pushed)
        wn_handoff_wake(handoff);
    return pushed;
}

/* Dispatcher: items ready to pop, looking at the reader's tail only when the cached one says
 * none. */
static size_t available(wn_handoff *handoff, size_t head)
{
    if (handoff->tail_seen == head)
        handoff->tail_seen = atomic_load_explicit(&handoff->tail, memory_order_acquire);
    return handoff->tail_seen - head;
}

static bool has_items(wn_handoff *handoff, uint64_t head)
{
    return available(handoff, (size_t)head) > 0;
}

static bool has_items_or_pause(wn_handoff *handoff, uint64_t head)
{
    return has_items(handoff, head) || !atomic_load_explicit(&handoff->busy, memory_order_relaxed);
}

static size_t pop_many(wn_handoff *handoff, wn_item *items, size_t max, int timeout_ms,
                       ready_fn ready)
{
    size_t head = atomic_load_explicit(&handoff->head, memory_order_relaxed);
    size_t n;

    /* The items popped last time are done with: their bytes may be reused. */
    if (atomic_load_explicit(&handoff->bytes_released, memory_order_relaxed) !=
        handoff->bytes_in_use)
        atomic_store_explicit(&handoff->bytes_released, handoff->bytes_in_use,
                              memory_order_release);
    /* Items already queued are handed out even after a stop: END must be seen. */
    n = available(handoff, head);
    if (n == 0) {
        /* Everything is given back: a reader waiting for room must not wait for us. */
        wake_if_sleeping(&handoff->producer_sleeping);
        if (sleep_until(handoff, &handoff->consumer_sleeping, ready, head, timeout_ms))
            n = available(handoff, head);
    }
    if (n == 0 || max == 0)
        return 0;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) {
        const slot *s = &handoff->ring[(head + i) % handoff->capacity];

        items[i] = s->item;
        handoff->bytes_in_use = s->bytes_end;
    }
    atomic_store_explicit(&handoff->head, head + n, memory_order_release);
    /* A reader waiting for room is woken once half the ring is free, not for every slot: one
     * wake-up then buys it many items. (An empty ring wakes it at the next pop, above.) */
    if (handoff->tail_seen - (head + n) <= handoff->capacity / 2)
        wake_if_sleeping(&handoff->producer_sleeping);
    return n;
}

size_t wn_handoff_pop_many(wn_handoff *handoff, wn_item *items, size_t max, int timeout_ms)
{
    return pop_many(handoff, items, max, timeout_ms, has_items);
}

size_t wn_handoff_pop_many_or_pause(wn_handoff *handoff, wn_item *items, size_t max, int timeout_ms)
{
    size_t n;

    atomic_store(&handoff->pause_wanted, true);
    n = pop_many(handoff, items, max, timeout_ms, has_items_or_pause);
    atomic_store(&handoff->pause_wanted, false);
    return n;
}

bool wn_handoff_pop(wn_handoff *handoff, wn_item *item, int timeout_ms)
{
    return wn_handoff_pop_many(handoff, item, 1, timeout_ms) == 1;
}

void wn_item_release(wn_item *item)
{
    if (item->buffer != NULL)
        PQfreemem(item->buffer);
    item->buffer = NULL;
    item->payload = NULL;
    item->length = 0;
}

bool wn_handoff_queue_empty(wn_handoff *handoff)
{
    size_t head = atomic_load_explicit(&handoff->head, memory_order_relaxed);

    handoff->tail_seen = atomic_load_explicit(&handoff->tail, memory_order_acquire);
    return handoff->tail_seen == head;
}

/* Both positions have one writer each: a plain store keeps them monotonic. */
void wn_handoff_set_received(wn_handoff *handoff, wn_lsn lsn)
{
    if (lsn > atomic_load_explicit(&handoff->received, memory_order_relaxed))
        atomic_store_explicit(&handoff->received, lsn, memory_order_release);
}

wn_lsn wn_handoff_received(const wn_handoff *handoff)
{
    return atomic_load_explicit(&((wn_handoff *)handoff)->received, memory_order_acquire);
}

void wn_handoff_set_busy(wn_handoff *handoff, bool busy)
{
    if (atomic_load_explicit(&handoff->busy, memory_order_relaxed) == busy)
        return;
    atomic_store(&handoff->busy, busy);
    /* A dispatcher holding a group until the stream pauses is waiting for this (and only it:
     * the others would wake for nothing). */
    if (!busy && atomic_load(&handoff->pause_wanted))
        wake_if_sleeping(&handoff->consumer_sleeping);
}

bool wn_handoff_busy(const wn_handoff *handoff)
{
    return atomic_load_explicit(&((wn_handoff *)handoff)->busy, memory_order_relaxed);
}

void wn_handoff_set_handled(wn_handoff *handoff, wn_lsn lsn)
{
    if (lsn > atomic_load_explicit(&handoff->handled, memory_order_relaxed))
        atomic_store_explicit(&handoff->handled, lsn, memory_order_relaxed);
}

wn_lsn wn_handoff_handled(const wn_handoff *handoff)
{
    return atomic_load_explicit(&((wn_handoff *)handoff)->handled, memory_order_relaxed);
}

void wn_handoff_set_acknowledgeable(wn_handoff *handoff, wn_lsn lsn)
{
    wn_lsn current = atomic_load(&handoff->acknowledgeable);

    /* Only the dispatcher writes, but keep it monotonic whatever a caller passes. */
    while (lsn > current && !atomic_compare_exchange_weak(&handoff->acknowledgeable, &current, lsn))
        ;
    if (lsn > current) {
        uint64_t one = 1;

        if (handoff->ack_sender != NULL && handoff->ack_sender(handoff->ack_arg))
            return;
        /* The reader reports the new position now rather than at its next timer tick. A full
         * counter (EAGAIN) already wakes it. */
        if (write(handoff->ack_event, &one, sizeof one) < 0) {
        }
    }
}

void wn_handoff_set_ack_sender(wn_handoff *handoff, wn_ack_sender send, void *arg)
{
    handoff->ack_sender = send;
    handoff->ack_arg = arg;
}

int wn_handoff_ack_fd(const wn_handoff *handoff)
{
    return handoff->ack_event;
}

void wn_handoff_ack_seen(wn_handoff *handoff)
{
    uint64_t count;

    if (read(handoff->ack_event, &count, sizeof count) < 0) {
        /* EAGAIN: nothing to clear. */
    }
}

wn_lsn wn_handoff_acknowledgeable(const wn_handoff *handoff)
{
    return atomic_load(&((wn_handoff *)handoff)->acknowledgeable);
}

size_t wn_handoff_length(const wn_handoff *handoff)
{
    wn_handoff *h = (wn_handoff *)handoff;

    return atomic_load_explicit(&h->tail, memory_order_relaxed) -
           atomic_load_explicit(&h->head, memory_order_relaxed);
}

void wn_handoff_set_delivered(wn_handoff *handoff, uint64_t events)
{
    atomic_store_explicit(&handoff->delivered, events, memory_order_relaxed);
}

uint64_t wn_handoff_delivered(const wn_handoff *handoff)
{
    return atomic_load_explicit(&((wn_handoff *)handoff)->delivered, memory_order_relaxed);
}

void wn_handoff_request_stop(wn_handoff *handoff)
{
    if (atomic_exchange(&handoff->stop, true))
        return;
    if (write(handoff->stop_pipe[1], "x", 1) < 0) {
        /* The pipe is empty and ours: a failure leaves poll to its timeout, nothing worse. */
    }
    /* A sleeper looks at stop after raising its flag, so this cannot slip between. */
    wake_if_sleeping(&handoff->consumer_sleeping);
    wake_if_sleeping(&handoff->producer_sleeping);
}

bool wn_handoff_stop_requested(const wn_handoff *handoff)
{
    return atomic_load(&((wn_handoff *)handoff)->stop);
}

int wn_handoff_stop_fd(const wn_handoff *handoff)
{
    return handoff->stop_pipe[0];
}

void wn_handoff_set_dispatcher_done(wn_handoff *handoff)
{
    atomic_store(&handoff->dispatcher_done, true);
    if (write(handoff->stop_pipe[1], "d", 1) < 0) {
        /* See wn_handoff_request_stop. */
    }
}

bool wn_handoff_dispatcher_done(const wn_handoff *handoff)
{
    return atomic_load(&((wn_handoff *)handoff)->dispatcher_done);
}
