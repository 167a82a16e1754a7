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
 *   requester lost acknowledged;
 *   many failures named late, more than 32 (what walnotify once kept) before the status interval
 *   acknowledges anything: one bad row per transaction in many small transactions, and many
 *   refused parts of one large transaction (named from commit; from handle too when
 *   WN_LATEFAIL_FROM_HANDLE is set): every named event is skipped exactly once, every other one
 *   delivered, exit 0, bounded memory; and the same with the webhook plugin, its receiver
 *   refusing (400) every part holding a bad row (a few parts: each refused part's one
 *   dead-letter line per event is what it checks). WN_LATEFAIL_ROWS (340),
 *   WN_LATEFAIL_BAD_EVERY (10: ids that are multiples of it are refused), WN_LATEFAIL_BIG_ROWS
 *   (1700), WN_LATEFAIL_PARTS (34) and WN_LATEFAIL_HOOK_PARTS (6) change their sizes: make
 *   check-faults runs them larger.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "hookserver.h"
#include "itest.h"
#include "jline.h"

#define NAMER "build/tests/fixtures/namer.so"
#define FLAKY "build/tests/fixtures/flaky.so"
#define WEBHOOK "build/plugins/webhook.so"
#define HOOK_EVERY 20 /* the webhook test: every 20th row is one the receiver refuses */
#define FAILED_ID "6" /* seq 4 of the 10-row transaction (ids 2 to 11) */
#define PART_SIZE 5    /* the large-transaction test: events in a refused part */
#define LONG_STATUS_MS 20000 /* no acknowledgement from the status interval while they run */
#define WN_FAILURES_OLD_MAX 32 /* the ranges walnotify once kept, at most, before stopping */
#define PEAK_RSS_LIMIT_KB (100L * 1024) /* generous: what is named takes a few kB */

/* A configuration with a quick status interval and quick reconnections (a rewind ends the
 * stream, and the walsender may hold the slot a moment longer). policy is the inside of the
 * namer's block after its settings, e.g. `on_error = "skip"; dead_letter = "dead.jsonl";`. */
static itest_path write_config_every(itest_ctx *ctx, int status_interval_ms,
                                     const char *namer_settings, const char *policy)
{
    return itest_config_extra(
        ctx, "late.cfg", "\"public.t\"", status_interval_ms,
        "reconnect_initial_ms = 50; reconnect_max_ms = 500;",
        "  { name = \"namer\"; path = \"%s\"; retry_initial_ms = 10; retry_max_ms = 40; "
        "settings = { log = \"namer.log\"; %s }; %s },\n"
        "  { name = \"healthy\"; path = \"%s\"; settings = { log = \"healthy.log\"; }; }",
        itest_root_file(NAMER).s, namer_settings, policy, itest_root_file(FLAKY).s);
}

static itest_path write_config(itest_ctx *ctx, const char *namer_settings, const char *policy)
{
    return write_config_every(ctx, 200, namer_settings, policy);
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

/* ---- many failures named late ----------------------------------------------------------- */

static long env_long(const char *name, long fallback)
{
    const char *text = getenv(name);
    long value = text != NULL ? strtol(text, NULL, 10) : 0;

    return value > 0 ? value : fallback;
}

/* How many times each id from 1 to rows appears in the log: [rows + 1], to free. */
static unsigned *count_ids(const char *path, long rows)
{
    itest_loglines log = itest_read_log(path);
    unsigned *seen = calloc((size_t)rows + 1, sizeof *seen);

    ck_assert_ptr_nonnull(seen);
    for (size_t i = 0; i < log.count; i++) {
        long id = strtol(log.line[i].id, NULL, 10);

        ck_assert_msg(id >= 1 && id <= rows, "%s: unexpected id %s", path, log.line[i].id);
        seen[id]++;
    }
    itest_loglines_free(&log);
    return seen;
}

/* How many dead-letter lines each id from 1 to rows has: [rows + 1], to free. */
static unsigned *count_dead_letters(itest_ctx *ctx, long rows, const char *error_part)
{
    itest_lines lines = itest_read_lines(itest_file(ctx, "dead.jsonl").s);
    unsigned *seen = calloc((size_t)rows + 1, sizeof *seen);
    char err[256];

    ck_assert_ptr_nonnull(seen);
    for (size_t i = 0; i < lines.count; i++) {
        jl_value *json = jl_parse(lines.line[i], lines.length[i], err, sizeof err);
        const jl_value *id, *error;
        long n;

        ck_assert_msg(json != NULL, "a dead-letter line is not JSON (%s): %s", err,
                      lines.line[i]);
        id = jl_get(jl_get(json, "values"), "id");
        error = jl_get(json, "error");
        ck_assert_msg(id != NULL && error != NULL && strstr(error->text, error_part) != NULL,
                      "a dead-letter line without an id or \"%s\": %s", error_part,
                      lines.line[i]);
        n = strtol(id->text, NULL, 10);
        ck_assert_msg(n >= 1 && n <= rows, "a dead-letter line for id %s", id->text);
        seen[n]++;
        jl_free(json);
    }
    itest_lines_free(&lines);
    return seen;
}

/* Which rows the namer refuses: ids that are multiples of `every` (parts 0), or the parts of
 * one large transaction (seq k * every to k * every + PART_SIZE - 1, k < parts). */
typedef struct refusal {
    long every;
    long parts;
    bool one_per_commit; /* parts named at commit, one per delivery: part k is handled in the
                            first k + 1 deliveries */
} refusal;

/* How many times the namer handles a refused id before naming it; 0 for any other id. */
static unsigned refused_handled(const refusal *r, long id)
{
    long seq = id - 1;

    if (r->parts == 0)
        return id % r->every == 0;
    if (seq >= r->parts * r->every || seq % r->every >= PART_SIZE)
        return 0;
    return r->one_per_commit ? (unsigned)(seq / r->every + 1) : 1;
}

/*
 * Runs the host to end, then checks: exit 0, every id from 1 to rows either refused (exactly one
 * dead-letter line; handled until the plugin named it, and never after) or not (no dead-letter
 * line, handled), the healthy plugin received them all, the slot passed the end, and the host's
 * peak RSS stayed under the bound.
 */
static void run_and_check_each_skipped_once(itest_ctx *ctx, const char *conf, wn_lsn end,
                                            long rows, const refusal *r, const char *error_part)
{
    itest_host host;
    char *end_text = itest_lsn_text(end);
    unsigned *dead, *namer, *healthy;
    long maxrss_kb = 0, refused = 0;

    faults_host_run_rusage(ctx, &host, ITEST_ARGS("-c", conf, "--endpos", end_text),
                           ITEST_RUN_S, &maxrss_kb);
    free(end_text);
    fprintf(stderr, "latefail: %ld rows, host peak RSS %ld kB\n", rows, maxrss_kb);
    itest_assert_exit(&host, 0);
    dead = count_dead_letters(ctx, rows, error_part);
    namer = count_ids(itest_file(ctx, "namer.log").s, rows);
    healthy = count_ids(itest_file(ctx, "healthy.log").s, rows);
    for (long id = 1; id <= rows; id++) {
        unsigned handled = refused_handled(r, id);
        bool bad = handled > 0;

        refused += bad;
        ck_assert_msg(dead[id] == (bad ? 1u : 0u), "id %ld has %u dead-letter lines, expected %d",
                      id, dead[id], bad ? 1 : 0);
        ck_assert_msg(bad ? namer[id] == handled : namer[id] >= 1,
                      "the namer handled id %ld %u times, expected %s%u", id, namer[id],
                      bad ? "" : "at least ", bad ? handled : 1);
        ck_assert_msg(healthy[id] >= 1, "the healthy plugin never received id %ld", id);
    }
    ck_assert_int_gt(refused, WN_FAILURES_OLD_MAX);
    ck_assert_msg(itest_slot_confirmed(ctx->conn, ctx->slot) >= end,
                  "the slot was not acknowledged to the end");
    ck_assert_msg(maxrss_kb < PEAK_RSS_LIMIT_KB, "walnotify's peak RSS was %ld kB, over %ld kB",
                  maxrss_kb, PEAK_RSS_LIMIT_KB);
    free(dead);
    free(namer);
    free(healthy);
}

/* One bad row per transaction, in many single-row transactions, named from commit. No status
 * interval passes meanwhile: only the prompt acknowledgement of what the policy settled keeps
 * the named ranges few (and each rewind short). */
START_TEST(many_bad_rows_are_each_skipped_once)
{
    itest_ctx ctx;
    long rows = env_long("WN_LATEFAIL_ROWS", 340);
    long bad_every = env_long("WN_LATEFAIL_BAD_EVERY", 10);
    char settings[64];
    itest_path conf;

    snprintf(settings, sizeof settings, "bad_every = %ld;", bad_every);
    itest_begin(&ctx, "latemany");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = write_config_every(&ctx, LONG_STATUS_MS, settings,
                              "on_error = \"skip\"; dead_letter = \"dead.jsonl\";");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn,
               "DO $$ BEGIN FOR i IN 1..%ld LOOP INSERT INTO t VALUES (i); COMMIT; END LOOP; "
               "END $$",
               rows);
    refusal r = {.every = bad_every};

    run_and_check_each_skipped_once(&ctx, conf.s, itest_current_lsn(ctx.conn), rows, &r,
                                    "commit named it failed (transient)");
    itest_end(&ctx);
}
END_TEST

/* One large transaction whose parts a downstream refuses for good, one part per delivery, as
 * the webhook plugin names them: from commit (_i 0), or from handle (_i 1, make check-faults). */
START_TEST(refused_parts_of_a_large_transaction_are_each_skipped_once)
{
    itest_ctx ctx;
    long rows = env_long("WN_LATEFAIL_BIG_ROWS", 1700);
    long parts = env_long("WN_LATEFAIL_PARTS", 34);
    long every = rows / parts;
    const char *from = _i == 0 ? "commit" : "handle";
    char settings[160], error_part[64];
    itest_path conf;

    ck_assert_int_ge(every, PART_SIZE);
    snprintf(settings, sizeof settings,
             "from = \"%s\"; failure = \"permanent\"; part_size = %d; part_every = %ld; "
             "parts = %ld;",
             from, PART_SIZE, every, parts);
    snprintf(error_part, sizeof error_part, "%s named it failed (permanent)", from);
    itest_begin(&ctx, _i == 0 ? "lateparts" : "latepartsh");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = write_config_every(&ctx, LONG_STATUS_MS, settings,
                              "on_error = \"retry\"; then = \"skip\"; "
                              "dead_letter = \"dead.jsonl\";");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t SELECT generate_series(1, %ld)", rows);
    refusal r = {.every = every, .parts = parts, .one_per_commit = _i == 0};

    run_and_check_each_skipped_once(&ctx, conf.s, itest_current_lsn(ctx.conn), rows, &r,
                                    error_part);
    itest_end(&ctx);
}
END_TEST

/* The ids of every request the receiver answered 400: [rows + 1] counts, to free. */
static unsigned *refused_ids(const hook_server *server, long rows, size_t *nrefused)
{
    hook_requests reqs = hook_server_requests(server);
    unsigned *refused = calloc((size_t)rows + 1, sizeof *refused);

    ck_assert_ptr_nonnull(refused);
    *nrefused = 0;
    for (size_t i = 0; i < reqs.count; i++) {
        const jl_value *ids = jl_get(reqs.request[i], "ids");

        if (strcmp(hook_field(reqs.request[i], "status"), "400") != 0 || ids == NULL)
            continue;
        (*nrefused)++;
        for (size_t k = 0; k < ids->count; k++) {
            long id = strtol(ids->items[k]->text, NULL, 10);

            ck_assert_msg(id >= 1 && id <= rows, "a refused request holds id %s",
                          ids->items[k]->text);
            refused[id]++;
        }
    }
    hook_requests_free(&reqs);
    return refused;
}

/* How many times the receiver answered 2xx for each id: [rows + 1], to free. */
static unsigned *received_ids(const hook_server *server, long rows)
{
    char *ids = hook_server_ids(server, false);
    unsigned *received = calloc((size_t)rows + 1, sizeof *received);
    char *next = ids;

    ck_assert_ptr_nonnull(received);
    for (;;) {
        char *end;
        long id = strtol(next, &end, 10);

        if (end == next)
            break;
        ck_assert_msg(id >= 1 && id <= rows, "the receiver has id %ld", id);
        received[id]++;
        next = end;
    }
    free(ids);
    return received;
}

/* A webhook receiver refuses every request holding a multiple of HOOK_EVERY, in one large
 * transaction sent in small parts: each refused part is named failed by the webhook plugin,
 * skipped once, and every other row reaches the receiver. */
START_TEST(webhook_refused_parts_are_each_skipped_once)
{
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    long bad = env_long("WN_LATEFAIL_HOOK_PARTS", 6), rows = bad * HOOK_EVERY;
    size_t reject_size = (size_t)bad * 12 + 1, used = 0, nrefused;
    char *reject = malloc(reject_size), *end_text;
    unsigned *refused, *received, *dead;
    itest_path conf;

    ck_assert_ptr_nonnull(reject);
    reject[0] = '\0';
    for (long id = HOOK_EVERY; id <= rows; id += HOOK_EVERY)
        used += (size_t)snprintf(reject + used, reject_size - used, "%s%ld", used ? "," : "", id);
    itest_begin(&ctx, "latehook");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    hook_server_start(&ctx, &server, "hook", false, ITEST_ARGS("--reject", reject));
    free(reject);
    conf = itest_config_extra(
        &ctx, "hook.cfg", "\"public.t\"", LONG_STATUS_MS,
        "reconnect_initial_ms = 50; reconnect_max_ms = 500;",
        "{ name = \"hook\"; path = \"%s\"; retry_initial_ms = 10; retry_max_ms = 100; "
        "on_error = \"skip\"; dead_letter = \"dead.jsonl\"; "
        "settings = { url = \"%s\"; max_batch_bytes = 2048; }; }",
        itest_root_file(WEBHOOK).s, server.url);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t SELECT generate_series(1, %ld)", rows);
    end_text = itest_lsn_text(itest_current_lsn(ctx.conn));
    itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", end_text);
    free(end_text);
    itest_assert_exit(&host, 0);

    refused = refused_ids(&server, rows, &nrefused);
    received = received_ids(&server, rows);
    dead = count_dead_letters(&ctx, rows, "named it failed (permanent)");
    ck_assert_uint_eq(nrefused, (size_t)bad);
    for (long id = 1; id <= rows; id++) {
        ck_assert_msg(id % HOOK_EVERY != 0 || refused[id] == 1,
                      "id %ld is refused, but was in %u refused requests", id, refused[id]);
        ck_assert_msg(dead[id] == refused[id], "id %ld: %u dead-letter lines, %u refusals", id,
                      dead[id], refused[id]);
        ck_assert_msg(refused[id] > 0 ? received[id] == 0 : received[id] >= 1,
                      "id %ld was refused %u times and received %u times", id, refused[id],
                      received[id]);
    }
    free(refused);
    free(received);
    free(dead);
    hook_server_stop(&server);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("latefail");
    TCase *tc = itest_tcase(suite, "latefail");
    TCase *many = itest_tcase(suite, "many");

    tcase_add_test(tc, skip_writes_the_named_event_once);
    tcase_add_test(tc, retry_twice_then_skip);
    tcase_add_test(tc, retry_twice_then_stop);
    tcase_add_test(tc, stop_acknowledges_nothing_of_the_transaction);
    tcase_add_test(tc, permanent_from_flush_skips_without_retry);
    tcase_add_test(tc, naming_an_acknowledged_event_is_fatal);
    tcase_add_test(tc, stop_during_a_rewind_backoff);
    tcase_add_test(many, many_bad_rows_are_each_skipped_once);
    /* Named from handle too when WN_LATEFAIL_FROM_HANDLE is set (make check-faults). */
    tcase_add_loop_test(many, refused_parts_of_a_large_transaction_are_each_skipped_once, 0,
                        getenv("WN_LATEFAIL_FROM_HANDLE") != NULL ? 2 : 1);
    tcase_add_test(many, webhook_refused_parts_are_each_skipped_once);
    return run_suite(suite) == 0 ? 0 : 1;
}
