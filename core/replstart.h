/*
 * replstart: the START_REPLICATION command of a logical stream (pgoutput, protocol version 1),
 * on a replication connection in command mode: at the start of a connection, and again on the
 * same connection after a rewind.
 */
#ifndef WN_REPLSTART_H
#define WN_REPLSTART_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "lsn.h"

typedef struct wn_replstart {
    const char *slot;        /* borrowed */
    const char *publication; /* borrowed */
    wn_lsn start_lsn;        /* 0: resume at the slot's confirmed_flush_lsn */
    bool messages;           /* ask pgoutput for logical decoding messages (messages 'true') */
    int stop_fd;             /* readable once a stop is requested: ends the wait; -1: none */
} wn_replstart;

/*
 * Sends START_REPLICATION on conn and waits for the copy to start. Returns 0 (conn is in COPY
 * BOTH), or with one line in err: WN_EXIT_STOPPED (a stop came), WN_EXIT_SLOT_BUSY (the slot is
 * active for another process), or an exit status (a slot that does not exist is 3).
 */
int wn_start_replication(PGconn *conn, const wn_replstart *options, char *err, size_t errlen);

/*
 * Makes the walsender of conn (in command mode, after a copy the client ended) able to start a
 * logical stream again, which PostgreSQL 14 to 18 cannot do on their own; leaves one ERROR line
 * in the server's log (see replstart.c). stop_fd as in wn_replstart. Returns 0, or with one line
 * in err: WN_EXIT_STOPPED (a stop came) or WN_EXIT_TRANSIENT (the server answered otherwise than
 * expected: a new connection may stream).
 */
int wn_replstart_reset(PGconn *conn, int stop_fd, char *err, size_t errlen);

#endif
