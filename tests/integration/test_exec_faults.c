/*
 * The exec plugin with a child that misbehaves, against the real server: it crashes, hangs,
 * writes what is not the protocol, or all three at random (tests/fixtures/exec/faulty_sink.py,
 * three times per test), while walnotify streams a writer's transactions to --endpos. Each time
 * the child is restarted and walnotify rewinds; the run still ends by itself (exit 0), every
 * committed row was acknowledged by the sink at least once, first acknowledgements came in
 * commit order, and the slot, sampled throughout, never passed a transaction the sink had not
 * acknowledged.
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

static void run_faulty(const char *mode, const char *expect)
{
    const faults_mix mix = {
        .min_rows = 1, .max_rows = 25, .pause_ms = 5, .transactions = TRANSACTIONS};
    uint64_t seed = faults_seed(mode);
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path, budget;
    execsink_samples samples = {0};
    char argv[3 * PATH_MAX], *end, *err, *left;
    pid_t writer;

    itest_begin(&ctx, "execfault");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY); CREATE SEQUENCE ids");
    snprintf(argv, sizeof argv, "\"python3\", \"%s\", \"%s\", \"%s\", \"%" PRIu64 "\"",
             itest_root_file("tests/fixtures/exec/faulty_sink.py").s, mode, ctx.dir, seed);
    conf = execsink_config(&ctx, "faulty.cfg", 200, ACK_TIMEOUT_MS, argv);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");
    budget = itest_file(&ctx, "budget");

    writer = faults_writer_start(&ctx, "t", "ids", seed, &mix);
    while (!faults_writer_done(writer))
        itest_sleep_ms(ITEST_POLL_MS);
    end = itest_lsn_text(itest_current_lsn(ctx.conn));
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s, "--endpos", end));
    free(end);
    execsink_sample_until_exit(&ctx, &host, log_path.s, RUN_S, &samples);
    itest_assert_exit(&host, 0);
    execsink_check_log(ctx.conn, log_path.s, &samples);

    err = itest_host_stderr(&host);
    ck_assert_msg(err != NULL && strstr(err, expect) != NULL, "no \"%s\" in walnotify's stderr",
                  expect);
    ck_assert_msg(strstr(err, "comes again to a new child") != NULL,
                  "walnotify never restarted the child");
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

int main(void)
{
    Suite *suite = suite_create("exec_faults");
    TCase *tc = tcase_create("exec_faults");
    SRunner *runner;
    int failed;

    tcase_set_timeout(tc, ITEST_TIMEOUT_S);
    tcase_add_test(tc, test_child_crashes);
    tcase_add_test(tc, test_child_hangs);
    tcase_add_test(tc, test_child_writes_garbage);
    tcase_add_test(tc, test_child_misbehaves_at_random);
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
