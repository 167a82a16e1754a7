/* faults: helpers for the fault-injection tests; see faults.h. */
#include "faults.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TAIL_BYTES 512 /* more than one log line */
#define NO_TXN SIZE_MAX   /* no transaction index */

/* ---- randomness ------------------------------------------------------------------------------ */

uint64_t faults_seed(const char *what)
{
    const char *text = getenv("WN_FAULT_SEED");
    struct timespec ts;
    uint64_t seed;
    char *end;

    if (text != NULL && text[0] != '\0') {
        seed = strtoull(text, &end, 10);
        ck_assert_msg(*end == '\0', "WN_FAULT_SEED is not a number: %s", text);
    } else {
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
        seed %= 1000000000u;
    }
    fprintf(stderr, "%s: seed %" PRIu64 " (WN_FAULT_SEED=%" PRIu64 " repeats it)\n", what, seed,
            seed);
    return seed;
}

faults_rng faults_rng_new(uint64_t seed)
{
    return (faults_rng){.state = seed};
}

/* splitmix64: small, fast, and every seed gives a good sequence. */
uint64_t faults_rng_next(faults_rng *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15u);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

long faults_rng_range(faults_rng *rng, long low, long high)
{
    uint64_t span = (uint64_t)(high - low) + 1;

    return low + (long)(faults_rng_next(rng) % span);
}

/* ---- processes ------------------------------------------------------------------------------- */

static long mix_rows(const faults_mix *mix, faults_rng *rng)
{
    if (mix->big_every > 0 && faults_rng_range(rng, 0, mix->big_every - 1) == 0)
        return mix->big_rows;
    return faults_rng_range(rng, mix->min_rows, mix->max_rows);
}

static void run_writer(const itest_ctx *ctx, const char *table, const char *sequence,
                       uint64_t seed, const faults_mix *mix)
{
    faults_rng rng = faults_rng_new(seed);
    char sql[512];
    PGconn *conn;

    itest_writer_child_setup();
    conn = itest_connect(ctx->db, NULL);
    for (int n = 0; mix->transactions == 0 || n < mix->transactions; n++) {
        PGresult *res;

        snprintf(sql, sizeof sql, "INSERT INTO %s SELECT nextval('%s') FROM generate_series(1, %ld)",
                 table, sequence, mix_rows(mix, &rng));
        res = PQexec(conn, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            fprintf(stderr, "faults writer: %s: %s", sql, PQerrorMessage(conn));
            _exit(1);
        }
        PQclear(res);
        itest_writer_stop_if_asked();
        itest_sleep_ms(mix->pause_ms);
        itest_writer_stop_if_asked();
    }
    PQfinish(conn);
    _exit(0);
}

pid_t faults_writer_start(const itest_ctx *ctx, const char *table, const char *sequence,
                          uint64_t seed, const faults_mix *mix)
{
    pid_t pid;

    ck_assert_msg(mix->min_rows > 0 && mix->max_rows >= mix->min_rows && mix->big_every >= 0 &&
                      (mix->big_every == 0 || mix->big_rows > 0) && mix->pause_ms >= 0 &&
                      mix->transactions >= 0,
                  "bad writer mix");
    pid = itest_fork();
    if (pid == 0)
        run_writer(ctx, table, sequence, seed, mix);
    return pid;
}

bool faults_writer_done(pid_t pid)
{
    int status;
    pid_t got = waitpid(pid, &status, WNOHANG);

    ck_assert_msg(got >= 0, "waitpid: %s", strerror(errno));
    if (got == 0)
        return false;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the writer failed (status %d)",
                  status);
    return true;
}

void faults_write_all(const itest_ctx *ctx, const char *table, const char *sequence,
                      uint64_t seed, const faults_mix *mix)
{
    itest_deadline deadline = itest_deadline_in(ITEST_RUN_S * 1000);
    pid_t writer;

    ck_assert_msg(mix->transactions > 0, "a writer run to its end needs a number of transactions");
    writer = faults_writer_start(ctx, table, sequence, seed, mix);
    while (!faults_writer_done(writer)) {
        if (itest_expired(&deadline)) {
            kill(writer, SIGKILL);
            waitpid(writer, NULL, 0);
            ck_abort_msg("the writer did not commit its %d transactions within %d s",
                         mix->transactions, ITEST_RUN_S);
        }
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

int faults_host_run_rusage(itest_ctx *ctx, itest_host *host, const char *const *args,
                           int timeout_s, long *maxrss_kb)
{
    itest_deadline deadline = itest_deadline_in(timeout_s * 1000);
    struct rusage usage;
    int status;

    itest_host_start(ctx, host, args);
    for (;;) {
        pid_t got = wait4(host->pid, &status, WNOHANG, &usage);

        ck_assert_msg(got >= 0, "wait4: %s", strerror(errno));
        if (got == host->pid)
            break;
        if (itest_expired(&deadline)) {
            kill(host->pid, SIGKILL);
            waitpid(host->pid, NULL, 0);
            host->pid = 0;
            ck_abort_msg("walnotify did not exit within %d s (killed)", timeout_s);
        }
        itest_sleep_ms(ITEST_POLL_MS);
    }
    host->pid = 0;
    host->status = itest_exit_status(status);
    *maxrss_kb = usage.ru_maxrss;
    if (getenv("WN_HOST_WRAPPER") != NULL) {
        fprintf(stderr, "faults: the host ran under WN_HOST_WRAPPER: its peak RSS (%ld kB, the "
                        "wrapper's) is not measured\n",
                *maxrss_kb);
        *maxrss_kb = 0;
    }
    return host->status;
}

void faults_host_kill(itest_host *host)
{
    int status;

    if (host->pid == 0)
        return;
    kill(host->pid, SIGKILL);
    ck_assert_msg(waitpid(host->pid, &status, 0) == host->pid, "waitpid: %s", strerror(errno));
    host->status = itest_exit_status(status);
    host->pid = 0;
}

void faults_wait_slot_released(PGconn *conn, const char *slot)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    while (itest_query_int(conn,
                           "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s' AND "
                           "active",
                           slot) > 0) {
        ck_assert_msg(!itest_expired(&deadline), "slot %s stays active after %d s", slot,
                      ITEST_WAIT_S);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

void faults_wait_file(const char *path, int timeout_s)
{
    itest_deadline deadline = itest_deadline_in(timeout_s * 1000);

    while (access(path, F_OK) != 0) {
        ck_assert_msg(!itest_expired(&deadline), "%s did not appear within %d s", path,
                      timeout_s);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

long faults_file_size(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        ck_assert_msg(errno == ENOENT, "cannot stat %s: %s", path, strerror(errno));
        return 0;
    }
    return (long)st.st_size;
}

long faults_log_last_seq(const char *path)
{
    char tail[TAIL_BYTES + 1], lsn[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    off_t size;
    ssize_t got;
    char *end, *start;
    long seq = -1;

    if (fd < 0) {
        ck_assert_msg(errno == ENOENT, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size = lseek(fd, 0, SEEK_END);
    got = size < 0 ? -1 : pread(fd, tail, TAIL_BYTES, size > TAIL_BYTES ? size - TAIL_BYTES : 0);
    close(fd);
    ck_assert_msg(got >= 0, "cannot read %s: %s", path, strerror(errno));
    tail[got] = '\0';
    /* The last line may be half written: the last whole one ends at the last newline. */
    end = strrchr(tail, '\n');
    if (end == NULL)
        return -1;
    *end = '\0';
    start = strrchr(tail, '\n');
    start = start != NULL ? start + 1 : tail;
    if (start == tail && size > TAIL_BYTES)
        return -1; /* the line's beginning lies before what was read */
    if (sscanf(start, "%31s %ld", lsn, &seq) != 2)
        return -1;
    return seq;
}

/* ---- history --------------------------------------------------------------------------------- */

void faults_history_init(faults_history *history, const char *log_path)
{
    memset(history, 0, sizeof *history);
    history->log_path = log_path;
}

void faults_history_free(faults_history *history)
{
    free(history->sample);
    free(history->run);
    memset(history, 0, sizeof *history);
}

static void add_sample(faults_history *history, wn_lsn confirmed, long log_size)
{
    faults_sample *grown;

    if ((history->nsamples & (history->nsamples - 1)) == 0) {
        grown = realloc(history->sample, (history->nsamples * 2 + 1) * sizeof *grown);
        ck_assert_msg(grown != NULL, "out of memory");
        history->sample = grown;
    }
    history->sample[history->nsamples++] = (faults_sample){confirmed, log_size};
}

void faults_sample_slot(faults_history *history, PGconn *conn, const char *slot)
{
    wn_lsn confirmed = itest_slot_confirmed(conn, slot);

    add_sample(history, confirmed, faults_file_size(history->log_path));
}

void faults_run_begin(faults_history *history, PGconn *conn, const char *slot)
{
    faults_run *grown = realloc(history->run, (history->nruns + 1) * sizeof *grown);
    wn_lsn start = itest_slot_confirmed(conn, slot);

    ck_assert_msg(grown != NULL, "out of memory");
    history->run = grown;
    history->run[history->nruns++] = (faults_run){.start = start, .log_end = -1};
    /* Nothing runs now: the log holds all that was finished before this position. */
    add_sample(history, start, faults_file_size(history->log_path));
}

void faults_run_end(faults_history *history, bool whole)
{
    faults_run *run;

    ck_assert_msg(history->nruns > 0 && history->run[history->nruns - 1].log_end < 0,
                  "faults_run_end without faults_run_begin");
    run = &history->run[history->nruns - 1];
    run->log_end = faults_file_size(history->log_path);
    run->whole = whole;
}

/* ---- the check ------------------------------------------------------------------------------- */

typedef struct log_line {
    wn_lsn lsn;
    long seq;
    long long id;
    long end;          /* byte offset just past the line */
    size_t txn;        /* index in the sorted transactions */
} log_line;

typedef struct txn_info {
    wn_lsn lsn;
    long size;         /* rows: the highest seq seen, plus one */
    long complete_at;  /* byte offset where it was first delivered whole; LONG_MAX: never */
    long delivered;    /* rows delivered so far, walking the log in order */
} txn_info;

typedef struct parsed_log {
    log_line *line;
    size_t nlines;
    txn_info *txn;
    size_t ntxns;
} parsed_log;

static void parse_line(const char *path, size_t number, const char *text, log_line *out)
{
    char lsn[32], table[128], op[16], id[64], *end;

    ck_assert_msg(sscanf(text, "%31s %ld %127s %15s %63s", lsn, &out->seq, table, op, id) == 5 &&
                      wn_lsn_parse(lsn, &out->lsn) && out->seq >= 0,
                  "%s line %zu is malformed: %.200s", path, number, text);
    out->id = strtoll(id, &end, 10);
    ck_assert_msg(*end == '\0' && strcmp(op, "insert") == 0,
                  "%s line %zu is not an insert with a numeric id: %.200s", path, number, text);
}

static int compare_lsn(const void *a, const void *b)
{
    wn_lsn x = *(const wn_lsn *)a, y = *(const wn_lsn *)b;

    return x < y ? -1 : x > y;
}

static int compare_id(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return x < y ? -1 : x > y;
}

static size_t find_txn(const parsed_log *log, wn_lsn lsn)
{
    size_t low = 0, high = log->ntxns;

    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (log->txn[mid].lsn < lsn)
            low = mid + 1;
        else
            high = mid;
    }
    return low; /* the first transaction at or after lsn */
}

static void index_transactions(parsed_log *log)
{
    wn_lsn *lsns = calloc(log->nlines + 1, sizeof *lsns);
    size_t n = 0;

    ck_assert_msg(lsns != NULL, "out of memory");
    for (size_t i = 0; i < log->nlines; i++)
        lsns[i] = log->line[i].lsn;
    qsort(lsns, log->nlines, sizeof *lsns, compare_lsn);
    log->txn = calloc(log->nlines + 1, sizeof *log->txn);
    ck_assert_msg(log->txn != NULL, "out of memory");
    for (size_t i = 0; i < log->nlines; i++)
        if (i == 0 || lsns[i] != lsns[i - 1])
            log->txn[n++] = (txn_info){.lsn = lsns[i], .complete_at = LONG_MAX};
    log->ntxns = n;
    free(lsns);
    for (size_t i = 0; i < log->nlines; i++) {
        log_line *l = &log->line[i];
        l->txn = find_txn(log, l->lsn);
        if (l->seq + 1 > log->txn[l->txn].size)
            log->txn[l->txn].size = l->seq + 1;
    }
    for (size_t i = 0; i < log->nlines; i++) {
        txn_info *t = &log->txn[log->line[i].txn];
        if (log->line[i].seq == t->size - 1 && t->complete_at == LONG_MAX)
            t->complete_at = log->line[i].end;
    }
}

static parsed_log parse_log(const char *path)
{
    size_t length = 0, start = 0, capacity = 0;
    char *data = itest_read_file(path, &length);
    parsed_log log = {0};

    for (size_t i = 0; data != NULL && i < length; i++) {
        if (data[i] != '\n')
            continue;
        data[i] = '\0';
        if (log.nlines == capacity) {
            capacity = capacity ? capacity * 2 : 4096;
            log.line = realloc(log.line, capacity * sizeof *log.line);
            ck_assert_msg(log.line != NULL, "out of memory");
        }
        parse_line(path, log.nlines + 1, data + start, &log.line[log.nlines]);
        log.line[log.nlines++].end = (long)i + 1;
        start = i + 1;
    }
    ck_assert_msg(start == length, "%s ends with a partial line", path);
    free(data);
    index_transactions(&log);
    return log;
}

static void parsed_log_free(parsed_log *log)
{
    free(log->line);
    free(log->txn);
    memset(log, 0, sizeof *log);
}

static const char *lsn_text(wn_lsn lsn, char *buffer)
{
    return wn_lsn_format(lsn, buffer);
}

/*
 * One run's lines [from, to): whole transactions (the last may be cut when the run was killed),
 * seq 0, 1, ... in each, and exactly the transactions from the first at or after the run's start
 * position, none skipped, none before it. *cut is the transaction an earlier run cut and no run
 * has delivered whole since (NO_TXN: none); summary->cut counts those delivered whole again.
 */
static void check_run(const parsed_log *log, const faults_run *run, size_t number, size_t from,
                      size_t to, size_t *cut, faults_summary *summary)
{
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX], c[WN_LSN_TEXT_MAX];
    size_t expect = find_txn(log, run->start);
    size_t i = from;

    while (i < to) {
        const log_line *first = &log->line[i];
        const txn_info *t = &log->txn[first->txn];
        long n = 0;

        ck_assert_msg(first->lsn >= run->start,
                      "run %zu delivered transaction %s, before its start position %s", number,
                      lsn_text(first->lsn, a), lsn_text(run->start, b));
        ck_assert_msg(first->txn == expect,
                      "run %zu delivered transaction %s where %s was due (start %s)", number,
                      lsn_text(first->lsn, a),
                      expect < log->ntxns ? lsn_text(log->txn[expect].lsn, b) : "nothing",
                      lsn_text(run->start, c));
        for (; i < to && log->line[i].lsn == first->lsn; i++, n++)
            ck_assert_msg(log->line[i].seq == n, "run %zu, transaction %s: seq %ld where %ld was due",
                          number, lsn_text(first->lsn, a), log->line[i].seq, n);
        ck_assert_msg(n == t->size || (i == to && !run->whole),
                      "run %zu cut transaction %s after %ld of its %ld rows", number,
                      lsn_text(first->lsn, a), n, t->size);
        if (n == t->size && first->txn == *cut) {
            summary->cut++;
            *cut = NO_TXN;
        }
        if (n < t->size)
            *cut = first->txn;
        expect++;
    }
}

static void check_runs(const faults_history *history, const parsed_log *log,
                       faults_summary *summary)
{
    size_t from = 0, cut = NO_TXN;

    for (size_t r = 0; r < history->nruns; r++) {
        const faults_run *run = &history->run[r];
        size_t to = from;

        ck_assert_msg(run->log_end >= 0, "run %zu never ended", r + 1);
        while (to < log->nlines && log->line[to].end <= run->log_end)
            to++;
        check_run(log, run, r + 1, from, to, &cut, summary);
        from = to;
    }
    ck_assert_msg(from == log->nlines, "%zu log lines were written after the last run",
                  log->nlines - from);
}

/* First deliveries come in commit order; returns how many lines were deliveries again. */
static size_t check_first_deliveries(parsed_log *log)
{
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX];
    wn_lsn last_lsn = 0;
    long last_seq = -1;
    size_t again = 0;

    for (size_t i = 0; i < log->nlines; i++) {
        const log_line *l = &log->line[i];
        txn_info *t = &log->txn[l->txn];

        if (l->seq < t->delivered) {
            again++;
            continue;
        }
        ck_assert_msg(l->lsn > last_lsn || (l->lsn == last_lsn && l->seq > last_seq),
                      "line %zu: first delivery of %s seq %ld after %s seq %ld", i + 1,
                      lsn_text(l->lsn, a), l->seq, lsn_text(last_lsn, b), last_seq);
        t->delivered = l->seq + 1;
        last_lsn = l->lsn;
        last_seq = l->seq;
    }
    return again;
}

/* Every confirmed_flush_lsn read covers only transactions already finished in the log. */
static void check_samples(const faults_history *history, const parsed_log *log)
{
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX];
    long *most = calloc(log->ntxns + 1, sizeof *most);

    ck_assert_msg(most != NULL, "out of memory");
    for (size_t i = 0; i < log->ntxns; i++)
        most[i] = i == 0 || log->txn[i].complete_at > most[i - 1] ? log->txn[i].complete_at
                                                                  : most[i - 1];
    for (size_t s = 0; s < history->nsamples; s++) {
        const faults_sample *sample = &history->sample[s];
        size_t below = find_txn(log, sample->confirmed);

        if (below == 0 || most[below - 1] <= sample->log_size)
            continue;
        for (size_t i = 0; i < below; i++)
            ck_assert_msg(log->txn[i].complete_at <= sample->log_size,
                          "confirmed_flush_lsn was %s while transaction %s was not finished "
                          "(sample %zu: the log had %ld bytes)",
                          lsn_text(sample->confirmed, a), lsn_text(log->txn[i].lsn, b), s + 1,
                          sample->log_size);
    }
    free(most);
}

static long long *delivered_ids(const parsed_log *log, size_t *count)
{
    long long *ids = calloc(log->nlines + 1, sizeof *ids);
    size_t n = 0;

    ck_assert_msg(ids != NULL, "out of memory");
    for (size_t i = 0; i < log->nlines; i++)
        ids[i] = log->line[i].id;
    qsort(ids, log->nlines, sizeof *ids, compare_id);
    for (size_t i = 0; i < log->nlines; i++)
        if (i == 0 || ids[i] != ids[n - 1])
            ids[n++] = ids[i];
    *count = n;
    return ids;
}

/* The delivered ids are exactly the committed ones. */
static void check_rows(const parsed_log *log, PGconn *conn, const char *ids_sql)
{
    PGresult *res = PQexec(conn, ids_sql);
    size_t ndelivered, rows;
    long long *ids = delivered_ids(log, &ndelivered);

    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "SQL failed: %s: %s", ids_sql,
                  PQerrorMessage(conn));
    rows = (size_t)PQntuples(res);
    for (size_t r = 0, d = 0; r < rows || d < ndelivered;) {
        long long want = r < rows ? strtoll(PQgetvalue(res, (int)r, 0), NULL, 10) : LLONG_MAX;
        long long got = d < ndelivered ? ids[d] : LLONG_MAX;

        ck_assert_msg(want >= got, "committed row %lld was never delivered (%zu rows, %zu ids "
                                   "delivered)",
                      want, rows, ndelivered);
        ck_assert_msg(want <= got, "id %lld was delivered but is not in the table", got);
        r++;
        d++;
    }
    PQclear(res);
    free(ids);
}

faults_summary faults_check_history(const faults_history *history, PGconn *conn,
                                    const char *ids_sql)
{
    parsed_log log = parse_log(history->log_path);
    faults_summary summary = {.lines = log.nlines, .transactions = log.ntxns};

    check_runs(history, &log, &summary);
    summary.again = check_first_deliveries(&log);
    check_samples(history, &log);
    check_rows(&log, conn, ids_sql);
    for (size_t i = 0; i < log.ntxns; i++)
        summary.largest = log.txn[i].size > summary.largest ? log.txn[i].size : summary.largest;
    fprintf(stderr, "faults: %zu lines, %zu transactions (the largest %ld rows), %zu lines "
                    "delivered again, %zu transactions cut by a kill and delivered again, %zu "
                    "runs, %zu slot samples\n",
            summary.lines, summary.transactions, summary.largest, summary.again, summary.cut,
            history->nruns, history->nsamples);
    parsed_log_free(&log);
    return summary;
}
