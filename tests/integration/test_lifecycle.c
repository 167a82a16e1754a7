/*
 * ABI 1.1 against the real server: logical decoding messages and the identity of every event,
 * a plugin built against ABI 1.0 (init answering RETRY, never an operation it does not know),
 * what a plugin learns of the source and its tables, flush positions and flush_always, init
 * retried for longer than wal_sender_timeout without losing the slot, check and --describe.
 */
#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "itest.h"

#define LINE_FIELDS 11

/* One "event ..." line of the lifecycle fixture. */
typedef struct life_event {
    uint64_t position, ordinal;
    char op[16], table[64], tx[2], prefix[32], content[64];
    unsigned long seq, xid;
    uint64_t flush_position;
} life_event;

static itest_path fixture(const char *name)
{
    char relative[128];

    snprintf(relative, sizeof relative, "build/tests/fixtures/%s.so", name);
    return itest_root_file(relative);
}

static size_t count_lines(const itest_lines *lines, const char *prefix)
{
    size_t n = 0;

    for (size_t i = 0; i < lines->count; i++)
        n += strncmp(lines->line[i], prefix, strlen(prefix)) == 0;
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

/* Waits until the file holds at least `count` lines starting with prefix. */
static void wait_for_lines(const char *path, const char *prefix, size_t count)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        itest_lines lines = itest_read_lines(path);
        size_t n = count_lines(&lines, prefix);

        itest_lines_free(&lines);
        if (n >= count)
            return;
        ck_assert_msg(!itest_expired(&deadline), "%s holds %zu \"%s\" lines after %d s, "
                      "expected %zu", path, n, prefix, ITEST_WAIT_S, count);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

static size_t read_events(const char *path, life_event *out, size_t max)
{
    itest_lines lines = itest_read_lines(path);
    size_t n = 0;

    for (size_t i = 0; i < lines.count; i++) {
        life_event *e = &out[n];

        if (strncmp(lines.line[i], "event ", 6) != 0)
            continue;
        ck_assert_uint_lt(n, max);
        ck_assert_msg(sscanf(lines.line[i],
                             "event %" SCNu64 " %" SCNu64 " %15s %63s %lu %lu %1s %31s %63s %" SCNu64,
                             &e->position, &e->ordinal, e->op, e->table, &e->seq, &e->xid, e->tx,
                             e->prefix, e->content, &e->flush_position) == LINE_FIELDS - 1,
                      "malformed line \"%s\"", lines.line[i]);
        n++;
    }
    itest_lines_free(&lines);
    return n;
}

/* Messages inside and outside transactions reach the plugin that asked for them (built against
 * ABI 1.1's header: it behaves in this host as it did), at their place, each with an identity
 * above the one before; the 1.0 plugin beside it starts after two RETRY answers from init and
 * sees only the changes. */
START_TEST(test_messages_and_identities)
{
    static const struct {
        const char *op, *tx, *prefix, *content;
        unsigned long seq;
        uint64_t ordinal; /* UINT64_MAX: a change, (seq + 1) << 32 */
    } want[] = {
        {"insert", "N", "-", "-", 0, UINT64_MAX},
        {"message", "T", "p", "before", 0, 1},
        {"insert", "N", "-", "-", 0, UINT64_MAX},
        {"message", "T", "p", "mid1", 1, (UINT64_C(1) << 32) | 1},
        {"message", "T", "p", "mid2", 1, (UINT64_C(1) << 32) | 2},
        {"update", "N", "-", "-", 1, UINT64_MAX},
        {"message", "N", "q", "alone", 0, 0},
        {"delete", "N", "-", "-", 0, UINT64_MAX},
        {"truncate", "N", "-", "-", 0, UINT64_MAX},
        {"message", "T", "p", "only", 0, 1},
    };
    const size_t nwant = sizeof want / sizeof want[0];
    itest_ctx ctx;
    itest_path conf, life_log, legacy_log;
    life_event got[32];
    itest_lines legacy;
    size_t n;

    itest_begin(&ctx, "messages");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY, v text)");
    conf = itest_config(&ctx, "messages.cfg", "\"public.t\"", 200,
                        "{ name = \"life\"; path = \"%s\";"
                        "  ops = [ \"insert\", \"update\", \"delete\", \"truncate\", \"message\" ];"
                        "  settings = { log = \"life.log\"; }; },"
                        "{ name = \"legacy\"; path = \"%s\"; retry_initial_ms = 10;"
                        "  retry_max_ms = 20; ops = [ \"insert\", \"update\", \"delete\", "
                        "\"truncate\" ]; settings = { log = \"legacy.log\"; }; }",
                        fixture("abi11_lifecycle").s, fixture("abi10_legacy").s);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    itest_exec(ctx.conn, "BEGIN; SELECT pg_logical_emit_message(true, 'p', 'before');"
                         "INSERT INTO t VALUES (2);"
                         "SELECT pg_logical_emit_message(true, 'p', 'mid1');"
                         "SELECT pg_logical_emit_message(true, 'p', 'mid2');"
                         "UPDATE t SET v = 'x' WHERE id = 2; COMMIT");
    itest_exec(ctx.conn, "SELECT pg_logical_emit_message(false, 'q', 'alone')");
    itest_exec(ctx.conn, "DELETE FROM t WHERE id = 1");
    itest_exec(ctx.conn, "TRUNCATE t");
    itest_exec(ctx.conn, "BEGIN; SELECT pg_logical_emit_message(true, 'p', 'only'); COMMIT");
    itest_run_to_now(&ctx, conf.s);

    life_log = itest_file(&ctx, "life.log");
    n = read_events(life_log.s, got, sizeof got / sizeof got[0]);
    ck_assert_uint_eq(n, nwant);
    for (size_t i = 0; i < n; i++) {
        uint64_t ordinal = want[i].ordinal == UINT64_MAX ? (uint64_t)(want[i].seq + 1) << 32
                                                         : want[i].ordinal;

        ck_assert_msg(strcmp(got[i].op, want[i].op) == 0 && strcmp(got[i].tx, want[i].tx) == 0 &&
                          strcmp(got[i].prefix, want[i].prefix) == 0 &&
                          strcmp(got[i].content, want[i].content) == 0 && got[i].seq == want[i].seq,
                      "event %zu is %s %s %s %s seq %lu, expected %s %s %s %s seq %lu", i,
                      got[i].op, got[i].tx, got[i].prefix, got[i].content, got[i].seq,
                      want[i].op, want[i].tx, want[i].prefix, want[i].content, want[i].seq);
        ck_assert_msg(got[i].ordinal == ordinal, "event %zu: ordinal %" PRIu64 ", expected %" PRIu64,
                      i, got[i].ordinal, ordinal);
        ck_assert_msg(got[i].flush_position == 0, "flush_position outside flush: %" PRIu64,
                      got[i].flush_position);
        if (strcmp(got[i].op, "message") != 0)
            ck_assert_str_eq(got[i].table, "public.t");
        if (i > 0)
            ck_assert_msg(got[i].position > got[i - 1].position ||
                              (got[i].position == got[i - 1].position &&
                               got[i].ordinal > got[i - 1].ordinal),
                          "event %zu's identity %" PRIu64 "-%" PRIu64 " is not above %" PRIu64
                          "-%" PRIu64, i, got[i].position, got[i].ordinal, got[i - 1].position,
                          got[i - 1].ordinal);
    }
    /* A message not in a transaction has no transaction id; one inside has its transaction's. */
    ck_assert_uint_eq(got[6].xid, 0);
    ck_assert_uint_eq(got[1].xid, got[2].xid);

    legacy_log = itest_file(&ctx, "legacy.log");
    legacy = itest_read_lines(legacy_log.s);
    ck_assert_uint_eq(count_lines(&legacy, "init-retry"), 2);
    ck_assert_uint_eq(count_lines(&legacy, "init"), 3); /* two retries and the success */
    ck_assert_uint_eq(count_lines(&legacy, "event "), 5);
    ck_assert_uint_eq(count_lines(&legacy, "UNKNOWN-OP"), 0);
    itest_lines_free(&legacy);
    itest_end(&ctx);
}
END_TEST

/* What a plugin learns at init: the source, and each table with its columns and key columns. */
START_TEST(test_source_and_tables)
{
    itest_ctx ctx;
    itest_path conf, life_log;
    itest_lines lines;
    char *sysid, *version, *resume;
    char expected[512];
    wn_lsn start;

    itest_begin(&ctx, "tables");
    itest_exec(ctx.conn,
               "CREATE TABLE comp (a int, b text, c int, PRIMARY KEY (b, a));"
               "CREATE TABLE full_t (id int PRIMARY KEY, v text);"
               "ALTER TABLE full_t REPLICA IDENTITY FULL;"
               "CREATE TABLE idx_t (id int NOT NULL, code varchar(10) NOT NULL, v numeric(8,2));"
               "CREATE UNIQUE INDEX idx_t_code ON idx_t (code);"
               "ALTER TABLE idx_t REPLICA IDENTITY USING INDEX idx_t_code;"
               "CREATE TABLE nokey (v text)");
    conf = itest_config(&ctx, "tables.cfg",
                        "\"public.comp\", \"full_t\", \"public.idx_t\", \"public.nokey\"", 200,
                        "{ name = \"life\"; path = \"%s\"; ops = [ \"insert\", \"message\" ];"
                        "  settings = { log = \"life.log\"; }; }",
                        fixture("lifecycle").s);
    itest_create_slot(&ctx, conf.s);
    start = itest_slot_confirmed(ctx.conn, ctx.slot);
    itest_exec(ctx.conn, "INSERT INTO nokey VALUES ('x')");
    itest_run_to_now(&ctx, conf.s);

    life_log = itest_file(&ctx, "life.log");
    lines = itest_read_lines(life_log.s);
    sysid = itest_query(ctx.conn, "SELECT system_identifier::text FROM pg_control_system()");
    version = itest_query(ctx.conn, "SELECT current_setting('server_version_num')");
    snprintf(expected, sizeof expected, "source sysid=%s db=%s slot=%s pub=%s version=%s", sysid,
             ctx.db, ctx.slot, ctx.pub, version);
    ck_assert_msg(has_line(&lines, expected), "no line \"%s\"", expected);
    resume = itest_lsn_text(start);
    snprintf(expected, sizeof expected, "init resume=%s", resume);
    ck_assert_msg(has_line(&lines, expected), "no line \"%s\"", expected);
    /* Key order is the index's (b, a), not the table's. ops: insert only (1), never message. */
    ck_assert(has_line(&lines, "table public.comp ops=1 identity=d "
                               "columns=a:23:-1:k,b:25:-1:k,c:23:-1:- keys=b,a"));
    /* Under FULL pgoutput marks every column as key: the primary key is the key here. */
    ck_assert(has_line(&lines, "table public.full_t ops=1 identity=f "
                               "columns=id:23:-1:k,v:25:-1:- keys=id"));
    ck_assert(has_line(&lines, "table public.idx_t ops=1 identity=i "
                               "columns=id:23:-1:-,code:1043:14:k,v:1700:524294:- keys=code"));
    ck_assert(has_line(&lines, "table public.nokey ops=1 identity=d columns=v:25:-1:- keys=-"));
    ck_assert_uint_eq(count_lines(&lines, "event "), 1);
    free(sysid);
    free(version);
    free(resume);
    itest_lines_free(&lines);
    itest_end(&ctx);
}
END_TEST

/* flush_always: the instance is flushed before every acknowledgement, also when a keepalive
 * alone moved the position; flush_position() never names more than was acknowledged. */
START_TEST(test_flush_positions)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, life_log;
    itest_lines lines;
    wn_lsn unrelated, confirmed, highest = 0;
    bool reached = false;
    itest_deadline deadline;

    itest_begin(&ctx, "flushpos");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE other (id int)");
    conf = itest_file(&ctx, "flush.cfg");
    /* A short receive timeout makes the host ask for keepalives while the stream is idle. */
    itest_write_file(conf.s,
                     "source: { conninfo = \"%s\"; tables = [ \"public.t\" ]; slot = \"%s\";\n"
                     "  publication = \"%s\"; status_interval_ms = 200;\n"
                     "  receive_timeout_ms = 1000; };\n"
                     "plugins = ( { name = \"life\"; path = \"%s\";\n"
                     "  settings = { log = \"life.log\"; flush_always = true; }; } );\n",
                     ctx.conninfo, ctx.slot, ctx.pub, fixture("lifecycle").s);
    itest_create_slot(&ctx, conf.s);
    life_log = itest_file(&ctx, "life.log");
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    wait_for_lines(life_log.s, "event ", 1);
    /* WAL that publishes nothing: only keepalives can carry the position past it. */
    itest_exec(ctx.conn, "INSERT INTO other SELECT generate_series(1, 100)");
    unrelated = itest_current_lsn(ctx.conn);
    deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    while (!reached) {
        lines = itest_read_lines(life_log.s);
        for (size_t i = 0; i < lines.count; i++) {
            wn_lsn at;

            if (strncmp(lines.line[i], "flush ", 6) == 0 && wn_lsn_parse(lines.line[i] + 6, &at) &&
                at >= unrelated)
                reached = true;
        }
        itest_lines_free(&lines);
        ck_assert_msg(reached || !itest_expired(&deadline),
                      "no flush at or past %s (keepalive progress) within %d s",
                      itest_lsn_text(unrelated), ITEST_WAIT_S);
        if (!reached)
            itest_sleep_ms(ITEST_POLL_MS);
    }
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);

    confirmed = itest_slot_confirmed(ctx.conn, ctx.slot);
    lines = itest_read_lines(life_log.s);
    for (size_t i = 0; i < lines.count; i++) {
        wn_lsn at;

        if (strncmp(lines.line[i], "flush ", 6) != 0)
            continue;
        ck_assert_msg(wn_lsn_parse(lines.line[i] + 6, &at) && at != 0, "line \"%s\"",
                      lines.line[i]);
        ck_assert_msg(at <= confirmed, "flush_position %s passes the acknowledged %s",
                      lines.line[i] + 6, itest_lsn_text(confirmed));
        ck_assert_msg(at >= highest, "flush_position went back to %s", lines.line[i] + 6);
        highest = at;
    }
    itest_lines_free(&lines);
    itest_end(&ctx);
}
END_TEST

/* Holds an exclusive lock on path until the returned descriptor is closed. */
static int hold_lock(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

    ck_assert_msg(fd >= 0, "cannot open %s", path);
    ck_assert_msg(flock(fd, LOCK_EX) == 0, "cannot lock %s", path);
    return fd;
}

/* init answers RETRY while this process holds a lock, for longer than wal_sender_timeout: the
 * reader keeps the connection (and the slot) alive, and every row committed meanwhile comes. */
START_TEST(test_init_retry_keeps_the_slot)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, life_log, lock;
    long server_log_start;
    char *server_log, *err;
    int lock_fd;

    itest_begin(&ctx, "initretry");
    itest_set_server_setting(ctx.conn, "wal_sender_timeout", "2s");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    lock = itest_file(&ctx, "init.lock");
    conf = itest_config(&ctx, "retry.cfg", "\"public.t\"", 200,
                        "{ name = \"life\"; path = \"%s\"; retry_initial_ms = 100;"
                        "  retry_max_ms = 400; settings = { log = \"life.log\"; lock = \"%s\"; }; }",
                        fixture("lifecycle").s, lock.s);
    itest_create_slot(&ctx, conf.s);
    life_log = itest_file(&ctx, "life.log");
    lock_fd = hold_lock(lock.s);
    server_log_start = itest_server_log_size();
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    wait_for_lines(life_log.s, "init-retry", 1);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2), (3)");
    /* Three times wal_sender_timeout: a connection nobody answered for would be gone. */
    itest_sleep_ms(6000);
    ck_assert_msg(itest_host_running(&host), "walnotify stopped while init was retried (exit %d)",
                  host.status);
    close(lock_fd);
    wait_for_lines(life_log.s, "event ", 3);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (4)");
    wait_for_lines(life_log.s, "event ", 4);
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);

    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "replication stream lost") == NULL, "the stream was lost: %s", err);
    ck_assert_msg(strstr(err, "init answered RETRY") != NULL, "no RETRY logged: %s", err);
    free(err);
    server_log = itest_server_log_since(server_log_start);
    ck_assert_msg(strstr(server_log, "replication timeout") == NULL,
                  "the server dropped the replication connection: %s",
                  strstr(server_log, "replication timeout"));
    free(server_log);
    itest_end(&ctx);
}
END_TEST

/* A stop while init is retried ends the run cleanly (exit 0). */
START_TEST(test_stop_during_init_retry)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, life_log, lock;
    int lock_fd;

    itest_begin(&ctx, "initstop");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    lock = itest_file(&ctx, "init.lock");
    conf = itest_config(&ctx, "stop.cfg", "\"public.t\"", 200,
                        "{ name = \"life\"; path = \"%s\"; retry_initial_ms = 50;"
                        "  retry_max_ms = 100; settings = { log = \"life.log\"; lock = \"%s\"; }; }",
                        fixture("lifecycle").s, lock.s);
    itest_create_slot(&ctx, conf.s);
    life_log = itest_file(&ctx, "life.log");
    lock_fd = hold_lock(lock.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    wait_for_lines(life_log.s, "init-retry", 2);
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    close(lock_fd);
    itest_end(&ctx);
}
END_TEST

/* check refuses at --check-config (exit 1, one line); ops a plugin does not declare are refused
 * with the file and line; --describe reads the descriptor alone. */
START_TEST(test_check_ops_describe)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    char *out, *err;

    itest_begin(&ctx, "checkcfg");
    conf = itest_config(&ctx, "refuse.cfg", "\"public.t\"", 200,
                        "{ name = \"life\"; path = \"%s\"; settings = { refuse = true; }; }",
                        fixture("lifecycle").s);
    itest_host_run(&ctx, &host, "-c", conf.s, "--check-config");
    itest_assert_failed(&host, 1);
    err = itest_host_stderr(&host);
    /* One line, as every configuration error: the file, the block's line, the plugin's reason. */
    ck_assert_msg(strstr(err, "FATAL: ") != NULL &&
                      strstr(err, "/refuse.cfg:") != NULL &&
                      strstr(err, ": plugin \"life\": refuse = true: refusing on purpose\n") != NULL &&
                      strchr(err, '\n') == err + strlen(err) - 1,
                  "%s", err);
    free(err);
    /* A run calls check before anything else: it ends the same way, before any init. */
    itest_host_run(&ctx, &host, "-c", conf.s);
    itest_assert_failed(&host, 1);

    /* check (1.2) sees the block's tables by name, without a server; a 1.1 plugin sees none
     * (its check refuses when it does). */
    conf = itest_config(&ctx, "tables.cfg", "\"public.t\", \"other.u\"", 200,
                        "{ name = \"life\"; path = \"%s\"; tables = [ \"other.u\" ]; },"
                        "{ name = \"old\"; path = \"%s\"; }",
                        fixture("lifecycle").s, fixture("abi11_lifecycle").s);
    itest_host_run(&ctx, &host, "-c", conf.s, "--check-config");
    itest_assert_exit(&host, 0);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "plugin \"life\": check sees table other.u (other, u)") != NULL &&
                      strstr(err, "public.t (public") == NULL,
                  "%s", err);
    free(err);

    conf = itest_config(&ctx, "ops.cfg", "\"public.t\"", 200,
                        "{ name = \"legacy\"; path = \"%s\";\n ops = [ \"insert\", \"message\" ]; }",
                        fixture("abi10_legacy").s);
    itest_host_run(&ctx, &host, "-c", conf.s, "--check-config");
    itest_assert_failed(&host, 1);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "ops.cfg:13: plugin \"legacy\": ops asks for message, which "
                              "abi10_legacy does not handle (abi10_legacy declares: insert, "
                              "update, delete, truncate)"),
                  "%s", err);
    free(err);

    itest_host_run(&ctx, &host, "--describe", fixture("abi10_legacy").s);
    itest_assert_exit(&host, 0);
    out = itest_host_stdout(&host);
    ck_assert_str_eq(out, "abi10_legacy 1.0.0 (plugin ABI 1.0)\n"
                          "operations: insert, update, delete, truncate\n"
                          "settings:\n"
                          "  log (path, default \"-\"): file that receives one line per callback\n");
    free(out);
    itest_host_run(&ctx, &host, "--describe", "nothing-here.so");
    itest_assert_failed(&host, 2);
    itest_end(&ctx);
}
END_TEST

/* Puts wal_sender_timeout back, also after a failed test (an unchecked fixture's teardown). */
static void reset_sender_timeout(void)
{
    itest_reset_server_setting("wal_sender_timeout");
}

int main(void)
{
    Suite *suite = suite_create("lifecycle");
    TCase *tc = itest_tcase(suite, "lifecycle");
    TCase *timeout = itest_tcase(suite, "sender_timeout");

    tcase_add_test(tc, test_messages_and_identities);
    tcase_add_test(tc, test_source_and_tables);
    tcase_add_test(tc, test_flush_positions);
    tcase_add_test(tc, test_stop_during_init_retry);
    tcase_add_test(tc, test_check_ops_describe);
    tcase_add_unchecked_fixture(timeout, NULL, reset_sender_timeout);
    tcase_add_test(timeout, test_init_retry_keeps_the_slot);
    return run_suite(suite) == 0 ? 0 : 1;
}
