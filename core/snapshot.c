/* snapshot: the configured tables' rows as of the stream's consistent point; see snapshot.h. */
#include "snapshot.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "conninfo.h"
#include "exitcode.h"

#define MESSAGE_MAX 1024
#define SLOT_NAME_MAX 63 /* NAMEDATALEN - 1 */
#define CURSOR "wn_snapshot"

/* The first server version whose publications can hold a row filter or a column list. */
#define ROW_FILTER_SERVER_VERSION 150000

/* One table as it will be read. */
typedef struct snap_table {
    char oid[16];
    bool partitioned;
    int64_t estimate;          /* pg_class.reltuples; -1: never estimated */
    char *select;              /* the statement the cursor reads; owned */
    walnotify_column *columns; /* the published columns, names owned, values unset */
    size_t ncolumns;
    bool counted;           /* rows holds the table's whole count (it was read to its end) */
    uint64_t first_ordinal; /* the ordinal of its first row, once reading reached it */
    uint64_t rows;
} snap_table;

struct wn_snapshot {
    PGconn *repl; /* holds the temporary slot (and, until the import, the exported snapshot) */
    PGconn *conn; /* the imported read-only transaction */
    int stop_fd;
    const wn_snapshot_source *source;
    snap_table *tables;
    size_t ntables;
    /* Reading. */
    size_t current;        /* table being read; ntables once done */
    bool copying;          /* the COPY of tables[current] is under way: rows come */
    char *line;            /* the row in hand as the COPY sent it, decoded in place; libpq's */
    uint64_t ordinal;      /* the last ordinal returned */
    uint64_t table_rows;   /* rows of tables[current] returned (or skipped by a restart) */
    walnotify_column *row; /* the row in hand, sized for the widest table */
    bool failed;           /* the transaction is lost */
    int status;            /* of the last failure */
    char *err;             /* the caller's buffer during a call */
    size_t errlen;
};

static void set_error(wn_snapshot *s, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(wn_snapshot *s, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    vsnprintf(s->err, s->errlen, format, args);
    va_end(args);
}

/* Runs sql on conn, with nparams text parameters (params NULL: a simple query, as the
 * replication protocol needs), and returns the result when its status is `expect` and, for
 * rows, it has `ncolumns` columns; else NULL with "doing: why" in the error, s->status set. */
static PGresult *run(wn_snapshot *s, PGconn *conn, const char *doing, const char *sql, int nparams,
                     const char *const *params, ExecStatusType expect, int ncolumns)
{
    char message[MESSAGE_MAX];
    bool stopped = false;
    PGresult *res = wn_exec(conn, s->stop_fd, sql, nparams, params, &stopped);

    if (stopped) {
        set_error(s, "stopped before %s was done", doing);
        s->status = WN_EXIT_STOPPED;
        return NULL;
    }
    if (res && PQresultStatus(res) == expect) {
        if (expect != PGRES_TUPLES_OK || PQnfields(res) == ncolumns)
            return res;
        set_error(s, "%s: the server answered with %d columns, expected %d", doing, PQnfields(res),
                  ncolumns);
        s->status = WN_EXIT_SERVER;
        PQclear(res);
        return NULL;
    }
    wn_server_message(conn, res, message, sizeof message);
    set_error(s, "%s: %s", doing, message);
    s->status = wn_command_failure_status(conn, res);
    PQclear(res);
    return NULL;
}

/* run() on the reading connection, always with the extended protocol (one statement). */
static PGresult *query(wn_snapshot *s, const char *doing, const char *sql, int nparams,
                       const char *const *params, ExecStatusType expect, int ncolumns)
{
    static const char *const none[] = {NULL};

    return run(s, s->conn, doing, sql, nparams, params ? params : none, expect, ncolumns);
}

static bool command(wn_snapshot *s, const char *doing, const char *sql)
{
    PGresult *res = query(s, doing, sql, 0, NULL, PGRES_COMMAND_OK, 0);

    PQclear(res);
    return res != NULL;
}

static const char *table_name(const wn_snapshot *s, size_t i)
{
    return s->source->tables[i].qualified;
}

/* ---- taking the snapshot ------------------------------------------------------------------ */

/* "<slot>_snap_<pid>_<time>": the configured slot's name (cut to fit 63 characters) makes it
 * easy to tell whose it is; pid and time keep two snapshots apart, also one that a previous
 * process of the same pid left behind while its session ends. */
static void temporary_slot_name(const char *slot, char *out, size_t outlen)
{
    struct timeval now;
    char suffix[48];
    int room;

    gettimeofday(&now, NULL);
    snprintf(suffix, sizeof suffix, "_snap_%ld_%llx", (long)getpid(),
             (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_usec);
    room = SLOT_NAME_MAX - (int)strlen(suffix);
    snprintf(out, outlen, "%.*s%s", room > 0 ? room : 0, slot, suffix);
}

/* CREATE_REPLICATION_SLOT on the replication connection: C and the exported snapshot's name. */
static int create_slot(wn_snapshot *s, char *snapshot_name, size_t namelen, wn_lsn *point)
{
    char slot[SLOT_NAME_MAX + 1], sql[160], doing[160];
    PGresult *res;
    const char *lsn, *name;

    temporary_slot_name(s->source->slot, slot, sizeof slot);
    /* It goes into the command unquoted, as replication slot names are: only what a slot name
     * may hold. */
    if (strspn(slot, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(slot)) {
        set_error(s, "slot \"%s\" is not a valid slot name: no snapshot can be named after it",
                  s->source->slot);
        return WN_EXIT_CONFIG;
    }
    snprintf(sql, sizeof sql,
             "CREATE_REPLICATION_SLOT %s TEMPORARY LOGICAL pgoutput "
             "EXPORT_SNAPSHOT",
             slot);
    snprintf(doing, sizeof doing, "creating the temporary slot \"%s\" for the snapshot", slot);
    res = run(s, s->repl, doing, sql, 0, NULL, PGRES_TUPLES_OK, 4);
    if (!res)
        return s->status;
    lsn = PQntuples(res) == 1 ? PQgetvalue(res, 0, 1) : "";
    name = PQntuples(res) == 1 ? PQgetvalue(res, 0, 2) : "";
    if (!wn_lsn_parse(lsn, point) || name[0] == '\0' || strlen(name) >= namelen) {
        set_error(s, "%s: no consistent point or snapshot name in the answer (%d rows)", doing,
                  PQntuples(res));
        PQclear(res);
        return WN_EXIT_SERVER;
    }
    snprintf(snapshot_name, namelen, "%s", name);
    PQclear(res);
    return 0;
}

/* The first commands of the reading transaction: nothing may run on the replication
 * connection before SET TRANSACTION SNAPSHOT, which ends the export. */
static int import_snapshot(wn_snapshot *s, const char *snapshot_name)
{
    char sql[160];
    char *literal = PQescapeLiteral(s->conn, snapshot_name, strlen(snapshot_name));

    if (!literal) {
        set_error(s, "importing the snapshot: out of memory");
        return WN_EXIT_INTERNAL;
    }
    snprintf(sql, sizeof sql, "SET TRANSACTION SNAPSHOT %s", literal);
    PQfreemem(literal);
    if (!command(s, "starting the snapshot's transaction",
                 "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY") ||
        !command(s, "importing the snapshot", sql) ||
        /* A table the role may not read in full is an error naming it, never rows filtered
         * silently; the stream is not filtered by row-level security either. */
        !command(s, "setting row_security", "SET LOCAL row_security = off") ||
        /* A scan that joined another one mid-table would start elsewhere on a second read. */
        !command(s, "setting synchronize_seqscans", "SET LOCAL synchronize_seqscans = off"))
        return s->status;
    return 0;
}

/* ---- each table ---------------------------------------------------------------------------- */

/* A row filter and its column list (PostgreSQL 15 and later) from pg_publication_tables. */
#define TABLE_SQL(rowfilter)                                                                       \
    "SELECT c.oid::text, c.relkind, "                                                              \
    "  coalesce((SELECT (sum(l.reltuples) FILTER (WHERE l.reltuples >= 0))::int8 "                 \
    "            FROM pg_class l WHERE l.oid = c.oid AND c.relkind <> 'p' "                        \
    "               OR l.oid IN (SELECT relid FROM pg_partition_tree(c.oid) t "                    \
    "                            WHERE c.relkind = 'p' AND t.isleaf)), -1), "                      \
    "  EXISTS (SELECT 1 FROM pg_publication_tables pt WHERE pt.pubname = $3 "                      \
    "          AND pt.schemaname = n.nspname AND pt.tablename = c.relname), "                      \
    "  " rowfilter " "                                                                             \
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "                               \
    "WHERE n.nspname = $1 AND c.relname = $2"

static int look_up_table(wn_snapshot *s, size_t i, char **rowfilter)
{
    static const char sql14[] = TABLE_SQL("NULL::text");
    static const char sql15[] =
        TABLE_SQL("(SELECT pt.rowfilter FROM pg_publication_tables pt WHERE pt.pubname = $3 "
                  " AND pt.schemaname = n.nspname AND pt.tablename = c.relname)");
    const wn_table_ref *ref = &s->source->tables[i];
    const char *params[] = {ref->schema, ref->name, s->source->publication};
    snap_table *t = &s->tables[i];
    char doing[MESSAGE_MAX];
    const char *kind;
    PGresult *res;

    snprintf(doing, sizeof doing, "looking up table \"%s\"", ref->qualified);
    res = query(s, doing, PQserverVersion(s->conn) >= ROW_FILTER_SERVER_VERSION ? sql15 : sql14, 3,
                params, PGRES_TUPLES_OK, 5);
    if (!res)
        return s->status;
    if (PQntuples(res) != 1) {
        set_error(s, "table \"%s\" does not exist in the database", ref->qualified);
        goto refuse;
    }
    kind = PQgetvalue(res, 0, 1);
    if (strcmp(kind, "r") != 0 && strcmp(kind, "p") != 0) {
        set_error(s, "\"%s\" is not a table (relkind '%s')", ref->qualified, kind);
        goto refuse;
    }
    if (strcmp(PQgetvalue(res, 0, 3), "t") != 0) {
        set_error(s,
                  "table \"%s\" is not in publication \"%s\": the stream carries none of its "
                  "changes",
                  ref->qualified, s->source->publication);
        goto refuse;
    }
    t->partitioned = kind[0] == 'p';
    snprintf(t->oid, sizeof t->oid, "%s", PQgetvalue(res, 0, 0));
    t->estimate = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    if (!PQgetisnull(res, 0, 4) && !(*rowfilter = strdup(PQgetvalue(res, 0, 4)))) {
        set_error(s, "looking up table \"%s\": out of memory", ref->qualified);
        PQclear(res);
        return WN_EXIT_INTERNAL;
    }
    PQclear(res);
    return 0;
refuse:
    PQclear(res);
    return WN_EXIT_SERVER;
}

/* Locks the table as read (a partitioned one with its partitions), and refuses it when it was
 * truncated or rewritten between C and the lock: its rows are then no longer C's. */
static int lock_table(wn_snapshot *s, size_t i, const char *quoted)
{
    static const char rewritten[] =
        "SELECT EXISTS (SELECT 1 FROM pg_class l WHERE l.relkind = 'r' "
        "   AND (l.oid = $1::oid OR l.oid IN (SELECT relid FROM pg_partition_tree($1::oid) t "
        "                                     WHERE t.isleaf AND $2 = 't')) "
        "   AND pg_relation_filenode(l.oid) IS DISTINCT FROM l.relfilenode)";
    snap_table *t = &s->tables[i];
    const char *params[] = {t->oid, t->partitioned ? "t" : "f"};
    char sql[MESSAGE_MAX], doing[MESSAGE_MAX];
    PGresult *res;
    bool changed;

    snprintf(sql, sizeof sql, "LOCK TABLE %s%s IN ACCESS SHARE MODE", t->partitioned ? "" : "ONLY ",
             quoted);
    snprintf(doing, sizeof doing, "locking table \"%s\"", table_name(s, i));
    if (!command(s, doing, sql))
        return s->status;
    res = query(s, doing, rewritten, 2, params, PGRES_TUPLES_OK, 1);
    if (!res)
        return s->status;
    changed = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!changed)
        return 0;
    set_error(s,
              "table \"%s\" was truncated or rewritten while the snapshot was taken: take it "
              "again",
              table_name(s, i));
    return WN_EXIT_TRANSIENT;
}

/*
 * The columns: every column that is not dropped, with whether pgoutput publishes it (the
 * publication's column list, else every column that is not generated), its key flag as the
 * Relation message sets it (the replica identity index's columns, every column under FULL),
 * and its place in the order rows are read in (the replica identity index, else the primary
 * key).
 */
#define COLUMNS_SQL(published)                                                                     \
    "SELECT a.attname, a.atttypid::int8, a.atttypmod, " published ", "                             \
    "  CASE c.relreplident WHEN 'f' THEN true WHEN 'n' THEN false ELSE EXISTS ("                   \
    "    SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND a.attnum = ANY (i.indkey::int2[]) " \
    "    AND CASE WHEN c.relreplident = 'i' THEN i.indisreplident ELSE i.indisprimary END) END, "  \
    "  (SELECT k.ord FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) " \
    "   WHERE i.indrelid = c.oid AND k.attnum = a.attnum AND "                                     \
    "   CASE WHEN c.relreplident = 'i' THEN i.indisreplident ELSE i.indisprimary END) "            \
    "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "                  \
    "     AND NOT a.attisdropped "                                                                 \
    "WHERE c.oid = $1::oid ORDER BY a.attnum"

typedef struct sql_buf {
    char *data;
    size_t length;
    size_t capacity;
    bool failed;
} sql_buf;

static void put(sql_buf *b, const char *text)
{
    size_t n = strlen(text);

    if (b->failed)
        return;
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity * 2 : 256;
        char *grown;

        while (capacity < b->length + n + 1)
            capacity *= 2;
        grown = realloc(b->data, capacity);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, text, n + 1);
    b->length += n;
}

static void put_identifier(sql_buf *b, PGconn *conn, const char *name)
{
    char *quoted = PQescapeIdentifier(conn, name, strlen(name));

    if (!quoted) {
        b->failed = true;
        return;
    }
    put(b, quoted);
    PQfreemem(quoted);
}

/*
 * ORDER BY the key columns when there are some: unique and not null, so the order is total. A
 * table without a key is read in physical order, ORDER BY ctid (with tableoid across the
 * partitions of a partitioned table, whose ctids repeat): a row's ctid cannot change within the
 * imported snapshot, since what moves rows (VACUUM FULL, CLUSTER, a rewriting ALTER) needs a
 * lock that conflicts with the one held, and plain VACUUM never moves a row a snapshot sees.
 */
static void put_order(sql_buf *b, PGconn *conn, const PGresult *res, bool partitioned)
{
    int n = PQntuples(res);
    bool any = false;

    put(b, " ORDER BY ");
    for (long place = 1; place <= n; place++) {
        for (int r = 0; r < n; r++) {
            if (PQgetisnull(res, r, 5) || strtol(PQgetvalue(res, r, 5), NULL, 10) != place)
                continue;
            put(b, any ? ", " : "");
            put_identifier(b, conn, PQgetvalue(res, r, 0));
            any = true;
        }
    }
    if (!any)
        put(b, partitioned ? "tableoid, ctid" : "ctid");
}

/* The statement the cursor reads the table with, from its columns (res). */
static char *select_sql(wn_snapshot *s, size_t i, const PGresult *res, const char *quoted,
                        const char *rowfilter)
{
    sql_buf b = {0};
    bool first = true;

    put(&b, "SELECT ");
    for (int r = 0; r < PQntuples(res); r++) {
        if (strcmp(PQgetvalue(res, r, 3), "t") != 0)
            continue;
        put(&b, first ? "" : ", ");
        put_identifier(&b, s->conn, PQgetvalue(res, r, 0));
        first = false;
    }
    put(&b, s->tables[i].partitioned ? " FROM " : " FROM ONLY ");
    put(&b, quoted);
    if (rowfilter) {
        put(&b, " WHERE (");
        put(&b, rowfilter);
        put(&b, ")");
    }
    put_order(&b, s->conn, res, s->tables[i].partitioned);
    if (!b.failed)
        return b.data;
    free(b.data);
    return NULL;
}

static bool fill_columns(snap_table *t, const PGresult *res)
{
    size_t n = 0;

    for (int r = 0; r < PQntuples(res); r++)
        n += strcmp(PQgetvalue(res, r, 3), "t") == 0;
    t->columns = calloc(n ? n : 1, sizeof *t->columns);
    if (!t->columns)
        return false;
    for (int r = 0; r < PQntuples(res); r++) {
        walnotify_column *c = &t->columns[t->ncolumns];

        if (strcmp(PQgetvalue(res, r, 3), "t") != 0)
            continue;
        c->name = strdup(PQgetvalue(res, r, 0));
        if (!c->name)
            return false;
        t->ncolumns++;
        c->type_oid = (uint32_t)strtoul(PQgetvalue(res, r, 1), NULL, 10);
        c->typmod = (int32_t)strtol(PQgetvalue(res, r, 2), NULL, 10);
        c->is_key = strcmp(PQgetvalue(res, r, 4), "t") == 0;
        c->kind = WALNOTIFY_VALUE_NULL;
    }
    return true;
}

static int read_columns(wn_snapshot *s, size_t i, const char *quoted, const char *rowfilter)
{
    static const char sql14[] = COLUMNS_SQL("a.attgenerated = ''");
    /* The column list, as attnames (NULL, or every column, generated ones included, when there
     * is none); a generated column is never published (PostgreSQL 18's
     * publish_generated_columns, which walnotify's publication does not set, is not followed). */
    static const char sql15[] = COLUMNS_SQL(
        "a.attgenerated = '' AND coalesce(a.attname = ANY ((SELECT pt.attnames "
        "  FROM pg_publication_tables pt JOIN pg_namespace n ON n.nspname = pt.schemaname "
        "  WHERE pt.pubname = $2 AND n.oid = c.relnamespace "
        "  AND pt.tablename = c.relname)::name[]), true)");
    snap_table *t = &s->tables[i];
    const char *params[] = {t->oid, s->source->publication};
    bool v15 = PQserverVersion(s->conn) >= ROW_FILTER_SERVER_VERSION;
    char doing[MESSAGE_MAX];
    PGresult *res;

    snprintf(doing, sizeof doing, "reading the columns of table \"%s\"", table_name(s, i));
    res = query(s, doing, v15 ? sql15 : sql14, v15 ? 2 : 1, params, PGRES_TUPLES_OK, 6);
    if (!res)
        return s->status;
    t->select = select_sql(s, i, res, quoted, rowfilter);
    if (!t->select || !fill_columns(t, res)) {
        set_error(s, "%s: out of memory", doing);
        PQclear(res);
        return WN_EXIT_INTERNAL;
    }
    PQclear(res);
    return 0;
}

/* "<prefix><table i's SELECT><suffix>", to free; NULL, with the error set, when out of memory. */
static char *around_select(wn_snapshot *s, size_t i, const char *prefix, const char *suffix,
                           const char *doing)
{
    const char *select = s->tables[i].select;
    size_t len = strlen(prefix) + strlen(select) + strlen(suffix) + 1;
    char *sql = malloc(len);

    if (!sql) {
        set_error(s, "%s: out of memory", doing);
        return NULL;
    }
    snprintf(sql, len, "%s%s%s", prefix, select, suffix);
    return sql;
}

/* A cursor declared on table i and closed again: planning and starting it checks the SELECT
 * right and row-level security (with row_security off, a policy that applies is an error). */
static int check_readable(wn_snapshot *s, size_t i)
{
    char doing[MESSAGE_MAX];
    char *sql;
    bool ok;

    snprintf(doing, sizeof doing, "reading table \"%s\"", table_name(s, i));
    sql = around_select(s, i, "DECLARE " CURSOR " NO SCROLL CURSOR FOR ", "", doing);
    if (!sql)
        return WN_EXIT_INTERNAL;
    ok = command(s, doing, sql) && command(s, "closing the snapshot's cursor", "CLOSE " CURSOR);
    free(sql);
    return ok ? 0 : s->status;
}

/* Everything begin learns of table i, and whether it can be read, so that a table that cannot be
 * read in full is refused before any row is delivered. */
static int prepare_table(wn_snapshot *s, size_t i)
{
    const wn_table_ref *ref = &s->source->tables[i];
    char *rowfilter = NULL;
    sql_buf quoted = {0};
    int status;

    put_identifier(&quoted, s->conn, ref->schema);
    put(&quoted, ".");
    put_identifier(&quoted, s->conn, ref->name);
    if (quoted.failed) {
        set_error(s, "table \"%s\": out of memory", ref->qualified);
        free(quoted.data);
        return WN_EXIT_INTERNAL;
    }
    status = look_up_table(s, i, &rowfilter);
    if (status == 0)
        status = lock_table(s, i, quoted.data);
    if (status == 0)
        status = read_columns(s, i, quoted.data, rowfilter);
    if (status == 0)
        status = check_readable(s, i);
    free(rowfilter);
    free(quoted.data);
    return status;
}

static int allocate(wn_snapshot *s)
{
    size_t widest = 0;

    for (size_t i = 0; i < s->ntables; i++)
        widest = s->tables[i].ncolumns > widest ? s->tables[i].ncolumns : widest;
    s->row = calloc(widest ? widest : 1, sizeof *s->row);
    if (s->row)
        return 0;
    set_error(s, "taking the snapshot: out of memory");
    return WN_EXIT_INTERNAL;
}

static void free_handle(wn_snapshot *s)
{
    PQfreemem(s->line);
    for (size_t i = 0; s->tables && i < s->ntables; i++) {
        for (size_t c = 0; c < s->tables[i].ncolumns; c++)
            free((char *)s->tables[i].columns[c].name);
        free(s->tables[i].columns);
        free(s->tables[i].select);
    }
    free(s->tables);
    free(s->row);
    /* The reading connection first: the slot's end is the replication connection's. */
    if (s->conn)
        PQfinish(s->conn);
    if (s->repl)
        PQfinish(s->repl);
    free(s);
}

static int connect_both(wn_snapshot *s)
{
    int status;

    /* The reading connection first: a failure there leaves no slot behind. */
    s->conn = wn_connect(s->source->conninfo, false, s->source->utf8, s->stop_fd, &status, s->err,
                         s->errlen);
    if (!s->conn)
        return status;
    s->repl = wn_connect(s->source->conninfo, true, s->source->utf8, s->stop_fd, &status, s->err,
                         s->errlen);
    return s->repl ? 0 : status;
}

static int start_copy(wn_snapshot *s);

static int take(wn_snapshot *s, wn_lsn *consistent_point)
{
    char snapshot_name[128];
    int status = connect_both(s);

    if (status == 0)
        status = create_slot(s, snapshot_name, sizeof snapshot_name, consistent_point);
    if (status == 0)
        status = import_snapshot(s, snapshot_name);
    for (size_t i = 0; status == 0 && i < s->ntables; i++)
        status = prepare_table(s, i);
    if (status == 0)
        status = allocate(s);
    /* The first table's rows start coming at once: the server reads them while the stream
     * starts and reaches the consistent point. */
    if (status == 0 && s->ntables > 0)
        status = start_copy(s);
    return status;
}

int wn_snapshot_begin(const wn_snapshot_source *source, wn_snapshot **snap,
                      wn_lsn *consistent_point, char *err, size_t errlen)
{
    wn_snapshot *s = calloc(1, sizeof *s);
    int status;

    *snap = NULL;
    *consistent_point = WN_LSN_INVALID;
    if (!s || !(s->tables = calloc(source->ntables ? source->ntables : 1, sizeof *s->tables))) {
        free(s);
        snprintf(err, errlen, "taking the snapshot: out of memory");
        return WN_EXIT_INTERNAL;
    }
    s->source = source;
    s->ntables = source->ntables;
    s->stop_fd = source->stop_fd;
    s->err = err;
    s->errlen = errlen;
    status = take(s, consistent_point);
    if (status != 0) {
        free_handle(s);
        *consistent_point = WN_LSN_INVALID;
        return status;
    }
    s->tables[0].first_ordinal = 1;
    *snap = s;
    return 0;
}

/* ---- reading ------------------------------------------------------------------------------ */

/*
 * Each table is read by one COPY (SELECT ...) TO STDOUT, from its first row not yet read (a
 * restart's OFFSET: the order is total, so the server skips the same rows). The server streams
 * the rows while walnotify delivers the ones before, with no round trip per chunk; the socket's
 * buffers hold it back when walnotify is slower, so no more than one row is held here.
 */
static int start_copy(wn_snapshot *s)
{
    size_t i = s->current;
    char suffix[64], doing[MESSAGE_MAX];
    char *sql;
    PGresult *res;

    snprintf(doing, sizeof doing, "reading table \"%s\"", table_name(s, i));
    if (s->table_rows > 0)
        snprintf(suffix, sizeof suffix, " OFFSET %llu) TO STDOUT",
                 (unsigned long long)s->table_rows);
    else
        snprintf(suffix, sizeof suffix, ") TO STDOUT");
    sql = around_select(s, i, "COPY (", suffix, doing);
    if (!sql)
        return WN_EXIT_INTERNAL;
    res = query(s, doing, sql, 0, NULL, PGRES_COPY_OUT, 0);
    free(sql);
    if (!res)
        return s->status;
    s->copying = true;
    if (PQnfields(res) != (int)s->tables[i].ncolumns) {
        set_error(s, "%s: the server answered with %d columns, expected %zu", doing, PQnfields(res),
                  s->tables[i].ncolumns);
        PQclear(res);
        return WN_EXIT_SERVER;
    }
    PQclear(res);
    return 0;
}

/* The COPY's next row into s->line, *length its bytes (its newline included); 0 at the COPY's
 * end. Returns 0 or an exit status. */
static int read_line(wn_snapshot *s, int *length)
{
    char message[MESSAGE_MAX];

    PQfreemem(s->line);
    s->line = NULL;
    for (;;) {
        int n = PQgetCopyData(s->conn, &s->line, 1);

        if (n != 0 && n != -2) {
            *length = n > 0 ? n : 0;
            return 0;
        }
        if (n == 0 && !wn_await_input(s->conn, s->stop_fd)) {
            set_error(s, "stopped while reading table \"%s\"", table_name(s, s->current));
            return WN_EXIT_STOPPED;
        }
        if (n == -2 || !PQconsumeInput(s->conn)) {
            wn_server_message(s->conn, NULL, message, sizeof message);
            set_error(s, "reading table \"%s\": %s", table_name(s, s->current), message);
            return wn_command_failure_status(s->conn, NULL);
        }
    }
}

/* After the COPY's last row: its command status, which says whether every row came. */
static int finish_copy(wn_snapshot *s)
{
    char message[MESSAGE_MAX];
    bool stopped = false;
    PGresult *res = wn_await_result(s->conn, s->stop_fd, &stopped);

    if (stopped) {
        set_error(s, "stopped while reading table \"%s\"", table_name(s, s->current));
        return WN_EXIT_STOPPED;
    }
    s->copying = false;
    if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return 0;
    }
    wn_server_message(s->conn, res, message, sizeof message);
    set_error(s, "reading table \"%s\": %s", table_name(s, s->current), message);
    s->status = wn_command_failure_status(s->conn, res);
    PQclear(res);
    return s->status;
}

/* A COPY cannot be cut short without losing the transaction (a cancel is an error in it): one
 * that a restart interrupts is read to its end, its rows dropped. */
static int end_copy(wn_snapshot *s)
{
    int status = 0, length = 1;

    while (s->copying && status == 0 && length > 0)
        status = read_line(s, &length);
    PQfreemem(s->line);
    s->line = NULL;
    if (status != 0 || !s->copying)
        return status;
    return finish_copy(s);
}

/* Moves on to table i (ntables: the end), its first ordinal being the next one. */
static int start_table(wn_snapshot *s, size_t i)
{
    int status = end_copy(s);

    if (status != 0)
        return status;
    s->current = i;
    s->table_rows = 0;
    if (i < s->ntables)
        s->tables[i].first_ordinal = s->ordinal + 1;
    return 0;
}

/* The value of a column, [p, end), with COPY's backslash escapes undone in place, NUL-terminated;
 * returns its length. COPY TO writes \b \f \n \r \t \v for those bytes and a backslash before a
 * backslash (or the delimiter); no octal or hex escapes. */
static size_t unescape(char *p, char *end)
{
    char *in = memchr(p, '\\', (size_t)(end - p)), *out = in;

    if (!in)
        return (size_t)(end - p);
    while (in < end) {
        char c = *in++;

        if (c == '\\' && in < end) {
            c = *in++;
            c = c == 'b'   ? '\b'
                : c == 'f' ? '\f'
                : c == 'n' ? '\n'
                : c == 'r' ? '\r'
                : c == 't' ? '\t'
                : c == 'v' ? '\v'
                           : c;
        }
        *out++ = c;
    }
    *out = '\0';
    return (size_t)(out - p);
}

/* The line (length bytes, its newline last) as the current table's columns in s->row: a tab
 * between two columns, \N alone for NULL. false when it holds another number of columns. */
static bool split_line(wn_snapshot *s, char *line, size_t length)
{
    const snap_table *t = &s->tables[s->current];
    char *p = line, *end = line + length - 1;
    bool escaped;

    if (length == 0 || *end != '\n')
        return false;
    /* Most lines hold no backslash: their values need no second look. */
    escaped = memchr(line, '\\', length) != NULL;
    for (size_t c = 0; c < t->ncolumns; c++) {
        walnotify_column *column = &s->row[c];
        char *stop = memchr(p, '\t', (size_t)(end - p));

        if (!stop)
            stop = end;
        if ((stop == end) != (c + 1 == t->ncolumns))
            return false;
        *stop = '\0';
        *column = t->columns[c];
        if (!(stop - p == 2 && p[0] == '\\' && p[1] == 'N')) {
            column->kind = WALNOTIFY_VALUE_TEXT;
            column->value = p;
            column->length = escaped ? unescape(p, stop) : (size_t)(stop - p);
        }
        p = stop + 1;
    }
    return t->ncolumns > 0 || p == end;
}

/* The line in hand as the next row, into *row. */
static int take_row(wn_snapshot *s, int length, wn_snapshot_row *row)
{
    const snap_table *t = &s->tables[s->current];

    if (!split_line(s, s->line, (size_t)length)) {
        set_error(s,
                  "reading table \"%s\": a row of the server's COPY does not hold the %zu "
                  "columns asked for",
                  table_name(s, s->current), t->ncolumns);
        return WN_EXIT_SERVER;
    }
    s->ordinal++;
    s->table_rows++;
    row->table = s->current;
    row->ordinal = s->ordinal;
    row->columns = s->row;
    row->ncolumns = t->ncolumns;
    return 0;
}

/* One step: a row into *row (0), the end (WN_SNAPSHOT_END), a failure, or 1: nothing yet (a
 * table ended, or its COPY began). */
static int step(wn_snapshot *s, wn_snapshot_row *row)
{
    snap_table *t;
    int status, length;

    if (s->current >= s->ntables)
        return WN_SNAPSHOT_END;
    t = &s->tables[s->current];
    if (!s->copying) {
        status = start_copy(s);
        return status != 0 ? status : 1;
    }
    status = read_line(s, &length);
    if (status == 0 && length > 0)
        return take_row(s, length, row);
    if (status == 0)
        status = finish_copy(s);
    if (status != 0)
        return status;
    /* Read to its end: its count is known, for a restart. */
    t->rows = s->table_rows;
    t->counted = true;
    status = start_table(s, s->current + 1);
    return status != 0 ? status : 1;
}

static int check_usable(wn_snapshot *s, char *err, size_t errlen)
{
    s->err = err;
    s->errlen = errlen;
    if (!s->failed)
        return 0;
    snprintf(err, errlen,
             "the snapshot's transaction was lost after an earlier failure: take "
             "the snapshot again");
    return WN_EXIT_SERVER;
}

static int fail(wn_snapshot *s, int status)
{
    if (status != 0 && status != WN_SNAPSHOT_END)
        s->failed = true;
    return status;
}

int wn_snapshot_next(wn_snapshot *snap, wn_snapshot_row *row, char *err, size_t errlen)
{
    int status = check_usable(snap, err, errlen);

    while (status == 0) {
        status = step(snap, row);
        if (status == 0 || status == WN_SNAPSHOT_END)
            return status;
        if (status == 1)
            status = 0;
        else
            return fail(snap, status);
    }
    return status;
}

/* The table holding ordinal: the first whose rows, counted, reach past it, else the one being
 * read (or the end). */
static size_t table_of(const wn_snapshot *s, uint64_t ordinal)
{
    for (size_t i = 0; i < s->ntables; i++) {
        const snap_table *t = &s->tables[i];

        if (!t->counted)
            return i;
        if (ordinal < t->first_ordinal + t->rows)
            return i;
    }
    return s->ntables;
}

int wn_snapshot_restart(wn_snapshot *snap, uint64_t ordinal, char *err, size_t errlen)
{
    int status = check_usable(snap, err, errlen);
    size_t i;
    uint64_t skip;

    if (status != 0)
        return status;
    if (ordinal < 1 || ordinal > snap->ordinal + 1) {
        snprintf(err, errlen,
                 "reading the snapshot again from row %llu: only rows 1 to %llu "
                 "were read",
                 (unsigned long long)ordinal, (unsigned long long)snap->ordinal + 1);
        return WN_EXIT_INTERNAL;
    }
    /* From the row the COPY under way comes to next: it goes on. */
    if (snap->copying && ordinal == snap->ordinal + 1)
        return 0;
    i = table_of(snap, ordinal);
    snap->ordinal = i < snap->ntables ? snap->tables[i].first_ordinal - 1 : snap->ordinal;
    status = start_table(snap, i);
    if (status != 0 || i >= snap->ntables)
        return fail(snap, status);
    /* The table's COPY starts past the rows skipped. */
    skip = ordinal - snap->tables[i].first_ordinal;
    snap->ordinal += skip;
    snap->table_rows = skip;
    return 0;
}

void wn_snapshot_get_progress(const wn_snapshot *snap, wn_snapshot_progress *progress)
{
    memset(progress, 0, sizeof *progress);
    progress->table = snap->current;
    progress->table_rows = snap->table_rows;
    progress->table_estimate =
        snap->current < snap->ntables ? snap->tables[snap->current].estimate : -1;
    progress->rows = snap->ordinal;
}

static void cancel_copy(wn_snapshot *s)
{
    char why[256];
    PGcancel *cancel = PQgetCancel(s->conn);

    if (!cancel)
        return;
    (void)PQcancel(cancel, why, sizeof why);
    PQfreeCancel(cancel);
}

int wn_snapshot_end(wn_snapshot *snap, char *err, size_t errlen)
{
    int status = 0;

    if (!snap)
        return 0;
    snap->err = err;
    snap->errlen = errlen;
    /* A read-only transaction: committing it only releases its snapshot and locks, as closing
     * the connection does. A COPY under way (a stop) is cancelled rather than read to its end. */
    if (snap->copying && !snap->failed)
        cancel_copy(snap);
    else if (!snap->failed && !command(snap, "ending the snapshot's transaction", "COMMIT"))
        status = snap->status;
    free_handle(snap);
    return status;
}
