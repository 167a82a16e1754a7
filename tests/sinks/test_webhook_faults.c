/*
 * The webhook plugin's longer runs (`make check-sinks`), against the real PostgreSQL and the
 * loopback receiver (tests/webhook/server.py):
 *   random answers and kills   a writer commits small and large transactions (the large ones go
 *                              as many parts) while the receiver answers 500, 429 or nothing at
 *                              random and walnotify is killed (-9) at random points, often in
 *                              the middle of a transaction's parts; the delivery invariant
 *                              holds over every run: every row received, first receipts in
 *                              commit order, the slot never past what the receiver answered 2xx;
 *   a refused transaction      a 400 for a transaction names its events as failed
 *                              (walnotify_host.fail_events): on_error = "skip" puts them in the
 *                              dead-letter file and delivers the rest; "stop" exits 2 without
 *                              acknowledging them;
 *   a part cut mid-request     the receiver closes the connection while a part goes out: the
 *                              transaction comes again from its first part (walnotify_host.rewind),
 *                              with the same Idempotency-Keys.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "hookserver.h"
#include "itest.h"

#define WEBHOOK "build/plugins/webhook.so"
#define KILLS 8
#define BIG_ROWS 3000
#define BIG_EVERY 12
#define KILL_AFTER_MIN_MS 200
#define KILL_AFTER_MAX_MS 1500
#define SCRIPT_LENGTH 300 /* scripted answers; every later request gets 200 */
#define FAULT_PERCENT 20
/* A stall outlasts the timeout; the timeout is generous, so that a receiver slowed down by a busy
 * machine is not mistaken for a stalled one (it would take the request and be sent it again). */
#define TIMEOUT_MS "1500"
#define STALL_S "2.5"

static const char ids_sql[] = "SELECT id FROM t ORDER BY id";

static itest_path hook_config(itest_ctx *ctx, const char *name, const char *url, const char *block,
                              const char *settings)
{
    return itest_config(ctx, name, "\"public.t\"", 200,
                        "{ name = \"hook\"; path = \"%s\"; retry_initial_ms = 10;"
                        "  retry_max_ms = 100; %s"
                        "  settings = { url = \"%s\"; %s }; }",
                        itest_root_file(WEBHOOK).s, block, url, settings);
}

static void sample_while_running(faults_history *history, itest_ctx *ctx, itest_host *host, int ms)
{
    itest_deadline deadline = itest_deadline_in(ms);

    while (!itest_expired(&deadline)) {
        faults_sample_slot(history, ctx->conn, ctx->slot);
        ck_assert_msg(itest_host_running(host), "walnotify stopped by itself (exit %d)",
                      host->status);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* The receiver's answers: FAULT_PERCENT of them 500, 429 (Retry-After 1) or a stall. */
static char *random_script(faults_rng *rng)
{
    static const char *const faults[] = {"500", "500", "429:1", "500", "stall"};
    char *script = calloc(SCRIPT_LENGTH, 8);
    size_t used = 0;

    ck_assert_msg(script != NULL, "out of memory");
    for (int i = 0; i < SCRIPT_LENGTH; i++) {
        const char *action = faults_rng_range(rng, 1, 100) <= FAULT_PERCENT
                                 ? faults[faults_rng_range(rng, 0, 4)]
                                 : "ok";
        used += (size_t)sprintf(script + used, "%s%s", i ? "," : "", action);
    }
    return script;
}

START_TEST(test_random_answers_and_kills)
{
    const faults_mix mix = {.min_rows = 1,
                            .max_rows = 20,
                            .big_every = BIG_EVERY,
                            .big_rows = BIG_ROWS,
                            .pause_ms = 20};
    uint64_t seed = faults_seed("webhook");
    faults_rng rng = faults_rng_new(seed);
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    faults_history history;
    faults_summary summary;
    itest_path conf;
    char *script, *end;
    pid_t writer;

    itest_begin(&ctx, "hookkill");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, pad text DEFAULT repeat('p', "
                         "100)); CREATE SEQUENCE ids");
    script = random_script(&rng);
    hook_server_start(&ctx, &server, "hook", false,
                      ITEST_ARGS("--script", script, "--stall-s", STALL_S, "--max-seconds", "600"));
    free(script);
    conf =
        hook_config(&ctx, "kill.cfg", server.url, "", "timeout_ms = 400; max_batch_bytes = 65536;");
    itest_create_slot(&ctx, conf.s);
    faults_history_init(&history, server.log.s);

    writer = faults_writer_start(&ctx, "t", "ids", faults_rng_next(&rng), &mix);
    for (int k = 0; k < KILLS; k++) {
        faults_wait_slot_released(ctx.conn, ctx.slot);
        faults_run_begin(&history, ctx.conn, ctx.slot);
        itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
        sample_while_running(&history, &ctx, &host,
                             (int)faults_rng_range(&rng, KILL_AFTER_MIN_MS, KILL_AFTER_MAX_MS));
        faults_host_kill(&host);
        /* A request the killed host had sent is logged, if at all, within its run. */
        hook_server_wait_idle(&server);
        faults_run_end(&history, false);
    }
    itest_writer_stop(writer);

    faults_wait_slot_released(ctx.conn, ctx.slot);
    faults_run_begin(&history, ctx.conn, ctx.slot);
    end = itest_lsn_text(itest_current_lsn(ctx.conn));
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s, "--endpos", end));
    free(end);
    while (itest_host_running(&host)) {
        faults_sample_slot(&history, ctx.conn, ctx.slot);
        itest_sleep_ms(ITEST_POLL_MS);
    }
    itest_assert_exit(&host, 0);
    faults_run_end(&history, true);

    summary = faults_check_history(&history, ctx.conn, ids_sql);
    fprintf(stderr,
            "webhook: %zu lines received, %zu again, %zu transactions cut by a kill "
            "(seed %" PRIu64 ")\n",
            summary.lines, summary.again, summary.cut, seed);
    hook_server_stop(&server);
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

static bool stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);
    bool found = err != NULL && strstr(err, needle) != NULL;

    free(err);
    return found;
}

/* The ids the receiver answered 2xx for, first receipts only (a transaction not acknowledged
 * before a stop or a rewind is sent again), in order, as "1 2 3". */
static char *logged_ids(const hook_server *server)
{
    itest_loglines log = itest_read_log(server->log.s);
    size_t cap = log.count * 24 + 1, used = 0;
    char *out = calloc(1, cap);

    ck_assert_msg(out != NULL, "out of memory");
    for (size_t i = 0; i < log.count; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(log.line[j].id, log.line[i].id) == 0;
        if (!seen)
            used +=
                (size_t)snprintf(out + used, cap - used, "%s%s", used ? " " : "", log.line[i].id);
    }
    itest_loglines_free(&log);
    return out;
}

/* Runs the host to the current position; fails unless it exits with code. */
static void run_expecting(itest_ctx *ctx, itest_host *host, const char *conf, int code)
{
    char *end = itest_lsn_text(itest_current_lsn(ctx->conn));
    int status = itest_host_run(ctx, host, "-c", conf, "--endpos", end);

    free(end);
    if (status != code) {
        char *err = itest_host_stderr(host);
        size_t length = err != NULL ? strlen(err) : 0;
        ck_abort_msg("%s: walnotify exited %d, not %d; stderr ends:\n%s", conf, status, code,
                     err != NULL ? err + (length > 1500 ? length - 1500 : 0) : "(none)");
    }
}

static void insert_three(itest_ctx *ctx)
{
    itest_exec(ctx->conn, "INSERT INTO t VALUES (1, 'a')");
    itest_exec(ctx->conn, "INSERT INTO t VALUES (2, 'b'), (3, 'refused'), (4, 'd')");
    itest_exec(ctx->conn, "INSERT INTO t VALUES (5, 'e')");
}

START_TEST(test_refused_transaction_meets_policy)
{
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    itest_path conf;
    itest_lines dead;
    wn_lsn before;
    char *ids;

    itest_begin(&ctx, "hookrefuse");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, pad text)");
    hook_server_start(&ctx, &server, "hook", false, ITEST_ARGS("--reject", "3"));

    /* stop: exit 2, nothing of the refused transaction acknowledged. */
    conf = hook_config(&ctx, "stop.cfg", server.url, "on_error = \"stop\";", "");
    itest_create_slot(&ctx, conf.s);
    insert_three(&ctx);
    run_expecting(&ctx, &host, conf.s, 2);
    ck_assert_msg(stderr_has(&host, "HTTP 400 from http://127.0.0.1:"), "no HTTP 400 logged");
    ids = logged_ids(&server);
    ck_assert_str_eq(ids, "1");
    free(ids);
    before = itest_slot_confirmed(ctx.conn, ctx.slot);

    /* skip: the refused transaction's three events in the dead-letter file, the rest sent. */
    conf = hook_config(&ctx, "skip.cfg", server.url,
                       "on_error = \"skip\"; dead_letter = \"dead.jsonl\";", "");
    run_expecting(&ctx, &host, conf.s, 0);
    ids = logged_ids(&server);
    ck_assert_str_eq(ids, "1 5");
    free(ids);
    dead = itest_read_lines(itest_file(&ctx, "dead.jsonl").s);
    ck_assert_uint_eq(dead.count, 3);
    ck_assert_msg(strstr(dead.line[1], "\"id\":\"3\"") != NULL, "not row 3: %s", dead.line[1]);
    itest_lines_free(&dead);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) > before, "the slot did not move");
    hook_server_stop(&server);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_cut_part_rewinds)
{
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    hook_requests reqs;
    itest_path conf;
    itest_loglines log;
    const char *first_key = NULL;
    size_t sent_first = 0;

    itest_begin(&ctx, "hookrewind");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, pad text)");
    /* Part 0 of the big transaction goes through; part 1 is cut mid-request, twice (libcurl
     * itself sends a request again once on a fresh connection when a kept-alive one dies). */
    hook_server_start(&ctx, &server, "hook", false, ITEST_ARGS("--script", "ok,ok,close,close"));
    conf = hook_config(&ctx, "cut.cfg", server.url, "", "max_batch_bytes = 1024;");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a')");
    itest_exec(ctx.conn, "INSERT INTO t SELECT g, repeat('x', 40) FROM generate_series(2, 61) g");
    run_expecting(&ctx, &host, conf.s, 0);

    /* Every row received, first receipts in commit order (the replayed part 0 comes again). */
    log = itest_read_log(server.log.s);
    {
        long next = 1;
        for (size_t i = 0; i < log.count; i++) {
            long id = atol(log.line[i].id);
            ck_assert_msg(id <= next, "id %ld received before id %ld", id, next);
            if (id == next)
                next++;
        }
        ck_assert_int_eq(next, 62);
    }
    itest_loglines_free(&log);
    hook_server_stop(&server);
    reqs = hook_server_requests(&server);
    for (size_t i = 0; i < reqs.count; i++) {
        const jl_value *r = reqs.request[i];
        if (strcmp(hook_field(r, "part"), "0") != 0 || strcmp(hook_field(r, "last"), "false") != 0)
            continue;
        if (first_key == NULL)
            first_key = hook_field(r, "key");
        ck_assert_str_eq(hook_field(r, "key"), first_key);
        sent_first++;
    }
    ck_assert_msg(sent_first >= 2, "the big transaction's first part went %zu times", sent_first);
    hook_requests_free(&reqs);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("webhook_faults");
    TCase *tc = tcase_create("webhook_faults");
    SRunner *runner;
    int failed;

    tcase_set_timeout(tc, 3 * ITEST_TIMEOUT_S);
    tcase_add_test(tc, test_random_answers_and_kills);
    tcase_add_test(tc, test_refused_transaction_meets_policy);
    tcase_add_test(tc, test_cut_part_rewinds);
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
