/*
 * The webhook plugin's failures that the host handles, against the real PostgreSQL and the
 * loopback receiver (tests/webhook/server.py):
 *   a refused transaction      a 400 for a transaction names its events as failed
 *                              (walnotify_host.fail_events): on_error = "stop" exits 2 without
 *                              acknowledging them; "skip" puts them in the dead-letter file and
 *                              delivers the rest;
 *   a part cut mid-request     the receiver closes the connection while a part goes out: the
 *                              transaction comes again from its first part (walnotify_host.rewind),
 *                              with the same Idempotency-Keys, first receipts in commit order;
 *   a stop with a hung receiver   a receiver that takes the request and never answers: SIGTERM
 *                              ends walnotify about timeout_ms later (the last flush's retries
 *                              do not send the request again, each for timeout_ms more),
 *                              nothing acknowledged; a working receiver gets everything after.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookserver.h"
#include "itest.h"

#define WEBHOOK "build/plugins/webhook.so"

static itest_path hook_config(itest_ctx *ctx, const char *name, const char *url, const char *block,
                              const char *settings)
{
    return itest_config(ctx, name, "\"public.t\"", 200,
                        "{ name = \"hook\"; path = \"%s\"; retry_initial_ms = 10;"
                        "  retry_max_ms = 100; %s"
                        "  settings = { url = \"%s\"; %s }; }",
                        itest_root_file(WEBHOOK).s, block, url, settings);
}

static bool stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);
    bool found = err != NULL && strstr(err, needle) != NULL;

    free(err);
    return found;
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

/* The commit LSN of the first request the server answered 400. */
static wn_lsn refused_lsn(const hook_server *server)
{
    hook_requests reqs = hook_server_requests(server);
    wn_lsn lsn = WN_LSN_INVALID;

    for (size_t i = 0; i < reqs.count && lsn == WN_LSN_INVALID; i++)
        if (strcmp(hook_field(reqs.request[i], "status"), "400") == 0)
            ck_assert_msg(wn_lsn_parse(hook_field(reqs.request[i], "lsn"), &lsn),
                          "request %zu has no commit LSN", i + 1);
    hook_requests_free(&reqs);
    ck_assert_msg(lsn != WN_LSN_INVALID, "the server refused nothing");
    return lsn;
}

START_TEST(test_refused_transaction_meets_policy)
{
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    itest_path conf;
    itest_lines dead;
    wn_lsn before, refused;
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
    ids = hook_server_ids(&server, true);
    ck_assert_str_eq(ids, "1");
    free(ids);
    before = itest_slot_confirmed(ctx.conn, ctx.slot);
    refused = refused_lsn(&server);
    ck_assert_msg(before <= refused, "the slot passed the refused transaction");

    /* skip: the refused transaction's three events in the dead-letter file, the rest sent. */
    conf = hook_config(&ctx, "skip.cfg", server.url,
                       "on_error = \"skip\"; dead_letter = \"dead.jsonl\";", "");
    run_expecting(&ctx, &host, conf.s, 0);
    ids = hook_server_ids(&server, true);
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

START_TEST(test_stop_with_hung_receiver)
{
    char script[1024] = "stall";
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    itest_path conf;
    wn_lsn before;
    hook_requests requests;
    char *ids;

    for (int i = 0; i < 40; i++)
        strcat(script, ",stall");
    itest_begin(&ctx, "hookhung");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, pad text)");
    hook_server_start(&ctx, &server, "hung", false,
                      ITEST_ARGS("--script", script, "--stall-s", "100"));
    conf = hook_config(&ctx, "hung.cfg", server.url, "", "timeout_ms = 1000;");
    itest_create_slot(&ctx, conf.s);
    before = itest_slot_confirmed(ctx.conn, ctx.slot);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (3, 'c')");

    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    hook_server_wait_requests(&server, 1);
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    /* The README promises timeout_ms (1 s here) and the last flush's few quick retries: the
     * request is sent again at most twice in that time, where sending it again in each of the
     * final flush's retries, each waiting timeout_ms, made seven requests and seven seconds. */
    requests = hook_server_requests(&server);
    ck_assert_msg(requests.count >= 1 && requests.count <= 3,
                  "the stop sent %zu requests to a receiver that never answers", requests.count);
    hook_requests_free(&requests);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) == before,
                  "the slot moved though the receiver answered nothing");
    hook_server_stop(&server);

    hook_server_start(&ctx, &server, "up", false, NULL);
    conf = hook_config(&ctx, "up.cfg", server.url, "", "timeout_ms = 1000;");
    run_expecting(&ctx, &host, conf.s, 0);
    ids = hook_server_ids(&server, true);
    ck_assert_str_eq(ids, "1 2 3");
    free(ids);
    hook_server_stop(&server);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("webhook_failures");
    TCase *tc = itest_tcase(suite, "webhook_failures");

    tcase_add_test(tc, test_refused_transaction_meets_policy);
    tcase_add_test(tc, test_cut_part_rewinds);
    tcase_add_test(tc, test_stop_with_hung_receiver);
    return run_suite(suite) == 0 ? 0 : 1;
}
