/*
 * What arrives, and with which columns: schema changes between and inside transactions,
 * per-plugin table and operation filters, updates, deletes, truncates, unchanged TOAST values,
 * and transactions or savepoints that were rolled back.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static itest_path jsonl_config(itest_ctx *ctx, const char *tables, const char *plugin_extra)
{
    return itest_config(ctx, "ddl.cfg", tables, 1000,
                        "{ name = \"out\"; path = \"%s\"; %s settings = { path = \"out.jsonl\"; "
                        "fsync = false; }; }",
                        itest_root_file("build/plugins/jsonl.so").s, plugin_extra);
}

static itest_events read_out(const itest_ctx *ctx, const char *name)
{
    itest_path path = itest_file(ctx, name);
    itest_events events = itest_read_events(path.s);

    itest_assert_commit_order(&events);
    return events;
}

/* Begins the test: ddl run, then the slot of jsonl_config(tables, plugin_extra). */
static itest_path begin_ddl_test(itest_ctx *ctx, const char *name, const char *ddl,
                                 const char *tables, const char *plugin_extra)
{
    itest_path conf;

    itest_begin(ctx, name);
    itest_exec(ctx->conn, "%s", ddl);
    conf = jsonl_config(ctx, tables, plugin_extra);
    itest_create_slot(ctx, conf.s);
    return conf;
}

/* Runs walnotify over everything committed so far; fails unless out.jsonl, in commit order, is
 * described by want (count of them). */
static void assert_run_delivers(itest_ctx *ctx, const char *conf, const char *const *want,
                                size_t count)
{
    itest_events events;

    itest_run_to_now(ctx, conf);
    events = read_out(ctx, "out.jsonl");
    itest_assert_described(&events, want, count, "out.jsonl");
    itest_events_free(&events);
}

START_TEST(test_columns_follow_schema_changes)
{
    static const char *const want[] = {
        "public.a insert 0 {id:1,x:one}",
        "public.a insert 0 {id:2,x:two,y:2}",
        "public.a insert 0 {id:3,x:three,y:3}",
        "public.a insert 1 {id:4,y:4}",
        "public.a insert 2 {id:5,y:5,z:five}",
        "public.a insert 3 {id:6,y:9999999999,z:six}",
        "public.a insert 0 {id:7,y:7,z:null}",
    };
    itest_ctx ctx;
    itest_path conf;

    conf = begin_ddl_test(&ctx, "ddlcols", "CREATE TABLE a (id int PRIMARY KEY, x text)",
                          "\"public.a\"", "");

    itest_exec(ctx.conn, "INSERT INTO a VALUES (1, 'one')");
    itest_exec(ctx.conn, "ALTER TABLE a ADD COLUMN y int DEFAULT 7");
    itest_exec(ctx.conn, "INSERT INTO a VALUES (2, 'two', 2)");
    itest_exec(ctx.conn, "BEGIN; INSERT INTO a VALUES (3, 'three', 3); "
                         "ALTER TABLE a DROP COLUMN x; INSERT INTO a VALUES (4, 4); "
                         "ALTER TABLE a ADD COLUMN z text; INSERT INTO a VALUES (5, 5, 'five'); "
                         "ALTER TABLE a ALTER COLUMN y TYPE bigint; "
                         "INSERT INTO a VALUES (6, 9999999999, 'six'); COMMIT");
    itest_exec(ctx.conn, "INSERT INTO a (id) VALUES (7)");
    assert_run_delivers(&ctx, conf.s, want, COUNT(want));
    itest_end(&ctx);
}
END_TEST

/* Lines of `all` that are inserts into public.a, in order, must be exactly the lines of `only`. */
static void assert_subset_lines(const itest_ctx *ctx)
{
    itest_path all_path = itest_file(ctx, "all.jsonl"), a_path = itest_file(ctx, "a.jsonl");
    itest_lines all = itest_read_lines(all_path.s), only = itest_read_lines(a_path.s);
    size_t j = 0;

    for (size_t i = 0; i < all.count; i++) {
        if (strstr(all.line[i], "\"table\":\"public.a\",\"op\":\"insert\"") == NULL)
            continue;
        ck_assert_msg(j < only.count, "a.jsonl lacks %s", all.line[i]);
        ck_assert_msg(strcmp(all.line[i], only.line[j]) == 0, "a.jsonl line %zu is %s, expected %s",
                      j + 1, only.line[j], all.line[i]);
        j++;
    }
    ck_assert_msg(j == only.count, "a.jsonl has %zu lines, expected %zu", only.count, j);
    itest_lines_free(&all);
    itest_lines_free(&only);
}

START_TEST(test_filters_and_operations)
{
    static const char *const want_all[] = {
        "public.a insert 0 {id:1,v:a1}",
        "public.b insert 1 {id:1,v:b1}",
        "public.c insert 2 {id:1,v:c1}",
        "public.a insert 3 {id:2,v:a2}",
        "public.b update 0 {id:1,v:b1x}",
        "public.c update 1 {id:1,v:c1x} old{id:1,v:c1}",
        "public.b update 2 {id:10,v:b1x} old{id:1}",
        "public.b delete 0 old{id:10}",
        "public.c delete 1 old{id:1,v:c1x}",
        "public.b insert 0 {id:2,v:b2}",
        "public.c insert 1 {id:2,v:c2}",
        "public.b truncate 2 options[]",
        "public.c truncate 3 options[]",
        "public.a insert 0 {id:3,v:a3}",
        "public.a truncate 1 options[cascade,restart_identity]",
    };
    static const char *const want_a[] = {
        "public.a insert 0 {id:1,v:a1}",
        "public.a insert 3 {id:2,v:a2}",
        "public.a insert 0 {id:3,v:a3}",
    };
    itest_ctx ctx;
    itest_path conf;
    itest_events events;
    itest_path so;

    itest_begin(&ctx, "ddlfilter");
    itest_exec(ctx.conn, "CREATE TABLE a (id int PRIMARY KEY, v text); "
                         "CREATE TABLE b (id int PRIMARY KEY, v text); "
                         "CREATE TABLE c (id int PRIMARY KEY, v text); "
                         "ALTER TABLE c REPLICA IDENTITY FULL; "
                         "CREATE TABLE other (id int PRIMARY KEY, v text)");
    so = itest_root_file("build/plugins/jsonl.so");
    conf = itest_config(&ctx, "filter.cfg", "\"public.a\", \"b\", \"public.c\"", 1000,
                        "{ name = \"only-a\"; path = \"%s\"; tables = [ \"a\" ];\n"
                        "  settings = { path = \"a.jsonl\"; }; },\n"
                        "{ name = \"all\"; path = \"%s\";\n"
                        "  ops = [ \"insert\", \"update\", \"delete\", \"truncate\" ];\n"
                        "  settings = { path = \"all.jsonl\"; }; }",
                        so.s, so.s);
    itest_create_slot(&ctx, conf.s);

    itest_exec(ctx.conn, "BEGIN; INSERT INTO a VALUES (1, 'a1'); INSERT INTO b VALUES (1, 'b1'); "
                         "INSERT INTO c VALUES (1, 'c1'); INSERT INTO other VALUES (1, 'o1'); "
                         "INSERT INTO a VALUES (2, 'a2'); COMMIT");
    itest_exec(ctx.conn, "BEGIN; UPDATE b SET v = 'b1x' WHERE id = 1; "
                         "UPDATE c SET v = 'c1x' WHERE id = 1; UPDATE other SET v = 'o1x'; "
                         "UPDATE b SET id = 10 WHERE id = 1; COMMIT");
    itest_exec(ctx.conn, "BEGIN; DELETE FROM b WHERE id = 10; DELETE FROM c WHERE id = 1; "
                         "DELETE FROM other; COMMIT");
    itest_exec(ctx.conn, "BEGIN; INSERT INTO b VALUES (2, 'b2'); INSERT INTO c VALUES (2, 'c2'); "
                         "TRUNCATE b, c; COMMIT");
    itest_exec(ctx.conn, "TRUNCATE other");
    itest_exec(ctx.conn, "BEGIN; INSERT INTO a VALUES (3, 'a3'); "
                         "TRUNCATE a RESTART IDENTITY CASCADE; COMMIT");
    itest_run_to_now(&ctx, conf.s);

    events = read_out(&ctx, "all.jsonl");
    itest_assert_described(&events, want_all, COUNT(want_all), "all.jsonl");
    itest_events_free(&events);
    events = read_out(&ctx, "a.jsonl");
    itest_assert_described(&events, want_a, COUNT(want_a), "a.jsonl");
    itest_events_free(&events);
    assert_subset_lines(&ctx);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_unchanged_toast_value)
{
    static const char *const want[] = {
        "public.d insert 0 {id:1,big:<20000 bytes>,small:1}",
        "public.d update 0 {id:1,small:2} unchanged[big]",
        "public.d update 0 {id:1,big:short,small:3}",
        "public.d update 0 {id:1,big:<30000 bytes>,small:4}",
    };
    itest_ctx ctx;
    itest_path conf;
    itest_events events;

    itest_begin(&ctx, "ddltoast");
    itest_exec(ctx.conn, "CREATE TABLE d (id int PRIMARY KEY, big text, small int); "
                         "ALTER TABLE d ALTER COLUMN big SET STORAGE EXTERNAL");
    conf = jsonl_config(&ctx, "\"public.d\"", "ops = [ \"insert\", \"update\" ];");
    itest_create_slot(&ctx, conf.s);

    itest_exec(ctx.conn, "INSERT INTO d VALUES (1, repeat('0123456789', 2000), 1)");
    itest_exec(ctx.conn, "UPDATE d SET small = 2 WHERE id = 1");
    itest_exec(ctx.conn, "UPDATE d SET big = 'short', small = 3 WHERE id = 1");
    itest_exec(ctx.conn, "UPDATE d SET big = repeat('abc', 10000), small = 4 WHERE id = 1");
    itest_run_to_now(&ctx, conf.s);

    events = read_out(&ctx, "out.jsonl");
    itest_assert_described(&events, want, COUNT(want), "out.jsonl");
    ck_assert_int_eq(strlen(itest_value(&events.event[0], "big")), 20000);
    ck_assert_msg(strncmp(itest_value(&events.event[0], "big"), "0123456789012", 13) == 0,
                  "the big value is wrong");
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_rollbacks_never_appear)
{
    static const char *const want[] = {
        "public.a insert 0 {id:1}",
        "public.a insert 0 {id:101}",
        "public.a insert 1 {id:103}",
        "public.a insert 2 {id:104}",
        "public.a insert 3 {id:107}",
        "public.a insert 0 {id:200}",
        "public.a insert 0 {id:2}",
    };
    itest_ctx ctx;
    itest_path conf;

    conf = begin_ddl_test(&ctx, "ddlrollback", "CREATE TABLE a (id int PRIMARY KEY)",
                          "\"public.a\"", "");

    itest_exec(ctx.conn, "INSERT INTO a VALUES (1)");
    itest_exec(ctx.conn, "BEGIN; INSERT INTO a VALUES (100); ROLLBACK");
    itest_exec(ctx.conn, "BEGIN; INSERT INTO a VALUES (101); SAVEPOINT s; "
                         "INSERT INTO a VALUES (102); ROLLBACK TO s; INSERT INTO a VALUES (103); "
                         "SAVEPOINT s2; INSERT INTO a VALUES (104); RELEASE s2; "
                         "SAVEPOINT s3; INSERT INTO a VALUES (105); SAVEPOINT s4; "
                         "INSERT INTO a VALUES (106); ROLLBACK TO s3; INSERT INTO a VALUES (107); "
                         "COMMIT");
    itest_exec(ctx.conn, "BEGIN; INSERT INTO a VALUES (200); SAVEPOINT s; "
                         "INSERT INTO a VALUES (201); ROLLBACK TO s; COMMIT");
    itest_exec(ctx.conn, "BEGIN; SAVEPOINT s; INSERT INTO a VALUES (300); ROLLBACK TO s; COMMIT");
    itest_exec(ctx.conn, "INSERT INTO a VALUES (2)");
    assert_run_delivers(&ctx, conf.s, want, COUNT(want));
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("ddl");
    TCase *tc = itest_tcase(suite, "ddl");

    tcase_add_test(tc, test_columns_follow_schema_changes);
    tcase_add_test(tc, test_filters_and_operations);
    tcase_add_test(tc, test_unchanged_toast_value);
    tcase_add_test(tc, test_rollbacks_never_appear);
    return run_suite(suite) == 0 ? 0 : 1;
}
