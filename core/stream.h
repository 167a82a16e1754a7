/*
 * stream: the replication connection. Runs on the reader thread: reads CopyData, answers
 * keepalives, sends status updates on its own timer with the position the dispatcher publishes,
 * and never calls a plugin.
 */
#ifndef WN_STREAM_H
#define WN_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "handoff.h"
#include "lsn.h"

typedef struct wn_stream_options {
    const char *conninfo;     /* the user's */
    bool utf8;                /* add client_encoding=UTF8 */
    const char *slot;
    const char *publication;
    wn_lsn start_lsn;         /* 0: resume at the slot's confirmed_flush_lsn */
    int status_interval_ms;
} wn_stream_options;

typedef struct wn_stream wn_stream;

/*
 * Connects (replication=database) and starts streaming from the slot with pgoutput protocol
 * version 1. Returns 0 with *stream set, or an exit status (1 or 3) with one line in err.
 */
int wn_stream_open(wn_stream **stream, const wn_stream_options *options, char *err,
                   size_t errlen);

/*
 * The reader thread's body: streams into handoff until a stop is requested (then waits for the
 * dispatcher's final position, sends it, ends the copy) or the stream fails. Always pushes a
 * WN_ITEM_END before returning. Returns 0 after a requested stop, or an exit status with one
 * line in err.
 */
int wn_stream_run(wn_stream *stream, wn_handoff *handoff, char *err, size_t errlen);

/* Closes the connection and frees the stream. */
void wn_stream_close(wn_stream *stream);

#endif
