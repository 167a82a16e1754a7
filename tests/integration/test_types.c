/*
 * Every built-in type's text through the whole pipeline: rows written with many types, NULLs in
 * every column and awkward bytes, delivered by the jsonl plugin, must match byte for byte what
 * COPY ... TO STDOUT prints under the contract's session settings. The test's database defaults
 * to other settings for every one of them, so the match holds only if walnotify's own session
 * settings are in force. Beside jsonl, a second plugin writes what the host's encode_json and
 * encode_key make of the same events: the first must be jsonl's file byte for byte, the second
 * each row's primary key.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define NROWS 36        /* small rows, ids 1..NROWS */
#define ROWS_PER_TXN 5
#define BIG_ID 1000     /* one row with values over 1 MB */

/* The contract's session settings, given explicitly to the COPY that the delivered text is
 * compared with: the database's own defaults differ. */
#define SESSION_OPTIONS                                                                            \
    "-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 -c timezone=UTC "          \
    "-c bytea_output=hex"

/* Database defaults unlike the contract's for each setting, each changing how some column
 * prints (dates, timestamps with time zone, intervals, bytea, floats). */
static const char *const hostile_defaults[][2] = {
    {"DateStyle", "SQL, DMY"},
    {"TimeZone", "Asia/Kathmandu"},
    {"IntervalStyle", "iso_8601"},
    {"bytea_output", "escape"},
    {"extra_float_digits", "0"},
};
#define NHOSTILE (sizeof hostile_defaults / sizeof hostile_defaults[0])

typedef struct column_spec {
    const char *name;
    const char *type;
    const char *const *values; /* SQL expressions, ended by NULL */
} column_spec;

#define V(...) ((const char *const[]){__VA_ARGS__, NULL})

static const column_spec columns[] = {
    {"c_int2", "smallint", V("-32768", "32767", "0")},
    {"c_int8", "bigint", V("-9223372036854775808", "9223372036854775807", "42")},
    {"c_num", "numeric",
     V("'NaN'", "'Infinity'", "'-Infinity'", "0", "-0.000000000000000000000000000001",
       "123456789012345678901234567890123456789012345678901234567890.123456789012345678901234567890",
       "1e100", "1.50")},
    {"c_num_p", "numeric(40,20)", V("12345678901234567890.12345678901234567890", "-1", "0.1")},
    {"c_f4", "real",
     V("'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "0.1", "3.4028235e38", "1.4e-45")},
    {"c_f8", "double precision",
     V("'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "0.1", "1.7976931348623157e308", "5e-324",
       "3.141592653589793")},
    {"c_bool", "boolean", V("true", "false")},
    {"c_bytea", "bytea", V("'\\x'::bytea", "'\\x00ff7f80'::bytea", "convert_to('h\u00e9llo\\', 'UTF8')")},
    {"c_text", "text",
     V("''", "'plain'", "(SELECT string_agg(chr(i), '') FROM generate_series(1, 31) i) || chr(127)",
       "'quote \" and '' and \\ backslash \\\\ double'", "'\U0001F600 four, \u00e9 two, \u20ac three'",
       "E'line1\\nline2\\r\\n\\ttab\\b\\f\\v'", "'NULL'", "'\\N'", "' lead and trail '")},
    {"c_vc", "varchar(10)", V("'h\u00e9llo'", "''", "'0123456789'")},
    {"c_ch", "char(5)", V("'ab'", "'abcde'", "''")},
    {"c_ts", "timestamptz",
     V("'2026-11-25 11:00:00.123456+05:30'", "'infinity'", "'-infinity'",
       "'0044-03-15 12:00:00+00 BC'", "'2000-01-01 00:00:00+00'", "'1999-12-31 23:59:59.999999-08'")},
    {"c_tsn", "timestamp",
     V("'2026-11-25 11:00:00.5'", "'infinity'", "'1900-01-01'", "'4713-01-01 00:00 BC'")},
    {"c_date", "date", V("'2000-02-29'", "'infinity'", "'-infinity'", "'0001-01-01 BC'", "'5874897-12-31'")},
    {"c_time", "time", V("'24:00:00'", "'00:00:00.000001'", "'13:37'")},
    {"c_timetz", "timetz", V("'13:37:00+05:30'", "'00:00:00-12'")},
    {"c_interval", "interval",
     V("'-1 year 2 mons 3 days 04:05:06.789'", "'0'", "'1000000 hours'", "'-0.000001 seconds'")},
    {"c_json", "json",
     V("'{\"a\": [1, 2, \"x\\ny\"],  \"b\" : null}'", "'[]'", "'\"\\u00e9\\t\"'",
       "'  {\"dup\":1, \"dup\":2}  '")},
    {"c_jsonb", "jsonb",
     V("'{\"b\": 1, \"a\": [true, null, 1.50]}'", "'\"text\\twith tab\"'", "'{}'",
       "'12345678901234567890.5'")},
    {"c_iarr", "int[]", V("'{1,NULL,3}'", "'{{1,2},{3,4}}'", "'{}'", "'[0:1]={5,6}'")},
    {"c_tarr", "text[]",
     V("ARRAY['a\"b', NULL, 'NULL', 'c,d', 'back\\slash', '', ' sp ', '\U0001F600', '{x}']",
       "'{}'")},
    {"c_i4r", "int4range", V("'[1,10)'", "'empty'", "'(,5]'", "'(,)'")},
    {"c_tsr", "tstzrange",
     V("'[2020-01-01 00:00+00,infinity)'", "'empty'", "'(2020-01-01 10:00+02,2020-01-02 00:00+00]'")},
    {"c_uuid", "uuid", V("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'00000000-0000-0000-0000-000000000000'")},
    {"c_inet", "inet", V("'192.168.1.1/24'", "'::1'", "'2001:db8::1/64'", "'10.0.0.1'")},
    {"c_cidr", "cidr", V("'10.0.0.0/8'", "'2001:db8::/32'")},
    {"c_macaddr", "macaddr", V("'08:00:2b:01:02:03'")},
    {"c_mood", "mood", V("'sad'", "'happy \U0001F600'", "'with \"quote'")},
    {"c_dom", "short_text", V("'domain value'", "''")},
    {"c_pair", "pair",
     V("ROW(1, 'x y')::pair", "ROW(NULL, NULL)::pair", "ROW(-5, 'quote \" back \\ comma ,')::pair")},
    {"c_money", "money", V("'12.34'", "'-0.01'", "'92233720368547758.07'")},
    {"c_xml", "xml", V("'<a b=\"1\">x &amp; y</a>'", "'plain text'", "'<r>\U0001F600</r>'")},
    {"c_bit", "bit(4)", V("B'1010'", "B'0000'")},
    {"c_varbit", "varbit", V("B''", "B'1'", "B'10101010101'")},
    {"c_point", "point", V("'(1.5,-2)'", "'(0,0)'")},
    {"c_tsvector", "tsvector", V("'a fat cat'::tsvector", "''::tsvector")},
    {"c_oid", "oid", V("4294967295", "0")},
};
#define NCOLUMNS (sizeof columns / sizeof columns[0])

/* A transaction as the test wrote it: where its commit record must be. */
typedef struct written_txn {
    wn_lsn before;     /* insert position just before COMMIT: the commit record starts here or later */
    wn_lsn after;      /* insert position after COMMIT: the commit record starts before */
    long long xid;
    int rows;
} written_txn;

typedef struct buf {
    char *data;
    size_t length;
    size_t capacity;
} buf;

static void buf_put(buf *b, const char *bytes, size_t n)
{
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (capacity < b->length + n + 1)
            capacity *= 2;
        b->data = realloc(b->data, capacity);
        ck_assert_msg(b->data != NULL, "out of memory");
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, bytes, n);
    b->length += n;
    b->data[b->length] = '\0';
}

/* COPY's text format, as PostgreSQL's CopyAttributeOutText writes it with a tab delimiter. */
static void put_copy_text(buf *b, const char *value, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *escape = NULL;
        switch (value[i]) {
        case '\\': escape = "\\\\"; break;
        case '\b': escape = "\\b"; break;
        case '\f': escape = "\\f"; break;
        case '\n': escape = "\\n"; break;
        case '\r': escape = "\\r"; break;
        case '\t': escape = "\\t"; break;
        case '\v': escape = "\\v"; break;
        default: break;
        }
        if (escape != NULL)
            buf_put(b, escape, 2);
        else
            buf_put(b, &value[i], 1);
    }
}

static void create_schema(PGconn *conn)
{
    buf sql = {0};

    itest_exec(conn, "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy \U0001F600', 'with \"quote')");
    itest_exec(conn, "CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 100)");
    itest_exec(conn, "CREATE TYPE pair AS (a int, b text)");
    buf_put(&sql, "CREATE TABLE t (id int PRIMARY KEY", strlen("CREATE TABLE t (id int PRIMARY KEY"));
    for (size_t j = 0; j < NCOLUMNS; j++) {
        char part[128];
        int n = snprintf(part, sizeof part, ", %s %s", columns[j].name, columns[j].type);
        buf_put(&sql, part, (size_t)n);
    }
    buf_put(&sql, ")", 1);
    itest_exec(conn, "%s", sql.data);
    free(sql.data);
}

static size_t count_values(const char *const *values)
{
    size_t n = 0;
    while (values[n] != NULL)
        n++;
    return n;
}

/* Row 1 is all NULLs; others take NULL in a rotating pattern so every column has NULLs. */
static const char *value_for(int row, size_t column)
{
    const char *const *values = columns[column].values;

    if (row == BIG_ID && strcmp(columns[column].name, "c_text") == 0)
        return "'big ' || repeat(E'\\u00e9\\t\U0001F600\"\\\\\\n', 200000)";
    if (row == BIG_ID && strcmp(columns[column].name, "c_bytea") == 0)
        return "decode(repeat('00ff5c0a', 150000), 'hex')";
    if (row == 1 || (row + (int)column) % 5 == 0)
        return "NULL";
    return values[((size_t)row + 2 * column) % count_values(values)];
}

static void insert_row(PGconn *conn, int id)
{
    buf sql = {0};
    char part[64];
    int n = snprintf(part, sizeof part, "INSERT INTO t VALUES (%d", id);

    buf_put(&sql, part, (size_t)n);
    for (size_t j = 0; j < NCOLUMNS; j++) {
        const char *value = value_for(id, j);
        buf_put(&sql, ", ", 2);
        buf_put(&sql, value, strlen(value));
    }
    buf_put(&sql, ")", 1);
    itest_exec(conn, "%s", sql.data);
    free(sql.data);
}

static void begin_txn(PGconn *conn)
{
    itest_exec(conn, "BEGIN");
}

static written_txn commit_txn(PGconn *conn, int rows)
{
    written_txn txn = {.rows = rows};

    txn.xid = itest_query_int(conn, "SELECT txid_current() %% 4294967296");
    txn.before = itest_insert_lsn(conn);
    itest_exec(conn, "COMMIT");
    txn.after = itest_insert_lsn(conn);
    return txn;
}

/* One row with a text over 1 MB and a bytea over 1 MB of hex. */
static written_txn write_big_row(PGconn *conn)
{
    begin_txn(conn);
    insert_row(conn, BIG_ID);
    return commit_txn(conn, 1);
}

static char *copy_out(const itest_ctx *ctx, size_t *length)
{
    PGconn *conn = itest_connect(ctx->db, SESSION_OPTIONS);
    PGresult *res = PQexec(conn, "COPY (SELECT * FROM t ORDER BY id) TO STDOUT");
    buf out = {0};
    char *chunk;
    int n;

    ck_assert_msg(PQresultStatus(res) == PGRES_COPY_OUT, "COPY failed: %s", PQerrorMessage(conn));
    PQclear(res);
    while ((n = PQgetCopyData(conn, &chunk, 0)) > 0) {
        buf_put(&out, chunk, (size_t)n);
        PQfreemem(chunk);
    }
    ck_assert_msg(n == -1, "COPY data failed: %s", PQerrorMessage(conn));
    res = PQgetResult(conn);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "COPY ended badly: %s",
                  PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
    *length = out.length;
    return out.data;
}

/* The events' values, in column order, as COPY text lines. */
static char *events_as_copy(const itest_events *events, const char *column_names, size_t *length)
{
    buf out = {0};

    for (size_t i = 0; i < events->count; i++) {
        const jl_value *values = events->event[i].values;
        buf names = {0};

        ck_assert_str_eq(events->event[i].op, "insert");
        ck_assert_str_eq(events->event[i].table, "public.t");
        for (size_t j = 0; j < values->count; j++) {
            const jl_value *v = values->items[j];
            if (j > 0) {
                buf_put(&out, "\t", 1);
                buf_put(&names, ",", 1);
            }
            buf_put(&names, values->keys[j], strlen(values->keys[j]));
            if (v->kind == JL_NULL)
                buf_put(&out, "\\N", 2);
            else {
                ck_assert_msg(v->kind == JL_STRING, "column %s is not a string", values->keys[j]);
                put_copy_text(&out, v->text, v->length);
            }
        }
        buf_put(&out, "\n", 1);
        ck_assert_msg(names.data != NULL && strcmp(names.data, column_names) == 0,
                      "event %zu has columns %s, expected %s", i, names.data, column_names);
        free(names.data);
    }
    *length = out.length;
    return out.data;
}

static void assert_same_copy(const char *got, size_t got_len, const char *want, size_t want_len)
{
    size_t i = 0, line = 1, line_start = 0;

    if (got_len == want_len && memcmp(got, want, got_len) == 0)
        return;
    while (i < got_len && i < want_len && got[i] == want[i]) {
        if (got[i] == '\n') {
            line++;
            line_start = i + 1;
        }
        i++;
    }
    ck_abort_msg("delivered values differ from COPY at line %zu, byte %zu:\n got: %.300s\nwant: %.300s",
                 line, i - line_start, got + line_start, want + line_start);
}

/* Every line of encode_json is jsonl's line; every key is the row's primary key, {"id":"N"}. */
static void assert_encoders_agree(const itest_ctx *ctx, const itest_path *jsonl,
                                  const itest_events *events)
{
    itest_path json_path = itest_file(ctx, "echo.json");
    itest_path key_path = itest_file(ctx, "echo.key");
    size_t jsonl_len, json_len;
    char *want = itest_read_file(jsonl->s, &jsonl_len);
    char *got = itest_read_file(json_path.s, &json_len);
    itest_lines keys;

    ck_assert_msg(want != NULL && got != NULL, "%s or %s is missing", jsonl->s, json_path.s);
    ck_assert_msg(json_len == jsonl_len && memcmp(got, want, json_len) == 0,
                  "encode_json's %zu bytes differ from jsonl's %zu", json_len, jsonl_len);
    keys = itest_read_lines(key_path.s);
    ck_assert_uint_eq(keys.count, events->count);
    for (size_t i = 0; i < keys.count; i++) {
        char expected[64];
        const char *id = itest_value(&events->event[i], "id");

        ck_assert_ptr_nonnull(id);
        snprintf(expected, sizeof expected, "{\"id\":\"%s\"}", id);
        ck_assert_msg(strcmp(keys.line[i], expected) == 0, "key %zu is %s, expected %s", i,
                      keys.line[i], expected);
    }
    itest_lines_free(&keys);
    free(got);
    free(want);
}

/* Each transaction's events: same commit LSN inside its commit record's bounds, seq 0.., xid. */
static void assert_transactions(const itest_events *events, const written_txn *txns, size_t ntxns)
{
    size_t e = 0;

    for (size_t t = 0; t < ntxns; t++) {
        for (int s = 0; s < txns[t].rows; s++, e++) {
            const itest_event *ev;
            ck_assert_msg(e < events->count, "only %zu events delivered", events->count);
            ev = &events->event[e];
            ck_assert_msg(ev->seq == s, "event %zu has seq %ld, expected %d", e, ev->seq, s);
            ck_assert_msg(ev->xid == txns[t].xid, "event %zu has xid %lld, expected %lld", e,
                          ev->xid, txns[t].xid);
            ck_assert_msg(ev->lsn >= txns[t].before && ev->lsn < txns[t].after,
                          "event %zu has lsn %s outside its commit record's bounds [%s, %s)", e,
                          itest_lsn_text(ev->lsn), itest_lsn_text(txns[t].before),
                          itest_lsn_text(txns[t].after));
            ck_assert_msg(s == 0 || ev->lsn == events->event[e - 1].lsn,
                          "events of one transaction carry different lsns");
        }
    }
    ck_assert_msg(e == events->count, "%zu events delivered, expected %zu", events->count, e);
}

/* Sets the hostile defaults on the test's own database (dropped with it by itest_end) and checks
 * that a new session without options of its own gets them. */
static void set_hostile_defaults(const itest_ctx *ctx)
{
    PGconn *fresh;

    for (size_t i = 0; i < NHOSTILE; i++)
        itest_exec(ctx->conn, "ALTER DATABASE %s SET %s = '%s'", ctx->db, hostile_defaults[i][0],
                   hostile_defaults[i][1]);
    fresh = itest_connect(ctx->db, NULL);
    for (size_t i = 0; i < NHOSTILE; i++) {
        char *value = itest_query(fresh, "SELECT current_setting('%s')", hostile_defaults[i][0]);

        ck_assert_msg(value != NULL && strcmp(value, hostile_defaults[i][1]) == 0,
                      "the database default %s is %s, not %s", hostile_defaults[i][0],
                      value ? value : "NULL", hostile_defaults[i][1]);
        free(value);
    }
    PQfinish(fresh);
}

START_TEST(test_every_type_byte_for_byte)
{
    itest_ctx ctx;
    itest_host host;
    written_txn txns[NROWS / ROWS_PER_TXN + 2];
    size_t ntxns = 0, got_len, want_len;
    itest_path conf, out;
    itest_events events;
    char *column_names, *got, *want, *endpos;

    itest_begin(&ctx, "types");
    set_hostile_defaults(&ctx);
    create_schema(ctx.conn);
    conf = itest_config(&ctx, "types.cfg", "\"public.t\"", 1000,
                        "{ name = \"all\"; path = \"%s\"; settings = { path = \"out.jsonl\"; }; },"
                        "{ name = \"echo\"; path = \"%s\";"
                        "  settings = { json_path = \"echo.json\"; key_path = \"echo.key\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s,
                        itest_root_file("build/tests/fixtures/encoder_echo.so").s);
    ck_assert_int_eq(itest_host_run(&ctx, &host, "--create-slot", "-c", conf.s), 0);

    for (int id = 1; id <= NROWS; id += ROWS_PER_TXN) {
        int rows = 0;
        begin_txn(ctx.conn);
        for (; rows < ROWS_PER_TXN && id + rows <= NROWS; rows++)
            insert_row(ctx.conn, id + rows);
        txns[ntxns++] = commit_txn(ctx.conn, rows);
    }
    txns[ntxns++] = write_big_row(ctx.conn);
    endpos = itest_lsn_text(itest_current_lsn(ctx.conn));

    ck_assert_int_eq(itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", endpos), 0);
    out = itest_file(&ctx, "out.jsonl");
    events = itest_read_events(out.s);
    assert_transactions(&events, txns, ntxns);
    assert_encoders_agree(&ctx, &out, &events);

    column_names = itest_query(ctx.conn, "SELECT string_agg(attname, ',' ORDER BY attnum) FROM "
                                         "pg_attribute WHERE attrelid = 't'::regclass AND "
                                         "attnum > 0 AND NOT attisdropped");
    got = events_as_copy(&events, column_names, &got_len);
    want = copy_out(&ctx, &want_len);
    ck_assert_msg(want_len > 2 * 1024 * 1024, "the big row is missing from COPY");
    assert_same_copy(got, got_len, want, want_len);

    free(got);
    free(want);
    free(column_names);
    free(endpos);
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("types");
    TCase *tc = itest_tcase(suite, "types");

    tcase_add_test(tc, test_every_type_byte_for_byte);
    return run_suite(suite) == 0 ? 0 : 1;
}
