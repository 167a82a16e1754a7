/*
 * walnotify against a server that is not PostgreSQL (tests/fakepg/server.py): one that
 * completes startup and then answers in shapes no PostgreSQL would, one whose error texts hold
 * terminal control sequences, and TLS set up in ways only a person can fix. Anyone on the path
 * can be such a server with the default sslmode=prefer: walnotify must refuse it with a one-line
 * reason, never crash, and never let its words steer the terminal reading the log.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

/* How long a run against the fake may take: it answers at once, so a run still going after this
 * is retrying what it should have refused. */
#define FAKE_RUN_S 20

typedef struct fake_server {
    pid_t pid;
    int port;
} fake_server;

static void fake_start(const itest_ctx *ctx, fake_server *fake, const char *shape,
                       const char *cert, const char *key)
{
    itest_path script = itest_root_file("tests/fakepg/server.py");
    itest_path port_file = itest_file(ctx, "fake.port");
    itest_path out = itest_file(ctx, "fake.out");
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    unlink(port_file.s);
    fake->pid = itest_fork();
    if (fake->pid == 0) {
        if (freopen(out.s, "w", stdout) == NULL || dup2(fileno(stdout), 2) < 0)
            _exit(127);
        if (cert)
            execlp("python3", "python3", script.s, "--shape", shape, "--port-file", port_file.s,
                   "--tls-cert", cert, "--tls-key", key, (char *)NULL);
        else
            execlp("python3", "python3", script.s, "--shape", shape, "--port-file", port_file.s,
                   (char *)NULL);
        _exit(127);
    }
    for (;;) {
        char *text = itest_read_file(port_file.s, NULL);

        if (text) {
            fake->port = atoi(text);
            free(text);
            return;
        }
        ck_assert_msg(waitpid(fake->pid, NULL, WNOHANG) == 0,
                      "the fake server exited before listening; see %s", out.s);
        ck_assert_msg(!itest_expired(&deadline), "the fake server did not start; see %s", out.s);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

static void fake_stop(fake_server *fake)
{
    kill(fake->pid, SIGTERM);
    waitpid(fake->pid, NULL, 0);
}

/* A configuration whose source is the fake, with `extra` conninfo options. */
static itest_path fake_config(itest_ctx *ctx, const fake_server *fake, const char *extra)
{
    snprintf(ctx->conninfo, sizeof ctx->conninfo,
             "host=127.0.0.1 port=%d user=walnotify dbname=fake connect_timeout=5 %s", fake->port,
             extra);
    return itest_config(ctx, "fake.conf", "\"public.t\"", 200,
                        "{ name = \"out\"; path = \"%s\"; settings = { path = \"%s\"; }; }",
                        itest_root_file("build/plugins/jsonl.so").s,
                        itest_file(ctx, "out.jsonl").s);
}

/* Runs walnotify with args; it must exit 3 with a one-line reason holding `needle`, and say
 * nothing but its own log lines (libpq complains on stderr of a column read out of range). */
static void assert_refused(itest_ctx *ctx, const char *const *args, const char *needle)
{
    itest_host host;
    char *err;

    itest_host_start(ctx, &host, args);
    itest_host_wait(&host, FAKE_RUN_S);
    /* Without a needle, any end but a crash will do (a row of one column is what a drop
     * answers). */
    if (needle)
        itest_assert_failed(&host, 3);
    else
        ck_assert_msg(host.status == 0 || host.status == 3, "walnotify ended with %d",
                      host.status);
    err = itest_host_stderr(&host);
    ck_assert_msg(!needle || strstr(err, needle) != NULL, "stderr lacks \"%s\": %s", needle,
                  err);
    ck_assert_msg(strstr(err, "out of range") == NULL, "a result was read out of range: %s", err);
    for (const char *p = err; *p; p++)
        ck_assert_msg(*p == '\n' || (unsigned char)*p >= 0x20, "a control byte 0x%02x reached the log: %s",
                      (unsigned)(unsigned char)*p, err);
    free(err);
}

/* A run, --create-slot and --drop-slot (which asks other questions first: its reason is its
 * own) against the same server. */
static void refused_in_every_mode(itest_ctx *ctx, const char *conf, const char *needle,
                                  const char *drop_needle)
{
    assert_refused(ctx, ITEST_ARGS("-c", conf), needle);
    assert_refused(ctx, ITEST_ARGS("--create-slot", "-c", conf), needle);
    assert_refused(ctx, ITEST_ARGS("--drop-slot", "-c", conf), drop_needle);
}

START_TEST(test_results_of_the_wrong_shape)
{
    static const struct {
        const char *shape;
        const char *needle;
        const char *drop_needle;
    } cases[] = {
        {"zero-columns", "reading wal_level: the server answered with 0 columns, expected 1",
         "looking up the replication slot: the server answered with 0 columns, expected 1"},
        {"one-column", "identifying the server: the server answered with 1 columns, expected 3",
         NULL},
        {"no-rows", "reading wal_level: the server answered 0 rows, expected 1",
         "slot \"s_fakeshape"},
    };
    itest_ctx ctx;

    itest_begin(&ctx, "fakeshape");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_server fake;
        itest_path conf;

        fake_start(&ctx, &fake, cases[i].shape, NULL, NULL);
        conf = fake_config(&ctx, &fake, "");
        refused_in_every_mode(&ctx, conf.s, cases[i].needle, cases[i].drop_needle);
        fake_stop(&fake);
    }
    itest_end(&ctx);
}
END_TEST

START_TEST(test_server_text_cannot_steer_the_terminal)
{
    itest_ctx ctx;
    fake_server fake;
    itest_path conf;

    itest_begin(&ctx, "fakecontrol");
    fake_start(&ctx, &fake, "control-text", NULL, NULL);
    conf = fake_config(&ctx, &fake, "");
    refused_in_every_mode(&ctx, conf.s,
                          "reading wal_level: bad\\x1b[31mred\\x1b[0m\\x07bell return\\x08back",
                          "looking up the replication slot: bad\\x1b[31mred");
    fake_stop(&fake);
    itest_end(&ctx);
}
END_TEST

/* A certificate the client does not trust, and a client key its sslpassword does not open: a
 * run stops as --create-slot does (exit 3), where waiting would only repeat the failure. */
START_TEST(test_tls_failures_need_a_person)
{
    itest_ctx ctx;
    fake_server fake;
    itest_path conf;
    char command[8192], extra[8400];

    itest_begin(&ctx, "faketls");
    snprintf(command, sizeof command,
             "(cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -keyout server.key "
             "-out server.crt -days 2 -subj /CN=127.0.0.1 && "
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt "
             "-days 2 -subj /CN=other && "
             "openssl genrsa -aes256 -passout pass:right -out client.key 2048 && "
             "openssl req -new -x509 -key client.key -passin pass:right -out client.crt -days 2 "
             "-subj /CN=client && chmod 600 *.key) >/dev/null 2>&1",
             ctx.dir);
    ck_assert_msg(system(command) == 0, "openssl could not make the test's certificates");
    fake_start(&ctx, &fake, "zero-columns", itest_file(&ctx, "server.crt").s,
               itest_file(&ctx, "server.key").s);

    snprintf(extra, sizeof extra, "sslmode=verify-ca sslrootcert=%s",
             itest_file(&ctx, "other.crt").s);
    conf = fake_config(&ctx, &fake, extra);
    refused_in_every_mode(&ctx, conf.s, "certificate verify failed", "certificate verify failed");

    snprintf(extra, sizeof extra, "sslmode=require sslcert=%s sslkey=%s sslpassword=wrong",
             itest_file(&ctx, "client.crt").s, itest_file(&ctx, "client.key").s);
    conf = fake_config(&ctx, &fake, extra);
    refused_in_every_mode(&ctx, conf.s, "could not load private key file",
                          "could not load private key file");

    /* TLS that works reaches the server, whose odd answers are then refused as above. */
    conf = fake_config(&ctx, &fake, "sslmode=require");
    refused_in_every_mode(&ctx, conf.s, "the server answered with 0 columns",
                          "the server answered with 0 columns");
    fake_stop(&fake);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("fakeserver");
    TCase *tc = itest_tcase(suite, "fakeserver");

    tcase_add_test(tc, test_results_of_the_wrong_shape);
    tcase_add_test(tc, test_server_text_cannot_steer_the_terminal);
    tcase_add_test(tc, test_tls_failures_need_a_person);
    return run_suite(suite) == 0 ? 0 : 1;
}
