/*
 * The initial snapshot's reader (core/snapshot.c), called directly against the real server: the
 * rows as of the consistent point whatever commits while they are read; each value byte for byte
 * what walnotify's own stream carries for an insert of the row; what the publication publishes
 * (no generated column, its column list and row filter, a partitioned table through its root, an
 * inheritance parent without its children); row-level security and privileges refused by name;
 * reading again giving the same rows and ordinals; a large table read with bounded memory.
 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "exitcode.h"
#include "itest.h"
#include "snapshot.h"

#define ERR_MAX 1024
#define LARGE_ROWS 200000
#define LARGE_ROW_BYTES 200              /* the text column of each large row */
#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer keeps freed memory in its quarantine (256 MB): the bound is the plain
 * build's to check. */
#define RSS_GROWTH_MAX_KB (512L * 1024)
#else
#define RSS_GROWTH_MAX_KB (20 * 1024) /* all 200,000 rows held at once take over 40 MB */
#endif

/* A source of one test's tables (as "public.x" names), its own database and publication. */
typedef struct snap_fixture {
    wn_table_ref tables[8];
    char names[8][64];
    char qualified[8][80];
    wn_snapshot_source source;
} snap_fixture;

static void fixture_init(snap_fixture *f, const itest_ctx *ctx, const char *conninfo,
                         const char *const *tables, size_t ntables)
{
    memset(f, 0, sizeof *f);
    ck_assert(ntables <= 8);
    for (size_t i = 0; i < ntables; i++) {
        snprintf(f->names[i], sizeof f->names[i], "%s", tables[i]);
        snprintf(f->qualified[i], sizeof f->qualified[i], "public.%s", tables[i]);
        f->tables[i].schema = (char *)"public";
        f->tables[i].name = f->names[i];
        f->tables[i].qualified = f->qualified[i];
    }
    f->source.conninfo = conninfo ? conninfo : ctx->conninfo;
    f->source.slot = ctx->slot;
    f->source.publication = ctx->pub;
    f->source.tables = f->tables;
    f->source.ntables = ntables;
    f->source.utf8 = true;
    f->source.stop_fd = -1;
}

static wn_snapshot *begin_ok(const snap_fixture *f, wn_lsn *point)
{
    char err[ERR_MAX] = "";
    wn_snapshot *snap = NULL;
    int status = wn_snapshot_begin(&f->source, &snap, point, err, sizeof err);

    ck_assert_msg(status == 0, "wn_snapshot_begin: %d: %s", status, err);
    ck_assert_ptr_nonnull(snap);
    return snap;
}

static void end_ok(wn_snapshot *snap)
{
    char err[ERR_MAX] = "";

    ck_assert_msg(wn_snapshot_end(snap, err, sizeof err) == 0, "wn_snapshot_end: %s", err);
}

/* A row as "T ORD {name:value,...}" (key columns marked with *, NULL as null). To free. */
static char *describe(const wn_snapshot_row *row)
{
    size_t cap = 64;
    char *out;
    size_t used;

    for (size_t c = 0; c < row->ncolumns; c++)
        cap += strlen(row->columns[c].name) + row->columns[c].length + 8;
    out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    used = (size_t)snprintf(out, cap, "%zu %llu {", row->table, (unsigned long long)row->ordinal);
    for (size_t c = 0; c < row->ncolumns; c++) {
        const walnotify_column *col = &row->columns[c];

        ck_assert(col->kind == WALNOTIFY_VALUE_NULL || col->kind == WALNOTIFY_VALUE_TEXT);
        ck_assert(col->kind == WALNOTIFY_VALUE_TEXT || col->value == NULL);
        ck_assert(col->kind == WALNOTIFY_VALUE_NULL || strlen(col->value) == col->length);
        used += (size_t)snprintf(out + used, cap - used, "%s%s%s:%s", c ? "," : "", col->name,
                                 col->is_key ? "*" : "",
                                 col->kind == WALNOTIFY_VALUE_TEXT ? col->value : "null");
    }
    snprintf(out + used, cap - used, "}");
    return out;
}

typedef struct rows {
    char **row;
    size_t count;
} rows;

static void rows_free(rows *r)
{
    for (size_t i = 0; i < r->count; i++)
        free(r->row[i]);
    free(r->row);
    memset(r, 0, sizeof *r);
}

/* Every row left, described. */
static rows read_rest(wn_snapshot *snap)
{
    rows r = {0};
    size_t cap = 0;
    char err[ERR_MAX] = "";
    wn_snapshot_row row;
    int status;

    while ((status = wn_snapshot_next(snap, &row, err, sizeof err)) == 0) {
        if (r.count == cap) {
            cap = cap ? cap * 2 : 64;
            r.row = realloc(r.row, cap * sizeof *r.row);
            ck_assert_ptr_nonnull(r.row);
        }
        r.row[r.count++] = describe(&row);
    }
    ck_assert_msg(status == WN_SNAPSHOT_END, "wn_snapshot_next: %d: %s", status, err);
    return r;
}

static void assert_rows(const rows *got, const char *const *want, size_t count)
{
    for (size_t i = 0; i < count && i < got->count; i++)
        ck_assert_msg(strcmp(got->row[i], want[i]) == 0, "row %zu is %s, expected %s", i,
                      got->row[i], want[i]);
    ck_assert_msg(got->count == count, "%zu rows, expected %zu", got->count, count);
}

/* The temporary slots of this test's snapshots on the server. */
static long long snapshot_slots(const itest_ctx *ctx)
{
    return itest_query_int(ctx->conn,
                           "SELECT count(*) FROM pg_replication_slots WHERE temporary AND "
                           "slot_name LIKE '%s\\_snap\\_%%'",
                           ctx->slot);
}

/* Waits until no temporary slot of this test's snapshots is left: a closed replication connection
 * drops its slot a moment later. */
static void wait_no_snapshot_slots(const itest_ctx *ctx)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    while (snapshot_slots(ctx) > 0) {
        ck_assert_msg(!itest_expired(&deadline), "a snapshot's temporary slot stays");
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* (a) The rows as of C: what commits after the snapshot was taken, while its rows are read
 * (between two chunks too), is not among them; C lies between the WAL positions around begin. */
START_TEST(test_rows_as_of_the_consistent_point)
{
    static const char *const tables[] = {"a"};
    itest_ctx ctx;
    snap_fixture f;
    wn_snapshot *snap;
    wn_snapshot_row row;
    wn_lsn before, point, after;
    char err[ERR_MAX] = "";
    rows rest;

    itest_begin(&ctx, "snapa");
    itest_exec(ctx.conn, "CREATE TABLE a (id int PRIMARY KEY, v text)");
    itest_exec(ctx.conn, "INSERT INTO a SELECT i, 'v' || i FROM generate_series(1, 250) i");
    itest_exec(ctx.conn, "CREATE PUBLICATION %s FOR TABLE a", ctx.pub);
    fixture_init(&f, &ctx, NULL, tables, 1);

    before = itest_current_lsn(ctx.conn);
    snap = begin_ok(&f, &point);
    after = itest_insert_lsn(ctx.conn);
    ck_assert_msg(point >= before && point <= after, "C %s outside [%s, %s]",
                  itest_lsn_text(point), itest_lsn_text(before), itest_lsn_text(after));
    ck_assert_int_eq(snapshot_slots(&ctx), 1);

    /* Committed after C, before any row is read: none of it shows. */
    itest_exec(ctx.conn, "INSERT INTO a VALUES (1000, 'late')");
    itest_exec(ctx.conn, "DELETE FROM a WHERE id <= 10");
    ck_assert_int_eq(wn_snapshot_next(snap, &row, err, sizeof err), 0);
    ck_assert_uint_eq(row.ordinal, 1);
    ck_assert_str_eq(row.columns[0].value, "1");
    /* ... and while the first chunk is in hand, before the next ones are fetched. */
    itest_exec(ctx.conn, "UPDATE a SET v = 'changed' WHERE id >= 200");
    itest_exec(ctx.conn, "DELETE FROM a WHERE id BETWEEN 150 AND 160");
    itest_exec(ctx.conn, "INSERT INTO a VALUES (251, 'late too')");
    rest = read_rest(snap);
    ck_assert_uint_eq(rest.count, 249);
    for (size_t i = 0; i < rest.count; i++) {
        char want[64];

        snprintf(want, sizeof want, "0 %zu {id*:%zu,v:v%zu}", i + 2, i + 2, i + 2);
        ck_assert_msg(strcmp(rest.row[i], want) == 0, "row %zu is %s, expected %s", i + 2,
                      rest.row[i], want);
    }
    rows_free(&rest);
    end_ok(snap);
    /* The temporary slot goes with the replication connection. */
    wait_no_snapshot_slots(&ctx);
    itest_end(&ctx);
}
END_TEST

/* (a) Joined to the stream with neither loss nor duplicate: while a writer commits without a
 * pause, each of several snapshots holds exactly the rows whose insert the stream (walnotify's
 * own, from a slot made before the writer started) carries at a commit LSN below the snapshot's
 * consistent point; a row committed at or after it is only in the stream. */
#define JOIN_ROUNDS 5

static uint8_t *ids_of_snapshot(const snap_fixture *f, wn_lsn *point, size_t max_id)
{
    uint8_t *seen = calloc(max_id + 1, 1);
    wn_snapshot *snap = begin_ok(f, point);
    char err[ERR_MAX] = "";
    wn_snapshot_row row;
    int status;

    ck_assert_ptr_nonnull(seen);
    while ((status = wn_snapshot_next(snap, &row, err, sizeof err)) == 0) {
        size_t id = strtoul(row.columns[0].value, NULL, 10);

        ck_assert_msg(id >= 1 && id <= max_id && !seen[id], "id %zu out of range or twice", id);
        seen[id] = 1;
    }
    ck_assert_msg(status == WN_SNAPSHOT_END, "%d: %s", status, err);
    end_ok(snap);
    return seen;
}

START_TEST(test_joined_to_the_stream)
{
    static const char *const tables[] = {"w"};
    enum { MAX_ID = 1000000 };
    itest_ctx ctx;
    snap_fixture f;
    itest_path conf, out;
    itest_events events;
    wn_lsn points[JOIN_ROUNDS];
    uint8_t *seen[JOIN_ROUNDS];
    pid_t writer;

    itest_begin(&ctx, "snapj");
    itest_exec(ctx.conn, "CREATE TABLE w (id bigserial PRIMARY KEY, n int)");
    conf = itest_config(&ctx, "join.cfg", "\"public.w\"", 1000,
                        "{ name = \"all\"; path = \"%s\"; settings = { path = \"out.jsonl\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s);
    itest_create_slot(&ctx, conf.s);
    writer = itest_writer_start(&ctx, "INSERT INTO w (n) VALUES (1)");
    itest_wait_query_at_least(ctx.conn, 20, "SELECT count(*) FROM w");
    fixture_init(&f, &ctx, NULL, tables, 1);
    for (int r = 0; r < JOIN_ROUNDS; r++)
        seen[r] = ids_of_snapshot(&f, &points[r], MAX_ID);
    itest_writer_stop(writer);
    itest_run_to_now(&ctx, conf.s);
    out = itest_file(&ctx, "out.jsonl");
    events = itest_read_events(out.s);
    ck_assert_msg(events.count > 0 && events.count < MAX_ID, "%zu events", events.count);
    for (int r = 0; r < JOIN_ROUNDS; r++) {
        size_t in_snapshot = 0, below = 0;

        for (size_t id = 1; id <= MAX_ID; id++)
            in_snapshot += seen[r][id];
        for (size_t e = 0; e < events.count; e++) {
            size_t id = strtoul(itest_value(&events.event[e], "id"), NULL, 10);
            bool before = events.event[e].lsn < points[r];

            ck_assert_msg(id <= MAX_ID && seen[r][id] == before,
                          "round %d: row %zu committed at %s, consistent point %s, %s the "
                          "snapshot",
                          r, id, itest_lsn_text(events.event[e].lsn), itest_lsn_text(points[r]),
                          before ? "missing from" : "also in");
            below += before;
        }
        ck_assert_uint_eq(in_snapshot, below);
        free(seen[r]);
    }
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

/* (b) Each value byte for byte what walnotify's stream carries for an insert of the row: the
 * jsonl plugin's lines of the rows as inserted, against a snapshot of the same rows, under
 * database defaults unlike walnotify's session settings. */
typedef struct typed_column {
    const char *name;
    const char *type;
    const char *values[3];
} typed_column;

static const typed_column typed[] = {
    {"c_int", "int", {"-2147483648", "0", "NULL"}},
    {"c_num", "numeric", {"'NaN'", "123456789012345678901234567890.000000000000000000001", "1.50"}},
    /* Every byte COPY's text format escapes, and a text that reads as its NULL (\N). */
    {"c_text", "text",
     {"E'quote \" and '' back\\\\slash\\nnew line\\ttab\\rcr\\b\\f\\x0b\\x01\\x7f end'", "''",
      "E'\\\\N'"}},
    {"c_bytea", "bytea", {"'\\x00ff7f80'::bytea", "'\\x'::bytea", "NULL"}},
    {"c_ts", "timestamptz", {"'2026-11-25 11:00:00.123456+05:30'", "'infinity'", "NULL"}},
    {"c_json", "json", {"'{\"a\": [1, \"x\\ny\"],  \"b\" : null}'", "'[]'", "NULL"}},
    {"c_arr", "text[]", {"ARRAY['a\"b', NULL, 'c,d', '']", "'{}'", "NULL"}},
    {"c_f8", "float8", {"0.1", "'-Infinity'", "3.141592653589793"}},
    {"c_f4", "real", {"0.1", "'NaN'", "NULL"}},
    {"c_iv", "interval", {"'-1 year 2 mons 3 days 04:05:06.789'", "'0'", "NULL"}},
    {"c_bool", "bool", {"true", "false", "NULL"}},
    {"c_date", "date", {"'2000-02-29'", "'-infinity'", "NULL"}},
    /* inet's ::text is not its output: "10.0.0.1/32" for '10.0.0.1'. */
    {"c_inet", "inet", {"'10.0.0.1'", "'2001:db8::1/64'", "NULL"}},
};
#define NTYPED (sizeof typed / sizeof typed[0])

static void create_typed_table(PGconn *conn)
{
    char sql[2048];
    size_t used = (size_t)snprintf(sql, sizeof sql, "CREATE TABLE t (id int PRIMARY KEY");

    for (size_t c = 0; c < NTYPED; c++)
        used += (size_t)snprintf(sql + used, sizeof sql - used, ", %s %s", typed[c].name,
                                 typed[c].type);
    snprintf(sql + used, sizeof sql - used, ")");
    itest_exec(conn, "%s", sql);
}

static void insert_typed_rows(PGconn *conn)
{
    for (int id = 1; id <= 3; id++) {
        char sql[2048];
        size_t used = (size_t)snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d", id);

        for (size_t c = 0; c < NTYPED; c++)
            used += (size_t)snprintf(sql + used, sizeof sql - used, ", %s",
                                     typed[c].values[id - 1]);
        snprintf(sql + used, sizeof sql - used, ")");
        itest_exec(conn, "%s", sql);
    }
}

/* The row's columns against the line's values: the same names in the same order, each value
 * the same bytes or both null. */
static void assert_row_is_line(const wn_snapshot_row *row, const itest_event *event)
{
    ck_assert_ptr_nonnull(event->values);
    ck_assert_uint_eq(row->ncolumns, event->values->count);
    for (size_t c = 0; c < row->ncolumns; c++) {
        const walnotify_column *col = &row->columns[c];
        const char *want = itest_value(event, col->name);

        ck_assert_str_eq(col->name, event->values->keys[c]);
        if (want == NULL) {
            ck_assert_msg(col->kind == WALNOTIFY_VALUE_NULL, "%s: %s, the stream has null",
                          col->name, col->value);
            continue;
        }
        ck_assert_msg(col->kind == WALNOTIFY_VALUE_TEXT, "%s: null, the stream has \"%s\"",
                      col->name, want);
        ck_assert_msg(col->length == strlen(want) && memcmp(col->value, want, col->length) == 0,
                      "%s: \"%s\", the stream has \"%s\"", col->name, col->value, want);
    }
}

START_TEST(test_values_as_the_stream_carries_them)
{
    static const char *const tables[] = {"t"};
    static const char *const hostile[][2] = {
        {"DateStyle", "SQL, DMY"},  {"TimeZone", "Asia/Kathmandu"}, {"IntervalStyle", "iso_8601"},
        {"bytea_output", "escape"}, {"extra_float_digits", "0"},
    };
    itest_ctx ctx;
    snap_fixture f;
    wn_snapshot *snap;
    wn_snapshot_row row;
    wn_lsn point;
    itest_path conf, out;
    itest_events events;
    char err[ERR_MAX] = "";
    char *oid;

    itest_begin(&ctx, "snapb");
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++)
        itest_exec(ctx.conn, "ALTER DATABASE %s SET %s = '%s'", ctx.db, hostile[i][0],
                   hostile[i][1]);
    create_typed_table(ctx.conn);
    conf = itest_config(&ctx, "types.cfg", "\"public.t\"", 1000,
                        "{ name = \"all\"; path = \"%s\"; settings = { path = \"out.jsonl\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s);
    itest_create_slot(&ctx, conf.s);
    insert_typed_rows(ctx.conn);
    itest_run_to_now(&ctx, conf.s);
    out = itest_file(&ctx, "out.jsonl");
    events = itest_read_events(out.s);
    ck_assert_uint_eq(events.count, 3);

    fixture_init(&f, &ctx, NULL, tables, 1);
    snap = begin_ok(&f, &point);
    for (size_t i = 0; i < events.count; i++) {
        ck_assert_int_eq(wn_snapshot_next(snap, &row, err, sizeof err), 0);
        assert_row_is_line(&row, &events.event[i]);
        ck_assert(row.columns[0].is_key);
        ck_assert(!row.columns[1].is_key);
    }
    oid = itest_query(ctx.conn, "SELECT 'bytea'::regtype::oid::text");
    ck_assert_uint_eq(row.columns[4].type_oid, strtoul(oid, NULL, 10));
    ck_assert_int_eq(row.columns[4].typmod, -1);
    free(oid);
    ck_assert_int_eq(wn_snapshot_next(snap, &row, err, sizeof err), WN_SNAPSHOT_END);
    end_ok(snap);
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

/* Whether the message describes a relation of names[] not described before in r. */
static bool new_relation(const rows *r, const char *name, const char *const *names, size_t n)
{
    bool listed = false;

    for (size_t i = 0; i < n; i++)
        listed = listed || strcmp(names[i], name) == 0;
    for (size_t i = 0; listed && i < r->count; i++) {
        size_t len = strlen(name);

        if (strncmp(r->row[i], name, len) == 0 && r->row[i][len] == ' ')
            return false;
    }
    return listed;
}

/* The columns of the first Relation message pgoutput sent for each of names[] (leaf partitions
 * are described too, and left out) for the changes on slot, as "relname
 * name:typeoid:typmod:k|-,..." (k: the key flag), in the order sent. */
static rows relation_messages(PGconn *conn, const char *slot, const char *pub,
                              const char *const *names, size_t nnames)
{
    char sql[512];
    rows r = {0};
    PGresult *res;

    snprintf(sql, sizeof sql,
             "SELECT data FROM pg_logical_slot_peek_binary_changes('%s', NULL, NULL, "
             "'proto_version', '1', 'publication_names', '%s')",
             slot, pub);
    res = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 1);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(conn));
    r.row = calloc((size_t)PQntuples(res) + 1, sizeof *r.row);
    ck_assert_ptr_nonnull(r.row);
    for (int i = 0; i < PQntuples(res); i++) {
        const unsigned char *m = (const unsigned char *)PQgetvalue(res, i, 0);
        size_t len = (size_t)PQgetlength(res, i, 0), at = 5, used;
        char out[1024];
        int natts;

        if (len < 1 || m[0] != 'R')
            continue;
        at += strlen((const char *)m + at) + 1; /* namespace */
        if (!new_relation(&r, (const char *)m + at, names, nnames))
            continue;
        used = (size_t)snprintf(out, sizeof out, "%s ", (const char *)m + at);
        at += strlen((const char *)m + at) + 1 + 1; /* relname, replica identity */
        natts = m[at] << 8 | m[at + 1];
        at += 2;
        for (int a = 0; a < natts && at < len; a++) {
            int flags = m[at++];
            const char *name = (const char *)m + at;
            uint32_t oid, typmod;

            at += strlen(name) + 1;
            oid = (uint32_t)m[at] << 24 | (uint32_t)m[at + 1] << 16 | (uint32_t)m[at + 2] << 8 |
                  m[at + 3];
            typmod = (uint32_t)m[at + 4] << 24 | (uint32_t)m[at + 5] << 16 |
                     (uint32_t)m[at + 6] << 8 | m[at + 7];
            at += 8;
            used += (size_t)snprintf(out + used, sizeof out - used, "%s%s:%u:%d:%s", a ? "," : "",
                                     name, oid, (int32_t)typmod, flags & 1 ? "k" : "-");
        }
        r.row[r.count] = strdup(out);
        ck_assert_ptr_nonnull(r.row[r.count++]);
    }
    PQclear(res);
    return r;
}

/* A snapshot row's columns as relation_messages describes them, under the table's name. */
static char *describe_columns(const char *table, const wn_snapshot_row *row)
{
    char out[1024];
    size_t used = (size_t)snprintf(out, sizeof out, "%s ", table);

    for (size_t c = 0; c < row->ncolumns; c++) {
        const walnotify_column *col = &row->columns[c];

        used += (size_t)snprintf(out + used, sizeof out - used, "%s%s:%u:%d:%s", c ? "," : "",
                                 col->name, col->type_oid, col->typmod, col->is_key ? "k" : "-");
    }
    return strdup(out);
}

/* (c) What the publication publishes, table by table: rows (no generated or dropped column,
 * the column list and the row filter, a partitioned table through its root, an inheritance
 * parent without its child, each key's order) and columns exactly as the Relation messages of
 * the same rows' inserts describe them (names, types, typmods, key flags). */
START_TEST(test_what_the_publication_publishes)
{
    static const char *const tables[] = {"g", "p", "ip", "f", "rf", "ri"};
    itest_ctx ctx;
    snap_fixture f;
    wn_snapshot *snap;
    wn_snapshot_row row;
    wn_lsn point;
    char err[ERR_MAX] = "";
    rows got, relations, columns = {0};
    bool v15;
    int status;

    itest_begin(&ctx, "snapc");
    v15 = PQserverVersion(ctx.conn) >= 150000;
    itest_exec(ctx.conn, "CREATE TABLE g (id int PRIMARY KEY, a numeric(10,2), "
                         "b numeric GENERATED ALWAYS AS (a * 2) STORED, dropped int, "
                         "c varchar(7))");
    itest_exec(ctx.conn, "ALTER TABLE g DROP COLUMN dropped");
    itest_exec(ctx.conn, "CREATE TABLE p (k int, id int, PRIMARY KEY (k, id)) "
                         "PARTITION BY RANGE (k)");
    itest_exec(ctx.conn, "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)");
    itest_exec(ctx.conn, "CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (10) TO (20)");
    itest_exec(ctx.conn, "CREATE TABLE ip (id int, v text)");
    itest_exec(ctx.conn, "CREATE TABLE ic (extra int) INHERITS (ip)");
    itest_exec(ctx.conn, "CREATE TABLE f (id int PRIMARY KEY, a int, secret text)");
    itest_exec(ctx.conn, "CREATE TABLE rf (id int PRIMARY KEY, v text)");
    itest_exec(ctx.conn, "ALTER TABLE rf REPLICA IDENTITY FULL");
    itest_exec(ctx.conn, "CREATE TABLE ri (id int PRIMARY KEY, u int NOT NULL UNIQUE, v text)");
    itest_exec(ctx.conn, "ALTER TABLE ri REPLICA IDENTITY USING INDEX ri_u_key");
    itest_exec(ctx.conn, "CREATE PUBLICATION %s FOR TABLE g, p, ip, rf, ri, f%s "
                         "WITH (publish_via_partition_root = true)",
               ctx.pub, v15 ? " (id, a) WHERE (a > 5)" : "");
    /* The inserts are decoded too: their Relation messages say what pgoutput publishes. */
    itest_exec(ctx.conn, "SELECT pg_create_logical_replication_slot('%s', 'pgoutput')", ctx.slot);
    itest_exec(ctx.conn, "INSERT INTO g (id, a, c) VALUES (2, 20, 'x'), (1, 10, NULL)");
    itest_exec(ctx.conn, "INSERT INTO p VALUES (15, 1), (5, 2)");
    itest_exec(ctx.conn, "INSERT INTO ip VALUES (1, 'parent')");
    itest_exec(ctx.conn, "INSERT INTO ic VALUES (2, 'child', 0)");
    itest_exec(ctx.conn, "INSERT INTO f SELECT i, i, 's' FROM generate_series(1, 8) i");
    itest_exec(ctx.conn, "INSERT INTO rf VALUES (1, 'x')");
    itest_exec(ctx.conn, "INSERT INTO ri VALUES (1, 20, 'a'), (2, 10, 'b')");
    fixture_init(&f, &ctx, NULL, tables, 6);
    snap = begin_ok(&f, &point);
    columns.row = calloc(6, sizeof *columns.row);
    ck_assert_ptr_nonnull(columns.row);
    while ((status = wn_snapshot_next(snap, &row, err, sizeof err)) == 0) {
        if (columns.count == row.table)
            columns.row[columns.count++] = describe_columns(tables[row.table], &row);
    }
    ck_assert_msg(status == WN_SNAPSHOT_END, "%d: %s", status, err);
    ck_assert_msg(wn_snapshot_restart(snap, 1, err, sizeof err) == 0, "%s", err);
    got = read_rest(snap);
    end_ok(snap);
    relations = relation_messages(ctx.conn, ctx.slot, ctx.pub, tables, 6);
    assert_rows(&columns, (const char *const *)relations.row, relations.count);
    if (v15) {
        static const char *const want[] = {
            "0 1 {id*:1,a:10.00,c:null}", "0 2 {id*:2,a:20.00,c:x}", "1 3 {k*:5,id*:2}",
            "1 4 {k*:15,id*:1}",          "2 5 {id:1,v:parent}",      "3 6 {id*:6,a:6}",
            "3 7 {id*:7,a:7}",            "3 8 {id*:8,a:8}",          "4 9 {id*:1,v*:x}",
            "5 10 {id:2,u*:10,v:b}",      "5 11 {id:1,u*:20,v:a}",
        };
        assert_rows(&got, want, sizeof want / sizeof want[0]);
    } else {
        printf("PostgreSQL %d: no column lists or row filters before 15, not checked\n",
               PQserverVersion(ctx.conn));
        ck_assert_uint_eq(got.count, 16);
        ck_assert_str_eq(got.row[5], "3 6 {id*:1,a:1,secret:s}");
    }
    rows_free(&got);
    rows_free(&relations);
    rows_free(&columns);
    itest_exec(ctx.conn, "SELECT pg_drop_replication_slot('%s')", ctx.slot);
    itest_end(&ctx);
}
END_TEST

/* A role of this test (roles are the cluster's): LOGIN REPLICATION plus attributes. */
static void make_role(PGconn *admin, const char *role, const char *attributes)
{
    itest_exec(admin, "CREATE ROLE %s LOGIN REPLICATION %s", role, attributes);
}

static int begin_as(const itest_ctx *ctx, const char *role, const char *table, char *err,
                    size_t errlen)
{
    const char *const tables[] = {table};
    char conninfo[1200];
    snap_fixture f;
    wn_snapshot *snap = NULL;
    wn_lsn point;
    int status;

    snprintf(conninfo, sizeof conninfo, "%s user=%s", ctx->conninfo, role);
    fixture_init(&f, ctx, conninfo, tables, 1);
    status = wn_snapshot_begin(&f.source, &snap, &point, err, errlen);
    if (status == 0) {
        rows got = read_rest(snap);

        snprintf(err, errlen, "%zu rows", got.count);
        rows_free(&got);
        end_ok(snap);
    }
    return status;
}

/* Row-level security is not applied: every row for a role that may bypass it, an error naming
 * the table for one that may not (PostgreSQL refuses a query that a policy would filter while
 * row_security is off). A table the role may not read is an error naming it. */
START_TEST(test_rights_and_row_security)
{
    itest_ctx ctx;
    PGconn *admin;
    char reader[96], bypass[96], err[ERR_MAX];
    int status;

    itest_begin(&ctx, "snapd");
    admin = itest_connect("postgres", NULL);
    snprintf(reader, sizeof reader, "%s_reader", ctx.db);
    snprintf(bypass, sizeof bypass, "%s_bypass", ctx.db);
    make_role(admin, reader, "");
    make_role(admin, bypass, "BYPASSRLS");
    itest_exec(ctx.conn, "CREATE TABLE r (id int PRIMARY KEY, owner text)");
    itest_exec(ctx.conn, "INSERT INTO r VALUES (1, 'nobody'), (2, 'nobody'), (3, current_user)");
    itest_exec(ctx.conn, "ALTER TABLE r ENABLE ROW LEVEL SECURITY");
    itest_exec(ctx.conn, "CREATE POLICY mine ON r USING (owner = current_user)");
    itest_exec(ctx.conn, "GRANT SELECT ON r TO %s, %s", reader, bypass);
    itest_exec(ctx.conn, "CREATE TABLE hidden (id int PRIMARY KEY)");
    itest_exec(ctx.conn, "CREATE PUBLICATION %s FOR TABLE r, hidden", ctx.pub);

    ck_assert_int_eq(begin_as(&ctx, "postgres", "r", err, sizeof err), 0);
    ck_assert_str_eq(err, "3 rows");
    ck_assert_int_eq(begin_as(&ctx, bypass, "r", err, sizeof err), 0);
    ck_assert_str_eq(err, "3 rows");
    status = begin_as(&ctx, reader, "r", err, sizeof err);
    ck_assert_msg(status == WN_EXIT_SERVER && strstr(err, "table \"public.r\"") &&
                      strstr(err, "row-level security"),
                  "%d: %s", status, err);
    status = begin_as(&ctx, reader, "hidden", err, sizeof err);
    ck_assert_msg(status == WN_EXIT_SERVER && strstr(err, "table \"public.hidden\"") &&
                      strstr(err, "permission denied"),
                  "%d: %s", status, err);
    /* Nothing is left behind by a refusal. */
    wait_no_snapshot_slots(&ctx);

    itest_end(&ctx);
    itest_exec(admin, "DROP ROLE %s", reader);
    itest_exec(admin, "DROP ROLE %s", bypass);
    PQfinish(admin);
}
END_TEST

/* (d) Reading again, from the start or from any row read, gives the same rows and ordinals;
 * progress says where reading is. */
START_TEST(test_restart_reads_the_same_rows)
{
    static const char *const tables[] = {"a", "e", "b"};
    itest_ctx ctx;
    snap_fixture f;
    wn_snapshot *snap;
    wn_snapshot_row row;
    wn_snapshot_progress progress;
    wn_lsn point;
    char err[ERR_MAX] = "";
    rows first, again, tail;

    itest_begin(&ctx, "snape");
    itest_exec(ctx.conn, "CREATE TABLE a (id int PRIMARY KEY, v text)");
    itest_exec(ctx.conn, "INSERT INTO a SELECT i, md5(i::text) FROM generate_series(1, 300) i");
    itest_exec(ctx.conn, "CREATE TABLE e (id int)");
    /* No key: read in physical order, scattered by updates. */
    itest_exec(ctx.conn, "CREATE TABLE b (id int, v text)");
    itest_exec(ctx.conn, "INSERT INTO b SELECT i, 'x' FROM generate_series(1, 150) i");
    itest_exec(ctx.conn, "UPDATE b SET v = 'y' WHERE id %% 7 = 0");
    itest_exec(ctx.conn, "ANALYZE a");
    itest_exec(ctx.conn, "CREATE PUBLICATION %s FOR TABLE a, e, b", ctx.pub);
    fixture_init(&f, &ctx, NULL, tables, 3);
    snap = begin_ok(&f, &point);

    wn_snapshot_get_progress(snap, &progress);
    ck_assert_uint_eq(progress.table, 0);
    ck_assert_int_eq(progress.table_estimate, 300);
    for (int i = 0; i < 120; i++)
        ck_assert_int_eq(wn_snapshot_next(snap, &row, err, sizeof err), 0);
    wn_snapshot_get_progress(snap, &progress);
    ck_assert_uint_eq(progress.table_rows, 120);
    ck_assert_uint_eq(progress.rows, 120);
    /* Mid-table, before the table was read to its end. */
    ck_assert_msg(wn_snapshot_restart(snap, 1, err, sizeof err) == 0, "%s", err);
    first = read_rest(snap);
    ck_assert_uint_eq(first.count, 450);
    ck_assert_str_eq(first.row[300], "2 301 {id:1,v:x}");
    wn_snapshot_get_progress(snap, &progress);
    ck_assert_uint_eq(progress.table, 3);
    ck_assert_uint_eq(progress.rows, 450);

    ck_assert_msg(wn_snapshot_restart(snap, 1, err, sizeof err) == 0, "%s", err);
    again = read_rest(snap);
    assert_rows(&again, (const char *const *)first.row, first.count);
    rows_free(&again);
    /* From a row of each table (301: the first of b, after the empty e), and from one past the
     * end. */
    static const uint64_t froms[] = {250, 300, 301, 350, 451};
    for (size_t k = 0; k < sizeof froms / sizeof froms[0]; k++) {
        uint64_t from = froms[k];

        ck_assert_msg(wn_snapshot_restart(snap, from, err, sizeof err) == 0, "%s", err);
        tail = read_rest(snap);
        assert_rows(&tail, (const char *const *)first.row + from - 1, first.count - (from - 1));
        rows_free(&tail);
    }
    ck_assert_int_ne(wn_snapshot_restart(snap, 452, err, sizeof err), 0);
    rows_free(&first);
    end_ok(snap);
    itest_end(&ctx);
}
END_TEST

/* Ended in the middle of a table (a stop, or --endpos before the snapshot): the end succeeds,
 * and neither the reading session nor the temporary slot stays. */
START_TEST(test_end_in_the_middle_of_a_table)
{
    static const char *const tables[] = {"a"};
    itest_ctx ctx;
    snap_fixture f;
    wn_snapshot *snap;
    wn_snapshot_row row;
    wn_lsn point;
    char err[ERR_MAX] = "";

    itest_begin(&ctx, "snapm");
    itest_exec(ctx.conn, "CREATE TABLE a (id int PRIMARY KEY, v text)");
    itest_exec(ctx.conn, "INSERT INTO a SELECT i, md5(i::text) FROM generate_series(1, 1000) i");
    itest_exec(ctx.conn, "CREATE PUBLICATION %s FOR TABLE a", ctx.pub);
    fixture_init(&f, &ctx, NULL, tables, 1);
    /* Before any row, then after a few. */
    end_ok(begin_ok(&f, &point));
    snap = begin_ok(&f, &point);
    for (int i = 0; i < 10; i++)
        ck_assert_msg(wn_snapshot_next(snap, &row, err, sizeof err) == 0, "%s", err);
    end_ok(snap);
    wait_no_snapshot_slots(&ctx);
    itest_wait_query_at_least(ctx.conn, 1,
                              "SELECT (count(*) = 0)::int FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    itest_end(&ctx);
}
END_TEST

/* Asks for a stop once the snapshot's temporary slot is being made (its creation waits on the
 * test's open transaction). */
typedef struct stopper {
    const itest_ctx *ctx;
    int fd;
} stopper;

static void *stop_when_slot_waits(void *arg)
{
    stopper *st = arg;
    PGconn *conn = itest_connect(st->ctx->db, NULL);
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    while (itest_query_int(conn,
                           "SELECT count(*) FROM pg_replication_slots WHERE temporary AND "
                           "slot_name LIKE '%s\\_snap\\_%%'",
                           st->ctx->slot) == 0 &&
           !itest_expired(&deadline))
        itest_sleep_ms(ITEST_POLL_MS);
    PQfinish(conn);
    ck_assert_int_eq(write(st->fd, "x", 1), 1);
    return NULL;
}

/* A stop while the slot is being made ends begin with WN_EXIT_STOPPED and leaves nothing. */
START_TEST(test_stop_while_taking)
{
    static const char *const tables[] = {"a"};
    itest_ctx ctx;
    snap_fixture f;
    wn_snapshot *snap = NULL;
    wn_lsn point;
    char err[ERR_MAX] = "";
    int fds[2], status;
    pthread_t thread;
    stopper st;

    itest_begin(&ctx, "snaps");
    itest_exec(ctx.conn, "CREATE TABLE a (id int PRIMARY KEY)");
    itest_exec(ctx.conn, "CREATE PUBLICATION %s FOR TABLE a", ctx.pub);
    ck_assert_int_eq(pipe(fds), 0);
    fixture_init(&f, &ctx, NULL, tables, 1);
    f.source.stop_fd = fds[0];
    /* A transaction with an id, open: the slot cannot be made before it ends. */
    itest_exec(ctx.conn, "BEGIN; INSERT INTO a VALUES (1)");
    st.ctx = &ctx;
    st.fd = fds[1];
    ck_assert_int_eq(pthread_create(&thread, NULL, stop_when_slot_waits, &st), 0);
    status = wn_snapshot_begin(&f.source, &snap, &point, err, sizeof err);
    pthread_join(thread, NULL);
    ck_assert_msg(status == WN_EXIT_STOPPED, "%d: %s", status, err);
    ck_assert_ptr_null(snap);
    ck_assert_uint_eq(point, WN_LSN_INVALID);
    itest_exec(ctx.conn, "ROLLBACK");
    wait_no_snapshot_slots(&ctx);
    close(fds[0]);
    close(fds[1]);
    itest_end(&ctx);
}
END_TEST

static long peak_rss_kb(void)
{
    struct rusage usage;

    ck_assert_int_eq(getrusage(RUSAGE_SELF, &usage), 0);
    return usage.ru_maxrss;
}

/* (e) A large table comes in chunks: the process's peak memory grows by far less than the
 * table's size, and every row comes once, in key order. */
START_TEST(test_large_table_in_bounded_memory)
{
    static const char *const tables[] = {"big"};
    itest_ctx ctx;
    snap_fixture f;
    wn_snapshot *snap;
    wn_snapshot_row row;
    wn_lsn point;
    char err[ERR_MAX] = "";
    long before, growth;
    int status;
    uint64_t n = 0;

    itest_begin(&ctx, "snapf");
    itest_exec(ctx.conn, "CREATE TABLE big (id int PRIMARY KEY, v text)");
    itest_exec(ctx.conn, "INSERT INTO big SELECT i, repeat('x', %d) FROM generate_series(1, %d) i",
               LARGE_ROW_BYTES, LARGE_ROWS);
    itest_exec(ctx.conn, "CREATE PUBLICATION %s FOR TABLE big", ctx.pub);
    fixture_init(&f, &ctx, NULL, tables, 1);
    before = peak_rss_kb();
    snap = begin_ok(&f, &point);
    while ((status = wn_snapshot_next(snap, &row, err, sizeof err)) == 0) {
        char id[16];

        n++;
        snprintf(id, sizeof id, "%llu", (unsigned long long)n);
        ck_assert_uint_eq(row.ordinal, n);
        ck_assert_str_eq(row.columns[0].value, id);
        ck_assert_uint_eq(row.columns[1].length, LARGE_ROW_BYTES);
    }
    ck_assert_msg(status == WN_SNAPSHOT_END, "%d: %s", status, err);
    ck_assert_uint_eq(n, LARGE_ROWS);
    growth = peak_rss_kb() - before;
    ck_assert_msg(growth < RSS_GROWTH_MAX_KB, "peak RSS grew by %ld kB reading %d rows", growth,
                  LARGE_ROWS);
    end_ok(snap);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("snapshot");
    TCase *tc = itest_tcase(suite, "snapshot");

    tcase_add_test(tc, test_rows_as_of_the_consistent_point);
    tcase_add_test(tc, test_joined_to_the_stream);
    tcase_add_test(tc, test_values_as_the_stream_carries_them);
    tcase_add_test(tc, test_what_the_publication_publishes);
    tcase_add_test(tc, test_rights_and_row_security);
    tcase_add_test(tc, test_restart_reads_the_same_rows);
    tcase_add_test(tc, test_large_table_in_bounded_memory);
    tcase_add_test(tc, test_end_in_the_middle_of_a_table);
    tcase_add_test(tc, test_stop_while_taking);
    return run_suite(suite) == 0 ? 0 : 1;
}
