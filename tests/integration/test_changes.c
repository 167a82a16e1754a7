/*
 * Every kind of change, as the jsonl plugin writes it, against what PostgreSQL holds: truncates
 * (one table, several, CASCADE through a foreign key, RESTART IDENTITY), updates and deletes
 * under each replica identity (DEFAULT with a primary key, FULL, USING INDEX), and unchanged
 * TOAST values in updates, which are marked unchanged, never NULL.
 *
 * Each step is one transaction whose xid the test reads from the server, so every line is matched
 * to the statement that made it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_EVENTS_PER_STEP 8

typedef struct step {
    const char *sql;
    const char *want[MAX_EVENTS_PER_STEP]; /* the lines it makes, described; NULL ends */
} step;

static itest_path jsonl_config(itest_ctx *ctx, const char *tables)
{
    return itest_config(ctx, "changes.cfg", tables, 1000,
                        "{ name = \"out\"; path = \"%s\"; "
                        "ops = [ \"insert\", \"update\", \"delete\", \"truncate\" ]; "
                        "settings = { path = \"out.jsonl\"; fsync = false; }; }",
                        itest_root_file("build/plugins/jsonl.so").s);
}

/* Runs sql as one transaction and returns its xid (the low 32 bits of txid_current()). */
static long long run_step(PGconn *conn, const char *sql)
{
    long long txid;

    itest_exec(conn, "BEGIN");
    itest_exec(conn, "%s", sql);
    txid = itest_query_int(conn, "SELECT txid_current()");
    itest_exec(conn, "COMMIT");
    return txid & 0xFFFFFFFFLL;
}

static size_t wanted(const step *s)
{
    size_t n = 0;

    while (n < MAX_EVENTS_PER_STEP && s->want[n] != NULL)
        n++;
    return n;
}

/*
 * The events are exactly the steps' lines, in order: each step's lines share its xid and one lsn
 * (above the previous step's), with seq 0, 1, ...
 */
static void assert_steps(const itest_events *events, const step *steps, const long long *xids,
                         size_t nsteps)
{
    size_t e = 0;
    wn_lsn previous = 0;

    for (size_t s = 0; s < nsteps; s++) {
        size_t n = wanted(&steps[s]);
        for (size_t k = 0; k < n; k++, e++) {
            const itest_event *event;
            char *got;

            ck_assert_msg(e < events->count, "out.jsonl ends before step %zu (%s) line %zu: %s",
                          s + 1, steps[s].sql, k, steps[s].want[k]);
            event = &events->event[e];
            got = itest_describe(event);
            ck_assert_msg(strcmp(got, steps[s].want[k]) == 0,
                          "step %zu (%s) line %zu is\n  %s\nexpected\n  %s", s + 1, steps[s].sql,
                          k, got, steps[s].want[k]);
            free(got);
            ck_assert_msg(event->xid == xids[s], "step %zu line %zu: xid %lld, the server's %lld",
                          s + 1, k, event->xid, xids[s]);
            ck_assert_msg(event->seq == (long)k, "step %zu line %zu: seq %ld", s + 1, k,
                          event->seq);
            ck_assert_msg(k == 0 ? event->lsn > previous : event->lsn == previous,
                          "step %zu line %zu: lsn out of order", s + 1, k);
            previous = event->lsn;
        }
    }
    if (e < events->count) {
        char *extra = itest_describe(&events->event[e]);
        ck_abort_msg("out.jsonl has %zu lines, expected %zu; the first extra one: %s",
                     events->count, e, extra);
    }
}

START_TEST(test_truncates)
{
    static const step steps[] = {
        {"INSERT INTO a VALUES (1); INSERT INTO b VALUES (1); INSERT INTO p VALUES (1); "
         "INSERT INTO c VALUES (10, 1); INSERT INTO s (v) VALUES ('x'), ('y')",
         {"public.a insert 0 {id:1}", "public.b insert 1 {id:1}", "public.p insert 2 {id:1}",
          "public.c insert 3 {id:10,pid:1}", "public.s insert 4 {id:1,v:x}",
          "public.s insert 5 {id:2,v:y}"}},
        {"TRUNCATE a", {"public.a truncate 0 options[]"}},
        {"TRUNCATE a, b", {"public.a truncate 0 options[]", "public.b truncate 1 options[]"}},
        {"TRUNCATE p CASCADE",
         {"public.p truncate 0 options[cascade]", "public.c truncate 1 options[cascade]"}},
        {"TRUNCATE s RESTART IDENTITY", {"public.s truncate 0 options[restart_identity]"}},
        {"INSERT INTO s (v) VALUES ('z')", {"public.s insert 0 {id:1,v:z}"}},
        {"INSERT INTO a VALUES (2); TRUNCATE a, s CONTINUE IDENTITY",
         {"public.a insert 0 {id:2}", "public.a truncate 1 options[]",
          "public.s truncate 2 options[]"}},
        {"TRUNCATE b, s RESTART IDENTITY CASCADE",
         {"public.b truncate 0 options[cascade,restart_identity]",
          "public.s truncate 1 options[cascade,restart_identity]"}},
    };
    long long xids[COUNT(steps)];
    itest_ctx ctx;
    itest_path conf, out;
    itest_events events;

    itest_begin(&ctx, "truncate");
    itest_exec(ctx.conn, "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY); "
                         "CREATE TABLE p (id int PRIMARY KEY); "
                         "CREATE TABLE c (id int PRIMARY KEY, pid int REFERENCES p); "
                         "CREATE TABLE s (id serial PRIMARY KEY, v text)");
    conf = jsonl_config(&ctx, "\"public.a\", \"public.b\", \"public.p\", \"public.c\", \"public.s\"");
    itest_create_slot(&ctx, conf.s);
    for (size_t i = 0; i < COUNT(steps); i++)
        xids[i] = run_step(ctx.conn, steps[i].sql);
    /* What the server holds agrees with the lines: everything gone but the restarted s. */
    ck_assert_int_eq(itest_query_int(ctx.conn, "SELECT count(*) FROM a"), 0);
    ck_assert_int_eq(itest_query_int(ctx.conn, "SELECT count(*) FROM c"), 0);
    ck_assert_int_eq(itest_query_int(ctx.conn, "SELECT nextval('s_id_seq')"), 1);
    itest_run_to_now(&ctx, conf.s);

    out = itest_file(&ctx, "out.jsonl");
    events = itest_read_events(out.s);
    assert_steps(&events, steps, xids, COUNT(steps));
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_replica_identities)
{
    static const step steps[] = {
        {"INSERT INTO rd VALUES (1, 'a', 1); INSERT INTO rf VALUES (1, 'a', 1); "
         "INSERT INTO ri VALUES (1, 'c1', 'r1', 'a')",
         {"public.rd insert 0 {id:1,v:a,w:1}", "public.rf insert 1 {id:1,v:a,w:1}",
          "public.ri insert 2 {id:1,code:c1,region:r1,v:a}"}},
        /* DEFAULT: the old key only when the key changed; the key for deletes. */
        {"UPDATE rd SET v = 'b' WHERE id = 1", {"public.rd update 0 {id:1,v:b,w:1}"}},
        {"UPDATE rd SET id = 2, w = NULL WHERE id = 1",
         {"public.rd update 0 {id:2,v:b,w:null} old{id:1}"}},
        {"DELETE FROM rd WHERE id = 2", {"public.rd delete 0 old{id:2}"}},
        /* FULL: the whole old row, always. */
        {"UPDATE rf SET v = 'b' WHERE id = 1",
         {"public.rf update 0 {id:1,v:b,w:1} old{id:1,v:a,w:1}"}},
        {"UPDATE rf SET id = 2, w = NULL WHERE id = 1",
         {"public.rf update 0 {id:2,v:b,w:null} old{id:1,v:b,w:1}"}},
        {"DELETE FROM rf WHERE id = 2", {"public.rf delete 0 old{id:2,v:b,w:null}"}},
        /* USING INDEX (code, region): those columns, when they changed and for deletes. */
        {"UPDATE ri SET v = 'b' WHERE id = 1", {"public.ri update 0 {id:1,code:c1,region:r1,v:b}"}},
        {"UPDATE ri SET id = 5 WHERE id = 1", {"public.ri update 0 {id:5,code:c1,region:r1,v:b}"}},
        {"UPDATE ri SET region = 'r2', v = NULL WHERE id = 5",
         {"public.ri update 0 {id:5,code:c1,region:r2,v:null} old{code:c1,region:r1}"}},
        {"DELETE FROM ri WHERE id = 5", {"public.ri delete 0 old{code:c1,region:r2}"}},
        /* Several rows in one statement keep their order. */
        {"INSERT INTO rd VALUES (3, 'x', 3), (4, 'y', 4); DELETE FROM rd WHERE id IN (3, 4)",
         {"public.rd insert 0 {id:3,v:x,w:3}", "public.rd insert 1 {id:4,v:y,w:4}",
          "public.rd delete 2 old{id:3}", "public.rd delete 3 old{id:4}"}},
    };
    long long xids[COUNT(steps)];
    itest_ctx ctx;
    itest_path conf, out;
    itest_events events;

    itest_begin(&ctx, "identity");
    itest_exec(ctx.conn,
               "CREATE TABLE rd (id int PRIMARY KEY, v text, w int); "
               "CREATE TABLE rf (id int PRIMARY KEY, v text, w int); "
               "ALTER TABLE rf REPLICA IDENTITY FULL; "
               "CREATE TABLE ri (id int PRIMARY KEY, code text NOT NULL, region text NOT NULL, "
               "v text); "
               "CREATE UNIQUE INDEX ri_key ON ri (code, region); "
               "ALTER TABLE ri REPLICA IDENTITY USING INDEX ri_key");
    ck_assert_int_eq(itest_query_int(ctx.conn, "SELECT count(*) FROM pg_class WHERE relname IN "
                                               "('rd', 'rf', 'ri') AND relreplident = "
                                               "CASE relname WHEN 'rd' THEN 'd' WHEN 'rf' THEN "
                                               "'f' ELSE 'i' END"),
                     3);
    conf = jsonl_config(&ctx, "\"public.rd\", \"public.rf\", \"public.ri\"");
    itest_create_slot(&ctx, conf.s);
    for (size_t i = 0; i < COUNT(steps); i++)
        xids[i] = run_step(ctx.conn, steps[i].sql);
    itest_run_to_now(&ctx, conf.s);

    out = itest_file(&ctx, "out.jsonl");
    events = itest_read_events(out.s);
    assert_steps(&events, steps, xids, COUNT(steps));
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

/* The text of member `column` of an event's `old` row; fails when absent or null. */
static const char *old_value(const itest_event *event, const char *column)
{
    const jl_value *v = jl_get(event->old, column);

    ck_assert_msg(v != NULL && v->kind == JL_STRING, "event %s %ld has no old %s", event->op,
                  event->seq, column);
    return v->text;
}

START_TEST(test_unchanged_toast_values)
{
    static const step steps[] = {
        {"INSERT INTO tt SELECT 1, string_agg(md5(random()::text), ''), 1 "
         "FROM generate_series(1, 1000); "
         "INSERT INTO tf SELECT 1, string_agg(md5(random()::text), ''), 1 "
         "FROM generate_series(1, 1000)",
         {"public.tt insert 0 {id:1,big:<32000 bytes>,small:1}",
          "public.tf insert 1 {id:1,big:<32000 bytes>,small:1}"}},
        {"UPDATE tt SET small = 2 WHERE id = 1", {"public.tt update 0 {id:1,small:2} unchanged[big]"}},
        {"UPDATE tt SET small = NULL WHERE id = 1",
         {"public.tt update 0 {id:1,small:null} unchanged[big]"}},
        {"UPDATE tt SET id = 3 WHERE id = 1",
         {"public.tt update 0 {id:3,small:null} unchanged[big] old{id:1}"}},
        {"UPDATE tf SET small = 2 WHERE id = 1",
         {"public.tf update 0 {id:1,small:2} unchanged[big] old{id:1,big:<32000 bytes>,small:1}"}},
        {"DELETE FROM tt WHERE id = 3", {"public.tt delete 0 old{id:3}"}},
        {"DELETE FROM tf WHERE id = 1", {"public.tf delete 0 old{id:1,big:<32000 bytes>,small:2}"}},
    };
    long long xids[COUNT(steps)];
    itest_ctx ctx;
    itest_path conf, out;
    itest_events events;
    char *tt_big = NULL, *tf_big = NULL;

    itest_begin(&ctx, "toast");
    itest_exec(ctx.conn, "CREATE TABLE tt (id int PRIMARY KEY, big text, small int); "
                         "CREATE TABLE tf (id int PRIMARY KEY, big text, small int); "
                         "ALTER TABLE tf REPLICA IDENTITY FULL");
    conf = jsonl_config(&ctx, "\"public.tt\", \"public.tf\"");
    itest_create_slot(&ctx, conf.s);
    for (size_t i = 0; i < COUNT(steps); i++) {
        xids[i] = run_step(ctx.conn, steps[i].sql);
        if (i != 0)
            continue;
        tt_big = itest_query(ctx.conn, "SELECT big FROM tt WHERE id = 1");
        tf_big = itest_query(ctx.conn, "SELECT big FROM tf WHERE id = 1");
        /* Stored out of line, so an update that leaves it alone does not carry it. */
        ck_assert_int_gt(itest_query_int(ctx.conn, "SELECT pg_relation_size(reltoastrelid) "
                                                   "FROM pg_class WHERE relname = 'tt'"),
                         0);
    }
    itest_run_to_now(&ctx, conf.s);

    out = itest_file(&ctx, "out.jsonl");
    events = itest_read_events(out.s);
    assert_steps(&events, steps, xids, COUNT(steps));
    ck_assert_msg(tt_big != NULL && strlen(tt_big) == 32000 && tf_big != NULL,
                  "the server holds no 32000-byte values");
    ck_assert_msg(strcmp(itest_value(&events.event[0], "big"), tt_big) == 0,
                  "the inserted tt.big differs from the server's");
    ck_assert_msg(strcmp(itest_value(&events.event[1], "big"), tf_big) == 0,
                  "the inserted tf.big differs from the server's");
    ck_assert_msg(strcmp(old_value(&events.event[5], "big"), tf_big) == 0,
                  "the old tf.big of the update differs from the server's");
    ck_assert_msg(strcmp(old_value(&events.event[7], "big"), tf_big) == 0,
                  "the old tf.big of the delete differs from the server's");
    free(tt_big);
    free(tf_big);
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("changes");
    TCase *tc = itest_tcase(suite, "changes");

    tcase_add_test(tc, test_truncates);
    tcase_add_test(tc, test_replica_identities);
    tcase_add_test(tc, test_unchanged_toast_values);
    return run_suite(suite) == 0 ? 0 : 1;
}
