/*
 * replstart: START_REPLICATION's text, and what its failure calls for.
 */
#include "replstart.h"

#include <stdio.h>
#include <string.h>

#include "conninfo.h"
#include "exitcode.h"

#define MESSAGE_MAX 1024

/*
 * The walsender (walsender.c) ends a copy once both of its flags streamingDoneReceiving (the
 * client's CopyDone came) and streamingDoneSending (it answered with its own) are set; from
 * PostgreSQL 14 to 18 only a physical START_REPLICATION clears them, so a logical one started
 * again on the same connection ends at once (the copy begins, and ends before it sends
 * anything). A physical start asked to begin past the end of WAL clears them and then fails
 * ("requested starting point ... is ahead of the WAL flush position"), before it reads WAL and
 * without a slot: the connection is ready for a logical start.
 */
#define RESET_COMMAND "START_REPLICATION PHYSICAL FFFFFFFF/FFFFFFFF"

/* Why START_REPLICATION failed, and what that calls for. */
static int start_failure(PGconn *conn, const PGresult *res, const char *slot, char *err,
                         size_t errlen)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    char message[MESSAGE_MAX];

    wn_server_message(conn, res, message, sizeof message);
    if (state && strcmp(state, "55006") == 0) {
        snprintf(err, errlen,
                 "%s (another walnotify holds the slot, or a walsender that has not yet noticed "
                 "that its client went away; it will within wal_sender_timeout)",
                 message);
        return WN_EXIT_SLOT_BUSY;
    }
    if (state && strcmp(state, "42704") == 0) {
        snprintf(err, errlen,
                 "slot \"%s\" no longer exists (%s): cannot resume without a gap; to start "
                 "again from now, run walnotify --create-slot (and recopy the tables if the gap "
                 "matters)",
                 slot, message);
        return WN_EXIT_SERVER;
    }
    snprintf(err, errlen, "starting replication from slot \"%s\": %s", slot, message);
    return wn_command_failure_status(conn, res);
}

/*
 * publication_names' value as the replication command grammar reads it: a plain '...' string
 * (it knows no E'...' form and no backslash escapes, so PQescapeLiteral's output for a name with
 * a backslash is a syntax error there), holding the name as a quoted identifier, which pgoutput
 * splits like a list of identifiers. Returns false when out does not hold it.
 */
static bool publication_names_value(const char *publication, char *out, size_t outlen)
{
    size_t used = 0;

    /* Each character at most twice for the identifier, that twice again for the string. */
    if (outlen < 4 * strlen(publication) + 5)
        return false;
    out[used++] = '\'';
    out[used++] = '"';
    for (const char *p = publication; *p; p++) {
        if (*p == '"')
            out[used++] = '"';
        if (*p == '\'')
            out[used++] = '\'';
        out[used++] = *p;
    }
    out[used++] = '"';
    out[used++] = '\'';
    out[used] = '\0';
    return true;
}

int wn_start_replication(PGconn *conn, const wn_replstart *options, char *err, size_t errlen)
{
    char query[MESSAGE_MAX], names[4 * 64 + 8], message[MESSAGE_MAX];
    char *slot = PQescapeIdentifier(conn, options->slot, strlen(options->slot));
    PGresult *res = NULL;
    bool stopped = false;
    int status = WN_EXIT_SERVER;

    if (!slot) {
        wn_server_message(conn, NULL, message, sizeof message);
        snprintf(err, errlen, "starting replication: %s", message);
        return WN_EXIT_SERVER;
    }
    if (!publication_names_value(options->publication, names, sizeof names) ||
        snprintf(query, sizeof query,
                 "START_REPLICATION SLOT %s LOGICAL %X/%X (proto_version '1', "
                 "publication_names %s%s)",
                 slot, (unsigned)(options->start_lsn >> 32), (unsigned)options->start_lsn, names,
                 options->messages ? ", messages 'true'" : "") >= (int)sizeof query) {
        snprintf(err, errlen, "starting replication: slot or publication name too long");
        goto free_slot;
    }
    res = wn_exec(conn, options->stop_fd, query, 0, NULL, &stopped);
    if (stopped) {
        snprintf(err, errlen, "stopped while starting replication from slot \"%s\"", options->slot);
        status = WN_EXIT_STOPPED;
    } else if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        status = start_failure(conn, res, options->slot, err, errlen);
    } else {
        status = 0;
    }
    PQclear(res);
free_slot:
    PQfreemem(slot);
    return status;
}

/* The reset's copy starts and ends at once, with an error: reads up to that end. */
static int reset_copy_end(PGconn *conn, int stop_fd, char *err, size_t errlen)
{
    char *buf = NULL;
    int r;

    while ((r = PQgetCopyData(conn, &buf, 1)) == 0) {
        if (!wn_await_input(conn, stop_fd)) {
            snprintf(err, errlen, "stopped while making the walsender ready to stream again");
            return WN_EXIT_STOPPED;
        }
        if (!PQconsumeInput(conn))
            break;
    }
    if (r > 0) {
        PQfreemem(buf);
        snprintf(err, errlen, "making the walsender ready to stream again: it sent WAL");
        return WN_EXIT_TRANSIENT;
    }
    return 0;
}

int wn_replstart_reset(PGconn *conn, int stop_fd, char *err, size_t errlen)
{
    char message[MESSAGE_MAX];
    bool stopped = false;
    PGresult *res = wn_exec(conn, stop_fd, RESET_COMMAND, 0, NULL, &stopped);
    int status = 0;

    if (!stopped && PQresultStatus(res) == PGRES_COPY_BOTH) {
        PQclear(res);
        status = reset_copy_end(conn, stop_fd, err, errlen);
        if (status != 0)
            return status;
        /* wn_await_result reads every result and returns the last. */
        res = wn_await_result(conn, stop_fd, &stopped);
        if (!stopped && PQresultStatus(res) == PGRES_FATAL_ERROR) {
            PQclear(res);
            return 0;
        }
    }
    if (stopped) {
        snprintf(err, errlen, "stopped while making the walsender ready to stream again");
        status = WN_EXIT_STOPPED;
    } else {
        wn_server_message(conn, res, message, sizeof message);
        snprintf(err, errlen,
                 "making the walsender ready to stream again: unexpected answer %s (%s)",
                 PQresStatus(PQresultStatus(res)), message);
        status = WN_EXIT_TRANSIENT;
    }
    PQclear(res);
    return status;
}
