/*
 * kafka_loop: the limit the kafka plugin is measured against. It sends saved messages (what
 * walnotify sent, read back from the mock cluster by tests/kafka/mockkafka's dump) to another
 * topic through one librdkafka producer with the plugin's settings (the idempotent producer,
 * acks=all, message.timeout.ms=0, the murmur2_random partitioner), each with its key, value and
 * headers, one rd_kafka_producev after another, and waits for every delivery report.
 *
 *   kafka_loop BOOTSTRAP TOPIC DUMP_FILE
 *
 * Prints "messages N seconds S": from the first message handed over to the last report. The
 * clock starts once the producer is ready, as walnotify's is when its first event comes: the
 * topic's metadata fetched and the idempotent producer's id acquired (a second's wait).
 */
#include <librdkafka/rdkafka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct saved {
    char *key; /* NULL for none */
    size_t key_length;
    char *value; /* NULL for none */
    size_t value_length;
    char *headers; /* "name=value;..." */
} saved;

static long delivered, failed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        delivered++;
    else
        failed++;
}

static char *field(char **cursor, size_t *length)
{
    char *start = *cursor, *tab = strchr(start, '\t');

    if (tab != NULL)
        *tab = '\0';
    *cursor = tab != NULL ? tab + 1 : start + strlen(start);
    *length = strlen(start);
    return strcmp(start, "-") == 0 ? NULL : start;
}

/* Every line of the dump, read before the clock starts. */
static saved *read_dump(const char *path, size_t *count)
{
    FILE *in = fopen(path, "r");
    saved *all = NULL;
    size_t n = 0, cap = 0, len = 0;
    char *line = NULL, *cursor;
    ssize_t got;

    if (in == NULL)
        return NULL;
    while ((got = getline(&line, &len, in)) > 0) {
        if (line[got - 1] == '\n')
            line[got - 1] = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            all = realloc(all, cap * sizeof *all);
            if (all == NULL)
                return NULL;
        }
        cursor = strdup(line);
        size_t skip;
        field(&cursor, &skip); /* partition */
        field(&cursor, &skip); /* offset */
        all[n].key = field(&cursor, &all[n].key_length);
        all[n].value = field(&cursor, &all[n].value_length);
        all[n].headers = cursor;
        n++;
    }
    free(line);
    fclose(in);
    *count = n;
    return all;
}

static rd_kafka_headers_t *make_headers(const char *text)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);

    while (*text != '\0') {
        const char *eq = strchr(text, '='), *end = strchr(text, ';');
        if (eq == NULL || end == NULL || eq > end)
            break;
        rd_kafka_header_add(h, text, eq - text, eq + 1, end - eq - 1);
        text = end + 1;
    }
    return h;
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_loop: %s: %s\n", name, errstr);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_t *rkt;
    rd_kafka_t *rk;
    saved *all;
    size_t count = 0;
    char errstr[512];
    double start;

    if (argc != 4) {
        fprintf(stderr, "usage: kafka_loop BOOTSTRAP TOPIC DUMP_FILE\n");
        return 2;
    }
    all = read_dump(argv[3], &count);
    if (all == NULL) {
        fprintf(stderr, "kafka_loop: cannot read %s\n", argv[3]);
        return 1;
    }
    set(conf, "bootstrap.servers", argv[1]);
    set(conf, "partitioner", "murmur2_random");
    set(conf, "enable.idempotence", "true");
    set(conf, "acks", "all");
    set(conf, "message.timeout.ms", "0");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        fprintf(stderr, "kafka_loop: %s\n", errstr);
        return 1;
    }
    rkt = rd_kafka_topic_new(rk, argv[2], NULL);
    {
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_metadata_destroy(md);
        for (int i = 0; i < 10; i++)
            rd_kafka_poll(rk, 100);
    }
    start = now_s();
    for (size_t i = 0; i < count; i++) {
        rd_kafka_headers_t *h = make_headers(all[i].headers);
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(
                    rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_KEY(all[i].key, all[i].key_length),
                    RD_KAFKA_V_VALUE(all[i].value, all[i].value_length), RD_KAFKA_V_HEADERS(h),
                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "kafka_loop: %s\n", rd_kafka_err2str(err));
            return 1;
        }
        rd_kafka_poll(rk, 0);
    }
    while (delivered + failed < (long)count)
        rd_kafka_poll(rk, 10);
    printf("messages %ld seconds %.3f\n", delivered, now_s() - start);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return failed == 0 ? 0 : 1;
}
