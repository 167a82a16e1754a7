/*
 * walnotify --replay: a file's events delivered to the configured plugins, without a database.
 *   a skipped event replayed  a row a sink refused goes to the dead-letter file under
 *                             on_error = "skip"; replayed into the same, still broken sink it is
 *                             skipped again (the block's policy); replayed once the sink is
 *                             fixed, it arrives with its identity, marked replay, alone
 *   a plugin from a file      the jsonl plugin fed a file of every kind of change by a
 *                             configuration whose server does not exist: it writes the same
 *                             lines back, byte for byte; --plugin picks one block of two
 *   a rewind                  a plugin that loses what it had not flushed and asks for rewinds:
 *                             the file is delivered again from its first line, and the last
 *                             pass is whole and in order
 *   a stop                    SIGTERM while handle runs: that call returns, the transaction in
 *                             hand is aborted, the rest of the file not delivered, exit 0
 *   bad lines                 each kind of line that is not an event ends the replay before
 *                             anything is delivered (exit 1), naming the file and the line
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define BADROW "build/tests/fixtures/policy_badrow.so"
#define JSONL "build/plugins/jsonl.so"
#define REWINDER "build/tests/fixtures/rewinder.so"
#define BLOCKER "build/tests/fixtures/blocker.so"
#define REWIND_ROWS 12

static bool stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);
    bool found = err != NULL && strstr(err, needle) != NULL;

    free(err);
    return found;
}

/* A configuration whose server cannot be reached (a replay must not try), with the plugins
 * format gives (the inside of `plugins = ( ... )`). */
static itest_path offline_config(itest_ctx *ctx, const char *name, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static itest_path offline_config(itest_ctx *ctx, const char *name, const char *format, ...)
{
    itest_path conf = itest_file(ctx, name);
    char *plugins = NULL;
    va_list args;
    int n;

    va_start(args, format);
    n = vasprintf(&plugins, format, args);
    va_end(args);
    ck_assert_msg(n >= 0, "out of memory");
    itest_write_file(conf.s,
                     "source = { conninfo = \"host=/nonexistent/walnotify dbname=app\";\n"
                     "           tables = [ \"public.t\", \"public.u\" ]; };\n"
                     "plugins = ( %s );\n",
                     plugins);
    free(plugins);
    return conf;
}

START_TEST(test_skipped_event_replayed_into_fixed_sink)
{
    itest_ctx ctx;
    itest_path broken, fixed, log, dead, resend;
    itest_loglines lines;
    itest_lines dead_lines;
    itest_host host;
    wn_lsn lsn_of_1;

    itest_begin(&ctx, "replayskip");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY, note text)");
    broken = itest_config(&ctx, "broken.cfg", "\"public.t\"", 100,
                          "{ name = \"sink\"; path = \"%s\"; on_error = \"skip\";"
                          "  dead_letter = \"dead.jsonl\";"
                          "  settings = { bad_id = \"2\"; answer = \"fatal\"; log = \"sink.log\"; };"
                          "}",
                          itest_root_file(BADROW).s);
    fixed = itest_config(&ctx, "fixed.cfg", "\"public.t\"", 100,
                         "{ name = \"sink\"; path = \"%s\";"
                         "  settings = { log = \"sink.log\"; replay_only = true; }; }",
                         itest_root_file(BADROW).s);
    itest_create_slot(&ctx, broken.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, 'a'), (2, 'b \"quoted\" é'), (3, NULL)");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (4, 'd')");
    itest_run_to_now(&ctx, broken.s);
    log = itest_file(&ctx, "sink.log");
    dead = itest_file(&ctx, "dead.jsonl");
    lines = itest_read_log(log.s);
    ck_assert_int_eq(lines.count, 3);
    lsn_of_1 = lines.line[0].lsn;
    itest_loglines_free(&lines);
    dead_lines = itest_read_lines(dead.s);
    ck_assert_int_eq(dead_lines.count, 1);
    ck_assert_msg(strstr(dead_lines.line[0], "\"seq\":1,") != NULL, "dead letter: %s",
                  dead_lines.line[0]);
    resend = itest_file(&ctx, "resend.jsonl");
    itest_write_file(resend.s, "%s\n", dead_lines.line[0]);
    itest_lines_free(&dead_lines);

    /* Still broken: the replayed row meets the block's policy again, and only the one line the
     * file held is read although the skip appends to it. */
    itest_host_run(&ctx, &host, "--replay", dead.s, "-c", broken.s);
    itest_assert_exit(&host, 0);
    dead_lines = itest_read_lines(dead.s);
    ck_assert_int_eq(dead_lines.count, 2);
    itest_lines_free(&dead_lines);
    lines = itest_read_log(log.s);
    ck_assert_int_eq(lines.count, 3);
    itest_loglines_free(&lines);

    /* Fixed (and refusing anything not marked replay): the row arrives once, with the identity
     * the stream gave it: the first transaction's commit LSN, seq 1. */
    itest_host_run(&ctx, &host, "--replay", resend.s, "-c", fixed.s);
    itest_assert_exit(&host, 0);
    lines = itest_read_log(log.s);
    ck_assert_int_eq(lines.count, 4);
    ck_assert_str_eq(lines.line[3].id, "2");
    ck_assert_str_eq(lines.line[3].table, "public.t");
    ck_assert_str_eq(lines.line[3].op, "insert");
    ck_assert_msg(lines.line[3].lsn == lsn_of_1 && lines.line[3].seq == 1,
                  "the replayed row came as %s seq %ld, not as the stream gave it (%s seq 1)",
                  itest_lsn_text(lines.line[3].lsn), lines.line[3].seq, itest_lsn_text(lsn_of_1));
    itest_loglines_free(&lines);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_plugin_exercised_from_file_only)
{
    static const char events[] =
        "{\"lsn\":\"0/1A2B3C8\",\"seq\":0,\"xid\":744,\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
        "\"table\":\"public.t\",\"op\":\"insert\",\"values\":{\"id\":\"1\",\"note\":null}}\n"
        "{\"lsn\":\"0/1A2B3C8\",\"seq\":2,\"xid\":744,\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
        "\"table\":\"public.t\",\"op\":\"update\",\"values\":{\"id\":\"1\",\"note\":\"x \\\"q\\\" "
        "\\\\ \\t \xc3\xa9\"},\"unchanged\":[\"big\"],\"old\":{\"id\":\"1\",\"note\":null}}\n"
        "{\"lsn\":\"0/1A2B400\",\"seq\":0,\"xid\":745,\"commit_time\":\"2026-11-25T11:00:01.000000Z\","
        "\"table\":\"public.u\",\"op\":\"truncate\",\"options\":[\"cascade\",\"restart_identity\"]}\n"
        "{\"lsn\":\"0/1A2B500\",\"seq\":1,\"xid\":746,\"commit_time\":\"2026-11-25T11:00:02.000001Z\","
        "\"table\":\"public.t\",\"op\":\"delete\",\"old\":{\"id\":\"1\"}}\n";
    itest_ctx ctx;
    itest_path conf, in;
    itest_host host;
    char *out, *other;

    itest_begin(&ctx, "replayfile");
    in = itest_file(&ctx, "events.jsonl");
    itest_write_file(in.s, "%s", events);
    conf = offline_config(&ctx, "offline.cfg",
                          "{ name = \"copy\"; path = \"%s\"; ops = [ \"insert\", \"update\","
                          "  \"delete\", \"truncate\" ]; settings = { path = \"copy.jsonl\"; }; },"
                          "{ name = \"other\"; path = \"%s\"; ops = [ \"insert\" ];"
                          "  settings = { path = \"other.jsonl\"; }; }",
                          itest_root_file(JSONL).s, itest_root_file(JSONL).s);
    itest_host_run(&ctx, &host, "--replay", in.s, "-c", conf.s, "--plugin", "copy");
    itest_assert_exit(&host, 0);
    ck_assert_msg(stderr_has(&host, "replayed 4 line(s) of "), "no summary line");
    out = itest_read_file(itest_file(&ctx, "copy.jsonl").s, NULL);
    ck_assert_ptr_nonnull(out);
    ck_assert_str_eq(out, events);
    free(out);
    other = itest_read_file(itest_file(&ctx, "other.jsonl").s, NULL);
    ck_assert_msg(other == NULL, "--plugin copy delivered to \"other\" too");

    /* Every block: "other" takes the insert alone. */
    itest_host_run(&ctx, &host, "--replay", in.s, "-c", conf.s);
    itest_assert_exit(&host, 0);
    other = itest_read_file(itest_file(&ctx, "other.jsonl").s, NULL);
    ck_assert_ptr_nonnull(other);
    ck_assert_msg(strncmp(other, events, strlen(other)) == 0 && strchr(other, '\n') != NULL &&
                      strchr(other, '\n')[1] == '\0',
                  "\"other\" received: %s", other);
    free(other);
    itest_end(&ctx);
}
END_TEST

/* events.jsonl: REWIND_ROWS inserts of ids 1, 2, ..., three per transaction. */
static itest_path write_inserts(itest_ctx *ctx)
{
    itest_path in = itest_file(ctx, "events.jsonl");
    FILE *f = fopen(in.s, "w");

    ck_assert_ptr_nonnull(f);
    for (int id = 1; id <= REWIND_ROWS; id++)
        fprintf(f,
                "{\"lsn\":\"0/%X\",\"seq\":%d,\"xid\":%d,\"commit_time\":"
                "\"2026-11-25T11:00:00.000000Z\",\"table\":\"public.t\",\"op\":\"insert\","
                "\"values\":{\"id\":\"%d\"}}\n",
                0x1000 * (1 + (id - 1) / 3), (id - 1) % 3, 700 + (id - 1) / 3, id);
    ck_assert_int_eq(fclose(f), 0);
    return in;
}

START_TEST(test_rewind_replays_file_again)
{
    itest_ctx ctx;
    itest_path conf, in, log;
    itest_loglines lines;
    itest_host host;

    itest_begin(&ctx, "replayrewind");
    in = write_inserts(&ctx);
    conf = offline_config(&ctx, "offline.cfg",
                          "{ name = \"lossy\"; path = \"%s\"; retry_initial_ms = 1;"
                          "  settings = { seed = 7; span = 5; max_rewinds = 3; log = \"r.log\"; };"
                          "}",
                          itest_root_file(REWINDER).s);
    itest_host_run(&ctx, &host, "--replay", in.s, "-c", conf.s);
    itest_assert_exit(&host, 0);
    ck_assert_msg(stderr_has(&host, "replaying ") && stderr_has(&host, " again from its first line"),
                  "no rewind was said");
    log = itest_file(&ctx, "r.log");
    lines = itest_read_log(log.s);
    ck_assert_uint_gt(lines.count, REWIND_ROWS);
    for (size_t i = 0; i < REWIND_ROWS; i++) {
        char want[16];

        snprintf(want, sizeof want, "%zu", i + 1);
        ck_assert_str_eq(lines.line[lines.count - REWIND_ROWS + i].id, want);
    }
    itest_loglines_free(&lines);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_stop)
{
    itest_ctx ctx;
    itest_path conf, in, entered, release, aborts;
    itest_loglines lines;
    itest_lines aborted;
    itest_host host;
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    itest_begin(&ctx, "replaystop");
    in = write_inserts(&ctx);
    entered = itest_file(&ctx, "entered");
    release = itest_file(&ctx, "release");
    aborts = itest_file(&ctx, "aborts");
    conf = offline_config(&ctx, "offline.cfg",
                          "{ name = \"slow\"; path = \"%s\"; settings = { block_at = 2;"
                          "  block_ms = 600000; entered = \"entered\"; release = \"release\";"
                          "  log = \"slow.log\"; aborts = \"aborts\"; }; }",
                          itest_root_file(BLOCKER).s);
    itest_host_start(&ctx, &host, ITEST_ARGS("--replay", in.s, "-c", conf.s));
    while (access(entered.s, F_OK) != 0) {
        ck_assert_msg(itest_host_running(&host), "walnotify exited (%d) before handle blocked",
                      host.status);
        ck_assert_msg(!itest_expired(&deadline), "handle never blocked");
        itest_sleep_ms(ITEST_POLL_MS);
    }
    ck_assert_int_eq(kill(host.pid, SIGTERM), 0);
    itest_sleep_ms(100); /* the stop is asked for while handle still runs */
    itest_write_file(release.s, "%s", "");
    ck_assert_int_eq(itest_host_wait(&host, ITEST_WAIT_S), 0);
    ck_assert_msg(stderr_has(&host, "stopped by SIGTERM at line 3 of "), "no stop line");
    lines = itest_read_log(itest_file(&ctx, "slow.log").s);
    ck_assert_int_eq(lines.count, 2);
    itest_loglines_free(&lines);
    aborted = itest_read_lines(aborts.s);
    ck_assert_int_eq(aborted.count, 1);
    ck_assert_str_eq(aborted.line[0], "0/1000");
    itest_lines_free(&aborted);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_bad_lines)
{
    static const char good[] =
        "{\"lsn\":\"0/1A2B3C8\",\"seq\":0,\"xid\":744,\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
        "\"table\":\"public.t\",\"op\":\"insert\",\"values\":{\"id\":\"1\"}}";
    static const struct {
        const char *line;
        const char *why;
    } bad[] = {
        {"not json", "not JSON: unexpected character at byte 1"},
        {"{\"lsn\":\"0/1A2B3C8\",\"seq\":0", "not JSON: unexpected end"},
        {"[1]", "not a JSON object"},
        {"{\"lsn\":\"0/1A2B3C8\",\"seq\":0,\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
         "\"table\":\"public.t\",\"op\":\"insert\",\"values\":{}}",
         "no \"xid\""},
        {"{\"lsn\":\"0/1A2B3C8\",\"seq\":0,\"xid\":1,\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
         "\"table\":\"public.nope\",\"op\":\"insert\",\"values\":{}}",
         "table \"public.nope\" is not one of source.tables"},
        {"{\"lsn\":\"0/1A2B3C8\",\"ordinal\":0,\"op\":\"message\",\"transactional\":false,"
         "\"prefix\":\"p\",\"content\":\"c\"}",
         "op \"message\" cannot be replayed"},
        {"{\"lsn\":\"0/1A2B3C8\",\"seq\":0,\"xid\":1,\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
         "\"table\":\"public.t\",\"op\":\"insert\",\"values\":{},\"extra\":1}",
         "unknown key \"extra\""},
        {"{\"lsn\":\"0/1A2B3C8\",\"seq\":0,\"xid\":1,\"commit_time\":\"2026-11-25 11:00:00\","
         "\"table\":\"public.t\",\"op\":\"insert\",\"values\":{}}",
         "no \"commit_time\" like"},
        {"", "not JSON: unexpected end at byte 1"},
        {"{\"lsn\":\"0/1A2B3C8\",\"seq\":0,\"xid\":1,\"commit_time\":\"2026-11-25T11:00:00.123456Z\","
         "\"table\":\"public.t\",\"op\":\"insert\"}",
         "no \"values\""},
    };
    itest_ctx ctx;
    itest_path conf, in;
    itest_host host;
    char where[64];

    itest_begin(&ctx, "replaybad");
    conf = offline_config(&ctx, "offline.cfg",
                          "{ name = \"copy\"; path = \"%s\"; settings = { path = \"copy.jsonl\"; }; }",
                          itest_root_file(JSONL).s);
    in = itest_file(&ctx, "events.jsonl");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        itest_write_file(in.s, "%s\n%s\n%s\n", good, good, bad[i].line);
        itest_host_run(&ctx, &host, "--replay", in.s, "-c", conf.s);
        itest_assert_failed(&host, 1);
        snprintf(where, sizeof where, "events.jsonl:3: ");
        ck_assert_msg(stderr_has(&host, where) && stderr_has(&host, bad[i].why),
                      "line \"%s\" was not refused as \"%s\"", bad[i].line, bad[i].why);
        ck_assert_msg(itest_read_file(itest_file(&ctx, "copy.jsonl").s, NULL) == NULL,
                      "something was delivered before the bad line \"%s\"", bad[i].line);
    }
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("replay");
    TCase *tc = itest_tcase(suite, "replay");

    tcase_add_test(tc, test_skipped_event_replayed_into_fixed_sink);
    tcase_add_test(tc, test_plugin_exercised_from_file_only);
    tcase_add_test(tc, test_rewind_replays_file_again);
    tcase_add_test(tc, test_stop);
    tcase_add_test(tc, test_bad_lines);
    return run_suite(suite) == 0 ? 0 : 1;
}
