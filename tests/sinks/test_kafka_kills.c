/*
 * The kafka plugin's longer runs (`make check-sinks`), against the real PostgreSQL and
 * librdkafka's mock cluster (tests/kafka/mockkafka):
 *   kills          a writer commits small and large transactions while walnotify is killed (-9)
 *                  at random points, WN_KAFKA_KILLS times (default 12), a broker going down and
 *                  up now and then; a last run to the end. Nothing is lost through any crash:
 *                  every committed row is in Kafka at least once, first copies in commit order
 *                  within each partition.
 *   big            one transaction of WN_KAFKA_BIG_ROWS rows (default 2,000,000) through a
 *                  producer queue of 20,000 messages: handle waits for room, the host's memory
 *                  stays bounded, and as many messages as rows reach Kafka (counted by the
 *                  partitions' high watermarks: the mock cluster keeps only their last 5 MB).
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "itest.h"
#include "kafkamock.h"

#define KAFKA "build/plugins/kafka.so"
#define KILLS 12
#define BIG_ROWS 3000
#define BIG_EVERY 10
#define KILL_AFTER_MIN_MS 200
#define KILL_AFTER_MAX_MS 2000
#define BIG_TXN_ROWS 2000000
#define BIG_TXN_RSS_KB (256 * 1024) /* generous: the queue holds 20,000 small messages */

static long env_long(const char *name, long fallback)
{
    const char *text = getenv(name);

    return text != NULL && *text != '\0' ? atol(text) : fallback;
}

static itest_path kafka_config(itest_ctx *ctx, const char *bootstrap, const char *settings)
{
    return itest_config(ctx, "kafka.cfg", "\"public.t\"", 200,
                        "{ name = \"kafka\"; path = \"%s\"; retry_initial_ms = 10;"
                        "  retry_max_ms = 200; ops = [ \"insert\" ];"
                        "  settings = { brokers = \"%s\"; stop_timeout_ms = 1000; %s }; }",
                        itest_root_file(KAFKA).s, bootstrap, settings);
}

/* Every id the table holds is in the topic. */
static void check_all_rows(itest_ctx *ctx, kafka_mock *mock)
{
    kafka_records records = kafka_mock_dump(mock, ctx, "public.t");
    long rows = itest_query_int(ctx->conn, "SELECT count(*) FROM t");
    long max = itest_query_int(ctx->conn, "SELECT coalesce(max(id), 0) FROM t");

    ck_assert_int_eq(rows, max); /* one writer, ids from one sequence, no gap */
    kafka_check_promise(&records, max);
    fprintf(stderr, "kafka: %ld rows, %zu messages\n", max, records.count);
    kafka_records_free(&records);
}

START_TEST(test_kills)
{
    const faults_mix mix = {.min_rows = 1,
                            .max_rows = 20,
                            .big_every = BIG_EVERY,
                            .big_rows = BIG_ROWS,
                            .pause_ms = 20};
    uint64_t seed = faults_seed("kafka");
    faults_rng rng = faults_rng_new(seed);
    long kills = env_long("WN_KAFKA_KILLS", KILLS) > 0 ? env_long("WN_KAFKA_KILLS", KILLS) : 1;
    itest_ctx ctx;
    itest_host host;
    kafka_mock mock;
    itest_path conf;
    char *end;
    pid_t writer;

    itest_begin(&ctx, "kafkakill");
    kafka_mock_start(&mock, 3);
    kafka_mock_command(&mock, "create public.t 6");
    kafka_mock_command(&mock, "follow public.t");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, pad text DEFAULT repeat('p', "
                         "100)); CREATE SEQUENCE ids");
    conf = kafka_config(&ctx, mock.bootstrap, "");
    itest_create_slot(&ctx, conf.s);

    writer = faults_writer_start(&ctx, "t", "ids", faults_rng_next(&rng), &mix);
    for (long k = 0; k < kills; k++) {
        int broker = (int)faults_rng_range(&rng, 1, 3);
        bool outage = faults_rng_range(&rng, 1, 4) == 1;

        faults_wait_slot_released(ctx.conn, ctx.slot);
        itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
        if (outage)
            kafka_mock_command(&mock, "down %d", broker);
        itest_sleep_ms((int)faults_rng_range(&rng, KILL_AFTER_MIN_MS, KILL_AFTER_MAX_MS));
        ck_assert_msg(itest_host_running(&host), "walnotify stopped by itself (exit %d)",
                      itest_exit_status(host.status));
        faults_host_kill(&host);
        if (outage)
            kafka_mock_command(&mock, "up %d", broker);
    }
    itest_writer_stop(writer);

    faults_wait_slot_released(ctx.conn, ctx.slot);
    end = itest_lsn_text(itest_current_lsn(ctx.conn));
    ck_assert_int_eq(itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", end), 0);
    free(end);
    check_all_rows(&ctx, &mock);
    fprintf(stderr, "kafka: %ld kills (seed %" PRIu64 ")\n", kills, seed);
    kafka_mock_stop(&mock);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_big_transaction)
{
    long rows = env_long("WN_KAFKA_BIG_ROWS", BIG_TXN_ROWS);
    itest_ctx ctx;
    itest_host host;
    kafka_mock mock;
    itest_path conf;
    long maxrss_kb = 0, appended;
    char *end;

    itest_begin(&ctx, "kafkabig");
    kafka_mock_start(&mock, 3);
    kafka_mock_command(&mock, "create public.t 6");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, pad text)");
    conf = kafka_config(&ctx, mock.bootstrap,
                        "properties = [ \"queue.buffering.max.messages=20000\" ];");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t SELECT g, 'p' FROM generate_series(1, %ld) g", rows);
    end = itest_lsn_text(itest_current_lsn(ctx.conn));
    ck_assert_int_eq(faults_host_run_rusage(&ctx, &host, ITEST_ARGS("-c", conf.s, "--endpos", end),
                                            ITEST_RUN_S * 10, &maxrss_kb),
                     0);
    free(end);
    fprintf(stderr, "kafka: %ld rows in one transaction, peak RSS %ld kB\n", rows, maxrss_kb);
    ck_assert_msg(maxrss_kb <= BIG_TXN_RSS_KB, "peak RSS %ld kB, more than %d kB", maxrss_kb,
                  BIG_TXN_RSS_KB);
    /* The mock cluster keeps about the last 5 MB of each partition, and a reader of millions of
     * messages falls behind it on a loaded machine: what reached Kafka is counted here by its
     * high watermarks, and what it holds is checked message by message in test_kills, whose
     * transactions include some of BIG_ROWS rows. */
    appended = kafka_mock_appended(&mock, "public.t");
    ck_assert_msg(appended >= rows, "%ld messages reached Kafka for %ld rows", appended, rows);
    kafka_mock_stop(&mock);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("kafka_kills");
    TCase *tc = tcase_create("kafka_kills");
    SRunner *runner;
    int failed;

    tcase_set_timeout(tc, 10 * ITEST_TIMEOUT_S);
    tcase_add_test(tc, test_kills);
    tcase_add_test(tc, test_big_transaction);
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
