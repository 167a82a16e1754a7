/* pgoutput: replication messages built byte by byte for the unit tests. */
#include "pgoutput.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

void pgo_put(pgo_buf *b, const void *src, size_t n)
{
    if (b->length + n > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 64;

        while (capacity < b->length + n)
            capacity *= 2;
        b->data = realloc(b->data, capacity);
        ck_assert_ptr_nonnull(b->data);
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, src, n);
    b->length += n;
}

void pgo_u8(pgo_buf *b, uint8_t v)
{
    pgo_put(b, &v, 1);
}

static void put_be(pgo_buf *b, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--)
        pgo_u8(b, (uint8_t)(v >> ((i - 1) * 8)));
}

void pgo_u16(pgo_buf *b, uint16_t v)
{
    put_be(b, v, 2);
}

void pgo_u32(pgo_buf *b, uint32_t v)
{
    put_be(b, v, 4);
}

void pgo_u64(pgo_buf *b, uint64_t v)
{
    put_be(b, v, 8);
}

void pgo_str(pgo_buf *b, const char *s)
{
    pgo_put(b, s, strlen(s) + 1);
}

void pgo_value(pgo_buf *b, char kind, const char *value, uint32_t length)
{
    pgo_u8(b, (uint8_t)kind);
    pgo_u32(b, length);
    pgo_put(b, value, length);
}

void pgo_text(pgo_buf *b, const char *value)
{
    if (value == NULL)
        pgo_u8(b, 'n');
    else
        pgo_value(b, 't', value, (uint32_t)strlen(value));
}

void pgo_free(pgo_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void pgo_begin(pgo_buf *b, uint64_t final_lsn, int64_t commit_time, uint32_t xid)
{
    pgo_u8(b, 'B');
    pgo_u64(b, final_lsn);
    pgo_u64(b, (uint64_t)commit_time);
    pgo_u32(b, xid);
}

void pgo_commit(pgo_buf *b, uint64_t commit_lsn, uint64_t end_lsn, int64_t commit_time)
{
    pgo_u8(b, 'C');
    pgo_u8(b, 0); /* flags: none defined */
    pgo_u64(b, commit_lsn);
    pgo_u64(b, end_lsn);
    pgo_u64(b, (uint64_t)commit_time);
}

void pgo_relation(pgo_buf *b, uint32_t relid, const char *schema, const char *name,
                  char identity, uint16_t ncolumns)
{
    pgo_u8(b, 'R');
    pgo_u32(b, relid);
    pgo_str(b, schema);
    pgo_str(b, name);
    pgo_u8(b, (uint8_t)identity);
    pgo_u16(b, ncolumns);
}

void pgo_column(pgo_buf *b, uint8_t flags, const char *name, uint32_t type, int32_t typmod)
{
    pgo_u8(b, flags);
    pgo_str(b, name);
    pgo_u32(b, type);
    pgo_u32(b, (uint32_t)typmod);
}

void pgo_message(pgo_buf *b, bool transactional, uint64_t lsn, const char *prefix,
                 const char *content, uint32_t length)
{
    pgo_u8(b, 'M');
    pgo_u8(b, transactional ? 1 : 0);
    pgo_u64(b, lsn);
    pgo_str(b, prefix);
    pgo_u32(b, length);
    pgo_put(b, content, length);
}
