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

/* What a writer commits: each transaction is big_rows rows one time in big_every, else
 * min_rows to max_rows rows (uniform). */
typedef struct faults_mix {
    int min_rows;
    int max_rows;
    int big_every;      /* 0: never big */
    int big_rows;
    int pause_ms;       /* between two commits */
    int transactions;   /* the writer ends by itself after this many; 0: only when stopped */
} faults_mix;

/*
 * A writer process on its own connection to ctx->db, committing transactions of the mix, each
 * row `INSERT INTO table SELECT nextval(sequence) ...` (the other columns take their defaults),
 * until it is stopped (itest_writer_stop) or has committed mix->transactions. The only writer of
 * the table, so ids grow in commit order.
 */
pid_t faults_writer_start(const itest_ctx *ctx, const char *table, const char *sequence,
                          uint64_t seed, const faults_mix *mix);

/* Whether a writer that ends by itself has ended (then reaped); fails unless it exited 0. */
bool faults_writer_done(pid_t pid);
/* A writer of mix->transactions (not 0) run to its end, bounded by ITEST_RUN_S. */
void faults_write_all(const itest_ctx *ctx, const char *table, const char *sequence,
                      uint64_t seed, const faults_mix *mix);

/*
 * Runs the host to its end like itest_host_run (started by itest_host_start, so under
 * WN_HOST_WRAPPER when set; outputs in ctx->dir, bounded by timeout_s) and returns its exit code.
 * *maxrss_kb receives the host's peak resident set size from wait4(); under a wrapper that would
 * be the wrapper's (valgrind keeps the host and its own shadow memory in one process), so it is
 * then 0 and a line on stderr says the peak was not measured.
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

/* The SEQ of the last whole line of a fixture's log ("LSN SEQ TABLE OP ID"); -1 when there is
 * none. Reads only the file's end, so it is cheap on a large log. */
long faults_log_last_seq(const char *path);

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

/* What faults_check_history saw, for the caller's own assertions and report. */
typedef struct faults_summary {
    size_t lines;
    size_t transactions;
    size_t again;       /* lines that were deliveries again */
    size_t cut;         /* transactions a killed run delivered in part and a later run whole */
    long largest;       /* rows of the largest transaction delivered */
} faults_summary;

/*
 * Checks the invariant over the whole log against the ids `ids_sql` returns (one bigint column,
 * every committed row of the watched table), and returns what it saw.
 */
faults_summary faults_check_history(const faults_history *history, PGconn *conn,
                                    const char *ids_sql);

#endif
