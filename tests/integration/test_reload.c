/*
 * SIGHUP under a writer: plugins added, removed and changed while the stream keeps flowing (the
 * walsender the same before and after), an unchanged instance left running untouched, and
 * configurations that cannot be applied refused with the running one kept.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include "itest.h"

#define PLUGIN_JSONL "{ name = \"%s\"; path = \"%s\"; settings = { path = \"%s\"; }; }"

static itest_path jsonl(void)
{
    return itest_root_file("build/plugins/jsonl.so");
}

static itest_path lifecycle(void)
{
    return itest_root_file("build/tests/fixtures/lifecycle.so");
}

/* The walsender streaming the test's slot. */
static long long walsender(const itest_ctx *ctx)
{
    return itest_query_int(ctx->conn,
                           "SELECT r.pid FROM pg_stat_replication r JOIN pg_replication_slots s "
                           "ON s.active_pid = r.pid WHERE s.slot_name = '%s'",
                           ctx->slot);
}

/* The walsender streaming the test's slot once a stream holds it (a rewind leaves it free for a
 * moment). */
static long long walsender_streaming(const itest_ctx *ctx)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    long long pid;

    while ((pid = itest_query_int(ctx->conn,
                                  "SELECT coalesce((SELECT active_pid FROM pg_replication_slots "
                                  "WHERE slot_name = '%s'), 0)",
                                  ctx->slot)) == 0) {
        ck_assert_msg(!itest_expired(&deadline), "no walsender holds slot %s", ctx->slot);
        itest_sleep_ms(ITEST_POLL_MS);
    }
    return pid;
}

/* How many times needle is in the host's stderr. */
static size_t stderr_count(const itest_host *host, const char *needle)
{
    char *err = itest_host_stderr(host);
    size_t n = 0;

    for (const char *at = err; at != NULL && (at = strstr(at, needle)) != NULL; at++)
        n++;
    free(err);
    return n;
}

static void wait_stderr_count(const itest_host *host, const char *needle, size_t count)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    while (stderr_count(host, needle) < count) {
        ck_assert_msg(!itest_expired(&deadline), "stderr never said \"%s\" %zu times", needle,
                      count);
        ck_assert_msg(itest_host_running((itest_host *)host), "the host ended");
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* The ids a jsonl file received, in order. */
static long long *ids_of(const itest_ctx *ctx, const char *name, size_t *count)
{
    itest_events events = itest_read_events(itest_file(ctx, name).s);
    long long *ids = calloc(events.count + 1, sizeof *ids);

    ck_assert(ids != NULL);
    for (size_t i = 0; i < events.count; i++)
        ids[i] = atoll(itest_value(&events.event[i], "id"));
    *count = events.count;
    itest_events_free(&events);
    return ids;
}

/* ids is first, first + 1, ... with nothing missing or out of order; returns the last (first - 1
 * when empty). */
static long long assert_run(const char *what, const long long *ids, size_t count, long long first)
{
    for (size_t i = 0; i < count; i++)
        ck_assert_msg(ids[i] == first + (long long)i, "%s: event %zu is id %lld, expected %lld",
                      what, i, ids[i], first + (long long)i);
    return first + (long long)count - 1;
}

/* Waits until the jsonl file holds the row of id last. */
static void wait_for_id(const itest_ctx *ctx, const char *name, long long last)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        size_t count;
        long long *ids = ids_of(ctx, name, &count);
        bool there = count > 0 && ids[count - 1] >= last;

        free(ids);
        if (there)
            return;
        ck_assert_msg(!itest_expired(&deadline), "%s never received id %lld", name, last);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* A datagram socket standing for systemd's NOTIFY_SOCKET, read once the host ended. */
static int notify_socket(const itest_ctx *ctx)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    itest_path path = itest_file(ctx, "notify.sock");
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_uint_lt(strlen(path.s), sizeof addr.sun_path);
    strcpy(addr.sun_path, path.s);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    setenv("NOTIFY_SOCKET", path.s, 1);
    return fd;
}

/* What the notify socket said of reloads so far. */
typedef struct reload_notes {
    int fd;
    size_t reloads;  /* RELOADING=1 seen */
    bool reloading;  /* the last RELOADING=1 not yet followed by READY=1 */
} reload_notes;

/* Reads what came (the kernel queues only a few datagrams: read after each reload). Every
 * RELOADING=1 must be followed by READY=1, STATUS lines aside. */
static void read_notes(reload_notes *notes)
{
    char buffer[2048];
    ssize_t got;

    while ((got = recv(notes->fd, buffer, sizeof buffer - 1, 0)) >= 0) {
        buffer[got] = '\0';
        if (strncmp(buffer, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0) {
            ck_assert_msg(!notes->reloading, "RELOADING=1 twice without READY=1 between");
            notes->reloading = true;
            notes->reloads++;
        } else if (strcmp(buffer, "READY=1") == 0) {
            ck_assert_msg(notes->reloading, "READY=1 alone, with no reload before");
            notes->reloading = false;
        }
    }
}

static itest_path write_first(const itest_ctx *ctx)
{
    return itest_config(ctx, "reload.cfg", "\"public.t\"", 200,
                        "{ name = \"life\"; path = \"%s\"; settings = { log = \"life.log\"; }; },"
                        PLUGIN_JSONL "," PLUGIN_JSONL "," PLUGIN_JSONL,
                        lifecycle().s, "stay", jsonl().s, "stay.jsonl", "gone", jsonl().s,
                        "gone.jsonl", "chg", jsonl().s, "chg1.jsonl");
}

/* gone removed, chg writing elsewhere, new added; life and stay as they were. */
static void write_second(const itest_ctx *ctx)
{
    itest_config(ctx, "reload.cfg", "\"public.t\"", 200,
                 "{ name = \"life\"; path = \"%s\"; settings = { log = \"life.log\"; }; },"
                 PLUGIN_JSONL "," PLUGIN_JSONL "," PLUGIN_JSONL,
                 lifecycle().s, "stay", jsonl().s, "stay.jsonl", "chg", jsonl().s, "chg2.jsonl",
                 "new", jsonl().s, "new.jsonl");
}

/* chg writing elsewhere again, new asking for fsync: every instance the second file made goes,
 * and with them that file's configuration. */
static void write_third(const itest_ctx *ctx)
{
    itest_config(ctx, "reload.cfg", "\"public.t\"", 200,
                 "{ name = \"life\"; path = \"%s\"; settings = { log = \"life.log\"; }; },"
                 PLUGIN_JSONL "," PLUGIN_JSONL ","
                 "{ name = \"new\"; path = \"%s\"; settings = { path = \"new.jsonl\"; "
                 "fsync = true; }; }",
                 lifecycle().s, "stay", jsonl().s, "stay.jsonl", "chg", jsonl().s, "chg3.jsonl",
                 jsonl().s);
}

START_TEST(test_reload_under_a_writer)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    pid_t writer;
    long long pid, after_reload, last, end;
    size_t n_stay, n_gone, n_chg1, n_chg2, n_chg3, n_new;
    long long *stay, *gone, *chg1, *chg2, *chg3, *fresh;
    itest_lines life;
    reload_notes notes = {0};

    itest_begin(&ctx, "reload");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY); CREATE SEQUENCE ids");
    conf = write_first(&ctx);
    itest_create_slot(&ctx, conf.s);
    notes.fd = notify_socket(&ctx);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    unsetenv("NOTIFY_SOCKET");
    writer = itest_writer_start(&ctx, "INSERT INTO t VALUES (nextval('ids'))");
    wait_for_id(&ctx, "chg1.jsonl", 20);
    pid = walsender(&ctx);

    /* Added, removed, changed, kept. */
    write_second(&ctx);
    kill(host.pid, SIGHUP);
    wait_stderr_count(&host, "reload applied: 1 plugin(s) added, 1 removed, 1 changed, 2 "
                             "unchanged", 1);
    read_notes(&notes);
    /* Every row committed from now on is after the reload. */
    after_reload = itest_query_int(ctx.conn, "SELECT coalesce(max(id), 0) FROM t");
    wait_for_id(&ctx, "new.jsonl", after_reload + 20);
    ck_assert_int_eq(walsender(&ctx), pid);

    /* A file that does not parse, and a key that cannot change: refused, the run goes on. */
    itest_write_file(conf.s, "source = { conninfo = ");
    kill(host.pid, SIGHUP);
    wait_stderr_count(&host, "the running configuration is kept", 1);
    read_notes(&notes);
    itest_config_extra(&ctx, "reload.cfg", "\"public.t\"", 200, "receive_timeout_ms = 9999;",
                       "{ name = \"stay\"; path = \"%s\"; settings = { path = \"stay.jsonl\"; }; }",
                       jsonl().s);
    kill(host.pid, SIGHUP);
    wait_stderr_count(&host, "reload refused: source.receive_timeout_ms cannot change", 1);
    read_notes(&notes);
    last = itest_query_int(ctx.conn, "SELECT coalesce(max(id), 0) FROM t");
    wait_for_id(&ctx, "new.jsonl", last + 20);
    wait_for_id(&ctx, "chg2.jsonl", last + 20);
    ck_assert_int_eq(walsender(&ctx), pid);

    /* Both instances the second file made change again. */
    write_third(&ctx);
    kill(host.pid, SIGHUP);
    wait_stderr_count(&host, "reload applied: 0 plugin(s) added, 0 removed, 2 changed, 2 unchanged",
                      1);
    read_notes(&notes);
    last = itest_query_int(ctx.conn, "SELECT coalesce(max(id), 0) FROM t");
    wait_for_id(&ctx, "chg3.jsonl", last + 20);

    itest_writer_stop(writer);
    end = itest_query_int(ctx.conn, "SELECT max(id) FROM t");
    wait_for_id(&ctx, "stay.jsonl", end);
    wait_for_id(&ctx, "new.jsonl", end);
    wait_for_id(&ctx, "chg3.jsonl", end);
    ck_assert_int_eq(walsender(&ctx), pid);
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    read_notes(&notes);
    ck_assert_uint_eq(notes.reloads, 4);
    ck_assert_msg(!notes.reloading, "a reload never ended with READY=1");
    close(notes.fd);

    stay = ids_of(&ctx, "stay.jsonl", &n_stay);
    gone = ids_of(&ctx, "gone.jsonl", &n_gone);
    chg1 = ids_of(&ctx, "chg1.jsonl", &n_chg1);
    chg2 = ids_of(&ctx, "chg2.jsonl", &n_chg2);
    chg3 = ids_of(&ctx, "chg3.jsonl", &n_chg3);
    fresh = ids_of(&ctx, "new.jsonl", &n_new);
    ck_assert_int_eq(assert_run("stay", stay, n_stay, 1), end);
    ck_assert_int_ge(assert_run("gone", gone, n_gone, 1), 20);
    ck_assert_int_lt(assert_run("gone", gone, n_gone, 1), end);
    /* The changed block's new instance goes on exactly where the old one stopped. */
    ck_assert_int_eq(assert_run("chg3", chg3, n_chg3,
                                assert_run("chg2", chg2, n_chg2,
                                           assert_run("chg1", chg1, n_chg1, 1) + 1) +
                                    1),
                     end);
    ck_assert_msg(n_new > 0 && fresh[0] <= after_reload + 1,
                  "the added plugin began at id %lld, after %lld committed after the reload",
                  n_new ? fresh[0] : -1, after_reload + 1);
    ck_assert_int_eq(assert_run("new", fresh, n_new, fresh[0]), end);
    /* The unchanged instance ran on: one init in the whole run. */
    life = itest_read_lines(itest_file(&ctx, "life.log").s);
    {
        size_t inits = 0;

        for (size_t i = 0; i < life.count; i++)
            inits += strncmp(life.line[i], "init ", 5) == 0;
        ck_assert_msg(inits == 1, "the unchanged plugin was started %zu times", inits);
    }
    ck_assert_int_eq(stderr_count(&host, "reload: plugin \"life\""), 0);
    ck_assert_int_eq(stderr_count(&host, "reload: plugin \"stay\""), 0);
    ck_assert_int_eq(stderr_count(&host, "reload: plugin \"gone\" removed"), 1);
    ck_assert_int_eq(stderr_count(&host, "reload: plugin \"new\" added"), 1);
    ck_assert_int_eq(stderr_count(&host, "reload: plugin \"chg\" changed"), 2);
    ck_assert_int_eq(stderr_count(&host, "reload: plugin \"new\" changed"), 1);
    itest_lines_free(&life);
    free(stay);
    free(gone);
    free(chg1);
    free(chg2);
    free(chg3);
    free(fresh);
    itest_end(&ctx);
}
END_TEST

/* f's block: flaky failing every event fail_times times, retried for ever, a minute apart. */
static itest_path write_retrying(const itest_ctx *ctx, long fail_times, const char *life_settings)
{
    return itest_config(ctx, "retry.cfg", "\"public.t\"", 200,
                        "{ name = \"f\"; path = \"%s\"; retry_max = 0; retry_initial_ms = 60000; retry_max_ms = 60000; "
                        "settings = { fail_times = %ld; log = \"f.log\"; }; },"
                        "{ name = \"life\"; path = \"%s\"; settings = { log = \"life.log\"; %s }; }",
                        itest_root_file("build/tests/fixtures/flaky.so").s, fail_times,
                        lifecycle().s, life_settings);
}

static size_t count_prefix(const itest_lines *lines, const char *prefix)
{
    size_t n = 0;

    for (size_t i = 0; i < lines->count; i++)
        n += strncmp(lines->line[i], prefix, strlen(prefix)) == 0;
    return n;
}

/* A reload reaches a block retrying for ever; a block its plugin's check refuses keeps the
 * running configuration; a changed block whose new init fails runs on with its old settings.
 * The rewind that ends the retries streams again on the same connection: the walsender stays. */
START_TEST(test_reload_retrying_refused_and_fallen_back)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, lock;
    itest_lines f, life;
    long long pid;
    int held;

    itest_begin(&ctx, "reloadretry");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY)");
    conf = write_retrying(&ctx, 1000000000L, "");
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1)");
    itest_exec(ctx.conn, "INSERT INTO t VALUES (2)");
    wait_stderr_count(&host, "plugin \"f\": handle failed transiently (attempt 1)", 1);
    pid = walsender_streaming(&ctx);

    /* The check of the new life block refuses it: nothing applied, f still failing. */
    write_retrying(&ctx, 0, "refuse = true;");
    kill(host.pid, SIGHUP);
    wait_stderr_count(&host, "a reload ends its retries", 1);
    wait_stderr_count(&host, "reload refused: ", 1);
    wait_stderr_count(&host, "plugin \"f\": handle failed transiently (attempt 1)", 2);
    ck_assert_int_eq(walsender_streaming(&ctx), pid);

    /* f fixed; life's new init cannot take its lock: life runs on with its old settings. */
    lock = itest_file(&ctx, "held.lock");
    held = open(lock.s, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    ck_assert(held >= 0 && flock(held, LOCK_EX) == 0);
    write_retrying(&ctx, 0, "lock = \"held.lock\";");
    kill(host.pid, SIGHUP);
    wait_stderr_count(&host, "a reload ends its retries", 2);
    wait_stderr_count(&host, "reload: plugin \"life\": its new block failed to start (init); "
                             "running with its old settings", 1);
    wait_stderr_count(&host, "reload applied: 0 plugin(s) added, 0 removed, 1 changed, 0 unchanged, 1 back", 1);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (3)");
    f = itest_wait_lines(itest_file(&ctx, "f.log").s, 3, ITEST_WAIT_S);
    itest_lines_free(&f);
    ck_assert_int_eq(walsender_streaming(&ctx), pid);
    ck_assert_uint_eq(stderr_count(&host, "on the same connection (walsender PID"), 2);
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    close(held);

    f = itest_read_lines(itest_file(&ctx, "f.log").s);
    ck_assert_uint_eq(f.count, 3);
    for (size_t i = 0; i < f.count; i++) {
        char want[32];

        snprintf(want, sizeof want, " %zu", i + 1);
        ck_assert_msg(strstr(f.line[i], want) == f.line[i] + strlen(f.line[i]) - strlen(want),
                      "f.log line %zu is \"%s\", expected id %zu", i, f.line[i], i + 1);
    }
    life = itest_read_lines(itest_file(&ctx, "life.log").s);
    ck_assert_uint_eq(count_prefix(&life, "init-retry"), 1);
    ck_assert_uint_eq(count_prefix(&life, "init resume"), 2);
    itest_lines_free(&f);
    itest_lines_free(&life);
    itest_end(&ctx);
}
END_TEST

/* Copies the fixture build/tests/fixtures/NAME.so to path through a temporary name and a rename:
 * how a new build is installed. */
static void install(const itest_ctx *ctx, const char *fixture, const char *path)
{
    char relative[128];
    size_t length;
    char *bytes;
    itest_path tmp = itest_file(ctx, "install.tmp");
    FILE *out;

    snprintf(relative, sizeof relative, "build/tests/fixtures/%s.so", fixture);
    bytes = itest_read_file(itest_root_file(relative).s, &length);
    ck_assert(bytes != NULL);
    out = fopen(tmp.s, "wb");
    ck_assert(out != NULL);
    ck_assert_uint_eq(fwrite(bytes, 1, length, out), length);
    ck_assert_int_eq(fclose(out), 0);
    ck_assert_int_eq(chmod(tmp.s, 0755), 0);
    ck_assert_int_eq(rename(tmp.s, path), 0);
    free(bytes);
}

/* Whether the process maps a plugin's in-memory copy. */
static bool maps_memfd(pid_t pid)
{
    char path[64], *maps;
    bool found;

    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    maps = itest_read_file(path, NULL);
    ck_assert(maps != NULL);
    found = strstr(maps, "/memfd:walnotify-plugin") != NULL;
    free(maps);
    return found;
}

/* Waits until the versioned log holds "VERSION ID" for id last. */
static void wait_for_version_id(const char *log, const char *version, long long last)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    char want[64];

    snprintf(want, sizeof want, "%s %lld", version, last);
    for (;;) {
        itest_lines lines = itest_read_lines(log);
        bool there = false;

        for (size_t i = 0; i < lines.count && !there; i++)
            there = strcmp(lines.line[i], want) == 0;
        itest_lines_free(&lines);
        if (there)
            return;
        ck_assert_msg(!itest_expired(&deadline), "%s never said \"%s\"", log, want);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* A new build installed by rename under a running block: noticed by the reload, loaded, and
 * handling from where the old build stopped; the stream never closed. */
START_TEST(test_reload_new_build)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, object, log;
    itest_lines lines;
    pid_t writer;
    long long pid, end, next = 1;
    const char *version = "1";

    itest_begin(&ctx, "reloadbuild");
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY); CREATE SEQUENCE ids");
    object = itest_file(&ctx, "sink.so");
    log = itest_file(&ctx, "v.log");
    install(&ctx, "versioned", object.s);
    conf = itest_config(&ctx, "build.cfg", "\"public.t\"", 200,
                        "{ name = \"v\"; path = \"%s\"; settings = { log = \"v.log\"; }; }",
                        object.s);
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    writer = itest_writer_start(&ctx, "INSERT INTO t VALUES (nextval('ids'))");
    wait_for_version_id(log.s, "1", 20);
    pid = walsender(&ctx);

    install(&ctx, "versioned_2", object.s);
    kill(host.pid, SIGHUP);
    wait_stderr_count(&host, "reload: plugin \"v\" changed", 1);
    ck_assert_msg(maps_memfd(host.pid), "the new build is not mapped from an in-memory copy");
    end = itest_query_int(ctx.conn, "SELECT max(id) FROM t");
    wait_for_version_id(log.s, "2", end + 20);
    itest_writer_stop(writer);
    end = itest_query_int(ctx.conn, "SELECT max(id) FROM t");
    wait_for_version_id(log.s, "2", end);
    ck_assert_int_eq(walsender(&ctx), pid);
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);

    /* "1 init", 1's rows, "2 init", 2's rows: every id once, in order. */
    lines = itest_read_lines(log.s);
    ck_assert_uint_ge(lines.count, 2);
    ck_assert_str_eq(lines.line[0], "1 init");
    for (size_t i = 1; i < lines.count; i++) {
        char want[64];

        if (strcmp(lines.line[i], "2 init") == 0) {
            ck_assert_str_eq(version, "1");
            version = "2";
            continue;
        }
        snprintf(want, sizeof want, "%s %lld", version, next++);
        ck_assert_str_eq(lines.line[i], want);
    }
    ck_assert_str_eq(version, "2");
    ck_assert_int_eq(next - 1, end);
    itest_lines_free(&lines);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("reload");
    TCase *tc = itest_tcase(suite, "reload");

    tcase_add_test(tc, test_reload_under_a_writer);
    tcase_add_test(tc, test_reload_retrying_refused_and_fallen_back);
    tcase_add_test(tc, test_reload_new_build);
    return run_suite(suite) == 0 ? 0 : 1;
}
