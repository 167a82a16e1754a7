/*
 * hookserver: starting, reading and stopping the webhook tests' receiver.
 */
#include "hookserver.h"

#include <check.h>
#include <errno.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 24

static void run_server(const char *const *argv)
{
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "hookserver: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

void hook_server_start(const itest_ctx *ctx, hook_server *server, const char *name, bool tls,
                       const char *const *args)
{
    itest_path script = itest_root_file("tests/webhook/server.py");
    char file[64];
    itest_path port_file, out;
    const char *argv[MAX_ARGS + 12];
    size_t n = 0;
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    memset(server, 0, sizeof *server);
    snprintf(file, sizeof file, "%s.port", name);
    port_file = itest_file(ctx, file);
    snprintf(file, sizeof file, "%s.log", name);
    server->log = itest_file(ctx, file);
    snprintf(file, sizeof file, "%s.requests", name);
    server->requests = itest_file(ctx, file);
    snprintf(file, sizeof file, "%s.out", name);
    out = itest_file(ctx, file);
    unlink(port_file.s);

    argv[n++] = "python3";
    argv[n++] = script.s;
    argv[n++] = "--port-file";
    argv[n++] = port_file.s;
    argv[n++] = "--log";
    argv[n++] = server->log.s;
    argv[n++] = "--requests";
    argv[n++] = server->requests.s;
    for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
        ck_assert_msg(i < MAX_ARGS, "too many server arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    server->pid = itest_fork();
    if (server->pid == 0) {
        if (freopen(out.s, "w", stdout) == NULL || dup2(fileno(stdout), 2) < 0)
            _exit(127);
        run_server(argv);
    }
    for (;;) {
        char *text = itest_read_file(port_file.s, NULL);
        if (text != NULL) {
            server->port = atoi(text);
            free(text);
            break;
        }
        ck_assert_msg(waitpid(server->pid, NULL, WNOHANG) == 0,
                      "the webhook test server exited before listening; see %s", out.s);
        ck_assert_msg(!itest_expired(&deadline), "the webhook test server did not start; see %s",
                      out.s);
        itest_sleep_ms(ITEST_POLL_MS);
    }
    snprintf(server->url, sizeof server->url, "%s://127.0.0.1:%d/hook", tls ? "https" : "http",
             server->port);
}

void hook_server_stop(hook_server *server)
{
    if (server->pid <= 0)
        return;
    kill(server->pid, SIGTERM);
    waitpid(server->pid, NULL, 0);
    server->pid = 0;
}

hook_requests hook_server_requests(const hook_server *server)
{
    itest_lines lines = itest_read_lines(server->requests.s);
    hook_requests out = {0};
    char err[256];

    out.request = calloc(lines.count + 1, sizeof *out.request);
    ck_assert_msg(out.request != NULL, "out of memory");
    for (size_t i = 0; i < lines.count; i++) {
        out.request[i] = jl_parse(lines.line[i], lines.length[i], err, sizeof err);
        ck_assert_msg(out.request[i] != NULL, "%s line %zu: %s", server->requests.s, i + 1, err);
        out.count++;
    }
    itest_lines_free(&lines);
    return out;
}

void hook_requests_free(hook_requests *requests)
{
    for (size_t i = 0; i < requests->count; i++)
        jl_free(requests->request[i]);
    free(requests->request);
    memset(requests, 0, sizeof *requests);
}

void hook_server_wait_requests(const hook_server *server, size_t count)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    for (;;) {
        char *text = itest_read_file(server->requests.s, NULL);
        size_t n = 0;
        for (const char *p = text; p != NULL && *p != '\0'; p++)
            n += *p == '\n';
        free(text);
        if (n >= count)
            return;
        ck_assert_msg(!itest_expired(&deadline), "the webhook server saw %zu requests, not %zu", n,
                      count);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

void hook_server_wait_idle(const hook_server *server)
{
    static const char request[] = "GET /idle HTTP/1.0\r\n\r\n";
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)server->port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval bound = {.tv_sec = ITEST_WAIT_S};
    char answer[256];
    size_t got = 0;
    ssize_t n;
    int fd;

    ck_assert_msg(server->pid > 0, "the webhook test server is not running");
    ck_assert_msg(strncmp(server->url, "http:", 5) == 0, "hook_server_wait_idle needs plain HTTP");
    fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
    ck_assert_msg(connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0,
                  "cannot reach the webhook test server: %s", strerror(errno));
    ck_assert_msg(write(fd, request, sizeof request - 1) == (ssize_t)(sizeof request - 1),
                  "cannot ask the webhook test server: %s", strerror(errno));
    while (got + 1 < sizeof answer && (n = read(fd, answer + got, sizeof answer - 1 - got)) > 0)
        got += (size_t)n;
    answer[got] = '\0';
    close(fd);
    ck_assert_msg(strstr(answer, " 200 ") != NULL, "the webhook test server did not get idle: %s",
                  answer);
}

char *hook_server_ids(const hook_server *server, bool first_only)
{
    itest_loglines log = itest_read_log(server->log.s);
    size_t cap = log.count * 24 + 1, used = 0;
    char *out = calloc(1, cap);

    ck_assert_msg(out != NULL, "out of memory");
    for (size_t i = 0; i < log.count; i++) {
        bool seen = false;
        for (size_t j = 0; first_only && j < i && !seen; j++)
            seen = strcmp(log.line[j].id, log.line[i].id) == 0;
        if (!seen)
            used +=
                (size_t)snprintf(out + used, cap - used, "%s%s", used ? " " : "", log.line[i].id);
    }
    itest_loglines_free(&log);
    return out;
}

const char *hook_field(const jl_value *request, const char *key)
{
    const jl_value *v = jl_get(request, key);

    return v != NULL && v->text != NULL && v->kind != JL_NULL ? v->text : "";
}

static void run_openssl(const itest_ctx *ctx, const char *command)
{
    char line[PATH_MAX + 2048 + 64];
    int rc;

    snprintf(line, sizeof line, "cd '%s' && (%s) >>openssl.out 2>&1", ctx->dir, command);
    rc = system(line);
    ck_assert_msg(rc == 0, "openssl failed (%d): %s; see %s/openssl.out", rc, command, ctx->dir);
}

void hook_make_ca(const itest_ctx *ctx, const char *name)
{
    char cmd[2048];

    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=%s test CA' "
             "-keyout %s-ca.key -out %s-ca.pem",
             name, name, name);
    run_openssl(ctx, cmd);
    snprintf(cmd, sizeof cmd,
             "openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' -keyout %s-key.pem "
             "-out %s.csr && printf 'subjectAltName=IP:127.0.0.1\\n' >%s.ext && "
             "openssl x509 -req -in %s.csr -CA %s-ca.pem -CAkey %s-ca.key -CAcreateserial "
             "-days 2 -extfile %s.ext -out %s-cert.pem",
             name, name, name, name, name, name, name, name);
    run_openssl(ctx, cmd);
}
