/*
 * decoder: pgoutput protocol version 1, from the bytes of one XLogData payload to a wn_message.
 *
 * Pure: no I/O, no allocation. Strings and values in the result point into the input buffer (the
 * wire's strings are NUL-terminated and checked to be), column arrays into the decoder's own
 * fixed scratch; both are valid until the next call or until the buffer is freed.
 * Every length read from the wire is checked against the bytes that remain.
 */
#ifndef WN_DECODER_H
#define WN_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

/* PostgreSQL's MaxTupleAttributeNumber: no relation has more columns. */
#define WN_MAX_COLUMNS 1664

/* Microseconds between 1970-01-01 and 2000-01-01, PostgreSQL's timestamp epoch. */
#define WN_PG_EPOCH_OFFSET_US INT64_C(946684800000000)

typedef struct wn_datum {
    char kind;        /* 'n' NULL, 'u' unchanged TOAST, 't' text, 'b' binary */
    const char *data; /* 't' and 'b': the bytes (not NUL-terminated); NULL otherwise */
    uint32_t length;  /* bytes of data */
} wn_datum;

typedef struct wn_tuple {
    uint16_t ncolumns;
    const wn_datum *columns;
} wn_tuple;

typedef struct wn_relation_column {
    uint8_t flags; /* 1: part of the replica identity key */
    const char *name;
    uint32_t type_oid;
    int32_t typmod;
} wn_relation_column;

typedef struct wn_message {
    char kind; /* 'B','C','O','R','Y','I','U','D','T','M' */
    union {
        struct {
            wn_lsn final_lsn;
            int64_t commit_time; /* µs since 2000-01-01, as on the wire */
            uint32_t xid;
        } begin;
        struct {
            uint8_t flags;
            wn_lsn commit_lsn;
            wn_lsn end_lsn;
            int64_t commit_time; /* µs since 2000-01-01 */
        } commit;
        struct {
            wn_lsn commit_lsn;
            const char *name;
        } origin;
        struct {
            uint32_t relid;
            const char *nspname; /* "" means pg_catalog */
            const char *relname;
            uint8_t replident; /* 'd', 'n', 'f' or 'i' */
            uint16_t ncolumns;
            const wn_relation_column *columns;
        } relation;
        struct {
            uint32_t oid;
            const char *nspname;
            const char *typname;
        } type;
        struct {
            uint32_t relid;
            wn_tuple new_tuple;
        } insert;
        struct {
            uint32_t relid;
            char old_kind;      /* 0 none, 'K' key, 'O' old row */
            wn_tuple old_tuple; /* when old_kind is not 0 */
            wn_tuple new_tuple;
        } update;
        struct {
            uint32_t relid;
            char old_kind; /* 'K' or 'O' */
            wn_tuple old_tuple;
        } delete_;
        struct {
            uint32_t nrelids;
            uint8_t options;             /* 1 cascade, 2 restart identity */
            const unsigned char *relids; /* nrelids big-endian uint32: see wn_truncate_relid */
        } truncate;
        struct {
            uint8_t flags; /* 1: transactional */
            wn_lsn lsn;
            const char *prefix;
            uint32_t content_length;
            const char *content;
        } message;
    } u;
} wn_message;

typedef struct wn_decoder {
    wn_datum new_columns[WN_MAX_COLUMNS];
    wn_datum old_columns[WN_MAX_COLUMNS];
    wn_relation_column relation_columns[WN_MAX_COLUMNS];
    char error[256]; /* why the last call failed */
} wn_decoder;

/*
 * Decodes one message. Returns 0, or -1 with decoder->error set to one line naming the message
 * type and the offset where it went wrong, e.g. "Insert message: offset 9: tuple column count
 * 70000 exceeds the 12 bytes that remain".
 */
int wn_decode(wn_decoder *decoder, const char *buffer, size_t length, wn_message *message);

/* The index-th relation id of a decoded Truncate message (index < nrelids). */
uint32_t wn_truncate_relid(const wn_message *message, uint32_t index);

/* A name for a message kind, "Insert" for 'I'; "unknown" otherwise. */
const char *wn_message_kind_name(char kind);

#endif
