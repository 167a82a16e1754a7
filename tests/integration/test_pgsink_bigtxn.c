/*
 * One large transaction through the postgres plugin in apply mode, between small ones, with
 * flushes in its middle (a status interval of 200 ms):
 *   - a reader of the target never sees part of it: polled all along, the big transaction's
 *     rows are all there or none are;
 *   - walnotify's memory stays bounded: its peak RSS over the run is at most 16 MiB more than
 *     over a run of a few rows (wait4's peak RSS, as test_bigtxn measures it);
 *   - the target equals the source at the end.
 *
 * WN_PGSINK_BIG_ROWS sets the rows (default 200,000; `make check-sinks` runs 2,000,000).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faults.h"
#include "itest.h"
#include "pgtarget.h"

#define DEFAULT_ROWS 200000L
#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer keeps freed memory in its quarantine (256 MB): the bound is the plain
 * build's to check. */
#define GROWTH_LIMIT_KB (512L * 1024)
#else
#define GROWTH_LIMIT_KB (16L * 1024) /* the transaction's cost to walnotify, at most */
#endif
#define RUN_S_BASE 60                /* the bound of the host run: this, plus a second per */
#define ROWS_PER_S 5000              /* this many rows */
#define BIG_FIRST 1000000L           /* the big transaction's first id */

/* A child polling the target until killed: exits 1 at the first count of the big
 * transaction's rows that is neither 0 nor all of them, 2 when it cannot ask. */
static pid_t reader_start(const itest_ctx *ctx, long rows)
{
    char conninfo[512], sql[128];
    PGconn *conn;
    pid_t pid;

    snprintf(conninfo, sizeof conninfo, "host=%s port=%s user=%s dbname=%s_t", itest_env("PGHOST"),
             itest_env("PGPORT"), itest_env("PGUSER"), ctx->db);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM t WHERE id >= %ld", BIG_FIRST);
    pid = itest_fork();
    if (pid != 0)
        return pid;
    conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK)
        _exit(2);
    for (;;) {
        PGresult *res = PQexec(conn, sql);
        long seen;

        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            _exit(2);
        seen = atol(PQgetvalue(res, 0, 0));
        PQclear(res);
        if (seen != 0 && seen != rows) {
            fprintf(stderr, "a reader of the target saw %ld of the transaction's %ld rows\n", seen,
                    rows);
            _exit(1);
        }
        usleep(20000);
    }
}

static void reader_stop(pid_t pid)
{
    int status;

    /* SIGKILL: the child inherited Check's SIGTERM handler, which ends the whole group. */
    kill(pid, SIGKILL);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "the reader ended by itself (exit %d): it saw part of the transaction",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static long run_measured(itest_ctx *ctx, itest_host *host, const char *conf, int timeout_s)
{
    char *end = itest_lsn_text(itest_current_lsn(ctx->conn));
    long maxrss_kb = 0;

    faults_host_run_rusage(ctx, host, ITEST_ARGS("-c", conf, "--endpos", end), timeout_s,
                           &maxrss_kb);
    free(end);
    itest_assert_exit(host, 0);
    return maxrss_kb;
}

START_TEST(test_large_transaction_whole_and_bounded)
{
    const char *rows_text = getenv("WN_PGSINK_BIG_ROWS");
    long rows = rows_text != NULL && atol(rows_text) > 0 ? atol(rows_text) : DEFAULT_ROWS;
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;
    long base_kb, big_kb;
    size_t used;
    pid_t reader;

    itest_begin(&ctx, "pgbig");
    /* As in test_bigtxn: the walsender's memory, not walnotify's, would otherwise spill. */
    used = strlen(ctx.conninfo);
    ck_assert_msg((size_t)snprintf(ctx.conninfo + used, sizeof ctx.conninfo - used,
                                   " options='-c logical_decoding_work_mem=1GB'") <
                      sizeof ctx.conninfo - used,
                  "conninfo too long");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, pad text)");
    itest_exec(target, "CREATE TABLE t (id bigint PRIMARY KEY, pad text)");
    conf = pgtarget_config(&ctx, "big.cfg", "\"public.t\"", "", "");
    itest_create_slot(&ctx, conf.s);

    for (int i = 0; i < 10; i++)
        itest_exec(ctx.conn, "INSERT INTO t SELECT g, 'small' FROM generate_series(%d, %d) g",
                   i * 10 + 1, i * 10 + 10);
    base_kb = run_measured(&ctx, &host, conf.s, RUN_S_BASE);

    for (int i = 0; i < 5; i++)
        itest_exec(ctx.conn, "INSERT INTO t VALUES (%d, 'before')", 200 + i);
    itest_exec(ctx.conn, "INSERT INTO t SELECT g, repeat('x', 20) FROM generate_series(%ld, %ld) g",
               BIG_FIRST, BIG_FIRST + rows - 1);
    for (int i = 0; i < 5; i++)
        itest_exec(ctx.conn, "INSERT INTO t VALUES (%d, 'after')", 300 + i);
    reader = reader_start(&ctx, rows);
    big_kb = run_measured(&ctx, &host, conf.s, (int)(RUN_S_BASE + rows / ROWS_PER_S));
    reader_stop(reader);
    fprintf(stderr, "pgsink bigtxn: %ld rows, peak RSS %ld kB (%ld kB for a few rows)\n", rows,
            big_kb, base_kb);
    ck_assert_msg(big_kb - base_kb <= GROWTH_LIMIT_KB,
                  "walnotify's peak RSS grew by %ld kB with the transaction, over %ld kB",
                  big_kb - base_kb, GROWTH_LIMIT_KB);
    pgtarget_assert_same(ctx.conn, "SELECT count(*), sum(id), min(pad), max(pad) FROM t", target,
                         "SELECT count(*), sum(id), min(pad), max(pad) FROM t");
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("pgsink_bigtxn");
    TCase *tc = itest_tcase(suite, "pgsink_bigtxn");

    tcase_add_test(tc, test_large_transaction_whole_and_bounded);
    return run_suite(suite) == 0 ? 0 : 1;
}
