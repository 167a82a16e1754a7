/*
 * tablewatch: one small query, on an ordinary connection of its own, tells for every configured
 * table its OID under its configured name, whether the publication carries it (directly, for all
 * tables, by schema, or through a partitioned ancestor: pg_get_publication_tables knows), and
 * what became of the OID walnotify believed it had.
 *
 * The query is sent without blocking and waited for with poll, so a stop request or a server that
 * stopped answering cannot hold the dispatcher for long.
 */
#include "tablewatch.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "conninfo.h"
#include "log.h"

#define QUERY_TIMEOUT_MS 5000 /* a check that takes longer is given up: nothing is known */
#define MESSAGE_MAX 1024
#define WATCH_STATEMENT "walnotify_tablewatch"

struct wn_tablewatch {
    const wn_config *config;
    bool utf8;
    PGconn *conn;       /* NULL until the next read connects */
    bool in_flight;     /* a query was sent and its answer not taken yet */
    uint32_t *sent_for; /* [source.ntables]: the expected OIDs it was sent with */
};

static const char watch_sql[] =
    "SELECT c.oid, "
    "       c.oid IS NOT NULL AND c.oid IN (SELECT relid FROM pg_get_publication_tables($4)), "
    "       e.oid IS NOT NULL, "
    "       coalesce(en.nspname || '.' || e.relname, ''), "
    "       EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS u(s, n) "
    "               WHERE u.s = en.nspname AND u.n = e.relname) "
    "FROM unnest($1::text[], $2::text[], $3::oid[]) WITH ORDINALITY AS t(s, n, o, i) "
    "LEFT JOIN pg_namespace ns ON ns.nspname = t.s "
    "LEFT JOIN pg_class c ON c.relnamespace = ns.oid AND c.relname = t.n "
    "LEFT JOIN pg_class e ON e.oid = t.o "
    "LEFT JOIN pg_namespace en ON en.oid = e.relnamespace "
    "ORDER BY t.i";

static int64_t monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

wn_tablewatch *wn_tablewatch_create(const wn_config *config, bool utf8)
{
    wn_tablewatch *watch = calloc(1, sizeof *watch);

    if (watch == NULL)
        return NULL;
    watch->config = config;
    watch->utf8 = utf8;
    watch->sent_for =
        calloc(config->source.ntables ? config->source.ntables : 1, sizeof *watch->sent_for);
    if (watch->sent_for == NULL) {
        free(watch);
        return NULL;
    }
    return watch;
}

void wn_tablewatch_destroy(wn_tablewatch *watch)
{
    if (watch == NULL)
        return;
    if (watch->conn != NULL)
        PQfinish(watch->conn);
    free(watch->sent_for);
    free(watch);
}

/* Appends text to the array literal being built in buf (size bytes, *used so far), quoted as
 * an array element. false when it does not fit. */
static bool append_element(char *buf, size_t size, size_t *used, const char *text, bool first)
{
    size_t at = *used;

    if (at + 2 >= size)
        return false;
    if (!first)
        buf[at++] = ',';
    buf[at++] = '"';
    for (const char *p = text; *p != '\0'; p++) {
        if (at + 3 >= size)
            return false;
        if (*p == '"' || *p == '\\')
            buf[at++] = '\\';
        buf[at++] = *p;
    }
    if (at + 2 >= size)
        return false;
    buf[at++] = '"';
    buf[at] = '\0';
    *used = at;
    return true;
}

/* The three array parameters: schemas, names and expected OIDs, each "{...}"; to free. */
static char **build_arrays(const wn_source_config *source, const uint32_t *expected)
{
    /* Every name is at most WN_NAME_MAX bytes, doubled at worst by escaping, plus quotes. */
    size_t size = source->ntables * (2 * WN_NAME_MAX + 4) + 3;
    char **arrays = calloc(3, sizeof *arrays);
    size_t used[3] = {1, 1, 1};
    bool ok = arrays != NULL;

    for (int a = 0; ok && a < 3; a++) {
        arrays[a] = malloc(size);
        ok = arrays[a] != NULL;
        if (ok)
            strcpy(arrays[a], "{");
    }
    for (size_t i = 0; ok && i < source->ntables; i++) {
        char oid[16];

        snprintf(oid, sizeof oid, "%u", expected ? (unsigned)expected[i] : 0u);
        ok = append_element(arrays[0], size, &used[0], source->tables[i].schema, i == 0) &&
             append_element(arrays[1], size, &used[1], source->tables[i].name, i == 0) &&
             append_element(arrays[2], size, &used[2], oid, i == 0);
    }
    for (int a = 0; ok && a < 3; a++) {
        ok = used[a] + 2 <= size;
        if (ok)
            strcpy(arrays[a] + used[a], "}");
    }
    if (ok)
        return arrays;
    for (int a = 0; arrays != NULL && a < 3; a++)
        free(arrays[a]);
    free(arrays);
    return NULL;
}

static void free_arrays(char **arrays)
{
    for (int a = 0; a < 3; a++)
        free(arrays[a]);
    free(arrays);
}

/* WN_TABLES_UNKNOWN for what waiting may cure, else WN_TABLES_REFUSED. */
static wn_tables_read read_failure(PGconn *conn, const PGresult *res)
{
    return wn_command_failure_status(conn, res) == WN_EXIT_TRANSIENT ? WN_TABLES_UNKNOWN
                                                                     : WN_TABLES_REFUSED;
}

/* Gives the connection up after a failure: the next read makes a new one. */
static wn_tables_read drop_connection(wn_tablewatch *watch, wn_tables_read status)
{
    if (watch->conn != NULL)
        PQfinish(watch->conn);
    watch->conn = NULL;
    watch->in_flight = false;
    return status;
}

/* Waits until the query's result is there; WN_TABLES_READ, or WN_TABLES_UNKNOWN with err set. */
static wn_tables_read wait_for_result(wn_tablewatch *watch, int stop_fd, char *err, size_t errlen)
{
    int64_t deadline = monotonic_ms() + QUERY_TIMEOUT_MS;
    char message[MESSAGE_MAX];

    while (PQisBusy(watch->conn)) {
        struct pollfd fds[2] = {{.fd = PQsocket(watch->conn), .events = POLLIN},
                                {.fd = stop_fd, .events = POLLIN}};
        int64_t left = deadline - monotonic_ms();
        int r;

        if (left <= 0) {
            snprintf(err, errlen, "no answer within %d ms", QUERY_TIMEOUT_MS);
            return WN_TABLES_UNKNOWN;
        }
        r = poll(fds, stop_fd >= 0 ? 2 : 1, (int)left);
        if (r < 0 && errno != EINTR) {
            snprintf(err, errlen, "waiting for the server: %s", strerror(errno));
            return WN_TABLES_UNKNOWN;
        }
        if (stop_fd >= 0 && (fds[1].revents & POLLIN)) {
            snprintf(err, errlen, "stopped while waiting for the server");
            return WN_TABLES_UNKNOWN;
        }
        if (r > 0 && !PQconsumeInput(watch->conn)) {
            wn_server_message(watch->conn, NULL, message, sizeof message);
            snprintf(err, errlen, "%s", message);
            return WN_TABLES_UNKNOWN;
        }
    }
    return WN_TABLES_READ;
}

/* Copies one result row into seen. */
static void read_row(const PGresult *res, int row, wn_table_seen *seen)
{
    memset(seen, 0, sizeof *seen);
    if (!PQgetisnull(res, row, 0))
        seen->oid = (uint32_t)strtoul(PQgetvalue(res, row, 0), NULL, 10);
    seen->published = strcmp(PQgetvalue(res, row, 1), "t") == 0;
    seen->expected_exists = strcmp(PQgetvalue(res, row, 2), "t") == 0;
    snprintf(seen->expected_now, sizeof seen->expected_now, "%s", PQgetvalue(res, row, 3));
    seen->expected_now_configured = strcmp(PQgetvalue(res, row, 4), "t") == 0;
}

/* Takes every result of the query: WN_TABLES_READ with seen filled, or a failure with err set. */
static wn_tables_read take_results(wn_tablewatch *watch, wn_table_seen *seen, char *err,
                                   size_t errlen)
{
    size_t ntables = watch->config->source.ntables;
    wn_tables_read status = WN_TABLES_READ;
    PGresult *res;
    char message[MESSAGE_MAX];

    while ((res = PQgetResult(watch->conn)) != NULL) {
        if (status != WN_TABLES_READ) {
            PQclear(res);
            continue;
        }
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            wn_server_message(watch->conn, res, message, sizeof message);
            snprintf(err, errlen, "%s", message);
            status = read_failure(watch->conn, res);
        } else if ((size_t)PQntuples(res) != ntables || PQnfields(res) != 5) {
            snprintf(err, errlen, "the catalog query returned %d rows for %zu tables",
                     PQntuples(res), ntables);
            status = WN_TABLES_REFUSED;
        } else {
            for (size_t i = 0; i < ntables; i++)
                read_row(res, (int)i, &seen[i]);
        }
        PQclear(res);
    }
    return status;
}

/* Prepares the query once per connection: parsing and planning it cost four times its run, and
 * with flush = "commit" it runs once per group of transactions. WN_TABLES_READ when prepared. */
static wn_tables_read prepare(wn_tablewatch *watch, int stop_fd, char *err, size_t errlen)
{
    wn_tables_read status;
    char message[MESSAGE_MAX];
    PGresult *res;

    if (!PQsendPrepare(watch->conn, WATCH_STATEMENT, watch_sql, 4, NULL)) {
        wn_server_message(watch->conn, NULL, message, sizeof message);
        snprintf(err, errlen, "%s", message);
        return WN_TABLES_UNKNOWN;
    }
    status = wait_for_result(watch, stop_fd, err, errlen);
    while ((res = PQgetResult(watch->conn)) != NULL) {
        if (status == WN_TABLES_READ && PQresultStatus(res) != PGRES_COMMAND_OK) {
            wn_server_message(watch->conn, res, message, sizeof message);
            snprintf(err, errlen, "preparing the catalog query: %s", message);
            status = WN_TABLES_UNKNOWN;
        }
        PQclear(res);
    }
    return status;
}

/* Whether the query in flight, if any, asked about these OIDs. */
static bool sent_for(const wn_tablewatch *watch, const uint32_t *expected)
{
    size_t ntables = watch->config->source.ntables;

    for (size_t i = 0; i < ntables; i++) {
        if (watch->sent_for[i] != (expected ? expected[i] : 0))
            return false;
    }
    return true;
}

wn_tables_read wn_tablewatch_send(void *arg, const uint32_t *expected, int stop_fd, char *err,
                                  size_t errlen)
{
    wn_tablewatch *watch = arg;
    const wn_source_config *source = &watch->config->source;
    char **arrays;
    int exit_status;

    /* An answer nobody took is dropped with its connection: a new one is quicker than the wait. */
    if (watch->in_flight)
        drop_connection(watch, WN_TABLES_UNKNOWN);
    if (watch->conn == NULL) {
        watch->conn =
            wn_connect(source->conninfo, false, watch->utf8, stop_fd, &exit_status, err, errlen);
        /* Whatever the reason, a failed connection says nothing about the tables; the
         * reconnection that follows says what cannot be waited out (authentication, ...). */
        if (watch->conn == NULL)
            return WN_TABLES_UNKNOWN;
        if (prepare(watch, stop_fd, err, errlen) != WN_TABLES_READ)
            return drop_connection(watch, WN_TABLES_UNKNOWN);
    }
    arrays = build_arrays(source, expected);
    if (arrays == NULL) {
        snprintf(err, errlen, "out of memory");
        return WN_TABLES_UNKNOWN;
    }
    const char *params[] = {arrays[0], arrays[1], arrays[2], source->publication};
    if (!PQsendQueryPrepared(watch->conn, WATCH_STATEMENT, 4, params, NULL, NULL, 0)) {
        char message[MESSAGE_MAX];

        wn_server_message(watch->conn, NULL, message, sizeof message);
        snprintf(err, errlen, "%s", message);
        free_arrays(arrays);
        return drop_connection(watch, WN_TABLES_UNKNOWN);
    }
    free_arrays(arrays);
    for (size_t i = 0; i < source->ntables; i++)
        watch->sent_for[i] = expected ? expected[i] : 0;
    watch->in_flight = true;
    return WN_TABLES_READ;
}

wn_tables_read wn_tablewatch_read(void *arg, const uint32_t *expected, wn_table_seen *seen,
                                  int stop_fd, char *err, size_t errlen)
{
    wn_tablewatch *watch = arg;
    wn_tables_read status;

    if (!watch->in_flight || !sent_for(watch, expected)) {
        status = wn_tablewatch_send(watch, expected, stop_fd, err, errlen);
        if (status != WN_TABLES_READ)
            return status;
    }
    status = wait_for_result(watch, stop_fd, err, errlen);
    if (status != WN_TABLES_READ)
        return drop_connection(watch, status);
    watch->in_flight = false;
    status = take_results(watch, seen, err, errlen);
    if (status == WN_TABLES_UNKNOWN || PQstatus(watch->conn) != CONNECTION_OK)
        return drop_connection(watch, status == WN_TABLES_READ ? WN_TABLES_UNKNOWN : status);
    return status;
}

void wn_tablewatch_reset(wn_tablewatch *watch)
{
    if (watch != NULL)
        drop_connection(watch, WN_TABLES_UNKNOWN);
}

/* Why a configured table renamed for good stops walnotify, and the remedies (a table followed by
 * its OID: every change it made, whatever name it had then, goes under the configured name). */
static void say_renamed(const wn_table_seen *seen, uint32_t expected, const char *qualified,
                        char *why, size_t whylen)
{
    if (seen->oid == 0) {
        snprintf(why, whylen,
                 "table \"%s\" (OID %" PRIu32 ") was renamed to \"%s\": its changes would no "
                 "longer be delivered, so walnotify stops before acknowledging past that; rename "
                 "it back, or replace \"%s\" by \"%s\" in source.tables (and in the plugins' "
                 "tables), and start again: its changes not yet acknowledged are then delivered "
                 "under the name configured, whatever name they were made under",
                 qualified, expected, seen->expected_now, qualified, seen->expected_now);
        return;
    }
    snprintf(why, whylen,
             "table \"%s\" (OID %" PRIu32 ") was renamed to \"%s\", and another table now has "
             "its old name: its changes would no longer be delivered, so walnotify stops before "
             "acknowledging past that; to follow it, replace \"%s\" by \"%s\" in source.tables "
             "(and in the plugins' tables) and start again: its changes not yet acknowledged are "
             "then delivered under the new name, whatever name they were made under; to follow "
             "the table that has the old name now, start again as it is: the changes the renamed "
             "one made under a name not configured are then passed over",
             qualified, expected, seen->expected_now, qualified, seen->expected_now);
}

wn_table_verdict wn_table_judge(const wn_table_seen *seen, uint32_t expected, const char *qualified,
                                const char *publication, char *why, size_t whylen)
{
    if (expected == 0)
        expected = seen->oid;
    /* Renamed to another configured name, its changes go on under that name (as the stream
     * shows them); what its own name means now is judged below. */
    if (seen->oid != expected && seen->expected_exists && !seen->expected_now_configured) {
        say_renamed(seen, expected, qualified, why, whylen);
        return WN_TABLE_RENAMED;
    }
    if (seen->oid == 0) {
        snprintf(why, whylen,
                 "table \"%s\" (OID %" PRIu32 ") was dropped: walnotify stops before "
                 "acknowledging past that; restore the table, or remove it from source.tables "
                 "(and the plugins' tables), and start again",
                 qualified, expected);
        return WN_TABLE_DROPPED;
    }
    if (!seen->published) {
        snprintf(why, whylen,
                 "table \"%s\" (OID %" PRIu32 ") is no longer in publication \"%s\"%s: its "
                 "changes since then are not in the stream, so walnotify stops before "
                 "acknowledging past that; starting walnotify again puts the table back into "
                 "the publication, but the changes made while it was out are not delivered "
                 "(recopy them if they matter)",
                 qualified, seen->oid, publication,
                 seen->oid != expected ? " (it was dropped and created again)" : "");
        return WN_TABLE_UNPUBLISHED;
    }
    return seen->oid == expected ? WN_TABLE_SAME : WN_TABLE_MADE_AGAIN;
}

void wn_table_say_made_again(const char *qualified, uint32_t old_oid, uint32_t new_oid)
{
    wn_log(WN_LOG_WARNING,
           "table \"%s\" now has OID %" PRIu32 ", not %" PRIu32 ": it is another table under "
           "the same name (dropped and created again, or another table renamed to it); its "
           "changes are delivered under that name",
           qualified, new_oid, old_oid);
}
