/*
 * record: one event held back (the open source transaction waits for its commit, or for the
 * buffer's bound) in a compact copy: the target columns its values go to, and their text.
 */
#ifndef PGSINK_RECORD_H
#define PGSINK_RECORD_H

#include <walnotify/plugin.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGSINK_NULL (-1)      /* a cell's length: SQL NULL */
#define PGSINK_UNCHANGED (-2) /* a cell's length: an unchanged TOAST value, not sent */

/* One value: its target column (or, in append mode, what it is), and its text. */
typedef struct pgsink_cell {
    int32_t column;
    int32_t length;    /* bytes, or PGSINK_NULL, PGSINK_UNCHANGED */
    const char *value; /* added: the text; held: its offset from the record's base */
} pgsink_cell;

/* An event as the buffer holds it (every pointer into the buffer). */
typedef struct pgsink_record {
    walnotify_op op;
    int32_t table; /* index of the host's table, -1 for none (a message, a marker) */
    walnotify_id id;
    uint64_t commit_lsn;
    uint32_t seq;
    uint32_t xid;
    int64_t commit_time;
    unsigned truncate_options;
    const char *key; /* the key's JSON, "" when none */
    size_t nnew;
    size_t nold;
    const pgsink_cell *cells; /* nnew new values, then nold old ones */
    const char *base;         /* held records: what the cells' offsets count from */
} pgsink_record;

/* The text of a held record's cell i (NUL-terminated), NULL for NULL or unchanged. */
static inline const char *pgsink_cell_text(const pgsink_record *rec, size_t i)
{
    if (rec->cells[i].length < 0)
        return NULL;
    return rec->base + (uintptr_t)rec->cells[i].value;
}

/* A growing buffer of records. */
typedef struct pgsink_buffer {
    char *data;
    size_t len;
    size_t cap;
    size_t count;
} pgsink_buffer;

/* Appends a record whose cells (nnew + nold) are copied; false when out of memory. */
bool pgsink_buffer_add(pgsink_buffer *b, const pgsink_record *rec);
/* The record at *offset, moving the offset past it; false at the end. */
bool pgsink_buffer_next(const pgsink_buffer *b, size_t *offset, pgsink_record *rec);
/* Empties the buffer; its memory is released when it grew past keep bytes. */
void pgsink_buffer_clear(pgsink_buffer *b, size_t keep);
void pgsink_buffer_free(pgsink_buffer *b);

#endif
