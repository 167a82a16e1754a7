/*
 * webhook: walnotify's HTTP sink. Every event's canonical JSON (the host's encoder) is POSTed to
 * one URL through libcurl:
 *
 *   transaction mode (the default): one POST per transaction, an NDJSON body, started at
 *     commit; a transaction larger than max_batch_bytes goes as several POSTs ("parts"), in
 *     order, each started as soon as the next event would not fit. The request in flight and
 *     the batch being filled hold at most max_batch_bytes between them;
 *   event mode: one POST per event, a JSON body, sent from handle and answered there.
 *
 * Delivery: one request at a time, in commit order. In transaction mode a request is sent at
 * commit and the host decodes what follows while the receiver takes it; its answer is read
 * before the next request starts and at every flush, and flush answers OK only once nothing is
 * left without a 2xx. The host acknowledges a transaction only after its flush: what
 * PostgreSQL is told is done, the receiver has.
 *
 * Failures: a transient one (408, 429, 5xx, no connection, a timeout) answers RETRY from the
 * callback that collected it, and the same request goes again, with the same Idempotency-Key, so
 * a receiver can drop what it already took. No callback blocks longer than timeout_ms, and a
 * failed request rests before it goes again from commit or flush (see out_rest), so that the
 * host's retries of a flush, quick at a stop, do not each wait for a receiver that hangs. A
 * permanent one (any other 4xx) names the request's events as failed, so they meet the block's
 * on_error policy. When the connection is reset or closed while a transaction goes out in
 * parts, the receiver may hold some of its parts and may have dropped what it gathered on that
 * connection: the host is asked to rewind, and the transaction comes again from its first part
 * (a timeout is retried as above).
 *
 * Keys: a request's Idempotency-Key names its events. Changes are named by (commit LSN, seq) as
 * ever; a logical decoding message does not count in seq, and every event of a snapshot has
 * seq 0 and the snapshot's LSN, so a request that holds one of those names its events by the
 * ordinals their lines show instead (key_text).
 */
#include <walnotify/plugin.h>

#include "http.h"
#include "settings.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef WALNOTIFY_VERSION
#define WALNOTIFY_VERSION "1.0.0"
#endif

#define LSN_TEXT_MAX 20 /* "FFFFFFFF/FFFFFFFF" and a NUL */
#define KEY_TEXT_MAX 80 /* "LSN/snapshot/first-last", ordinals of 20 digits */
#define REASON_MAX (WEBHOOK_WHAT_MAX + KEY_TEXT_MAX + 128)
#define PROGRESS_EVERY 64 /* events batched between two looks at the request in flight */

/* The NDJSON lines of one part of a transaction, not yet sent. */
typedef struct batch {
    char *data;
    size_t len; /* bytes of whole lines */
    size_t cap; /* bytes allocated: at most max_batch_bytes, unless one event's
                   line alone is larger */
    size_t events;
    uint32_t first_seq; /* of the first and last events it holds */
    uint32_t last_seq;
    walnotify_id first_id;
    walnotify_id last_id;
    bool by_ordinal; /* it holds an event seq does not name: a message, a snapshot event */
} batch;

/*
 * The one request of transaction mode that has left the batch and has no 2xx yet: in flight (its
 * answer comes in at the next settle), or waiting to go again after a transient failure. It
 * owns its body and the text of its headers until then.
 */
typedef struct outgoing {
    bool pending;   /* a request to settle: in flight or to be sent again */
    bool in_flight; /* started, its answer not collected */
    bool orphan;    /* its transaction was aborted: the answer no longer matters */
    bool last;      /* the transaction's last part */
    bool snapshot;  /* a part of a batch of snapshot rows */
    unsigned part;
    int64_t started_ms;    /* monotonic time its last attempt started */
    int64_t rest_until_ms; /* after a failure: commit and flush do not send it again before */
    uint64_t commit_lsn;
    batch body;
    char lsn[LSN_TEXT_MAX];
    char key[KEY_TEXT_MAX];
    char part_header[32];
    webhook_request request;
} outgoing;

typedef struct webhook_state {
    const walnotify_host *host; /* borrowed until shutdown returns */
    webhook_settings settings;
    webhook_http *http;
    uint64_t commit_lsn; /* of the transaction in hand */
    bool snapshot;       /* the transaction in hand is a batch of snapshot rows */
    unsigned part;       /* parts of it handed to the receiver so far */
    batch batch;         /* what is not sent yet of the transaction in hand */
    outgoing out;
    unsigned handled; /* events batched, for the pace of webhook_http_progress */
} webhook_state;

/* ---- small helpers --------------------------------------------------------------------------- */

static void lsn_text(uint64_t lsn, char *out, size_t outlen)
{
    snprintf(out, outlen, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

static int64_t now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Waits as long as a Retry-After asked, but not past timeout_ms after the request started: no
 * call lasts longer than timeout_ms, so that a stop is prompt. */
static void wait_retry_after(const webhook_state *st, long wait_ms, int64_t started_ms)
{
    int64_t room = started_ms + st->settings.timeout_ms - now_ms();
    struct timespec left;

    if (wait_ms > room)
        wait_ms = (long)room;
    if (wait_ms <= 0)
        return;
    left.tv_sec = wait_ms / 1000;
    left.tv_nsec = (wait_ms % 1000) * 1000000L;
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

/* Whether seq names the event: a change (a message does not count in seq, and every event of a
 * snapshot has seq 0). */
static bool named_by_seq(const walnotify_event *ev)
{
    return ev->op != WALNOTIFY_OP_MESSAGE && ev->op != WALNOTIFY_OP_SNAPSHOT;
}

/*
 * The Idempotency-Key of the batch's events, of one transaction: "LSN/FIRST-LAST" by seq when
 * they are all changes, as ever; "LSN/snapshot/FIRST-LAST" by ordinal in a snapshot batch (LSN
 * its consistent point); "LSN/ordinal/FIRST-LAST" by the ordinals of the events' identities when
 * they hold a message. In event mode (single) a key names one event: no "-LAST".
 */
static void key_text(char *out, size_t outlen, const char *lsn, const batch *b, bool snapshot,
                     bool single)
{
    const char *word = snapshot ? "snapshot" : "ordinal";

    if (!b->by_ordinal && single)
        snprintf(out, outlen, "%s/%" PRIu32, lsn, b->first_seq);
    else if (!b->by_ordinal)
        snprintf(out, outlen, "%s/%" PRIu32 "-%" PRIu32, lsn, b->first_seq, b->last_seq);
    else if (single)
        snprintf(out, outlen, "%s/%s/%" PRIu64, lsn, word, b->first_id.ordinal);
    else
        snprintf(out, outlen, "%s/%s/%" PRIu64 "-%" PRIu64, lsn, word, b->first_id.ordinal,
                 b->last_id.ordinal);
}

static void batch_clear(batch *b, size_t keep_cap)
{
    b->len = 0;
    b->events = 0;
    b->by_ordinal = false;
    /* One event larger than the budget must not pin its memory for the rest of the run. */
    if (b->cap > keep_cap) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

/* Appends the event's line and a newline; false when out of memory. */
static bool batch_append(batch *b, const char *line, size_t length, const walnotify_event *ev,
                         size_t max_bytes)
{
    size_t need = b->len + length + 1;

    if (need > b->cap) {
        size_t cap = b->cap > 0 ? b->cap * 2 : 64 * 1024;
        if (cap > max_bytes)
            cap = max_bytes;
        if (cap < need)
            cap = need;
        char *data = realloc(b->data, cap);
        if (data == NULL)
            return false;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, line, length);
    b->data[b->len + length] = '\n';
    b->len = need;
    if (b->events == 0) {
        b->first_seq = ev->seq;
        b->first_id = ev->id;
    }
    b->last_seq = ev->seq;
    b->last_id = ev->id;
    b->events++;
    if (!named_by_seq(ev))
        b->by_ordinal = true;
    return true;
}

/* ---- failures the host handles --------------------------------------------------------------- */

static walnotify_status name_failed(webhook_state *st, walnotify_id first, walnotify_id last,
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

static walnotify_status ask_rewind(webhook_state *st, const char *reason)
{
    const walnotify_host *host = st->host;

    if (host->rewind == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "cannot ask for the transaction again: this host does not provide rewind; "
                  "stopping (%s)",
                  reason);
        return WALNOTIFY_FATAL;
    }
    return host->rewind(host, reason);
}

/* ---- transaction mode ------------------------------------------------------------------------ */

/*
 * Transaction mode sends a transaction's last part at commit and lets commit return while the
 * receiver takes it: the host decodes the next transaction meanwhile. The answer is collected
 * ("settled") before the next request starts, and at flush, so the host acknowledges nothing
 * that has no 2xx, and requests leave one at a time, in order.
 */

static void out_drop(webhook_state *st)
{
    outgoing *out = &st->out;

    out->pending = false;
    out->in_flight = false;
    out->orphan = false;
    out->rest_until_ms = 0;
    batch_clear(&out->body, st->settings.max_batch_bytes);
}

static void out_start(webhook_state *st)
{
    st->out.in_flight = true;
    st->out.started_ms = now_ms();
    webhook_http_start(st->http, &st->out.request);
}

/*
 * A failed request rests before commit or flush sends it again: as long as its attempt took (a
 * receiver that hung for timeout_ms gets as long to recover) or as its Retry-After asked, each
 * at most timeout_ms. A call meanwhile answers RETRY at once. handle sends it again at once (each
 * of its RETRYs counts against the block's retry_max), after waiting out the Retry-After as far
 * as timeout_ms from the start allows.
 */
static void out_rest(webhook_state *st, const webhook_reply *reply, bool from_handle)
{
    outgoing *out = &st->out;
    const long timeout = st->settings.timeout_ms;
    int64_t now = now_ms();
    int64_t rest = now - out->started_ms;

    if (rest < reply->retry_after_ms)
        rest = reply->retry_after_ms;
    out->rest_until_ms = now + (rest < timeout ? rest : timeout);
    if (from_handle)
        wait_retry_after(st, reply->retry_after_ms, out->started_ms);
}

/* What a failed request means for the host: the request stays for a retry, or is dropped. */
static walnotify_status out_failed(webhook_state *st, const webhook_reply *reply, bool from_handle)
{
    outgoing *out = &st->out;
    char reason[REASON_MAX];
    walnotify_status status;

    snprintf(reason, sizeof reason, "%s (%s %s, part %u%s, key %s)", reply->what,
             out->snapshot ? "snapshot" : "transaction", out->lsn, out->part,
             out->last ? ", the last" : "", out->key);
    if (reply->outcome == WEBHOOK_PERMANENT) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "refused: %s", reason);
        status = name_failed(st, out->body.first_id, out->body.last_id, reason);
        out_drop(st);
        return status;
    }
    st->host->log(st->host, WALNOTIFY_LOG_WARNING, "will retry: %s", reason);
    out_rest(st, reply, from_handle);
    if (reply->cut_after_send && (!out->last || out->part > 0)) {
        out_drop(st);
        return ask_rewind(st, reason);
    }
    return WALNOTIFY_RETRY;
}

/*
 * Makes sure the receiver has the outgoing request: collects the answer of the one in flight,
 * or sends again the one that failed, once it has rested unless from_handle. OK when nothing is
 * left to settle.
 */
static walnotify_status settle(webhook_state *st, bool from_handle)
{
    outgoing *out = &st->out;
    webhook_reply reply;

    if (!out->pending)
        return WALNOTIFY_OK;
    if (!out->in_flight) {
        if (out->orphan) {
            out_drop(st);
            return WALNOTIFY_OK;
        }
        if (!from_handle && now_ms() < out->rest_until_ms)
            return WALNOTIFY_RETRY;
        out_start(st);
    }
    webhook_http_finish(st->http, &reply);
    out->in_flight = false;
    if (reply.outcome == WEBHOOK_DELIVERED || out->orphan) {
        out_drop(st);
        return WALNOTIFY_OK;
    }
    return out_failed(st, &reply, from_handle);
}

/*
 * Hands the batch to the receiver as the transaction's next part (`last` at commit, the others
 * from handle), once the request before it is through. The batch's buffer and the outgoing one
 * are swapped, so neither is allocated again.
 */
static walnotify_status launch(webhook_state *st, bool last)
{
    outgoing *out = &st->out;
    walnotify_status status = settle(st, !last);
    batch spare;

    if (status != WALNOTIFY_OK)
        return status;
    spare = out->body;
    out->body = st->batch;
    st->batch = spare;
    batch_clear(&st->batch, st->settings.max_batch_bytes);

    out->pending = true;
    out->orphan = false;
    out->last = last;
    out->part = st->part++;
    out->commit_lsn = st->commit_lsn;
    lsn_text(st->commit_lsn, out->lsn, sizeof out->lsn);
    out->snapshot = st->snapshot;
    /* Names the part by its events: the same key always means the same content, even if
     * max_batch_bytes changes between runs. */
    key_text(out->key, sizeof out->key, out->lsn, &out->body, st->snapshot, false);
    snprintf(out->part_header, sizeof out->part_header, "Walnotify-Part: %u", out->part);
    out->request = (webhook_request){
        .body = out->body.data,
        .length = out->body.len,
        .idempotency_key = out->key,
        .commit_lsn = out->lsn,
        .extra = {out->part_header,
                  last ? "Walnotify-Last-Part: true" : "Walnotify-Last-Part: false"},
    };
    out_start(st);
    return WALNOTIFY_OK;
}

static walnotify_status handle_in_transaction(webhook_state *st, const walnotify_event *ev,
                                              const char *line, size_t length)
{
    const size_t max = st->settings.max_batch_bytes;
    batch *b = &st->batch;
    walnotify_status status;

    /* The request in flight and the batch together stay within max_batch_bytes. On RETRY the
     * host hands this event again, and it is added once the request before it is through. */
    if (st->out.pending && st->out.body.len + b->len + length + 1 > max) {
        status = settle(st, true);
        if (status != WALNOTIFY_OK)
            return status;
    }
    if (b->events > 0 && b->len + length + 1 > max) {
        status = launch(st, false);
        if (status != WALNOTIFY_OK)
            return status;
    }
    /* A large body goes out while the next part is gathered, not only when it is settled. */
    if (st->out.in_flight && ++st->handled % PROGRESS_EVERY == 0)
        webhook_http_progress(st->http);
    if (!batch_append(b, line, length, ev, max)) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "out of memory holding %zu bytes of transaction %" PRIu32, length, ev->xid);
        return WALNOTIFY_RETRY;
    }
    return WALNOTIFY_OK;
}

/* ---- event mode ------------------------------------------------------------------------------ */

static walnotify_status post_event(webhook_state *st, const walnotify_event *ev, const char *line,
                                   size_t length)
{
    char lsn[LSN_TEXT_MAX], key[KEY_TEXT_MAX], seq[48];
    int64_t started = now_ms();
    batch one = {.first_seq = ev->seq, .first_id = ev->id, .by_ordinal = !named_by_seq(ev)};
    webhook_reply reply;

    lsn_text(ev->commit_lsn, lsn, sizeof lsn);
    key_text(key, sizeof key, lsn, &one, ev->op == WALNOTIFY_OP_SNAPSHOT, true);
    /* A message or a snapshot event is named by its ordinal, as its line and its key do. */
    if (one.by_ordinal)
        snprintf(seq, sizeof seq, "Walnotify-Ordinal: %" PRIu64, ev->id.ordinal);
    else
        snprintf(seq, sizeof seq, "Walnotify-Seq: %" PRIu32, ev->seq);
    webhook_request request = {
        .body = line,
        .length = length,
        .idempotency_key = key,
        .commit_lsn = lsn,
        .extra = {seq, NULL},
    };
    webhook_http_post(st->http, &request, &reply);
    if (reply.outcome == WEBHOOK_DELIVERED)
        return WALNOTIFY_OK;
    if (reply.outcome == WEBHOOK_PERMANENT) {
        /* FATAL from handle is exactly "this event failed for good": the policy takes it. */
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "refused: %s (event %s)", reply.what, key);
        return WALNOTIFY_FATAL;
    }
    st->host->log(st->host, WALNOTIFY_LOG_WARNING, "will retry: %s (event %s)", reply.what, key);
    wait_retry_after(st, reply.retry_after_ms, started);
    return WALNOTIFY_RETRY;
}

/* ---- callbacks ------------------------------------------------------------------------------- */

static walnotify_status webhook_check(const walnotify_host *host)
{
    webhook_settings settings;

    return webhook_settings_read(host, &settings) ? WALNOTIFY_OK : WALNOTIFY_FATAL;
}

static void webhook_shutdown(void *state)
{
    webhook_state *st = state;

    if (st == NULL)
        return;
    webhook_http_close(st->http); /* first: a request in flight, cut short, borrows out.body */
    free(st->batch.data);
    free(st->out.body.data);
    free(st);
}

static walnotify_status webhook_init(const walnotify_host *host, void **state)
{
    webhook_state *st;

    if (!WALNOTIFY_HAS(walnotify_host, host, encode_json) || host->encode_json == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "this host does not provide encode_json (ABI 1.1): the webhook plugin needs it");
        return WALNOTIFY_FATAL;
    }
    st = calloc(1, sizeof *st);
    if (st == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return WALNOTIFY_FATAL;
    }
    st->host = host;
    if (!webhook_settings_read(host, &st->settings))
        goto fail;
    st->http = webhook_http_open(host, &st->settings);
    if (st->http == NULL)
        goto fail;
    if (st->settings.insecure)
        host->log(host, WALNOTIFY_LOG_WARNING,
                  "insecure = true: the TLS peer's certificate and name are not verified");
    if (st->settings.mode == WEBHOOK_MODE_TRANSACTION)
        host->log(host, WALNOTIFY_LOG_INFO,
                  "POSTing to %s: one NDJSON request per transaction, parts of at most %zu bytes",
                  webhook_http_target(st->http), st->settings.max_batch_bytes);
    else
        host->log(host, WALNOTIFY_LOG_INFO, "POSTing to %s: one JSON request per event",
                  webhook_http_target(st->http));
    *state = st;
    return WALNOTIFY_OK;

fail:
    webhook_shutdown(st);
    return WALNOTIFY_FATAL;
}

static walnotify_status webhook_begin(void *state, const walnotify_txn *txn)
{
    webhook_state *st = state;

    batch_clear(&st->batch, st->settings.max_batch_bytes);
    st->commit_lsn = txn->commit_lsn;
    st->snapshot = txn->kind == WALNOTIFY_TXN_SNAPSHOT;
    st->part = 0;
    return WALNOTIFY_OK;
}

static walnotify_status webhook_handle(void *state, const walnotify_event *ev)
{
    webhook_state *st = state;
    size_t length = 0;
    const char *line = st->host->encode_json(st->host, ev, &length);

    if (line == NULL) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "cannot encode seq %" PRIu32 " of transaction %" PRIu32 " on %s (out of "
                      "memory)",
                      ev->seq, ev->xid, ev->table != NULL ? ev->table : "?");
        return WALNOTIFY_RETRY;
    }
    if (st->settings.mode == WEBHOOK_MODE_EVENT)
        return post_event(st, ev, line, length);
    return handle_in_transaction(st, ev, line, length);
}

static walnotify_status webhook_commit(void *state, const walnotify_txn *txn)
{
    webhook_state *st = state;

    (void)txn;
    if (st->settings.mode == WEBHOOK_MODE_EVENT || st->batch.events == 0)
        return WALNOTIFY_OK;
    return launch(st, true);
}

static void webhook_abort(void *state, const walnotify_txn *txn)
{
    webhook_state *st = state;

    (void)txn;
    batch_clear(&st->batch, st->settings.max_batch_bytes);
    st->part = 0;
    /* A part of the aborted transaction: it comes again whole, so its answer no longer matters
     * (a committed transaction's last part still does). */
    if (st->out.pending && !st->out.last && st->out.commit_lsn == st->commit_lsn)
        st->out.orphan = true;
}

/* Every finished transaction is with the receiver once the request in flight got its 2xx. */
static walnotify_status webhook_flush(void *state)
{
    webhook_state *st = state;

    return settle(st, false);
}

static const walnotify_plugin webhook_plugin = {
    .magic = WALNOTIFY_PLUGIN_MAGIC,
    .abi_major = WALNOTIFY_ABI_MAJOR,
    .abi_minor = 1,
    .size = sizeof(walnotify_plugin),
    .name = "webhook",
    .version = WALNOTIFY_VERSION,
    .settings = webhook_declared,
    .init = webhook_init,
    .handle = webhook_handle,
    .shutdown = webhook_shutdown,
    .begin = webhook_begin,
    .commit = webhook_commit,
    .abort = webhook_abort,
    .flush = webhook_flush,
    .ops = WALNOTIFY_OPS_CHANGES | WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE,
    .check = webhook_check,
};

const walnotify_plugin *walnotify_plugin_entry(void)
{
    return &webhook_plugin;
}
