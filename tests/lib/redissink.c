/* redissink: see redissink.h. */
#include "redissink.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

itest_path redissink_config(const itest_ctx *ctx, const char *name, const redis_server *rs,
                            const char *block, const char *settings)
{
    return itest_config(ctx, name, "\"public.t\"", 100,
                        "{ name = \"redis\"; path = \"%s\"; retry_initial_ms = 20;"
                        "  retry_max_ms = 300; %s"
                        "  settings = { address = \"%s\"; %s }; }",
                        itest_root_file(REDIS_PLUGIN).s, block, rs->sock, settings);
}

/* The value of "id" in an entry's data: {..."values":{"id":"7",...}}. */
static long long data_id(const redis_entry *e)
{
    const char *at = e->data != NULL ? strstr(e->data, "\"values\":{\"id\":\"") : NULL;

    ck_assert_msg(at != NULL, "entry %s holds no row id: %s", e->id, e->data ? e->data : "");
    return atoll(at + strlen("\"values\":{\"id\":\""));
}

/* The entry's ID must be its identity: the commit LSN and (seq + 1) << 32. */
static void assert_identity(const redis_entry *e)
{
    unsigned hi, lo;
    uint64_t position, ordinal;
    char expect[64];

    ck_assert_msg(sscanf(e->lsn, "%X/%X", &hi, &lo) == 2, "entry %s: lsn %s", e->id, e->lsn);
    position = (uint64_t)hi << 32 | lo;
    ordinal = (uint64_t)(strtoull(e->seq, NULL, 10) + 1) << 32;
    snprintf(expect, sizeof expect, "%" PRIu64 "-%" PRIu64, position, ordinal);
    ck_assert_msg(strcmp(e->id, expect) == 0, "entry %s (lsn %s seq %s): expected ID %s", e->id,
                  e->lsn, e->seq, expect);
}

static bool id_below(const char *a, const char *b)
{
    uint64_t ap = strtoull(a, NULL, 10), bp = strtoull(b, NULL, 10);
    uint64_t ao = strtoull(strchr(a, '-') + 1, NULL, 10), bo = strtoull(strchr(b, '-') + 1, NULL, 10);

    return ap < bp || (ap == bp && ao < bo);
}

size_t redissink_assert_once(const itest_ctx *ctx, const redis_server *rs, const char *stream)
{
    PGresult *res = PQexec(ctx->conn, "SELECT id FROM t ORDER BY id");
    size_t count, rows;
    redis_entry *entries = redis_entries(rs, stream, &count);
    char key[512], *last;

    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    rows = (size_t)PQntuples(res);
    ck_assert_msg(count == rows, "stream %s holds %zu entries for %zu rows", stream, count, rows);
    for (size_t i = 0; i < count; i++) {
        assert_identity(&entries[i]);
        ck_assert_str_eq(entries[i].op, "insert");
        ck_assert_str_eq(entries[i].table, "public.t");
        ck_assert_msg(i == 0 || id_below(entries[i - 1].id, entries[i].id),
                      "stream %s: entry %s follows %s", stream, entries[i].id,
                      entries[i - 1].id);
        /* The writers insert ids in commit order: the i-th entry is the i-th row. */
        ck_assert_msg(data_id(&entries[i]) == atoll(PQgetvalue(res, (int)i, 0)),
                      "stream %s: entry %zu (%s) holds row %lld, expected %s", stream, i,
                      entries[i].id, data_id(&entries[i]), PQgetvalue(res, (int)i, 0));
    }
    PQclear(res);
    snprintf(key, sizeof key, "%s:walnotify-last-id", stream);
    last = redis_get(rs, key);
    if (count > 0)
        ck_assert_msg(last != NULL && strcmp(last, entries[count - 1].id) == 0,
                      "key %s is %s, the last entry %s", key, last ? last : "missing",
                      entries[count - 1].id);
    free(last);
    redis_entries_free(entries, count);
    return count;
}

long long redissink_entries_added(const redis_server *rs, const char *stream)
{
    char *out = redis_cli(rs, (const char *const[]){"XINFO", "STREAM", stream, NULL});
    char *at = strstr(out, "entries-added\n");
    long long n;

    ck_assert_msg(at != NULL, "XINFO STREAM %s has no entries-added: %s", stream, out);
    n = atoll(at + strlen("entries-added\n"));
    free(out);
    return n;
}
