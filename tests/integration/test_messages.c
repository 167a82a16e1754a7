/*
 * Logical decoding messages and snapshot rows in the webhook and exec plugins:
 *
 *   snapshot batches, synthetic   the webhook plugin, loaded here and driven as walnotify drives
 *                                 it, against the real receiver (tests/webhook/server.py): each
 *                                 batch of a snapshot is a request whose Idempotency-Key names
 *                                 its ordinals ("LSN/snapshot/FIRST-LAST"), and in event mode
 *                                 each event's key and Walnotify-Ordinal name its ordinal; a
 *                                 transaction holding messages is named by ordinals too;
 *   messages from PostgreSQL      pg_logical_emit_message, transactional and not, reaches a
 *                                 webhook receiver and an exec child (tests/fixtures/exec/
 *                                 child.sh) exactly as the jsonl plugin writes it, each
 *                                 non-transactional message a request and a begin/commit of its
 *                                 own.
 */
#include <walnotify/plugin.h>

#include <check.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookserver.h"
#include "itest.h"

#define SNAPSHOT_LSN 0xF00060ULL /* below the transaction's below: a snapshot precedes them */
#define TXN_LSN 0x1000000ULL

/* ---- the webhook plugin, driven as walnotify does ------------------------------------------ */

typedef struct fake_host {
    walnotify_host host; /* first: the plugin's pointer is ours */
    const char *url;
    const char *mode;
    char json[512];
} fake_host;

static const char *fake_get_string(const walnotify_host *host, const char *name)
{
    const fake_host *fh = (const fake_host *)host;

    if (strcmp(name, "url") == 0)
        return fh->url;
    return strcmp(name, "mode") == 0 ? fh->mode : "";
}

static int64_t fake_get_integer(const walnotify_host *host, const char *name)
{
    (void)host;
    return strcmp(name, "timeout_ms") == 0 ? 10000 : 1048576;
}

static bool fake_get_boolean(const walnotify_host *host, const char *name)
{
    (void)host;
    (void)name;
    return false;
}

static size_t fake_list_length(const walnotify_host *host, const char *name)
{
    (void)host;
    (void)name;
    return 0;
}

static const char *fake_list_item(const walnotify_host *host, const char *name, size_t i)
{
    (void)host;
    (void)name;
    (void)i;
    return NULL;
}

__attribute__((format(printf, 3, 4))) static void
fake_log(const walnotify_host *host, walnotify_log_level level, const char *format, ...)
{
    (void)host;
    (void)level;
    (void)format;
}

/* The shapes of the jsonl plugin's lines (the values are not the point here). */
static const char *fake_encode(const walnotify_host *host, const walnotify_event *ev,
                               size_t *length)
{
    fake_host *fh = (fake_host *)host;
    unsigned hi = (unsigned)(ev->commit_lsn >> 32), lo = (unsigned)ev->commit_lsn;
    int n;

    if (ev->op == WALNOTIFY_OP_SNAPSHOT && ev->snapshot_marker == WALNOTIFY_SNAPSHOT_ROW)
        n = snprintf(fh->json, sizeof fh->json,
                     "{\"snapshot\":\"%X/%X\",\"ordinal\":%" PRIu64 ",\"table\":\"public.t\","
                     "\"op\":\"snapshot\",\"values\":{\"id\":\"%" PRIu64 "\"}}",
                     hi, lo, ev->id.ordinal, ev->id.ordinal);
    else if (ev->op == WALNOTIFY_OP_SNAPSHOT)
        n = snprintf(fh->json, sizeof fh->json,
                     "{\"snapshot\":\"%X/%X\",\"ordinal\":%" PRIu64 ",\"op\":\"snapshot\","
                     "\"marker\":\"%s\"}",
                     hi, lo, ev->id.ordinal,
                     ev->snapshot_marker == WALNOTIFY_SNAPSHOT_BEGIN ? "begin" : "end");
    else if (ev->op == WALNOTIFY_OP_MESSAGE)
        n = snprintf(fh->json, sizeof fh->json,
                     "{\"lsn\":\"%X/%X\",\"ordinal\":%" PRIu64 ",\"op\":\"message\","
                     "\"transactional\":true,\"prefix\":\"%s\",\"content\":\"%s\"}",
                     hi, lo, ev->id.ordinal, ev->message_prefix, ev->message_content);
    else
        n = snprintf(fh->json, sizeof fh->json,
                     "{\"lsn\":\"%X/%X\",\"seq\":%" PRIu32 ",\"table\":\"public.t\","
                     "\"op\":\"insert\",\"values\":{\"id\":\"%" PRIu32 "\"}}",
                     hi, lo, ev->seq, ev->seq);
    *length = (size_t)n;
    return fh->json;
}

static walnotify_status fake_fail_events(const walnotify_host *host, walnotify_id first,
                                         walnotify_id last, walnotify_failure failure,
                                         const char *reason)
{
    (void)host;
    (void)first;
    (void)last;
    (void)failure;
    ck_abort_msg("the receiver refused nothing, yet events were named as failed: %s", reason);
    return WALNOTIFY_FATAL;
}

static walnotify_status fake_rewind(const walnotify_host *host, const char *reason)
{
    (void)host;
    ck_abort_msg("the receiver cut nothing, yet a rewind was asked for: %s", reason);
    return WALNOTIFY_FATAL;
}

static fake_host make_host(const char *url, const char *mode)
{
    fake_host fh = {.url = url, .mode = mode};

    fh.host = (walnotify_host){.size = sizeof fh.host,
                               .abi_major = WALNOTIFY_ABI_MAJOR,
                               .abi_minor = WALNOTIFY_ABI_MINOR,
                               .instance_name = "hook",
                               .log = fake_log,
                               .get_string = fake_get_string,
                               .get_integer = fake_get_integer,
                               .get_boolean = fake_get_boolean,
                               .get_list_length = fake_list_length,
                               .get_list_item = fake_list_item,
                               .encode_json = fake_encode,
                               .fail_events = fake_fail_events,
                               .rewind = fake_rewind};
    return fh;
}

static void check_ok(walnotify_status status, const char *what)
{
    ck_assert_msg(status == WALNOTIFY_OK, "%s answered %d", what, (int)status);
}

/* A snapshot of 7 rows in three batches: ordinals 0 (its begin marker) to 3, 4 to 6, 7 and 8
 * (its end marker). */
static void deliver_snapshot(const walnotify_plugin *plugin, void *state)
{
    static const uint64_t batches[][2] = {{0, 3}, {4, 6}, {7, 8}};
    walnotify_txn txn = {
        .size = sizeof txn, .commit_lsn = SNAPSHOT_LSN, .kind = WALNOTIFY_TXN_SNAPSHOT};

    for (size_t b = 0; b < 3; b++) {
        check_ok(plugin->begin(state, &txn), "begin");
        for (uint64_t o = batches[b][0]; o <= batches[b][1]; o++) {
            walnotify_event ev = {.size = sizeof ev,
                                  .op = WALNOTIFY_OP_SNAPSHOT,
                                  .commit_lsn = SNAPSHOT_LSN,
                                  .id = {SNAPSHOT_LSN - 1, o},
                                  .snapshot_marker = o == 0   ? WALNOTIFY_SNAPSHOT_BEGIN
                                                     : o == 8 ? WALNOTIFY_SNAPSHOT_END
                                                              : WALNOTIFY_SNAPSHOT_ROW,
                                  .snapshot_rows = o == 8 ? 7 : 0};

            ev.table = ev.snapshot_marker == WALNOTIFY_SNAPSHOT_ROW ? "public.t" : NULL;
            check_ok(plugin->handle(state, &ev), "handle");
        }
        check_ok(plugin->commit(state, &txn), "commit");
    }
}

/* A transaction: a message, a change, a message, a change (a message's seq counts the changes
 * before it; its ordinal is that count << 32 | 1 here). */
static void deliver_mixed(const walnotify_plugin *plugin, void *state)
{
    walnotify_txn txn = {.size = sizeof txn, .commit_lsn = TXN_LSN, .xid = 700};

    check_ok(plugin->begin(state, &txn), "begin");
    for (int e = 0; e < 4; e++) {
        bool message = e % 2 == 0;
        uint32_t seq = (uint32_t)e / 2;
        walnotify_event ev = {
            .size = sizeof ev,
            .table = message ? NULL : "public.t",
            .op = message ? WALNOTIFY_OP_MESSAGE : WALNOTIFY_OP_INSERT,
            .commit_lsn = TXN_LSN,
            .xid = 700,
            .seq = seq,
            .id = {TXN_LSN, message ? (uint64_t)seq << 32 | 1 : ((uint64_t)seq + 1) << 32},
            .transactional = message,
            .message_prefix = message ? "app" : NULL,
            .message_content = message ? "hello" : NULL,
            .message_length = message ? 5 : 0};

        check_ok(plugin->handle(state, &ev), "handle");
    }
    check_ok(plugin->commit(state, &txn), "commit");
}

/* The request's body lines as one text, each line ended by a newline. */
static void body_text(const jl_value *request, char *out, size_t outlen)
{
    const jl_value *lines = jl_get(request, "lines");
    size_t used = 0;

    out[0] = '\0';
    ck_assert_msg(lines != NULL && lines->kind == JL_ARRAY, "a request without its lines");
    for (size_t i = 0; i < lines->count; i++) {
        int n = snprintf(out + used, outlen - used, "%s\n", lines->items[i]->text);

        ck_assert(n > 0 && (size_t)n < outlen - used);
        used += (size_t)n;
    }
}

/* Runs the snapshot and the mixed transaction through the plugin in `mode`; returns the
 * requests the receiver answered. */
static hook_requests run_synthetic(const itest_ctx *ctx, const char *mode)
{
    itest_path so = itest_root_file("build/plugins/webhook.so");
    void *dl = dlopen(so.s, RTLD_NOW | RTLD_LOCAL);
    walnotify_plugin_entry_fn entry;
    const walnotify_plugin *plugin;
    hook_server server;
    fake_host fh;
    void *state = NULL;
    hook_requests reqs;

    ck_assert_msg(dl != NULL, "dlopen %s: %s", so.s, dlerror());
    *(void **)&entry = dlsym(dl, WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
    ck_assert_ptr_nonnull(entry);
    plugin = entry();
    ck_assert_uint_eq(plugin->ops & (WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE),
                      WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE);
    hook_server_start(ctx, &server, mode, false, ITEST_ARGS("--bodies"));
    fh = make_host(server.url, mode);
    check_ok(plugin->init(&fh.host, &state), "init");
    deliver_snapshot(plugin, state);
    deliver_mixed(plugin, state);
    check_ok(plugin->flush(state), "flush");
    plugin->shutdown(state);
    dlclose(dl);
    reqs = hook_server_requests(&server);
    hook_server_stop(&server);
    return reqs;
}

START_TEST(test_webhook_snapshot_batches)
{
    static const char *const batch_keys[] = {"0/F00060/snapshot/0-3", "0/F00060/snapshot/4-6",
                                             "0/F00060/snapshot/7-8",
                                             "0/1000000/ordinal/1-8589934592"};
    static const char *const event_keys[] = {
        "0/F00060/snapshot/0", "0/F00060/snapshot/1", "0/F00060/snapshot/2",
        "0/F00060/snapshot/3", "0/F00060/snapshot/4", "0/F00060/snapshot/5",
        "0/F00060/snapshot/6", "0/F00060/snapshot/7", "0/F00060/snapshot/8",
        "0/1000000/ordinal/1", "0/1000000/0",         "0/1000000/ordinal/4294967297",
        "0/1000000/1"};
    static const char first_body[] =
        "{\"snapshot\":\"0/F00060\",\"ordinal\":0,\"op\":\"snapshot\",\"marker\":\"begin\"}\n"
        "{\"snapshot\":\"0/F00060\",\"ordinal\":1,\"table\":\"public.t\",\"op\":\"snapshot\","
        "\"values\":{\"id\":\"1\"}}\n"
        "{\"snapshot\":\"0/F00060\",\"ordinal\":2,\"table\":\"public.t\",\"op\":\"snapshot\","
        "\"values\":{\"id\":\"2\"}}\n"
        "{\"snapshot\":\"0/F00060\",\"ordinal\":3,\"table\":\"public.t\",\"op\":\"snapshot\","
        "\"values\":{\"id\":\"3\"}}\n";
    itest_ctx ctx;
    hook_requests reqs;
    char body[4096];

    itest_begin(&ctx, "snaphook"); /* for its folder: no database is read */

    /* Transaction mode: one request per batch, named by its ordinals. */
    reqs = run_synthetic(&ctx, "transaction");
    ck_assert_uint_eq(reqs.count, 4);
    for (size_t i = 0; i < reqs.count; i++) {
        const jl_value *r = reqs.request[i];

        ck_assert_str_eq(hook_field(r, "status"), "200");
        ck_assert_str_eq(hook_field(r, "key"), batch_keys[i]);
        ck_assert_str_eq(hook_field(r, "lsn"), i < 3 ? "0/F00060" : "0/1000000");
        ck_assert_str_eq(hook_field(r, "part"), "0");
        ck_assert_str_eq(hook_field(r, "last"), "true");
    }
    body_text(reqs.request[0], body, sizeof body);
    ck_assert_str_eq(body, first_body);
    hook_requests_free(&reqs);

    /* Event mode: one request per event, a snapshot event or a message named by its ordinal. */
    reqs = run_synthetic(&ctx, "event");
    ck_assert_uint_eq(reqs.count, 13);
    for (size_t i = 0; i < reqs.count; i++) {
        const jl_value *r = reqs.request[i];
        bool by_seq = i == 10 || i == 12;
        const char *ordinal = strrchr(event_keys[i], '/') + 1;

        ck_assert_str_eq(hook_field(r, "status"), "200");
        ck_assert_str_eq(hook_field(r, "key"), event_keys[i]);
        ck_assert_str_eq(hook_field(r, "seq"), by_seq ? ordinal : "");
        ck_assert_str_eq(hook_field(r, "ordinal"), by_seq ? "" : ordinal);
    }
    hook_requests_free(&reqs);
    itest_end(&ctx);
}
END_TEST

/* ---- messages from PostgreSQL ---------------------------------------------------------------- */

/* The event lines of the exec child's input: every line but the markers. */
static size_t child_events(const itest_lines *input, const char **out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < input->count; i++) {
        if (strncmp(input->line[i], "{\"walnotify\":", 13) == 0)
            continue;
        ck_assert_uint_lt(n, max);
        out[n++] = input->line[i];
    }
    return n;
}

static bool has_line(const itest_lines *lines, const char *line)
{
    for (size_t i = 0; i < lines->count; i++) {
        if (strcmp(lines->line[i], line) == 0)
            return true;
    }
    return false;
}

START_TEST(test_messages_reach_webhook_and_exec)
{
    itest_ctx ctx;
    itest_path conf;
    hook_server server;
    hook_requests reqs;
    itest_lines jsonl, input;
    const char *events[32];
    size_t nevents, used = 0;
    char body[8192], want[8192], marker[128], lsn[32];

    itest_begin(&ctx, "msghooks");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    hook_server_start(&ctx, &server, "hook", false, ITEST_ARGS("--bodies"));
    conf = itest_config(&ctx, "msgs.cfg", "\"public.t\"", 200,
                        "{ name = \"log\"; path = \"%s\"; ops = [ \"insert\", \"message\" ];"
                        "  settings = { path = \"all.jsonl\"; }; },"
                        "{ name = \"hook\"; path = \"%s\"; ops = [ \"insert\", \"message\" ];"
                        "  settings = { url = \"%s\"; }; },"
                        "{ name = \"child\"; path = \"%s\"; ops = [ \"insert\", \"message\" ];"
                        "  settings = { command = [ \"/bin/sh\", \"%s\", \"ack\", \"%s\" ]; }; }",
                        itest_root_file("build/plugins/jsonl.so").s,
                        itest_root_file("build/plugins/webhook.so").s, server.url,
                        itest_root_file("build/plugins/exec.so").s,
                        itest_root_file("tests/fixtures/exec/child.sh").s, ctx.dir);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    itest_exec(ctx.conn, "BEGIN; SELECT pg_logical_emit_message(true, 'app', 'before');"
                         "INSERT INTO t VALUES (2);"
                         "SELECT pg_logical_emit_message(true, 'app', 'after'); COMMIT");
    itest_exec(ctx.conn, "SELECT pg_logical_emit_message(false, 'alone', 'not in a transaction')");
    itest_exec(ctx.conn, "SELECT pg_logical_emit_message(false, 'bin', '\\x00ff'::bytea)");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (3)");
    itest_run_to_now(&ctx, conf.s);

    /* The jsonl plugin's lines, the reference: 1 + 3 + 1 + 1 + 1 events. */
    jsonl = itest_read_lines(itest_file(&ctx, "all.jsonl").s);
    ck_assert_uint_eq(jsonl.count, 7);
    ck_assert(strstr(jsonl.line[4], "\"transactional\":false,\"prefix\":\"alone\"") != NULL);
    ck_assert(strstr(jsonl.line[5], "\"content_hex\":\"00ff\"") != NULL);

    /* The webhook: one request per transaction, a non-transactional message one of its own,
     * the bodies together exactly the jsonl lines. */
    hook_server_stop(&server);
    reqs = hook_server_requests(&server);
    ck_assert_uint_eq(reqs.count, 5);
    want[0] = '\0';
    for (size_t i = 0; i < jsonl.count; i++) {
        strcat(want, jsonl.line[i]);
        strcat(want, "\n");
    }
    for (size_t i = 0; i < reqs.count; i++) {
        static const char *const key_ends[] = {"/0-0", "/ordinal/1-4294967297", "/ordinal/0-0",
                                               "/ordinal/0-0", "/0-0"};
        const jl_value *r = reqs.request[i];
        const char *key = hook_field(r, "key");
        size_t key_len = strlen(key), end_len = strlen(key_ends[i]);

        ck_assert_str_eq(hook_field(r, "status"), "200");
        body_text(r, body, sizeof body);
        ck_assert_msg(strncmp(want + used, body, strlen(body)) == 0,
                      "request %zu holds:\n%s\nexpected next:\n%s", i, body, want + used);
        used += strlen(body);
        /* The key: the body's LSN, then its events by seq, or by ordinal with a message. */
        ck_assert_msg(key_len > end_len && strcmp(key + key_len - end_len, key_ends[i]) == 0,
                      "request %zu's key is %s", i, key);
        snprintf(lsn, sizeof lsn, "%.*s", (int)(key_len - end_len), key);
        ck_assert_str_eq(hook_field(r, "lsn"), lsn);
        snprintf(marker, sizeof marker, "{\"lsn\":\"%s\",", lsn);
        ck_assert_msg(strncmp(body, marker, strlen(marker)) == 0, "request %zu: key %s, body %s", i,
                      key, body);
    }
    ck_assert_uint_eq(used, strlen(want));
    hook_requests_free(&reqs);

    /* The exec child: the same lines; a non-transactional message in a begin and commit of its
     * own, with xid 0. */
    input = itest_read_lines(itest_file(&ctx, "input").s);
    nevents = child_events(&input, events, sizeof events / sizeof events[0]);
    ck_assert_uint_eq(nevents, jsonl.count);
    for (size_t i = 0; i < nevents; i++)
        ck_assert_str_eq(events[i], jsonl.line[i]);
    snprintf(marker, sizeof marker, "{\"walnotify\":\"begin\",%.*s,\"xid\":0}",
             (int)strcspn(jsonl.line[4] + 1, ","), jsonl.line[4] + 1);
    ck_assert_msg(has_line(&input, marker), "no %s in the child's input", marker);
    itest_lines_free(&input);
    itest_lines_free(&jsonl);
    itest_end(&ctx);
}
END_TEST

/* message_prefixes: a block receives the messages whose prefix is one it lists, exactly; a block
 * without the key receives them all; the events of the others are the same either way. */
START_TEST(test_message_prefixes_choose_messages)
{
    itest_ctx ctx;
    itest_path conf;
    itest_lines all, app;

    itest_begin(&ctx, "msgprefix");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = itest_config(&ctx, "prefix.cfg", "\"public.t\"", 200,
                        "{ name = \"all\"; path = \"%s\"; ops = [ \"insert\", \"message\" ];"
                        "  settings = { path = \"all.jsonl\"; }; },"
                        "{ name = \"app\"; path = \"%s\"; ops = [ \"insert\", \"message\" ];"
                        "  message_prefixes = [ \"app\", \"audit\" ];"
                        "  settings = { path = \"app.jsonl\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s,
                        itest_root_file("build/plugins/jsonl.so").s);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "BEGIN; SELECT pg_logical_emit_message(true, 'app', 'one');"
                         "SELECT pg_logical_emit_message(true, 'app.cache', 'two');"
                         "INSERT INTO t VALUES (1);"
                         "SELECT pg_logical_emit_message(true, 'other', 'three'); COMMIT");
    itest_exec(ctx.conn, "SELECT pg_logical_emit_message(false, 'audit', 'four')");
    itest_exec(ctx.conn, "SELECT pg_logical_emit_message(false, 'APP', 'five')");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2)");
    itest_run_to_now(&ctx, conf.s);

    all = itest_read_lines(itest_file(&ctx, "all.jsonl").s);
    app = itest_read_lines(itest_file(&ctx, "app.jsonl").s);
    ck_assert_uint_eq(all.count, 7);
    ck_assert_uint_eq(app.count, 4);
    /* The same lines, identities included: what a block does not receive changes nothing of
     * what it does. */
    ck_assert_str_eq(app.line[0], all.line[0]);
    ck_assert_str_eq(app.line[1], all.line[2]);
    ck_assert_str_eq(app.line[2], all.line[4]);
    ck_assert_str_eq(app.line[3], all.line[6]);
    ck_assert(strstr(app.line[0], "\"prefix\":\"app\"") != NULL);
    ck_assert(strstr(app.line[1], "\"op\":\"insert\"") != NULL);
    ck_assert(strstr(app.line[2], "\"prefix\":\"audit\"") != NULL);
    itest_lines_free(&all);
    itest_lines_free(&app);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("messages");
    TCase *tc = itest_tcase(suite, "messages");

    tcase_add_test(tc, test_webhook_snapshot_batches);
    tcase_add_test(tc, test_messages_reach_webhook_and_exec);
    tcase_add_test(tc, test_message_prefixes_choose_messages);
    return run_suite(suite) == 0 ? 0 : 1;
}
