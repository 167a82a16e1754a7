/*
 * The postgres plugin's progress row, and the rights it needs:
 *   ahead         a row ahead of where the stream resumes (a target restored from a later
 *                 backup): what it holds is skipped, the rest applied;
 *   behind        a row behind it (restored from an earlier backup: the transactions between
 *                 were acknowledged and will not come again): refused at start (exit 2),
 *                 naming both positions and the remedy;
 *   another source   a row written for another system, database or slot: refused, naming both;
 *   least rights  a target role with only INSERT, UPDATE, DELETE, TRUNCATE, SELECT on the key
 *                 columns, and SELECT, INSERT, UPDATE on a progress table made for it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "pgtarget.h"

static void make_tables(itest_ctx *ctx, PGconn *target)
{
    itest_exec(ctx->conn, "CREATE TABLE t (id int PRIMARY KEY, note text)");
    itest_exec(target, "CREATE TABLE t (id int PRIMARY KEY, note text)");
}

static void assert_stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);

    ck_assert_msg(err != NULL && strstr(err, needle) != NULL, "stderr lacks \"%s\":\n%s", needle,
                  err != NULL ? err : "(none)");
    free(err);
}

START_TEST(test_progress_ahead_skips)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;
    char *ahead;

    itest_begin(&ctx, "pgahead");
    target = pgtarget_create(&ctx);
    make_tables(&ctx, target);
    conf = pgtarget_config(&ctx, "ahead.cfg", "\"public.t\"", "", "");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a')");
    pgtarget_run(&ctx, &host, conf.s, 0);
    /* Row 2 is in the target already (a later backup holds it, and the row says so). */
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2, 'b')");
    ahead = itest_lsn_text(itest_current_lsn(ctx.conn));
    itest_exec(target,
               "INSERT INTO t VALUES (2, 'b'); UPDATE walnotify_progress SET position = "
               "'%s', last_position = '%s', last_ordinal = 1e12",
               ahead, ahead);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (3, 'c')");
    pgtarget_run(&ctx, &host, conf.s, 0);
    pgtarget_assert_same(ctx.conn, "SELECT * FROM t ORDER BY id", target,
                         "SELECT * FROM t ORDER BY id");
    free(ahead);
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_progress_behind_refused)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;
    char *earlier, *resume, *message;

    itest_begin(&ctx, "pgbehind");
    target = pgtarget_create(&ctx);
    make_tables(&ctx, target);
    conf = pgtarget_config(&ctx, "behind.cfg", "\"public.t\"", "", "");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a')");
    pgtarget_run(&ctx, &host, conf.s, 0);
    earlier = itest_query(target, "SELECT position::text FROM walnotify_progress");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2, 'b')");
    pgtarget_run(&ctx, &host, conf.s, 0);
    resume = itest_lsn_text(itest_slot_confirmed(ctx.conn, ctx.slot));

    /* The target as the earlier backup had it: row 2 and its progress gone. */
    itest_exec(target,
               "DELETE FROM t WHERE id = 2; UPDATE walnotify_progress SET position = "
               "'%s', last_position = '%s'",
               earlier, earlier);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (3, 'c')");
    pgtarget_run(&ctx, &host, conf.s, 2);
    ck_assert_int_eq(
        asprintf(&message, "is at %s, behind %s where the stream resumes", earlier, resume) > 0, 1);
    assert_stderr_has(&host, message);
    assert_stderr_has(&host, "copy the source's tables anew and delete the row");
    ck_assert_int_eq(itest_query_int(target, "SELECT count(*) FROM t WHERE id = 3"), 0);
    free(message);
    free(earlier);
    free(resume);
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_progress_of_another_source_refused)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;

    itest_begin(&ctx, "pgother");
    target = pgtarget_create(&ctx);
    make_tables(&ctx, target);
    conf = pgtarget_config(&ctx, "other.cfg", "\"public.t\"", "", "");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a')");
    pgtarget_run(&ctx, &host, conf.s, 0);
    itest_exec(target, "UPDATE walnotify_progress SET slot = 'elsewhere'");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2, 'b')");
    pgtarget_run(&ctx, &host, conf.s, 2);
    assert_stderr_has(&host, "belongs to another source");
    assert_stderr_has(&host, "slot elsewhere), not this one");
    ck_assert_int_eq(itest_query_int(target, "SELECT count(*) FROM t WHERE id = 2"), 0);
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_least_rights)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;
    char role[80], block[4096];

    itest_begin(&ctx, "pgrights");
    target = pgtarget_create(&ctx);
    make_tables(&ctx, target);
    snprintf(role, sizeof role, "%s_apply", ctx.db);
    itest_exec(target, "CREATE ROLE %s LOGIN", role);
    /* What the README lists: the changes, the key columns to find rows, the progress row. */
    itest_exec(target,
               "GRANT INSERT, UPDATE, DELETE, TRUNCATE ON t TO %s; GRANT SELECT (id) ON t TO %s; "
               "CREATE TABLE walnotify_progress (instance text PRIMARY KEY, system_identifier "
               "numeric NOT NULL, database text NOT NULL, slot text NOT NULL, position pg_lsn NOT "
               "NULL, last_position pg_lsn NOT NULL, last_ordinal numeric NOT NULL, updated_at "
               "timestamptz NOT NULL DEFAULT now()); "
               "GRANT SELECT, INSERT, UPDATE ON walnotify_progress TO %s",
               role, role, role);
    pgtarget_block_as(&ctx, block, sizeof block, role, "", "");
    conf = itest_config(&ctx, "rights.cfg", "\"public.t\"", 200, "%s", block);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 20) g");
    itest_exec(ctx.conn, "UPDATE t SET note = 'u' WHERE id < 5; DELETE FROM t WHERE id > 15");
    pgtarget_run(&ctx, &host, conf.s, 0);
    pgtarget_assert_same(ctx.conn, "SELECT * FROM t ORDER BY id", target,
                         "SELECT * FROM t ORDER BY id");
    itest_exec(ctx.conn, "TRUNCATE t; INSERT INTO t VALUES (100, 'after')");
    pgtarget_run(&ctx, &host, conf.s, 0);
    pgtarget_assert_same(ctx.conn, "SELECT * FROM t ORDER BY id", target,
                         "SELECT * FROM t ORDER BY id");
    itest_exec(target, "DROP TABLE walnotify_progress; DROP OWNED BY %s; DROP ROLE %s", role, role);
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("pgsink_progress");
    TCase *tc = itest_tcase(suite, "pgsink_progress");

    tcase_add_test(tc, test_progress_ahead_skips);
    tcase_add_test(tc, test_progress_behind_refused);
    tcase_add_test(tc, test_progress_of_another_source_refused);
    tcase_add_test(tc, test_least_rights);
    return run_suite(suite) == 0 ? 0 : 1;
}
