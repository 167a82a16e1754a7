/*
 * sample_event: the event of the contract's jsonl example (public.orders, commit 0/1A2B3C8,
 * xid 744, committed 2026-11-25T11:00:00.123456Z) and the columns it carries, for the unit tests
 * that check one event's JSON: the encoder's byte for byte, and the jsonl plugin's through a fake
 * host. Header-only (static inline), so a test that includes it links nothing more.
 */
#ifndef WN_TEST_SAMPLE_EVENT_H
#define WN_TEST_SAMPLE_EVENT_H

#include <walnotify/plugin.h>

#include <stdint.h>
#include <string.h>

/* The line's keys before "op", for the sample event with seq 0. */
#define SAMPLE_HEAD                                                                                 \
    "{\"lsn\":\"0/1A2B3C8\",\"seq\":0,\"xid\":744,\"commit_time\":\"2026-11-25T11:00:00.123456Z\"," \
    "\"table\":\"public.orders\","

/* A text column (type text); the value is borrowed. */
static inline walnotify_column text_col(const char *name, const char *value)
{
    return (walnotify_column){.name = name, .type_oid = 25, .typmod = -1,
                              .kind = WALNOTIFY_VALUE_TEXT, .value = value, .length = strlen(value)};
}

/* A text column of length bytes, which may hold NULs. */
static inline walnotify_column bytes_col(const char *name, const char *value, size_t length)
{
    walnotify_column col = text_col(name, "");

    col.value = value;
    col.length = length;
    return col;
}

static inline walnotify_column null_col(const char *name)
{
    return (walnotify_column){.name = name, .type_oid = 25, .typmod = -1,
                              .kind = WALNOTIFY_VALUE_NULL};
}

/* An unchanged TOAST value, not sent (updates only). */
static inline walnotify_column unchanged_col(const char *name)
{
    return (walnotify_column){.name = name, .type_oid = 25, .typmod = -1,
                              .kind = WALNOTIFY_VALUE_UNCHANGED};
}

/* A text column of the replica identity's key. */
static inline walnotify_column key_col(const char *name, const char *value)
{
    walnotify_column col = text_col(name, value);

    col.is_key = true;
    return col;
}

/* The sample event with operation op and the columns cols (borrowed), seq 0. */
static inline walnotify_event sample_event(walnotify_op op, const walnotify_column *cols,
                                           size_t ncols)
{
    return (walnotify_event){
        .size = sizeof(walnotify_event),
        .table = "public.orders",
        .schema = "public",
        .name = "orders",
        .op = op,
        .commit_lsn = 0x1A2B3C8,
        .xid = 744,
        .commit_time = INT64_C(1795604400123456),
        .columns = cols,
        .ncolumns = ncols,
        .id = {.position = 0x1A2B3C8, .ordinal = UINT64_C(1) << 32},
    };
}

/* Every combination of a truncate's options and the "options" array it is written as. */
typedef struct sample_truncate {
    unsigned options; /* WALNOTIFY_TRUNCATE_* */
    const char *json;
} sample_truncate;

static const sample_truncate sample_truncates[] = {
    {0, "[]"},
    {WALNOTIFY_TRUNCATE_CASCADE, "[\"cascade\"]"},
    {WALNOTIFY_TRUNCATE_RESTART_IDENTITY, "[\"restart_identity\"]"},
    {WALNOTIFY_TRUNCATE_CASCADE | WALNOTIFY_TRUNCATE_RESTART_IDENTITY,
     "[\"cascade\",\"restart_identity\"]"},
};
#define SAMPLE_TRUNCATES (sizeof sample_truncates / sizeof sample_truncates[0])

#endif
