/*
 * events: what a protocol message becomes for the plugins. A row change's tuples become columns
 * under the layout the relation cache holds for its relation, their values copied to the arena
 * NUL-terminated; every event carries its identity (commit LSN, seq, and its place among the
 * messages between two changes) and the configured name of its table. Nothing here delivers:
 * the dispatcher decides who receives an event, and when.
 */
#include "events.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int wn_events_setup(dispatcher *d)
{
    d->columns = calloc(WN_MAX_COLUMNS, sizeof *d->columns);
    d->old_columns = calloc(WN_MAX_COLUMNS, sizeof *d->old_columns);
    return d->columns && d->old_columns ? 0 : -1;
}

void wn_events_free(dispatcher *d)
{
    free(d->columns);
    free(d->old_columns);
    free(d->arena);
}

static bool reserve_arena(dispatcher *d, size_t needed)
{
    char *grown;

    if (needed <= d->arena_capacity)
        return true;
    grown = realloc(d->arena, needed);
    if (grown == NULL)
        return false;
    d->arena = grown;
    d->arena_capacity = needed;
    return true;
}

static size_t tuple_text_bytes(const wn_tuple *tuple)
{
    size_t bytes = 0;

    for (uint16_t i = 0; i < tuple->ncolumns; i++)
        bytes += (size_t)tuple->columns[i].length + 1;
    return bytes;
}

/* Fills out[] from a tuple under the relation's layout; values are copied to the arena at *used. */
static flow fill_columns(dispatcher *d, const wn_relation *rel, const wn_tuple *tuple,
                         walnotify_column *out, size_t *used, const char *what)
{
    if (tuple->ncolumns != rel->ncolumns)
        return fail(d, WN_DISPATCH_PROTOCOL_ERROR,
                    "%s for %s has %u columns, its Relation message announced %u", what,
                    rel->qualified, tuple->ncolumns, rel->ncolumns);
    for (uint16_t i = 0; i < tuple->ncolumns; i++) {
        const wn_datum *datum = &tuple->columns[i];
        walnotify_column *column = &out[i];

        column->name = rel->columns[i].name;
        column->type_oid = rel->columns[i].type_oid;
        column->typmod = rel->columns[i].typmod;
        column->is_key = rel->columns[i].is_key;
        column->value = NULL;
        column->length = 0;
        switch (datum->kind) {
        case 'n':
            column->kind = WALNOTIFY_VALUE_NULL;
            break;
        case 'u':
            column->kind = WALNOTIFY_VALUE_UNCHANGED;
            break;
        case 't':
            column->kind = WALNOTIFY_VALUE_TEXT;
            memcpy(d->arena + *used, datum->data, datum->length);
            d->arena[*used + datum->length] = '\0';
            column->value = d->arena + *used;
            column->length = datum->length;
            *used += (size_t)datum->length + 1;
            break;
        default:
            return fail(d, WN_DISPATCH_PROTOCOL_ERROR,
                        "%s for %s: column \"%s\" arrived in binary, which walnotify never asks "
                        "for",
                        what, rel->qualified, column->name);
        }
    }
    return FLOW_CONTINUE;
}

/* An event carries the configured name of its table, also when the change was made while the
 * table had another name. */
static void init_event(const dispatcher *d, const wn_relation *rel, walnotify_op op,
                       walnotify_event *event)
{
    const wn_table_ref *table =
        rel->table_index >= 0 ? &d->options->config->source.tables[rel->table_index] : NULL;

    memset(event, 0, sizeof *event);
    event->size = sizeof *event;
    event->table = table ? table->qualified : rel->qualified;
    event->schema = table ? table->schema : rel->schema;
    event->name = table ? table->name : rel->name;
    event->op = op;
    event->commit_lsn = d->xact.txn.commit_lsn;
    event->xid = d->xact.txn.xid;
    event->commit_time = d->xact.txn.commit_time;
    event->seq = d->xact.seq;
    /* (commit_lsn, seq) spread apart, so that the messages between two changes fit between. */
    event->id.position = d->xact.txn.commit_lsn;
    event->id.ordinal = ((uint64_t)d->xact.seq + 1) << 32;
}

static flow lookup_relation(dispatcher *d, char kind, uint32_t relid, wn_relation **rel)
{
    *rel = wn_relcache_get(d->relcache, relid);
    if (*rel != NULL)
        return FLOW_CONTINUE;
    return fail(d, WN_DISPATCH_PROTOCOL_ERROR,
                "%s message for relation id %" PRIu32 ", which no Relation message described",
                wn_message_kind_name(kind), relid);
}

flow wn_events_read_row_change(dispatcher *d, const wn_message *msg, wn_row_change *change)
{
    uint32_t relid;

    memset(change, 0, sizeof *change);
    change->kind = msg->kind;
    switch (msg->kind) {
    case 'I':
        change->op = WALNOTIFY_OP_INSERT;
        relid = msg->u.insert.relid;
        change->new_tuple = &msg->u.insert.new_tuple;
        break;
    case 'U':
        change->op = WALNOTIFY_OP_UPDATE;
        relid = msg->u.update.relid;
        change->new_tuple = &msg->u.update.new_tuple;
        change->old_kind = msg->u.update.old_kind;
        change->old_tuple = change->old_kind ? &msg->u.update.old_tuple : NULL;
        break;
    default:
        change->op = WALNOTIFY_OP_DELETE;
        relid = msg->u.delete_.relid;
        change->old_kind = msg->u.delete_.old_kind;
        change->old_tuple = &msg->u.delete_.old_tuple;
        break;
    }
    return lookup_relation(d, msg->kind, relid, &change->rel);
}

flow wn_events_build_row_change(dispatcher *d, const wn_row_change *change, walnotify_event *event)
{
    const wn_relation *rel = change->rel;
    const wn_tuple *new_tuple = change->new_tuple;
    const wn_tuple *old_tuple = change->old_tuple;
    size_t used = 0;

    init_event(d, rel, change->op, event);
    if (!reserve_arena(d, (new_tuple ? tuple_text_bytes(new_tuple) : 0) +
                              (old_tuple ? tuple_text_bytes(old_tuple) : 0)))
        return fail(d, WN_DISPATCH_INTERNAL, "out of memory building an event of %s",
                    rel->qualified);
    if (new_tuple != NULL) {
        if (fill_columns(d, rel, new_tuple, d->columns, &used,
                         wn_message_kind_name(change->kind)) != FLOW_CONTINUE)
            return FLOW_DONE;
        event->columns = d->columns;
        event->ncolumns = new_tuple->ncolumns;
    }
    if (old_tuple != NULL) {
        if (fill_columns(d, rel, old_tuple, d->old_columns, &used,
                         wn_message_kind_name(change->kind)) != FLOW_CONTINUE)
            return FLOW_DONE;
        event->old_kind = change->old_kind == 'K' ? WALNOTIFY_OLD_KEY : WALNOTIFY_OLD_ROW;
        event->old_columns = d->old_columns;
        event->nold_columns = old_tuple->ncolumns;
    }
    return FLOW_CONTINUE;
}

flow wn_events_build_truncate(dispatcher *d, const wn_message *msg, uint32_t i, wn_relation **rel,
                              walnotify_event *event)
{
    if (lookup_relation(d, msg->kind, wn_truncate_relid(msg, i), rel) != FLOW_CONTINUE)
        return FLOW_DONE;
    init_event(d, *rel, WALNOTIFY_OP_TRUNCATE, event);
    event->truncate_options = msg->u.truncate.options &
                              (WALNOTIFY_TRUNCATE_CASCADE | WALNOTIFY_TRUNCATE_RESTART_IDENTITY);
    return FLOW_CONTINUE;
}

void wn_events_init_message(const dispatcher *d, const wn_message *msg, bool transactional,
                            walnotify_event *event)
{
    memset(event, 0, sizeof *event);
    event->size = sizeof *event;
    event->op = WALNOTIFY_OP_MESSAGE;
    event->transactional = transactional;
    event->message_prefix = msg->u.message.prefix;
    event->message_content = msg->u.message.content;
    event->message_length = msg->u.message.content_length;
    if (transactional) {
        event->commit_lsn = d->xact.txn.commit_lsn;
        event->xid = d->xact.txn.xid;
        event->commit_time = d->xact.txn.commit_time;
        event->seq = d->xact.seq;
        event->id.position = d->xact.txn.commit_lsn;
        event->id.ordinal = (uint64_t)d->xact.seq << 32 | d->xact.messages_since_change;
        return;
    }
    event->commit_lsn = msg->u.message.lsn;
    event->id.position = msg->u.message.lsn;
}

/*
 * The decoder leaves a message's content in the payload, where no NUL follows it: the event's
 * content is copied to the arena, NUL-terminated, as the header promises.
 */
flow wn_events_terminate_content(dispatcher *d, walnotify_event *event)
{
    if (!reserve_arena(d, event->message_length + 1))
        return fail(d, WN_DISPATCH_INTERNAL, "out of memory building a message event (%zu bytes)",
                    event->message_length);
    if (event->message_length > 0)
        memcpy(d->arena, event->message_content, event->message_length);
    d->arena[event->message_length] = '\0';
    event->message_content = d->arena;
    return FLOW_CONTINUE;
}
