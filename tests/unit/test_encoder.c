/*
 * Unit tests of the encoder (core/encoder.c): every operation's canonical JSON, the lines of
 * messages and snapshots, and the key encoder, byte for byte.
 */
#include <walnotify/plugin.h>

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder.h"
#include "sample_event.h"
#include "run_suite.h"

static wn_encoder *enc;

static void setup(void)
{
    enc = wn_encoder_create();
    ck_assert_ptr_nonnull(enc);
}

static void teardown(void)
{
    wn_encoder_destroy(enc);
    enc = NULL;
}

/* ---- events ---------------------------------------------------------------------------------- */

static walnotify_event message_of(bool transactional, const char *content, size_t length)
{
    walnotify_event ev = {
        .size = sizeof(walnotify_event),
        .op = WALNOTIFY_OP_MESSAGE,
        .commit_lsn = transactional ? 0x1A2B3C8 : 0x1A2B400,
        .xid = transactional ? 744 : 0,
        .commit_time = transactional ? INT64_C(1795604400123456) : 0,
        .seq = transactional ? 2 : 0,
        .transactional = transactional,
        .message_prefix = "app",
        .message_content = content,
        .message_length = length,
    };
    ev.id.position = ev.commit_lsn;
    ev.id.ordinal = transactional ? (UINT64_C(2) << 32 | 1) : 0;
    return ev;
}

static walnotify_event snapshot_of(unsigned marker, uint64_t ordinal, const walnotify_column *cols,
                                   size_t ncols)
{
    walnotify_event ev = {
        .size = sizeof(walnotify_event),
        .op = WALNOTIFY_OP_SNAPSHOT,
        .commit_lsn = 0x3000060,
        .columns = cols,
        .ncolumns = ncols,
        .id = {.position = 0x3000060 - 1, .ordinal = ordinal},
        .snapshot_marker = marker,
    };
    if (marker == WALNOTIFY_SNAPSHOT_ROW) {
        ev.table = "public.t";
        ev.schema = "public";
        ev.name = "t";
    }
    return ev;
}

/* The event's JSON is `expected`, its length too, and it is NUL-terminated. */
static void assert_json(const walnotify_event *ev, const char *expected)
{
    size_t length = 0;
    const char *json = wn_encoder_event(enc, ev, &length);
    ck_assert_msg(json != NULL, "no JSON for: %s", expected);
    ck_assert_msg(strcmp(json, expected) == 0, "got:      %s\nexpected: %s", json, expected);
    ck_assert_uint_eq(length, strlen(expected));
}

static void assert_key(const walnotify_event *ev, const walnotify_table *table,
                       const char *expected)
{
    size_t length = 0;
    const char *json = wn_encoder_key(enc, ev, table, &length);
    if (expected == NULL) {
        ck_assert_msg(json == NULL, "expected no key, got %s", json != NULL ? json : "");
        return;
    }
    ck_assert_msg(json != NULL, "no key, expected %s", expected);
    ck_assert_msg(strcmp(json, expected) == 0, "got:      %s\nexpected: %s", json, expected);
    ck_assert_uint_eq(length, strlen(expected));
}

/* ---- changes --------------------------------------------------------------------------------- */

START_TEST(test_insert)
{
    walnotify_column cols[] = {text_col("id", "1"), null_col("note")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 2);
    assert_json(&ev, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"id\":\"1\",\"note\":null}}");
}
END_TEST

START_TEST(test_update_old_key_and_unchanged)
{
    walnotify_column cols[] = {key_col("id", "2"), unchanged_col("doc"), text_col("note", "x"),
                               unchanged_col("pic")};
    walnotify_column old[] = {key_col("id", "1"), null_col("doc"), null_col("note"),
                              null_col("pic")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_UPDATE, cols, 4);
    ev.old_kind = WALNOTIFY_OLD_KEY;
    ev.old_columns = old;
    ev.nold_columns = 4;
    assert_json(&ev, SAMPLE_HEAD "\"op\":\"update\",\"values\":{\"id\":\"2\",\"note\":\"x\"},"
                          "\"unchanged\":[\"doc\",\"pic\"],\"old\":{\"id\":\"1\"}}");
}
END_TEST

START_TEST(test_update_old_row)
{
    walnotify_column cols[] = {key_col("id", "1"), text_col("note", "new")};
    walnotify_column old[] = {key_col("id", "1"), null_col("note")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_UPDATE, cols, 2);
    ev.old_kind = WALNOTIFY_OLD_ROW;
    ev.old_columns = old;
    ev.nold_columns = 2;
    assert_json(&ev, SAMPLE_HEAD "\"op\":\"update\",\"values\":{\"id\":\"1\",\"note\":\"new\"},"
                          "\"old\":{\"id\":\"1\",\"note\":null}}");
}
END_TEST

START_TEST(test_delete)
{
    walnotify_column old[] = {key_col("id", "7"), null_col("note")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_DELETE, NULL, 0);
    ev.seq = 3;
    ev.old_kind = WALNOTIFY_OLD_KEY;
    ev.old_columns = old;
    ev.nold_columns = 2;
    assert_json(&ev, "{\"lsn\":\"0/1A2B3C8\",\"seq\":3,\"xid\":744,"
                     "\"commit_time\":\"2026-11-25T11:00:00.123456Z\",\"table\":\"public.orders\","
                     "\"op\":\"delete\",\"old\":{\"id\":\"7\"}}");
    ev.old_kind = WALNOTIFY_OLD_NONE;
    assert_json(&ev, "{\"lsn\":\"0/1A2B3C8\",\"seq\":3,\"xid\":744,"
                     "\"commit_time\":\"2026-11-25T11:00:00.123456Z\",\"table\":\"public.orders\","
                     "\"op\":\"delete\"}");
}
END_TEST

START_TEST(test_truncate_options)
{
    for (size_t i = 0; i < SAMPLE_TRUNCATES; i++) {
        walnotify_event ev = sample_event(WALNOTIFY_OP_TRUNCATE, NULL, 0);
        char expected[256];
        ev.truncate_options = sample_truncates[i].options;
        snprintf(expected, sizeof expected, SAMPLE_HEAD "\"op\":\"truncate\",\"options\":%s}",
                 sample_truncates[i].json);
        assert_json(&ev, expected);
    }
}
END_TEST

START_TEST(test_escaping_names_and_values)
{
    walnotify_column cols[] = {text_col("we\"ird\\name", "tab\there\x01 \xC3\xA9 \xFF"),
                               text_col("t\xE9", "x")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 2);
    ev.table = "my \"schema\".t";
    assert_json(&ev, "{\"lsn\":\"0/1A2B3C8\",\"seq\":0,\"xid\":744,"
                     "\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
                     "\"table\":\"my \\\"schema\\\".t\",\"op\":\"insert\",\"values\":{"
                     "\"we\\\"ird\\\\name\":\"tab\\there\\u0001 \xC3\xA9 \\ufffd\","
                     "\"t\\ufffd\":\"x\"}}");
}
END_TEST

START_TEST(test_caches_follow_each_event)
{
    /* The cached head and names must follow the event, whatever came before. */
    walnotify_column a[] = {text_col("id", "1"), text_col("note", "a")};
    walnotify_column b[] = {text_col("id", "2"), text_col("other", "b")};
    walnotify_event first = sample_event(WALNOTIFY_OP_INSERT, a, 2);
    walnotify_event second = sample_event(WALNOTIFY_OP_INSERT, b, 2);
    second.table = "public.items";
    second.commit_lsn = 0x2000000;
    second.xid = 745;
    second.seq = 9;
    for (int round = 0; round < 2; round++) {
        assert_json(&first,
                    SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"id\":\"1\",\"note\":\"a\"}}");
        assert_json(&second, "{\"lsn\":\"0/2000000\",\"seq\":9,\"xid\":745,"
                             "\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
                             "\"table\":\"public.items\",\"op\":\"insert\","
                             "\"values\":{\"id\":\"2\",\"other\":\"b\"}}");
    }
}
END_TEST

START_TEST(test_text_lives_until_next_call)
{
    walnotify_column cols[] = {text_col("id", "1")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    const char *json = wn_encoder_event(enc, &ev, NULL);
    ck_assert_ptr_nonnull(json);
    ck_assert_str_eq(json, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"id\":\"1\"}}");
}
END_TEST

START_TEST(test_unknown_operation)
{
    walnotify_event ev = sample_event((walnotify_op)64, NULL, 0);
    size_t length = 99;
    ck_assert_ptr_null(wn_encoder_event(enc, &ev, &length));
    ck_assert_ptr_null(wn_encoder_event(enc, NULL, &length));
    ck_assert_ptr_null(wn_encoder_event(NULL, &ev, &length));
}
END_TEST

START_TEST(test_older_event_without_new_members)
{
    /* An event as a 1.0 structure ends before the message members: no message line from it. */
    walnotify_event ev = message_of(true, "x", 1);
    ev.size = offsetof(walnotify_event, id);
    ck_assert_ptr_null(wn_encoder_event(enc, &ev, NULL));
    ev = snapshot_of(WALNOTIFY_SNAPSHOT_BEGIN, 0, NULL, 0);
    ev.size = offsetof(walnotify_event, id);
    ck_assert_ptr_null(wn_encoder_event(enc, &ev, NULL));
}
END_TEST

/* ---- messages -------------------------------------------------------------------------------- */

/* A message line's keys before "prefix": message_of(false, ...)'s, and message_of(true, ...)'s. */
#define MESSAGE_HEAD                                                                               \
    "{\"lsn\":\"0/1A2B400\",\"ordinal\":0,\"op\":\"message\",\"transactional\":false,"
#define MESSAGE_HEAD_TX                                                                            \
    "{\"lsn\":\"0/1A2B3C8\",\"ordinal\":8589934593,\"xid\":744,"                                 \
    "\"commit_time\":\"2026-11-25T11:00:00.123456Z\",\"op\":\"message\",\"transactional\":true,"

START_TEST(test_message_transactional_utf8)
{
    static const char content[] = "h\xC3\xA9llo \"w\"\n\xF0\x9F\x98\x80";
    walnotify_event ev = message_of(true, content, sizeof content - 1);
    assert_json(&ev, MESSAGE_HEAD_TX "\"prefix\":\"app\","
                     "\"content\":\"h\xC3\xA9llo \\\"w\\\"\\n\xF0\x9F\x98\x80\"}");
}
END_TEST

START_TEST(test_message_not_transactional)
{
    walnotify_event ev = message_of(false, "ping", 4);
    assert_json(&ev, MESSAGE_HEAD "\"prefix\":\"app\",\"content\":\"ping\"}");
}
END_TEST

START_TEST(test_message_binary)
{
    static const char content[] = "\x00\x01\x7F\x80\xFFz";
    walnotify_event ev = message_of(false, content, sizeof content - 1);
    assert_json(&ev, MESSAGE_HEAD "\"prefix\":\"app\",\"content_hex\":\"00017f80ff7a\"}");
}
END_TEST

START_TEST(test_message_nul_in_utf8)
{
    /* Valid UTF-8 but with a NUL: a string would hold \u0000, which many readers cut at. */
    static const char content[] = "a\0b";
    walnotify_event ev = message_of(true, content, 3);
    assert_json(&ev, MESSAGE_HEAD_TX "\"prefix\":\"app\",\"content_hex\":\"610062\"}");
}
END_TEST

START_TEST(test_message_cut_utf8_is_binary)
{
    static const char content[] = "ok\xE2\x82";
    walnotify_event ev = message_of(false, content, sizeof content - 1);
    assert_json(&ev, MESSAGE_HEAD "\"prefix\":\"app\",\"content_hex\":\"6f6be282\"}");
}
END_TEST

START_TEST(test_message_empty)
{
    walnotify_event ev = message_of(false, "", 0);
    ev.message_prefix = "";
    assert_json(&ev, MESSAGE_HEAD "\"prefix\":\"\",\"content\":\"\"}");
    ev.message_content = NULL;
    assert_json(&ev, MESSAGE_HEAD "\"prefix\":\"\",\"content\":\"\"}");
}
END_TEST

START_TEST(test_message_prefix_escaped)
{
    walnotify_event ev = message_of(false, "x", 1);
    ev.message_prefix = "a\"b\\c\n";
    assert_json(&ev, MESSAGE_HEAD "\"prefix\":\"a\\\"b\\\\c\\n\",\"content\":\"x\"}");
}
END_TEST

/* ---- snapshots ------------------------------------------------------------------------------- */

START_TEST(test_snapshot_row_and_markers)
{
    walnotify_column cols[] = {key_col("id", "5"), null_col("note")};
    walnotify_event begin = snapshot_of(WALNOTIFY_SNAPSHOT_BEGIN, 0, NULL, 0);
    walnotify_event row = snapshot_of(WALNOTIFY_SNAPSHOT_ROW, 1, cols, 2);
    walnotify_event end = snapshot_of(WALNOTIFY_SNAPSHOT_END, 2, NULL, 0);
    end.snapshot_rows = 1;
    assert_json(&begin,
                "{\"snapshot\":\"0/3000060\",\"ordinal\":0,\"op\":\"snapshot\",\"marker\":\"begin\"}");
    assert_json(&row, "{\"snapshot\":\"0/3000060\",\"ordinal\":1,\"table\":\"public.t\","
                      "\"op\":\"snapshot\",\"values\":{\"id\":\"5\",\"note\":null}}");
    assert_json(&end, "{\"snapshot\":\"0/3000060\",\"ordinal\":2,\"op\":\"snapshot\","
                      "\"marker\":\"end\",\"rows\":1}");
    /* A snapshot row after a change of another table: the caches follow. */
    walnotify_column other[] = {text_col("x", "1")};
    walnotify_event ins = sample_event(WALNOTIFY_OP_INSERT, other, 1);
    assert_json(&ins, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"x\":\"1\"}}");
    assert_json(&row, "{\"snapshot\":\"0/3000060\",\"ordinal\":1,\"table\":\"public.t\","
                      "\"op\":\"snapshot\",\"values\":{\"id\":\"5\",\"note\":null}}");
    /* A new snapshot (taken again after a crash) at another point: its own position. */
    row.commit_lsn = UINT64_C(0x1F0000000A);
    assert_json(&row, "{\"snapshot\":\"1F/A\",\"ordinal\":1,\"table\":\"public.t\","
                      "\"op\":\"snapshot\",\"values\":{\"id\":\"5\",\"note\":null}}");
}
END_TEST

/* The end marker's line for `value` as ordinal and rows. */
static void assert_number(uint64_t value)
{
    walnotify_event end = snapshot_of(WALNOTIFY_SNAPSHOT_END, value, NULL, 0);
    char expected[160];
    end.snapshot_rows = value;
    snprintf(expected, sizeof expected,
             "{\"snapshot\":\"0/3000060\",\"ordinal\":%" PRIu64 ",\"op\":\"snapshot\","
             "\"marker\":\"end\",\"rows\":%" PRIu64 "}", value, value);
    assert_json(&end, expected);
}

START_TEST(test_numbers_at_their_edges)
{
    /* Each side of every power of ten, and UINT64_MAX's twenty digits. */
    uint64_t power = 1;
    assert_number(0);
    for (int k = 0; k < 20; k++) {
        assert_number(power - 1);
        assert_number(power);
        if (k < 19)
            power *= 10;
    }
    assert_number(UINT64_MAX - 1);
    assert_number(UINT64_MAX);
}
END_TEST

START_TEST(test_snapshot_unknown_marker)
{
    walnotify_event ev = snapshot_of(7, 3, NULL, 0);
    ck_assert_ptr_null(wn_encoder_event(enc, &ev, NULL));
}
END_TEST

/* ---- keys ------------------------------------------------------------------------------------ */

/* A table (a, b, c, d) whose key is (c, a), in that order. */
static const walnotify_column table_cols[] = {
    {.name = "a", .type_oid = 23, .typmod = -1, .is_key = true},
    {.name = "b", .type_oid = 25, .typmod = -1},
    {.name = "c", .type_oid = 25, .typmod = -1, .is_key = true},
    {.name = "d", .type_oid = 25, .typmod = -1},
};
static const size_t table_key[] = {2, 0};

static walnotify_table table_of(walnotify_replica_identity identity)
{
    return (walnotify_table){
        .size = sizeof(walnotify_table),
        .table = "public.orders",
        .schema = "public",
        .name = "orders",
        .ops = WALNOTIFY_OPS_CHANGES,
        .replica_identity = identity,
        .columns = table_cols,
        .ncolumns = 4,
        .key_columns = table_key,
        .nkey_columns = 2,
    };
}

START_TEST(test_key_composite_via_table)
{
    walnotify_column cols[] = {key_col("a", "1"), text_col("b", "x"), key_col("c", "k\"y"),
                               null_col("d")};
    walnotify_table table = table_of(WALNOTIFY_IDENTITY_DEFAULT);
    walnotify_event ins = sample_event(WALNOTIFY_OP_INSERT, cols, 4);
    assert_key(&ins, &table, "{\"c\":\"k\\\"y\",\"a\":\"1\"}");
    walnotify_event upd = sample_event(WALNOTIFY_OP_UPDATE, cols, 4);
    assert_key(&upd, &table, "{\"c\":\"k\\\"y\",\"a\":\"1\"}");
    walnotify_event snap = snapshot_of(WALNOTIFY_SNAPSHOT_ROW, 1, cols, 4);
    assert_key(&snap, &table, "{\"c\":\"k\\\"y\",\"a\":\"1\"}");
}
END_TEST

START_TEST(test_key_matched_by_name)
{
    /* After an ALTER TABLE the event's columns may not line up with the table's. */
    walnotify_column cols[] = {text_col("d", "dd"), text_col("c", "cc"), text_col("a", "aa")};
    walnotify_table table = table_of(WALNOTIFY_IDENTITY_DEFAULT);
    walnotify_event ins = sample_event(WALNOTIFY_OP_INSERT, cols, 3);
    assert_key(&ins, &table, "{\"c\":\"cc\",\"a\":\"aa\"}");
    /* A key column missing from the event: no key. */
    walnotify_event short_ev = sample_event(WALNOTIFY_OP_INSERT, cols, 2);
    assert_key(&short_ev, &table, NULL);
}
END_TEST

START_TEST(test_key_is_key_fallback)
{
    walnotify_column cols[] = {key_col("a", "1"), text_col("b", "x"), key_col("c", "2"),
                               null_col("d")};
    walnotify_event ins = sample_event(WALNOTIFY_OP_INSERT, cols, 4);
    assert_key(&ins, NULL, "{\"a\":\"1\",\"c\":\"2\"}");
    walnotify_column none[] = {text_col("b", "x")};
    walnotify_event no_key = sample_event(WALNOTIFY_OP_INSERT, none, 1);
    assert_key(&no_key, NULL, NULL);
}
END_TEST

START_TEST(test_key_full_identity_uses_table_key)
{
    /* Under REPLICA IDENTITY FULL pgoutput marks every column as key; the table's primary key
     * decides. */
    walnotify_column old[] = {key_col("a", "1"), key_col("b", "x"), key_col("c", "2"),
                              key_col("d", "y")};
    walnotify_table table = table_of(WALNOTIFY_IDENTITY_FULL);
    walnotify_event del = sample_event(WALNOTIFY_OP_DELETE, NULL, 0);
    del.old_kind = WALNOTIFY_OLD_ROW;
    del.old_columns = old;
    del.nold_columns = 4;
    assert_key(&del, &table, "{\"c\":\"2\",\"a\":\"1\"}");
    /* A table without a key: none, even though every column is marked. */
    table.nkey_columns = 0;
    assert_key(&del, &table, NULL);
}
END_TEST

START_TEST(test_key_delete_old_key)
{
    walnotify_column old[] = {key_col("a", "1"), null_col("b"), key_col("c", "2"), null_col("d")};
    walnotify_table table = table_of(WALNOTIFY_IDENTITY_DEFAULT);
    walnotify_event del = sample_event(WALNOTIFY_OP_DELETE, NULL, 0);
    del.old_kind = WALNOTIFY_OLD_KEY;
    del.old_columns = old;
    del.nold_columns = 4;
    assert_key(&del, &table, "{\"c\":\"2\",\"a\":\"1\"}");
    assert_key(&del, NULL, "{\"a\":\"1\",\"c\":\"2\"}");
    del.old_kind = WALNOTIFY_OLD_NONE;
    assert_key(&del, &table, NULL);
}
END_TEST

START_TEST(test_key_update_uses_new_row)
{
    walnotify_column cols[] = {key_col("a", "9"), text_col("b", "x"), key_col("c", "8"),
                               null_col("d")};
    walnotify_column old[] = {key_col("a", "1"), null_col("b"), key_col("c", "2"), null_col("d")};
    walnotify_table table = table_of(WALNOTIFY_IDENTITY_DEFAULT);
    walnotify_event upd = sample_event(WALNOTIFY_OP_UPDATE, cols, 4);
    upd.old_kind = WALNOTIFY_OLD_KEY;
    upd.old_columns = old;
    upd.nold_columns = 4;
    assert_key(&upd, &table, "{\"c\":\"8\",\"a\":\"9\"}");
}
END_TEST

START_TEST(test_key_unchanged_is_null)
{
    walnotify_column cols[] = {key_col("a", "1"), text_col("b", "x"), unchanged_col("c"),
                               null_col("d")};
    cols[2].is_key = true;
    walnotify_table table = table_of(WALNOTIFY_IDENTITY_DEFAULT);
    walnotify_event upd = sample_event(WALNOTIFY_OP_UPDATE, cols, 4);
    assert_key(&upd, &table, NULL);
    assert_key(&upd, NULL, NULL);
}
END_TEST

START_TEST(test_key_null_value)
{
    walnotify_column cols[] = {key_col("a", "1"), null_col("c")};
    cols[1].is_key = true;
    walnotify_table table = table_of(WALNOTIFY_IDENTITY_INDEX);
    walnotify_event ins = sample_event(WALNOTIFY_OP_INSERT, cols, 2);
    assert_key(&ins, &table, "{\"c\":null,\"a\":\"1\"}");
}
END_TEST

START_TEST(test_key_none_for_truncate_message_marker)
{
    walnotify_column cols[] = {key_col("a", "1")};
    walnotify_table table = table_of(WALNOTIFY_IDENTITY_DEFAULT);
    walnotify_event trunc = sample_event(WALNOTIFY_OP_TRUNCATE, cols, 1);
    assert_key(&trunc, &table, NULL);
    assert_key(&trunc, NULL, NULL);
    walnotify_event msg = message_of(true, "x", 1);
    assert_key(&msg, NULL, NULL);
    walnotify_event begin = snapshot_of(WALNOTIFY_SNAPSHOT_BEGIN, 0, NULL, 0);
    assert_key(&begin, &table, NULL);
    walnotify_event end = snapshot_of(WALNOTIFY_SNAPSHOT_END, 5, NULL, 0);
    assert_key(&end, NULL, NULL);
}
END_TEST

START_TEST(test_key_bad_table_index)
{
    static const size_t bad_key[] = {4};
    walnotify_column cols[] = {key_col("a", "1")};
    walnotify_table table = table_of(WALNOTIFY_IDENTITY_DEFAULT);
    table.key_columns = bad_key;
    table.nkey_columns = 1;
    walnotify_event ins = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    assert_key(&ins, &table, NULL);
}
END_TEST

START_TEST(test_key_then_event)
{
    /* Key and event share the encoder's buffer: each call's text is whole. */
    walnotify_column cols[] = {key_col("a", "1"), text_col("b", "x")};
    walnotify_event ins = sample_event(WALNOTIFY_OP_INSERT, cols, 2);
    assert_key(&ins, NULL, "{\"a\":\"1\"}");
    assert_json(&ins, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"a\":\"1\",\"b\":\"x\"}}");
    assert_key(&ins, NULL, "{\"a\":\"1\"}");
}
END_TEST

START_TEST(test_huge_value_memory_let_go)
{
    /* A 20 MiB value renders whole, and the next small event still renders right. */
    const size_t size = (size_t)20 * 1024 * 1024;
    char *value = malloc(size + 1);
    ck_assert_ptr_nonnull(value);
    memset(value, 'v', size);
    value[size] = '\0';
    walnotify_column big[] = {text_col("id", value)};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, big, 1);
    size_t length = 0;
    ck_assert_ptr_nonnull(wn_encoder_event(enc, &ev, &length));
    ck_assert_uint_eq(length,
                      strlen(SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"id\":\"\"}}") + size);
    free(value);
    walnotify_column small[] = {text_col("id", "1")};
    ev = sample_event(WALNOTIFY_OP_INSERT, small, 1);
    assert_json(&ev, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"id\":\"1\"}}");
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("encoder");
    TCase *changes = tcase_create("changes");
    TCase *v11 = tcase_create("messages and snapshots");
    TCase *keys = tcase_create("keys");

    tcase_add_checked_fixture(changes, setup, teardown);
    tcase_add_test(changes, test_insert);
    tcase_add_test(changes, test_update_old_key_and_unchanged);
    tcase_add_test(changes, test_update_old_row);
    tcase_add_test(changes, test_delete);
    tcase_add_test(changes, test_truncate_options);
    tcase_add_test(changes, test_escaping_names_and_values);
    tcase_add_test(changes, test_caches_follow_each_event);
    tcase_add_test(changes, test_text_lives_until_next_call);
    tcase_add_test(changes, test_unknown_operation);
    tcase_add_test(changes, test_older_event_without_new_members);
    tcase_add_test(changes, test_huge_value_memory_let_go);
    suite_add_tcase(suite, changes);

    tcase_add_checked_fixture(v11, setup, teardown);
    tcase_add_test(v11, test_message_transactional_utf8);
    tcase_add_test(v11, test_message_not_transactional);
    tcase_add_test(v11, test_message_binary);
    tcase_add_test(v11, test_message_nul_in_utf8);
    tcase_add_test(v11, test_message_cut_utf8_is_binary);
    tcase_add_test(v11, test_message_empty);
    tcase_add_test(v11, test_message_prefix_escaped);
    tcase_add_test(v11, test_snapshot_row_and_markers);
    tcase_add_test(v11, test_snapshot_unknown_marker);
    tcase_add_test(v11, test_numbers_at_their_edges);
    suite_add_tcase(suite, v11);

    tcase_add_checked_fixture(keys, setup, teardown);
    tcase_add_test(keys, test_key_composite_via_table);
    tcase_add_test(keys, test_key_matched_by_name);
    tcase_add_test(keys, test_key_is_key_fallback);
    tcase_add_test(keys, test_key_full_identity_uses_table_key);
    tcase_add_test(keys, test_key_delete_old_key);
    tcase_add_test(keys, test_key_update_uses_new_row);
    tcase_add_test(keys, test_key_unchanged_is_null);
    tcase_add_test(keys, test_key_null_value);
    tcase_add_test(keys, test_key_none_for_truncate_message_marker);
    tcase_add_test(keys, test_key_bad_table_index);
    tcase_add_test(keys, test_key_then_event);
    suite_add_tcase(suite, keys);

    return run_suite(suite) == 0 ? 0 : 1;
}
