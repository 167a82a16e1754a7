/*
 * settings: the kafka plugin's settings, read and checked in one place, so that `check`
 * (--check-config, no side effects) and `init` refuse exactly the same configurations; and the
 * topic templates, expanded and checked against Kafka's rule for a topic name.
 */
#ifndef KAFKA_SETTINGS_H
#define KAFKA_SETTINGS_H

#include <walnotify/plugin.h>

#include <stdbool.h>
#include <stddef.h>

#define KAFKA_TOPIC_MAX 249 /* bytes of a topic name, Kafka's limit */

/* What the settings say. Every string is borrowed from the host (valid until shutdown). */
typedef struct kafka_settings {
    const char *brokers;         /* bootstrap.servers */
    const char *topic;           /* template: ${schema}, ${table} */
    const char *topic_prefix;    /* put before every topic, "" for none */
    const char *message_topic;   /* template: ${prefix} */
    bool keyed;                  /* key = "primary_key" (else "none") */
    bool tombstones;             /* a null value after a delete, and for an update's old key */
    const char *properties_file; /* NULL when not set */
    long stop_timeout_ms;        /* at a stop, how long unconfirmed messages may still go */
} kafka_settings;

/* The settings the plugin declares, ended by a member with name NULL. */
extern const walnotify_setting kafka_declared[];

/*
 * Reads and checks every setting, the `properties` included (their names, and their values as
 * librdkafka parses them); logs each problem at ERROR (naming the setting, never a property's
 * value) and returns false when there is one.
 */
bool kafka_settings_read(const walnotify_host *host, kafka_settings *out);

/*
 * Whether walnotify refuses a librdkafka property `name` (it weakens the delivery promise, or
 * walnotify sets it itself); when so, *why says what walnotify sets instead.
 */
bool kafka_property_refused(const char *name, const char **why);

/*
 * Expands a template into out (outlen bytes): topic_prefix, then the template with `${NAME}`
 * replaced by the value of the pair whose name is NAME (names[i] / values[i], n pairs). Returns
 * false with one line in why when the result is not a legal Kafka topic name ([A-Za-z0-9._-], 1
 * to 249 bytes, not "." or "..") or the template names an unknown placeholder.
 */
bool kafka_topic_expand(const char *prefix, const char *template_text, const char *const *names,
                        const char *const *values, size_t n, char *out, size_t outlen, char *why,
                        size_t whylen);

#endif
