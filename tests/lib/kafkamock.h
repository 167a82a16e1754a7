/*
 * kafkamock: the kafka plugin's tests' Kafka, librdkafka's mock cluster served on loopback by
 * tests/kafka/mockkafka (build/tests/kafka/mockkafka) as a child of the test, driven through its
 * standard input; and what its topics hold, read back and checked against walnotify's promise.
 * Like itest, every helper fails the running Check test on error.
 */
#ifndef WN_TEST_KAFKAMOCK_H
#define WN_TEST_KAFKAMOCK_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "itest.h"

typedef struct kafka_mock {
    pid_t pid; /* 0 once stopped */
    FILE *in;  /* commands */
    FILE *out; /* answers */
    char bootstrap[512];
} kafka_mock;

/* A mock cluster of `brokers` brokers (ids 1 to brokers). */
void kafka_mock_start(kafka_mock *mock, int brokers);
void kafka_mock_stop(kafka_mock *mock);
/* One command (see tests/kafka/mockkafka.c); fails unless the answer starts with "ok". */
void kafka_mock_command(kafka_mock *mock, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* The messages ever appended to topic, those the cluster no longer keeps included. */
long kafka_mock_appended(kafka_mock *mock, const char *topic);

/* One message as the cluster holds it. */
typedef struct kafka_record {
    int partition;
    long long offset;
    char *key;     /* NULL for none */
    char *value;   /* NULL for none (a tombstone) */
    char *headers; /* "name=value;..." */
    char id[32];   /* the row's "id" value, from the value or the key; "" when none */
} kafka_record;

typedef struct kafka_records {
    kafka_record *record; /* by partition, then offset */
    size_t count;
} kafka_records;

/* Every message of topic so far (written into ctx->dir/NAME.dump). */
kafka_records kafka_mock_dump(kafka_mock *mock, const itest_ctx *ctx, const char *topic);
void kafka_records_free(kafka_records *records);
/* The value of a header of a record, copied into out; false when absent. */
bool kafka_record_header(const kafka_record *record, const char *name, char *out, size_t outlen);

/*
 * walnotify's promise over a topic fed rows with ids 1 to rows (each inserted, possibly updated
 * or deleted later): every row's insert is there at least once; within each partition the
 * first copies of events come in commit order (by their identity headers); every delete is
 * followed, in its partition, by a tombstone of its key.
 */
void kafka_check_promise(const kafka_records *records, long rows);

#endif
