/* execsink: helpers for the exec plugin's end-to-end tests (see execsink.h). */
#include "execsink.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

itest_path execsink_config(itest_ctx *ctx, const char *name, int status_interval_ms,
                           int ack_timeout_ms, const char *argv)
{
    return execsink_config_with(ctx, name, status_interval_ms, ack_timeout_ms, argv, "");
}

itest_path execsink_config_with(itest_ctx *ctx, const char *name, int status_interval_ms,
                                int ack_timeout_ms, const char *argv, const char *more)
{
    return itest_config(ctx, name, "\"public.t\"", status_interval_ms,
                        "{ name = \"sink\"; path = \"%s\"; settings = { command = [ %s ]; "
                        "ack_timeout_ms = %d; %s }; }",
                        itest_root_file("build/plugins/exec.so").s, argv, ack_timeout_ms, more);
}

static void push_id(long long **ids, size_t *count, size_t *capacity, long long id)
{
    if (*count == *capacity) {
        *capacity = *capacity ? *capacity * 2 : 1024;
        *ids = realloc(*ids, *capacity * sizeof **ids);
        ck_assert_msg(*ids != NULL, "out of memory");
    }
    (*ids)[(*count)++] = id;
}

long long *execsink_sqlite_ids(const char *database, size_t *count)
{
    static const char script[] =
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1])\n"
        "for (v,) in db.execute(\"SELECT json_extract(data, '$.values.id') FROM events \"\n"
        "                       \"ORDER BY lsn_num, seq\"):\n"
        "    print(v)\n";
    char command[PATH_MAX + 512], line[64];
    long long *ids = NULL;
    size_t capacity = 0;
    FILE *out;
    int rc;

    ck_assert_msg(strchr(database, '\'') == NULL, "a quote in %s", database);
    snprintf(command, sizeof command, "python3 -c \"$WN_EXECSINK_SCRIPT\" '%s'", database);
    ck_assert_msg(setenv("WN_EXECSINK_SCRIPT", script, 1) == 0, "setenv failed");
    out = popen(command, "r");
    ck_assert_msg(out != NULL, "cannot run python3 to read %s", database);
    *count = 0;
    while (fgets(line, sizeof line, out) != NULL)
        push_id(&ids, count, &capacity, strtoll(line, NULL, 10));
    rc = pclose(out);
    ck_assert_msg(rc == 0, "reading %s with python3 failed (status %d)", database, rc);
    return ids;
}

void execsink_assert_ids(PGconn *conn, const long long *ids, size_t count, const char *what)
{
    execsink_assert_ids_of(conn, "SELECT id FROM t ORDER BY id", ids, count, what);
}

void execsink_assert_ids_of(PGconn *conn, const char *ids_sql, const long long *ids, size_t count,
                            const char *what)
{
    PGresult *res = PQexec(conn, ids_sql);
    size_t rows;

    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "SELECT failed: %s",
                  PQerrorMessage(conn));
    rows = (size_t)PQntuples(res);
    for (size_t i = 0; i < rows && i < count; i++) {
        long long want = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);

        ck_assert_msg(ids[i] == want, "%s: entry %zu is id %lld where the table has %lld", what,
                      i + 1, ids[i], want);
    }
    ck_assert_msg(count == rows, "%s holds %zu rows, the table %zu", what, count, rows);
    PQclear(res);
}

/* ---- slot samples ---------------------------------------------------------------------------- */

int execsink_sample_until_exit(itest_ctx *ctx, itest_host *host, const char *log_path,
                               int timeout_s, execsink_samples *samples)
{
    itest_deadline deadline = itest_deadline_in(timeout_s * 1000);
    size_t capacity = 0;

    for (;;) {
        bool running = itest_host_running(host);

        if (samples->count == capacity) {
            capacity = capacity ? capacity * 2 : 1024;
            samples->sample = realloc(samples->sample, capacity * sizeof *samples->sample);
            ck_assert_msg(samples->sample != NULL, "out of memory");
        }
        samples->sample[samples->count].confirmed = itest_slot_confirmed(ctx->conn, ctx->slot);
        samples->sample[samples->count++].log_size = faults_file_size(log_path);
        if (!running)
            return host->status;
        if (itest_expired(&deadline)) {
            faults_host_kill(host);
            ck_abort_msg("walnotify did not end within %d s", timeout_s);
        }
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

int execsink_run_to_now(itest_ctx *ctx, itest_host *host, const char *conf, const char *log_path,
                        int timeout_s, execsink_samples *samples)
{
    char *end = itest_lsn_text(itest_current_lsn(ctx->conn));

    itest_host_start(ctx, host, ITEST_ARGS("-c", conf, "--endpos", end));
    free(end);
    return execsink_sample_until_exit(ctx, host, log_path, timeout_s, samples);
}

void execsink_samples_free(execsink_samples *samples)
{
    free(samples->sample);
    memset(samples, 0, sizeof *samples);
}

/* ---- the faulty sink's log ------------------------------------------------------------------- */

typedef struct log_line {
    wn_lsn lsn;
    long seq;
    long long id;
    long end; /* offset just past the line */
    size_t txn;
} log_line;

typedef struct log_txn {
    wn_lsn lsn;
    long size;      /* events: the largest seq + 1 */
    long delivered; /* the highest seq first delivered so far, plus one */
    long complete;  /* offset past its first whole delivery's last line; LONG_MAX: none */
} log_txn;

typedef struct sink_log {
    log_line *line;
    size_t nlines;
    log_txn *txn; /* by lsn */
    size_t ntxns;
} sink_log;

static int compare_txn(const void *a, const void *b)
{
    wn_lsn x = ((const log_txn *)a)->lsn, y = ((const log_txn *)b)->lsn;

    return x < y ? -1 : x > y;
}

static size_t txn_index(const sink_log *log, wn_lsn lsn)
{
    size_t low = 0, high = log->ntxns;

    while (low < high) {
        size_t mid = (low + high) / 2;

        if (log->txn[mid].lsn < lsn)
            low = mid + 1;
        else
            high = mid;
    }
    return low; /* the first transaction at or after lsn */
}

static void parse_lines(sink_log *log, char *data, size_t length, const char *path)
{
    size_t capacity = 0, start = 0;

    for (size_t i = 0; i < length; i++) {
        char lsn[32], table[128], op[16], id[32];
        log_line *l;

        if (data[i] != '\n')
            continue;
        data[i] = '\0';
        if (log->nlines == capacity) {
            capacity = capacity ? capacity * 2 : 4096;
            log->line = realloc(log->line, capacity * sizeof *log->line);
            ck_assert_msg(log->line != NULL, "out of memory");
        }
        l = &log->line[log->nlines++];
        ck_assert_msg(
            sscanf(data + start, "%31s %ld %127s %15s %31s", lsn, &l->seq, table, op, id) == 5 &&
                wn_lsn_parse(lsn, &l->lsn),
            "%s:%zu: malformed line \"%s\"", path, log->nlines, data + start);
        l->id = strtoll(id, NULL, 10);
        l->end = (long)i + 1;
        start = i + 1;
    }
    ck_assert_msg(start == length, "%s ends with a partial line", path);
}

static void index_txns(sink_log *log)
{
    size_t n = 0;

    log->txn = calloc(log->nlines + 1, sizeof *log->txn);
    ck_assert_msg(log->txn != NULL, "out of memory");
    for (size_t i = 0; i < log->nlines; i++)
        log->txn[i].lsn = log->line[i].lsn;
    qsort(log->txn, log->nlines, sizeof *log->txn, compare_txn);
    for (size_t i = 0; i < log->nlines; i++)
        if (i == 0 || log->txn[i].lsn != log->txn[n - 1].lsn)
            log->txn[n++] = (log_txn){.lsn = log->txn[i].lsn, .complete = LONG_MAX};
    log->ntxns = n;
    for (size_t i = 0; i < log->nlines; i++) {
        log_line *l = &log->line[i];

        l->txn = txn_index(log, l->lsn);
        if (l->seq + 1 > log->txn[l->txn].size)
            log->txn[l->txn].size = l->seq + 1;
    }
    for (size_t i = 0; i < log->nlines; i++) {
        log_txn *t = &log->txn[log->line[i].txn];

        if (log->line[i].seq == t->size - 1 && t->complete == LONG_MAX)
            t->complete = log->line[i].end;
    }
}

/* First deliveries in commit order; returns the lines that were deliveries again. */
static size_t check_order(sink_log *log)
{
    wn_lsn last_lsn = 0;
    long last_seq = -1;
    size_t again = 0;
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX];

    for (size_t i = 0; i < log->nlines; i++) {
        log_line *l = &log->line[i];
        log_txn *t = &log->txn[l->txn];

        if (l->seq < t->delivered) {
            again++;
            continue;
        }
        ck_assert_msg(l->lsn > last_lsn || (l->lsn == last_lsn && l->seq > last_seq),
                      "line %zu: first delivery of %s seq %ld after %s seq %ld", i + 1,
                      wn_lsn_format(l->lsn, a), l->seq, wn_lsn_format(last_lsn, b), last_seq);
        t->delivered = l->seq + 1; /* seqs may skip: events that went to the dead letters */
        last_lsn = l->lsn;
        last_seq = l->seq;
    }
    return again;
}

static void check_samples(const sink_log *log, const execsink_samples *samples)
{
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX];

    for (size_t s = 0; s < samples->count; s++) {
        const faults_sample *sample = &samples->sample[s];
        size_t below = txn_index(log, sample->confirmed);

        for (size_t i = 0; i < below; i++)
            ck_assert_msg(log->txn[i].complete <= sample->log_size,
                          "confirmed_flush_lsn was %s while transaction %s was not acknowledged "
                          "by the sink (sample %zu, the log had %ld bytes)",
                          wn_lsn_format(sample->confirmed, a), wn_lsn_format(log->txn[i].lsn, b),
                          s + 1, sample->log_size);
    }
}

static int compare_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return x < y ? -1 : x > y;
}

size_t execsink_check_log(PGconn *conn, const char *log_path, const execsink_samples *samples)
{
    return execsink_check_log_of(conn, "SELECT id FROM t ORDER BY id", log_path, samples);
}

size_t execsink_check_log_of(PGconn *conn, const char *ids_sql, const char *log_path,
                             const execsink_samples *samples)
{
    size_t length = 0, again, n = 0;
    char *data = itest_read_file(log_path, &length);
    sink_log log = {0};
    long long *ids;

    ck_assert_msg(data != NULL, "the sink wrote no %s", log_path);
    parse_lines(&log, data, length, log_path);
    free(data);
    index_txns(&log);
    again = check_order(&log);
    check_samples(&log, samples);
    ids = calloc(log.nlines + 1, sizeof *ids);
    ck_assert_msg(ids != NULL, "out of memory");
    for (size_t i = 0; i < log.nlines; i++)
        ids[i] = log.line[i].id;
    qsort(ids, log.nlines, sizeof *ids, compare_ll);
    for (size_t i = 0; i < log.nlines; i++)
        if (i == 0 || ids[i] != ids[n - 1])
            ids[n++] = ids[i];
    execsink_assert_ids_of(conn, ids_sql, ids, n, log_path);
    fprintf(stderr,
            "execsink: %zu lines, %zu transactions, %zu lines delivered again, %zu slot "
            "samples\n",
            log.nlines, log.ntxns, again, samples->count);
    free(ids);
    free(log.line);
    free(log.txn);
    return again;
}
