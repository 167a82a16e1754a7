/*
 * The exec plugin with a child that misbehaves, against the real server: it crashes, hangs,
 * writes what is not the protocol, or all three at random (tests/fixtures/exec/faulty_sink.py,
 * three times per test), while walnotify streams a writer's transactions to --endpos. Each time
 * the child is restarted and walnotify rewinds; the run still ends by itself (exit 0), every
 * committed row was acknowledged by the sink at least once, first acknowledgements came in
 * commit order, and the slot, sampled throughout, never passed a transaction the sink had not
 * acknowledged. And a child that refuses some rows for good, naming them: with on_error = "skip"
 * they are in the dead-letter file (at least once), and every other row reached the sink.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "execsink.h"
#include "faults.h"
#include "itest.h"

#define TRANSACTIONS 30
#define ACK_TIMEOUT_MS 1500 /* how long a hanging child is given */
#define RUN_S 100
#define REJECT_EVERY 40 /* the sink refuses every row whose id is a multiple of this */
#define REJECT_EVERY_TEXT "40"

static void run_faulty(const char *mode, const char *expect)
{
    const faults_mix mix = {
        .min_rows = 1, .max_rows = 25, .pause_ms = 5, .transactions = TRANSACTIONS};
    uint64_t seed = faults_seed(mode);
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path, budget;
    execsink_samples samples = {0};
    char argv[3 * PATH_MAX], *err, *left;

    itest_begin(&ctx, "execfault");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY); CREATE SEQUENCE ids");
    snprintf(argv, sizeof argv, "\"python3\", \"%s\", \"%s\", \"%s\", \"%" PRIu64 "\"",
             itest_root_file("tests/fixtures/exec/faulty_sink.py").s, mode, ctx.dir, seed);
    conf = execsink_config(&ctx, "faulty.cfg", 200, ACK_TIMEOUT_MS, argv);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");
    budget = itest_file(&ctx, "budget");

    faults_write_all(&ctx, "t", "ids", seed, &mix);
    execsink_run_to_now(&ctx, &host, conf.s, log_path.s, RUN_S, &samples);
    itest_assert_exit(&host, 0);
    execsink_check_log(ctx.conn, log_path.s, &samples);

    err = itest_host_stderr(&host);
    ck_assert_msg(err != NULL && strstr(err, expect) != NULL, "no \"%s\" in walnotify's stderr",
                  expect);
    ck_assert_msg(strstr(err, "comes again to a new child") != NULL,
                  "walnotify never restarted the child");
    /* Going on after the child died is no stop: only the end of the run says it stopped. */
    ck_assert_msg(strstr(err, "stream rewound; ") != NULL, "no rewind was logged");
    ck_assert_msg(strstr(err, "dispatcher stopped") != NULL &&
                      strstr(strstr(err, "dispatcher stopped") + 1, "dispatcher stopped") == NULL,
                  "walnotify said it stopped while it went on");
    left = itest_read_file(budget.s, NULL);
    ck_assert_msg(left != NULL && strcmp(left, "0") == 0,
                  "the child misbehaved fewer than three times (%s left)", left ? left : "?");
    free(left);
    free(err);
    execsink_samples_free(&samples);
    itest_end(&ctx);
}

START_TEST(test_child_crashes)
{
    run_faulty("crash", "exited with status 3");
}
END_TEST

START_TEST(test_child_hangs)
{
    run_faulty("hang", "(ack_timeout_ms)");
}
END_TEST

START_TEST(test_child_writes_garbage)
{
    run_faulty("garbage", "which is not the protocol");
}
END_TEST

START_TEST(test_child_misbehaves_at_random)
{
    run_faulty("mixed", "comes again to a new child");
}
END_TEST

static int compare_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return x < y ? -1 : x > y;
}

/*
 * The distinct ids of the dead-letter file's lines, each checked to come from the sink's block.
 * An event named again before its transaction was acknowledged is skipped again: the file holds
 * it at least once.
 */
static long long *dead_letter_ids(const char *path, size_t *count)
{
    size_t n = 0;
    itest_lines lines = itest_read_lines(path);
    long long *ids = calloc(lines.count + 1, sizeof *ids);
    char err[128];

    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < lines.count; i++) {
        jl_value *line = jl_parse(lines.line[i], lines.length[i], err, sizeof err);
        const jl_value *values = jl_get(line, "values"), *plugin = jl_get(line, "plugin");

        ck_assert_msg(line != NULL, "%s:%zu: %s", path, i + 1, err);
        ck_assert_msg(plugin != NULL && strcmp(plugin->text, "sink") == 0,
                      "%s:%zu: not the sink's line", path, i + 1);
        ck_assert_msg(jl_get(values, "id") != NULL, "%s:%zu: no id", path, i + 1);
        ids[i] = strtoll(jl_get(values, "id")->text, NULL, 10);
        jl_free(line);
    }
    qsort(ids, lines.count, sizeof *ids, compare_ll);
    for (size_t i = 0; i < lines.count; i++)
        if (i == 0 || ids[i] != ids[n - 1])
            ids[n++] = ids[i];
    *count = n;
    itest_lines_free(&lines);
    return ids;
}

START_TEST(test_child_refuses_rows_for_good)
{
    const faults_mix mix = {
        .min_rows = 1, .max_rows = 25, .pause_ms = 5, .transactions = TRANSACTIONS};
    uint64_t seed = faults_seed("reject");
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path, dead;
    execsink_samples samples = {0};
    long long *ids;
    size_t count;

    itest_begin(&ctx, "execreject");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY); CREATE SEQUENCE ids");
    conf = itest_config(&ctx, "reject.cfg", "\"public.t\"", 200,
                        "{ name = \"sink\"; path = \"%s\"; on_error = \"skip\"; "
                        "dead_letter = \"dead.jsonl\"; settings = { command = [ \"python3\", "
                        "\"%s\", \"reject=%d\", \"%s\", \"1\" ]; }; }",
                        itest_root_file("build/plugins/exec.so").s,
                        itest_root_file("tests/fixtures/exec/faulty_sink.py").s, REJECT_EVERY,
                        ctx.dir);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");
    dead = itest_file(&ctx, "dead.jsonl");

    faults_write_all(&ctx, "t", "ids", seed, &mix);
    execsink_run_to_now(&ctx, &host, conf.s, log_path.s, RUN_S, &samples);
    itest_assert_exit(&host, 0);
    /* What the sink refused is in the dead-letter file; the rest reached the sink. */
    execsink_check_log_of(ctx.conn,
                          "SELECT id FROM t WHERE id % " REJECT_EVERY_TEXT " <> 0 "
                          "ORDER BY id",
                          log_path.s, &samples);
    ids = dead_letter_ids(dead.s, &count);
    execsink_assert_ids_of(ctx.conn,
                           "SELECT id FROM t WHERE id % " REJECT_EVERY_TEXT " = 0 "
                           "ORDER BY id",
                           ids, count, dead.s);
    free(ids);
    execsink_samples_free(&samples);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("exec_faults");
    TCase *tc = itest_tcase(suite, "exec_faults");

    tcase_add_test(tc, test_child_crashes);
    tcase_add_test(tc, test_child_hangs);
    tcase_add_test(tc, test_child_writes_garbage);
    tcase_add_test(tc, test_child_misbehaves_at_random);
    tcase_add_test(tc, test_child_refuses_rows_for_good);
    return run_suite(suite) == 0 ? 0 : 1;
}
