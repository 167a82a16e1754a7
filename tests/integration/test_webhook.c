/*
 * The webhook plugin against a real receiver (tests/webhook/server.py on loopback) and the real
 * PostgreSQL:
 *   parts and transient answers   a transaction larger than max_batch_bytes goes as numbered
 *                                 parts, in order; 500 and 429 (Retry-After) are retried, at
 *                                 commit and between parts; the connection is reused;
 *   a stalled and a cut request   a receiver that answers nothing within timeout_ms, and one
 *                                 that closes the connection mid-request: retried;
 *   an answer read late           a request answered at once but settled past timeout_ms
 *                                 (another plugin sleeps): not sent again;
 *   nothing acknowledged early    while every answer is 500 the slot stays before the
 *                                 transaction; a clean stop, then a healthy receiver gets it;
 *   event mode and a 400          one POST per event; a 500 is retried, the refused event goes
 *                                 straight to then = "skip" (the dead-letter file), the others
 *                                 are delivered;
 *   TLS                           a CA made here: the wrong one is refused with a clear message
 *                                 and nothing acknowledged; the right one, with a bearer token
 *                                 that never reaches the log, delivers everything;
 *   settings                      mistakes refused by check (--check-config, exit 1) or, for a
 *                                 missing token file, at init (exit 2), with a message that
 *                                 names them and never quotes a header's value.
 * Where every event is answered 2xx once, the receiver's log is checked with the delivery
 * invariant (faults.h): every committed row received, first receipts in commit order, and the
 * slot never past a transaction the receiver had not answered 2xx for.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faults.h"
#include "hookserver.h"
#include "itest.h"
#include "watch.h"

#define WEBHOOK "build/plugins/webhook.so"

static const char all_ids[] = "SELECT id FROM t ORDER BY id";

static void create_table(itest_ctx *ctx)
{
    itest_exec(ctx->conn, "CREATE TABLE t (id bigint PRIMARY KEY, pad text)");
}

/* A configuration with one webhook block: `block` adds block keys, `settings` settings (each
 * ending with ';'). */
static itest_path hook_config(itest_ctx *ctx, const char *name, const char *url, const char *block,
                              const char *settings)
{
    return itest_config(ctx, name, "\"public.t\"", 100,
                        "{ name = \"hook\"; path = \"%s\"; retry_initial_ms = 10;"
                        "  retry_max_ms = 200; %s"
                        "  settings = { url = \"%s\"; %s }; }",
                        itest_root_file(WEBHOOK).s, block, url, settings);
}

static int run_watched(itest_ctx *ctx, faults_history *history, itest_host *host, const char *conf)
{
    char *endpos = itest_lsn_text(itest_current_lsn(ctx->conn));
    int status = watch_host_run(ctx, history, host, ITEST_ARGS("-c", conf, "--endpos", endpos));

    free(endpos);
    return status;
}

/* Runs the host to the current position; returns its exit code. */
static int run_to_now(itest_ctx *ctx, itest_host *host, const char *conf)
{
    char *endpos = itest_lsn_text(itest_current_lsn(ctx->conn));
    int status = itest_host_run(ctx, host, "-c", conf, "--endpos", endpos);

    free(endpos);
    return status;
}

static bool stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);
    bool found = err != NULL && strstr(err, needle) != NULL;

    free(err);
    return found;
}

static void wait_stderr(const itest_host *host, const char *needle)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    while (!stderr_has(host, needle)) {
        ck_assert_msg(!itest_expired(&deadline), "walnotify never logged \"%s\"", needle);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

static void assert_stderr(const itest_host *host, const char *needle)
{
    ck_assert_msg(stderr_has(host, needle), "walnotify's stderr does not say \"%s\"", needle);
}

/* ---- transaction mode ------------------------------------------------------------------------ */

/*
 * Requests answered 2xx: each part's number follows the last, only the last of a transaction
 * says so, and no body passes the budget. Returns the most parts one transaction took.
 */
static long check_parts(const hook_requests *reqs, long budget)
{
    char lsn[64] = "";
    long next = 0, most = 0;

    for (size_t i = 0; i < reqs->count; i++) {
        const jl_value *r = reqs->request[i];
        if (strcmp(hook_field(r, "status"), "200") != 0)
            continue;
        ck_assert_str_eq(hook_field(r, "type"), "application/x-ndjson");
        ck_assert_str_eq(hook_field(r, "extra"), "yes");
        ck_assert_msg(atol(hook_field(r, "bytes")) <= budget, "request %zu holds %s bytes", i + 1,
                      hook_field(r, "bytes"));
        if (strcmp(lsn, hook_field(r, "lsn")) != 0) {
            ck_assert_msg(next == 0, "transaction %s ended without its last part", lsn);
            snprintf(lsn, sizeof lsn, "%s", hook_field(r, "lsn"));
        }
        ck_assert_msg(atol(hook_field(r, "part")) == next, "request %zu is part %s of %s, not %ld",
                      i + 1, hook_field(r, "part"), lsn, next);
        ck_assert_msg(strncmp(hook_field(r, "key"), lsn, strlen(lsn)) == 0,
                      "request %zu: Idempotency-Key %s does not start with %s", i + 1,
                      hook_field(r, "key"), lsn);
        next++;
        most = next > most ? next : most;
        if (strcmp(hook_field(r, "last"), "true") == 0)
            next = 0;
        else
            ck_assert_str_eq(hook_field(r, "last"), "false");
    }
    ck_assert_msg(next == 0, "transaction %s ended without its last part", lsn);
    return most;
}

START_TEST(test_parts_and_transient_answers)
{
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    faults_history history;
    hook_requests reqs;
    itest_path conf;
    long parts;

    itest_begin(&ctx, "hookparts");
    create_table(&ctx);
    /* The first transaction's one POST: 500, 429, then 200; the big one's first part: 500. */
    hook_server_start(&ctx, &server, "hook", false, ITEST_ARGS("--script", "500,429:1,ok,500"));
    conf = hook_config(&ctx, "parts.cfg", server.url, "",
                       "max_batch_bytes = 1024; headers = [ \"X-Walnotify-Test: yes\" ];");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'one')");
    itest_exec(ctx.conn, "INSERT INTO t SELECT g, repeat('x', 40) FROM generate_series(2, 61) g");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (62, 'a'), (63, 'b')");

    faults_history_init(&history, server.log.s);
    run_watched(&ctx, &history, &host, conf.s);
    itest_assert_exit(&host, 0);
    faults_check_history(&history, ctx.conn, all_ids);
    assert_stderr(&host, "HTTP 500 from http://127.0.0.1:");
    assert_stderr(&host, "HTTP 429 from");

    hook_server_stop(&server);
    reqs = hook_server_requests(&server);
    parts = check_parts(&reqs, 1024);
    ck_assert_msg(parts >= 4, "the 60-row transaction went as %ld parts", parts);
    /* Kept alive: far fewer connections than requests. */
    ck_assert_msg(atol(hook_field(reqs.request[reqs.count - 1], "conn")) < (long)reqs.count / 2,
                  "%s connections for %zu requests",
                  hook_field(reqs.request[reqs.count - 1], "conn"), reqs.count);
    hook_requests_free(&reqs);
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_stalled_and_cut_requests)
{
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    faults_history history;
    itest_path conf;

    itest_begin(&ctx, "hookcut");
    create_table(&ctx);
    hook_server_start(&ctx, &server, "hook", false,
                      ITEST_ARGS("--script", "stall,close,ok,close", "--stall-s", "2.5"));
    /* Generous, so that a receiver slowed down by a busy machine is not taken for a stalled one
     * (it would log the request, and get it again). */
    conf = hook_config(&ctx, "cut.cfg", server.url, "", "timeout_ms = 1000;");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (3, 'c')");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (4, 'd'), (5, 'e'), (6, 'f')");

    faults_history_init(&history, server.log.s);
    run_watched(&ctx, &history, &host, conf.s);
    itest_assert_exit(&host, 0);
    faults_check_history(&history, ctx.conn, all_ids);
    assert_stderr(&host, "within timeout_ms = 1000");
    assert_stderr(&host, "will retry: POST to http://127.0.0.1:");
    hook_server_stop(&server);
    faults_history_free(&history);
    itest_end(&ctx);
}
END_TEST

/* An answer that came in time counts however late walnotify reads it: a request is sent at
 * commit and settled only at the next one, here held back by a second plugin sleeping past
 * timeout_ms. Read as a timeout, it would be sent again. */
START_TEST(test_answer_read_late_counts)
{
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    hook_requests reqs;
    itest_path conf;

    itest_begin(&ctx, "hooklate");
    create_table(&ctx);
    hook_server_start(&ctx, &server, "hook", false, ITEST_ARGS("--script", "ok"));
    conf = itest_config(&ctx, "late.cfg", "\"public.t\"", 10000,
                        "{ name = \"hook\"; path = \"%s\"; retry_initial_ms = 10;"
                        "  settings = { url = \"%s\"; timeout_ms = 1000; }; },"
                        "{ name = \"slow\"; path = \"%s\";"
                        "  settings = { block_ms = 2500; block_at = 2; }; }",
                        itest_root_file(WEBHOOK).s, server.url,
                        itest_root_file("build/tests/fixtures/blocker.so").s);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a')");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2, 'b')");

    run_to_now(&ctx, &host, conf.s);
    itest_assert_exit(&host, 0);
    ck_assert_msg(!stderr_has(&host, "will retry"), "an answered request was sent again");
    hook_server_stop(&server);
    reqs = hook_server_requests(&server);
    ck_assert_msg(reqs.count == 2, "%zu requests for 2 transactions", reqs.count);
    hook_requests_free(&reqs);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_nothing_acknowledged_before_2xx)
{
    char script[4096] = "500";
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    hook_requests reqs;
    itest_path conf;
    wn_lsn lsn;
    char *ids;

    for (int i = 0; i < 400; i++)
        strcat(script, ",500");
    itest_begin(&ctx, "hookearly");
    create_table(&ctx);
    hook_server_start(&ctx, &server, "down", false, ITEST_ARGS("--script", script));
    conf = hook_config(&ctx, "down.cfg", server.url, "", "");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a'), (2, 'b')");

    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    hook_server_wait_requests(&server, 6);
    /* Several status intervals have passed with nothing but 500s. */
    itest_sleep_ms(300);
    reqs = hook_server_requests(&server);
    ck_assert_msg(wn_lsn_parse(hook_field(reqs.request[0], "lsn"), &lsn), "no commit LSN header");
    hook_requests_free(&reqs);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) <= lsn,
                  "the slot passed a transaction the receiver answered only 500 for");
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) <= lsn,
                  "a clean stop acknowledged a transaction the receiver never took");
    hook_server_stop(&server);

    hook_server_start(&ctx, &server, "up", false, NULL);
    conf = hook_config(&ctx, "up.cfg", server.url, "", "");
    itest_run_to_now(&ctx, conf.s);
    ids = hook_server_ids(&server, false);
    ck_assert_str_eq(ids, "1 2");
    free(ids);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) > lsn, "the slot did not move");
    hook_server_stop(&server);
    itest_end(&ctx);
}
END_TEST

/* ---- event mode ------------------------------------------------------------------------------ */

START_TEST(test_event_mode_refused_event_skipped)
{
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    hook_requests reqs;
    itest_path conf, dead;
    char *ids, *text;
    size_t ok = 0;

    itest_begin(&ctx, "hookevent");
    create_table(&ctx);
    hook_server_start(&ctx, &server, "hook", false, ITEST_ARGS("--script", "500", "--reject", "3"));
    conf = hook_config(&ctx, "event.cfg", server.url,
                       "on_error = \"retry\"; retry_max = 3; then = \"skip\";"
                       "  dead_letter = \"dead.jsonl\";",
                       "mode = \"event\";");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a')");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2, 'b'), (3, 'refused'), (4, 'd')");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (5, 'e')");

    ck_assert_int_eq(run_to_now(&ctx, &host, conf.s), 0);
    /* The first 500 was retried (the event came again), the 400 skipped its event. */
    ids = hook_server_ids(&server, false);
    ck_assert_str_eq(ids, "1 2 4 5");
    free(ids);
    assert_stderr(&host, "HTTP 400 from http://127.0.0.1:");
    dead = itest_file(&ctx, "dead.jsonl");
    text = itest_read_file(dead.s, NULL);
    ck_assert_msg(text != NULL && strstr(text, "\"values\":{\"id\":\"3\"") != NULL &&
                      strchr(text, '\n') == strrchr(text, '\n'),
                  "the dead-letter file does not hold exactly row 3: %s", text ? text : "(none)");
    ck_assert_msg(strstr(text, "\"error\":\"handle returned FATAL\"") != NULL,
                  "row 3 was not skipped as permanent: %s", text);
    free(text);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) > itest_current_lsn(ctx.conn) - 1024,
                  "the slot stayed behind the skipped event");

    hook_server_stop(&server);
    reqs = hook_server_requests(&server);
    for (size_t i = 0; i < reqs.count; i++) {
        const jl_value *r = reqs.request[i];
        char key[96];
        ck_assert_str_eq(hook_field(r, "type"), "application/json");
        snprintf(key, sizeof key, "%s/%s", hook_field(r, "lsn"), hook_field(r, "seq"));
        ck_assert_str_eq(hook_field(r, "key"), key);
        ck_assert_str_eq(hook_field(r, "events"), "1");
        ok += strcmp(hook_field(r, "status"), "200") == 0;
    }
    ck_assert_uint_eq(ok, 4);
    hook_requests_free(&reqs);
    itest_end(&ctx);
}
END_TEST

/* ---- TLS and the token ----------------------------------------------------------------------- */

START_TEST(test_tls_wrong_ca_refused_right_ca_delivers)
{
    static const char token[] = "tok-5ecret-91c2";
    itest_ctx ctx;
    itest_host host;
    hook_server server;
    itest_path conf, cert, key, other, token_file;
    char *ids;

    itest_begin(&ctx, "hooktls");
    create_table(&ctx);
    hook_make_ca(&ctx, "good");
    hook_make_ca(&ctx, "other");
    cert = itest_file(&ctx, "good-cert.pem");
    key = itest_file(&ctx, "good-key.pem");
    other = itest_file(&ctx, "other-ca.pem");
    token_file = itest_file(&ctx, "hook.token");
    itest_write_file(token_file.s, "%s\n", token);
    hook_server_start(&ctx, &server, "tls", true,
                      ITEST_ARGS("--tls-cert", cert.s, "--tls-key", key.s, "--token", token));

    conf = hook_config(&ctx, "wrong.cfg", server.url, "",
                       "ca_file = \"other-ca.pem\"; bearer_token_file = \"hook.token\";");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (3, 'c')");

    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    wait_stderr(&host, "its certificate not verified against ca_file ");
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    assert_stderr(&host, other.s);
    ck_assert_msg(!stderr_has(&host, token), "the token reached the log");
    ck_assert_msg(faults_file_size(server.log.s) == 0, "the receiver got something");
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) < itest_current_lsn(ctx.conn) - 64,
                  "the slot moved past what was never delivered");

    conf = hook_config(&ctx, "right.cfg", server.url, "",
                       "ca_file = \"good-ca.pem\"; bearer_token_file = \"hook.token\";");
    ck_assert_int_eq(run_to_now(&ctx, &host, conf.s), 0);
    ck_assert_msg(!stderr_has(&host, token), "the token reached the log");
    ids = hook_server_ids(&server, false);
    ck_assert_str_eq(ids, "1 2 3");
    free(ids);
    hook_server_stop(&server);
    itest_end(&ctx);
}
END_TEST

/* Until walnotify says it refused a redirect, or the server it points to got something. */
static void wait_refusal_or_request(const itest_host *host, const hook_server *elsewhere)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    while (!stderr_has(host, "another origin") && faults_file_size(elsewhere->requests.s) == 0) {
        ck_assert_msg(!itest_expired(&deadline), "walnotify never refused the redirect");
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/*
 * A redirect to another origin (here another port) is not followed: the configured headers and
 * the token would go with it. The other server never hears of walnotify, nothing is
 * acknowledged; a redirect within the origin is followed, headers and token included.
 */
START_TEST(test_redirect_stays_in_origin)
{
    static const char token[] = "tok-r3direct-55";
    itest_ctx ctx;
    itest_host host;
    hook_server elsewhere, server;
    hook_requests reqs;
    itest_path conf, token_file;
    const char *settings = "follow_redirects = true; bearer_token_file = \"hook.token\";"
                           "  headers = [ \"X-Api-Key: hush-4417\" ];";
    char *ids;

    itest_begin(&ctx, "hookredirect");
    create_table(&ctx);
    token_file = itest_file(&ctx, "hook.token");
    itest_write_file(token_file.s, "%s\n", token);
    hook_server_start(&ctx, &elsewhere, "elsewhere", false, NULL);
    hook_server_start(&ctx, &server, "hook", false, ITEST_ARGS("--redirect", elsewhere.url));
    conf = hook_config(&ctx, "away.cfg", server.url, "", settings);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a')");

    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    wait_refusal_or_request(&host, &elsewhere);
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    ck_assert_msg(!stderr_has(&host, "hush-4417") && !stderr_has(&host, token),
                  "a secret reached the log");
    reqs = hook_server_requests(&elsewhere);
    for (size_t i = 0; i < reqs.count; i++)
        ck_assert_msg(hook_field(reqs.request[i], "api_key")[0] == '\0' &&
                          hook_field(reqs.request[i], "authorization")[0] == '\0',
                      "the other origin received the configured headers: X-Api-Key \"%s\", "
                      "Authorization \"%s\"",
                      hook_field(reqs.request[i], "api_key"),
                      hook_field(reqs.request[i], "authorization"));
    ck_assert_msg(reqs.count == 0, "the other origin received %zu requests", reqs.count);
    hook_requests_free(&reqs);
    assert_stderr(&host, "redirects to http://127.0.0.1:");
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) < itest_current_lsn(ctx.conn) - 64,
                  "the slot moved past what was never delivered");
    hook_server_stop(&server);
    hook_server_stop(&elsewhere);

    /* Within the origin: /hook answers 307 to /moved, which takes the request. */
    hook_server_start(&ctx, &server, "same", false, ITEST_ARGS("--redirect", "/moved"));
    conf = hook_config(&ctx, "same.cfg", server.url, "", settings);
    ck_assert_int_eq(run_to_now(&ctx, &host, conf.s), 0);
    ck_assert_msg(!stderr_has(&host, "over plain http"), "a warning for a loopback receiver");
    ids = hook_server_ids(&server, false);
    ck_assert_str_eq(ids, "1");
    free(ids);
    reqs = hook_server_requests(&server);
    ck_assert_uint_eq(reqs.count, 2);
    ck_assert_str_eq(hook_field(reqs.request[1], "path"), "/moved");
    ck_assert_str_eq(hook_field(reqs.request[1], "api_key"), "hush-4417");
    ck_assert_str_eq(hook_field(reqs.request[1], "authorization"), "Bearer tok-r3direct-55");
    hook_requests_free(&reqs);
    hook_server_stop(&server);
    itest_end(&ctx);
}
END_TEST

/* ---- settings -------------------------------------------------------------------------------- */

/*
 * One webhook block with these settings must be refused with exit `code` and `reason` on
 * stderr, never `secret`: by --check-config (no database) when check refuses it (exit 1), and
 * by a run, at init, otherwise (exit 2).
 */
static void assert_refused(itest_ctx *ctx, const char *settings, int code, const char *reason,
                           const char *secret)
{
    itest_path conf = hook_config(ctx, "bad.cfg", "http://127.0.0.1:9/hook", "", settings);
    itest_host host;
    int status;

    if (code == 1) {
        status = itest_host_run(ctx, &host, "-c", conf.s, "--check-config");
    } else {
        /* A run that is not refused goes on: bounded, so that such a failure comes soon. */
        itest_host_start(ctx, &host, ITEST_ARGS("-c", conf.s));
        status = itest_host_wait(&host, 20);
    }
    ck_assert_msg(status == code, "settings { %s } gave exit %d, not %d", settings, status, code);
    assert_stderr(&host, reason);
    ck_assert_msg(secret == NULL || !stderr_has(&host, secret), "\"%s\" reached the log", secret);
}

START_TEST(test_settings_refused)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, token, link;
    char *text;
    const char *first;

    itest_begin(&ctx, "hookbad");
    create_table(&ctx);
    conf = hook_config(&ctx, "slot.cfg", "http://127.0.0.1:9/hook", "", "");
    itest_create_slot(&ctx, conf.s);
    assert_refused(&ctx, "mode = \"bulk\";", 1, "setting mode is \"bulk\"", NULL);
    assert_refused(&ctx, "headers = [ \"X-Api-Key hush-31337\" ];", 1,
                   "setting headers, item 1: expected \"Name: value\"", "hush-31337");
    assert_refused(&ctx, "headers = [ \"A: b\", \"Idempotency-Key: hush-31337\" ];", 1,
                   "setting headers, item 2: walnotify sets Idempotency-Key itself", "hush-31337");
    assert_refused(&ctx, "max_batch_bytes = 10;", 1, "setting max_batch_bytes is 10", NULL);
    assert_refused(&ctx, "insecure = true; ca_file = \"ca.pem\";", 1,
                   "ca_file and insecure = true contradict", NULL);
    /* The token file is read at init, not by check (no files there). */
    assert_refused(&ctx, "bearer_token_file = \"missing.token\";", 2,
                   "cannot open bearer_token_file ", NULL);
    /* A token file follows the rule of a configuration holding a password: a link is not
     * followed (whoever may replace it chooses what is sent), a file others may change is
     * refused. */
    token = itest_file(&ctx, "real.token");
    itest_write_file(token.s, "s3cret-0612\n");
    ck_assert_int_eq(chmod(token.s, 0600), 0);
    link = itest_file(&ctx, "link.token");
    ck_assert_int_eq(symlink(token.s, link.s), 0);
    assert_refused(&ctx, "bearer_token_file = \"link.token\";", 2, "is a symbolic link",
                   "s3cret-0612");
    ck_assert_int_eq(chmod(token.s, 0666), 0);
    assert_refused(&ctx, "bearer_token_file = \"real.token\";", 2, "writable by everyone",
                   "s3cret-0612");
    ck_assert_int_eq(chmod(token.s, 0600), 0);

    /* A token sent over plain http off this machine is warned about, once, at start. */
    conf = hook_config(&ctx, "plain.cfg", "http://192.0.2.1:9/hook", "",
                       "bearer_token_file = \"real.token\"; headers = [ \"X-Api-Key: k\" ];");
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    wait_stderr(&host, "over plain http");
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    text = itest_host_stderr(&host);
    first = strstr(text, "over plain http");
    ck_assert_msg(strstr(first + 1, "over plain http") == NULL, "the warning came twice");
    ck_assert_msg(strstr(text, "the bearer token and header X-Api-Key go to "
                               "http://192.0.2.1:9/hook over plain http") != NULL,
                  "the warning does not name both secrets: %s", text);
    free(text);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("webhook");
    TCase *tc = itest_tcase(suite, "webhook");

    tcase_add_test(tc, test_parts_and_transient_answers);
    tcase_add_test(tc, test_stalled_and_cut_requests);
    tcase_add_test(tc, test_answer_read_late_counts);
    tcase_add_test(tc, test_nothing_acknowledged_before_2xx);
    tcase_add_test(tc, test_event_mode_refused_event_skipped);
    tcase_add_test(tc, test_tls_wrong_ca_refused_right_ca_delivers);
    tcase_add_test(tc, test_redirect_stays_in_origin);
    tcase_add_test(tc, test_settings_refused);
    return run_suite(suite) == 0 ? 0 : 1;
}
