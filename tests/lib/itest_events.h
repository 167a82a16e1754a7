/*
 * itest_events: the jsonl plugin's output read back, every line parsed and its fixed key order
 * checked, and compared in compact descriptions.
 */
#ifndef WN_TEST_ITEST_EVENTS_H
#define WN_TEST_ITEST_EVENTS_H

#include <stddef.h>

#include "jline.h"
#include "lsn.h"

/* One jsonl line, parsed, with its fixed members checked. */
typedef struct itest_event {
    jl_value *json;         /* owned */
    wn_lsn lsn;
    long seq;
    long long xid;
    const char *table;      /* borrowed from json */
    const char *op;
    const jl_value *values; /* NULL when absent */
    const jl_value *old;
    const jl_value *unchanged;
    const jl_value *options;
} itest_event;

typedef struct itest_events {
    itest_event *event;
    size_t count;
} itest_events;

itest_events itest_read_events(const char *path);
void itest_events_free(itest_events *events);
/* The text of a member of an event's `values` (NULL for JSON null); fails when absent. */
const char *itest_value(const itest_event *event, const char *column);

/*
 * A compact description of an event for comparisons:
 * "public.a update 2 {id:10,v:x} unchanged[big] old{id:1} options[cascade]" (parts present only
 * when the line has them; null prints as null, values over 64 bytes as <N bytes>). To free.
 */
char *itest_describe(const itest_event *event);
/* Fails unless the events' descriptions equal want (count entries), naming the first mismatch. */
void itest_assert_described(const itest_events *events, const char *const *want, size_t count,
                            const char *what);
/* Commit order: within one lsn seq grows, and each new lsn is above the previous one. */
void itest_assert_commit_order(const itest_events *events);

#endif
