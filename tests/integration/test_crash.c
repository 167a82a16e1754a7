/*
 * Crashes of the host and misbehaving plugins: kill -9 at random points and inside large
 * transactions under a mixed write load, kill -9 after the plugins finished and flushed a
 * transaction but before its acknowledgement was sent, kill -9 while a plugin holds a transaction
 * and keepalives arrive, and a plugin failing transiently with long backoffs while a writer fills
 * the stream and the server's wal_sender_timeout is short.
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

#define KILLS 12               /* every other one waits for a large transaction in flight */
#define BIG_ROWS 20000
#define BIG_EVERY 50           /* one writer transaction in this many is BIG_ROWS rows */
#define KILL_AFTER_MIN_MS 100
#define KILL_AFTER_MAX_MS 1500
#define MID_SEQ_MARGIN 200     /* rows of a large transaction that count as its edges */
#define MID_WAIT_MS 6000       /* how long a kill waits for a large transaction in flight */
#define HOLD_MS 30000          /* how long the signalling plugin holds the host */
#define ACK_INTERVAL_MS 1000   /* status interval while the signalling plugin holds the host */
#define ACK_WATCH_MS 2500      /* the slot is watched this long (over two intervals) before the kill */
#define SHORT_SENDER_TIMEOUT "3s"
#define SHORT_SENDER_TIMEOUT_MS 3000
#define RANDOM_TXNS 8          /* transactions of the writer alongside the failing plugins */
#define RANDOM_MAX_ROWS 600
#define RANDOM_PAUSE_MS 300
#define RANDOM_PAD_BYTES 1500  /* per row: the stream outgrows the host's queue many times */
#define RANDOM_STATUS_MS 1000
#define RANDOM_FAILURE_PERCENT 30
#define QUICK_RETRY_MS 5       /* the logging plugin: many failures, short backoffs */
#define SLOW_RETRY_MS 500      /* the slow plugin: each failure a streak of SLOW_STREAK, */
#define SLOW_STREAK 3          /* 500 + 1000 + 2000 ms, longer than wal_sender_timeout */
#define SLOW_RETRY_MAX_MS 2000
#define SLOW_PERCENT 50        /* the slow plugin fails often, but SLOW_STREAKS times in all: */
#define SLOW_STREAKS 5         /* 5 x 3.5 s of stalls, a bound the run's length can rely on */
#define QUICK_RETRY_MAX_MS 80  /* a rare long run of handle failures stays short too */
#define RANDOM_RUN_S 95        /* the bound of the run, under Check's limit */

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

/*
 * Samples the slot while the host runs until the log's last line, written by this run (the log
 * has grown past from), is inside a large transaction, or ms have passed.
 */
static void sample_until_mid_transaction(faults_history *history, itest_ctx *ctx,
                                         itest_host *host, long from, int ms)
{
    itest_deadline deadline = itest_deadline_in(ms);

    while (!itest_expired(&deadline)) {
        long seq;

        sample_while_running(history, ctx, host, ITEST_POLL_MS);
        seq = faults_log_last_seq(history->log_path);
        if (faults_file_size(history->log_path) > from && seq >= MID_SEQ_MARGIN &&
            seq < BIG_ROWS - MID_SEQ_MARGIN)
            return;
    }
}

START_TEST(test_kill9_at_random_points)
{
    const faults_mix mix = {.min_rows = 1, .max_rows = 5, .big_every = BIG_EVERY,
                            .big_rows = BIG_ROWS, .pause_ms = 10};
    uint64_t seed = faults_seed("kill9");
    faults_rng rng = faults_rng_new(seed);
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path;
    faults_history history;
    faults_summary summary;
    pid_t writer;

    itest_begin(&ctx, "kill9");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY); CREATE SEQUENCE ids");
    conf = itest_fixture_config(&ctx, "kill9.cfg", "\"public.t\"", 200, "log", "flaky",
                                "log = \"run.log\";");
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");
    faults_history_init(&history, log_path.s);

    writer = faults_writer_start(&ctx, "t", "ids", faults_rng_next(&rng), &mix);
    for (int k = 0; k < KILLS; k++) {
        int after_ms = (int)faults_rng_range(&rng, KILL_AFTER_MIN_MS, KILL_AFTER_MAX_MS);
        long from;

        faults_wait_slot_released(ctx.conn, ctx.slot);
        from = faults_file_size(log_path.s);
        faults_run_begin(&history, ctx.conn, ctx.slot);
        itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
        /* Random times seldom land inside a transaction: half the kills aim at a large one. */
        if (k % 2 == 1)
            sample_until_mid_transaction(&history, &ctx, &host, from, MID_WAIT_MS);
        else
            sample_while_running(&history, &ctx, &host, after_ms);
        kill_run(&history, &host);
    }
    itest_writer_stop(writer);
    final_run(&history, &ctx, conf.s);

    summary = faults_check_history(&history, ctx.conn, ids_sql);
    fprintf(stderr, "kill9: %lld rows, %zu lines delivered again over %d kills\n",
            itest_query_int(ctx.conn, "SELECT count(*) FROM t"), summary.again, KILLS);
    ck_assert_msg(summary.largest == BIG_ROWS,
                  "the largest transaction delivered has %ld rows, not %d (seed %" PRIu64 ")",
                  summary.largest, BIG_ROWS, seed);
    ck_assert_msg(summary.cut > 0,
                  "no kill landed inside a transaction that was then delivered again (seed "
                  "%" PRIu64 ")",
                  seed);
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

/* The index of the first transaction at or after lsn in set (n when none). */
static size_t first_from(const wn_lsn *set, size_t n, wn_lsn lsn)
{
    size_t i = 0;

    while (i < n && set[i] < lsn)
        i++;
    return i;
}

/* The LSN in the signal file the fixture wrote. */
static wn_lsn signalled_lsn(const char *path)
{
    char *text = itest_read_file(path, NULL);
    char lsn_text[32];
    wn_lsn lsn = 0;

    ck_assert_msg(text != NULL && sscanf(text, "%31s", lsn_text) == 1 &&
                      wn_lsn_parse(lsn_text, &lsn),
                  "%s does not hold an LSN", path);
    free(text);
    return lsn;
}

/*
 * The first plugin logs and flushes; the second holds the flush that follows the marked
 * transaction's commit. The host is killed there: every plugin committed the marked transaction
 * and the first one's flush made it durable and returned, but the host cannot have acknowledged
 * it, since not every flush returned.
 */
START_TEST(test_kill9_after_finish_before_ack)
{
    enum { MAX_TXNS = 64 };
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path, signal_path;
    itest_loglines log;
    itest_deadline deadline;
    faults_history history;
    wn_lsn first_acked, at_kill, acked, marker = 0, run1[MAX_TXNS], run2[MAX_TXNS];
    size_t n1, n2, again;
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX], c[WN_LSN_TEXT_MAX];
    char *err;

    itest_begin(&ctx, "finishack");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY)");
    conf = itest_config(&ctx, "signal.cfg", "\"public.t\"", ACK_INTERVAL_MS,
                        "{ name = \"log\"; path = \"%s\"; settings = { marker = \"1000\"; "
                        "log = \"run.log\"; }; },\n"
                        "{ name = \"hold\"; path = \"%s\"; settings = { marker = \"1000\"; "
                        "signal = \"finished\"; sleep_ms = %d; }; }",
                        itest_root_file("build/tests/fixtures/fault_signal.so").s,
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
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2001), (2002)");
    faults_wait_file(signal_path.s, ITEST_WAIT_S);
    marker = signalled_lsn(signal_path.s);
    /* Over two status intervals: an acknowledgement sent before every flush returned shows. */
    sample_while_running(&history, &ctx, &host, ACK_WATCH_MS);
    at_kill = itest_slot_confirmed(ctx.conn, ctx.slot);
    kill_run(&history, &host);
    faults_wait_slot_released(ctx.conn, ctx.slot);
    acked = itest_slot_confirmed(ctx.conn, ctx.slot);
    err = itest_host_stderr(&host);
    ck_assert_msg(err != NULL && strstr(err, "committed and flushed; holding") != NULL,
                  "the host was not held in the flush after the marked transaction");
    free(err);

    ck_assert_msg(at_kill <= marker && acked <= marker,
                  "the slot was acknowledged to %s, past the marked transaction %s whose flush "
                  "had not returned everywhere",
                  wn_lsn_format(acked > at_kill ? acked : at_kill, a), wn_lsn_format(marker, b));
    ck_assert_msg(acked > first_acked, "the slot lost its acknowledged position");

    final_run(&history, &ctx, conf.s);
    faults_check_history(&history, ctx.conn, ids_sql);

    log = itest_read_log(log_path.s);
    for (size_t i = 0; i < log.count; i++)
        if (strcmp(log.line[i].id, "1000") == 0)
            ck_assert_msg(log.line[i].lsn == marker, "row 1000 came in %s, the signal said %s",
                          wn_lsn_format(log.line[i].lsn, a), wn_lsn_format(marker, b));
    itest_loglines_free(&log);

    /* What comes again is exactly what run 1 delivered at or after the acknowledged position,
     * in the same order, before anything run 1 did not reach. */
    n1 = run_transactions(log_path.s, 0, history.run[0].log_end, run1, MAX_TXNS);
    n2 = run_transactions(log_path.s, history.run[0].log_end, history.run[1].log_end, run2,
                          MAX_TXNS);
    again = n1 - first_from(run1, n1, acked);
    ck_assert_msg(holds(run1, n1, marker), "run 1 did not deliver the marked transaction");
    ck_assert_msg(marker >= acked, "the marked transaction lies before the acknowledged %s",
                  wn_lsn_format(acked, a));
    ck_assert_msg(n2 >= again, "run 2 delivered %zu transactions, run 1 %zu after %s", n2, again,
                  wn_lsn_format(acked, a));
    for (size_t i = 0; i < n1; i++)
        if (run1[i] < acked)
            ck_assert_msg(!holds(run2, n2, run1[i]),
                          "transaction %s of run 1, before the acknowledged %s, came again",
                          wn_lsn_format(run1[i], a), wn_lsn_format(acked, b));
    for (size_t i = 0; i < again; i++)
        ck_assert_msg(run2[i] == run1[n1 - again + i],
                      "run 2 delivered %s where %s, next after the acknowledged %s in run 1, was "
                      "due",
                      wn_lsn_format(run2[i], a), wn_lsn_format(run1[n1 - again + i], b),
                      wn_lsn_format(acked, c));
    for (size_t i = again; i < n2; i++)
        ck_assert_msg(run2[i] > run1[n1 - 1], "run 2 delivered %s out of order",
                      wn_lsn_format(run2[i], a));
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
    conf = itest_fixture_config(&ctx, "blocked.cfg", "\"public.t\"", 200, "blocker", "blocker",
                                "block_at = 2; block_ms = 90000; log = \"run.log\";");
    conf2 = itest_fixture_config(&ctx, "free.cfg", "\"public.t\"", 200, "blocker", "blocker",
                                 "block_ms = 0; log = \"run.log\";");
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

static size_t count_occurrences(const char *text, const char *needle)
{
    size_t n = 0;

    for (const char *p = text; p != NULL && (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* The sum of the host's "retrying in N ms" waits: how long the plugin held the dispatcher. */
static long long backoff_total_ms(const char *err)
{
    static const char needle[] = "retrying in ";
    long long total = 0;

    for (const char *p = err; p != NULL && (p = strstr(p, needle)) != NULL; p++)
        total += strtoll(p + strlen(needle), NULL, 10);
    return total;
}

static size_t count_lines(const char *path)
{
    size_t length = 0;
    char *data = itest_read_file(path, &length);
    size_t n = 0;

    for (size_t i = 0; i < length; i++)
        n += data[i] == '\n';
    free(data);
    return n;
}

/* Fails when the slot's walsender is not the one seen before: the connection was made again. */
static void check_walsender(itest_ctx *ctx, long long *walsender)
{
    char *pid = itest_query(ctx->conn, "SELECT active_pid FROM pg_replication_slots WHERE "
                                       "slot_name = '%s'",
                            ctx->slot);
    long long now = pid != NULL ? strtoll(pid, NULL, 10) : 0;

    free(pid);
    ck_assert_msg(now == 0 || *walsender == 0 || now == *walsender,
                  "the walsender changed from %lld to %lld: the connection was lost", *walsender,
                  now);
    *walsender = now != 0 ? now : *walsender;
}

/*
 * A writer fills the stream (wide rows, several times what the host's queue holds) while two
 * plugins fail transiently: the first, which keeps the log, three calls in ten (handle too) with
 * short backoffs; the second half of its begin, commit and flush calls until it has failed
 * SLOW_STREAKS times, each failure holding the dispatcher for 3.5 s, longer than the server's
 * wal_sender_timeout, and all of them together many times longer (but bounded, so the run's
 * length does not depend on the seed). The reader must keep the connection alive meanwhile.
 */
START_TEST(test_random_failures_short_sender_timeout)
{
    const faults_mix mix = {.min_rows = 1, .max_rows = RANDOM_MAX_ROWS,
                            .pause_ms = RANDOM_PAUSE_MS, .transactions = RANDOM_TXNS};
    uint64_t seed = faults_seed("random");
    faults_rng rng = faults_rng_new(seed);
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path;
    itest_deadline deadline;
    faults_history history;
    faults_summary summary;
    long server_log_from;
    long long walsender = 0, rows = -1, stalled_ms;
    char *server_log, *err;
    pid_t writer;

    itest_begin(&ctx, "random");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, pad text NOT NULL DEFAULT "
                         "repeat('x', %d)); CREATE SEQUENCE ids",
               RANDOM_PAD_BYTES);
    conf = itest_config(&ctx, "random.cfg", "\"public.t\"", RANDOM_STATUS_MS,
                        "{ name = \"random\"; path = \"%s\"; retry_initial_ms = %d; "
                        "retry_max_ms = %d; settings = { failure_percent = %d; seed = %" PRIu64 "; "
                        "log = \"run.log\"; }; },\n"
                        "{ name = \"slow\"; path = \"%s\"; retry_initial_ms = %d; "
                        "retry_max_ms = %d; settings = { failure_percent = %d; "
                        "handle_failure_percent = 0; failure_streak = %d; max_streaks = %d; "
                        "seed = %" PRIu64 "; }; }",
                        itest_root_file("build/tests/fixtures/fault_random.so").s, QUICK_RETRY_MS,
                        QUICK_RETRY_MAX_MS, RANDOM_FAILURE_PERCENT,
                        faults_rng_next(&rng) % 1000000000u,
                        itest_root_file("build/tests/fixtures/fault_random.so").s, SLOW_RETRY_MS,
                        SLOW_RETRY_MAX_MS, SLOW_PERCENT, SLOW_STREAK, SLOW_STREAKS,
                        faults_rng_next(&rng) % 1000000000u);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");
    faults_history_init(&history, log_path.s);
    itest_set_server_setting(ctx.conn, "wal_sender_timeout", SHORT_SENDER_TIMEOUT);
    server_log_from = itest_server_log_size();

    faults_run_begin(&history, ctx.conn, ctx.slot);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    writer = faults_writer_start(&ctx, "t", "ids", faults_rng_next(&rng), &mix);
    /* Until the writer is done and every row it committed was delivered, on one walsender. */
    deadline = itest_deadline_in(RANDOM_RUN_S * 1000);
    while (rows < 0 || (long long)count_lines(log_path.s) < rows) {
        if (itest_expired(&deadline)) {
            faults_host_kill(&host);
            err = itest_host_stderr(&host);
            ck_abort_msg("walnotify delivered %zu of %lld rows within %d s (seed %" PRIu64 "); "
                         "stderr ends:\n%s",
                         count_lines(log_path.s), rows, RANDOM_RUN_S, seed,
                         err ? err + (strlen(err) > 3000 ? strlen(err) - 3000 : 0) : "(none)");
        }
        check_walsender(&ctx, &walsender);
        sample_while_running(&history, &ctx, &host, ITEST_POLL_MS);
        if (rows < 0 && faults_writer_done(writer))
            rows = itest_query_int(ctx.conn, "SELECT count(*) FROM t");
    }
    check_walsender(&ctx, &walsender);
    ck_assert_msg(walsender != 0, "no walsender was ever seen");
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    faults_sample_slot(&history, ctx.conn, ctx.slot);
    faults_run_end(&history, true);
    summary = faults_check_history(&history, ctx.conn, ids_sql);
    ck_assert_msg(summary.again == 0, "%zu lines were delivered twice on one connection",
                  summary.again);

    err = itest_host_stderr(&host);
    stalled_ms = backoff_total_ms(err);
    fprintf(stderr, "random: %lld rows in %zu transactions, %zu transient failures, %lld ms of "
                    "backoff\n",
            rows, summary.transactions, count_occurrences(err, "failed transiently"), stalled_ms);
    ck_assert_msg(count_occurrences(err, "plugin \"random\": handle failed transiently") > 0,
                  "the logging plugin never failed handle (seed %" PRIu64 ")", seed);
    ck_assert_msg(stalled_ms > 2 * SHORT_SENDER_TIMEOUT_MS,
                  "the plugins held the dispatcher only %lld ms: the test proves little (seed "
                  "%" PRIu64 ")",
                  stalled_ms, seed);
    ck_assert_msg(strstr(err, "replication stream lost") == NULL &&
                      strstr(err, "reconnecting") == NULL,
                  "the host lost its connection and made it again");
    free(err);
    server_log = itest_server_log_since(server_log_from);
    ck_assert_msg(strstr(server_log, "replication timeout") == NULL,
                  "the server dropped the connection for replication timeout");
    free(server_log);
    faults_history_free(&history);
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
    Suite *suite = suite_create("crash");
    TCase *tc = itest_tcase(suite, "crash");
    TCase *timeout = itest_tcase(suite, "sender-timeout");

    tcase_add_test(tc, test_kill9_at_random_points);
    tcase_add_test(tc, test_kill9_after_finish_before_ack);
    tcase_add_test(tc, test_kill9_while_blocked_with_keepalives);
    /* The teardown runs in this process, so the setting is reset even when the test fails. */
    tcase_add_unchecked_fixture(timeout, NULL, reset_sender_timeout);
    tcase_add_test(timeout, test_random_failures_short_sender_timeout);
    return run_suite(suite) == 0 ? 0 : 1;
}
