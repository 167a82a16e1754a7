/*
 * Stopping and starting again: a second run resumes after the last acknowledged transaction,
 * nothing missing; and the acknowledged position never passes a transaction a plugin still
 * holds, even while keepalives for later WAL keep arriving.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define ROWS_PER_TXN 2

/* Every transaction (a run of one lsn) has seq 0, 1, ...; whole ones have ROWS_PER_TXN lines. */
static void assert_whole_transactions(const itest_loglines *log, size_t from, size_t to,
                                      bool last_may_be_cut, const char *what)
{
    size_t i = from;

    while (i < to) {
        size_t n = 0;
        for (; i + n < to && log->line[i + n].lsn == log->line[i].lsn; n++)
            ck_assert_msg(log->line[i + n].seq == (long)n, "%s line %zu: seq %ld, expected %zu",
                          what, i + n + 1, log->line[i + n].seq, n);
        ck_assert_msg(i + n == to || log->line[i + n].lsn > log->line[i].lsn,
                      "%s line %zu: transactions out of commit order", what, i + n + 1);
        ck_assert_msg(n == ROWS_PER_TXN || (last_may_be_cut && i + n == to),
                      "%s line %zu: a transaction of %zu rows, expected %d", what, i + 1, n,
                      ROWS_PER_TXN);
        i += n;
    }
}

static bool log_has_id(const itest_loglines *log, const char *id)
{
    for (size_t i = 0; i < log->count; i++)
        if (strcmp(log->line[i].id, id) == 0)
            return true;
    return false;
}

START_TEST(test_restart_resumes_after_acknowledged)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path;
    itest_loglines log;
    size_t first_run;
    wn_lsn confirmed;
    long long rows;
    pid_t writer;
    PGresult *res;

    itest_begin(&ctx, "restart");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY); CREATE SEQUENCE ids");
    conf = itest_fixture_config(&ctx, "restart.cfg", "\"public.t\"", 200, "log", "flaky",
                                "log = \"run.log\";");
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");

    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    writer = itest_writer_start(&ctx, "INSERT INTO t SELECT nextval('ids') FROM generate_series(1, 2)");
    log = itest_wait_log(log_path.s, 40, ITEST_WAIT_S);
    itest_loglines_free(&log);
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    log = itest_read_log(log_path.s);
    first_run = log.count;
    confirmed = itest_slot_confirmed(ctx.conn, ctx.slot);
    ck_assert_msg(first_run > 0 && confirmed > log.line[0].lsn,
                  "the first run acknowledged nothing (slot at %s)", itest_lsn_text(confirmed));
    itest_loglines_free(&log);

    itest_wait_query_at_least(ctx.conn, itest_query_int(ctx.conn, "SELECT count(*) FROM t") + 20,
                              "SELECT count(*) FROM t");
    itest_writer_stop(writer);
    itest_run_to_now(&ctx, conf.s);

    log = itest_read_log(log_path.s);
    assert_whole_transactions(&log, 0, first_run, true, "first run");
    assert_whole_transactions(&log, first_run, log.count, false, "second run");
    for (size_t i = first_run; i < log.count; i++)
        ck_assert_msg(log.line[i].lsn >= confirmed,
                      "the second run delivered lsn %s again, before the acknowledged %s",
                      itest_lsn_text(log.line[i].lsn), itest_lsn_text(confirmed));
    res = PQexec(ctx.conn, "SELECT id FROM t ORDER BY id");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    rows = PQntuples(res);
    for (int r = 0; r < rows; r++)
        ck_assert_msg(log_has_id(&log, PQgetvalue(res, r, 0)), "row %s was never delivered",
                      PQgetvalue(res, r, 0));
    PQclear(res);
    ck_assert_msg(log.count < (size_t)rows + first_run, "more lines than rows delivered twice");
    itest_loglines_free(&log);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_blocked_transaction_is_not_acknowledged)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, conf2, log_path, release;
    itest_loglines log;
    itest_deadline deadline;
    wn_lsn t0_lsn, t1_lsn, highest = 0, confirmed;
    pid_t writer;
    int samples = 0;

    itest_begin(&ctx, "blocked");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY); "
                         "CREATE TABLE u (id serial PRIMARY KEY, v int)");
    conf = itest_fixture_config(&ctx, "blocked.cfg", "\"public.t\"", 200, "blocker", "blocker",
                                "block_at = 2; block_ms = 90000; release = \"release\"; "
                                "log = \"blocked.log\";");
    conf2 = itest_fixture_config(&ctx, "again.cfg", "\"public.t\"", 200, "log", "flaky",
                                 "log = \"again.log\";");
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "blocked.log");
    release = itest_file(&ctx, "release");

    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    log = itest_wait_log(log_path.s, 1, ITEST_WAIT_S);
    t0_lsn = log.line[0].lsn;
    itest_loglines_free(&log);
    /* Delivered and flushed: the slot must move past it while the stream is idle. */
    deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    while (itest_slot_confirmed(ctx.conn, ctx.slot) <= t0_lsn) {
        ck_assert_msg(!itest_expired(&deadline), "the slot never passed the first transaction");
        itest_sleep_ms(ITEST_POLL_MS);
    }

    itest_exec(ctx.conn, "INSERT INTO t VALUES (2), (3)");
    writer = itest_writer_start(&ctx, "INSERT INTO u (v) VALUES (1)");
    deadline = itest_deadline_in(3000);
    while (!itest_expired(&deadline)) {
        wn_lsn now = itest_slot_confirmed(ctx.conn, ctx.slot);
        highest = now > highest ? now : highest;
        samples++;
        itest_sleep_ms(ITEST_POLL_MS);
    }
    ck_assert_msg(itest_host_running(&host), "walnotify stopped while blocked (exit %d)",
                  host.status);
    ck_assert_int_gt(itest_query_int(ctx.conn, "SELECT count(*) FROM u"), 10);

    ck_assert_int_eq(kill(host.pid, SIGTERM), 0);
    itest_sleep_ms(200);
    itest_write_file(release.s, "go\n");
    itest_host_wait(&host, ITEST_WAIT_S);
    itest_assert_exit(&host, 0);
    itest_writer_stop(writer);
    confirmed = itest_slot_confirmed(ctx.conn, ctx.slot);

    itest_run_to_now(&ctx, conf2.s);
    log_path = itest_file(&ctx, "again.log");
    log = itest_read_log(log_path.s);
    ck_assert_msg(log.count == 2, "again.log holds %zu lines, expected the blocked transaction's 2",
                  log.count);
    ck_assert_msg(strcmp(log.line[0].id, "2") == 0 && log.line[0].seq == 0 &&
                      strcmp(log.line[1].id, "3") == 0 && log.line[1].seq == 1 &&
                      log.line[0].lsn == log.line[1].lsn,
                  "again.log does not hold the blocked transaction");
    t1_lsn = log.line[0].lsn;
    itest_loglines_free(&log);
    ck_assert_msg(highest <= t1_lsn,
                  "while the plugin held the transaction at %s the slot was acknowledged to %s "
                  "(%d samples)",
                  itest_lsn_text(t1_lsn), itest_lsn_text(highest), samples);
    ck_assert_msg(confirmed <= t1_lsn, "after the stop the slot was at %s, past the held %s",
                  itest_lsn_text(confirmed), itest_lsn_text(t1_lsn));
    itest_end(&ctx);
}
END_TEST

START_TEST(test_filtered_stream_advances_slot)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    itest_deadline deadline;
    wn_lsn target;
    pid_t writer;

    itest_begin(&ctx, "filtered");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY); "
                         "CREATE TABLE u (id serial PRIMARY KEY, v int)");
    conf = itest_fixture_config(&ctx, "filtered.cfg", "\"public.t\"", 200, "log", "flaky",
                                "log = \"run.log\";");
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    writer = itest_writer_start(&ctx, "INSERT INTO u (v) VALUES (1)");
    itest_wait_query_at_least(ctx.conn, 20, "SELECT count(*) FROM u");
    target = itest_current_lsn(ctx.conn);
    itest_writer_stop(writer);

    /* Nothing published is written: only keepalive acknowledgements can move the slot. */
    deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    while (itest_slot_confirmed(ctx.conn, ctx.slot) < target) {
        ck_assert_msg(!itest_expired(&deadline),
                      "the slot stayed at %s, below %s, on a stream of unpublished writes",
                      itest_lsn_text(itest_slot_confirmed(ctx.conn, ctx.slot)),
                      itest_lsn_text(target));
        itest_sleep_ms(ITEST_POLL_MS);
    }
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("resume");
    TCase *tc = itest_tcase(suite, "resume");

    tcase_add_test(tc, test_restart_resumes_after_acknowledged);
    tcase_add_test(tc, test_blocked_transaction_is_not_acknowledged);
    tcase_add_test(tc, test_filtered_stream_advances_slot);
    return run_suite(suite) == 0 ? 0 : 1;
}
