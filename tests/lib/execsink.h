/*
 * execsink: helpers for the exec plugin's end-to-end tests, on top of itest and faults.
 *
 * The sinks under test keep their own records: the Python example a SQLite database, the Node
 * example a JSON-lines file, the faulty test sink (tests/fixtures/exec/faulty_sink.py) a log in
 * the fault tests' format ("LSN SEQ TABLE OP ID", one line per event, written only once the sink
 * acknowledged its transaction). These helpers read them back and check the delivery promise
 * against the table, and against the slot's position sampled while the host ran: it never passed
 * a transaction the sink had not acknowledged. Like itest, they fail the running Check test.
 */
#ifndef WN_TEST_EXECSINK_H
#define WN_TEST_EXECSINK_H

#include <stddef.h>

#include "faults.h"
#include "itest.h"

/* The configuration of one exec plugin block running `argv` (the inside of a libconfig list,
 * e.g. "\"python3\", \"sink.py\""), for the table public.t, with the given ack timeout. */
itest_path execsink_config(itest_ctx *ctx, const char *name, int status_interval_ms,
                           int ack_timeout_ms, const char *argv);
/* The same with more settings (libconfig text, e.g. "env = [ \"PGPASSWORD\" ];"). */
itest_path execsink_config_with(itest_ctx *ctx, const char *name, int status_interval_ms,
                                int ack_timeout_ms, const char *argv, const char *more);

/* The ids the Python example stored in its SQLite database (json values.id), in the order of
 * their identities; their count in *count. To free. */
long long *execsink_sqlite_ids(const char *database, size_t *count);

/* Fails unless ids (count of them, in delivery order) are exactly the table's ids, each once,
 * growing (the tests' single writer makes ids grow in commit order). */
void execsink_assert_ids(PGconn *conn, const long long *ids, size_t count, const char *what);
/* The same against the ids ids_sql returns (one bigint column, ordered). */
void execsink_assert_ids_of(PGconn *conn, const char *ids_sql, const long long *ids, size_t count,
                            const char *what);

/* Slot samples taken while a host runs: the confirmed position, then the sink log's size. */
typedef struct execsink_samples {
    faults_sample *sample;
    size_t count;
} execsink_samples;

/* Samples every ITEST_POLL_MS until the host exits (bounded by timeout_s); returns its exit
 * code. */
int execsink_sample_until_exit(itest_ctx *ctx, itest_host *host, const char *log_path,
                               int timeout_s, execsink_samples *samples);

/*
 * Checks the faulty sink's log: every committed row of t acknowledged at least once, first
 * acknowledgements in commit order, and no sample's confirmed position past a transaction whose
 * last line was not yet in the log. Returns the number of lines that were deliveries again.
 */
size_t execsink_check_log(PGconn *conn, const char *log_path, const execsink_samples *samples);
/* The same, the rows expected being those ids_sql returns (one bigint column, ordered). */
size_t execsink_check_log_of(PGconn *conn, const char *ids_sql, const char *log_path,
                             const execsink_samples *samples);

/* Runs the host on conf to the position the server is at now (--endpos), sampling as
 * execsink_sample_until_exit does; returns the host's exit code. */
int execsink_run_to_now(itest_ctx *ctx, itest_host *host, const char *conf, const char *log_path,
                        int timeout_s, execsink_samples *samples);

void execsink_samples_free(execsink_samples *samples);

#endif
