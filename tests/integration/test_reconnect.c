/*
 * Reconnection: a walsender terminated from SQL (also while a plugin holds a transaction), a
 * server restarted (fast and immediate), a connection gone silent, a slot held by another host
 * (active/standby), a slot dropped underneath, and the local progress file. Every test checks
 * that every committed row arrives, first deliveries in commit order, and that the shared server
 * is up and healthy afterwards.
 *
 * The tests that stream across a reconnection also check the delivery invariant of faults.h,
 * with the slot sampled throughout (watch.h): each stream starts exactly where the host said it
 * resumes and delivers whole transactions from there, and confirmed_flush_lsn never passed a
 * transaction that the plugin had not finished.
 */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faults.h"
#include "itest.h"
#include "watch.h"

#define INSERT_TWO "INSERT INTO t SELECT nextval('ids') FROM generate_series(1, 2)"
#define HELD_ROWS 50000 /* far more than the host's queue and the socket's buffers hold */

/* A configuration with the test's source, extra source settings (e.g. "state_file =
 * \"state\"; reconnect_initial_ms = 200;") and one plugin, fixture (under build/tests/fixtures)
 * with settings (the inside of its `settings = { ... }`). */
static itest_path plugin_config(const itest_ctx *ctx, const char *name, const char *extra,
                                const char *fixture, const char *settings)
{
    char relative[128];

    snprintf(relative, sizeof relative, "build/tests/fixtures/%s", fixture);
    return itest_config_extra(ctx, name, "\"public.t\"", 200, extra,
                              "{ name = \"log\"; path = \"%s\"; settings = { %s }; }",
                              itest_root_file(relative).s, settings);
}

/* plugin_config with a flaky.so logger into run.log. */
static itest_path reconnect_config(const itest_ctx *ctx, const char *name, const char *extra)
{
    return plugin_config(ctx, name, extra, "flaky.so", "log = \"run.log\";");
}

static const char ids_sql[] = "SELECT id FROM t ORDER BY id";

static void make_table(itest_ctx *ctx)
{
    itest_exec(ctx->conn, "CREATE TABLE t (id bigint PRIMARY KEY); CREATE SEQUENCE ids");
}

/* The tail of the host's stderr, for a failure message (freed by the caller). */
static char *stderr_tail(const itest_host *host, size_t *skip)
{
    char *err = itest_host_stderr(host);
    size_t length = err ? strlen(err) : 0;

    *skip = length > 1500 ? length - 1500 : 0;
    return err;
}

/* Waits until the host's stderr holds text. */
static void wait_stderr(const itest_host *host, const char *text, int timeout_s)
{
    itest_deadline deadline = itest_deadline_in(timeout_s * 1000);

    for (;;) {
        size_t skip;
        char *err = stderr_tail(host, &skip);
        bool found = err && strstr(err, text);

        if (found) {
            free(err);
            return;
        }
        ck_assert_msg(!itest_expired(&deadline), "walnotify never said \"%s\"; stderr ends: %s",
                      text, err ? err + skip : "");
        free(err);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

static int count_in_stderr(const itest_host *host, const char *text)
{
    char *err = itest_host_stderr(host);
    int n = 0;

    for (const char *p = err; p && (p = strstr(p, text)) != NULL; p += strlen(text))
        n++;
    free(err);
    return n;
}

/* The log as it is now, while the host may still append to it (a line being written is left
 * for the next read). */
static itest_loglines read_log_now(const char *path)
{
    return itest_wait_log(path, 0, 1);
}

static bool has_id(const char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

/*
 * Waits until the session of a stopped writer is gone: killed while it committed, it may have
 * left its backend finishing that commit, and a row counted as the last one must really be the
 * last. (The backend exits once the commit is done and it finds its client gone.)
 */
static void wait_writer_gone(itest_ctx *ctx)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    while (itest_query_int(ctx->conn,
                           "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND query LIKE 'INSERT INTO t %%'") > 0) {
        ck_assert_msg(!itest_expired(&deadline), "a session of the writer stays open");
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/*
 * Waits until every row of t has been delivered, then checks the invariant: first deliveries in
 * commit order (lsn, then seq). Returns the number of log lines.
 */
static size_t assert_all_delivered(itest_ctx *ctx, const char *log_path)
{
    itest_deadline deadline;
    long long rows;
    itest_loglines log;
    const char **seen;
    size_t nseen = 0, count;
    wn_lsn last_lsn = 0;
    long last_seq = -1;
    PGresult *res;

    wait_writer_gone(ctx);
    deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    rows = itest_query_int(ctx->conn, "SELECT count(*) FROM t");
    for (;;) {
        log = read_log_now(log_path);
        nseen = 0;
        last_lsn = 0;
        last_seq = -1;
        seen = calloc(log.count + 1, sizeof *seen);
        ck_assert_ptr_nonnull(seen);
        for (size_t i = 0; i < log.count; i++) {
            const itest_logline *l = &log.line[i];

            if (has_id(seen, nseen, l->id))
                continue;
            seen[nseen++] = l->id;
            ck_assert_msg(l->lsn > last_lsn || (l->lsn == last_lsn && l->seq > last_seq),
                          "line %zu: first delivery of row %s at %s seq %ld comes after %s seq "
                          "%ld: out of commit order",
                          i + 1, l->id, itest_lsn_text(l->lsn), l->seq, itest_lsn_text(last_lsn),
                          last_seq);
            last_lsn = l->lsn;
            last_seq = l->seq;
        }
        if ((long long)nseen >= rows)
            break;
        free((void *)seen);
        itest_loglines_free(&log);
        ck_assert_msg(!itest_expired(&deadline), "only %zu of %lld rows delivered", nseen, rows);
        itest_sleep_ms(100);
    }
    res = PQexec(ctx->conn, "SELECT id FROM t ORDER BY id");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    for (int r = 0; r < PQntuples(res); r++)
        ck_assert_msg(has_id(seen, nseen, PQgetvalue(res, r, 0)), "row %s was never delivered",
                      PQgetvalue(res, r, 0));
    PQclear(res);
    count = log.count;
    free((void *)seen);
    itest_loglines_free(&log);
    return count;
}

static long long walsender_pid(itest_ctx *ctx)
{
    char *pid = itest_query(ctx->conn,
                            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '%s'",
                            ctx->slot);
    long long n = pid ? atoll(pid) : 0;

    free(pid);
    return n;
}

/* Waits until a walsender holds the slot; returns its PID. */
static long long wait_walsender(itest_ctx *ctx, long long not_this)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        long long pid = walsender_pid(ctx);

        if (pid > 0 && pid != not_this)
            return pid;
        ck_assert_msg(!itest_expired(&deadline), "no walsender took slot %s", ctx->slot);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

static size_t log_count(const char *path)
{
    itest_loglines log = read_log_now(path);
    size_t n = log.count;

    itest_loglines_free(&log);
    return n;
}

/* What the server says of the test's table, slot and sessions, for a failure message (NULL
 * when the slot is gone). */
static char *server_view(itest_ctx *ctx)
{
    return itest_query(ctx->conn,
                       "SELECT (SELECT format('t holds %%s rows; slot active_pid %%s confirmed %%s; "
                       "sessions: %%s', (SELECT count(*) FROM t), active_pid, confirmed_flush_lsn, "
                       "(SELECT string_agg(format('%%s %%s %%s/%%s %%s', pid, backend_type, "
                       "wait_event_type, wait_event, left(query, 40)), '; ') "
                       "FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                       "(datname = current_database() OR backend_type = 'walsender'))) "
                       "FROM pg_replication_slots WHERE slot_name = '%s')",
                       ctx->slot);
}

/* Waits until the host, which must keep running, has logged `more` lines; a failure says what
 * the server and the host say, whether the host stopped or stalled. */
static void wait_more_lines(itest_ctx *ctx, itest_host *host, const char *path, size_t more)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    size_t want = log_count(path) + more, have;

    while ((have = log_count(path)) < want) {
        bool running = itest_host_running(host);

        if (!running || itest_expired(&deadline)) {
            size_t skip;
            char *err = stderr_tail(host, &skip);
            char *server = server_view(ctx);

            ck_abort_msg("%s holds %zu lines, expected %zu within %d s: walnotify %s; the "
                         "server: %s; walnotify's stderr ends:\n%s",
                         path, have, want, ITEST_WAIT_S, running ? "runs" : "stopped",
                         server ? server : "(no slot)", err ? err + skip : "(none)");
        }
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* The end of a watched test: a clean stop, then the delivery invariant over every stream. */
static void stop_and_check(itest_ctx *ctx, itest_host *host, watch *w, faults_history *history)
{
    itest_host_stop(host, SIGTERM);
    itest_assert_exit(host, 0);
    watch_stop(w);
    faults_run_end(history, false);
    faults_check_history(history, ctx->conn, ids_sql);
    faults_history_free(history);
}

START_TEST(test_terminated_walsender)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path;
    faults_history history;
    watch *w;
    long long pid = 0;
    pid_t writer;

    itest_begin(&ctx, "terminate");
    make_table(&ctx);
    conf = reconnect_config(&ctx, "t.cfg", "reconnect_initial_ms = 200;");
    log_path = itest_file(&ctx, "run.log");
    itest_create_slot(&ctx, conf.s);
    faults_history_init(&history, log_path.s);
    w = watch_host_start(&ctx, &history, &host, ITEST_ARGS("-c", conf.s));
    writer = itest_writer_start(&ctx, INSERT_TWO);
    for (int round = 0; round < 3; round++) {
        wait_more_lines(&ctx, &host, log_path.s, 10);
        pid = wait_walsender(&ctx, pid);
        itest_exec(ctx.conn, "SELECT pg_terminate_backend(%lld)", pid);
    }
    wait_more_lines(&ctx, &host, log_path.s, 10);
    itest_writer_stop(writer);
    assert_all_delivered(&ctx, log_path.s);
    ck_assert_msg(itest_host_running(&host), "walnotify stopped (exit %d)", host.status);
    ck_assert_int_ge(count_in_stderr(&host, "WARNING: replication stream lost: "), 3);
    ck_assert_int_ge(count_in_stderr(&host, "INFO: replication stream back at "), 3);
    ck_assert_int_ge(watch_reconnections(w), 3);
    wait_stderr(&host, "reconnecting in ", 1);
    stop_and_check(&ctx, &host, w, &history);
    itest_end(&ctx);
}
END_TEST

/* Waits until the server's log, from byte offset on, holds text. */
static void wait_server_log(long offset, const char *text)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        char *log = itest_server_log_since(offset);
        bool found = log != NULL && strstr(log, text) != NULL;

        free(log);
        if (found)
            return;
        ck_assert_msg(!itest_expired(&deadline), "the server never logged \"%s\"", text);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* Waits until the log's last line is the table's last row. */
static void wait_last_id(itest_ctx *ctx, const char *log_path)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    char *last = itest_query(ctx->conn, "SELECT max(id)::text FROM t");

    for (;;) {
        itest_loglines log = read_log_now(log_path);
        size_t count = log.count;
        bool done = count > 0 && strcmp(log.line[count - 1].id, last) == 0;

        itest_loglines_free(&log);
        if (done)
            break;
        ck_assert_msg(!itest_expired(&deadline), "row %s was never delivered (%zu lines in %s)",
                      last, count, log_path);
        itest_sleep_ms(100);
    }
    free(last);
}

/*
 * Where the held transaction's lines are: the first delivery from `*first` (`*cut` rows), the
 * second from `*again`. Fails unless both start at seq 0 and the second is whole.
 */
static void find_deliveries(const itest_loglines *log, wn_lsn held, size_t *first, size_t *cut,
                            size_t *again)
{
    size_t i = 0, n;

    while (i < log->count && log->line[i].lsn != held)
        i++;
    ck_assert_msg(i < log->count && log->line[i].seq == 0,
                  "the held transaction's first delivery does not start at seq 0");
    *first = i;
    for (i++; i < log->count && !(log->line[i].lsn == held && log->line[i].seq == 0); i++)
        ;
    ck_assert_msg(i < log->count, "the held transaction was not delivered again from seq 0");
    *cut = i - *first;
    *again = i;
    for (n = 0; i < log->count && log->line[i].lsn == held; i++, n++)
        ck_assert_msg(log->line[i].seq == (long)n, "second delivery: seq %ld where %zu was due",
                      log->line[i].seq, n);
    ck_assert_msg(n == HELD_ROWS, "the second delivery has %zu of the %d rows", n, HELD_ROWS);
}

/*
 * The walsender terminated while a plugin holds the second row of a large transaction, whose
 * Commit cannot have reached the host (the queue and the socket hold far fewer rows): once the
 * plugin returns, the host sees the stream end inside the transaction, aborts it in the plugin,
 * reconnects by itself and delivers it again from seq 0, whole, then what followed.
 */
START_TEST(test_terminated_mid_transaction)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path, release, aborts;
    faults_history history;
    itest_loglines log;
    itest_lines abort_lines;
    watch *w;
    wn_lsn held;
    long server_log_from;
    size_t first, cut, again;
    char *held_text;

    itest_begin(&ctx, "midtxn");
    make_table(&ctx);
    /* Handle call 3 is the second row of the large transaction. */
    conf = plugin_config(&ctx, "m.cfg", "reconnect_initial_ms = 200;", "blocker.so",
                         "block_at = 3; block_ms = 100000; release = \"release\"; "
                         "log = \"run.log\"; aborts = \"aborts\";");
    log_path = itest_file(&ctx, "run.log");
    release = itest_file(&ctx, "release");
    aborts = itest_file(&ctx, "aborts");
    itest_create_slot(&ctx, conf.s);
    faults_history_init(&history, log_path.s);
    w = watch_host_start(&ctx, &history, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t SELECT nextval('ids')");
    itest_exec(ctx.conn, "INSERT INTO t SELECT nextval('ids') FROM generate_series(1, %d)",
               HELD_ROWS);
    itest_exec(ctx.conn, "INSERT INTO t SELECT nextval('ids')");
    log = itest_wait_log(log_path.s, 2, ITEST_WAIT_S);
    held = log.line[1].lsn;
    itest_loglines_free(&log);

    server_log_from = itest_server_log_size();
    itest_exec(ctx.conn, "SELECT pg_terminate_backend(%lld)", wait_walsender(&ctx, 0));
    /* The walsender logs its end before it tries to tell the client. */
    wait_server_log(server_log_from, "terminating connection due to administrator command");
    ck_assert_msg(log_count(log_path.s) == 2, "the plugin did not hold the transaction");
    itest_write_file(release.s, "go\n");

    wait_stderr(&host, "INFO: replication stream back at ", ITEST_WAIT_S);
    /* Every row and the order of first deliveries are for faults_check_history below. */
    wait_last_id(&ctx, log_path.s);
    ck_assert_msg(itest_host_running(&host), "walnotify stopped (exit %d)", host.status);
    ck_assert_int_eq(count_in_stderr(&host, "WARNING: replication stream lost: "), 1);
    ck_assert_int_eq(watch_reconnections(w), 1);

    held_text = itest_lsn_text(held);
    abort_lines = itest_read_lines(aborts.s);
    ck_assert_msg(abort_lines.count == 1 && strcmp(abort_lines.line[0], held_text) == 0,
                  "abort was called %zu times (first: %s), expected once for %s",
                  abort_lines.count, abort_lines.count ? abort_lines.line[0] : "-", held_text);
    itest_lines_free(&abort_lines);
    log = itest_read_log(log_path.s);
    find_deliveries(&log, held, &first, &cut, &again);
    ck_assert_msg(cut >= 2 && cut < HELD_ROWS,
                  "the first delivery has %zu of %d rows: the stream did not end inside it", cut,
                  HELD_ROWS);
    ck_assert_msg(again == first + cut && first == 1,
                  "the held transaction's deliveries are not the second and third in the log");
    itest_loglines_free(&log);

    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    watch_stop(w);
    faults_run_end(&history, false);
    ck_assert_msg(history.nruns == 2 && history.run[1].start <= held,
                  "the host resumed at %s, past the held %s",
                  itest_lsn_text(history.run[history.nruns - 1].start), held_text);
    faults_check_history(&history, ctx.conn, ids_sql);
    faults_history_free(&history);
    free(held_text);
    itest_end(&ctx);
}
END_TEST

/* A writer that outlives server restarts: on any failure it reconnects and goes on. Whether a
 * commit in flight at the crash happened is for the table to say, not the writer. */
static pid_t restart_proof_writer(const itest_ctx *ctx)
{
    pid_t pid;

    pid = itest_fork();
    if (pid != 0)
        return pid;
    itest_writer_child_setup();
    for (unsigned failing = 0;;) {
        char conninfo[1200];
        PGconn *conn;

        snprintf(conninfo, sizeof conninfo, "%s connect_timeout=5", ctx->conninfo);
        conn = PQconnectdb(conninfo);
        while (PQstatus(conn) == CONNECTION_OK) {
            PGresult *res = PQexec(conn, INSERT_TWO);
            bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

            PQclear(res);
            itest_writer_stop_if_asked();
            if (!ok)
                break;
            failing = 0;
            itest_sleep_ms(2);
        }
        /* A restart costs a few failures; a writer that never commits again would leave the
         * test waiting on the host, so it says why. */
        if (++failing % 100 == 0)
            fprintf(stderr, "restart-proof writer: %u failures in a row, the last: %s", failing,
                    PQerrorMessage(conn));
        PQfinish(conn);
        itest_sleep_ms(50);
    }
}

/* Restarts the server; the watch samples nothing while it is down. */
static void restart_server(itest_ctx *ctx, watch *w, const char *mode)
{
    char command[2 * PATH_MAX];
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    snprintf(command, sizeof command, "'%s' restart '%s' %s >/dev/null",
             itest_root_file("tests/pg-harness.sh").s, itest_env("WN_TEST_PGDIR"), mode);
    watch_server_down(w);
    ck_assert_msg(system(command) == 0, "%s failed", command);
    watch_server_up(w);
    for (;;) {
        PQreset(ctx->conn);
        if (PQstatus(ctx->conn) == CONNECTION_OK)
            return;
        ck_assert_msg(!itest_expired(&deadline), "cannot reconnect after the restart");
        itest_sleep_ms(100);
    }
}

/* The position the state file holds. */
static wn_lsn state_lsn(const char *path)
{
    char *text = itest_read_file(path, NULL);
    const char *lsn;
    wn_lsn value = 0;
    char buf[32];

    ck_assert_msg(text != NULL, "no state file %s", path);
    ck_assert_msg(strncmp(text, "walnotify-state 1\n", 18) == 0, "state file: %s", text);
    lsn = strstr(text, "\nlsn=");
    ck_assert_msg(lsn && sscanf(lsn + 5, "%31s", buf) == 1 && wn_lsn_parse(buf, &value),
                  "state file without lsn: %s", text);
    free(text);
    return value;
}

/* After a restart, nothing that the state file said was done before it comes again. */
static void assert_no_replay(const char *log_path, size_t from, wn_lsn done, const char *mode)
{
    itest_loglines log = read_log_now(log_path);

    for (size_t i = from; i < log.count; i++)
        ck_assert_msg(log.line[i].lsn >= done,
                      "after the %s restart, line %zu delivered %s again, before %s that the "
                      "state file recorded as done",
                      mode, i + 1, itest_lsn_text(log.line[i].lsn), itest_lsn_text(done));
    itest_loglines_free(&log);
}

START_TEST(test_server_restarts)
{
    /* Several restarts of each kind, alternating, while the writer commits. */
    static const char *const modes[] = {"fast", "immediate", "fast", "immediate"};
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path, state;
    faults_history history;
    watch *w;
    pid_t writer;

    itest_begin(&ctx, "restart");
    make_table(&ctx);
    conf = reconnect_config(&ctx, "r.cfg", "reconnect_initial_ms = 200; state_file = \"state\";");
    log_path = itest_file(&ctx, "run.log");
    state = itest_file(&ctx, "state");
    itest_create_slot(&ctx, conf.s);
    faults_history_init(&history, log_path.s);
    w = watch_host_start(&ctx, &history, &host, ITEST_ARGS("-c", conf.s));
    writer = restart_proof_writer(&ctx);
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        wn_lsn done;
        size_t lines;

        wait_more_lines(&ctx, &host, log_path.s, 20);
        /* Everything up to `done` was logged before the file said so: it is all in `lines`. */
        done = state_lsn(state.s);
        lines = log_count(log_path.s);
        restart_server(&ctx, w, modes[m]);
        wait_more_lines(&ctx, &host, log_path.s, 20);
        assert_no_replay(log_path.s, lines, done, modes[m]);
    }
    kill(writer, SIGTERM);
    waitpid(writer, NULL, 0);
    assert_all_delivered(&ctx, log_path.s);
    ck_assert_msg(itest_host_running(&host), "walnotify stopped (exit %d)", host.status);
    ck_assert_int_ge(count_in_stderr(&host, "INFO: replication stream back at "),
                     (int)(sizeof modes / sizeof modes[0]));
    ck_assert_int_ge(watch_reconnections(w), (int)(sizeof modes / sizeof modes[0]));
    stop_and_check(&ctx, &host, w, &history);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_silent_connection)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path;
    itest_deadline deadline;
    faults_history history;
    watch *w;
    long long pid;
    bool said = false;

    itest_begin(&ctx, "silent");
    make_table(&ctx);
    conf = reconnect_config(&ctx, "s.cfg", "reconnect_initial_ms = 200; receive_timeout_ms = 1000;");
    log_path = itest_file(&ctx, "run.log");
    itest_create_slot(&ctx, conf.s);
    faults_history_init(&history, log_path.s);
    w = watch_host_start(&ctx, &history, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t SELECT nextval('ids')");
    wait_more_lines(&ctx, &host, log_path.s, 1);
    pid = wait_walsender(&ctx, 0);
    /* A frozen walsender is a connection that went half-open: nothing comes back. No assertion
     * may end the test before it is thawed, and the slot is not read meanwhile (a walsender
     * frozen while it holds the slot's lock would make the read wait). */
    watch_server_down(w);
    ck_assert_int_eq(kill((pid_t)pid, SIGSTOP), 0);
    deadline = itest_deadline_in(15000);
    while (!said && !itest_expired(&deadline)) {
        said = count_in_stderr(&host, "connection silent: nothing from the server") > 0;
        itest_sleep_ms(ITEST_POLL_MS);
    }
    kill((pid_t)pid, SIGCONT);
    watch_server_up(w);
    ck_assert_msg(said, "walnotify did not notice the silent connection");
    wait_stderr(&host, "nothing from the server for", 1);
    itest_exec(ctx.conn, "INSERT INTO t SELECT nextval('ids')");
    wait_stderr(&host, "INFO: replication stream back at ", ITEST_WAIT_S);
    assert_all_delivered(&ctx, log_path.s);
    ck_assert_int_ge(watch_reconnections(w), 1);
    stop_and_check(&ctx, &host, w, &history);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_standby_takes_over)
{
    itest_ctx ctx;
    itest_host active, standby;
    itest_path conf, log_path;
    faults_history history;
    watch *w;
    long long pid;
    pid_t writer;
    char said[64];

    itest_begin(&ctx, "standby");
    make_table(&ctx);
    conf = reconnect_config(&ctx, "a.cfg", "reconnect_initial_ms = 200; state_file = \"state\";");
    log_path = itest_file(&ctx, "run.log");
    itest_create_slot(&ctx, conf.s);
    faults_history_init(&history, log_path.s);
    w = watch_host_start(&ctx, &history, &active, ITEST_ARGS("-c", conf.s));
    pid = wait_walsender(&ctx, 0);
    itest_host_start(&ctx, &standby, ITEST_ARGS("-c", conf.s));
    snprintf(said, sizeof said, "is active for PID %lld", pid);
    wait_stderr(&standby, said, ITEST_WAIT_S);
    writer = itest_writer_start(&ctx, INSERT_TWO);
    wait_more_lines(&ctx, &active, log_path.s, 20);
    ck_assert_int_eq(count_in_stderr(&standby, "streaming slot"), 0);
    itest_host_stop(&active, SIGKILL);
    /* The standby's run starts where it says its stream starts (the state file, or the slot). */
    watch_takeover(w, &standby);
    wait_stderr(&standby, "replication stream up at", ITEST_WAIT_S);
    wait_more_lines(&ctx, &standby, log_path.s, 20);
    itest_writer_stop(writer);
    assert_all_delivered(&ctx, log_path.s);
    ck_assert_msg(itest_host_running(&standby), "the standby stopped (exit %d)", standby.status);
    ck_assert_int_eq(count_in_stderr(&standby, "waiting for slot"), 1); /* once a minute */
    ck_assert_int_eq(watch_reconnections(w), 1);
    itest_host_stop(&standby, SIGTERM);
    itest_assert_exit(&standby, 0);
    watch_stop(w);
    faults_run_end(&history, false);
    faults_check_history(&history, ctx.conn, ids_sql);
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

/* ---- an active/standby pair on one jsonl file ------------------------------------------------ */

/* A configuration of the pair: the jsonl plugin appending to rows.jsonl in the test's folder (one
 * file for both hosts, locked by whichever writes), log_level info (what a user sees), and
 * extra source settings. */
static itest_path pair_config(const itest_ctx *ctx, const char *name, const char *extra)
{
    itest_path path = itest_file(ctx, name);

    itest_write_file(path.s,
                     "log_level = \"info\";\n"
                     "source:\n{\n"
                     "  conninfo = \"%s\";\n"
                     "  tables = [ \"public.t\" ];\n"
                     "  slot = \"%s\";\n"
                     "  publication = \"%s\";\n"
                     "  status_interval_ms = 200;\n"
                     "  %s\n"
                     "};\n"
                     "plugins = ( { name = \"rows\"; path = \"%s\"; "
                     "settings = { path = \"rows.jsonl\"; }; } );\n",
                     ctx->conninfo, ctx->slot, ctx->pub, extra,
                     itest_root_file("build/plugins/jsonl.so").s);
    return path;
}

/* Whole lines in the file now (0 when it is missing). */
static size_t file_lines(const char *path)
{
    char *text = itest_read_file(path, NULL);
    size_t n = 0;

    for (const char *p = text; p && (p = strchr(p, '\n')) != NULL; p++)
        n++;
    free(text);
    return n;
}

static void wait_file_lines(const char *path, size_t count)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    while (file_lines(path) < count) {
        ck_assert_msg(!itest_expired(&deadline), "%s has %zu lines, never %zu", path,
                      file_lines(path), count);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* Waits until the file holds the line of row id (the last one the writer committed). */
static void wait_row_in_file(const char *path, const char *id)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    char needle[96];

    snprintf(needle, sizeof needle, "\"values\":{\"id\":\"%s\"}", id);
    for (;;) {
        char *text = itest_read_file(path, NULL);
        bool found = text && strstr(text, needle);

        free(text);
        if (found)
            return;
        ck_assert_msg(!itest_expired(&deadline), "row %s never reached %s", id, path);
        itest_sleep_ms(100);
    }
}

/* Every row of t is in the file at least once, and first deliveries come in commit order. */
static void assert_file_complete(itest_ctx *ctx, const char *path)
{
    itest_events events = itest_read_events(path);
    long long max_id = itest_query_int(ctx->conn, "SELECT coalesce(max(id), 0) FROM t");
    bool *seen = calloc((size_t)max_id + 1, sizeof *seen);
    wn_lsn last_lsn = 0;
    long last_seq = -1;
    size_t firsts = 0;
    PGresult *res;

    ck_assert_ptr_nonnull(seen);
    for (size_t i = 0; i < events.count; i++) {
        const itest_event *e = &events.event[i];
        long long id = atoll(itest_value(e, "id"));

        ck_assert_msg(id >= 1 && id <= max_id, "line %zu: row %lld is not in the table", i + 1,
                      id);
        if (seen[id])
            continue;
        ck_assert_msg(e->lsn > last_lsn || (e->lsn == last_lsn && e->seq > last_seq),
                      "line %zu: first delivery of row %lld at %s seq %ld comes after %s seq %ld",
                      i + 1, id, itest_lsn_text(e->lsn), e->seq, itest_lsn_text(last_lsn),
                      last_seq);
        seen[id] = true;
        last_lsn = e->lsn;
        last_seq = e->seq;
        firsts++;
    }
    res = PQexec(ctx->conn, ids_sql);
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    for (int r = 0; r < PQntuples(res); r++)
        ck_assert_msg(seen[atoll(PQgetvalue(res, r, 0))], "row %s was never delivered to %s",
                      PQgetvalue(res, r, 0), path);
    ck_assert_int_eq(firsts, (size_t)PQntuples(res));
    PQclear(res);
    free(seen);
    itest_events_free(&events);
}

static void assert_both_up(itest_host *a, itest_host *b)
{
    ck_assert_msg(itest_host_running(a), "the first host stopped (exit %d)", a->status);
    ck_assert_msg(itest_host_running(b), "the second host stopped (exit %d)", b->status);
}

/* An active/standby pair of hosts on one jsonl file, rows.jsonl, while a writer commits. */
typedef struct pair_test {
    itest_ctx ctx;
    itest_host active;
    itest_host standby;
    itest_path rows;
    long long pid;  /* the active host's walsender */
    pid_t writer;
} pair_test;

/* The test's table and slot; the active host streaming (active_conf), then the standby
 * (standby_conf) told that the slot is active for the active host's walsender; and a writer
 * committing. */
static void start_pair(pair_test *p, const char *active_conf, const char *standby_conf)
{
    char said[64];

    make_table(&p->ctx);
    p->rows = itest_file(&p->ctx, "rows.jsonl");
    itest_create_slot(&p->ctx, active_conf);
    itest_host_start(&p->ctx, &p->active, ITEST_ARGS("-c", active_conf));
    wait_stderr(&p->active, "streaming slot", ITEST_WAIT_S);
    p->pid = wait_walsender(&p->ctx, 0);
    itest_host_start(&p->ctx, &p->standby, ITEST_ARGS("-c", standby_conf));
    snprintf(said, sizeof said, "is active for PID %lld", p->pid);
    wait_stderr(&p->standby, said, ITEST_WAIT_S);
    p->writer = itest_writer_start(&p->ctx, INSERT_TWO);
}

/* The pair's end: the writer stops, its last row reaches the file, both hosts are still up and
 * stop cleanly, and the file holds everything. */
static void finish_pair(pair_test *p)
{
    char *last;

    itest_writer_stop(p->writer);
    wait_writer_gone(&p->ctx);
    last = itest_query(p->ctx.conn, "SELECT max(id)::text FROM t");
    wait_row_in_file(p->rows.s, last);
    free(last);
    assert_both_up(&p->active, &p->standby);
    itest_host_stop(&p->active, SIGTERM);
    itest_host_stop(&p->standby, SIGTERM);
    itest_assert_exit(&p->active, 0);
    itest_assert_exit(&p->standby, 0);
    assert_file_complete(&p->ctx, p->rows.s);
}

/*
 * The standby wins the race: the active host's walsender is terminated, and the standby takes
 * the slot while the active one waits out its reconnection delay with the file still locked.
 * The standby's jsonl init answers RETRY (said once) until the active host, finding the slot
 * taken, shuts its plugins down and waits as the standby. Meanwhile the standby's own stream is
 * lost too: it stops retrying init on a dead stream, reconnects and takes the slot again.
 */
START_TEST(test_pair_standby_takes_slot_first)
{
    pair_test p;
    itest_path slow, quick;

    itest_begin(&p.ctx, "pairfirst");
    slow = pair_config(&p.ctx, "slow.cfg", "reconnect_initial_ms = 4000; reconnect_max_ms = 4000;");
    quick = pair_config(&p.ctx, "quick.cfg", "reconnect_initial_ms = 100; reconnect_max_ms = 200;");
    start_pair(&p, slow.s, quick.s);
    wait_file_lines(p.rows.s, 20);

    itest_exec(p.ctx.conn, "SELECT pg_terminate_backend(%lld)", p.pid);
    wait_stderr(&p.standby, "is locked by another process", ITEST_WAIT_S);
    /* Early in the standby's retries (100 ms, then 200 ms, ...): it notices within a few. */
    itest_exec(p.ctx.conn, "SELECT pg_terminate_backend(%lld)", wait_walsender(&p.ctx, p.pid));
    wait_stderr(&p.standby, "the replication stream ended while init was being retried",
                ITEST_WAIT_S);
    wait_stderr(&p.active, "plugin(s) shut down, their sinks released", ITEST_WAIT_S);
    wait_stderr(&p.standby, "streaming slot", ITEST_WAIT_S);
    wait_file_lines(p.rows.s, file_lines(p.rows.s) + 20);
    assert_both_up(&p.active, &p.standby);
    /* Retried several times over the active host's delay, the reason was said once a stream
     * at most: the second stream's init may or may not find the file still locked. */
    int said = count_in_stderr(&p.standby, "is locked by another process");
    ck_assert_msg(said >= 1 && said <= 2, "the lock was said %d times over two streams", said);
    ck_assert_int_eq(count_in_stderr(&p.standby, "init answered RETRY"), 2); /* once a stream */
    ck_assert_int_eq(count_in_stderr(&p.active, "streaming slot"), 1);
    finish_pair(&p);
    itest_end(&p.ctx);
}
END_TEST

/*
 * The active host wins the race: its walsender is terminated just after the standby's attempt,
 * so it takes the slot back long before the standby tries again. Its plugins stay initialised
 * and the standby goes on waiting.
 */
START_TEST(test_pair_active_takes_slot_back)
{
    pair_test p;
    itest_path quick, slow;
    long offset;

    itest_begin(&p.ctx, "pairback");
    quick = pair_config(&p.ctx, "quick.cfg", "reconnect_initial_ms = 100; reconnect_max_ms = 200;");
    /* Its slot is tried every 3 s (±20 %): the active one needs a few hundred ms. */
    slow = pair_config(&p.ctx, "slow.cfg", "reconnect_initial_ms = 3000; reconnect_max_ms = 3000;");
    start_pair(&p, quick.s, slow.s);
    wait_file_lines(p.rows.s, 20);

    offset = itest_server_log_size();
    wait_server_log(offset, "is active for PID"); /* the standby's attempt, just now */
    itest_exec(p.ctx.conn, "SELECT pg_terminate_backend(%lld)", p.pid);
    wait_stderr(&p.active, "replication stream back at", ITEST_WAIT_S);
    wait_file_lines(p.rows.s, file_lines(p.rows.s) + 20);
    assert_both_up(&p.active, &p.standby);
    ck_assert_int_eq(count_in_stderr(&p.active, "shut down"), 0);
    ck_assert_int_eq(count_in_stderr(&p.standby, "streaming slot"), 0);
    finish_pair(&p);
    itest_end(&p.ctx);
}
END_TEST

/* Rounds of test_pair_terminated_repeatedly: WN_PAIR_ROUNDS (make pair-loop), else a few for
 * make check. */
static int pair_rounds(void)
{
    const char *text = getenv("WN_PAIR_ROUNDS");
    int n = text ? atoi(text) : 0;

    return n > 0 ? n : 4;
}

/*
 * The walsender of whichever host streams is terminated again and again while rows are
 * committed; either host may win each race. Both stay up, and the file holds every row.
 */
START_TEST(test_pair_terminated_repeatedly)
{
    pair_test p;
    itest_path conf;
    int rounds = pair_rounds();

    itest_begin(&p.ctx, "pairloop");
    conf = pair_config(&p.ctx, "pair.cfg", "reconnect_initial_ms = 200; reconnect_max_ms = 1000;");
    start_pair(&p, conf.s, conf.s);
    for (int round = 0; round < rounds; round++) {
        /* Whoever holds the slot now has started its plugins and writes. */
        wait_file_lines(p.rows.s, file_lines(p.rows.s) + 10);
        itest_exec(p.ctx.conn, "SELECT pg_terminate_backend(%lld)", p.pid);
        p.pid = wait_walsender(&p.ctx, p.pid);
        assert_both_up(&p.active, &p.standby);
    }
    wait_file_lines(p.rows.s, file_lines(p.rows.s) + 10);
    fprintf(stderr, "test_pair_terminated_repeatedly: %d rounds; streams started: %d and %d\n",
            rounds, count_in_stderr(&p.active, "streaming slot"),
            count_in_stderr(&p.standby, "streaming slot"));
    finish_pair(&p);
    itest_end(&p.ctx);
}
END_TEST

START_TEST(test_slot_dropped)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, plain;
    itest_deadline deadline;
    char *err;
    long long pid;

    itest_begin(&ctx, "dropped");
    make_table(&ctx);
    conf = reconnect_config(&ctx, "d.cfg", "state_file = \"state\";");
    plain = reconnect_config(&ctx, "p.cfg", "reconnect_initial_ms = 3000;");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    itest_run_to_now(&ctx, conf.s);

    /* Dropped while walnotify was stopped: the state file says the slot was used. */
    itest_exec(ctx.conn, "SELECT pg_drop_replication_slot('%s')", ctx.slot);
    itest_host_run(&ctx, &host, "-c", conf.s);
    itest_assert_failed(&host, 3);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "no longer exists") && strstr(err, "cannot resume without a gap") &&
                      strstr(err, ctx.slot),
                  "stderr: %s", err);
    free(err);
    ck_assert_msg(!itest_slot_exists(ctx.conn, ctx.slot), "a new slot was made silently");

    /* Dropped while walnotify streams (no state file): its walsender is terminated first, as a
     * slot in use cannot be dropped. */
    itest_create_slot(&ctx, plain.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", plain.s));
    /* Streaming, not merely starting: a slot missing at startup is made, by design. */
    wait_stderr(&host, "streaming slot", ITEST_WAIT_S);
    pid = wait_walsender(&ctx, 0);
    itest_exec(ctx.conn, "SELECT pg_terminate_backend(%lld)", pid);
    deadline = itest_deadline_in(2500);
    for (;;) {
        PGresult *res = PQexecParams(ctx.conn, "SELECT pg_drop_replication_slot($1)", 1, NULL,
                                     (const char *const[]){ctx.slot}, NULL, NULL, 0);
        bool dropped = PQresultStatus(res) == PGRES_TUPLES_OK;

        PQclear(res);
        if (dropped)
            break;
        ck_assert_msg(!itest_expired(&deadline), "could not drop the slot after terminating");
        itest_sleep_ms(10);
    }
    itest_host_wait(&host, ITEST_WAIT_S);
    itest_assert_failed(&host, 3);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "replication stream lost") && strstr(err, "no longer exists") &&
                      strstr(err, "dropped while walnotify streamed"),
                  "stderr: %s", err);
    free(err);
    ck_assert_msg(!itest_slot_exists(ctx.conn, ctx.slot), "a new slot was made silently");
    itest_end(&ctx);
}
END_TEST

START_TEST(test_state_file)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, state;
    wn_lsn end, recorded;
    char *text, *err, *sysid;

    itest_begin(&ctx, "statefile");
    make_table(&ctx);
    conf = reconnect_config(&ctx, "f.cfg", "state_file = \"state\";");
    state = itest_file(&ctx, "state");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1), (2)");
    end = itest_run_to_now(&ctx, conf.s);

    /* Written, naming this server, database and slot, at the acknowledged position. */
    recorded = state_lsn(state.s);
    ck_assert_msg(recorded >= end && recorded == itest_slot_confirmed(ctx.conn, ctx.slot),
                  "state file at %s, slot at %s, run to %s", itest_lsn_text(recorded),
                  itest_lsn_text(itest_slot_confirmed(ctx.conn, ctx.slot)), itest_lsn_text(end));
    text = itest_read_file(state.s, NULL);
    sysid = itest_query(ctx.conn, "SELECT system_identifier::text FROM pg_control_system()");
    ck_assert_msg(strstr(text, sysid) && strstr(text, ctx.db) && strstr(text, ctx.slot),
                  "state file: %s", text);

    /* Another slot's file is refused, naming both. */
    itest_write_file(state.s, "walnotify-state 1\nsystem_identifier=%s\ndatabase=%s\n"
                              "slot=someone_else\nlsn=0/1\n",
                     sysid, ctx.db);
    itest_host_run(&ctx, &host, "-c", conf.s);
    itest_assert_failed(&host, 3);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "belongs to system") && strstr(err, "slot someone_else") &&
                      strstr(err, "remove the file"),
                  "stderr: %s", err);
    free(err);

    /* A malformed file is a configuration error naming the file and line. */
    itest_write_file(state.s, "walnotify-state 1\nsystem_identifier=%s\nlsn=nowhere\n", sysid);
    itest_host_run(&ctx, &host, "-c", conf.s);
    itest_assert_exit(&host, 1);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, state.s) && strstr(err, ":3: "), "stderr: %s", err);
    free(err);

    /* A file ahead of the slot (as after a server crash lost confirmed_flush_lsn) is where the
     * stream starts: the rows before it are not delivered again. */
    itest_exec(ctx.conn, "INSERT INTO t VALUES (3)");
    end = itest_current_lsn(ctx.conn);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (4)");
    {
        char *at = itest_lsn_text(end);

        itest_write_file(state.s,
                         "walnotify-state 1\nsystem_identifier=%s\ndatabase=%s\nslot=%s\nlsn=%s\n",
                         sysid, ctx.db, ctx.slot, at);
        free(at);
    }
    unlink(itest_file(&ctx, "run.log").s);
    itest_run_to_now(&ctx, conf.s);
    {
        itest_loglines log = read_log_now(itest_file(&ctx, "run.log").s);

        ck_assert_msg(log.count == 1 && strcmp(log.line[0].id, "4") == 0,
                      "expected only row 4 after the state file's position, got %zu lines",
                      log.count);
        itest_loglines_free(&log);
    }
    free(sysid);
    free(text);
    itest_end(&ctx);
}
END_TEST

/* The whole suite shares one server: whatever happened, leave it up. */
static bool server_up(void)
{
    PGconn *conn = PQconnectdb("dbname=postgres connect_timeout=5");
    bool up = PQstatus(conn) == CONNECTION_OK;

    PQfinish(conn);
    return up;
}

static void ensure_server_up(void)
{
    char command[2 * PATH_MAX];
    const char *root = getenv("WN_ROOT"), *dir = getenv("WN_TEST_PGDIR");

    if (server_up() || !root || !dir)
        return;
    fprintf(stderr, "test_reconnect: the server is down; starting it again\n");
    snprintf(command, sizeof command, "'%s/tests/pg-harness.sh' restart '%s' fast", root, dir);
    if (system(command) != 0)
        fprintf(stderr, "test_reconnect: %s failed\n", command);
}

int main(void)
{
    Suite *suite = suite_create("reconnect");
    TCase *tc = itest_tcase(suite, "reconnect");
    TCase *pair = tcase_create("pair");
    int failed;

    tcase_add_test(tc, test_terminated_walsender);
    tcase_add_test(tc, test_terminated_mid_transaction);
    tcase_add_test(tc, test_server_restarts);
    tcase_add_test(tc, test_silent_connection);
    tcase_add_test(tc, test_standby_takes_over);
    tcase_add_test(tc, test_slot_dropped);
    tcase_add_test(tc, test_state_file);
    /* Two hosts of an active/standby pair on one jsonl file (CK_RUN_CASE=pair runs them alone). */
    tcase_set_timeout(pair, ITEST_TIMEOUT_S + 5 * pair_rounds()); /* make pair-loop: more */
    tcase_add_test(pair, test_pair_standby_takes_slot_first);
    tcase_add_test(pair, test_pair_active_takes_slot_back);
    tcase_add_test(pair, test_pair_terminated_repeatedly);
    suite_add_tcase(suite, pair);
    failed = run_suite(suite);
    ensure_server_up();
    return failed == 0 && server_up() ? 0 : 1;
}
