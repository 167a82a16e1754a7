/*
 * The postgres plugin in apply mode, against a second database on the harness's server:
 *   changes          inserts, updates (an unchanged TOAST value left as it is), deletes and a
 *                    truncate: the target table equals the source table, through a renamed
 *                    column (column_map), a source column the target lacks and a target column
 *                    with a default;
 *   exactly once     walnotify killed with SIGKILL right after the target committed, under a
 *                    writer, then run to the end: every row once (a second insert of a key
 *                    would fail), the target equal to the source;
 *   types            the column types of the type suite, NULLs and awkward values, both
 *                    databases with other DateStyle, TimeZone and IntervalStyle defaults;
 *   full identity    REPLICA IDENTITY FULL without a key: one row equal to the old row changes;
 *                    on_conflict = "update" makes an insert of an existing key an upsert;
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

/* The column types of the type suite (test_types), with awkward values. */
static const char types_table[] =
    "(id int PRIMARY KEY, c_int2 smallint, c_int8 bigint, c_num numeric, c_f4 real, "
    "c_f8 double precision, c_bool boolean, c_bytea bytea, c_text text, c_vc varchar(10), "
    "c_ch char(5), c_ts timestamptz, c_tsn timestamp, c_date date, c_time time, c_timetz timetz, "
    "c_interval interval, c_json json, c_jsonb jsonb, c_uuid uuid, c_inet inet, c_cidr cidr, "
    "c_mac macaddr, c_ints int[], c_texts text[], c_point point, c_bit bit(4), c_varbit "
    "varbit, c_range int4range, c_tsrange tstzrange, c_money money, c_tsv tsvector)";

static const char types_rows[] =
    "INSERT INTO t VALUES "
    "(1, -32768, 9223372036854775807, 'NaN', '-Infinity', 5e-324, true, '\\x00ff7f80', "
    "E'quote \" and '' and \\\\ back\\nline\\ttab \U0001F600', 'h\u00e9llo', 'ab', "
    "'2026-11-25 11:00:00.123456+05:30', '4713-01-01 00:00 BC', 'infinity', '24:00:00', "
    "'13:37:00+05:30', '-1 year 2 mons 3 days 04:05:06.789', '{\"a\": [1, \"x\\ny\"],  \"b\" : "
    "null}', '{\"dup\":1, \"dup\":2}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', "
    "'2001:db8::1/64', '10.1.0.0/16', '08:00:2b:01:02:03', '{1,NULL,3}', "
    "'{\"a b\",\"\\\\\\\\\",NULL}', '(1.5,-2)', B'1010', B'101', '[1,10)', "
    "'[2026-01-01 00:00+00,infinity)', 12.34, 'a fat cat:1 sat'), "
    "(2, 0, 0, 123456789012345678901234567890.123456789, 3.4028235e38, 0.1, false, '\\x', '', "
    "'', '', '-infinity', '2026-11-25 11:00:00.5', '0001-01-01 BC', '00:00:00.000001', "
    "'00:00:00-12', '0', '[]', '{}', '00000000-0000-0000-0000-000000000000', '::1', '::/0', "
    "'ff:ff:ff:ff:ff:ff', '{}', '{}', '(0,0)', B'0000', B'', 'empty', 'empty', -1, ''), "
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL)";

START_TEST(test_apply_types)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;

    itest_begin(&ctx, "pgtypes");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE t %s", types_table);
    itest_exec(target, "CREATE TABLE t %s", types_table);
    /* Other defaults than walnotify's session settings on both sides: the text goes through. */
    itest_exec(ctx.conn,
               "ALTER DATABASE %s SET DateStyle = 'SQL, DMY'; ALTER DATABASE %s SET "
               "TimeZone = 'Asia/Kathmandu'; ALTER DATABASE %s SET IntervalStyle = "
               "'iso_8601'",
               ctx.db, ctx.db, ctx.db);
    itest_exec(target,
               "ALTER DATABASE %s_t SET DateStyle = 'German'; ALTER DATABASE %s_t SET "
               "TimeZone = 'America/St_Johns'; ALTER DATABASE %s_t SET lc_monetary = 'C'",
               ctx.db, ctx.db, ctx.db);
    conf = pgtarget_config(&ctx, "types.cfg", "\"public.t\"", "", "");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "%s", types_rows);
    itest_exec(ctx.conn, "UPDATE t SET c_text = c_text || '!', c_ts = c_ts + interval '1 s' "
                         "WHERE id < 3; UPDATE t SET (c_int2, c_json) = (7, '{}') WHERE id = 3");
    pgtarget_run(&ctx, &host, conf.s, 0);
    pgtarget_assert_same(ctx.conn, "SELECT * FROM t ORDER BY id", target,
                         "SELECT * FROM t ORDER BY id");
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

/* REPLICA IDENTITY FULL without a key: an update or delete changes one row equal to the old
 * row in every column (NULLs too); an upsert with on_conflict = "update" on a keyed table. */
START_TEST(test_apply_full_identity_and_upsert)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;

    itest_begin(&ctx, "pgfull");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE f (a int, b text); ALTER TABLE f REPLICA IDENTITY FULL; "
                         "CREATE TABLE k (id int PRIMARY KEY, v text)");
    itest_exec(target, "CREATE TABLE f (a int, b text); CREATE TABLE k (id int PRIMARY KEY, v "
                       "text); INSERT INTO k VALUES (1, 'stale')");
    conf = pgtarget_config(&ctx, "full.cfg", "\"public.f\", \"public.k\"", "",
                           "on_conflict = \"update\";");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO f VALUES (1, 'x'), (1, 'x'), (2, NULL), (3, 'y')");
    itest_exec(ctx.conn, "UPDATE f SET b = 'changed' WHERE ctid = (SELECT min(ctid) FROM f "
                         "WHERE a = 1)");
    itest_exec(ctx.conn, "UPDATE f SET a = 20 WHERE b IS NULL; DELETE FROM f WHERE a = 3");
    itest_exec(ctx.conn, "INSERT INTO k VALUES (1, 'fresh'), (2, 'new')");
    pgtarget_run(&ctx, &host, conf.s, 0);
    pgtarget_assert_same(ctx.conn, "SELECT * FROM f ORDER BY a, b", target,
                         "SELECT * FROM f ORDER BY a, b");
    pgtarget_assert_same(ctx.conn, "SELECT * FROM k ORDER BY id", target,
                         "SELECT * FROM k ORDER BY id");
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

/* --check-config refuses bad settings, naming each, without touching a database. */
/* Waits until walnotify's log holds needle. */
static void wait_stderr(itest_host *host, const char *needle)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        char *err = itest_host_stderr(host);
        bool found = err != NULL && strstr(err, needle) != NULL;

        free(err);
        if (found)
            return;
        ck_assert_msg(itest_host_running(host), "walnotify ended before saying \"%s\"", needle);
        ck_assert_msg(!itest_expired(&deadline), "walnotify did not say \"%s\" in time", needle);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* The initial snapshot's rows are upserts into the `schema` setting's tables (a row the target
 * already held is overwritten), and the changes after it are applied there too. */
START_TEST(test_snapshot_upserts_into_schema)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;
    char block[4096];
    wn_lsn end;
    itest_deadline deadline;

    itest_begin(&ctx, "pgsnap");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY, note text); "
                         "INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 50) g");
    itest_exec(target, "CREATE SCHEMA rep; CREATE TABLE rep.t (id int PRIMARY KEY, note text); "
                       "INSERT INTO rep.t VALUES (7, 'stale')");
    pgtarget_block(&ctx, block, sizeof block,
                   "ops = [ \"snapshot\", \"insert\", \"update\", \"delete\" ];",
                   "schema = \"rep\";");
    conf = itest_config_extra(&ctx, "snap.cfg", "\"public.t\"", 200,
                              "snapshot = \"initial\"; state_file = \"state\";", "%s", block);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    wait_stderr(&host, "finished: 50 rows");
    itest_exec(ctx.conn, "UPDATE t SET note = 'changed' WHERE id = 3; DELETE FROM t WHERE id = 4; "
                         "INSERT INTO t VALUES (51, 'new')");
    end = itest_current_lsn(ctx.conn);
    deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    while (itest_slot_confirmed(ctx.conn, ctx.slot) < end) {
        ck_assert_msg(itest_host_running(&host), "walnotify ended");
        ck_assert_msg(!itest_expired(&deadline), "the slot was not acknowledged in time");
        itest_sleep_ms(ITEST_POLL_MS);
    }
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    pgtarget_assert_same(ctx.conn, "SELECT * FROM t ORDER BY id", target,
                         "SELECT * FROM rep.t ORDER BY id");
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_settings_refused)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    char *err;

    itest_begin(&ctx, "pgsettings");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = pgtarget_config(&ctx, "bad.cfg", "\"public.t\"", "",
                           "mode = \"mirror\"; column_map = [\"t.note\", \"public.t.a=b\"]; "
                           "insert_rows = 0;");
    itest_host_run(&ctx, &host, "--check-config", "-c", conf.s);
    itest_assert_exit(&host, 1);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "setting mode is \"mirror\": expected \"apply\" or \"append\"") !=
                      NULL,
                  "mode not named: %s", err);
    ck_assert_msg(strstr(err, "setting column_map, item 1 (\"t.note\"): expected") != NULL,
                  "column_map not named: %s", err);
    ck_assert_msg(strstr(err, "setting insert_rows is 0: expected 1 to 1000") != NULL,
                  "insert_rows not named: %s", err);
    free(err);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("pgsink");
    TCase *tc = itest_tcase(suite, "pgsink");

    tcase_add_test(tc, test_apply_changes);
    tcase_add_test(tc, test_exactly_once_after_kill);
    tcase_add_test(tc, test_apply_types);
    tcase_add_test(tc, test_apply_full_identity_and_upsert);
    tcase_add_test(tc, test_missing_table_or_key);
    tcase_add_test(tc, test_snapshot_upserts_into_schema);
    tcase_add_test(tc, test_settings_refused);
    return run_suite(suite) == 0 ? 0 : 1;
}
