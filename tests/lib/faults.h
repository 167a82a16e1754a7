/*
 * faults: helpers for walnotify's fault-injection tests, on top of itest.
 *
 * A seeded random source (so a failing run can be repeated), a writer that commits a mix of
 * small and large transactions, a host run that reports its peak memory, and the check of the
 * delivery invariant over a fixture's log gathered across several host runs:
 *
 *   every committed row is delivered at least once, first deliveries come in commit order, every
 *   run starts exactly at the position the slot held when it started, and the slot's
 *   confirmed_flush_lsn (sampled while the host ran) never passed a transaction that the plugin
 *   had not finished.
 *
 * Like itest, every helper fails the running Check test instead of returning an error.
 */
#ifndef WN_TEST_FAULTS_H
#define WN_TEST_FAULTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "itest.h"

/* ---- randomness ------------------------------------------------------------------------------ */

typedef struct faults_rng {
    uint64_t state;
} faults_rng;

/* The seed of WN_FAULT_SEED when set, else one from the clock; printed on stderr with `what`. */
uint64_t faults_seed(const char *what);
faults_rng faults_rng_new(uint64_t seed);
uint64_t faults_rng_next(faults_rng *rng);
/* Uniform in [low, high]. */
long faults_rng_range(faults_rng *rng, long low, long high);

/* ---- processes ------------------------------------------------------------------------------- */

/*
 * A writer process on its own connection to ctx->db, committing in a loop until stopped (with
 * itest_writer_stop): mostly transactions of 1 to 5 rows, and one in `big_every` of `big_rows`
 * rows, each row `INSERT INTO table SELECT nextval(sequence) ...`. The only writer of the table,
 * so ids grow in commit order.
 */
pid_t faults_writer_start(const itest_ctx *ctx, const char *table, const char *sequence,
                          uint64_t seed, int big_every, int big_rows);

/*
 * Runs the host to its end like itest_host_run (outputs in ctx->dir, bounded by timeout_s) and
 * returns its exit code; *maxrss_kb receives its peak resident set size from wait4().
 */
int faults_host_run_rusage(itest_ctx *ctx, itest_host *host, const char *const *args,
                           int timeout_s, long *maxrss_kb);

/* Sends SIGKILL and reaps the host. */
void faults_host_kill(itest_host *host);

/* Waits (ITEST_WAIT_S at most) until no process holds the slot. */
void faults_wait_slot_released(PGconn *conn, const char *slot);

/* Waits (timeout_s at most) until the file exists. */
void faults_wait_file(const char *path, int timeout_s);

/* Bytes in the file, 0 when it is missing. */
long faults_file_size(const char *path);

/* ---- the delivery invariant ------------------------------------------------------------------ */

/* One reading: the slot's confirmed_flush_lsn, then the size of the fixture's log. */
typedef struct faults_sample {
    wn_lsn confirmed;
    long log_size;
} faults_sample;

/* One host run: where it started (the slot's position when it began) and where its lines end. */
typedef struct faults_run {
    wn_lsn start;
    long log_end;
    bool whole;   /* ended by itself (--endpos or a clean stop): its last transaction is whole */
} faults_run;

typedef struct faults_history {
    faults_sample *sample;
    size_t nsamples;
    faults_run *run;
    size_t nruns;
    const char *log_path;   /* the fixture's log ("LSN SEQ TABLE OP ID" lines), borrowed */
} faults_history;

void faults_history_init(faults_history *history, const char *log_path);
void faults_history_free(faults_history *history);
/* Reads the slot's confirmed_flush_lsn, then the log's size, and keeps both. */
void faults_sample_slot(faults_history *history, PGconn *conn, const char *slot);
/* A run begins: the slot's position now (no host holds it) is where the run must start. */
void faults_run_begin(faults_history *history, PGconn *conn, const char *slot);
/* The run's host is gone; whole says whether it ended by itself. */
void faults_run_end(faults_history *history, bool whole);

/*
 * Checks the invariant over the whole log against the ids `ids_sql` returns (one bigint column,
 * every committed row of the watched table). Returns the number of lines delivered more than
 * once, for the caller's report.
 */
size_t faults_check_history(const faults_history *history, PGconn *conn, const char *ids_sql);

#endif
