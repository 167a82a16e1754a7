/*
 * Failures named late (ABI 1.1 fail_events) against the real server. The namer fixture names
 * one event (seq 4, id 6) of a 10-row transaction as failed from its commit, as a batching sink
 * does when the downstream refuses one row of a batch; a healthy plugin listed beside it
 * receives everything. The transaction lies between two single-row ones.
 *
 *   on_error skip                   the event is in the dead-letter file once, written from
 *                                   its redelivery; the other nine are delivered again, and the
 *                                   slot passes the transaction;
 *   retry, retry_max 2, then skip   three attempts (handle called three times for that event),
 *                                   then the dead-letter file;
 *   retry, retry_max 2, then stop   three attempts, then exit 2;
 *   on_error stop                   exit 2, nothing of that transaction acknowledged;
 *   named from flush, permanent     straight to the dead-letter file, no second attempt;
 *   an event of an earlier, acknowledged transaction named: exit 2, saying it is a bug in the
 *   plugin;
 *   a stop (SIGTERM) during a rewind's long backoff: exit 0 at once, nothing of what the
 *   requester lost acknowledged.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "itest.h"

#define NAMER "build/tests/fixtures/namer.so"
#define FLAKY "build/tests/fixtures/flaky.so"
#define FAILED_ID "6" /* seq 4 of the 10-row transaction (ids 2 to 11) */

/* A configuration with a quick status interval and quick reconnections (a rewind ends the
 * stream, and the walsender may hold the slot a moment longer). policy is the inside of the
 * namer's block after its settings, e.g. `on_error = "skip"; dead_letter = "dead.jsonl";`. */
static itest_path write_config(itest_ctx *ctx, const char *namer_settings, const char *policy)
{
    return itest_config_extra(
        ctx, "late.cfg", "\"public.t\"", 200, "reconnect_initial_ms = 50; reconnect_max_ms = 500;",
        "  { name = \"namer\"; path = \"%s\"; retry_initial_ms = 10; retry_max_ms = 40; "
        "settings = { log = \"namer.log\"; %s }; %s },\n"
        "  { name = \"healthy\"; path = \"%s\"; settings = { log = \"healthy.log\"; }; }",
        itest_root_file(NAMER).s, namer_settings, policy, itest_root_file(FLAKY).s);
}

/* id 1; ids 2 to 11 (seq 0 to 9); id 12. Returns the end of the WAL after them. */
static wn_lsn insert_rows(itest_ctx *ctx)
{
    itest_exec(ctx->conn, "INSERT INTO t VALUES (1)");
    itest_exec(ctx->conn, "INSERT INTO t SELECT generate_series(2, 11)");
    itest_exec(ctx->conn, "INSERT INTO t VALUES (12)");
    return itest_current_lsn(ctx->conn);
}

static itest_path prepare(itest_ctx *ctx, const char *name, const char *namer_settings,
                          const char *policy)
{
    itest_path conf;

    itest_begin(ctx, name);
    itest_exec(ctx->conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = write_config(ctx, namer_settings, policy);
    itest_create_slot(ctx, conf.s);
    return conf;
}

static int run_to(itest_ctx *ctx, itest_host *host, const char *conf, wn_lsn end)
{
    char *end_text = itest_lsn_text(end);
    int status = itest_host_run(ctx, host, "-c", conf, "--endpos", end_text);

    free(end_text);
    return status;
}

/* How many lines of the log are for id. */
static size_t count_id(const char *path, const char *id)
{
    itest_loglines log = itest_read_log(path);
    size_t n = 0;

    for (size_t i = 0; i < log.count; i++)
        n += strcmp(log.line[i].id, id) == 0;
    itest_loglines_free(&log);
    return n;
}

/* Every id from 1 to 12 but `except` appears in the log; the first deliveries in commit
 * order. */
static void assert_delivered(const char *path, const char *except)
{
    itest_loglines log = itest_read_log(path);
    wn_lsn last_lsn = 0;
    long last_seq = -1;
    bool seen[13] = {false};

    for (size_t i = 0; i < log.count; i++) {
        const itest_logline *l = &log.line[i];
        long id = strtol(l->id, NULL, 10);

        ck_assert_msg(id >= 1 && id <= 12, "%s: unexpected id %s", path, l->id);
        if (seen[id])
            continue;
        seen[id] = true;
        ck_assert_msg(l->lsn > last_lsn || (l->lsn == last_lsn && l->seq > last_seq),
                      "%s: first delivery of id %ld out of commit order", path, id);
        last_lsn = l->lsn;
        last_seq = l->seq;
    }
    for (long id = 1; id <= 12; id++) {
        bool skipped = except != NULL && id == strtol(except, NULL, 10);

        ck_assert_msg(seen[id] == !skipped, "%s: id %ld %s", path, id,
                      skipped ? "was handled after all" : "was never delivered");
    }
    itest_loglines_free(&log);
}

/* The dead-letter file holds exactly one line, for the failed event, with this error. */
static void assert_dead_letter(itest_ctx *ctx, const char *error_part)
{
    itest_path dead = itest_file(ctx, "dead.jsonl");
    itest_lines lines = itest_read_lines(dead.s);
    const jl_value *id, *seq, *error, *plugin;
    jl_value *json;
    char err[256];

    ck_assert_msg(lines.count == 1, "the dead-letter file holds %zu lines, expected 1",
                  lines.count);
    json = jl_parse(lines.line[0], lines.length[0], err, sizeof err);
    ck_assert_msg(json != NULL, "the dead-letter line is not JSON (%s): %s", err, lines.line[0]);
    seq = jl_get(json, "seq");
    id = jl_get(jl_get(json, "values"), "id");
    error = jl_get(json, "error");
    plugin = jl_get(json, "plugin");
    ck_assert_msg(seq != NULL && strcmp(seq->text, "4") == 0 && id != NULL &&
                      strcmp(id->text, FAILED_ID) == 0 && plugin != NULL &&
                      strcmp(plugin->text, "namer") == 0,
                  "not the namer's event seq 4, id 6: %s", lines.line[0]);
    ck_assert_msg(error != NULL && strstr(error->text, error_part) != NULL &&
                      strstr(error->text, "the downstream refused the row with id 6") != NULL,
                  "the dead-letter error does not hold \"%s\" and the plugin's reason: %s",
                  error_part, lines.line[0]);
    jl_free(json);
    itest_lines_free(&lines);
}

static bool stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);
    bool found = err != NULL && strstr(err, needle) != NULL;

    free(err);
    return found;
}

START_TEST(skip_writes_the_named_event_once)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf = prepare(&ctx, "lateskip", "fail_seq = 4;",
                              "on_error = \"skip\"; dead_letter = \"dead.jsonl\";");
    wn_lsn end = insert_rows(&ctx);

    run_to(&ctx, &host, conf.s, end);
    itest_assert_exit(&host, 0);
    assert_dead_letter(&ctx, "commit named it failed (transient)");
    /* Handled once, named, then skipped on redelivery; the nine others came again. */
    ck_assert_uint_eq(count_id(itest_file(&ctx, "namer.log").s, FAILED_ID), 1);
    assert_delivered(itest_file(&ctx, "namer.log").s, NULL);
    ck_assert_uint_eq(count_id(itest_file(&ctx, "namer.log").s, "7"), 2);
    assert_delivered(itest_file(&ctx, "healthy.log").s, NULL);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) >= end,
                  "the slot was not acknowledged to the end");
    ck_assert(stderr_has(&host, "named events as failed from commit"));
    itest_end(&ctx);
}
END_TEST

START_TEST(retry_twice_then_skip)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf = prepare(&ctx, "lateretry", "fail_seq = 4;",
                              "on_error = \"retry\"; retry_max = 2; then = \"skip\"; "
                              "dead_letter = \"dead.jsonl\";");
    wn_lsn end = insert_rows(&ctx);

    run_to(&ctx, &host, conf.s, end);
    itest_assert_exit(&host, 0);
    ck_assert_uint_eq(count_id(itest_file(&ctx, "namer.log").s, FAILED_ID), 3);
    assert_dead_letter(&ctx, "commit named it failed (transient) after 3 attempts");
    assert_delivered(itest_file(&ctx, "healthy.log").s, NULL);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) >= end,
                  "the slot was not acknowledged to the end");
    itest_end(&ctx);
}
END_TEST

START_TEST(retry_twice_then_stop)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf = prepare(&ctx, "latestop2", "fail_seq = 4;",
                              "on_error = \"retry\"; retry_max = 2; then = \"stop\";");
    wn_lsn end = insert_rows(&ctx);
    itest_loglines log;

    ck_assert_int_eq(run_to(&ctx, &host, conf.s, end), 2);
    itest_assert_reason(&host);
    ck_assert_uint_eq(count_id(itest_file(&ctx, "namer.log").s, FAILED_ID), 3);
    ck_assert(stderr_has(&host, "commit named it failed (transient) after 3 attempts"));
    log = itest_read_log(itest_file(&ctx, "namer.log").s);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) <= log.line[1].lsn,
                  "the slot passed the failed transaction");
    itest_loglines_free(&log);
    itest_end(&ctx);
}
END_TEST

START_TEST(stop_acknowledges_nothing_of_the_transaction)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf = prepare(&ctx, "latestop", "fail_seq = 4;", "on_error = \"stop\";");
    wn_lsn end = insert_rows(&ctx);
    itest_loglines log;
    wn_lsn failed_lsn = WN_LSN_INVALID;

    ck_assert_int_eq(run_to(&ctx, &host, conf.s, end), 2);
    itest_assert_reason(&host);
    ck_assert(stderr_has(&host, "plugin \"namer\" failed: commit named it failed (transient): "
                                "the downstream refused the row with id 6, for event"));
    log = itest_read_log(itest_file(&ctx, "namer.log").s);
    for (size_t i = 0; i < log.count; i++)
        if (strcmp(log.line[i].id, FAILED_ID) == 0)
            failed_lsn = log.line[i].lsn;
    itest_loglines_free(&log);
    ck_assert_msg(failed_lsn != WN_LSN_INVALID, "the namer never saw id 6");
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) <= failed_lsn,
                  "the slot passed the transaction whose event failed");
    /* The redelivery stopped at the named event: it was handled once, the rest never again. */
    ck_assert_uint_eq(count_id(itest_file(&ctx, "namer.log").s, FAILED_ID), 1);
    itest_end(&ctx);
}
END_TEST

START_TEST(permanent_from_flush_skips_without_retry)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf =
        prepare(&ctx, "lateflush", "fail_seq = 4; from = \"flush\"; failure = \"permanent\";",
                "on_error = \"retry\"; retry_max = 5; then = \"skip\"; "
                "dead_letter = \"dead.jsonl\";");
    wn_lsn end = insert_rows(&ctx);

    run_to(&ctx, &host, conf.s, end);
    itest_assert_exit(&host, 0);
    ck_assert_uint_eq(count_id(itest_file(&ctx, "namer.log").s, FAILED_ID), 1);
    assert_dead_letter(&ctx, "flush named it failed (permanent)");
    assert_delivered(itest_file(&ctx, "healthy.log").s, NULL);
    itest_end(&ctx);
}
END_TEST

START_TEST(naming_an_acknowledged_event_is_fatal)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf = prepare(&ctx, "lateacked", "name_first = true;", "");
    wn_lsn first;

    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    first = itest_current_lsn(ctx.conn);
    /* Acknowledged: the slot passed it (so the host published it before). */
    itest_wait_query_at_least(ctx.conn, 1,
                              "SELECT (confirmed_flush_lsn >= '%X/%X')::int FROM "
                              "pg_replication_slots WHERE slot_name = '%s'",
                              (unsigned)(first >> 32), (unsigned)first, ctx.slot);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2)");
    ck_assert_int_eq(itest_host_wait(&host, ITEST_RUN_S), 2);
    itest_assert_reason(&host);
    ck_assert(stderr_has(&host, "was acknowledged already"));
    ck_assert(stderr_has(&host, "a bug in the plugin"));
    ck_assert(stderr_has(&host, "fail_events from commit named"));
    itest_end(&ctx);
}
END_TEST

START_TEST(stop_during_a_rewind_backoff)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    itest_deadline deadline;
    itest_loglines log;
    char *err;

    itest_begin(&ctx, "latesigterm");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = itest_config(&ctx, "rewind.cfg", "\"public.t\"", 200,
                        "{ name = \"requester\"; path = \"%s\"; retry_initial_ms = 600000; "
                        "retry_max_ms = 600000; settings = { early = 1; max_rewinds = 1; "
                        "log = \"requester.log\"; }; }",
                        itest_root_file("build/tests/fixtures/rewinder.so").s);
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1), (2)");
    deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    for (;;) {
        bool asked;

        err = itest_host_stderr(&host);
        asked = err != NULL && strstr(err, "in 600000 ms") != NULL;
        free(err);
        if (asked)
            break;
        ck_assert_msg(!itest_expired(&deadline), "the requester never asked for a rewind");
        itest_sleep_ms(ITEST_POLL_MS);
    }
    /* The backoff is ten minutes: a stop must not wait for it. */
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    log = itest_read_log(itest_file(&ctx, "requester.log").s);
    ck_assert_uint_ge(log.count, 1);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) <= log.line[0].lsn,
                  "the slot passed the transaction the requester lost");
    itest_loglines_free(&log);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("latefail");
    TCase *tc = itest_tcase(suite, "latefail");

    tcase_add_test(tc, skip_writes_the_named_event_once);
    tcase_add_test(tc, retry_twice_then_skip);
    tcase_add_test(tc, retry_twice_then_stop);
    tcase_add_test(tc, stop_acknowledges_nothing_of_the_transaction);
    tcase_add_test(tc, permanent_from_flush_skips_without_retry);
    tcase_add_test(tc, naming_an_acknowledged_event_is_fatal);
    tcase_add_test(tc, stop_during_a_rewind_backoff);
    return run_suite(suite) == 0 ? 0 : 1;
}
