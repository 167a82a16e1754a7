/*
 * notify: systemd's notify protocol, spoken directly (no libsystemd): datagrams of
 * "KEY=VALUE\n" lines to the socket NOTIFY_SOCKET names (a path, or "@name" in the abstract
 * namespace). Without NOTIFY_SOCKET every call does nothing. READY=1 goes with the first
 * status (streaming, or waiting as a standby or for the server: the loop runs), STATUS= with
 * each change of state, WATCHDOG=1 at half of WATCHDOG_USEC when that is set for this process,
 * RELOADING=1 and READY=1 around a reload, STOPPING=1 once the loop ends. Only the dispatching
 * thread calls it: no lock. Every call but open and close accepts NULL and does nothing.
 */
#ifndef WN_NOTIFY_H
#define WN_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

typedef struct wn_notify {
    int fd;                    /* -1: no NOTIFY_SOCKET */
    struct sockaddr_un addr;   /* where the datagrams go */
    socklen_t addrlen;         /* of addr as used */
    bool ready;                /* READY=1 was sent */
    int64_t watchdog_every_ms; /* 0: no watchdog; else half of WATCHDOG_USEC */
    int64_t next_ping_ms;      /* monotonic time of the next WATCHDOG=1 */
    int64_t next_progress_ms;  /* monotonic time the next wn_notify_progress may send */
} wn_notify;

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID; never fails (a socket that cannot be
 * used is said once at WARNING, and notify then does nothing). */
void wn_notify_open(wn_notify *notify);
void wn_notify_close(wn_notify *notify);

/* "STATUS=text" (with READY=1 the first time). */
__attribute__((format(printf, 2, 3))) void wn_notify_status(wn_notify *notify, const char *format,
                                                            ...);
/* The position streamed so far, as "STATUS=streaming slot "S" at LSN", at most every
 * WN_NOTIFY_PROGRESS_MS (the acknowledged position moves every status interval). */
#define WN_NOTIFY_PROGRESS_MS 10000
void wn_notify_progress(wn_notify *notify, const char *slot, const char *lsn);
/* WATCHDOG=1 when due; now_ms from CLOCK_MONOTONIC (coarse will do). Cheap when not due. */
void wn_notify_alive(wn_notify *notify, int64_t now_ms);
/* The longest a wait may last between two calls of wn_notify_alive; a large value when there is
 * no watchdog. */
int wn_notify_wait_ms(const wn_notify *notify, int ms);
/* RELOADING=1 (with MONOTONIC_USEC, as systemd wants it) when a reload begins; READY=1 when it
 * ended, applied or refused. */
void wn_notify_reloading(wn_notify *notify);
void wn_notify_reloaded(wn_notify *notify);
/* STOPPING=1. */
void wn_notify_stopping(wn_notify *notify);

#endif
