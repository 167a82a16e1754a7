/* session: SIGINT/SIGTERM become a stop request, taken by one thread with sigwait. */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exitcode.h"
#include "log.h"

void wn_session_block_signals(wn_session *session)
{
    sigemptyset(&session->signals);
    sigaddset(&session->signals, SIGINT);
    sigaddset(&session->signals, SIGTERM);
    sigaddset(&session->signals, SIGHUP);
    sigaddset(&session->signals, SIGUSR1);
    sigaddset(&session->signals, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &session->signals, NULL);
}

void wn_session_set_stop_timeout(wn_session *session, int ms)
{
    pthread_mutex_lock(&session->lock);
    session->stop_timeout_ms = ms;
    pthread_mutex_unlock(&session->lock);
}

bool wn_session_stop_requested(wn_session *session)
{
    bool stop;

    pthread_mutex_lock(&session->lock);
    stop = session->stop;
    pthread_mutex_unlock(&session->lock);
    return stop;
}

int wn_session_stop_fd(const wn_session *session)
{
    return session->wake[0];
}

const char *wn_session_signal_name(wn_session *session)
{
    int signo;

    pthread_mutex_lock(&session->lock);
    signo = session->signo;
    pthread_mutex_unlock(&session->lock);
    return signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "a signal";
}

bool wn_session_attach(wn_session *session, wn_handoff *handoff)
{
    bool stop;

    pthread_mutex_lock(&session->lock);
    stop = session->stop;
    session->handoff = stop ? NULL : handoff;
    pthread_mutex_unlock(&session->lock);
    return !stop;
}

void wn_session_detach(wn_session *session)
{
    pthread_mutex_lock(&session->lock);
    session->handoff = NULL;
    pthread_mutex_unlock(&session->lock);
}

bool wn_session_wait(wn_session *session, int ms)
{
    struct pollfd fd = {.fd = session->wake[0], .events = POLLIN};

    if (wn_session_stop_requested(session))
        return true;
    if (poll(&fd, 1, ms) < 0 && errno != EINTR)
        (void)poll(NULL, 0, ms);
    return wn_session_stop_requested(session);
}

bool wn_session_reload_pending(wn_session *session)
{
    return atomic_load_explicit(&session->reload, memory_order_relaxed);
}

bool wn_session_take_reload(wn_session *session)
{
    return atomic_exchange(&session->reload, false);
}

/* True when the thread is to end: only wn_session_end's SIGUSR1 does that. SIGHUP asks for a
 * reload, applied by the dispatcher at its next transaction boundary. A SIGUSR1 from outside,
 * or SIGUSR2, is said and ignored, so that a stray signal cannot leave the
 * process deaf to SIGTERM. */
static bool ignored_or_end(wn_session *session, int signo)
{
    bool ending;

    pthread_mutex_lock(&session->lock);
    ending = session->ending;
    pthread_mutex_unlock(&session->lock);
    if (signo == SIGUSR1 && ending)
        return true;
    if (signo == SIGHUP) {
        wn_log(WN_LOG_INFO, "received SIGHUP; reloading the configuration at the next "
                            "transaction boundary");
        atomic_store(&session->reload, true);
        return false;
    }
    wn_log(WN_LOG_INFO, "received %s; ignored (SIGINT or SIGTERM stops walnotify)",
           signo == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
    return false;
}

static const char *stop_signal_name(int signo)
{
    return signo == SIGINT ? "SIGINT" : "SIGTERM";
}

/* Waits for the next signal; once a stop was asked for, only until the stop's deadline.
 * Returns the signal, or 0 when the deadline passed. */
static int next_signal(wn_session *session, const struct timespec *deadline)
{
    struct timespec now, left;
    int signo;

    if (!deadline)
        return sigwait(&session->signals, &signo) == 0 ? signo : -1;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        left.tv_sec = deadline->tv_sec - now.tv_sec;
        left.tv_nsec = deadline->tv_nsec - now.tv_nsec;
        if (left.tv_nsec < 0) {
            left.tv_sec--;
            left.tv_nsec += 1000000000L;
        }
        if (left.tv_sec < 0)
            return 0;
        signo = sigtimedwait(&session->signals, NULL, &left);
        if (signo > 0)
            return signo;
        if (errno == EAGAIN)
            return 0;
    }
}

/* The stop did not end in time, or a second stop signal came: a plugin call that does not
 * return must not keep the process from ending. What was not acknowledged comes again. */
static void force_stop(int signo, int timeout_ms)
{
    if (signo == 0)
        wn_die(WN_EXIT_PLUGIN,
               "the stop asked for did not end within stop_timeout_ms (%d ms): exiting without "
               "waiting for the plugin call in progress; nothing acknowledged is lost, the rest "
               "comes again on the next start",
               timeout_ms);
    else
        wn_die(WN_EXIT_PLUGIN,
               "received %s again while stopping: exiting without waiting for the plugin call "
               "in progress; nothing acknowledged is lost, the rest comes again on the next start",
               stop_signal_name(signo));
    _exit(WN_EXIT_PLUGIN);
}

/* Turns SIGINT/SIGTERM into a stop request; ends on wn_session_end's SIGUSR1. */
static void *signal_main(void *arg)
{
    wn_session *session = arg;
    struct timespec deadline;
    int stopped_by = 0; /* the signal that asked for the stop; 0: none yet */
    int timeout_ms = 0;
    int signo;

    while ((signo = next_signal(session, stopped_by ? &deadline : NULL)) >= 0) {
        /* Only the same signal again forces the stop: Ctrl-C reaches a wrapper script and
         * walnotify alike, and the script passing it on as SIGTERM is the same request. */
        if (signo == 0 || (stopped_by != 0 && signo == stopped_by))
            force_stop(signo, timeout_ms);
        if (stopped_by != 0 && (signo == SIGINT || signo == SIGTERM)) {
            wn_log(WN_LOG_INFO,
                   "received %s while stopping; still stopping (%s again ends "
                   "walnotify at once)",
                   stop_signal_name(signo), stop_signal_name(stopped_by));
            continue;
        }
        if (signo != SIGINT && signo != SIGTERM) {
            if (ignored_or_end(session, signo))
                return NULL;
            continue;
        }
        wn_log(WN_LOG_INFO, "received %s; finishing the call in progress and stopping",
               stop_signal_name(signo));
        pthread_mutex_lock(&session->lock);
        session->stop = true;
        if (session->signo == 0)
            session->signo = signo;
        if (session->handoff)
            wn_handoff_request_stop(session->handoff);
        if (write(session->wake[1], "x", 1) < 0) {
            /* The pipe is non-blocking and already readable: nothing is lost. */
        }
        timeout_ms = session->stop_timeout_ms;
        pthread_mutex_unlock(&session->lock);
        stopped_by = signo;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    return NULL;
}

int wn_session_start(wn_session *session, char *err, size_t errlen)
{
    session->handoff = NULL;
    session->stop = false;
    session->signo = 0;
    session->ending = false;
    atomic_init(&session->reload, false);
    session->stop_timeout_ms = WN_STOP_TIMEOUT_DEFAULT_MS;
    if (pipe2(session->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "cannot make the stop pipe: %s", strerror(errno));
        return -1;
    }
    if (pthread_mutex_init(&session->lock, NULL) != 0)
        goto close_pipe;
    if (pthread_create(&session->thread, NULL, signal_main, session) != 0)
        goto destroy_lock;
    return 0;

destroy_lock:
    pthread_mutex_destroy(&session->lock);
close_pipe:
    close(session->wake[0]);
    close(session->wake[1]);
    snprintf(err, errlen, "cannot start the signal thread: %s", strerror(errno));
    return -1;
}

void wn_session_end(wn_session *session)
{
    pthread_mutex_lock(&session->lock);
    session->ending = true;
    pthread_mutex_unlock(&session->lock);
    pthread_kill(session->thread, SIGUSR1);
    pthread_join(session->thread, NULL);
    pthread_mutex_destroy(&session->lock);
    close(session->wake[0]);
    close(session->wake[1]);
}
