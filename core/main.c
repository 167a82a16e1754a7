/*
 * main: the command line, and the order in which a run comes up and goes down.
 *
 *   configuration -> plugins loaded -> server checked (publication, slot) -> stream started
 *   (slot acquired) -> plugins initialised -> reader thread + dispatcher -> stop -> plugins
 *   shut down in reverse order.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conninfo.h"
#include "dispatcher.h"
#include "handoff.h"
#include "loader.h"
#include "log.h"
#include "lsn.h"
#include "setup.h"
#include "stream.h"

#define EXIT_USAGE 1
#define EXIT_PLUGIN 2
#define EXIT_SERVER 3
#define QUEUE_CAPACITY 4096
#define ERR_MAX 1024

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

/* What a run holds; released in reverse by release_run. */
typedef struct run {
    wn_config config;
    wn_plugin *plugins;
    size_t nloaded;
    wn_stream *stream;
    wn_handoff *handoff;
} run;

typedef struct reader_args {
    wn_stream *stream;
    wn_handoff *handoff;
    int status;
    char err[ERR_MAX];
} reader_args;

typedef struct signal_args {
    wn_handoff *handoff;
    sigset_t set;
} signal_args;

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

static void release_run(run *r)
{
    while (r->nloaded > 0)
        wn_plugin_unload(&r->plugins[--r->nloaded]);
    free(r->plugins);
    if (r->stream != NULL)
        wn_stream_close(r->stream);
    wn_handoff_destroy(r->handoff);
    wn_config_free(&r->config);
}

static void *reader_main(void *arg)
{
    reader_args *reader = arg;

    reader->status = wn_stream_run(reader->stream, reader->handoff, reader->err,
                                   sizeof reader->err);
    return NULL;
}

/* Turns SIGINT/SIGTERM into a stop request; SIGUSR1 (sent by main at the end) ends it. */
static void *signal_main(void *arg)
{
    signal_args *sig = arg;
    int signo;

    while (sigwait(&sig->set, &signo) == 0) {
        if (signo == SIGUSR1)
            return NULL;
        wn_log(WN_LOG_INFO, "received %s; finishing the call in progress and stopping",
               signo == SIGINT ? "SIGINT" : "SIGTERM");
        wn_handoff_request_stop(sig->handoff);
    }
    return NULL;
}

static int exit_status_for(wn_dispatch_result result, const char *dispatch_err,
                           const reader_args *reader)
{
    switch (result) {
    case WN_DISPATCH_STOPPED:
    case WN_DISPATCH_ENDPOS:
        if (reader->status != 0)
            return die(reader->status, "%s", reader->err);
        return 0;
    case WN_DISPATCH_PLUGIN_FATAL:
        return die(EXIT_PLUGIN, "%s", dispatch_err);
    case WN_DISPATCH_STREAM_ENDED:
        return die(reader->status ? reader->status : EXIT_SERVER, "%s",
                   reader->err[0] ? reader->err : "the replication stream ended");
    case WN_DISPATCH_PROTOCOL_ERROR:
        return die(EXIT_SERVER, "%s", dispatch_err);
    }
    return EXIT_SERVER;
}

/* Streams until a stop, endpos, or a failure; the caller has blocked the stop signals. */
static int stream_and_dispatch(run *r, const options *opts, const wn_server_state *server,
                               sigset_t *signals)
{
    reader_args reader = {.stream = r->stream, .handoff = r->handoff};
    signal_args sig = {.handoff = r->handoff, .set = *signals};
    wn_dispatcher_options dispatch = {
        .config = &r->config,
        .plugins = r->plugins,
        .nplugins = r->nloaded,
        .start_lsn = server->confirmed_flush,
        .endpos = opts->endpos,
    };
    pthread_t reader_thread, signal_thread;
    wn_dispatch_result result;
    char err[ERR_MAX];

    if (pthread_create(&signal_thread, NULL, signal_main, &sig) != 0)
        return die(EXIT_SERVER, "cannot start the signal thread: %s", strerror(errno));
    if (pthread_create(&reader_thread, NULL, reader_main, &reader) != 0) {
        pthread_kill(signal_thread, SIGUSR1);
        pthread_join(signal_thread, NULL);
        return die(EXIT_SERVER, "cannot start the reader thread: %s", strerror(errno));
    }
    result = wn_dispatch_run(&dispatch, r->handoff, err, sizeof err);
    /* The dispatcher has published its final position; the reader sends it and closes. */
    wn_handoff_request_stop(r->handoff);
    pthread_join(reader_thread, NULL);
    pthread_kill(signal_thread, SIGUSR1);
    pthread_join(signal_thread, NULL);
    return exit_status_for(result, err, &reader);
}

static int run_pipeline(run *r, const options *opts, sigset_t *signals)
{
    wn_server_state server = {0};
    char err[ERR_MAX], lsn_text[WN_LSN_TEXT_MAX];
    int status;

    status = wn_setup_prepare(&r->config, &server, err, sizeof err);
    if (status != 0)
        return die(status, "%s", err);
    if (opts->command == COMMAND_CREATE_SLOT)
        return 0;
    if (opts->endpos != WN_LSN_INVALID && server.confirmed_flush >= opts->endpos) {
        wn_log(WN_LOG_INFO, "slot \"%s\" is already at %s, at or past --endpos: nothing to do",
               r->config.source.slot, wn_lsn_format(server.confirmed_flush, lsn_text));
        return 0;
    }

    wn_stream_options stream_options = {
        .conninfo = r->config.source.conninfo,
        .utf8 = server.utf8,
        .slot = r->config.source.slot,
        .publication = r->config.source.publication,
        .start_lsn = WN_LSN_INVALID,
        .status_interval_ms = r->config.source.status_interval_ms,
    };
    status = wn_stream_open(&r->stream, &stream_options, err, sizeof err);
    if (status != 0)
        return die(status, "%s", err);
    status = init_plugins(r);
    if (status != 0)
        return status;
    r->handoff = wn_handoff_create(QUEUE_CAPACITY);
    if (r->handoff == NULL)
        return die(EXIT_SERVER, "out of memory");
    wn_log(WN_LOG_INFO, "streaming slot \"%s\" (publication \"%s\") from %s to %zu plugin(s)",
           r->config.source.slot, r->config.source.publication,
           wn_lsn_format(server.confirmed_flush, lsn_text), r->nloaded);
    return stream_and_dispatch(r, opts, &server, signals);
}

int main(int argc, char **argv)
{
    options opts = {.command = COMMAND_RUN};
    run r = {0};
    sigset_t signals;
    char err[ERR_MAX];
    int status;

    /* Stop signals are taken by one thread with sigwait; every thread inherits this mask, and a
     * signal that arrives while starting waits until the pipeline can stop cleanly. */
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    status = parse_options(argc, argv, &opts);
    if (status >= 0)
        return status;
    if (wn_config_load(opts.config_path, &r.config, err, sizeof err) != 0)
        return die(EXIT_USAGE, "%s", err);
    wn_log_set_level(r.config.log_level);

    if (opts.command == COMMAND_DROP_SLOT) {
        status = wn_setup_drop_slot(&r.config, err, sizeof err);
        if (status == 0)
            wn_log(WN_LOG_INFO, "dropped slot \"%s\"", r.config.source.slot);
        else
            die(status, "%s", err);
        goto done;
    }
    status = load_plugins(&r);
    if (status != 0)
        goto done;
    if (opts.command == COMMAND_CHECK_CONFIG) {
        printf("%s: configuration is valid (%zu plugin(s))\n", r.config.file, r.nloaded);
        goto done;
    }
    status = run_pipeline(&r, &opts, &signals);
done:
    release_run(&r);
    return status;
}
