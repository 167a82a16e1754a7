/*
 * dispatcher: queued messages become events, handed to every plugin in configuration order, one
 * event at a time, in commit order.
 *
 * What is safe to acknowledge is decided here and only here: `finished` is the end LSN of the
 * last transaction every plugin handled (or the position of a keepalive received between
 * transactions, when everything before it was handled); once per status interval (or, with
 * flush = "commit", per group: see group_due) the plugins are flushed and, if every flush
 * succeeded, `finished` as it stood before the flush is published to the reader thread, which
 * reports it to PostgreSQL.
 *
 * What a failing plugin call leads to (retries, skips to the dead-letter files, rewinds, failures
 * named late) is policy.c's; which configured table a relation is, and whether the tables are
 * still published as they were, tableident.c's; what a protocol message becomes for the
 * plugins, events.c's. The dispatcher's state, which it hands to those modules, is in
 * dispatchstate.h.
 */
#include "dispatcher.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatchstate.h"
#include "events.h"
#include "exitcode.h"
#include "log.h"
#include "policy.h"
#include "tableident.h"

#define POP_BATCH 64 /* items taken from the handoff per pop */
/* With flush = "commit", a stream that stays busy is flushed per group of transactions: after
 * this long since the group's first, or this many, whichever comes first. A quiet stream never
 * waits for these (its queue runs empty first); a busy one trails by its backlog anyway, and
 * each group costs a catalog check's round trip on the dispatcher, so a group is a few dozen
 * checks a second at most. */
#define GROUP_MAX_MS 20
#define GROUP_MAX_TRANSACTIONS 2000

/* The coarse clock (a few ms of resolution) is enough for status intervals and costs a tenth
 * of the precise one: it is read after every item. */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Hands the position to the reader thread; it only ever moves forward. */
static void publish(dispatcher *d, wn_lsn lsn)
{
    /* Until the snapshot finished, a crash must bring the stream back before its point. */
    if (d->snapshot_pending && lsn > d->snapshot_cap)
        lsn = d->snapshot_cap;
    if (lsn <= d->published)
        return;
    d->published = lsn;
    wn_handoff_set_acknowledgeable(d->handoff, lsn);
    wn_metrics_acknowledged(d->options->metrics, lsn, d->xact.open);
    if (d->options->notify != NULL) {
        char text[WN_LSN_TEXT_MAX];

        wn_notify_progress(d->options->notify, d->options->config->source.slot,
                           wn_lsn_format(lsn, text));
    }
    wn_policy_acknowledged(d, lsn);
}

/*
 * Publishes target once the catalog says every configured table is still published as it was:
 * a table out of the publication leaves nothing in the stream to notice it by. A check read after
 * the server had sent position P saw every change to the catalog committed before P, so it
 * covers every acknowledgement up to P: with flush = "commit", one check answers for the groups
 * already queued behind the one in hand, and a new one is made only for what came after it.
 */
static flow publish_checked(dispatcher *d, wn_lsn target, wn_lsn sent)
{
    if (target <= d->published)
        return FLOW_CONTINUE;
    if (target > d->checked_upto) {
        if (wn_tableident_check(d) != FLOW_CONTINUE)
            return FLOW_DONE;
        d->checks++;
        d->checked_upto = sent > target ? sent : target;
    }
    publish(d, target);
    d->acknowledgements++;
    return FLOW_CONTINUE;
}

/*
 * Makes every plugin durable, then publishes what was finished before the flush began. Called
 * once per status interval, and once at the end.
 */
static flow flush_and_publish(dispatcher *d)
{
    wn_lsn target = d->finished;
    /* What the server had sent before the catalog check's query went: what the check covers. */
    wn_lsn sent = wn_handoff_received(d->handoff);
    /* An instance that asked for it is flushed before every new acknowledgement, clean or not
     * (its progress row follows keepalives too); every instance is flushed once at the end. */
    bool moving = target > d->published;

    /* The server answers the check while the plugins flush: with flush = "commit" the check
     * costs no time of its own per group. */
    if (moving && target > d->checked_upto && d->options->config->source.flush == WN_FLUSH_COMMIT)
        wn_tableident_send_check(d);

    for (size_t i = 0; i < d->ninstances; i++) {
        instance *inst = &d->instances[i];
        flow next;

        if (!inst->dirty && !d->finishing && !(moving && wn_plugin_flush_always(inst->plugin)))
            continue;
        wn_plugin_set_flush_position(inst->plugin, target);
        next = wn_policy_call(d, inst, CALL_FLUSH, NULL);
        wn_plugin_set_flush_position(inst->plugin, 0);
        if (next != FLOW_CONTINUE)
            return FLOW_DONE;
        inst->dirty = false;
    }
    d->unflushed = false;
    d->group_transactions = 0;
    if (wn_policy_sync_dead_letters(d) != FLOW_CONTINUE)
        return FLOW_DONE;
    return publish_checked(d, target, sent);
}

/* The position a flush would publish now (the snapshot caps it until it finished). */
static wn_lsn publishable(const dispatcher *d)
{
    if (d->snapshot_pending && d->finished > d->snapshot_cap)
        return d->snapshot_cap;
    return d->finished;
}

/* flush = "commit": a finished position not yet acknowledged is flushed as soon as nothing more
 * waits (a quiet stream: at once; an idle one: a keepalive's position too), or once its group
 * reached its bound while the stream stays busy. On a busy stream (one the reader gathers in
 * naps) the queue runs empty between the reader's batches: that is no reason to flush. */
static bool group_due(dispatcher *d, int64_t now, bool more_in_hand)
{
    if (d->options->config->source.flush != WN_FLUSH_COMMIT || publishable(d) <= d->published)
        return false;
    if (d->group_transactions >= GROUP_MAX_TRANSACTIONS || now - d->group_start_ms >= GROUP_MAX_MS)
        return true;
    return !more_in_hand && !wn_handoff_busy(d->handoff) && wn_handoff_queue_empty(d->handoff);
}

/* A group the dispatcher holds only because the stream is busy: it ends as soon as the reader
 * sees the stream pause (in synchronous mode the writers wait for it: the pause is theirs). */
static bool group_waits_for_pause(dispatcher *d)
{
    return d->options->config->source.flush == WN_FLUSH_COMMIT && publishable(d) > d->published &&
           wn_handoff_busy(d->handoff);
}

/* Everything before lsn is handled: the next flush may publish it, the server hears of it as
 * written at the next status update. */
static void finish_up_to(dispatcher *d, wn_lsn lsn)
{
    if (lsn <= d->finished)
        return;
    d->finished = lsn;
    wn_handoff_set_handled(d->handoff, lsn);
    if (d->group_transactions++ == 0)
        d->group_start_ms = now_ms();
}

/* more_in_hand: items popped and not handled yet (the queue being empty does not mean the
 * dispatcher has nothing waiting). */
static flow flush_if_due(dispatcher *d, int64_t now, bool more_in_hand)
{
    if (group_due(d, now, more_in_hand))
        return flush_and_publish(d);
    if (now < d->next_flush_ms)
        return FLOW_CONTINUE;
    d->next_flush_ms = now + d->options->config->source.status_interval_ms;
    if (d->finished <= d->published && !d->unflushed)
        return FLOW_CONTINUE;
    return flush_and_publish(d);
}

/* Tells every plugin that saw begin that the transaction in hand will not be committed now. */
static void abort_transaction(dispatcher *d)
{
    if (!d->xact.open)
        return;
    for (size_t i = 0; i < d->ninstances; i++) {
        instance *inst = &d->instances[i];

        if (inst->began && inst->plugin->descriptor.abort)
            inst->plugin->descriptor.abort(inst->plugin->state, &d->xact.txn);
        inst->began = false;
    }
    d->xact.open = false;
}

/* ---- delivering ----------------------------------------------------------------------------- */

/* Whether the instance receives an event of op on rel; a message (rel NULL) belongs to no table
 * and is chosen by its prefix (message_prefixes). */
static bool plugin_wants(const instance *inst, const wn_relation *rel, walnotify_op op,
                         const char *prefix)
{
    const wn_plugin_config *config = inst->plugin->config;

    if (!(inst->ops & op))
        return false;
    if (op == WALNOTIFY_OP_MESSAGE)
        return wn_config_wants_message(config, prefix);
    return rel == NULL || (rel->table_index >= 0 && config->watches[rel->table_index]);
}

/* The event to one instance, begin first if needed. */
static flow deliver_to(dispatcher *d, instance *inst, const walnotify_event *event)
{
    if (!inst->began) {
        if (wn_policy_call(d, inst, CALL_BEGIN, NULL) != FLOW_CONTINUE)
            return FLOW_DONE;
        inst->began = true;
    }
    inst->dirty = true;
    d->unflushed = true;
    return wn_policy_deliver(d, inst, event);
}

/* Each plugin that wants the event gets it, in configuration order. */
static flow deliver(dispatcher *d, const wn_relation *rel, const walnotify_event *event)
{
    bool delivered = false;

    for (size_t i = 0; i < d->ninstances; i++) {
        instance *inst = &d->instances[i];

        if (!plugin_wants(inst, rel, event->op, event->message_prefix))
            continue;
        if (deliver_to(d, inst, event) != FLOW_CONTINUE)
            return FLOW_DONE;
        wn_metrics_delivered(inst->metrics, rel ? rel->table_index : -1, event->op);
        delivered = true;
    }
    if (delivered)
        wn_handoff_set_delivered(d->handoff, ++d->events);
    return FLOW_CONTINUE;
}

static bool anyone_wants(const dispatcher *d, const wn_relation *rel, walnotify_op op,
                         const char *prefix)
{
    for (size_t i = 0; i < d->ninstances; i++) {
        if (plugin_wants(&d->instances[i], rel, op, prefix))
            return true;
    }
    return false;
}

/* commit for every plugin that saw begin in the transaction in hand. */
static flow commit_plugins(dispatcher *d)
{
    for (size_t i = 0; i < d->ninstances; i++) {
        instance *inst = &d->instances[i];

        if (!inst->began)
            continue;
        if (wn_policy_call(d, inst, CALL_COMMIT, NULL) != FLOW_CONTINUE)
            return FLOW_DONE;
        inst->began = false;
        /* A plugin that batches writes them in commit, maybe after a flush that came
         * mid-transaction: the next flush must cover them. */
        inst->dirty = true;
        d->unflushed = true;
    }
    return FLOW_CONTINUE;
}

/* One more data change in the transaction: seq moves on, the messages after it count anew. */
static void count_change(dispatcher *d)
{
    d->xact.seq++;
    d->xact.messages_since_change = 0;
}

static flow deliver_message(dispatcher *d, walnotify_event *event)
{
    if (wn_events_terminate_content(d, event) != FLOW_CONTINUE)
        return FLOW_DONE;
    return deliver(d, NULL, event);
}

/* A non-transactional message, in a transaction of its own whose position is the message's. */
static flow deliver_alone(dispatcher *d, walnotify_event *event)
{
    flow next;

    memset(&d->xact, 0, sizeof d->xact);
    d->xact.open = true;
    d->xact.txn.size = sizeof d->xact.txn;
    d->xact.txn.commit_lsn = event->commit_lsn;
    for (size_t i = 0; i < d->ninstances; i++)
        d->instances[i].began = false;
    next = deliver_message(d, event);
    if (next == FLOW_CONTINUE)
        next = commit_plugins(d);
    if (next != FLOW_CONTINUE)
        return FLOW_DONE;
    d->xact.open = false;
    return FLOW_CONTINUE;
}

static flow require_transaction(dispatcher *d, char kind)
{
    if (d->xact.open)
        return FLOW_CONTINUE;
    return fail(d, WN_DISPATCH_PROTOCOL_ERROR, "%s message outside a transaction",
                wn_message_kind_name(kind));
}

/* Insert, Update and Delete: one event each. */
static flow on_row_change(dispatcher *d, const wn_message *msg)
{
    wn_row_change change;
    walnotify_event event;

    if (require_transaction(d, msg->kind) != FLOW_CONTINUE)
        return FLOW_DONE;
    if (wn_events_read_row_change(d, msg, &change) != FLOW_CONTINUE)
        return FLOW_DONE;
    if (!anyone_wants(d, change.rel, change.op, NULL)) {
        count_change(d);
        return FLOW_CONTINUE;
    }
    if (wn_events_build_row_change(d, &change, &event) != FLOW_CONTINUE)
        return FLOW_DONE;
    count_change(d);
    return deliver(d, change.rel, &event);
}

/* Truncate: one event per table, each counting in seq. */
static flow on_truncate(dispatcher *d, const wn_message *msg)
{
    if (require_transaction(d, msg->kind) != FLOW_CONTINUE)
        return FLOW_DONE;
    for (uint32_t i = 0; i < msg->u.truncate.nrelids; i++) {
        wn_relation *rel;
        walnotify_event event;

        if (wn_events_build_truncate(d, msg, i, &rel, &event) != FLOW_CONTINUE)
            return FLOW_DONE;
        count_change(d);
        if (deliver(d, rel, &event) != FLOW_CONTINUE)
            return FLOW_DONE;
    }
    return FLOW_CONTINUE;
}

/*
 * A logical decoding message. A transactional one comes inside its transaction, at its place
 * there: it goes to the plugins like a change (begin first if needed). One that is not comes
 * between transactions, on its own: it goes in a transaction of its own (begin, handle, commit)
 * so that a batching plugin writes it, and its position is its own LSN. Neither counts in seq.
 */
static flow on_message(dispatcher *d, const wn_message *msg)
{
    bool transactional = (msg->u.message.flags & 1) != 0;
    walnotify_event event;

    if (transactional && require_transaction(d, msg->kind) != FLOW_CONTINUE)
        return FLOW_DONE;
    if (!transactional && d->xact.open)
        return fail(d, WN_DISPATCH_PROTOCOL_ERROR,
                    "non-transactional Message inside a transaction");
    if (transactional)
        d->xact.messages_since_change++;
    if (!anyone_wants(d, NULL, WALNOTIFY_OP_MESSAGE, msg->u.message.prefix))
        return FLOW_CONTINUE;
    wn_events_init_message(d, msg, transactional, &event);
    if (transactional)
        return deliver_message(d, &event);
    return deliver_alone(d, &event);
}

static flow on_begin(dispatcher *d, const wn_message *msg)
{
    wn_lsn endpos = d->options->endpos;

    if (d->xact.open)
        return fail(d, WN_DISPATCH_PROTOCOL_ERROR, "Begin message inside a transaction");
    /* Its commit ends after final_lsn, so after endpos: not ours to deliver. */
    if (endpos != WN_LSN_INVALID && msg->u.begin.final_lsn >= endpos) {
        d->result = WN_DISPATCH_ENDPOS;
        return FLOW_DONE;
    }
    memset(&d->xact, 0, sizeof d->xact);
    d->xact.open = true;
    d->xact.txn.size = sizeof d->xact.txn;
    d->xact.txn.commit_lsn = msg->u.begin.final_lsn;
    d->xact.txn.xid = msg->u.begin.xid;
    d->xact.txn.commit_time = msg->u.begin.commit_time + WN_PG_EPOCH_OFFSET_US;
    for (size_t i = 0; i < d->ninstances; i++)
        d->instances[i].began = false;
    wn_metrics_transaction_received(d->options->metrics);
    return FLOW_CONTINUE;
}

static flow on_commit(dispatcher *d, const wn_message *msg)
{
    wn_lsn endpos = d->options->endpos;
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX];

    if (require_transaction(d, msg->kind) != FLOW_CONTINUE)
        return FLOW_DONE;
    if (msg->u.commit.commit_lsn != d->xact.txn.commit_lsn)
        return fail(d, WN_DISPATCH_PROTOCOL_ERROR,
                    "Commit message at %s for the transaction that Begin announced at %s",
                    wn_lsn_format(msg->u.commit.commit_lsn, a),
                    wn_lsn_format(d->xact.txn.commit_lsn, b));
    /* A commit that ends past endpos is not delivered: its Begin could not tell. */
    if (endpos != WN_LSN_INVALID && msg->u.commit.end_lsn > endpos) {
        abort_transaction(d);
        d->result = WN_DISPATCH_ENDPOS;
        return FLOW_DONE;
    }
    if (commit_plugins(d) != FLOW_CONTINUE)
        return FLOW_DONE;
    d->xact.open = false;
    finish_up_to(d, msg->u.commit.end_lsn);
    if (endpos != WN_LSN_INVALID && d->finished >= endpos) {
        d->result = WN_DISPATCH_ENDPOS;
        return FLOW_DONE;
    }
    if (wn_policy_settled_before(d, d->finished))
        return flush_and_publish(d);
    return FLOW_CONTINUE;
}

static flow on_relation(dispatcher *d, const wn_message *msg)
{
    wn_relation *cached = wn_relcache_get(d->relcache, msg->u.relation.relid);
    int was_index = cached != NULL ? cached->table_index : -1;
    wn_relation *rel;

    if (was_index >= 0)
        wn_tableident_warn_retyped(cached, msg);
    rel = wn_relcache_put(d->relcache, msg);
    if (rel == NULL)
        return fail(d, WN_DISPATCH_INTERNAL, "out of memory caching relation %s.%s",
                    msg->u.relation.nspname, msg->u.relation.relname);
    return wn_tableident_identify(d, rel, was_index);
}

/* ---- the initial snapshot -------------------------------------------------------------------- */

/* A batch begins and commits like a transaction: a batching plugin writes it in commit, and a
 * flush (the only thing that lets the position move) never waits for the whole snapshot. */
#define SNAPSHOT_BATCH 10000

/* Whether the instance receives a snapshot event of table (-1: a marker, for every instance that
 * asked for the snapshot). */
static bool snapshot_wants(const instance *inst, long table)
{
    if (!(inst->ops & WALNOTIFY_OP_SNAPSHOT))
        return false;
    return table < 0 || inst->plugin->config->watches[table];
}

static flow deliver_snapshot_event(dispatcher *d, long table, const walnotify_event *event)
{
    bool delivered = false;

    for (size_t i = 0; i < d->ninstances; i++) {
        instance *inst = &d->instances[i];

        if (!snapshot_wants(inst, table))
            continue;
        if (deliver_to(d, inst, event) != FLOW_CONTINUE)
            return FLOW_DONE;
        wn_metrics_delivered(inst->metrics, table, event->op);
        delivered = true;
    }
    if (delivered)
        wn_handoff_set_delivered(d->handoff, ++d->events);
    return FLOW_CONTINUE;
}

static void open_snapshot_batch(dispatcher *d)
{
    memset(&d->xact, 0, sizeof d->xact);
    d->xact.open = true;
    d->xact.txn.size = sizeof d->xact.txn;
    d->xact.txn.commit_lsn = d->options->snapshot_lsn;
    d->xact.txn.kind = WALNOTIFY_TXN_SNAPSHOT;
    for (size_t i = 0; i < d->ninstances; i++)
        d->instances[i].began = false;
}

static flow close_snapshot_batch(dispatcher *d)
{
    if (commit_plugins(d) != FLOW_CONTINUE)
        return FLOW_DONE;
    d->xact.open = false;
    return FLOW_CONTINUE;
}

/* A marker or a row (table and columns set by the caller). Its identity: (C - 1, ordinal). */
static void init_snapshot_event(const dispatcher *d, unsigned marker, uint64_t ordinal,
                                walnotify_event *event)
{
    memset(event, 0, sizeof *event);
    event->size = sizeof *event;
    event->op = WALNOTIFY_OP_SNAPSHOT;
    event->commit_lsn = d->options->snapshot_lsn;
    event->id.position = d->options->snapshot_lsn - 1;
    event->id.ordinal = ordinal;
    event->snapshot_marker = marker;
}

/* The next event goes in the batch in hand, or in a new one once that one is full. */
static flow snapshot_room(dispatcher *d, uint64_t *in_batch)
{
    if (*in_batch < SNAPSHOT_BATCH)
        return FLOW_CONTINUE;
    *in_batch = 0;
    if (close_snapshot_batch(d) != FLOW_CONTINUE)
        return FLOW_DONE;
    open_snapshot_batch(d);
    return FLOW_CONTINUE;
}

static flow deliver_snapshot_row(dispatcher *d, const wn_snapshot_row *row)
{
    const wn_table_ref *table = &d->options->config->source.tables[row->table];
    walnotify_event event;

    init_snapshot_event(d, WALNOTIFY_SNAPSHOT_ROW, row->ordinal, &event);
    event.table = table->qualified;
    event.schema = table->schema;
    event.name = table->name;
    event.columns = row->columns;
    event.ncolumns = row->ncolumns;
    return deliver_snapshot_event(d, (long)row->table, &event);
}

/* A read that failed: the imported transaction is lost. */
static flow snapshot_failed(dispatcher *d, int status, const char *why)
{
    switch (status) {
    case WN_EXIT_STOPPED:
        d->result = WN_DISPATCH_STOPPED;
        return FLOW_DONE;
    case WN_EXIT_TRANSIENT:
        return fail(d, WN_DISPATCH_SNAPSHOT_LOST, "reading the initial snapshot: %s", why);
    case WN_EXIT_INTERNAL:
        return fail(d, WN_DISPATCH_INTERNAL, "reading the initial snapshot: %s", why);
    default:
        return fail(d, WN_DISPATCH_SERVER_STATE, "reading the initial snapshot: %s", why);
    }
}

static void log_snapshot_progress(dispatcher *d, int64_t *next_ms)
{
    const wn_source_config *source = &d->options->config->source;
    wn_snapshot_progress progress;
    int64_t now = now_ms();

    if (now < *next_ms)
        return;
    *next_ms = now + source->progress_interval_ms;
    wn_snapshot_get_progress(d->options->snapshot, &progress);
    if (progress.table >= source->ntables)
        return;
    wn_log(WN_LOG_INFO,
           "initial snapshot: table %s, %" PRIu64 " rows read of about %" PRId64 "; %" PRIu64
           " rows in all",
           source->tables[progress.table].qualified, progress.table_rows,
           progress.table_estimate < 0 ? (int64_t)0 : progress.table_estimate, progress.rows);
    wn_notify_status(d->options->notify, "initial snapshot: table %s, %" PRIu64 " rows read",
                     source->tables[progress.table].qualified, progress.rows);
}

/* Every instance makes the end marker durable; then the snapshot is recorded as finished, and
 * only then may the acknowledged position pass its point. */
static flow finish_snapshot(dispatcher *d)
{
    char why[512];
    int rc;

    if (flush_and_publish(d) != FLOW_CONTINUE)
        return FLOW_DONE;
    rc = d->options->record_snapshot(d->options->record_arg, d->options->snapshot_lsn, why,
                                     sizeof why);
    if (rc != 0)
        return fail(d, WN_DISPATCH_INTERNAL,
                    "the initial snapshot was delivered but cannot be recorded as finished: %s",
                    why);
    d->snapshot_pending = false;
    return FLOW_CONTINUE;
}

/* The rows of every table read in full and handed on, between the begin and end markers. */
static flow deliver_snapshot(dispatcher *d)
{
    wn_snapshot *snap = d->options->snapshot;
    int64_t next_progress_ms = now_ms() + d->options->config->source.progress_interval_ms;
    uint64_t in_batch = 1, rows = 0;
    walnotify_event marker;
    char lsn[WN_LSN_TEXT_MAX], why[1024];

    d->snapshot_reading = true;
    wn_log(WN_LOG_INFO, "initial snapshot at %s: delivering the rows",
           wn_lsn_format(d->options->snapshot_lsn, lsn));
    open_snapshot_batch(d);
    init_snapshot_event(d, WALNOTIFY_SNAPSHOT_BEGIN, 0, &marker);
    if (deliver_snapshot_event(d, -1, &marker) != FLOW_CONTINUE)
        return FLOW_DONE;
    for (;;) {
        wn_snapshot_row row;
        int rc = wn_snapshot_next(snap, &row, why, sizeof why);

        if (rc == WN_SNAPSHOT_END)
            break;
        if (rc != 0)
            return snapshot_failed(d, rc, why);
        if (snapshot_room(d, &in_batch) != FLOW_CONTINUE ||
            deliver_snapshot_row(d, &row) != FLOW_CONTINUE)
            return FLOW_DONE;
        in_batch++;
        rows = row.ordinal;
        if (wn_handoff_stop_requested(d->handoff)) {
            d->result = WN_DISPATCH_STOPPED;
            return FLOW_DONE;
        }
        wn_notify_alive(d->options->notify, now_ms());
        if (flush_if_due(d, now_ms(), true) != FLOW_CONTINUE)
            return FLOW_DONE;
        log_snapshot_progress(d, &next_progress_ms);
    }
    if (snapshot_room(d, &in_batch) != FLOW_CONTINUE)
        return FLOW_DONE;
    init_snapshot_event(d, WALNOTIFY_SNAPSHOT_END, rows + 1, &marker);
    marker.snapshot_rows = rows;
    if (deliver_snapshot_event(d, -1, &marker) != FLOW_CONTINUE ||
        close_snapshot_batch(d) != FLOW_CONTINUE)
        return FLOW_DONE;
    if (finish_snapshot(d) != FLOW_CONTINUE)
        return FLOW_DONE;
    wn_log(WN_LOG_INFO, "initial snapshot at %s finished: %" PRIu64 " rows", lsn, rows);
    return FLOW_CONTINUE;
}

/* The stream reached the snapshot's point (a transaction or a message at or past it, or a
 * keepalive there between transactions): the snapshot comes first, unless --endpos ends the run
 * before it. */
static flow snapshot_if_reached(dispatcher *d, wn_lsn position)
{
    wn_lsn endpos = d->options->endpos;

    /* Inside a transaction a Begin or a lone message is a protocol error, said by its handler. */
    if (!d->snapshot_pending || d->snapshot_reading || d->xact.open ||
        position < d->options->snapshot_lsn)
        return FLOW_CONTINUE;
    if (endpos != WN_LSN_INVALID && d->options->snapshot_lsn > endpos)
        return FLOW_CONTINUE;
    return deliver_snapshot(d);
}

static flow on_data(dispatcher *d, const wn_item *item)
{
    wn_message msg;

    if (wn_decode(d->decoder, item->payload, item->length, &msg) != 0)
        return fail(d, WN_DISPATCH_PROTOCOL_ERROR, "cannot decode a message from the server: %s",
                    d->decoder->error);
    if (msg.kind == 'B' && snapshot_if_reached(d, msg.u.begin.final_lsn) != FLOW_CONTINUE)
        return FLOW_DONE;
    if (msg.kind == 'M' && !(msg.u.message.flags & 1) &&
        snapshot_if_reached(d, msg.u.message.lsn) != FLOW_CONTINUE)
        return FLOW_DONE;
    switch (msg.kind) {
    case 'B':
        return on_begin(d, &msg);
    case 'C':
        return on_commit(d, &msg);
    case 'R':
        return on_relation(d, &msg);
    case 'I':
    case 'U':
    case 'D':
        return on_row_change(d, &msg);
    case 'T':
        return on_truncate(d, &msg);
    case 'M':
        return on_message(d, &msg);
    default:
        /* Origin and Type carry nothing a plugin receives. */
        return FLOW_CONTINUE;
    }
}

/*
 * A keepalive says the server has sent everything before wal_end. Between transactions, every
 * transaction before it has therefore been handled: its position becomes safe once flushed.
 * Inside a transaction it says nothing about the transaction in hand.
 */
static flow on_keepalive(dispatcher *d, const wn_item *item)
{
    wn_lsn endpos = d->options->endpos;

    if (d->xact.open)
        return FLOW_CONTINUE;
    if (snapshot_if_reached(d, item->wal_end) != FLOW_CONTINUE)
        return FLOW_DONE;
    finish_up_to(d, item->wal_end);
    if (endpos != WN_LSN_INVALID && item->wal_end >= endpos) {
        d->result = WN_DISPATCH_ENDPOS;
        return FLOW_DONE;
    }
    return FLOW_CONTINUE;
}

static flow on_item(dispatcher *d, wn_item *item)
{
    flow next = FLOW_CONTINUE;

    wn_metrics_wal_end(d->options->metrics, item->wal_end);
    switch (item->kind) {
    case WN_ITEM_DATA:
        next = on_data(d, item);
        break;
    case WN_ITEM_KEEPALIVE:
        next = on_keepalive(d, item);
        break;
    case WN_ITEM_END:
        d->result =
            wn_handoff_stop_requested(d->handoff) ? WN_DISPATCH_STOPPED : WN_DISPATCH_STREAM_ENDED;
        next = FLOW_DONE;
        break;
    }
    wn_item_release(item);
    return next;
}

/* A SIGHUP waits: between transactions (the initial snapshot is delivered whole, inside one
 * item, so never during it), every instance is flushed
 * and the position published, then the new configuration is applied. */
static flow reload_if_asked(dispatcher *d)
{
    flow next;

    if (d->xact.open || !wn_reload_pending(d->options->reload))
        return FLOW_CONTINUE;
    d->finishing = true; /* every instance, dirty or not */
    next = flush_and_publish(d);
    d->finishing = false;
    if (next != FLOW_CONTINUE)
        return FLOW_DONE;
    return wn_reload_apply(d) ? FLOW_CONTINUE : FLOW_DONE;
}

/* After a stop or the end mid-batch, what the batch still holds is dropped (it was never
 * acknowledged, so the server sends it again). */
static void release_items(wn_item *items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        wn_item_release(&items[i]);
}

/*
 * Items come in batches (one wake-up for many), but each is handled as if alone: the stop
 * request and the flush timer are looked at after every one.
 */
static void run_loop(dispatcher *d)
{
    wn_item items[POP_BATCH];
    int64_t now = now_ms();

    for (;;) {
        int wait_ms = d->next_flush_ms > now ? (int)(d->next_flush_ms - now) : 0;
        size_t count;

        wait_ms = wn_notify_wait_ms(d->options->notify, wait_ms);
        /* A group waiting for its bound is flushed by then, whatever comes. */
        if (d->options->config->source.flush == WN_FLUSH_COMMIT && publishable(d) > d->published &&
            wait_ms > GROUP_MAX_MS)
            wait_ms = GROUP_MAX_MS;

        if (wn_handoff_stop_requested(d->handoff)) {
            d->result = WN_DISPATCH_STOPPED;
            return;
        }
        /* Also before the first item: a reload that ended a retry is applied before the
         * transaction comes again. */
        if (reload_if_asked(d) == FLOW_DONE)
            return;
        count = group_waits_for_pause(d)
                    ? wn_handoff_pop_many_or_pause(d->handoff, items, POP_BATCH, wait_ms)
                    : wn_handoff_pop_many(d->handoff, items, POP_BATCH, wait_ms);
        if (d->options->metrics != NULL)
            wn_metrics_queue(d->options->metrics, wn_handoff_length(d->handoff));
        for (size_t i = 0; i < count; i++) {
            if (i > 0 && wn_handoff_stop_requested(d->handoff)) {
                release_items(items + i, count - i);
                d->result = WN_DISPATCH_STOPPED;
                return;
            }
            if (on_item(d, &items[i]) == FLOW_DONE) {
                release_items(items + i + 1, count - i - 1);
                return;
            }
            now = now_ms();
            wn_notify_alive(d->options->notify, now);
            if (flush_if_due(d, now, i + 1 < count) == FLOW_DONE ||
                reload_if_asked(d) == FLOW_DONE) {
                release_items(items + i + 1, count - i - 1);
                return;
            }
        }
        if (count == 0) {
            now = now_ms();
            wn_notify_alive(d->options->notify, now);
            if (flush_if_due(d, now, false) == FLOW_DONE || reload_if_asked(d) == FLOW_DONE)
                return;
        }
    }
}

/*
 * The last flush failed: what it did not make durable is not acknowledged. A fatal failure wins;
 * a rewind asked for in it wins over --endpos (the requester wants to see it again, and the run
 * goes on to endpos), but not over a stop.
 */
static wn_dispatch_result final_flush_failed(dispatcher *d, wn_dispatch_result result)
{
    char text[WN_LSN_TEXT_MAX];

    wn_lsn_format(d->published, text);
    if (d->result == WN_DISPATCH_REWIND) {
        wn_log(WN_LOG_WARNING,
               "a plugin asked for a rewind in the last flush; acknowledging %s "
               "only",
               text);
        return result == WN_DISPATCH_ENDPOS ? WN_DISPATCH_REWIND : result;
    }
    wn_log(WN_LOG_WARNING, "final flush failed: %s; acknowledging %s only", d->err, text);
    /* A table found gone or unpublished now is said even on a stop: starting again would put
     * it back into the publication and pass over the gap without a word. */
    if (d->result == WN_DISPATCH_PLUGIN_FATAL || d->result == WN_DISPATCH_SERVER_STATE)
        return d->result;
    return result;
}

/*
 * The way out, whatever the reason: the transaction in hand is abandoned, and what was finished
 * before it is made durable and published. After a fatal failure nothing more is published:
 * acknowledging less is always safe.
 */
static void finish(dispatcher *d)
{
    char text[WN_LSN_TEXT_MAX];
    wn_dispatch_result result = d->result;

    abort_transaction(d);
    d->finishing = true;
    /* The next stream skips what this one wrote to the dead-letter files without writing it
     * again, and may acknowledge it: it must be durable first. */
    if (result == WN_DISPATCH_REWIND && wn_policy_sync_dead_letters(d) != FLOW_CONTINUE)
        result = d->result;
    if (result != WN_DISPATCH_PLUGIN_FATAL && result != WN_DISPATCH_SERVER_STATE &&
        result != WN_DISPATCH_TABLES_UNKNOWN && result != WN_DISPATCH_REWIND &&
        flush_and_publish(d) != FLOW_CONTINUE)
        result = final_flush_failed(d, result);
    d->result = result;
    wn_policy_log_skips(d);
    for (size_t i = 0; i < d->ninstances; i++) {
        const instance *inst = &d->instances[i];

        if (inst->skipped > 0)
            wn_log(WN_LOG_WARNING, "plugin \"%s\": %" PRIu64 " events skipped in this run, see %s",
                   inst->plugin->config->name, inst->skipped, wn_deadletter_path(inst->deadletter));
    }
    /* A rewind is no stop: walnotify goes on, from the acknowledged position. */
    if (d->result == WN_DISPATCH_REWIND)
        wn_log(WN_LOG_INFO,
               "stream rewound; acknowledged position %s, %" PRIu64 " events; streaming again "
               "from there",
               wn_lsn_format(d->published, text), d->events);
    else
        wn_log(WN_LOG_INFO, "dispatcher stopped; acknowledged position %s, %" PRIu64 " events",
               wn_lsn_format(d->published, text), d->events);
    wn_log(WN_LOG_DEBUG, "%" PRIu64 " acknowledgements, %" PRIu64 " catalog checks",
           d->acknowledgements, d->checks);
    /* Every plugin call of this stream is over (said above); the rewind's backoff runs while
     * the reader still keeps the connection alive. */
    if (d->result == WN_DISPATCH_REWIND)
        wn_policy_wait_before_rewind(d);
    wn_handoff_set_dispatcher_done(d->handoff);
}

/* Returns 0, or -1 with d->result and d->err set. */
static int setup(dispatcher *d, const wn_dispatcher_options *options, wn_handoff *handoff)
{
    d->options = options;
    d->handoff = handoff;
    d->decoder = malloc(sizeof *d->decoder);
    d->relcache = wn_relcache_create();
    d->instances = calloc(options->nplugins ? options->nplugins : 1, sizeof *d->instances);
    if (!d->decoder || !d->relcache || !d->instances || wn_events_setup(d) != 0 ||
        wn_tableident_setup(d, options) != 0) {
        fail(d, WN_DISPATCH_INTERNAL, "out of memory starting the dispatcher");
        return -1;
    }
    d->ninstances = options->nplugins;
    for (size_t i = 0; i < d->ninstances; i++) {
        wn_plugin *plugin = options->reload ? options->reload->plugins[i] : &options->plugins[i];

        d->instances[i].plugin = plugin;
        d->instances[i].ops = plugin->config->ops & wn_plugin_ops(plugin);
        d->instances[i].metrics = options->reload
                                      ? wn_reload_metrics(options->metrics, plugin->config->name)
                                      : wn_metrics_plugin(options->metrics, i);
        wn_requests_new_stream(&plugin->requests);
    }
    if (wn_policy_open_dead_letters(d) != 0)
        return -1;
    d->finished = options->start_lsn;
    d->published = WN_LSN_INVALID;
    if (options->snapshot != NULL) {
        d->snapshot_pending = true;
        d->snapshot_cap = options->snapshot_lsn - 1 > options->start_lsn ? options->snapshot_lsn - 1
                                                                         : options->start_lsn;
    }
    publish(d, options->start_lsn);
    d->next_flush_ms = now_ms() + options->config->source.status_interval_ms;
    return 0;
}

static void teardown(dispatcher *d)
{
    for (size_t i = 0; d->instances != NULL && i < d->ninstances; i++)
        wn_deadletter_close(d->instances[i].deadletter);
    free(d->decoder);
    wn_relcache_destroy(d->relcache);
    free(d->instances);
    wn_events_free(d);
    wn_tableident_free(d);
}

wn_dispatch_result wn_dispatch_run(const wn_dispatcher_options *options, wn_handoff *handoff,
                                   char *err, size_t errlen)
{
    dispatcher d = {.err = err, .errlen = errlen};

    err[0] = '\0';
    if (setup(&d, options, handoff) != 0) {
        teardown(&d);
        wn_handoff_set_dispatcher_done(handoff);
        return d.result;
    }
    run_loop(&d);
    finish(&d);
    teardown(&d);
    return d.result;
}
