/* session: SIGINT/SIGTERM become a stop request, taken by one thread with sigwait. */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* True when the thread is to end: only wn_session_end's SIGUSR1 does that. A SIGUSR1 from
 * outside, or SIGHUP/SIGUSR2, is said and ignored, so that a stray signal cannot leave the
 * process deaf to SIGTERM. */
static bool ignored_or_end(wn_session *session, int signo)
{
    bool ending;

    pthread_mutex_lock(&session->lock);
    ending = session->ending;
    pthread_mutex_unlock(&session->lock);
    if (signo == SIGUSR1 && ending)
        return true;
    wn_log(WN_LOG_INFO, "received %s; ignored (SIGINT or SIGTERM stops walnotify)",
           signo == SIGHUP    ? "SIGHUP"
           : signo == SIGUSR1 ? "SIGUSR1"
                              : "SIGUSR2");
    return false;
}

/* Turns SIGINT/SIGTERM into a stop request; ends on wn_session_end's SIGUSR1. */
static void *signal_main(void *arg)
{
    wn_session *session = arg;
    int signo;

    while (sigwait(&session->signals, &signo) == 0) {
        if (signo != SIGINT && signo != SIGTERM) {
            if (ignored_or_end(session, signo))
                return NULL;
            continue;
        }
        wn_log(WN_LOG_INFO, "received %s; finishing the call in progress and stopping",
               signo == SIGINT ? "SIGINT" : "SIGTERM");
        pthread_mutex_lock(&session->lock);
        session->stop = true;
        if (session->signo == 0)
            session->signo = signo;
        if (session->handoff)
            wn_handoff_request_stop(session->handoff);
        if (write(session->wake[1], "x", 1) < 0) {
            /* The pipe is non-blocking and already readable: nothing is lost. */
        }
        pthread_mutex_unlock(&session->lock);
    }
    return NULL;
}

int wn_session_start(wn_session *session, char *err, size_t errlen)
{
    session->handoff = NULL;
    session->stop = false;
    session->signo = 0;
    session->ending = false;
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
