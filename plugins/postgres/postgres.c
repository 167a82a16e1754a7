/*
 * postgres: walnotify's PostgreSQL sink. Changes go to a target database through libpq's
 * pipeline mode, exactly once:
 *
 *   apply mode: each change is applied to the table of the same name in the target (apply.c);
 *   append mode: each event is one row of one table, keyed by the source and its identity.
 *
 * Exactly once: a target transaction holds whole source transactions and, last, the sink's
 * progress row (the instance, the source, the position the host will acknowledge and the
 * identity of the last event applied); it commits at a flush. At init and after every new
 * connection the row is read, and every event at or below its identity is skipped.
 *
 * Never half a transaction: the open source transaction is held in memory (record.c) until its
 * commit, so a flush between its begin and commit commits the finished transactions only. One
 * larger than max_buffer_bytes is written as it comes into a target transaction of its own:
 * the finished transactions are committed first (their progress row holding the open
 * transaction's commit LSN, a position the host does not acknowledge before that transaction
 * ends), and the flushes until its commit have nothing left to commit.
 *
 * Failures: a lost connection, a deadlock or a server shutting down rolls the target
 * transaction back and asks the host for a rewind (everything after the last acknowledged
 * position comes again, and what the progress row holds is skipped). A statement the target
 * refuses (a constraint, a value of the wrong type, a missing right) names its event through
 * fail_events: the batch is rolled back and done again without it, as the block's on_error
 * says.
 */
#include <walnotify/plugin.h>

#include "apply.h"
#include "record.h"
#include "settings.h"
#include "target.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef WALNOTIFY_VERSION
#define WALNOTIFY_VERSION "1.0.0"
#endif

#define LSN_TEXT_MAX 24
#define REASON_MAX 1024
#define SETTLE_EVERY 256    /* statements sent between two looks at the results come */
#define IN_FLIGHT_MOST 4096 /* statements whose results are not read, at most */
#define SPILL_CHUNK 256     /* events of a transaction written as it comes, sent together */

typedef struct pgsink {
    const walnotify_host *host; /* borrowed until shutdown returns */
    pgsink_settings settings;
    const walnotify_source *source;
    pgsink_target target;
    pgsink_apply apply;
    char *progress;             /* the progress table, quoted */
    char *append_table;         /* append mode: the events' table, quoted */
    bool prepared;              /* this session prepared the progress (and append) statements */
    bool in_txn;                /* a target transaction is open (BEGIN sent) */
    bool finished;              /* it holds finished source transactions */
    bool open;                  /* a source transaction is between its begin and commit */
    bool spilled;               /* ... and its rows went into the target transaction as they came */
    uint64_t commit_lsn;        /* of the open source transaction */
    walnotify_id last_finished; /* the last event of the last finished source transaction */
    walnotify_id last_open;     /* the last event of the open one held or written */
    pgsink_buffer pending;      /* the open source transaction, held back */
    unsigned sent;              /* statements sent, for the pace of settling */
    int last_table;             /* the host's table the last event was on (a cache) */
} pgsink;

/* ---- small helpers --------------------------------------------------------------------------- */

static int id_cmp(walnotify_id a, walnotify_id b)
{
    if (a.position != b.position)
        return a.position < b.position ? -1 : 1;
    if (a.ordinal != b.ordinal)
        return a.ordinal < b.ordinal ? -1 : 1;
    return 0;
}

static void lsn_text(uint64_t lsn, char *out, size_t outlen)
{
    snprintf(out, outlen, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

static bool lsn_parse(const char *text, uint64_t *out)
{
    unsigned hi, lo;
    int used = 0;

    if (sscanf(text, "%X/%X%n", &hi, &lo, &used) != 2 || text[used] != '\0')
        return false;
    *out = (uint64_t)hi << 32 | lo;
    return true;
}

/* "name" or "schema.name" quoted for SQL; to free. */
static char *quote_table(PGconn *conn, const char *name)
{
    const char *dot = strchr(name, '.');
    char *schema = dot != NULL ? PQescapeIdentifier(conn, name, (size_t)(dot - name)) : NULL;
    char *rel = PQescapeIdentifier(conn, dot != NULL ? dot + 1 : name,
                                   strlen(dot != NULL ? dot + 1 : name));
    char *out = NULL;

    if (rel != NULL && (dot == NULL || schema != NULL)) {
        size_t len = strlen(rel) + (schema != NULL ? strlen(schema) + 1 : 0) + 1;
        out = malloc(len);
        if (out != NULL)
            snprintf(out, len, "%s%s%s", schema != NULL ? schema : "", schema != NULL ? "." : "",
                     rel);
    }
    PQfreemem(schema);
    PQfreemem(rel);
    return out;
}

static int find_table(pgsink *st, const char *table)
{
    size_t count = st->host->table_count(st->host);

    if (table == NULL)
        return -1;
    if (st->last_table >= 0 && (size_t)st->last_table < count &&
        strcmp(st->host->table(st->host, (size_t)st->last_table)->table, table) == 0)
        return st->last_table;
    for (size_t i = 0; i < count; i++)
        if (strcmp(st->host->table(st->host, i)->table, table) == 0)
            return st->last_table = (int)i;
    return -1;
}

/* ---- the progress row ------------------------------------------------------------------------ */

static const char progress_columns[] =
    "(instance text PRIMARY KEY, system_identifier numeric NOT NULL, "
    "database text NOT NULL, slot text NOT NULL, position pg_lsn NOT NULL, "
    "last_position pg_lsn NOT NULL, last_ordinal numeric NOT NULL, "
    "updated_at timestamptz NOT NULL DEFAULT now())";

static const char append_columns[] =
    "(source_system_identifier numeric NOT NULL, source_slot text NOT NULL, "
    "id_position pg_lsn NOT NULL, id_ordinal numeric NOT NULL, commit_lsn pg_lsn NOT NULL, "
    "seq bigint NOT NULL, xid bigint NOT NULL, commit_time timestamptz, source_table text, "
    "op text NOT NULL, new_row jsonb, old_row jsonb, message_prefix text, message_content text, "
    "PRIMARY KEY (source_system_identifier, source_slot, id_position, id_ordinal))";

/* Runs sql outside the pipeline; false after logging why (*transient: the connection). */
static bool run(pgsink *st, const char *sql, int nparams, const char *const *params, PGresult **out,
                bool *transient)
{
    char why[512];
    PGresult *res = pgsink_target_query(&st->target, sql, nparams, params, why, sizeof why);

    if (res == NULL) {
        *transient = st->target.conn == NULL || PQstatus(st->target.conn) != CONNECTION_OK;
        st->host->log(st->host, *transient ? WALNOTIFY_LOG_WARNING : WALNOTIFY_LOG_ERROR,
                      "target: %s", why);
        return false;
    }
    if (out != NULL)
        *out = res;
    else
        PQclear(res);
    return true;
}

/* Creates the table with its columns when to_regclass does not find it. */
static bool ensure_table(pgsink *st, const char *name, const char *quoted, const char *columns,
                         bool *transient)
{
    const char *params[1] = {quoted};
    PGresult *res;
    char create[1024];
    bool missing;

    if (!run(st, "SELECT to_regclass($1) IS NULL", 1, params, &res, transient))
        return false;
    missing = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!missing)
        return true;
    snprintf(create, sizeof create, "CREATE TABLE %s %s", quoted, columns);
    st->host->log(st->host, WALNOTIFY_LOG_INFO, "creating target table %s", name);
    return run(st, create, 0, NULL, NULL, transient);
}

/* The row belongs to this source; false after logging why not. */
static bool check_source(pgsink *st, const char *system, const char *database, const char *slot)
{
    char ours[32];

    snprintf(ours, sizeof ours, "%" PRIu64, st->source->system_identifier);
    if (strcmp(system, ours) == 0 && strcmp(database, st->source->database) == 0 &&
        strcmp(slot, st->source->slot) == 0)
        return true;
    st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                  "the progress row of \"%s\" in target table %s belongs to another source "
                  "(system %s, database %s, slot %s), not this one (system %s, database %s, slot "
                  "%s): give the block another name or another progress_table",
                  st->host->instance_name, st->settings.progress_table, system, database, slot,
                  ours, st->source->database, st->source->slot);
    return false;
}

/* A row behind the position the stream resumes from: what lies between will not come again. */
static bool check_position(pgsink *st, uint64_t position)
{
    uint64_t resume = st->host->resume_position(st->host);
    char row[LSN_TEXT_MAX], from[LSN_TEXT_MAX];

    if (position >= resume)
        return true;
    lsn_text(position, row, sizeof row);
    lsn_text(resume, from, sizeof from);
    st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                  "the progress row of \"%s\" in target table %s is at %s, behind %s where the "
                  "stream resumes: the target lost transactions that were acknowledged and will "
                  "not come again (restored from an earlier backup?); copy the source's tables "
                  "anew and delete the row, or restore a later backup",
                  st->host->instance_name, st->settings.progress_table, row, from);
    return false;
}

/* Reads the progress row (inserting it on the first run); false after logging why. */
static bool read_progress(pgsink *st, bool at_init, bool *transient)
{
    char system[32], resume[LSN_TEXT_MAX], sql[512];
    const char *params[5] = {st->host->instance_name, system, st->source->database,
                             st->source->slot, resume};
    uint64_t position = 0, last = 0;
    PGresult *res;
    bool ok;

    snprintf(system, sizeof system, "%" PRIu64, st->source->system_identifier);
    lsn_text(st->host->resume_position(st->host), resume, sizeof resume);
    snprintf(sql, sizeof sql,
             "SELECT system_identifier::text, database, slot, position::text, "
             "last_position::text, last_ordinal::text FROM %s WHERE instance = $1",
             st->progress);
    if (!run(st, sql, 1, params, &res, transient))
        return false;
    if (PQntuples(res) == 0) {
        PQclear(res);
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s (instance, system_identifier, database, slot, position, "
                 "last_position, last_ordinal) VALUES ($1, $2, $3, $4, $5, '0/0', 0)",
                 st->progress);
        if (!run(st, sql, 5, params, NULL, transient))
            return false;
        st->target.committed_id = (walnotify_id){0, 0};
        st->target.committed_position = st->host->resume_position(st->host);
        return true;
    }
    ok = check_source(st, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2)) &&
         lsn_parse(PQgetvalue(res, 0, 3), &position) && lsn_parse(PQgetvalue(res, 0, 4), &last) &&
         (!at_init || check_position(st, position));
    st->target.committed_id = (walnotify_id){last, strtoull(PQgetvalue(res, 0, 5), NULL, 10)};
    st->target.committed_position = position;
    PQclear(res);
    return ok;
}

/* ---- the connection -------------------------------------------------------------------------- */

/* Connects and reads the progress row; OK, RETRY (the target cannot be reached) or FATAL. */
static walnotify_status connect_target(pgsink *st, bool at_init)
{
    char why[512];
    bool transient = false;

    if (st->target.conn != NULL)
        return WALNOTIFY_OK;
    st->prepared = false;
    pgsink_apply_forget(&st->apply);
    if (!pgsink_target_connect(&st->target, st->settings.conninfo, why, sizeof why)) {
        st->host->log(st->host, WALNOTIFY_LOG_WARNING, "cannot connect to the target: %s", why);
        return WALNOTIFY_RETRY;
    }
    if (st->progress == NULL) {
        st->progress = quote_table(st->target.conn, st->settings.progress_table);
        if (st->settings.mode == PGSINK_MODE_APPEND)
            st->append_table = quote_table(st->target.conn, st->settings.table);
        if (st->progress == NULL ||
            (st->settings.mode == PGSINK_MODE_APPEND && st->append_table == NULL)) {
            st->host->log(st->host, WALNOTIFY_LOG_ERROR, "out of memory");
            return WALNOTIFY_FATAL;
        }
    }
    if (!ensure_table(st, st->settings.progress_table, st->progress, progress_columns,
                      &transient) ||
        !read_progress(st, at_init, &transient) ||
        (st->settings.mode == PGSINK_MODE_APPEND &&
         !ensure_table(st, st->settings.table, st->append_table, append_columns, &transient)) ||
        (at_init && st->settings.mode == PGSINK_MODE_APPLY &&
         !pgsink_apply_load(&st->apply, st->host, &st->settings, &st->target, &transient))) {
        pgsink_target_close(&st->target);
        return transient ? WALNOTIFY_RETRY : WALNOTIFY_FATAL;
    }
    st->last_finished = st->target.committed_id;
    return WALNOTIFY_OK;
}

/* ---- failures the host handles --------------------------------------------------------------- */

/* Forgets the target transaction: read what is left of the pipeline, roll back. */
static void reset_transaction(pgsink *st)
{
    pgsink_target *t = &st->target;

    if (t->conn != NULL && PQstatus(t->conn) == CONNECTION_OK)
        pgsink_target_settle(t, 0);
    if (t->conn != NULL && PQstatus(t->conn) == CONNECTION_OK && PQexitPipelineMode(t->conn) == 1) {
        /* A statement prepared after the failure in the same pipeline was never made: every
         * one is made again. */
        PGresult *res = PQexec(t->conn, "ROLLBACK; DEALLOCATE ALL");
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

        PQclear(res);
        if (!ok)
            pgsink_target_close(t);
    } else {
        pgsink_target_close(t);
    }
    pgsink_apply_forget(&st->apply);
    st->prepared = false;
    pgsink_apply_drop(&st->apply);
    st->in_txn = false;
    st->finished = false;
    st->spilled = false;
    /* What the progress row will name next is what the target holds now, nothing more. */
    st->last_finished = t->committed_id;
    pgsink_buffer_clear(&st->pending, st->settings.max_buffer_bytes);
}

/* What a failed statement means for the host: a rewind, or its event named as failed. */
static walnotify_status failed(pgsink *st)
{
    const walnotify_host *host = st->host;
    pgsink_failure f = st->target.failure;
    char reason[REASON_MAX], id[64];

    snprintf(id, sizeof id, "%" PRIX32 "/%" PRIX32 ":%" PRIu64,
             (uint32_t)(f.entry.id.position >> 32), (uint32_t)f.entry.id.position,
             f.entry.id.ordinal);
    memset(&st->target.failure, 0, sizeof st->target.failure);
    if (f.transient)
        pgsink_target_close(&st->target); /* read again at the next connection */
    reset_transaction(st);
    memset(&st->target.failure, 0, sizeof st->target.failure);
    if (f.entry.table != NULL)
        snprintf(reason, sizeof reason, "target %s event %s on %s (key %s): %s (SQLSTATE %s)",
                 f.transient ? "failed at" : "refused", id, f.entry.table,
                 f.entry.key[0] != '\0' ? f.entry.key : "none", f.message, f.sqlstate);
    else
        snprintf(reason, sizeof reason, "target: %s (SQLSTATE %s)", f.message, f.sqlstate);
    if (f.transient) {
        host->log(host, WALNOTIFY_LOG_WARNING, "will do the batch again: %s", reason);
        return host->rewind(host, reason);
    }
    if (f.entry.group) {
        /* Which of its rows? Done again one row per statement, the refused one is named. */
        st->apply.careful = true;
        host->log(host, WALNOTIFY_LOG_WARNING,
                  "will do the batch again one row at a time to find the row refused: %s", reason);
        return host->rewind(host, reason);
    }
    host->log(host, WALNOTIFY_LOG_ERROR, "%s", reason);
    /* Not an event's statement (the progress row, refused): nothing a policy can skip. */
    if (f.entry.table == NULL)
        return WALNOTIFY_FATAL;
    return host->fail_events(host, f.entry.id, f.entry.id, WALNOTIFY_FAILURE_PERMANENT, reason);
}

/* ---- writing --------------------------------------------------------------------------------- */

static bool command(pgsink *st, const char *sql)
{
    pgsink_entry entry = {.kind = PGSINK_ENTRY_COMMAND};

    return pgsink_target_send(&st->target, &entry, NULL, sql, 0, NULL, NULL);
}

static bool prepare_own(pgsink *st)
{
    pgsink_entry entry = {.kind = PGSINK_ENTRY_COMMAND};
    char sql[1024];

    if (st->prepared)
        return true;
    snprintf(sql, sizeof sql,
             "UPDATE %s SET position = $2::pg_lsn, last_position = $3::pg_lsn, "
             "last_ordinal = $4::numeric, updated_at = now() WHERE instance = $1",
             st->progress);
    if (!pgsink_target_prepare(&st->target, &entry, "wn_progress", sql))
        return false;
    if (st->settings.mode == PGSINK_MODE_APPEND) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s SELECT $1::numeric, $2, $3::pg_lsn, $4::numeric, $5::pg_lsn, "
                 "$6::bigint, $7::bigint, 'epoch'::timestamptz + NULLIF($8::bigint, 0) * "
                 "interval '1 microsecond', j->>'table', j->>'op', j->'values', j->'old', "
                 "j->>'prefix', coalesce(j->>'content', j->>'content_hex') "
                 "FROM (SELECT $9::jsonb AS j) e",
                 st->append_table);
        if (!pgsink_target_prepare(&st->target, &entry, "wn_append", sql))
            return false;
    }
    st->prepared = true;
    return true;
}

static bool begin_target(pgsink *st)
{
    if (st->in_txn)
        return true;
    if (!prepare_own(st) || !command(st, "BEGIN"))
        return false;
    st->in_txn = true;
    return true;
}

/* The progress row and COMMIT: `last` and `position` are durable once its result is read. */
static bool commit_target(pgsink *st, uint64_t position, walnotify_id last)
{
    char pos[LSN_TEXT_MAX], lastpos[LSN_TEXT_MAX], ordinal[32];
    const char *params[4] = {st->host->instance_name, pos, lastpos, ordinal};
    pgsink_entry progress = {.kind = PGSINK_ENTRY_COMMAND};
    pgsink_entry commit = {.kind = PGSINK_ENTRY_COMMIT, .id = last, .position = position};

    lsn_text(position, pos, sizeof pos);
    lsn_text(last.position, lastpos, sizeof lastpos);
    snprintf(ordinal, sizeof ordinal, "%" PRIu64, last.ordinal);
    if (!begin_target(st) ||
        !pgsink_target_send(&st->target, &progress, "wn_progress", NULL, 4, params, NULL) ||
        !pgsink_target_send(&st->target, &commit, NULL, "COMMIT", 0, NULL, NULL) ||
        !pgsink_target_sync(&st->target))
        return false;
    st->in_txn = false;
    st->finished = false;
    return true;
}

static bool send_append(pgsink *st, const pgsink_record *rec, const pgsink_entry *entry)
{
    char system[32], idpos[LSN_TEXT_MAX], ordinal[32], lsn[LSN_TEXT_MAX], seq[16], xid[16],
        when[32];
    const char *params[9] = {system, st->source->slot,        idpos, ordinal, lsn, seq, xid,
                             when,   pgsink_cell_text(rec, 0)};

    snprintf(system, sizeof system, "%" PRIu64, st->source->system_identifier);
    lsn_text(rec->id.position, idpos, sizeof idpos);
    snprintf(ordinal, sizeof ordinal, "%" PRIu64, rec->id.ordinal);
    lsn_text(rec->commit_lsn, lsn, sizeof lsn);
    snprintf(seq, sizeof seq, "%" PRIu32, rec->seq);
    snprintf(xid, sizeof xid, "%" PRIu32, rec->xid);
    snprintf(when, sizeof when, "%" PRId64, rec->commit_time);
    return pgsink_target_send(&st->target, entry, "wn_append", NULL, 9, params, NULL);
}

/* Sends every record held, in order, into the target transaction, and empties the buffer. */
static bool send_pending(pgsink *st)
{
    size_t offset = 0;
    pgsink_record rec;

    if (st->pending.count == 0)
        return true;
    if (!begin_target(st))
        return false;
    while (pgsink_buffer_next(&st->pending, &offset, &rec)) {
        pgsink_entry entry = {.kind = PGSINK_ENTRY_EVENT, .id = rec.id};
        bool ok;

        entry.table =
            rec.table >= 0 ? st->host->table(st->host, (size_t)rec.table)->table : "(no table)";
        snprintf(entry.key, sizeof entry.key, "%s", rec.key);
        if (st->settings.mode == PGSINK_MODE_APPEND)
            ok = send_append(st, &rec, &entry);
        else
            ok = pgsink_apply_send(&st->apply, &st->target, &rec, &entry);
        if (!ok)
            return false;
        if (++st->sent % SETTLE_EVERY == 0 && !pgsink_target_settle(&st->target, IN_FLIGHT_MOST))
            return false;
    }
    /* The inserts gathered point into the buffer: they go before it is emptied. */
    if (!pgsink_apply_flush(&st->apply, &st->target))
        return false;
    pgsink_buffer_clear(&st->pending, st->settings.max_buffer_bytes);
    return true;
}

/*
 * The open source transaction outgrew the buffer: the finished ones are committed first (the
 * progress row at its commit LSN, which the host acknowledges nothing past until it ends), and
 * from now on its rows go out as they come.
 */
static bool spill(pgsink *st)
{
    if ((st->finished || st->target.committed_position < st->commit_lsn) &&
        !commit_target(st, st->commit_lsn, st->last_finished))
        return false;
    st->spilled = true;
    return send_pending(st);
}

/* ---- records --------------------------------------------------------------------------------- */

static size_t add_cells(pgsink *st, int table, const walnotify_column *cols, size_t n,
                        pgsink_cell *cells)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++) {
        int col = pgsink_apply_column(&st->apply, st->host, table, i, cols[i].name);

        if (col < 0)
            continue;
        cells[count].column = col;
        cells[count].value = cols[i].value;
        if (cols[i].kind == WALNOTIFY_VALUE_TEXT)
            cells[count].length = (int32_t)cols[i].length;
        else
            cells[count].length =
                cols[i].kind == WALNOTIFY_VALUE_UNCHANGED ? PGSINK_UNCHANGED : PGSINK_NULL;
        count++;
    }
    return count;
}

/* The event as a record, into the buffer; false when out of memory. */
static bool hold(pgsink *st, const walnotify_event *ev)
{
    pgsink_record rec = {.op = ev->op,
                         .table = find_table(st, ev->table),
                         .id = ev->id,
                         .commit_lsn = ev->commit_lsn,
                         .seq = ev->seq,
                         .xid = ev->xid,
                         .commit_time = ev->commit_time,
                         .truncate_options = ev->truncate_options,
                         .key = ""};
    size_t ncells = ev->ncolumns + ev->nold_columns + 1;
    pgsink_cell stack[64], *cells = ncells <= 64 ? stack : malloc(ncells * sizeof *cells);
    const char *key = NULL;
    bool ok;

    if (cells == NULL)
        return false;
    if (st->settings.mode == PGSINK_MODE_APPEND) {
        size_t length = 0;
        const char *json = st->host->encode_json(st->host, ev, &length);
        if (json == NULL)
            return false;
        cells[0] = (pgsink_cell){.column = 0, .length = (int32_t)length, .value = json};
        rec.nnew = 1;
    } else {
        if (ev->op != WALNOTIFY_OP_TRUNCATE)
            key = st->host->encode_key(st->host, ev, NULL);
        rec.nnew = add_cells(st, rec.table, ev->columns, ev->ncolumns, cells);
        rec.nold = add_cells(st, rec.table, ev->old_columns, ev->nold_columns, cells + rec.nnew);
    }
    rec.key = key != NULL ? key : "";
    rec.cells = cells;
    ok = pgsink_buffer_add(&st->pending, &rec);
    /* add() copied the values: the record in the buffer holds offsets. */
    if (cells != stack)
        free(cells);
    return ok;
}

/* Whether the event means nothing to the target. */
static bool nothing_to_write(const pgsink *st, const walnotify_event *ev)
{
    if (st->settings.mode == PGSINK_MODE_APPEND)
        return false;
    return ev->op == WALNOTIFY_OP_MESSAGE ||
           (ev->op == WALNOTIFY_OP_SNAPSHOT && ev->snapshot_marker != WALNOTIFY_SNAPSHOT_ROW);
}

/* ---- callbacks ------------------------------------------------------------------------------- */

static walnotify_status pgsink_check(const walnotify_host *host)
{
    pgsink_settings settings;

    return pgsink_settings_read(host, &settings) ? WALNOTIFY_OK : WALNOTIFY_FATAL;
}

static void pgsink_shutdown(void *state)
{
    pgsink *st = state;

    if (st == NULL)
        return;
    if (st->target.conn != NULL && st->in_txn)
        reset_transaction(st);
    pgsink_target_close(&st->target);
    free(st->target.queue);
    pgsink_apply_free(&st->apply);
    pgsink_buffer_free(&st->pending);
    free(st->progress);
    free(st->append_table);
    free(st);
}

static bool host_has_services(const walnotify_host *host)
{
    if (WALNOTIFY_HAS(walnotify_host, host, rewind) && host->rewind != NULL &&
        host->fail_events != NULL && host->source != NULL && host->encode_key != NULL &&
        host->flush_position != NULL && host->set_flush_always != NULL)
        return true;
    host->log(host, WALNOTIFY_LOG_ERROR,
              "this host does not provide the ABI 1.1 services the postgres plugin needs");
    return false;
}

static walnotify_status pgsink_init(const walnotify_host *host, void **state)
{
    pgsink *st;
    walnotify_status status;

    if (!host_has_services(host))
        return WALNOTIFY_FATAL;
    st = calloc(1, sizeof *st);
    if (st == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return WALNOTIFY_FATAL;
    }
    st->host = host;
    st->last_table = -1;
    st->source = host->source(host);
    if (!pgsink_settings_read(host, &st->settings)) {
        pgsink_shutdown(st);
        return WALNOTIFY_FATAL;
    }
    status = connect_target(st, true);
    if (status != WALNOTIFY_OK) {
        pgsink_shutdown(st);
        return status;
    }
    /* The progress row follows every acknowledgement, keepalives' too. */
    host->set_flush_always(host, true);
    host->log(host, WALNOTIFY_LOG_INFO, "%s into the target, progress in %s",
              st->settings.mode == PGSINK_MODE_APPLY ? "applying changes" : "appending events",
              st->settings.progress_table);
    *state = st;
    return WALNOTIFY_OK;
}

static walnotify_status pgsink_begin(void *state, const walnotify_txn *txn)
{
    pgsink *st = state;
    walnotify_status status = connect_target(st, false);

    if (status != WALNOTIFY_OK)
        return status;
    pgsink_buffer_clear(&st->pending, st->settings.max_buffer_bytes);
    st->open = true;
    st->spilled = false;
    st->commit_lsn = txn->commit_lsn;
    st->last_open = (walnotify_id){0, 0};
    return WALNOTIFY_OK;
}

static walnotify_status pgsink_handle(void *state, const walnotify_event *ev)
{
    pgsink *st = state;
    walnotify_status status = connect_target(st, false);

    if (status != WALNOTIFY_OK)
        return status;
    /* Already in the target: the progress row says so. */
    if (id_cmp(ev->id, st->target.committed_id) <= 0 || nothing_to_write(st, ev))
        return WALNOTIFY_OK;
    if (!hold(st, ev)) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "out of memory holding an event of %s",
                      ev->table != NULL ? ev->table : "a message");
        return WALNOTIFY_RETRY;
    }
    st->last_open = ev->id;
    if (!st->open) {
        /* Outside a transaction (a message of its own): finished at once. */
        if (!send_pending(st))
            return failed(st);
        st->finished = true;
        st->last_finished = ev->id;
        return WALNOTIFY_OK;
    }
    if (st->spilled ? st->pending.count >= SPILL_CHUNK && !send_pending(st)
                    : st->pending.len > st->settings.max_buffer_bytes && !spill(st))
        return failed(st);
    return WALNOTIFY_OK;
}

static walnotify_status pgsink_commit(void *state, const walnotify_txn *txn)
{
    pgsink *st = state;

    (void)txn;
    st->open = false;
    if (!send_pending(st))
        return failed(st);
    if (st->spilled || id_cmp(st->last_open, (walnotify_id){0, 0}) != 0) {
        st->finished = st->in_txn;
        if (id_cmp(st->last_open, st->last_finished) > 0)
            st->last_finished = st->last_open;
    }
    st->spilled = false;
    if (!pgsink_target_settle(&st->target, IN_FLIGHT_MOST))
        return failed(st);
    return WALNOTIFY_OK;
}

static void pgsink_abort(void *state, const walnotify_txn *txn)
{
    pgsink *st = state;

    (void)txn;
    st->open = false;
    pgsink_buffer_clear(&st->pending, st->settings.max_buffer_bytes);
    /* Part of it went into the target transaction: that holds nothing else (the finished
     * transactions were committed before), and is rolled back. */
    if (st->spilled)
        reset_transaction(st);
    st->spilled = false;
}

/*
 * Commits the finished transactions with the progress row at the position the host will
 * acknowledge. Inside a transaction held back, the finished ones alone are committed; inside
 * one written as it came, they were committed before it began.
 */
static walnotify_status pgsink_flush(void *state)
{
    pgsink *st = state;
    uint64_t position = st->host->flush_position(st->host);
    walnotify_status status = connect_target(st, false);

    if (status != WALNOTIFY_OK)
        return status;
    if (!(st->open && st->spilled) && (st->finished || st->target.committed_position < position) &&
        !commit_target(st, position,
                       id_cmp(st->last_finished, st->target.committed_id) > 0
                           ? st->last_finished
                           : st->target.committed_id))
        return failed(st);
    if (!pgsink_target_settle(&st->target, 0))
        return failed(st);
    if (st->target.committed_moved) {
        char pos[LSN_TEXT_MAX], last[LSN_TEXT_MAX];

        lsn_text(st->target.committed_position, pos, sizeof pos);
        lsn_text(st->target.committed_id.position, last, sizeof last);
        st->host->log(st->host, WALNOTIFY_LOG_DEBUG,
                      "target committed: progress at %s, last event %s:%" PRIu64, pos, last,
                      st->target.committed_id.ordinal);
        st->target.committed_moved = false;
        st->apply.careful = false; /* what was refused is past */
    }
    if (st->target.committed_position < position) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "the progress row is behind the position to acknowledge");
        return WALNOTIFY_FATAL;
    }
    return WALNOTIFY_OK;
}

static const walnotify_plugin pgsink_plugin = {
    .magic = WALNOTIFY_PLUGIN_MAGIC,
    .abi_major = WALNOTIFY_ABI_MAJOR,
    .abi_minor = 1,
    .size = sizeof(walnotify_plugin),
    .name = "postgres",
    .version = WALNOTIFY_VERSION,
    .settings = pgsink_declared,
    .init = pgsink_init,
    .handle = pgsink_handle,
    .shutdown = pgsink_shutdown,
    .begin = pgsink_begin,
    .commit = pgsink_commit,
    .abort = pgsink_abort,
    .flush = pgsink_flush,
    .ops = WALNOTIFY_OPS_CHANGES | WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE,
    .check = pgsink_check,
};

const walnotify_plugin *walnotify_plugin_entry(void)
{
    return &pgsink_plugin;
}
