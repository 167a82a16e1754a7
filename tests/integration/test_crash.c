/*
 * Crashes of the host and misbehaving plugins: kill -9 at random points under a mixed write load,
 * kill -9 between a plugin finishing a transaction and its acknowledgement, kill -9 while a plugin
 * holds a transaction and keepalives arrive, and a plugin failing a third of its calls while the
 * server's wal_sender_timeout is short.
 *
 * Each test checks the delivery invariant of faults.h over the fixture's log of every run: every
 * committed row delivered at least once, first deliveries in commit order, each run starting
 * exactly at the slot's position, and confirmed_flush_lsn (sampled throughout) never past a
 * transaction the plugin had not finished.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "itest.h"

#define KILLS 12
#define BIG_ROWS 20000
#define BIG_EVERY 50           /* one writer transaction in this many is BIG_ROWS rows */
#define KILL_AFTER_MIN_MS 100
#define KILL_AFTER_MAX_MS 1500
#define HOLD_MS 30000          /* how long the signalling plugin holds the host */
#define SHORT_SENDER_TIMEOUT "3s"
#define RANDOM_TXNS 30

static const char ids_sql[] = "SELECT id FROM t ORDER BY id";

/* Samples the slot every ITEST_POLL_MS for ms, failing if the host stops meanwhile. */
static void sample_while_running(faults_history *history, itest_ctx *ctx, itest_host *host, int ms)
{
    itest_deadline deadline = itest_deadline_in(ms);

    while (!itest_expired(&deadline)) {
        faults_sample_slot(history, ctx->conn, ctx->slot);
        if (!itest_host_running(host)) {
            char *err = itest_host_stderr(host);
            size_t length = err ? strlen(err) : 0;
            ck_abort_msg("walnotify stopped by itself (exit %d); stderr ends:\n%s", host->status,
                         err ? err + (length > 2000 ? length - 2000 : 0) : "(none)");
        }
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* Samples the slot until the host exits (ITEST_RUN_S at most); returns its exit code. */
static int sample_until_exit(faults_history *history, itest_ctx *ctx, itest_host *host)
{
    itest_deadline deadline = itest_deadline_in(ITEST_RUN_S * 1000);

    while (itest_host_running(host)) {
        if (itest_expired(&deadline)) {
            faults_host_kill(host);
            ck_abort_msg("walnotify did not reach --endpos within %d s", ITEST_RUN_S);
        }
        faults_sample_slot(history, ctx->conn, ctx->slot);
        itest_sleep_ms(ITEST_POLL_MS);
    }
    faults_sample_slot(history, ctx->conn, ctx->slot);
    return host->status;
}

/* A last run to pg_current_wal_lsn(), sampled throughout; it must end by itself with exit 0. */
static void final_run(faults_history *history, itest_ctx *ctx, const char *conf)
{
    itest_host host;
    char *end = itest_lsn_text(itest_current_lsn(ctx->conn));

    faults_wait_slot_released(ctx->conn, ctx->slot);
    faults_run_begin(history, ctx->conn, ctx->slot);
    itest_host_start(ctx, &host, ITEST_ARGS("-c", conf, "--endpos", end));
    free(end);
    sample_until_exit(history, ctx, &host);
    itest_assert_exit(&host, 0);
    faults_run_end(history, true);
}

static void kill_run(faults_history *history, itest_host *host)
{
    faults_host_kill(host);
    ck_assert_msg(host->status == 128 + SIGKILL, "walnotify ended with %d before the kill",
                  host->status);
    faults_run_end(history, false);
}

START_TEST(test_kill9_at_random_points)
{
    uint64_t seed = faults_seed("kill9");
    faults_rng rng = faults_rng_new(seed);
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path;
    faults_history history;
    pid_t writer;
    size_t again;

    itest_begin(&ctx, "kill9");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY); CREATE SEQUENCE ids");
    conf = itest_config(&ctx, "kill9.cfg", "\"public.t\"", 200,
                        "{ name = \"log\"; path = \"%s\"; settings = { log = \"run.log\"; }; }",
                        itest_root_file("build/tests/fixtures/flaky.so").s);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");
    faults_history_init(&history, log_path.s);

    writer = faults_writer_start(&ctx, "t", "ids", faults_rng_next(&rng), BIG_EVERY, BIG_ROWS);
    for (int k = 0; k < KILLS; k++) {
        int after_ms = (int)faults_rng_range(&rng, KILL_AFTER_MIN_MS, KILL_AFTER_MAX_MS);

        faults_wait_slot_released(ctx.conn, ctx.slot);
        faults_run_begin(&history, ctx.conn, ctx.slot);
        itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
        sample_while_running(&history, &ctx, &host, after_ms);
        kill_run(&history, &host);
    }
    itest_writer_stop(writer);
    ck_assert_msg(itest_query_int(ctx.conn, "SELECT count(*) FROM t") >= BIG_ROWS,
                  "the writer committed no large transaction (seed %" PRIu64 ")", seed);
    final_run(&history, &ctx, conf.s);

    again = faults_check_history(&history, ctx.conn, ids_sql);
    fprintf(stderr, "kill9: %lld rows, %zu lines delivered again over %d kills\n",
            itest_query_int(ctx.conn, "SELECT count(*) FROM t"), again, KILLS);
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

/* The distinct transactions of log lines whose end lies in (from, to], in order. */
static size_t run_transactions(const char *path, long from, long to, wn_lsn *out, size_t max)
{
    size_t length = 0, n = 0;
    char *data = itest_read_file(path, &length);
    long start = 0;

    for (long i = 0; data != NULL && i < (long)length; i++) {
        char text[32];
        wn_lsn lsn;

        if (data[i] != '\n')
            continue;
        if (i + 1 > from && i + 1 <= to && sscanf(data + start, "%31s", text) == 1 &&
            wn_lsn_parse(text, &lsn) && (n == 0 || out[n - 1] != lsn)) {
            ck_assert_msg(n < max, "more than %zu transactions in one run", max);
            out[n++] = lsn;
        }
        start = i + 1;
    }
    free(data);
    return n;
}

static bool holds(const wn_lsn *set, size_t n, wn_lsn lsn)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == lsn)
            return true;
    return false;
}

START_TEST(test_kill9_after_finish_before_ack)
{
    enum { MAX_TXNS = 64 };
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path, signal_path;
    itest_loglines log;
    itest_deadline deadline;
    faults_history history;
    wn_lsn first_acked, acked, marker = 0, run1[MAX_TXNS], run2[MAX_TXNS];
    size_t n1, n2;
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX];

    itest_begin(&ctx, "finishack");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY)");
    conf = itest_config(&ctx, "signal.cfg", "\"public.t\"", 200,
                        "{ name = \"signal\"; path = \"%s\"; settings = { marker = \"1000\"; "
                        "signal = \"finished\"; sleep_ms = %d; log = \"run.log\"; }; }",
                        itest_root_file("build/tests/fixtures/fault_signal.so").s, HOLD_MS);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");
    signal_path = itest_file(&ctx, "finished");
    faults_history_init(&history, log_path.s);

    faults_run_begin(&history, ctx.conn, ctx.slot);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    for (int id = 1; id <= 5; id++)
        itest_exec(ctx.conn, "INSERT INTO t VALUES (%d)", id);
    log = itest_wait_log(log_path.s, 5, ITEST_WAIT_S);
    first_acked = log.line[4].lsn;
    itest_loglines_free(&log);
    /* An acknowledged position inside this run, so that some of it must not come again. */
    deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    while (itest_slot_confirmed(ctx.conn, ctx.slot) <= first_acked) {
        ck_assert_msg(!itest_expired(&deadline), "the slot never passed the first transactions");
        sample_while_running(&history, &ctx, &host, ITEST_POLL_MS);
    }
    for (int id = 6; id <= 8; id++)
        itest_exec(ctx.conn, "INSERT INTO t VALUES (%d)", id);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (999), (1000), (1001)");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2000)");
    faults_wait_file(signal_path.s, ITEST_WAIT_S);
    /* Longer than the status interval: the held dispatcher must not acknowledge meanwhile. */
    sample_while_running(&history, &ctx, &host, 600);
    kill_run(&history, &host);
    faults_wait_slot_released(ctx.conn, ctx.slot);
    acked = itest_slot_confirmed(ctx.conn, ctx.slot);

    final_run(&history, &ctx, conf.s);
    faults_check_history(&history, ctx.conn, ids_sql);

    log = itest_read_log(log_path.s);
    for (size_t i = 0; i < log.count; i++)
        if (strcmp(log.line[i].id, "1000") == 0)
            marker = log.line[i].lsn;
    itest_loglines_free(&log);
    ck_assert_msg(marker != 0, "the marked transaction was never delivered");
    ck_assert_msg(acked <= marker, "the slot was acknowledged to %s, past the marked %s that no "
                                   "flush followed",
                  wn_lsn_format(acked, a), wn_lsn_format(marker, b));
    ck_assert_msg(acked > first_acked, "the slot lost its acknowledged position");

    /* What comes again is exactly what run 1 delivered at or after the acknowledged position. */
    n1 = run_transactions(log_path.s, 0, history.run[0].log_end, run1, MAX_TXNS);
    n2 = run_transactions(log_path.s, history.run[0].log_end, history.run[1].log_end, run2,
                          MAX_TXNS);
    ck_assert_msg(holds(run1, n1, marker), "run 1 did not deliver the marked transaction");
    for (size_t i = 0; i < n1; i++) {
        bool after = run1[i] >= acked;
        ck_assert_msg(holds(run2, n2, run1[i]) == after,
                      "transaction %s of run 1 (%s the acknowledged %s) %s delivered again",
                      wn_lsn_format(run1[i], a), after ? "after" : "before",
                      wn_lsn_format(acked, b), after ? "was not" : "was");
    }
    for (size_t i = 0; i < n2; i++)
        ck_assert_msg(run2[i] >= acked, "run 2 delivered %s, before the acknowledged %s",
                      wn_lsn_format(run2[i], a), wn_lsn_format(acked, b));
    ck_assert_msg(holds(run2, n2, marker), "the marked transaction was not delivered again");
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_kill9_while_blocked_with_keepalives)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, conf2, log_path;
    itest_loglines log;
    itest_deadline deadline;
    faults_history history;
    wn_lsn first, held = 0, highest = 0, wal_at_kill;
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX];
    size_t held_samples;
    pid_t writer;

    itest_begin(&ctx, "blockkill");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY); "
                         "CREATE TABLE u (id serial PRIMARY KEY, v int)");
    conf = itest_config(&ctx, "blocked.cfg", "\"public.t\"", 200,
                        "{ name = \"blocker\"; path = \"%s\"; settings = { block_at = 2; "
                        "block_ms = 90000; log = \"run.log\"; }; }",
                        itest_root_file("build/tests/fixtures/blocker.so").s);
    conf2 = itest_config(&ctx, "free.cfg", "\"public.t\"", 200,
                         "{ name = \"blocker\"; path = \"%s\"; settings = { block_ms = 0; "
                         "log = \"run.log\"; }; }",
                         itest_root_file("build/tests/fixtures/blocker.so").s);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");
    faults_history_init(&history, log_path.s);

    faults_run_begin(&history, ctx.conn, ctx.slot);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    log = itest_wait_log(log_path.s, 1, ITEST_WAIT_S);
    first = log.line[0].lsn;
    itest_loglines_free(&log);
    deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    while (itest_slot_confirmed(ctx.conn, ctx.slot) <= first) {
        ck_assert_msg(!itest_expired(&deadline), "the slot never passed the first transaction");
        sample_while_running(&history, &ctx, &host, ITEST_POLL_MS);
    }

    /* The blocker holds this one inside its first handle call; unpublished writes follow. */
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2), (3)");
    writer = itest_writer_start(&ctx, "INSERT INTO u (v) SELECT g FROM generate_series(1, 50) g");
    sample_while_running(&history, &ctx, &host, 3000);
    wal_at_kill = itest_current_lsn(ctx.conn);
    kill_run(&history, &host);
    held_samples = history.nsamples;
    itest_writer_stop(writer);
    ck_assert_int_gt(itest_query_int(ctx.conn, "SELECT count(*) FROM u"), 500);

    final_run(&history, &ctx, conf2.s);
    faults_check_history(&history, ctx.conn, ids_sql);

    log = itest_read_log(log_path.s);
    ck_assert_msg(log.count == 3 && strcmp(log.line[1].id, "2") == 0 &&
                      strcmp(log.line[2].id, "3") == 0 && log.line[1].lsn == log.line[2].lsn,
                  "run.log does not end with the held transaction (2, 3) delivered once");
    held = log.line[1].lsn;
    itest_loglines_free(&log);
    for (size_t i = 0; i < held_samples; i++)
        highest = history.sample[i].confirmed > highest ? history.sample[i].confirmed : highest;
    ck_assert_msg(wal_at_kill > held + 8192, "the unpublished writes moved the WAL only to %s",
                  wn_lsn_format(wal_at_kill, a));
    ck_assert_msg(history.run[1].start <= held && history.run[1].start > first,
                  "after the kill the slot was at %s, not between the first and the held %s",
                  wn_lsn_format(history.run[1].start, a), wn_lsn_format(held, b));
    ck_assert_msg(highest <= held, "the slot reached %s while the plugin held %s (%zu samples)",
                  wn_lsn_format(highest, a), wn_lsn_format(held, b), held_samples);
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

/* Resets wal_sender_timeout whatever the test did; runs in the test runner's own process. */
static void reset_sender_timeout(void)
{
    PGconn *conn = PQconnectdb("dbname=postgres");
    PGresult *res;

    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "crash: cannot reset wal_sender_timeout: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return;
    }
    res = PQexec(conn, "ALTER SYSTEM RESET wal_sender_timeout");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fprintf(stderr, "crash: cannot reset wal_sender_timeout: %s", PQerrorMessage(conn));
    PQclear(res);
    PQclear(PQexec(conn, "SELECT pg_reload_conf()"));
    PQfinish(conn);
}

static void set_sender_timeout(PGconn *conn, const char *value)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    char *now;

    itest_exec(conn, "ALTER SYSTEM SET wal_sender_timeout = '%s'", value);
    itest_exec(conn, "SELECT pg_reload_conf()");
    for (;;) {
        now = itest_query(conn, "SHOW wal_sender_timeout");
        if (now != NULL && strcmp(now, value) == 0)
            break;
        free(now);
        ck_assert_msg(!itest_expired(&deadline), "wal_sender_timeout did not become %s", value);
        itest_sleep_ms(ITEST_POLL_MS);
    }
    free(now);
}

static size_t count_occurrences(const char *text, const char *needle)
{
    size_t n = 0;

    for (const char *p = text; p != NULL && (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

START_TEST(test_random_failures_short_sender_timeout)
{
    uint64_t seed = faults_seed("random");
    faults_rng rng = faults_rng_new(seed);
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path;
    faults_history history;
    long server_log_from;
    long long walsender = 0;
    char *server_log, *err, *end;

    itest_begin(&ctx, "random");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY); CREATE SEQUENCE ids");
    conf = itest_config(&ctx, "random.cfg", "\"public.t\"", 200,
                        "{ name = \"random\"; path = \"%s\"; settings = { failure_percent = 30; "
                        "seed = %" PRIu64 "; log = \"run.log\"; }; }",
                        itest_root_file("build/tests/fixtures/fault_random.so").s,
                        faults_rng_next(&rng) % 1000000000u);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");
    faults_history_init(&history, log_path.s);
    set_sender_timeout(ctx.conn, SHORT_SENDER_TIMEOUT);
    server_log_from = itest_server_log_size();

    for (int i = 0; i < RANDOM_TXNS; i++)
        itest_exec(ctx.conn, "INSERT INTO t SELECT nextval('ids') FROM generate_series(1, %ld)",
                   faults_rng_range(&rng, 1, 3));
    end = itest_lsn_text(itest_current_lsn(ctx.conn));
    faults_run_begin(&history, ctx.conn, ctx.slot);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s, "--endpos", end));
    free(end);
    /* One walsender for the whole run: the connection was never dropped and made again. */
    while (itest_host_running(&host)) {
        char *pid = itest_query(ctx.conn, "SELECT active_pid FROM pg_replication_slots WHERE "
                                          "slot_name = '%s'",
                                ctx.slot);
        long long now = pid != NULL ? strtoll(pid, NULL, 10) : 0;

        free(pid);
        ck_assert_msg(now == 0 || walsender == 0 || now == walsender,
                      "the walsender changed from %lld to %lld: the connection was lost", walsender,
                      now);
        walsender = now != 0 ? now : walsender;
        faults_sample_slot(&history, ctx.conn, ctx.slot);
        itest_sleep_ms(ITEST_POLL_MS);
    }
    itest_assert_exit(&host, 0);
    faults_run_end(&history, true);
    faults_check_history(&history, ctx.conn, ids_sql);

    err = itest_host_stderr(&host);
    ck_assert_msg(count_occurrences(err, "failed transiently") >= 10,
                  "the plugin failed only %zu times: the test proves little (seed %" PRIu64 ")",
                  count_occurrences(err, "failed transiently"), seed);
    free(err);
    server_log = itest_server_log_since(server_log_from);
    ck_assert_msg(strstr(server_log, "replication timeout") == NULL,
                  "the server dropped the connection for replication timeout");
    free(server_log);
    ck_assert_msg(walsender != 0, "no walsender was ever seen");
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("crash");
    TCase *tc = tcase_create("crash");
    TCase *timeout = tcase_create("sender-timeout");
    SRunner *runner;
    int failed;

    tcase_set_timeout(tc, ITEST_TIMEOUT_S);
    tcase_add_test(tc, test_kill9_at_random_points);
    tcase_add_test(tc, test_kill9_after_finish_before_ack);
    tcase_add_test(tc, test_kill9_while_blocked_with_keepalives);
    suite_add_tcase(suite, tc);
    /* The teardown runs in this process, so the setting is reset even when the test fails. */
    tcase_set_timeout(timeout, ITEST_TIMEOUT_S);
    tcase_add_unchecked_fixture(timeout, NULL, reset_sender_timeout);
    tcase_add_test(timeout, test_random_failures_short_sender_timeout);
    suite_add_tcase(suite, timeout);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
