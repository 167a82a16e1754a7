/* batch: RESP written by hand (a bulk string is "$LEN\r\nBYTES\r\n"), so an entry costs one copy.
 */
#include "batch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEP_BYTES (4u * 1024 * 1024) /* a buffer grown past this is released when emptied */
#define ID_TEXT_MAX 48

static const char multi[] = "*1\r\n$5\r\nMULTI\r\n";

bool batch_init(batch *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
    b->entries = calloc(max, sizeof *b->entries);
    if (b->entries == NULL)
        return false;
    batch_clear(b);
    return true;
}

static void forget_streams(batch *b)
{
    for (size_t i = 0; i < b->nstreams; i++)
        free(b->streams[i]);
    b->nstreams = 0;
    b->last_stream = 0;
}

void batch_free(batch *b)
{
    forget_streams(b);
    free(b->streams);
    free(b->entries);
    free(b->data);
    memset(b, 0, sizeof *b);
}

void batch_clear(batch *b)
{
    forget_streams(b);
    b->count = 0;
    if (b->cap > KEEP_BYTES) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
    b->len = 0;
    if (b->cap < sizeof multi - 1) {
        b->data = malloc(64 * 1024);
        b->cap = b->data != NULL ? 64 * 1024 : 0;
    }
    if (b->data != NULL) {
        memcpy(b->data, multi, sizeof multi - 1);
        b->len = sizeof multi - 1;
    }
}

void batch_truncate(batch *b, size_t count, size_t len)
{
    if (count >= b->count)
        return;
    b->count = count;
    b->len = len;
}

static bool reserve(batch *b, size_t more)
{
    size_t need = b->len + more, cap = b->cap > 0 ? b->cap : 64 * 1024;
    char *data;

    if (b->data != NULL && need <= b->cap)
        return true;
    while (cap < need)
        cap *= 2;
    data = realloc(b->data, cap);
    if (data == NULL)
        return false;
    if (b->data == NULL) {
        memcpy(data, multi, sizeof multi - 1);
        b->len = sizeof multi - 1;
    }
    b->data = data;
    b->cap = cap;
    return b->len + more <= cap;
}

/* Appends text that reserve made room for. */
static void put(batch *b, const char *text, size_t len)
{
    memcpy(b->data + b->len, text, len);
    b->len += len;
}

static void put_bulk(batch *b, const char *text, size_t len)
{
    char head[32];
    int n = snprintf(head, sizeof head, "$%zu\r\n", len);

    put(b, head, (size_t)n);
    put(b, text, len);
    put(b, "\r\n", 2);
}

static bool find_stream(batch *b, const char *stream, size_t *index)
{
    char **streams;

    if (b->nstreams > 0 && strcmp(b->streams[b->last_stream], stream) == 0) {
        *index = b->last_stream;
        return true;
    }
    for (size_t i = 0; i < b->nstreams; i++) {
        if (strcmp(b->streams[i], stream) == 0) {
            *index = b->last_stream = i;
            return true;
        }
    }
    if (b->nstreams == b->streams_cap) {
        size_t cap = b->streams_cap > 0 ? b->streams_cap * 2 : 8;
        streams = realloc(b->streams, cap * sizeof *streams);
        if (streams == NULL)
            return false;
        b->streams = streams;
        b->streams_cap = cap;
    }
    b->streams[b->nstreams] = strdup(stream);
    if (b->streams[b->nstreams] == NULL)
        return false;
    *index = b->last_stream = b->nstreams++;
    return true;
}

void batch_id_text(walnotify_id id, char *out, size_t outlen)
{
    snprintf(out, outlen, "%" PRIu64 "-%" PRIu64, id.position, id.ordinal);
}

bool batch_add(batch *b, const char *stream, walnotify_id id, int64_t maxlen,
               const char *const *fields, const char *const *values, const size_t *lengths,
               size_t nfields)
{
    char idtext[ID_TEXT_MAX], maxtext[24], head[32];
    size_t need = 64 + strlen(stream) + 3 * 48, index;
    int argc = 3 + (maxlen > 0 ? 3 : 0) + 2 * (int)nfields;

    if (b->count == b->max || !find_stream(b, stream, &index))
        return false;
    for (size_t i = 0; i < nfields; i++)
        need += strlen(fields[i]) + lengths[i] + 2 * 32;
    if (!reserve(b, need))
        return false;
    batch_id_text(id, idtext, sizeof idtext);
    put(b, head, (size_t)snprintf(head, sizeof head, "*%d\r\n", argc));
    put_bulk(b, "XADD", 4);
    put_bulk(b, stream, strlen(stream));
    if (maxlen > 0) {
        put_bulk(b, "MAXLEN", 6);
        put_bulk(b, "~", 1);
        put_bulk(b, maxtext, (size_t)snprintf(maxtext, sizeof maxtext, "%" PRId64, maxlen));
    }
    put_bulk(b, idtext, strlen(idtext));
    for (size_t i = 0; i < nfields; i++) {
        put_bulk(b, fields[i], strlen(fields[i]));
        put_bulk(b, values[i], lengths[i]);
    }
    b->entries[b->count++] = (batch_entry){.id = id, .stream = index};
    return true;
}
