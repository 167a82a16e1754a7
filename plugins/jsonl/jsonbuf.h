/*
 * jsonbuf: a growable output buffer and the JSON pieces the jsonl plugin writes into it.
 *
 * Every append is checked; the first allocation failure (or size overflow) sets `failed` and
 * turns every later append into a no-op, so a caller formats a whole line and checks once.
 */
#ifndef JSONL_JSONBUF_H
#define JSONL_JSONBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jsonbuf {
    char *data;  /* owned; not NUL-terminated */
    size_t len;  /* bytes in use */
    size_t cap;  /* bytes allocated */
    bool failed; /* an append ran out of memory; cleared by the caller after rolling back */
} jsonbuf;

/* Makes room for `extra` more bytes; false (and `failed` set) when that cannot be done. */
bool jsonbuf_reserve(jsonbuf *buf, size_t extra);

/* Releases the memory; the buffer is empty and reusable afterwards. */
void jsonbuf_free(jsonbuf *buf);

/* Appends `length` raw bytes. */
void jsonbuf_put(jsonbuf *buf, const char *bytes, size_t length);

/* Appends a NUL-terminated literal as raw bytes. */
void jsonbuf_puts(jsonbuf *buf, const char *text);

/* Appends an unsigned decimal number. */
void jsonbuf_u64(jsonbuf *buf, uint64_t value);

/* Appends a WAL position as PostgreSQL prints it: upper-case hex "HI/LO", no quotes. */
void jsonbuf_lsn(jsonbuf *buf, uint64_t lsn);

/* Appends microseconds since the Unix epoch as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC, always six
 * fractional digits, proleptic Gregorian calendar; no quotes). */
void jsonbuf_timestamp(jsonbuf *buf, int64_t usec);

/* Appends a quoted JSON string of `length` bytes of `text` (which may hold NUL bytes).
 * Escapes '"', '\\', every byte below 0x20 and 0x7F; copies well-formed UTF-8 as is and writes
 * \ufffd for each byte that is not part of a well-formed UTF-8 sequence. */
void jsonbuf_string(jsonbuf *buf, const char *text, size_t length);

#endif
