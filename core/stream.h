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
#include "state.h"

typedef struct wn_stream_options {
    const char *conninfo; /* the user's */
    bool utf8;            /* add client_encoding=UTF8 */
    const char *slot;
    const char *publication;
    wn_lsn start_lsn; /* 0: resume at the slot's confirmed_flush_lsn */
    bool messages;    /* ask pgoutput for logical decoding messages (messages 'true') */
    int status_interval_ms;
    int receive_timeout_ms;   /* silence before asking for a reply, and again before giving the
                                 connection up */
    const char *state_file;   /* NULL: none. Else rewritten each time a status update reported
                                 a new flush position (at most once per status interval) */
    const wn_state *origin;   /* the server, database and slot written to state_file; copied */
    int progress_interval_ms; /* between progress lines */
    int stop_fd;              /* readable once a stop is requested: ends connecting and
                                 START_REPLICATION (WN_EXIT_STOPPED); -1: none */
} wn_stream_options;

typedef struct wn_stream wn_stream;

/*
 * Connects (replication=database) and starts streaming from the slot with pgoutput protocol
 * version 1. Returns 0 with *stream set, or with one line in err: WN_EXIT_STOPPED (a stop came,
 * see stop_fd), WN_EXIT_SLOT_BUSY (the slot is
 * active for another process), WN_EXIT_TRANSIENT (waiting may help), or an exit status (1 or 3;
 * a slot that does not exist is 3).
 */
int wn_stream_open(wn_stream **stream, const wn_stream_options *options, char *err, size_t errlen);

/*
 * The reader thread's body: streams into handoff until a stop is requested (then waits for the
 * dispatcher's final position, sends it, ends the copy) or the stream fails. Always pushes a
 * WN_ITEM_END before returning. Returns 0 after a requested stop, WN_EXIT_TRANSIENT when the
 * connection was lost or the server ended the stream (a new connection may resume), or
 * WN_EXIT_SERVER for a protocol error; with one line in err.
 */
int wn_stream_run(wn_stream *stream, wn_handoff *handoff, char *err, size_t errlen);

/*
 * Records in the state file, durably, that the initial snapshot with this consistent point
 * finished (the position as last written stays); every later write keeps it. Called from the
 * dispatcher's thread while the reader runs. Returns 0, or an errno value with one line in err.
 */
int wn_stream_record_snapshot(wn_stream *stream, wn_lsn consistent_point, char *err, size_t errlen);

/*
 * Starts the stream again on its own connection, at start_lsn, once wn_stream_run has ended and
 * ended the copy (the walsender and its PID stay; it holds the slot again once this returns).
 * Waits first, a bounded time, for the server to end the copy: it does after the transaction it
 * is sending, whose rest is dropped. messages as in wn_stream_options. Returns 0, or with one
 * line in err: WN_EXIT_STOPPED (a stop came), WN_EXIT_TRANSIENT (the copy did not end, or not in
 * time), WN_EXIT_SLOT_BUSY, or an exit status as wn_stream_open's; after a failure the stream is
 * only good for wn_stream_close (a new connection may resume).
 */
int wn_stream_restart(wn_stream *stream, wn_lsn start_lsn, bool messages, char *err, size_t errlen);

/* The PID of the walsender serving the stream. */
int wn_stream_backend_pid(const wn_stream *stream);

/* Closes the connection and frees the stream. */
/* For wn_handoff_set_ack_sender (arg: the stream): sends the position the dispatcher just
 * published when the reader sleeps; false when it did not (the reader is woken for it). */
bool wn_stream_acknowledge(void *arg);

void wn_stream_close(wn_stream *stream);

#endif
