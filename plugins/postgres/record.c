/*
 * record: events held back, serialized one after another in one buffer; see record.h. A
 * record is its header, its key, its cells and their values, each aligned to 8 bytes.
 */
#include "record.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN(n) (((n) + 7u) & ~(size_t)7u)

typedef struct header {
    size_t size; /* bytes of the whole record, aligned */
    pgsink_record rec;
    size_t key_len;
} header;

static bool reserve(pgsink_buffer *b, size_t need)
{
    size_t cap;
    char *data;

    if (b->len + need <= b->cap)
        return true;
    cap = b->cap > 0 ? b->cap : 64 * 1024;
    while (cap < b->len + need)
        cap *= 2;
    data = realloc(b->data, cap);
    if (data == NULL)
        return false;
    b->data = data;
    b->cap = cap;
    return true;
}

bool pgsink_buffer_add(pgsink_buffer *b, const pgsink_record *rec)
{
    size_t ncells = rec->nnew + rec->nold;
    size_t key_len = strlen(rec->key);
    size_t size = ALIGN(sizeof(header)) + ALIGN(key_len + 1) + ALIGN(ncells * sizeof(pgsink_cell));
    header *h;
    pgsink_cell *cells;
    char *p;

    for (size_t i = 0; i < ncells; i++)
        if (rec->cells[i].length >= 0) /* an empty value has its NUL too */
            size += ALIGN((size_t)rec->cells[i].length + 1);
    if (!reserve(b, size))
        return false;
    p = b->data + b->len;
    h = (header *)p;
    h->size = size;
    h->rec = *rec;
    h->key_len = key_len;
    p += ALIGN(sizeof(header));
    memcpy(p, rec->key, key_len + 1);
    p += ALIGN(key_len + 1);
    cells = (pgsink_cell *)p;
    p += ALIGN(ncells * sizeof(pgsink_cell));
    for (size_t i = 0; i < ncells; i++) {
        cells[i] = rec->cells[i];
        cells[i].value = NULL;
        if (rec->cells[i].length < 0)
            continue;
        memcpy(p, rec->cells[i].value, (size_t)rec->cells[i].length);
        p[rec->cells[i].length] = '\0';
        /* Stored as an offset: the buffer may move as it grows. */
        cells[i].value = (const char *)(uintptr_t)(p - b->data);
        p += ALIGN((size_t)rec->cells[i].length + 1);
    }
    b->len += size;
    b->count++;
    return true;
}

bool pgsink_buffer_next(const pgsink_buffer *b, size_t *offset, pgsink_record *rec)
{
    const char *p = b->data + *offset;
    const header *h = (const header *)p;

    if (*offset >= b->len)
        return false;
    *rec = h->rec;
    rec->key = p + ALIGN(sizeof(header));
    rec->cells = (const pgsink_cell *)(p + ALIGN(sizeof(header)) + ALIGN(h->key_len + 1));
    rec->base = b->data;
    *offset += h->size;
    return true;
}

void pgsink_buffer_clear(pgsink_buffer *b, size_t keep)
{
    b->len = 0;
    b->count = 0;
    if (b->cap > keep) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

void pgsink_buffer_free(pgsink_buffer *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}
