/*
 * The README's second complete plugin, the batching sink, taken at its word: cut out of
 * README.md (shorter than 60 lines), built with the cc line given there, and run against the
 * server. A file it cannot open is named in its message. One row is too long for its
 * "downstream": it names it as failed, so that on_error = "skip" puts it in the dead-letter
 * file. Slots made before the rows then deliver everything again: once to a whole file, where
 * every event is a replay, and then to the file as a crash in the middle of a write would leave
 * it (a torn line past what was made durable), which the host's durable append file cuts, after
 * which only what is missing may be added. Then it is killed with -9 in a loop while rows are
 * written: nothing lost, nothing doubled.
 *
 * The same object, loaded here and driven as walnotify drives it (the host's own encoder making
 * the lines, its own durable append file keeping them), takes a snapshot in batches, a crash (a
 * torn line) after the first, and a transaction committing at exactly the snapshot's consistent
 * point: neither the next batch nor that transaction may pass for a replay.
 */
#include <walnotify/plugin.h>

#include <check.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "appendfile.h"
#include "encoder.h"
#include "files.h"
#include "itest.h"
#include "readme_code.h"

#define GUIDE_MARK "**A batching sink**"
#define BUILD_LINE "cc -shared -fPIC -I include -o batchsink.so batchsink.c"
#define MAX_LINES 60 /* the example stays short: what it needs, the host lends */
#define KILLS 5
#define EVERY_ID "1,3,4,5" /* row 2 is refused by the sink */
#define SNAPSHOT_LSN 0x3000060ULL /* C: its rows are at C - 1, a transaction may commit at C */

static itest_path write_config(itest_ctx *ctx, const char *name, const char *slot,
                               const char *file)
{
    itest_path path = itest_file(ctx, name);

    itest_write_file(path.s,
                     "source: { conninfo = \"%s\"; tables = [ \"public.orders\" ]; slot = \"%s\"; "
                     "publication = \"%s\"; status_interval_ms = 200; reconnect_initial_ms = 50; "
                     "};\n"
                     "plugins = ( { name = \"batch\"; path = \"batchsink.so\"; settings = { path = "
                     "\"%s\"; }; on_error = \"skip\"; dead_letter = \"orders-refused.jsonl\"; } "
                     ");\n",
                     ctx->conninfo, slot, ctx->pub, file);
    return path;
}

/* A configuration of its own slot, made now (before the rows), for a later replay. */
static itest_path replay_config(itest_ctx *ctx, const char *suffix)
{
    char slot[80], name[96];
    itest_path conf;

    snprintf(slot, sizeof slot, "%s_%s", ctx->slot, suffix);
    snprintf(name, sizeof name, "%s.conf", slot);
    conf = write_config(ctx, name, slot, "orders.jsonl");
    itest_create_slot(ctx, conf.s);
    return conf;
}

/* The ids of the lines of file, in order, as "1,3,4", to out. */
static void ids_of(const itest_path *file, char *out, size_t size)
{
    itest_events events = itest_read_events(file->s);
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < events.count && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "",
                                 itest_value(&events.event[i], "id"));
    itest_events_free(&events);
}

/* Fails unless the dead-letter file holds row 2, `count` times, with the sink's reason. */
static void assert_refused(const itest_path *file, size_t count, const char *when)
{
    itest_lines lines = itest_read_lines(file->s);

    ck_assert_msg(lines.count == count, "%s, the dead-letter file holds %zu lines, expected %zu",
                  when, lines.count, count);
    for (size_t i = 0; i < lines.count; i++)
        ck_assert_msg(strstr(lines.line[i], "\"id\":\"2\"") != NULL &&
                          strstr(lines.line[i], "line too long for the downstream") != NULL,
                      "%s, dead-letter line %zu is not row 2 with the sink's reason: %s", when,
                      i + 1, lines.line[i]);
    itest_lines_free(&lines);
}

/* Runs walnotify with conf up to end; then the sink's file must hold every row it takes, once
 * each and in order, and the dead-letter file row 2 `refused` times. */
static void run_and_check(itest_ctx *ctx, const itest_path *conf, wn_lsn end, size_t refused,
                          const char *when)
{
    itest_path out = itest_file(ctx, "orders.jsonl");
    itest_path dead = itest_file(ctx, "orders-refused.jsonl");
    char *endpos = itest_lsn_text(end), ids[256];
    itest_host host;

    itest_host_run(ctx, &host, "-c", conf->s, "--endpos", endpos);
    free(endpos);
    itest_assert_exit(&host, 0);
    ids_of(&out, ids, sizeof ids);
    ck_assert_msg(strcmp(ids, EVERY_ID) == 0, "%s, orders.jsonl holds ids %s, expected %s", when,
                  ids, EVERY_ID);
    assert_refused(&dead, refused, when);
}

/* What a crash in the middle of a write leaves: half a line after what the last sync made
 * durable. */
static void tear(const itest_path *file)
{
    FILE *f = fopen(file->s, "a");

    ck_assert_msg(f != NULL, "cannot append to %s", file->s);
    fputs("{\"lsn\":\"0/1\",\"seq\":0,\"xid\":7", f);
    ck_assert_int_eq(fclose(f), 0);
}

/* An init that cannot open its file fails walnotify (exit 2), naming the file and why. */
static void assert_unopenable_file_is_named(itest_ctx *ctx)
{
    itest_path conf = write_config(ctx, "missing.conf", ctx->slot, "missing/orders.jsonl");
    itest_host host;
    char *err;

    itest_host_run(ctx, &host, "-c", conf.s);
    itest_assert_exit(&host, 2);
    err = itest_host_stderr(&host);
    ck_assert_msg(err != NULL &&
                      strstr(err, "/missing/orders.jsonl: cannot open: No such file or directory") !=
                          NULL,
                  "the sink did not name the file it could not open: %s", err ? err : "");
    free(err);
}

/* ---- a snapshot, driven as walnotify drives it ------------------------------------------ */

typedef struct fake_host {
    walnotify_host host; /* first: the plugin's pointer is ours */
    const char *path;
    wn_encoder *encoder;
} fake_host;

__attribute__((format(printf, 3, 4))) static void
fake_log(const walnotify_host *host, walnotify_log_level level, const char *format, ...)
{
    va_list args;

    (void)host;
    (void)level;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
}

static const char *fake_get_string(const walnotify_host *host, const char *name)
{
    return strcmp(name, "path") == 0 ? ((const fake_host *)host)->path : NULL;
}

static const char *fake_encode(const walnotify_host *host, const walnotify_event *event,
                               size_t *length)
{
    return wn_encoder_event(((const fake_host *)host)->encoder, event, length);
}

static walnotify_status fake_fail_events(const walnotify_host *host, walnotify_id first,
                                         walnotify_id last, walnotify_failure failure,
                                         const char *reason)
{
    (void)host;
    (void)first;
    (void)last;
    (void)failure;
    ck_abort_msg("every line is short, yet events were named as failed: %s", reason);
    return WALNOTIFY_FATAL;
}

static walnotify_status fake_file_open(const walnotify_host *host, const char *path,
                                       unsigned flags, walnotify_file **file, walnotify_id *last)
{
    wn_append_opened opened;
    char err[512];

    (void)host;
    ck_assert_uint_eq(flags, 0);
    ck_assert_msg(wn_appendfile_open(path, WN_FILES_MODE, WN_APPEND_RECORDS, WN_APPEND_BUFFERED,
                                     "file", file, &opened, err, sizeof err) == 0,
                  "%s", err);
    *last = opened.last;
    return WALNOTIFY_OK;
}

static walnotify_status fake_file_append(const walnotify_host *host, walnotify_file *file,
                                         const void *data, size_t length)
{
    char err[512];

    (void)host;
    ck_assert_msg(wn_appendfile_append(file, data, length, err, sizeof err) == 0, "%s", err);
    return WALNOTIFY_OK;
}

static walnotify_status fake_file_sync(const walnotify_host *host, walnotify_file *file,
                                       walnotify_id last)
{
    char err[512];

    (void)host;
    ck_assert_msg(wn_appendfile_sync(file, last, err, sizeof err) == 0, "%s", err);
    return WALNOTIFY_OK;
}

static void fake_file_close(const walnotify_host *host, walnotify_file *file)
{
    (void)host;
    wn_appendfile_close(file);
}

static void check_ok(walnotify_status status, const char *what)
{
    ck_assert_msg(status == WALNOTIFY_OK, "%s answered %d", what, (int)status);
}

/* Event `ordinal` of a snapshot of 4 rows: 0 its begin marker, 1 to 4 rows (id = ordinal, in
 * *column), 5 its end marker. */
static walnotify_event snapshot_event(uint64_t ordinal, walnotify_column *column, char *value,
                                      size_t size)
{
    walnotify_event ev = {.size = sizeof ev,
                          .op = WALNOTIFY_OP_SNAPSHOT,
                          .commit_lsn = SNAPSHOT_LSN,
                          .id = {SNAPSHOT_LSN - 1, ordinal}};

    if (ordinal == 0 || ordinal == 5) {
        ev.snapshot_marker = ordinal == 0 ? WALNOTIFY_SNAPSHOT_BEGIN : WALNOTIFY_SNAPSHOT_END;
        ev.snapshot_rows = ordinal == 0 ? 0 : 4;
        return ev;
    }
    *column = (walnotify_column){.name = "id",
                                 .type_oid = 23,
                                 .typmod = -1,
                                 .is_key = true,
                                 .kind = WALNOTIFY_VALUE_TEXT,
                                 .value = value};
    column->length = (size_t)snprintf(value, size, "%" PRIu64, ordinal);
    ev.table = "public.orders";
    ev.schema = "public";
    ev.name = "orders";
    ev.columns = column;
    ev.ncolumns = 1;
    return ev;
}

/* One batch of that snapshot: its events first to last, then its commit. */
static void deliver_snapshot_batch(const walnotify_plugin *plugin, void *state, uint64_t first,
                                   uint64_t last)
{
    walnotify_txn txn = {
        .size = sizeof txn, .commit_lsn = SNAPSHOT_LSN, .kind = WALNOTIFY_TXN_SNAPSHOT};

    for (uint64_t o = first; o <= last; o++) {
        walnotify_column column;
        char value[24];
        walnotify_event ev = snapshot_event(o, &column, value, sizeof value);

        check_ok(plugin->handle(state, &ev), "handle (snapshot)");
    }
    if (plugin->commit != NULL)
        check_ok(plugin->commit(state, &txn), "commit (snapshot)");
}

/* A transaction of one insert (id 10) whose commit is at the snapshot's consistent point. */
static void deliver_txn_at_consistent_point(const walnotify_plugin *plugin, void *state)
{
    walnotify_txn txn = {.size = sizeof txn, .commit_lsn = SNAPSHOT_LSN, .xid = 800};
    walnotify_column column = {.name = "id",
                               .type_oid = 23,
                               .typmod = -1,
                               .is_key = true,
                               .kind = WALNOTIFY_VALUE_TEXT,
                               .value = "10",
                               .length = 2};
    walnotify_event ev = {.size = sizeof ev,
                          .table = "public.orders",
                          .schema = "public",
                          .name = "orders",
                          .op = WALNOTIFY_OP_INSERT,
                          .commit_lsn = SNAPSHOT_LSN,
                          .xid = 800,
                          .columns = &column,
                          .ncolumns = 1,
                          .id = {SNAPSHOT_LSN, 1ULL << 32}};

    check_ok(plugin->handle(state, &ev), "handle (insert)");
    if (plugin->commit != NULL)
        check_ok(plugin->commit(state, &txn), "commit (insert)");
}

/* The file's lines as tags, "0,1,2,3,4,5,insert": a snapshot event's ordinal, or "insert". */
static void tags_of(const char *path, char *out, size_t size)
{
    itest_lines lines = itest_read_lines(path);
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < lines.count && used < size; i++) {
        const char *ordinal = strstr(lines.line[i], "\"ordinal\":");
        char tag[24] = "?";

        if (strstr(lines.line[i], "\"op\":\"insert\"") != NULL)
            snprintf(tag, sizeof tag, "insert");
        else if (ordinal != NULL)
            snprintf(tag, sizeof tag, "%lu", strtoul(ordinal + strlen("\"ordinal\":"), NULL, 10));
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "", tag);
    }
    itest_lines_free(&lines);
}

/* Snapshot rows are at (C - 1, ordinal), a transaction at C comes after them all: kept by their
 * own identities, neither the second batch nor that transaction is dropped as a replay. */
static void assert_snapshot_batches_are_kept(itest_ctx *ctx)
{
    itest_path so = itest_file(ctx, "batchsink.so"), out = itest_file(ctx, "snapshot.jsonl");
    void *dl = dlopen(so.s, RTLD_NOW | RTLD_LOCAL);
    fake_host fh = {.path = out.s, .encoder = wn_encoder_create()};
    walnotify_plugin_entry_fn entry;
    const walnotify_plugin *plugin;
    void *state = NULL;
    char tags[128];
    FILE *f;

    ck_assert_msg(dl != NULL, "dlopen %s: %s", so.s, dlerror());
    ck_assert_ptr_nonnull(fh.encoder);
    *(void **)&entry = dlsym(dl, WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
    ck_assert_ptr_nonnull(entry);
    plugin = entry();
    ck_assert_msg(plugin->ops & WALNOTIFY_OP_SNAPSHOT, "the guide's sink takes no snapshot rows");
    fh.host = (walnotify_host){.size = sizeof fh.host,
                               .abi_major = WALNOTIFY_ABI_MAJOR,
                               .abi_minor = WALNOTIFY_ABI_MINOR,
                               .instance_name = "batch",
                               .log = fake_log,
                               .get_string = fake_get_string,
                               .encode_json = fake_encode,
                               .fail_events = fake_fail_events,
                               .file_open = fake_file_open,
                               .file_append = fake_file_append,
                               .file_sync = fake_file_sync,
                               .file_close = fake_file_close};

    /* The first batch, made durable; then a crash in the middle of the next write. */
    check_ok(plugin->init(&fh.host, &state), "init");
    deliver_snapshot_batch(plugin, state, 0, 2);
    check_ok(plugin->flush(state), "flush");
    plugin->shutdown(state);
    f = fopen(out.s, "a");
    ck_assert_ptr_nonnull(f);
    fputs("{\"snapshot\":\"0/3000060\",\"ordinal\":3,\"tab", f);
    ck_assert_int_eq(fclose(f), 0);

    /* The next start gets the snapshot from its start again, in three batches, then a
     * transaction at C. */
    check_ok(plugin->init(&fh.host, &state), "init after the crash");
    deliver_snapshot_batch(plugin, state, 0, 2);
    deliver_snapshot_batch(plugin, state, 3, 4);
    deliver_snapshot_batch(plugin, state, 5, 5);
    deliver_txn_at_consistent_point(plugin, state);
    check_ok(plugin->flush(state), "flush");
    plugin->shutdown(state);
    wn_encoder_destroy(fh.encoder);
    dlclose(dl);

    tags_of(out.s, tags, sizeof tags);
    ck_assert_msg(strcmp(tags, "0,1,2,3,4,5,insert") == 0,
                  "snapshot.jsonl holds %s, expected the snapshot's ordinals 0 to 5 once each, "
                  "then the insert committed at its consistent point",
                  tags);
}

START_TEST(test_the_batching_sink_of_the_guide)
{
    itest_ctx ctx;
    itest_path conf, full_replay, torn, out;
    struct stat st;
    wn_lsn end;

    ck_assert_int_lt(readme_code_lines(GUIDE_MARK), MAX_LINES);
    itest_begin(&ctx, "batchsink");
    readme_code_build(&ctx, GUIDE_MARK, "batchsink.c", BUILD_LINE);
    assert_snapshot_batches_are_kept(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE orders (id int PRIMARY KEY, note text)");
    conf = write_config(&ctx, "batchsink.conf", ctx.slot, "orders.jsonl");
    itest_create_slot(&ctx, conf.s);
    full_replay = replay_config(&ctx, "b");
    torn = replay_config(&ctx, "c");
    out = itest_file(&ctx, "orders.jsonl");
    assert_unopenable_file_is_named(&ctx);

    itest_exec(ctx.conn, "INSERT INTO orders VALUES (1, 'a'), (2, repeat('x', 5000)), (3, 'c')");
    itest_exec(ctx.conn, "INSERT INTO orders VALUES (4, 'd'), (5, 'e')");
    end = itest_current_lsn(ctx.conn);
    run_and_check(&ctx, &conf, end, 1, "after the first run");
    ck_assert_int_eq(stat(out.s, &st), 0);
    ck_assert_msg((st.st_mode & 0777) == 0600, "orders.jsonl has mode %o, not 0600",
                  (unsigned)(st.st_mode & 0777));

    /* Everything again, to a whole file: every event is a replay. */
    run_and_check(&ctx, &full_replay, end, 1, "after a replay");

    /* A crash in the middle of a write: the torn line goes, nothing is added twice (row 2, a
     * replay now, is not refused again). */
    tear(&out);
    run_and_check(&ctx, &torn, end, 1, "after a line torn past what was durable");
    itest_end(&ctx);
}
END_TEST

/* Killed with -9 in a loop while rows are written: every row once, in order. */
START_TEST(test_the_batching_sink_survives_kill_9)
{
    itest_ctx ctx;
    itest_path conf, out;
    itest_events events;
    long long rows;

    itest_begin(&ctx, "batchkill");
    readme_code_build(&ctx, GUIDE_MARK, "batchsink.c", BUILD_LINE);
    itest_exec(ctx.conn, "CREATE SEQUENCE orders_id");
    itest_exec(ctx.conn, "CREATE TABLE orders (id bigint PRIMARY KEY, note text DEFAULT 'n')");
    conf = write_config(&ctx, "batchkill.conf", ctx.slot, "orders.jsonl");
    itest_create_slot(&ctx, conf.s);
    rows = readme_code_kill_loop(&ctx, conf.s, "orders", "orders_id", KILLS, "batchsink");
    out = itest_file(&ctx, "orders.jsonl");
    events = itest_read_events(out.s);
    ck_assert_msg(rows > 0 && (long long)events.count == rows,
                  "orders.jsonl holds %zu lines for %lld rows", events.count, rows);
    for (size_t i = 0; i < events.count; i++)
        ck_assert_msg(atoll(itest_value(&events.event[i], "id")) == (long long)i + 1,
                      "line %zu holds id %s, expected %zu", i + 1,
                      itest_value(&events.event[i], "id"), i + 1);
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("batchsink");
    TCase *tc = tcase_create("batchsink");
    SRunner *runner;
    int failed;

    tcase_set_timeout(tc, ITEST_TIMEOUT_S);
    tcase_add_test(tc, test_the_batching_sink_of_the_guide);
    tcase_add_test(tc, test_the_batching_sink_survives_kill_9);
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
