/* handoff: a bounded FIFO and two signals between the reader and the dispatcher thread. */
#include "handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

struct wn_handoff {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    wn_item *ring;               /* capacity slots */
    size_t capacity;
    size_t head;                 /* oldest item */
    size_t count;
    unsigned consumer_waiting;   /* wake-ups are sent only to a thread that waits */
    unsigned producer_waiting;
    _Atomic wn_lsn acknowledgeable;
    atomic_bool stop;
    atomic_bool dispatcher_done;
    int stop_pipe[2];            /* readable once stop is requested */
    int ack_event;               /* eventfd: readable after the acknowledgeable position moved */
};

wn_handoff *wn_handoff_create(size_t capacity)
{
    wn_handoff *handoff = calloc(1, sizeof *handoff);

    if (handoff == NULL || capacity == 0)
        goto fail_alloc;
    handoff->ring = calloc(capacity, sizeof *handoff->ring);
    if (handoff->ring == NULL)
        goto fail_alloc;
    if (pipe2(handoff->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        goto fail_ring;
    handoff->ack_event = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (handoff->ack_event < 0)
        goto fail_pipe;
    handoff->capacity = capacity;
    pthread_mutex_init(&handoff->lock, NULL);
    pthread_cond_init(&handoff->not_empty, NULL);
    pthread_cond_init(&handoff->not_full, NULL);
    atomic_init(&handoff->acknowledgeable, WN_LSN_INVALID);
    atomic_init(&handoff->stop, false);
    atomic_init(&handoff->dispatcher_done, false);
    return handoff;

fail_pipe:
    close(handoff->stop_pipe[0]);
    close(handoff->stop_pipe[1]);
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
    for (size_t i = 0; i < handoff->count; i++)
        wn_item_release(&handoff->ring[(handoff->head + i) % handoff->capacity]);
    pthread_mutex_destroy(&handoff->lock);
    pthread_cond_destroy(&handoff->not_empty);
    pthread_cond_destroy(&handoff->not_full);
    close(handoff->stop_pipe[0]);
    close(handoff->stop_pipe[1]);
    close(handoff->ack_event);
    free(handoff->ring);
    free(handoff);
}

/* The absolute CLOCK_REALTIME time timeout_ms from now, for pthread_cond_timedwait. */
static struct timespec deadline_after(int timeout_ms)
{
    struct timespec deadline;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    return deadline;
}

/* Waits on cond until predicate_ok() holds, stop, or the deadline; the lock is held. */
static bool wait_for(wn_handoff *handoff, pthread_cond_t *cond, unsigned *waiting,
                     bool (*predicate_ok)(const wn_handoff *), int timeout_ms)
{
    struct timespec deadline = deadline_after(timeout_ms);

    while (!predicate_ok(handoff)) {
        if (atomic_load(&handoff->stop) || timeout_ms <= 0)
            return false;
        (*waiting)++;
        int rc = pthread_cond_timedwait(cond, &handoff->lock, &deadline);
        (*waiting)--;
        if (rc == ETIMEDOUT)
            return predicate_ok(handoff);
    }
    return true;
}

static bool has_room(const wn_handoff *handoff)
{
    return handoff->count < handoff->capacity;
}

static bool has_items(const wn_handoff *handoff)
{
    return handoff->count > 0;
}

bool wn_handoff_push(wn_handoff *handoff, const wn_item *item, int timeout_ms)
{
    bool pushed = false;

    pthread_mutex_lock(&handoff->lock);
    /* The END item must get through after a stop too: the dispatcher drains until it sees it. */
    if (item->kind == WN_ITEM_END ? has_room(handoff)
                                  : wait_for(handoff, &handoff->not_full,
                                             &handoff->producer_waiting, has_room, timeout_ms)) {
        handoff->ring[(handoff->head + handoff->count) % handoff->capacity] = *item;
        handoff->count++;
        pushed = true;
        if (handoff->consumer_waiting)
            pthread_cond_signal(&handoff->not_empty);
    }
    pthread_mutex_unlock(&handoff->lock);
    return pushed;
}

bool wn_handoff_pop(wn_handoff *handoff, wn_item *item, int timeout_ms)
{
    bool popped = false;

    pthread_mutex_lock(&handoff->lock);
    /* Items already queued are handed out even after a stop: END must be seen. */
    if (has_items(handoff) ||
        wait_for(handoff, &handoff->not_empty, &handoff->consumer_waiting, has_items, timeout_ms)) {
        *item = handoff->ring[handoff->head];
        handoff->head = (handoff->head + 1) % handoff->capacity;
        handoff->count--;
        popped = true;
        if (handoff->producer_waiting)
            pthread_cond_signal(&handoff->not_full);
    }
    pthread_mutex_unlock(&handoff->lock);
    return popped;
}

void wn_item_release(wn_item *item)
{
    if (item->buffer != NULL)
        PQfreemem(item->buffer);
    item->buffer = NULL;
    item->payload = NULL;
    item->length = 0;
}

void wn_handoff_set_acknowledgeable(wn_handoff *handoff, wn_lsn lsn)
{
    wn_lsn current = atomic_load(&handoff->acknowledgeable);

    /* Only the dispatcher writes, but keep it monotonic whatever a caller passes. */
    while (lsn > current && !atomic_compare_exchange_weak(&handoff->acknowledgeable, &current, lsn))
        ;
    if (lsn > current) {
        uint64_t one = 1;

        /* The reader reports the new position now rather than at its next timer tick. A full
         * counter (EAGAIN) already wakes it. */
        if (write(handoff->ack_event, &one, sizeof one) < 0) {
        }
    }
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

void wn_handoff_request_stop(wn_handoff *handoff)
{
    if (atomic_exchange(&handoff->stop, true))
        return;
    if (write(handoff->stop_pipe[1], "x", 1) < 0) {
        /* The pipe is empty and ours: a failure leaves poll to its timeout, nothing worse. */
    }
    pthread_mutex_lock(&handoff->lock);
    pthread_cond_broadcast(&handoff->not_empty);
    pthread_cond_broadcast(&handoff->not_full);
    pthread_mutex_unlock(&handoff->lock);
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
