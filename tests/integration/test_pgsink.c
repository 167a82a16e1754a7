/*
 * The postgres plugin in apply mode, against a second database on the harness's server:
 *   changes          inserts, updates (an unchanged TOAST value left as it is), deletes and a
 *                    truncate: the target table equals the source table, through a renamed
 *                    column (column_map), a source column the target lacks and a target column
 *                    with a default;
 *   exactly once     walnotify killed with SIGKILL right after the target committed, under a
 *                    writer, then run to the end: every row once (a second insert of a key
 *                    would fail), the target equal to the source;
 *   a missing table  or key column is refused at init, naming both.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "itest.h"
#include "pgtarget.h"

#define PGSINK PGTARGET_PLUGIN

START_TEST(test_apply_changes)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;

    itest_begin(&ctx, "pgapply");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY, note text, big text, gone int); "
                         "CREATE TABLE u (k text PRIMARY KEY, v int)");
    itest_exec(target, "CREATE TABLE t (id int PRIMARY KEY, remark text, big text, "
                       "extra text DEFAULT 'kept'); CREATE TABLE u (k text PRIMARY KEY, v int)");
    conf = pgtarget_config(&ctx, "apply.cfg", "\"public.t\", \"public.u\"", "",
                           "column_map = [\"public.t.note=remark\"];");
    itest_create_slot(&ctx, conf.s);

    itest_exec(ctx.conn,
               "INSERT INTO t SELECT g, 'n' || g, (SELECT string_agg(md5(g::text || i::text), '') "
               "FROM generate_series(1, 300) i), g FROM generate_series(1, 50) g");
    itest_exec(ctx.conn, "INSERT INTO u VALUES ('a', 1), ('b', 2), ('c', NULL)");
    itest_exec(ctx.conn,
               "BEGIN; UPDATE t SET note = 'changed' WHERE id %% 3 = 0; "
               "DELETE FROM t WHERE id %% 7 = 0; UPDATE t SET id = id + 1000 WHERE id = 1; "
               "COMMIT");
    itest_exec(ctx.conn, "UPDATE u SET v = NULL WHERE k = 'a'; DELETE FROM u WHERE k = 'b'");
    pgtarget_run(&ctx, &host, conf.s, 0);
    pgtarget_assert_same(ctx.conn, "SELECT id, note, md5(big) FROM t ORDER BY id", target,
                         "SELECT id, remark, md5(big) FROM t ORDER BY id");
    pgtarget_assert_same(ctx.conn, "SELECT * FROM u ORDER BY k", target,
                         "SELECT * FROM u ORDER BY k");
    ck_assert_int_eq(itest_query_int(target, "SELECT count(*) FROM t WHERE extra <> 'kept'"), 0);

    /* A second run: a truncate, and rows after it. */
    itest_exec(ctx.conn, "TRUNCATE u; INSERT INTO u VALUES ('z', 26)");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (7, 'seven', 'small', 0)");
    pgtarget_run(&ctx, &host, conf.s, 0);
    pgtarget_assert_same(ctx.conn, "SELECT * FROM u ORDER BY k", target,
                         "SELECT * FROM u ORDER BY k");
    pgtarget_assert_same(ctx.conn, "SELECT id, note, md5(big) FROM t ORDER BY id", target,
                         "SELECT id, remark, md5(big) FROM t ORDER BY id");
    ck_assert_int_eq(itest_query_int(target,
                                     "SELECT count(*) FROM walnotify_progress WHERE "
                                     "instance = 'pg' AND slot = '%s'",
                                     ctx.slot),
                     1);
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

/*
 * SIGKILL once the target committed a transaction and before the host acknowledged it (a
 * second plugin, after the sink, holds the host in that flush): the next run gets it again,
 * and skips what the target holds. A second insert of a key would be refused.
 */
START_TEST(test_exactly_once_after_kill)
{
    const faults_mix mix = {.min_rows = 1, .max_rows = 20, .pause_ms = 5};
    itest_ctx ctx;
    itest_host host;
    itest_path conf, signal;
    PGconn *target;
    pid_t writer;
    wn_lsn acknowledged;

    itest_begin(&ctx, "pgkill");
    target = pgtarget_create(&ctx);
    signal = itest_file(&ctx, "signal");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, note text DEFAULT 'a note'); "
                         "CREATE SEQUENCE ids");
    itest_exec(target, "CREATE TABLE t (id bigint PRIMARY KEY, note text)");
    conf = itest_config(&ctx, "kill.cfg", "\"public.t\"", 200,
                        "{ name = \"pg\"; path = \"%s\"; on_error = \"stop\";"
                        "  settings = { conninfo = \"host=%s port=%s user=%s dbname=%s_t\"; }; },"
                        "{ name = \"hold\"; path = \"%s\"; settings = { marker = \"999999\"; "
                        "signal = \"%s\"; sleep_ms = 60000; }; }",
                        itest_root_file(PGSINK).s, itest_env("PGHOST"), itest_env("PGPORT"),
                        itest_env("PGUSER"), ctx.db,
                        itest_root_file("build/tests/fixtures/fault_signal.so").s, signal.s);
    itest_create_slot(&ctx, conf.s);
    writer = faults_writer_start(&ctx, "t", "ids", 7, &mix);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_sleep_ms(300);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (999999)");
    faults_wait_file(signal.s, ITEST_WAIT_S);
    faults_host_kill(&host);
    acknowledged = itest_slot_confirmed(ctx.conn, ctx.slot);
    ck_assert_int_eq(itest_query_int(target, "SELECT count(*) FROM t WHERE id = 999999"), 1);
    ck_assert_msg((long long)acknowledged < itest_query_int(target,
                                                            "SELECT last_position - '0/0' FROM "
                                                            "walnotify_progress"),
                  "the host acknowledged what the target holds: nothing comes again");
    itest_writer_stop(writer);
    faults_wait_slot_released(ctx.conn, ctx.slot);
    pgtarget_run(&ctx, &host, conf.s, 0);
    pgtarget_assert_same(ctx.conn, "SELECT * FROM t ORDER BY id", target,
                         "SELECT * FROM t ORDER BY id");
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_missing_table_or_key)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;
    char *err;

    itest_begin(&ctx, "pgmissing");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY, note text); "
                         "CREATE TABLE u (id int PRIMARY KEY)");
    itest_exec(target, "CREATE TABLE t (note text)");
    conf = pgtarget_config(&ctx, "missing.cfg", "\"public.t\", \"public.u\"", "", "");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO u VALUES (1)");
    pgtarget_run(&ctx, &host, conf.s, 2);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "key column id of source table public.t has no column in target "
                              "table public.t") != NULL,
                  "no missing key column named: %s", err);
    ck_assert_msg(strstr(err, "source table public.u has no target table public.u") != NULL,
                  "no missing table named: %s", err);
    free(err);
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("pgsink");
    TCase *tc = itest_tcase(suite, "pgsink");

    tcase_add_test(tc, test_apply_changes);
    tcase_add_test(tc, test_exactly_once_after_kill);
    tcase_add_test(tc, test_missing_table_or_key);
    return run_suite(suite) == 0 ? 0 : 1;
}
