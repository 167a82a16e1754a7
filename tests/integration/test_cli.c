/*
 * The command line: --endpos on busy, idle and already-passed streams, the slot commands,
 * --check-config, a stop by SIGINT, and every exit status with its one-line reason (also for a
 * refused password and a server whose wal_level is not logical).
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

static itest_path jsonl_config(const itest_ctx *ctx, const char *name, const char *out)
{
    return itest_config(ctx, name, "\"public.t\"", 200,
                        "{ name = \"out\"; path = \"%s\"; settings = { path = \"%s\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s, out);
}

/* Begins the test with table t (id) and the slot of its jsonl configuration cfg, writing out. */
static itest_path begin_with_slot(itest_ctx *ctx, const char *name, const char *cfg,
                                  const char *out)
{
    itest_path conf;

    itest_begin(ctx, name);
    itest_exec(ctx->conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = jsonl_config(ctx, cfg, out);
    itest_create_slot(ctx, conf.s);
    return conf;
}

/* A context whose configurations point at another conninfo. */
static itest_ctx with_conninfo(const itest_ctx *ctx, const char *conninfo)
{
    itest_ctx other = *ctx;

    snprintf(other.conninfo, sizeof other.conninfo, "%s", conninfo);
    return other;
}

static char **table_ids(PGconn *conn, size_t *count)
{
    PGresult *res = PQexec(conn, "SELECT id FROM t ORDER BY id");
    char **ids;

    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(conn));
    *count = (size_t)PQntuples(res);
    ids = calloc(*count + 1, sizeof *ids);
    ck_assert(ids != NULL);
    for (size_t i = 0; i < *count; i++)
        ids[i] = strdup(PQgetvalue(res, (int)i, 0));
    PQclear(res);
    return ids;
}

static void assert_stderr_has(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);

    ck_assert_msg(err != NULL && strstr(err, needle) != NULL, "stderr lacks \"%s\": %s", needle,
                  err ? err : "(none)");
    free(err);
}

START_TEST(test_endpos_on_busy_stream)
{
    itest_ctx ctx;
    itest_path conf, conf2, out;
    itest_events first, second;
    size_t nids, next = 0;
    char **ids, *endpos;
    long long before;
    wn_lsn end;
    pid_t writer;
    itest_host host;

    itest_begin(&ctx, "busy");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY); CREATE SEQUENCE ids");
    conf = jsonl_config(&ctx, "busy.cfg", "first.jsonl");
    conf2 = jsonl_config(&ctx, "rest.cfg", "second.jsonl");
    itest_create_slot(&ctx, conf.s);
    writer = itest_writer_start(&ctx, "INSERT INTO t VALUES (nextval('ids'))");
    itest_wait_query_at_least(ctx.conn, 30, "SELECT count(*) FROM t");
    /* Every row visible now committed before the position read next. */
    before = itest_query_int(ctx.conn, "SELECT count(*) FROM t");
    end = itest_current_lsn(ctx.conn);
    endpos = itest_lsn_text(end);
    itest_wait_query_at_least(ctx.conn, before + 30, "SELECT count(*) FROM t");

    itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", endpos);
    itest_assert_exit(&host, 0);
    itest_writer_stop(writer);
    itest_run_to_now(&ctx, conf2.s);

    ids = table_ids(ctx.conn, &nids);
    out = itest_file(&ctx, "first.jsonl");
    first = itest_read_events(out.s);
    out = itest_file(&ctx, "second.jsonl");
    second = itest_read_events(out.s);
    ck_assert_msg(first.count >= (size_t)before, "--endpos %s delivered %zu rows of the %lld "
                  "committed before it", endpos, first.count, before);
    for (size_t i = 0; i < first.count; i++, next++) {
        ck_assert_msg(first.event[i].lsn < end, "--endpos %s delivered a commit at %s", endpos,
                      itest_lsn_text(first.event[i].lsn));
        ck_assert_msg(next < nids && strcmp(itest_value(&first.event[i], "id"), ids[next]) == 0,
                      "first run: event %zu is id %s, expected %s", i,
                      itest_value(&first.event[i], "id"), next < nids ? ids[next] : "none");
    }
    for (size_t i = 0; i < second.count; i++, next++)
        ck_assert_msg(next < nids && strcmp(itest_value(&second.event[i], "id"), ids[next]) == 0,
                      "second run: event %zu is id %s, expected %s", i,
                      itest_value(&second.event[i], "id"), next < nids ? ids[next] : "none");
    ck_assert_msg(next == nids, "%zu rows delivered, the table has %zu", next, nids);
    ck_assert_msg(second.count > 0, "the first run went past --endpos: nothing was left");
    ck_assert_msg(second.event[0].lsn > first.event[first.count - 1].lsn, "lsn went backwards");

    for (size_t i = 0; i < nids; i++)
        free(ids[i]);
    free(ids);
    free(endpos);
    itest_events_free(&first);
    itest_events_free(&second);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_endpos_on_idle_stream_and_passed_slot)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, out;
    itest_lines lines;
    char *early, *endpos;

    conf = begin_with_slot(&ctx, "idle", "idle.cfg", "out.jsonl");
    out = itest_file(&ctx, "out.jsonl");
    early = itest_lsn_text(itest_current_lsn(ctx.conn));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2), (3)");
    endpos = itest_lsn_text(itest_current_lsn(ctx.conn));

    /* Nothing is written after endpos: the host must notice it is there and stop by itself. */
    itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", endpos);
    itest_assert_exit(&host, 0);
    lines = itest_read_lines(out.s);
    ck_assert_int_eq(lines.count, 3);
    itest_lines_free(&lines);

    /* The slot is at or past both positions now: exit 0, nothing delivered. */
    itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", endpos);
    itest_assert_exit(&host, 0);
    itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", early);
    itest_assert_exit(&host, 0);
    lines = itest_read_lines(out.s);
    ck_assert_int_eq(lines.count, 3);
    itest_lines_free(&lines);

    free(early);
    free(endpos);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_create_and_drop_slot)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;

    itest_begin(&ctx, "slotcmd");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = jsonl_config(&ctx, "slot.cfg", "out.jsonl");

    itest_create_slot(&ctx, conf.s);
    ck_assert_msg(itest_slot_exists(ctx.conn, ctx.slot), "--create-slot made no slot");
    ck_assert_int_eq(itest_query_int(ctx.conn,
                                     "SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
                                     "'%s' AND plugin = 'pgoutput' AND slot_type = 'logical' AND "
                                     "database = '%s' AND NOT temporary",
                                     ctx.slot, ctx.db),
                     1);
    ck_assert_msg(itest_publication_exists(ctx.conn, ctx.pub), "--create-slot made no publication");
    ck_assert_int_eq(itest_query_int(ctx.conn,
                                     "SELECT count(*) FROM pg_publication_tables WHERE pubname = "
                                     "'%s' AND schemaname = 'public' AND tablename = 't'",
                                     ctx.pub),
                     1);
    itest_create_slot(&ctx, conf.s); /* again: both exist, nothing to do */

    itest_host_run(&ctx, &host, "--drop-slot", "-c", conf.s);
    itest_assert_exit(&host, 0);
    ck_assert_msg(!itest_slot_exists(ctx.conn, ctx.slot), "--drop-slot left the slot");

    itest_host_run(&ctx, &host, "--drop-slot", "-c", conf.s);
    ck_assert_msg(host.status != 0, "--drop-slot of a missing slot exited 0");
    itest_assert_reason(&host);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_check_config)
{
    itest_ctx ctx, nowhere;
    itest_host host;
    itest_path conf, bad;

    itest_begin(&ctx, "checkcfg");
    nowhere = with_conninfo(&ctx, "host=/nonexistent/walnotify port=1 dbname=none user=none");

    /* Valid, with a database that does not exist and an output no init could open. */
    conf = itest_config(&nowhere, "valid.cfg", "\"public.t\"", 1000,
                        "{ name = \"out\"; path = \"%s\"; "
                        "settings = { path = \"no/such/dir/out.jsonl\"; fsync = false; }; }",
                        itest_root_file("build/plugins/jsonl.so").s);
    itest_host_run(&ctx, &host, "--check-config", "-c", conf.s);
    itest_assert_exit(&host, 0);

    bad = itest_file(&ctx, "badkey.cfg");
    itest_write_file(bad.s,
                     "source:\n"
                     "{\n"
                     "  conninfo = \"%s\";\n"
                     "  tables = [ \"public.t\" ];\n"
                     "  no_such_key = 1;\n"
                     "};\n"
                     "plugins = ( { name = \"out\"; path = \"%s\"; } );\n",
                     nowhere.conninfo, itest_root_file("build/plugins/jsonl.so").s);
    itest_host_run(&ctx, &host, "--check-config", "-c", bad.s);
    itest_assert_failed(&host, 1);
    assert_stderr_has(&host, "badkey.cfg:5");

    bad = itest_file(&ctx, "badsetting.cfg");
    itest_write_file(bad.s,
                     "source:\n"
                     "{\n"
                     "  conninfo = \"%s\";\n"
                     "  tables = [ \"public.t\" ];\n"
                     "};\n"
                     "plugins = ( { name = \"out\"; path = \"%s\";\n"
                     "  settings = {\n"
                     "    path = \"out.jsonl\";\n"
                     "    no_such_setting = true;\n"
                     "  };\n"
                     "} );\n",
                     nowhere.conninfo, itest_root_file("build/plugins/jsonl.so").s);
    itest_host_run(&ctx, &host, "--check-config", "-c", bad.s);
    itest_assert_failed(&host, 1);
    assert_stderr_has(&host, "badsetting.cfg:9");

    conf = itest_config(&nowhere, "noplugin.cfg", "\"public.t\"", 1000,
                        "{ name = \"out\"; path = \"no-such-plugin.so\"; }");
    itest_host_run(&ctx, &host, "--check-config", "-c", conf.s);
    itest_assert_failed(&host, 2);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_usage_version_help)
{
    itest_ctx ctx;
    itest_host host;
    char *out;

    itest_begin(&ctx, "usage");
    itest_host_run(&ctx, &host, "--no-such-option");
    itest_assert_failed(&host, 1);
    itest_host_run(&ctx, &host, "--endpos", "0/0");
    itest_assert_failed(&host, 1);
    itest_host_run(&ctx, &host, "-c");
    itest_assert_failed(&host, 1);
    itest_host_run(&ctx, &host, "-c", "/nonexistent/walnotify.cfg");
    itest_assert_failed(&host, 1);

    itest_host_run(&ctx, &host, "--version");
    itest_assert_exit(&host, 0);
    out = itest_host_stdout(&host);
    ck_assert_msg(out != NULL && strstr(out, "walnotify 1.2.0 (plugin ABI 1.2)") != NULL, "--version printed: %s", out);
    free(out);
    itest_host_run(&ctx, &host, "--help");
    itest_assert_exit(&host, 0);
    out = itest_host_stdout(&host);
    ck_assert_msg(out != NULL && strstr(out, "--endpos") != NULL, "--help printed: %s", out);
    free(out);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_plugin_init_failure_exits_2)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;

    conf = begin_with_slot(&ctx, "initfail", "init.cfg", "no/such/dir/out.jsonl");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    itest_host_run(&ctx, &host, "-c", conf.s);
    itest_assert_failed(&host, 2);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_states_that_need_a_person_exit_3)
{
    itest_ctx ctx, other;
    itest_host host;
    itest_path conf;

    conf = begin_with_slot(&ctx, "person", "person.cfg", "out.jsonl");
    itest_exec(ctx.conn, "DROP PUBLICATION %s", ctx.pub);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    itest_host_run(&ctx, &host, "-c", conf.s);
    itest_assert_failed(&host, 3);
    assert_stderr_has(&host, ctx.slot);
    ck_assert_msg(!itest_publication_exists(ctx.conn, ctx.pub),
                  "the publication was made again under the existing slot");

    other = ctx;
    snprintf(other.conninfo, sizeof other.conninfo, "host=%s port=%s user=%s dbname=%s_missing",
             itest_env("PGHOST"), itest_env("PGPORT"), itest_env("PGUSER"), ctx.db);
    conf = itest_config(&other, "nodb.cfg", "\"public.t\"", 1000,
                        "{ name = \"out\"; path = \"%s\"; settings = { path = \"x.jsonl\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s);
    itest_host_run(&ctx, &host, "-c", conf.s);
    itest_assert_failed(&host, 3);

    snprintf(other.conninfo, sizeof other.conninfo, "host=%s port=%s user=wn_no_such_role dbname=%s",
             itest_env("PGHOST"), itest_env("PGPORT"), ctx.db);
    conf = itest_config(&other, "nouser.cfg", "\"public.t\"", 1000,
                        "{ name = \"out\"; path = \"%s\"; settings = { path = \"y.jsonl\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s);
    itest_host_run(&ctx, &host, "-c", conf.s);
    itest_assert_failed(&host, 3);
    itest_end(&ctx);
}
END_TEST

/* SIGINT stops as SIGTERM does: exit 0, the last finished transaction acknowledged, so that the
 * next run has nothing to deliver again. The status interval is long, so the acknowledgement is
 * the stop's own. */
START_TEST(test_sigint_stops_cleanly)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, again;
    itest_lines lines;
    itest_events events;
    wn_lsn confirmed;

    itest_begin(&ctx, "sigint");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = itest_config(&ctx, "int.cfg", "\"public.t\"", 20000,
                        "{ name = \"out\"; path = \"%s\"; settings = { path = \"int.jsonl\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s);
    again = jsonl_config(&ctx, "again.cfg", "again.jsonl");
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2), (3)");
    lines = itest_wait_lines(itest_file(&ctx, "int.jsonl").s, 3, ITEST_WAIT_S);
    itest_lines_free(&lines);
    itest_host_stop(&host, SIGINT);
    itest_assert_exit(&host, 0);
    assert_stderr_has(&host, "SIGINT");

    events = itest_read_events(itest_file(&ctx, "int.jsonl").s);
    ck_assert_int_eq(events.count, 3);
    confirmed = itest_slot_confirmed(ctx.conn, ctx.slot);
    ck_assert_msg(confirmed > events.event[2].lsn,
                  "the slot is at %s, not past the last delivered transaction (%s)",
                  itest_lsn_text(confirmed), itest_lsn_text(events.event[2].lsn));
    itest_events_free(&events);
    itest_run_to_now(&ctx, again.s);
    lines = itest_read_lines(itest_file(&ctx, "again.jsonl").s);
    ck_assert_msg(lines.count == 0, "%zu events were delivered again after the stop",
                  lines.count);
    itest_lines_free(&lines);
    itest_end(&ctx);
}
END_TEST

/* Writes text to path, replacing it. */
static void replace_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    ck_assert_msg(fputs(text, f) >= 0 && fclose(f) == 0, "cannot write %s", path);
}

/* Reloads the server's configuration and waits until a connection as role with password gives
 * `ok` (a reload takes effect a moment after pg_reload_conf returns). */
static void reload_until(PGconn *admin, const char *role, const char *password, bool ok)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    char conninfo[1024];

    itest_exec(admin, "SELECT pg_reload_conf()");
    snprintf(conninfo, sizeof conninfo, "host=%s port=%s user=%s password=%s dbname=postgres",
             itest_env("PGHOST"), itest_env("PGPORT"), role, password);
    for (;;) {
        PGconn *conn = PQconnectdb(conninfo);
        bool connected = PQstatus(conn) == CONNECTION_OK;

        PQfinish(conn);
        if (connected == ok)
            return;
        ck_assert_msg(!itest_expired(&deadline), "pg_hba.conf was not reloaded in %d s",
                      ITEST_WAIT_S);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* The harness trusts every local connection: one role is made to need a password through a
 * pg_hba.conf line of its own, taken away again before anything is asserted. */
START_TEST(test_refused_password_exits_3)
{
    itest_ctx ctx, other;
    itest_host wrong, none;
    itest_path conf;
    PGconn *admin;
    char role[64], *hba_file, *hba, *with_line, *reason;

    itest_begin(&ctx, "password");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    snprintf(role, sizeof role, "wn_pw_%d", (int)getpid());
    admin = itest_connect("postgres", NULL);
    itest_exec(admin, "CREATE ROLE %s LOGIN REPLICATION PASSWORD 'right'", role);
    hba_file = itest_query(admin, "SHOW hba_file");
    ck_assert(hba_file != NULL);
    hba = itest_read_file(hba_file, NULL);
    ck_assert_msg(hba != NULL, "cannot read %s", hba_file);
    ck_assert(asprintf(&with_line, "local all %s scram-sha-256\n%s", role, hba) >= 0);
    replace_file(hba_file, with_line);
    reload_until(admin, role, "wrong", false);

    other = ctx;
    snprintf(other.conninfo, sizeof other.conninfo,
             "host=%s port=%s user=%s password=wrong dbname=%s", itest_env("PGHOST"),
             itest_env("PGPORT"), role, ctx.db);
    conf = jsonl_config(&other, "wrong.cfg", "wrong.jsonl");
    itest_host_run(&ctx, &wrong, "-c", conf.s);
    snprintf(other.conninfo, sizeof other.conninfo, "host=%s port=%s user=%s dbname=%s",
             itest_env("PGHOST"), itest_env("PGPORT"), role, ctx.db);
    conf = jsonl_config(&other, "none.cfg", "none.jsonl");
    itest_host_run(&ctx, &none, "-c", conf.s);

    replace_file(hba_file, hba);
    reload_until(admin, role, "", true);
    itest_exec(admin, "DROP ROLE %s", role);
    PQfinish(admin);

    itest_assert_failed(&wrong, 3);
    assert_stderr_has(&wrong, "password authentication failed");
    itest_assert_failed(&none, 3);
    reason = itest_host_stderr(&none);
    ck_assert_msg(strstr(reason, "password") != NULL, "no word of the password: %s", reason);
    ck_assert_msg(strstr(reason, "right") == NULL, "a password in the reason: %s", reason);
    free(reason);
    ck_assert_msg(!itest_slot_exists(ctx.conn, ctx.slot), "a slot was made");
    free(with_line);
    free(hba);
    free(hba_file);
    itest_end(&ctx);
}
END_TEST

/* Runs tests/pg-harness.sh with a command and folder; fails unless it succeeds. */
static void harness(const itest_ctx *ctx, const char *command, const char *dir)
{
    itest_path script = itest_root_file("tests/pg-harness.sh");
    itest_path log = itest_file(ctx, "harness.log");
    char line[3 * PATH_MAX];
    int rc;

    snprintf(line, sizeof line, "'%s' %s '%s' >>'%s' 2>&1", script.s, command, dir, log.s);
    rc = system(line);
    if (rc != 0) {
        char *text = itest_read_file(log.s, NULL);
        ck_abort_msg("pg-harness.sh %s %s failed (%d): %s", command, dir, rc, text ? text : "");
    }
}

/* A second, throwaway server with wal_level = replica, only for the time of one run. */
START_TEST(test_wal_level_not_logical_exits_3)
{
    itest_ctx ctx, other;
    itest_host host;
    itest_path conf;
    char dir[] = "/tmp/walnotify-pg-replica.XXXXXX";
    char settings[PATH_MAX], env[PATH_MAX], *text, *port, *end;
    FILE *f;

    itest_begin(&ctx, "wallevel");
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    harness(&ctx, "start", dir);
    snprintf(settings, sizeof settings, "%s/data/postgresql.conf", dir);
    f = fopen(settings, "a");
    ck_assert_msg(f != NULL && fputs("wal_level = replica\n", f) >= 0 && fclose(f) == 0,
                  "cannot append to %s", settings);
    harness(&ctx, "restart", dir);
    snprintf(env, sizeof env, "%s/env", dir);
    text = itest_read_file(env, NULL);
    port = text ? strstr(text, "PGPORT=") : NULL;
    ck_assert_msg(port != NULL, "no PGPORT in %s", env);
    port += strlen("PGPORT=");
    end = strchr(port, '\n');
    if (end)
        *end = '\0';

    other = ctx;
    snprintf(other.conninfo, sizeof other.conninfo, "host=%s port=%s user=postgres dbname=postgres",
             dir, port);
    conf = jsonl_config(&other, "replica.cfg", "replica.jsonl");
    itest_host_run(&ctx, &host, "-c", conf.s);
    harness(&ctx, "stop", dir);

    itest_assert_failed(&host, 3);
    assert_stderr_has(&host, "wal_level is 'replica'");
    assert_stderr_has(&host, "wal_level = logical");
    free(text);
    itest_end(&ctx);
}
END_TEST

/* ---- stops, quoting, names ----------------------------------------------------------------- */

/* Waits (bounded) until the host's stderr holds needle. */
static void wait_stderr_has(const itest_host *host, const char *needle)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        char *err = itest_host_stderr(host);
        bool found = err != NULL && strstr(err, needle) != NULL;

        free(err);
        if (found)
            return;
        ck_assert_msg(!itest_expired(&deadline), "stderr never said \"%s\"", needle);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

static size_t count_in_stderr(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);
    size_t n = 0;

    for (const char *p = err ? strstr(err, needle) : NULL; p; p = strstr(p + 1, needle))
        n++;
    free(err);
    return n;
}

/* A TCP port on 127.0.0.1 that takes connections (the kernel completes them) and never answers.
 * Returns the listening socket. */
static int silent_server(int *port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* Waits (bounded) until someone connected to the silent server. */
static void wait_connected(int listen_fd)
{
    struct pollfd fd = {.fd = listen_fd, .events = POLLIN};

    ck_assert_msg(poll(&fd, 1, ITEST_WAIT_S * 1000) == 1, "nobody connected to the server");
}

/* A server that accepts and never answers holds no mode: SIGTERM stops each at once, long
 * before connect_timeout's default would have. */
START_TEST(test_sigterm_while_connecting_to_a_silent_server)
{
    static const char *const modes[] = {"--create-slot", "--drop-slot", NULL};
    itest_ctx ctx, silent;
    itest_host host;
    itest_path conf;
    int port, fd;

    itest_begin(&ctx, "silent");
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        char name[32];

        fd = silent_server(&port);
        silent = ctx;
        snprintf(silent.conninfo, sizeof silent.conninfo,
                 "host=127.0.0.1 port=%d dbname=x connect_timeout=600", port);
        snprintf(name, sizeof name, "silent%zu.cfg", i);
        conf = jsonl_config(&silent, name, "out.jsonl");
        if (modes[i])
            itest_host_start(&ctx, &host, ITEST_ARGS(modes[i], "-c", conf.s));
        else
            itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
        wait_connected(fd);
        itest_host_stop(&host, SIGTERM);
        itest_assert_exit(&host, 0);
        assert_stderr_has(&host, "SIGTERM");
        close(fd);
    }
    itest_end(&ctx);
}
END_TEST

/* SIGTERM while setup waits on the server (CREATE PUBLICATION behind a lock the test holds):
 * the command is cancelled and nothing is created, in --create-slot and in a run. */
START_TEST(test_sigterm_during_setup_creates_nothing)
{
    static const char *const modes[] = {"--create-slot", NULL};
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    PGconn *locker;

    itest_begin(&ctx, "setupstop");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = jsonl_config(&ctx, "setup.cfg", "out.jsonl");
    locker = itest_connect(ctx.db, NULL);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        itest_exec(locker, "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE");
        if (modes[i])
            itest_host_start(&ctx, &host, ITEST_ARGS(modes[i], "-c", conf.s));
        else
            itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
        itest_wait_query_at_least(ctx.conn, 1,
                                  "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' "
                                  "AND wait_event_type = 'Lock' AND query LIKE 'CREATE "
                                  "PUBLICATION%%'",
                                  ctx.db);
        itest_host_stop(&host, SIGTERM);
        itest_assert_exit(&host, 0);
        assert_stderr_has(&host, "SIGTERM");
        itest_exec(locker, "COMMIT");
        ck_assert_msg(!itest_publication_exists(ctx.conn, ctx.pub),
                      "the publication was created after SIGTERM");
        ck_assert_msg(!itest_slot_exists(ctx.conn, ctx.slot), "a slot was created after SIGTERM");
    }
    PQfinish(locker);
    itest_end(&ctx);
}
END_TEST

/* --check-config takes SIGTERM while it loads a plugin: it stops, and says nothing is valid. */
START_TEST(test_sigterm_during_check_config)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, marker;
    char *out;
    struct stat st;

    itest_begin(&ctx, "checkstop");
    marker = itest_file(&ctx, "loading");
    conf = itest_fixture_config(&ctx, "check.cfg", "\"public.t\"", 1000, "slow", "slow_load",
                                "url = \"x\";");
    setenv("WN_TEST_LOAD_MARKER", marker.s, 1);
    itest_host_start(&ctx, &host, ITEST_ARGS("--check-config", "-c", conf.s));
    {
        itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

        while (stat(marker.s, &st) != 0) {
            ck_assert_msg(!itest_expired(&deadline), "the plugin was never loaded");
            itest_sleep_ms(ITEST_POLL_MS);
        }
    }
    itest_host_stop(&host, SIGTERM);
    unsetenv("WN_TEST_LOAD_MARKER");
    itest_assert_exit(&host, 0);
    assert_stderr_has(&host, "stopped by SIGTERM");
    out = itest_host_stdout(&host);
    ck_assert_msg(out == NULL || strstr(out, "valid") == NULL, "stopped, yet: %s", out);
    free(out);
    itest_end(&ctx);
}
END_TEST

/* A SIGUSR1 (or SIGUSR2) from outside is ignored, a SIGHUP reloads: SIGTERM still stops the
 * run. */
START_TEST(test_stray_signals_leave_sigterm_working)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    itest_lines lines;

    conf = begin_with_slot(&ctx, "stray", "stray.cfg", "stray.jsonl");
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    lines = itest_wait_lines(itest_file(&ctx, "stray.jsonl").s, 1, ITEST_WAIT_S);
    itest_lines_free(&lines);
    kill(host.pid, SIGUSR1);
    wait_stderr_has(&host, "received SIGUSR1; ignored");
    kill(host.pid, SIGUSR2);
    kill(host.pid, SIGHUP);
    wait_stderr_has(&host, "received SIGHUP; reloading");
    ck_assert(itest_host_running(&host));
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    itest_end(&ctx);
}
END_TEST

/* A word in a socket path decides nothing: with nothing listening there the run waits and
 * retries (exit 0 on SIGTERM), whatever the folder is called; a refusal by the server reached
 * through such a path still exits 3, from its SQLSTATE. */
START_TEST(test_socket_path_words_decide_nothing)
{
    itest_ctx ctx, other;
    itest_host host;
    itest_path conf, link;
    char dir[PATH_MAX];

    itest_begin(&ctx, "sockword");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    ck_assert_int_lt(snprintf(dir, sizeof dir, "%s/pg-invalid-sockdir", ctx.dir), (int)sizeof dir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    other = with_conninfo(&ctx, "");
    ck_assert_int_lt(snprintf(other.conninfo, sizeof other.conninfo,
                              "host=%s port=%s user=%s dbname=%s password=does-not-exist", dir,
                              itest_env("PGPORT"), itest_env("PGUSER"), ctx.db),
                     (int)sizeof other.conninfo);
    conf = jsonl_config(&other, "down.cfg", "down.jsonl");
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    wait_stderr_has(&host, "retrying");
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    ck_assert_int_eq(count_in_stderr(&host, "does-not-exist"), 0);

    link = itest_file(&ctx, "pg-invalid-link");
    ck_assert_int_eq(symlink(itest_env("PGHOST"), link.s), 0);
    ck_assert_int_lt(snprintf(other.conninfo, sizeof other.conninfo,
                              "host=%s port=%s user=wn_invalid_role dbname=%s", link.s,
                              itest_env("PGPORT"), ctx.db),
                     (int)sizeof other.conninfo);
    conf = jsonl_config(&other, "norole.cfg", "norole.jsonl");
    itest_host_run(&ctx, &host, "-c", conf.s);
    itest_assert_failed(&host, 3);
    assert_stderr_has(&host, "wn_invalid_role");
    itest_end(&ctx);
}
END_TEST

/* A publication name with a backslash: the replication grammar's publication_names takes it
 * quoted its own way; --create-slot and a run both work, and the row arrives. */
START_TEST(test_publication_name_with_backslash)
{
    itest_ctx ctx, other;
    itest_path conf;
    itest_events events;
    char name[80];

    itest_begin(&ctx, "backslash");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    other = ctx;
    /* In the file "\\\\" is one backslash; its name on the server ends with \b"q'. */
    ck_assert_int_lt(snprintf(other.pub, sizeof other.pub, "%s\\\\b\\\"q'", ctx.pub),
                     (int)sizeof other.pub);
    snprintf(name, sizeof name, "%s\\b\"q''", ctx.pub);
    conf = jsonl_config(&other, "bs.cfg", "bs.jsonl");
    itest_create_slot(&ctx, conf.s);
    ck_assert_int_eq(itest_query_int(ctx.conn,
                                     "SELECT count(*) FROM pg_publication WHERE pubname = '%s'",
                                     name),
                     1);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (7)");
    itest_run_to_now(&ctx, conf.s);
    events = itest_read_events(itest_file(&ctx, "bs.jsonl").s);
    ck_assert_int_eq(events.count, 1);
    ck_assert_str_eq(itest_value(&events.event[0], "id"), "7");
    itest_events_free(&events);
    itest_exec(ctx.conn, "DROP PUBLICATION \"%s\\b\"\"q'\"", ctx.pub);
    itest_end(&ctx);
}
END_TEST

/* --drop-slot says it once, and says the publication stays; paths in messages are
 * normalised. */
START_TEST(test_drop_slot_message_and_normalised_paths)
{
    itest_ctx ctx, nowhere;
    itest_host host;
    itest_path conf, neg;
    char want[PATH_MAX + 32];

    conf = begin_with_slot(&ctx, "dropmsg", "drop.cfg", "out.jsonl");
    itest_host_run(&ctx, &host, "--drop-slot", "-c", conf.s);
    itest_assert_exit(&host, 0);
    ck_assert_int_eq(count_in_stderr(&host, "dropped"), 1);
    assert_stderr_has(&host, "stays");
    assert_stderr_has(&host, ctx.pub);

    neg = itest_file(&ctx, "neg");
    ck_assert_int_eq(mkdir(neg.s, 0700), 0);
    nowhere = with_conninfo(&ctx, "host=/nonexistent/walnotify port=1 dbname=none");
    conf = itest_config(&nowhere, "path.cfg", "\"public.t\"", 1000,
                        "{ name = \"out\"; path = \"neg/../no-such-plugin.so\"; }");
    itest_host_run(&ctx, &host, "--check-config", "-c", conf.s);
    itest_assert_exit(&host, 2);
    ck_assert_int_eq(count_in_stderr(&host, "neg/.."), 0);
    snprintf(want, sizeof want, "%s/no-such-plugin.so", ctx.dir);
    {
        char real[PATH_MAX];

        ck_assert_ptr_nonnull(realpath(ctx.dir, real));
        snprintf(want, sizeof want, "%s/no-such-plugin.so", real);
    }
    assert_stderr_has(&host, want);
    itest_end(&ctx);
}
END_TEST

/* Copies from to to, then writes the 16-bit value at offset of to (little-endian), unless
 * offset is negative. */
static void copy_patched(const char *from, const char *to, long offset, unsigned value)
{
    size_t length;
    char *data = itest_read_file(from, &length);
    FILE *f;

    ck_assert_msg(data != NULL && (offset < 0 || (size_t)offset + 2 <= length), "cannot read %s",
                  from);
    if (offset >= 0) {
        data[offset] = (char)(value & 0xff);
        data[offset + 1] = (char)(value >> 8);
    }
    f = fopen(to, "wb");
    ck_assert_msg(f != NULL && fwrite(data, 1, length, f) == length && fclose(f) == 0,
                  "cannot write %s", to);
    free(data);
}

/* A plugin built for another machine is said to be one (glibc says "No such file or
 * directory"); an entry function returning a wild pointer is refused, not followed. */
START_TEST(test_foreign_and_wild_plugins_are_named)
{
    static const char *const wild[][2] = {
        {"unmapped", "not readable memory"},
        {"misaligned", "misaligned pointer"},
        {"name", "not readable"},
    };
    itest_ctx ctx, nowhere;
    itest_host host;
    itest_path conf, foreign;

    itest_begin(&ctx, "foreign");
    nowhere = with_conninfo(&ctx, "host=/nonexistent/walnotify port=1 dbname=none");
    foreign = itest_file(&ctx, "foreign.so");
    /* e_machine, at offset 18 of the ELF header: AArch64, or x86-64 on an AArch64 host. */
    copy_patched(itest_root_file("build/tests/fixtures/good.so").s, foreign.s, 18,
#if defined(__aarch64__)
                 62
#else
                 183
#endif
    );
    conf = itest_config(&nowhere, "foreign.cfg", "\"public.t\"", 1000,
                        "{ name = \"out\"; path = \"foreign.so\"; settings = { url = \"x\"; }; }");
    itest_host_run(&ctx, &host, "--check-config", "-c", conf.s);
    itest_assert_failed(&host, 2);
    assert_stderr_has(&host, "built for ");
    ck_assert_int_eq(count_in_stderr(&host, "No such file"), 0);

    conf = itest_config(&nowhere, "wild.cfg", "\"public.t\"", 1000,
                        "{ name = \"out\"; path = \"%s\"; }",
                        itest_root_file("build/tests/fixtures/bad_wild_entry.so").s);
    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
        setenv("WN_TEST_WILD", wild[i][0], 1);
        itest_host_run(&ctx, &host, "--check-config", "-c", conf.s);
        unsetenv("WN_TEST_WILD");
        itest_assert_failed(&host, 2);
        assert_stderr_has(&host, wild[i][1]);
    }
    itest_end(&ctx);
}
END_TEST

/* Runs --check-config on conf; returns the exit code. */
static int check_config_exit(itest_ctx *ctx, itest_host *host, const char *conf)
{
    return itest_host_run(ctx, host, "--check-config", "-c", conf);
}

/* What is loaded, and a configuration holding a password, must be changeable only by root or
 * walnotify's own user (as OpenSSH's StrictModes); a sticky folder such as /tmp is fine; the
 * environment's opt-out lets a development tree through. */
START_TEST(test_unsafe_plugin_and_config_files_are_refused)
{
    itest_ctx ctx, nowhere, secret;
    itest_host host;
    itest_path dir, plugin, conf, inc, open_dir, link, sticky;
    char plugins_line[PATH_MAX + 128];

    itest_begin(&ctx, "strict");
    nowhere = with_conninfo(&ctx, "host=/nonexistent/walnotify port=1 dbname=none");
    dir = itest_file(&ctx, "plugins");
    ck_assert_int_eq(mkdir(dir.s, 0700), 0);
    plugin = itest_file(&ctx, "plugins/good.so");
    copy_patched(itest_root_file("build/tests/fixtures/good.so").s, plugin.s, -1, 0);
    snprintf(plugins_line, sizeof plugins_line,
             "{ name = \"out\"; path = \"plugins/good.so\"; settings = { url = \"x\"; }; }");
    conf = itest_config(&nowhere, "strict.cfg", "\"public.t\"", 1000, "%s", plugins_line);

    ck_assert_int_eq(chmod(plugin.s, 0644), 0);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 0);

    ck_assert_int_eq(chmod(plugin.s, 0666), 0);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 2);
    itest_assert_reason(&host);
    assert_stderr_has(&host, "plugins/good.so is writable by everyone (mode 0666)");
    setenv("WALNOTIFY_ALLOW_UNSAFE_PATHS", "1", 1);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 0);
    unsetenv("WALNOTIFY_ALLOW_UNSAFE_PATHS");

    ck_assert_int_eq(chmod(plugin.s, 0620), 0);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 2);
    assert_stderr_has(&host, "writable by its group (mode 0620)");
    ck_assert_int_eq(chmod(plugin.s, 0644), 0);

    ck_assert_int_eq(chmod(dir.s, 0777), 0);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 2);
    assert_stderr_has(&host, "plugins is writable by everyone (mode 0777)");
    /* Sticky, as /tmp: the file in it is ours, so nobody else can replace it. */
    ck_assert_int_eq(chmod(dir.s, 01777), 0);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 0);
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(plugin.s, 4321, 4321), 0);
        ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 2);
        assert_stderr_has(&host, "is owned by uid 4321");
        ck_assert_int_eq(chown(plugin.s, 0, 0), 0);
    }
    ck_assert_int_eq(chmod(dir.s, 0700), 0);

    /* A link to the good file, in a folder anyone may write: anyone could swap the link. */
    open_dir = itest_file(&ctx, "open");
    ck_assert_int_eq(mkdir(open_dir.s, 0700), 0);
    ck_assert_int_eq(chmod(open_dir.s, 0777), 0);
    link = itest_file(&ctx, "open/link.so");
    ck_assert_int_eq(symlink(plugin.s, link.s), 0);
    conf = itest_config(&nowhere, "link.cfg", "\"public.t\"", 1000,
                        "{ name = \"out\"; path = \"open/link.so\"; settings = { url = \"x\"; }; }");
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 2);
    assert_stderr_has(&host, "open is writable by everyone (mode 0777)");
    ck_assert_int_eq(chmod(open_dir.s, 0755), 0);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 0);

    /* A link in the middle of the path, in a sticky folder: ours is fine, another user's is
     * that user's choice of the folder the plugin is loaded from. */
    sticky = itest_file(&ctx, "st");
    ck_assert_int_eq(mkdir(sticky.s, 0700), 0);
    ck_assert_int_eq(chmod(sticky.s, 01777), 0);
    link = itest_file(&ctx, "st/dirlink");
    ck_assert_int_eq(symlink("../plugins", link.s), 0);
    conf = itest_config(&nowhere, "middle.cfg", "\"public.t\"", 1000,
                        "{ name = \"out\"; path = \"st/dirlink/good.so\"; "
                        "settings = { url = \"x\"; }; }");
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 0);
    if (geteuid() == 0) {
        ck_assert_int_eq(lchown(link.s, 65534, 65534), 0);
        ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 2);
        itest_assert_reason(&host);
        assert_stderr_has(&host, "st/dirlink/good.so): refused: link ");
        assert_stderr_has(&host, "st/dirlink is owned by uid 65534");
    }

    /* A configuration without a password: it names what walnotify loads and runs all the same. */
    conf = itest_config(&nowhere, "plain.cfg", "\"public.t\"", 1000, "%s", plugins_line);
    ck_assert_int_eq(chmod(conf.s, 0666), 0);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 1);
    itest_assert_reason(&host);
    assert_stderr_has(&host, "plain.cfg: refused: file ");
    assert_stderr_has(&host, "plain.cfg is writable by everyone (mode 0666)");

    secret = with_conninfo(&ctx, "host=/nonexistent/walnotify port=1 dbname=none "
                                 "sslpassword=s3cret");
    conf = itest_config(&secret, "secret.cfg", "\"public.t\"", 1000, "%s", plugins_line);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 0);
    ck_assert_int_eq(chmod(conf.s, 0666), 0);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 1);
    itest_assert_reason(&host);
    assert_stderr_has(&host, "secret.cfg is writable by everyone (mode 0666)");
    ck_assert_int_eq(count_in_stderr(&host, "s3cret"), 0);
    setenv("WALNOTIFY_ALLOW_UNSAFE_PATHS", "1", 1);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 0);
    unsetenv("WALNOTIFY_ALLOW_UNSAFE_PATHS");

    /* A file the configuration includes could redirect the password as well. */
    inc = itest_file(&ctx, "open.inc");
    itest_write_file(inc.s, "plugins = ( %s );\n", plugins_line);
    ck_assert_int_eq(chmod(inc.s, 0666), 0);
    conf = itest_file(&ctx, "secret-inc.cfg");
    itest_write_file(conf.s,
                     "source:\n{\n  conninfo = \"%s\";\n  tables = [ \"public.t\" ];\n};\n"
                     "@include \"open.inc\"\n",
                     secret.conninfo);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 1);
    assert_stderr_has(&host, "open.inc is writable by everyone (mode 0666)");
    ck_assert_int_eq(chmod(inc.s, 0644), 0);
    ck_assert_int_eq(check_config_exit(&ctx, &host, conf.s), 0);
    itest_end(&ctx);
}
END_TEST

/* A configuration another user could write, naming a program another user could write: walnotify
 * refuses the file before anything starts, so the program never runs. Runs for real, against the
 * server, with the exec plugin and a sink that would acknowledge everything. */
START_TEST(test_untrusted_config_runs_nothing)
{
    itest_ctx ctx;
    itest_host host;
    itest_path sink, marker, conf;
    char *endpos;

    itest_begin(&ctx, "trustcfg");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    marker = itest_file(&ctx, "sink-ran");
    sink = itest_file(&ctx, "sink.sh");
    itest_write_file(sink.s,
                     "#!/bin/sh\n"
                     ": > '%s'\n"
                     "while read -r line; do\n"
                     "  case \"$line\" in\n"
                     "    *'\"walnotify\":\"commit\"'*)\n"
                     "      lsn=${line#*\\\"lsn\\\":\\\"}; echo \"ack ${lsn%%%%\\\"*}\" ;;\n"
                     "  esac\n"
                     "done\n",
                     marker.s);
    ck_assert_int_eq(chmod(sink.s, 0777), 0);
    if (geteuid() == 0)
        ck_assert_int_eq(chown(sink.s, 65534, 65534), 0);
    conf = itest_config(&ctx, "open.cfg", "\"public.t\"", 200,
                        "{ name = \"sink\"; path = \"%s\"; settings = { command = [ \"%s\" ]; }; }",
                        itest_root_file("build/plugins/exec.so").s, sink.s);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    endpos = itest_lsn_text(itest_current_lsn(ctx.conn));

    ck_assert_int_eq(chmod(conf.s, 0666), 0);
    itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", endpos);
    itest_assert_failed(&host, 1);
    assert_stderr_has(&host, "open.cfg: refused: file ");
    assert_stderr_has(&host, "open.cfg is writable by everyone (mode 0666)");
    ck_assert_msg(access(marker.s, F_OK) != 0, "the program the file names ran");
    free(endpos);
    itest_end(&ctx);
}
END_TEST

/* @include: errors name the included file and its line (also the plugin's own refusals), an
 * include may not climb out of the configuration's folder, includes count toward the size
 * limit, and a loop ends. */
START_TEST(test_include_names_bounds_and_reach)
{
    itest_ctx ctx;
    itest_host host;
    itest_path main_cfg, inc, outside, big, sub;
    char real[PATH_MAX], want[PATH_MAX + 64];
    FILE *f;

    itest_begin(&ctx, "include");
    ck_assert_ptr_nonnull(realpath(ctx.dir, real));
    main_cfg = itest_file(&ctx, "main.cfg");
    inc = itest_file(&ctx, "plugins.inc");
    itest_write_file(main_cfg.s,
                     "source:\n{\n  conninfo = \"host=/nonexistent/walnotify port=1\";\n"
                     "  tables = [ \"public.t\" ];\n};\n@include \"plugins.inc\"\n");
    itest_write_file(inc.s, "\n\nplugins = ( { name = \"out\"; path = \"%s\";\n"
                            "  settings = { path = \"x.jsonl\"; }; } );\n",
                     itest_root_file("build/plugins/jsonl.so").s);
    ck_assert_int_eq(check_config_exit(&ctx, &host, main_cfg.s), 0);

    itest_write_file(inc.s, "\n\nplugins = ( { name = \"out\"; path = \"%s\";\n"
                            "  settings = { nope = 1; }; } );\n",
                     itest_root_file("build/plugins/jsonl.so").s);
    ck_assert_int_eq(check_config_exit(&ctx, &host, main_cfg.s), 1);
    snprintf(want, sizeof want, "%s/plugins.inc:4: plugin \"out\": unknown setting \"nope\"", real);
    assert_stderr_has(&host, want);

    /* Out of the folder, by ".." and by a link. */
    outside = itest_file(&ctx, "outside.cfg");
    sub = itest_file(&ctx, "sub");
    ck_assert_int_eq(mkdir(sub.s, 0700), 0);
    itest_write_file(outside.s, "log_level = \"info\";\n");
    snprintf(want, sizeof want, "%s/sub/main.cfg", ctx.dir);
    itest_write_file(want,
                     "source:\n{\n  conninfo = \"host=/nonexistent/walnotify port=1\";\n"
                     "  tables = [ \"public.t\" ];\n};\nplugins = ();\n@include \"../outside.cfg\"\n");
    ck_assert_int_eq(check_config_exit(&ctx, &host, want), 1);
    itest_assert_reason(&host);
    assert_stderr_has(&host, "main.cfg:7: @include \"../outside.cfg\" leads to ");
    assert_stderr_has(&host, "outside the configuration's folder");
    snprintf(want, sizeof want, "%s/sub/link.cfg", ctx.dir);
    ck_assert_int_eq(symlink(outside.s, want), 0);
    snprintf(want, sizeof want, "%s/sub/main.cfg", ctx.dir);
    itest_write_file(want,
                     "source:\n{\n  conninfo = \"host=/nonexistent/walnotify port=1\";\n"
                     "  tables = [ \"public.t\" ];\n};\nplugins = ();\n@include \"link.cfg\"\n");
    ck_assert_int_eq(check_config_exit(&ctx, &host, want), 1);
    assert_stderr_has(&host, "outside the configuration's folder");

    /* 2 MB of comments in an include: over the limit of the whole configuration. */
    big = itest_file(&ctx, "big.inc");
    f = fopen(big.s, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 32768; i++)
        fputs("# a comment line of sixty-four bytes, to make the file big ....\n", f);
    ck_assert_int_eq(fclose(f), 0);
    itest_write_file(main_cfg.s,
                     "source:\n{\n  conninfo = \"host=/nonexistent/walnotify port=1\";\n"
                     "  tables = [ \"public.t\" ];\n};\nplugins = ();\n@include \"big.inc\"\n");
    ck_assert_int_eq(check_config_exit(&ctx, &host, main_cfg.s), 1);
    assert_stderr_has(&host, "would pass 1048576 bytes");

    /* An include that includes itself. */
    itest_write_file(inc.s, "@include \"plugins.inc\"\n");
    itest_write_file(main_cfg.s,
                     "source:\n{\n  conninfo = \"host=/nonexistent/walnotify port=1\";\n"
                     "  tables = [ \"public.t\" ];\n};\nplugins = ();\n@include \"plugins.inc\"\n");
    ck_assert_int_eq(check_config_exit(&ctx, &host, main_cfg.s), 1);
    snprintf(want, sizeof want, "%s/plugins.inc:1: @include \"plugins.inc\": nested more than",
             real);
    assert_stderr_has(&host, want);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("cli");
    TCase *tc = itest_tcase(suite, "cli");

    tcase_add_test(tc, test_endpos_on_busy_stream);
    tcase_add_test(tc, test_endpos_on_idle_stream_and_passed_slot);
    tcase_add_test(tc, test_create_and_drop_slot);
    tcase_add_test(tc, test_check_config);
    tcase_add_test(tc, test_usage_version_help);
    tcase_add_test(tc, test_plugin_init_failure_exits_2);
    tcase_add_test(tc, test_states_that_need_a_person_exit_3);
    tcase_add_test(tc, test_sigint_stops_cleanly);
    tcase_add_test(tc, test_refused_password_exits_3);
    tcase_add_test(tc, test_wal_level_not_logical_exits_3);
    tcase_add_test(tc, test_sigterm_while_connecting_to_a_silent_server);
    tcase_add_test(tc, test_sigterm_during_setup_creates_nothing);
    tcase_add_test(tc, test_sigterm_during_check_config);
    tcase_add_test(tc, test_stray_signals_leave_sigterm_working);
    tcase_add_test(tc, test_socket_path_words_decide_nothing);
    tcase_add_test(tc, test_publication_name_with_backslash);
    tcase_add_test(tc, test_drop_slot_message_and_normalised_paths);
    tcase_add_test(tc, test_foreign_and_wild_plugins_are_named);
    tcase_add_test(tc, test_unsafe_plugin_and_config_files_are_refused);
    tcase_add_test(tc, test_untrusted_config_runs_nothing);
    tcase_add_test(tc, test_include_names_bounds_and_reach);
    return run_suite(suite) == 0 ? 0 : 1;
}
