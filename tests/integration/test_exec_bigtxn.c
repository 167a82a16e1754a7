/*
 * One large transaction through the exec plugin, with a child that dies in its middle: the
 * transaction comes again whole to a new child, and walnotify's memory stays bounded (the plugin
 * keeps no transaction: it asks the host to rewind). The sink's log (written only once the sink
 * acknowledged) holds every row, and the host's peak RSS is measured as test_bigtxn does (wait4
 * reports the larger of walnotify's and its reaped child's: the bound holds for both).
 *
 * WN_EXEC_BIG_ROWS sets the rows (default 100,000; `make check-sinks` runs 2,000,000).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "execsink.h"
#include "faults.h"
#include "itest.h"

#define DEFAULT_ROWS 100000L
#define PEAK_RSS_LIMIT_KB (64L * 1024) /* generous; the transaction's JSON alone is far larger */
#define RUN_S_BASE 60                  /* the bound of the host run: this, plus a second per */
#define ROWS_PER_S 8000                /* this many rows (a busy machine streams many more) */

START_TEST(test_child_dies_inside_a_large_transaction)
{
    const char *rows_text = getenv("WN_EXEC_BIG_ROWS");
    long rows = rows_text != NULL && atol(rows_text) > 0 ? atol(rows_text) : DEFAULT_ROWS;
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path;
    execsink_samples none = {0};
    char argv[3 * PATH_MAX], mode[64], *end, *err;
    long maxrss_kb = 0;
    size_t used;

    itest_begin(&ctx, "execbig");
    /* As in test_bigtxn: the walsender's memory, not walnotify's, would otherwise spill. */
    used = strlen(ctx.conninfo);
    ck_assert_msg((size_t)snprintf(ctx.conninfo + used, sizeof ctx.conninfo - used,
                                   " options='-c logical_decoding_work_mem=1GB'") <
                      sizeof ctx.conninfo - used,
                  "conninfo too long");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY)");
    snprintf(mode, sizeof mode, "die-at=%ld", rows / 2);
    snprintf(argv, sizeof argv, "\"python3\", \"%s\", \"%s\", \"%s\", \"1\", \"1\"",
             itest_root_file("tests/fixtures/exec/faulty_sink.py").s, mode, ctx.dir);
    conf = execsink_config(&ctx, "big.cfg", 1000, 60000, argv);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");

    itest_exec(ctx.conn, "INSERT INTO t SELECT generate_series(1, %ld)", rows);
    end = itest_lsn_text(itest_current_lsn(ctx.conn));
    faults_host_run_rusage(&ctx, &host, ITEST_ARGS("-c", conf.s, "--endpos", end),
                           (int)(RUN_S_BASE + rows / ROWS_PER_S), &maxrss_kb);
    free(end);
    fprintf(stderr, "exec bigtxn: %ld rows, host peak RSS %ld kB\n", rows, maxrss_kb);
    itest_assert_exit(&host, 0);
    err = itest_host_stderr(&host);
    ck_assert_msg(err != NULL && strstr(err, "faulty sink: dying after") != NULL &&
                      strstr(err, "comes again to a new child") != NULL,
                  "the child did not die inside the transaction");
    free(err);
    execsink_check_log(ctx.conn, log_path.s, &none);
    ck_assert_msg(maxrss_kb < PEAK_RSS_LIMIT_KB,
                  "walnotify's peak RSS was %ld kB, over the %ld kB bound", maxrss_kb,
                  PEAK_RSS_LIMIT_KB);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("exec_bigtxn");
    TCase *tc = itest_tcase(suite, "exec_bigtxn");

    tcase_add_test(tc, test_child_dies_inside_a_large_transaction);
    return run_suite(suite) == 0 ? 0 : 1;
}
