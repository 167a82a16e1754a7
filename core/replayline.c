/*
 * replayline: a line the jsonl plugin or a dead-letter file holds, back to an event. The keys
 * are the encoder's (core/encoder.c): lsn, seq, xid, commit_time, table, op, values, unchanged,
 * old, options; a dead-letter line adds plugin and error, which are not part of the event.
 * Messages and snapshot rows are not read back: their lines are refused.
 */
#include "replayline.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lsn.h"

typedef struct op_name {
    const char *name;
    walnotify_op op;
} op_name;

static const op_name op_names[] = {{"insert", WALNOTIFY_OP_INSERT},
                                   {"update", WALNOTIFY_OP_UPDATE},
                                   {"delete", WALNOTIFY_OP_DELETE},
                                   {"truncate", WALNOTIFY_OP_TRUNCATE},
                                   {NULL, 0}};

/* The keys a line may hold; any other is refused. */
static const char *const known_keys[] = {"lsn",    "seq",    "xid",       "commit_time", "table",
                                         "op",     "values", "unchanged", "old",         "options",
                                         "plugin", "error",  NULL};

__attribute__((format(printf, 3, 4))) static int bad(char *err, size_t errlen, const char *format,
                                                     ...)
{
    va_list args;

    va_start(args, format);
    vsnprintf(err, errlen, format, args);
    va_end(args);
    return -1;
}

static const wn_json *string_member(const wn_json_doc *doc, const char *key)
{
    const wn_json *v = wn_json_member(doc, 0, key);

    return v != NULL && v->kind == WN_JSON_STRING ? v : NULL;
}

/* An unsigned integer member of at most max. */
static bool integer_member(const wn_json_doc *doc, const char *key, uint64_t max, uint64_t *out)
{
    const wn_json *v = wn_json_member(doc, 0, key);
    char text[32], *end;

    if (v == NULL || v->kind != WN_JSON_NUMBER || v->length == 0 || v->length >= sizeof text ||
        v->text[0] == '-')
        return false;
    memcpy(text, v->text, v->length);
    text[v->length] = '\0';
    *out = strtoull(text, &end, 10);
    return *end == '\0' && *out <= max;
}

/* "2026-11-25T11:00:00.123456Z" as microseconds since 1970-01-01 00:00:00 UTC. */
static bool parse_time(const char *text, int64_t *out)
{
    struct tm tm = {0};
    unsigned micros = 0;
    int used = 0;
    time_t seconds;

    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%6u%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &micros, &used) != 7 ||
        used != 26 || strcmp(text + used, "Z") != 0)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    seconds = timegm(&tm);
    *out = (int64_t)seconds * 1000000 + micros;
    return true;
}

static long find_table(const wn_source_config *source, const char *table)
{
    for (size_t t = 0; t < source->ntables; t++) {
        if (strcmp(source->tables[t].qualified, table) == 0)
            return (long)t;
    }
    return -1;
}

static int check_keys(const wn_json_doc *doc, char *err, size_t errlen)
{
    for (const wn_json *m = wn_json_first(doc, &doc->nodes[0]); m != NULL;
         m = wn_json_next(doc, m)) {
        size_t k = 0;

        while (known_keys[k] != NULL && strcmp(known_keys[k], m->key) != 0)
            k++;
        if (known_keys[k] == NULL)
            return bad(err, errlen, "unknown key \"%s\"", m->key);
    }
    return 0;
}

/* The row object `key` as columns: text or NULL values. */
static int read_row(const wn_json_doc *doc, const char *key, walnotify_column *columns,
                    size_t *ncolumns, char *err, size_t errlen)
{
    const wn_json *row = wn_json_member(doc, 0, key);

    *ncolumns = 0;
    if (row == NULL)
        return 0;
    if (row->kind != WN_JSON_OBJECT)
        return bad(err, errlen, "\"%s\" is not an object", key);
    for (const wn_json *v = wn_json_first(doc, row); v != NULL; v = wn_json_next(doc, v)) {
        walnotify_column *c = &columns[*ncolumns];

        if (*ncolumns >= WN_REPLAY_COLUMNS_MAX)
            return bad(err, errlen, "\"%s\" holds more columns than a table may", key);
        if (v->kind != WN_JSON_STRING && v->kind != WN_JSON_NULL)
            return bad(err, errlen, "column \"%s\" is neither a string nor null", v->key);
        *c = (walnotify_column){.name = v->key, .type_oid = 0, .typmod = -1, .is_key = false};
        c->kind = v->kind == WN_JSON_NULL ? WALNOTIFY_VALUE_NULL : WALNOTIFY_VALUE_TEXT;
        c->value = v->kind == WN_JSON_NULL ? NULL : v->text;
        c->length = v->kind == WN_JSON_NULL ? 0 : v->length;
        (*ncolumns)++;
    }
    return 0;
}

/* An update's "unchanged": columns whose unchanged TOAST value was not sent, after the others. */
static int read_unchanged(const wn_json_doc *doc, wn_replay_line *out, char *err, size_t errlen)
{
    const wn_json *list = wn_json_member(doc, 0, "unchanged");

    if (list == NULL)
        return 0;
    if (list->kind != WN_JSON_ARRAY || out->event.op != WALNOTIFY_OP_UPDATE)
        return bad(err, errlen, "%s", "\"unchanged\" is only a list of names, in an update");
    for (const wn_json *v = wn_json_first(doc, list); v != NULL; v = wn_json_next(doc, v)) {
        if (v->kind != WN_JSON_STRING || out->event.ncolumns >= WN_REPLAY_COLUMNS_MAX)
            return bad(err, errlen, "%s", "\"unchanged\" holds something other than names");
        out->columns[out->event.ncolumns++] =
            (walnotify_column){.name = v->text, .typmod = -1, .kind = WALNOTIFY_VALUE_UNCHANGED};
    }
    return 0;
}

static int read_truncate_options(const wn_json_doc *doc, wn_replay_line *out, char *err,
                                 size_t errlen)
{
    const wn_json *list = wn_json_member(doc, 0, "options");

    if (list == NULL)
        return out->event.op == WALNOTIFY_OP_TRUNCATE
                   ? bad(err, errlen, "%s", "a truncate without \"options\"")
                   : 0;
    if (list->kind != WN_JSON_ARRAY || out->event.op != WALNOTIFY_OP_TRUNCATE)
        return bad(err, errlen, "%s", "\"options\" is only a list, in a truncate");
    for (const wn_json *v = wn_json_first(doc, list); v != NULL; v = wn_json_next(doc, v)) {
        if (v->kind == WN_JSON_STRING && strcmp(v->text, "cascade") == 0)
            out->event.truncate_options |= WALNOTIFY_TRUNCATE_CASCADE;
        else if (v->kind == WN_JSON_STRING && strcmp(v->text, "restart_identity") == 0)
            out->event.truncate_options |= WALNOTIFY_TRUNCATE_RESTART_IDENTITY;
        else
            return bad(err, errlen, "%s",
                       "\"options\" holds something other than cascade or "
                       "restart_identity");
    }
    return 0;
}

static int read_op(const wn_json_doc *doc, walnotify_op *op, char *err, size_t errlen)
{
    const wn_json *v = string_member(doc, "op");

    if (v == NULL)
        return bad(err, errlen, "%s", "no \"op\"");
    for (const op_name *o = op_names; o->name != NULL; o++) {
        if (strcmp(o->name, v->text) == 0) {
            *op = o->op;
            return 0;
        }
    }
    return bad(err, errlen,
               "op \"%s\" cannot be replayed (insert, update, delete and truncate can)", v->text);
}

/* lsn, seq, xid, commit_time and table: what every change line holds. */
static int read_position(const wn_source_config *source, const wn_json_doc *doc,
                         wn_replay_line *out, char *err, size_t errlen)
{
    walnotify_event *ev = &out->event;
    const wn_json *lsn = string_member(doc, "lsn"), *time = string_member(doc, "commit_time");
    const wn_json *table = string_member(doc, "table");
    uint64_t seq, xid;

    if (lsn == NULL || !wn_lsn_parse(lsn->text, &ev->commit_lsn) || ev->commit_lsn == 0)
        return bad(err, errlen, "%s", "no \"lsn\" like \"0/1A2B3C8\"");
    if (!integer_member(doc, "seq", UINT32_MAX, &seq))
        return bad(err, errlen, "%s", "no \"seq\" (0 to 4294967295)");
    if (!integer_member(doc, "xid", UINT32_MAX, &xid))
        return bad(err, errlen, "%s", "no \"xid\" (0 to 4294967295)");
    if (time == NULL || !parse_time(time->text, &ev->commit_time))
        return bad(err, errlen, "%s", "no \"commit_time\" like \"2026-11-25T11:00:00.123456Z\"");
    if (table == NULL)
        return bad(err, errlen, "%s", "no \"table\"");
    out->table_index = find_table(source, table->text);
    if (out->table_index < 0)
        return bad(err, errlen, "table \"%s\" is not one of source.tables", table->text);
    ev->seq = (uint32_t)seq;
    ev->xid = (uint32_t)xid;
    ev->table = source->tables[out->table_index].qualified;
    ev->schema = source->tables[out->table_index].schema;
    ev->name = source->tables[out->table_index].name;
    /* A change's identity, as the stream gave it (ABI 1.1). */
    ev->id = (walnotify_id){.position = ev->commit_lsn, .ordinal = (seq + 1) << 32};
    return 0;
}

static int read_rows(const wn_json_doc *doc, wn_replay_line *out, char *err, size_t errlen)
{
    walnotify_event *ev = &out->event;
    bool has_values = wn_json_member(doc, 0, "values") != NULL;
    bool has_old = wn_json_member(doc, 0, "old") != NULL;

    if ((ev->op == WALNOTIFY_OP_INSERT || ev->op == WALNOTIFY_OP_UPDATE) != has_values)
        return bad(err, errlen, "%s",
                   has_values ? "\"values\" in a delete or truncate" : "no \"values\"");
    if (has_old && ev->op != WALNOTIFY_OP_UPDATE && ev->op != WALNOTIFY_OP_DELETE)
        return bad(err, errlen, "%s", "\"old\" in an insert or truncate");
    if (read_row(doc, "values", out->columns, &ev->ncolumns, err, errlen) != 0 ||
        read_unchanged(doc, out, err, errlen) != 0 ||
        read_row(doc, "old", out->old_columns, &ev->nold_columns, err, errlen) != 0)
        return -1;
    ev->columns = has_values ? out->columns : NULL;
    ev->old_kind = has_old ? WALNOTIFY_OLD_ROW : WALNOTIFY_OLD_NONE;
    ev->old_columns = has_old ? out->old_columns : NULL;
    return read_truncate_options(doc, out, err, errlen);
}

int wn_replay_line_read(const wn_source_config *source, char *line, wn_replay_line *out, char *err,
                        size_t errlen)
{
    char why[256];

    memset(&out->event, 0, sizeof out->event);
    out->event.size = sizeof out->event;
    out->event.replay = true;
    if (wn_json_parse(line, &out->doc, why, sizeof why) != 0)
        return bad(err, errlen, "not JSON: %s", why);
    if (out->doc.nodes[0].kind != WN_JSON_OBJECT)
        return bad(err, errlen, "%s", "not a JSON object");
    /* The operation first: a message's or snapshot's line says so rather than its keys. */
    if (read_op(&out->doc, &out->event.op, err, errlen) != 0 ||
        check_keys(&out->doc, err, errlen) != 0 ||
        read_position(source, &out->doc, out, err, errlen) != 0)
        return -1;
    return read_rows(&out->doc, out, err, errlen);
}
