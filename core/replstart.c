/*
 * replstart: START_REPLICATION's text, and what its failure calls for.
 */
#include "replstart.h"

#include <stdio.h>
#include <string.h>

#include "conninfo.h"
#include "exitcode.h"

#define MESSAGE_MAX 1024

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
