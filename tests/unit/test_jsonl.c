/*
 * Unit tests of the jsonl plugin: the shared object is loaded with dlopen, driven through a fake
 * host that lends it the host's real encoder (core/encoder.c), and its output files are compared
 * byte for byte.
 */
#include <walnotify/plugin.h>

#include "encoder.h"
#include "sample_event.h"
#include "run_suite.h"
#include "unit_paths.h"

#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- loading the plugin ---------------------------------------------------------------------- */

static void *plugin_handle;
static const walnotify_plugin *plugin;
static char work_dir[PATH_MAX];

static void setup(void)
{
    char path[PATH_MAX];
    unit_repo_file(path, sizeof path, __FILE__, "build/plugins/jsonl.so");
    plugin_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(plugin_handle != NULL, "dlopen %s: %s", path, dlerror());
    walnotify_plugin_entry_fn entry;
    *(void **)&entry = dlsym(plugin_handle, WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
    ck_assert_msg(entry != NULL, "%s has no %s", path, WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
    plugin = entry();
    ck_assert_ptr_nonnull(plugin);

    snprintf(work_dir, sizeof work_dir, "/tmp/test_jsonl.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(work_dir));
}

static void teardown(void)
{
    unit_remove_tree(work_dir);
    dlclose(plugin_handle);
    plugin_handle = NULL;
    plugin = NULL;
}

/* ---- the fake host --------------------------------------------------------------------------- */

typedef struct fake_host {
    walnotify_host host;
    wn_encoder *encoder;
    char path[PATH_MAX];
    bool fsync;
    char log[16384];
    size_t log_len;
} fake_host;

static void fake_log(const walnotify_host *host, walnotify_log_level level, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void fake_log(const walnotify_host *host, walnotify_log_level level, const char *format, ...)
{
    fake_host *fake = host->host_private;
    static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
    size_t room = sizeof fake->log - fake->log_len;
    int n = snprintf(fake->log + fake->log_len, room, "%s: ", names[level]);
    if (n > 0 && (size_t)n < room)
        fake->log_len += (size_t)n;
    room = sizeof fake->log - fake->log_len;
    va_list args;
    va_start(args, format);
    n = vsnprintf(fake->log + fake->log_len, room, format, args);
    va_end(args);
    if (n > 0 && (size_t)n < room)
        fake->log_len += (size_t)n;
    if (fake->log_len + 1 < sizeof fake->log)
        fake->log[fake->log_len++] = '\n';
    fake->log[fake->log_len] = '\0';
}

static const char *fake_get_string(const walnotify_host *host, const char *name)
{
    fake_host *fake = host->host_private;
    return strcmp(name, "path") == 0 ? fake->path : NULL;
}

static int64_t fake_get_integer(const walnotify_host *host, const char *name)
{
    (void)host;
    (void)name;
    return 0;
}

static bool fake_get_boolean(const walnotify_host *host, const char *name)
{
    fake_host *fake = host->host_private;
    return strcmp(name, "fsync") == 0 ? fake->fsync : false;
}

static size_t fake_get_list_length(const walnotify_host *host, const char *name)
{
    (void)host;
    (void)name;
    return 0;
}

static const char *fake_get_list_item(const walnotify_host *host, const char *name, size_t index)
{
    (void)host;
    (void)name;
    (void)index;
    return NULL;
}

static const char *fake_encode_json(const walnotify_host *host, const walnotify_event *event,
                                    size_t *length)
{
    fake_host *fake = host->host_private;
    return wn_encoder_event(fake->encoder, event, length);
}

/* A host whose `path` setting is FILE inside the test's folder ("-" stays standard output). */
static fake_host *fake_new(const char *file)
{
    fake_host *fake = calloc(1, sizeof *fake);
    ck_assert_ptr_nonnull(fake);
    fake->host = (walnotify_host){
        .size = sizeof(walnotify_host),
        .abi_major = WALNOTIFY_ABI_MAJOR,
        .abi_minor = WALNOTIFY_ABI_MINOR,
        .instance_name = "test",
        .log = fake_log,
        .get_string = fake_get_string,
        .get_integer = fake_get_integer,
        .get_boolean = fake_get_boolean,
        .get_list_length = fake_get_list_length,
        .get_list_item = fake_get_list_item,
        .host_private = fake,
        .encode_json = fake_encode_json,
    };
    fake->encoder = wn_encoder_create();
    ck_assert_ptr_nonnull(fake->encoder);
    if (strcmp(file, "-") == 0 || file[0] == '/')
        snprintf(fake->path, sizeof fake->path, "%s", file);
    else
        ck_assert(snprintf(fake->path, sizeof fake->path, "%s/%s", work_dir, file) <
                  (int)sizeof fake->path);
    fake->fsync = true;
    return fake;
}

static void fake_free(fake_host *fake)
{
    wn_encoder_destroy(fake->encoder);
    free(fake);
}

static void *start(fake_host *fake)
{
    void *state = NULL;
    ck_assert_int_eq(plugin->init(&fake->host, &state), WALNOTIFY_OK);
    ck_assert_ptr_nonnull(state);
    return state;
}

/* ---- files ----------------------------------------------------------------------------------- */

/* The whole file, NUL-terminated; *length gets its size. */
static char *slurp(const char *path, size_t *length)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    ck_assert_int_ge(size, 0);
    rewind(f);
    char *data = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(fread(data, 1, (size_t)size, f), (size_t)size);
    data[size] = '\0';
    fclose(f);
    if (length != NULL)
        *length = (size_t)size;
    return data;
}

static void spit(const char *path, const char *data, size_t length)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "create %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(data, 1, length, f), length);
    ck_assert_int_eq(fclose(f), 0);
}

static void assert_file(const char *path, const char *expected)
{
    size_t length;
    char *data = slurp(path, &length);
    ck_assert_msg(length == strlen(expected) && strcmp(data, expected) == 0,
                  "got:\n%s\nexpected:\n%s", data, expected);
    free(data);
}

/* ---- events ---------------------------------------------------------------------------------- */

static const walnotify_txn test_txn = {
    .size = sizeof(walnotify_txn), .commit_lsn = 0x1A2B3C8, .xid = 744, .commit_time = 0};

/* The file one event makes in a fresh instance, handled outside a transaction. */
static char *render(const walnotify_event *ev)
{
    fake_host *fake = fake_new("render.jsonl");
    unlink(fake->path);
    void *state = start(fake);
    ck_assert_int_eq(plugin->handle(state, ev), WALNOTIFY_OK);
    plugin->shutdown(state);
    char *data = slurp(fake->path, NULL);
    fake_free(fake);
    return data;
}

static void assert_renders(const walnotify_event *ev, const char *expected_line)
{
    char *data = render(ev);
    size_t n = strlen(expected_line);
    ck_assert_msg(strncmp(data, expected_line, n) == 0 && data[n] == '\n' && data[n + 1] == '\0',
                  "got:      %s\nexpected: %s", data, expected_line);
    free(data);
}

/* ---- formatting ------------------------------------------------------------------------------ */

START_TEST(test_descriptor)
{
    ck_assert_uint_eq(plugin->magic, WALNOTIFY_PLUGIN_MAGIC);
    ck_assert_uint_eq(plugin->abi_major, WALNOTIFY_ABI_MAJOR);
    ck_assert_uint_eq(plugin->abi_minor, WALNOTIFY_ABI_MINOR);
    ck_assert_uint_eq(plugin->size, sizeof(walnotify_plugin));
    ck_assert_str_eq(plugin->name, "jsonl");
    ck_assert_uint_eq(plugin->abi_minor, 2);
    ck_assert_uint_eq(plugin->ops, WALNOTIFY_OP_INSERT | WALNOTIFY_OP_UPDATE |
                                       WALNOTIFY_OP_DELETE | WALNOTIFY_OP_TRUNCATE |
                                       WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE);
    ck_assert_ptr_nonnull(plugin->init);
    ck_assert_ptr_nonnull(plugin->handle);
    ck_assert_ptr_nonnull(plugin->shutdown);
    ck_assert_ptr_nonnull(plugin->begin);
    ck_assert_ptr_nonnull(plugin->commit);
    ck_assert_ptr_nonnull(plugin->abort);
    ck_assert_ptr_nonnull(plugin->flush);

    const walnotify_setting *s = plugin->settings;
    ck_assert_str_eq(s[0].name, "path");
    ck_assert_int_eq(s[0].type, WALNOTIFY_SETTING_PATH);
    ck_assert_str_eq(s[0].default_value, "-");
    ck_assert_ptr_nonnull(s[0].description);
    ck_assert_str_eq(s[1].name, "fsync");
    ck_assert_int_eq(s[1].type, WALNOTIFY_SETTING_BOOLEAN);
    ck_assert_str_eq(s[1].default_value, "true");
    ck_assert_ptr_nonnull(s[1].description);
    ck_assert_str_eq(s[2].name, "mode");
    ck_assert_int_eq(s[2].type, WALNOTIFY_SETTING_STRING);
    ck_assert_str_eq(s[2].default_value, "0600");
    ck_assert_ptr_nonnull(s[2].description);
    ck_assert_ptr_null(s[3].name);
}
END_TEST

START_TEST(test_insert_contract_example)
{
    walnotify_column cols[] = {text_col("id", "1"), null_col("note")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 2);
    assert_renders(&ev, "{\"lsn\":\"0/1A2B3C8\",\"seq\":0,\"xid\":744,"
                        "\"commit_time\":\"2026-11-25T11:00:00.123456Z\",\"table\":\"public.orders\","
                        "\"op\":\"insert\",\"values\":{\"id\":\"1\",\"note\":null}}");
}
END_TEST

START_TEST(test_insert_empty_and_quotes)
{
    walnotify_column cols[] = {text_col("empty", ""), text_col("q", "say \"hi\" \\ back\\"),
                               text_col("we\"ird\\name", "x"), null_col("n")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 4);
    ev.table = "my \"schema\".t";
    ev.seq = 12;
    assert_renders(&ev, "{\"lsn\":\"0/1A2B3C8\",\"seq\":12,\"xid\":744,"
                        "\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
                        "\"table\":\"my \\\"schema\\\".t\",\"op\":\"insert\","
                        "\"values\":{\"empty\":\"\",\"q\":\"say \\\"hi\\\" \\\\ back\\\\\","
                        "\"we\\\"ird\\\\name\":\"x\",\"n\":null}}");
}
END_TEST

START_TEST(test_insert_no_columns)
{
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, NULL, 0);
    assert_renders(&ev, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{}}");
}
END_TEST

START_TEST(test_control_characters)
{
    char raw[34];
    for (int c = 0; c < 0x20; c++)
        raw[c] = (char)c;
    raw[32] = 0x7F;
    raw[33] = 'z';
    walnotify_column cols[] = {bytes_col("c", raw, sizeof raw)};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    assert_renders(&ev, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"c\":\""
                        "\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
                        "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
                        "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017"
                        "\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"
                        "\\u007fz\"}}");
}
END_TEST

START_TEST(test_nul_respects_length)
{
    /* The length rules, not the NUL: bytes after an embedded NUL are kept, bytes past the
     * length are not. */
    static const char raw[] = "a\0b\0NOT";
    walnotify_column cols[] = {bytes_col("v", raw, 3)};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    assert_renders(&ev, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"v\":\"a\\u0000b\"}}");
}
END_TEST

START_TEST(test_valid_utf8_passes_through)
{
    /* 2-, 3- and 4-byte sequences, and the extremes of each form. */
    walnotify_column cols[] = {
        text_col("v", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"),
        text_col("w", "\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF"
                      "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"),
    };
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 2);
    assert_renders(&ev, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{"
                                  "\"v\":\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\","
                                  "\"w\":\"\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80"
                                  "\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF\"}}");
}
END_TEST

START_TEST(test_invalid_utf8_replaced_per_byte)
{
    walnotify_column cols[] = {
        text_col("cont", "a\x80z"),                /* stray continuation byte */
        text_col("overlong2", "\xC0\xAF"),         /* overlong '/' */
        text_col("overlong3", "\xE0\x80\xAF"),     /* overlong '/' in three bytes */
        text_col("overlong4", "\xF0\x8F\xBF\xBF"), /* overlong U+FFFF */
        text_col("surrogate", "\xED\xA0\x80"),     /* U+D800 */
        text_col("above", "\xF4\x90\x80\x80"),     /* U+110000 */
        text_col("f5", "\xF5\xFF\xFE"),            /* never valid */
        text_col("cut_mid", "\xE2\x82z"),          /* sequence cut short by ASCII */
        text_col("cut_end", "x\xF0\x9F\x98"),      /* sequence cut short by the end */
        text_col("latin1", "caf\xE9!"),            /* SQL_ASCII text in Latin-1 */
    };
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, sizeof cols / sizeof cols[0]);
    assert_renders(&ev, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{"
                                  "\"cont\":\"a\\ufffdz\","
                                  "\"overlong2\":\"\\ufffd\\ufffd\","
                                  "\"overlong3\":\"\\ufffd\\ufffd\\ufffd\","
                                  "\"overlong4\":\"\\ufffd\\ufffd\\ufffd\\ufffd\","
                                  "\"surrogate\":\"\\ufffd\\ufffd\\ufffd\","
                                  "\"above\":\"\\ufffd\\ufffd\\ufffd\\ufffd\","
                                  "\"f5\":\"\\ufffd\\ufffd\\ufffd\","
                                  "\"cut_mid\":\"\\ufffd\\ufffdz\","
                                  "\"cut_end\":\"x\\ufffd\\ufffd\\ufffd\","
                                  "\"latin1\":\"caf\\ufffd!\"}}");
}
END_TEST

START_TEST(test_invalid_utf8_in_names)
{
    walnotify_column cols[] = {text_col("n\xFF", "v")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    ev.table = "public.t\xC3";
    assert_renders(&ev, "{\"lsn\":\"0/1A2B3C8\",\"seq\":0,\"xid\":744,"
                        "\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
                        "\"table\":\"public.t\\ufffd\",\"op\":\"insert\","
                        "\"values\":{\"n\\ufffd\":\"v\"}}");
}
END_TEST

START_TEST(test_update_unchanged_and_old_key)
{
    walnotify_column cols[] = {key_col("id", "1"), text_col("note", "x"),
                               (walnotify_column){.name = "big", .type_oid = 25, .typmod = -1,
                                                  .kind = WALNOTIFY_VALUE_UNCHANGED},
                               null_col("gone"),
                               (walnotify_column){.name = "doc", .type_oid = 3802, .typmod = -1,
                                                  .kind = WALNOTIFY_VALUE_UNCHANGED}};
    walnotify_column old[] = {key_col("id", "0"), text_col("note", "not a key"), null_col("gone")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_UPDATE, NULL, 0);
    ev.columns = cols;
    ev.ncolumns = 5;
    ev.old_kind = WALNOTIFY_OLD_KEY;
    ev.old_columns = old;
    ev.nold_columns = 3;
    assert_renders(&ev, SAMPLE_HEAD "\"op\":\"update\",\"values\":{\"id\":\"1\",\"note\":\"x\","
                                  "\"gone\":null},\"unchanged\":[\"big\",\"doc\"],"
                                  "\"old\":{\"id\":\"0\"}}");
}
END_TEST

START_TEST(test_update_old_row)
{
    walnotify_column cols[] = {key_col("id", "1"), text_col("note", "new")};
    walnotify_column old[] = {key_col("id", "1"), text_col("note", "old"), null_col("n")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_UPDATE, NULL, 0);
    ev.columns = cols;
    ev.ncolumns = 2;
    ev.old_kind = WALNOTIFY_OLD_ROW;
    ev.old_columns = old;
    ev.nold_columns = 3;
    assert_renders(&ev, SAMPLE_HEAD "\"op\":\"update\",\"values\":{\"id\":\"1\",\"note\":\"new\"},"
                                  "\"old\":{\"id\":\"1\",\"note\":\"old\",\"n\":null}}");
}
END_TEST

START_TEST(test_update_without_old)
{
    walnotify_column cols[] = {key_col("id", "1")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_UPDATE, NULL, 0);
    ev.columns = cols;
    ev.ncolumns = 1;
    assert_renders(&ev, SAMPLE_HEAD "\"op\":\"update\",\"values\":{\"id\":\"1\"}}");
}
END_TEST

START_TEST(test_delete_with_key)
{
    walnotify_column old[] = {key_col("id", "7"), key_col("region", "eu"), null_col("note")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_DELETE, NULL, 0);
    ev.old_kind = WALNOTIFY_OLD_KEY;
    ev.old_columns = old;
    ev.nold_columns = 3;
    ev.seq = 3;
    assert_renders(&ev, "{\"lsn\":\"0/1A2B3C8\",\"seq\":3,\"xid\":744,"
                        "\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
                        "\"table\":\"public.orders\",\"op\":\"delete\","
                        "\"old\":{\"id\":\"7\",\"region\":\"eu\"}}");
}
END_TEST

START_TEST(test_delete_with_old_row)
{
    walnotify_column old[] = {key_col("id", "7"), null_col("note")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_DELETE, NULL, 0);
    ev.old_kind = WALNOTIFY_OLD_ROW;
    ev.old_columns = old;
    ev.nold_columns = 2;
    assert_renders(&ev, SAMPLE_HEAD "\"op\":\"delete\",\"old\":{\"id\":\"7\",\"note\":null}}");
}
END_TEST

START_TEST(test_truncate_options)
{
    for (size_t i = 0; i < SAMPLE_TRUNCATES; i++) {
        walnotify_event ev = sample_event(WALNOTIFY_OP_TRUNCATE, NULL, 0);
        ev.truncate_options = sample_truncates[i].options;
        char expected[512];
        snprintf(expected, sizeof expected, SAMPLE_HEAD "\"op\":\"truncate\",\"options\":%s}",
                 sample_truncates[i].json);
        assert_renders(&ev, expected);
    }
}
END_TEST

START_TEST(test_truncate_one_line_per_table)
{
    fake_host *fake = fake_new("t.jsonl");
    void *state = start(fake);
    walnotify_event a = sample_event(WALNOTIFY_OP_TRUNCATE, NULL, 0);
    walnotify_event b = sample_event(WALNOTIFY_OP_TRUNCATE, NULL, 0);
    a.truncate_options = b.truncate_options = WALNOTIFY_TRUNCATE_CASCADE;
    b.table = "public.items";
    b.seq = 1;
    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &a), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &b), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->commit(state, &test_txn), WALNOTIFY_OK);
    plugin->shutdown(state);
    assert_file(fake->path,
                SAMPLE_HEAD "\"op\":\"truncate\",\"options\":[\"cascade\"]}\n"
                "{\"lsn\":\"0/1A2B3C8\",\"seq\":1,\"xid\":744,"
                "\"commit_time\":\"2026-11-25T11:00:00.123456Z\",\"table\":\"public.items\","
                "\"op\":\"truncate\",\"options\":[\"cascade\"]}\n");
    fake_free(fake);
}
END_TEST

START_TEST(test_commit_time_formatting)
{
    static const struct {
        int64_t usec;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000000Z"},
        {1, "1970-01-01T00:00:00.000001Z"},
        {-1, "1969-12-31T23:59:59.999999Z"},
        {-1000000, "1969-12-31T23:59:59.000000Z"},
        {-999999, "1969-12-31T23:59:59.000001Z"},
        {INT64_C(946684800000000), "2000-01-01T00:00:00.000000Z"}, /* PostgreSQL's epoch */
        {INT64_C(946684799999999), "1999-12-31T23:59:59.999999Z"},
        {INT64_C(1709251199000000), "2024-02-29T23:59:59.000000Z"},
        {INT64_C(1709251200000000), "2024-03-01T00:00:00.000000Z"},
        {INT64_C(951782400000000), "2000-02-29T00:00:00.000000Z"},
        {INT64_C(1795604400123456), "2026-11-25T11:00:00.123456Z"},
        {INT64_C(-2203845904000000), "1900-03-01T12:34:56.000000Z"},
        {INT64_C(-62135596800000000), "0001-01-01T00:00:00.000000Z"},
        {INT64_C(253402300799999999), "9999-12-31T23:59:59.999999Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, NULL, 0);
        ev.commit_time = cases[i].usec;
        char *line = render(&ev);
        char expected[128];
        snprintf(expected, sizeof expected, "\"commit_time\":\"%s\",", cases[i].text);
        ck_assert_msg(strstr(line, expected) != NULL, "%lld: got %s, expected %s",
                      (long long)cases[i].usec, line, expected);
        free(line);
    }
}
END_TEST

START_TEST(test_lsn_formatting)
{
    static const struct {
        uint64_t lsn;
        const char *text;
    } cases[] = {
        {0, "0/0"},
        {0x1A2B3C8, "0/1A2B3C8"},
        {UINT64_C(0x100000000), "1/0"},
        {UINT64_C(0x16B374D848), "16/B374D848"},
        {UINT64_C(0xABCDEF0012345678), "ABCDEF00/12345678"},
        {UINT64_MAX, "FFFFFFFF/FFFFFFFF"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, NULL, 0);
        ev.commit_lsn = cases[i].lsn;
        ev.xid = UINT32_MAX;
        ev.seq = UINT32_MAX;
        char *line = render(&ev);
        char expected[128];
        snprintf(expected, sizeof expected,
                 "{\"lsn\":\"%s\",\"seq\":4294967295,\"xid\":4294967295,", cases[i].text);
        ck_assert_msg(strncmp(line, expected, strlen(expected)) == 0, "got %s, expected %s", line,
                      expected);
        free(line);
    }
}
END_TEST

START_TEST(test_large_value)
{
    /* 2 MiB of text with escapes, multi-byte characters across the escaper's chunk edges and an
     * invalid byte, in one transaction: the line must come out whole and exact. */
    const size_t size = (size_t)2 * 1024 * 1024;
    char *value = malloc(size);
    char *expected = malloc(size * 6 + 256);
    ck_assert_ptr_nonnull(value);
    ck_assert_ptr_nonnull(expected);
    size_t e = (size_t)snprintf(expected, 256,
                                SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"big\":\"");
    for (size_t i = 0; i < size;) {
        if (i % 65536 == 65534 && i + 4 <= size) {
            memcpy(value + i, "\xF0\x9F\x98\x80", 4); /* straddles a 64 KiB boundary */
            memcpy(expected + e, "\xF0\x9F\x98\x80", 4);
            i += 4;
            e += 4;
        } else if (i % 1000 == 999) {
            value[i++] = '\n';
            memcpy(expected + e, "\\n", 2);
            e += 2;
        } else if (i % 77777 == 5) {
            value[i++] = (char)0xFF;
            memcpy(expected + e, "\\ufffd", 6);
            e += 6;
        } else {
            char c = (char)('a' + i % 26);
            value[i++] = c;
            expected[e++] = c;
        }
    }
    memcpy(expected + e, "\"}}\n", 5);
    e += 4;

    fake_host *fake = fake_new("big.jsonl");
    void *state = start(fake);
    walnotify_column cols[] = {bytes_col("big", value, size)};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->commit(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->flush(state), WALNOTIFY_OK);
    plugin->shutdown(state);

    size_t length;
    char *data = slurp(fake->path, &length);
    ck_assert_uint_eq(length, e);
    ck_assert(memcmp(data, expected, e) == 0);
    free(data);
    fake_free(fake);
    free(expected);
    free(value);
}
END_TEST

START_TEST(test_plain_runs_around_escapes)
{
    /* Runs of 0 to 9 plain bytes, each ended by a byte that needs care, so every split of the
     * escaper's four-byte steps meets every kind of byte. */
    static const struct {
        const char *raw;
        const char *json;
    } enders[] = {{"\"", "\\\""}, {"\\", "\\\\"}, {"\n", "\\n"}, {"\x1f", "\\u001f"},
                  {"\x7f", "\\u007f"}, {"\xC3\xA9", "\xC3\xA9"}, {"\xE2\x82\xAC", "\xE2\x82\xAC"},
                  {"\x80", "\\ufffd"}, {"~", "~"}};
    char value[1024], expected[4096];
    size_t v = 0;
    size_t e = (size_t)snprintf(expected, sizeof expected,
                                SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"v\":\"");
    for (size_t k = 0; k < sizeof enders / sizeof enders[0]; k++) {
        for (size_t run = 0; run < 10; run++) {
            for (size_t i = 0; i < run; i++)
                value[v++] = expected[e++] = (char)('a' + (k + i) % 26);
            memcpy(value + v, enders[k].raw, strlen(enders[k].raw));
            v += strlen(enders[k].raw);
            memcpy(expected + e, enders[k].json, strlen(enders[k].json));
            e += strlen(enders[k].json);
        }
    }
    memcpy(expected + e, "\"}}", 4);
    walnotify_column cols[] = {bytes_col("v", value, v)};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    assert_renders(&ev, expected);
}
END_TEST

START_TEST(test_names_follow_each_event)
{
    /* Names are compared by content, not by pointer: the host may reuse one buffer for another
     * name. Rows change tables, grow, shrink, leave a column out, and carry a NULL name. */
    fake_host *fake = fake_new("names.jsonl");
    void *state = start(fake);
    char table[32], first[16], second[16];
    walnotify_column cols[3];
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 2);
    ev.table = table;
    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);

    snprintf(table, sizeof table, "public.orders");
    snprintf(first, sizeof first, "id");
    snprintf(second, sizeof second, "note");
    cols[0] = text_col(first, "1");
    cols[1] = text_col(second, "a");
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);

    snprintf(table, sizeof table, "public.it\"ems"); /* same pointers, new contents */
    snprintf(second, sizeof second, "qu\\ty");
    ev.seq = 1;
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);

    cols[2] = text_col("extra", "x"); /* a row with one more column */
    ev.ncolumns = 3;
    ev.seq = 2;
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);

    ev.op = WALNOTIFY_OP_UPDATE; /* the middle column left out: a gap in the names */
    cols[1].kind = WALNOTIFY_VALUE_UNCHANGED;
    ev.seq = 3;
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);

    ev.op = WALNOTIFY_OP_INSERT; /* back, shorter, the first name gone */
    cols[0].name = NULL;
    cols[1].kind = WALNOTIFY_VALUE_TEXT;
    ev.ncolumns = 2;
    ev.seq = 4;
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);

    snprintf(table, sizeof table, "public.orders");
    cols[0].name = first;
    ev.seq = 5;
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    ev.seq = 6; /* the same again: every name from the cache */
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);

    ck_assert_int_eq(plugin->commit(state, &test_txn), WALNOTIFY_OK);
    plugin->shutdown(state);
#define HEAD_SEQ(n)                                                                               \
    "{\"lsn\":\"0/1A2B3C8\",\"seq\":" #n ",\"xid\":744,"                                          \
    "\"commit_time\":\"2026-11-25T11:00:00.123456Z\",\"table\":"
    assert_file(fake->path,
                HEAD_SEQ(0) "\"public.orders\",\"op\":\"insert\",\"values\":{\"id\":\"1\","
                            "\"note\":\"a\"}}\n"
                HEAD_SEQ(1) "\"public.it\\\"ems\",\"op\":\"insert\",\"values\":{\"id\":\"1\","
                            "\"qu\\\\ty\":\"a\"}}\n"
                HEAD_SEQ(2) "\"public.it\\\"ems\",\"op\":\"insert\",\"values\":{\"id\":\"1\","
                            "\"qu\\\\ty\":\"a\",\"extra\":\"x\"}}\n"
                HEAD_SEQ(3) "\"public.it\\\"ems\",\"op\":\"update\",\"values\":{\"id\":\"1\","
                            "\"extra\":\"x\"},\"unchanged\":[\"qu\\\\ty\"]}\n"
                HEAD_SEQ(4) "\"public.it\\\"ems\",\"op\":\"insert\",\"values\":{\"\":\"1\","
                            "\"qu\\\\ty\":\"a\"}}\n"
                HEAD_SEQ(5) "\"public.orders\",\"op\":\"insert\",\"values\":{\"id\":\"1\","
                            "\"qu\\\\ty\":\"a\"}}\n"
                HEAD_SEQ(6) "\"public.orders\",\"op\":\"insert\",\"values\":{\"id\":\"1\","
                            "\"qu\\\\ty\":\"a\"}}\n");
#undef HEAD_SEQ
    fake_free(fake);
}
END_TEST

START_TEST(test_head_follows_each_event)
{
    /* The LSN, xid and commit time printed are the event's own, on every line, whether or not
     * begin came first and whatever begin said. */
    fake_host *fake = fake_new("head.jsonl");
    void *state = start(fake);
    walnotify_event a = sample_event(WALNOTIFY_OP_INSERT, NULL, 0);
    walnotify_event b = a;
    b.commit_lsn = UINT64_C(0xFFFFFFFF00000001);
    b.xid = UINT32_MAX;
    b.commit_time = -1;
    walnotify_txn txn = {.size = sizeof txn, .commit_lsn = 1, .xid = 2, .commit_time = 3};

    ck_assert_int_eq(plugin->handle(state, &a), WALNOTIFY_OK); /* no begin */
    ck_assert_int_eq(plugin->handle(state, &b), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->begin(state, &txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &a), WALNOTIFY_OK);
    b.seq = 1;
    ck_assert_int_eq(plugin->handle(state, &b), WALNOTIFY_OK);
    a.seq = 2;
    ck_assert_int_eq(plugin->handle(state, &a), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->commit(state, &txn), WALNOTIFY_OK);
    b.seq = UINT32_MAX;
    ck_assert_int_eq(plugin->handle(state, &b), WALNOTIFY_OK);
    plugin->shutdown(state);
#define LINE_A(seq)                                                                               \
    "{\"lsn\":\"0/1A2B3C8\",\"seq\":" seq ",\"xid\":744,"                                         \
    "\"commit_time\":\"2026-11-25T11:00:00.123456Z\",\"table\":\"public.orders\","                \
    "\"op\":\"insert\",\"values\":{}}\n"
#define LINE_B(seq)                                                                               \
    "{\"lsn\":\"FFFFFFFF/1\",\"seq\":" seq ",\"xid\":4294967295,"                                 \
    "\"commit_time\":\"1969-12-31T23:59:59.999999Z\",\"table\":\"public.orders\","                \
    "\"op\":\"insert\",\"values\":{}}\n"
    assert_file(fake->path, LINE_A("0") LINE_B("0") LINE_A("0") LINE_B("1") LINE_A("2")
                                LINE_B("4294967295"));
#undef LINE_A
#undef LINE_B
    fake_free(fake);
}
END_TEST

START_TEST(test_message_and_snapshot_lines)
{
    /* The 1.1 operations: a transactional message between two rows, a message on its own, and
     * a snapshot with one row between its markers, each line the host's canonical JSON. */
    fake_host *fake = fake_new("v11.jsonl");
    void *state = start(fake);
    walnotify_column cols[] = {key_col("id", "1")};
    walnotify_event row = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    walnotify_event msg = sample_event(WALNOTIFY_OP_MESSAGE, NULL, 0);
    msg.table = msg.schema = msg.name = NULL;
    msg.seq = 1;
    msg.id = (walnotify_id){.position = 0x1A2B3C8, .ordinal = UINT64_C(1) << 32 | 1};
    msg.transactional = true;
    msg.message_prefix = "app";
    msg.message_content = "\xff\x00";
    msg.message_length = 2;
    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &row), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &msg), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->commit(state, &test_txn), WALNOTIFY_OK);

    walnotify_event alone = msg;
    alone.transactional = false;
    alone.commit_lsn = alone.id.position = 0x1A2B400;
    alone.id.ordinal = 0;
    alone.xid = 0;
    alone.commit_time = 0;
    alone.seq = 0;
    alone.message_content = "hi";
    ck_assert_int_eq(plugin->handle(state, &alone), WALNOTIFY_OK);

    walnotify_event snap = sample_event(WALNOTIFY_OP_SNAPSHOT, NULL, 0);
    snap.commit_lsn = 0x3000000;
    snap.xid = 0;
    snap.commit_time = 0;
    snap.id = (walnotify_id){.position = 0, .ordinal = 0};
    snap.table = snap.schema = snap.name = NULL;
    snap.snapshot_marker = WALNOTIFY_SNAPSHOT_BEGIN;
    ck_assert_int_eq(plugin->handle(state, &snap), WALNOTIFY_OK);
    snap.table = "public.orders";
    snap.snapshot_marker = WALNOTIFY_SNAPSHOT_ROW;
    snap.id.ordinal = 1;
    snap.columns = cols;
    snap.ncolumns = 1;
    ck_assert_int_eq(plugin->handle(state, &snap), WALNOTIFY_OK);
    snap.table = NULL;
    snap.columns = NULL;
    snap.ncolumns = 0;
    snap.snapshot_marker = WALNOTIFY_SNAPSHOT_END;
    snap.id.ordinal = 2;
    snap.snapshot_rows = 1;
    ck_assert_int_eq(plugin->handle(state, &snap), WALNOTIFY_OK);
    plugin->shutdown(state);

    assert_file(fake->path,
                SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"id\":\"1\"}}\n"
                "{\"lsn\":\"0/1A2B3C8\",\"ordinal\":4294967297,\"xid\":744,"
                "\"commit_time\":\"2026-11-25T11:00:00.123456Z\",\"op\":\"message\","
                "\"transactional\":true,\"prefix\":\"app\",\"content_hex\":\"ff00\"}\n"
                "{\"lsn\":\"0/1A2B400\",\"ordinal\":0,\"op\":\"message\","
                "\"transactional\":false,\"prefix\":\"app\",\"content\":\"hi\"}\n"
                "{\"snapshot\":\"0/3000000\",\"ordinal\":0,\"op\":\"snapshot\","
                "\"marker\":\"begin\"}\n"
                "{\"snapshot\":\"0/3000000\",\"ordinal\":1,\"table\":\"public.orders\","
                "\"op\":\"snapshot\",\"values\":{\"id\":\"1\"}}\n"
                "{\"snapshot\":\"0/3000000\",\"ordinal\":2,\"op\":\"snapshot\","
                "\"marker\":\"end\",\"rows\":1}\n");
    fake_free(fake);
}
END_TEST

START_TEST(test_unknown_operation_is_fatal)
{
    fake_host *fake = fake_new("unknown.jsonl");
    void *state = start(fake);
    walnotify_event ev = sample_event((walnotify_op)64, NULL, 0);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_FATAL);
    ck_assert_ptr_nonnull(strstr(fake->log, "operation 64"));
    plugin->shutdown(state);
    assert_file(fake->path, "");
    fake_free(fake);
}
END_TEST

START_TEST(test_host_without_encoder_refused)
{
    fake_host *fake = fake_new("none.jsonl");
    fake->host.encode_json = NULL;
    void *state = NULL;
    ck_assert_int_eq(plugin->init(&fake->host, &state), WALNOTIFY_FATAL);
    ck_assert_ptr_nonnull(strstr(fake->log, "encode_json"));
    fake_free(fake);
}
END_TEST

/* ---- transactions and files ------------------------------------------------------------------ */

START_TEST(test_transaction_written_at_commit)
{
    fake_host *fake = fake_new("txn.jsonl");
    void *state = start(fake);
    walnotify_column cols[] = {text_col("id", "1")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    ev.seq = 1;
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    assert_file(fake->path, ""); /* buffered until commit */
    ck_assert_int_eq(plugin->commit(state, &test_txn), WALNOTIFY_OK);
    const char *expected = SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"id\":\"1\"}}\n"
        "{\"lsn\":\"0/1A2B3C8\",\"seq\":1,\"xid\":744,\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
        "\"table\":\"public.orders\",\"op\":\"insert\",\"values\":{\"id\":\"1\"}}\n";
    assert_file(fake->path, expected);
    ck_assert_int_eq(plugin->flush(state), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->flush(state), WALNOTIFY_OK); /* nothing new: no fsync needed */
    plugin->shutdown(state);
    assert_file(fake->path, expected); /* shutdown writes nothing more */
    ck_assert_uint_eq(fake->log_len, 0);
    fake_free(fake);
}
END_TEST

START_TEST(test_handle_without_begin)
{
    fake_host *fake = fake_new("nobegin.jsonl");
    fake->fsync = false;
    void *state = start(fake);
    walnotify_column cols[] = {text_col("id", "1")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    assert_file(fake->path, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"id\":\"1\"}}\n");
    ck_assert_int_eq(plugin->flush(state), WALNOTIFY_OK);
    plugin->shutdown(state);
    fake_free(fake);
}
END_TEST

START_TEST(test_appends_to_existing_file)
{
    fake_host *fake = fake_new("existing.jsonl");
    spit(fake->path, "earlier\n", 8);
    void *state = start(fake);
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, NULL, 0);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    plugin->shutdown(state);
    assert_file(fake->path, "earlier\n" SAMPLE_HEAD "\"op\":\"insert\",\"values\":{}}\n");
    ck_assert_uint_eq(fake->log_len, 0);
    fake_free(fake);
}
END_TEST

START_TEST(test_new_file_mode)
{
    mode_t old_mask = umask(022);
    fake_host *fake = fake_new("new.jsonl");
    void *state = start(fake);
    struct stat sb;
    ck_assert_int_eq(stat(fake->path, &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 0777, 0600); /* it holds rows: not for every local user */
    ck_assert_int_eq(sb.st_size, 0);
    plugin->shutdown(state);
    umask(old_mask);
    fake_free(fake);
}
END_TEST

START_TEST(test_abort_truncates_transaction)
{
    fake_host *fake = fake_new("abort.jsonl");
    void *state = start(fake);
    walnotify_column cols[] = {text_col("id", "1")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    const char *first = SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"id\":\"1\"}}\n";

    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->commit(state, &test_txn), WALNOTIFY_OK);

    /* A small transaction is only buffered: abort drops it. */
    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    plugin->abort(state, &test_txn);
    assert_file(fake->path, first);

    /* A large one has been partly written already: abort cuts it out of the file. */
    size_t big = 200 * 1024;
    char *value = malloc(big);
    ck_assert_ptr_nonnull(value);
    memset(value, 'v', big);
    walnotify_column big_cols[] = {bytes_col("v", value, big)};
    walnotify_event big_ev = sample_event(WALNOTIFY_OP_INSERT, big_cols, 1);
    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(plugin->handle(state, &big_ev), WALNOTIFY_OK);
    struct stat sb;
    ck_assert_int_eq(stat(fake->path, &sb), 0);
    /* 200 KiB lines: the second passes the write threshold, the third is still buffered. */
    size_t big_line = strlen(SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"v\":\"") + big +
                      strlen("\"}}\n");
    ck_assert_int_eq(sb.st_size, (off_t)(strlen(first) + 2 * big_line));
    plugin->abort(state, &test_txn);
    assert_file(fake->path, first);

    /* A line past the threshold on its own is written at once, after the buffered ones; abort
     * cuts it out as well. */
    size_t huge = 300 * 1024;
    char *huge_value = malloc(huge);
    ck_assert_ptr_nonnull(huge_value);
    memset(huge_value, 'h', huge);
    walnotify_column huge_cols[] = {bytes_col("v", huge_value, huge)};
    walnotify_event huge_ev = sample_event(WALNOTIFY_OP_INSERT, huge_cols, 1);
    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &huge_ev), WALNOTIFY_OK);
    size_t huge_line = strlen(SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"v\":\"") + huge +
                       strlen("\"}}\n");
    ck_assert_int_eq(stat(fake->path, &sb), 0);
    ck_assert_int_eq(sb.st_size, (off_t)(2 * strlen(first) + huge_line));
    plugin->abort(state, &test_txn);
    assert_file(fake->path, first);
    free(huge_value);

    /* The next transaction lands right after the last committed one. */
    ev.seq = 5;
    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->commit(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->flush(state), WALNOTIFY_OK);
    plugin->shutdown(state);
    char expected[1024];
    snprintf(expected, sizeof expected,
             "%s{\"lsn\":\"0/1A2B3C8\",\"seq\":5,\"xid\":744,"
             "\"commit_time\":\"2026-11-25T11:00:00.123456Z\",\"table\":\"public.orders\","
             "\"op\":\"insert\",\"values\":{\"id\":\"1\"}}\n",
             first);
    assert_file(fake->path, expected);
    free(value);
    fake_free(fake);
}
END_TEST

START_TEST(test_torn_last_line_is_cut)
{
    fake_host *fake = fake_new("torn.jsonl");
    spit(fake->path, "{\"a\":1}\n{\"b\":2}\n{\"c\":", 21);
    void *state = start(fake);
    assert_file(fake->path, "{\"a\":1}\n{\"b\":2}\n");
    ck_assert_msg(strstr(fake->log, "WARNING: ") != NULL && strstr(fake->log, "cut 5 bytes"),
                  "log: %s", fake->log);
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, NULL, 0);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    plugin->shutdown(state);
    assert_file(fake->path,
                "{\"a\":1}\n{\"b\":2}\n" SAMPLE_HEAD "\"op\":\"insert\",\"values\":{}}\n");
    fake_free(fake);
}
END_TEST

START_TEST(test_torn_only_line_is_cut_to_empty)
{
    fake_host *fake = fake_new("torn0.jsonl");
    spit(fake->path, "{\"a\":", 5);
    void *state = start(fake);
    assert_file(fake->path, "");
    ck_assert_msg(strstr(fake->log, "cut 5 bytes") != NULL, "log: %s", fake->log);
    plugin->shutdown(state);
    fake_free(fake);
}
END_TEST

START_TEST(test_torn_line_longer_than_scan_step)
{
    fake_host *fake = fake_new("tornlong.jsonl");
    size_t tail = 100000;
    char *data = malloc(tail + 3);
    ck_assert_ptr_nonnull(data);
    memcpy(data, "ok\n", 3);
    memset(data + 3, 'x', tail);
    spit(fake->path, data, tail + 3);
    void *state = start(fake);
    assert_file(fake->path, "ok\n");
    ck_assert_msg(strstr(fake->log, "cut 100000 bytes") != NULL, "log: %s", fake->log);
    plugin->shutdown(state);
    free(data);
    fake_free(fake);
}
END_TEST

/* A second block of the same walnotify on the same file would wait for itself forever. */
START_TEST(test_second_instance_on_same_file_refused)
{
    fake_host *first = fake_new("locked.jsonl");
    fake_host *second = fake_new("locked.jsonl");
    void *state = start(first);
    void *other = NULL;
    char pid[32];
    snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid()); /* this process holds the lock */
    ck_assert_int_eq(plugin->init(&second->host, &other), WALNOTIFY_FATAL);
    ck_assert_msg(strstr(second->log, "ERROR: ") != NULL &&
                      strstr(second->log, "another plugin block of this walnotify") != NULL &&
                      strstr(second->log, second->path) != NULL && strstr(second->log, pid) != NULL,
                  "log: %s", second->log);
    plugin->shutdown(state);

    /* Once the first instance is gone, the file is free again. */
    second->log_len = 0;
    other = start(second);
    plugin->shutdown(other);
    fake_free(first);
    fake_free(second);
}
END_TEST

/* A child process that holds an exclusive flock on path until its parent closes *release. */
static pid_t lock_in_child(const char *path, int *release)
{
    int held[2], wait_for[2];
    ck_assert_int_eq(pipe(held), 0);
    ck_assert_int_eq(pipe(wait_for), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char byte = 'x';
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        close(held[0]);
        close(wait_for[1]);
        if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(held[1], &byte, 1) != 1)
            _exit(1);
        /* Blocks until the parent closes its end (or dies): then the lock goes with us. */
        while (read(wait_for[0], &byte, 1) > 0)
            ;
        _exit(0);
    }
    close(held[1]);
    close(wait_for[0]);
    char byte;
    ck_assert_msg(read(held[0], &byte, 1) == 1, "the child could not lock %s", path);
    close(held[0]);
    *release = wait_for[1];
    return pid;
}

/* The other host of an active/standby pair still holds the file: wait for it, do not fail. */
START_TEST(test_file_locked_by_another_process_is_retry)
{
    fake_host *fake = fake_new("pair.jsonl");
    void *state = NULL;
    int release, status;
    char pid_text[32];
    pid_t child = lock_in_child(fake->path, &release);

    snprintf(pid_text, sizeof pid_text, "(pid %ld)", (long)child);
    ck_assert_int_eq(plugin->init(&fake->host, &state), WALNOTIFY_RETRY);
    ck_assert_ptr_null(state);
    ck_assert_msg(strstr(fake->log, "WARNING: ") != NULL &&
                      strstr(fake->log, "is locked by another process") != NULL &&
                      strstr(fake->log, fake->path) != NULL && strstr(fake->log, pid_text) != NULL,
                  "log: %s", fake->log);
    /* Nothing is kept between two calls: the same answer again. */
    ck_assert_int_eq(plugin->init(&fake->host, &state), WALNOTIFY_RETRY);
    ck_assert_ptr_null(state);

    /* The other process lets the file go: init succeeds and the file is ours. */
    close(release);
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    state = start(fake);
    walnotify_column cols[] = {text_col("id", "1")};
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, cols, 1);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->flush(state), WALNOTIFY_OK);
    plugin->shutdown(state);
    assert_file(fake->path, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"id\":\"1\"}}\n");
    fake_free(fake);
}
END_TEST

START_TEST(test_two_instances_keep_separate_state)
{
    fake_host *fa = fake_new("a.jsonl");
    fake_host *fb = fake_new("b.jsonl");
    fb->fsync = false;
    void *a = start(fa);
    void *b = start(fb);
    walnotify_column ca[] = {text_col("who", "a")};
    walnotify_column cb[] = {text_col("who", "b")};
    walnotify_event ea = sample_event(WALNOTIFY_OP_INSERT, ca, 1);
    walnotify_event eb = sample_event(WALNOTIFY_OP_INSERT, cb, 1);

    ck_assert_int_eq(plugin->begin(a, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->begin(b, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(a, &ea), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(b, &eb), WALNOTIFY_OK);
    plugin->abort(b, &test_txn);
    ck_assert_int_eq(plugin->commit(a, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(b, &eb), WALNOTIFY_OK); /* outside a transaction */
    ck_assert_int_eq(plugin->flush(a), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->flush(b), WALNOTIFY_OK);
    plugin->shutdown(b);
    plugin->shutdown(a);

    assert_file(fa->path, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"who\":\"a\"}}\n");
    assert_file(fb->path, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{\"who\":\"b\"}}\n");
    fake_free(fa);
    fake_free(fb);
}
END_TEST

START_TEST(test_standard_output)
{
    fake_host *fake = fake_new("-");
    char capture[PATH_MAX];
    ck_assert(snprintf(capture, sizeof capture, "%s/stdout.txt", work_dir) < (int)sizeof capture);
    int cfd = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(cfd, 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(cfd, STDOUT_FILENO), 0);
    close(cfd);

    void *state = start(fake);
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, NULL, 0);
    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->commit(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->flush(state), WALNOTIFY_OK);
    plugin->shutdown(state);

    /* Standard output stays open after shutdown. */
    ck_assert_int_eq(fcntl(STDOUT_FILENO, F_GETFD), 0);
    ck_assert_int_ge(dup2(saved, STDOUT_FILENO), 0);
    close(saved);
    assert_file(capture, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{}}\n");
    ck_assert_uint_eq(fake->log_len, 0);
    fake_free(fake);
}
END_TEST

START_TEST(test_standard_output_pipe_fsync)
{
    /* fsync of a pipe fails with EINVAL: flush must not. */
    fake_host *fake = fake_new("-");
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    int saved = dup(STDOUT_FILENO);
    ck_assert_int_ge(dup2(fds[1], STDOUT_FILENO), 0);
    close(fds[1]);
    void *state = start(fake);
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, NULL, 0);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->flush(state), WALNOTIFY_OK);
    plugin->shutdown(state);
    ck_assert_int_ge(dup2(saved, STDOUT_FILENO), 0);
    close(saved);
    char got[512];
    ssize_t n = read(fds[0], got, sizeof got - 1);
    close(fds[0]);
    ck_assert_int_gt(n, 0);
    got[n] = '\0';
    ck_assert_str_eq(got, SAMPLE_HEAD "\"op\":\"insert\",\"values\":{}}\n");
    fake_free(fake);
}
END_TEST

START_TEST(test_write_error_is_fatal)
{
    fake_host *fake = fake_new("/dev/full");
    void *state = start(fake);
    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, NULL, 0);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_FATAL);
    ck_assert_msg(strstr(fake->log, "/dev/full") != NULL &&
                      strstr(fake->log, strerror(ENOSPC)) != NULL,
                  "log: %s", fake->log);
    plugin->shutdown(state);
    fake_free(fake);
}
END_TEST

START_TEST(test_partial_write_leaves_whole_lines)
{
    /* A file size limit makes the write stop part-way (then fail with EFBIG): the partial line
     * must be cut off again. */
    fake_host *fake = fake_new("limit.jsonl");
    spit(fake->path, "keep\n", 5);
    void *state = start(fake);
    struct rlimit saved;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    struct rlimit limit = saved;
    limit.rlim_cur = 64;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);

    walnotify_event ev = sample_event(WALNOTIFY_OP_INSERT, NULL, 0);
    ck_assert_int_eq(plugin->begin(state, &test_txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    walnotify_status status = plugin->commit(state, &test_txn);

    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    ck_assert_int_eq(status, WALNOTIFY_FATAL);
    assert_file(fake->path, "keep\n");
    ck_assert_msg(strstr(fake->log, strerror(EFBIG)) != NULL, "log: %s", fake->log);
    plugin->abort(state, &test_txn);
    assert_file(fake->path, "keep\n");
    plugin->shutdown(state);
    fake_free(fake);
}
END_TEST

START_TEST(test_unopenable_path_is_fatal)
{
    fake_host *fake = fake_new("no/such/folder/x.jsonl");
    void *state = NULL;
    ck_assert_int_eq(plugin->init(&fake->host, &state), WALNOTIFY_FATAL);
    ck_assert_msg(strstr(fake->log, "cannot open") != NULL && strstr(fake->log, fake->path),
                  "log: %s", fake->log);
    fake_free(fake);
}
END_TEST

static Suite *jsonl_suite(void)
{
    Suite *s = suite_create("jsonl");
    TCase *format = tcase_create("format");
    tcase_add_checked_fixture(format, setup, teardown);
    tcase_set_timeout(format, 120);
    tcase_add_test(format, test_descriptor);
    tcase_add_test(format, test_insert_contract_example);
    tcase_add_test(format, test_insert_empty_and_quotes);
    tcase_add_test(format, test_insert_no_columns);
    tcase_add_test(format, test_control_characters);
    tcase_add_test(format, test_nul_respects_length);
    tcase_add_test(format, test_valid_utf8_passes_through);
    tcase_add_test(format, test_invalid_utf8_replaced_per_byte);
    tcase_add_test(format, test_invalid_utf8_in_names);
    tcase_add_test(format, test_update_unchanged_and_old_key);
    tcase_add_test(format, test_update_old_row);
    tcase_add_test(format, test_update_without_old);
    tcase_add_test(format, test_delete_with_key);
    tcase_add_test(format, test_delete_with_old_row);
    tcase_add_test(format, test_truncate_options);
    tcase_add_test(format, test_truncate_one_line_per_table);
    tcase_add_test(format, test_commit_time_formatting);
    tcase_add_test(format, test_lsn_formatting);
    tcase_add_test(format, test_large_value);
    tcase_add_test(format, test_plain_runs_around_escapes);
    tcase_add_test(format, test_names_follow_each_event);
    tcase_add_test(format, test_head_follows_each_event);
    tcase_add_test(format, test_message_and_snapshot_lines);
    tcase_add_test(format, test_unknown_operation_is_fatal);
    tcase_add_test(format, test_host_without_encoder_refused);
    suite_add_tcase(s, format);

    TCase *files = tcase_create("files");
    tcase_add_checked_fixture(files, setup, teardown);
    tcase_set_timeout(files, 120);
    tcase_add_test(files, test_transaction_written_at_commit);
    tcase_add_test(files, test_handle_without_begin);
    tcase_add_test(files, test_appends_to_existing_file);
    tcase_add_test(files, test_new_file_mode);
    tcase_add_test(files, test_abort_truncates_transaction);
    tcase_add_test(files, test_torn_last_line_is_cut);
    tcase_add_test(files, test_torn_only_line_is_cut_to_empty);
    tcase_add_test(files, test_torn_line_longer_than_scan_step);
    tcase_add_test(files, test_second_instance_on_same_file_refused);
    tcase_add_test(files, test_file_locked_by_another_process_is_retry);
    tcase_add_test(files, test_two_instances_keep_separate_state);
    tcase_add_test(files, test_standard_output);
    tcase_add_test(files, test_standard_output_pipe_fsync);
    tcase_add_test(files, test_write_error_is_fatal);
    tcase_add_test(files, test_partial_write_leaves_whole_lines);
    tcase_add_test(files, test_unopenable_path_is_fatal);
    suite_add_tcase(s, files);
    return s;
}

int main(void)
{
    return run_suite(jsonl_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
