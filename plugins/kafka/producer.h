/*
 * producer: the kafka plugin's librdkafka producer. It keeps walnotify's promise on top of
 * librdkafka's idempotent producer: every message handed over is counted, and its delivery
 * report (served by a thread of the producer's own, counted under its lock) counts it delivered or
 * records it as failed, named by the identity its headers carry. The plugin answers flush OK
 * only once nothing is left unconfirmed, so PostgreSQL is told nothing that Kafka lacks.
 */
#ifndef KAFKA_PRODUCER_H
#define KAFKA_PRODUCER_H

#include "settings.h"

#include <walnotify/plugin.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KAFKA_REASON_MAX 512     /* bytes of a failure's reason */
#define KAFKA_FAILURES_MAX 32    /* failed ranges held until the next callback names them */
#define KAFKA_PARTITION_ANY (-1) /* the partitioner chooses */

typedef struct kafka_producer kafka_producer;

/* What became of a message handed to send. */
typedef enum kafka_sent {
    KAFKA_SENT = 0,     /* queued: its delivery report will say */
    KAFKA_QUEUE_FULL,   /* no room came within the wait: nothing queued (RETRY) */
    KAFKA_REFUSED,      /* refused for good before it was queued (reason in the log) */
    KAFKA_PRODUCER_DEAD /* the producer had a fatal error: restart it and rewind */
} kafka_sent;

/* A message: topic (a name the caller keeps until close), key and value (NULL for none). */
typedef struct kafka_message {
    const char *topic;
    int32_t partition; /* KAFKA_PARTITION_ANY, or the partition */
    const char *key;
    size_t key_length;
    const char *value;
    size_t value_length;
    const walnotify_event *event; /* its headers name it */
    const char *op;               /* the walnotify.op header: the event's, or "tombstone" */
} kafka_message;

/* A range of events whose messages failed, and why (the first failure's reason). */
typedef struct kafka_failure {
    walnotify_id first;
    walnotify_id last;
    char reason[KAFKA_REASON_MAX];
} kafka_failure;

/*
 * Reads properties_file (under walnotify's rules for a file holding a secret), builds the
 * configuration and starts the producer. NULL after logging why.
 */
kafka_producer *kafka_producer_open(const walnotify_host *host, const kafka_settings *settings);

/*
 * Waits up to wait_ms for every message to be confirmed, drops what is left (logging how many:
 * none of it was acknowledged), and frees everything.
 */
void kafka_producer_close(kafka_producer *producer, long wait_ms);

/* Replaces a producer that had a fatal error with a new one; what the old one held is dropped
 * (the caller rewinds). false after logging why. */
bool kafka_producer_restart(kafka_producer *producer);

/* Whether the producer had a fatal error (*reason: librdkafka's, when it is). */
bool kafka_producer_dead(kafka_producer *producer, const char **reason);

/* Hands one message over, serving delivery reports while the queue is full (wait_ms at most). */
kafka_sent kafka_producer_send(kafka_producer *producer, const kafka_message *message,
                               long wait_ms);

/* The number of partitions of topic (its metadata, asked within wait_ms), or -1 after logging
 * why (*permanent: the topic does not exist or may not be described). */
int kafka_producer_partitions(kafka_producer *producer, const char *topic, long wait_ms,
                              bool *permanent);

/* Waits up to wait_ms (none when 0) for every message to be confirmed, or one to fail. True
 * when none is left unconfirmed. */
bool kafka_producer_settle(kafka_producer *producer, long wait_ms);

/* The failures recorded since the last call (*count of them), to name to the host; the array
 * is the producer's, valid until the next call. */
const kafka_failure *kafka_producer_failures(kafka_producer *producer, size_t *count);

/* Messages handed over and not confirmed. */
uint64_t kafka_producer_unconfirmed(kafka_producer *producer);

#endif
