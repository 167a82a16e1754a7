/* itest: the end-to-end test helpers; see itest.h. */
#include "itest.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_HOST_ARGS 32
#define MAX_WRAPPER_ARGS 32 /* words of WN_HOST_WRAPPER */

/* ---- time ------------------------------------------------------------------------------------ */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Under valgrind (tests/valgrind.sh) the host runs many times slower: every bound grows by
 * CK_TIMEOUT_MULTIPLIER, the factor Check applies to the tests' own time limits. */
static long long time_multiplier(void)
{
    const char *text = getenv("CK_TIMEOUT_MULTIPLIER");
    long long factor = text ? atoll(text) : 1;

    return factor >= 1 && factor <= 100 ? factor : 1;
}

itest_deadline itest_deadline_in(int ms)
{
    return (itest_deadline){.end_ms = now_ms() + (long long)ms * time_multiplier()};
}

bool itest_expired(const itest_deadline *deadline)
{
    return now_ms() >= deadline->end_ms;
}

void itest_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- environment ----------------------------------------------------------------------------- */

const char *itest_env(const char *name)
{
    const char *value = getenv(name);

    if (value == NULL || value[0] == '\0')
        ck_abort_msg("environment variable %s is not set: run the integration tests through "
                     "tests/run.sh (or set PGHOST, PGPORT, PGUSER, WN_TEST_PGDIR, WN_ROOT)",
                     name);
    return value;
}

itest_path itest_root_file(const char *relative)
{
    itest_path path;

    ck_assert_msg(snprintf(path.s, sizeof path.s, "%s/%s", itest_env("WN_ROOT"), relative) <
                      (int)sizeof path.s,
                  "path too long: %s", relative);
    return path;
}

itest_path itest_file(const itest_ctx *ctx, const char *name)
{
    itest_path path;

    ck_assert_msg(snprintf(path.s, sizeof path.s, "%s/%s", ctx->dir, name) < (int)sizeof path.s,
                  "path too long: %s", name);
    return path;
}

/* ---- SQL ------------------------------------------------------------------------------------- */

PGconn *itest_connect(const char *dbname, const char *options)
{
    const char *keys[] = {"host", "port", "user", "dbname", "options", "client_encoding",
                          "application_name", NULL};
    const char *values[] = {itest_env("PGHOST"), itest_env("PGPORT"), itest_env("PGUSER"),
                            dbname, options ? options : "", "UTF8", "walnotify-itest", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);

    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        ck_abort_msg("cannot connect to database %s: %s", dbname,
                     conn ? PQerrorMessage(conn) : "out of memory");
    return conn;
}

static char *format_sql(const char *format, va_list args)
{
    char *sql = NULL;

    ck_assert_msg(vasprintf(&sql, format, args) >= 0, "out of memory");
    return sql;
}

void itest_exec(PGconn *conn, const char *format, ...)
{
    va_list args;
    char *sql;
    PGresult *res;

    va_start(args, format);
    sql = format_sql(format, args);
    va_end(args);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        ck_abort_msg("SQL failed: %.300s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    free(sql);
}

static char *query_one(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    char *value = NULL;

    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        ck_abort_msg("SQL failed: %.300s: %s", sql, PQerrorMessage(conn));
    if (PQntuples(res) != 1 || PQnfields(res) != 1)
        ck_abort_msg("SQL returned %d rows of %d columns, expected one value: %.300s",
                     PQntuples(res), PQnfields(res), sql);
    if (!PQgetisnull(res, 0, 0)) {
        value = strdup(PQgetvalue(res, 0, 0));
        ck_assert_msg(value != NULL, "out of memory");
    }
    PQclear(res);
    return value;
}

char *itest_query(PGconn *conn, const char *format, ...)
{
    va_list args;
    char *sql, *value;

    va_start(args, format);
    sql = format_sql(format, args);
    va_end(args);
    value = query_one(conn, sql);
    free(sql);
    return value;
}

long long itest_query_int(PGconn *conn, const char *format, ...)
{
    va_list args;
    char *sql, *value, *end;
    long long n;

    va_start(args, format);
    sql = format_sql(format, args);
    va_end(args);
    value = query_one(conn, sql);
    ck_assert_msg(value != NULL, "NULL where a number was expected: %.300s", sql);
    n = strtoll(value, &end, 10);
    ck_assert_msg(*end == '\0', "not an integer: %s from %.300s", value, sql);
    free(value);
    free(sql);
    return n;
}

void itest_wait_query_at_least(PGconn *conn, long long least, const char *format, ...)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    va_list args;
    char *sql, *value;
    long long n;

    va_start(args, format);
    sql = format_sql(format, args);
    va_end(args);
    for (;;) {
        value = query_one(conn, sql);
        n = value ? strtoll(value, NULL, 10) : 0;
        free(value);
        if (n >= least)
            break;
        ck_assert_msg(!itest_expired(&deadline), "%.200s gave %lld after %d s, expected %lld", sql,
                      n, ITEST_WAIT_S, least);
        itest_sleep_ms(ITEST_POLL_MS);
    }
    free(sql);
}

static wn_lsn query_lsn(PGconn *conn, const char *sql)
{
    char *text = query_one(conn, sql);
    wn_lsn lsn;

    ck_assert_msg(text != NULL, "NULL where an LSN was expected: %s", sql);
    ck_assert_msg(wn_lsn_parse(text, &lsn), "not an LSN: %s", text);
    free(text);
    return lsn;
}

wn_lsn itest_current_lsn(PGconn *conn)
{
    return query_lsn(conn, "SELECT pg_current_wal_lsn()");
}

wn_lsn itest_insert_lsn(PGconn *conn)
{
    return query_lsn(conn, "SELECT pg_current_wal_insert_lsn()");
}

bool itest_slot_exists(PGconn *conn, const char *slot)
{
    return itest_query_int(conn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s'",
                           slot) == 1;
}

wn_lsn itest_slot_confirmed(PGconn *conn, const char *slot)
{
    char *sql = NULL;
    wn_lsn lsn;

    ck_assert_msg(itest_slot_exists(conn, slot), "replication slot %s does not exist", slot);
    ck_assert(asprintf(&sql,
                       "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '%s'",
                       slot) >= 0);
    lsn = query_lsn(conn, sql);
    free(sql);
    return lsn;
}

bool itest_publication_exists(PGconn *conn, const char *pub)
{
    return itest_query_int(conn, "SELECT count(*) FROM pg_publication WHERE pubname = '%s'", pub) ==
           1;
}

char *itest_lsn_text(wn_lsn lsn)
{
    char *text = malloc(WN_LSN_TEXT_MAX);

    ck_assert_msg(text != NULL, "out of memory");
    return wn_lsn_format(lsn, text);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

void itest_begin(itest_ctx *ctx, const char *name)
{
    PGconn *admin;
    char tmpl[] = "/tmp/walnotify-itest.XXXXXX";
    unsigned nonce = (unsigned)(now_ms() % 100000);

    memset(ctx, 0, sizeof *ctx);
    itest_env("WN_TEST_PGDIR");
    itest_env("WN_ROOT");
    ck_assert_msg(strlen(name) <= 24, "test name too long: %s", name);
    snprintf(ctx->db, sizeof ctx->db, "wn_%s_%d_%u", name, (int)getpid(), nonce);
    snprintf(ctx->slot, sizeof ctx->slot, "s_%s_%d_%u", name, (int)getpid(), nonce);
    snprintf(ctx->pub, sizeof ctx->pub, "p_%s_%d_%u", name, (int)getpid(), nonce);
    ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(ctx->dir, sizeof ctx->dir, "%s", tmpl);
    snprintf(ctx->conninfo, sizeof ctx->conninfo, "host=%s port=%s user=%s dbname=%s",
             itest_env("PGHOST"), itest_env("PGPORT"), itest_env("PGUSER"), ctx->db);

    admin = itest_connect("postgres", NULL);
    itest_exec(admin, "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' "
                      "LC_CTYPE 'C'",
               ctx->db);
    PQfinish(admin);
    ctx->conn = itest_connect(ctx->db, NULL);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void itest_end(itest_ctx *ctx)
{
    PGconn *admin = itest_connect("postgres", NULL);
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    if (ctx->conn != NULL)
        PQfinish(ctx->conn);
    ctx->conn = NULL;
    /* A walsender lingers a moment after its client is gone. */
    while (itest_query_int(admin,
                           "SELECT count(*) FROM pg_replication_slots WHERE database = '%s' AND "
                           "active",
                           ctx->db) > 0) {
        ck_assert_msg(!itest_expired(&deadline), "a slot of %s stays active", ctx->db);
        itest_sleep_ms(ITEST_POLL_MS);
    }
    itest_exec(admin, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                      "WHERE database = '%s'",
               ctx->db);
    itest_exec(admin, "DROP DATABASE %s WITH (FORCE)", ctx->db);
    PQfinish(admin);
    if (getenv("WN_ITEST_KEEP") != NULL) {
        fprintf(stderr, "itest: kept %s\n", ctx->dir);
        return;
    }
    nftw(ctx->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- files ----------------------------------------------------------------------------------- */

char *itest_read_file(const char *path, size_t *length)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t size = 0, capacity = 0, n;

    if (f == NULL) {
        ck_assert_msg(errno == ENOENT, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    do {
        if (capacity - size < 65536) {
            capacity = capacity ? capacity * 2 : 131072;
            data = realloc(data, capacity + 1);
            ck_assert_msg(data != NULL, "out of memory reading %s", path);
        }
        n = fread(data + size, 1, capacity - size, f);
        size += n;
    } while (n > 0);
    ck_assert_msg(!ferror(f), "cannot read %s", path);
    fclose(f);
    data[size] = '\0';
    if (length != NULL)
        *length = size;
    return data;
}

void itest_write_file(const char *path, const char *format, ...)
{
    va_list args;
    FILE *f = fopen(path, "w");

    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    va_start(args, format);
    vfprintf(f, format, args);
    va_end(args);
    ck_assert_msg(fclose(f) == 0, "cannot write %s", path);
}

/* Splits data into lines; a trailing partial line fails the test unless partial_ok. */
static itest_lines split_lines(const char *path, const char *data, size_t length, bool partial_ok)
{
    itest_lines lines = {0};
    size_t start = 0;

    if (data == NULL)
        return lines;
    for (size_t i = 0; i < length; i++) {
        if (data[i] != '\n')
            continue;
        lines.line = realloc(lines.line, (lines.count + 1) * sizeof *lines.line);
        lines.length = realloc(lines.length, (lines.count + 1) * sizeof *lines.length);
        ck_assert_msg(lines.line != NULL && lines.length != NULL, "out of memory");
        lines.line[lines.count] = strndup(data + start, i - start);
        lines.length[lines.count] = i - start;
        ck_assert_msg(lines.line[lines.count] != NULL, "out of memory");
        lines.count++;
        start = i + 1;
    }
    ck_assert_msg(partial_ok || start == length, "%s ends with a partial line of %zu bytes", path,
                  length - start);
    return lines;
}

itest_lines itest_read_lines(const char *path)
{
    size_t length = 0;
    char *data = itest_read_file(path, &length);
    itest_lines lines = split_lines(path, data, length, false);

    free(data);
    return lines;
}

itest_lines itest_wait_lines(const char *path, size_t count, int timeout_s)
{
    itest_deadline deadline = itest_deadline_in(timeout_s * 1000);

    for (;;) {
        size_t length = 0;
        char *data = itest_read_file(path, &length);
        itest_lines lines = split_lines(path, data, length, true);

        free(data);
        if (lines.count >= count)
            return lines;
        if (itest_expired(&deadline))
            ck_abort_msg("%s holds %zu lines after %d s, expected %zu", path, lines.count,
                         timeout_s, count);
        itest_lines_free(&lines);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

void itest_lines_free(itest_lines *lines)
{
    for (size_t i = 0; i < lines->count; i++)
        free(lines->line[i]);
    free(lines->line);
    free(lines->length);
    memset(lines, 0, sizeof *lines);
}

/* ---- configuration --------------------------------------------------------------------------- */

itest_path itest_config(const itest_ctx *ctx, const char *name, const char *tables,
                        int status_interval_ms, const char *format, ...)
{
    itest_path path = itest_file(ctx, name);
    va_list args;
    FILE *f = fopen(path.s, "w");

    ck_assert_msg(f != NULL, "cannot create %s: %s", path.s, strerror(errno));
    fprintf(f,
            "log_level = \"debug\";\n"
            "source:\n{\n"
            "  conninfo = \"%s\";\n"
            "  tables = [ %s ];\n"
            "  slot = \"%s\";\n"
            "  publication = \"%s\";\n"
            "  status_interval_ms = %d;\n"
            "};\n"
            "plugins =\n(\n",
            ctx->conninfo, tables, ctx->slot, ctx->pub, status_interval_ms);
    va_start(args, format);
    vfprintf(f, format, args);
    va_end(args);
    fprintf(f, "\n);\n");
    ck_assert_msg(fclose(f) == 0, "cannot write %s", path.s);
    return path;
}

/* ---- the host -------------------------------------------------------------------------------- */

static void exec_host(const char *out, const char *err, const char *const *argv)
{
    int fd_in = open("/dev/null", O_RDONLY);
    int fd_out = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fd_err = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    /* The host dies with the test, so a failed test leaves nothing running. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (fd_in < 0 || fd_out < 0 || fd_err < 0 || dup2(fd_in, 0) < 0 || dup2(fd_out, 1) < 0 ||
        dup2(fd_err, 2) < 0)
        _exit(126);
    /* Relative paths must resolve against the configuration's folder, not ours. */
    if (chdir("/") != 0)
        _exit(126);
    /* A wrapper (WN_HOST_WRAPPER) is found on PATH; build/walnotify is an absolute path. */
    execvp(argv[0], (char *const *)argv);
    dprintf(2, "itest: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/*
 * Splits WN_HOST_WRAPPER (e.g. "valgrind --error-exitcode=99 --leak-check=full") at blanks into
 * argv, the words kept in words; returns how many. No quoting: a word cannot hold a blank.
 */
static size_t wrapper_args(char *words, size_t size, const char **argv)
{
    const char *wrapper = getenv("WN_HOST_WRAPPER");
    char *saved = NULL;
    size_t n = 0;

    if (wrapper == NULL)
        return 0;
    ck_assert_msg(strlen(wrapper) < size, "WN_HOST_WRAPPER is longer than %zu bytes", size - 1);
    strcpy(words, wrapper);
    for (char *w = strtok_r(words, " \t", &saved); w != NULL; w = strtok_r(NULL, " \t", &saved)) {
        ck_assert_msg(n < MAX_WRAPPER_ARGS, "WN_HOST_WRAPPER has more than %d words",
                      MAX_WRAPPER_ARGS);
        argv[n++] = w;
    }
    return n;
}

void itest_host_start(itest_ctx *ctx, itest_host *host, const char *const *args)
{
    itest_path program = itest_root_file("build/walnotify");
    const char *argv[MAX_WRAPPER_ARGS + MAX_HOST_ARGS + 2];
    char words[1024];
    char name[64];
    size_t n;

    memset(host, 0, sizeof *host);
    ck_assert_msg(access(program.s, X_OK) == 0, "%s is not built: run make first", program.s);
    n = wrapper_args(words, sizeof words, argv);
    argv[n++] = program.s;
    for (size_t i = 0; args[i] != NULL; i++) {
        ck_assert_msg(i < MAX_HOST_ARGS, "too many host arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    ctx->runs++;
    snprintf(name, sizeof name, "host%d.out", ctx->runs);
    host->out = itest_file(ctx, name);
    snprintf(name, sizeof name, "host%d.err", ctx->runs);
    host->err = itest_file(ctx, name);
    host->status = -1;
    fflush(NULL);
    host->pid = fork();
    ck_assert_msg(host->pid >= 0, "fork: %s", strerror(errno));
    if (host->pid == 0)
        exec_host(host->out.s, host->err.s, argv);
}

int itest_exit_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

bool itest_host_running(itest_host *host)
{
    int status;
    pid_t got;

    if (host->pid == 0)
        return false;
    got = waitpid(host->pid, &status, WNOHANG);
    ck_assert_msg(got >= 0, "waitpid: %s", strerror(errno));
    if (got == 0)
        return true;
    host->status = itest_exit_status(status);
    host->pid = 0;
    return false;
}

int itest_host_wait(itest_host *host, int timeout_s)
{
    itest_deadline deadline = itest_deadline_in(timeout_s * 1000);

    while (itest_host_running(host)) {
        if (itest_expired(&deadline)) {
            char *err;
            kill(host->pid, SIGKILL);
            waitpid(host->pid, NULL, 0);
            host->pid = 0;
            err = itest_host_stderr(host);
            ck_abort_msg("walnotify did not exit within %d s (killed); stderr ends: %s", timeout_s,
                         err ? err + (strlen(err) > 1500 ? strlen(err) - 1500 : 0) : "");
        }
        itest_sleep_ms(ITEST_POLL_MS);
    }
    return host->status;
}

int itest_host_stop(itest_host *host, int sig)
{
    if (itest_host_running(host))
        ck_assert_msg(kill(host->pid, sig) == 0, "kill: %s", strerror(errno));
    return itest_host_wait(host, ITEST_WAIT_S);
}

char *itest_host_stderr(const itest_host *host)
{
    return itest_read_file(host->err.s, NULL);
}

char *itest_host_stdout(const itest_host *host)
{
    return itest_read_file(host->out.s, NULL);
}

void itest_assert_exit(const itest_host *host, int code)
{
    char *err;
    size_t length;

    if (host->status == code)
        return;
    err = itest_host_stderr(host);
    length = err ? strlen(err) : 0;
    ck_abort_msg("walnotify exited %d, expected %d; stderr ends:\n%s", host->status, code,
                 err ? err + (length > 2000 ? length - 2000 : 0) : "(none)");
}

void itest_create_slot(itest_ctx *ctx, const char *conf)
{
    itest_host host;

    itest_host_run(ctx, &host, "--create-slot", "-c", conf);
    itest_assert_exit(&host, 0);
}

wn_lsn itest_run_to_now(itest_ctx *ctx, const char *conf)
{
    itest_host host;
    wn_lsn end = itest_current_lsn(ctx->conn);
    char *text = itest_lsn_text(end);

    itest_host_run(ctx, &host, "-c", conf, "--endpos", text);
    free(text);
    itest_assert_exit(&host, 0);
    return end;
}

void itest_assert_reason(const itest_host *host)
{
    size_t length = 0;
    char *err = itest_read_file(host->err.s, &length);
    size_t start;

    ck_assert_msg(err != NULL && length > 0, "walnotify exited %d with nothing on stderr",
                  host->status);
    ck_assert_msg(err[length - 1] == '\n', "walnotify's stderr does not end with a newline: %s",
                  err);
    start = length - 1;
    while (start > 0 && err[start - 1] != '\n')
        start--;
    ck_assert_msg(length - 1 - start > 0, "walnotify's stderr ends with an empty line");
    free(err);
}

/* ---- writer ---------------------------------------------------------------------------------- */

static volatile sig_atomic_t writer_stop_asked;

static void note_writer_stop(int signo)
{
    (void)signo;
    writer_stop_asked = 1;
}

void itest_writer_child_setup(void)
{
    struct sigaction action = {.sa_handler = note_writer_stop, .sa_flags = SA_RESTART};

    /* SIGTERM ends a writer between two statements, never during one: a commit cut off with its
     * client could still land after the test read the WAL position it waits for, and its rows
     * would then be counted as committed but never delivered. (Check's own handler, inherited
     * from the test, would signal the test's whole group.) */
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

void itest_writer_stop_if_asked(void)
{
    if (!writer_stop_asked)
        return;
    signal(SIGTERM, SIG_DFL);
    raise(SIGTERM);
}

static void run_writer(const char *db, const char *sql)
{
    PGconn *conn;

    itest_writer_child_setup();
    conn = itest_connect(db, NULL);
    for (;;) {
        PGresult *res = PQexec(conn, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            fprintf(stderr, "itest writer: %s: %s", sql, PQerrorMessage(conn));
            _exit(1);
        }
        PQclear(res);
        itest_writer_stop_if_asked();
        itest_sleep_ms(2);
        itest_writer_stop_if_asked();
    }
}

pid_t itest_writer_start(const itest_ctx *ctx, const char *sql)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        run_writer(ctx->db, sql);
    return pid;
}

void itest_writer_stop(pid_t pid)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    int status;

    kill(pid, SIGTERM);
    while (waitpid(pid, &status, WNOHANG) == 0) {
        ck_assert_msg(!itest_expired(&deadline), "the writer did not stop");
        itest_sleep_ms(ITEST_POLL_MS);
    }
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM,
                  "the writer failed by itself (status %d)", status);
}

/* ---- jsonl events ---------------------------------------------------------------------------- */

static const char *const fixed_keys[] = {"lsn", "seq", "xid", "commit_time", "table", "op"};
#define NFIXED (sizeof fixed_keys / sizeof fixed_keys[0])

static bool is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* "YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z" */
static bool is_commit_time(const char *s, size_t n)
{
    size_t frac;

    if (n < 20 || !is_digits(s, 4) || s[4] != '-' || !is_digits(s + 5, 2) || s[7] != '-' ||
        !is_digits(s + 8, 2) || s[10] != 'T' || !is_digits(s + 11, 2) || s[13] != ':' ||
        !is_digits(s + 14, 2) || s[16] != ':' || !is_digits(s + 17, 2) || s[n - 1] != 'Z')
        return false;
    if (n == 20)
        return true;
    frac = n - 21;
    return s[19] == '.' && frac >= 1 && frac <= 6 && is_digits(s + 20, frac);
}

static const jl_value *typed_member(const jl_value *json, size_t i, jl_kind kind,
                                    const char *line)
{
    ck_assert_msg(json->items[i]->kind == kind, "member %s has the wrong type in: %.400s",
                  json->keys[i], line);
    return json->items[i];
}

static void check_tail(itest_event *event, const char *line)
{
    const jl_value *json = event->json;

    for (size_t i = NFIXED; i < json->count; i++) {
        const char *key = json->keys[i];
        const jl_value **slot = NULL;
        jl_kind kind = JL_OBJECT;

        if (strcmp(key, "values") == 0)
            slot = &event->values;
        else if (strcmp(key, "old") == 0)
            slot = &event->old;
        else if (strcmp(key, "unchanged") == 0) {
            slot = &event->unchanged;
            kind = JL_ARRAY;
        } else if (strcmp(key, "options") == 0) {
            slot = &event->options;
            kind = JL_ARRAY;
        }
        ck_assert_msg(slot != NULL, "unexpected key %s in: %.400s", key, line);
        ck_assert_msg(*slot == NULL, "key %s twice in: %.400s", key, line);
        *slot = typed_member(json, i, kind, line);
    }
    if (strcmp(event->op, "insert") == 0 || strcmp(event->op, "update") == 0)
        ck_assert_msg(event->values != NULL, "no values in: %.400s", line);
    if (strcmp(event->op, "truncate") == 0)
        ck_assert_msg(event->values == NULL && event->options != NULL,
                      "a truncate needs options and no values: %.400s", line);
    else
        ck_assert_msg(event->options == NULL, "options outside a truncate: %.400s", line);
    if (event->unchanged != NULL)
        ck_assert_msg(strcmp(event->op, "update") == 0, "unchanged outside an update: %.400s",
                      line);
}

static itest_event parse_event(const char *path, size_t number, const char *line, size_t length)
{
    char err[256];
    itest_event event = {0};
    const jl_value *json, *v;
    char *end;

    event.json = jl_parse(line, length, err, sizeof err);
    ck_assert_msg(event.json != NULL, "%s line %zu is not valid JSON (%s): %.400s", path, number,
                  err, line);
    json = event.json;
    ck_assert_msg(json->kind == JL_OBJECT && json->count > NFIXED,
                  "%s line %zu is not an event: %.400s", path, number, line);
    for (size_t i = 0; i < NFIXED; i++)
        ck_assert_msg(strcmp(json->keys[i], fixed_keys[i]) == 0,
                      "%s line %zu: key %zu is %s, expected %s: %.400s", path, number, i,
                      json->keys[i], fixed_keys[i], line);
    v = typed_member(json, 0, JL_STRING, line);
    ck_assert_msg(wn_lsn_parse(v->text, &event.lsn), "bad lsn %s", v->text);
    v = typed_member(json, 1, JL_NUMBER, line);
    event.seq = strtol(v->text, &end, 10);
    ck_assert_msg(*end == '\0' && event.seq >= 0, "bad seq %s", v->text);
    v = typed_member(json, 2, JL_NUMBER, line);
    event.xid = strtoll(v->text, &end, 10);
    ck_assert_msg(*end == '\0' && event.xid > 0, "bad xid %s", v->text);
    v = typed_member(json, 3, JL_STRING, line);
    ck_assert_msg(is_commit_time(v->text, v->length), "bad commit_time %s", v->text);
    event.table = typed_member(json, 4, JL_STRING, line)->text;
    event.op = typed_member(json, 5, JL_STRING, line)->text;
    ck_assert_msg(strcmp(event.op, "insert") == 0 || strcmp(event.op, "update") == 0 ||
                      strcmp(event.op, "delete") == 0 || strcmp(event.op, "truncate") == 0,
                  "bad op %s", event.op);
    check_tail(&event, line);
    return event;
}

itest_events itest_read_events(const char *path)
{
    itest_lines lines = itest_read_lines(path);
    itest_events events = {0};

    events.event = calloc(lines.count + 1, sizeof *events.event);
    ck_assert_msg(events.event != NULL, "out of memory");
    for (size_t i = 0; i < lines.count; i++)
        events.event[events.count++] = parse_event(path, i + 1, lines.line[i], lines.length[i]);
    itest_lines_free(&lines);
    return events;
}

void itest_events_free(itest_events *events)
{
    for (size_t i = 0; i < events->count; i++)
        jl_free(events->event[i].json);
    free(events->event);
    memset(events, 0, sizeof *events);
}

const char *itest_value(const itest_event *event, const char *column)
{
    const jl_value *v = jl_get(event->values, column);

    ck_assert_msg(v != NULL, "event %s %ld of %s has no column %s", event->op, event->seq,
                  event->table, column);
    if (v->kind == JL_NULL)
        return NULL;
    ck_assert_msg(v->kind == JL_STRING, "column %s is neither a string nor null", column);
    return v->text;
}

static void append(char **out, size_t *length, const char *bytes, size_t n)
{
    char *grown = realloc(*out, *length + n + 1);

    ck_assert_msg(grown != NULL, "out of memory");
    memcpy(grown + *length, bytes, n);
    *length += n;
    grown[*length] = '\0';
    *out = grown;
}

static void append_str(char **out, size_t *length, const char *text)
{
    append(out, length, text, strlen(text));
}

static void describe_value(char **out, size_t *length, const jl_value *v)
{
    char note[64];

    if (v->kind == JL_NULL) {
        append_str(out, length, "null");
    } else if (v->length > 64) {
        snprintf(note, sizeof note, "<%zu bytes>", v->length);
        append_str(out, length, note);
    } else {
        append(out, length, v->text, v->length);
    }
}

/* "name{k:v,...}" for an object, "name[a,b]" for an array. */
static void describe_member(char **out, size_t *length, const char *name, const jl_value *v)
{
    bool object = v->kind == JL_OBJECT;

    append_str(out, length, name);
    append_str(out, length, object ? "{" : "[");
    for (size_t i = 0; i < v->count; i++) {
        if (i > 0)
            append_str(out, length, ",");
        if (object) {
            append_str(out, length, v->keys[i]);
            append_str(out, length, ":");
        }
        describe_value(out, length, v->items[i]);
    }
    append_str(out, length, object ? "}" : "]");
}

char *itest_describe(const itest_event *event)
{
    char *out = NULL;
    size_t length = 0;
    char head[256];

    snprintf(head, sizeof head, "%s %s %ld", event->table, event->op, event->seq);
    append_str(&out, &length, head);
    if (event->values != NULL)
        describe_member(&out, &length, " ", event->values);
    if (event->unchanged != NULL)
        describe_member(&out, &length, " unchanged", event->unchanged);
    if (event->old != NULL)
        describe_member(&out, &length, " old", event->old);
    if (event->options != NULL)
        describe_member(&out, &length, " options", event->options);
    return out;
}

void itest_assert_described(const itest_events *events, const char *const *want, size_t count,
                            const char *what)
{
    for (size_t i = 0; i < events->count && i < count; i++) {
        char *got = itest_describe(&events->event[i]);
        ck_assert_msg(strcmp(got, want[i]) == 0, "%s event %zu is\n  %s\nexpected\n  %s", what, i,
                      got, want[i]);
        free(got);
    }
    if (events->count > count) {
        char *extra = itest_describe(&events->event[count]);
        ck_abort_msg("%s has %zu events, expected %zu; the first extra one: %s", what,
                     events->count, count, extra);
    }
    ck_assert_msg(events->count == count, "%s has %zu events, expected %zu; the first missing: %s",
                  what, events->count, count, count > events->count ? want[events->count] : "");
}

void itest_assert_commit_order(const itest_events *events)
{
    for (size_t i = 1; i < events->count; i++) {
        const itest_event *a = &events->event[i - 1], *b = &events->event[i];
        if (a->lsn == b->lsn)
            ck_assert_msg(b->seq > a->seq, "event %zu: seq %ld after %ld in one transaction", i,
                          b->seq, a->seq);
        else
            ck_assert_msg(b->lsn > a->lsn, "event %zu: lsn %llX after %llX", i,
                          (unsigned long long)b->lsn, (unsigned long long)a->lsn);
    }
}

/* ---- fixture logs ---------------------------------------------------------------------------- */

static itest_loglines parse_log(const char *path, const itest_lines *lines)
{
    itest_loglines out = {0};

    out.line = calloc(lines->count + 1, sizeof *out.line);
    ck_assert_msg(out.line != NULL, "out of memory");
    for (size_t i = 0; i < lines->count; i++) {
        itest_logline *l = &out.line[out.count++];
        char lsn[32];
        ck_assert_msg(sscanf(lines->line[i], "%31s %ld %127s %15s %63s", lsn, &l->seq, l->table,
                             l->op, l->id) == 5 &&
                          wn_lsn_parse(lsn, &l->lsn),
                      "%s line %zu is malformed: %s", path, i + 1, lines->line[i]);
    }
    return out;
}

itest_loglines itest_read_log(const char *path)
{
    itest_lines lines = itest_read_lines(path);
    itest_loglines out = parse_log(path, &lines);

    itest_lines_free(&lines);
    return out;
}

itest_loglines itest_wait_log(const char *path, size_t count, int timeout_s)
{
    itest_lines lines = itest_wait_lines(path, count, timeout_s);
    itest_loglines out = parse_log(path, &lines);

    itest_lines_free(&lines);
    return out;
}

void itest_loglines_free(itest_loglines *lines)
{
    free(lines->line);
    memset(lines, 0, sizeof *lines);
}

/* ---- server log ------------------------------------------------------------------------------ */

static itest_path server_log_path(void)
{
    itest_path path;

    snprintf(path.s, sizeof path.s, "%s/postgresql.log", itest_env("WN_TEST_PGDIR"));
    return path;
}

long itest_server_log_size(void)
{
    itest_path path = server_log_path();
    struct stat st;

    ck_assert_msg(stat(path.s, &st) == 0, "cannot stat the server log %s: %s", path.s,
                  strerror(errno));
    return (long)st.st_size;
}

char *itest_server_log_since(long offset)
{
    itest_path path = server_log_path();
    size_t length = 0;
    char *data = itest_read_file(path.s, &length);
    char *tail;

    ck_assert_msg(data != NULL, "the server log %s is missing", path.s);
    if ((size_t)offset > length)
        offset = 0; /* rotated */
    tail = strdup(data + offset);
    free(data);
    ck_assert_msg(tail != NULL, "out of memory");
    return tail;
}
