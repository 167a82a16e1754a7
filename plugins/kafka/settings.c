/*
 * settings: reading and checking the kafka plugin's settings. Nothing here opens a file or a
 * socket: `check` runs it under --check-config (a librdkafka configuration object is made to
 * check the properties' values, which starts no thread).
 */
#include "settings.h"

#include <librdkafka/rdkafka.h>

#include <stdio.h>
#include <string.h>

#define STOP_MIN_MS 0L
#define STOP_MAX_MS 3600000L
#define PROPERTY_MAX 4096 /* bytes of one "name=value" item */

const walnotify_setting kafka_declared[] = {
    {.name = "brokers",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = NULL,
     .description = "the bootstrap brokers, \"host:port,host:port\""},
    {.name = "topic",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "${schema}.${table}",
     .description = "a table's topic: a template expanding ${schema} and ${table}"},
    {.name = "topic_prefix",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "",
     .description = "put before every topic name (tables' and messages')"},
    {.name = "key",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "primary_key",
     .description = "\"primary_key\": the row's key as the message key; \"none\": no key"},
    {.name = "tombstones",
     .type = WALNOTIFY_SETTING_BOOLEAN,
     .default_value = "true",
     .description = "after a delete (and for the old key of an update that changed it), a "
                    "message with the key and a null value"},
    {.name = "message_topic",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "${prefix}",
     .description = "logical decoding messages' topic: a template expanding ${prefix}"},
    {.name = "properties",
     .type = WALNOTIFY_SETTING_LIST,
     .default_value = "",
     .description = "librdkafka properties, each \"name=value\" (security, SASL, compression, "
                    "linger)"},
    {.name = "properties_file",
     .type = WALNOTIFY_SETTING_PATH,
     .default_value = "",
     .description = "a file of \"name=value\" lines, for secrets (read at start; never logged)"},
    {.name = "stop_timeout_ms",
     .type = WALNOTIFY_SETTING_INTEGER,
     .default_value = "10000",
     .description = "at a stop, how long messages not yet confirmed may still go before they "
                    "are dropped (none of them was acknowledged)"},
    {.name = NULL},
};

/* What walnotify sets itself, or what would weaken its promise, and what it sets instead. */
static const struct refused_property {
    const char *name;
    const char *why;
} refused_properties[] = {
    {"enable.idempotence", "walnotify sets it to true"},
    {"acks", "walnotify sets it to all"},
    {"request.required.acks", "walnotify sets acks to all"},
    {"message.timeout.ms", "walnotify sets it to 0 (no limit)"},
    {"delivery.timeout.ms", "walnotify sets message.timeout.ms to 0 (no limit)"},
    {"retries", "the idempotent producer retries without limit"},
    {"message.send.max.retries", "the idempotent producer retries without limit"},
    {"max.in.flight.requests.per.connection", "the idempotent producer keeps it at most 5"},
    {"max.in.flight", "the idempotent producer keeps it at most 5"},
    {"enable.gapless.guarantee", "walnotify rewinds on the idempotent producer's fatal errors"},
    {"transactional.id", "walnotify uses the idempotent producer, not transactions"},
    {"bootstrap.servers", "use the setting brokers"},
    {"metadata.broker.list", "use the setting brokers"},
    {NULL, NULL},
};

bool kafka_property_refused(const char *name, const char **why)
{
    for (size_t i = 0; refused_properties[i].name != NULL; i++) {
        if (strcmp(name, refused_properties[i].name) == 0) {
            *why = refused_properties[i].why;
            return true;
        }
    }
    return false;
}

/* ---- topic names ----------------------------------------------------------------------------- */

static bool topic_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static bool legal_topic(const char *topic, char *why, size_t whylen)
{
    size_t len = strlen(topic);

    if (len == 0 || len > KAFKA_TOPIC_MAX || strcmp(topic, ".") == 0 || strcmp(topic, "..") == 0) {
        snprintf(why, whylen,
                 "topic \"%.*s%s\" is %zu bytes long (a topic name is 1 to %d, not "
                 "\".\" or \"..\")",
                 60, topic, len > 60 ? "..." : "", len, KAFKA_TOPIC_MAX);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)topic[i];
        if (!topic_char(c)) {
            char what[32];
            if (c > 0x20 && c < 0x7f)
                snprintf(what, sizeof what, "'%c'", c);
            else
                snprintf(what, sizeof what, "a blank or control character");
            snprintf(why, whylen,
                     "topic \"%.*s%s\" holds %s at byte %zu: a topic name holds only A-Z a-z "
                     "0-9 . _ -",
                     60, topic, len > 60 ? "..." : "", what, i + 1);
            return false;
        }
    }
    return true;
}

/* Appends text to out (at *len); false when it would not fit. */
static bool append(char *out, size_t outlen, size_t *len, const char *text, size_t n)
{
    if (*len + n + 1 > outlen)
        return false;
    memcpy(out + *len, text, n);
    *len += n;
    out[*len] = '\0';
    return true;
}

static const char *placeholder(const char *name, size_t namelen, const char *const *names,
                               const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == namelen && strncmp(name, names[i], namelen) == 0)
            return values[i];
    return NULL;
}

bool kafka_topic_expand(const char *prefix, const char *template_text, const char *const *names,
                        const char *const *values, size_t n, char *out, size_t outlen, char *why,
                        size_t whylen)
{
    size_t len = 0;
    bool fits = append(out, outlen, &len, prefix, strlen(prefix));

    for (const char *p = template_text; fits && *p != '\0';) {
        const char *end = strncmp(p, "${", 2) == 0 ? strchr(p, '}') : NULL;
        if (end == NULL) {
            fits = append(out, outlen, &len, p, 1);
            p++;
            continue;
        }
        const char *value = placeholder(p + 2, (size_t)(end - p - 2), names, values, n);
        if (value == NULL) {
            snprintf(why, whylen,
                     "the template \"%s\" names ${%.*s}, which is not one of its "
                     "placeholders",
                     template_text, (int)(end - p - 2), p + 2);
            return false;
        }
        fits = append(out, outlen, &len, value, strlen(value));
        p = end + 1;
    }
    if (!fits) {
        snprintf(why, whylen, "the topic is longer than %d bytes", KAFKA_TOPIC_MAX);
        return false;
    }
    return legal_topic(out, why, whylen);
}

/* ---- settings -------------------------------------------------------------------------------- */

/*
 * A path setting left at its default "" comes back resolved against the configuration's folder
 * (so it ends with '/'), or empty when there is no folder: both mean "not set".
 */
static const char *optional_path(const walnotify_host *host, const char *name)
{
    const char *path = host->get_string(host, name);
    size_t len = path != NULL ? strlen(path) : 0;

    if (len == 0 || path[len - 1] == '/')
        return NULL;
    return path;
}

static bool read_brokers(const walnotify_host *host, kafka_settings *out)
{
    out->brokers = host->get_string(host, "brokers");
    if (out->brokers == NULL || out->brokers[0] == '\0') {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting brokers is required (the bootstrap brokers, \"host:port,...\")");
        return false;
    }
    return true;
}

/* The templates are checked with sample names: what they add themselves must be legal. */
static bool read_topics(const walnotify_host *host, kafka_settings *out)
{
    static const char *const table_names[] = {"schema", "table"};
    static const char *const table_samples[] = {"s", "t"};
    static const char *const message_names[] = {"prefix"};
    static const char *const message_samples[] = {"p"};
    char topic[KAFKA_TOPIC_MAX + 1], why[512];
    bool ok = true;

    out->topic = host->get_string(host, "topic");
    out->topic_prefix = host->get_string(host, "topic_prefix");
    out->message_topic = host->get_string(host, "message_topic");
    if (out->topic_prefix == NULL)
        out->topic_prefix = "";
    if (out->topic == NULL ||
        !kafka_topic_expand(out->topic_prefix, out->topic, table_names, table_samples, 2, topic,
                            sizeof topic, why, sizeof why)) {
        host->log(host, WALNOTIFY_LOG_ERROR, "settings topic_prefix and topic: %s",
                  out->topic == NULL ? "topic is empty" : why);
        ok = false;
    }
    if (out->message_topic == NULL ||
        !kafka_topic_expand(out->topic_prefix, out->message_topic, message_names, message_samples,
                            1, topic, sizeof topic, why, sizeof why)) {
        host->log(host, WALNOTIFY_LOG_ERROR, "settings topic_prefix and message_topic: %s",
                  out->message_topic == NULL ? "message_topic is empty" : why);
        ok = false;
    }
    return ok;
}

static bool read_key(const walnotify_host *host, kafka_settings *out)
{
    const char *key = host->get_string(host, "key");

    if (key != NULL && strcmp(key, "primary_key") == 0) {
        out->keyed = true;
        return true;
    }
    if (key != NULL && strcmp(key, "none") == 0) {
        out->keyed = false;
        return true;
    }
    host->log(host, WALNOTIFY_LOG_ERROR,
              "setting key is \"%s\": expected \"primary_key\" or "
              "\"none\"",
              key != NULL ? key : "");
    return false;
}

/*
 * One "name=value" item of `properties`: a name walnotify leaves to librdkafka, with a value
 * librdkafka takes. The value may be a secret: messages quote the name only.
 */
static bool check_property(const walnotify_host *host, rd_kafka_conf_t *conf, size_t index,
                           const char *item)
{
    const char *eq = item != NULL ? strchr(item, '=') : NULL;
    char name[256], errstr[512];
    const char *why;

    if (eq == NULL || eq == item || (size_t)(eq - item) >= sizeof name ||
        strlen(item) > PROPERTY_MAX) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting properties, item %zu: expected \"name=value\" (a name of at most %zu "
                  "bytes, an item of at most %d)",
                  index + 1, sizeof name - 1, PROPERTY_MAX);
        return false;
    }
    memcpy(name, item, (size_t)(eq - item));
    name[eq - item] = '\0';
    if (kafka_property_refused(name, &why)) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting properties, item %zu: %s is refused: %s (it keeps walnotify's delivery "
                  "promise)",
                  index + 1, name, why);
        return false;
    }
    if (rd_kafka_conf_set(conf, name, eq + 1, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        /* librdkafka's reason may quote the value: say it only when it does not. */
        host->log(host, WALNOTIFY_LOG_ERROR, "setting properties, item %zu (%s): %s", index + 1,
                  name,
                  eq[1] != '\0' && strstr(errstr, eq + 1) != NULL ? "librdkafka refuses the value"
                                                                  : errstr);
        return false;
    }
    return true;
}

static bool read_properties(const walnotify_host *host, kafka_settings *out)
{
    size_t n = host->get_list_length(host, "properties");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = true;

    if (conf == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++)
        ok = check_property(host, conf, i, host->get_list_item(host, "properties", i)) && ok;
    rd_kafka_conf_destroy(conf);
    out->properties_file = optional_path(host, "properties_file");
    return ok;
}

static bool read_numbers(const walnotify_host *host, kafka_settings *out)
{
    int64_t stop = host->get_integer(host, "stop_timeout_ms");

    if (stop < STOP_MIN_MS || stop > STOP_MAX_MS) {
        host->log(host, WALNOTIFY_LOG_ERROR, "setting stop_timeout_ms is %lld: expected %ld to %ld",
                  (long long)stop, STOP_MIN_MS, STOP_MAX_MS);
        return false;
    }
    out->stop_timeout_ms = (long)stop;
    return true;
}

bool kafka_settings_read(const walnotify_host *host, kafka_settings *out)
{
    bool ok = true;

    memset(out, 0, sizeof *out);
    ok = read_brokers(host, out) && ok;
    ok = read_topics(host, out) && ok;
    ok = read_key(host, out) && ok;
    out->tombstones = host->get_boolean(host, "tombstones");
    ok = read_properties(host, out) && ok;
    ok = read_numbers(host, out) && ok;
    return ok;
}
