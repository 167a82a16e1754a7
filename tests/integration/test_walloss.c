/*
 * A slot invalidated while walnotify was stopped: max_slot_wal_keep_size let the server remove
 * WAL the slot still needed (wal_status 'lost'). walnotify must stop loudly (exit 3, naming the
 * slot and the remedy) and never make a new slot in its place.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static char *slot_wal_status(itest_ctx *ctx)
{
    return itest_query(ctx->conn, "SELECT coalesce(wal_status, 'none') FROM pg_replication_slots "
                                  "WHERE slot_name = '%s'",
                       ctx->slot);
}

/* Writes WAL past the slot's allowance, segment by segment, until a checkpoint removes what the
 * slot needed. */
static void push_slot_past_its_wal(itest_ctx *ctx)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    itest_set_server_setting(ctx->conn, "max_slot_wal_keep_size", "1MB");
    for (;;) {
        char *status;
        bool lost;

        for (int i = 0; i < 3; i++) {
            itest_exec(ctx->conn, "INSERT INTO filler SELECT g FROM generate_series(1, 1000) g");
            itest_exec(ctx->conn, "SELECT pg_switch_wal()");
        }
        itest_exec(ctx->conn, "CHECKPOINT");
        status = slot_wal_status(ctx);
        lost = strcmp(status, "lost") == 0;
        free(status);
        if (lost)
            return;
        ck_assert_msg(!itest_expired(&deadline), "the slot's WAL was never removed");
    }
}

START_TEST(test_invalidated_slot_stops_loudly)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    char *err, *status;

    itest_begin(&ctx, "walloss");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    itest_exec(ctx.conn, "CREATE TABLE filler (n int)");
    conf = itest_config(&ctx, "w.cfg", "\"public.t\"", 200,
                        "{ name = \"out\"; path = \"%s\"; settings = { path = \"out.jsonl\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    itest_run_to_now(&ctx, conf.s);

    /* walnotify is stopped; the server goes on writing. */
    push_slot_past_its_wal(&ctx);

    itest_host_run(&ctx, &host, "-c", conf.s);
    itest_assert_failed(&host, 3);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, ctx.slot) && strstr(err, "invalidated (wal_status 'lost')"),
                  "stderr: %s", err);
    free(err);
    /* The invalidated slot is left for a person to see; no new one replaced it. */
    status = slot_wal_status(&ctx);
    ck_assert_str_eq(status, "lost");
    free(status);
    itest_end(&ctx);
}
END_TEST

/* Puts max_slot_wal_keep_size back, also after a failed test (an unchecked fixture's teardown). */
static void reset_keep_size(void)
{
    itest_reset_server_setting("max_slot_wal_keep_size");
}

int main(void)
{
    Suite *suite = suite_create("walloss");
    TCase *tc = itest_tcase(suite, "walloss");

    tcase_add_unchecked_fixture(tc, NULL, reset_keep_size);
    tcase_add_test(tc, test_invalidated_slot_stops_loudly);
    return run_suite(suite) == 0 ? 0 : 1;
}
