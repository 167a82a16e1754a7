/*
 * exitcode: walnotify's exit statuses, as the command line promises them, and the two results
 * below them that ask the caller to wait and try again. One list, so that every module returns
 * the same numbers.
 */
#ifndef WN_EXITCODE_H
#define WN_EXITCODE_H

typedef enum wn_exit {
    WN_EXIT_OK = 0,       /* a clean stop: signal, --endpos, or a slot command that succeeded */
    WN_EXIT_CONFIG = 1,   /* usage or configuration error */
    WN_EXIT_PLUGIN = 2,   /* a plugin refused to load, failed to start, or failed fatally */
    WN_EXIT_INTERNAL = 2, /* walnotify itself failed at run time (out of memory, no thread):
                             like a plugin's fatal failure, a restart may cure it */
    WN_EXIT_SERVER = 3,   /* the server or slot is in a state that needs a person */
    /* Not exit statuses: failures that waiting may cure, for the caller to retry (or to turn
     * into WN_EXIT_SERVER with wn_exit_status when it does not wait). */
    WN_EXIT_TRANSIENT = 75, /* server unreachable, starting up, shutting down; connection lost */
    WN_EXIT_SLOT_BUSY = 76, /* the slot is active for another process (SQLSTATE 55006) */
    WN_EXIT_STOPPED = 77    /* SIGINT/SIGTERM came while connecting or waiting on the server */
} wn_exit;

/* The exit status for a status that may be a "wait and retry" one, when there is no waiting. */
static inline int wn_exit_status(int status)
{
    return status == WN_EXIT_TRANSIENT || status == WN_EXIT_SLOT_BUSY ? WN_EXIT_SERVER : status;
}

#endif
