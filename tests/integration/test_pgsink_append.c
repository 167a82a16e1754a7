/*
 * The postgres plugin in append mode, against a second database on the harness's server: every
 * event one row (inserts, updates with their old key, deletes, a truncate, a logical decoding
 * message in a transaction and one on its own), keyed by the source and the event's identity;
 * a second run appends only what came since.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "pgtarget.h"

START_TEST(test_append_every_event_once)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;
    char *text;

    itest_begin(&ctx, "pgappend");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY, note text)");
    conf = pgtarget_config(&ctx, "append.cfg", "\"public.t\"",
                           "ops = [\"insert\", \"update\", \"delete\", \"truncate\", \"message\"];",
                           "mode = \"append\"; table = \"audit.events\";");
    itest_exec(target, "CREATE SCHEMA audit");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    itest_exec(ctx.conn, "BEGIN; UPDATE t SET note = 'c' WHERE id = 1; "
                         "SELECT pg_logical_emit_message(true, 'audit', 'in the middle'); "
                         "DELETE FROM t WHERE id = 2; COMMIT");
    itest_exec(ctx.conn, "SELECT pg_logical_emit_message(false, 'audit', 'on its own')");
    itest_exec(ctx.conn, "TRUNCATE t");
    pgtarget_run(&ctx, &host, conf.s, 0);

    text = itest_query(target,
                       "SELECT string_agg(concat_ws(' ', op, source_table, new_row->>'id', "
                       "new_row->>'note', old_row->>'id', message_prefix, message_content, seq), "
                       "'; ' ORDER BY id_position, id_ordinal) FROM audit.events");
    ck_assert_str_eq(text, "insert public.t 1 a 0; insert public.t 2 b 1; "
                           "update public.t 1 c 0; message audit in the middle 1; "
                           "delete public.t 2 1; message audit on its own 0; "
                           "truncate public.t 0");
    free(text);
    ck_assert_int_eq(itest_query_int(target, "SELECT count(*) FROM audit.events WHERE "
                                             "commit_time IS NULL"),
                     1);

    /* A second run appends what came since, nothing again. */
    itest_exec(ctx.conn, "INSERT INTO t VALUES (3, 'd')");
    pgtarget_run(&ctx, &host, conf.s, 0);
    ck_assert_int_eq(itest_query_int(target, "SELECT count(*) FROM audit.events"), 8);
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("pgsink_append");
    TCase *tc = itest_tcase(suite, "pgsink_append");

    tcase_add_test(tc, test_append_every_event_once);
    return run_suite(suite) == 0 ? 0 : 1;
}
