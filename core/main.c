/*
 * main: the command line, and the order in which a run comes up and goes down.
 *
 *   configuration -> plugins loaded -> server checked (publication, slot) -> stream started
 *   (slot acquired) -> plugins initialised -> reader thread + dispatcher -> stop -> plugins
 *   shut down in reverse order.
 *
 * A stream that is lost (connection gone, server restarting, walsender terminated) ends its
 * reader + dispatcher pair like a stop does; then the server is checked again, a new stream
 * starts at the last published position, and a new pair runs. Plugins stay initialised
 * throughout. Only what waiting cannot fix ends the run.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conninfo.h"
#include "dispatcher.h"
#include "handoff.h"
#include "loader.h"
#include "log.h"
#include "lsn.h"
#include "setup.h"
#include "state.h"
#include "stream.h"

#define EXIT_USAGE 1
#define EXIT_PLUGIN 2
#define EXIT_SERVER 3
#define QUEUE_CAPACITY 4096
#define ERR_MAX 1024
#define SLOT_BUSY_RETRY_MAX_MS 5000   /* a standby notices a free slot within this */
#define SLOT_BUSY_LOG_INTERVAL_MS 60000
#define JITTER_PERCENT 20

typedef enum command {
    COMMAND_RUN,
    COMMAND_CHECK_CONFIG,
    COMMAND_CREATE_SLOT,
    COMMAND_DROP_SLOT
} command;

typedef struct options {
    const char *config_path;
    command command;
    int commands_given;
    wn_lsn endpos;
} options;

/* What the signal thread and the main thread share. */
typedef struct session {
    pthread_mutex_t lock;
    wn_handoff *handoff;      /* the running pair's, NULL between pairs; under lock */
    bool stop;                /* SIGINT/SIGTERM came; under lock */
    int wake[2];              /* pipe: readable once stop is set, ends a backoff wait */
    sigset_t set;
} session;

/* What a run holds; released in reverse by release_run. */
typedef struct run {
    wn_config config;
    wn_plugin *plugins;
    size_t nloaded;
    wn_stream *stream;
    wn_state origin;          /* the server, database and slot streamed from */
    bool streamed;            /* a stream started before in this run: the slot must exist */
    wn_lsn resume;            /* where the next stream starts: the last published position */
    unsigned seed;            /* for the jitter of backoff delays */
} run;

typedef struct reader_args {
    wn_stream *stream;
    wn_handoff *handoff;
    int status;
    char err[ERR_MAX];
} reader_args;

/* Exponential backoff with jitter. */
typedef struct backoff {
    int next_ms;
    int max_ms;
} backoff;

/* How an attempt to open the stream ended. */
typedef enum connect_result {
    CONNECT_OK,
    CONNECT_STOPPED,          /* a stop came while waiting */
    CONNECT_NOTHING_TO_DO,    /* the start position is at or past --endpos */
    CONNECT_FAILED            /* *exit_status set, reason printed */
} connect_result;

static const char usage_text[] =
    "Usage: walnotify -c FILE [--endpos LSN]\n"
    "       walnotify -c FILE --check-config | --create-slot | --drop-slot\n"
    "       walnotify --version | --help\n"
    "\n"
    "Streams the committed changes of PostgreSQL tables to handler plugins, in commit order.\n"
    "\n"
    "  -c, --config FILE   run the pipelines that FILE describes, until SIGINT/SIGTERM\n"
    "      --endpos LSN    stop after the last transaction whose commit ends at or before LSN\n"
    "      --check-config  validate FILE and every plugin's settings; no database, no init\n"
    "      --create-slot   create the publication and the slot (if missing) and exit\n"
    "      --drop-slot     drop the slot and exit\n"
    "  -V, --version       print the version and exit\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "Exit status: 0 clean stop, 1 usage or configuration error, 2 plugin failure,\n"
    "3 server or slot state that needs a person.\n";

__attribute__((format(printf, 2, 3))) static int die(int status, const char *format, ...)
{
    va_list args;

    fputs("walnotify: ", stderr);
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
    return status;
}

/* Returns -1 to go on, or the exit status to end with. */
static int parse_options(int argc, char **argv, options *opts)
{
    enum { OPT_ENDPOS = 256, OPT_CHECK, OPT_CREATE, OPT_DROP };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"endpos", required_argument, NULL, OPT_ENDPOS},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"create-slot", no_argument, NULL, OPT_CREATE},
        {"drop-slot", no_argument, NULL, OPT_DROP},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:Vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            opts->config_path = optarg;
            break;
        case OPT_ENDPOS:
            if (!wn_lsn_parse(optarg, &opts->endpos) || opts->endpos == WN_LSN_INVALID)
                return die(EXIT_USAGE, "--endpos: \"%s\" is not a WAL position like 0/1A2B3C8",
                           optarg);
            break;
        case OPT_CHECK:
            opts->command = COMMAND_CHECK_CONFIG;
            opts->commands_given++;
            break;
        case OPT_CREATE:
            opts->command = COMMAND_CREATE_SLOT;
            opts->commands_given++;
            break;
        case OPT_DROP:
            opts->command = COMMAND_DROP_SLOT;
            opts->commands_given++;
            break;
        case 'V':
            printf("walnotify %s (plugin ABI %d.%d)\n", WALNOTIFY_VERSION, WALNOTIFY_ABI_MAJOR,
                   WALNOTIFY_ABI_MINOR);
            return 0;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case ':':
            return die(EXIT_USAGE, "option %s needs a value; try --help", argv[optind - 1]);
        default:
            return die(EXIT_USAGE, "unknown option %s; try --help", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return die(EXIT_USAGE, "unexpected argument \"%s\"; try --help", argv[optind]);
    if (opts->config_path == NULL)
        return die(EXIT_USAGE, "no configuration file: give -c FILE; try --help");
    if (opts->commands_given > 1)
        return die(EXIT_USAGE,
                   "--check-config, --create-slot and --drop-slot exclude one another");
    if (opts->endpos != WN_LSN_INVALID && opts->command != COMMAND_RUN)
        return die(EXIT_USAGE, "--endpos only applies to a run");
    return -1;
}

static int load_plugins(run *r)
{
    char err[ERR_MAX];

    r->plugins = calloc(r->config.nplugins, sizeof *r->plugins);
    if (r->plugins == NULL)
        return die(EXIT_PLUGIN, "out of memory loading plugins");
    for (size_t i = 0; i < r->config.nplugins; i++) {
        int rc = wn_plugin_load(&r->plugins[i], &r->config.plugins[i], r->config.file,
                                r->config.dir, err, sizeof err);

        if (rc != 0)
            return die(rc == WN_LOAD_BAD_SETTINGS ? EXIT_USAGE : EXIT_PLUGIN, "%s", err);
        r->nloaded++;
    }
    return 0;
}

/* Initialises the plugins in configuration order; a failure leaves the earlier ones to
 * release_run, which shuts them down in reverse. */
static int init_plugins(run *r)
{
    for (size_t i = 0; i < r->nloaded; i++) {
        walnotify_status status = wn_plugin_init(&r->plugins[i]);

        if (status != WALNOTIFY_OK)
            return die(EXIT_PLUGIN, "plugin \"%s\" (%s) failed to start (init returned %s)",
                       r->config.plugins[i].name, r->config.plugins[i].path,
                       status == WALNOTIFY_RETRY ? "RETRY" : "FATAL");
    }
    return 0;
}

/* The exit status for a status that may be a "wait and retry" one, when there is no waiting. */
static int exit_code(int status)
{
    return status == WN_EXIT_TRANSIENT || status == WN_EXIT_SLOT_BUSY ? EXIT_SERVER : status;
}

static void release_run(run *r)
{
    while (r->nloaded > 0)
        wn_plugin_unload(&r->plugins[--r->nloaded]);
    free(r->plugins);
    if (r->stream != NULL)
        wn_stream_close(r->stream);
    wn_config_free(&r->config);
}

/* ---- stop requests ----------------------------------------------------------------------- */

static bool stop_requested(session *sess)
{
    bool stop;

    pthread_mutex_lock(&sess->lock);
    stop = sess->stop;
    pthread_mutex_unlock(&sess->lock);
    return stop;
}

/* Makes handoff the one a stop request reaches; false when a stop came already. */
static bool attach_handoff(session *sess, wn_handoff *handoff)
{
    bool stop;

    pthread_mutex_lock(&sess->lock);
    stop = sess->stop;
    sess->handoff = stop ? NULL : handoff;
    pthread_mutex_unlock(&sess->lock);
    return !stop;
}

static void detach_handoff(session *sess)
{
    pthread_mutex_lock(&sess->lock);
    sess->handoff = NULL;
    pthread_mutex_unlock(&sess->lock);
}

/* Sleeps ms, or less when a stop comes; true when it did. */
static bool wait_unless_stopped(session *sess, int ms)
{
    struct pollfd fd = {.fd = sess->wake[0], .events = POLLIN};

    if (stop_requested(sess))
        return true;
    if (poll(&fd, 1, ms) < 0 && errno != EINTR)
        (void)poll(NULL, 0, ms);
    return stop_requested(sess);
}

/* Turns SIGINT/SIGTERM into a stop request; SIGUSR1 (sent by main at the end) ends it. */
static void *signal_main(void *arg)
{
    session *sess = arg;
    int signo;

    while (sigwait(&sess->set, &signo) == 0) {
        if (signo == SIGUSR1)
            return NULL;
        wn_log(WN_LOG_INFO, "received %s; finishing the call in progress and stopping",
               signo == SIGINT ? "SIGINT" : "SIGTERM");
        pthread_mutex_lock(&sess->lock);
        sess->stop = true;
        if (sess->handoff)
            wn_handoff_request_stop(sess->handoff);
        if (write(sess->wake[1], "x", 1) < 0) {
            /* The pipe is non-blocking and already readable: nothing is lost. */
        }
        pthread_mutex_unlock(&sess->lock);
    }
    return NULL;
}

static int session_start(session *sess, pthread_t *thread)
{
    if (pipe(sess->wake) != 0)
        return die(EXIT_SERVER, "cannot make the stop pipe: %s", strerror(errno));
    if (pthread_mutex_init(&sess->lock, NULL) != 0)
        goto close_pipe;
    if (pthread_create(thread, NULL, signal_main, sess) != 0)
        goto destroy_lock;
    return 0;
destroy_lock:
    pthread_mutex_destroy(&sess->lock);
close_pipe:
    close(sess->wake[0]);
    close(sess->wake[1]);
    return die(EXIT_SERVER, "cannot start the signal thread: %s", strerror(errno));
}

static void session_end(session *sess, pthread_t thread)
{
    pthread_kill(thread, SIGUSR1);
    pthread_join(thread, NULL);
    pthread_mutex_destroy(&sess->lock);
    close(sess->wake[0]);
    close(sess->wake[1]);
}

/* ---- backoff ----------------------------------------------------------------------------- */

static backoff backoff_start(int initial_ms, int max_ms)
{
    backoff b;

    b.max_ms = max_ms > 0 ? max_ms : 1;
    b.next_ms = initial_ms > 0 ? initial_ms : 1;
    if (b.next_ms > b.max_ms)
        b.next_ms = b.max_ms;
    return b;
}

/* The next delay, within JITTER_PERCENT of the current step (so that many hosts restarted
 * together do not knock at once); the step doubles up to the cap. */
static int backoff_next(backoff *b, unsigned *seed)
{
    int64_t base = b->next_ms;
    int64_t spread = base * JITTER_PERCENT / 100;
    int64_t delay = base - spread + (spread > 0 ? (int64_t)(rand_r(seed) % (2 * spread + 1)) : 0);

    b->next_ms = base * 2 > b->max_ms ? b->max_ms : (int)(base * 2);
    return delay > 0 ? (int)delay : 1;
}

static int64_t monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---- opening the stream ------------------------------------------------------------------ */

/* Where walnotify was before, if anywhere: the state file (re-read each time, as another host
 * of an active/standby pair may have moved it on) and this run's own last position. Returns
 * 0, or EXIT_USAGE for an unreadable or malformed file. */
static int find_resume(run *r, wn_state *resume, bool *have, const char **from, char *err,
                       size_t errlen)
{
    const char *path = r->config.source.state_file;
    bool exists = false;

    *have = false;
    *from = NULL;
    if (path && wn_state_read(path, resume, &exists, err, errlen) != 0)
        return EXIT_USAGE;
    if (exists) {
        *have = true;
        *from = path;
        if (r->streamed && r->resume > resume->lsn)
            resume->lsn = r->resume;
    } else if (r->streamed) {
        *resume = r->origin;
        resume->lsn = r->resume;
        *have = true;
    }
    return 0;
}

/* Where the stream starts: the slot's confirmed_flush_lsn, or where walnotify was when that is
 * later (a server crash can move confirmed_flush_lsn back over work already done). */
static int start_position(const wn_state *resume, const char *from,
                          const wn_server_state *server, wn_lsn *start, char *err, size_t errlen)
{
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX], c[WN_LSN_TEXT_MAX];

    *start = server->confirmed_flush;
    if (!resume || resume->lsn <= server->confirmed_flush)
        return 0;
    if (resume->lsn > server->wal_end) {
        snprintf(err, errlen,
                 "%s%s records progress up to %s, beyond the end of the server's WAL (%s): the "
                 "server lost WAL it had confirmed (restored from a backup?); %s",
                 from ? "state file " : "this run", from ? from : "",
                 wn_lsn_format(resume->lsn, a), wn_lsn_format(server->wal_end, b),
                 from ? "remove the file to resume at the slot's position"
                      : "restart walnotify to resume at the slot's position");
        return EXIT_SERVER;
    }
    if (from)
        wn_log(WN_LOG_INFO,
               "state file %s is ahead of the slot: starting at %s, not at its "
               "confirmed_flush_lsn %s (work up to there is done)",
               from, wn_lsn_format(resume->lsn, a), wn_lsn_format(server->confirmed_flush, c));
    *start = resume->lsn;
    return 0;
}

/* Records the start position in the state file before streaming: a first run learns at once
 * that the file cannot be written. */
static int write_start_state(run *r, wn_lsn start, char *err, size_t errlen)
{
    wn_state state = r->origin;

    if (!r->config.source.state_file)
        return 0;
    state.lsn = start;
    if (wn_state_write(r->config.source.state_file, &state, err, errlen) == 0)
        return 0;
    if (!r->streamed)
        return EXIT_USAGE;
    wn_log(WN_LOG_WARNING, "%s", err);
    return 0;
}

/*
 * One attempt: check the server, then start the stream at the resume position. Returns 0 with
 * r->stream set, WN_EXIT_TRANSIENT / WN_EXIT_SLOT_BUSY, or an exit status; with err set.
 */
static int open_stream(run *r, const options *opts, bool *nothing_to_do, char *err,
                       size_t errlen)
{
    wn_server_state server;
    wn_state resume;
    const char *from;
    bool have_resume;
    wn_lsn start;
    int status;

    *nothing_to_do = false;
    status = find_resume(r, &resume, &have_resume, &from, err, errlen);
    if (status == 0)
        status = wn_setup_prepare(&r->config, have_resume ? &resume : NULL, from, &server, err,
                                  errlen);
    if (status == 0)
        status = start_position(have_resume ? &resume : NULL, from, &server, &start, err, errlen);
    if (status != 0)
        return status;
    r->origin = server.origin;
    if (opts->endpos != WN_LSN_INVALID && start >= opts->endpos) {
        char text[WN_LSN_TEXT_MAX];

        wn_log(WN_LOG_INFO, "slot \"%s\" is already at %s, at or past --endpos: nothing to do",
               r->config.source.slot, wn_lsn_format(start, text));
        *nothing_to_do = true;
        return 0;
    }

    wn_stream_options stream_options = {
        .conninfo = r->config.source.conninfo,
        .utf8 = server.utf8,
        .slot = r->config.source.slot,
        .publication = r->config.source.publication,
        .start_lsn = start,
        .status_interval_ms = r->config.source.status_interval_ms,
        .receive_timeout_ms = r->config.source.receive_timeout_ms,
        .state_file = r->config.source.state_file,
        .origin = &r->origin,
    };
    status = wn_stream_open(&r->stream, &stream_options, err, errlen);
    if (status != 0)
        return status;
    status = write_start_state(r, start, err, errlen);
    if (status != 0) {
        wn_stream_close(r->stream);
        r->stream = NULL;
        return status;
    }
    r->resume = start;
    r->streamed = true;
    return 0;
}

static void log_slot_busy(const run *r, const char *reason, int retry_ms, int64_t *next_log_ms)
{
    int64_t now = monotonic_ms();

    if (now < *next_log_ms)
        return;
    *next_log_ms = now + SLOT_BUSY_LOG_INTERVAL_MS;
    wn_log(WN_LOG_INFO,
           "waiting for slot \"%s\": %s; trying again every %.1f s (said once a minute)",
           r->config.source.slot, reason, retry_ms / 1000.0);
}

/*
 * Opens the stream, waiting out what may pass: the server down or restarting (exponential
 * backoff with jitter, one line per attempt) and the slot held by another process (retried
 * every few seconds, said once a minute). lost is why the previous stream ended (NULL at
 * startup). Configuration, authentication and slot problems end the run.
 */
static connect_result connect_with_retry(run *r, const options *opts, session *sess,
                                         const char *lost, int *exit_status)
{
    const wn_source_config *source = &r->config.source;
    int initial = source->reconnect_initial_ms > 0 ? source->reconnect_initial_ms
                                                   : WN_DEFAULT_RECONNECT_INITIAL_MS;
    int max = source->reconnect_max_ms > 0 ? source->reconnect_max_ms
                                           : WN_DEFAULT_RECONNECT_MAX_MS;
    backoff transient = backoff_start(initial, max);
    backoff busy = backoff_start(initial, max < SLOT_BUSY_RETRY_MAX_MS ? max
                                                                       : SLOT_BUSY_RETRY_MAX_MS);
    int64_t next_busy_log_ms = 0;
    char err[ERR_MAX], text[WN_LSN_TEXT_MAX];
    int delay_ms = 0;

    if (lost) {
        delay_ms = backoff_next(&transient, &r->seed);
        wn_log(WN_LOG_WARNING, "replication stream lost: %s; reconnecting in %.1f s (attempt 1)",
               lost, delay_ms / 1000.0);
    }
    for (unsigned attempt = 1;; attempt++) {
        bool nothing_to_do;
        int status;

        if (delay_ms > 0 && wait_unless_stopped(sess, delay_ms))
            return CONNECT_STOPPED;
        if (stop_requested(sess))
            return CONNECT_STOPPED;
        status = open_stream(r, opts, &nothing_to_do, err, sizeof err);
        if (status == 0) {
            if (nothing_to_do)
                return CONNECT_NOTHING_TO_DO;
            if (lost || attempt > 1)
                wn_log(WN_LOG_INFO, "replication stream %s at %s after %u attempt%s",
                       lost ? "back" : "up", wn_lsn_format(r->resume, text), attempt,
                       attempt == 1 ? "" : "s");
            return CONNECT_OK;
        }
        if (status == WN_EXIT_SLOT_BUSY) {
            delay_ms = backoff_next(&busy, &r->seed);
            log_slot_busy(r, err, busy.max_ms, &next_busy_log_ms);
            continue;
        }
        if (status != WN_EXIT_TRANSIENT) {
            *exit_status = die(exit_code(status), "%s", err);
            return CONNECT_FAILED;
        }
        delay_ms = backoff_next(&transient, &r->seed);
        wn_log(WN_LOG_WARNING, "%s: %s; %s in %.1f s (attempt %u)",
               lost ? "replication stream lost" : "cannot start streaming", err,
               lost ? "reconnecting" : "retrying", delay_ms / 1000.0, attempt + 1);
    }
}

/* ---- streaming --------------------------------------------------------------------------- */

static void *reader_main(void *arg)
{
    reader_args *reader = arg;

    reader->status = wn_stream_run(reader->stream, reader->handoff, reader->err,
                                   sizeof reader->err);
    return NULL;
}

/* One reader + dispatcher pair on r->stream, until a stop, endpos, a failure or the end of the
 * stream; the last published position becomes r->resume. */
static wn_dispatch_result stream_once(run *r, const options *opts, session *sess,
                                      reader_args *reader, char *err, size_t errlen)
{
    wn_dispatcher_options dispatch = {
        .config = &r->config,
        .plugins = r->plugins,
        .nplugins = r->nloaded,
        .start_lsn = r->resume,
        .endpos = opts->endpos,
    };
    wn_handoff *handoff = wn_handoff_create(QUEUE_CAPACITY);
    pthread_t reader_thread;
    wn_dispatch_result result;
    wn_lsn published;

    *reader = (reader_args){.stream = r->stream, .handoff = handoff};
    if (!handoff) {
        snprintf(err, errlen, "out of memory");
        return WN_DISPATCH_PROTOCOL_ERROR;
    }
    if (!attach_handoff(sess, handoff)) {
        wn_handoff_destroy(handoff);
        return WN_DISPATCH_STOPPED;
    }
    if (pthread_create(&reader_thread, NULL, reader_main, reader) != 0) {
        detach_handoff(sess);
        wn_handoff_destroy(handoff);
        snprintf(err, errlen, "cannot start the reader thread: %s", strerror(errno));
        return WN_DISPATCH_PROTOCOL_ERROR;
    }
    result = wn_dispatch_run(&dispatch, handoff, err, errlen);
    /* The dispatcher has published its final position; the reader sends it and closes. */
    wn_handoff_request_stop(handoff);
    pthread_join(reader_thread, NULL);
    detach_handoff(sess);
    published = wn_handoff_acknowledgeable(handoff);
    if (published > r->resume)
        r->resume = published;
    wn_handoff_destroy(handoff);
    return result;
}

/* -1 when the stream was lost and a new one may resume; else the exit status of the run. */
static int after_stream(wn_dispatch_result result, const char *dispatch_err,
                        const reader_args *reader, session *sess)
{
    switch (result) {
    case WN_DISPATCH_STOPPED:
        if (reader->status == WN_EXIT_TRANSIENT && stop_requested(sess)) {
            wn_log(WN_LOG_WARNING, "stopped; the last position could not be sent: %s",
                   reader->err);
            return 0;
        }
        /* fall through */
    case WN_DISPATCH_ENDPOS:
        if (reader->status != 0)
            return die(exit_code(reader->status), "%s", reader->err);
        return 0;
    case WN_DISPATCH_PLUGIN_FATAL:
        return die(EXIT_PLUGIN, "%s", dispatch_err);
    case WN_DISPATCH_STREAM_ENDED:
        if (reader->status == WN_EXIT_TRANSIENT)
            return stop_requested(sess) ? 0 : -1;
        return die(reader->status ? exit_code(reader->status) : EXIT_SERVER, "%s",
                   reader->err[0] ? reader->err : "the replication stream ended");
    case WN_DISPATCH_PROTOCOL_ERROR:
        return die(EXIT_SERVER, "%s", dispatch_err);
    }
    return EXIT_SERVER;
}

static int create_slot(run *r)
{
    wn_server_state server;
    char err[ERR_MAX];
    int status = wn_setup_prepare(&r->config, NULL, NULL, &server, err, sizeof err);

    return status == 0 ? 0 : die(exit_code(status), "%s", err);
}

static int run_pipeline(run *r, const options *opts, session *sess)
{
    char err[ERR_MAX], lsn_text[WN_LSN_TEXT_MAX];
    reader_args reader;
    int status = 0;

    switch (connect_with_retry(r, opts, sess, NULL, &status)) {
    case CONNECT_OK:
        break;
    case CONNECT_FAILED:
        return status;
    case CONNECT_STOPPED:
    case CONNECT_NOTHING_TO_DO:
        return 0;
    }
    status = init_plugins(r);
    if (status != 0)
        return status;
    wn_log(WN_LOG_INFO, "streaming slot \"%s\" (publication \"%s\") from %s to %zu plugin(s)",
           r->config.source.slot, r->config.source.publication,
           wn_lsn_format(r->resume, lsn_text), r->nloaded);
    for (;;) {
        wn_dispatch_result result = stream_once(r, opts, sess, &reader, err, sizeof err);

        status = after_stream(result, err, &reader, sess);
        if (status >= 0)
            return status;
        wn_stream_close(r->stream);
        r->stream = NULL;
        switch (connect_with_retry(r, opts, sess, reader.err, &status)) {
        case CONNECT_OK:
            break;
        case CONNECT_FAILED:
            return status;
        case CONNECT_STOPPED:
        case CONNECT_NOTHING_TO_DO:
            return 0;
        }
    }
}

int main(int argc, char **argv)
{
    options opts = {.command = COMMAND_RUN};
    run r = {0};
    session sess = {.handoff = NULL};
    pthread_t signal_thread;
    char err[ERR_MAX];
    int status;

    /* Stop signals are taken by one thread with sigwait; every thread inherits this mask, and a
     * signal that arrives while a call is in progress is acted on once it returns. */
    sigemptyset(&sess.set);
    sigaddset(&sess.set, SIGINT);
    sigaddset(&sess.set, SIGTERM);
    sigaddset(&sess.set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sess.set, NULL);
    signal(SIGPIPE, SIG_IGN);

    status = parse_options(argc, argv, &opts);
    if (status >= 0)
        return status;
    if (wn_config_load(opts.config_path, &r.config, err, sizeof err) != 0)
        return die(EXIT_USAGE, "%s", err);
    wn_log_set_level(r.config.log_level);
    r.seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);

    if (opts.command == COMMAND_DROP_SLOT) {
        status = wn_setup_drop_slot(&r.config, err, sizeof err);
        if (status == 0)
            wn_log(WN_LOG_INFO, "dropped slot \"%s\"", r.config.source.slot);
        else
            die(exit_code(status), "%s", err);
        status = exit_code(status);
        goto done;
    }
    status = load_plugins(&r);
    if (status != 0)
        goto done;
    if (opts.command == COMMAND_CHECK_CONFIG) {
        printf("%s: configuration is valid (%zu plugin(s))\n", r.config.file, r.nloaded);
        goto done;
    }
    if (opts.command == COMMAND_CREATE_SLOT) {
        status = create_slot(&r);
        goto done;
    }
    status = session_start(&sess, &signal_thread);
    if (status != 0)
        goto done;
    status = run_pipeline(&r, &opts, &sess);
    /* Plugins are shut down (release_run) before the signal thread goes, so a second signal
     * during a slow shutdown is still absorbed. */
    release_run(&r);
    session_end(&sess, signal_thread);
    return status;
done:
    release_run(&r);
    return status;
}
