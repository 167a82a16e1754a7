/*
 * pgoutput: replication messages of protocol version 1 built byte by byte, big-endian as on the
 * wire (the layouts of PostgreSQL's src/backend/replication/logical/proto.c), for the unit tests
 * of the decoder and of the dispatcher. A buffer grows as needed; an allocation that fails fails
 * the test.
 */
#ifndef WN_TEST_PGOUTPUT_H
#define WN_TEST_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pgo_buf {
    unsigned char *data; /* owned; NULL until the first byte */
    size_t length;       /* bytes written */
    size_t capacity;     /* bytes allocated */
} pgo_buf;

void pgo_put(pgo_buf *b, const void *src, size_t n);
void pgo_u8(pgo_buf *b, uint8_t v);
void pgo_u16(pgo_buf *b, uint16_t v);
void pgo_u32(pgo_buf *b, uint32_t v);
void pgo_u64(pgo_buf *b, uint64_t v);
void pgo_str(pgo_buf *b, const char *s); /* with its terminating NUL */
/* A 't' or 'b' column of a tuple: kind, length, the bytes. */
void pgo_value(pgo_buf *b, char kind, const char *value, uint32_t length);
/* A 't' column holding value, or 'n' (NULL) when value is NULL. */
void pgo_text(pgo_buf *b, const char *value);
/* Frees the bytes and empties b. */
void pgo_free(pgo_buf *b);

/* Whole messages, appended to b. Times are microseconds since 2000-01-01. */
void pgo_begin(pgo_buf *b, uint64_t final_lsn, int64_t commit_time, uint32_t xid);
void pgo_commit(pgo_buf *b, uint64_t commit_lsn, uint64_t end_lsn, int64_t commit_time);
/* A Relation message's head; ncolumns pgo_column calls follow. */
void pgo_relation(pgo_buf *b, uint32_t relid, const char *schema, const char *name,
                  char identity, uint16_t ncolumns);
void pgo_column(pgo_buf *b, uint8_t flags, const char *name, uint32_t type, int32_t typmod);
void pgo_message(pgo_buf *b, bool transactional, uint64_t lsn, const char *prefix,
                 const char *content, uint32_t length);

#endif
