/*
 * Operating walnotify: the metrics endpoint scraped during a run and checked (the exposition
 * format and its conventions, prometheus_client's parse, the counters against what the jsonl
 * plugin wrote), /healthz and /readyz of an active and a standby host, and systemd's notify
 * protocol heard on a socket of the test's own: the messages and their order, for both hosts.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "itest.h"

#define BODY_MAX (1024 * 1024)
#define NOTES_MAX 4096 /* datagrams kept from one host */

/* ---- helpers ----------------------------------------------------------------------------- */

/* A port nobody listens on now (the kernel's pick), for metrics_listen. */
static int free_port(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

/* GET path from 127.0.0.1:port; returns the status code (-1: no connection), the body in *body
 * (to free) when body is not NULL. */
static int http_get(int port, const char *path, char **body)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char request[256];
    char *reply = calloc(1, BODY_MAX + 1);
    size_t used = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int status = -1;
    ssize_t n;

    ck_assert_ptr_nonnull(reply);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        free(reply);
        return -1;
    }
    snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             path);
    ck_assert_int_eq(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    while (used < BODY_MAX && (n = read(fd, reply + used, BODY_MAX - used)) > 0)
        used += (size_t)n;
    close(fd);
    ck_assert_msg(sscanf(reply, "HTTP/1.%*d %d", &status) == 1, "not an HTTP reply: %.200s", reply);
    if (body != NULL) {
        const char *start = strstr(reply, "\r\n\r\n");

        ck_assert_ptr_nonnull(start);
        *body = strdup(start + 4);
    }
    free(reply);
    return status;
}

/* Waits until the host's stderr holds text. */
static void wait_stderr(const itest_host *host, const char *text)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        char *err = itest_host_stderr(host);
        bool found = err && strstr(err, text);

        if (found) {
            free(err);
            return;
        }
        ck_assert_msg(!itest_expired(&deadline), "walnotify never said \"%s\"; stderr: %s", text,
                      err ? err : "");
        free(err);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* The jsonl plugin writing rows.jsonl, the tables t and u, the endpoint at port; with flaky,
 * also the flaky fixture answering RETRY once for each event (retried after 1 ms). */
static itest_path ops_config(const itest_ctx *ctx, const char *name, int port, bool flaky)
{
    char second[PATH_MAX + 256] = "";

    if (flaky)
        snprintf(second, sizeof second,
                 ",\n  { name = \"flaky\"; path = \"%s\"; retry_initial_ms = 1;\n"
                 "    ops = [ \"insert\", \"update\", \"delete\" ];\n"
                 "    settings = { fail_times = 1; }; }",
                 itest_root_file("build/tests/fixtures/flaky.so").s);
    itest_path path = itest_file(ctx, name);

    itest_write_file(path.s,
                     "log_level = \"info\";\n"
                     "metrics_listen = \"127.0.0.1:%d\";\n"
                     "source:\n{\n"
                     "  conninfo = \"%s\";\n"
                     "  tables = [ \"public.t\", \"public.u\" ];\n"
                     "  slot = \"%s\";\n"
                     "  publication = \"%s\";\n"
                     "  status_interval_ms = 200;\n"
                     "  reconnect_initial_ms = 100; reconnect_max_ms = 200;\n"
                     "};\n"
                     "plugins = ( { name = \"rows\"; path = \"%s\";\n"
                     "  ops = [ \"insert\", \"update\", \"delete\" ];\n"
                     "  settings = { path = \"rows.jsonl\"; }; }%s );\n",
                     port, ctx->conninfo, ctx->slot, ctx->pub,
                     itest_root_file("build/plugins/jsonl.so").s, second);
    return path;
}

static void make_tables(itest_ctx *ctx)
{
    itest_exec(ctx->conn, "CREATE TABLE t (id int PRIMARY KEY, note text)");
    itest_exec(ctx->conn, "CREATE TABLE u (id int PRIMARY KEY, note text)");
}

/* The body of GET path holds text. */
static void assert_metric(int port, const char *text)
{
    char *body = NULL;

    ck_assert_int_eq(http_get(port, "/metrics", &body), 200);
    ck_assert_msg(strstr(body, text) != NULL, "no \"%s\" in /metrics", text);
    free(body);
}

/* Waits until GET /metrics holds text. */
static void wait_metric(int port, const char *text)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        char *body = NULL;
        bool found = http_get(port, "/metrics", &body) == 200 && strstr(body, text) != NULL;

        free(body);
        if (found)
            return;
        ck_assert_msg(!itest_expired(&deadline), "/metrics never held \"%s\"", text);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* ---- the metrics scraped during a run ----------------------------------------------------- */

/* The scrape, checked by tests/integration/check_metrics.py against rows.jsonl. */
static void check_scrape(const itest_ctx *ctx, int port)
{
    itest_path scrape = itest_file(ctx, "metrics.txt"), rows = itest_file(ctx, "rows.jsonl");
    itest_path checker = itest_root_file("tests/integration/check_metrics.py");
    itest_path out = itest_file(ctx, "check.out");
    char command[4 * PATH_MAX + 64];
    char *body = NULL;
    int rc;

    ck_assert_int_eq(http_get(port, "/metrics", &body), 200);
    itest_write_file(scrape.s, "%s", body);
    free(body);
    snprintf(command, sizeof command, "/usr/bin/python3 '%s' '%s' 'rows=%s' >'%s' 2>&1", checker.s,
             scrape.s, rows.s, out.s);
    rc = system(command);
    body = itest_read_file(out.s, NULL);
    ck_assert_msg(rc == 0, "the scrape failed its check (%d):\n%s", rc, body ? body : "");
    free(body);
}

START_TEST(test_metrics_scrape)
{
    itest_ctx ctx;
    itest_host host, second;
    itest_path conf;
    itest_lines lines;
    int port = free_port();
    char *body = NULL;

    itest_begin(&ctx, "opsmetrics");
    make_tables(&ctx);
    conf = ops_config(&ctx, "w.cfg", port, true);
    itest_create_slot(&ctx, conf.s);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    wait_stderr(&host, "streaming slot");
    itest_exec(ctx.conn, "INSERT INTO t SELECT g, 'a' FROM generate_series(1, 30) g");
    itest_exec(ctx.conn, "INSERT INTO u SELECT g, 'b' FROM generate_series(1, 10) g");
    itest_exec(ctx.conn, "UPDATE t SET note = 'c' WHERE id <= 5");
    itest_exec(ctx.conn, "DELETE FROM u WHERE id <= 3");
    lines = itest_wait_lines(itest_file(&ctx, "rows.jsonl").s, 48, ITEST_WAIT_S);
    itest_lines_free(&lines);
    /* Each of the 48 events was answered RETRY once by flaky, then handled; flaky comes after
     * rows, so rows has every event by then. */
    wait_metric(port, "\nwalnotify_retries_total{plugin=\"flaky\"} 48\n");
    check_scrape(&ctx, port);
    assert_metric(port, "\nwalnotify_handle_duration_seconds_count{plugin=\"flaky\"} 96\n");
    assert_metric(port, "\nwalnotify_retries_total{plugin=\"rows\"} 0\n");
    ck_assert_int_eq(http_get(port, "/healthz", NULL), 200);
    ck_assert_int_eq(http_get(port, "/readyz", NULL), 200);
    ck_assert_int_eq(http_get(port, "/nothing", &body), 404);
    free(body);
    /* A second host on the same address stops before it connects, saying why. */
    ck_assert_int_eq(itest_host_run(&ctx, &second, "-c", conf.s), 1);
    itest_assert_failed(&second, 1);
    body = itest_host_stderr(&second);
    ck_assert_msg(strstr(body, "cannot listen there: Address already in use") != NULL, "%s", body);
    free(body);
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    ck_assert_int_eq(http_get(port, "/healthz", NULL), -1); /* the endpoint ends with the run */
    itest_end(&ctx);
}
END_TEST

/* ---- an active and a standby host: health and systemd's notify socket ---------------------- */

/* A datagram socket of the test's own, as systemd's NOTIFY_SOCKET, read by a thread as systemd
 * reads it: at once (the kernel queues only a few datagrams, and walnotify never waits). */
typedef struct notify_sink {
    int fd;
    itest_path path;
    pthread_t thread;
    atomic_bool done;
    char *notes[NOTES_MAX]; /* what came, in order; the thread's until joined */
    size_t count;
} notify_sink;

static void *sink_main(void *arg)
{
    notify_sink *sink = arg;
    char buffer[2048];

    while (!atomic_load(&sink->done) && sink->count < NOTES_MAX) {
        struct pollfd pfd = {.fd = sink->fd, .events = POLLIN};
        ssize_t got;

        if (poll(&pfd, 1, 50) <= 0)
            continue;
        got = recv(sink->fd, buffer, sizeof buffer - 1, 0);
        if (got < 0)
            continue;
        buffer[got] = '\0';
        sink->notes[sink->count++] = strdup(buffer);
    }
    return NULL;
}

static void sink_open(const itest_ctx *ctx, notify_sink *sink, const char *name)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};

    sink->path = itest_file(ctx, name);
    ck_assert_uint_lt(strlen(sink->path.s), sizeof addr.sun_path);
    strcpy(addr.sun_path, sink->path.s);
    sink->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(sink->fd, 0);
    ck_assert_int_eq(bind(sink->fd, (struct sockaddr *)&addr, sizeof addr), 0);
    sink->count = 0;
    atomic_store(&sink->done, false);
    ck_assert_int_eq(pthread_create(&sink->thread, NULL, sink_main, sink), 0);
}

/* Ends the reading thread once what was sent has been read. */
static void sink_close(notify_sink *sink)
{
    itest_sleep_ms(200);
    atomic_store(&sink->done, true);
    pthread_join(sink->thread, NULL);
    close(sink->fd);
}

/* A host started with NOTIFY_SOCKET at sink and a watchdog of 200 ms (pinged every 100 ms). */
static void start_notified(itest_ctx *ctx, itest_host *host, const notify_sink *sink,
                           const char *conf)
{
    setenv("NOTIFY_SOCKET", sink->path.s, 1);
    setenv("WATCHDOG_USEC", "200000", 1);
    itest_host_start(ctx, host, ITEST_ARGS("-c", conf));
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
}

/*
 * What one host told systemd: READY=1 with its first STATUS (status_prefix), then only
 * WATCHDOG=1 pings (at least a few: the host was up for a second) and further STATUS lines,
 * STOPPING=1 last.
 */
static void assert_notes(notify_sink *sink, const char *who, const char *status_prefix)
{
    char **notes = sink->notes;
    size_t n = sink->count;
    char first[256];
    size_t pings = 0;

    ck_assert_msg(n >= 2, "%s sent %zu notify messages", who, n);
    snprintf(first, sizeof first, "READY=1\nSTATUS=%s", status_prefix);
    ck_assert_msg(strncmp(notes[0], first, strlen(first)) == 0, "%s: first message \"%s\"", who,
                  notes[0]);
    ck_assert_msg(strcmp(notes[n - 1], "STOPPING=1") == 0, "%s: last message \"%s\"", who,
                  notes[n - 1]);
    for (size_t i = 1; i + 1 < n; i++) {
        if (strcmp(notes[i], "WATCHDOG=1") == 0)
            pings++;
        else
            ck_assert_msg(strncmp(notes[i], "STATUS=", 7) == 0, "%s: message %zu is \"%s\"", who,
                          i, notes[i]);
    }
    ck_assert_msg(pings >= 3, "%s pinged the watchdog %zu times", who, pings);
    for (size_t i = 0; i < n; i++)
        free(notes[i]);
}

START_TEST(test_active_and_standby)
{
    itest_ctx ctx;
    itest_host active, standby;
    itest_path active_conf, standby_conf;
    notify_sink active_sink, standby_sink;
    int active_port = free_port(), standby_port;

    itest_begin(&ctx, "opspair");
    make_tables(&ctx);
    active_conf = ops_config(&ctx, "active.cfg", active_port, false);
    itest_create_slot(&ctx, active_conf.s);
    sink_open(&ctx, &active_sink, "active.sock");
    sink_open(&ctx, &standby_sink, "standby.sock");
    start_notified(&ctx, &active, &active_sink, active_conf.s);
    wait_stderr(&active, "streaming slot");
    standby_port = free_port();
    standby_conf = ops_config(&ctx, "standby.cfg", standby_port, false);
    start_notified(&ctx, &standby, &standby_sink, standby_conf.s);
    wait_stderr(&standby, "waiting for slot");

    ck_assert_int_eq(http_get(active_port, "/healthz", NULL), 200);
    ck_assert_int_eq(http_get(active_port, "/readyz", NULL), 200);
    ck_assert_int_eq(http_get(standby_port, "/healthz", NULL), 200);
    ck_assert_int_eq(http_get(standby_port, "/readyz", NULL), 503);
    assert_metric(active_port, "\nwalnotify_slot_held 1\n");
    assert_metric(active_port, "\nwalnotify_standby 0\n");
    assert_metric(standby_port, "\nwalnotify_slot_held 0\n");
    assert_metric(standby_port, "\nwalnotify_standby 1\n");
    /* Both wait: the active host for changes, the standby for the slot; both ping. */
    itest_sleep_ms(1000);
    itest_host_stop(&standby, SIGTERM);
    itest_host_stop(&active, SIGTERM);
    itest_assert_exit(&standby, 0);
    itest_assert_exit(&active, 0);
    sink_close(&active_sink);
    sink_close(&standby_sink);
    assert_notes(&active_sink, "the active host", "streaming slot");
    assert_notes(&standby_sink, "the standby", "standby: ");
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("ops");
    TCase *tc = itest_tcase(suite, "ops");

    tcase_add_test(tc, test_metrics_scrape);
    tcase_add_test(tc, test_active_and_standby);
    return run_suite(suite) == 0 ? 0 : 1;
}
