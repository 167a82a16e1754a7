/*
 * The postgres plugin's longer runs (`make check-sinks`), against a second database on the
 * harness's server:
 *   apply under kill -9     a writer commits small and large transactions while walnotify is
 *                           killed (-9) at random points, WN_PGSINK_KILLS times (default 10),
 *                           then run to the end: the target table equals the source table;
 *   append under kill -9    the same in append mode: exactly one row per committed change;
 *   a server restart        the server (source and target alike) restarted, immediate, in the
 *                           middle of a run: walnotify reconnects to both, the target equals
 *                           the source.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "itest.h"
#include "pgtarget.h"

#define DEFAULT_KILLS 10
#define KILL_AFTER_MIN_MS 200
#define KILL_AFTER_MAX_MS 1500

static int kills_wanted(void)
{
    const char *text = getenv("WN_PGSINK_KILLS");

    return text != NULL && atoi(text) > 0 ? atoi(text) : DEFAULT_KILLS;
}

/* The writer's transactions while walnotify is killed again and again, then a run to the end. */
static void run_under_kill9(itest_ctx *ctx, const char *what, const char *conf)
{
    const faults_mix mix = {
        .min_rows = 1, .max_rows = 30, .big_every = 40, .big_rows = 5000, .pause_ms = 10};
    uint64_t seed = faults_seed(what);
    faults_rng rng = faults_rng_new(seed);
    int kills = kills_wanted();
    itest_host host;
    pid_t writer;

    itest_create_slot(ctx, conf);
    writer = faults_writer_start(ctx, "t", "ids", faults_rng_next(&rng), &mix);
    for (int k = 0; k < kills; k++) {
        faults_wait_slot_released(ctx->conn, ctx->slot);
        itest_host_start(ctx, &host, ITEST_ARGS("-c", conf));
        itest_sleep_ms((int)faults_rng_range(&rng, KILL_AFTER_MIN_MS, KILL_AFTER_MAX_MS));
        ck_assert_msg(itest_host_running(&host), "walnotify stopped by itself (exit %d)",
                      host.status);
        faults_host_kill(&host);
    }
    itest_writer_stop(writer);
    faults_wait_slot_released(ctx->conn, ctx->slot);
    pgtarget_run(ctx, &host, conf, 0);
    fprintf(stderr, "%s: %lld rows after %d kills (seed %" PRIu64 ")\n", what,
            itest_query_int(ctx->conn, "SELECT count(*) FROM t"), kills, seed);
}

START_TEST(test_apply_under_kill9)
{
    itest_ctx ctx;
    itest_path conf;
    PGconn *target;

    itest_begin(&ctx, "pgapplykill");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, note text DEFAULT 'a note'); "
                         "CREATE SEQUENCE ids");
    itest_exec(target, "CREATE TABLE t (id bigint PRIMARY KEY, note text)");
    conf = pgtarget_config(&ctx, "apply.cfg", "\"public.t\"", "on_error = \"stop\";", "");
    run_under_kill9(&ctx, "pgsink apply kill9", conf.s);
    pgtarget_assert_same(ctx.conn, "SELECT * FROM t ORDER BY id", target,
                         "SELECT * FROM t ORDER BY id");
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_append_under_kill9)
{
    itest_ctx ctx;
    itest_path conf;
    PGconn *target;

    itest_begin(&ctx, "pgappendkill");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, note text DEFAULT 'a note'); "
                         "CREATE SEQUENCE ids");
    conf = pgtarget_config(&ctx, "append.cfg", "\"public.t\"", "on_error = \"stop\";",
                           "mode = \"append\";");
    run_under_kill9(&ctx, "pgsink append kill9", conf.s);
    pgtarget_assert_same(ctx.conn, "SELECT id FROM t ORDER BY id", target,
                         "SELECT (new_row->>'id')::bigint FROM walnotify_events ORDER BY 1");
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

static void restart_server(itest_ctx *ctx)
{
    char command[2 * PATH_MAX];
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    snprintf(command, sizeof command, "'%s' restart '%s' immediate >/dev/null",
             itest_root_file("tests/pg-harness.sh").s, itest_env("WN_TEST_PGDIR"));
    ck_assert_msg(system(command) == 0, "%s failed", command);
    for (;;) {
        PQreset(ctx->conn);
        if (PQstatus(ctx->conn) == CONNECTION_OK)
            return;
        ck_assert_msg(!itest_expired(&deadline), "cannot reconnect after the restart");
        itest_sleep_ms(100);
    }
}

START_TEST(test_server_restart)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *target;
    char block[4096], *name;

    itest_begin(&ctx, "pgrestart");
    target = pgtarget_create(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, note text)");
    itest_exec(target, "CREATE TABLE t (id bigint PRIMARY KEY, note text)");
    pgtarget_block(&ctx, block, sizeof block, "", "");
    conf = itest_config_extra(&ctx, "restart.cfg", "\"public.t\"", 200,
                              "reconnect_initial_ms = 100;", "%s", block);
    itest_create_slot(&ctx, conf.s);
    for (int i = 0; i < 200; i++)
        itest_exec(ctx.conn, "INSERT INTO t SELECT g, 'r' FROM generate_series(%d, %d) g",
                   i * 500 + 1, i * 500 + 500);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_wait_query_at_least(target, 1, "SELECT count(*) FROM t");
    PQfinish(target);
    restart_server(&ctx);
    name = itest_query(ctx.conn, "SELECT current_database() || '_t'");
    target = itest_connect(name, NULL);
    free(name);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1000000, 'after the restart')");
    itest_wait_query_at_least(target, 1, "SELECT count(*) FROM t WHERE id = 1000000");
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    pgtarget_assert_same(ctx.conn, "SELECT * FROM t ORDER BY id", target,
                         "SELECT * FROM t ORDER BY id");
    pgtarget_drop(&ctx, target);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("pgsink_faults");
    TCase *tc = itest_tcase(suite, "pgsink_faults");

    tcase_add_test(tc, test_apply_under_kill9);
    tcase_add_test(tc, test_append_under_kill9);
    tcase_add_test(tc, test_server_restart);
    return run_suite(suite) == 0 ? 0 : 1;
}
