/* setup: checks the server and creates the publication and the slot, over an ordinary
 * connection. */
#include "setup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "conninfo.h"
#include "log.h"
#include "walnotify/plugin.h"

#define MESSAGE_MAX 1024
#define OID_TEXT_MAX 16

/* True for pg_class row `rel` when an UPDATE/DELETE on it can be published without failing: it
 * has a usable replica identity. */
#define IDENTITY_OK(rel)                                                                           \
    "(" rel ".relreplident = 'f' "                                                                 \
    " OR (" rel ".relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i "                        \
    "     WHERE i.indrelid = " rel ".oid AND i.indisprimary)) "                                    \
    " OR (" rel ".relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i "                        \
    "     WHERE i.indrelid = " rel ".oid AND i.indisreplident)))"

/* The relations that hold the rows of pg_class row `rel`: itself, or the leaf partitions of a
 * partitioned table (UPDATE/DELETE check the replica identity of the partition they touch). */
#define LEAVES_OF(rel)                                                                             \
    "(SELECT " rel ".oid AS relid WHERE " rel ".relkind <> 'p' "                                   \
    " UNION ALL SELECT tr.relid FROM pg_partition_tree(" rel ".oid) tr "                           \
    "     WHERE " rel ".relkind = 'p' AND tr.isleaf)"

/* What one table looks like on the server. */
typedef struct table_info {
    char oid[OID_TEXT_MAX];
    char no_identity[288]; /* a relation holding its rows without replica identity, as
                              schema.name quoted for SQL; "" when none */
    bool is_partition;
    bool is_partitioned;
    bool in_publication;
} table_info;

typedef struct publication_info {
    bool exists;
    bool all_tables;
    bool via_root;
    unsigned ops; /* WALNOTIFY_OP_* it publishes */
} publication_info;

typedef struct catalog_session {
    PGconn *conn;
    const wn_config *config;
    const wn_state *resume;  /* NULL: the slot may be made */
    const char *resume_path; /* the state file resume came from; NULL: this run */
    bool transient;          /* a failure waiting may cure */
    int stop_fd;             /* readable once a stop is requested; -1: none */
    bool stopped;            /* a stop came: nothing more was sent */
    char *err;
    size_t errlen;
} catalog_session;

static void set_error(catalog_session *s, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(catalog_session *s, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    vsnprintf(s->err, s->errlen, format, args);
    va_end(args);
}

/* Runs sql with text parameters; returns the result when its status is `expect`, else NULL with
 * "doing: the server's message" in the error. A stop (before: nothing is sent; during: the
 * command is cancelled) sets s->stopped, so that nothing is created after it. */
static PGresult *query(catalog_session *s, const char *doing, const char *sql, int nparams,
                       const char *const *params, ExecStatusType expect)
{
    const char *none[] = {NULL};
    PGresult *res;
    char message[MESSAGE_MAX];
    bool stopped = false;

    /* The extended protocol, also without parameters: the text is one statement, always. */
    res = wn_exec(s->conn, s->stop_fd, sql, nparams, params ? params : none, &stopped);
    if (stopped) {
        set_error(s, "stopped before %s was done", doing);
        s->stopped = true;
        return NULL;
    }
    if (res && PQresultStatus(res) == expect)
        return res;
    wn_server_message(s->conn, res, message, sizeof message);
    set_error(s, "%s: %s", doing, message);
    s->transient = wn_command_failure_status(s->conn, res) == WN_EXIT_TRANSIENT;
    PQclear(res);
    return NULL;
}

/* query() for a statement returning rows of `ncolumns` columns: a result of another shape (a
 * server that is not PostgreSQL, or a proxy in between) is refused before anything reads it,
 * since libpq answers a column out of range with NULL. */
static PGresult *select_rows(catalog_session *s, const char *doing, const char *sql, int nparams,
                             const char *const *params, int ncolumns)
{
    PGresult *res = query(s, doing, sql, nparams, params, PGRES_TUPLES_OK);

    if (!res || PQnfields(res) == ncolumns)
        return res;
    set_error(s, "%s: the server answered with %d columns, expected %d", doing, PQnfields(res),
              ncolumns);
    PQclear(res);
    return NULL;
}

static bool is_true(const PGresult *res, int row, int column)
{
    return !PQgetisnull(res, row, column) && strcmp(PQgetvalue(res, row, column), "t") == 0;
}

static int check_wal_level(catalog_session *s)
{
    PGresult *res = select_rows(s, "reading wal_level", "SHOW wal_level", 0, NULL, 1);
    int status = 0;

    if (!res)
        return WN_EXIT_SERVER;
    if (PQntuples(res) != 1) {
        set_error(s, "reading wal_level: the server answered %d rows, expected 1", PQntuples(res));
        status = WN_EXIT_SERVER;
    } else if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0) {
        set_error(s,
                  "wal_level is '%s' on the server; walnotify needs wal_level = logical "
                  "(ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)",
                  PQgetvalue(res, 0, 0));
        status = WN_EXIT_SERVER;
    }
    PQclear(res);
    return status;
}

/* Which server, database and slot this is, and where its WAL ends; compared with where walnotify
 * was before, when it was somewhere. */
static int check_origin(catalog_session *s, wn_server_state *state)
{
    static const char sql[] = "SELECT system_identifier::text, current_database(), "
                              "       pg_current_wal_lsn()::text "
                              "FROM pg_control_system()";
    PGresult *res = select_rows(s, "identifying the server", sql, 0, NULL, 3);
    wn_state *origin = &state->origin;
    int status = WN_EXIT_SERVER;
    char *end;

    if (!res)
        return WN_EXIT_SERVER;
    memset(origin, 0, sizeof *origin);
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0) || PQgetisnull(res, 0, 2)) {
        set_error(s, "identifying the server: pg_control_system() returned nothing");
        goto clear;
    }
    errno = 0;
    origin->system_identifier = strtoull(PQgetvalue(res, 0, 0), &end, 10);
    if (errno != 0 || *end != '\0' || !wn_lsn_parse(PQgetvalue(res, 0, 2), &state->wal_end)) {
        set_error(s,
                  "identifying the server: unreadable system identifier \"%s\" or WAL "
                  "position \"%s\"",
                  PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 2));
        goto clear;
    }
    snprintf(origin->database, sizeof origin->database, "%s", PQgetvalue(res, 0, 1));
    snprintf(origin->slot, sizeof origin->slot, "%s", s->config->source.slot);
    if (s->resume && !wn_state_same_origin(s->resume, origin, s->resume_path, s->err, s->errlen))
        goto clear;
    status = 0;
clear:
    PQclear(res);
    return status;
}

/* The slot is gone although walnotify used it: whatever was committed since its last
 * acknowledgement cannot be decoded any more, and a new slot would start after a gap. */
static int refuse_missing_slot(catalog_session *s)
{
    char lsn[WN_LSN_TEXT_MAX];
    const char *slot = s->config->source.slot;

    wn_lsn_format(s->resume->lsn, lsn);
    if (s->resume_path)
        set_error(s,
                  "slot \"%s\" no longer exists, but state file %s records progress through "
                  "it up to %s: cannot resume without a gap (changes committed since were not "
                  "kept for walnotify); to start again from now, run walnotify --create-slot "
                  "(and recopy the tables if the gap matters)",
                  slot, s->resume_path, lsn);
    else
        set_error(s,
                  "slot \"%s\" no longer exists: it was dropped while walnotify streamed from "
                  "it (acknowledged up to %s); cannot resume without a gap; to start again from "
                  "now, run walnotify --create-slot (and recopy the tables if the gap matters)",
                  slot, lsn);
    return WN_EXIT_SERVER;
}

/* A SQL_ASCII database cannot be converted to UTF-8: its text is passed through as it is. */
static int check_encoding(catalog_session *s, wn_server_state *state)
{
    const char *encoding = PQparameterStatus(s->conn, "server_encoding");

    state->utf8 = !encoding || strcmp(encoding, "SQL_ASCII") != 0;
    if (!state->utf8 && PQsetClientEncoding(s->conn, "SQL_ASCII") != 0) {
        char message[MESSAGE_MAX];

        wn_server_message(s->conn, NULL, message, sizeof message);
        set_error(s, "setting client_encoding to SQL_ASCII: %s", message);
        return WN_EXIT_SERVER;
    }
    return 0;
}

static int read_table(catalog_session *s, const wn_table_ref *table, const char *publication,
                      table_info *info)
{
    static const char sql[] =
        "SELECT c.relkind, c.relispartition, c.oid::text, "
        "       (SELECT format('%I.%I', ln.nspname, l.relname) FROM " LEAVES_OF(
            "c") " lv "
                 "        JOIN pg_class l ON l.oid = lv.relid "
                 "        JOIN pg_namespace ln ON ln.oid = l.relnamespace "
                 "        WHERE NOT " IDENTITY_OK(
                     "l") " ORDER BY 1 LIMIT 1), "
                          "       EXISTS (SELECT 1 FROM pg_publication_tables pt WHERE pt.pubname "
                          "= $3 "
                          "           AND pt.schemaname = n.nspname AND pt.tablename = c.relname) "
                          "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE n.nspname = $1 AND c.relname = $2";
    const char *params[] = {table->schema, table->name, publication};
    char doing[MESSAGE_MAX];
    const char *kind;
    PGresult *res;

    snprintf(doing, sizeof doing, "looking up table \"%s\"", table->qualified);
    res = select_rows(s, doing, sql, 3, params, 5);
    if (!res)
        return WN_EXIT_SERVER;
    if (PQntuples(res) != 1) {
        set_error(s, "table \"%s\" does not exist in the database", table->qualified);
        PQclear(res);
        return WN_EXIT_SERVER;
    }
    kind = PQgetvalue(res, 0, 0);
    if (strcmp(kind, "r") != 0 && strcmp(kind, "p") != 0) {
        set_error(s, "\"%s\" is not a table (relkind '%s'): only tables can be published",
                  table->qualified, kind);
        PQclear(res);
        return WN_EXIT_SERVER;
    }
    info->is_partitioned = strcmp(kind, "p") == 0;
    info->is_partition = is_true(res, 0, 1);
    snprintf(info->oid, sizeof info->oid, "%s", PQgetvalue(res, 0, 2));
    snprintf(info->no_identity, sizeof info->no_identity, "%s", PQgetvalue(res, 0, 3));
    info->in_publication = is_true(res, 0, 4);
    PQclear(res);
    return 0;
}

/* Fills *exists; when the slot exists, checks it can serve walnotify and reads its position and
 * the process holding it. */
static int check_slot(catalog_session *s, bool *exists, wn_server_state *state)
{
    static const char sql[] = "SELECT slot_type, plugin, database, current_database(), "
                              "       wal_status, confirmed_flush_lsn, active_pid "
                              "FROM pg_replication_slots WHERE slot_name = $1";
    const char *slot = s->config->source.slot;
    const char *params[] = {slot};
    PGresult *res = select_rows(s, "looking up the replication slot", sql, 1, params, 7);
    wn_lsn *confirmed_flush = &state->confirmed_flush;
    int status = WN_EXIT_SERVER;

    if (!res)
        return WN_EXIT_SERVER;
    *exists = PQntuples(res) > 0;
    if (!*exists) {
        PQclear(res);
        return 0;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0) {
        set_error(s,
                  "slot \"%s\" is a %s slot; walnotify needs a logical slot with plugin "
                  "pgoutput (choose another slot name)",
                  slot, PQgetvalue(res, 0, 0));
    } else if (strcmp(PQgetvalue(res, 0, 1), "pgoutput") != 0) {
        set_error(s,
                  "slot \"%s\" uses plugin \"%s\"; walnotify needs plugin pgoutput (choose "
                  "another slot name)",
                  slot, PQgetvalue(res, 0, 1));
    } else if (strcmp(PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3)) != 0) {
        set_error(s,
                  "slot \"%s\" belongs to database \"%s\", not to \"%s\" where the conninfo "
                  "connects (choose another slot name, or connect to \"%s\")",
                  slot, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 2));
    } else if (strcmp(PQgetvalue(res, 0, 4), "lost") == 0) {
        set_error(s,
                  "slot \"%s\" is invalidated (wal_status 'lost'): the server removed WAL it "
                  "still needed, so changes are missing; drop it (walnotify --drop-slot) and "
                  "start again from a fresh copy of the tables",
                  slot);
    } else if (!PQgetisnull(res, 0, 5) && !wn_lsn_parse(PQgetvalue(res, 0, 5), confirmed_flush)) {
        set_error(s, "slot \"%s\": unreadable confirmed_flush_lsn \"%s\"", slot,
                  PQgetvalue(res, 0, 5));
    } else {
        state->slot_active_pid = PQgetisnull(res, 0, 6) ? 0 : atol(PQgetvalue(res, 0, 6));
        status = 0;
    }
    PQclear(res);
    return status;
}

static int read_publication(catalog_session *s, publication_info *pub)
{
    static const char sql[] = "SELECT puballtables, pubviaroot, pubinsert, pubupdate, "
                              "       pubdelete, pubtruncate "
                              "FROM pg_publication WHERE pubname = $1";
    const char *params[] = {s->config->source.publication};
    PGresult *res = select_rows(s, "looking up the publication", sql, 1, params, 6);

    if (!res)
        return WN_EXIT_SERVER;
    memset(pub, 0, sizeof *pub);
    pub->exists = PQntuples(res) > 0;
    if (pub->exists) {
        pub->all_tables = is_true(res, 0, 0);
        pub->via_root = is_true(res, 0, 1);
        pub->ops = (is_true(res, 0, 2) ? WALNOTIFY_OP_INSERT : 0) |
                   (is_true(res, 0, 3) ? WALNOTIFY_OP_UPDATE : 0) |
                   (is_true(res, 0, 4) ? WALNOTIFY_OP_DELETE : 0) |
                   (is_true(res, 0, 5) ? WALNOTIFY_OP_TRUNCATE : 0);
    }
    PQclear(res);
    return 0;
}

/* Runs one utility command that returns no rows. */
static int command(catalog_session *s, const char *doing, const char *sql)
{
    PGresult *res = query(s, doing, sql, 0, NULL, PGRES_COMMAND_OK);

    if (!res)
        return WN_EXIT_SERVER;
    PQclear(res);
    return 0;
}

/* Appends text to a growing string; false when out of memory. */
static bool append(char **buf, size_t *len, const char *text)
{
    size_t add = strlen(text);
    char *grown = realloc(*buf, *len + add + 1);

    if (!grown)
        return false;
    memcpy(grown + *len, text, add + 1);
    *buf = grown;
    *len += add;
    return true;
}

/* Appends "schema"."name" quoted for SQL. */
static bool append_table(PGconn *conn, char **buf, size_t *len, const wn_table_ref *table)
{
    char *schema = PQescapeIdentifier(conn, table->schema, strlen(table->schema));
    char *name = PQescapeIdentifier(conn, table->name, strlen(table->name));
    bool ok = schema && name && append(buf, len, schema) && append(buf, len, ".") &&
              append(buf, len, name);

    PQfreemem(schema);
    PQfreemem(name);
    return ok;
}

/* "<verb> "pub" <clause> <the tables marked in which, comma-separated><suffix>", or NULL when out
 * of memory. */
static char *publication_sql(catalog_session *s, const char *verb, const char *clause,
                             const bool *which, const char *suffix)
{
    const wn_source_config *source = &s->config->source;
    char *quoted = PQescapeIdentifier(s->conn, source->publication, strlen(source->publication));
    char *sql = NULL;
    size_t len = 0;
    bool first = true;
    bool ok;

    if (!quoted)
        return NULL;
    ok = append(&sql, &len, verb) && append(&sql, &len, " ") && append(&sql, &len, quoted) &&
         append(&sql, &len, " ") && append(&sql, &len, clause);
    for (size_t i = 0; ok && i < source->ntables; i++) {
        if (!which[i])
            continue;
        ok = append(&sql, &len, first ? " " : ", ") &&
             append_table(s->conn, &sql, &len, &source->tables[i]);
        first = false;
    }
    ok = ok && append(&sql, &len, suffix);
    PQfreemem(quoted);
    if (!ok) {
        free(sql);
        return NULL;
    }
    return sql;
}

/* A partitioned source table is published via its root, so that its changes arrive under the
 * name walnotify was given rather than under its partitions' names. */
static int create_publication(catalog_session *s, const bool *all, bool via_root)
{
    char ops[64], suffix[128], doing[MESSAGE_MAX];
    char *sql;
    int status;

    wn_config_ops_text(s->config->ops, ops, sizeof ops);
    snprintf(suffix, sizeof suffix, " WITH (publish = '%s'%s)", ops,
             via_root ? ", publish_via_partition_root = true" : "");
    sql = publication_sql(s, "CREATE PUBLICATION", "FOR TABLE", all, suffix);
    if (!sql) {
        set_error(s, "creating the publication: out of memory");
        return WN_EXIT_SERVER;
    }
    snprintf(doing, sizeof doing, "creating publication \"%s\"", s->config->source.publication);
    status = command(s, doing, sql);
    if (status == 0)
        wn_log(WN_LOG_INFO, "created publication \"%s\" (publish = '%s'%s)",
               s->config->source.publication, ops,
               via_root ? ", publish_via_partition_root = true" : "");
    free(sql);
    return status;
}

static int add_tables(catalog_session *s, const bool *missing, size_t nmissing)
{
    char doing[MESSAGE_MAX];
    char *sql;
    int status;

    if (nmissing == 0)
        return 0;
    sql = publication_sql(s, "ALTER PUBLICATION", "ADD TABLE", missing, "");
    if (!sql) {
        set_error(s, "altering the publication: out of memory");
        return WN_EXIT_SERVER;
    }
    snprintf(doing, sizeof doing, "adding tables to publication \"%s\"",
             s->config->source.publication);
    status = command(s, doing, sql);
    for (size_t i = 0; status == 0 && i < s->config->source.ntables; i++) {
        if (missing[i])
            wn_log(WN_LOG_INFO, "added table \"%s\" to publication \"%s\"",
                   s->config->source.tables[i].qualified, s->config->source.publication);
    }
    free(sql);
    return status;
}

static int widen_publish(catalog_session *s, const publication_info *pub)
{
    unsigned wanted = pub->ops | s->config->ops;
    char ops[64], doing[MESSAGE_MAX];
    char *quoted, *sql;
    size_t sqllen;
    int status;

    if (wanted == pub->ops)
        return 0;
    wn_config_ops_text(wanted, ops, sizeof ops);
    quoted = PQescapeIdentifier(s->conn, s->config->source.publication,
                                strlen(s->config->source.publication));
    if (!quoted) {
        set_error(s, "altering the publication: %s", PQerrorMessage(s->conn));
        return WN_EXIT_SERVER;
    }
    sqllen = strlen(quoted) + sizeof ops + 64;
    sql = malloc(sqllen);
    if (!sql) {
        PQfreemem(quoted);
        set_error(s, "altering the publication: out of memory");
        return WN_EXIT_SERVER;
    }
    snprintf(sql, sqllen, "ALTER PUBLICATION %s SET (publish = '%s')", quoted, ops);
    snprintf(doing, sizeof doing, "setting publish = '%s' on publication \"%s\"", ops,
             s->config->source.publication);
    status = command(s, doing, sql);
    if (status == 0)
        wn_log(WN_LOG_INFO, "publication \"%s\" now publishes %s", s->config->source.publication,
               ops);
    free(sql);
    PQfreemem(quoted);
    return status;
}

/* The first server version whose publications can hold a row filter or a column list
 * (pg_publication_tables.rowfilter and attnames); before it there is nothing to look for. */
#define ROW_FILTER_SERVER_VERSION 150000

/* Row filters and column lists make rows or columns differ from what the plugins expect, but
 * someone chose them on purpose: said once per table, not refused. */
static int warn_publication_shape(catalog_session *s)
{
    static const char sql[] =
        "SELECT pt.rowfilter IS NOT NULL, "
        "       pt.attnames IS NOT NULL AND EXISTS (SELECT 1 FROM pg_attribute a "
        "           JOIN pg_class c ON c.oid = a.attrelid "
        "           JOIN pg_namespace n ON n.oid = c.relnamespace "
        "           WHERE n.nspname = $2 AND c.relname = $3 AND a.attnum > 0 "
        "           AND NOT a.attisdropped AND a.attgenerated = '' "
        "           AND NOT (a.attname = ANY (pt.attnames))) "
        "FROM pg_publication_tables pt "
        "WHERE pt.pubname = $1 AND pt.schemaname = $2 AND pt.tablename = $3";
    const wn_source_config *source = &s->config->source;

    if (PQserverVersion(s->conn) < ROW_FILTER_SERVER_VERSION)
        return 0;
    for (size_t i = 0; i < source->ntables; i++) {
        const wn_table_ref *table = &source->tables[i];
        const char *params[] = {source->publication, table->schema, table->name};
        PGresult *res = select_rows(s, "reading the publication's tables", sql, 3, params, 2);

        if (!res)
            return WN_EXIT_SERVER;
        if (PQntuples(res) > 0 && is_true(res, 0, 0))
            wn_log(WN_LOG_WARNING,
                   "publication \"%s\" has a row filter for table \"%s\": rows would silently "
                   "be missing",
                   source->publication, table->qualified);
        if (PQntuples(res) > 0 && is_true(res, 0, 1))
            wn_log(WN_LOG_WARNING,
                   "publication \"%s\" has a column list for table \"%s\" that leaves columns "
                   "out: columns would silently be missing",
                   source->publication, table->qualified);
        PQclear(res);
    }
    return 0;
}

/* Publishing update or delete for a table without replica identity makes the application's
 * own UPDATE/DELETE on it fail, so such a publication is refused rather than made. */
static int check_replica_identity(catalog_session *s, const publication_info *pub,
                                  const table_info *infos)
{
    const unsigned changes = WALNOTIFY_OP_UPDATE | WALNOTIFY_OP_DELETE;
    const wn_source_config *source = &s->config->source;

    for (size_t i = 0; i < source->ntables; i++) {
        const char *qualified = source->tables[i].qualified;
        bool added = !pub->exists || (!pub->all_tables && !infos[i].in_publication);
        unsigned publishes = s->config->ops | (added && pub->exists ? pub->ops : 0);

        if (!(publishes & changes) || infos[i].no_identity[0] == '\0')
            continue;
        if (infos[i].is_partitioned)
            set_error(s,
                      "partition %s of table \"%s\" has no replica identity, so publishing "
                      "update/delete would make its UPDATE/DELETE fail: ALTER TABLE %s REPLICA "
                      "IDENTITY FULL (or add a primary key)",
                      infos[i].no_identity, qualified, infos[i].no_identity);
        else
            set_error(s,
                      "table \"%s\" has no replica identity, so publishing update/delete would "
                      "make its UPDATE/DELETE fail: ALTER TABLE %s REPLICA IDENTITY FULL (or add "
                      "a primary key)",
                      qualified, infos[i].no_identity);
        return WN_EXIT_SERVER;
    }
    return 0;
}

/* Widening an existing publication to update or delete applies to every table it holds, not
 * only to walnotify's: one of them without replica identity would have its UPDATE/DELETE start
 * failing in the application, so the widening is refused. */
static int check_widening(catalog_session *s, const publication_info *pub)
{
    static const char sql[] =
        "SELECT format('%I.%I', ln.nspname, l.relname) "
        "FROM pg_publication_tables pt "
        "JOIN pg_namespace n ON n.nspname = pt.schemaname "
        "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename "
        "CROSS JOIN LATERAL " LEAVES_OF("c") " lv "
                                             "JOIN pg_class l ON l.oid = lv.relid "
                                             "JOIN pg_namespace ln ON ln.oid = l.relnamespace "
                                             "WHERE pt.pubname = $1 AND NOT " IDENTITY_OK(
                                                 "l") " "
                                                      "ORDER BY 1 LIMIT 1";
    const unsigned changes = WALNOTIFY_OP_UPDATE | WALNOTIFY_OP_DELETE;
    const unsigned added = s->config->ops & ~pub->ops & changes;
    const char *publication = s->config->source.publication;
    const char *params[] = {publication};
    char ops[64];
    PGresult *res;
    int status = 0;

    if (!pub->exists || added == 0)
        return 0;
    res = select_rows(s, "checking the replica identity of the publication's tables", sql, 1,
                      params, 1);
    if (!res)
        return WN_EXIT_SERVER;
    if (PQntuples(res) > 0) {
        wn_config_ops_text(added, ops, sizeof ops);
        set_error(s,
                  "publication \"%s\" holds table %s, which has no replica identity: making "
                  "the publication publish %s would make UPDATE/DELETE on that table fail; "
                  "ALTER TABLE %s REPLICA IDENTITY FULL (or add a primary key), or give "
                  "walnotify a publication of its own",
                  publication, PQgetvalue(res, 0, 0), ops, PQgetvalue(res, 0, 0));
        status = WN_EXIT_SERVER;
    }
    PQclear(res);
    return status;
}

/* Whether the publication will publish partitions' changes under their root's name: as it is
 * set, or, when walnotify makes it, whenever a source table is partitioned. */
static bool publishes_via_root(const catalog_session *s, const publication_info *pub,
                               const table_info *infos)
{
    if (pub->exists)
        return pub->via_root;
    for (size_t i = 0; i < s->config->source.ntables; i++)
        if (infos[i].is_partitioned)
            return true;
    return false;
}

/* "{oid,oid,...}" of the source tables, to free; NULL when out of memory. */
static char *source_oids(const catalog_session *s, const table_info *infos)
{
    char *text = NULL;
    size_t len = 0;
    bool ok = append(&text, &len, "{");

    for (size_t i = 0; ok && i < s->config->source.ntables; i++)
        ok = append(&text, &len, i ? "," : "") && append(&text, &len, infos[i].oid);
    if (ok && append(&text, &len, "}"))
        return text;
    free(text);
    return NULL;
}

/* Names the topmost ancestor of partition `info` whose name the publication uses for the
 * partition's changes, in ancestor (empty when there is none: they arrive under its own). */
static int published_ancestor(catalog_session *s, const publication_info *pub,
                              const table_info *info, const char *oids, char *ancestor,
                              size_t ancestorlen)
{
    static const char sql[] =
        "SELECT n.nspname || '.' || c.relname "
        "FROM pg_partition_ancestors($1::oid::regclass) WITH ORDINALITY AS a(relid, depth) "
        "JOIN pg_class c ON c.oid = a.relid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE a.relid <> $1::oid::regclass "
        "  AND ($2::bool OR a.relid::oid = ANY ($3::oid[]) "
        "       OR EXISTS (SELECT 1 FROM pg_publication_tables pt WHERE pt.pubname = $4 "
        "                  AND pt.schemaname = n.nspname AND pt.tablename = c.relname)) "
        "ORDER BY a.depth DESC LIMIT 1";
    const char *params[] = {info->oid, pub->all_tables ? "true" : "false", oids,
                            s->config->source.publication};
    PGresult *res = select_rows(s, "looking up the partition's ancestors", sql, 4, params, 1);

    if (!res)
        return WN_EXIT_SERVER;
    snprintf(ancestor, ancestorlen, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
}

/*
 * Changes arrive under the name of the table the publication publishes them as: a partitioned
 * table's under its partitions' names unless the publication publishes via the partition root,
 * and a partition's under its published ancestor's name when it does. Either way the rows of a
 * source table would never carry its name and would silently be missed, so both are refused.
 * walnotify never alters publish_via_partition_root itself: other subscribers of the publication
 * would see other table names from then on.
 */
static int check_partitions(catalog_session *s, const publication_info *pub,
                            const table_info *infos, bool slot_exists)
{
    const wn_source_config *source = &s->config->source;
    bool via_root = publishes_via_root(s, pub, infos);
    char ancestor[2 * 64 + 2];
    char *oids, *quoted;
    int status = 0;

    for (size_t i = 0; i < source->ntables; i++) {
        if (!infos[i].is_partitioned || via_root)
            continue;
        quoted = PQescapeIdentifier(s->conn, source->publication, strlen(source->publication));
        set_error(s,
                  "table \"%s\" is partitioned but publication \"%s\" does not publish via the "
                  "partition root, so its rows would arrive under its partitions' names and be "
                  "missed: ALTER PUBLICATION %s SET (publish_via_partition_root = true)%s",
                  source->tables[i].qualified, source->publication, quoted ? quoted : "...",
                  slot_exists ? " (changes the slot holds from before that still arrive under "
                                "the partitions' names)"
                              : "");
        PQfreemem(quoted);
        return WN_EXIT_SERVER;
    }
    if (!via_root)
        return 0;
    oids = source_oids(s, infos);
    if (!oids) {
        set_error(s, "checking the partitions: out of memory");
        return WN_EXIT_SERVER;
    }
    for (size_t i = 0; status == 0 && i < source->ntables; i++) {
        if (!infos[i].is_partition)
            continue;
        status = published_ancestor(s, pub, &infos[i], oids, ancestor, sizeof ancestor);
        if (status != 0 || ancestor[0] == '\0')
            continue;
        set_error(s,
                  "table \"%s\" is a partition of \"%s\", and publication \"%s\" publishes via "
                  "the partition root, so its rows would arrive under \"%s\" and be missed: "
                  "list \"%s\" in source.tables instead of \"%s\" (or use another publication)",
                  source->tables[i].qualified, ancestor, source->publication, ancestor, ancestor,
                  source->tables[i].qualified);
        status = WN_EXIT_SERVER;
    }
    free(oids);
    return status;
}

static int prepare_publication(catalog_session *s, const publication_info *pub,
                               const table_info *infos, bool slot_exists)
{
    const wn_source_config *source = &s->config->source;
    size_t nmissing = 0;
    bool *missing;
    int status;

    if (!pub->exists && slot_exists) {
        set_error(s,
                  "publication \"%s\" does not exist but slot \"%s\" does: the slot cannot "
                  "decode without it; drop the slot (walnotify --drop-slot) and start again, or "
                  "recreate the publication by hand if you know it was only just dropped",
                  source->publication, source->slot);
        return WN_EXIT_SERVER;
    }
    missing = calloc(source->ntables ? source->ntables : 1, sizeof *missing);
    if (!missing) {
        set_error(s, "preparing the publication: out of memory");
        return WN_EXIT_SERVER;
    }
    for (size_t i = 0; i < source->ntables; i++) {
        missing[i] = !pub->exists || (!pub->all_tables && !infos[i].in_publication);
        nmissing += missing[i];
    }
    if (!pub->exists) {
        status = create_publication(s, missing, publishes_via_root(s, pub, infos));
    } else {
        status = add_tables(s, missing, nmissing);
        if (status == 0)
            status = widen_publish(s, pub);
        if (status == 0)
            status = warn_publication_shape(s);
    }
    free(missing);
    return status;
}

static int create_slot(catalog_session *s, wn_server_state *state)
{
    static const char sql[] = "SELECT lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')";
    const char *params[] = {s->config->source.slot};
    char doing[MESSAGE_MAX];
    PGresult *res;
    int status = 0;

    snprintf(doing, sizeof doing, "creating slot \"%s\"", s->config->source.slot);
    res = select_rows(s, doing, sql, 1, params, 1);
    if (!res)
        return WN_EXIT_SERVER;
    if (PQntuples(res) != 1 || !wn_lsn_parse(PQgetvalue(res, 0, 0), &state->confirmed_flush)) {
        set_error(s, "creating slot \"%s\": the server returned no position",
                  s->config->source.slot);
        status = WN_EXIT_SERVER;
    } else {
        state->slot_created = true;
        wn_log(WN_LOG_INFO, "created logical replication slot \"%s\" (pgoutput) at %s",
               s->config->source.slot, PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return status;
}

static int prepare(catalog_session *s, wn_server_state *state)
{
    const wn_source_config *source = &s->config->source;
    publication_info pub;
    table_info *infos;
    bool slot_exists = false;
    int status;

    if ((status = check_wal_level(s)) != 0 || (status = check_encoding(s, state)) != 0 ||
        (status = check_origin(s, state)) != 0)
        return status;
    infos = calloc(source->ntables ? source->ntables : 1, sizeof *infos);
    if (!infos) {
        set_error(s, "checking the tables: out of memory");
        return WN_EXIT_SERVER;
    }
    for (size_t i = 0; status == 0 && i < source->ntables; i++)
        status = read_table(s, &source->tables[i], source->publication, &infos[i]);
    if (status == 0)
        status = check_slot(s, &slot_exists, state);
    if (status == 0 && !slot_exists && s->resume)
        status = refuse_missing_slot(s);
    if (status == 0)
        status = read_publication(s, &pub);
    if (status == 0)
        status = check_replica_identity(s, &pub, infos);
    if (status == 0)
        status = check_widening(s, &pub);
    if (status == 0)
        status = check_partitions(s, &pub, infos, slot_exists);
    if (status == 0)
        status = prepare_publication(s, &pub, infos, slot_exists);
    if (status == 0 && !slot_exists)
        status = create_slot(s, state);
    free(infos);
    return status;
}

int wn_setup_prepare(const wn_config *config, const wn_state *resume, const char *resume_path,
                     int stop_fd, wn_server_state *state, char *err, size_t errlen)
{
    catalog_session s = {.config = config,
                         .resume = resume,
                         .resume_path = resume_path,
                         .stop_fd = stop_fd,
                         .err = err,
                         .errlen = errlen};
    int status;

    memset(state, 0, sizeof *state);
    s.conn = wn_connect(config->source.conninfo, false, true, stop_fd, &status, err, errlen);
    if (!s.conn)
        return status;
    status = prepare(&s, state);
    PQfinish(s.conn);
    if (s.stopped)
        return WN_EXIT_STOPPED;
    if (status != 0 && s.transient)
        return WN_EXIT_TRANSIENT;
    return status;
}

/* ---- the catalog, for plugins ------------------------------------------------------------ */

static int read_source(catalog_session *s, wn_catalog *catalog)
{
    static const char sql[] = "SELECT system_identifier::text, current_database(), "
                              "current_setting('server_version_num') FROM pg_control_system()";
    PGresult *res = select_rows(s, "reading the server's identity", sql, 0, NULL, 3);
    char *end;
    int status = 0;

    if (!res)
        return WN_EXIT_SERVER;
    catalog->source.size = sizeof catalog->source;
    catalog->source.slot = s->config->source.slot;
    catalog->source.publication = s->config->source.publication;
    if (PQntuples(res) != 1) {
        set_error(s, "reading the server's identity: %d rows, expected 1", PQntuples(res));
        status = WN_EXIT_SERVER;
        goto clear;
    }
    errno = 0;
    catalog->source.system_identifier = strtoull(PQgetvalue(res, 0, 0), &end, 10);
    catalog->source.server_version = (uint32_t)strtoul(PQgetvalue(res, 0, 2), NULL, 10);
    catalog->source.database = strdup(PQgetvalue(res, 0, 1));
    if (errno != 0 || *end != '\0' || !catalog->source.database) {
        set_error(s, "reading the server's identity: system identifier \"%s\" or memory",
                  PQgetvalue(res, 0, 0));
        status = WN_EXIT_SERVER;
    }
clear:
    PQclear(res);
    return status;
}

static void free_table(walnotify_table *table)
{
    for (size_t i = 0; table->columns && i < table->ncolumns; i++)
        free((char *)table->columns[i].name);
    free((walnotify_column *)table->columns);
    free((size_t *)table->key_columns);
    memset(table, 0, sizeof *table);
}

/* The key columns, as indexes into the columns, in key order (column 4 of each row holds the
 * 1-based place in the key, NULL for other columns). */
static void fill_key_columns(const PGresult *res, walnotify_column *columns, size_t ncolumns,
                             size_t *keys, size_t *nkeys)
{
    *nkeys = 0;
    for (size_t place = 1; place <= ncolumns; place++) {
        for (size_t i = 0; i < ncolumns; i++) {
            if (PQgetisnull(res, (int)i, 3) ||
                strtoul(PQgetvalue(res, (int)i, 3), NULL, 10) != place)
                continue;
            columns[i].is_key = true;
            keys[(*nkeys)++] = i;
        }
    }
}

static int read_table_columns(catalog_session *s, const wn_table_ref *ref, walnotify_table *table)
{
    static const char sql[] =
        "SELECT a.attname, a.atttypid::int8, a.atttypmod, "
        "       (SELECT k.ord FROM pg_index i, "
        "            unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) "
        "        WHERE i.indrelid = c.oid AND k.attnum = a.attnum AND "
        "            CASE WHEN c.relreplident = 'i' THEN i.indisreplident "
        "                 ELSE i.indisprimary END), "
        "       c.relreplident "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "     AND a.attgenerated = '' "
        "WHERE n.nspname = $1 AND c.relname = $2 ORDER BY a.attnum";
    const char *params[] = {ref->schema, ref->name};
    walnotify_column *columns = NULL;
    size_t *keys = NULL;
    char doing[MESSAGE_MAX];
    PGresult *res;
    size_t n;

    snprintf(doing, sizeof doing, "reading the columns of table \"%s\"", ref->qualified);
    res = select_rows(s, doing, sql, 2, params, 5);
    if (!res)
        return WN_EXIT_SERVER;
    n = (size_t)PQntuples(res);
    columns = calloc(n ? n : 1, sizeof *columns);
    keys = calloc(n ? n : 1, sizeof *keys);
    if (!columns || !keys)
        goto out_of_memory;
    table->columns = columns;
    table->key_columns = keys;
    for (size_t i = 0; i < n; i++) {
        columns[i].name = strdup(PQgetvalue(res, (int)i, 0));
        table->ncolumns = i + 1;
        if (!columns[i].name)
            goto out_of_memory;
        columns[i].type_oid = (uint32_t)strtoul(PQgetvalue(res, (int)i, 1), NULL, 10);
        columns[i].typmod = (int32_t)strtol(PQgetvalue(res, (int)i, 2), NULL, 10);
        columns[i].kind = WALNOTIFY_VALUE_NULL;
    }
    fill_key_columns(res, columns, n, keys, &table->nkey_columns);
    table->replica_identity =
        (walnotify_replica_identity)(n > 0 ? PQgetvalue(res, 0, 4)[0] : WALNOTIFY_IDENTITY_NOTHING);
    PQclear(res);
    return 0;

out_of_memory:
    PQclear(res);
    if (!table->columns)
        free(columns);
    if (!table->key_columns)
        free(keys);
    free_table(table);
    set_error(s, "reading the columns of table \"%s\": out of memory", ref->qualified);
    return WN_EXIT_SERVER;
}

static int read_catalog(catalog_session *s, wn_catalog *catalog)
{
    const wn_source_config *source = &s->config->source;
    int status = read_source(s, catalog);

    if (status != 0)
        return status;
    catalog->tables = calloc(source->ntables ? source->ntables : 1, sizeof *catalog->tables);
    if (!catalog->tables) {
        set_error(s, "reading the tables: out of memory");
        return WN_EXIT_SERVER;
    }
    for (size_t i = 0; i < source->ntables; i++) {
        walnotify_table *table = &catalog->tables[i];

        table->size = sizeof *table;
        table->table = source->tables[i].qualified;
        table->schema = source->tables[i].schema;
        table->name = source->tables[i].name;
        catalog->ntables = i + 1;
        status = read_table_columns(s, &source->tables[i], table);
        if (status != 0)
            return status;
    }
    return 0;
}

void wn_setup_free_catalog(wn_catalog *catalog)
{
    for (size_t i = 0; catalog->tables && i < catalog->ntables; i++)
        free_table(&catalog->tables[i]);
    free(catalog->tables);
    free((char *)catalog->source.database);
    memset(catalog, 0, sizeof *catalog);
}

int wn_setup_read_catalog(const wn_config *config, int stop_fd, wn_catalog *catalog, char *err,
                          size_t errlen)
{
    catalog_session s = {.config = config, .stop_fd = stop_fd, .err = err, .errlen = errlen};
    int status;

    memset(catalog, 0, sizeof *catalog);
    s.conn = wn_connect(config->source.conninfo, false, true, stop_fd, &status, err, errlen);
    if (!s.conn)
        return status;
    status = read_catalog(&s, catalog);
    PQfinish(s.conn);
    if (status == 0)
        return 0;
    wn_setup_free_catalog(catalog);
    return s.transient ? WN_EXIT_TRANSIENT : status;
}

int wn_setup_drop_slot(const wn_config *config, int stop_fd, char *err, size_t errlen)
{
    static const char find[] = "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1";
    static const char drop[] = "SELECT pg_drop_replication_slot($1)";
    catalog_session s = {.config = config, .stop_fd = stop_fd, .err = err, .errlen = errlen};
    const char *params[] = {config->source.slot};
    char doing[MESSAGE_MAX];
    PGresult *res;
    int status = WN_EXIT_SERVER;

    s.conn = wn_connect(config->source.conninfo, false, true, stop_fd, &status, err, errlen);
    if (!s.conn)
        return status;
    status = WN_EXIT_SERVER;
    res = select_rows(&s, "looking up the replication slot", find, 1, params, 1);
    if (!res)
        goto finish;
    if (PQntuples(res) == 0) {
        set_error(&s, "slot \"%s\" does not exist", config->source.slot);
        PQclear(res);
        goto finish;
    }
    PQclear(res);
    snprintf(doing, sizeof doing, "dropping slot \"%s\"", config->source.slot);
    res = select_rows(&s, doing, drop, 1, params, 1);
    if (!res)
        goto finish;
    PQclear(res);
    /* The publication may serve others, and is cheap to keep: it is said, not dropped. */
    wn_log(WN_LOG_INFO,
           "dropped replication slot \"%s\"; publication \"%s\" stays (DROP PUBLICATION to "
           "remove it)",
           config->source.slot, config->source.publication);
    status = 0;
finish:
    PQfinish(s.conn);
    return s.stopped ? WN_EXIT_STOPPED : status;
}
