/*
 * events: what a protocol message becomes for the plugins: the event of a row change, of each
 * truncated table, of a logical decoding message. Every function takes the dispatcher's state
 * (dispatchstate.h): the relation cache, the transaction in hand, the columns and the arena an
 * event borrows until the next one is built. A FLOW_DONE leaves d->result saying why.
 */
#ifndef WN_EVENTS_H
#define WN_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "decoder.h"
#include "dispatchstate.h"
#include "relcache.h"

/* An Insert, Update or Delete message, read: its parts point into the message. */
typedef struct wn_row_change {
    char kind; /* 'I', 'U' or 'D' */
    walnotify_op op;
    wn_relation *rel;          /* from the relation cache */
    const wn_tuple *new_tuple; /* NULL for a Delete */
    const wn_tuple *old_tuple; /* NULL when the message carries no old row or key */
    char old_kind;             /* 'K' (key), 'O' (row) or 0 */
} wn_row_change;

/* The columns events are built in. Returns 0, or -1 when out of memory; wn_events_free releases
 * what was allocated either way (and the arena). */
int wn_events_setup(dispatcher *d);
void wn_events_free(dispatcher *d);

/* Reads an Insert, Update or Delete message and finds its relation in the cache. FLOW_DONE when
 * no Relation message described it. */
flow wn_events_read_row_change(dispatcher *d, const wn_message *msg, wn_row_change *change);

/* The event of a row change read, its values in the arena. */
flow wn_events_build_row_change(dispatcher *d, const wn_row_change *change, walnotify_event *event);

/* The event of the i-th table a Truncate message names; *rel receives its relation. */
flow wn_events_build_truncate(dispatcher *d, const wn_message *msg, uint32_t i, wn_relation **rel,
                              walnotify_event *event);

/* The event of a logical decoding message: in the transaction in hand when transactional, else
 * at the message's own LSN. Its content stays in the message until
 * wn_events_terminate_content. */
void wn_events_init_message(const dispatcher *d, const wn_message *msg, bool transactional,
                            walnotify_event *event);

/* Copies a message event's content to the arena, NUL-terminated. */
flow wn_events_terminate_content(dispatcher *d, walnotify_event *event);

#endif
