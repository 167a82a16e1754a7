/*
 * itest: helpers for walnotify's end-to-end tests against a running PostgreSQL.
 *
 * The environment names the server (PGHOST, PGPORT, PGUSER), its folder (WN_TEST_PGDIR, holding
 * postgresql.log) and the repository (WN_ROOT, holding build/). A missing variable fails the
 * test. Every helper fails the running Check test (ck_abort_msg) instead of returning an error,
 * and every wait is bounded.
 *
 * Each test works in its own database, slot, publication and temporary folder, made by
 * itest_begin and removed by itest_end (the folder is kept when WN_ITEST_KEEP is set, to look at
 * what the host wrote).
 */
#ifndef WN_TEST_ITEST_H
#define WN_TEST_ITEST_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "jline.h"
#include "lsn.h"

#define ITEST_WAIT_S 60     /* the bound of every wait for something to happen */
#define ITEST_RUN_S 120     /* the bound of a host run that should end by itself */
#define ITEST_POLL_MS 20
#define ITEST_TIMEOUT_S 115 /* Check's per-test limit */

typedef struct itest_path {
    char s[PATH_MAX];
} itest_path;

typedef struct itest_ctx {
    char db[64];            /* database, slot and publication of this test */
    char slot[64];
    char pub[64];
    char dir[PATH_MAX];     /* temporary folder: configurations, plugin outputs, host outputs */
    char conninfo[1024];    /* libpq conninfo of db, for configurations */
    PGconn *conn;           /* an ordinary session on db, owned by the context */
    int runs;               /* host runs so far: names their output files */
} itest_ctx;

/* A host process and where its standard output and error went. */
typedef struct itest_host {
    pid_t pid;              /* 0 once reaped */
    itest_path out;
    itest_path err;
    int status;             /* exit code, or 128 + signal; -1 while running */
} itest_host;

typedef struct itest_lines {
    char **line;            /* without their newline; owned */
    size_t *length;
    size_t count;
} itest_lines;

/* One jsonl line, parsed, with its fixed members checked. */
typedef struct itest_event {
    jl_value *json;         /* owned */
    wn_lsn lsn;
    long seq;
    long long xid;
    const char *table;      /* borrowed from json */
    const char *op;
    const jl_value *values; /* NULL when absent */
    const jl_value *old;
    const jl_value *unchanged;
    const jl_value *options;
} itest_event;

typedef struct itest_events {
    itest_event *event;
    size_t count;
} itest_events;

/* Environment */
const char *itest_env(const char *name);
itest_path itest_root_file(const char *relative); /* $WN_ROOT/relative */

/* Lifecycle: name is a short lower-case word naming the test. */
void itest_begin(itest_ctx *ctx, const char *name);
void itest_end(itest_ctx *ctx);
itest_path itest_file(const itest_ctx *ctx, const char *name); /* ctx->dir/name */

/* SQL. itest_exec runs commands and fails on error; itest_query returns the one value of a
 * one-row, one-column result (NULL for SQL NULL), to free. */
PGconn *itest_connect(const char *dbname, const char *options);
void itest_exec(PGconn *conn, const char *format, ...) __attribute__((format(printf, 2, 3)));
char *itest_query(PGconn *conn, const char *format, ...) __attribute__((format(printf, 2, 3)));
long long itest_query_int(PGconn *conn, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* Waits (ITEST_WAIT_S at most) until the one-value query returns at least `least`. */
void itest_wait_query_at_least(PGconn *conn, long long least, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
wn_lsn itest_current_lsn(PGconn *conn);        /* pg_current_wal_lsn() */
wn_lsn itest_insert_lsn(PGconn *conn);         /* pg_current_wal_insert_lsn() */
bool itest_slot_exists(PGconn *conn, const char *slot);
wn_lsn itest_slot_confirmed(PGconn *conn, const char *slot); /* fails when the slot is missing */
bool itest_publication_exists(PGconn *conn, const char *pub);
char *itest_lsn_text(wn_lsn lsn);              /* to free */

/* Files */
char *itest_read_file(const char *path, size_t *length); /* NULL when missing; to free */
void itest_write_file(const char *path, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
itest_lines itest_read_lines(const char *path); /* fails on a partial last line */
itest_lines itest_wait_lines(const char *path, size_t count, int timeout_s);
void itest_lines_free(itest_lines *lines);

/*
 * A configuration file ctx->dir/name with the test's source (conninfo, slot, publication),
 * `tables` (the inside of the list, e.g. "\"public.a\", \"public.b\""), the status interval,
 * log_level debug, and the plugin list given by format (the inside of `plugins = ( ... )`).
 */
itest_path itest_config(const itest_ctx *ctx, const char *name, const char *tables,
                        int status_interval_ms, const char *format, ...)
    __attribute__((format(printf, 5, 6)));

/* The host. Arguments are the host's, without the program name, ended by NULL. */
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

/* A process committing `sql` in a loop on its own connection to ctx->db until stopped. */
pid_t itest_writer_start(const itest_ctx *ctx, const char *sql);
void itest_writer_stop(pid_t pid);
/* In a writer child: SIGTERM then ends it between statements (itest_writer_stop_if_asked, called
 * after each), so no commit of a stopped writer lands later. */
void itest_writer_child_setup(void);
void itest_writer_stop_if_asked(void);

/* jsonl output: every line parsed and its fixed key order checked. */
itest_events itest_read_events(const char *path);
void itest_events_free(itest_events *events);
/* The text of a member of an event's `values` (NULL for JSON null); fails when absent. */
const char *itest_value(const itest_event *event, const char *column);

/*
 * A compact description of an event for comparisons:
 * "public.a update 2 {id:10,v:x} unchanged[big] old{id:1} options[cascade]" (parts present only
 * when the line has them; null prints as null, values over 64 bytes as <N bytes>). To free.
 */
char *itest_describe(const itest_event *event);
/* Fails unless the events' descriptions equal want (count entries), naming the first mismatch. */
void itest_assert_described(const itest_events *events, const char *const *want, size_t count,
                            const char *what);
/* Commit order: within one lsn seq grows, and each new lsn is above the previous one. */
void itest_assert_commit_order(const itest_events *events);

/* Flaky/blocker log lines "LSN SEQ TABLE OP ID". */
typedef struct itest_logline {
    wn_lsn lsn;
    long seq;
    char table[128];
    char op[16];
    char id[64];
} itest_logline;
typedef struct itest_loglines {
    itest_logline *line;
    size_t count;
} itest_loglines;
itest_loglines itest_read_log(const char *path);
itest_loglines itest_wait_log(const char *path, size_t count, int timeout_s);
void itest_loglines_free(itest_loglines *lines);

/* The server's log from byte offset on (to free); its current size. */
long itest_server_log_size(void);
char *itest_server_log_since(long offset);

/* Time */
typedef struct itest_deadline {
    long long end_ms;
} itest_deadline;
itest_deadline itest_deadline_in(int ms);
bool itest_expired(const itest_deadline *deadline);
void itest_sleep_ms(int ms);

#endif
