/* namecache: escaped names kept from one event to the next. */
#include "namecache.h"

#include <stdlib.h>
#include <string.h>

static size_t raw_start(const namecache *cache, size_t index)
{
    return index == 0 ? 0 : cache->entries[index - 1].raw_end;
}

static size_t json_start(const namecache *cache, size_t index)
{
    return index == 0 ? 0 : cache->entries[index - 1].json_end;
}

/* Keeps the first `count` names only. */
static void cut_to(namecache *cache, size_t count)
{
    cache->raw.len = raw_start(cache, count);
    cache->json.len = json_start(cache, count);
    cache->raw.failed = false;
    cache->json.failed = false;
    cache->count = count;
}

static bool reserve_entry(namecache *cache)
{
    if (cache->count < cache->cap)
        return true;
    size_t cap = cache->cap == 0 ? 16 : cache->cap * 2;
    if (cap > SIZE_MAX / sizeof *cache->entries)
        return false;
    namecache_entry *entries = realloc(cache->entries, cap * sizeof *entries);
    if (entries == NULL)
        return false;
    cache->entries = entries;
    cache->cap = cap;
    return true;
}

/* Makes `name` the `index`-th name (index == count); false when out of memory, the cache then
 * left as it was. */
static bool add_name(namecache *cache, size_t index, const char *name)
{
    if (!reserve_entry(cache))
        return false;
    size_t length = strlen(name);
    jsonbuf_put(&cache->raw, name, length + 1);
    jsonbuf_string(&cache->json, name, length);
    if (cache->raw.failed || cache->json.failed) {
        cut_to(cache, index);
        return false;
    }
    cache->entries[index] =
        (namecache_entry){.raw_end = cache->raw.len, .json_end = cache->json.len};
    cache->count = index + 1;
    return true;
}

/* strcmp's answer for equality, inline: names are a few bytes, and compared once per column of
 * every row, where the call would cost more than the bytes. */
static bool same_name(const char *a, const char *b)
{
    while (*a != '\0' && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

void namecache_put(namecache *cache, size_t index, const char *name, jsonbuf *out)
{
    /* A cached name that differs is dropped, with every name after it. */
    if (index < cache->count && !same_name(cache->raw.data + raw_start(cache, index), name))
        cut_to(cache, index);
    if (index == cache->count)
        add_name(cache, index, name);
    /* Not cached: a name before it is missing (its column was left out), or memory ran short. */
    if (index >= cache->count) {
        jsonbuf_string(out, name, strlen(name));
        return;
    }
    size_t start = json_start(cache, index);
    jsonbuf_put(out, cache->json.data + start, cache->entries[index].json_end - start);
}

void namecache_free(namecache *cache)
{
    jsonbuf_free(&cache->raw);
    jsonbuf_free(&cache->json);
    free(cache->entries);
    *cache = (namecache){0};
}
