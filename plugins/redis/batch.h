/*
 * batch: the XADD commands of the entries not yet sent, formatted as RESP in one buffer that
 * begins with MULTI, with the identity and stream of each entry (to read the EXEC reply and to
 * name failed events). It holds at most batch_entries entries, so neither walnotify nor Redis
 * ever holds more of a large transaction than that.
 */
#ifndef REDIS_BATCH_H
#define REDIS_BATCH_H

#include <walnotify/plugin.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct batch_entry {
    walnotify_id id;
    size_t stream; /* index into batch.streams */
} batch_entry;

typedef struct batch {
    char *data; /* MULTI, then one XADD per entry */
    size_t len, cap;
    batch_entry *entries;
    size_t count, max; /* entries held, and the most it may hold */
    char **streams;    /* the distinct stream names of the entries, each owned */
    size_t nstreams, streams_cap;
    size_t last_stream; /* the stream found last (most events go where the previous went) */
} batch;

/* Sets up an empty batch of at most max entries; false when out of memory. */
bool batch_init(batch *b, size_t max);
void batch_free(batch *b);

/* Forgets every entry (the buffers stay, up to a bound). */
void batch_clear(batch *b);

/* Drops the entries from `count` on (a transaction aborted after count entries). */
void batch_truncate(batch *b, size_t count, size_t len);

/* Adds one XADD of an entry (fields and values, nfields pairs) to `stream`; `maxlen` 0 for no
 * trimming. False when out of memory. */
bool batch_add(batch *b, const char *stream, walnotify_id id, int64_t maxlen,
               const char *const *fields, const char *const *values, const size_t *lengths,
               size_t nfields);

/* The stream ID text of an identity, "position-ordinal". */
void batch_id_text(walnotify_id id, char *out, size_t outlen);

#endif
