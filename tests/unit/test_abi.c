/*
 * The ABI promise on x86_64 (LP64): where every member of every public structure sits, how big
 * it is, and the values of every constant. A plugin built against the first released header (1.0)
 * or a later minor must keep loading, so none of these may change; new members go at the end of
 * a structure. ABI 1.0's sizes stay pinned as the offset where 1.1's members begin.
 */
#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <walnotify/plugin.h>

#include "run_suite.h"

#if !defined(__x86_64__) || !defined(__LP64__)
#error "these offsets are the x86_64 (LP64) layout; add the pinned layout of this platform"
#endif

#define MEMBER_SIZE(type, member) sizeof(((type *)0)->member)

/* One row of a pinned layout: the member's offset and size as the ABI released them. */
typedef struct pinned {
    const char *abi; /* "1.0", "1.1": the release that made the promise */
    const char *member;
    size_t offset, expected_offset;
    size_t size, expected_size;
} pinned;

#define PIN(type, member, off, sz)                                                               \
    {"1.0", #member, offsetof(type, member), (off), MEMBER_SIZE(type, member), (sz)}
#define PIN11(type, member, off, sz)                                                             \
    {"1.1", #member, offsetof(type, member), (off), MEMBER_SIZE(type, member), (sz)}
#define PIN12(type, member, off, sz)                                                             \
    {"1.2", #member, offsetof(type, member), (off), MEMBER_SIZE(type, member), (sz)}

static void check_layout(const char *type, const pinned *rows, size_t nrows, size_t size,
                         size_t expected_size)
{
    for (size_t i = 0; i < nrows; i++) {
        ck_assert_msg(rows[i].offset == rows[i].expected_offset,
                      "%s.%s moved: offset %zu, ABI %s says %zu", type, rows[i].member,
                      rows[i].offset, rows[i].abi, rows[i].expected_offset);
        ck_assert_msg(rows[i].size == rows[i].expected_size,
                      "%s.%s resized: %zu bytes, ABI %s says %zu", type, rows[i].member,
                      rows[i].size, rows[i].abi, rows[i].expected_size);
    }
    ck_assert_msg(size == expected_size, "sizeof(%s) is %zu, ABI 1.2 says %zu", type, size,
                  expected_size);
}

#define CHECK_LAYOUT(type, rows, expected_size)                                                  \
    check_layout(#type, rows, sizeof rows / sizeof rows[0], sizeof(type), expected_size)

/* ABI 1.0's size of a structure that grew: its first 1.1 member starts exactly there. */
#define CHECK_1_0_END(type, first_1_1, size_1_0)                                                 \
    ck_assert_msg(offsetof(type, first_1_1) == (size_1_0),                                       \
                  "%s: 1.1 starts at %zu, ABI 1.0's size was %zu", #type,                        \
                  offsetof(type, first_1_1), (size_t)(size_1_0))

START_TEST(test_plugin_layout)
{
    static const pinned rows[] = {
        PIN(walnotify_plugin, magic, 0, 4),
        PIN(walnotify_plugin, abi_major, 4, 2),
        PIN(walnotify_plugin, abi_minor, 6, 2),
        PIN(walnotify_plugin, size, 8, 4),
        PIN(walnotify_plugin, name, 16, 8),
        PIN(walnotify_plugin, version, 24, 8),
        PIN(walnotify_plugin, settings, 32, 8),
        PIN(walnotify_plugin, init, 40, 8),
        PIN(walnotify_plugin, handle, 48, 8),
        PIN(walnotify_plugin, shutdown, 56, 8),
        PIN(walnotify_plugin, begin, 64, 8),
        PIN(walnotify_plugin, commit, 72, 8),
        PIN(walnotify_plugin, abort, 80, 8),
        PIN(walnotify_plugin, flush, 88, 8),
        PIN11(walnotify_plugin, ops, 96, 4),
        PIN11(walnotify_plugin, check, 104, 8),
    };

    CHECK_1_0_END(walnotify_plugin, ops, 96);
    CHECK_LAYOUT(walnotify_plugin, rows, 112);
}
END_TEST

START_TEST(test_event_layout)
{
    static const pinned rows[] = {
        PIN(walnotify_event, size, 0, 8),
        PIN(walnotify_event, table, 8, 8),
        PIN(walnotify_event, schema, 16, 8),
        PIN(walnotify_event, name, 24, 8),
        PIN(walnotify_event, op, 32, 4),
        PIN(walnotify_event, commit_lsn, 40, 8),
        PIN(walnotify_event, xid, 48, 4),
        PIN(walnotify_event, commit_time, 56, 8),
        PIN(walnotify_event, seq, 64, 4),
        PIN(walnotify_event, columns, 72, 8),
        PIN(walnotify_event, ncolumns, 80, 8),
        PIN(walnotify_event, old_kind, 88, 4),
        PIN(walnotify_event, old_columns, 96, 8),
        PIN(walnotify_event, nold_columns, 104, 8),
        PIN(walnotify_event, truncate_options, 112, 4),
        PIN11(walnotify_event, id, 120, 16),
        PIN11(walnotify_event, transactional, 136, 1),
        PIN11(walnotify_event, message_prefix, 144, 8),
        PIN11(walnotify_event, message_content, 152, 8),
        PIN11(walnotify_event, message_length, 160, 8),
        PIN11(walnotify_event, snapshot_marker, 168, 4),
        PIN11(walnotify_event, snapshot_rows, 176, 8),
        PIN12(walnotify_event, replay, 184, 1),
    };

    CHECK_1_0_END(walnotify_event, id, 120);
    CHECK_LAYOUT(walnotify_event, rows, 192);
}
END_TEST

START_TEST(test_column_layout)
{
    static const pinned rows[] = {
        PIN(walnotify_column, name, 0, 8),
        PIN(walnotify_column, type_oid, 8, 4),
        PIN(walnotify_column, typmod, 12, 4),
        PIN(walnotify_column, is_key, 16, 1),
        PIN(walnotify_column, kind, 20, 4),
        PIN(walnotify_column, value, 24, 8),
        PIN(walnotify_column, length, 32, 8),
    };

    CHECK_LAYOUT(walnotify_column, rows, 40);
}
END_TEST

START_TEST(test_txn_layout)
{
    static const pinned rows[] = {
        PIN(walnotify_txn, size, 0, 8),
        PIN(walnotify_txn, commit_lsn, 8, 8),
        PIN(walnotify_txn, xid, 16, 4),
        PIN(walnotify_txn, commit_time, 24, 8),
        PIN11(walnotify_txn, kind, 32, 4),
    };

    CHECK_1_0_END(walnotify_txn, kind, 32);
    CHECK_LAYOUT(walnotify_txn, rows, 40);
}
END_TEST

START_TEST(test_host_layout)
{
    static const pinned rows[] = {
        PIN(walnotify_host, size, 0, 8),
        PIN(walnotify_host, abi_major, 8, 4),
        PIN(walnotify_host, abi_minor, 12, 4),
        PIN(walnotify_host, instance_name, 16, 8),
        PIN(walnotify_host, log, 24, 8),
        PIN(walnotify_host, get_string, 32, 8),
        PIN(walnotify_host, get_integer, 40, 8),
        PIN(walnotify_host, get_boolean, 48, 8),
        PIN(walnotify_host, get_list_length, 56, 8),
        PIN(walnotify_host, get_list_item, 64, 8),
        PIN(walnotify_host, host_private, 72, 8),
        PIN11(walnotify_host, source, 80, 8),
        PIN11(walnotify_host, table_count, 88, 8),
        PIN11(walnotify_host, table, 96, 8),
        PIN11(walnotify_host, resume_position, 104, 8),
        PIN11(walnotify_host, flush_position, 112, 8),
        PIN11(walnotify_host, set_flush_always, 120, 8),
        PIN11(walnotify_host, encode_json, 128, 8),
        PIN11(walnotify_host, encode_key, 136, 8),
        PIN11(walnotify_host, fail_events, 144, 8),
        PIN11(walnotify_host, rewind, 152, 8),
        PIN12(walnotify_host, file_open, 160, 8),
        PIN12(walnotify_host, file_append, 168, 8),
        PIN12(walnotify_host, file_sync, 176, 8),
        PIN12(walnotify_host, file_close, 184, 8),
    };

    CHECK_1_0_END(walnotify_host, source, 80);
    CHECK_LAYOUT(walnotify_host, rows, 192);
}
END_TEST

START_TEST(test_id_layout)
{
    static const pinned rows[] = {
        PIN11(walnotify_id, position, 0, 8),
        PIN11(walnotify_id, ordinal, 8, 8),
    };
    CHECK_LAYOUT(walnotify_id, rows, 16);
}
END_TEST

START_TEST(test_source_layout)
{
    static const pinned rows[] = {
        PIN11(walnotify_source, size, 0, 8),
        PIN11(walnotify_source, system_identifier, 8, 8),
        PIN11(walnotify_source, database, 16, 8),
        PIN11(walnotify_source, slot, 24, 8),
        PIN11(walnotify_source, publication, 32, 8),
        PIN11(walnotify_source, server_version, 40, 4),
    };
    CHECK_LAYOUT(walnotify_source, rows, 48);
}
END_TEST

START_TEST(test_table_layout)
{
    static const pinned rows[] = {
        PIN11(walnotify_table, size, 0, 8),
        PIN11(walnotify_table, table, 8, 8),
        PIN11(walnotify_table, schema, 16, 8),
        PIN11(walnotify_table, name, 24, 8),
        PIN11(walnotify_table, ops, 32, 4),
        PIN11(walnotify_table, replica_identity, 36, 4),
        PIN11(walnotify_table, columns, 40, 8),
        PIN11(walnotify_table, ncolumns, 48, 8),
        PIN11(walnotify_table, key_columns, 56, 8),
        PIN11(walnotify_table, nkey_columns, 64, 8),
    };
    CHECK_LAYOUT(walnotify_table, rows, 72);
}
END_TEST

START_TEST(test_setting_layout)
{
    static const pinned rows[] = {
        PIN(walnotify_setting, name, 0, 8),
        PIN(walnotify_setting, type, 8, 4),
        PIN(walnotify_setting, default_value, 16, 8),
        PIN(walnotify_setting, description, 24, 8),
    };

    CHECK_LAYOUT(walnotify_setting, rows, 32);
}
END_TEST

START_TEST(test_constants)
{
    ck_assert_uint_eq(WALNOTIFY_PLUGIN_MAGIC, 0x574E504Cu);
    ck_assert_mem_eq(&(uint32_t){WALNOTIFY_PLUGIN_MAGIC}, "LPNW", 4); /* "WNPL", little-endian */
    ck_assert_int_eq(WALNOTIFY_ABI_MAJOR, 1);
    ck_assert_int_eq(WALNOTIFY_ABI_MINOR, 2);
    ck_assert_uint_eq(WALNOTIFY_FILE_LINES, 1);
    ck_assert_str_eq(WALNOTIFY_PLUGIN_ENTRY_SYMBOL, "walnotify_plugin_entry");
    ck_assert_uint_eq(sizeof(walnotify_status), 4);
    ck_assert_uint_eq(sizeof(walnotify_op), 4);

    ck_assert_int_eq(WALNOTIFY_OK, 0);
    ck_assert_int_eq(WALNOTIFY_RETRY, 1);
    ck_assert_int_eq(WALNOTIFY_FATAL, 2);

    ck_assert_int_eq(WALNOTIFY_OP_INSERT, 1);
    ck_assert_int_eq(WALNOTIFY_OP_UPDATE, 2);
    ck_assert_int_eq(WALNOTIFY_OP_DELETE, 4);
    ck_assert_int_eq(WALNOTIFY_OP_TRUNCATE, 8);
    ck_assert_int_eq(WALNOTIFY_OP_SNAPSHOT, 16);
    ck_assert_int_eq(WALNOTIFY_OP_MESSAGE, 32);
    ck_assert_uint_eq(WALNOTIFY_OPS_CHANGES, 15);
    ck_assert_uint_eq(WALNOTIFY_SNAPSHOT_ROW, 0);
    ck_assert_uint_eq(WALNOTIFY_SNAPSHOT_BEGIN, 1);
    ck_assert_uint_eq(WALNOTIFY_SNAPSHOT_END, 2);
    ck_assert_uint_eq(WALNOTIFY_TXN_CHANGES, 0);
    ck_assert_uint_eq(WALNOTIFY_TXN_SNAPSHOT, 1);
    ck_assert_int_eq(WALNOTIFY_FAILURE_TRANSIENT, 1);
    ck_assert_int_eq(WALNOTIFY_FAILURE_PERMANENT, 2);
    ck_assert_int_eq(WALNOTIFY_IDENTITY_DEFAULT, 'd');
    ck_assert_int_eq(WALNOTIFY_IDENTITY_INDEX, 'i');
    ck_assert_int_eq(WALNOTIFY_IDENTITY_FULL, 'f');
    ck_assert_int_eq(WALNOTIFY_IDENTITY_NOTHING, 'n');

    ck_assert_int_eq(WALNOTIFY_VALUE_NULL, 0);
    ck_assert_int_eq(WALNOTIFY_VALUE_TEXT, 1);
    ck_assert_int_eq(WALNOTIFY_VALUE_UNCHANGED, 2);

    ck_assert_int_eq(WALNOTIFY_OLD_NONE, 0);
    ck_assert_int_eq(WALNOTIFY_OLD_KEY, 1);
    ck_assert_int_eq(WALNOTIFY_OLD_ROW, 2);

    ck_assert_uint_eq(WALNOTIFY_TRUNCATE_CASCADE, 1);
    ck_assert_uint_eq(WALNOTIFY_TRUNCATE_RESTART_IDENTITY, 2);

    ck_assert_int_eq(WALNOTIFY_SETTING_STRING, 1);
    ck_assert_int_eq(WALNOTIFY_SETTING_INTEGER, 2);
    ck_assert_int_eq(WALNOTIFY_SETTING_BOOLEAN, 3);
    ck_assert_int_eq(WALNOTIFY_SETTING_LIST, 4);
    ck_assert_int_eq(WALNOTIFY_SETTING_PATH, 5);

    ck_assert_int_eq(WALNOTIFY_LOG_DEBUG, 0);
    ck_assert_int_eq(WALNOTIFY_LOG_INFO, 1);
    ck_assert_int_eq(WALNOTIFY_LOG_WARNING, 2);
    ck_assert_int_eq(WALNOTIFY_LOG_ERROR, 3);
}
END_TEST

static bool id_below(walnotify_id a, walnotify_id b)
{
    return a.position < b.position || (a.position == b.position && a.ordinal < b.ordinal);
}

/*
 * The identity rule as the header states it, at its edges: a transaction committing exactly at
 * a snapshot's consistent point comes after every identity of that snapshot; the messages of a
 * transaction sit between its changes; a non-transactional message between the transactions
 * around it.
 */
START_TEST(test_identity_order)
{
    const uint64_t consistent = 0x16B3748;
    const uint64_t rows = 1000000;
    walnotify_id snapshot_begin = {consistent - 1, 0};
    walnotify_id snapshot_row = {consistent - 1, rows};
    walnotify_id snapshot_end = {consistent - 1, rows + 1};
    walnotify_id message_first = {consistent, (uint64_t)0 << 32 | 1}; /* before any change */
    walnotify_id change_0 = {consistent, (uint64_t)(0 + 1) << 32}; /* seq 0 */
    walnotify_id message_after_0 = {consistent, (uint64_t)1 << 32 | 1};
    walnotify_id message_after_0_again = {consistent, (uint64_t)1 << 32 | 2};
    walnotify_id change_1 = {consistent, (uint64_t)(1 + 1) << 32}; /* seq 1 */
    walnotify_id alone = {consistent + 0x100, 0}; /* its own LSN, after that commit */
    walnotify_id next_change = {consistent + 0x200, (uint64_t)1 << 32};

    ck_assert(id_below(snapshot_begin, snapshot_row));
    ck_assert(id_below(snapshot_row, snapshot_end));
    ck_assert(id_below(snapshot_end, message_first));
    ck_assert(id_below(message_first, change_0));
    ck_assert(id_below(change_0, message_after_0));
    ck_assert(id_below(message_after_0, message_after_0_again));
    ck_assert(id_below(message_after_0_again, change_1));
    ck_assert(id_below(change_1, alone));
    ck_assert(id_below(alone, next_change));
}
END_TEST

/* The inline helpers (1.2): identities compared as a pair, and what a kept transaction stands
 * for, by its kind. */
START_TEST(test_id_helpers)
{
    walnotify_id change = {0x3000060, (uint64_t)2 << 32};
    walnotify_id later_message = {0x3000060, (uint64_t)2 << 32 | 1};
    walnotify_id next_txn = {0x3000061, (uint64_t)1 << 32};
    walnotify_id row = {0x3000060 - 1, 1000};
    walnotify_txn changes = {.size = sizeof changes, .commit_lsn = 0x3000060};
    walnotify_txn snapshot = {.size = sizeof snapshot,
                              .commit_lsn = 0x3000060,
                              .kind = WALNOTIFY_TXN_SNAPSHOT};
    /* A 1.0 host's transaction has no kind: it is a change transaction. */
    walnotify_txn old = {.size = offsetof(walnotify_txn, kind),
                         .commit_lsn = 0x3000060,
                         .kind = WALNOTIFY_TXN_SNAPSHOT};
    walnotify_id kept;

    ck_assert_int_eq(walnotify_id_compare(change, change), 0);
    ck_assert_int_eq(walnotify_id_compare(change, later_message), -1);
    ck_assert_int_eq(walnotify_id_compare(next_txn, later_message), 1);
    ck_assert_int_eq(walnotify_id_compare(row, change), -1);

    kept = walnotify_txn_id(&changes, change);
    ck_assert_int_eq(walnotify_id_compare(later_message, kept), -1);
    ck_assert_int_eq(walnotify_id_compare(next_txn, kept), 1);
    kept = walnotify_txn_id(&old, change);
    ck_assert_int_eq(walnotify_id_compare(later_message, kept), -1);
    /* A batch of snapshot rows stands for its last row only: the next batch's rows, and a
     * transaction committing at the consistent point itself, come after it. */
    kept = walnotify_txn_id(&snapshot, row);
    ck_assert_int_eq(walnotify_id_compare(kept, row), 0);
    ck_assert_str_eq(walnotify_op_name(WALNOTIFY_OP_TRUNCATE), "truncate");
    ck_assert_str_eq(walnotify_op_name(WALNOTIFY_OP_MESSAGE), "message");
    ck_assert_str_eq(walnotify_op_name((walnotify_op)0), "unknown");
    ck_assert_int_eq(walnotify_id_compare((walnotify_id){row.position, row.ordinal + 1}, kept), 1);
    ck_assert_int_eq(walnotify_id_compare((walnotify_id){0x3000060, 1 << 0}, kept), 1);
}
END_TEST

/* WALNOTIFY_PLUGIN_HEADER fills the fixed members as a plugin would by hand. */
static const walnotify_plugin with_header = {WALNOTIFY_PLUGIN_HEADER, .name = "h"};

START_TEST(test_plugin_header)
{
    ck_assert_uint_eq(with_header.magic, WALNOTIFY_PLUGIN_MAGIC);
    ck_assert_uint_eq(with_header.abi_major, WALNOTIFY_ABI_MAJOR);
    ck_assert_uint_eq(with_header.abi_minor, WALNOTIFY_ABI_MINOR);
    ck_assert_uint_eq(with_header.size, sizeof(walnotify_plugin));
    ck_assert_str_eq(with_header.name, "h");
}
END_TEST

/* The entry point's type is part of the promise too (unevaluated: nothing here links to it). */
_Static_assert(_Generic(&walnotify_plugin_entry, walnotify_plugin_entry_fn: 1, default: 0),
               "walnotify_plugin_entry must stay const walnotify_plugin *(void)");

static Suite *abi_suite(void)
{
    Suite *s = suite_create("abi");
    TCase *layout = tcase_create("layout");

    tcase_add_test(layout, test_plugin_layout);
    tcase_add_test(layout, test_event_layout);
    tcase_add_test(layout, test_column_layout);
    tcase_add_test(layout, test_txn_layout);
    tcase_add_test(layout, test_host_layout);
    tcase_add_test(layout, test_id_layout);
    tcase_add_test(layout, test_source_layout);
    tcase_add_test(layout, test_table_layout);
    tcase_add_test(layout, test_setting_layout);
    tcase_add_test(layout, test_constants);
    tcase_add_test(layout, test_identity_order);
    tcase_add_test(layout, test_id_helpers);
    tcase_add_test(layout, test_plugin_header);
    suite_add_tcase(s, layout);
    return s;
}

int main(void)
{
    return run_suite(abi_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
