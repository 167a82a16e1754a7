/*
 * relcache: the layout of every relation the server described with a Relation message, by
 * relation id. A new Relation message replaces the layout at any time, even inside a
 * transaction. Entries own copies of every string.
 */
#ifndef WN_RELCACHE_H
#define WN_RELCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decoder.h"

typedef struct wn_rel_column {
    char *name;
    uint32_t type_oid;
    int32_t typmod;
    bool is_key;
} wn_rel_column;

typedef struct wn_relation {
    uint32_t relid;
    char *schema; /* "pg_catalog" when the wire said "" */
    char *name;
    char *qualified; /* "schema.name" */
    char replident;
    uint16_t ncolumns;
    wn_rel_column *columns;
    int table_index; /* the owner's: set by the dispatcher, -1 when put */
} wn_relation;

typedef struct wn_relcache wn_relcache;

wn_relcache *wn_relcache_create(void);
void wn_relcache_destroy(wn_relcache *cache);

/* Stores (or replaces) the layout of a decoded Relation message ('R'). Returns the entry, or
 * NULL when out of memory. Pointers to a replaced entry become invalid. */
wn_relation *wn_relcache_put(wn_relcache *cache, const wn_message *relation);

/* The entry for relid, or NULL. */
wn_relation *wn_relcache_get(wn_relcache *cache, uint32_t relid);

/*
 * The next column of a Relation message ('R'), from index `from` on, that the cached layout also
 * has (by name) with another type OID or typmod (an ALTER COLUMN ... TYPE since the cached
 * message), or -1 when none. *was receives the cached column.
 */
int wn_relation_next_retyped(const wn_relation *cached, const wn_message *relation, int from,
                             const wn_rel_column **was);

#endif
