/*
 * namecache: the table and column names of the last event, kept as the JSON strings they were
 * escaped to. Rows of one table repeat the same names, and comparing a name with its copy costs
 * less than escaping it again. Names are copied in, never borrowed: an event's strings live only
 * for the call.
 */
#ifndef WN_NAMECACHE_H
#define WN_NAMECACHE_H

#include "jsonbuf.h"

typedef struct namecache_entry {
    size_t raw_end;  /* where this name (with its NUL) ends in raw */
    size_t json_end; /* where its JSON string ends in json */
} namecache_entry;

/* The names of one list (one event's columns, or its table alone), in order. Zero-initialised
 * is empty. */
typedef struct namecache {
    jsonbuf raw;              /* the names, each NUL-terminated, one after another */
    jsonbuf json;             /* each name as a quoted JSON string, one after another */
    namecache_entry *entries; /* owned; `count` in use, `cap` allocated */
    size_t count;
    size_t cap;
} namecache;

/* Appends `name` (NUL-terminated, not NULL), the `index`-th of its list, as a quoted JSON string
 * to `out`, exactly as jsonbuf_string would. When the cached `index`-th name differs, the cache
 * is cut back to the names before it and `name` takes its place. The cache running out of memory
 * only costs speed; `out` running out sets out->failed as usual. */
void namecache_put(namecache *cache, size_t index, const char *name, jsonbuf *out);

/* Releases the memory; the cache is empty and reusable afterwards. */
void namecache_free(namecache *cache);

#endif
