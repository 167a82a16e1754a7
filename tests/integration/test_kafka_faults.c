/*
 * The kafka plugin under the faults of a Kafka cluster, injected into librdkafka's mock cluster
 * (tests/kafka/mockkafka) while walnotify streams: a broker down and back, every broker down for
 * seconds (nothing is acknowledged meanwhile), produce errors (not leader, timed out, not enough
 * replicas), partition leaders moved, a fatal error of the idempotent producer (a new producer,
 * a rewind), and messages Kafka refuses for good (an unknown topic, a message too large) meeting
 * the block's on_error policy. Each run checks walnotify's promise over the topic: every
 * committed row at least once, first copies in commit order within each partition, every delete
 * followed by its tombstone.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "kafkamock.h"

#define KAFKA "build/plugins/kafka.so"
#define ROWS_PER_STEP 40

/* Kafka error codes (the protocol's). */
#define KAFKA_UNKNOWN_TOPIC_OR_PART 3
#define KAFKA_NOT_LEADER 6
#define KAFKA_REQUEST_TIMED_OUT 7
#define KAFKA_NOT_ENOUGH_REPLICAS 19
#define KAFKA_CLUSTER_AUTHORIZATION_FAILED 31
#define KAFKA_API_PRODUCE 0
#define KAFKA_API_INIT_PRODUCER_ID 22

typedef struct fault_run {
    itest_ctx ctx;
    kafka_mock mock;
    itest_host host;
    itest_path conf;
    long rows; /* ids 1 to rows inserted so far */
} fault_run;

static void run_begin(fault_run *run, const char *name, const char *tables, const char *block,
                      const char *settings)
{
    itest_begin(&run->ctx, name);
    kafka_mock_start(&run->mock, 3);
    kafka_mock_command(&run->mock, "create public.t 6");
    itest_exec(run->ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, note text)");
    itest_exec(run->ctx.conn, "CREATE TABLE u (id bigint PRIMARY KEY, note text)");
    run->conf = itest_config(&run->ctx, "run.cfg", tables, 200,
                             "{ name = \"kafka\"; path = \"%s\"; retry_initial_ms = 10;"
                             "  retry_max_ms = 200; ops = [ \"insert\", \"update\", \"delete\" ];"
                             "  %s settings = { brokers = \"%s\"; %s }; }",
                             itest_root_file(KAFKA).s, block, run->mock.bootstrap, settings);
    itest_create_slot(&run->ctx, run->conf.s);
    run->rows = 0;
}

static void run_end(fault_run *run)
{
    kafka_mock_stop(&run->mock);
    itest_end(&run->ctx);
}

/* ROWS_PER_STEP rows in four transactions; the first of them updated, the second deleted. */
static void write_rows(fault_run *run)
{
    long first = run->rows + 1;

    for (int i = 0; i < 4; i++)
        itest_exec(run->ctx.conn, "INSERT INTO t SELECT g, 'n' FROM generate_series(%ld, %ld) g",
                   first + i * ROWS_PER_STEP / 4, first + (i + 1) * ROWS_PER_STEP / 4 - 1);
    itest_exec(run->ctx.conn, "UPDATE t SET note = 'changed' WHERE id = %ld", first);
    itest_exec(run->ctx.conn, "DELETE FROM t WHERE id = %ld", first + 1);
    run->rows += ROWS_PER_STEP;
}

/* Waits (ITEST_WAIT_S at most) until the slot is acknowledged up to what is committed now. */
static void wait_acknowledged(fault_run *run)
{
    wn_lsn target = itest_current_lsn(run->ctx.conn);
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    while (itest_slot_confirmed(run->ctx.conn, run->ctx.slot) < target) {
        ck_assert_msg(itest_host_running(&run->host), "walnotify ended (exit %d)",
                      itest_exit_status(run->host.status));
        ck_assert_msg(!itest_expired(&deadline), "the slot was not acknowledged in time");
        itest_sleep_ms(ITEST_POLL_MS * 5);
    }
}

/* Stops walnotify, which must exit 0, and checks the topic. */
static void run_check(fault_run *run)
{
    kafka_records records;

    ck_assert_int_eq(itest_host_stop(&run->host, SIGTERM), 0);
    records = kafka_mock_dump(&run->mock, &run->ctx, "public.t");
    kafka_check_promise(&records, run->rows);
    kafka_records_free(&records);
}

START_TEST(test_broker_down_and_back)
{
    fault_run run;

    run_begin(&run, "kafkadown", "\"public.t\"", "", "");
    itest_host_start(&run.ctx, &run.host, ITEST_ARGS("-c", run.conf.s));
    write_rows(&run);
    kafka_mock_command(&run.mock, "down 1");
    write_rows(&run);
    itest_sleep_ms(1000);
    kafka_mock_command(&run.mock, "up 1");
    write_rows(&run);
    wait_acknowledged(&run);
    run_check(&run);
    run_end(&run);
}
END_TEST

/* Every broker down for seconds: nothing acknowledged meanwhile; a stop then drops what waits
 * (exit 0, nothing of it acknowledged), and the next run delivers it once the brokers are back. */
START_TEST(test_all_brokers_down)
{
    fault_run run;
    wn_lsn outage;
    char *err;

    run_begin(&run, "kafkaoutage", "\"public.t\"", "", "stop_timeout_ms = 300;");
    itest_host_start(&run.ctx, &run.host, ITEST_ARGS("-c", run.conf.s));
    write_rows(&run);
    wait_acknowledged(&run);
    for (int b = 1; b <= 3; b++)
        kafka_mock_command(&run.mock, "down %d", b);
    write_rows(&run);
    /* Its first transaction ends at or before this: the slot must stay short of it. */
    outage = itest_current_lsn(run.ctx.conn);
    write_rows(&run);
    /* Several status intervals without a broker: nothing new may be acknowledged. */
    itest_sleep_ms(2500);
    ck_assert_msg(itest_slot_confirmed(run.ctx.conn, run.ctx.slot) < outage,
                  "the slot moved while every broker was down");
    ck_assert_int_eq(itest_host_stop(&run.host, SIGTERM), 0);
    err = itest_host_stderr(&run.host);
    ck_assert_msg(strstr(err, "messages Kafka has not confirmed") != NULL,
                  "the stop did not say what it dropped");
    free(err);
    ck_assert_msg(itest_slot_confirmed(run.ctx.conn, run.ctx.slot) < outage,
                  "the stop acknowledged what Kafka did not confirm");

    for (int b = 1; b <= 3; b++)
        kafka_mock_command(&run.mock, "up %d", b);
    itest_host_start(&run.ctx, &run.host, ITEST_ARGS("-c", run.conf.s));
    write_rows(&run);
    wait_acknowledged(&run);
    run_check(&run);
    run_end(&run);
}
END_TEST

START_TEST(test_produce_errors_and_leaders)
{
    fault_run run;

    run_begin(&run, "kafkaerrors", "\"public.t\"", "", "");
    itest_host_start(&run.ctx, &run.host, ITEST_ARGS("-c", run.conf.s));
    write_rows(&run);
    kafka_mock_command(&run.mock, "errors %d 4 %d", KAFKA_API_PRODUCE, KAFKA_NOT_LEADER);
    kafka_mock_command(&run.mock, "errors %d 4 %d", KAFKA_API_PRODUCE, KAFKA_REQUEST_TIMED_OUT);
    kafka_mock_command(&run.mock, "errors %d 4 %d", KAFKA_API_PRODUCE, KAFKA_NOT_ENOUGH_REPLICAS);
    write_rows(&run);
    for (int p = 0; p < 6; p++)
        kafka_mock_command(&run.mock, "leader public.t %d %d", p, 1 + (p + 1) % 3);
    write_rows(&run);
    wait_acknowledged(&run);
    run_check(&run);
    run_end(&run);
}
END_TEST

START_TEST(test_fatal_producer_error_rewinds)
{
    fault_run run;
    char *err;

    run_begin(&run, "kafkafatal", "\"public.t\"", "", "");
    /* The idempotent producer's first InitProducerId is refused: a fatal error. */
    kafka_mock_command(&run.mock, "errors %d 1 %d", KAFKA_API_INIT_PRODUCER_ID,
                       KAFKA_CLUSTER_AUTHORIZATION_FAILED);
    write_rows(&run);
    itest_host_start(&run.ctx, &run.host, ITEST_ARGS("-c", run.conf.s));
    write_rows(&run);
    wait_acknowledged(&run);
    run_check(&run);
    err = itest_host_stderr(&run.host);
    ck_assert_msg(strstr(err, "the idempotent producer failed") != NULL &&
                      strstr(err, "asked for a rewind") != NULL,
                  "no new producer and rewind in the log");
    free(err);
    run_end(&run);
}
END_TEST

/* A topic Kafka does not have, and a message larger than it takes: the events meet the policy. */
START_TEST(test_refused_messages_meet_policy)
{
    fault_run run;
    itest_lines dead;
    char *err;
    size_t unknown = 0, large = 0;

    run_begin(&run, "kafkarefused", "\"public.t\", \"public.u\"",
              "on_error = \"skip\"; dead_letter = \"dead.jsonl\";",
              "properties = [ \"topic.metadata.propagation.max.ms=300\", "
              "\"message.max.bytes=2000\" ];");
    kafka_mock_command(&run.mock, "topic-error public.u %d", KAFKA_UNKNOWN_TOPIC_OR_PART);
    write_rows(&run);
    itest_exec(run.ctx.conn, "INSERT INTO u VALUES (1, 'lost'), (2, 'lost')");
    itest_exec(run.ctx.conn, "INSERT INTO t VALUES (100000, repeat('x', 3000))");
    write_rows(&run);
    itest_host_start(&run.ctx, &run.host, ITEST_ARGS("-c", run.conf.s));
    wait_acknowledged(&run);
    run_check(&run);
    dead = itest_read_lines(itest_file(&run.ctx, "dead.jsonl").s);
    for (size_t i = 0; i < dead.count; i++) {
        unknown += strstr(dead.line[i], "\"table\":\"public.u\"") != NULL;
        large += strstr(dead.line[i], "\"id\":\"100000\"") != NULL;
    }
    ck_assert_msg(unknown >= 2 && large >= 1, "dead letters: %zu of public.u, %zu too large",
                  unknown, large);
    itest_lines_free(&dead);
    err = itest_host_stderr(&run.host);
    ck_assert_msg(strstr(err, "to topic public.u") != NULL, "the unknown topic is not named");
    free(err);
    run_end(&run);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("kafka_faults");
    TCase *tc = itest_tcase(suite, "kafka_faults");

    tcase_add_test(tc, test_broker_down_and_back);
    tcase_add_test(tc, test_all_brokers_down);
    tcase_add_test(tc, test_produce_errors_and_leaders);
    tcase_add_test(tc, test_fatal_producer_error_rewinds);
    tcase_add_test(tc, test_refused_messages_meet_policy);
    return run_suite(suite) == 0 ? 0 : 1;
}
