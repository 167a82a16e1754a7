/*
 * kafka: walnotify's Kafka sink, on librdkafka's idempotent producer. Every event becomes one
 * message whose value is its canonical JSON (the host's encoder), keyed by the row's key (the
 * host's encode_key) so that every change of a row goes to one partition, in commit order:
 *
 *   insert, update, snapshot row   to the table's topic, keyed by the row's key;
 *   delete                         the same, then (tombstones) the key with a null value, so a
 *                                  compacted topic forgets the row; an update that changed the
 *                                  key sends that tombstone for the old key;
 *   truncate                       one message without a key to every partition of the topic;
 *   message                        to message_topic, keyed by its prefix.
 *
 * Delivery: handle hands the message to librdkafka and returns; flush answers OK only once
 * every message handed over so far has a successful delivery report, so the host acknowledges
 * nothing Kafka lacks. A message Kafka refuses for good (an unknown topic, no authorization, too
 * large) names its event as failed (walnotify_host.fail_events), so it meets the block's
 * on_error policy; a fatal error of the idempotent producer starts a new producer and asks for
 * a rewind: what the old one had not confirmed comes again.
 */
#include <walnotify/plugin.h>

#include "producer.h"
#include "settings.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef WALNOTIFY_VERSION
#define WALNOTIFY_VERSION "1.0.0"
#endif

#define QUEUE_WAIT_MS 5000     /* how long handle serves reports while the queue is full */
#define FLUSH_WAIT_MS 1000     /* how long one flush waits for confirmations */
#define METADATA_WAIT_MS 5000  /* how long a truncate waits for its topic's partitions */
#define SERVE_EVERY 256        /* events handed over between two looks at the reports */
#define MESSAGE_TOPICS_MAX 256 /* message prefixes whose topic is kept */

/* A table this instance receives, and its topic. */
typedef struct table_topic {
    const char *table; /* the host's "schema.name", valid until shutdown */
    char topic[KAFKA_TOPIC_MAX + 1];
} table_topic;

/* A message prefix met, and its topic. */
typedef struct message_topic {
    char *prefix; /* owned */
    char topic[KAFKA_TOPIC_MAX + 1];
} message_topic;

/* A copy of an encoder's key, kept past the next encoder call. */
typedef struct key_copy {
    char *data;
    size_t length;
    size_t cap;
} key_copy;

typedef struct kafka_state {
    const walnotify_host *host;
    kafka_settings settings;
    kafka_producer *producer;
    table_topic *tables;
    size_t ntables;
    size_t last_table;
    message_topic *messages; /* MESSAGE_TOPICS_MAX of them, allocated at the first message */
    size_t nmessages;
    char scratch_topic[KAFKA_TOPIC_MAX + 1]; /* a message topic past MESSAGE_TOPICS_MAX */
    key_copy key;
    key_copy old_key;
    uint64_t handled;
    bool waiting; /* the last flush found messages unconfirmed (said once) */
} kafka_state;

static void event_text(const walnotify_event *ev, char *out, size_t outlen)
{
    snprintf(out, outlen, "%X/%X ordinal %" PRIu64, (unsigned)(ev->id.position >> 32),
             (unsigned)ev->id.position, ev->id.ordinal);
}

/* ---- failures the host handles --------------------------------------------------------------- */

static walnotify_status ask_rewind(kafka_state *st, const char *reason)
{
    const walnotify_host *host = st->host;

    if (host->rewind == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "cannot ask for the events again: this host does not provide rewind; stopping "
                  "(%s)",
                  reason);
        return WALNOTIFY_FATAL;
    }
    return host->rewind(host, reason);
}

/* The ranges of events whose messages Kafka refused, named to the host. */
static walnotify_status name_failures(kafka_state *st)
{
    const walnotify_host *host = st->host;
    size_t count;
    const kafka_failure *f = kafka_producer_failures(st->producer, &count);

    if (count == 0)
        return WALNOTIFY_OK;
    if (host->fail_events == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "cannot hand the failed events to the block's on_error policy: this host does "
                  "not provide fail_events; stopping (%s)",
                  f[0].reason);
        return WALNOTIFY_FATAL;
    }
    for (size_t i = 0; i < count; i++)
        if (host->fail_events(host, f[i].first, f[i].last, WALNOTIFY_FAILURE_PERMANENT,
                              f[i].reason) == WALNOTIFY_FATAL)
            return WALNOTIFY_FATAL;
    return WALNOTIFY_RETRY;
}

/*
 * What the delivery reports served so far say: a producer that died (a new one, and a rewind),
 * messages refused (their events named), or nothing to do.
 */
static walnotify_status health(kafka_state *st)
{
    const char *reason;
    char text[640];

    if (!kafka_producer_dead(st->producer, &reason))
        return name_failures(st);
    snprintf(text, sizeof text, "the idempotent producer failed: %s", reason);
    st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                  "%s; starting a new producer, and what Kafka had not confirmed comes again",
                  text);
    if (!kafka_producer_restart(st->producer))
        return WALNOTIFY_FATAL;
    return ask_rewind(st, text);
}

/* ---- topics ---------------------------------------------------------------------------------- */

static const table_topic *topic_of_table(kafka_state *st, const char *table)
{
    if (st->ntables > 0 && strcmp(st->tables[st->last_table].table, table) == 0)
        return &st->tables[st->last_table];
    for (size_t i = 0; i < st->ntables; i++) {
        if (strcmp(st->tables[i].table, table) == 0) {
            st->last_table = i;
            return &st->tables[i];
        }
    }
    return NULL;
}

/* Table t's topic into topic (KAFKA_TOPIC_MAX + 1 bytes); false after logging why its expanded
 * name is not a legal topic name. */
static bool expand_table_topic(const walnotify_host *host, const kafka_settings *settings,
                               const walnotify_table *t, char *topic)
{
    static const char *const names[] = {"schema", "table"};
    const char *values[] = {t->schema, t->name};
    char why[512];

    if (kafka_topic_expand(settings->topic_prefix, settings->topic, names, values, 2, topic,
                           KAFKA_TOPIC_MAX + 1, why, sizeof why))
        return true;
    host->log(host, WALNOTIFY_LOG_ERROR,
              "table %s cannot go to Kafka: %s (settings topic_prefix and topic)", t->table, why);
    return false;
}

/* Every table's topic, refused when one is not a legal topic name. */
static bool plan_tables(kafka_state *st)
{
    const walnotify_host *host = st->host;
    size_t n = host->table_count != NULL ? host->table_count(host) : 0;
    bool ok = true;

    st->tables = calloc(n > 0 ? n : 1, sizeof *st->tables);
    if (st->tables == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const walnotify_table *t = host->table(host, i);
        st->tables[i].table = t->table;
        if (!expand_table_topic(host, &st->settings, t, st->tables[i].topic))
            ok = false;
    }
    st->ntables = n;
    return ok;
}

/* The topic of a message's prefix; NULL after logging why it has none. */
static const char *topic_of_prefix(kafka_state *st, const char *prefix)
{
    static const char *const names[] = {"prefix"};
    const char *values[] = {prefix};
    char why[512];
    char *topic = st->scratch_topic;
    message_topic *m;

    for (size_t i = 0; i < st->nmessages; i++)
        if (strcmp(st->messages[i].prefix, prefix) == 0)
            return st->messages[i].topic;
    if (st->messages == NULL)
        st->messages = calloc(MESSAGE_TOPICS_MAX, sizeof *st->messages);
    m = st->messages != NULL && st->nmessages < MESSAGE_TOPICS_MAX ? &st->messages[st->nmessages]
                                                                   : NULL;
    if (m != NULL)
        topic = m->topic;
    if (!kafka_topic_expand(st->settings.topic_prefix, st->settings.message_topic, names, values, 1,
                            topic, KAFKA_TOPIC_MAX + 1, why, sizeof why)) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "a message with prefix \"%.80s\" cannot go to Kafka: %s (settings "
                      "topic_prefix and message_topic)",
                      prefix, why);
        return NULL;
    }
    if (m != NULL && (m->prefix = strdup(prefix)) != NULL)
        st->nmessages++;
    return topic;
}

/* ---- messages -------------------------------------------------------------------------------- */

static bool keep(key_copy *k, const char *data, size_t length)
{
    if (length + 1 > k->cap) {
        char *grown = realloc(k->data, length + 1);
        if (grown == NULL)
            return false;
        k->data = grown;
        k->cap = length + 1;
    }
    memcpy(k->data, data, length);
    k->data[length] = '\0';
    k->length = length;
    return true;
}

static walnotify_status send_one(kafka_state *st, const kafka_message *m)
{
    char ident[64];

    switch (kafka_producer_send(st->producer, m, QUEUE_WAIT_MS)) {
    case KAFKA_SENT:
        return WALNOTIFY_OK;
    case KAFKA_QUEUE_FULL:
        event_text(m->event, ident, sizeof ident);
        st->host->log(st->host, WALNOTIFY_LOG_WARNING,
                      "the producer's queue stayed full for %d ms (%" PRIu64 " messages wait for "
                      "Kafka): event %s is handed over again later",
                      QUEUE_WAIT_MS, kafka_producer_unconfirmed(st->producer), ident);
        return WALNOTIFY_RETRY;
    case KAFKA_REFUSED:
        return WALNOTIFY_FATAL; /* from handle: this event failed for good, the policy takes it */
    case KAFKA_PRODUCER_DEAD:
        break;
    }
    return health(st);
}

/* The key the event's row had before an update, when the server sent it; NULL otherwise. */
static const char *old_key(kafka_state *st, const walnotify_event *ev, size_t *length)
{
    walnotify_event before = *ev;
    const char *key;

    if (ev->old_kind == WALNOTIFY_OLD_NONE)
        return NULL;
    /* Rendered as the key of a delete is: from the old key or row the server sent. */
    before.op = WALNOTIFY_OP_DELETE;
    before.columns = NULL;
    before.ncolumns = 0;
    key = st->host->encode_key(st->host, &before, length);
    if (key == NULL || !keep(&st->old_key, key, *length))
        return NULL;
    return st->old_key.data;
}

static walnotify_status send_tombstone(kafka_state *st, const walnotify_event *ev,
                                       const char *topic, const char *key, size_t length)
{
    kafka_message m = {.topic = topic,
                       .partition = KAFKA_PARTITION_ANY,
                       .key = key,
                       .key_length = length,
                       .event = ev,
                       .op = "tombstone"};

    return send_one(st, &m);
}

/* An update that changed the key: the old key's row is gone. */
static walnotify_status tombstone_old_key(kafka_state *st, const walnotify_event *ev,
                                          const char *topic, bool has_key)
{
    size_t length = 0;
    const char *old;

    /* The new key first: old_key's encoder call ends the encoder buffer's life. */
    old = old_key(st, ev, &length);
    if (old == NULL)
        return WALNOTIFY_OK;
    if (has_key && length == st->key.length && memcmp(old, st->key.data, length) == 0)
        return WALNOTIFY_OK;
    return send_tombstone(st, ev, topic, old, length);
}

static walnotify_status handle_row(kafka_state *st, const walnotify_event *ev)
{
    const table_topic *t = topic_of_table(st, ev->table);
    const char *key = NULL, *value;
    size_t key_length = 0, value_length = 0;
    walnotify_status status;

    if (t == NULL) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "an event of %s, a table not configured",
                      ev->table);
        return WALNOTIFY_FATAL;
    }
    if (st->settings.keyed) {
        key = st->host->encode_key(st->host, ev, &key_length);
        if (key != NULL && !keep(&st->key, key, key_length))
            return WALNOTIFY_RETRY;
        key = key != NULL ? st->key.data : NULL;
    }
    value = st->host->encode_json(st->host, ev, &value_length);
    if (value == NULL)
        return WALNOTIFY_RETRY; /* out of memory */
    kafka_message m = {.topic = t->topic,
                       .partition = KAFKA_PARTITION_ANY,
                       .key = key,
                       .key_length = key_length,
                       .value = value,
                       .value_length = value_length,
                       .event = ev,
                       .op = walnotify_op_name(ev->op)};
    status = send_one(st, &m);
    if (status != WALNOTIFY_OK || !st->settings.keyed || !st->settings.tombstones)
        return status;
    if (ev->op == WALNOTIFY_OP_DELETE && key != NULL)
        return send_tombstone(st, ev, t->topic, key, key_length);
    if (ev->op == WALNOTIFY_OP_UPDATE)
        return tombstone_old_key(st, ev, t->topic, key != NULL);
    return WALNOTIFY_OK;
}

/* A truncate empties every partition's share of the table: one message to each. */
static walnotify_status handle_truncate(kafka_state *st, const walnotify_event *ev)
{
    const table_topic *t = topic_of_table(st, ev->table);
    const char *value;
    size_t value_length = 0;
    bool permanent;
    int partitions;

    if (t == NULL)
        return WALNOTIFY_FATAL;
    partitions = kafka_producer_partitions(st->producer, t->topic, METADATA_WAIT_MS, &permanent);
    if (partitions < 0)
        return permanent ? WALNOTIFY_FATAL : WALNOTIFY_RETRY;
    value = st->host->encode_json(st->host, ev, &value_length);
    if (value == NULL)
        return WALNOTIFY_RETRY;
    for (int32_t p = 0; p < partitions; p++) {
        kafka_message m = {.topic = t->topic,
                           .partition = p,
                           .value = value,
                           .value_length = value_length,
                           .event = ev,
                           .op = "truncate"};
        walnotify_status status = send_one(st, &m);
        if (status != WALNOTIFY_OK)
            return status;
    }
    return WALNOTIFY_OK;
}

static walnotify_status handle_message(kafka_state *st, const walnotify_event *ev)
{
    const char *topic = topic_of_prefix(st, ev->message_prefix);
    const char *value;
    size_t value_length = 0;

    if (topic == NULL)
        return WALNOTIFY_FATAL;
    value = st->host->encode_json(st->host, ev, &value_length);
    if (value == NULL)
        return WALNOTIFY_RETRY;
    kafka_message m = {.topic = topic,
                       .partition = KAFKA_PARTITION_ANY,
                       .key = ev->message_prefix,
                       .key_length = strlen(ev->message_prefix),
                       .value = value,
                       .value_length = value_length,
                       .event = ev,
                       .op = "message"};
    return send_one(st, &m);
}

/* ---- callbacks ------------------------------------------------------------------------------- */

/* The settings, and every table's topic: a 1.2 host names the block's tables to check. */
static walnotify_status kafka_check(const walnotify_host *host)
{
    kafka_settings settings;
    char topic[KAFKA_TOPIC_MAX + 1];
    size_t n;
    bool ok;

    if (!kafka_settings_read(host, &settings))
        return WALNOTIFY_FATAL;
    n = WALNOTIFY_HAS(walnotify_host, host, table) ? host->table_count(host) : 0;
    ok = true;
    for (size_t i = 0; i < n; i++)
        ok = expand_table_topic(host, &settings, host->table(host, i), topic) && ok;
    return ok ? WALNOTIFY_OK : WALNOTIFY_FATAL;
}

static void kafka_shutdown(void *state)
{
    kafka_state *st = state;

    if (st == NULL)
        return;
    kafka_producer_close(st->producer, st->settings.stop_timeout_ms);
    for (size_t i = 0; i < st->nmessages; i++)
        free(st->messages[i].prefix);
    free(st->messages);
    free(st->tables);
    free(st->key.data);
    free(st->old_key.data);
    free(st);
}

static bool has_services(const walnotify_host *host)
{
    if (WALNOTIFY_HAS(walnotify_host, host, encode_key) && host->encode_json != NULL &&
        host->encode_key != NULL && host->table != NULL)
        return true;
    host->log(host, WALNOTIFY_LOG_ERROR,
              "this host does not provide encode_json, encode_key and "
              "the table list (ABI 1.1): the kafka plugin needs them");
    return false;
}

static walnotify_status kafka_init(const walnotify_host *host, void **state)
{
    kafka_state *st;

    if (!has_services(host))
        return WALNOTIFY_FATAL;
    st = calloc(1, sizeof *st);
    if (st == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return WALNOTIFY_FATAL;
    }
    st->host = host;
    if (!kafka_settings_read(host, &st->settings) || !plan_tables(st))
        goto fail;
    st->producer = kafka_producer_open(host, &st->settings);
    if (st->producer == NULL)
        goto fail;
    host->log(host, WALNOTIFY_LOG_INFO, "producing to %s (%zu tables%s%s)", st->settings.brokers,
              st->ntables, st->ntables > 0 ? ", the first to " : "",
              st->ntables > 0 ? st->tables[0].topic : "");
    *state = st;
    return WALNOTIFY_OK;

fail:
    kafka_shutdown(st);
    return WALNOTIFY_FATAL;
}

static walnotify_status kafka_handle(void *state, const walnotify_event *ev)
{
    kafka_state *st = state;
    walnotify_status status;

    /* What the reports said is looked at now and then (a fatal error also shows in the next
     * send); the producer's own thread serves them meanwhile. */
    if (++st->handled % SERVE_EVERY == 0) {
        status = health(st);
        if (status != WALNOTIFY_OK)
            return status;
    }
    switch (ev->op) {
    case WALNOTIFY_OP_TRUNCATE:
        return handle_truncate(st, ev);
    case WALNOTIFY_OP_MESSAGE:
        return handle_message(st, ev);
    case WALNOTIFY_OP_SNAPSHOT:
        if (ev->snapshot_marker != WALNOTIFY_SNAPSHOT_ROW)
            return WALNOTIFY_OK; /* the snapshot's begin and end: no row to send */
        return handle_row(st, ev);
    default:
        return handle_row(st, ev);
    }
}

/* OK once every message handed over so far has a successful delivery report. */
static walnotify_status kafka_flush(void *state)
{
    kafka_state *st = state;
    bool done = kafka_producer_settle(st->producer, FLUSH_WAIT_MS);
    walnotify_status status = health(st);

    if (status != WALNOTIFY_OK)
        return status;
    if (!done) {
        if (!st->waiting)
            st->host->log(st->host, WALNOTIFY_LOG_WARNING,
                          "%" PRIu64 " messages wait for Kafka's confirmation: nothing newer is "
                          "acknowledged to PostgreSQL until they have it",
                          kafka_producer_unconfirmed(st->producer));
        st->waiting = true;
        return WALNOTIFY_RETRY;
    }
    if (st->waiting)
        st->host->log(st->host, WALNOTIFY_LOG_INFO, "Kafka confirmed every message again");
    st->waiting = false;
    return WALNOTIFY_OK;
}

static const walnotify_plugin kafka_plugin = {
    .magic = WALNOTIFY_PLUGIN_MAGIC,
    .abi_major = WALNOTIFY_ABI_MAJOR,
    .abi_minor = 2, /* check sees the tables by name (1.2) */
    .size = sizeof(walnotify_plugin),
    .name = "kafka",
    .version = WALNOTIFY_VERSION,
    .settings = kafka_declared,
    .init = kafka_init,
    .handle = kafka_handle,
    .shutdown = kafka_shutdown,
    .flush = kafka_flush,
    .ops = WALNOTIFY_OPS_CHANGES | WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE,
    .check = kafka_check,
};

const walnotify_plugin *walnotify_plugin_entry(void)
{
    return &kafka_plugin;
}
