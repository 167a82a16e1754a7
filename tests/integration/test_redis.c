/*
 * The redis plugin against a real redis-server (started here on a Unix socket, append-only file
 * with appendfsync always) and the real PostgreSQL:
 *   exactly once      rows in several transactions, one larger than a batch, messages, an
 *                     update, a delete and a truncate: one entry each, its ID the event's
 *                     identity, its data the jsonl plugin's line; the same transactions streamed again (from a second slot
 *                     made before them) add nothing;
 *   snapshot          the initial snapshot's rows are entries as inserts are, before the
 *                     changes that follow, their data the jsonl plugin's lines;
 *   rewinds           another plugin (the rewinder fixture) rewinds the stream again and again:
 *                     the redis block sees its transactions aborted and delivered again,
 *                     some of them already in its batches or in Redis: every row once;
 *   Redis restarted   redis-server killed (SIGKILL) twice and started again under a writer:
 *                     every row once;
 *   logging in        an ACL user with the right password delivers (into the database db
 *                     names); a wrong one stops
 *                     walnotify (exit 2) with a message naming the user and Redis's answer,
 *                     never the password;
 *   kill -9           walnotify killed with SIGKILL again and again under a writer: every row
 *                     once, in commit order; again with maxlen trimming the stream (the
 *                     stream's entries-added count equals the rows, the kept entries are the
 *                     last rows, and no replay is taken for another writer);
 *   another writer    an entry added with * (an ID far above every LSN) makes walnotify stop
 *                     with a message naming the stream and the IDs, acknowledging nothing.
 *
 * WN_REDIS_KILLS sets the number of kills (default 3; `make check-sinks` runs many more).
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "faults.h"
#include "itest.h"
#include "redisserver.h"
#include "redissink.h"

#define STREAM "walnotify:public.t"

static void create_table(itest_ctx *ctx)
{
    itest_exec(ctx->conn, "CREATE TABLE t (id bigint PRIMARY KEY, note text DEFAULT 'a note'); "
                          "CREATE SEQUENCE ids");
}

#define DEFAULT_KILLS 3
#define KILL_AFTER_MIN_MS 300
#define KILL_AFTER_MAX_MS 1200

static int env_int(const char *name, int fallback)
{
    const char *text = getenv(name);

    return text != NULL && atoi(text) > 0 ? atoi(text) : fallback;
}

/* Runs conf under a writer while walnotify is killed with SIGKILL again and again at random
 * moments, then once more to the end of the WAL. */
static void run_under_kill9(itest_ctx *ctx, const char *what, const char *conf)
{
    const faults_mix mix = {
        .min_rows = 1, .max_rows = 30, .big_every = 40, .big_rows = 3000, .pause_ms = 20};
    int kills = env_int("WN_REDIS_KILLS", DEFAULT_KILLS);
    uint64_t seed = faults_seed(what);
    faults_rng rng = faults_rng_new(seed);
    itest_host host;
    pid_t writer;

    itest_create_slot(ctx, conf);
    writer = faults_writer_start(ctx, "t", "ids", faults_rng_next(&rng), &mix);
    for (int k = 0; k < kills; k++) {
        faults_wait_slot_released(ctx->conn, ctx->slot);
        itest_host_start(ctx, &host, ITEST_ARGS("-c", conf));
        itest_sleep_ms((int)faults_rng_range(&rng, KILL_AFTER_MIN_MS, KILL_AFTER_MAX_MS));
        ck_assert_msg(itest_host_running(&host), "walnotify stopped by itself (exit %d)",
                      host.status);
        faults_host_kill(&host);
    }
    itest_writer_stop(writer);
    faults_wait_slot_released(ctx->conn, ctx->slot);
    itest_run_to_now(ctx, conf);
    fprintf(stderr, "%s: %lld rows after %d kills (seed %" PRIu64 ")\n", what,
            itest_query_int(ctx->conn, "SELECT count(*) FROM t"), kills, seed);
}

static bool stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);
    bool has = err != NULL && strstr(err, needle) != NULL;

    free(err);
    return has;
}

#define TABLES "\"public.t\", \"public.u\""
#define OPS "[\"insert\", \"update\", \"delete\", \"truncate\", \"message\"]"

START_TEST(test_exactly_once)
{
    itest_ctx ctx, again;
    itest_host host;
    itest_path conf, conf2, jsonl;
    itest_lines lines;
    redis_server rs;
    redis_entry *entries, *messages, *others;
    size_t count, nmessages, nothers, j = 0, m = 0, o = 0;
    char *endpos;
    static const char *const other_ops[] = {"insert", "update", "delete", "insert", "truncate"};

    itest_begin(&ctx, "redisonce");
    create_table(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE u (id int PRIMARY KEY, v text)");
    redis_server_start(&rs, ctx.dir, "");
    conf = itest_config(&ctx, "once.cfg", TABLES, 100,
                        "{ name = \"redis\"; path = \"%s\"; ops = " OPS ";"
                        "  settings = { address = \"%s\"; batch_entries = 100; }; },"
                        "{ name = \"log\"; path = \"%s\"; ops = " OPS ";"
                        "  settings = { path = \"events.jsonl\"; }; }",
                        itest_root_file(REDIS_PLUGIN).s, rs.sock,
                        itest_root_file("build/plugins/jsonl.so").s);
    itest_create_slot(&ctx, conf.s);
    /* A second slot at the same place streams the same transactions again, later. */
    again = ctx;
    ck_assert_int_lt(snprintf(again.slot, sizeof again.slot, "%.50s_again", ctx.slot),
                     (int)sizeof again.slot);
    conf2 = itest_config(&again, "again.cfg", TABLES, 100,
                         "{ name = \"redis\"; path = \"%s\"; ops = " OPS ";"
                         "  settings = { address = \"%s\"; batch_entries = 7; }; }",
                         itest_root_file(REDIS_PLUGIN).s, rs.sock);
    itest_create_slot(&again, conf2.s);

    itest_exec(ctx.conn, "INSERT INTO t (id) VALUES (nextval('ids'))");
    itest_exec(ctx.conn, "BEGIN; INSERT INTO t (id) SELECT nextval('ids') FROM "
                         "generate_series(1, 250); SELECT pg_logical_emit_message(true, 'audit', "
                         "'in the middle'); INSERT INTO t (id, note) VALUES (nextval('ids'), "
                         "'é \"quoted\"\nline'); COMMIT");
    itest_exec(ctx.conn, "SELECT pg_logical_emit_message(false, 'audit', 'on its own')");
    itest_exec(ctx.conn, "INSERT INTO t (id) SELECT nextval('ids') FROM generate_series(1, 3)");
    itest_exec(ctx.conn, "INSERT INTO u VALUES (1, 'a'); UPDATE u SET v = 'b'; DELETE FROM u; "
                         "INSERT INTO u VALUES (2, 'c'); TRUNCATE u");
    itest_run_to_now(&ctx, conf.s);
    ck_assert_int_eq(redissink_assert_once(&ctx, &rs, STREAM), 255);

    /* Each entry's data is the jsonl plugin's line, in the same order. */
    jsonl = itest_file(&ctx, "events.jsonl");
    lines = itest_read_lines(jsonl.s);
    entries = redis_entries(&rs, STREAM, &count);
    messages = redis_entries(&rs, "walnotify:messages:audit", &nmessages);
    others = redis_entries(&rs, "walnotify:public.u", &nothers);
    ck_assert_int_eq(nmessages, 2);
    ck_assert_int_eq(nothers, 5);
    ck_assert_int_eq(lines.count, count + nmessages + nothers);
    for (size_t i = 0; i < lines.count; i++) {
        const redis_entry *e = strstr(lines.line[i], "\"op\":\"message\"") != NULL
                                   ? &messages[m++]
                               : strstr(lines.line[i], "\"table\":\"public.u\"") != NULL
                                   ? &others[o++]
                                   : &entries[j++];
        ck_assert_msg(strcmp(e->data, lines.line[i]) == 0, "entry %s holds %s, jsonl wrote %s",
                      e->id, e->data, lines.line[i]);
    }
    for (size_t i = 0; i < nothers; i++) {
        ck_assert_str_eq(others[i].op, other_ops[i]);
        ck_assert_str_eq(others[i].table, "public.u");
    }
    redis_entries_free(others, nothers);
    ck_assert_str_eq(messages[0].op, "message");
    ck_assert_str_eq(messages[0].table, "");
    redis_entries_free(messages, nmessages);
    redis_entries_free(entries, count);
    itest_lines_free(&lines);

    /* The same transactions again: every entry is refused as one Redis holds; none added. */
    endpos = itest_lsn_text(itest_current_lsn(ctx.conn));
    itest_host_run(&again, &host, "-c", conf2.s, "--endpos", endpos);
    free(endpos);
    itest_assert_exit(&host, 0);
    ck_assert_msg(stderr_has(&host, "entries were in their streams already"),
                  "the second run did not see the entries as delivered");
    ck_assert_int_eq(redissink_assert_once(&ctx, &rs, STREAM), 255);
    ck_assert_int_eq(redissink_entries_added(&rs, STREAM), 255);
    ck_assert_int_eq(redissink_entries_added(&rs, "walnotify:messages:audit"), 2);
    ck_assert_int_eq(redissink_entries_added(&rs, "walnotify:public.u"), 5);
    itest_exec(ctx.conn, "SELECT pg_drop_replication_slot('%s')", again.slot);
    redis_server_stop(&rs);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_kill9)
{
    itest_ctx ctx;
    itest_path conf;
    redis_server rs;

    itest_begin(&ctx, "rediskill");
    create_table(&ctx);
    redis_server_start(&rs, ctx.dir, "");
    conf = redissink_config(&ctx, "kill9.cfg", &rs, "", "batch_entries = 200;");
    run_under_kill9(&ctx, "redis kill9", conf.s);
    redissink_assert_once(&ctx, &rs, STREAM);
    redis_server_stop(&rs);
    itest_end(&ctx);
}
END_TEST

/*
 * With maxlen, most entries are trimmed away, so XRANGE cannot tell a replay from a new entry:
 * the recorded last ID does. Redis counts every entry ever added to a stream (entries-added):
 * exactly once means that count equals the rows.
 */
START_TEST(test_kill9_maxlen)
{
    itest_ctx ctx;
    itest_path conf;
    redis_server rs;
    redis_entry *entries;
    size_t count;
    long long rows;
    char *last;

    itest_begin(&ctx, "redistrim");
    create_table(&ctx);
    redis_server_start(&rs, ctx.dir, "");
    conf = redissink_config(&ctx, "trim.cfg", &rs, "", "batch_entries = 100; maxlen = 50;");
    run_under_kill9(&ctx, "redis kill9 maxlen", conf.s);
    rows = itest_query_int(ctx.conn, "SELECT count(*) FROM t");
    ck_assert_int_eq(redissink_entries_added(&rs, STREAM), rows);
    entries = redis_entries(&rs, STREAM, &count);
    ck_assert_msg(count > 0 && (long long)count < rows, "%zu entries kept of %lld", count, rows);
    /* The kept entries are the last rows, in order. */
    for (size_t i = 0; i < count; i++) {
        const char *at = strstr(entries[i].data, "\"values\":{\"id\":\"");
        long long expect = itest_query_int(ctx.conn, "SELECT id FROM t ORDER BY id OFFSET %lld LIMIT 1",
                                           rows - (long long)count + (long long)i);
        ck_assert_msg(at != NULL && atoll(at + 16) == expect, "kept entry %zu (%s) is not row %lld",
                      i, entries[i].id, expect);
    }
    last = redis_get(&rs, STREAM ":walnotify-last-id");
    ck_assert_ptr_nonnull(last);
    ck_assert_str_eq(last, entries[count - 1].id);
    free(last);
    redis_entries_free(entries, count);
    redis_server_stop(&rs);
    itest_end(&ctx);
}
END_TEST

/* Waits until the file holds text. */
static void wait_for_text(const char *path, const char *text)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        char *content = itest_read_file(path, NULL);
        bool found = content != NULL && strstr(content, text) != NULL;
        free(content);
        if (found)
            return;
        ck_assert_msg(!itest_expired(&deadline), "%s never held %s", path, text);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

START_TEST(test_snapshot_rows)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, jsonl;
    itest_lines lines;
    redis_server rs;
    redis_entry *entries;
    size_t count, j = 0;

    itest_begin(&ctx, "redissnap");
    create_table(&ctx);
    itest_exec(ctx.conn, "INSERT INTO t (id) SELECT nextval('ids') FROM generate_series(1, 300)");
    redis_server_start(&rs, ctx.dir, "");
    conf = itest_config_extra(
        &ctx, "snap.cfg", "\"public.t\"", 100, "snapshot = \"initial\"; state_file = \"state\";",
        "{ name = \"redis\"; path = \"%s\"; ops = [\"snapshot\", \"insert\"];"
        "  settings = { address = \"%s\"; batch_entries = 64; }; },"
        "{ name = \"log\"; path = \"%s\"; ops = [\"snapshot\", \"insert\"];"
        "  settings = { path = \"events.jsonl\"; }; }",
        itest_root_file(REDIS_PLUGIN).s, rs.sock, itest_root_file("build/plugins/jsonl.so").s);
    jsonl = itest_file(&ctx, "events.jsonl");
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    wait_for_text(jsonl.s, "\"marker\":\"end\"");
    itest_exec(ctx.conn, "INSERT INTO t (id) SELECT nextval('ids') FROM generate_series(1, 5)");
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    itest_run_to_now(&ctx, conf.s);

    lines = itest_read_lines(jsonl.s);
    entries = redis_entries(&rs, STREAM, &count);
    ck_assert_int_eq(count, 305);
    ck_assert_int_eq(redissink_entries_added(&rs, STREAM), 305);
    for (size_t i = 0; i < lines.count; i++) {
        if (strstr(lines.line[i], "\"marker\":") != NULL)
            continue; /* the begin and end markers are not entries */
        ck_assert_msg(j < count && strcmp(entries[j].data, lines.line[i]) == 0,
                      "entry %zu differs from the jsonl line %s", j, lines.line[i]);
        ck_assert_str_eq(entries[j].op, j < 300 ? "snapshot" : "insert");
        j++;
    }
    ck_assert_int_eq(j, count);
    redis_entries_free(entries, count);
    itest_lines_free(&lines);
    redis_server_stop(&rs);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_other_plugin_rewinds)
{
    const faults_mix mix = {.min_rows = 1, .max_rows = 40, .big_every = 10, .big_rows = 400,
                            .transactions = 150};
    uint64_t seed = faults_seed("redis rewinds");
    itest_ctx ctx;
    itest_path conf;
    redis_server rs;
    char *endpos;
    itest_host host;

    itest_begin(&ctx, "redisrewind");
    create_table(&ctx);
    redis_server_start(&rs, ctx.dir, "");
    conf = itest_config(&ctx, "rewind.cfg", "\"public.t\"", 1000,
                        "{ name = \"redis\"; path = \"%s\"; settings = { address = \"%s\";"
                        "  batch_entries = 7; }; },"
                        "{ name = \"rewinder\"; path = \"%s\"; retry_initial_ms = 1;"
                        "  retry_max_ms = 5; settings = { seed = %llu; span = 300;"
                        "  max_rewinds = 25; log = \"rewinder.log\"; }; }",
                        itest_root_file(REDIS_PLUGIN).s, rs.sock,
                        itest_root_file("build/tests/fixtures/rewinder.so").s,
                        (unsigned long long)seed);
    itest_create_slot(&ctx, conf.s);
    faults_write_all(&ctx, "t", "ids", seed, &mix);
    endpos = itest_lsn_text(itest_current_lsn(ctx.conn));
    itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", endpos);
    free(endpos);
    itest_assert_exit(&host, 0);
    ck_assert_msg(stderr_has(&host, "plugin \"rewinder\" asked for a rewind"),
                  "the rewinder never rewound");
    fprintf(stderr, "redis rewinds: %zu rows\n", redissink_assert_once(&ctx, &rs, STREAM));
    redis_server_stop(&rs);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_redis_restarted)
{
    const faults_mix mix = {.min_rows = 1, .max_rows = 20, .big_every = 15, .big_rows = 800,
                            .pause_ms = 10};
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    redis_server rs;
    pid_t writer;

    itest_begin(&ctx, "redisrestart");
    create_table(&ctx);
    redis_server_start(&rs, ctx.dir, "");
    conf = redissink_config(&ctx, "restart.cfg", &rs, "", "batch_entries = 50;");
    itest_create_slot(&ctx, conf.s);
    writer = faults_writer_start(&ctx, "t", "ids", faults_seed("redis restart"), &mix);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    for (int round = 0; round < 2; round++) {
        itest_sleep_ms(700);
        redis_server_kill(&rs);
        itest_sleep_ms(300);
        redis_server_restart(&rs);
    }
    itest_sleep_ms(500);
    itest_writer_stop(writer);
    ck_assert_msg(itest_host_running(&host), "walnotify stopped by itself (exit %d)", host.status);
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    itest_run_to_now(&ctx, conf.s);
    ck_assert_msg(stderr_has(&host, "will retry: cannot connect") ||
                      stderr_has(&host, "the connection to"),
                  "walnotify never saw Redis go away");
    fprintf(stderr, "redis restart: %zu rows\n", redissink_assert_once(&ctx, &rs, STREAM));
    redis_server_stop(&rs);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_logging_in)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, right, wrong;
    redis_server rs;
    char *err, *out;

    itest_begin(&ctx, "redisauth");
    create_table(&ctx);
    redis_server_start(&rs, ctx.dir,
                       "user default on nopass ~* &* +@read +@connection\n"
                       "user alice on >alice-Pw-0451 ~walnotify:* +@all");
    right = itest_file(&ctx, "right.pw");
    wrong = itest_file(&ctx, "wrong.pw");
    itest_write_file(right.s, "alice-Pw-0451\n");
    itest_write_file(wrong.s, "Wrong-Pw-7733\n");
    chmod(right.s, 0600);
    chmod(wrong.s, 0600);
    conf = redissink_config(&ctx, "wrong.cfg", &rs, "",
                            "username = \"alice\"; password_file = \"wrong.pw\";");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t (id) SELECT nextval('ids') FROM generate_series(1, 5)");

    ck_assert_int_eq(itest_host_run(&ctx, &host, "-c", conf.s), 2);
    itest_assert_failed(&host, 2);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "AUTH as alice") != NULL && strstr(err, "WRONGPASS") != NULL,
                  "no clear message about the wrong password: %s", err);
    ck_assert_msg(strstr(err, "Wrong-Pw-7733") == NULL, "the password reached the log");
    free(err);

    conf = redissink_config(&ctx, "right.cfg", &rs, "",
                            "username = \"alice\"; password_file = \"right.pw\"; db = 2;");
    itest_run_to_now(&ctx, conf.s);
    out = redis_cli(&rs, (const char *const[]){"-n", "2", "XLEN", STREAM, NULL});
    ck_assert_msg(atoi(out) == 5, "database 2 holds %s entries, not 5", out);
    free(out);
    ck_assert_int_eq(redis_xlen(&rs, STREAM), 0); /* database 0 */
    redis_server_stop(&rs);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_another_writer)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    redis_server rs;
    wn_lsn before;
    char *err, *endpos, *foreign;

    itest_begin(&ctx, "redisforeign");
    create_table(&ctx);
    redis_server_start(&rs, ctx.dir, "");
    conf = redissink_config(&ctx, "foreign.cfg", &rs, "", "");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t (id) SELECT nextval('ids') FROM generate_series(1, 3)");
    itest_run_to_now(&ctx, conf.s);
    ck_assert_int_eq(redissink_assert_once(&ctx, &rs, STREAM), 3);

    foreign = redis_cli(&rs, (const char *const[]){"XADD", STREAM, "*", "who", "else", NULL});
    foreign[strcspn(foreign, "\n")] = '\0';
    itest_exec(ctx.conn, "INSERT INTO t (id) SELECT nextval('ids') FROM generate_series(1, 2)");
    before = itest_slot_confirmed(ctx.conn, ctx.slot);
    endpos = itest_lsn_text(itest_current_lsn(ctx.conn));
    ck_assert_int_eq(itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", endpos), 2);
    free(endpos);
    itest_assert_failed(&host, 2);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "another writer adds entries to this stream") != NULL &&
                      strstr(err, "stream " STREAM " refused entry") != NULL &&
                      strstr(err, foreign) != NULL,
                  "no clear message naming the stream and the other writer's ID %s: %s", foreign,
                  err);
    free(err);
    free(foreign);
    ck_assert_int_eq(itest_slot_confirmed(ctx.conn, ctx.slot), before);
    ck_assert_int_eq(redis_xlen(&rs, STREAM), 4);
    redis_server_stop(&rs);
    itest_end(&ctx);
}
END_TEST

/* --check-config on a block with these settings: its exit code, and stderr holds `want`. */
static void check_settings(itest_ctx *ctx, const char *settings, int code, const char *want)
{
    itest_path conf = itest_config(ctx, "settings.cfg", "\"public.t\"", 100,
                                   "{ name = \"redis\"; path = \"%s\"; settings = { %s }; }",
                                   itest_root_file(REDIS_PLUGIN).s, settings);
    itest_host host;

    itest_host_run(ctx, &host, "--check-config", "-c", conf.s);
    itest_assert_exit(&host, code);
    ck_assert_msg(want == NULL || stderr_has(&host, want), "no \"%s\" for %s", want, settings);
}

START_TEST(test_settings)
{
    itest_ctx ctx;
    itest_host host;

    itest_begin(&ctx, "redisconf");
    itest_host_run(&ctx, &host, "--check-config", "-c",
                   itest_root_file("etc/examples/redis.conf").s);
    itest_assert_exit(&host, 0);
    check_settings(&ctx, "stream = \"app:${table}:${schema}\"; maxlen = 10;", 0, NULL);
    check_settings(&ctx, "stream = \"app:${tabel}\";", 1,
                   "setting stream \"app:${tabel}\" names ${tabel}, which is not one of its");
    check_settings(&ctx, "message_stream = \"m:${prefix\";", 1,
                   "setting message_stream \"m:${prefix\" has \"${\" without \"}\"");
    check_settings(&ctx, "address = \"localhost\";", 1,
                   "setting address is \"localhost\": expected host:port");
    check_settings(&ctx, "maxlen = -1;", 1, "setting maxlen is -1");
    check_settings(&ctx, "batch_entries = 0;", 1, "setting batch_entries is 0");
    check_settings(&ctx, "username = \"alice\";", 1,
                   "setting username is set without password_file");
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("redis");
    TCase *tc = itest_tcase(suite, "redis");

    tcase_add_test(tc, test_exactly_once);
    tcase_add_test(tc, test_kill9);
    tcase_add_test(tc, test_kill9_maxlen);
    tcase_add_test(tc, test_snapshot_rows);
    tcase_add_test(tc, test_other_plugin_rewinds);
    tcase_add_test(tc, test_redis_restarted);
    tcase_add_test(tc, test_logging_in);
    tcase_add_test(tc, test_another_writer);
    tcase_add_test(tc, test_settings);
    return run_suite(suite) == 0 ? 0 : 1;
}
