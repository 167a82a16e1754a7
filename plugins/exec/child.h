/*
 * child: the exec plugin's child process. Started with posix_spawn (no shell), in a process group
 * of its own, with a clean signal mask and default signal dispositions; its standard input and
 * output are pipes the plugin holds (non-blocking, close-on-exec on our side), its standard error
 * is read by a thread of the child's that turns every line into a log line of the instance.
 */
#ifndef WN_EXEC_CHILD_H
#define WN_EXEC_CHILD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <walnotify/plugin.h>

/* What the child is started with; everything borrowed, valid while a child runs. */
typedef struct exec_command {
    const char *path;  /* the program's absolute path: what is run (never searched for) */
    char *const *argv; /* argv[0] as configured, and the arguments */
    char *const *envp; /* the whole environment of the child */
    const char *cwd;   /* the folder it starts in */
} exec_command;

typedef struct exec_child {
    pid_t pid;       /* 0 when no child runs */
    int in_fd;       /* the write end of its standard input; -1 once closed */
    int out_fd;      /* the read end of its standard output */
    int err_fd;      /* the read end of its standard error (the relay's) */
    int stop_fds[2]; /* a pipe that tells the relay to stop reading */
    pthread_t relay; /* the thread turning standard error into log lines */
    bool relay_running;
    const walnotify_host *host; /* for the relay's log lines */
} exec_child;

/* Starts the child. 0, or an errno value with the reason logged (naming argv[0] and cwd). */
int exec_child_start(exec_child *child, const exec_command *command, const walnotify_host *host);

/*
 * Ends the child: closes its standard input, waits up to grace_ms for it to exit by itself, then
 * kills its process group (SIGKILL) and reaps it; stops the relay once standard error is drained.
 * Describes how it ended in `how` ("exited with status 3", "was killed by signal 11", "was
 * killed after 2000 ms"). Harmless when no child runs (how is then "was not running").
 */
void exec_child_stop(exec_child *child, int grace_ms, char *how, size_t howlen);

/* True while a child runs (it may have exited without being reaped yet). */
bool exec_child_running(const exec_child *child);

#endif
