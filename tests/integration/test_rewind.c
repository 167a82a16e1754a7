/*
 * Rewinds (ABI 1.1 walnotify_host.rewind) at random points of a workload that holds one
 * transaction of 2,000,000 rows between small ones, against the real server. The requester (the
 * rewinder fixture, seeded: the seed is printed, WN_FAULT_SEED repeats it) loses what it had not
 * flushed and asks for a rewind, from handle, commit or flush; a counting plugin is listed
 * beside it. Checked:
 *
 *   - nothing lost, first deliveries in commit order, every stream starting exactly at the
 *     position the last one published (the delivery invariant of faults.h over the requester's
 *     log, cut into one run per stream by watch.h);
 *   - the counting plugin's transactions: each in order, whole, first deliveries in commit order;
 *   - the slot never passed what the requester had made durable: sampled throughout, against
 *     the last position the requester's successful flushes recorded;
 *   - the host's memory stays bounded (the transaction is never held whole, also across a
 *     rewind);
 *   - every rewind streams again on the same connection: the walsender holding the slot is the
 *     same process throughout (sampled with the slot).
 *
 * A shorter case asks for one rewind early in a transaction of 200,000 rows, from handle: the
 * walsender ends the copy only after the rest of that transaction, which the host drops.
 *
 * Every plugin's transactions are checked from one line per commit (each in order, whole, first
 * deliveries in commit order, together every row of the table). With WN_REWIND_EVENT_LOG=1 the
 * requester also logs every event it handles, and the delivery invariant of faults.h is checked
 * over that log, cut into one run per stream by watch.h (every stream starting exactly where
 * the last one published, nothing lost, slot samples against the log): millions of lines to
 * check, so `make check-faults` does it and `make check` does not.
 *
 * WN_REWIND_MAX (default 2) sets the rewinds per round, WN_REWIND_ROUNDS (default 1) the
 * rounds, each with the next seed: `make check-faults` runs longer loops.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "faults.h"
#include "itest.h"
#include "watch.h"

#define BIG_ROWS 2000000L
#define MID_ROWS 200000L /* the transaction of the shorter case */
#define SMALL_TXNS 10 /* before the big one, and as many after it */
#define SMALL_ROWS_MAX 40
#define EARLY_SPAN 150 /* the first rewind lands among the first small transactions */
#define RUN_S 600      /* the bound of one host run (grows under valgrind below) */
#define SAMPLES_MAX 200000

#if defined(__SANITIZE_ADDRESS__)
#define PEAK_RSS_LIMIT_KB (512L * 1024) /* AddressSanitizer's shadow memory and quarantine */
#else
#define PEAK_RSS_LIMIT_KB (48L * 1024) /* generous: ~9 MiB expected; the transaction is GBs */
#endif

/* ---- what the requester made durable, against the slot ----------------------------------------
 */

typedef struct durable_sample {
    wn_lsn confirmed;    /* the slot's confirmed_flush_lsn, read first */
    wn_lsn durable;      /* then the highest position the requester recorded as durable */
    long long walsender; /* the PID of the walsender holding the slot; 0: none */
} durable_sample;

typedef struct durable_watch {
    pthread_t thread;
    pthread_mutex_t lock;
    bool stopping;
    PGconn *conn;
    const char *slot;
    const char *path; /* the rewinder's `durable` file */
    durable_sample *sample;
    size_t nsamples;
} durable_watch;

static wn_lsn highest_durable(const char *path)
{
    size_t length = 0;
    char *data = itest_read_file(path, &length);
    wn_lsn highest = 0, lsn;
    char *line = data, *save = NULL;

    for (line = data ? strtok_r(data, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save))
        if (wn_lsn_parse(line, &lsn) && lsn > highest)
            highest = lsn;
    free(data);
    return highest;
}

static void *durable_main(void *arg)
{
    durable_watch *w = arg;

    for (;;) {
        durable_sample s;

        pthread_mutex_lock(&w->lock);
        if (w->stopping || w->nsamples == SAMPLES_MAX) {
            pthread_mutex_unlock(&w->lock);
            return NULL;
        }
        pthread_mutex_unlock(&w->lock);
        itest_helper_busy(); /* a fork waits: see itest_fork.h */
        s.confirmed = itest_slot_confirmed(w->conn, w->slot);
        s.durable = highest_durable(w->path);
        s.walsender = itest_query_int(w->conn,
                                      "SELECT coalesce((SELECT active_pid FROM "
                                      "pg_replication_slots WHERE slot_name = '%s'), 0)",
                                      w->slot);
        itest_helper_idle();
        pthread_mutex_lock(&w->lock);
        w->sample[w->nsamples++] = s;
        pthread_mutex_unlock(&w->lock);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

static void durable_start(durable_watch *w, const itest_ctx *ctx, const char *path)
{
    memset(w, 0, sizeof *w);
    w->conn = itest_connect(ctx->db, NULL);
    w->slot = ctx->slot;
    w->path = path;
    w->sample = calloc(SAMPLES_MAX, sizeof *w->sample);
    ck_assert_msg(w->sample != NULL, "out of memory");
    ck_assert_int_eq(pthread_mutex_init(&w->lock, NULL), 0);
    ck_assert_int_eq(pthread_create(&w->thread, NULL, durable_main, w), 0);
}

static void durable_stop(durable_watch *w)
{
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    PQfinish(w->conn);
    pthread_mutex_destroy(&w->lock);
}

/* Every transaction below a confirmed position was durable in the requester when it was read:
 * `lsns` are the commit LSNs of every transaction, ascending. */
static void durable_check(const durable_watch *w, const wn_lsn *lsns, size_t nlsns)
{
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX], c[WN_LSN_TEXT_MAX];
    size_t checked = 0;

    for (size_t s = 0; s < w->nsamples; s++) {
        const durable_sample *sample = &w->sample[s];
        wn_lsn below = 0;

        for (size_t i = 0; i < nlsns && lsns[i] < sample->confirmed; i++)
            below = lsns[i];
        if (below == 0)
            continue;
        checked++;
        ck_assert_msg(below <= sample->durable,
                      "sample %zu: confirmed_flush_lsn %s passes transaction %s, but the "
                      "requester had made durable only up to %s",
                      s + 1, wn_lsn_format(sample->confirmed, a), wn_lsn_format(below, b),
                      wn_lsn_format(sample->durable, c));
    }
    fprintf(stderr,
            "rewind: %zu slot samples against the requester's durable position, %zu "
            "past a transaction\n",
            w->nsamples, checked);
}

/* One walsender held the slot whenever a sample found it held: every rewind streamed again on
 * the same connection. */
static void walsender_check(const durable_watch *w)
{
    long long first = 0;
    size_t held = 0;

    for (size_t s = 0; s < w->nsamples; s++) {
        long long pid = w->sample[s].walsender;

        if (pid == 0)
            continue;
        held++;
        if (first == 0)
            first = pid;
        ck_assert_msg(pid == first, "sample %zu: walsender PID %lld, the first one was %lld",
                      s + 1, pid, first);
    }
    ck_assert_msg(held > 0, "no sample found the slot held");
    fprintf(stderr, "rewind: walsender PID %lld in all %zu samples that found the slot held\n",
            first, held);
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* ---- the workload -------------------------------------------------------------------------- */

static long insert_small(itest_ctx *ctx, faults_rng *rng, long next)
{
    for (int i = 0; i < SMALL_TXNS; i++) {
        long rows = faults_rng_range(rng, 1, SMALL_ROWS_MAX);

        itest_exec(ctx->conn, "INSERT INTO t SELECT generate_series(%ld, %ld)", next,
                   next + rows - 1);
        next += rows;
    }
    return next;
}

/* ---- the counting plugin's log ------------------------------------------------------------- */

/* "LSN EVENTS FIRST_ID LAST_ID ORDER" per commit: each transaction in order and whole, first
 * deliveries in commit order (a line whose LSN is not above every earlier one must be a
 * delivery again), and the big one among them. Returns the number of lines. */
static size_t check_counts(const char *path, long big_rows)
{
    itest_lines lines = itest_read_lines(path);
    wn_lsn highest = 0;
    bool saw_big = false;
    size_t n = lines.count;

    for (size_t i = 0; i < lines.count; i++) {
        char lsn_text[32], order[64];
        unsigned long long events;
        long long first_id, last_id;
        bool again = false;
        wn_lsn lsn;

        ck_assert_msg(sscanf(lines.line[i], "%31s %llu %lld %lld %63s", lsn_text, &events,
                             &first_id, &last_id, order) == 5 &&
                          wn_lsn_parse(lsn_text, &lsn),
                      "%s line %zu is malformed: %s", path, i + 1, lines.line[i]);
        ck_assert_msg(strcmp(order, "ok") == 0 && last_id - first_id + 1 == (long long)events,
                      "%s line %zu: not in order, or not whole: %s", path, i + 1, lines.line[i]);
        for (size_t j = 0; j < i && !again; j++)
            again = strcmp(lines.line[j], lines.line[i]) == 0;
        ck_assert_msg(again || lsn > highest,
                      "%s line %zu: the first delivery of a transaction after a later one: %s",
                      path, i + 1, lines.line[i]);
        highest = lsn > highest ? lsn : highest;
        saw_big = saw_big || events == (unsigned long long)big_rows;
    }
    ck_assert_msg(saw_big, "%s: the %ld-row transaction never committed whole", path, big_rows);
    itest_lines_free(&lines);
    return n;
}

/* ---- one round ----------------------------------------------------------------------------- */

static int env_int(const char *name, int fallback)
{
    const char *text = getenv(name);

    return text != NULL && text[0] != '\0' ? atoi(text) : fallback;
}

/* The host, watched by `w` from its start, run to its end; returns its exit code. */
/* The host run to its end; watched into history unless it is NULL. Returns its exit code. */
static int run_host(itest_ctx *ctx, itest_host *host, faults_history *history,
                    const char *const *args, long *maxrss_kb)
{
    itest_deadline deadline = itest_deadline_in(RUN_S * 1000);
    struct rusage usage;
    watch *w = NULL;
    int status;

    if (history != NULL)
        faults_run_begin(history, ctx->conn, ctx->slot);
    itest_host_start(ctx, host, args);
    if (history != NULL)
        w = watch_start(ctx, history, host);
    for (;;) {
        pid_t got = wait4(host->pid, &status, WNOHANG, &usage);

        ck_assert_msg(got >= 0, "wait4 failed");
        if (got == host->pid)
            break;
        if (itest_expired(&deadline)) {
            kill(host->pid, SIGKILL);
            waitpid(host->pid, NULL, 0);
            host->pid = 0;
            ck_abort_msg("walnotify did not exit within %d s (killed)", RUN_S);
        }
        itest_sleep_ms(ITEST_POLL_MS);
    }
    host->pid = 0;
    host->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    *maxrss_kb = getenv("WN_HOST_WRAPPER") != NULL ? 0 : usage.ru_maxrss;
    if (history == NULL)
        return host->status;
    fprintf(stderr, "rewind: %d streams after the first (rewinds and reconnections)\n",
            watch_reconnections(w));
    watch_stop(w);
    faults_run_end(history, host->status == 0);
    return host->status;
}

static itest_path write_config(itest_ctx *ctx, uint64_t seed, int rewinds, bool event_log,
                               long early, long span)
{
    itest_path path = itest_file(ctx, "rewind.cfg");

    /* Spilling the transaction to disk would double the server's decoding, on every rewind. */
    itest_write_file(path.s,
                     "log_level = \"info\";\n"
                     "source:\n{\n"
                     "  conninfo = \"%s options='-c logical_decoding_work_mem=1GB'\";\n"
                     "  tables = [ \"public.t\" ];\n"
                     "  slot = \"%s\";\n"
                     "  publication = \"%s\";\n"
                     "  status_interval_ms = 200;\n"
                     "  reconnect_initial_ms = 50;\n"
                     "  reconnect_max_ms = 500;\n"
                     "};\n"
                     "plugins =\n(\n"
                     "  { name = \"requester\"; path = \"%s\"; retry_initial_ms = 50; "
                     "retry_max_ms = 400; settings = { seed = %llu; early = %ld; span = %ld; "
                     "max_rewinds = %d; log = \"%s\"; summary = \"summary.log\"; "
                     "durable = \"durable.log\"; }; },\n"
                     "  { name = \"count\"; path = \"%s\"; settings = { log = \"count.log\"; }; }\n"
                     ");\n",
                     ctx->conninfo, ctx->slot, ctx->pub,
                     itest_root_file("build/tests/fixtures/rewinder.so").s,
                     (unsigned long long)seed, early, span, rewinds,
                     event_log ? "requester.log" : "-",
                     itest_root_file("build/tests/fixtures/fault_count.so").s);
    return path;
}

/* The distinct commit LSNs of the counting plugin's log (every transaction, once committed
 * whole), ascending; to free. Reading the requester's log of millions of lines again would
 * cost more than the run. */
static wn_lsn *transactions_of(const char *count_log, size_t *count)
{
    itest_lines lines = itest_read_lines(count_log);
    wn_lsn *lsns = calloc(lines.count + 1, sizeof *lsns);
    size_t n = 0;

    ck_assert_msg(lsns != NULL, "out of memory");
    for (size_t i = 0; i < lines.count; i++) {
        char text[32];
        wn_lsn lsn;
        size_t at = 0;

        ck_assert_msg(sscanf(lines.line[i], "%31s", text) == 1 && wn_lsn_parse(text, &lsn),
                      "%s line %zu is malformed", count_log, i + 1);
        while (at < n && lsns[at] < lsn)
            at++;
        if (at < n && lsns[at] == lsn)
            continue;
        memmove(lsns + at + 1, lsns + at, (n - at) * sizeof *lsns);
        lsns[at] = lsn;
        n++;
    }
    itest_lines_free(&lines);
    *count = n;
    return lsns;
}

/* The transactions of a commit log, each taken once, hold every row of the table: their ids,
 * in commit order, run 1, 2, ... up to the table's count. */
static void check_rows_covered(const char *path, PGconn *conn)
{
    itest_lines lines = itest_read_lines(path);
    long long rows = itest_query_int(conn, "SELECT count(*) FROM t");
    long long next = 1;
    wn_lsn highest = 0;

    for (size_t i = 0; i < lines.count; i++) {
        char text[32];
        unsigned long long events;
        long long first_id, last_id;
        wn_lsn lsn;

        ck_assert_msg(
            sscanf(lines.line[i], "%31s %llu %lld %lld", text, &events, &first_id, &last_id) == 4 &&
                wn_lsn_parse(text, &lsn),
            "%s line %zu is malformed", path, i + 1);
        if (lsn <= highest)
            continue; /* delivered again */
        highest = lsn;
        ck_assert_msg(first_id == next, "%s line %zu: ids from %lld, expected %lld: a row lost",
                      path, i + 1, first_id, next);
        next = last_id + 1;
    }
    ck_assert_msg(next == rows + 1, "%s: ids up to %lld, the table holds %lld rows", path, next - 1,
                  rows);
    itest_lines_free(&lines);
}

static void one_round(uint64_t seed, int rewinds)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    faults_history history;
    bool event_log = env_int("WN_REWIND_EVENT_LOG", 0) != 0;
    durable_watch durable;
    faults_rng rng = faults_rng_new(seed);
    wn_lsn end, *lsns;
    size_t nlsns;
    long next = 1, maxrss_kb = 0;
    char *end_text, *err;
    struct timespec started;

    itest_begin(&ctx, "rewind");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint)");
    conf = write_config(&ctx, seed, rewinds, event_log, EARLY_SPAN, BIG_ROWS + 2 * SMALL_TXNS * 20);
    itest_create_slot(&ctx, conf.s);
    clock_gettime(CLOCK_MONOTONIC, &started);
    next = insert_small(&ctx, &rng, next);
    itest_exec(ctx.conn, "INSERT INTO t SELECT generate_series(%ld, %ld)", next,
               next + BIG_ROWS - 1);
    next = insert_small(&ctx, &rng, next + BIG_ROWS);
    end = itest_current_lsn(ctx.conn);
    end_text = itest_lsn_text(end);
    fprintf(stderr, "rewind: workload committed in %.1f s\n", seconds_since(&started));
    clock_gettime(CLOCK_MONOTONIC, &started);

    faults_history_init(&history, itest_file(&ctx, "requester.log").s);
    durable_start(&durable, &ctx, itest_file(&ctx, "durable.log").s);
    run_host(&ctx, &host, event_log ? &history : NULL,
             ITEST_ARGS("-c", conf.s, "--endpos", end_text), &maxrss_kb);
    durable_stop(&durable);
    free(end_text);
    itest_assert_exit(&host, 0);

    err = itest_host_stderr(&host);
    ck_assert_msg(rewinds == 0 || strstr(err, "asked for a rewind from") != NULL,
                  "the requester never asked for a rewind");
    free(err);
    fprintf(stderr, "rewind: delivered in %.1f s, host peak RSS %ld kB\n", seconds_since(&started),
            maxrss_kb);
    clock_gettime(CLOCK_MONOTONIC, &started);
    ck_assert_msg(maxrss_kb < PEAK_RSS_LIMIT_KB, "walnotify's peak RSS was %ld kB, over %ld kB",
                  maxrss_kb, PEAK_RSS_LIMIT_KB);
    if (event_log) {
        faults_summary summary =
            faults_check_history(&history, ctx.conn, "SELECT id FROM t ORDER BY id");

        ck_assert_msg(summary.largest == BIG_ROWS, "the largest transaction had %ld rows",
                      summary.largest);
    }
    lsns = transactions_of(itest_file(&ctx, "count.log").s, &nlsns);
    ck_assert_uint_eq(nlsns, 2 * SMALL_TXNS + 1);
    durable_check(&durable, lsns, nlsns);
    walsender_check(&durable);
    ck_assert_msg(itest_slot_confirmed(ctx.conn, ctx.slot) > lsns[nlsns - 1],
                  "the slot was not acknowledged past the last transaction");
    ck_assert_uint_ge(check_counts(itest_file(&ctx, "count.log").s, BIG_ROWS), nlsns);
    ck_assert_uint_ge(check_counts(itest_file(&ctx, "summary.log").s, BIG_ROWS), nlsns);
    check_rows_covered(itest_file(&ctx, "count.log").s, ctx.conn);
    check_rows_covered(itest_file(&ctx, "summary.log").s, ctx.conn);
    fprintf(stderr, "rewind: checked in %.1f s\n", seconds_since(&started));
    free(lsns);
    free(durable.sample);
    faults_history_free(&history);
    itest_end(&ctx);
}

START_TEST(rewinds_at_random_points_lose_nothing)
{
    uint64_t seed = faults_seed("rewind");
    int rounds = env_int("WN_REWIND_ROUNDS", 1);
    int rewinds = env_int("WN_REWIND_MAX", 2);

    for (int round = 0; round < rounds; round++) {
        fprintf(stderr, "rewind: round %d of %d, seed %llu, %d rewinds\n", round + 1, rounds,
                (unsigned long long)(seed + (uint64_t)round), rewinds);
        one_round(seed + (uint64_t)round, rewinds);
    }
}
END_TEST

/* One rewind from handle at the 54th event of a 200,000-row transaction (seed 3's first draw
 * with early = 1000): the host drops the rest of the transaction, which the walsender sends
 * before it ends the copy, and streams it again on the same connection, every row in order. */
START_TEST(rewind_in_a_large_transaction_keeps_the_walsender)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    durable_watch durable;
    long maxrss_kb = 0;
    char *end_text, *err;

    itest_begin(&ctx, "rewindmid");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint)");
    conf = write_config(&ctx, 3, 1, false, 1000, 10 * MID_ROWS);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t SELECT generate_series(1, %ld)", MID_ROWS);
    end_text = itest_lsn_text(itest_current_lsn(ctx.conn));
    durable_start(&durable, &ctx, itest_file(&ctx, "durable.log").s);
    run_host(&ctx, &host, NULL, ITEST_ARGS("-c", conf.s, "--endpos", end_text), &maxrss_kb);
    durable_stop(&durable);
    free(end_text);
    itest_assert_exit(&host, 0);

    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "asked for a rewind from handle") != NULL,
                  "the requester never asked for a rewind from handle");
    ck_assert_msg(strstr(err, "on the same connection (walsender PID") != NULL,
                  "the rewind did not stream again on the same connection");
    free(err);
    walsender_check(&durable);
    ck_assert_uint_eq(check_counts(itest_file(&ctx, "count.log").s, MID_ROWS), 1);
    ck_assert_uint_eq(check_counts(itest_file(&ctx, "summary.log").s, MID_ROWS), 1);
    check_rows_covered(itest_file(&ctx, "count.log").s, ctx.conn);
    check_rows_covered(itest_file(&ctx, "summary.log").s, ctx.conn);
    free(durable.sample);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("rewind");
    TCase *tc = tcase_create("rewind");

    /* One round streams the big transaction up to 1 + WN_REWIND_MAX times. */
    tcase_set_timeout(tc, ITEST_TIMEOUT_S * 2 * env_int("WN_REWIND_ROUNDS", 1) *
                              (1 + env_int("WN_REWIND_MAX", 2)) / 3);
    tcase_add_test(tc, rewinds_at_random_points_lose_nothing);
    tcase_add_test(tc, rewind_in_a_large_transaction_keeps_the_walsender);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? 0 : 1;
}
