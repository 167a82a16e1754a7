/*
 * fuzz_decoder: the pgoutput decoder and the relation cache under libFuzzer.
 *
 * Each input is the bytes of one XLogData payload. The decoder must either refuse it with a
 * one-line error or return a message whose every pointer lies inside the input; everything it
 * returns is read in full, so AddressSanitizer sees any pointer that strays. A Relation message
 * is also stored in a fresh relation cache under several ids (replacing and growing the table)
 * and read back, so the cache's copies are checked against the message.
 *
 * A broken invariant aborts, which libFuzzer reports as a crash with its reproducer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "relcache.h"

/* Enough ids to make the cache grow past its first table at least once. */
#define RELCACHE_COPIES 80

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input's bounds, for checking that every result points inside it. */
typedef struct input {
    const char *begin;
    const char *end;
} input;

/* Summing every byte read keeps the reads from being optimised away. */
static volatile unsigned sink;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_decoder: invariant broken: %s\n", what);
    abort();
}

static void touch(const char *bytes, size_t length)
{
    unsigned sum = 0;

    for (size_t i = 0; i < length; i++)
        sum += (unsigned char)bytes[i];
    sink += sum;
}

static void check_range(const input *in, const char *bytes, size_t length, const char *what)
{
    if (bytes < in->begin || bytes > in->end || length > (size_t)(in->end - bytes))
        fail(what);
    touch(bytes, length);
}

/* A string from the wire: NUL-terminated inside the input. */
static void check_string(const input *in, const char *s, const char *what)
{
    if (s == NULL || s < in->begin || s >= in->end)
        fail(what);
    if (memchr(s, '\0', (size_t)(in->end - s)) == NULL)
        fail(what);
    touch(s, strlen(s));
}

static void check_tuple(const input *in, const wn_tuple *tuple)
{
    if (tuple->ncolumns > WN_MAX_COLUMNS)
        fail("tuple column count above WN_MAX_COLUMNS");
    if (tuple->ncolumns > 0 && tuple->columns == NULL)
        fail("tuple with columns but no column array");
    for (uint16_t i = 0; i < tuple->ncolumns; i++) {
        const wn_datum *d = &tuple->columns[i];

        switch (d->kind) {
        case 'n':
        case 'u':
            if (d->data != NULL || d->length != 0)
                fail("NULL or unchanged column with data");
            break;
        case 't':
        case 'b':
            if (d->length > 0 || d->data != NULL)
                check_range(in, d->data, d->length, "column value outside the input");
            break;
        default:
            fail("column of unknown kind accepted");
        }
    }
}

static void check_relation_entry(const wn_relation *entry, const wn_message *m, uint32_t relid)
{
    const char *nsp = m->u.relation.nspname;
    const char *schema = nsp[0] == '\0' ? "pg_catalog" : nsp;
    size_t schema_length = strlen(schema);

    if (entry == NULL || entry->relid != relid)
        fail("relation cache lost an entry");
    if (strcmp(entry->schema, schema) != 0 || strcmp(entry->name, m->u.relation.relname) != 0)
        fail("relation cache entry names differ from the message");
    if (strncmp(entry->qualified, schema, schema_length) != 0 ||
        entry->qualified[schema_length] != '.' ||
        strcmp(entry->qualified + schema_length + 1, entry->name) != 0)
        fail("relation cache qualified name is not schema.name");
    if (entry->replident != (char)m->u.relation.replident ||
        entry->ncolumns != m->u.relation.ncolumns)
        fail("relation cache entry differs from the message");
    for (uint16_t i = 0; i < entry->ncolumns; i++) {
        const wn_relation_column *want = &m->u.relation.columns[i];
        const wn_rel_column *got = &entry->columns[i];

        if (strcmp(got->name, want->name) != 0 || got->type_oid != want->type_oid ||
            got->typmod != want->typmod || got->is_key != ((want->flags & 1) != 0))
            fail("relation cache column differs from the message");
    }
}

/* Stores the relation under RELCACHE_COPIES ids, twice each (the second replaces), and reads
 * every entry back; then looks up an id that was never stored. */
static void check_relcache(const wn_message *m)
{
    wn_relcache *cache = wn_relcache_create();
    wn_message copy = *m;

    if (cache == NULL)
        return;
    for (int round = 0; round < 2; round++) {
        for (uint32_t k = 0; k < RELCACHE_COPIES; k++) {
            copy.u.relation.relid = m->u.relation.relid + k * 7919u;
            if (wn_relcache_put(cache, &copy) == NULL)
                goto destroy_cache;
        }
    }
    for (uint32_t k = 0; k < RELCACHE_COPIES; k++) {
        uint32_t relid = m->u.relation.relid + k * 7919u;

        check_relation_entry(wn_relcache_get(cache, relid), m, relid);
    }
    if (wn_relcache_get(cache, m->u.relation.relid + 1u) != NULL)
        fail("relation cache found an id never stored");

destroy_cache:
    wn_relcache_destroy(cache);
}

static void check_relation(const input *in, const wn_message *m)
{
    check_string(in, m->u.relation.nspname, "relation namespace");
    check_string(in, m->u.relation.relname, "relation name");
    if (m->u.relation.ncolumns > WN_MAX_COLUMNS)
        fail("relation column count above WN_MAX_COLUMNS");
    for (uint16_t i = 0; i < m->u.relation.ncolumns; i++)
        check_string(in, m->u.relation.columns[i].name, "relation column name");
    check_relcache(m);
}

static void check_message(const input *in, const wn_message *m)
{
    switch (m->kind) {
    case 'B':
    case 'C':
        break;
    case 'O':
        check_string(in, m->u.origin.name, "origin name");
        break;
    case 'R':
        check_relation(in, m);
        break;
    case 'Y':
        check_string(in, m->u.type.nspname, "type namespace");
        check_string(in, m->u.type.typname, "type name");
        break;
    case 'I':
        check_tuple(in, &m->u.insert.new_tuple);
        break;
    case 'U':
        if (m->u.update.old_kind != 0 && m->u.update.old_kind != 'K' &&
            m->u.update.old_kind != 'O')
            fail("update with an unknown old-tuple kind");
        if (m->u.update.old_kind != 0)
            check_tuple(in, &m->u.update.old_tuple);
        check_tuple(in, &m->u.update.new_tuple);
        break;
    case 'D':
        if (m->u.delete_.old_kind != 'K' && m->u.delete_.old_kind != 'O')
            fail("delete with an unknown old-tuple kind");
        check_tuple(in, &m->u.delete_.old_tuple);
        break;
    case 'T':
        check_range(in, (const char *)m->u.truncate.relids, (size_t)m->u.truncate.nrelids * 4,
                    "truncate relation ids outside the input");
        for (uint32_t i = 0; i < m->u.truncate.nrelids; i++)
            sink += wn_truncate_relid(m, i);
        break;
    case 'M':
        check_string(in, m->u.message.prefix, "message prefix");
        if (m->u.message.content_length > 0 || m->u.message.content != NULL)
            check_range(in, m->u.message.content, m->u.message.content_length,
                        "message content outside the input");
        break;
    default:
        fail("message of unknown kind accepted");
    }
    if (strcmp(wn_message_kind_name(m->kind), "unknown") == 0)
        fail("accepted message kind has no name");
}

/* A refusal must say why, on one line. */
static void check_error(const wn_decoder *decoder)
{
    const char *end = memchr(decoder->error, '\0', sizeof decoder->error);

    if (end == NULL || end == decoder->error)
        fail("refusal without an error message");
    if (memchr(decoder->error, '\n', (size_t)(end - decoder->error)) != NULL)
        fail("error message spans several lines");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Large (three column arrays): on the heap, like the host's, not on the stack. */
    static wn_decoder *decoder;
    input in = {.begin = (const char *)data, .end = (const char *)data + size};
    wn_message message;

    if (decoder == NULL) {
        decoder = malloc(sizeof *decoder);
        if (decoder == NULL)
            fail("out of memory for the decoder");
    }
    if (wn_decode(decoder, (const char *)data, size, &message) < 0) {
        check_error(decoder);
        return 0;
    }
    check_message(&in, &message);
    return 0;
}
