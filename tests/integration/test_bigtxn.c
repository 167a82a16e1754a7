/*
 * One very large transaction: delivered in full and in order, while the host's memory stays
 * bounded (events flow through a bounded queue; the transaction is never held whole), and the
 * slot, sampled throughout (watch.h), never acknowledged it before every plugin had finished
 * it (the delivery invariant of faults.h, over a logging plugin listed last).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "faults.h"
#include "itest.h"
#include "watch.h"

#define BIG_ROWS 2000000L
#define PEAK_RSS_LIMIT_KB (200L * 1024) /* generous: the whole transaction is far larger */
#define BIG_RUN_S 90

static double seconds_since(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

START_TEST(test_two_million_rows_in_one_transaction)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path, events_path;
    itest_lines lines;
    faults_history history;
    watch *w;
    struct timespec started;
    char lsn[32], order[64], *end_text;
    unsigned long long events;
    long long first_id, last_id;
    long maxrss_kb = 0;
    size_t used;
    wn_lsn end, lsn_value;

    itest_begin(&ctx, "bigtxn");
    /* Spilling the transaction to disk would double the server's decoding time; the memory is
     * the walsender's, not walnotify's, whose bound is what this test measures. */
    used = strlen(ctx.conninfo);
    ck_assert_msg((size_t)snprintf(ctx.conninfo + used, sizeof ctx.conninfo - used,
                                   " options='-c logical_decoding_work_mem=1GB'") <
                      sizeof ctx.conninfo - used,
                  "conninfo too long");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint)");
    conf = itest_config(&ctx, "big.cfg", "\"public.t\"", 1000,
                        "{ name = \"out\"; path = \"%s\"; settings = { path = \"/dev/null\"; "
                        "fsync = false; }; },\n"
                        "{ name = \"count\"; path = \"%s\"; settings = { log = \"count.log\"; }; },\n"
                        "{ name = \"events\"; path = \"%s\"; settings = { log = \"events.log\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s,
                        itest_root_file("build/tests/fixtures/fault_count.so").s,
                        itest_root_file("build/tests/fixtures/flaky.so").s);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "count.log");
    events_path = itest_file(&ctx, "events.log");
    faults_history_init(&history, events_path.s);

    clock_gettime(CLOCK_MONOTONIC, &started);
    itest_exec(ctx.conn, "INSERT INTO t SELECT generate_series(1, %ld)", BIG_ROWS);
    fprintf(stderr, "bigtxn: %ld rows committed in %.1f s\n", BIG_ROWS, seconds_since(&started));
    end = itest_current_lsn(ctx.conn);
    end_text = itest_lsn_text(end);

    clock_gettime(CLOCK_MONOTONIC, &started);
    faults_run_begin(&history, ctx.conn, ctx.slot);
    w = watch_start(&ctx, &history, NULL);
    faults_host_run_rusage(&ctx, &host, ITEST_ARGS("-c", conf.s, "--endpos", end_text), BIG_RUN_S,
                           &maxrss_kb);
    watch_stop(w);
    faults_run_end(&history, host.status == 0);
    free(end_text);
    fprintf(stderr, "bigtxn: delivered in %.1f s, host peak RSS %ld kB\n", seconds_since(&started),
            maxrss_kb);
    itest_assert_exit(&host, 0);

    lines = itest_read_lines(log_path.s);
    ck_assert_msg(lines.count == 1, "count.log holds %zu transactions, expected 1", lines.count);
    ck_assert_msg(sscanf(lines.line[0], "%31s %llu %lld %lld %63s", lsn, &events, &first_id,
                         &last_id, order) == 5 &&
                      wn_lsn_parse(lsn, &lsn_value),
                  "count.log line is malformed: %s", lines.line[0]);
    ck_assert_msg(events == (unsigned long long)BIG_ROWS, "%llu events delivered, expected %ld",
                  events, BIG_ROWS);
    ck_assert_msg(first_id == 1 && last_id == BIG_ROWS, "ids ran %lld..%lld, expected 1..%ld",
                  first_id, last_id, BIG_ROWS);
    ck_assert_msg(strcmp(order, "ok") == 0,
                  "the events were not seq 0..%ld with consecutive ids: broke at %s",
                  BIG_ROWS - 1, order);
    ck_assert_msg(lsn_value < end, "the transaction's lsn %s is not below the end position",
                  lsn);
    itest_lines_free(&lines);
    ck_assert_msg(maxrss_kb < PEAK_RSS_LIMIT_KB,
                  "walnotify's peak RSS was %ld kB, over the %ld kB bound", maxrss_kb,
                  PEAK_RSS_LIMIT_KB);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) > lsn_value,
                  "the slot was not acknowledged past the transaction");
    ck_assert_msg(history.nsamples > 10, "only %zu slot samples while the host ran",
                  history.nsamples);
    faults_check_history(&history, ctx.conn, "SELECT id FROM t ORDER BY id");
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("bigtxn");
    TCase *tc = itest_tcase(suite, "bigtxn");

    tcase_add_test(tc, test_two_million_rows_in_one_transaction);
    return run_suite(suite) == 0 ? 0 : 1;
}
