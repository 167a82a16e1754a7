/*
 * What walnotify checks on the server before it streams, and what it makes there: partitioned
 * tables published under their root's name, replica identity before update/delete are
 * published (also for the other tables of a publication it widens), existing publications with
 * row filters or column lists, slots it cannot use, missing tables, and identifiers that need
 * quoting from the configuration to the events.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

/* A configuration with one jsonl plugin writing `out`, for `tables`, publishing `ops` (the inside
 * of a libconfig list). */
static itest_path jsonl_config(const itest_ctx *ctx, const char *name, const char *tables,
                               const char *ops, const char *out)
{
    return itest_config(ctx, name, tables, 200,
                        "{ name = \"out\"; path = \"%s\"; ops = [ %s ]; "
                        "settings = { path = \"%s\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s, ops, out);
}

/* The last line of the host's stderr (its one-line reason), to free. */
static char *reason_line(const itest_host *host)
{
    size_t length = 0;
    char *err = itest_read_file(host->err.s, &length);
    char *line;
    size_t start;

    ck_assert_msg(err != NULL && length > 0 && err[length - 1] == '\n',
                  "walnotify's stderr does not end with a line: %s", err ? err : "(none)");
    err[length - 1] = '\0';
    start = length - 1;
    while (start > 0 && err[start - 1] != '\n')
        start--;
    line = strdup(err + start);
    ck_assert(line != NULL);
    free(err);
    return line;
}

/* Runs the host with args and fails unless it exits 3 with a reason line holding every needle. */
static void assert_refused(itest_ctx *ctx, const char *conf, const char *const *needles)
{
    itest_host host;
    char *line;

    itest_host_run(ctx, &host, "--create-slot", "-c", conf);
    itest_assert_failed(&host, 3);
    line = reason_line(&host);
    for (size_t i = 0; needles[i] != NULL; i++)
        ck_assert_msg(strstr(line, needles[i]) != NULL, "the reason lacks \"%s\": %s",
                      needles[i], line);
    free(line);
}
#define REFUSED(ctx, conf, ...) assert_refused((ctx), (conf), ITEST_ARGS(__VA_ARGS__))

static void assert_stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);

    ck_assert_msg(err != NULL && strstr(err, needle) != NULL, "stderr lacks \"%s\": %s", needle,
                  err ? err : "(none)");
    free(err);
}

static itest_events read_out(const itest_ctx *ctx, const char *name)
{
    itest_path out = itest_file(ctx, name);

    return itest_read_events(out.s);
}

START_TEST(test_partitioned_table_arrives_under_its_root)
{
    static const char *const want[] = {"public.m insert 0 {id:1,v:low}",
                                       "public.m insert 1 {id:101,v:high}",
                                       "public.m insert 0 {id:102,v:high}"};
    itest_ctx ctx;
    itest_path conf;
    itest_events events;

    itest_begin(&ctx, "partroot");
    itest_exec(ctx.conn, "CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id); "
                         "CREATE TABLE m_low PARTITION OF m FOR VALUES FROM (0) TO (100); "
                         "CREATE TABLE m_high PARTITION OF m FOR VALUES FROM (100) TO (200)");
    conf = jsonl_config(&ctx, "m.cfg", "\"public.m\"", "\"insert\"", "m.jsonl");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO m VALUES (1, 'low'), (101, 'high')");
    itest_exec(ctx.conn, "INSERT INTO m VALUES (102, 'high')");
    itest_run_to_now(&ctx, conf.s);

    events = read_out(&ctx, "m.jsonl");
    itest_assert_described(&events, want, sizeof want / sizeof want[0], "m.jsonl");
    ck_assert_int_eq(itest_query_int(ctx.conn,
                                     "SELECT count(*) FROM pg_publication WHERE pubname = '%s' "
                                     "AND pubviaroot",
                                     ctx.pub),
                     1);
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_partition_names_refused)
{
    itest_ctx ctx;
    itest_path conf;
    itest_host host;

    itest_begin(&ctx, "partname");
    itest_exec(ctx.conn, "CREATE TABLE m (id int PRIMARY KEY) PARTITION BY RANGE (id); "
                         "CREATE TABLE m_low PARTITION OF m FOR VALUES FROM (0) TO (100)");

    /* A partition listed beside its root: published via the root, it never has its own name. */
    conf = jsonl_config(&ctx, "both.cfg", "\"public.m\", \"public.m_low\"", "\"insert\"",
                        "both.jsonl");
    REFUSED(&ctx, conf.s, "\"public.m_low\" is a partition of \"public.m\"",
            "publishes via the partition root");
    ck_assert_msg(!itest_publication_exists(ctx.conn, ctx.pub), "a refused publication was made");

    /* An existing publication that publishes partitions under their own names. */
    itest_exec(ctx.conn, "CREATE PUBLICATION %s FOR TABLE m", ctx.pub);
    conf = jsonl_config(&ctx, "m.cfg", "\"public.m\"", "\"insert\"", "m.jsonl");
    REFUSED(&ctx, conf.s, "table \"public.m\" is partitioned", ctx.pub,
            "SET (publish_via_partition_root = true)");
    ck_assert_msg(!itest_slot_exists(ctx.conn, ctx.slot), "a slot was made after the refusal");

    /* The remedy the reason names. */
    itest_exec(ctx.conn, "ALTER PUBLICATION %s SET (publish_via_partition_root = true)", ctx.pub);
    itest_host_run(&ctx, &host, "--create-slot", "-c", conf.s);
    itest_assert_exit(&host, 0);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_widening_checks_every_table_of_the_publication)
{
    itest_ctx ctx, all;
    itest_path conf;

    itest_begin(&ctx, "widen");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE other (v int); "
                         "CREATE TABLE q (id int PRIMARY KEY) PARTITION BY LIST (id); "
                         "CREATE TABLE q1 PARTITION OF q FOR VALUES IN (1); "
                         "ALTER TABLE q1 REPLICA IDENTITY NOTHING");
    itest_exec(ctx.conn, "CREATE PUBLICATION %s FOR TABLE t, other WITH (publish = 'insert')",
               ctx.pub);
    conf = jsonl_config(&ctx, "t.cfg", "\"public.t\"", "\"insert\", \"update\"", "t.jsonl");
    REFUSED(&ctx, conf.s, "holds table public.other, which has no replica identity",
            "publish update");
    ck_assert_int_eq(itest_query_int(ctx.conn,
                                     "SELECT count(*) FROM pg_publication WHERE pubname = '%s' "
                                     "AND NOT pubupdate",
                                     ctx.pub),
                     1);

    /* A partition of a published partitioned table is what UPDATE/DELETE check. */
    itest_exec(ctx.conn, "ALTER PUBLICATION %s SET TABLE t, q", ctx.pub);
    conf = jsonl_config(&ctx, "d.cfg", "\"public.t\"", "\"delete\"", "d.jsonl");
    REFUSED(&ctx, conf.s, "holds table public.q1", "publish delete");

    /* FOR ALL TABLES holds every table. */
    all = ctx;
    snprintf(all.pub, sizeof all.pub, "%.40s_all", ctx.pub);
    itest_exec(ctx.conn, "ALTER TABLE q1 REPLICA IDENTITY DEFAULT; "
                         "CREATE PUBLICATION %s FOR ALL TABLES WITH (publish = 'insert')",
               all.pub);
    conf = jsonl_config(&all, "all.cfg", "\"public.t\"", "\"update\"", "all.jsonl");
    REFUSED(&ctx, conf.s, "holds table public.other", all.pub);

    /* Once every table has a replica identity, the widening is made. */
    itest_exec(ctx.conn, "ALTER TABLE other REPLICA IDENTITY FULL");
    itest_create_slot(&all, conf.s);
    ck_assert_int_eq(itest_query_int(ctx.conn,
                                     "SELECT count(*) FROM pg_publication WHERE pubname = '%s' "
                                     "AND pubupdate AND pubinsert",
                                     all.pub),
                     1);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_no_replica_identity)
{
    static const char *const want[] = {"public.k insert 0 {id:1}", "public.n insert 0 {id:2}"};
    itest_ctx ctx;
    itest_path conf;
    itest_events events;

    itest_begin(&ctx, "identity");
    itest_exec(ctx.conn, "CREATE TABLE n (id int PRIMARY KEY); "
                         "ALTER TABLE n REPLICA IDENTITY NOTHING; CREATE TABLE k (id int)");
    conf = jsonl_config(&ctx, "n.cfg", "\"public.n\"", "\"insert\", \"update\"", "n.jsonl");
    REFUSED(&ctx, conf.s, "table \"public.n\" has no replica identity",
            "ALTER TABLE public.n REPLICA IDENTITY FULL");
    conf = jsonl_config(&ctx, "k.cfg", "\"public.k\"", "\"delete\"", "k.jsonl");
    REFUSED(&ctx, conf.s, "table \"public.k\" has no replica identity",
            "ALTER TABLE public.k REPLICA IDENTITY FULL");
    ck_assert_msg(!itest_publication_exists(ctx.conn, ctx.pub), "a refused publication was made");

    /* Inserts need no replica identity, and the application's UPDATE/DELETE keep working. */
    conf = jsonl_config(&ctx, "ins.cfg", "\"public.k\", \"public.n\"", "\"insert\"",
                        "ins.jsonl");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO k VALUES (1)");
    itest_exec(ctx.conn, "INSERT INTO n VALUES (2)");
    itest_exec(ctx.conn, "UPDATE k SET id = 3; DELETE FROM n");
    itest_run_to_now(&ctx, conf.s);
    events = read_out(&ctx, "ins.jsonl");
    itest_assert_described(&events, want, sizeof want / sizeof want[0], "ins.jsonl");
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

/* PostgreSQL 15 added row filters and column lists to publications. */
#define ROW_FILTER_SERVER_VERSION 150000

/* 15 and later: a row filter and a column list are each reported once, and what is delivered is
 * what the publication sends. */
static void row_filter_and_column_list_reported(itest_ctx *ctx)
{
    static const char *const want[] = {"public.c insert 0 {id:1,a:x}",
                                       "public.t insert 1 {id:15,v:kept}"};
    itest_path conf;
    itest_host host;
    itest_events events;

    itest_exec(ctx->conn,
               "CREATE PUBLICATION %s FOR TABLE t WHERE (id > 10), c (id, a) "
               "WITH (publish = 'insert')",
               ctx->pub);
    conf = jsonl_config(ctx, "shape.cfg", "\"public.t\", \"public.c\"", "\"insert\"",
                        "shape.jsonl");
    itest_host_run(ctx, &host, "--create-slot", "-c", conf.s);
    itest_assert_exit(&host, 0);
    assert_stderr_has(&host, "has a row filter for table \"public.t\"");
    assert_stderr_has(&host, "has a column list for table \"public.c\" that leaves columns out");

    itest_exec(ctx->conn, "BEGIN; INSERT INTO c VALUES (1, 'x', 'y'); "
                          "INSERT INTO t VALUES (5, 'filtered'), (15, 'kept'); COMMIT");
    itest_run_to_now(ctx, conf.s);
    events = read_out(ctx, "shape.jsonl");
    itest_assert_described(&events, want, sizeof want / sizeof want[0], "shape.jsonl");
    itest_events_free(&events);
}

/* 14: publications have neither, so walnotify looks for none (the catalog has no column to look
 * in) and an existing publication is used as it is, every row and column delivered. */
static void no_row_filters_before_15(itest_ctx *ctx)
{
    static const char *const want[] = {"public.c insert 0 {id:1,a:x,b:y}",
                                       "public.t insert 1 {id:5,v:small}",
                                       "public.t insert 2 {id:15,v:kept}"};
    itest_path conf;
    itest_host host;
    itest_events events;
    char *err;

    itest_exec(ctx->conn, "CREATE PUBLICATION %s FOR TABLE t, c WITH (publish = 'insert')",
               ctx->pub);
    conf = jsonl_config(ctx, "shape.cfg", "\"public.t\", \"public.c\"", "\"insert\"",
                        "shape.jsonl");
    itest_host_run(ctx, &host, "--create-slot", "-c", conf.s);
    itest_assert_exit(&host, 0);
    err = itest_host_stderr(&host);
    ck_assert_msg(err != NULL && strstr(err, "row filter") == NULL &&
                      strstr(err, "column list") == NULL && strstr(err, "ERROR") == NULL,
                  "walnotify said something of row filters or column lists on 14: %s",
                  err ? err : "(none)");
    free(err);

    itest_exec(ctx->conn, "BEGIN; INSERT INTO c VALUES (1, 'x', 'y'); "
                          "INSERT INTO t VALUES (5, 'small'), (15, 'kept'); COMMIT");
    itest_run_to_now(ctx, conf.s);
    events = read_out(ctx, "shape.jsonl");
    itest_assert_described(&events, want, sizeof want / sizeof want[0], "shape.jsonl");
    itest_events_free(&events);
}

/* Behaviour differs by server version: each version checks its own. */
START_TEST(test_row_filter_and_column_list_are_reported)
{
    itest_ctx ctx;
    int version;

    itest_begin(&ctx, "shape");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY, v text); "
                         "CREATE TABLE c (id int PRIMARY KEY, a text, b text)");
    version = PQserverVersion(ctx.conn);
    fprintf(stderr, "server version %d: %s\n", version,
            version >= ROW_FILTER_SERVER_VERSION ? "row filters and column lists reported"
                                                 : "no row filters or column lists to report");
    if (version >= ROW_FILTER_SERVER_VERSION)
        row_filter_and_column_list_reported(&ctx);
    else
        no_row_filters_before_15(&ctx);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_slots_walnotify_cannot_use)
{
    itest_ctx ctx;
    itest_path conf;
    PGconn *admin;

    itest_begin(&ctx, "slots");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = jsonl_config(&ctx, "t.cfg", "\"public.t\"", "\"insert\"", "t.jsonl");

    itest_exec(ctx.conn, "SELECT pg_create_logical_replication_slot('%s', 'test_decoding')",
               ctx.slot);
    REFUSED(&ctx, conf.s, ctx.slot, "uses plugin \"test_decoding\"",
            "walnotify needs plugin pgoutput");
    itest_exec(ctx.conn, "SELECT pg_drop_replication_slot('%s')", ctx.slot);

    itest_exec(ctx.conn, "SELECT pg_create_physical_replication_slot('%s')", ctx.slot);
    REFUSED(&ctx, conf.s, ctx.slot, "is a physical slot", "needs a logical slot");
    itest_exec(ctx.conn, "SELECT pg_drop_replication_slot('%s')", ctx.slot);

    admin = itest_connect("postgres", NULL);
    itest_exec(admin, "SELECT pg_create_logical_replication_slot('%s', 'pgoutput')", ctx.slot);
    REFUSED(&ctx, conf.s, ctx.slot, "belongs to database \"postgres\"", ctx.db);
    itest_exec(admin, "SELECT pg_drop_replication_slot('%s')", ctx.slot);
    PQfinish(admin);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_missing_table)
{
    itest_ctx ctx;
    itest_path conf;

    itest_begin(&ctx, "notable");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = jsonl_config(&ctx, "t.cfg", "\"public.t\", \"public.no_such_table\"", "\"insert\"",
                        "t.jsonl");
    REFUSED(&ctx, conf.s, "table \"public.no_such_table\" does not exist");
    ck_assert_msg(!itest_publication_exists(ctx.conn, ctx.pub), "a publication was made");
    ck_assert_msg(!itest_slot_exists(ctx.conn, ctx.slot), "a slot was made");
    itest_end(&ctx);
}
END_TEST

/* Capitals, blanks and double quotes in the publication, schema, table and column names: made,
 * altered and streamed from, with the names exactly as written. */
START_TEST(test_identifiers_that_need_quoting)
{
    static const char *const want[] = {"Odd Sch.Odd \"T\" x insert 0 {Id Col:1,say \"hi\":a}",
                                       "Odd Sch.Two's insert 1 {ID:2}",
                                       "Odd Sch.Odd \"T\" x update 0 {Id Col:1,say \"hi\":b}"};
    itest_ctx ctx, odd;
    itest_path conf;
    itest_events events;

    itest_begin(&ctx, "quoting");
    itest_exec(ctx.conn, "CREATE SCHEMA \"Odd Sch\"; "
                         "CREATE TABLE \"Odd Sch\".\"Odd \"\"T\"\" x\" "
                         "    (\"Id Col\" int PRIMARY KEY, \"say \"\"hi\"\"\" text); "
                         "CREATE TABLE \"Odd Sch\".\"Two's\" (\"ID\" int PRIMARY KEY)");
    odd = ctx;
    snprintf(odd.pub, sizeof odd.pub, "My \\\"Pub\\\" X"); /* libconfig's escapes */

    /* Made for one table, then altered to hold a second and to publish updates. */
    conf = jsonl_config(&odd, "one.cfg", "\"Odd Sch.Odd \\\"T\\\" x\"", "\"insert\"", "o.jsonl");
    itest_create_slot(&odd, conf.s);
    conf = jsonl_config(&odd, "two.cfg", "\"Odd Sch.Odd \\\"T\\\" x\", \"Odd Sch.Two's\"",
                        "\"insert\", \"update\"", "o.jsonl");
    itest_create_slot(&odd, conf.s);
    ck_assert_int_eq(itest_query_int(ctx.conn,
                                     "SELECT count(*) FROM pg_publication_tables pt "
                                     "JOIN pg_publication p USING (pubname) "
                                     "WHERE pubname = 'My \"Pub\" X' AND schemaname = 'Odd Sch' "
                                     "AND tablename IN ('Odd \"T\" x', 'Two''s') AND pubupdate"),
                     2);

    itest_exec(ctx.conn, "BEGIN; INSERT INTO \"Odd Sch\".\"Odd \"\"T\"\" x\" VALUES (1, 'a'); "
                         "INSERT INTO \"Odd Sch\".\"Two's\" VALUES (2); COMMIT");
    itest_exec(ctx.conn, "UPDATE \"Odd Sch\".\"Odd \"\"T\"\" x\" SET \"say \"\"hi\"\"\" = 'b'");
    itest_run_to_now(&odd, conf.s);
    events = read_out(&ctx, "o.jsonl");
    itest_assert_described(&events, want, sizeof want / sizeof want[0], "o.jsonl");
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("setup");
    TCase *tc = itest_tcase(suite, "setup");

    tcase_add_test(tc, test_partitioned_table_arrives_under_its_root);
    tcase_add_test(tc, test_partition_names_refused);
    tcase_add_test(tc, test_widening_checks_every_table_of_the_publication);
    tcase_add_test(tc, test_no_replica_identity);
    tcase_add_test(tc, test_row_filter_and_column_list_are_reported);
    tcase_add_test(tc, test_slots_walnotify_cannot_use);
    tcase_add_test(tc, test_missing_table);
    tcase_add_test(tc, test_identifiers_that_need_quoting);
    return run_suite(suite) == 0 ? 0 : 1;
}
