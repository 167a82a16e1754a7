/*
 * tableident: which configured table each relation of the stream is, and whether the configured
 * tables are still the ones walnotify follows. A configured table is known by its OID (from the
 * catalog when streaming began, then as the catalog check and the stream see it change); its
 * changes are delivered under its configured name, also those made while it had another. A table
 * made again under its name is followed, with a warning; one renamed for good, dropped or taken
 * out of the publication stops walnotify. The catalog is asked through tablewatch.c, before the
 * acknowledgement moves and whenever the stream shows what the catalog did not say.
 */
#include "tableident.h"

#include <inttypes.h>
#include <stdlib.h>

#include "log.h"

/* The configured tables' identities, from the OIDs they had when streaming began. */
int wn_tableident_setup(dispatcher *d, const wn_dispatcher_options *options)
{
    size_t ntables = options->config->source.ntables;
    size_t n = ntables ? ntables : 1;

    d->tables = calloc(n, sizeof *d->tables);
    d->expected = calloc(n, sizeof *d->expected);
    d->seen = calloc(n, sizeof *d->seen);
    if (!d->tables || !d->expected || !d->seen)
        return -1;
    for (size_t i = 0; options->table_oids != NULL && i < ntables; i++)
        d->tables[i].oid = options->table_oids[i];
    return 0;
}

void wn_tableident_free(dispatcher *d)
{
    free(d->tables);
    free(d->expected);
    free(d->seen);
}

static const char *table_name(const dispatcher *d, size_t index)
{
    return d->options->config->source.tables[index].qualified;
}

/* A configured table's name now means another table (dropped and created again, or another
 * table renamed to it). Said once per change, whichever of the stream and the catalog check sees
 * it first. */
static void say_made_again(dispatcher *d, size_t index, uint32_t old_oid, uint32_t new_oid)
{
    table_identity *table = &d->tables[index];

    if (table->warned_old == old_oid && table->warned_new == new_oid)
        return;
    table->warned_old = old_oid;
    table->warned_new = new_oid;
    wn_table_say_made_again(table_name(d, index), old_oid, new_oid);
}

/* Warns, once per column, about columns of a configured table whose type changed: values are
 * text, so they are delivered as before, but a plugin that looks at type OIDs should know. */
void wn_tableident_warn_retyped(const wn_relation *cached, const wn_message *msg)
{
    const wn_rel_column *was = NULL;
    int i = -1;

    while ((i = wn_relation_next_retyped(cached, msg, i + 1, &was)) >= 0) {
        const wn_relation_column *now = &msg->u.relation.columns[i];

        wn_log(WN_LOG_WARNING,
               "table \"%s\": column \"%s\" changed type (type OID %" PRIu32 " typmod %" PRId32
               ", now type OID %" PRIu32 " typmod %" PRId32 "); its values are delivered as "
               "text as before",
               cached->qualified, now->name, was->type_oid, was->typmod, now->type_oid,
               now->typmod);
    }
}

/* Judges what the catalog says of configured table `index` against the OID it should have. */
static flow judge_table(dispatcher *d, size_t index, const wn_table_seen *seen)
{
    uint32_t expected = d->tables[index].oid;
    char why[1024];

    switch (wn_table_judge(seen, expected, table_name(d, index),
                           d->options->config->source.publication, why, sizeof why)) {
    case WN_TABLE_SAME:
        d->tables[index].oid = seen->oid;
        return FLOW_CONTINUE;
    case WN_TABLE_MADE_AGAIN:
        d->tables[index].oid = seen->oid;
        say_made_again(d, index, expected, seen->oid);
        return FLOW_CONTINUE;
    case WN_TABLE_RENAMED:
    case WN_TABLE_DROPPED:
    case WN_TABLE_UNPUBLISHED:
        break;
    }
    return fail(d, WN_DISPATCH_SERVER_STATE, "%s", why);
}

/*
 * Before the acknowledgement moves: is every configured table still published under the OID it
 * had? FLOW_DONE when a table was renamed, dropped or taken out of the publication, and when the
 * catalog could not be read: a server going down terminates this session first and then waits
 * for the walsender's client to confirm all it sent, so waiting here for a check would hold its
 * shutdown for wal_sender_timeout. The stream ends instead, acknowledging nothing more, and the
 * reconnection checks the tables again before anything else.
 */
/* What the catalog check asks about: the OIDs the configured tables are believed to have. */
static void fill_expected(dispatcher *d)
{
    for (size_t i = 0; i < d->options->config->source.ntables; i++)
        d->expected[i] = d->tables[i].oid;
}

void wn_tableident_send_check(dispatcher *d)
{
    char why[512];

    if (d->options->send_tables == NULL)
        return;
    fill_expected(d);
    (void)d->options->send_tables(d->options->tables_watch, d->expected,
                                  wn_handoff_stop_fd(d->handoff), why, sizeof why);
}

flow wn_tableident_check(dispatcher *d)
{
    size_t ntables = d->options->config->source.ntables;
    int stop_fd = d->finishing ? -1 : wn_handoff_stop_fd(d->handoff);
    char why[512];
    wn_tables_read status;

    if (d->options->read_tables == NULL)
        return FLOW_CONTINUE;
    fill_expected(d);
    status = d->options->read_tables(d->options->tables_watch, d->expected, d->seen, stop_fd, why,
                                     sizeof why);
    if (status == WN_TABLES_REFUSED)
        return fail(d, WN_DISPATCH_SERVER_STATE, "checking the tables of publication \"%s\": %s",
                    d->options->config->source.publication, why);
    /* A stop cut the check short: the stop's own last flush checks again, without the cut, and
     * acknowledges what is finished. */
    if (status != WN_TABLES_READ && !d->finishing && wn_handoff_stop_requested(d->handoff))
        return fail(d, WN_DISPATCH_STOPPED, "stopped while checking the tables");
    if (status != WN_TABLES_READ)
        return fail(d, WN_DISPATCH_TABLES_UNKNOWN,
                    "cannot check that the tables are still published before acknowledging: %s",
                    why);
    for (size_t i = 0; i < ntables; i++) {
        if (judge_table(d, i, &d->seen[i]) != FLOW_CONTINUE)
            return FLOW_DONE;
    }
    return FLOW_CONTINUE;
}

/*
 * Which configured table the changes of a relation the stream just described belong to
 * (rel->table_index). pgoutput names a relation as it was at that point of the WAL, and its
 * relation id is the table's OID: a change made under a configured name belongs to that table,
 * and a change made under a name no configured table has belongs to the configured table whose
 * OID it carries (renamed, and renamed back since); both are delivered under the configured
 * name. What the stream shows that the catalog did not say is checked against the catalog at
 * once, before any change of it is delivered: a table renamed for good, dropped or taken out of
 * the publication stops walnotify there.
 */

/* The configured table whose OID is relid, or -1 (also for 0: an OID not known). */
static int table_of_oid(const dispatcher *d, uint32_t relid)
{
    size_t ntables = d->options->config->source.ntables;

    for (size_t i = 0; relid != 0 && i < ntables; i++) {
        if (d->tables[i].oid == relid)
            return (int)i;
    }
    return -1;
}

/* Under configured name `index`, which was configured name was_index (or -1) before. A relation
 * id other than the OID the table is believed to have, or than the one this stream described it
 * with, is another table under the name: the catalog says whether the table followed so far
 * still has it. */
static flow under_configured_name(dispatcher *d, wn_relation *rel, size_t index, int was_index)
{
    table_identity *table = &d->tables[index];
    uint32_t described = table->stream_relid;

    rel->table_index = (int)index;
    table->stream_relid = rel->relid;
    if (was_index >= 0 && (size_t)was_index != index)
        wn_log(WN_LOG_WARNING,
               "table \"%s\" (relation id %" PRIu32 ") is now named \"%s\", also in "
               "source.tables: its changes are delivered as \"%s\" from now on",
               table_name(d, (size_t)was_index), rel->relid, rel->qualified, rel->qualified);
    /* Unknown when streaming began (no catalog): the stream's word is the first. */
    if (table->oid == 0)
        table->oid = rel->relid;
    if (table->oid == rel->relid && (described == 0 || described == rel->relid))
        return FLOW_CONTINUE;
    if (wn_tableident_check(d) != FLOW_CONTINUE)
        return FLOW_DONE;
    if (described != 0 && described != rel->relid)
        say_made_again(d, index, described, rel->relid);
    return FLOW_CONTINUE;
}

/* A configured table's OID under a name no configured table has: its changes made while it had
 * that name. Delivered under its configured name once the catalog says it still has that name. */
static flow under_former_name(dispatcher *d, wn_relation *rel, size_t index)
{
    if (wn_tableident_check(d) != FLOW_CONTINUE)
        return FLOW_DONE;
    rel->table_index = (int)index;
    d->tables[index].stream_relid = rel->relid;
    wn_log(WN_LOG_WARNING,
           "changes of table \"%s\" (OID %" PRIu32 ") made while it was named \"%s\" are "
           "delivered as \"%s\"",
           table_name(d, index), rel->relid, rel->qualified, table_name(d, index));
    return FLOW_CONTINUE;
}

/* Neither the name nor the relation id is a configured table's. When this stream delivered the
 * relation's changes before, under configured name was_index, that name has since been given to
 * another table, which walnotify follows instead: said, since the changes are passed over. */
static void say_left(const dispatcher *d, const wn_relation *rel, int was_index)
{
    if (was_index < 0)
        return;
    wn_log(WN_LOG_WARNING,
           "changes of relation id %" PRIu32 " made under the name \"%s\" are not delivered: it "
           "was table \"%s\" earlier in the stream, a name that now belongs to another table "
           "(OID %" PRIu32 ")",
           rel->relid, rel->qualified, table_name(d, (size_t)was_index), d->tables[was_index].oid);
}

/* Sets rel->table_index; was_index is the relation's configured table before this Relation
 * message (-1: none, or not described yet). */
flow wn_tableident_identify(dispatcher *d, wn_relation *rel, int was_index)
{
    int index = wn_config_find_table(d->options->config, rel->schema, rel->name);

    if (index >= 0)
        return under_configured_name(d, rel, (size_t)index, was_index);
    index = table_of_oid(d, rel->relid);
    if (index >= 0)
        return under_former_name(d, rel, (size_t)index);
    say_left(d, rel, was_index);
    return FLOW_CONTINUE;
}
