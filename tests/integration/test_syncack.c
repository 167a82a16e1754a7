/*
 * walnotify as a synchronous standby of its source: with source.flush = "commit" and its slot's
 * name in synchronous_standby_names, an application's COMMIT returns only once the row is durably
 * in the sink's file (synchronous_commit on and remote_write alike); commits to an unwatched
 * table and to another database return too while walnotify runs (it answers the keepalives the
 * server sends for them); with walnotify stopped, a commit waits.
 *
 * The status interval is a minute: nothing here returns by the interval's flush. The server is
 * shared by the whole run, so synchronous_standby_names is reset as soon as the test is done
 * with it, and again by the teardown after a failure.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define COMMITS 200
#define RETURN_BOUND_MS 20000 /* far longer than a group's flush, far shorter than the interval */

/* The warning a cancelled commit gets is expected here. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Drops what a sent command still returns. */
static void drain(PGconn *conn)
{
    PGresult *res;

    while ((res = PQgetResult(conn)) != NULL)
        PQclear(res);
}

/* Cancels the command in progress on conn, which then returns (the server warns that the
 * transaction committed locally: a commit cut short is not a failed one). */
static void cancel(PGconn *conn)
{
    char why[256];
    PGcancel *c = PQgetCancel(conn);

    ck_assert_msg(c != NULL && PQcancel(c, why, sizeof why), "cannot cancel: %s", why);
    PQfreeCancel(c);
    drain(conn);
}

/* Sends sql (one autocommitted statement; NULL: it was sent already); true when it returned
 * within RETURN_BOUND_MS. */
static bool commit_returns(PGconn *conn, const char *sql)
{
    itest_deadline deadline = itest_deadline_in(RETURN_BOUND_MS);

    if (sql != NULL)
        ck_assert_msg(PQsendQuery(conn, sql), "%s: %s", sql, PQerrorMessage(conn));
    else
        sql = "the command sent";
    for (;;) {
        PGresult *res;

        ck_assert_msg(PQconsumeInput(conn), "%s: %s", sql, PQerrorMessage(conn));
        if (!PQisBusy(conn)) {
            res = PQgetResult(conn);
            ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql,
                          PQresultErrorMessage(res));
            PQclear(res);
            drain(conn);
            return true;
        }
        if (itest_expired(&deadline)) {
            cancel(conn);
            return false;
        }
        itest_sleep_ms(1);
    }
}

/* Sends sql and sees its backend wait for the synchronous standby; then cancels it. */
static void assert_commit_waits(itest_ctx *ctx, PGconn *conn, const char *sql)
{
    ck_assert_msg(PQsendQuery(conn, sql), "%s: %s", sql, PQerrorMessage(conn));
    itest_wait_query_at_least(ctx->conn, 1,
                              "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND "
                              "wait_event = 'SyncRep'",
                              PQbackendPID(conn));
    ck_assert_msg(PQconsumeInput(conn) && PQisBusy(conn), "%s returned", sql);
    cancel(conn);
}

/* The file holds the line of row id (the jsonl plugin writes whole lines only). */
static bool file_has_row(const char *path, int id)
{
    char want[64];
    char *text = itest_read_file(path, NULL);
    bool found;

    snprintf(want, sizeof want, "\"values\":{\"id\":\"%d\"}", id);
    found = text != NULL && strstr(text, want) != NULL;
    free(text);
    return found;
}

/* Before each test and after the last, also after a failed one: the tests of the run share the
 * server, and a name left there holds every commit back. */
static void reset_standby_names(void)
{
    itest_reset_server_setting("synchronous_standby_names");
}

static void wait_until_synchronous(itest_ctx *ctx)
{
    itest_wait_query_at_least(ctx->conn, 1,
                              "SELECT count(*) FROM pg_stat_replication WHERE application_name = "
                              "'%s' AND sync_state = 'sync'",
                              ctx->slot);
}

START_TEST(test_commit_returns_once_the_row_is_in_the_file)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, out;
    char standby[128], other_db[80];
    PGconn *app, *other;

    reset_standby_names();
    itest_begin(&ctx, "syncack");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    itest_exec(ctx.conn, "CREATE TABLE unwatched (id int)");
    conf = itest_config_extra(&ctx, "s.cfg", "\"public.t\"", 60000, "flush = \"commit\"; receive_timeout_ms = 120000;",
                              "{ name = \"out\"; path = \"%s\"; settings = { path = "
                              "\"out.jsonl\"; fsync = true; }; }",
                              itest_root_file("build/plugins/jsonl.so").s);
    out = itest_file(&ctx, "out.jsonl");
    itest_create_slot(&ctx, conf.s);
    snprintf(other_db, sizeof other_db, "%s_other", ctx.db);
    itest_exec(ctx.conn, "CREATE DATABASE %s", other_db);
    other = itest_connect(other_db, NULL);
    itest_exec(other, "CREATE TABLE elsewhere (id int)");

    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    snprintf(standby, sizeof standby, "FIRST 1 (%s)", ctx.slot);
    itest_set_server_setting(ctx.conn, "synchronous_standby_names", standby);
    wait_until_synchronous(&ctx);

    app = itest_connect(ctx.db, NULL);
    PQsetNoticeProcessor(app, quiet, NULL);
    for (int id = 1; id <= COMMITS; id++) {
        char sql[64];

        if (id == COMMITS / 2 + 1)
            itest_exec(app, "SET synchronous_commit = remote_write");
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d)", id);
        ck_assert_msg(commit_returns(app, sql), "commit %d did not return", id);
        ck_assert_msg(file_has_row(out.s, id), "commit %d returned before its row was in %s", id,
                      out.s);
    }
    ck_assert_msg(commit_returns(app, "INSERT INTO unwatched VALUES (1)"),
                  "a commit to an unwatched table did not return");
    ck_assert_msg(commit_returns(other, "INSERT INTO elsewhere VALUES (1)"),
                  "a commit to another database did not return");
    ck_assert_msg(itest_host_running(&host), "walnotify stopped");

    /* Stopped, walnotify holds every commit back (until the application gives up waiting). */
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    assert_commit_waits(&ctx, app, "INSERT INTO t VALUES (0)");
    itest_reset_server_setting("synchronous_standby_names");

    PQfinish(app);
    PQfinish(other);
    itest_exec(ctx.conn, "DROP DATABASE %s", other_db);
    itest_end(&ctx);
}
END_TEST

/* The reply_time of walnotify's last status update, as the server recorded it. */
static char *last_reply(itest_ctx *ctx)
{
    return itest_query(ctx->conn,
                       "SELECT coalesce(reply_time::text, '') FROM pg_stat_replication WHERE "
                       "application_name = '%s'",
                       ctx->slot);
}

/* Waits until the server has had a status update after the one it had at `before`. */
static void wait_for_reply_after(itest_ctx *ctx, const char *before)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        char *now = last_reply(ctx);
        bool moved = strcmp(now, before) != 0;

        free(now);
        if (moved)
            return;
        ck_assert_msg(!itest_expired(&deadline), "no status update from walnotify");
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/*
 * The position reported as written is what every plugin has handled, not what was received: a
 * remote_write commit whose row a plugin holds (inside its handle call) still waits while status
 * updates go out on the timer, and returns once the plugin has handled it.
 */
START_TEST(test_remote_write_waits_for_the_plugins)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, entered, release, log;
    itest_lines lines;
    char standby[128];
    char *before;
    PGconn *app;

    reset_standby_names();
    itest_begin(&ctx, "syncwrite");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = itest_fixture_config(&ctx, "w.cfg", "\"public.t\"", 200, "held", "blocker",
                                "block_ms = 60000; entered = \"entered\"; release = "
                                "\"release\"; log = \"held.log\";");
    entered = itest_file(&ctx, "entered");
    release = itest_file(&ctx, "release");
    log = itest_file(&ctx, "held.log");
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    snprintf(standby, sizeof standby, "FIRST 1 (%s)", ctx.slot);
    itest_set_server_setting(ctx.conn, "synchronous_standby_names", standby);
    wait_until_synchronous(&ctx);

    app = itest_connect(ctx.db, NULL);
    PQsetNoticeProcessor(app, quiet, NULL);
    itest_exec(app, "SET synchronous_commit = remote_write");
    ck_assert(PQsendQuery(app, "INSERT INTO t VALUES (1)"));
    for (itest_deadline d = itest_deadline_in(ITEST_WAIT_S * 1000); access(entered.s, F_OK) != 0;
         itest_sleep_ms(ITEST_POLL_MS))
        ck_assert_msg(!itest_expired(&d), "the plugin never received the row");
    /* Two status updates after the plugin took the row: the commit was received by then. */
    before = last_reply(&ctx);
    wait_for_reply_after(&ctx, before);
    free(before);
    before = last_reply(&ctx);
    wait_for_reply_after(&ctx, before);
    free(before);
    ck_assert_msg(PQconsumeInput(app) && PQisBusy(app),
                  "a remote_write commit returned while the plugin was still handling its row");

    itest_write_file(release.s, "go\n");
    ck_assert_msg(commit_returns(app, NULL), "the commit did not return once handled");
    lines = itest_read_lines(log.s);
    ck_assert_msg(lines.count == 1, "%zu lines in the plugin's log", lines.count);
    itest_lines_free(&lines);
    itest_reset_server_setting("synchronous_standby_names");
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    PQfinish(app);
    itest_end(&ctx);
}
END_TEST

/*
 * With flush = "commit" too, a table taken out of the publication (which leaves nothing in the
 * stream) is caught by the catalog check before any acknowledgement passes the ALTER
 * PUBLICATION, though acknowledgements now come per transaction.
 */
START_TEST(test_group_commit_checks_the_tables)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    itest_lines lines;
    wn_lsn before, confirmed;
    char *err;

    reset_standby_names();
    itest_begin(&ctx, "syncpub");
    itest_exec(ctx.conn, "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)");
    conf = itest_config_extra(&ctx, "p.cfg", "\"public.a\", \"public.b\"", 60000,
                              "flush = \"commit\"; receive_timeout_ms = 120000;",
                              "{ name = \"out\"; path = \"%s\"; settings = { path = "
                              "\"out.jsonl\"; }; }",
                              itest_root_file("build/plugins/jsonl.so").s);
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO a VALUES (1)");
    itest_exec(ctx.conn, "INSERT INTO b VALUES (1)");
    lines = itest_wait_lines(itest_file(&ctx, "out.jsonl").s, 2, ITEST_WAIT_S);
    itest_lines_free(&lines);
    /* Acknowledged by the group commit: the status interval is a minute. */
    itest_wait_query_at_least(ctx.conn, (long long)itest_current_lsn(ctx.conn),
                              "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint "
                              "FROM pg_replication_slots WHERE slot_name = '%s'",
                              ctx.slot);

    itest_exec(ctx.conn, "ALTER PUBLICATION %s DROP TABLE b", ctx.pub);
    before = itest_current_lsn(ctx.conn);
    itest_exec(ctx.conn, "INSERT INTO b VALUES (2)");
    itest_exec(ctx.conn, "INSERT INTO a VALUES (2)");
    itest_host_wait(&host, ITEST_WAIT_S);
    itest_assert_failed(&host, 3);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "no longer in publication") != NULL, "stderr: %s", err);
    free(err);
    confirmed = itest_slot_confirmed(ctx.conn, ctx.slot);
    ck_assert_msg(confirmed <= before, "the slot acknowledged past the ALTER PUBLICATION");
    itest_end(&ctx);
}
END_TEST

/*
 * The same while walnotify is the synchronous standby. The ALTER PUBLICATION's own commit waits
 * for walnotify, and the catalog check cannot see it before it returns, so walnotify acknowledges
 * it; once it returned, nothing after it is acknowledged. A row written to the table once it is
 * out of the publication is in no stream (PostgreSQL decodes each change with the catalog of its
 * time), so none is lost in between.
 */
START_TEST(test_synchronous_standby_catches_a_table_out_of_the_publication)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, out;
    char standby[128], alter[256];
    PGconn *app;
    wn_lsn before;
    char *err;

    reset_standby_names();
    itest_begin(&ctx, "syncdrop");
    itest_exec(ctx.conn, "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)");
    conf = itest_config_extra(&ctx, "p.cfg", "\"public.a\", \"public.b\"", 60000,
                              "flush = \"commit\"; receive_timeout_ms = 120000;",
                              "{ name = \"out\"; path = \"%s\"; settings = { path = "
                              "\"out.jsonl\"; }; }",
                              itest_root_file("build/plugins/jsonl.so").s);
    out = itest_file(&ctx, "out.jsonl");
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    snprintf(standby, sizeof standby, "FIRST 1 (%s)", ctx.slot);
    itest_set_server_setting(ctx.conn, "synchronous_standby_names", standby);
    wait_until_synchronous(&ctx);

    app = itest_connect(ctx.db, NULL);
    ck_assert(commit_returns(app, "INSERT INTO a VALUES (1)"));
    ck_assert(commit_returns(app, "INSERT INTO b VALUES (1)"));
    ck_assert_msg(file_has_row(out.s, 1), "the rows committed before are not in %s", out.s);
    snprintf(alter, sizeof alter, "ALTER PUBLICATION %s DROP TABLE b", ctx.pub);
    ck_assert_msg(commit_returns(app, alter), "the ALTER PUBLICATION did not return");
    before = itest_current_lsn(ctx.conn);
    /* Local: walnotify stops at the next acknowledgement, and a synchronous commit would wait. */
    itest_exec(app, "SET synchronous_commit = local");
    itest_exec(app, "INSERT INTO b VALUES (2)");
    itest_host_wait(&host, ITEST_WAIT_S);
    itest_assert_failed(&host, 3);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "no longer in publication") != NULL, "stderr: %s", err);
    free(err);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) <= before,
                  "the slot acknowledged past a change made after the ALTER PUBLICATION returned");
    reset_standby_names();
    PQfinish(app);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("syncack");
    TCase *tc = itest_tcase(suite, "syncack");

    tcase_add_unchecked_fixture(tc, NULL, reset_standby_names);
    tcase_add_test(tc, test_commit_returns_once_the_row_is_in_the_file);
    tcase_add_test(tc, test_remote_write_waits_for_the_plugins);
    tcase_add_test(tc, test_group_commit_checks_the_tables);
    tcase_add_test(tc, test_synchronous_standby_catches_a_table_out_of_the_publication);
    return run_suite(suite) == 0 ? 0 : 1;
}
