/*
 * Configured tables that change under a running walnotify: renamed (the stream's Relation
 * message, and the catalog check when no row shows it), moved to another schema, renamed and
 * renamed back (in one transaction, before a restart, while walnotify was stopped), renamed
 * while another table took the name, two of them swapping names, taken out of the publication
 * (also while the stream was down), dropped, dropped and created again, a column whose type
 * changed, and the check's own connection lost. A change of a configured table, whatever name it
 * was made under, is delivered under the configured name; where changes would no longer be
 * delivered, walnotify must stop with exit 3 before the acknowledged position passes them, and
 * the remedy it gives must let the next run deliver them.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define QUIET_INTERVAL_MS 20000 /* below receive_timeout_ms; the test is done long before */

static itest_path jsonl_config(itest_ctx *ctx, const char *tables, int interval_ms)
{
    return itest_config(ctx, "relchange.cfg", tables, interval_ms,
                        "{ name = \"out\"; path = \"%s\"; settings = { path = \"out.jsonl\"; "
                        "fsync = false; }; }",
                        itest_root_file("build/plugins/jsonl.so").s);
}

static size_t occurrences(const char *text, const char *needle)
{
    size_t count = 0;

    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        count++;
    return count;
}

/* Fails unless the host's stderr holds every needle. */
static void assert_stderr_has(const itest_host *host, const char *const *needles, size_t count)
{
    char *err = itest_host_stderr(host);

    ck_assert_ptr_nonnull(err);
    for (size_t i = 0; i < count; i++)
        ck_assert_msg(strstr(err, needles[i]) != NULL, "stderr lacks \"%s\": %s", needles[i],
                      err);
    free(err);
}

/* Fails unless the slot's confirmed_flush_lsn is at or before limit. */
static void assert_confirmed_at_most(itest_ctx *ctx, wn_lsn limit)
{
    wn_lsn confirmed = itest_slot_confirmed(ctx->conn, ctx->slot);
    char *a = itest_lsn_text(confirmed), *b = itest_lsn_text(limit);

    ck_assert_msg(confirmed <= limit,
                  "the slot acknowledged %s, past %s where the table changed", a, b);
    free(a);
    free(b);
}

/* Waits until the slot has acknowledged everything up to lsn. */
static void wait_confirmed(itest_ctx *ctx, wn_lsn lsn)
{
    itest_wait_query_at_least(ctx->conn, (long long)lsn,
                              "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint "
                              "FROM pg_replication_slots WHERE slot_name = '%s'",
                              ctx->slot);
}

/* A test's walnotify streaming into out.jsonl. */
typedef struct stream_test {
    itest_ctx ctx;
    itest_path conf;
    itest_path out;     /* the jsonl plugin's file */
    itest_host host;
} stream_test;

/* A test database where ddl has run, and walnotify streaming `tables` (the inside of the list)
 * from a slot made before it starts, acknowledging every interval_ms. */
static void start_streaming(stream_test *t, const char *name, const char *ddl, const char *tables,
                            int interval_ms)
{
    itest_begin(&t->ctx, name);
    itest_exec(t->ctx.conn, "%s", ddl);
    t->conf = jsonl_config(&t->ctx, tables, interval_ms);
    itest_create_slot(&t->ctx, t->conf.s);
    itest_host_start(&t->ctx, &t->host, ITEST_ARGS("-c", t->conf.s));
    t->out = itest_file(&t->ctx, "out.jsonl");
}

static void wait_lines(const stream_test *t, size_t count)
{
    itest_lines lines = itest_wait_lines(t->out.s, count, ITEST_WAIT_S);

    itest_lines_free(&lines);
}

/* Waits until out.jsonl holds count lines and the slot has acknowledged all committed so far. */
static void wait_delivered(stream_test *t, size_t count)
{
    wait_lines(t, count);
    wait_confirmed(&t->ctx, itest_current_lsn(t->ctx.conn));
}

/* Fails unless walnotify stopped by itself with exit 3, a reason, and every needle on stderr. */
static void assert_stopped(stream_test *t, const char *const *needles, size_t count)
{
    itest_host_wait(&t->host, ITEST_WAIT_S);
    itest_assert_failed(&t->host, 3);
    assert_stderr_has(&t->host, needles, count);
}

/* Fails unless walnotify is still running and stops cleanly on SIGTERM. */
static void stop_cleanly(stream_test *t)
{
    ck_assert_msg(itest_host_running(&t->host), "walnotify exited");
    ck_assert_int_eq(itest_host_stop(&t->host, SIGTERM), 0);
}

/* walnotify run over everything committed so far, to exit 0. */
static void run_to_now(stream_test *t)
{
    char *end = itest_lsn_text(itest_current_lsn(t->ctx.conn));

    itest_host_run(&t->ctx, &t->host, "-c", t->conf.s, "--endpos", end);
    free(end);
    itest_assert_exit(&t->host, 0);
}

/* Fails unless out.jsonl's events are described by want (count of them). */
static void assert_out(const stream_test *t, const char *const *want, size_t count)
{
    itest_events events = itest_read_events(t->out.s);

    itest_assert_described(&events, want, count, "out.jsonl");
    itest_events_free(&events);
}

#define N_OF(array) (sizeof(array) / sizeof((array)[0]))
#define TWO_TABLES "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)"

/* Rows of the renamed table arrive under a name no configured table has: the stream shows it (no
 * acknowledgement, so no catalog check, is due during this test), the catalog says the rename
 * holds, and walnotify stops before delivering or acknowledging them. The first remedy it gives,
 * renaming the table back, works: the next run delivers them, under the configured name. */
START_TEST(test_rename_seen_in_stream_stops)
{
    static const char *const needles[] = {"table \"public.rn\"", "renamed to \"public.rn2\"",
                                          "rename it back, or replace \"public.rn\" by "
                                          "\"public.rn2\" in source.tables"};
    static const char *const want[] = {
        "public.rn insert 0 {id:1}", /* the first run */
        "public.rn insert 0 {id:1}", /* not acknowledged: again */
        "public.rn insert 0 {id:2}",
        "public.rn insert 0 {id:3}",
    };
    stream_test t;
    itest_lines lines;
    wn_lsn before;

    start_streaming(&t, "relrename", "CREATE TABLE rn (id int PRIMARY KEY)", "\"public.rn\"",
                    QUIET_INTERVAL_MS);
    itest_exec(t.ctx.conn, "INSERT INTO rn VALUES (1)");
    wait_lines(&t, 1);

    before = itest_current_lsn(t.ctx.conn);
    itest_exec(t.ctx.conn, "BEGIN; ALTER TABLE rn RENAME TO rn2; INSERT INTO rn2 VALUES (2); "
                           "COMMIT");
    itest_exec(t.ctx.conn, "INSERT INTO rn2 VALUES (3)");
    assert_stopped(&t, needles, N_OF(needles));
    assert_confirmed_at_most(&t.ctx, before);
    lines = itest_read_lines(t.out.s);
    ck_assert_uint_eq(lines.count, 1);
    itest_lines_free(&lines);

    itest_exec(t.ctx.conn, "ALTER TABLE rn2 RENAME TO rn");
    run_to_now(&t);
    assert_out(&t, want, N_OF(want));
    itest_end(&t.ctx);
}
END_TEST

/* The check names the tables to the server inside array literals: a name with a quote, a
 * backslash, a comma and braces must still be found, published, and acknowledged. */
START_TEST(test_check_quotes_names)
{
    stream_test t;

    start_streaming(&t, "relquote", "CREATE TABLE \"we\"\"ird\\{x},y\" (id int PRIMARY KEY)",
                    "\"public.we\\\"ird\\\\{x},y\"", 200);
    itest_exec(t.ctx.conn, "INSERT INTO \"we\"\"ird\\{x},y\" VALUES (1)");
    wait_delivered(&t, 1);
    stop_cleanly(&t);
    itest_end(&t.ctx);
}
END_TEST

/* Two configured tables swap names: each one's changes go on under its new name, which is
 * configured too; neither the stream nor the catalog check stops. */
START_TEST(test_swap_of_configured_tables_goes_on)
{
    static const char *const want[] = {
        "public.a insert 0 {id:1,v:a}",
        "public.b insert 0 {id:1,v:b}",
        "public.a insert 0 {id:2,v:was-b}",
        "public.b insert 0 {id:2,v:was-a}",
    };
    static const char *const needles[] = {"is now named \"public.b\", also in source.tables"};
    stream_test t;

    start_streaming(&t, "relswap",
                    "CREATE TABLE a (id int PRIMARY KEY, v text); "
                    "CREATE TABLE b (id int PRIMARY KEY, v text)",
                    "\"public.a\", \"public.b\"", 200);
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (1, 'a')");
    itest_exec(t.ctx.conn, "INSERT INTO b VALUES (1, 'b')");
    wait_delivered(&t, 2);

    itest_exec(t.ctx.conn, "BEGIN; ALTER TABLE a RENAME TO tmp; ALTER TABLE b RENAME TO a; "
                           "ALTER TABLE tmp RENAME TO b; COMMIT");
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (2, 'was-b')");
    itest_exec(t.ctx.conn, "INSERT INTO b VALUES (2, 'was-a')");
    wait_delivered(&t, 4);
    stop_cleanly(&t);
    assert_out(&t, want, N_OF(want));
    assert_stderr_has(&t.host, needles, N_OF(needles));
    itest_end(&t.ctx);
}
END_TEST

/* Renamed and renamed back while walnotify was stopped, after it had acknowledged the table's
 * last change under its name: the next run's stream shows the changes made under the other name
 * first. The relation id is the table's OID: they are delivered, under its configured name. */
START_TEST(test_changes_under_a_former_name_are_delivered)
{
    static const char *const want[] = {
        "public.rn insert 0 {id:1}",
        "public.rn insert 0 {id:2}",
        "public.rn insert 0 {id:3}",
    };
    static const char *const needles[] = {"made while it was named \"public.tmp\" are "
                                          "delivered as \"public.rn\""};
    stream_test t;

    itest_begin(&t.ctx, "relformer");
    itest_exec(t.ctx.conn, "CREATE TABLE rn (id int PRIMARY KEY)");
    t.conf = jsonl_config(&t.ctx, "\"public.rn\"", 1000);
    t.out = itest_file(&t.ctx, "out.jsonl");
    itest_create_slot(&t.ctx, t.conf.s);
    itest_exec(t.ctx.conn, "INSERT INTO rn VALUES (1)");
    /* Acknowledged: the next run's stream does not show the table under its name first. */
    itest_run_to_now(&t.ctx, t.conf.s);
    itest_exec(t.ctx.conn, "ALTER TABLE rn RENAME TO tmp");
    itest_exec(t.ctx.conn, "INSERT INTO tmp VALUES (2)");
    itest_exec(t.ctx.conn, "ALTER TABLE tmp RENAME TO rn");
    itest_exec(t.ctx.conn, "INSERT INTO rn VALUES (3)");
    run_to_now(&t);
    assert_out(&t, want, N_OF(want));
    assert_stderr_has(&t.host, needles, N_OF(needles));
    itest_end(&t.ctx);
}
END_TEST

/* Renamed and renamed back inside one transaction, with no earlier row of the table in the
 * stream: the stream shows its first rows under the other name. They are the configured table's
 * (the relation id is its OID): delivered under its configured name, and acknowledged only then. */
START_TEST(test_renamed_and_back_in_one_transaction_delivers)
{
    static const char *const want[] = {
        "public.rc insert 0 {id:1}",
        "public.rc insert 1 {id:2}",
        "public.rc insert 0 {id:3}",
    };
    static const char *const needles[] = {"made while it was named \"public.rc_tmp\" are "
                                          "delivered as \"public.rc\""};
    stream_test t;

    start_streaming(&t, "relback", "CREATE TABLE rc (id int PRIMARY KEY)", "\"public.rc\"", 200);
    itest_exec(t.ctx.conn, "BEGIN; ALTER TABLE rc RENAME TO rc_tmp; INSERT INTO rc_tmp VALUES (1); "
                           "INSERT INTO rc_tmp VALUES (2); ALTER TABLE rc_tmp RENAME TO rc; "
                           "COMMIT");
    itest_exec(t.ctx.conn, "INSERT INTO rc VALUES (3)");
    /* Acknowledged at last: whatever was passed over would be gone now. */
    wait_confirmed(&t.ctx, itest_current_lsn(t.ctx.conn));
    stop_cleanly(&t);
    assert_out(&t, want, N_OF(want));
    assert_stderr_has(&t.host, needles, N_OF(needles));
    itest_end(&t.ctx);
}
END_TEST

/* The table's rows under its name, then under another name, then under its name again, none of
 * them acknowledged: every start streams them in that order, and the catalog says the table has
 * its configured name. Each run delivers them all, under that name, and none stops. */
START_TEST(test_renamed_and_back_before_a_restart_delivers)
{
    static const char *const want[] = {
        "public.rb insert 0 {id:1}",
        "public.rb insert 0 {id:2}",
        "public.rb insert 0 {id:3}",
    };
    stream_test t;

    itest_begin(&t.ctx, "relbackstart");
    itest_exec(t.ctx.conn, "CREATE TABLE rb (id int PRIMARY KEY)");
    t.conf = jsonl_config(&t.ctx, "\"public.rb\"", 1000);
    t.out = itest_file(&t.ctx, "out.jsonl");
    itest_create_slot(&t.ctx, t.conf.s);
    itest_exec(t.ctx.conn, "INSERT INTO rb VALUES (1)");
    itest_exec(t.ctx.conn, "ALTER TABLE rb RENAME TO rb_tmp");
    itest_exec(t.ctx.conn, "INSERT INTO rb_tmp VALUES (2)");
    itest_exec(t.ctx.conn, "ALTER TABLE rb_tmp RENAME TO rb");
    itest_exec(t.ctx.conn, "INSERT INTO rb VALUES (3)");
    run_to_now(&t);
    assert_out(&t, want, N_OF(want));
    itest_end(&t.ctx);
}
END_TEST

/* Renamed for good while another table took its name: walnotify stops, and the remedy it gives
 * for following the table that has the name now (starting again as it is) works: the next run
 * delivers that table's rows and passes over the renamed one's, without stopping again. */
START_TEST(test_name_taken_by_another_table_can_be_followed)
{
    static const char *const needles[] = {"renamed to \"public.rn_old\", and another table now "
                                          "has its old name",
                                          "to follow the table that has the old name now, start "
                                          "again as it is"};
    static const char *const want[] = {
        "public.rn insert 0 {id:1}",
        "public.rn insert 0 {id:3}",
    };
    stream_test t;
    wn_lsn before;

    start_streaming(&t, "reltaken", "CREATE TABLE rn (id int PRIMARY KEY)", "\"public.rn\"", 200);
    itest_exec(t.ctx.conn, "INSERT INTO rn VALUES (1)");
    wait_delivered(&t, 1);

    before = itest_current_lsn(t.ctx.conn);
    itest_exec(t.ctx.conn,
               "BEGIN; ALTER TABLE rn RENAME TO rn_old; CREATE TABLE rn (id int PRIMARY KEY); "
               "ALTER PUBLICATION %s ADD TABLE rn; COMMIT",
               t.ctx.pub);
    itest_exec(t.ctx.conn, "INSERT INTO rn_old VALUES (2)");
    itest_exec(t.ctx.conn, "INSERT INTO rn VALUES (3)");
    assert_stopped(&t, needles, N_OF(needles));
    assert_confirmed_at_most(&t.ctx, before);

    run_to_now(&t);
    assert_out(&t, want, N_OF(want));
    itest_end(&t.ctx);
}
END_TEST

/* A table moved to another schema, with no row of it in the stream: the catalog check before the
 * next acknowledgement sees it. The other remedy it gives, following the table under its new
 * name, works: the next run delivers its rows under that name. */
START_TEST(test_set_schema_seen_by_check_stops)
{
    static const char *const needles[] = {"table \"public.rn\"", "renamed to \"s2.rn\""};
    static const char *const want[] = {
        "public.rn insert 0 {id:1}",
        "public.other insert 1 {id:1}",
        "public.other insert 0 {id:2}", /* the first run, when it came before the check */
        "public.other insert 0 {id:2}",
        "s2.rn insert 0 {id:3}",
    };
    stream_test t;
    wn_lsn before;
    itest_events first_run;
    size_t skip;

    start_streaming(&t, "relschema",
                    "CREATE TABLE rn (id int PRIMARY KEY); "
                    "CREATE TABLE other (id int PRIMARY KEY); CREATE SCHEMA s2",
                    "\"public.rn\", \"public.other\"", 200);
    itest_exec(t.ctx.conn, "INSERT INTO rn VALUES (1); INSERT INTO other VALUES (1)");
    wait_delivered(&t, 2);

    itest_exec(t.ctx.conn, "ALTER TABLE rn SET SCHEMA s2");
    before = itest_current_lsn(t.ctx.conn);
    itest_exec(t.ctx.conn, "INSERT INTO other VALUES (2)");
    assert_stopped(&t, needles, N_OF(needles));
    assert_confirmed_at_most(&t.ctx, before);
    /* The check runs at the next acknowledgement, which may come before or after other's row is
     * handled: either is right, so long as that row is not acknowledged. */
    first_run = itest_read_events(t.out.s);
    ck_assert_msg(first_run.count == 2 || first_run.count == 3,
                  "the first run delivered %zu events, expected 2 or 3", first_run.count);
    skip = first_run.count == 2 ? 1 : 0;
    itest_events_free(&first_run);

    itest_exec(t.ctx.conn, "INSERT INTO s2.rn VALUES (3)");
    t.conf = jsonl_config(&t.ctx, "\"s2.rn\", \"public.other\"", 200);
    run_to_now(&t);
    if (skip == 0) {
        assert_out(&t, want, N_OF(want));
    } else {
        const char *const want_short[] = {want[0], want[1], want[3], want[4]};
        assert_out(&t, want_short, N_OF(want_short));
    }
    itest_end(&t.ctx);
}
END_TEST

/* A table taken out of the publication leaves nothing in the stream; the catalog check stops
 * walnotify before the acknowledgement passes the ALTER PUBLICATION. */
START_TEST(test_removed_from_publication_stops)
{
    static const char *const needles[] = {"table \"public.b\"", "no longer in publication"};
    stream_test t;
    wn_lsn before;

    start_streaming(&t, "relpubdrop", TWO_TABLES, "\"public.a\", \"public.b\"", 200);
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (1); INSERT INTO b VALUES (1)");
    wait_delivered(&t, 2);

    itest_exec(t.ctx.conn, "ALTER PUBLICATION %s DROP TABLE b", t.ctx.pub);
    before = itest_current_lsn(t.ctx.conn);
    itest_exec(t.ctx.conn, "INSERT INTO b VALUES (2)");
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (2)");
    assert_stopped(&t, needles, N_OF(needles));
    assert_confirmed_at_most(&t.ctx, before);
    itest_end(&t.ctx);
}
END_TEST

/* A configured table dropped leaves nothing in the stream either: the catalog check stops
 * walnotify before the acknowledgement passes the DROP TABLE. */
START_TEST(test_dropped_stops)
{
    static const char *const needles[] = {"table \"public.b\"", "was dropped"};
    stream_test t;
    wn_lsn before;

    start_streaming(&t, "reldrop", TWO_TABLES, "\"public.a\", \"public.b\"", 200);
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (1); INSERT INTO b VALUES (1)");
    wait_delivered(&t, 2);

    itest_exec(t.ctx.conn, "DROP TABLE b");
    before = itest_current_lsn(t.ctx.conn);
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (2)");
    assert_stopped(&t, needles, N_OF(needles));
    assert_confirmed_at_most(&t.ctx, before);
    itest_end(&t.ctx);
}
END_TEST

/* Taken out of the publication while the stream was down: the reconnection checks the tables
 * before preparing the server, which would otherwise put the table back without a word. */
START_TEST(test_removed_while_reconnecting_stops)
{
    static const char *const needles[] = {"table \"public.b\"", "no longer in publication"};
    stream_test t;

    start_streaming(&t, "relrecheck", TWO_TABLES, "\"public.a\", \"public.b\"", 200);
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (1); INSERT INTO b VALUES (1)");
    wait_delivered(&t, 2);

    /* The walsender goes before the change commits, so only the reconnection can see it. */
    itest_exec(t.ctx.conn,
               "BEGIN; ALTER PUBLICATION %s DROP TABLE b; "
               "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
               "WHERE slot_name = '%s'; COMMIT",
               t.ctx.pub, t.ctx.slot);
    assert_stopped(&t, needles, N_OF(needles));
    ck_assert_int_eq(itest_query_int(t.ctx.conn,
                                     "SELECT count(*) FROM pg_publication_tables "
                                     "WHERE pubname = '%s' AND tablename = 'b'",
                                     t.ctx.pub),
                     0);
    itest_end(&t.ctx);
}
END_TEST

/* Dropped and created again under the same name (and put back into the publication): its rows
 * go on under its name, with one warning naming both OIDs. */
START_TEST(test_dropped_and_created_again_warns_once)
{
    static const char *const want[] = {
        "public.a insert 0 {id:1}",
        "public.a insert 0 {id:2,v:x}",
        "public.a insert 0 {id:3,v:y}",
    };
    stream_test t;
    long long old_oid, new_oid;
    char needle[128];
    char *err;

    start_streaming(&t, "relremade", "CREATE TABLE a (id int PRIMARY KEY)", "\"public.a\"", 200);
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (1)");
    wait_delivered(&t, 1);

    old_oid = itest_query_int(t.ctx.conn, "SELECT 'a'::regclass::oid::bigint");
    itest_exec(t.ctx.conn, "BEGIN; DROP TABLE a; CREATE TABLE a (id int PRIMARY KEY, v text); "
                           "ALTER PUBLICATION %s ADD TABLE a; COMMIT",
               t.ctx.pub);
    new_oid = itest_query_int(t.ctx.conn, "SELECT 'a'::regclass::oid::bigint");
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (2, 'x')");
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (3, 'y')");
    wait_delivered(&t, 3);
    stop_cleanly(&t);

    assert_out(&t, want, N_OF(want));
    err = itest_host_stderr(&t.host);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(occurrences(err, "dropped and created again") == 1,
                  "expected one warning about the table made again: %s", err);
    snprintf(needle, sizeof needle, "now has OID %lld, not %lld", new_oid, old_oid);
    ck_assert_msg(strstr(err, needle) != NULL, "stderr lacks \"%s\": %s", needle, err);
    free(err);
    itest_end(&t.ctx);
}
END_TEST

/* A column whose type changed: its values are delivered as text, with one warning. */
START_TEST(test_column_type_changed_warns_once)
{
    static const char *const want[] = {
        "public.a insert 0 {id:1,v:1}",
        "public.a insert 0 {id:2,v:9999999999}",
        "public.a insert 0 {id:3,v:3}",
    };
    static const char *const needles[] = {"column \"v\" changed type (type OID 23",
                                          "now type OID 20"};
    stream_test t;
    char *err;

    itest_begin(&t.ctx, "relretype");
    itest_exec(t.ctx.conn, "CREATE TABLE a (id int PRIMARY KEY, v int)");
    t.conf = jsonl_config(&t.ctx, "\"public.a\"", 1000);
    t.out = itest_file(&t.ctx, "out.jsonl");
    itest_create_slot(&t.ctx, t.conf.s);
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (1, 1)");
    itest_exec(t.ctx.conn, "ALTER TABLE a ALTER COLUMN v TYPE bigint");
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (2, 9999999999)");
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (3, 3)");
    run_to_now(&t);

    assert_out(&t, want, N_OF(want));
    assert_stderr_has(&t.host, needles, N_OF(needles));
    err = itest_host_stderr(&t.host);
    ck_assert_msg(occurrences(err, "changed type") == 1,
                  "expected one warning about the column's type: %s", err);
    free(err);
    itest_end(&t.ctx);
}
END_TEST

/* The check's own connection lost (its backend terminated, as when the server shuts down) is not
 * a table gone: the stream ends as if lost, acknowledging nothing more, and walnotify reconnects,
 * checks again and goes on. */
START_TEST(test_check_connection_lost_is_transient)
{
    static const char *const needles[] = {"cannot check that the tables are still published",
                                          "replication stream back at"};
    stream_test t;

    start_streaming(&t, "relcheckconn", "CREATE TABLE a (id int PRIMARY KEY)", "\"public.a\"",
                    200);
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (1)");
    wait_delivered(&t, 1);

    /* The only other ordinary session on the test's database is the check's. */
    ck_assert_int_eq(itest_query_int(t.ctx.conn,
                                     "SELECT count(pg_terminate_backend(pid)) "
                                     "FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND backend_type = 'client backend' "
                                     "AND pid <> pg_backend_pid()"),
                     1);
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (2)");
    itest_exec(t.ctx.conn, "INSERT INTO a VALUES (3)");
    wait_delivered(&t, 3);
    stop_cleanly(&t);
    assert_stderr_has(&t.host, needles, N_OF(needles));
    itest_end(&t.ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("relchange");
    TCase *tc = itest_tcase(suite, "relchange");

    tcase_add_test(tc, test_rename_seen_in_stream_stops);
    tcase_add_test(tc, test_check_quotes_names);
    tcase_add_test(tc, test_swap_of_configured_tables_goes_on);
    tcase_add_test(tc, test_changes_under_a_former_name_are_delivered);
    tcase_add_test(tc, test_renamed_and_back_in_one_transaction_delivers);
    tcase_add_test(tc, test_renamed_and_back_before_a_restart_delivers);
    tcase_add_test(tc, test_name_taken_by_another_table_can_be_followed);
    tcase_add_test(tc, test_set_schema_seen_by_check_stops);
    tcase_add_test(tc, test_removed_from_publication_stops);
    tcase_add_test(tc, test_dropped_stops);
    tcase_add_test(tc, test_removed_while_reconnecting_stops);
    tcase_add_test(tc, test_dropped_and_created_again_warns_once);
    tcase_add_test(tc, test_column_type_changed_warns_once);
    tcase_add_test(tc, test_check_connection_lost_is_transient);
    return run_suite(suite) == 0 ? 0 : 1;
}
