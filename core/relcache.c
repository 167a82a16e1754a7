/*
 * relcache: an open-addressing hash table (linear probing) from relation id to an owned
 * wn_relation. Entries are never removed, only replaced, so no tombstones are needed; the table
 * doubles when it is half full.
 */
#include "relcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_CAPACITY 64 /* slots; always a power of two */

struct wn_relcache {
    wn_relation **slots; /* capacity entries, NULL when empty */
    size_t capacity;
    size_t count; /* occupied slots */
};

static size_t slot_for(uint32_t relid, size_t capacity)
{
    /* Relation ids are often consecutive: mix the bits so they do not cluster. */
    uint32_t h = relid;

    h ^= h >> 16;
    h *= UINT32_C(0x7feb352d);
    h ^= h >> 15;
    h *= UINT32_C(0x846ca68b);
    h ^= h >> 16;
    return (size_t)h & (capacity - 1);
}

/* The slot holding relid, or the empty slot where it belongs. */
static size_t find_slot(wn_relation **slots, size_t capacity, uint32_t relid)
{
    size_t i = slot_for(relid, capacity);

    while (slots[i] != NULL && slots[i]->relid != relid)
        i = (i + 1) & (capacity - 1);
    return i;
}

static void relation_free(wn_relation *relation)
{
    if (relation == NULL)
        return;
    if (relation->columns != NULL) {
        for (uint16_t i = 0; i < relation->ncolumns; i++)
            free(relation->columns[i].name);
        free(relation->columns);
    }
    free(relation->schema);
    free(relation->name);
    free(relation->qualified);
    free(relation);
}

static char *qualify(const char *schema, const char *name)
{
    size_t length = strlen(schema) + 1 + strlen(name) + 1;
    char *qualified = malloc(length);

    if (qualified != NULL)
        snprintf(qualified, length, "%s.%s", schema, name);
    return qualified;
}

static int copy_columns(wn_relation *relation, const wn_message *message)
{
    uint16_t ncolumns = message->u.relation.ncolumns;

    if (ncolumns == 0)
        return 0;
    relation->columns = calloc(ncolumns, sizeof *relation->columns);
    if (relation->columns == NULL)
        return -1;
    /* Counted as they fill, so relation_free frees exactly the names copied so far. */
    for (uint16_t i = 0; i < ncolumns; i++) {
        const wn_relation_column *wire = &message->u.relation.columns[i];
        wn_rel_column *column = &relation->columns[i];

        column->name = strdup(wire->name);
        if (column->name == NULL)
            return -1;
        relation->ncolumns = (uint16_t)(i + 1);
        column->type_oid = wire->type_oid;
        column->typmod = wire->typmod;
        column->is_key = (wire->flags & 1) != 0;
    }
    return 0;
}

/* A new entry owning copies of everything in the Relation message, or NULL. */
static wn_relation *relation_from_message(const wn_message *message)
{
    const char *schema = message->u.relation.nspname;
    wn_relation *relation = calloc(1, sizeof *relation);

    if (relation == NULL)
        return NULL;
    relation->relid = message->u.relation.relid;
    relation->replident = (char)message->u.relation.replident;
    relation->table_index = -1;
    /* The wire leaves the namespace empty for pg_catalog. */
    relation->schema = strdup(schema[0] == '\0' ? "pg_catalog" : schema);
    relation->name = strdup(message->u.relation.relname);
    if (relation->schema == NULL || relation->name == NULL)
        goto free_relation;
    relation->qualified = qualify(relation->schema, relation->name);
    if (relation->qualified == NULL)
        goto free_relation;
    if (copy_columns(relation, message) < 0)
        goto free_relation;
    return relation;

free_relation:
    relation_free(relation);
    return NULL;
}

static int grow(wn_relcache *cache)
{
    size_t capacity = cache->capacity * 2;
    wn_relation **slots = calloc(capacity, sizeof *slots);

    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < cache->capacity; i++) {
        wn_relation *relation = cache->slots[i];

        if (relation != NULL)
            slots[find_slot(slots, capacity, relation->relid)] = relation;
    }
    free(cache->slots);
    cache->slots = slots;
    cache->capacity = capacity;
    return 0;
}

wn_relcache *wn_relcache_create(void)
{
    wn_relcache *cache = calloc(1, sizeof *cache);

    if (cache == NULL)
        return NULL;
    cache->slots = calloc(INITIAL_CAPACITY, sizeof *cache->slots);
    if (cache->slots == NULL)
        goto free_cache;
    cache->capacity = INITIAL_CAPACITY;
    return cache;

free_cache:
    free(cache);
    return NULL;
}

void wn_relcache_destroy(wn_relcache *cache)
{
    if (cache == NULL)
        return;
    for (size_t i = 0; i < cache->capacity; i++)
        relation_free(cache->slots[i]);
    free(cache->slots);
    free(cache);
}

wn_relation *wn_relcache_put(wn_relcache *cache, const wn_message *relation)
{
    wn_relation *entry;
    size_t slot;

    if (relation->kind != 'R')
        return NULL;
    /* Build the new entry first: out of memory then leaves the old layout in place. */
    entry = relation_from_message(relation);
    if (entry == NULL)
        return NULL;
    slot = find_slot(cache->slots, cache->capacity, entry->relid);
    if (cache->slots[slot] != NULL) {
        relation_free(cache->slots[slot]);
        cache->slots[slot] = entry;
        return entry;
    }
    if ((cache->count + 1) * 2 > cache->capacity) {
        if (grow(cache) < 0)
            goto free_entry;
        slot = find_slot(cache->slots, cache->capacity, entry->relid);
    }
    cache->slots[slot] = entry;
    cache->count++;
    return entry;

free_entry:
    relation_free(entry);
    return NULL;
}

wn_relation *wn_relcache_get(wn_relcache *cache, uint32_t relid)
{
    return cache->slots[find_slot(cache->slots, cache->capacity, relid)];
}

/* The cached column named `name`, looked for first at `hint` (columns rarely move). */
static const wn_rel_column *column_named(const wn_relation *cached, const char *name, uint16_t hint)
{
    if (hint < cached->ncolumns && strcmp(cached->columns[hint].name, name) == 0)
        return &cached->columns[hint];
    for (uint16_t i = 0; i < cached->ncolumns; i++) {
        if (strcmp(cached->columns[i].name, name) == 0)
            return &cached->columns[i];
    }
    return NULL;
}

int wn_relation_next_retyped(const wn_relation *cached, const wn_message *relation, int from,
                             const wn_rel_column **was)
{
    uint16_t ncolumns = relation->u.relation.ncolumns;

    for (int i = from < 0 ? 0 : from; i < (int)ncolumns; i++) {
        const wn_relation_column *wire = &relation->u.relation.columns[i];
        const wn_rel_column *old = column_named(cached, wire->name, (uint16_t)i);

        if (old == NULL || (old->type_oid == wire->type_oid && old->typmod == wire->typmod))
            continue;
        *was = old;
        return i;
    }
    return -1;
}
