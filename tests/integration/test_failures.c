/*
 * Plugins that fail: transient failures are retried until every event is delivered once and in
 * order; a plugin that blocks for longer than wal_sender_timeout does not cost the connection;
 * a fatal failure stops the host (exit 2) without acknowledging the failed transaction.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

/* One expected fixture log line: which transaction (index into the written ones), seq, id. */
typedef struct want_line {
    int txn;
    long seq;
    const char *id;
} want_line;

static void assert_log(const itest_loglines *log, size_t first, const want_line *want,
                       size_t count, const char *what)
{
    ck_assert_msg(log->count - first == count, "%s holds %zu lines from %zu, expected %zu", what,
                  log->count - first, first, count);
    for (size_t i = 0; i < count; i++) {
        const itest_logline *got = &log->line[first + i];
        ck_assert_msg(got->seq == want[i].seq && strcmp(got->id, want[i].id) == 0,
                      "%s line %zu is seq %ld id %s, expected seq %ld id %s", what, first + i + 1,
                      got->seq, got->id, want[i].seq, want[i].id);
        /* Lines of one transaction share its lsn; a new transaction has a higher one. */
        for (size_t j = 0; j < i; j++) {
            const itest_logline *earlier = &log->line[first + j];
            if (want[j].txn == want[i].txn)
                ck_assert_msg(earlier->lsn == got->lsn, "%s: one transaction, two lsns", what);
            else
                ck_assert_msg(earlier->lsn < got->lsn, "%s: transactions out of order", what);
        }
    }
}

static void assert_no_log_level(const itest_host *host, const char *level)
{
    char *err = itest_host_stderr(host);
    char needle[32];
    const char *hit;

    snprintf(needle, sizeof needle, "] %s:", level);
    hit = err ? strstr(err, needle) : NULL;
    ck_assert_msg(hit == NULL, "walnotify logged %s: %.300s", level, hit ? hit : "");
    free(err);
}

START_TEST(test_retries_deliver_everything_once)
{
    static const want_line want[] = {
        {0, 0, "1"}, {0, 1, "2"}, {1, 0, "3"}, {2, 0, "4"}, {2, 1, "5"}, {2, 2, "6"},
    };
    itest_ctx ctx;
    itest_path conf, log_path;
    itest_loglines log;

    itest_begin(&ctx, "retry");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = itest_fixture_config(&ctx, "retry.cfg", "\"public.t\"", 200, "flaky", "flaky",
                                "fail_times = 2; log = \"flaky.log\";");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1), (2)");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (3)");
    itest_exec(ctx.conn, "BEGIN; INSERT INTO t VALUES (4); INSERT INTO t VALUES (5), (6); COMMIT");
    itest_run_to_now(&ctx, conf.s);

    log_path = itest_file(&ctx, "flaky.log");
    log = itest_read_log(log_path.s);
    assert_log(&log, 0, want, sizeof want / sizeof want[0], "flaky.log");
    itest_loglines_free(&log);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_slow_plugin_keeps_the_connection)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path;
    itest_loglines log;
    long server_log_start;
    char *server_log;

    itest_begin(&ctx, "slow");
    itest_set_server_setting(ctx.conn, "wal_sender_timeout", "2s");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = itest_fixture_config(&ctx, "slow.cfg", "\"public.t\"", 1000, "slow", "blocker",
                                "block_ms = 6000; log = \"slow.log\";");
    itest_create_slot(&ctx, conf.s);
    server_log_start = itest_server_log_size();

    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1), (2)");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (3)");
    log_path = itest_file(&ctx, "slow.log");
    log = itest_wait_log(log_path.s, 3, ITEST_WAIT_S);
    itest_loglines_free(&log);
    ck_assert_msg(itest_host_running(&host), "walnotify stopped after the slow call (exit %d)",
                  host.status);

    itest_exec(ctx.conn, "INSERT INTO t VALUES (4)");
    log = itest_wait_log(log_path.s, 4, ITEST_WAIT_S);
    itest_loglines_free(&log);
    ck_assert_msg(itest_host_running(&host), "walnotify stopped (exit %d)", host.status);
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);

    {
        static const want_line want[] = {{0, 0, "1"}, {0, 1, "2"}, {1, 0, "3"}, {2, 0, "4"}};
        log = itest_read_log(log_path.s);
        assert_log(&log, 0, want, sizeof want / sizeof want[0], "slow.log");
        itest_loglines_free(&log);
    }
    assert_no_log_level(&host, "ERROR");
    assert_no_log_level(&host, "WARNING");
    server_log = itest_server_log_since(server_log_start);
    ck_assert_msg(strstr(server_log, "replication timeout") == NULL,
                  "the server dropped the replication connection: %s",
                  strstr(server_log, "replication timeout"));
    free(server_log);
    itest_end(&ctx);
}
END_TEST

static int count_substrings(const char *text, const char *needle)
{
    int n = 0;

    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The progress line comes from the reader thread, so an operator still sees one while a plugin
 * blocks: no events, and a lag that says the server is ahead. */
START_TEST(test_progress_goes_on_while_a_plugin_blocks)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, release;
    char *err;
    const char *blocked_line;

    itest_begin(&ctx, "progress");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = itest_file(&ctx, "progress.cfg");
    release = itest_file(&ctx, "release");
    itest_write_file(conf.s,
                     "log_level = \"info\";\n"
                     "source: { conninfo = \"%s\"; tables = [ \"public.t\" ]; slot = \"%s\";\n"
                     "  publication = \"%s\"; status_interval_ms = 200;\n"
                     "  progress_interval_ms = 1000; };\n"
                     "plugins = ( { name = \"slow\"; path = \"%s\";\n"
                     "  settings = { block_ms = 60000; release = \"release\"; }; } );\n",
                     ctx.conninfo, ctx.slot, ctx.pub,
                     itest_root_file("build/tests/fixtures/blocker.so").s);
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");

    /* The first handle call blocks; wait for three progress lines meanwhile. */
    for (itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);;) {
        err = itest_host_stderr(&host);
        if (err != NULL && count_substrings(err, ", 0.0 events/s, lag ") >= 3)
            break;
        ck_assert_msg(!itest_expired(&deadline) && itest_host_running(&host),
                      "no progress lines while the plugin blocks: %s", err ? err : "");
        free(err);
        itest_sleep_ms(200);
    }
    blocked_line = strstr(err, ", 0.0 events/s, lag ");
    ck_assert_msg(strstr(blocked_line, ", 0.0 events/s, lag 0 bytes") != blocked_line,
                  "the lag says nothing is waiting: %s", err);
    free(err);

    itest_write_file(release.s, "go\n");
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    itest_end(&ctx);
}
END_TEST

/* A plugin call that does not return cannot keep walnotify from stopping: past stop_timeout_ms,
 * or at the same signal again, it exits 2 with a line saying so, and the row comes again. The
 * other stop signal (Ctrl-C passed on by a wrapper as SIGTERM) is the same request: only the
 * timeout ends that stop. */
typedef enum stop_case { STOP_TIMEOUT, STOP_SAME_AGAIN, STOP_OTHER_AGAIN } stop_case;

static void stop_with_a_call_that_never_returns(stop_case how)
{
    bool second_signal = how != STOP_TIMEOUT;
    itest_ctx ctx;
    itest_host host;
    itest_path conf, entered, log_path;
    itest_loglines log;
    char *err;

    itest_begin(&ctx, how == STOP_TIMEOUT ? "stoptimeout" : how == STOP_SAME_AGAIN ? "stopagain"
                                                                                 : "stopother");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = itest_file(&ctx, "stuck.cfg");
    entered = itest_file(&ctx, "entered");
    itest_write_file(conf.s,
                     "stop_timeout_ms = %d;\n"
                     "source: { conninfo = \"%s\"; tables = [ \"public.t\" ]; slot = \"%s\";\n"
                     "  publication = \"%s\"; status_interval_ms = 200; };\n"
                     "plugins = ( { name = \"stuck\"; path = \"%s\";\n"
                     "  settings = { block_ms = 3600000; entered = \"entered\";\n"
                     "               log = \"stuck.log\"; }; } );\n",
                     how == STOP_SAME_AGAIN ? 3600000 : 1000, ctx.conninfo, ctx.slot, ctx.pub,
                     itest_root_file("build/tests/fixtures/blocker.so").s);
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    for (itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);;) {
        if (access(entered.s, F_OK) == 0)
            break;
        ck_assert_msg(!itest_expired(&deadline) && itest_host_running(&host),
                      "the plugin's handle call never began");
        itest_sleep_ms(ITEST_POLL_MS);
    }
    kill(host.pid, how == STOP_OTHER_AGAIN ? SIGINT : SIGTERM);
    if (second_signal) {
        itest_sleep_ms(200);
        ck_assert_msg(itest_host_running(&host), "walnotify ended while its plugin blocked");
        kill(host.pid, SIGTERM);
    }
    itest_host_wait(&host, ITEST_WAIT_S);
    itest_assert_failed(&host, 2);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, how == STOP_SAME_AGAIN
                                  ? "received SIGTERM again while stopping"
                                  : "did not end within stop_timeout_ms (1000 ms)"),
                  "stderr does not say why: %s", err);
    ck_assert_msg(how != STOP_OTHER_AGAIN || strstr(err, "received SIGTERM while stopping; still "
                                                         "stopping (SIGINT again ends"),
                  "the other signal was not taken as the same request: %s", err);
    free(err);

    /* Nothing was lost: a run with the call released delivers the row. */
    itest_write_file(conf.s,
                     "source: { conninfo = \"%s\"; tables = [ \"public.t\" ]; slot = \"%s\";\n"
                     "  publication = \"%s\"; status_interval_ms = 200; };\n"
                     "plugins = ( { name = \"stuck\"; path = \"%s\";\n"
                     "  settings = { log = \"stuck.log\"; }; } );\n",
                     ctx.conninfo, ctx.slot, ctx.pub,
                     itest_root_file("build/tests/fixtures/blocker.so").s);
    itest_run_to_now(&ctx, conf.s);
    log_path = itest_file(&ctx, "stuck.log");
    log = itest_read_log(log_path.s);
    ck_assert_int_eq((int)log.count, 1);
    itest_loglines_free(&log);
    itest_end(&ctx);
}

START_TEST(test_stop_is_bounded_by_stop_timeout)
{
    stop_with_a_call_that_never_returns(STOP_TIMEOUT);
}
END_TEST

START_TEST(test_second_signal_ends_a_stop)
{
    stop_with_a_call_that_never_returns(STOP_SAME_AGAIN);
}
END_TEST

START_TEST(test_other_signal_is_the_same_stop)
{
    stop_with_a_call_that_never_returns(STOP_OTHER_AGAIN);
}
END_TEST

START_TEST(test_fatal_stops_without_acknowledging)
{
    static const want_line want_first[] = {{0, 0, "1"}, {1, 0, "2"}};
    static const want_line want_again[] = {{1, 0, "2"}, {1, 1, "3"}, {1, 2, "4"}};
    itest_ctx ctx;
    itest_host host;
    itest_path conf, conf2, log_path;
    itest_loglines log;
    wn_lsn failed_lsn, confirmed;
    char *endpos;

    itest_begin(&ctx, "fatal");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = itest_fixture_config(&ctx, "fatal.cfg", "\"public.t\"", 100, "flaky", "flaky",
                                "fatal_on_seq = 1; log = \"fatal.log\";");
    conf2 = itest_fixture_config(&ctx, "healthy.cfg", "\"public.t\"", 100, "flaky", "flaky",
                                 "log = \"again.log\";");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2), (3), (4)");
    endpos = itest_lsn_text(itest_current_lsn(ctx.conn));

    itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", endpos);
    itest_assert_failed(&host, 2);
    log_path = itest_file(&ctx, "fatal.log");
    log = itest_read_log(log_path.s);
    assert_log(&log, 0, want_first, 2, "fatal.log");
    failed_lsn = log.line[1].lsn;
    itest_loglines_free(&log);
    confirmed = itest_slot_confirmed(ctx.conn, ctx.slot);
    ck_assert_msg(confirmed <= failed_lsn,
                  "the slot was acknowledged to %s, past the failed transaction at %s",
                  itest_lsn_text(confirmed), itest_lsn_text(failed_lsn));

    itest_host_run(&ctx, &host, "-c", conf2.s, "--endpos", endpos);
    itest_assert_exit(&host, 0);
    log_path = itest_file(&ctx, "again.log");
    log = itest_read_log(log_path.s);
    ck_assert_msg(log.count == 3 || log.count == 4, "again.log holds %zu lines", log.count);
    /* The first transaction may come again (at least once); the failed one must, whole. */
    if (log.count == 4)
        ck_assert_msg(strcmp(log.line[0].id, "1") == 0 && log.line[0].lsn < failed_lsn,
                      "again.log starts with something unexpected");
    assert_log(&log, log.count - 3, want_again, 3, "again.log");
    ck_assert_msg(log.line[log.count - 1].lsn == failed_lsn, "the failed transaction changed lsn");
    itest_loglines_free(&log);
    free(endpos);
    itest_end(&ctx);
}
END_TEST

/* Puts wal_sender_timeout back, also after a failed test (an unchecked fixture's teardown). */
static void reset_sender_timeout(void)
{
    itest_reset_server_setting("wal_sender_timeout");
}

int main(void)
{
    Suite *suite = suite_create("failures");
    TCase *tc = itest_tcase(suite, "failures");
    TCase *slow = itest_tcase(suite, "slow");

    tcase_add_test(tc, test_retries_deliver_everything_once);
    tcase_add_test(tc, test_fatal_stops_without_acknowledging);
    tcase_add_test(tc, test_progress_goes_on_while_a_plugin_blocks);
    tcase_add_test(tc, test_stop_is_bounded_by_stop_timeout);
    tcase_add_test(tc, test_second_signal_ends_a_stop);
    tcase_add_test(tc, test_other_signal_is_the_same_stop);
    tcase_add_unchecked_fixture(slow, NULL, reset_sender_timeout);
    tcase_add_test(slow, test_slow_plugin_keeps_the_connection);
    return run_suite(suite) == 0 ? 0 : 1;
}
