/*
 * The postgres plugin's failures, against a second database on the harness's server:
 *   a refused row      a row the target refuses (a CHECK constraint) in the middle of a batch:
 *                      with on_error = "stop" walnotify exits 2, naming the table, the key and
 *                      the event's identity, and nothing of the batch is committed; with
 *                      "skip" the event goes to the dead-letter file and the batch is done
 *                      again without it;
 *   in a gathered insert   the same row among inserts that go as one statement of many rows:
 *                      the batch is done again one row per statement (a rewind, counted as a
 *                      retry), and only that row is skipped;
 *   a lost connection  the sink's session on the target terminated while it runs: it connects
 *                      again and does the batch again, and the target ends equal to the source.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "pgtarget.h"

static void assert_stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);

    ck_assert_msg(err != NULL && strstr(err, needle) != NULL, "stderr lacks \"%s\":\n%s", needle,
                  err != NULL ? err : "(none)");
    free(err);
}

START_TEST(test_refused_row_meets_policy)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    itest_lines dead;
    PGconn *target;

    itest_begin(&ctx, "pgrefuse");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY, note text)");
    itest_exec(target, "CREATE TABLE t (id int PRIMARY KEY, note text CHECK (note <> 'bad'))");
    conf = pgtarget_config(&ctx, "stop.cfg", "\"public.t\"", "on_error = \"stop\";", "");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a')");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2, 'b'), (3, 'bad'), (4, 'd')");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (5, 'e')");

    pgtarget_run(&ctx, &host, conf.s, 2);
    assert_stderr_has(&host, "target refused event ");
    assert_stderr_has(&host, "on public.t (key {\"id\":\"3\"}): new row for relation \"t\" "
                             "violates check constraint \"t_note_check\" (SQLSTATE 23514)");
    ck_assert_int_eq(itest_query_int(target, "SELECT count(*) FROM t"), 0);

    conf = pgtarget_config(&ctx, "skip.cfg", "\"public.t\"",
                           "on_error = \"skip\"; dead_letter = \"dead.jsonl\";", "");
    pgtarget_run(&ctx, &host, conf.s, 0);
    pgtarget_assert_same(ctx.conn, "SELECT * FROM t WHERE id <> 3 ORDER BY id", target,
                         "SELECT * FROM t ORDER BY id");
    dead = itest_read_lines(itest_file(&ctx, "dead.jsonl").s);
    ck_assert_uint_eq(dead.count, 1);
    ck_assert_msg(strstr(dead.line[0], "\"id\":\"3\"") != NULL, "not row 3: %s", dead.line[0]);
    itest_lines_free(&dead);
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

/* A refused row among many inserts gathered into one statement: the batch is done again one
 * row per statement, and the refused row alone meets the policy. */
START_TEST(test_refused_row_in_a_gathered_insert)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    itest_lines dead;
    PGconn *target;

    itest_begin(&ctx, "pggroup");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY, note text)");
    itest_exec(target, "CREATE TABLE t (id int PRIMARY KEY, note text CHECK (note <> 'bad'))");
    /* The search costs a rewind, which on_error = "retry" allows (see the README). */
    conf =
        pgtarget_config(&ctx, "group.cfg", "\"public.t\"",
                        "on_error = \"retry\"; then = \"skip\"; dead_letter = \"dead.jsonl\";", "");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t SELECT g, CASE WHEN g = 50 THEN 'bad' ELSE 'ok' END "
                         "FROM generate_series(1, 40000) g");
    pgtarget_run(&ctx, &host, conf.s, 0);
    assert_stderr_has(&host, "will do the batch again one row at a time");
    pgtarget_assert_same(ctx.conn, "SELECT * FROM t WHERE id <> 50 ORDER BY id", target,
                         "SELECT * FROM t ORDER BY id");
    dead = itest_read_lines(itest_file(&ctx, "dead.jsonl").s);
    ck_assert_uint_eq(dead.count, 1);
    ck_assert_msg(strstr(dead.line[0], "\"id\":\"50\"") != NULL, "not row 50: %s", dead.line[0]);
    itest_lines_free(&dead);
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_lost_connection_done_again)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target, *admin;
    char name[80];

    itest_begin(&ctx, "pglost");
    target = pgtarget_create(&ctx);
    snprintf(name, sizeof name, "%s_t", ctx.db);
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY, note text)");
    itest_exec(target, "CREATE TABLE t (id int PRIMARY KEY, note text)");
    conf = pgtarget_config(&ctx, "lost.cfg", "\"public.t\"", "", "");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t SELECT g, 'a' FROM generate_series(1, 100) g");
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_wait_query_at_least(target, 100, "SELECT count(*) FROM t");

    admin = itest_connect("postgres", NULL);
    ck_assert_int_eq(itest_query_int(admin,
                                     "SELECT count(pg_terminate_backend(pid)) FROM "
                                     "pg_stat_activity WHERE datname = '%s' AND "
                                     "application_name = 'walnotify'",
                                     name),
                     1);
    PQfinish(admin);
    itest_exec(ctx.conn, "INSERT INTO t SELECT g, 'b' FROM generate_series(101, 200) g");
    itest_exec(ctx.conn, "UPDATE t SET note = 'c' WHERE id <= 50");
    itest_wait_query_at_least(target, 50, "SELECT count(*) FROM t WHERE note = 'c'");
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    assert_stderr_has(&host, "will do the batch again: target");
    pgtarget_assert_same(ctx.conn, "SELECT * FROM t ORDER BY id", target,
                         "SELECT * FROM t ORDER BY id");
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("pgsink_failures");
    TCase *tc = itest_tcase(suite, "pgsink_failures");

    tcase_add_test(tc, test_refused_row_meets_policy);
    tcase_add_test(tc, test_refused_row_in_a_gathered_insert);
    tcase_add_test(tc, test_lost_connection_done_again);
    return run_suite(suite) == 0 ? 0 : 1;
}
