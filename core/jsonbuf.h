/*
 * jsonbuf: a growable output buffer and the JSON pieces the encoder (core/encoder.c) writes into
 * it. The one place in the tree that escapes JSON text.
 *
 * Every append is checked; the first allocation failure (or size overflow) sets `failed` and
 * turns every later append into a no-op, so a caller formats a whole line and checks once.
 *
 * A line is made of some forty small appends, so the common case (room already there) is inline
 * here: a compare and a store, no call.
 */
#ifndef WN_JSONBUF_H
#define WN_JSONBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct jsonbuf {
    char *data;  /* owned; not NUL-terminated */
    size_t len;  /* bytes in use */
    size_t cap;  /* bytes allocated */
    bool failed; /* an append ran out of memory; cleared by the caller after rolling back */
} jsonbuf;

/* The slow half of jsonbuf_reserve: grows the buffer so `extra` more bytes fit (and `data` is
 * never NULL afterwards); false (and `failed` set) when that cannot be done. */
bool jsonbuf_grow(jsonbuf *buf, size_t extra);

/* Makes room for `extra` more bytes; false (and `failed` set) when that cannot be done.
 * The strict compare sends an exactly full (or never allocated) buffer to jsonbuf_grow, so a
 * true return always comes with a non-NULL `data`. */
static inline bool jsonbuf_reserve(jsonbuf *buf, size_t extra)
{
    if (!buf->failed && extra < buf->cap - buf->len)
        return true;
    return jsonbuf_grow(buf, extra);
}

/* Releases the memory; the buffer is empty and reusable afterwards. */
void jsonbuf_free(jsonbuf *buf);

/* Appends `length` raw bytes. */
static inline void jsonbuf_put(jsonbuf *buf, const char *bytes, size_t length)
{
    if (!jsonbuf_reserve(buf, length))
        return;
    memcpy(buf->data + buf->len, bytes, length);
    buf->len += length;
}

/* Appends a NUL-terminated literal as raw bytes (its strlen folds away for a literal). */
static inline void jsonbuf_puts(jsonbuf *buf, const char *text)
{
    jsonbuf_put(buf, text, strlen(text));
}

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

/* True when `length` bytes of `text` are well-formed UTF-8 without a NUL byte: text that
 * jsonbuf_string renders without loss. */
bool jsonbuf_is_text(const char *text, size_t length);

/* Appends `length` bytes as lower-case hex digits, two per byte, no quotes. */
void jsonbuf_hex(jsonbuf *buf, const char *bytes, size_t length);

#endif
