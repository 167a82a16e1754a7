/*
 * The exec plugin against the real server, with the shipped example sinks and a test sink:
 *
 *   - the Python example (SQLite) while walnotify is killed with SIGKILL again and again under a
 *     writer: its database ends equal to the table, each row once, in commit order (the child a
 *     killed walnotify leaves behind finishes its input and exits; the next one drops replays);
 *   - the Node example (a JSON-lines file) over two runs, and under kill -9 as above: each row
 *     once, in commit order (the copy a killed walnotify left holds the file until it exits);
 *   - a sink that acknowledges late: the slot, sampled throughout, never passes a transaction
 *     the sink has not acknowledged;
 *   - SIGTERM to walnotify: the child reads the end of its input, finishes and exits;
 *   - children that misbehave on purpose (tests/fixtures/exec/child.sh): one that writes blank
 *     lines instead of acknowledging does not keep walnotify from stopping on SIGTERM; one that
 *     floods its standard error leaves a bounded number of lines in walnotify's log, and says
 *     how many it dropped; one that prints its environment sees no PG* variable of walnotify's
 *     (PGPASSWORD...) unless its block's env names it;
 *   - a program anyone may change is refused by --check-config and by a run (exit 1);
 *   - etc/examples/exec.conf passes --check-config.
 *
 * WN_EXEC_KILLS sets the number of kills (default 3; `make check-sinks` runs many more).
 */
#include <check.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "execsink.h"
#include "faults.h"
#include "itest.h"

#define DEFAULT_KILLS 3
#define KILL_AFTER_MIN_MS 300
#define KILL_AFTER_MAX_MS 1500
#define RUN_S 100

static int env_int(const char *name, int fallback)
{
    const char *text = getenv(name);

    return text != NULL && atoi(text) > 0 ? atoi(text) : fallback;
}

static void make_table(itest_ctx *ctx)
{
    itest_exec(ctx->conn, "CREATE TABLE t (id bigint PRIMARY KEY, note text DEFAULT 'a note'); "
                          "CREATE SEQUENCE ids");
}

/*
 * Runs the sink `argv` under a writer while walnotify is killed with SIGKILL `kills` times at
 * random moments, then once more to the end of the WAL.
 */
static void run_under_kill9(itest_ctx *ctx, const char *what, const char *argv)
{
    const faults_mix mix = {
        .min_rows = 1, .max_rows = 30, .big_every = 40, .big_rows = 3000, .pause_ms = 20};
    int kills = env_int("WN_EXEC_KILLS", DEFAULT_KILLS);
    uint64_t seed = faults_seed(what);
    faults_rng rng = faults_rng_new(seed);
    itest_host host;
    itest_path conf;
    pid_t writer;

    make_table(ctx);
    conf = execsink_config(ctx, "kill9.cfg", 200, 30000, argv);
    itest_create_slot(ctx, conf.s);
    writer = faults_writer_start(ctx, "t", "ids", faults_rng_next(&rng), &mix);
    for (int k = 0; k < kills; k++) {
        faults_wait_slot_released(ctx->conn, ctx->slot);
        itest_host_start(ctx, &host, ITEST_ARGS("-c", conf.s));
        itest_sleep_ms((int)faults_rng_range(&rng, KILL_AFTER_MIN_MS, KILL_AFTER_MAX_MS));
        ck_assert_msg(itest_host_running(&host), "walnotify stopped by itself (exit %d)",
                      host.status);
        faults_host_kill(&host);
    }
    itest_writer_stop(writer);
    faults_wait_slot_released(ctx->conn, ctx->slot);
    itest_run_to_now(ctx, conf.s);
    fprintf(stderr, "%s: %lld rows after %d kills (seed %" PRIu64 ")\n", what,
            itest_query_int(ctx->conn, "SELECT count(*) FROM t"), kills, seed);
}

START_TEST(test_python_sqlite_under_kill9)
{
    itest_ctx ctx;
    itest_path db;
    char argv[2 * PATH_MAX];
    long long *ids;
    size_t count;

    itest_begin(&ctx, "execsql");
    snprintf(argv, sizeof argv, "\"python3\", \"%s\", \"events.db\"",
             itest_root_file("etc/examples/sqlite_sink.py").s);
    run_under_kill9(&ctx, "exec sqlite kill9", argv);
    db = itest_file(&ctx, "events.db");
    ids = execsink_sqlite_ids(db.s, &count);
    execsink_assert_ids(ctx.conn, ids, count, "the SQLite database");
    free(ids);
    itest_end(&ctx);
}
END_TEST

/* The ids of the Node example's file, in file order; to free. */
static long long *jsonl_ids(const char *path, size_t *count)
{
    itest_events events = itest_read_events(path);
    long long *ids = calloc(events.count + 1, sizeof *ids);

    ck_assert_ptr_nonnull(ids);
    itest_assert_commit_order(&events);
    for (size_t i = 0; i < events.count; i++)
        ids[i] = strtoll(itest_value(&events.event[i], "id"), NULL, 10);
    *count = events.count;
    itest_events_free(&events);
    return ids;
}

START_TEST(test_node_jsonl_under_kill9)
{
    itest_ctx ctx;
    char argv[2 * PATH_MAX];
    long long *ids;
    size_t count;

    itest_begin(&ctx, "execnodek");
    snprintf(argv, sizeof argv, "\"node\", \"%s\", \"events.jsonl\"",
             itest_root_file("etc/examples/jsonl_sink.js").s);
    run_under_kill9(&ctx, "exec node kill9", argv);
    ids = jsonl_ids(itest_file(&ctx, "events.jsonl").s, &count);
    execsink_assert_ids(ctx.conn, ids, count, "the Node sink's file");
    free(ids);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_node_jsonl_two_runs)
{
    itest_ctx ctx;
    itest_path conf, out;
    itest_events events;
    long long *ids;
    char argv[2 * PATH_MAX];

    itest_begin(&ctx, "execnode");
    make_table(&ctx);
    snprintf(argv, sizeof argv, "\"node\", \"%s\", \"events.jsonl\"",
             itest_root_file("etc/examples/jsonl_sink.js").s);
    conf = execsink_config(&ctx, "node.cfg", 200, 30000, argv);
    itest_create_slot(&ctx, conf.s);
    out = itest_file(&ctx, "events.jsonl");

    itest_exec(ctx.conn, "INSERT INTO t (id) VALUES (nextval('ids'))");
    itest_exec(ctx.conn, "INSERT INTO t (id) SELECT nextval('ids') FROM generate_series(1, 5)");
    itest_run_to_now(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t (id) SELECT nextval('ids') FROM generate_series(1, 200)");
    itest_exec(ctx.conn, "INSERT INTO t (id, note) VALUES (nextval('ids'), 'é \"quoted\"')");
    itest_run_to_now(&ctx, conf.s);

    events = itest_read_events(out.s);
    itest_assert_commit_order(&events);
    ids = calloc(events.count + 1, sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < events.count; i++)
        ids[i] = strtoll(itest_value(&events.event[i], "id"), NULL, 10);
    execsink_assert_ids(ctx.conn, ids, events.count, "the Node sink's file");
    ck_assert_str_eq(itest_value(&events.event[events.count - 1], "note"), "é \"quoted\"");
    free(ids);
    itest_events_free(&events);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_late_acknowledgements_hold_the_slot)
{
    const faults_mix mix = {.min_rows = 1, .max_rows = 20, .pause_ms = 30, .transactions = 40};
    uint64_t seed = faults_seed("exec late");
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path;
    execsink_samples samples = {0};
    char argv[3 * PATH_MAX];

    itest_begin(&ctx, "execlate");
    make_table(&ctx);
    snprintf(argv, sizeof argv, "\"python3\", \"%s\", \"late\", \"%s\", \"%" PRIu64 "\"",
             itest_root_file("tests/fixtures/exec/faulty_sink.py").s, ctx.dir, seed);
    conf = execsink_config(&ctx, "late.cfg", 100, 20000, argv);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");

    faults_write_all(&ctx, "t", "ids", seed, &mix);
    ck_assert_int_eq(execsink_run_to_now(&ctx, &host, conf.s, log_path.s, RUN_S, &samples), 0);
    execsink_check_log(ctx.conn, log_path.s, &samples);
    execsink_samples_free(&samples);
    itest_end(&ctx);
}
END_TEST

/* The pid in walnotify's "started child N" line. */
static pid_t child_pid(const char *err)
{
    const char *at = err ? strstr(err, "started child ") : NULL;

    ck_assert_msg(at != NULL, "walnotify never started its child");
    return (pid_t)atol(at + strlen("started child "));
}

START_TEST(test_sigterm_ends_the_child)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, log_path;
    itest_lines lines;
    char argv[3 * PATH_MAX], *err;
    pid_t pid;

    itest_begin(&ctx, "execterm");
    make_table(&ctx);
    snprintf(argv, sizeof argv, "\"python3\", \"%s\", \"ok\", \"%s\", \"1\"",
             itest_root_file("tests/fixtures/exec/faulty_sink.py").s, ctx.dir);
    conf = execsink_config(&ctx, "term.cfg", 200, 5000, argv);
    itest_create_slot(&ctx, conf.s);
    log_path = itest_file(&ctx, "run.log");
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t (id) SELECT nextval('ids') FROM generate_series(1, 7)");
    lines = itest_wait_lines(log_path.s, 7, ITEST_WAIT_S);
    itest_lines_free(&lines);
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    err = itest_host_stderr(&host);
    pid = child_pid(err);
    /* Its input closed, the child finished by itself, and nothing of it is left. */
    ck_assert_msg(strstr(err, "end of input") != NULL, "the child did not see its input end");
    ck_assert_msg(strstr(err, "exited with status 0") != NULL, "the child did not exit 0");
    ck_assert_msg(kill(pid, 0) != 0, "child %ld still runs", (long)pid);
    free(err);
    itest_end(&ctx);
}
END_TEST

/* The command running child.sh in mode, recording into ctx's folder. */
static void child_sh(const itest_ctx *ctx, const char *mode, char *argv, size_t argvlen)
{
    snprintf(argv, argvlen, "\"/bin/sh\", \"%s\", \"%s\", \"%s\"",
             itest_root_file("tests/fixtures/exec/child.sh").s, mode, ctx->dir);
}

/* Runs conf to the server's position now; returns walnotify's standard error (to free). */
static char *run_to_now(itest_ctx *ctx, const char *conf)
{
    itest_host host;
    char *end = itest_lsn_text(itest_current_lsn(ctx->conn)), *err;

    itest_host_run(ctx, &host, "-c", conf, "--endpos", end);
    free(end);
    itest_assert_exit(&host, 0);
    err = itest_host_stderr(&host);
    ck_assert_ptr_nonnull(err);
    return err;
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

START_TEST(test_sigterm_stops_a_chattering_child)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    itest_lines lines;
    char argv[3 * PATH_MAX], *err;

    itest_begin(&ctx, "execchat");
    make_table(&ctx);
    child_sh(&ctx, "blanks", argv, sizeof argv);
    conf = execsink_config(&ctx, "chat.cfg", 200, 1000, argv);
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t (id) VALUES (1)");
    /* begin, the event, commit: the child answers with blank lines from now on. */
    lines = itest_wait_lines(itest_file(&ctx, "input").s, 3, ITEST_WAIT_S);
    itest_lines_free(&lines);
    ck_assert_int_eq(itest_host_stop(&host, SIGTERM), 0);
    err = itest_host_stderr(&host);
    ck_assert_msg(err != NULL && strstr(err, "within 1000 ms (ack_timeout_ms)") != NULL,
                  "the chattering child was not given up: %s", err ? err : "");
    free(err);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_standard_error_flood_is_bounded)
{
    itest_ctx ctx;
    itest_path conf;
    char argv[3 * PATH_MAX], *err;
    size_t relayed;

    itest_begin(&ctx, "execspew");
    make_table(&ctx);
    child_sh(&ctx, "spew", argv, sizeof argv);
    conf = execsink_config(&ctx, "spew.cfg", 200, 30000, argv);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t (id) VALUES (1)");
    err = run_to_now(&ctx, conf.s);
    /* 100000 lines written before the first acknowledgement. */
    relayed = count_of(err, "a line of standard error");
    ck_assert_msg(relayed > 0 && relayed < 2000, "%zu of the child's lines in walnotify's log",
                  relayed);
    ck_assert_msg(strstr(err, "lines of its standard error dropped") != NULL,
                  "walnotify did not say it dropped lines");
    free(err);
    itest_end(&ctx);
}
END_TEST

/* The PG* variables child.sh's pgenv mode saw, as relayed in walnotify's log (to free). */
static char *child_pg_environment(itest_ctx *ctx, const char *name, const char *more)
{
    char argv[3 * PATH_MAX], *err, *seen;
    itest_path conf;

    child_sh(ctx, "pgenv", argv, sizeof argv);
    conf = execsink_config_with(ctx, name, 200, 30000, argv, more);
    itest_exec(ctx->conn, "INSERT INTO t (id) SELECT nextval('ids')");
    setenv("PGPASSWORD", "walnotify's own secret", 1);
    err = run_to_now(ctx, conf.s);
    unsetenv("PGPASSWORD");
    ck_assert_msg(strstr(err, "pgenv end") != NULL, "the child did not report: %s", err);
    seen = strndup(err, (size_t)(strstr(err, "pgenv end") - err));
    ck_assert_ptr_nonnull(seen);
    free(err);
    return seen;
}

START_TEST(test_connection_variables_stay_with_walnotify)
{
    itest_ctx ctx;
    char *seen;

    itest_begin(&ctx, "execpgenv");
    make_table(&ctx);
    itest_create_slot(&ctx, execsink_config(&ctx, "slot.cfg", 200, 30000, "\"true\"").s);
    /* walnotify runs with PGPASSWORD (and the harness's PGHOST, PGPORT...): not the child. */
    seen = child_pg_environment(&ctx, "plain.cfg", "");
    ck_assert_msg(strstr(seen, "pgenv PG") == NULL, "the child saw: %s", seen);
    free(seen);
    /* Asked for by name, it is passed; the rest is not. */
    seen = child_pg_environment(&ctx, "asked.cfg", "env = [ \"PGPASSWORD\" ];");
    ck_assert_msg(strstr(seen, "pgenv PGPASSWORD=walnotify's own secret") != NULL,
                  "the child did not see PGPASSWORD: %s", seen);
    ck_assert_msg(strstr(seen, "pgenv PGPORT") == NULL, "the child saw: %s", seen);
    free(seen);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_untrusted_program_is_refused)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, sink;
    char argv[2 * PATH_MAX], want[3 * PATH_MAX], *err;
    FILE *f;

    itest_begin(&ctx, "exectrust");
    sink = itest_file(&ctx, "sink.sh");
    f = fopen(sink.s, "w");
    ck_assert_ptr_nonnull(f);
    fputs("#!/bin/sh\nexec cat >/dev/null\n", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(sink.s, 0777), 0);
    snprintf(argv, sizeof argv, "\"%s\"", sink.s);
    conf = execsink_config(&ctx, "trust.cfg", 200, 30000, argv);
    snprintf(want, sizeof want,
             "plugin \"sink\": setting \"command\": refusing to run \"%s\": file %s is "
             "writable by everyone (mode 0777)",
             sink.s, sink.s);
    itest_host_run(&ctx, &host, "--check-config", "-c", conf.s);
    itest_assert_exit(&host, 1);
    err = itest_host_stderr(&host);
    ck_assert_msg(err != NULL && strstr(err, want) != NULL, "no \"%s\" in: %s", want, err);
    free(err);
    itest_host_run(&ctx, &host, "-c", conf.s);
    itest_assert_exit(&host, 1);
    err = itest_host_stderr(&host);
    ck_assert_msg(err != NULL && strstr(err, want) != NULL, "no \"%s\" in: %s", want, err);
    free(err);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_example_configuration_is_valid)
{
    itest_ctx ctx;
    itest_host host;

    itest_begin(&ctx, "execconf");
    itest_host_run(&ctx, &host, "--check-config", "-c",
                   itest_root_file("etc/examples/exec.conf").s);
    itest_assert_exit(&host, 0);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("exec");
    TCase *tc = itest_tcase(suite, "exec");

    tcase_add_test(tc, test_python_sqlite_under_kill9);
    tcase_add_test(tc, test_node_jsonl_two_runs);
    tcase_add_test(tc, test_node_jsonl_under_kill9);
    tcase_add_test(tc, test_late_acknowledgements_hold_the_slot);
    tcase_add_test(tc, test_sigterm_ends_the_child);
    tcase_add_test(tc, test_sigterm_stops_a_chattering_child);
    tcase_add_test(tc, test_standard_error_flood_is_bounded);
    tcase_add_test(tc, test_connection_variables_stay_with_walnotify);
    tcase_add_test(tc, test_untrusted_program_is_refused);
    tcase_add_test(tc, test_example_configuration_is_valid);
    return run_suite(suite) == 0 ? 0 : 1;
}
