/*
 * The README's second complete plugin, the batching sink, taken at its word: cut out of
 * README.md, built with the cc line given there, and run against the server. A file it cannot
 * open is named in its message. One row is too long for its "downstream": it names it as
 * failed, so that on_error = "skip" puts it in the dead-letter file. Slots made before the rows
 * then deliver everything again: once to a whole file, where every event is a replay, and then
 * to the file as a crash in the middle of a write would leave it (a torn line after some whole
 * ones, inside either transaction, or nothing whole at all), which init must cut and after
 * which only what is missing may be added.
 *
 * The same object, loaded here and driven as walnotify drives it (the host's own encoder making
 * the lines), takes a snapshot in batches, a crash (a torn line) after the first, and a
 * transaction committing at exactly the snapshot's consistent point: the identity it keeps for a
 * batch of snapshot rows lets neither the next batch nor that transaction pass for a replay.
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

#include "encoder.h"
#include "itest.h"
#include "readme_code.h"

#define GUIDE_MARK "**A batching sink**"
#define BUILD_LINE "cc -shared -fPIC -I include -o batchsink.so batchsink.c"
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

/* What a crash in the middle of a write leaves: the file's first `whole` lines, then half of
 * the next one. */
static void tear_after(const itest_path *file, size_t whole)
{
    itest_lines lines = itest_read_lines(file->s);
    FILE *f;

    ck_assert_msg(lines.count > whole, "orders.jsonl has %zu lines, fewer than %zu", lines.count,
                  whole + 1);
    f = fopen(file->s, "w");
    ck_assert_msg(f != NULL, "cannot write %s", file->s);
    for (size_t i = 0; i < whole; i++)
        fprintf(f, "%s\n", lines.line[i]);
    fwrite(lines.line[whole], 1, lines.length[whole] / 2, f);
    ck_assert_int_eq(fclose(f), 0);
    itest_lines_free(&lines);
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
                      strstr(err, "/missing/orders.jsonl: No such file or directory") != NULL,
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

/* The sink's identity for a batch of snapshot rows: (C - 1, its last ordinal). With (C, ...),
 * the second batch and the transaction at C would be dropped as replays. */
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
                               .fail_events = fake_fail_events};

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
    itest_path conf, full_replay, torn_in_second, torn_in_first, torn_first, out;
    struct stat st;
    wn_lsn end;

    itest_begin(&ctx, "batchsink");
    readme_code_build(&ctx, GUIDE_MARK, "batchsink.c", BUILD_LINE);
    assert_snapshot_batches_are_kept(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE orders (id int PRIMARY KEY, note text)");
    conf = write_config(&ctx, "batchsink.conf", ctx.slot, "orders.jsonl");
    itest_create_slot(&ctx, conf.s);
    full_replay = replay_config(&ctx, "b");
    torn_in_second = replay_config(&ctx, "c");
    torn_in_first = replay_config(&ctx, "d");
    torn_first = replay_config(&ctx, "e");
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

    /* Torn in the second transaction: the first, whose every event is a replay, must not make
     * the sink forget that the second's first row is in the file. */
    tear_after(&out, 3);
    run_and_check(&ctx, &torn_in_second, end, 1, "after a line torn in the second transaction");

    /* Torn in the first transaction, after row 1: row 2 is refused again, row 3 added. */
    tear_after(&out, 1);
    run_and_check(&ctx, &torn_in_first, end, 2, "after a line torn in the first transaction");

    /* Nothing whole: the torn line goes, everything is added. */
    tear_after(&out, 0);
    run_and_check(&ctx, &torn_first, end, 3, "after a torn first line");
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
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
