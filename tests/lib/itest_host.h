/*
 * itest_host: walnotify (build/walnotify, under WN_HOST_WRAPPER when set) run as a child of the
 * test, its standard output and error kept in the test's folder, and what it said checked.
 */
#ifndef WN_TEST_ITEST_HOST_H
#define WN_TEST_ITEST_HOST_H

#include <signal.h> /* the signals itest_host_stop sends */
#include <stdbool.h>
#include <sys/types.h>

#include "itest_ctx.h"
#include "itest_env.h"
#include "itest_time.h"
#include "lsn.h"

/* A host process and where its standard output and error went. */
typedef struct itest_host {
    pid_t pid;              /* 0 once reaped */
    itest_path out;
    itest_path err;
    int status;             /* exit code, or 128 + signal; -1 while running */
} itest_host;

/* Arguments are the host's, without the program name, ended by NULL. */
void itest_host_start(itest_ctx *ctx, itest_host *host, const char *const *args);
int itest_host_wait(itest_host *host, int timeout_s); /* exit code; kills and fails past it */
int itest_host_stop(itest_host *host, int sig);       /* sends sig, waits ITEST_WAIT_S */
bool itest_host_running(itest_host *host);
/* A status from wait(): the exit code, 128 + the signal that ended it, or -1. */
int itest_exit_status(int status);
char *itest_host_stderr(const itest_host *host);      /* to free */
char *itest_host_stdout(const itest_host *host);      /* to free */
#define ITEST_ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
/* Runs the host to its end (bounded by ITEST_RUN_S) and returns its exit code. */
#define itest_host_run(ctx, host, ...)                                                     \
    (itest_host_start((ctx), (host), ITEST_ARGS(__VA_ARGS__)), itest_host_wait((host), ITEST_RUN_S))

/* Fails unless the host exited with code, quoting the end of its stderr. */
void itest_assert_exit(const itest_host *host, int code);
/* walnotify --create-slot -c conf, which must exit 0. */
void itest_create_slot(itest_ctx *ctx, const char *conf);
/* walnotify -c conf --endpos pg_current_wal_lsn(), which must exit 0; returns that position. */
wn_lsn itest_run_to_now(itest_ctx *ctx, const char *conf);

/* Checks that stderr is one non-empty reason line at its end (after any log lines). */
void itest_assert_reason(const itest_host *host);
/* A failure as the contract has it: exit code (not 0) and a one-line reason on stderr. */
void itest_assert_failed(const itest_host *host, int code);

#endif
