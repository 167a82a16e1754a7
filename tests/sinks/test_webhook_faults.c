/*
 * The webhook plugin's longer runs (`make check-sinks`), against the real PostgreSQL and the
 * loopback receiver (tests/webhook/server.py):
 *   random answers and kills   a writer commits small and large transactions (the large ones go
 *                              as many parts) while the receiver answers 500, 429 or nothing at
 *                              random and walnotify is killed (-9) at random points, often in
 *                              the middle of a transaction's parts; the delivery invariant
 *                              holds over every run: every row received, first receipts in
 *                              commit order, the slot never past what the receiver answered 2xx.
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
    conf = hook_config(&ctx, "kill.cfg", server.url, "",
                       "timeout_ms = " TIMEOUT_MS "; max_batch_bytes = 65536;");
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

int main(void)
{
    Suite *suite = suite_create("webhook_faults");
    TCase *tc = tcase_create("webhook_faults");
    SRunner *runner;
    int failed;

    tcase_set_timeout(tc, 3 * ITEST_TIMEOUT_S);
    tcase_add_test(tc, test_random_answers_and_kills);
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
