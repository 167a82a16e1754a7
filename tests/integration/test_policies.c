/*
 * Failure policies against a plugin that fails permanently on one chosen row (id 3, the second
 * row of a three-row transaction between two healthy ones):
 *   retry, retry_max 3, then skip  every other row delivered, the bad one in the dead-letter file,
 *                                  the slot past it, nothing of it delivered again;
 *   retry, retry_max 2, then stop  exit 2, the slot not past the failed transaction;
 *   on_error stop                  exit 2 at the first RETRY, without retrying;
 *   on_error skip                  a FATAL row skipped at once, the rest delivered;
 *   retry (the default), unlimited the host retries until stopped, acknowledging nothing of the
 *                                  failing transaction; SIGTERM ends it with exit 0, and the
 *                                  next run delivers that transaction again;
 *   retry, FATAL from handle       no retry: straight to `then` (stop: exit 2).
 * After a stop, a run with a plugin that accepts the row delivers the failed transaction again,
 * whole. Every run is watched (watch.h): the slot is sampled throughout, and the delivery
 * invariant of faults.h is checked over the plugin's log of every run.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "itest.h"
#include "watch.h"

#define BADROW "build/tests/fixtures/policy_badrow.so"
#define FLAKY "build/tests/fixtures/flaky.so"

#define RETRIES_SEEN 40 /* attempts the unlimited policy must reach before the test stops it */

static const char all_ids[] = "SELECT id FROM t ORDER BY id";

/* One table, t (id); the rows come in three transactions: (1), (2, 3, 4), (5). */
static void create_table(itest_ctx *ctx)
{
    itest_exec(ctx->conn, "CREATE TABLE t (id int PRIMARY KEY)");
}

static void insert_rows(itest_ctx *ctx)
{
    itest_exec(ctx->conn, "INSERT INTO t VALUES (1)");
    itest_exec(ctx->conn, "INSERT INTO t VALUES (2), (3), (4)");
    itest_exec(ctx->conn, "INSERT INTO t VALUES (5)");
}

/*
 * Begins the test: table t, the configuration cfg of the plugins format gives (the inside of
 * `plugins = ( ... )`), its slot, then the rows. Returns the configuration's path.
 */
static itest_path begin_policy_test(itest_ctx *ctx, const char *test, const char *cfg,
                                    const char *format, ...) __attribute__((format(printf, 4, 5)));

static itest_path begin_policy_test(itest_ctx *ctx, const char *test, const char *cfg,
                                    const char *format, ...)
{
    va_list args;
    char *plugins = NULL;
    itest_path conf;
    int n;

    itest_begin(ctx, test);
    create_table(ctx);
    va_start(args, format);
    n = vasprintf(&plugins, format, args);
    va_end(args);
    ck_assert_msg(n >= 0, "out of memory");
    conf = itest_config(ctx, cfg, "\"public.t\"", 100, "%s", plugins);
    free(plugins);
    itest_create_slot(ctx, conf.s);
    insert_rows(ctx);
    return conf;
}

/* Fails unless the log holds exactly the ids in want, in commit order. */
static void assert_ids(const char *path, const char *const *want, size_t count)
{
    itest_loglines log = itest_read_log(path);

    ck_assert_msg(log.count == count, "%s holds %zu lines, expected %zu", path, log.count, count);
    for (size_t i = 0; i < count; i++) {
        ck_assert_msg(strcmp(log.line[i].id, want[i]) == 0, "%s line %zu is id %s, expected %s",
                      path, i + 1, log.line[i].id, want[i]);
        if (i > 0)
            ck_assert_msg(log.line[i - 1].lsn < log.line[i].lsn ||
                              (log.line[i - 1].lsn == log.line[i].lsn &&
                               log.line[i - 1].seq < log.line[i].seq),
                          "%s: line %zu out of order", path, i + 1);
    }
    itest_loglines_free(&log);
}

/* The commit LSN of the transaction that holds id in a healthy plugin's log. */
static wn_lsn lsn_of(const char *path, const char *id)
{
    itest_loglines log = itest_read_log(path);
    wn_lsn lsn = WN_LSN_INVALID;

    for (size_t i = 0; i < log.count; i++) {
        if (strcmp(log.line[i].id, id) == 0)
            lsn = log.line[i].lsn;
    }
    itest_loglines_free(&log);
    ck_assert_msg(lsn != WN_LSN_INVALID, "%s has no line for id %s", path, id);
    return lsn;
}

static bool stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);
    bool found = err != NULL && strstr(err, needle) != NULL;

    free(err);
    return found;
}

/* The one line of a dead-letter file: every key in order, the row, the plugin and the error. */
static void assert_dead_letter(const char *path, wn_lsn lsn, const char *plugin,
                               const char *error)
{
    static const char *const keys[] = {"lsn", "seq",    "xid",    "commit_time", "table",
                                       "op",  "values", "plugin", "error"};
    itest_lines lines = itest_read_lines(path);
    char err[256];
    char *lsn_text = itest_lsn_text(lsn);
    jl_value *json;
    const jl_value *id;

    ck_assert_msg(lines.count == 1, "%s holds %zu lines, expected 1", path, lines.count);
    json = jl_parse(lines.line[0], lines.length[0], err, sizeof err);
    ck_assert_msg(json != NULL, "%s is not JSON (%s): %s", path, err, lines.line[0]);
    ck_assert_msg(json->kind == JL_OBJECT && json->count == sizeof keys / sizeof keys[0],
                  "%s: unexpected members: %s", path, lines.line[0]);
    for (size_t i = 0; i < json->count; i++)
        ck_assert_msg(strcmp(json->keys[i], keys[i]) == 0, "%s: key %zu is %s, expected %s",
                      path, i, json->keys[i], keys[i]);
    ck_assert_str_eq(jl_get(json, "lsn")->text, lsn_text);
    ck_assert_str_eq(jl_get(json, "seq")->text, "1");
    ck_assert_str_eq(jl_get(json, "table")->text, "public.t");
    ck_assert_str_eq(jl_get(json, "op")->text, "insert");
    id = jl_get(jl_get(json, "values"), "id");
    ck_assert_msg(id != NULL && id->kind == JL_STRING && strcmp(id->text, "3") == 0,
                  "%s: not row 3: %s", path, lines.line[0]);
    ck_assert_str_eq(jl_get(json, "plugin")->text, plugin);
    ck_assert_str_eq(jl_get(json, "error")->text, error);
    jl_free(json);
    free(lsn_text);
    itest_lines_free(&lines);
}

/* Runs the host on conf to the current position, watched; returns its exit code. */
static int run_watched(itest_ctx *ctx, faults_history *history, itest_host *host,
                       const char *conf)
{
    char *endpos = itest_lsn_text(itest_current_lsn(ctx->conn));
    int status = watch_host_run(ctx, history, host, ITEST_ARGS("-c", conf, "--endpos", endpos));

    free(endpos);
    return status;
}

/*
 * After a run that left the transaction of row 3 unacknowledged: a run with a plugin that
 * accepts every row, into the same log, must deliver it again from seq 0, whole, then what
 * followed (rows 3 and 4 are nowhere else, and every run delivers whole transactions from its
 * start). Checks the invariant over every run.
 */
static void recover(itest_ctx *ctx, faults_history *history)
{
    itest_path conf = itest_config(ctx, "good.cfg", "\"public.t\"", 100,
                                   "{ name = \"bad\"; path = \"%s\"; "
                                   "settings = { log = \"bad.log\"; }; }",
                                   itest_root_file(BADROW).s);
    itest_host host;

    run_watched(ctx, history, &host, conf.s);
    itest_assert_exit(&host, 0);
    faults_check_history(history, ctx->conn, all_ids);
}

START_TEST(test_retry_then_skip)
{
    static const char *const all[] = {"1", "2", "3", "4", "5"};
    static const char *const good[] = {"1", "2", "4", "5"};
    itest_ctx ctx;
    itest_host host;
    itest_path conf, bad_log, all_log, dead;
    faults_history history;
    wn_lsn bad_lsn, confirmed;

    conf = begin_policy_test(
        &ctx, "skipafter", "skip.cfg",
        "{ name = \"bad\"; path = \"%s\"; on_error = \"retry\"; retry_max = 3;"
        "  retry_initial_ms = 10; retry_max_ms = 40; then = \"skip\";"
        "  dead_letter = \"dead.jsonl\";"
        "  settings = { bad_id = \"3\"; log = \"bad.log\"; }; },"
        "{ name = \"all\"; path = \"%s\"; settings = { log = \"all.log\"; }; }",
        itest_root_file(BADROW).s, itest_root_file(FLAKY).s);
    bad_log = itest_file(&ctx, "bad.log");
    all_log = itest_file(&ctx, "all.log");
    dead = itest_file(&ctx, "dead.jsonl");
    /* "all" handles each event after "bad" is done with it: its log is the one to check. */
    faults_history_init(&history, all_log.s);
    run_watched(&ctx, &history, &host, conf.s);
    itest_assert_exit(&host, 0);

    assert_ids(bad_log.s, good, 4);
    /* The plugin after the failing one received the bad row too. */
    assert_ids(all_log.s, all, 5);
    bad_lsn = lsn_of(all_log.s, "3");
    assert_dead_letter(dead.s, bad_lsn, "bad", "handle returned RETRY after 4 attempts");
    confirmed = itest_slot_confirmed(ctx.conn, ctx.slot);
    ck_assert_msg(confirmed > bad_lsn, "the slot stayed at %s, before the skipped row's %s",
                  itest_lsn_text(confirmed), itest_lsn_text(bad_lsn));

    /* Acknowledged: a second run delivers nothing of it again. */
    itest_exec(ctx.conn, "INSERT INTO t VALUES (6)");
    run_watched(&ctx, &history, &host, conf.s);
    itest_assert_exit(&host, 0);
    {
        static const char *const after[] = {"1", "2", "4", "5", "6"};
        assert_ids(bad_log.s, after, 5);
    }
    assert_dead_letter(dead.s, bad_lsn, "bad", "handle returned RETRY after 4 attempts");
    faults_check_history(&history, ctx.conn, all_ids);
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

/* Fails unless no slot sample of the history's first run passed lsn. */
static void assert_never_acknowledged(const faults_history *history, wn_lsn lsn)
{
    long end = history->run[0].log_end;

    for (size_t i = 0; i < history->nsamples && history->sample[i].log_size <= end; i++)
        ck_assert_msg(history->sample[i].confirmed <= lsn,
                      "the slot was acknowledged to %s, past the failed transaction at %s "
                      "(sample %zu)",
                      itest_lsn_text(history->sample[i].confirmed), itest_lsn_text(lsn), i + 1);
}

/*
 * Runs the host on conf to the current position, expecting exit 2 with `reason` in stderr (and
 * `absent`, unless NULL, not in it) and the slot never past the transaction of row 3; then
 * recovers it.
 */
static void assert_stops(itest_ctx *ctx, const char *conf, const char *reason,
                         const char *absent)
{
    static const char *const before[] = {"1", "2"};
    itest_host host;
    itest_path log = itest_file(ctx, "bad.log");
    faults_history history;
    wn_lsn confirmed;
    itest_loglines lines;

    faults_history_init(&history, log.s);
    run_watched(ctx, &history, &host, conf);
    itest_assert_failed(&host, 2);
    ck_assert_msg(stderr_has(&host, reason), "stderr does not say \"%s\"", reason);
    ck_assert_msg(absent == NULL || !stderr_has(&host, absent), "stderr says \"%s\"", absent);
    assert_ids(log.s, before, 2);
    lines = itest_read_log(log.s);
    confirmed = itest_slot_confirmed(ctx->conn, ctx->slot);
    ck_assert_msg(confirmed <= lines.line[1].lsn,
                  "the slot was acknowledged to %s, past the failed transaction at %s",
                  itest_lsn_text(confirmed), itest_lsn_text(lines.line[1].lsn));
    assert_never_acknowledged(&history, lines.line[1].lsn);
    itest_loglines_free(&lines);
    recover(ctx, &history);
    faults_history_free(&history);
}

START_TEST(test_retry_then_stop)
{
    itest_ctx ctx;
    itest_path conf;

    conf = begin_policy_test(
        &ctx, "stopafter", "stop.cfg",
        "{ name = \"bad\"; path = \"%s\"; retry_max = 2; retry_initial_ms = 10;"
        "  settings = { bad_id = \"3\"; log = \"bad.log\"; }; }",
        itest_root_file(BADROW).s);
    assert_stops(&ctx, conf.s,
                 "plugin \"bad\" failed: handle returned RETRY after 3 attempts for event ", NULL);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_on_error_stop)
{
    itest_ctx ctx;
    itest_path conf;

    /* RETRY under "stop" stops at once: a retried call would never end here. */
    conf = begin_policy_test(
        &ctx, "stopnow", "stop.cfg",
        "{ name = \"bad\"; path = \"%s\"; on_error = \"stop\";"
        "  settings = { bad_id = \"3\"; log = \"bad.log\"; }; }",
        itest_root_file(BADROW).s);
    assert_stops(&ctx, conf.s, "plugin \"bad\" failed: handle returned RETRY for event ",
                 "failed transiently");
    itest_end(&ctx);
}
END_TEST

START_TEST(test_on_error_skip)
{
    static const char *const good[] = {"1", "2", "4", "5"};
    itest_ctx ctx;
    itest_path conf, log, dead;
    wn_lsn confirmed, bad_lsn;
    itest_host host;
    faults_history history;

    /* The flaky fixture answers FATAL for seq 1: row 3, the only second row of a transaction.
     * "all" after it logs every event once "flaky" is done with it. */
    conf = begin_policy_test(
        &ctx, "skipnow", "skip.cfg",
        "{ name = \"flaky\"; path = \"%s\"; on_error = \"skip\";"
        "  dead_letter = \"flaky-dead.jsonl\";"
        "  settings = { fatal_on_seq = 1; log = \"flaky.log\"; }; },"
        "{ name = \"all\"; path = \"%s\"; settings = { log = \"all.log\"; }; }",
        itest_root_file(FLAKY).s, itest_root_file(FLAKY).s);
    faults_history_init(&history, itest_file(&ctx, "all.log").s);
    run_watched(&ctx, &history, &host, conf.s);
    itest_assert_exit(&host, 0);
    ck_assert_msg(stderr_has(&host, "plugin \"flaky\": skipped event "),
                  "the skip was not logged");
    ck_assert_msg(stderr_has(&host, "(handle returned FATAL); 1 skipped so far, see "),
                  "the skip counter was not logged");

    log = itest_file(&ctx, "flaky.log");
    dead = itest_file(&ctx, "flaky-dead.jsonl");
    assert_ids(log.s, good, 4);
    bad_lsn = lsn_of(log.s, "2"); /* row 3 shares row 2's transaction */
    assert_dead_letter(dead.s, bad_lsn, "flaky", "handle returned FATAL");
    confirmed = itest_slot_confirmed(ctx.conn, ctx.slot);
    ck_assert_msg(confirmed > bad_lsn, "the slot stayed at %s, before the skipped row's %s",
                  itest_lsn_text(confirmed), itest_lsn_text(bad_lsn));
    faults_check_history(&history, ctx.conn, all_ids);
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

/* Waits until the host's stderr holds text, failing if the host exits first. */
static void wait_stderr_running(itest_host *host, const char *text)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    while (!stderr_has(host, text)) {
        ck_assert_msg(itest_host_running(host), "walnotify exited (%d) before saying \"%s\"",
                      host->status, text);
        ck_assert_msg(!itest_expired(&deadline), "walnotify never said \"%s\"", text);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

START_TEST(test_retry_unlimited_until_stopped)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log;
    itest_loglines lines;
    faults_history history;
    watch *w;
    char attempt[64];

    /* on_error and retry_max left at their defaults: retry, without limit. */
    conf = begin_policy_test(
        &ctx, "retryforever", "forever.cfg",
        "{ name = \"bad\"; path = \"%s\"; retry_initial_ms = 10;"
        "  retry_max_ms = 40; settings = { bad_id = \"3\"; log = \"bad.log\"; }; }",
        itest_root_file(BADROW).s);
    log = itest_file(&ctx, "bad.log");
    faults_history_init(&history, log.s);
    w = watch_host_start(&ctx, &history, &host, ITEST_ARGS("-c", conf.s));
    snprintf(attempt, sizeof attempt, "handle failed transiently (attempt %d)", RETRIES_SEEN);
    wait_stderr_running(&host, attempt);
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    watch_stop(w);
    faults_run_end(&history, false);
    ck_assert_msg(stderr_has(&host, "received SIGTERM"), "the host did not see the stop");
    {
        static const char *const before[] = {"1", "2"};
        assert_ids(log.s, before, 2);
    }
    lines = itest_read_log(log.s);
    assert_never_acknowledged(&history, lines.line[1].lsn);
    itest_loglines_free(&lines);
    recover(&ctx, &history);
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_retry_fatal_goes_to_then)
{
    itest_ctx ctx;
    itest_path conf;

    /* FATAL under "retry": the retries left are not spent; `then` is applied at once. */
    conf = begin_policy_test(
        &ctx, "retryfatal", "fatal.cfg",
        "{ name = \"bad\"; path = \"%s\"; on_error = \"retry\"; retry_max = 5;"
        "  retry_initial_ms = 10; then = \"stop\";"
        "  settings = { bad_id = \"3\"; answer = \"fatal\"; log = \"bad.log\"; }; }",
        itest_root_file(BADROW).s);
    assert_stops(&ctx, conf.s,
                 "plugin \"bad\" failed: handle returned FATAL for event ",
                 "failed transiently");
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("policies");
    TCase *tc = itest_tcase(suite, "policies");

    tcase_add_test(tc, test_retry_then_skip);
    tcase_add_test(tc, test_retry_then_stop);
    tcase_add_test(tc, test_on_error_stop);
    tcase_add_test(tc, test_on_error_skip);
    tcase_add_test(tc, test_retry_unlimited_until_stopped);
    tcase_add_test(tc, test_retry_fatal_goes_to_then);
    return run_suite(suite) == 0 ? 0 : 1;
}
