/*
 * main: the command line. What a run does is pipeline.c's; how signals stop it, session.c's.
 *
 *   configuration -> plugins loaded -> (check-config | create-slot | drop-slot | run | replay)
 *   --describe PLUGIN.so: the plugin's descriptor alone, no configuration
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "conninfo.h"
#include "exitcode.h"
#include "httpd.h"
#include "loader.h"
#include "log.h"
#include "lsn.h"
#include "pipeline.h"
#include "replay.h"
#include "session.h"
#include "setup.h"
#include "writers.h"

#define ERR_MAX 1024

typedef enum command {
    COMMAND_RUN,
    COMMAND_CHECK_CONFIG,
    COMMAND_CREATE_SLOT,
    COMMAND_DROP_SLOT,
    COMMAND_DESCRIBE,
    COMMAND_REPLAY
} command;

typedef struct options {
    const char *config_path;
    const char *describe_path; /* --describe */
    const char *replay_path;   /* --replay */
    const char *replay_plugin; /* --plugin: the one block replayed to; NULL: all */
    command command;
    int commands_given;
    wn_lsn endpos;
} options;

static const char usage_text[] =
    "Usage: walnotify -c FILE [--endpos LSN]\n"
    "       walnotify -c FILE --check-config | --create-slot | --drop-slot\n"
    "       walnotify --replay EVENTS -c FILE [--plugin NAME]\n"
    "       walnotify --describe PLUGIN.so\n"
    "       walnotify --version | --help\n"
    "\n"
    "Streams the committed changes of PostgreSQL tables to handler plugins, in commit order.\n"
    "\n"
    "  -c, --config FILE   run the pipelines that FILE describes, until SIGINT/SIGTERM\n"
    "      --endpos LSN    stop after the last transaction whose commit ends at or before LSN\n"
    "      --check-config  validate FILE and every plugin's settings (and its check);\n"
    "                      no database, no init\n"
    "      --create-slot   create the publication and the slot (if missing) and exit\n"
    "      --drop-slot     drop the slot and exit\n"
    "      --replay EVENTS deliver the events of EVENTS (a dead-letter or jsonl file) to\n"
    "                      the plugins of FILE, with their policies; no database\n"
    "      --plugin NAME   with --replay: to the plugin block NAME alone\n"
    "      --describe PLUGIN.so\n"
    "                      print the plugin's name, version, ABI, operations and settings\n"
    "                      (type, default, description) from its descriptor; no init\n"
    "  -V, --version       print the version and exit\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "Exit status: 0 clean stop, 1 usage or configuration error, 2 plugin failure,\n"
    "3 server or slot state that needs a person.\n";

/* Returns -1 to go on, or the exit status to end with. */
static int parse_options(int argc, char **argv, options *opts)
{
    enum {
        OPT_ENDPOS = 256,
        OPT_CHECK,
        OPT_CREATE,
        OPT_DROP,
        OPT_DESCRIBE,
        OPT_REPLAY,
        OPT_PLUGIN
    };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"endpos", required_argument, NULL, OPT_ENDPOS},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"create-slot", no_argument, NULL, OPT_CREATE},
        {"drop-slot", no_argument, NULL, OPT_DROP},
        {"describe", required_argument, NULL, OPT_DESCRIBE},
        {"replay", required_argument, NULL, OPT_REPLAY},
        {"plugin", required_argument, NULL, OPT_PLUGIN},
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
                return wn_die(WN_EXIT_CONFIG,
                              "--endpos: \"%s\" is not a WAL position like 0/1A2B3C8", optarg);
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
        case OPT_DESCRIBE:
            opts->command = COMMAND_DESCRIBE;
            opts->describe_path = optarg;
            opts->commands_given++;
            break;
        case OPT_REPLAY:
            opts->command = COMMAND_REPLAY;
            opts->replay_path = optarg;
            opts->commands_given++;
            break;
        case OPT_PLUGIN:
            opts->replay_plugin = optarg;
            break;
        case 'V':
            printf("walnotify %s (plugin ABI %d.%d)\n", WALNOTIFY_VERSION, WALNOTIFY_ABI_MAJOR,
                   WALNOTIFY_ABI_MINOR);
            return 0;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case ':':
            return wn_die(WN_EXIT_CONFIG, "option %s needs a value; try --help", argv[optind - 1]);
        default:
            return wn_die(WN_EXIT_CONFIG, "unknown option %s; try --help", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return wn_die(WN_EXIT_CONFIG, "unexpected argument \"%s\"; try --help", argv[optind]);
    if (opts->replay_plugin != NULL && opts->command != COMMAND_REPLAY)
        return wn_die(WN_EXIT_CONFIG, "--plugin only applies to --replay");
    if (opts->command == COMMAND_DESCRIBE) {
        if (opts->config_path != NULL || opts->commands_given > 1 || opts->endpos != WN_LSN_INVALID)
            return wn_die(WN_EXIT_CONFIG, "--describe takes a plugin and nothing else");
        return -1;
    }
    if (opts->config_path == NULL)
        return wn_die(WN_EXIT_CONFIG, "no configuration file: give -c FILE; try --help");
    if (opts->commands_given > 1)
        return wn_die(
            WN_EXIT_CONFIG,
            "--check-config, --create-slot, --drop-slot, --replay and --describe exclude one "
            "another");
    if (opts->endpos != WN_LSN_INVALID && opts->command != COMMAND_RUN)
        return wn_die(WN_EXIT_CONFIG, "--endpos only applies to a run");
    return -1;
}

/* A stop asked for before the command was done: said on one line; a clean stop exits 0. */
static int stopped(wn_session *session, const char *what)
{
    wn_log(WN_LOG_INFO, "stopped by %s %s", wn_session_signal_name(session), what);
    return 0;
}

static int drop_slot(const wn_config *config, wn_session *session)
{
    char err[ERR_MAX];
    int status = wn_setup_drop_slot(config, wn_session_stop_fd(session), err, sizeof err);

    if (status == WN_EXIT_STOPPED)
        return stopped(session, "before the slot was dropped");
    if (status != 0)
        return wn_die(wn_exit_status(status), "%s", err);
    return 0;
}

/* --describe: what a plugin declares, from its descriptor alone (no check, no init). */
static int describe(const char *path)
{
    char err[ERR_MAX];
    char text[16384];

    if (wn_plugin_describe_file(path, text, sizeof text, err, sizeof err) != 0)
        return wn_die(WN_EXIT_PLUGIN, "%s", err);
    fputs(text, stdout);
    return 0;
}

/* What --check-config and a run check once the plugins are loaded: every plugin's check, and
 * that no two writers share a file (by name, and by what the files are on disk now). */
static int check_plugins(const wn_config *config, wn_plugin *plugins, size_t nplugins)
{
    int status = wn_writers_refuse_shared(config, plugins, nplugins);

    return status != 0 ? status : wn_pipeline_check_plugins(config, plugins, nplugins);
}

static int check_config(const wn_config *config, wn_session *session)
{
    wn_plugin *plugins = NULL;
    size_t nplugins = 0;
    int status = wn_pipeline_load_plugins(config, &plugins, &nplugins);

    if (status == 0)
        status = check_plugins(config, plugins, nplugins);
    if (status == 0 && wn_session_stop_requested(session))
        status = stopped(session, "before the check was done (nothing was found valid)");
    else if (status == 0)
        printf("%s: configuration is valid (%zu plugin(s))\n", config->file, nplugins);
    wn_pipeline_unload_plugins(plugins, nplugins);
    return status;
}

static int create_slot(const wn_config *config, wn_session *session)
{
    wn_plugin *plugins = NULL;
    size_t nplugins = 0;
    int status = wn_pipeline_load_plugins(config, &plugins, &nplugins);

    if (status == 0 && wn_session_stop_requested(session))
        status = stopped(session, "before anything was created");
    else if (status == 0)
        status = wn_pipeline_create_slot(config, session);
    wn_pipeline_unload_plugins(plugins, nplugins);
    return status;
}

/* The run with what watches it from outside: the metrics endpoint when metrics_listen is set,
 * systemd when NOTIFY_SOCKET is. An address that cannot be listened on is a configuration
 * error, found before anything connects. */
static int run_observed(const wn_config *config, wn_plugin *plugins, size_t nplugins, wn_lsn endpos,
                        wn_session *session)
{
    wn_metrics *metrics = NULL;
    wn_httpd *httpd = NULL;
    wn_notify notify;
    char err[ERR_MAX];
    int status;

    if (config->metrics_listen != NULL) {
        metrics = wn_metrics_create(config, WN_PIPELINE_QUEUE_CAPACITY);
        if (metrics == NULL) {
            wn_pipeline_unload_plugins(plugins, nplugins);
            return wn_die(WN_EXIT_INTERNAL, "out of memory starting the metrics endpoint");
        }
        if (wn_httpd_start(&httpd, config->metrics_listen, metrics, err, sizeof err) != 0) {
            wn_pipeline_unload_plugins(plugins, nplugins);
            wn_metrics_destroy(metrics);
            return wn_die(WN_EXIT_CONFIG, "%s: %s", config->file, err);
        }
        wn_log(WN_LOG_INFO, "serving /metrics, /healthz and /readyz at http://%s",
               config->metrics_listen);
    }
    wn_notify_open(&notify);
    status = wn_pipeline_run(config, plugins, nplugins, endpos, session, metrics, &notify);
    wn_notify_close(&notify);
    wn_httpd_stop(httpd);
    wn_metrics_destroy(metrics);
    return status;
}

/* --replay: the plugins loaded and checked as for a run, then the file's events, no database. */
static int replay_command(const wn_config *config, const options *opts, wn_session *session)
{
    wn_plugin *plugins = NULL;
    size_t nplugins = 0;
    int status = wn_pipeline_load_plugins(config, &plugins, &nplugins);

    if (status == 0)
        status = check_plugins(config, plugins, nplugins);
    if (status != 0) {
        wn_pipeline_unload_plugins(plugins, nplugins);
        return status;
    }
    return wn_replay_run(config, plugins, nplugins, opts->replay_path, opts->replay_plugin,
                         session);
}

static int run_command(const wn_config *config, wn_lsn endpos, wn_session *session)
{
    wn_plugin *plugins = NULL;
    size_t nplugins = 0;
    int status = wn_pipeline_load_plugins(config, &plugins, &nplugins);

    if (status == 0)
        status = check_plugins(config, plugins, nplugins);
    if (status != 0 || wn_session_stop_requested(session)) {
        wn_pipeline_unload_plugins(plugins, nplugins);
        return status != 0 ? status : stopped(session, "before connecting");
    }
    return run_observed(config, plugins, nplugins, endpos, session);
}

/* The command, with the signal thread running throughout, so that SIGINT/SIGTERM stop every
 * mode: each step checks for a stop, and every wait on the server watches for one. */
static int command_main(const options *opts, wn_session *session)
{
    wn_config config = {0};
    char err[ERR_MAX];
    int status = 0;

    if (wn_config_load(opts->config_path, &config, err, sizeof err) != 0)
        return wn_die(WN_EXIT_CONFIG, "%s", err);
    wn_log_set_level(config.log_level);
    wn_session_set_stop_timeout(session, config.stop_timeout_ms);
    if (wn_session_stop_requested(session)) {
        wn_config_free(&config);
        return stopped(session, "after reading the configuration");
    }
    switch (opts->command) {
    case COMMAND_DROP_SLOT:
        status = drop_slot(&config, session);
        break;
    case COMMAND_CREATE_SLOT:
        status = create_slot(&config, session);
        break;
    case COMMAND_CHECK_CONFIG:
        status = check_config(&config, session);
        break;
    case COMMAND_RUN:
        status = run_command(&config, opts->endpos, session);
        break;
    case COMMAND_REPLAY:
        status = replay_command(&config, opts, session);
        break;
    case COMMAND_DESCRIBE:
        break;
    }
    wn_config_free(&config);
    return status;
}

int main(int argc, char **argv)
{
    options opts = {.command = COMMAND_RUN};
    wn_session session;
    char err[ERR_MAX];
    int status;

    wn_session_block_signals(&session);
    signal(SIGPIPE, SIG_IGN);

    status = parse_options(argc, argv, &opts);
    if (status >= 0)
        return status;
    if (opts.command == COMMAND_DESCRIBE)
        return describe(opts.describe_path);
    if (wn_session_start(&session, err, sizeof err) != 0)
        return wn_die(WN_EXIT_SERVER, "%s", err);
    status = command_main(&opts, &session);
    /* The signal thread outlives the plugins, so that a second signal during a slow shutdown
     * is still taken. */
    wn_session_end(&session);
    return status;
}
