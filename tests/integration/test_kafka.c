/*
 * The kafka plugin end to end: PostgreSQL, walnotify, librdkafka's mock cluster
 * (tests/kafka/mockkafka), and the topics read back.
 *   changes          inserts, an update, an update that changes the key, a delete, a truncate
 *                    and a logical decoding message arrive: keyed by the row's key, the delete
 *                    and the old key followed by tombstones, the truncate once per partition,
 *                    the message keyed by its prefix; identity headers on every message, its
 *                    lsn, seq and xid headers as its JSON says them; the slot acknowledged;
 *   snapshot         the initial snapshot's rows go to the table's topic keyed as inserts (their
 *                    lsn and ordinal headers as their JSON says them), the changes after it
 *                    follow;
 *   settings         what weakens the promise is refused by --check-config (exit 1); a table
 *                    whose topic is not a legal Kafka name is refused at start, named (exit 2);
 *                    a properties_file's secret never reaches the log.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "itest.h"
#include "kafkamock.h"

#define KAFKA "build/plugins/kafka.so"

static itest_path kafka_config(itest_ctx *ctx, const char *name, const char *tables,
                               const char *bootstrap, const char *block, const char *settings)
{
    return itest_config(ctx, name, tables, 200,
                        "{ name = \"kafka\"; path = \"%s\"; retry_initial_ms = 10;"
                        "  retry_max_ms = 200; %s"
                        "  settings = { brokers = \"%s\"; %s }; }",
                        itest_root_file(KAFKA).s, block, bootstrap, settings);
}

static bool stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);
    bool found = err != NULL && strstr(err, needle) != NULL;

    free(err);
    return found;
}

static size_t count_op(const kafka_records *records, const char *op, const char *id)
{
    size_t n = 0;

    for (size_t i = 0; i < records->count; i++) {
        char text[32];
        if (kafka_record_header(&records->record[i], "walnotify.op", text, sizeof text) &&
            strcmp(text, op) == 0 && (id == NULL || strcmp(records->record[i].id, id) == 0))
            n++;
    }
    return n;
}

/* The text of a top-level field of an event's JSON (a string's without its quotes), or "". */
static void json_field(const char *json, const char *name, char *out, size_t outlen)
{
    char key[64];
    const char *at;
    size_t n = 0;

    snprintf(key, sizeof key, "\"%s\":", name);
    at = strstr(json, key);
    out[0] = '\0';
    if (at == NULL)
        return;
    at += strlen(key);
    if (*at == '"')
        at++;
    while (at[n] != '\0' && at[n] != '"' && at[n] != ',' && at[n] != '}' && n + 1 < outlen)
        n++;
    memcpy(out, at, n);
    out[n] = '\0';
}

/* Each header names what the message's JSON says (header, then the JSON field). */
static void assert_headers_match(const kafka_record *r, const char *const pairs[][2], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char header[64] = "", field[64];
        kafka_record_header(r, pairs[i][0], header, sizeof header);
        json_field(r->value, pairs[i][1], field, sizeof field);
        ck_assert_msg(field[0] != '\0' && strcmp(header, field) == 0,
                      "header %s is \"%s\", the JSON's %s \"%s\": %s", pairs[i][0], header,
                      pairs[i][1], field, r->value);
    }
}

START_TEST(test_changes_arrive)
{
    itest_ctx ctx;
    kafka_mock mock;
    itest_path conf;
    kafka_records topic, messages;
    int partition_of[41];

    itest_begin(&ctx, "kafkachanges");
    kafka_mock_start(&mock, 3);
    kafka_mock_command(&mock, "create public.t 4");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, note text)");
    conf = kafka_config(&ctx, "run.cfg", "\"public.t\"", mock.bootstrap,
                        "ops = [ \"insert\", \"update\", \"delete\", \"truncate\", \"message\" ];",
                        "");
    itest_create_slot(&ctx, conf.s);
    for (int i = 0; i < 4; i++)
        itest_exec(ctx.conn, "INSERT INTO t SELECT g, 'n' || g FROM generate_series(%d, %d) g",
                   i * 10 + 1, i * 10 + 10);
    itest_exec(ctx.conn, "UPDATE t SET note = 'changed' WHERE id = 3");
    itest_exec(ctx.conn, "UPDATE t SET id = 104 WHERE id = 4");
    itest_exec(ctx.conn, "DELETE FROM t WHERE id = 5");
    itest_exec(ctx.conn, "SELECT pg_logical_emit_message(true, 'audit', 'hello')");
    itest_exec(ctx.conn, "TRUNCATE t");
    itest_run_to_now(&ctx, conf.s);

    topic = kafka_mock_dump(&mock, &ctx, "public.t");
    kafka_check_promise(&topic, 40);
    ck_assert_uint_eq(count_op(&topic, "update", "3"), 1);
    ck_assert_uint_eq(count_op(&topic, "update", "104"), 1);
    ck_assert_uint_eq(count_op(&topic, "tombstone", "4"), 1); /* the old key of row 4 */
    ck_assert_uint_eq(count_op(&topic, "tombstone", "5"), 1);
    ck_assert_uint_eq(count_op(&topic, "truncate", NULL), 4); /* one per partition */
    /* Every change of a row in one partition, keyed by the row's key. */
    memset(partition_of, -1, sizeof partition_of);
    for (size_t i = 0; i < topic.count; i++) {
        const kafka_record *r = &topic.record[i];
        long id = atol(r->id);
        char expect[64], lsn[32];
        if (r->key == NULL) {
            ck_assert_msg(r->value != NULL && strstr(r->value, "\"op\":\"truncate\"") != NULL,
                          "offset %lld of partition %d has no key", r->offset, r->partition);
            continue;
        }
        snprintf(expect, sizeof expect, "{\"id\":\"%ld\"}", id);
        ck_assert_str_eq(r->key, expect);
        ck_assert_msg(kafka_record_header(r, "walnotify.lsn", lsn, sizeof lsn) &&
                          kafka_record_header(r, "walnotify.seq", lsn, sizeof lsn) &&
                          kafka_record_header(r, "walnotify.xid", lsn, sizeof lsn) &&
                          kafka_record_header(r, "walnotify.table", lsn, sizeof lsn),
                      "headers missing: %s", r->headers);
        ck_assert_str_eq(lsn, "public.t");
        if (r->value != NULL) {
            static const char *const pairs[][2] = {
                {"walnotify.lsn", "lsn"}, {"walnotify.seq", "seq"}, {"walnotify.xid", "xid"}};
            assert_headers_match(r, pairs, 3);
        }
        if (id > 40)
            continue;
        if (partition_of[id] < 0)
            partition_of[id] = r->partition;
        ck_assert_msg(partition_of[id] == r->partition, "row %ld went to partitions %d and %d", id,
                      partition_of[id], r->partition);
    }
    kafka_records_free(&topic);

    messages = kafka_mock_dump(&mock, &ctx, "audit");
    ck_assert_uint_eq(messages.count, 1);
    ck_assert_str_eq(messages.record[0].key, "audit");
    ck_assert_msg(strstr(messages.record[0].value, "\"prefix\":\"audit\"") != NULL, "%s",
                  messages.record[0].value);
    kafka_records_free(&messages);
    kafka_mock_stop(&mock);
    itest_end(&ctx);
}
END_TEST

/* Waits until walnotify's log holds needle. */
static void wait_stderr(itest_host *host, const char *needle)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        char *err = itest_host_stderr(host);
        bool found = err != NULL && strstr(err, needle) != NULL;

        free(err);
        if (found)
            return;
        ck_assert_msg(itest_host_running(host), "walnotify ended before saying \"%s\"", needle);
        ck_assert_msg(!itest_expired(&deadline), "walnotify did not say \"%s\" in time", needle);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

START_TEST(test_snapshot_rows)
{
    itest_ctx ctx;
    kafka_mock mock;
    itest_path conf;
    kafka_records topic;
    itest_host host;
    size_t snapshot = 0;
    itest_deadline deadline;
    wn_lsn end;

    itest_begin(&ctx, "kafkasnap");
    kafka_mock_start(&mock, 3);
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, note text)");
    itest_exec(ctx.conn, "INSERT INTO t SELECT g, 'old' FROM generate_series(1, 20) g");
    conf = itest_config_extra(
        &ctx, "snap.cfg", "\"public.t\"", 200, "snapshot = \"initial\"; state_file = \"state\";",
        "{ name = \"kafka\"; path = \"%s\"; ops = [ \"snapshot\", \"insert\" ];"
        "  settings = { brokers = \"%s\"; }; }",
        itest_root_file(KAFKA).s, mock.bootstrap);
    /* The run makes the slot and takes the snapshot; the rows after it come as changes. (The
     * slot is active while it is being made, before the snapshot: its log line is waited for.) */
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    wait_stderr(&host, "initial snapshot taken at");
    itest_exec(ctx.conn, "INSERT INTO t SELECT g, 'new' FROM generate_series(21, 30) g");
    end = itest_current_lsn(ctx.conn);
    deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    while (itest_slot_confirmed(ctx.conn, ctx.slot) < end) {
        ck_assert_msg(itest_host_running(&host), "walnotify ended");
        ck_assert_msg(!itest_expired(&deadline), "the slot was not acknowledged in time");
        itest_sleep_ms(ITEST_POLL_MS);
    }
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);

    topic = kafka_mock_dump(&mock, &ctx, "public.t");
    kafka_check_promise(&topic, 0);
    for (size_t i = 0; i < topic.count; i++) {
        char op[16] = "", expect[64];
        kafka_record_header(&topic.record[i], "walnotify.op", op, sizeof op);
        snprintf(expect, sizeof expect, "{\"id\":\"%s\"}", topic.record[i].id);
        ck_assert_msg(topic.record[i].key != NULL && strcmp(topic.record[i].key, expect) == 0,
                      "a message without the row's key: %s", topic.record[i].value);
        if (strcmp(op, "snapshot") == 0) {
            static const char *const pairs[][2] = {{"walnotify.lsn", "snapshot"},
                                                   {"walnotify.ordinal", "ordinal"}};
            assert_headers_match(&topic.record[i], pairs, 2);
            snapshot++;
        }
    }
    ck_assert_uint_eq(snapshot, 20);
    ck_assert_uint_eq(count_op(&topic, "insert", NULL), 10);
    kafka_records_free(&topic);
    kafka_mock_stop(&mock);
    itest_end(&ctx);
}
END_TEST

/* One kafka block with these settings must be refused with exit `code` and `reason`, never
 * `secret`: by --check-config when check refuses it (exit 1), at start otherwise (exit 2). */
static void assert_refused(itest_ctx *ctx, const char *tables, const char *settings, int code,
                           const char *reason, const char *secret)
{
    itest_path conf = kafka_config(ctx, "bad.cfg", tables, "127.0.0.1:9", "", settings);
    itest_host host;
    int status;

    if (code == 1) {
        status = itest_host_run(ctx, &host, "-c", conf.s, "--check-config");
    } else {
        itest_host_start(ctx, &host, ITEST_ARGS("-c", conf.s));
        status = itest_host_wait(&host, 20);
    }
    ck_assert_msg(status == code, "settings { %s } gave exit %d, not %d", settings, status, code);
    ck_assert_msg(stderr_has(&host, reason), "no \"%s\" on stderr", reason);
    ck_assert_msg(secret == NULL || !stderr_has(&host, secret), "\"%s\" reached the log", secret);
}

START_TEST(test_settings_refused)
{
    itest_ctx ctx;
    itest_path conf, props;

    itest_begin(&ctx, "kafkabad");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY, note text)");
    itest_exec(ctx.conn, "CREATE TABLE \"my table\" (id bigint PRIMARY KEY)");
    conf =
        kafka_config(&ctx, "slot.cfg", "\"public.t\", \"public.my table\"", "127.0.0.1:9", "", "");
    itest_create_slot(&ctx, conf.s);
    assert_refused(&ctx, "\"public.t\"", "properties = [ \"enable.idempotence=false\" ];", 1,
                   "item 1: enable.idempotence is refused", NULL);
    assert_refused(&ctx, "\"public.t\"", "properties = [ \"linger.ms=5\", \"acks=1\" ];", 1,
                   "item 2: acks is refused", NULL);
    assert_refused(&ctx, "\"public.t\"", "properties = [ \"sasl.password\" ];", 1,
                   "item 1: expected \"name=value\"", NULL);
    assert_refused(&ctx, "\"public.t\"", "properties = [ \"compression.codec=hush-31337\" ];", 1,
                   "item 1 (compression.codec)", "hush-31337");
    assert_refused(&ctx, "\"public.t\"", "topic = \"${schema}/${table}\";", 1,
                   "holds '/' at byte 2", NULL);
    assert_refused(&ctx, "\"public.t\"", "topic = \"${table}.${column}\";", 1, "names ${column}",
                   NULL);
    assert_refused(&ctx, "\"public.t\"", "key = \"id\";", 1, "setting key is \"id\"", NULL);
    /* The block's tables are named to check: the table whose topic is not a legal name is
     * refused by --check-config, with the file and the block's line. */
    assert_refused(&ctx, "\"public.t\", \"public.my table\"", "", 1,
                   "plugin \"kafka\": table public.my table cannot go to Kafka: topic \"public.my "
                   "table\" holds",
                   NULL);
    /* The properties file holds secrets: what it refuses is named by line, never quoted. */
    props = itest_file(&ctx, "kafka.properties");
    itest_write_file(props.s, "# credentials\nsasl.username=walnotify\n"
                              "compression.codec=hush-31337\n");
    chmod(props.s, 0600);
    assert_refused(&ctx, "\"public.t\"", "properties_file = \"kafka.properties\";", 2,
                   "line 3: librdkafka refuses compression.codec or its value", "hush-31337");
    /* librdkafka's own complaints quote values: hidden. */
    itest_write_file(props.s, "security.protocol=sasl_plaintext\nsasl.mechanisms=hush-31337\n");
    assert_refused(&ctx, "\"public.t\"", "properties_file = \"kafka.properties\";", 2,
                   "cannot start the Kafka producer", "hush-31337");
    itest_write_file(props.s, "message.timeout.ms=300000\n");
    assert_refused(&ctx, "\"public.t\"", "properties_file = \"kafka.properties\";", 2,
                   "line 1: message.timeout.ms is refused", NULL);
    chmod(props.s, 0666);
    assert_refused(&ctx, "\"public.t\"", "properties_file = \"kafka.properties\";", 2,
                   "properties_file refused: file", NULL);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("kafka");
    TCase *tc = itest_tcase(suite, "kafka");

    tcase_add_test(tc, test_changes_arrive);
    tcase_add_test(tc, test_snapshot_rows);
    tcase_add_test(tc, test_settings_refused);
    return run_suite(suite) == 0 ? 0 : 1;
}
