/*
 * decoder: pgoutput protocol version 1 (no streaming, so no xid fields inside transactions).
 *
 * A cursor walks the buffer; every read checks the bytes that remain first and, when they do not
 * suffice, writes one line naming the message, the offset and the field, then fails. Nothing is
 * allocated: strings and values point into the caller's buffer, column arrays into the decoder.
 */
#include "decoder.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct cursor {
    wn_decoder *decoder;
    const unsigned char *data;
    size_t length; /* bytes in data */
    size_t pos;    /* offset of the next unread byte */
    const char *kind_name;
} cursor;

/* Per column of a Relation message: flags, at least a NUL, type oid, typmod. */
#define RELATION_COLUMN_MIN_BYTES 10

__attribute__((format(printf, 3, 4))) static int fail_at(cursor *c, size_t offset,
                                                         const char *format, ...)
{
    char *error = c->decoder->error;
    size_t size = sizeof c->decoder->error;
    int prefix = snprintf(error, size, "%s message: offset %zu: ", c->kind_name, offset);
    va_list args;

    if (prefix < 0 || (size_t)prefix >= size)
        return -1;
    va_start(args, format);
    vsnprintf(error + prefix, size - (size_t)prefix, format, args);
    va_end(args);
    return -1;
}

static size_t remaining(const cursor *c)
{
    return c->length - c->pos;
}

static int need(cursor *c, size_t bytes, const char *what)
{
    if (remaining(c) >= bytes)
        return 0;
    return fail_at(c, c->pos, "%s needs %zu bytes but %zu remain", what, bytes, remaining(c));
}

static uint64_t load_be(const unsigned char *p, size_t bytes)
{
    uint64_t value = 0;

    for (size_t i = 0; i < bytes; i++)
        value = (value << 8) | p[i];
    return value;
}

static int read_u8(cursor *c, const char *what, uint8_t *out)
{
    if (need(c, 1, what) < 0)
        return -1;
    *out = c->data[c->pos++];
    return 0;
}

static int read_u16(cursor *c, const char *what, uint16_t *out)
{
    if (need(c, 2, what) < 0)
        return -1;
    *out = (uint16_t)load_be(c->data + c->pos, 2);
    c->pos += 2;
    return 0;
}

static int read_u32(cursor *c, const char *what, uint32_t *out)
{
    if (need(c, 4, what) < 0)
        return -1;
    *out = (uint32_t)load_be(c->data + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int read_i32(cursor *c, const char *what, int32_t *out)
{
    uint32_t raw;

    if (read_u32(c, what, &raw) < 0)
        return -1;
    /* Two's complement without relying on implementation-defined conversion. */
    *out = raw <= INT32_MAX ? (int32_t)raw : -(int32_t)(UINT32_MAX - raw) - 1;
    return 0;
}

static int read_u64(cursor *c, const char *what, uint64_t *out)
{
    if (need(c, 8, what) < 0)
        return -1;
    *out = load_be(c->data + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int read_i64(cursor *c, const char *what, int64_t *out)
{
    uint64_t raw;

    if (read_u64(c, what, &raw) < 0)
        return -1;
    *out = raw <= INT64_MAX ? (int64_t)raw : -(int64_t)(UINT64_MAX - raw) - 1;
    return 0;
}

/* A NUL-terminated string: the NUL must lie within the buffer. */
static int read_string(cursor *c, const char *what, const char **out)
{
    const unsigned char *start = c->data + c->pos;
    const unsigned char *nul = memchr(start, '\0', remaining(c));

    if (nul == NULL)
        return fail_at(c, c->pos, "%s is not NUL-terminated within the %zu bytes that remain", what,
                       remaining(c));
    *out = (const char *)start;
    c->pos += (size_t)(nul - start) + 1;
    return 0;
}

/* An int32 length followed by that many bytes. */
static int read_counted_bytes(cursor *c, const char *what, const char **out, uint32_t *length)
{
    size_t at = c->pos;
    int32_t declared;

    if (read_i32(c, what, &declared) < 0)
        return -1;
    if (declared < 0)
        return fail_at(c, at, "%s %" PRId32 " is negative", what, declared);
    if ((uint32_t)declared > remaining(c))
        return fail_at(c, at, "%s %" PRId32 " exceeds the %zu bytes that remain", what, declared,
                       remaining(c));
    *out = (const char *)(c->data + c->pos);
    *length = (uint32_t)declared;
    c->pos += (size_t)declared;
    return 0;
}

static int expect_byte(cursor *c, char expected, const char *what)
{
    size_t at = c->pos;
    uint8_t got;

    if (read_u8(c, what, &got) < 0)
        return -1;
    if (got != (uint8_t)expected)
        return fail_at(c, at, "expected %s '%c', got 0x%02x", what, expected, got);
    return 0;
}

static int read_datum(cursor *c, wn_datum *datum)
{
    size_t at = c->pos;
    uint8_t kind;

    if (read_u8(c, "column kind", &kind) < 0)
        return -1;
    datum->kind = (char)kind;
    datum->data = NULL;
    datum->length = 0;
    switch (kind) {
    case 'n':
    case 'u':
        return 0;
    case 't':
        return read_counted_bytes(c, "text value length", &datum->data, &datum->length);
    case 'b':
        return read_counted_bytes(c, "binary value length", &datum->data, &datum->length);
    default:
        return fail_at(c, at, "unknown column kind 0x%02x", kind);
    }
}

/* TupleData into columns (WN_MAX_COLUMNS entries). */
static int read_tuple(cursor *c, wn_datum *columns, wn_tuple *tuple)
{
    size_t at = c->pos;
    uint16_t ncolumns;

    if (read_u16(c, "tuple column count", &ncolumns) < 0)
        return -1;
    if (ncolumns > WN_MAX_COLUMNS)
        return fail_at(c, at, "tuple column count %u exceeds the maximum of %d", ncolumns,
                       WN_MAX_COLUMNS);
    /* Each column takes at least its kind byte. */
    if (ncolumns > remaining(c))
        return fail_at(c, at, "tuple column count %u exceeds the %zu bytes that remain", ncolumns,
                       remaining(c));
    for (uint16_t i = 0; i < ncolumns; i++) {
        if (read_datum(c, &columns[i]) < 0)
            return -1;
    }
    tuple->ncolumns = ncolumns;
    tuple->columns = columns;
    return 0;
}

static int decode_begin(cursor *c, wn_message *m)
{
    if (read_u64(c, "final LSN", &m->u.begin.final_lsn) < 0)
        return -1;
    if (read_i64(c, "commit time", &m->u.begin.commit_time) < 0)
        return -1;
    return read_u32(c, "xid", &m->u.begin.xid);
}

static int decode_commit(cursor *c, wn_message *m)
{
    if (read_u8(c, "flags", &m->u.commit.flags) < 0)
        return -1;
    if (read_u64(c, "commit LSN", &m->u.commit.commit_lsn) < 0)
        return -1;
    if (read_u64(c, "end LSN", &m->u.commit.end_lsn) < 0)
        return -1;
    return read_i64(c, "commit time", &m->u.commit.commit_time);
}

static int decode_origin(cursor *c, wn_message *m)
{
    if (read_u64(c, "commit LSN", &m->u.origin.commit_lsn) < 0)
        return -1;
    return read_string(c, "origin name", &m->u.origin.name);
}

static int read_relation_column(cursor *c, wn_relation_column *column)
{
    if (read_u8(c, "column flags", &column->flags) < 0)
        return -1;
    if (read_string(c, "column name", &column->name) < 0)
        return -1;
    if (read_u32(c, "column type OID", &column->type_oid) < 0)
        return -1;
    return read_i32(c, "column typmod", &column->typmod);
}

static bool known_replident(uint8_t replident)
{
    return replident == 'd' || replident == 'n' || replident == 'f' || replident == 'i';
}

static int decode_relation(cursor *c, wn_message *m)
{
    size_t at;
    uint16_t ncolumns;

    if (read_u32(c, "relation id", &m->u.relation.relid) < 0)
        return -1;
    if (read_string(c, "namespace", &m->u.relation.nspname) < 0)
        return -1;
    if (read_string(c, "relation name", &m->u.relation.relname) < 0)
        return -1;
    at = c->pos;
    if (read_u8(c, "replica identity", &m->u.relation.replident) < 0)
        return -1;
    if (!known_replident(m->u.relation.replident))
        return fail_at(c, at, "unknown replica identity 0x%02x", m->u.relation.replident);
    at = c->pos;
    if (read_u16(c, "column count", &ncolumns) < 0)
        return -1;
    if (ncolumns > WN_MAX_COLUMNS)
        return fail_at(c, at, "column count %u exceeds the maximum of %d", ncolumns,
                       WN_MAX_COLUMNS);
    if ((size_t)ncolumns * RELATION_COLUMN_MIN_BYTES > remaining(c))
        return fail_at(c, at, "column count %u exceeds the %zu bytes that remain", ncolumns,
                       remaining(c));
    for (uint16_t i = 0; i < ncolumns; i++) {
        if (read_relation_column(c, &c->decoder->relation_columns[i]) < 0)
            return -1;
    }
    m->u.relation.ncolumns = ncolumns;
    m->u.relation.columns = c->decoder->relation_columns;
    return 0;
}

static int decode_type(cursor *c, wn_message *m)
{
    if (read_u32(c, "type OID", &m->u.type.oid) < 0)
        return -1;
    if (read_string(c, "namespace", &m->u.type.nspname) < 0)
        return -1;
    return read_string(c, "type name", &m->u.type.typname);
}

static int decode_insert(cursor *c, wn_message *m)
{
    if (read_u32(c, "relation id", &m->u.insert.relid) < 0)
        return -1;
    if (expect_byte(c, 'N', "new tuple marker") < 0)
        return -1;
    return read_tuple(c, c->decoder->new_columns, &m->u.insert.new_tuple);
}

static int decode_update(cursor *c, wn_message *m)
{
    size_t at;
    uint8_t marker;

    if (read_u32(c, "relation id", &m->u.update.relid) < 0)
        return -1;
    at = c->pos;
    if (read_u8(c, "tuple marker", &marker) < 0)
        return -1;
    if (marker == 'K' || marker == 'O') {
        m->u.update.old_kind = (char)marker;
        if (read_tuple(c, c->decoder->old_columns, &m->u.update.old_tuple) < 0)
            return -1;
        at = c->pos;
        if (read_u8(c, "new tuple marker", &marker) < 0)
            return -1;
    }
    if (marker != 'N')
        return fail_at(c, at, "expected tuple marker 'K', 'O' or 'N', got 0x%02x", marker);
    return read_tuple(c, c->decoder->new_columns, &m->u.update.new_tuple);
}

static int decode_delete(cursor *c, wn_message *m)
{
    size_t at;
    uint8_t marker;

    if (read_u32(c, "relation id", &m->u.delete_.relid) < 0)
        return -1;
    at = c->pos;
    if (read_u8(c, "old tuple marker", &marker) < 0)
        return -1;
    if (marker != 'K' && marker != 'O')
        return fail_at(c, at, "expected old tuple marker 'K' or 'O', got 0x%02x", marker);
    m->u.delete_.old_kind = (char)marker;
    return read_tuple(c, c->decoder->old_columns, &m->u.delete_.old_tuple);
}

static int decode_truncate(cursor *c, wn_message *m)
{
    size_t at = c->pos;
    int32_t nrelids;

    if (read_i32(c, "relation count", &nrelids) < 0)
        return -1;
    if (nrelids < 0)
        return fail_at(c, at, "relation count %" PRId32 " is negative", nrelids);
    if (read_u8(c, "options", &m->u.truncate.options) < 0)
        return -1;
    /* Divide rather than multiply so a huge count cannot overflow. */
    if ((size_t)nrelids > remaining(c) / 4)
        return fail_at(c, at, "relation count %" PRId32 " needs %" PRIu64 " bytes but %zu remain",
                       nrelids, (uint64_t)nrelids * 4, remaining(c));
    m->u.truncate.nrelids = (uint32_t)nrelids;
    m->u.truncate.relids = c->data + c->pos;
    c->pos += (size_t)nrelids * 4;
    return 0;
}

static int decode_logical_message(cursor *c, wn_message *m)
{
    if (read_u8(c, "flags", &m->u.message.flags) < 0)
        return -1;
    if (read_u64(c, "LSN", &m->u.message.lsn) < 0)
        return -1;
    if (read_string(c, "prefix", &m->u.message.prefix) < 0)
        return -1;
    return read_counted_bytes(c, "content length", &m->u.message.content,
                              &m->u.message.content_length);
}

typedef int (*decode_fn)(cursor *c, wn_message *m);

static decode_fn decoder_for(char kind)
{
    switch (kind) {
    case 'B':
        return decode_begin;
    case 'C':
        return decode_commit;
    case 'O':
        return decode_origin;
    case 'R':
        return decode_relation;
    case 'Y':
        return decode_type;
    case 'I':
        return decode_insert;
    case 'U':
        return decode_update;
    case 'D':
        return decode_delete;
    case 'T':
        return decode_truncate;
    case 'M':
        return decode_logical_message;
    default:
        return NULL;
    }
}

int wn_decode(wn_decoder *decoder, const char *buffer, size_t length, wn_message *message)
{
    cursor c = {.decoder = decoder, .data = (const unsigned char *)buffer, .length = length};
    decode_fn decode;

    memset(message, 0, sizeof *message);
    decoder->error[0] = '\0';
    if (length == 0 || buffer == NULL) {
        snprintf(decoder->error, sizeof decoder->error, "empty message at offset 0");
        return -1;
    }
    message->kind = (char)c.data[0];
    decode = decoder_for(message->kind);
    if (decode == NULL) {
        snprintf(decoder->error, sizeof decoder->error, "unknown message type 0x%02x at offset 0",
                 c.data[0]);
        return -1;
    }
    c.kind_name = wn_message_kind_name(message->kind);
    c.pos = 1;
    if (decode(&c, message) < 0)
        return -1;
    if (c.pos != c.length)
        return fail_at(&c, c.pos, "%zu bytes of trailing data after a complete message",
                       remaining(&c));
    return 0;
}

uint32_t wn_truncate_relid(const wn_message *message, uint32_t index)
{
    return (uint32_t)load_be(message->u.truncate.relids + (size_t)index * 4, 4);
}

const char *wn_message_kind_name(char kind)
{
    switch (kind) {
    case 'B':
        return "Begin";
    case 'C':
        return "Commit";
    case 'O':
        return "Origin";
    case 'R':
        return "Relation";
    case 'Y':
        return "Type";
    case 'I':
        return "Insert";
    case 'U':
        return "Update";
    case 'D':
        return "Delete";
    case 'T':
        return "Truncate";
    case 'M':
        return "Message";
    default:
        return "unknown";
    }
}
