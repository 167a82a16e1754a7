/*
 * The README's second complete plugin, the batching sink, taken at its word: cut out of
 * README.md, built with the cc line given there, and run against the server. A file it cannot
 * open is named in its message. One row is too long for its "downstream": it names it as
 * failed, so that on_error = "skip" puts it in the dead-letter file. Slots made before the rows
 * then deliver everything again: once to a whole file, where every event is a replay, and then
 * to the file as a crash in the middle of a write would leave it (a torn line after some whole
 * ones, inside either transaction, or nothing whole at all), which init must cut and after
 * which only what is missing may be added.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "itest.h"
#include "readme_code.h"

#define GUIDE_MARK "**A batching sink**"
#define BUILD_LINE "cc -shared -fPIC -I include -o batchsink.so batchsink.c"
#define EVERY_ID "1,3,4,5" /* row 2 is refused by the sink */

static itest_path write_config(itest_ctx *ctx, const char *name, const char *slot,
                               const char *file)
{
    itest_path path = itest_file(ctx, name);

    itest_write_file(path.s,
                     "source: { conninfo = \"%s\"; tables = [ \"public.orders\" ]; slot = \"%s\"; "
                     "publication = \"%s\"; status_interval_ms = 200; reconnect_initial_ms = 50; "
                     "};\n"
                     "plugins = ( { name = \"batch\"; path = \"batchsink.so\"; settings = { path = "
                     "\"%s\"; }; on_error = \"skip\"; dead_letter = \"orders-refused.jsonl\"; } "
                     ");\n",
                     ctx->conninfo, slot, ctx->pub, file);
    return path;
}

/* A configuration of its own slot, made now (before the rows), for a later replay. */
static itest_path replay_config(itest_ctx *ctx, const char *suffix)
{
    char slot[80], name[96];
    itest_path conf;

    snprintf(slot, sizeof slot, "%s_%s", ctx->slot, suffix);
    snprintf(name, sizeof name, "%s.conf", slot);
    conf = write_config(ctx, name, slot, "orders.jsonl");
    itest_create_slot(ctx, conf.s);
    return conf;
}

/* The ids of the lines of file, in order, as "1,3,4", to out. */
static void ids_of(const itest_path *file, char *out, size_t size)
{
    itest_events events = itest_read_events(file->s);
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < events.count && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "",
                                 itest_value(&events.event[i], "id"));
    itest_events_free(&events);
}

/* Fails unless the dead-letter file holds row 2, `count` times, with the sink's reason. */
static void assert_refused(const itest_path *file, size_t count, const char *when)
{
    itest_lines lines = itest_read_lines(file->s);

    ck_assert_msg(lines.count == count, "%s, the dead-letter file holds %zu lines, expected %zu",
                  when, lines.count, count);
    for (size_t i = 0; i < lines.count; i++)
        ck_assert_msg(strstr(lines.line[i], "\"id\":\"2\"") != NULL &&
                          strstr(lines.line[i], "line too long for the downstream") != NULL,
                      "%s, dead-letter line %zu is not row 2 with the sink's reason: %s", when,
                      i + 1, lines.line[i]);
    itest_lines_free(&lines);
}

/* Runs walnotify with conf up to end; then the sink's file must hold every row it takes, once
 * each and in order, and the dead-letter file row 2 `refused` times. */
static void run_and_check(itest_ctx *ctx, const itest_path *conf, wn_lsn end, size_t refused,
                          const char *when)
{
    itest_path out = itest_file(ctx, "orders.jsonl");
    itest_path dead = itest_file(ctx, "orders-refused.jsonl");
    char *endpos = itest_lsn_text(end), ids[256];
    itest_host host;

    itest_host_run(ctx, &host, "-c", conf->s, "--endpos", endpos);
    free(endpos);
    itest_assert_exit(&host, 0);
    ids_of(&out, ids, sizeof ids);
    ck_assert_msg(strcmp(ids, EVERY_ID) == 0, "%s, orders.jsonl holds ids %s, expected %s", when,
                  ids, EVERY_ID);
    assert_refused(&dead, refused, when);
}

/* What a crash in the middle of a write leaves: the file's first `whole` lines, then half of
 * the next one. */
static void tear_after(const itest_path *file, size_t whole)
{
    itest_lines lines = itest_read_lines(file->s);
    FILE *f;

    ck_assert_msg(lines.count > whole, "orders.jsonl has %zu lines, fewer than %zu", lines.count,
                  whole + 1);
    f = fopen(file->s, "w");
    ck_assert_msg(f != NULL, "cannot write %s", file->s);
    for (size_t i = 0; i < whole; i++)
        fprintf(f, "%s\n", lines.line[i]);
    fwrite(lines.line[whole], 1, lines.length[whole] / 2, f);
    ck_assert_int_eq(fclose(f), 0);
    itest_lines_free(&lines);
}

/* An init that cannot open its file fails walnotify (exit 2), naming the file and why. */
static void assert_unopenable_file_is_named(itest_ctx *ctx)
{
    itest_path conf = write_config(ctx, "missing.conf", ctx->slot, "missing/orders.jsonl");
    itest_host host;
    char *err;

    itest_host_run(ctx, &host, "-c", conf.s);
    itest_assert_exit(&host, 2);
    err = itest_host_stderr(&host);
    ck_assert_msg(err != NULL &&
                      strstr(err, "/missing/orders.jsonl: No such file or directory") != NULL,
                  "the sink did not name the file it could not open: %s", err ? err : "");
    free(err);
}

START_TEST(test_the_batching_sink_of_the_guide)
{
    itest_ctx ctx;
    itest_path conf, full_replay, torn_in_second, torn_in_first, torn_first, out;
    struct stat st;
    wn_lsn end;

    itest_begin(&ctx, "batchsink");
    readme_code_build(&ctx, GUIDE_MARK, "batchsink.c", BUILD_LINE);
    itest_exec(ctx.conn, "CREATE TABLE orders (id int PRIMARY KEY, note text)");
    conf = write_config(&ctx, "batchsink.conf", ctx.slot, "orders.jsonl");
    itest_create_slot(&ctx, conf.s);
    full_replay = replay_config(&ctx, "b");
    torn_in_second = replay_config(&ctx, "c");
    torn_in_first = replay_config(&ctx, "d");
    torn_first = replay_config(&ctx, "e");
    out = itest_file(&ctx, "orders.jsonl");
    assert_unopenable_file_is_named(&ctx);

    itest_exec(ctx.conn, "INSERT INTO orders VALUES (1, 'a'), (2, repeat('x', 5000)), (3, 'c')");
    itest_exec(ctx.conn, "INSERT INTO orders VALUES (4, 'd'), (5, 'e')");
    end = itest_current_lsn(ctx.conn);
    run_and_check(&ctx, &conf, end, 1, "after the first run");
    ck_assert_int_eq(stat(out.s, &st), 0);
    ck_assert_msg((st.st_mode & 0777) == 0600, "orders.jsonl has mode %o, not 0600",
                  (unsigned)(st.st_mode & 0777));

    /* Everything again, to a whole file: every event is a replay. */
    run_and_check(&ctx, &full_replay, end, 1, "after a replay");

    /* Torn in the second transaction: the first, whose every event is a replay, must not make
     * the sink forget that the second's first row is in the file. */
    tear_after(&out, 3);
    run_and_check(&ctx, &torn_in_second, end, 1, "after a line torn in the second transaction");

    /* Torn in the first transaction, after row 1: row 2 is refused again, row 3 added. */
    tear_after(&out, 1);
    run_and_check(&ctx, &torn_in_first, end, 2, "after a line torn in the first transaction");

    /* Nothing whole: the torn line goes, everything is added. */
    tear_after(&out, 0);
    run_and_check(&ctx, &torn_first, end, 3, "after a torn first line");
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("batchsink");
    TCase *tc = tcase_create("batchsink");
    SRunner *runner;
    int failed;

    tcase_set_timeout(tc, ITEST_TIMEOUT_S);
    tcase_add_test(tc, test_the_batching_sink_of_the_guide);
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
