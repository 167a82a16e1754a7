/* redisserver: a throwaway redis-server; see redisserver.h. */
#include "redisserver.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest_files.h"
#include "itest_fork.h"
#include "itest_time.h"

#define ENTRY_FIELDS 6

static void spawn(redis_server *rs)
{
    pid_t pid = itest_fork();

    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("redis-server", "redis-server", rs->conf, (char *)NULL);
        fprintf(stderr, "redisserver: cannot run redis-server: %s\n", strerror(errno));
        _exit(127);
    }
    rs->pid = pid;
}

/* Runs redis-cli with args; its output (to free) and exit code. */
static char *run_cli(const redis_server *rs, const char *const *args, bool quiet, int *code)
{
    const char *argv[64] = {"redis-cli", "--raw", "-s", rs->sock};
    size_t argc = 4, len = 0, cap = 4096;
    char *out = malloc(cap);
    int fds[2], status;
    pid_t pid;

    for (size_t i = 0; args[i] != NULL && argc < 63; i++)
        argv[argc++] = args[i];
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(pipe(fds), 0);
    pid = itest_fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        if (quiet)
            dup2(open("/dev/null", O_WRONLY), 2);
        close(fds[0]);
        close(fds[1]);
        execvp("redis-cli", (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        if (len + 4096 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            ck_assert_ptr_nonnull(out);
        }
        ssize_t n = read(fds[0], out + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    return out;
}

char *redis_cli(const redis_server *rs, const char *const *args)
{
    int code;
    char *out = run_cli(rs, args, false, &code);

    ck_assert_msg(code == 0, "redis-cli %s failed (exit %d): %s", args[0], code, out);
    return out;
}

static void wait_ready(redis_server *rs)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    const char *const ping[] = {"PING", NULL};

    for (;;) {
        int code;
        char *out = run_cli(rs, ping, true, &code);
        bool ready = code == 0 && strncmp(out, "PONG", 4) == 0;
        free(out);
        if (ready)
            return;
        ck_assert_msg(!itest_expired(&deadline), "redis-server in %s did not answer PING",
                      rs->dir);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

void redis_server_start(redis_server *rs, const char *dir, const char *extra)
{
    memset(rs, 0, sizeof *rs);
    ck_assert_int_lt(snprintf(rs->dir, sizeof rs->dir, "%s/redis", dir), (int)sizeof rs->dir);
    ck_assert_int_lt(snprintf(rs->sock, sizeof rs->sock, "%s/sock", rs->dir),
                     (int)sizeof rs->sock);
    ck_assert_int_lt(snprintf(rs->conf, sizeof rs->conf, "%s/redis.conf", rs->dir),
                     (int)sizeof rs->conf);
    ck_assert_msg(mkdir(rs->dir, 0700) == 0, "mkdir %s: %s", rs->dir, strerror(errno));
    /* Loopback never: no TCP port at all. */
    itest_write_file(rs->conf,
                     "port 0\nunixsocket %s\nunixsocketperm 700\ndir %s\nlogfile %s/log\n"
                     "daemonize no\nsave \"\"\nappendonly yes\nappendfsync always\n%s\n",
                     rs->sock, rs->dir, rs->dir, extra);
    spawn(rs);
    wait_ready(rs);
}

void redis_server_restart(redis_server *rs)
{
    ck_assert_int_eq(rs->pid, 0);
    spawn(rs);
    wait_ready(rs);
}

static void end(redis_server *rs, int sig)
{
    int status;

    if (rs->pid == 0)
        return;
    kill(rs->pid, sig);
    while (waitpid(rs->pid, &status, 0) < 0 && errno == EINTR)
        ;
    rs->pid = 0;
}

void redis_server_kill(redis_server *rs)
{
    end(rs, SIGKILL);
}

void redis_server_stop(redis_server *rs)
{
    end(rs, SIGTERM);
}

/* The next line of text at *at (cut there), or NULL at the end. */
static char *next_line(char **at)
{
    char *line = *at, *nl;

    if (line == NULL || *line == '\0')
        return NULL;
    nl = strchr(line, '\n');
    if (nl != NULL) {
        *nl = '\0';
        *at = nl + 1;
    } else {
        *at = line + strlen(line);
    }
    return line;
}

static char *dup_or_die(const char *text)
{
    char *copy = strdup(text);

    ck_assert_ptr_nonnull(copy);
    return copy;
}

static void set_field(redis_entry *e, const char *name, const char *value)
{
    static const char *const names[ENTRY_FIELDS] = {"lsn", "seq", "xid", "op", "table", "data"};
    char **slots[ENTRY_FIELDS] = {&e->lsn, &e->seq, &e->xid, &e->op, &e->table, &e->data};

    for (size_t i = 0; i < ENTRY_FIELDS; i++) {
        if (strcmp(names[i], name) == 0) {
            ck_assert_msg(*slots[i] == NULL, "entry %s holds field %s twice", e->id, name);
            *slots[i] = dup_or_die(value);
            return;
        }
    }
    ck_abort_msg("entry %s holds an unknown field %s", e->id, name);
}

/*
 * redis-cli --raw prints an entry as its ID then its fields and values, a line each. Every
 * entry the plugin writes has the six fields; a value never holds a newline (JSON escapes it).
 */
redis_entry *redis_entries(const redis_server *rs, const char *stream, size_t *count)
{
    char *out = redis_cli(rs, (const char *const[]){"XRANGE", stream, "-", "+", NULL});
    char *at = out, *line;
    size_t n = 0, cap = 1024;
    redis_entry *entries = calloc(cap, sizeof *entries);

    ck_assert_ptr_nonnull(entries);
    while ((line = next_line(&at)) != NULL) {
        if (n == cap) {
            cap *= 2;
            entries = realloc(entries, cap * sizeof *entries);
            ck_assert_ptr_nonnull(entries);
        }
        redis_entry *e = &entries[n++];
        memset(e, 0, sizeof *e);
        e->id = dup_or_die(line);
        for (size_t i = 0; i < ENTRY_FIELDS; i++) {
            char *name = next_line(&at), *value = next_line(&at);
            ck_assert_msg(name != NULL && value != NULL, "entry %s of %s is cut short", e->id,
                          stream);
            set_field(e, name, value);
        }
    }
    free(out);
    *count = n;
    return entries;
}

void redis_entries_free(redis_entry *entries, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(entries[i].id);
        free(entries[i].lsn);
        free(entries[i].seq);
        free(entries[i].xid);
        free(entries[i].op);
        free(entries[i].table);
        free(entries[i].data);
    }
    free(entries);
}

long long redis_xlen(const redis_server *rs, const char *stream)
{
    char *out = redis_cli(rs, (const char *const[]){"XLEN", stream, NULL});
    long long n = atoll(out);

    free(out);
    return n;
}

char *redis_get(const redis_server *rs, const char *key)
{
    char *out = redis_cli(rs, (const char *const[]){"GET", key, NULL});
    size_t len = strlen(out);

    while (len > 0 && out[len - 1] == '\n')
        out[--len] = '\0';
    if (len == 0) {
        free(out);
        return NULL;
    }
    return out;
}
