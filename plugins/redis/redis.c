/*
 * redis: walnotify's Redis Streams sink, exactly once. Every event becomes one stream entry
 * (XADD) whose ID is the event's identity, "position-ordinal"; its fields are lsn, seq, xid, op,
 * table and data (the event's canonical JSON).
 *
 * Batches: entries are gathered, across transactions, up to batch_entries, and go in one
 * pipelined MULTI ... EXEC, with, per stream of the batch, a script that records the stream's
 * last ID in the key "<stream>:walnotify-last-id" when the stream's top is the batch's last
 * entry there (so only IDs that walnotify itself put there are recorded). A full batch is sent
 * from handle without waiting for its reply, which is read when the next batch is full or at
 * the next flush: Redis works while walnotify decodes, and at most two batches are held. flush
 * sends what is gathered and reads every reply, so the host acknowledges nothing Redis has not
 * answered. An event that comes again (a rewind, an abort) at or below the last one gathered
 * is in a batch or in Redis already, and is not gathered twice.
 *
 * Exactly once: Redis refuses an XADD whose ID is not above the stream's top with "ERR The ID
 * specified in XADD is equal or smaller than the target stream top item". A refused ID at or
 * below the recorded last ID was delivered before (a replay after a crash, a rewind, or a batch
 * sent again): nothing to do. One above it means that another writer put a larger ID there: the
 * events are named as failed (permanent), so the block's on_error policy takes them, and the
 * message names the stream and both IDs.
 *
 * Failures: no connection at a send answers RETRY (the block's backoff), the batch kept. A
 * connection lost while a batch was out, or a batch refused whole (EXECABORT), leaves unknown
 * or undone what Redis applied: both batches are dropped and the host rewinds (the IDs make what
 * comes again safe). A refused login is an ERROR at init (the host stops, exit 2) and a
 * transient failure later.
 */
#include <walnotify/plugin.h>

#include "batch.h"
#include "conn.h"
#include "settings.h"
#include "template.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef WALNOTIFY_VERSION
#define WALNOTIFY_VERSION "1.0.0"
#endif

#define ID_TEXT_MAX 48
#define REASON_MAX 1024
#define LAST_ID_SUFFIX ":walnotify-last-id"

/* The ID refusal's text, as Redis 5 to 7 word it. */
static const char id_refused[] = "ERR The ID specified in XADD is equal or smaller";

/*
 * Records ARGV[1] as KEYS[1]'s last ID in KEYS[2] when it is the stream's top (every XADD of the
 * batch to it went in), and answers {recorded last ID or "", the stream's top or ""}. The top
 * is the stream's last-generated-id, which trimming and XDEL leave alone.
 */
static const char record_script[] =
    "local top = ''\n"
    "local info = redis.pcall('XINFO', 'STREAM', KEYS[1])\n"
    "if type(info) == 'table' and info.err == nil then\n"
    "  for i = 1, #info, 2 do\n"
    "    if info[i] == 'last-generated-id' then top = info[i + 1] end\n"
    "  end\n"
    "end\n"
    "if top == ARGV[1] then redis.call('SET', KEYS[2], top) end\n"
    "return {redis.call('GET', KEYS[2]) or '', top}\n";

typedef struct redis_state {
    const walnotify_host *host;
    redis_settings settings;
    redis_conn *conn;
    batch batch; /* being filled */
    batch sent;  /* sent, its EXEC not read yet (when in_flight) */
    bool in_flight;
    walnotify_id *sent_last; /* per stream of `sent`: its last entry there (0-0: none) */
    size_t sent_last_cap;    /* elements of sent_last */
    size_t sent_scripts;     /* the scripts sent after its entries */
    walnotify_id queued_top; /* the last event added to a batch (or 0-0): what comes again
                                at or below it is in a batch or in Redis already */
    walnotify_id txn_top;    /* queued_top when the transaction in hand began */
    size_t txn_count;        /* entries in the batch when the transaction in hand began */
    size_t txn_len;          /* and its bytes */
    char *tail;              /* the scripts and EXEC of the batch being sent */
    size_t tail_len, tail_cap;
    uint64_t replays; /* entries Redis already held, since the last log line about them */
} redis_state;

/* ---- failures the host handles --------------------------------------------------------------- */

static walnotify_status name_failed(redis_state *st, walnotify_id first, walnotify_id last,
                                    const char *reason)
{
    const walnotify_host *host = st->host;

    if (host->fail_events == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "cannot hand the failed events to the block's on_error policy: this host does "
                  "not provide fail_events; stopping (%s)",
                  reason);
        return WALNOTIFY_FATAL;
    }
    return host->fail_events(host, first, last, WALNOTIFY_FAILURE_PERMANENT, reason);
}

static walnotify_status ask_rewind(redis_state *st, const char *reason)
{
    const walnotify_host *host = st->host;

    if (host->rewind == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "cannot ask for the lost batch again: this host does not provide rewind; "
                  "stopping (%s)",
                  reason);
        return WALNOTIFY_FATAL;
    }
    return host->rewind(host, reason);
}

/* ---- IDs ------------------------------------------------------------------------------------- */

/* "a-b" read into an identity; false when the text is not one. */
static bool parse_id(const char *text, walnotify_id *id)
{
    char *end;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return false;
    id->position = strtoull(text, &end, 10);
    if (*end != '-' || end[1] < '0' || end[1] > '9')
        return false;
    id->ordinal = strtoull(end + 1, &end, 10);
    return *end == '\0';
}

static bool id_above(walnotify_id a, walnotify_id b)
{
    return a.position > b.position || (a.position == b.position && a.ordinal > b.ordinal);
}

/* ---- sending a batch ------------------------------------------------------------------------- */

static bool tail_put(redis_state *st, const char *text, size_t len)
{
    if (st->tail_len + len > st->tail_cap) {
        size_t cap = st->tail_cap > 0 ? st->tail_cap : 4096;
        while (cap < st->tail_len + len)
            cap *= 2;
        char *tail = realloc(st->tail, cap);
        if (tail == NULL)
            return false;
        st->tail = tail;
        st->tail_cap = cap;
    }
    memcpy(st->tail + st->tail_len, text, len);
    st->tail_len += len;
    return true;
}

static bool tail_bulk(redis_state *st, const char *text)
{
    char head[32];
    size_t len = strlen(text);

    return tail_put(st, head, (size_t)snprintf(head, sizeof head, "$%zu\r\n", len)) &&
           tail_put(st, text, len) && tail_put(st, "\r\n", 2);
}

/* The last entry of each stream of the batch; last[i] zero when stream i has none. */
static void last_ids(const batch *b, walnotify_id *last)
{
    memset(last, 0, b->nstreams * sizeof *last);
    for (size_t i = 0; i < b->count; i++)
        last[b->entries[i].stream] = b->entries[i].id;
}

/* One EVAL of record_script per stream with entries, then EXEC; *nscripts of them. */
static bool build_tail(redis_state *st, const batch *b, const walnotify_id *last, size_t *nscripts)
{
    char key[REDIS_STREAM_MAX + sizeof LAST_ID_SUFFIX], id[ID_TEXT_MAX];
    bool ok = true;

    st->tail_len = 0;
    *nscripts = 0;
    for (size_t i = 0; i < b->nstreams && ok; i++) {
        if (last[i].position == 0 && last[i].ordinal == 0)
            continue;
        snprintf(key, sizeof key, "%s%s", b->streams[i], LAST_ID_SUFFIX);
        batch_id_text(last[i], id, sizeof id);
        ok = tail_put(st, "*6\r\n", 4) && tail_bulk(st, "EVAL") && tail_bulk(st, record_script) &&
             tail_bulk(st, "2") && tail_bulk(st, b->streams[i]) && tail_bulk(st, key) &&
             tail_bulk(st, id);
        (*nscripts)++;
    }
    return ok && tail_put(st, "*1\r\n$4\r\nEXEC\r\n", 14);
}

/* What one stream's script answered: the last ID walnotify recorded, and the stream's top. */
typedef struct stream_top {
    walnotify_id recorded; /* 0-0 when none */
    char top[ID_TEXT_MAX]; /* "" when the stream is missing */
} stream_top;

static bool read_tops(const redisReply *exec, size_t first, const walnotify_id *last,
                      size_t nstreams, stream_top *tops)
{
    size_t at = first;

    memset(tops, 0, nstreams * sizeof *tops);
    for (size_t i = 0; i < nstreams; i++) {
        if (last[i].position == 0 && last[i].ordinal == 0)
            continue;
        const redisReply *r = exec->element[at++];
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
            return false;
        if (r->element[0]->str[0] != '\0' && !parse_id(r->element[0]->str, &tops[i].recorded))
            return false;
        snprintf(tops[i].top, sizeof tops[i].top, "%s", r->element[1]->str);
    }
    return true;
}

/* What the EXEC reply says of the entries that were refused. */
typedef struct refusals {
    size_t failed;            /* entries refused for good */
    walnotify_id first, last; /* the first and last of them */
    char reason[REASON_MAX];  /* about the first */
    size_t replays;           /* entries Redis held already */
} refusals;

static void refuse(refusals *out, walnotify_id id, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(refusals *out, walnotify_id id, const char *format, ...)
{
    va_list ap;

    if (out->failed++ == 0) {
        out->first = id;
        va_start(ap, format);
        vsnprintf(out->reason, sizeof out->reason, format, ap);
        va_end(ap);
    }
    out->last = id;
}

static void judge_entry(const batch *b, const batch_entry *e, const redisReply *r,
                        const stream_top *tops, refusals *out)
{
    const char *stream = b->streams[e->stream];
    const stream_top *top = &tops[e->stream];
    char id[ID_TEXT_MAX], recorded[ID_TEXT_MAX];

    if (r->type != REDIS_REPLY_ERROR)
        return;
    batch_id_text(e->id, id, sizeof id);
    if (strncmp(r->str, id_refused, sizeof id_refused - 1) != 0) {
        refuse(out, e->id, "stream %s refused entry %s: %s", stream, id, r->str);
        return;
    }
    if (!id_above(e->id, top->recorded)) {
        out->replays++;
        return;
    }
    batch_id_text(top->recorded, recorded, sizeof recorded);
    refuse(out, e->id,
           "stream %s refused entry %s: its top is %s, above the last ID walnotify put there "
           "(%s, key %s%s): another writer adds entries to this stream",
           stream, id, top->top[0] != '\0' ? top->top : "unknown",
           top->recorded.position != 0 || top->recorded.ordinal != 0 ? recorded : "none", stream,
           LAST_ID_SUFFIX);
}

/* Reads the EXEC reply of the batch sent: every entry in, held before, or refused. */
static walnotify_status judge(redis_state *st, const redisReply *exec)
{
    const batch *b = &st->sent;
    stream_top *tops = calloc(b->nstreams + 1, sizeof *tops);
    refusals out = {0};
    walnotify_status status = WALNOTIFY_OK;

    if (tops == NULL) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "out of memory reading an EXEC reply");
        return WALNOTIFY_FATAL;
    }
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != b->count + st->sent_scripts ||
        !read_tops(exec, b->count, st->sent_last, b->nstreams, tops)) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "the EXEC of %zu entries was answered with something else than their "
                      "results: stopping",
                      b->count);
        free(tops);
        return WALNOTIFY_FATAL;
    }
    for (size_t i = 0; i < b->count; i++)
        judge_entry(b, &b->entries[i], exec->element[i], tops, &out);
    free(tops);
    st->replays += out.replays;
    if (out.failed > 0) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "%s (%zu entries refused)", out.reason,
                      out.failed);
        status = name_failed(st, out.first, out.last, out.reason);
    }
    return status;
}

/*
 * What Redis did of the batches is unknown (a lost connection), or it refused the batch sent:
 * both batches are dropped, and walnotify streams again from the last acknowledged position;
 * what comes again and is in Redis already is refused as delivered.
 */
static walnotify_status drop_batches(redis_state *st, const char *why)
{
    st->host->log(st->host, WALNOTIFY_LOG_WARNING, "%zu entries not known to be in Redis: %s",
                  st->batch.count + (st->in_flight ? st->sent.count : 0), why);
    batch_clear(&st->batch);
    batch_clear(&st->sent);
    st->in_flight = false;
    st->queued_top = st->txn_top = (walnotify_id){0, 0};
    st->txn_count = 0;
    st->txn_len = st->batch.len;
    return ask_rewind(st, why);
}

/* Reads the EXEC reply of the batch in flight, if any. OK when Redis holds all of it. */
static walnotify_status settle(redis_state *st)
{
    redisReply *exec = NULL;
    char why[REDIS_WHY_MAX], reason[REASON_MAX];
    walnotify_status status;

    if (!st->in_flight)
        return WALNOTIFY_OK;
    if (redis_conn_collect(st->conn, 1 + st->sent.count + st->sent_scripts + 1, &exec, why,
                           sizeof why) != REDIS_CONN_OK)
        return drop_batches(st, why);
    if (exec->type == REDIS_REPLY_ERROR || exec->type == REDIS_REPLY_NIL) {
        /* EXECABORT: a command was refused while queued (out of memory under maxmemory, a
         * read-only replica...); nothing of the batch went in. */
        snprintf(reason, sizeof reason, "Redis refused the batch of %zu entries: %s",
                 st->sent.count,
                 why[0] != '\0'                    ? why
                 : exec->type == REDIS_REPLY_ERROR ? exec->str
                                                   : "EXEC answered nil");
        freeReplyObject(exec);
        return drop_batches(st, reason);
    }
    /* Whatever the verdict, the batch is done with: Redis holds what it took, and what it
     * refused is named to the host. */
    status = judge(st, exec);
    freeReplyObject(exec);
    batch_clear(&st->sent);
    st->in_flight = false;
    return status;
}

static bool keep_last_ids(redis_state *st, const batch *b)
{
    if (b->nstreams > st->sent_last_cap) {
        walnotify_id *last = realloc(st->sent_last, b->nstreams * sizeof *last);
        if (last == NULL)
            return false;
        st->sent_last = last;
        st->sent_last_cap = b->nstreams;
    }
    last_ids(b, st->sent_last);
    return true;
}

/*
 * Sends the batch being filled (MULTI, its XADDs, the scripts, EXEC) without waiting for the
 * reply, which settle reads: walnotify decodes the next events while Redis works. Nothing may be
 * in flight. RETRY, the batch kept, when there is no connection.
 */
static walnotify_status launch(redis_state *st)
{
    batch *b = &st->batch, spare;
    char why[REDIS_WHY_MAX];

    if (redis_conn_ensure(st->conn, why, sizeof why) != REDIS_CONN_OK) {
        st->host->log(st->host, WALNOTIFY_LOG_WARNING, "will retry: %s", why);
        return WALNOTIFY_RETRY;
    }
    if (!keep_last_ids(st, b) || !build_tail(st, b, st->sent_last, &st->sent_scripts)) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "out of memory sending %zu entries", b->count);
        return WALNOTIFY_RETRY;
    }
    if (redis_conn_send(st->conn, b->data, b->len, st->tail, st->tail_len, why, sizeof why) !=
        REDIS_CONN_OK)
        return drop_batches(st, why);
    spare = st->sent;
    st->sent = *b;
    *b = spare;
    batch_clear(b);
    st->in_flight = true;
    st->txn_count = 0;
    st->txn_len = b->len;
    return WALNOTIFY_OK;
}

/* Everything gathered is in Redis once this answers OK. */
static walnotify_status send_all(redis_state *st)
{
    walnotify_status status = settle(st);

    if (status == WALNOTIFY_OK && st->batch.count > 0)
        status = launch(st);
    if (status == WALNOTIFY_OK)
        status = settle(st);
    return status;
}

/* ---- one entry ------------------------------------------------------------------------------- */

/* The stream of the event, expanded into out; false when it does not fit. */
static bool stream_of(const redis_state *st, const walnotify_event *ev, char *out, size_t outlen)
{
    if (ev->op == WALNOTIFY_OP_MESSAGE) {
        template_var var = {"prefix", ev->message_prefix};
        return template_expand(st->settings.message_stream, &var, 1, out, outlen);
    }
    template_var vars[] = {{"schema", ev->schema}, {"table", ev->name}};
    return template_expand(st->settings.stream, vars, 2, out, outlen);
}

static walnotify_status add_entry(redis_state *st, const walnotify_event *ev, const char *json,
                                  size_t length)
{
    static const char *const fields[] = {"lsn", "seq", "xid", "op", "table", "data"};
    char stream[REDIS_STREAM_MAX], lsn[24], seq[16], xid[16];
    const char *table = ev->table != NULL ? ev->table : "";
    const char *values[] = {lsn, seq, xid, walnotify_op_name(ev->op), table, json};
    size_t lengths[6];

    if (!stream_of(st, ev, stream, sizeof stream)) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "the stream name of %s is longer than %d bytes",
                      ev->table != NULL ? ev->table : ev->message_prefix, REDIS_STREAM_MAX - 1);
        return WALNOTIFY_FATAL;
    }
    snprintf(lsn, sizeof lsn, "%X/%X", (unsigned)(ev->commit_lsn >> 32), (unsigned)ev->commit_lsn);
    snprintf(seq, sizeof seq, "%" PRIu32, ev->seq);
    snprintf(xid, sizeof xid, "%" PRIu32, ev->xid);
    for (size_t i = 0; i < 5; i++)
        lengths[i] = strlen(values[i]);
    lengths[5] = length;
    if (!batch_add(&st->batch, stream, ev->id, st->settings.maxlen, fields, values, lengths, 6)) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "out of memory holding an entry of %zu bytes",
                      length);
        return WALNOTIFY_RETRY;
    }
    return WALNOTIFY_OK;
}

/* ---- callbacks ------------------------------------------------------------------------------- */

static walnotify_status redis_check(const walnotify_host *host)
{
    redis_settings settings;

    return redis_settings_read(host, &settings) ? WALNOTIFY_OK : WALNOTIFY_FATAL;
}

static void redis_shutdown(void *state)
{
    redis_state *st = state;

    if (st == NULL)
        return;
    redis_conn_free(st->conn);
    batch_free(&st->batch);
    batch_free(&st->sent);
    free(st->sent_last);
    free(st->tail);
    free(st);
}

static walnotify_status first_connection(redis_state *st)
{
    char why[REDIS_WHY_MAX];

    switch (redis_conn_ensure(st->conn, why, sizeof why)) {
    case REDIS_CONN_OK:
        return WALNOTIFY_OK;
    case REDIS_CONN_DOWN:
        st->host->log(st->host, WALNOTIFY_LOG_WARNING, "will retry: %s", why);
        return WALNOTIFY_RETRY;
    case REDIS_CONN_REFUSED:
        break;
    }
    st->host->log(st->host, WALNOTIFY_LOG_ERROR, "%s", why);
    return WALNOTIFY_FATAL;
}

static walnotify_status redis_init(const walnotify_host *host, void **state)
{
    redis_state *st;
    walnotify_status status = WALNOTIFY_FATAL;

    if (!WALNOTIFY_HAS(walnotify_host, host, encode_json) || host->encode_json == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "this host does not provide encode_json (ABI 1.1): the redis plugin needs it");
        return WALNOTIFY_FATAL;
    }
    st = calloc(1, sizeof *st);
    if (st == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return WALNOTIFY_FATAL;
    }
    st->host = host;
    if (!redis_settings_read(host, &st->settings))
        goto fail;
    if (!batch_init(&st->batch, st->settings.batch_entries) ||
        !batch_init(&st->sent, st->settings.batch_entries)) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        goto fail;
    }
    st->conn = redis_conn_new(host, &st->settings);
    if (st->conn == NULL)
        goto fail;
    status = first_connection(st);
    if (status != WALNOTIFY_OK)
        goto fail;
    host->log(host, WALNOTIFY_LOG_INFO,
              "adding entries to Redis at %s (db %lld), batches of at most %zu entries",
              st->settings.address, (long long)st->settings.db, st->settings.batch_entries);
    *state = st;
    return WALNOTIFY_OK;

fail:
    redis_shutdown(st);
    return status;
}

static walnotify_status redis_begin(void *state, const walnotify_txn *txn)
{
    redis_state *st = state;

    (void)txn;
    st->txn_count = st->batch.count;
    st->txn_len = st->batch.len;
    st->txn_top = st->queued_top;
    return WALNOTIFY_OK;
}

static walnotify_status redis_handle(void *state, const walnotify_event *ev)
{
    redis_state *st = state;
    size_t length = 0;
    const char *json;
    walnotify_status status;

    /* The snapshot's begin and end markers carry no row: they are not entries. */
    if (ev->op == WALNOTIFY_OP_SNAPSHOT && ev->snapshot_marker != WALNOTIFY_SNAPSHOT_ROW)
        return WALNOTIFY_OK;
    /* Comes again after a rewind or an abort: it is in a batch, or in Redis, already. */
    if (!id_above(ev->id, st->queued_top))
        return WALNOTIFY_OK;
    if (st->batch.count == st->batch.max) {
        status = settle(st);
        if (status == WALNOTIFY_OK)
            status = launch(st);
        if (status != WALNOTIFY_OK)
            return status;
    }
    json = st->host->encode_json(st->host, ev, &length);
    if (json == NULL) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "cannot encode seq %" PRIu32 " of transaction %" PRIu32 " (out of memory)",
                      ev->seq, ev->xid);
        return WALNOTIFY_RETRY;
    }
    status = add_entry(st, ev, json, length);
    if (status == WALNOTIFY_OK)
        st->queued_top = ev->id;
    return status;
}

/* The transaction will come again: what it added to the batch must not go now. */
static void redis_abort(void *state, const walnotify_txn *txn)
{
    redis_state *st = state;

    (void)txn;
    batch_truncate(&st->batch, st->txn_count, st->txn_len);
    st->queued_top = st->txn_top;
}

static walnotify_status redis_flush(void *state)
{
    redis_state *st = state;
    walnotify_status status = send_all(st);

    if (status == WALNOTIFY_OK && st->replays > 0) {
        st->host->log(st->host, WALNOTIFY_LOG_INFO,
                      "%" PRIu64 " entries were in their streams already (delivered before)",
                      st->replays);
        st->replays = 0;
    }
    return status;
}

static const walnotify_plugin redis_plugin = {
    .magic = WALNOTIFY_PLUGIN_MAGIC,
    .abi_major = WALNOTIFY_ABI_MAJOR,
    .abi_minor = 1,
    .size = sizeof(walnotify_plugin),
    .name = "redis",
    .version = WALNOTIFY_VERSION,
    .settings = redis_declared,
    .init = redis_init,
    .handle = redis_handle,
    .shutdown = redis_shutdown,
    .begin = redis_begin,
    .abort = redis_abort,
    .flush = redis_flush,
    .ops = WALNOTIFY_OPS_CHANGES | WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE,
    .check = redis_check,
};

const walnotify_plugin *walnotify_plugin_entry(void)
{
    return &redis_plugin;
}
