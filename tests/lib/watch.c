/* watch: the slot sampled and the history cut into streams while a test runs; see watch.h. */
#include "watch.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 4096
#define STOPPED_MARK "dispatcher stopped; "
#define REWOUND_MARK "stream rewound; " /* a stream's end too, when walnotify goes on */
#define BACK_MARK "replication stream back at "
#define AGAIN_MARK "replication stream rewound to " /* ... on the same connection */
#define UP_MARK "replication stream up at "

struct watch {
    pthread_mutex_t lock;       /* guards everything below and the history */
    pthread_t thread;
    bool stopping;
    faults_history *history;    /* borrowed */
    PGconn *conn;               /* the watch's own session, owned */
    char slot[64];
    itest_path err;             /* the followed host's stderr */
    long err_offset;            /* bytes of it read so far */
    bool server_down;
    bool in_gap;                /* a stream ended; the next has not said where it starts */
    long gap_log_size;          /* the log's size seen inside the gap; -1: none yet */
    bool start_pending;         /* a stream started while the server could not be asked */
    wn_lsn pending_start;
    int reconnections;
    char failure[512];          /* the first thing that went wrong in the thread; "" none */
};

/* A run begins at start, the position the host said its new stream starts at (the slot may
 * trail it: the host resumes at its own last finished position when that is later). */
static void begin_run(watch *w, wn_lsn start)
{
    faults_run_begin(w->history, w->conn, w->slot);
    w->history->run[w->history->nruns - 1].start = start;
    w->reconnections++;
}

/* The stream that ended wrote its last line before gap_log_size; the next one starts at start. */
static void close_gap(watch *w, wn_lsn start)
{
    faults_history *history = w->history;

    w->in_gap = false;
    if (w->gap_log_size < 0) {
        snprintf(w->failure, sizeof w->failure,
                 "the host was streaming again before the watch could see where the previous "
                 "stream's lines end (no log size between \"%s\" and the new stream)",
                 STOPPED_MARK);
        return;
    }
    if (history->nruns > 0 && history->run[history->nruns - 1].log_end < 0) {
        faults_run_end(history, false);
        history->run[history->nruns - 1].log_end = w->gap_log_size;
    }
    if (w->server_down) {
        w->start_pending = true;
        w->pending_start = start;
        return;
    }
    begin_run(w, start);
}

static void on_line(watch *w, const char *line)
{
    const char *mark = strstr(line, BACK_MARK);
    size_t skip = strlen(BACK_MARK);
    char text[32];
    wn_lsn start;

    if (strstr(line, STOPPED_MARK) != NULL || strstr(line, REWOUND_MARK) != NULL) {
        w->in_gap = true;
        w->gap_log_size = -1;
        return;
    }
    if (mark == NULL) {
        mark = strstr(line, AGAIN_MARK);
        skip = strlen(AGAIN_MARK);
    }
    if (mark == NULL) {
        mark = strstr(line, UP_MARK);
        skip = strlen(UP_MARK);
    }
    /* The first stream of a host that did not wait starts where the caller's run began. */
    if (mark == NULL || !w->in_gap)
        return;
    if (sscanf(mark + skip, "%31s", text) != 1 || !wn_lsn_parse(text, &start)) {
        snprintf(w->failure, sizeof w->failure, "no position in the host's line: %.200s", line);
        return;
    }
    close_gap(w, start);
}

/* Reads the complete lines the followed host added to its stderr since the last look. */
static void scan(watch *w)
{
    char line[LINE_MAX_BYTES];
    FILE *file = w->err.s[0] != '\0' ? fopen(w->err.s, "r") : NULL;

    if (file == NULL)
        return; /* none followed, or not made yet: the host is still starting */
    if (fseek(file, w->err_offset, SEEK_SET) != 0) {
        fclose(file);
        return;
    }
    while (w->failure[0] == '\0' && fgets(line, sizeof line, file) != NULL) {
        size_t n = strlen(line);

        /* A line still being written is read whole next time; a longer one in pieces. */
        if (line[n - 1] != '\n' && n < sizeof line - 1)
            break;
        w->err_offset += (long)n;
        on_line(w, line);
    }
    fclose(file);
}

/*
 * A size of the log read after the host said its dispatcher stopped and before it said a new
 * stream started lies between the two streams' lines. The second scan proves the "before".
 */
static void look(watch *w)
{
    long size;

    scan(w);
    if (!w->in_gap || w->gap_log_size >= 0 || w->failure[0] != '\0')
        return;
    size = faults_file_size(w->history->log_path);
    scan(w);
    if (w->in_gap && w->gap_log_size < 0)
        w->gap_log_size = size;
}

static void *watch_main(void *arg)
{
    watch *w = arg;

    for (;;) {
        pthread_mutex_lock(&w->lock);
        if (w->stopping) {
            pthread_mutex_unlock(&w->lock);
            return NULL;
        }
        if (w->failure[0] == '\0') {
            itest_helper_busy(); /* a fork waits: see itest_fork.h */
            if (!w->server_down)
                faults_sample_slot(w->history, w->conn, w->slot);
            look(w);
            itest_helper_idle();
        }
        pthread_mutex_unlock(&w->lock);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* Fails the test with what went wrong in the thread, if anything; with the lock held. */
static void check_failure(watch *w)
{
    char failure[sizeof w->failure];

    if (w->failure[0] == '\0')
        return;
    memcpy(failure, w->failure, sizeof failure);
    pthread_mutex_unlock(&w->lock);
    ck_abort_msg("watch: %s", failure);
}

watch *watch_start(const itest_ctx *ctx, faults_history *history, const itest_host *host)
{
    watch *w = calloc(1, sizeof *w);

    ck_assert_msg(w != NULL, "out of memory");
    ck_assert_msg(pthread_mutex_init(&w->lock, NULL) == 0, "pthread_mutex_init failed");
    w->history = history;
    w->conn = itest_connect(ctx->db, NULL);
    snprintf(w->slot, sizeof w->slot, "%s", ctx->slot);
    if (host != NULL)
        w->err = host->err;
    w->gap_log_size = -1;
    ck_assert_msg(pthread_create(&w->thread, NULL, watch_main, w) == 0,
                  "cannot start the watch thread");
    return w;
}

void watch_stop(watch *w)
{
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_lock(&w->lock);
    check_failure(w);
    if (!w->server_down)
        faults_sample_slot(w->history, w->conn, w->slot);
    look(w);
    check_failure(w);
    pthread_mutex_unlock(&w->lock);
    PQfinish(w->conn);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void watch_server_down(watch *w)
{
    pthread_mutex_lock(&w->lock);
    check_failure(w);
    w->server_down = true;
    pthread_mutex_unlock(&w->lock);
}

void watch_server_up(watch *w)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    pthread_mutex_lock(&w->lock);
    check_failure(w);
    for (PQreset(w->conn); PQstatus(w->conn) != CONNECTION_OK; PQreset(w->conn)) {
        if (itest_expired(&deadline)) {
            pthread_mutex_unlock(&w->lock);
            ck_abort_msg("watch: cannot reconnect to the server");
        }
        itest_sleep_ms(100);
    }
    w->server_down = false;
    if (w->start_pending) {
        w->start_pending = false;
        begin_run(w, w->pending_start);
    }
    pthread_mutex_unlock(&w->lock);
}

void watch_takeover(watch *w, const itest_host *host)
{
    pthread_mutex_lock(&w->lock);
    check_failure(w);
    w->err = host->err;
    w->err_offset = 0;
    w->in_gap = true;
    w->gap_log_size = -1;
    look(w);
    check_failure(w);
    pthread_mutex_unlock(&w->lock);
}

int watch_reconnections(watch *w)
{
    int n;

    pthread_mutex_lock(&w->lock);
    check_failure(w);
    look(w);
    check_failure(w);
    n = w->reconnections;
    pthread_mutex_unlock(&w->lock);
    return n;
}

size_t watch_samples(watch *w)
{
    size_t n;

    pthread_mutex_lock(&w->lock);
    check_failure(w);
    n = w->history->nsamples;
    pthread_mutex_unlock(&w->lock);
    return n;
}

watch *watch_host_start(itest_ctx *ctx, faults_history *history, itest_host *host,
                        const char *const *args)
{
    faults_run_begin(history, ctx->conn, ctx->slot);
    itest_host_start(ctx, host, args);
    return watch_start(ctx, history, host);
}

int watch_host_run(itest_ctx *ctx, faults_history *history, itest_host *host,
                   const char *const *args)
{
    watch *w;
    int status;

    w = watch_host_start(ctx, history, host, args);
    status = itest_host_wait(host, ITEST_RUN_S);
    watch_stop(w);
    faults_run_end(history, status == 0);
    return status;
}
