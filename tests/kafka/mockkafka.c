/*
 * mockkafka: librdkafka's mock cluster (rdkafka_mock.h) on loopback for the kafka plugin's
 * tests, and a consumer of its topics to check what arrived.
 *
 *   mockkafka [BROKERS]      (default 3) prints "bootstrap HOST:PORT,..." then reads commands
 *                            on standard input, one per line, answering each with one line,
 *                            "ok ..." or "error ...":
 *
 *   create TOPIC PARTITIONS       a topic (the cluster also creates topics on demand)
 *   down BROKER | up BROKER       a broker stops or starts answering
 *   errors APIKEY COUNT CODE      the next COUNT requests of that kind (Produce = 0) fail with
 *                                 the Kafka error CODE (e.g. 6 not leader, 7 timed out, 19 not
 *                                 enough replicas)
 *   topic-error TOPIC CODE        the topic answers CODE to metadata requests (3: unknown)
 *   leader TOPIC PARTITION BROKER the partition's leader moves
 *   dump TOPIC FILE               every message of TOPIC so far into FILE, one line each:
 *                                 "PARTITION OFFSET KEY VALUE HEADERS" separated by tabs, "-"
 *                                 for a null key or value, headers as name=value;...;
 *                                 answers "ok COUNT"
 *
 * It ends at the end of its input.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 10000

static rd_kafka_mock_cluster_t *mcluster;
static rd_kafka_t *consumer;

static void write_headers(FILE *out, const rd_kafka_message_t *msg)
{
    rd_kafka_headers_t *headers = NULL;
    const char *name;
    const void *value;
    size_t size;

    if (rd_kafka_message_headers(msg, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == 0; i++)
        fprintf(out, "%s=%.*s;", name, (int)size, value != NULL ? (const char *)value : "");
}

/* Every message of one partition up to its high watermark; -1 on error. */
static long dump_partition(FILE *out, rd_kafka_topic_t *rkt, int32_t partition)
{
    int64_t low = 0, high = 0, next;
    long count = 0;

    if (rd_kafka_query_watermark_offsets(consumer, rd_kafka_topic_name(rkt), partition, &low, &high,
                                         WAIT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    if (high <= low)
        return 0;
    if (rd_kafka_consume_start(rkt, partition, low) != 0)
        return -1;
    for (next = low; next < high;) {
        rd_kafka_message_t *msg = rd_kafka_consume(rkt, partition, WAIT_MS);
        if (msg == NULL) {
            count = -1;
            break;
        }
        if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(out, "%" PRId32 "\t%" PRId64 "\t", partition, msg->offset);
            if (msg->key != NULL)
                fprintf(out, "%.*s\t", (int)msg->key_len, (const char *)msg->key);
            else
                fputs("-\t", out);
            if (msg->payload != NULL)
                fprintf(out, "%.*s\t", (int)msg->len, (const char *)msg->payload);
            else
                fputs("-\t", out);
            write_headers(out, msg);
            fputc('\n', out);
            next = msg->offset + 1;
            count++;
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_consume_stop(rkt, partition);
    return count;
}

/* Answers once the file is closed, so that the test reads all of it. */
static void dump(const char *topic, const char *path)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(consumer, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    FILE *out = fopen(path, "w");
    long total = -1;

    if (rkt != NULL && out != NULL &&
        rd_kafka_metadata(consumer, 0, rkt, &md, WAIT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        total = 0;
        for (int i = 0; total >= 0 && i < md->topics[0].partition_cnt; i++) {
            long n = dump_partition(out, rkt, md->topics[0].partitions[i].id);
            total = n < 0 ? -1 : total + n;
        }
    }
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    if (out != NULL && fclose(out) != 0)
        total = -1;
    if (rkt != NULL)
        rd_kafka_topic_destroy(rkt);
    if (total < 0)
        printf("error cannot read topic %s\n", topic);
    else
        printf("ok %ld\n", total);
}

static void command(char *line)
{
    char topic[256], path[4096];
    int a, b, c;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

    if (sscanf(line, "create %255s %d", topic, &a) == 2)
        err = rd_kafka_mock_topic_create(mcluster, topic, a, 1);
    else if (sscanf(line, "down %d", &a) == 1)
        err = rd_kafka_mock_broker_set_down(mcluster, a);
    else if (sscanf(line, "up %d", &a) == 1)
        err = rd_kafka_mock_broker_set_up(mcluster, a);
    else if (sscanf(line, "errors %d %d %d", &a, &b, &c) == 3) {
        rd_kafka_resp_err_t *errs = calloc((size_t)b, sizeof *errs);
        for (int i = 0; i < b; i++)
            errs[i] = (rd_kafka_resp_err_t)c;
        rd_kafka_mock_push_request_errors_array(mcluster, (int16_t)a, (size_t)b, errs);
        free(errs);
    } else if (sscanf(line, "topic-error %255s %d", topic, &a) == 2)
        rd_kafka_mock_topic_set_error(mcluster, topic, (rd_kafka_resp_err_t)a);
    else if (sscanf(line, "leader %255s %d %d", topic, &a, &b) == 3)
        err = rd_kafka_mock_partition_set_leader(mcluster, topic, a, b);
    else if (sscanf(line, "dump %255s %4095s", topic, path) == 2) {
        dump(topic, path);
        return;
    } else {
        printf("error unknown command: %s\n", line);
        return;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        printf("error %s\n", rd_kafka_err2str(err));
    else
        printf("ok\n");
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstrap)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk;

    rd_kafka_conf_set(conf, "log_level", "2", NULL, 0);
    if (bootstrap != NULL) {
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, NULL, 0);
        rd_kafka_conf_set(conf, "topic.metadata.refresh.interval.ms", "500", NULL, 0);
    }
    rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        fprintf(stderr, "mockkafka: %s\n", errstr);
        exit(1);
    }
    return rk;
}

int main(int argc, char **argv)
{
    int brokers = argc > 1 ? atoi(argv[1]) : 3;
    rd_kafka_t *owner = client(RD_KAFKA_PRODUCER, NULL);
    char line[8192];

    setvbuf(stdout, NULL, _IOLBF, 0);
    mcluster = rd_kafka_mock_cluster_new(owner, brokers);
    if (mcluster == NULL) {
        fprintf(stderr, "mockkafka: cannot start the mock cluster\n");
        return 1;
    }
    consumer = client(RD_KAFKA_CONSUMER, rd_kafka_mock_cluster_bootstraps(mcluster));
    printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] != '\0')
            command(line);
    }
    rd_kafka_destroy(consumer);
    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(owner);
    return 0;
}
