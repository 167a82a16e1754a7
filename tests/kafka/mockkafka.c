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
 *   span TOPIC                    "ok COUNT FIRST_MS": the messages TOPIC holds and the
 *                                 earliest creation time among them (ms since 1970); of a
 *                                 followed topic, what the follower read, once it caught up
 *   appended TOPIC                "ok COUNT": the messages ever appended to TOPIC (the sum of its
 *                                 partitions' high watermarks), those the cluster no longer
 *                                 keeps included
 *   follow TOPIC [brief]          from now on a thread reads TOPIC as it fills (the mock
 *                                 cluster keeps only the last 5 MB of each partition), and a
 *                                 dump of it waits until the thread has read everything, then
 *                                 writes what it read; brief writes a keyed message's key as
 *                                 its value, and only the identity and op headers (a fifth of
 *                                 the size, for millions of messages)
 *
 * It ends at the end of its input.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000
#define PARTITIONS_MAX 64
#define BATCH 1000

/* The one topic read as it fills. */
typedef struct follower {
    char topic[256];
    char path[4096]; /* what it read so far */
    FILE *out;
    rd_kafka_topic_t *rkt;
    rd_kafka_queue_t *queue; /* every partition's messages */
    int partitions;
    int64_t next[PARTITIONS_MAX]; /* the next offset to read, per partition */
    long count;
    int64_t first;        /* the earliest creation time read, -1 before any */
    pthread_mutex_t lock; /* out, next, count, first */
    pthread_t thread;
    bool running;
    bool brief;
} follower;

static follower followed = {.lock = PTHREAD_MUTEX_INITIALIZER, .first = -1};

static rd_kafka_mock_cluster_t *mcluster;
static rd_kafka_t *consumer;

static void poll_sleep(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};

    nanosleep(&ts, NULL);
}

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

/* The brief form: the key stands for a keyed value; the identity and op headers only. */
static void write_brief(FILE *out, const rd_kafka_message_t *msg)
{
    static const char *const kept[] = {"walnotify.position", "walnotify.ordinal", "walnotify.op"};
    rd_kafka_headers_t *headers = NULL;
    const void *value;
    size_t size;

    fprintf(out, "%" PRId32 "\t%" PRId64 "\t", msg->partition, msg->offset);
    if (msg->key != NULL)
        fprintf(out, "%.*s\t%.*s\t", (int)msg->key_len, (const char *)msg->key,
                msg->payload != NULL ? (int)msg->key_len : 1,
                msg->payload != NULL ? (const char *)msg->key : "-");
    else
        fputs(msg->payload != NULL ? "-\t{}\t" : "-\t-\t", out);
    rd_kafka_message_headers(msg, &headers);
    for (size_t i = 0; headers != NULL && i < 3; i++)
        if (rd_kafka_header_get_last(headers, kept[i], &value, &size) == 0)
            fprintf(out, "%s=%.*s;", kept[i], (int)size, (const char *)value);
    fputc('\n', out);
}

static void write_record(FILE *out, const rd_kafka_message_t *msg)
{
    fprintf(out, "%" PRId32 "\t%" PRId64 "\t", msg->partition, msg->offset);
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
            write_record(out, msg);
            next = msg->offset + 1;
            count++;
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_consume_stop(rkt, partition);
    return count;
}

/* The messages of one partition and their earliest creation time; false on error. */
static bool span_partition(rd_kafka_topic_t *rkt, int32_t partition, long *count, int64_t *first)
{
    int64_t low = 0, high = 0, next;

    if (rd_kafka_query_watermark_offsets(consumer, rd_kafka_topic_name(rkt), partition, &low, &high,
                                         WAIT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    if (high <= low)
        return true;
    if (rd_kafka_consume_start(rkt, partition, low) != 0)
        return false;
    for (next = low; next < high;) {
        rd_kafka_message_t *msg = rd_kafka_consume(rkt, partition, WAIT_MS);
        if (msg == NULL)
            break;
        if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            int64_t ts = rd_kafka_message_timestamp(msg, NULL);
            if (ts >= 0 && (*first < 0 || ts < *first))
                *first = ts;
            (*count)++;
            next = msg->offset + 1;
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_consume_stop(rkt, partition);
    return next >= high;
}

static void span(const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(consumer, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    long count = 0;
    int64_t first = -1;
    bool ok = rkt != NULL &&
              rd_kafka_metadata(consumer, 0, rkt, &md, WAIT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR;

    for (int i = 0; ok && i < md->topics[0].partition_cnt; i++)
        ok = span_partition(rkt, md->topics[0].partitions[i].id, &count, &first);
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    if (rkt != NULL)
        rd_kafka_topic_destroy(rkt);
    if (ok)
        printf("ok %ld %" PRId64 "\n", count, first);
    else
        printf("error cannot read topic %s\n", topic);
}

static void appended(const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(consumer, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    long total = 0;
    bool ok = rkt != NULL &&
              rd_kafka_metadata(consumer, 0, rkt, &md, WAIT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR;

    for (int i = 0; ok && i < md->topics[0].partition_cnt; i++) {
        int64_t low = 0, high = 0;
        ok = rd_kafka_query_watermark_offsets(consumer, topic, md->topics[0].partitions[i].id,
                                              &low, &high, WAIT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR;
        total += (long)high;
    }
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    if (rkt != NULL)
        rd_kafka_topic_destroy(rkt);
    if (ok)
        printf("ok %ld\n", total);
    else
        printf("error cannot read topic %s\n", topic);
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

static void *follow_loop(void *arg)
{
    rd_kafka_message_t *batch[BATCH];

    (void)arg;
    for (;;) {
        ssize_t n = rd_kafka_consume_batch_queue(followed.queue, 100, batch, BATCH);
        pthread_mutex_lock(&followed.lock);
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *msg = batch[i];
            if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR &&
                msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "mockkafka: follow, partition %d: %s\n", (int)msg->partition,
                        rd_kafka_message_errstr(msg));
            if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR && msg->partition >= 0 &&
                msg->partition < PARTITIONS_MAX) {
                if (followed.brief)
                    write_brief(followed.out, msg);
                else
                    write_record(followed.out, msg);
                int64_t ts = rd_kafka_message_timestamp(msg, NULL);
                followed.next[msg->partition] = msg->offset + 1;
                followed.count++;
                if (ts >= 0 && (followed.first < 0 || ts < followed.first))
                    followed.first = ts;
            }
            rd_kafka_message_destroy(msg);
        }
        pthread_mutex_unlock(&followed.lock);
    }
    return NULL;
}

static void follow(const char *topic, bool brief)
{
    const struct rd_kafka_metadata *md = NULL;

    followed.brief = brief;
    snprintf(followed.topic, sizeof followed.topic, "%s", topic);
    snprintf(followed.path, sizeof followed.path, "/tmp/mockkafka.%ld.follow", (long)getpid());
    followed.out = fopen(followed.path, "w+");
    unlink(followed.path); /* kept open: gone with this process */
    followed.rkt = rd_kafka_topic_new(consumer, topic, NULL);
    if (followed.out == NULL || followed.rkt == NULL ||
        rd_kafka_metadata(consumer, 0, followed.rkt, &md, WAIT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topics[0].partition_cnt > PARTITIONS_MAX) {
        printf("error cannot follow topic %s\n", topic);
        return;
    }
    followed.partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    followed.queue = rd_kafka_queue_new(consumer);
    for (int p = 0; p < followed.partitions; p++)
        rd_kafka_consume_start_queue(followed.rkt, p, RD_KAFKA_OFFSET_BEGINNING, followed.queue);
    followed.running = pthread_create(&followed.thread, NULL, follow_loop, NULL) == 0;
    printf(followed.running ? "ok\n" : "error cannot start a thread\n");
}

/* Whether the follower has read every partition up to its high watermark; *behind names the
 * first that it has not. */
static bool caught_up(char *behind, size_t size)
{
    for (int p = 0; p < followed.partitions; p++) {
        int64_t low = 0, high = 0, next;
        if (rd_kafka_query_watermark_offsets(consumer, followed.topic, p, &low, &high, WAIT_MS) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(behind, size, "partition %d: no watermarks", p);
            return false;
        }
        pthread_mutex_lock(&followed.lock);
        next = followed.next[p];
        pthread_mutex_unlock(&followed.lock);
        if (next < high) {
            snprintf(behind, size,
                     "partition %d read to %" PRId64 " of %" PRId64 " (from %" PRId64 ")", p, next,
                     high, low);
            return false;
        }
    }
    return true;
}

/* Waits until the follower has read everything (a minute at most); false after answering. */
static bool catch_up(void)
{
    char behind[256] = "";
    time_t give_up = time(NULL) + 6 * WAIT_MS / 1000;

    while (!caught_up(behind, sizeof behind)) {
        if (time(NULL) > give_up) {
            printf("error the follower is stuck: %s\n", behind);
            return false;
        }
        poll_sleep();
    }
    return true;
}

static void span_followed(void)
{
    if (!catch_up())
        return;
    pthread_mutex_lock(&followed.lock);
    printf("ok %ld %" PRId64 "\n", followed.count, followed.first);
    pthread_mutex_unlock(&followed.lock);
}

/* What the follower read, once it has read everything, copied into path. */
static void dump_followed(const char *path)
{
    FILE *out;
    char buffer[65536];
    size_t n;
    long count;

    if (!catch_up())
        return;
    out = fopen(path, "w");
    pthread_mutex_lock(&followed.lock);
    fflush(followed.out);
    rewind(followed.out);
    while (out != NULL && (n = fread(buffer, 1, sizeof buffer, followed.out)) > 0)
        fwrite(buffer, 1, n, out);
    fseek(followed.out, 0, SEEK_END);
    count = followed.count;
    pthread_mutex_unlock(&followed.lock);
    if (out == NULL || fclose(out) != 0)
        printf("error cannot write %s\n", path);
    else
        printf("ok %ld\n", count);
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
        if (followed.running && strcmp(topic, followed.topic) == 0)
            dump_followed(path);
        else
            dump(topic, path);
        return;
    } else if (sscanf(line, "appended %255s", topic) == 1) {
        appended(topic);
        return;
    } else if (sscanf(line, "span %255s", topic) == 1) {
        if (followed.running && strcmp(topic, followed.topic) == 0)
            span_followed();
        else
            span(topic);
        return;
    } else if (sscanf(line, "follow %255s", topic) == 1 && !followed.running) {
        follow(topic, strstr(line, " brief") != NULL);
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
        /* Back at once after a broker comes up: the cluster keeps only 5 MB per partition,
         * and a new producer does not wait as librdkafka's default backoff (10 s) would. */
        rd_kafka_conf_set(conf, "reconnect.backoff.ms", "10", NULL, 0);
        rd_kafka_conf_set(conf, "reconnect.backoff.max.ms", "100", NULL, 0);
        /* A follower that fell behind what the cluster keeps reads on from the earliest kept
         * (the count then says what was missed) instead of waiting at the end. */
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", NULL, 0);
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
