/*
 * producer: librdkafka's idempotent producer, set up so that a long outage never fails some
 * messages while later ones succeed (message.timeout.ms = 0: librdkafka retries for ever), and
 * its delivery reports counted. librdkafka's own threads talk to the brokers; its delivery
 * reports and errors are served by a thread of the producer's own (rd_kafka_poll), so that the
 * host's thread only hands messages over (serving the reports took a sixth of its time per
 * message), and finds the counts under the producer's lock; its log lines go to the host's log,
 * which any thread may call.
 */
#include "producer.h"

#include "trust.h"

#include <librdkafka/rdkafka.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROPERTIES_FILE_MAX (64 * 1024) /* bytes of properties_file */
#define POLL_SLICE_MS 100               /* one wait for room in a full queue */
#define TOPICS_MAX 1024                 /* topic handles kept; past it, looked up per message */
#define SECRETS_MAX 64                  /* values of properties_file hidden from the log */
#define HEADER_POSITION "walnotify.position"
#define HEADER_ORDINAL "walnotify.ordinal"

typedef struct topic_handle {
    char *name; /* owned */
    rd_kafka_topic_t *rkt;
} topic_handle;

struct kafka_producer {
    const walnotify_host *host; /* borrowed until shutdown */
    const kafka_settings *settings;
    rd_kafka_conf_t *conf; /* the configuration each producer is made from */
    rd_kafka_t *rk;
    topic_handle topics[TOPICS_MAX];
    size_t ntopics;
    size_t last_topic; /* index of the last one used */

    uint64_t sent; /* messages handed over to rk (the host's thread only) */

    /* What the reports said, written by the thread serving them. */
    pthread_mutex_t lock;    /* confirmed, failures, nfailures, last_error */
    pthread_cond_t reported; /* signalled at every delivery report */
    uint64_t confirmed;      /* delivery reports, successful or failed */
    kafka_failure failures[KAFKA_FAILURES_MAX];
    size_t nfailures;
    rd_kafka_resp_err_t last_error; /* the last error reported, said once */
    pthread_t server;               /* serves rk's reports while serving */
    bool serving;
    atomic_bool stopping; /* tells server to end */

    kafka_failure taken[KAFKA_FAILURES_MAX]; /* what kafka_producer_failures returned */

    /* properties_file's text, its values kept (read only once open returned) so that no log
     * line shows one: librdkafka's reasons quote values. Wiped at close. */
    char *secret_text;
    size_t secret_length;
    const char *secrets[SECRETS_MAX];
    size_t nsecrets;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- what librdkafka reports ----------------------------------------------------------------- */

static uint64_t header_number(rd_kafka_headers_t *headers, const char *name)
{
    const void *value = NULL;
    size_t size = 0;
    char text[24];

    if (headers == NULL || rd_kafka_header_get_last(headers, name, &value, &size) != 0 ||
        value == NULL || size == 0 || size >= sizeof text)
        return 0;
    memcpy(text, value, size);
    text[size] = '\0';
    return strtoull(text, NULL, 10);
}

static void id_text(walnotify_id id, char *out, size_t outlen)
{
    uint32_t seq = (uint32_t)(id.ordinal >> 32);

    if ((id.ordinal & 0xffffffffu) == 0 && seq > 0)
        snprintf(out, outlen, "%X/%X seq %" PRIu32, (unsigned)(id.position >> 32),
                 (unsigned)id.position, seq - 1);
    else
        snprintf(out, outlen, "%X/%X ordinal %" PRIu64, (unsigned)(id.position >> 32),
                 (unsigned)id.position, id.ordinal);
}

/* A failed message joins the last range when it is of the same transaction. */
static void record_failure(kafka_producer *p, walnotify_id id, const char *topic,
                           rd_kafka_resp_err_t err)
{
    kafka_failure *f = p->nfailures > 0 ? &p->failures[p->nfailures - 1] : NULL;
    char ident[64];

    if (f != NULL && (f->first.position == id.position || p->nfailures == KAFKA_FAILURES_MAX)) {
        if (id.position < f->first.position ||
            (id.position == f->first.position && id.ordinal < f->first.ordinal))
            f->first = id;
        if (id.position > f->last.position ||
            (id.position == f->last.position && id.ordinal > f->last.ordinal))
            f->last = id;
        return;
    }
    f = &p->failures[p->nfailures++];
    f->first = id;
    f->last = id;
    id_text(id, ident, sizeof ident);
    snprintf(f->reason, sizeof f->reason, "Kafka refused the message of event %s to topic %s: %s",
             ident, topic, rd_kafka_err2str(err));
    p->host->log(p->host, WALNOTIFY_LOG_ERROR, "%s", f->reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    kafka_producer *p = opaque;
    rd_kafka_headers_t *headers = NULL;
    walnotify_id id;

    (void)rk;
    pthread_mutex_lock(&p->lock);
    p->confirmed++;
    /* A purge drops messages of a producer being replaced or closed: the caller rewinds, or
     * nothing of them was acknowledged. */
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR && msg->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
        msg->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        rd_kafka_message_headers(msg, &headers);
        id.position = header_number(headers, HEADER_POSITION);
        id.ordinal = header_number(headers, HEADER_ORDINAL);
        record_failure(p, id, rd_kafka_topic_name(msg->rkt), msg->err);
    }
    pthread_cond_broadcast(&p->reported);
    pthread_mutex_unlock(&p->lock);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_producer *p = opaque;
    bool repeated;

    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        return; /* found by kafka_producer_dead, and said there */
    /* An outage repeats its error on every attempt: say it when it changes. */
    pthread_mutex_lock(&p->lock);
    repeated = err == (int)p->last_error;
    p->last_error = err;
    pthread_mutex_unlock(&p->lock);
    if (repeated)
        return;
    p->host->log(p->host, WALNOTIFY_LOG_WARNING, "librdkafka: %s (messages wait and go again)",
                 reason);
}

/*
 * A text of librdkafka's (a log line, a reason) with every value properties_file holds replaced
 * by "(hidden)", and whatever follows "set to `" (how its configuration warnings quote a
 * value) too.
 */
static void redact(const kafka_producer *p, const char *text, char *out, size_t outlen)
{
    static const char marker[] = "set to `";
    size_t len = 0;

    while (*text != '\0' && len + 1 < outlen) {
        size_t skip = 0;
        for (size_t i = 0; i < p->nsecrets && skip == 0; i++)
            if (strncmp(text, p->secrets[i], strlen(p->secrets[i])) == 0)
                skip = strlen(p->secrets[i]);
        if (skip == 0 && strncmp(text, marker, sizeof marker - 1) == 0) {
            const char *close = strchr(text + sizeof marker - 1, '`');
            skip = close != NULL ? (size_t)(close - text) : strlen(text);
            len += (size_t)snprintf(out + len, outlen - len, "%s", marker);
        }
        if (skip > 0 && len + 1 < outlen) {
            len += (size_t)snprintf(out + len, outlen - len, "(hidden)");
            text += skip;
            continue;
        }
        out[len++] = *text++;
    }
    out[len < outlen ? len : outlen - 1] = '\0';
}

static void on_log(const rd_kafka_t *rk, int level, const char *facility, const char *text)
{
    kafka_producer *p = rd_kafka_opaque(rk);
    char shown[1024];

    /* Connection failures come as errors; an outage is a WARNING, the plugin says what waits. */
    redact(p, text, shown, sizeof shown);
    p->host->log(p->host, level <= 4 ? WALNOTIFY_LOG_WARNING : WALNOTIFY_LOG_DEBUG,
                 "librdkafka %s: %s", facility, shown);
}

/* ---- configuration --------------------------------------------------------------------------- */

static char *trim(char *s)
{
    char *end = s + strlen(s);

    while (isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* One line of properties_file; the value is a secret: messages name the line and the name. */
static bool file_property(kafka_producer *p, rd_kafka_conf_t *conf, const char *path, size_t lineno,
                          char *line)
{
    const walnotify_host *host = p->host;
    char *eq, *name, *value, errstr[512];
    const char *why;

    line = trim(line);
    if (line[0] == '\0' || line[0] == '#')
        return true;
    eq = strchr(line, '=');
    if (eq == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "properties_file %s, line %zu: expected \"name=value\"", path, lineno);
        return false;
    }
    *eq = '\0';
    name = trim(line);
    value = trim(eq + 1);
    if (value[0] != '\0' && p->nsecrets < SECRETS_MAX)
        p->secrets[p->nsecrets++] = value;
    if (kafka_property_refused(name, &why)) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "properties_file %s, line %zu: %s is refused: %s (it keeps walnotify's "
                  "delivery promise)",
                  path, lineno, name, why);
        return false;
    }
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "properties_file %s, line %zu: librdkafka refuses %s or its value", path, lineno,
                  name);
        return false;
    }
    return true;
}

static bool apply_properties_file(kafka_producer *p, rd_kafka_conf_t *conf, const char *path)
{
    size_t lineno = 0;
    char *save = NULL, why[1024];
    bool ok = true;

    /* The file follows walnotify's rule for a file holding a secret (trust.h). Its length is
     * kept: the lines are cut in place, and the whole text is wiped at the end. */
    p->secret_text =
        wn_trust_read_secret("properties_file", path, PROPERTIES_FILE_MAX, why, sizeof why);
    if (p->secret_text == NULL) {
        p->host->log(p->host, WALNOTIFY_LOG_ERROR, "%s", why);
        return false;
    }
    p->secret_length = strlen(p->secret_text);
    for (char *line = p->secret_text; ok && line != NULL; line = save) {
        save = strchr(line, '\n');
        if (save != NULL)
            *save++ = '\0';
        ok = file_property(p, conf, path, ++lineno, line);
    }
    return ok;
}

static bool set(const walnotify_host *host, rd_kafka_conf_t *conf, const char *name,
                const char *value)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) == RD_KAFKA_CONF_OK)
        return true;
    host->log(host, WALNOTIFY_LOG_ERROR, "librdkafka property %s: %s", name, errstr);
    return false;
}

/*
 * The configuration: walnotify's defaults, the user's properties (which may change the
 * partitioner, linger, compression, security), then what the promise needs, which no property
 * may change (settings.c refuses those names).
 */
static rd_kafka_conf_t *make_conf(kafka_producer *p)
{
    const walnotify_host *host = p->host;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    size_t n = host->get_list_length(host, "properties");
    bool ok = conf != NULL;

    ok = ok && set(host, conf, "partitioner", "murmur2_random");
    for (size_t i = 0; ok && i < n; i++) {
        const char *item = host->get_list_item(host, "properties", i);
        const char *eq = strchr(item, '=');
        char name[256], errstr[512];
        snprintf(name, sizeof name, "%.*s", (int)(eq - item), item);
        ok = rd_kafka_conf_set(conf, name, eq + 1, errstr, sizeof errstr) == RD_KAFKA_CONF_OK;
    }
    if (ok && p->settings->properties_file != NULL)
        ok = apply_properties_file(p, conf, p->settings->properties_file);
    ok = ok && set(host, conf, "bootstrap.servers", p->settings->brokers) &&
         set(host, conf, "enable.idempotence", "true") && set(host, conf, "acks", "all") &&
         set(host, conf, "message.timeout.ms", "0");
    if (!ok) {
        if (conf != NULL)
            rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    return conf;
}

/* ---- the producer ---------------------------------------------------------------------------- */

/* The reports' own thread: rd_kafka_poll runs their callbacks here, until stop_serving. */
static void *serve_reports(void *arg)
{
    kafka_producer *p = arg;

    while (!atomic_load(&p->stopping))
        rd_kafka_poll(p->rk, POLL_SLICE_MS);
    return NULL;
}

static void stop_serving(kafka_producer *p)
{
    if (!p->serving)
        return;
    /* The poll under way ends within its slice (rd_kafka_yield would only stop this thread's
     * own: its flag is the calling thread's). */
    atomic_store(&p->stopping, true);
    pthread_join(p->server, NULL);
    p->serving = false;
}

static bool start(kafka_producer *p)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(p->conf);
    char errstr[512], shown[1024];

    if (conf == NULL) {
        p->host->log(p->host, WALNOTIFY_LOG_ERROR, "out of memory");
        return false;
    }
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (p->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        redact(p, errstr, shown, sizeof shown);
        p->host->log(p->host, WALNOTIFY_LOG_ERROR, "cannot start the Kafka producer: %s", shown);
        return false;
    }
    p->sent = 0;
    p->confirmed = 0;
    p->nfailures = 0;
    p->last_error = RD_KAFKA_RESP_ERR_NO_ERROR;
    atomic_store(&p->stopping, false);
    p->serving = pthread_create(&p->server, NULL, serve_reports, p) == 0;
    if (!p->serving) {
        p->host->log(p->host, WALNOTIFY_LOG_ERROR,
                     "cannot start the thread serving Kafka's delivery reports");
        rd_kafka_destroy(p->rk);
        p->rk = NULL;
        return false;
    }
    return true;
}

/* The reports not yet served. */
static uint64_t unconfirmed(kafka_producer *p)
{
    uint64_t left;

    pthread_mutex_lock(&p->lock);
    left = p->sent - p->confirmed;
    pthread_mutex_unlock(&p->lock);
    return left;
}

/* Drops what the producer holds after waiting up to wait_ms for it. */
static void stop(kafka_producer *p, long wait_ms)
{
    uint64_t left;

    if (p->rk == NULL)
        return;
    /* From here the reports are served on this thread, by flush and poll. */
    stop_serving(p);
    rd_kafka_flush(p->rk, wait_ms > INT32_MAX ? INT32_MAX : (int)wait_ms);
    left = unconfirmed(p);
    if (left > 0) {
        p->host->log(p->host, WALNOTIFY_LOG_WARNING,
                     "dropping %" PRIu64 " messages Kafka has not confirmed (none of them was "
                     "acknowledged to PostgreSQL: they come again)",
                     left);
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                                  RD_KAFKA_PURGE_F_NON_BLOCKING);
        rd_kafka_poll(p->rk, 0);
    }
    for (size_t i = 0; i < p->ntopics; i++) {
        rd_kafka_topic_destroy(p->topics[i].rkt);
        free(p->topics[i].name);
    }
    p->ntopics = 0;
    p->last_topic = 0;
    rd_kafka_destroy(p->rk);
    p->rk = NULL;
}

/* The lock and the condition variable, on the monotonic clock (settle's deadlines). */
static bool init_lock(kafka_producer *p)
{
    pthread_condattr_t attr;
    bool ok;

    if (pthread_mutex_init(&p->lock, NULL) != 0)
        return false;
    ok = pthread_condattr_init(&attr) == 0;
    ok = ok && pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
         pthread_cond_init(&p->reported, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (!ok)
        pthread_mutex_destroy(&p->lock);
    return ok;
}

kafka_producer *kafka_producer_open(const walnotify_host *host, const kafka_settings *settings)
{
    kafka_producer *p = calloc(1, sizeof *p);

    if (p == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return NULL;
    }
    p->host = host;
    p->settings = settings;
    if (!init_lock(p)) {
        host->log(host, WALNOTIFY_LOG_ERROR, "cannot make the producer's lock");
        free(p);
        return NULL;
    }
    p->conf = make_conf(p);
    if (p->conf == NULL || !start(p)) {
        kafka_producer_close(p, 0);
        return NULL;
    }
    return p;
}

void kafka_producer_close(kafka_producer *p, long wait_ms)
{
    if (p == NULL)
        return;
    stop(p, wait_ms);
    pthread_cond_destroy(&p->reported);
    pthread_mutex_destroy(&p->lock);
    if (p->conf != NULL)
        rd_kafka_conf_destroy(p->conf);
    if (p->secret_text != NULL)
        explicit_bzero(p->secret_text, p->secret_length);
    free(p->secret_text);
    free(p);
}

bool kafka_producer_restart(kafka_producer *p)
{
    stop(p, 0);
    return start(p);
}

bool kafka_producer_dead(kafka_producer *p, const char **reason)
{
    static _Thread_local char text[512];

    if (p->rk == NULL) {
        *reason = "the producer could not be started again";
        return true;
    }
    if (rd_kafka_fatal_error(p->rk, text, sizeof text) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    *reason = text;
    return true;
}

/* The topic's handle, made on first use and kept; past TOPICS_MAX topics one made for the
 * message, which *once tells the caller to destroy after use. */
static rd_kafka_topic_t *topic_of(kafka_producer *p, const char *name, bool *once)
{
    rd_kafka_topic_t *rkt;
    char *copy;

    *once = false;
    if (p->ntopics > 0 && strcmp(p->topics[p->last_topic].name, name) == 0)
        return p->topics[p->last_topic].rkt;
    for (size_t i = 0; i < p->ntopics; i++) {
        if (strcmp(p->topics[i].name, name) == 0) {
            p->last_topic = i;
            return p->topics[i].rkt;
        }
    }
    rkt = rd_kafka_topic_new(p->rk, name, NULL);
    if (rkt == NULL)
        return NULL;
    if (p->ntopics == TOPICS_MAX || (copy = strdup(name)) == NULL) {
        *once = true;
        return rkt;
    }
    p->topics[p->ntopics] = (topic_handle){.name = copy, .rkt = rkt};
    p->last_topic = p->ntopics++;
    return rkt;
}

/*
 * The headers' numbers are written by hand: five snprintf calls took a third of the plugin's own
 * time per message, more than librdkafka's producev.
 */

/* v in decimal into out (at least 21 bytes); its length, without the NUL. */
static size_t decimal_text(uint64_t v, char *out)
{
    char digits[20];
    size_t n = 0;

    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* v in upper-case hexadecimal without leading zeros into out (at least 9 bytes); its length. */
static size_t hex_text(uint32_t v, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    char digits[8];
    size_t n = 0;

    do {
        digits[n++] = hex[v & 0xf];
        v >>= 4;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* An LSN as PostgreSQL prints it, 0/1A2B3C8, into out (at least 18 bytes); its length. */
static size_t lsn_text(uint64_t lsn, char *out)
{
    size_t n = hex_text((uint32_t)(lsn >> 32), out);

    out[n++] = '/';
    return n + hex_text((uint32_t)lsn, out + n);
}

static void add_header(rd_kafka_headers_t *h, const char *name, size_t name_length,
                       const char *value, size_t value_length)
{
    rd_kafka_header_add(h, name, (ssize_t)name_length, value, (ssize_t)value_length);
}

#define ADD_HEADER(h, name, value, length) add_header(h, name, sizeof name - 1, value, length)

/* The headers every message carries: its event's identity, commit LSN, seq, xid, op, table. */
static rd_kafka_headers_t *make_headers(const kafka_message *m)
{
    const walnotify_event *ev = m->event;
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    char position[24], ordinal[24], lsn[24], seq[24], xid[24];

    ADD_HEADER(h, HEADER_POSITION, position, decimal_text(ev->id.position, position));
    ADD_HEADER(h, HEADER_ORDINAL, ordinal, decimal_text(ev->id.ordinal, ordinal));
    ADD_HEADER(h, "walnotify.lsn", lsn, lsn_text(ev->commit_lsn, lsn));
    ADD_HEADER(h, "walnotify.seq", seq, decimal_text(ev->seq, seq));
    ADD_HEADER(h, "walnotify.xid", xid, decimal_text(ev->xid, xid));
    ADD_HEADER(h, "walnotify.op", m->op, strlen(m->op));
    if (ev->table != NULL)
        ADD_HEADER(h, "walnotify.table", ev->table, strlen(ev->table));
    return h;
}

static kafka_sent refused(kafka_producer *p, const kafka_message *m, rd_kafka_resp_err_t err)
{
    char ident[64];

    id_text(m->event->id, ident, sizeof ident);
    p->host->log(p->host, WALNOTIFY_LOG_ERROR,
                 "Kafka refuses the message of event %s to topic %s: %s", ident, m->topic,
                 rd_kafka_err2str(err));
    return KAFKA_REFUSED;
}

/* The deadline (CLOCK_MONOTONIC milliseconds) as a timespec for pthread_cond_timedwait. */
static struct timespec at_ms(int64_t ms)
{
    return (struct timespec){.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
}

/* Waits, up to the deadline, for the next delivery report. */
static void wait_report(kafka_producer *p, int64_t deadline)
{
    struct timespec until = at_ms(deadline);
    uint64_t seen;

    pthread_mutex_lock(&p->lock);
    seen = p->confirmed;
    while (p->confirmed == seen &&
           pthread_cond_timedwait(&p->reported, &p->lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&p->lock);
}

static rd_kafka_resp_err_t produce(kafka_producer *p, rd_kafka_topic_t *rkt, const kafka_message *m,
                                   long wait_ms)
{
    int64_t deadline = -1; /* the clock is read only once the queue is full */
    rd_kafka_headers_t *headers = make_headers(m);
    rd_kafka_resp_err_t err;

    for (;;) {
        err = rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(m->partition),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(m->key, m->key_length),
                                RD_KAFKA_V_VALUE((void *)m->value, m->value_length),
                                RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        /* Room comes as the brokers confirm: wait for their reports, a bounded while. */
        if (deadline < 0)
            deadline = now_ms() + wait_ms;
        if (now_ms() >= deadline)
            break;
        wait_report(p, now_ms() + POLL_SLICE_MS);
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        p->sent++;
    else
        rd_kafka_headers_destroy(headers);
    return err;
}

kafka_sent kafka_producer_send(kafka_producer *p, const kafka_message *m, long wait_ms)
{
    bool once;
    rd_kafka_topic_t *rkt = topic_of(p, m->topic, &once);
    rd_kafka_resp_err_t err;

    if (rkt == NULL)
        return refused(p, m, rd_kafka_last_error());
    err = produce(p, rkt, m, wait_ms);
    if (once)
        rd_kafka_topic_destroy(rkt);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return KAFKA_SENT;
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return KAFKA_QUEUE_FULL;
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        return KAFKA_PRODUCER_DEAD;
    return refused(p, m, err);
}

int kafka_producer_partitions(kafka_producer *p, const char *topic, long wait_ms, bool *permanent)
{
    bool once;
    rd_kafka_topic_t *rkt = topic_of(p, topic, &once);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    int count = -1;

    *permanent = false;
    if (rkt == NULL)
        return -1;
    err = rd_kafka_metadata(p->rk, 0, rkt, &md, (int)wait_ms);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1)
        err = md->topics[0].err;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        count = md->topics[0].partition_cnt;
    else
        p->host->log(p->host, WALNOTIFY_LOG_ERROR, "cannot learn the partitions of topic %s: %s",
                     topic, rd_kafka_err2str(err));
    *permanent = err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                 err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                 err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    if (once)
        rd_kafka_topic_destroy(rkt);
    return count;
}

/* Waits for the reports until none is missing, one failed, or the wait is over. */
bool kafka_producer_settle(kafka_producer *p, long wait_ms)
{
    struct timespec until = at_ms(now_ms() + wait_ms);
    bool done;

    pthread_mutex_lock(&p->lock);
    while (wait_ms > 0 && p->sent > p->confirmed && p->nfailures == 0 &&
           pthread_cond_timedwait(&p->reported, &p->lock, &until) != ETIMEDOUT)
        ;
    done = p->sent == p->confirmed;
    pthread_mutex_unlock(&p->lock);
    return done;
}

const kafka_failure *kafka_producer_failures(kafka_producer *p, size_t *count)
{
    pthread_mutex_lock(&p->lock);
    *count = p->nfailures;
    memcpy(p->taken, p->failures, p->nfailures * sizeof p->failures[0]);
    p->nfailures = 0;
    pthread_mutex_unlock(&p->lock);
    return p->taken;
}

uint64_t kafka_producer_unconfirmed(kafka_producer *p)
{
    return unconfirmed(p);
}
