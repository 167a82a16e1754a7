/*
 * target: the connection to the target database in pipeline mode; see target.h.
 */
#include "target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_CAPACITY 8192 /* statements in flight at most (their results not read) */

/* The session's settings: the source's values are read back as the host's source session
 * printed them (DateStyle=ISO, TimeZone=UTC, IntervalStyle=postgres), and a commit reported
 * OK is durable. */
static const char session_sql[] =
    "SET DateStyle = ISO; SET TimeZone = 'UTC'; SET IntervalStyle = postgres; "
    "SET extra_float_digits = 3; SET synchronous_commit = on; SET client_encoding = 'UTF8'";

static void copy_text(char *out, size_t outlen, const char *text)
{
    size_t len = strcspn(text != NULL ? text : "", "\n");

    if (len >= outlen)
        len = outlen - 1;
    memcpy(out, text != NULL ? text : "", len);
    out[len] = '\0';
}

bool pgsink_target_connect(pgsink_target *t, const char *conninfo, char *why, size_t whylen)
{
    PGresult *res;

    pgsink_target_close(t);
    memset(&t->failure, 0, sizeof t->failure);
    if (t->queue == NULL) {
        t->queue = calloc(QUEUE_CAPACITY, sizeof *t->queue);
        if (t->queue == NULL) {
            snprintf(why, whylen, "out of memory");
            return false;
        }
        t->capacity = QUEUE_CAPACITY;
    }
    /* The conninfo expanded as dbname; walnotify names itself unless the user did. */
    t->conn = PQconnectdbParams((const char *const[]){"dbname", "fallback_application_name", NULL},
                                (const char *const[]){conninfo, "walnotify", NULL}, 1);
    if (PQstatus(t->conn) != CONNECTION_OK) {
        copy_text(why, whylen, PQerrorMessage(t->conn));
        pgsink_target_close(t);
        return false;
    }
    res = PQexec(t->conn, session_sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        copy_text(why, whylen, PQresultErrorMessage(res));
        PQclear(res);
        pgsink_target_close(t);
        return false;
    }
    PQclear(res);
    return true;
}

void pgsink_target_close(pgsink_target *t)
{
    if (t->conn != NULL)
        PQfinish(t->conn);
    t->conn = NULL;
    t->head = 0;
    t->count = 0;
    t->syncs = 0;
}

static bool enter_pipeline(pgsink_target *t)
{
    if (PQpipelineStatus(t->conn) != PQ_PIPELINE_OFF)
        return true;
    return PQenterPipelineMode(t->conn) == 1;
}

/* The connection failed under a send: what comes after is lost with it. */
static bool lost(pgsink_target *t, const pgsink_entry *entry)
{
    if (!t->failure.set) {
        t->failure.set = true;
        t->failure.transient = true;
        if (entry != NULL)
            t->failure.entry = *entry;
        snprintf(t->failure.sqlstate, sizeof t->failure.sqlstate, "08006");
        copy_text(t->failure.message, sizeof t->failure.message,
                  t->conn != NULL ? PQerrorMessage(t->conn) : "not connected");
        if (t->failure.message[0] == '\0')
            snprintf(t->failure.message, sizeof t->failure.message, "connection lost");
    }
    return false;
}

static bool push(pgsink_target *t, const pgsink_entry *entry)
{
    if (t->count == t->capacity && !pgsink_target_settle(t, t->capacity / 2))
        return false;
    t->queue[(t->head + t->count) % t->capacity] = *entry;
    t->count++;
    if (entry->kind == PGSINK_ENTRY_SYNC)
        t->syncs++;
    return true;
}

bool pgsink_target_send(pgsink_target *t, const pgsink_entry *entry, const char *name,
                        const char *sql, int nparams, const char *const *values, const int *lengths)
{
    int sent;

    if (t->conn == NULL || !enter_pipeline(t))
        return lost(t, entry);
    if (t->count == t->capacity && !pgsink_target_settle(t, t->capacity / 2))
        return false;
    if (name != NULL)
        sent = PQsendQueryPrepared(t->conn, name, nparams, values, lengths, NULL, 0);
    else
        sent = PQsendQueryParams(t->conn, sql, nparams, NULL, values, lengths, NULL, 0);
    if (sent != 1)
        return lost(t, entry);
    return push(t, entry);
}

bool pgsink_target_prepare(pgsink_target *t, const pgsink_entry *entry, const char *name,
                           const char *sql)
{
    pgsink_entry command = *entry;

    command.kind = PGSINK_ENTRY_COMMAND;
    if (t->conn == NULL || !enter_pipeline(t))
        return lost(t, entry);
    if (t->count == t->capacity && !pgsink_target_settle(t, t->capacity / 2))
        return false;
    if (PQsendPrepare(t->conn, name, sql, 0, NULL) != 1)
        return lost(t, entry);
    return push(t, &command);
}

bool pgsink_target_sync(pgsink_target *t)
{
    pgsink_entry entry = {.kind = PGSINK_ENTRY_SYNC};

    if (t->conn == NULL || !enter_pipeline(t))
        return lost(t, NULL);
    if (PQpipelineSync(t->conn) != 1)
        return lost(t, NULL);
    return push(t, &entry);
}

/* Whether an error is worth doing the batch again for: the connection, a conflict with
 * another session, the server going down or short of resources. Anything else (a constraint,
 * a value of the wrong type, a missing right) fails the same way again. */
static bool transient_state(const char *sqlstate)
{
    static const char *const classes[] = {"08", "40", "53", "57", "58", NULL};

    for (size_t i = 0; classes[i] != NULL; i++)
        if (strncmp(sqlstate, classes[i], 2) == 0)
            return true;
    return false;
}

static void note_error(pgsink_target *t, const pgsink_entry *entry, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (t->failure.set)
        return;
    t->failure.set = true;
    t->failure.entry = *entry;
    /* An error libpq made itself (no SQLSTATE), or a connection gone: the connection failed. */
    if (state == NULL || PQstatus(t->conn) != CONNECTION_OK)
        state = "08006";
    copy_text(t->failure.sqlstate, sizeof t->failure.sqlstate, state);
    copy_text(t->failure.message, sizeof t->failure.message,
              message != NULL ? message : PQresultErrorMessage(res));
    t->failure.transient = transient_state(t->failure.sqlstate);
}

/* The result of the oldest statement, read: it may be taken. */
static void take(pgsink_target *t, const PGresult *res)
{
    pgsink_entry *entry = &t->queue[t->head];
    ExecStatusType status = PQresultStatus(res);

    if (entry->kind == PGSINK_ENTRY_SYNC) {
        t->syncs--;
        t->failure.synced = t->failure.set;
    } else if (status == PGRES_FATAL_ERROR)
        note_error(t, entry, res);
    else if (entry->kind == PGSINK_ENTRY_COMMIT && status == PGRES_COMMAND_OK && !t->failure.set) {
        t->committed_id = entry->id;
        t->committed_position = entry->position;
        t->committed_moved = true;
    }
    t->head = (t->head + 1) % t->capacity;
    t->count--;
}

/*
 * Reads the oldest statement's result: one PGresult and a NULL for a statement, one
 * PGRES_PIPELINE_SYNC for a sync point. Blocks unless `wait` is false and nothing came.
 * Returns 1 when one was read, 0 when none came, -1 when the connection is lost.
 */
static int read_one(pgsink_target *t, bool wait)
{
    PGresult *res;

    if (!wait && (PQconsumeInput(t->conn) != 1 || PQisBusy(t->conn)))
        return PQstatus(t->conn) == CONNECTION_OK ? 0 : -1;
    res = PQgetResult(t->conn);
    if (res == NULL)
        return PQstatus(t->conn) == CONNECTION_OK ? 0 : -1;
    take(t, res);
    if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
        PQclear(res);
        res = PQgetResult(t->conn); /* the NULL that ends a statement's results */
    }
    PQclear(res);
    return 1;
}

bool pgsink_target_settle(pgsink_target *t, size_t most)
{
    bool asked = false;

    if (t->conn == NULL)
        return lost(t, NULL);
    for (;;) {
        bool wait;
        int rc;

        /* After an error the server skips everything up to a sync, a query outside the
         * pipeline too: one must follow. */
        if (t->failure.set && !t->failure.synced && t->syncs == 0) {
            t->failure.synced = true;
            if (!pgsink_target_sync(t))
                return false;
        }
        if (t->count == 0)
            break;
        wait = t->count > most;
        /* The server holds results back until a sync or a flush request: ask before waiting. */
        if (wait && !asked) {
            if (PQsendFlushRequest(t->conn) != 1 || PQflush(t->conn) != 0)
                return lost(t, NULL);
            asked = true;
        }
        rc = read_one(t, wait);
        if (rc < 0)
            return lost(t, NULL);
        if (rc == 0 && !wait)
            break;
    }
    return !t->failure.set;
}

PGresult *pgsink_target_query(pgsink_target *t, const char *sql, int nparams,
                              const char *const *values, char *why, size_t whylen)
{
    PGresult *res;
    ExecStatusType status;

    if (t->conn == NULL) {
        snprintf(why, whylen, "not connected");
        return NULL;
    }
    if (PQpipelineStatus(t->conn) != PQ_PIPELINE_OFF && PQexitPipelineMode(t->conn) != 1) {
        copy_text(why, whylen, PQerrorMessage(t->conn));
        return NULL;
    }
    res = PQexecParams(t->conn, sql, nparams, NULL, values, NULL, NULL, 0);
    status = PQresultStatus(res);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        return res;
    copy_text(why, whylen, PQresultErrorMessage(res));
    PQclear(res);
    return NULL;
}
