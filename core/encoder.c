/*
 * encoder: an event as its canonical JSON, the line the jsonl plugin writes (without the
 * newline), and its key columns as a JSON object. The one JSON encoder of the tree: the jsonl
 * plugin reaches it through walnotify_host.encode_json, the dead-letter writer directly.
 *
 * Most events are small rows of the same table in long runs, so what repeats is kept: the head
 * of a change's line (LSN, xid and commit time, which cost more to format than a small row) and
 * the escaped table and column names; plain bytes are copied in runs (see jsonbuf.c).
 */
#include "encoder.h"

#include <stdlib.h>
#include <string.h>

#include "jsonbuf.h"
#include "namecache.h"

/* The most a rendering may leave allocated after it: one huge value must not pin its memory
 * for the rest of the run. */
#define ENCODER_KEEP_CAP ((size_t)8 * 1024 * 1024)

/*
 * The part of a change's line that only changes with the transaction: `{"lsn":"X/Y","seq":`
 * then, after the event's seq, `,"xid":N,"commit_time":"T","table":`. Keyed by the event's own
 * values, so events of different transactions may alternate (they then cost a refresh each).
 */
typedef struct line_head {
    bool valid;          /* text matches the key below */
    uint64_t commit_lsn; /* the key: the event values the text was made from */
    uint32_t xid;
    int64_t commit_time;
    size_t seq_at; /* text[0, seq_at) comes before the seq, the rest after it */
    jsonbuf text;
} line_head;

/* `{"snapshot":"X/Y","ordinal":`, the same for every event of a snapshot. */
typedef struct snapshot_head {
    bool valid;   /* text matches lsn */
    uint64_t lsn; /* the key: the consistent point (event->commit_lsn) */
    jsonbuf text;
} snapshot_head;

struct wn_encoder {
    jsonbuf out;            /* the last rendering, NUL-terminated once done */
    line_head head;         /* the head of the last change's line */
    snapshot_head snapshot; /* the head of the last snapshot event's line */
    namecache table_name;   /* the last event's table, escaped */
    namecache column_names; /* the last new row's column names, escaped */
};

wn_encoder *wn_encoder_create(void)
{
    return calloc(1, sizeof(wn_encoder));
}

void wn_encoder_destroy(wn_encoder *encoder)
{
    if (encoder == NULL)
        return;
    jsonbuf_free(&encoder->out);
    jsonbuf_free(&encoder->head.text);
    jsonbuf_free(&encoder->snapshot.text);
    namecache_free(&encoder->table_name);
    namecache_free(&encoder->column_names);
    free(encoder);
}

/* ---- pieces ---------------------------------------------------------------------------------- */

/* `,"op":"NAME"`: the member after the table, whole. */
typedef struct op_text {
    const char *json;
    size_t length;
} op_text;

#define OP_TEXT(name)                                                                              \
    {                                                                                              \
        ",\"op\":\"" name "\"", sizeof(",\"op\":\"" name "\"") - 1                                 \
    }

/* The op member of a change; false for the other operations. */
static bool change_op(walnotify_op op, op_text *out)
{
    static const op_text op_insert = OP_TEXT("insert"), op_update = OP_TEXT("update"),
                         op_delete = OP_TEXT("delete"), op_truncate = OP_TEXT("truncate");
    switch (op) {
    case WALNOTIFY_OP_INSERT:
        *out = op_insert;
        return true;
    case WALNOTIFY_OP_UPDATE:
        *out = op_update;
        return true;
    case WALNOTIFY_OP_DELETE:
        *out = op_delete;
        return true;
    case WALNOTIFY_OP_TRUNCATE:
        *out = op_truncate;
        return true;
    case WALNOTIFY_OP_SNAPSHOT:
    case WALNOTIFY_OP_MESSAGE:
        return false;
    }
    return false;
}

static void put_cstring(jsonbuf *buf, const char *text)
{
    jsonbuf_string(buf, text != NULL ? text : "", text != NULL ? strlen(text) : 0);
}

/* A name as a JSON string, through `names` (the index-th of its list) when there is one. */
static void put_name(jsonbuf *buf, namecache *names, size_t index, const char *name)
{
    if (names != NULL && name != NULL)
        namecache_put(names, index, name, buf);
    else
        put_cstring(buf, name);
}

/* A column's value: its text as a JSON string, or null. */
static void put_value(jsonbuf *buf, const walnotify_column *col)
{
    if (col->kind != WALNOTIFY_VALUE_TEXT) {
        jsonbuf_put(buf, "null", 4);
        return;
    }
    jsonbuf_string(buf, col->value != NULL ? col->value : "", col->value != NULL ? col->length : 0);
}

/* `{...}` with every column that was sent (and, with keys_only, is part of the key); names
 * through `names` unless NULL. Returns whether some column was an unchanged TOAST value, so
 * that the common row needs no second pass for put_unchanged. The caller writes the member's
 * key (a literal, whose length folds away there). */
static bool put_row(jsonbuf *buf, namecache *names, const walnotify_column *cols, size_t ncols,
                    bool keys_only)
{
    bool first = true, unchanged = false;
    jsonbuf_put(buf, "{", 1);
    for (size_t i = 0; cols != NULL && i < ncols; i++) {
        if (cols[i].kind == WALNOTIFY_VALUE_UNCHANGED) {
            unchanged = true;
            continue;
        }
        if (keys_only && !cols[i].is_key)
            continue;
        if (!first)
            jsonbuf_put(buf, ",", 1);
        put_name(buf, names, i, cols[i].name);
        jsonbuf_put(buf, ":", 1);
        put_value(buf, &cols[i]);
        first = false;
    }
    jsonbuf_put(buf, "}", 1);
    return unchanged;
}

/* `,"unchanged":[...]` naming the columns whose unchanged TOAST value was not sent, if any. */
static void put_unchanged(jsonbuf *buf, const walnotify_column *cols, size_t ncols)
{
    bool first = true;
    for (size_t i = 0; cols != NULL && i < ncols; i++) {
        if (cols[i].kind != WALNOTIFY_VALUE_UNCHANGED)
            continue;
        jsonbuf_puts(buf, first ? ",\"unchanged\":[" : ",");
        put_cstring(buf, cols[i].name);
        first = false;
    }
    if (!first)
        jsonbuf_put(buf, "]", 1);
}

static void put_truncate_options(jsonbuf *buf, unsigned options)
{
    bool first = true;
    jsonbuf_puts(buf, ",\"options\":[");
    if (options & WALNOTIFY_TRUNCATE_CASCADE) {
        jsonbuf_puts(buf, "\"cascade\"");
        first = false;
    }
    if (options & WALNOTIFY_TRUNCATE_RESTART_IDENTITY)
        jsonbuf_puts(buf, first ? "\"restart_identity\"" : ",\"restart_identity\"");
    jsonbuf_put(buf, "]", 1);
}

/* `,"xid":N,"commit_time":"T"`. */
static void put_transaction(jsonbuf *buf, uint32_t xid, int64_t commit_time)
{
    jsonbuf_puts(buf, ",\"xid\":");
    jsonbuf_u64(buf, xid);
    jsonbuf_puts(buf, ",\"commit_time\":\"");
    jsonbuf_timestamp(buf, commit_time);
    jsonbuf_put(buf, "\"", 1);
}

/* The closing brace of a line, and the NUL after it that finish_output needs, in one append
 * (the literal's own NUL): the NUL is not counted in the line's length. */
static void close_line(jsonbuf *buf)
{
    jsonbuf_put(buf, "}", 2);
    if (!buf->failed)
        buf->len--;
}

/* ---- changes --------------------------------------------------------------------------------- */

/* Makes `head` hold the text for the event's transaction; false when out of memory. */
static bool refresh_head(line_head *head, const walnotify_event *ev)
{
    if (head->valid && head->commit_lsn == ev->commit_lsn && head->xid == ev->xid &&
        head->commit_time == ev->commit_time)
        return true;
    jsonbuf *text = &head->text;
    text->len = 0;
    jsonbuf_puts(text, "{\"lsn\":\"");
    jsonbuf_lsn(text, ev->commit_lsn);
    jsonbuf_puts(text, "\",\"seq\":");
    head->seq_at = text->len;
    put_transaction(text, ev->xid, ev->commit_time);
    jsonbuf_puts(text, ",\"table\":");
    if (text->failed) {
        text->failed = false;
        head->valid = false;
        return false;
    }
    head->commit_lsn = ev->commit_lsn;
    head->xid = ev->xid;
    head->commit_time = ev->commit_time;
    head->valid = true;
    return true;
}

/* An insert, update, delete or truncate: the line ABI 1.0's jsonl plugin wrote. */
static void put_change(wn_encoder *enc, const walnotify_event *ev, const op_text *op)
{
    jsonbuf *buf = &enc->out;
    if (!refresh_head(&enc->head, ev)) {
        buf->failed = true;
        return;
    }
    const jsonbuf *head = &enc->head.text;
    jsonbuf_put(buf, head->data, enc->head.seq_at);
    jsonbuf_u64(buf, ev->seq);
    jsonbuf_put(buf, head->data + enc->head.seq_at, head->len - enc->head.seq_at);
    put_name(buf, &enc->table_name, 0, ev->table);
    jsonbuf_put(buf, op->json, op->length);

    if (ev->op == WALNOTIFY_OP_INSERT || ev->op == WALNOTIFY_OP_UPDATE) {
        jsonbuf_puts(buf, ",\"values\":");
        if (put_row(buf, &enc->column_names, ev->columns, ev->ncolumns, false))
            put_unchanged(buf, ev->columns, ev->ncolumns);
    }
    if ((ev->op == WALNOTIFY_OP_UPDATE || ev->op == WALNOTIFY_OP_DELETE) &&
        ev->old_kind != WALNOTIFY_OLD_NONE) {
        jsonbuf_puts(buf, ",\"old\":");
        put_row(buf, NULL, ev->old_columns, ev->nold_columns, ev->old_kind == WALNOTIFY_OLD_KEY);
    }
    if (ev->op == WALNOTIFY_OP_TRUNCATE)
        put_truncate_options(buf, ev->truncate_options);
    close_line(buf);
}

/* ---- ABI 1.1 events -------------------------------------------------------------------------- */

/*
 * `{"lsn":"X/Y","ordinal":N[,"xid":N,"commit_time":"T"],"op":"message","transactional":B,
 * "prefix":"P","content":"C"}`: the content as a string when it is text (well-formed UTF-8
 * without NUL), else as `"content_hex":"..."`, so that no byte of a binary payload is lost.
 */
static void put_message(jsonbuf *buf, const walnotify_event *ev)
{
    const char *content = ev->message_content != NULL ? ev->message_content : "";
    size_t length = ev->message_content != NULL ? ev->message_length : 0;

    jsonbuf_puts(buf, "{\"lsn\":\"");
    jsonbuf_lsn(buf, ev->commit_lsn);
    jsonbuf_puts(buf, "\",\"ordinal\":");
    jsonbuf_u64(buf, ev->id.ordinal);
    if (ev->transactional)
        put_transaction(buf, ev->xid, ev->commit_time);
    jsonbuf_puts(buf, ev->transactional ? ",\"op\":\"message\",\"transactional\":true"
                                        : ",\"op\":\"message\",\"transactional\":false");
    jsonbuf_puts(buf, ",\"prefix\":");
    put_cstring(buf, ev->message_prefix);
    if (jsonbuf_is_text(content, length)) {
        jsonbuf_puts(buf, ",\"content\":");
        jsonbuf_string(buf, content, length);
    } else {
        jsonbuf_puts(buf, ",\"content_hex\":\"");
        jsonbuf_hex(buf, content, length);
        jsonbuf_put(buf, "\"", 1);
    }
    close_line(buf);
}

/*
 * `{"snapshot":"X/Y","ordinal":N,` then `"table":"T","op":"snapshot","values":{...}}` for a
 * row, `"op":"snapshot","marker":"begin"}` or `"op":"snapshot","marker":"end","rows":R}`.
 */
static bool put_snapshot(wn_encoder *enc, const walnotify_event *ev)
{
    jsonbuf *buf = &enc->out;
    snapshot_head *head = &enc->snapshot;
    if (!head->valid || head->lsn != ev->commit_lsn) {
        head->text.len = 0;
        jsonbuf_puts(&head->text, "{\"snapshot\":\"");
        jsonbuf_lsn(&head->text, ev->commit_lsn);
        jsonbuf_puts(&head->text, "\",\"ordinal\":");
        head->valid = !head->text.failed;
        head->lsn = ev->commit_lsn;
        if (head->text.failed) {
            head->text.failed = false;
            buf->failed = true;
            return true;
        }
    }
    jsonbuf_put(buf, head->text.data, head->text.len);
    jsonbuf_u64(buf, ev->id.ordinal);
    switch (ev->snapshot_marker) {
    case WALNOTIFY_SNAPSHOT_ROW:
        jsonbuf_puts(buf, ",\"table\":");
        put_name(buf, &enc->table_name, 0, ev->table);
        jsonbuf_puts(buf, ",\"op\":\"snapshot\",\"values\":");
        if (put_row(buf, &enc->column_names, ev->columns, ev->ncolumns, false))
            put_unchanged(buf, ev->columns, ev->ncolumns);
        close_line(buf);
        return true;
    case WALNOTIFY_SNAPSHOT_BEGIN:
        jsonbuf_puts(buf, ",\"op\":\"snapshot\",\"marker\":\"begin\"");
        close_line(buf);
        return true;
    case WALNOTIFY_SNAPSHOT_END:
        jsonbuf_puts(buf, ",\"op\":\"snapshot\",\"marker\":\"end\",\"rows\":");
        jsonbuf_u64(buf, ev->snapshot_rows);
        close_line(buf);
        return true;
    default:
        return false;
    }
}

/* ---- public ---------------------------------------------------------------------------------- */

/* Empties the output for a new rendering, letting go of what a huge one left. */
static void start_output(wn_encoder *enc)
{
    if (enc->out.cap > ENCODER_KEEP_CAP)
        jsonbuf_free(&enc->out);
    enc->out.len = 0;
    enc->out.failed = false;
}

/* Hands over the output, which close_line NUL-terminated; NULL when some append failed. */
static const char *finish_output(wn_encoder *enc, size_t *length)
{
    if (enc->out.failed) {
        enc->out.len = 0;
        enc->out.failed = false;
        return NULL;
    }
    if (length != NULL)
        *length = enc->out.len;
    return enc->out.data;
}

/* Whether the event carries the 1.1 members a snapshot or message line shows. */
static bool has_1_1_members(const walnotify_event *ev)
{
    return WALNOTIFY_HAS(walnotify_event, ev, snapshot_rows);
}

const char *wn_encoder_event(wn_encoder *encoder, const walnotify_event *event, size_t *length)
{
    op_text op;

    if (encoder == NULL || event == NULL)
        return NULL;
    start_output(encoder);
    if (change_op(event->op, &op)) {
        put_change(encoder, event, &op);
    } else if (event->op == WALNOTIFY_OP_MESSAGE && has_1_1_members(event)) {
        put_message(&encoder->out, event);
    } else if (event->op == WALNOTIFY_OP_SNAPSHOT && has_1_1_members(event)) {
        if (!put_snapshot(encoder, event))
            return NULL;
    } else {
        return NULL;
    }
    return finish_output(encoder, length);
}

/* ---- keys ------------------------------------------------------------------------------------ */

/* The row a key is read from, or NULL when the event has none. */
static const walnotify_column *key_row(const walnotify_event *ev, size_t *ncols)
{
    switch (ev->op) {
    case WALNOTIFY_OP_INSERT:
    case WALNOTIFY_OP_UPDATE:
        *ncols = ev->ncolumns;
        return ev->columns;
    case WALNOTIFY_OP_SNAPSHOT:
        if (!has_1_1_members(ev) || ev->snapshot_marker != WALNOTIFY_SNAPSHOT_ROW)
            return NULL;
        *ncols = ev->ncolumns;
        return ev->columns;
    case WALNOTIFY_OP_DELETE:
        if (ev->old_kind == WALNOTIFY_OLD_NONE)
            return NULL;
        *ncols = ev->nold_columns;
        return ev->old_columns;
    case WALNOTIFY_OP_TRUNCATE:
    case WALNOTIFY_OP_MESSAGE:
        return NULL;
    }
    return NULL;
}

/* `"name":value` of one key column, after a comma unless it is the first. */
static void put_key_member(jsonbuf *buf, const walnotify_column *col, bool first)
{
    if (!first)
        jsonbuf_put(buf, ",", 1);
    put_cstring(buf, col->name);
    jsonbuf_put(buf, ":", 1);
    put_value(buf, col);
}

/* The event's column named `name`; the one at `hint` first, since a table's columns and an
 * event's usually come in the same order. NULL when there is none. */
static const walnotify_column *find_column(const walnotify_column *cols, size_t ncols, size_t hint,
                                           const char *name)
{
    if (hint < ncols && cols[hint].name != NULL && strcmp(cols[hint].name, name) == 0)
        return &cols[hint];
    for (size_t i = 0; i < ncols; i++) {
        if (cols[i].name != NULL && strcmp(cols[i].name, name) == 0)
            return &cols[i];
    }
    return NULL;
}

/* The table's key columns, in key order; false when the event lacks one or holds it UNCHANGED. */
static bool put_table_key(jsonbuf *buf, const walnotify_table *table, const walnotify_column *cols,
                          size_t ncols)
{
    if (table->key_columns == NULL || table->nkey_columns == 0 || table->columns == NULL)
        return false;
    for (size_t k = 0; k < table->nkey_columns; k++) {
        size_t index = table->key_columns[k];
        if (index >= table->ncolumns || table->columns[index].name == NULL)
            return false;
        const walnotify_column *col = find_column(cols, ncols, index, table->columns[index].name);
        if (col == NULL || col->kind == WALNOTIFY_VALUE_UNCHANGED)
            return false;
        put_key_member(buf, col, k == 0);
    }
    return true;
}

/* The columns marked is_key, in column order; false when there is none or one is UNCHANGED. */
static bool put_marked_key(jsonbuf *buf, const walnotify_column *cols, size_t ncols)
{
    bool first = true;
    for (size_t i = 0; i < ncols; i++) {
        if (!cols[i].is_key)
            continue;
        if (cols[i].kind == WALNOTIFY_VALUE_UNCHANGED)
            return false;
        put_key_member(buf, &cols[i], first);
        first = false;
    }
    return !first;
}

const char *wn_encoder_key(wn_encoder *encoder, const walnotify_event *event,
                           const walnotify_table *table, size_t *length)
{
    size_t ncols = 0;
    const walnotify_column *cols;
    bool has_key;

    if (encoder == NULL || event == NULL)
        return NULL;
    cols = key_row(event, &ncols);
    if (cols == NULL)
        return NULL;
    start_output(encoder);
    jsonbuf_put(&encoder->out, "{", 1);
    if (table != NULL)
        has_key = put_table_key(&encoder->out, table, cols, ncols);
    else
        has_key = put_marked_key(&encoder->out, cols, ncols);
    if (!has_key) {
        encoder->out.len = 0;
        return NULL;
    }
    close_line(&encoder->out);
    return finish_output(encoder, length);
}
