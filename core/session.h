/*
 * session: how SIGINT and SIGTERM reach a run. One thread takes the signals with sigwait and
 * turns them into a stop request: to the reader + dispatcher pair running at the time, to any
 * backoff wait between two pairs, and to whatever waits on the server (through stop_fd). It runs
 * in every mode, from before the configuration is read. SIGHUP asks for a reload of the
 * configuration (wn_session_take_reload); SIGUSR1 and SIGUSR2 from outside are taken too, and
 * ignored: no signal ends the thread but the one wn_session_end sends. A stop
 * that takes too long, or the same stop signal again, ends the process from this thread.
 */
#ifndef WN_SESSION_H
#define WN_SESSION_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "handoff.h"

typedef struct wn_session {
    pthread_mutex_t lock;
    wn_handoff *handoff; /* the running pair's, NULL between pairs; under lock */
    bool stop;           /* SIGINT/SIGTERM came; under lock */
    int signo;           /* the signal that asked for the stop; under lock */
    bool ending;         /* wn_session_end asked the thread to end; under lock */
    int stop_timeout_ms; /* how long a clean stop may take before the process exits anyway;
                            under lock */
    atomic_bool reload;  /* SIGHUP came and no reload took it yet */
    int wake[2];         /* pipe: readable once stop is set, never drained */
    sigset_t signals;    /* SIGINT, SIGTERM (stop); SIGHUP, SIGUSR1, SIGUSR2 (ignored,
                            but SIGUSR1 once ending) */
    pthread_t thread;
} wn_session;

/* Blocks the stop signals in the calling thread, and so in every thread it starts later: call
 * first thing in main. A signal that arrives before wn_session_start waits for it. */
void wn_session_block_signals(wn_session *session);

/* Starts the signal thread. Returns 0, or -1 with one line in err. */
int wn_session_start(wn_session *session, char *err, size_t errlen);
/* Ends the signal thread and releases the session. */
void wn_session_end(wn_session *session);

/* The default of stop_timeout_ms: half the example unit's TimeoutStopSec, so that walnotify
 * says why it did not stop before systemd kills it. */
#define WN_STOP_TIMEOUT_DEFAULT_MS 60000

/* How long a clean stop may take, from the first SIGINT/SIGTERM: past it (or when the same
 * signal comes again) the process exits with status 2 and a line saying so, without waiting for
 * the plugin call in progress. Nothing is lost: what was not acknowledged comes again. */
void wn_session_set_stop_timeout(wn_session *session, int ms);

bool wn_session_stop_requested(wn_session *session);

/* A descriptor that becomes readable when a stop is requested, for poll(); stays readable. */
int wn_session_stop_fd(const wn_session *session);

/* "SIGINT" or "SIGTERM": the signal that asked for the stop ("a signal" when none yet). */
const char *wn_session_signal_name(wn_session *session);

/* Makes handoff the one a stop request reaches; false when a stop came already. */
bool wn_session_attach(wn_session *session, wn_handoff *handoff);
void wn_session_detach(wn_session *session);

/* Whether a SIGHUP came that no reload took yet (a relaxed load: cheap enough per item). */
bool wn_session_reload_pending(wn_session *session);
/* Takes the reload request: true when a SIGHUP came since the last take. */
bool wn_session_take_reload(wn_session *session);

/* Sleeps ms, or less when a stop comes; true when a stop came. */
bool wn_session_wait(wn_session *session, int ms);

#endif
