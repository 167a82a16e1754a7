/*
 * pipeline: one run of the configured pipeline, from the first connection to the last flush.
 *
 *   server checked (publication, slot) -> stream started (slot acquired) -> catalog read for
 *   the plugins -> reader thread started -> plugins initialised (init retried while the reader
 *   keeps the connection alive) -> dispatcher -> ... -> stop
 *
 * A stream that is lost (connection gone, server restarting, walsender terminated) ends its
 * reader + dispatcher pair like a stop does (the plugins are flushed); then the server is
 * checked again, a new stream starts at the last published position, and a new pair runs.
 * Plugins stay initialised across that, unless the slot turns out to be held by another
 * process: then this host is the standby of a pair, and its plugins are shut down, releasing
 * their sinks for the host that streams now, and initialised again once the slot is this
 * host's again. Only what waiting cannot fix ends the run. A rewind ends the pair too, but the
 * stream starts again on the same connection (restart_in_place), a new one only when that fails.
 */
#include "pipeline.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "conninfo.h"
#include "dispatcher.h"
#include "handoff.h"
#include "log.h"
#include "lsn.h"
#include "reload.h"
#include "setup.h"
#include "snapshot.h"
#include "state.h"
#include "stream.h"
#include "tablewatch.h"

#define QUEUE_CAPACITY WN_PIPELINE_QUEUE_CAPACITY
#define ERR_MAX 1024
#define SLOT_BUSY_RETRY_MAX_MS 5000 /* a standby notices a free slot within this */
#define SLOT_BUSY_LOG_INTERVAL_MS 60000
#define STREAM_LOST (-1)    /* after_stream: reconnect after the reconnection backoff */
#define STREAM_REWOUND (-2) /* after_stream: a plugin asked to see it all again */

/* What a run holds besides the plugins. */
typedef struct pipeline {
    const wn_config *config;
    wn_reload reload; /* the instances in force, changed by SIGHUP's reloads */
    wn_lsn endpos;    /* 0: none */
    wn_stream *stream;
    wn_state origin;      /* the server, database and slot streamed from */
    bool streamed;        /* a stream started before in this run: the slot must exist */
    wn_lsn resume;        /* where the next stream starts: the last published position */
    unsigned seed;        /* for the jitter of backoff delays */
    bool started;         /* every plugin's init returned OK, and no shutdown since */
    bool described;       /* the catalog was read */
    wn_catalog catalog;   /* what the plugins learn of the source; read once */
    wn_tablewatch *watch; /* the catalog check before each acknowledgement; NULL until the
                             first stream */
    uint32_t *table_oids; /* [source.ntables]: the tables' OIDs when the stream started */
    int stop_fd;          /* readable once a stop is requested: ends waits on the server */
    wn_snapshot_source snap_source; /* what the initial snapshot reads */
    wn_snapshot *snap;              /* the initial snapshot taken and not finished; NULL: none */
    wn_lsn snap_lsn;                /* its consistent point */
    wn_lsn snapshot_done;           /* the finished snapshot's consistent point; 0: not yet */
    wn_metrics *metrics;            /* NULL: no metrics endpoint */
    wn_notify *notify;              /* systemd; NULL: none */
    wn_run_state said;              /* the last waiting state told to systemd */
} pipeline;

typedef struct reader_args {
    wn_stream *stream;
    wn_handoff *handoff;
    int status;
    char err[ERR_MAX];
    atomic_bool done; /* the reader returned: status and err are final */
} reader_args;

/* How an attempt to open the stream ended. */
typedef enum connect_result {
    CONNECT_OK,
    CONNECT_STOPPED,       /* a stop came while waiting */
    CONNECT_NOTHING_TO_DO, /* the start position is at or past --endpos */
    CONNECT_FAILED         /* *exit_status set, reason printed */
} connect_result;

static int64_t monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---- plugins ------------------------------------------------------------------------------ */

int wn_pipeline_load_plugins(const wn_config *config, wn_plugin **plugins, size_t *nloaded)
{
    char err[ERR_MAX];

    *nloaded = 0;
    *plugins = calloc(config->nplugins, sizeof **plugins);
    if (*plugins == NULL)
        return wn_die(WN_EXIT_INTERNAL, "out of memory loading plugins");
    for (size_t i = 0; i < config->nplugins; i++) {
        int rc = wn_plugin_load(&(*plugins)[i], &config->plugins[i], config->file, config->dir, err,
                                sizeof err);

        if (rc != 0)
            return wn_die(rc == WN_LOAD_BAD_SETTINGS ? WN_EXIT_CONFIG : WN_EXIT_PLUGIN, "%s", err);
        (*nloaded)++;
    }
    return 0;
}

void wn_pipeline_unload_plugins(wn_plugin *plugins, size_t nloaded)
{
    while (nloaded > 0)
        wn_plugin_unload(&plugins[--nloaded]);
    free(plugins);
}

int wn_pipeline_check_plugins(const wn_config *config, wn_plugin *plugins, size_t nplugins)
{
    char err[ERR_MAX];

    for (size_t i = 0; i < nplugins; i++) {
        if (wn_plugin_check(&plugins[i], &config->source, config->file, err, sizeof err) !=
            WALNOTIFY_OK)
            return wn_die(WN_EXIT_CONFIG, "%s", err);
    }
    return 0;
}

/* Reads the catalog, once per run, for what the plugins learn of the source. Returns 0, or
 * WN_EXIT_TRANSIENT (the server going away meanwhile: waited out like a failed connection),
 * WN_EXIT_STOPPED, or an exit status, with err set. */
static int describe_source(pipeline *r, char *err, size_t errlen)
{
    char why[ERR_MAX - 64]; /* room for the prefix below */
    int status;

    if (r->described)
        return 0;
    status = wn_setup_read_catalog(r->config, r->stop_fd, &r->catalog, why, sizeof why);
    if (status != 0) {
        snprintf(err, errlen, "reading the catalog for the plugins: %s", why);
        return status;
    }
    r->reload.catalog = &r->catalog;
    r->described = true;
    return 0;
}

/* Tells every instance its source, its tables and where the stream resumes, before its init
 * (again before an init that follows a shutdown: the position has moved on). */
static bool lend_context(pipeline *r)
{
    for (size_t i = 0; i < r->reload.nplugins; i++) {
        if (!wn_reload_lend(&r->reload, i, r->resume))
            return false;
    }
    return true;
}

/*
 * Sleeps up to ms before init is called again; true when it may be. Else *result says why not:
 * WN_DISPATCH_STOPPED (a stop was requested) or WN_DISPATCH_STREAM_ENDED (the stream ended
 * meanwhile, noticed at the end of the wait: a host whose stream is gone must not go on waiting
 * for a sink, which the host that took the slot may hold).
 */
static bool wait_to_init(const reader_args *reader, wn_notify *notify, int ms,
                         wn_dispatch_result *result)
{
    struct pollfd pfd = {.fd = wn_handoff_stop_fd(reader->handoff), .events = POLLIN};

    for (int left = ms; left > 0 && !wn_handoff_stop_requested(reader->handoff);) {
        int step = wn_notify_wait_ms(notify, left);

        if (poll(&pfd, 1, step) < 0 && errno != EINTR)
            wn_log(WN_LOG_WARNING, "poll while waiting to call init again: %s", strerror(errno));
        wn_notify_alive(notify, monotonic_ms());
        left -= step;
    }
    if (wn_handoff_stop_requested(reader->handoff)) {
        *result = WN_DISPATCH_STOPPED;
        return false;
    }
    if (atomic_load(&reader->done)) {
        *result = WN_DISPATCH_STREAM_ENDED;
        return false;
    }
    return true;
}

/*
 * Calls one plugin's init until it answers OK, with the block's backoff after each RETRY
 * (retry_initial_ms doubling up to retry_max_ms). The reader thread keeps the connection alive
 * meanwhile. false with *result set after FATAL (err set), a stop, or the end of the stream.
 */
static bool init_plugin(wn_plugin *plugin, const reader_args *reader, wn_notify *notify,
                        wn_dispatch_result *result, char *err, size_t errlen)
{
    const wn_plugin_config *config = plugin->config;
    int delay_ms = config->retry_initial_ms;
    int cap_ms = config->retry_max_ms;

    for (unsigned attempt = 1;; attempt++) {
        walnotify_status status = wn_plugin_init(plugin);

        if (status == WALNOTIFY_OK) {
            if (attempt > 1)
                wn_log(WN_LOG_INFO, "plugin \"%s\": init succeeded after %u attempts", config->name,
                       attempt);
            return true;
        }
        if (status != WALNOTIFY_RETRY) {
            snprintf(err, errlen, "plugin \"%s\" (%s) failed to start (init returned FATAL)",
                     config->name, config->path);
            *result = WN_DISPATCH_PLUGIN_FATAL;
            return false;
        }
        wn_log(attempt == 1 ? WN_LOG_WARNING : WN_LOG_DEBUG,
               "plugin \"%s\": init answered RETRY (attempt %u); calling it again in %d ms",
               config->name, attempt, delay_ms);
        if (!wait_to_init(reader, notify, delay_ms, result)) {
            wn_log(WN_LOG_INFO, "plugin \"%s\": %s while init was being retried", config->name,
                   *result == WN_DISPATCH_STOPPED ? "stopped" : "the replication stream ended");
            return false;
        }
        delay_ms = delay_ms > cap_ms / 2 ? cap_ms : delay_ms * 2;
    }
}

/* Initialises the plugins in configuration order, on the first stream and on the first after
 * stop_plugins; after a failure the caller's wn_pipeline_unload_plugins shuts the earlier ones
 * down in reverse. */
static bool start_plugins(pipeline *r, const reader_args *reader, wn_dispatch_result *result,
                          char *err, size_t errlen)
{
    char lsn_text[WN_LSN_TEXT_MAX];

    if (r->started)
        return true;
    if (!lend_context(r)) {
        snprintf(err, errlen, "out of memory describing the tables to the plugins");
        *result = WN_DISPATCH_INTERNAL;
        return false;
    }
    for (size_t i = 0; i < r->reload.nplugins; i++) {
        if (!init_plugin(r->reload.plugins[i], reader, r->notify, result, err, errlen))
            return false;
    }
    r->started = true;
    wn_log(WN_LOG_INFO, "streaming slot \"%s\" (publication \"%s\") from %s to %zu plugin(s)",
           r->config->source.slot, r->config->source.publication,
           wn_lsn_format(r->resume, lsn_text), r->reload.nplugins);
    return true;
}

/* The stream is up and every plugin started: this host is the active one. */
static void say_streaming(pipeline *r)
{
    char lsn_text[WN_LSN_TEXT_MAX];

    wn_metrics_set_state(r->metrics, WN_RUN_STREAMING);
    r->said = WN_RUN_STREAMING;
    wn_metrics_set_snapshot_pending(r->metrics, r->config->source.snapshot == WN_SNAPSHOT_INITIAL &&
                                                    r->snapshot_done == WN_LSN_INVALID);
    wn_notify_status(
        r->notify, "streaming slot \"%s\" from %s%s", r->config->source.slot,
        wn_lsn_format(r->resume, lsn_text),
        r->snap != NULL && r->snapshot_done == WN_LSN_INVALID ? " (initial snapshot first)" : "");
}

/*
 * Shuts the plugins down in reverse order, keeping them loaded, when this host finds its slot
 * held by another process: the other host streams now and must be able to take the sinks (a
 * file's lock, a port) that these instances hold. Everything they finished was flushed when
 * the stream ended (the dispatcher's last flush); the transaction in hand was abandoned. They
 * are initialised again once this host holds the slot again.
 */
static void stop_plugins(pipeline *r)
{
    size_t running = 0;

    /* Also those that started while a later one's init was still being retried. */
    for (size_t i = 0; i < r->reload.nplugins; i++)
        running += r->reload.plugins[i]->initialised;
    r->started = false;
    if (running == 0)
        return;
    for (size_t i = r->reload.nplugins; i > 0; i--)
        wn_plugin_shutdown(r->reload.plugins[i - 1]);
    /* Why the slot is busy follows at once, in the first "waiting for slot" line. */
    wn_log(WN_LOG_INFO,
           "slot \"%s\" is held by another process: %zu plugin(s) shut down, their sinks "
           "released; they start again once this host holds the slot",
           r->config->source.slot, running);
}

/* ---- opening the stream ------------------------------------------------------------------ */

/* Where walnotify was before, if anywhere: the state file (re-read each time, as another host
 * of an active/standby pair may have moved it on) and this run's own last position. Returns
 * 0, or WN_EXIT_CONFIG for an unreadable or malformed file. */
static int find_resume(pipeline *r, wn_state *resume, bool *have, const char **from, char *err,
                       size_t errlen)
{
    const char *path = r->config->source.state_file;
    bool exists = false;

    *have = false;
    *from = NULL;
    if (path && wn_state_read(path, resume, &exists, err, errlen) != 0)
        return WN_EXIT_CONFIG;
    if (exists) {
        *have = true;
        *from = path;
        /* Perhaps the other host of an active/standby pair finished it. */
        if (resume->snapshot != WN_LSN_INVALID)
            r->snapshot_done = resume->snapshot;
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
static int start_position(const wn_state *resume, const char *from, const wn_server_state *server,
                          wn_lsn *start, char *err, size_t errlen)
{
    char a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX], c[WN_LSN_TEXT_MAX];

    *start = server->confirmed_flush;
    if (!resume || resume->lsn <= server->confirmed_flush)
        return 0;
    if (resume->lsn > server->wal_end) {
        snprintf(err, errlen,
                 "%s%s records progress up to %s, beyond the end of the server's WAL (%s): the "
                 "server lost WAL it had confirmed (restored from a backup?); %s",
                 from ? "state file " : "this run", from ? from : "", wn_lsn_format(resume->lsn, a),
                 wn_lsn_format(server->wal_end, b),
                 from ? "remove the file to resume at the slot's position"
                      : "restart walnotify to resume at the slot's position");
        return WN_EXIT_SERVER;
    }
    if (from)
        wn_log(WN_LOG_INFO,
               "state file %s is ahead of the slot: starting at %s, not at its "
               "confirmed_flush_lsn %s (work up to there is done)",
               from, wn_lsn_format(resume->lsn, a), wn_lsn_format(server->confirmed_flush, c));
    *start = resume->lsn;
    return 0;
}

/* The OIDs of the configured tables as the stream starts, read with the same query the check
 * before each acknowledgement makes, so both speak of the same tables. Returns 0,
 * WN_EXIT_TRANSIENT, or WN_EXIT_SERVER; with err set. */
static int read_table_oids(pipeline *r, bool utf8, char *err, size_t errlen)
{
    const wn_source_config *source = &r->config->source;
    size_t n = source->ntables ? source->ntables : 1;
    wn_table_seen *seen;
    wn_tables_read got;
    int status = 0;

    if (!r->watch)
        r->watch = wn_tablewatch_create(r->config, utf8);
    if (!r->table_oids)
        r->table_oids = calloc(n, sizeof *r->table_oids);
    seen = calloc(n, sizeof *seen);
    if (!r->watch || !r->table_oids || !seen) {
        free(seen);
        snprintf(err, errlen, "reading the tables' OIDs: out of memory");
        return WN_EXIT_INTERNAL;
    }
    got = wn_tablewatch_read(r->watch, NULL, seen, -1, err, errlen);
    if (got != WN_TABLES_READ)
        status = got == WN_TABLES_UNKNOWN ? WN_EXIT_TRANSIENT : WN_EXIT_SERVER;
    for (size_t i = 0; status == 0 && i < source->ntables; i++) {
        r->table_oids[i] = seen[i].oid;
        /* The server was checked a moment ago: only a change since then lands here. */
        if (seen[i].oid == 0 || !seen[i].published) {
            snprintf(err, errlen, "table \"%s\" %s since the server was checked; start again",
                     source->tables[i].qualified,
                     seen[i].oid == 0 ? "disappeared" : "left the publication");
            status = WN_EXIT_SERVER;
        }
    }
    free(seen);
    return status;
}

/*
 * On a reconnection, before the server is prepared (which would put a table missing from the
 * publication back into it without a word): is every table still as the last stream left it?
 * A table renamed, dropped or taken out of the publication meanwhile ends the run; one made
 * again under its name is said. Returns 0, WN_EXIT_TRANSIENT, or WN_EXIT_SERVER; with err set.
 */
static int recheck_tables(pipeline *r, char *err, size_t errlen)
{
    const wn_source_config *source = &r->config->source;
    wn_table_seen *seen;
    wn_tables_read got;
    int status = 0;

    if (!r->streamed || !r->watch || !r->table_oids)
        return 0;
    seen = calloc(source->ntables ? source->ntables : 1, sizeof *seen);
    if (!seen) {
        snprintf(err, errlen, "checking the tables: out of memory");
        return WN_EXIT_INTERNAL;
    }
    /* The last stream's connection is likely dead: a fresh one. */
    wn_tablewatch_reset(r->watch);
    got = wn_tablewatch_read(r->watch, r->table_oids, seen, -1, err, errlen);
    if (got != WN_TABLES_READ)
        status = got == WN_TABLES_UNKNOWN ? WN_EXIT_TRANSIENT : WN_EXIT_SERVER;
    for (size_t i = 0; status == 0 && i < source->ntables; i++) {
        switch (wn_table_judge(&seen[i], r->table_oids[i], source->tables[i].qualified,
                               source->publication, err, errlen)) {
        case WN_TABLE_SAME:
            break;
        case WN_TABLE_MADE_AGAIN:
            wn_table_say_made_again(source->tables[i].qualified, r->table_oids[i], seen[i].oid);
            break;
        case WN_TABLE_RENAMED:
        case WN_TABLE_DROPPED:
        case WN_TABLE_UNPUBLISHED:
            status = WN_EXIT_SERVER;
            break;
        }
    }
    free(seen);
    return status;
}

/* Records the start position in the state file before streaming: a first run learns at once
 * that the file cannot be written, as a configuration error when a person must fix the path or
 * its rights, as a run-time failure (exit 2, which a service manager restarts) when the machine
 * failed (a full disk). Later, as mid-run, a failure is only a warning. */
static int write_start_state(pipeline *r, wn_lsn start, char *err, size_t errlen)
{
    wn_state state = r->origin;
    int rc;

    if (!r->config->source.state_file)
        return 0;
    state.lsn = start;
    rc = wn_state_write(r->config->source.state_file, &state, err, errlen);
    if (rc == 0)
        return 0;
    if (!r->streamed)
        return wn_state_write_failure_is_setup(rc) ? WN_EXIT_CONFIG : WN_EXIT_INTERNAL;
    wn_log(WN_LOG_WARNING, "%s", err);
    return 0;
}

/* Ends the snapshot's read-only transaction and closes its connections, which drops its
 * temporary slot. */
static void end_snapshot(pipeline *r)
{
    char why[ERR_MAX];

    if (r->snap == NULL)
        return;
    if (wn_snapshot_end(r->snap, why, sizeof why) != 0)
        wn_log(WN_LOG_WARNING, "ending the initial snapshot: %s", why);
    r->snap = NULL;
}

/*
 * The initial snapshot, when one is asked for and none finished: taken before the stream
 * starts (START_REPLICATION right after keeps the slot this host's), or, after a rewind, read
 * again from its first row in the same transaction, so that every row keeps its identity.
 * Returns 0, or an exit status as wn_snapshot_begin's, with err set.
 */
static int prepare_snapshot(pipeline *r, bool utf8, char *err, size_t errlen)
{
    char why[ERR_MAX - 64], text[WN_LSN_TEXT_MAX]; /* room for the prefix below */
    int status;

    if (r->config->source.snapshot != WN_SNAPSHOT_INITIAL || r->snapshot_done != WN_LSN_INVALID) {
        end_snapshot(r);
        return 0;
    }
    if (r->snap != NULL) {
        if (wn_snapshot_restart(r->snap, 1, why, sizeof why) == 0)
            return 0;
        wn_log(WN_LOG_WARNING, "reading the initial snapshot again: %s; taking a new one", why);
        end_snapshot(r);
    }
    r->snap_source = (wn_snapshot_source){
        .conninfo = r->config->source.conninfo,
        .slot = r->config->source.slot,
        .publication = r->config->source.publication,
        .tables = r->config->source.tables,
        .ntables = r->config->source.ntables,
        .utf8 = utf8,
        .stop_fd = r->stop_fd,
    };
    status = wn_snapshot_begin(&r->snap_source, &r->snap, &r->snap_lsn, why, sizeof why);
    if (status != 0) {
        snprintf(err, errlen, "taking the initial snapshot: %s", why);
        return status;
    }
    wn_log(WN_LOG_INFO,
           "initial snapshot taken at %s; the stream delivers what committed before it, then "
           "its rows",
           wn_lsn_format(r->snap_lsn, text));
    return 0;
}

/* A snapshot to take while another process holds the slot would be dropped at once, when
 * START_REPLICATION finds the slot busy: the standby of a pair waits without taking one. (The
 * server's answer to START_REPLICATION still decides; this only spares the temporary slot.) */
static int snapshot_slot_free(const pipeline *r, const wn_server_state *server, char *err,
                              size_t errlen)
{
    if (r->config->source.snapshot != WN_SNAPSHOT_INITIAL || r->snapshot_done != WN_LSN_INVALID ||
        r->snap != NULL || server->slot_active_pid == 0)
        return 0;
    snprintf(err, errlen,
             "replication slot \"%s\" is active for PID %ld (another walnotify holds the slot); "
             "the initial snapshot is taken once this host holds it",
             r->config->source.slot, server->slot_active_pid);
    return WN_EXIT_SLOT_BUSY;
}

/* The dispatcher's: every plugin flushed the snapshot's end marker. */
static int record_snapshot(void *arg, wn_lsn consistent_point, char *err, size_t errlen)
{
    pipeline *r = arg;
    int rc = wn_stream_record_snapshot(r->stream, consistent_point, err, errlen);

    if (rc != 0)
        return rc;
    r->snapshot_done = consistent_point;
    r->origin.snapshot = consistent_point;
    wn_metrics_set_snapshot_pending(r->metrics, false);
    wn_notify_status(r->notify, "streaming slot \"%s\"; initial snapshot finished",
                     r->config->source.slot);
    end_snapshot(r);
    return 0;
}

/* Some block asks for logical decoding messages that its plugin handles. */
static bool wants_messages(const pipeline *r)
{
    for (size_t i = 0; i < r->reload.nplugins; i++) {
        const wn_plugin *plugin = r->reload.plugins[i];

        if (plugin->config->ops & wn_plugin_ops(plugin) & WALNOTIFY_OP_MESSAGE)
            return true;
    }
    return false;
}

/*
 * One attempt: check the server, start the stream at the resume position, and read the catalog
 * for the plugins (the first time). Returns 0 with r->stream set, WN_EXIT_TRANSIENT /
 * WN_EXIT_SLOT_BUSY, or an exit status; with err set.
 */
static int open_stream(pipeline *r, bool *nothing_to_do, char *err, size_t errlen)
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
        status = recheck_tables(r, err, errlen);
    if (status == 0)
        status = wn_setup_prepare(r->config, have_resume ? &resume : NULL, from, r->stop_fd,
                                  &server, err, errlen);
    if (status == 0)
        status = start_position(have_resume ? &resume : NULL, from, &server, &start, err, errlen);
    if (status != 0)
        return status;
    r->origin = server.origin;
    r->origin.snapshot = r->snapshot_done;
    if (r->endpos != WN_LSN_INVALID && start >= r->endpos) {
        char text[WN_LSN_TEXT_MAX];

        wn_log(WN_LOG_INFO, "slot \"%s\" is already at %s, at or past --endpos: nothing to do",
               r->config->source.slot, wn_lsn_format(start, text));
        *nothing_to_do = true;
        return 0;
    }

    wn_stream_options stream_options = {
        .conninfo = r->config->source.conninfo,
        .utf8 = server.utf8,
        .slot = r->config->source.slot,
        .publication = r->config->source.publication,
        .start_lsn = start,
        .messages = wants_messages(r),
        .status_interval_ms = r->config->source.status_interval_ms,
        .receive_timeout_ms = r->config->source.receive_timeout_ms,
        .progress_interval_ms = r->config->source.progress_interval_ms,
        .state_file = r->config->source.state_file,
        .origin = &r->origin,
        .stop_fd = r->stop_fd,
    };
    status = read_table_oids(r, server.utf8, err, errlen);
    if (status == 0)
        status = snapshot_slot_free(r, &server, err, errlen);
    if (status == 0)
        status = prepare_snapshot(r, server.utf8, err, errlen);
    if (status != 0)
        return status;
    status = wn_stream_open(&r->stream, &stream_options, err, errlen);
    if (status != 0) {
        end_snapshot(r);
        return status;
    }
    status = write_start_state(r, start, err, errlen);
    if (status == 0)
        status = describe_source(r, err, errlen);
    if (status != 0) {
        end_snapshot(r);
        wn_stream_close(r->stream);
        r->stream = NULL;
        return status;
    }
    r->resume = start;
    r->streamed = true;
    return 0;
}

/* Sleeps ms, or less when a stop comes, pinging systemd's watchdog meanwhile (a standby's
 * wait is not a hang); true when a stop came. */
static bool wait_alive(pipeline *r, wn_session *sess, int ms)
{
    for (int left = ms; left > 0;) {
        int step = wn_notify_wait_ms(r->notify, left);

        if (wn_session_wait(sess, step))
            return true;
        wn_notify_alive(r->notify, monotonic_ms());
        left -= step;
    }
    return wn_session_stop_requested(sess);
}

/* The run waits: as a standby (another process holds the slot) or for the server. */
static void say_waiting(pipeline *r, wn_run_state state, const char *why)
{
    wn_metrics_set_state(r->metrics, state);
    if (r->said == state)
        return;
    r->said = state;
    wn_notify_status(r->notify, "%s: %s", state == WN_RUN_STANDBY ? "standby" : "reconnecting",
                     why);
}

static void log_slot_busy(const pipeline *r, const char *reason, int retry_ms, int64_t *next_log_ms)
{
    int64_t now = monotonic_ms();

    if (now < *next_log_ms)
        return;
    *next_log_ms = now + SLOT_BUSY_LOG_INTERVAL_MS;
    wn_log(WN_LOG_INFO,
           "waiting for slot \"%s\": %s; trying again every %.1f s (said once a minute)",
           r->config->source.slot, reason, retry_ms / 1000.0);
}

/*
 * Opens the stream, waiting out what may pass: the server down or restarting (exponential
 * backoff with jitter, one line per attempt) and the slot held by another process (retried
 * every few seconds, said once a minute). lost is why the previous stream ended (NULL at
 * startup); at_once skips the first wait (a rewind has waited its own backoff already).
 * Configuration, authentication and slot problems end the run.
 */
static connect_result connect_with_retry(pipeline *r, wn_session *sess, const char *lost,
                                         bool at_once, int *exit_status)
{
    const wn_source_config *source = &r->config->source;
    int initial = source->reconnect_initial_ms;
    int max = source->reconnect_max_ms;
    wn_backoff transient = wn_backoff_start(initial, max);
    wn_backoff busy =
        wn_backoff_start(initial, max < SLOT_BUSY_RETRY_MAX_MS ? max : SLOT_BUSY_RETRY_MAX_MS);
    int64_t next_busy_log_ms = 0;
    char err[ERR_MAX], text[WN_LSN_TEXT_MAX];
    int delay_ms = 0;

    if (lost && !at_once) {
        delay_ms = wn_backoff_next(&transient, &r->seed);
        wn_log(WN_LOG_WARNING, "replication stream lost: %s; reconnecting in %.1f s (attempt 1)",
               lost, delay_ms / 1000.0);
    }
    for (unsigned attempt = 1;; attempt++) {
        bool nothing_to_do;
        int status;

        if (delay_ms > 0 && wait_alive(r, sess, delay_ms))
            return CONNECT_STOPPED;
        if (wn_session_stop_requested(sess))
            return CONNECT_STOPPED;
        status = open_stream(r, &nothing_to_do, err, sizeof err);
        if (status == WN_EXIT_STOPPED)
            return CONNECT_STOPPED;
        if (status == 0) {
            if (nothing_to_do)
                return CONNECT_NOTHING_TO_DO;
            if (lost || attempt > 1)
                wn_log(WN_LOG_INFO, "replication stream %s at %s after %u attempt%s",
                       lost ? "back" : "up", wn_lsn_format(r->resume, text), attempt,
                       attempt == 1 ? "" : "s");
            if (lost)
                wn_metrics_reconnected(r->metrics);
            return CONNECT_OK;
        }
        if (status == WN_EXIT_SLOT_BUSY) {
            stop_plugins(r);
            say_waiting(r, WN_RUN_STANDBY, err);
            delay_ms = wn_backoff_next(&busy, &r->seed);
            log_slot_busy(r, err, busy.max_ms, &next_busy_log_ms);
            continue;
        }
        if (status != WN_EXIT_TRANSIENT) {
            *exit_status = wn_die(wn_exit_status(status), "%s", err);
            return CONNECT_FAILED;
        }
        delay_ms = wn_backoff_next(&transient, &r->seed);
        say_waiting(r, WN_RUN_RECONNECTING, err);
        wn_log(WN_LOG_WARNING, "%s: %s; %s in %.1f s (attempt %u)",
               lost ? "replication stream lost" : "cannot start streaming", err,
               lost ? "reconnecting" : "retrying", delay_ms / 1000.0, attempt + 1);
    }
}

/* ---- streaming --------------------------------------------------------------------------- */

static void *reader_main(void *arg)
{
    reader_args *reader = arg;

    reader->status =
        wn_stream_run(reader->stream, reader->handoff, reader->err, sizeof reader->err);
    atomic_store(&reader->done, true);
    return NULL;
}

/* One reader + dispatcher pair on r->stream, until a stop, endpos, a failure or the end of the
 * stream; the last published position becomes r->resume. */
static wn_dispatch_result stream_once(pipeline *r, wn_session *sess, reader_args *reader, char *err,
                                      size_t errlen)
{
    wn_dispatcher_options dispatch = {
        .config = r->config,
        .nplugins = r->reload.nplugins,
        .start_lsn = r->resume,
        .endpos = r->endpos,
        .table_oids = r->table_oids,
        .read_tables = wn_tablewatch_read,
        .send_tables = wn_tablewatch_send,
        .tables_watch = r->watch,
        .snapshot = r->snapshot_done == WN_LSN_INVALID ? r->snap : NULL,
        .snapshot_lsn = r->snap_lsn,
        .record_snapshot = record_snapshot,
        .record_arg = r,
        .metrics = r->metrics,
        .notify = r->notify,
        .reload = &r->reload,
    };
    wn_handoff *handoff = wn_handoff_create(QUEUE_CAPACITY);
    pthread_t reader_thread;
    wn_dispatch_result result;
    wn_lsn published;

    *reader = (reader_args){.stream = r->stream, .handoff = handoff};
    if (!handoff) {
        snprintf(err, errlen, "out of memory starting the stream");
        return WN_DISPATCH_INTERNAL;
    }
    if (!wn_session_attach(sess, handoff)) {
        wn_handoff_destroy(handoff);
        return WN_DISPATCH_STOPPED;
    }
    wn_handoff_set_ack_sender(handoff, wn_stream_acknowledge, r->stream);
    /* The reader may answer a keepalive before the dispatcher has started: it reports where
     * this stream began, never 0/0. */
    wn_handoff_set_acknowledgeable(handoff, r->resume);
    if (pthread_create(&reader_thread, NULL, reader_main, reader) != 0) {
        wn_session_detach(sess);
        wn_handoff_destroy(handoff);
        snprintf(err, errlen, "cannot start the reader thread: %s", strerror(errno));
        return WN_DISPATCH_INTERNAL;
    }
    /* The reader answers keepalives and sends status updates while init is retried. */
    if (start_plugins(r, reader, &result, err, errlen)) {
        say_streaming(r);
        result = wn_dispatch_run(&dispatch, handoff, err, errlen);
        wn_metrics_set_state(r->metrics, WN_RUN_RECONNECTING);
    } else {
        wn_handoff_set_dispatcher_done(handoff);
    }
    /* The dispatcher has published its final position; the reader sends it and closes. */
    wn_handoff_request_stop(handoff);
    pthread_join(reader_thread, NULL);
    wn_session_detach(sess);
    published = wn_handoff_acknowledgeable(handoff);
    if (published > r->resume)
        r->resume = published;
    wn_handoff_destroy(handoff);
    return result;
}

/* STREAM_LOST when the stream was lost and a new one may resume, STREAM_REWOUND when a plugin
 * asked for a rewind (nothing new was acknowledged: the next stream starts at the last
 * published position); else the exit status of the run. */
static int after_stream(wn_dispatch_result result, const char *dispatch_err,
                        const reader_args *reader, wn_session *sess)
{
    switch (result) {
    case WN_DISPATCH_STOPPED:
        if (reader->status == WN_EXIT_TRANSIENT && wn_session_stop_requested(sess)) {
            wn_log(WN_LOG_WARNING, "stopped; the last position could not be sent: %s", reader->err);
            return 0;
        }
        /* fall through */
    case WN_DISPATCH_ENDPOS:
        if (reader->status != 0)
            return wn_die(wn_exit_status(reader->status), "%s", reader->err);
        return 0;
    case WN_DISPATCH_PLUGIN_FATAL:
        return wn_die(WN_EXIT_PLUGIN, "%s", dispatch_err);
    case WN_DISPATCH_STREAM_ENDED:
        if (reader->status == WN_EXIT_TRANSIENT)
            return wn_session_stop_requested(sess) ? 0 : STREAM_LOST;
        return wn_die(reader->status ? wn_exit_status(reader->status) : WN_EXIT_SERVER, "%s",
                      reader->err[0] ? reader->err : "the replication stream ended");
    case WN_DISPATCH_TABLES_UNKNOWN:
    case WN_DISPATCH_SNAPSHOT_LOST:
        return wn_session_stop_requested(sess) ? 0 : STREAM_LOST;
    case WN_DISPATCH_PROTOCOL_ERROR:
    case WN_DISPATCH_SERVER_STATE:
        return wn_die(WN_EXIT_SERVER, "%s", dispatch_err);
    case WN_DISPATCH_INTERNAL:
        return wn_die(WN_EXIT_INTERNAL, "%s", dispatch_err);
    case WN_DISPATCH_REWIND:
        if (wn_session_stop_requested(sess))
            return 0;
        if (reader->status != 0 && reader->status != WN_EXIT_TRANSIENT)
            return wn_die(wn_exit_status(reader->status), "%s", reader->err);
        return STREAM_REWOUND;
    }
    return WN_EXIT_SERVER;
}

/* The initial snapshot under way, read again from its first row for a rewind on the same
 * connection. false when it cannot be (said): a new connection takes a new one. */
static bool snapshot_again(pipeline *r)
{
    char why[ERR_MAX];

    if (r->snap == NULL || wn_snapshot_restart(r->snap, 1, why, sizeof why) == 0)
        return true;
    wn_log(WN_LOG_WARNING, "reading the initial snapshot again: %s; taking a new one", why);
    end_snapshot(r);
    return false;
}

/*
 * A rewind streams again from the resume position on the same connection, so the walsender
 * (its PID) stays, and the slot is free only between the end of the old copy and the start of
 * the new one (the walsender releases it when a copy ends), a few round trips. Falls back to a new
 * connection, said in one line, when that fails (CONNECT_FAILED with *exit_status -1: nothing ends
 * the run).
 */
static connect_result restart_in_place(pipeline *r, int *exit_status)
{
    char err[ERR_MAX] = "", text[WN_LSN_TEXT_MAX];
    int status;

    *exit_status = -1;
    if (r->endpos != WN_LSN_INVALID && r->resume >= r->endpos)
        return CONNECT_NOTHING_TO_DO;
    if (!snapshot_again(r))
        return CONNECT_FAILED;
    status = wn_stream_restart(r->stream, r->resume, wants_messages(r), err, sizeof err);
    if (status == WN_EXIT_STOPPED)
        return CONNECT_STOPPED;
    if (status != 0) {
        wn_log(WN_LOG_WARNING,
               "rewind: cannot stream again on the same connection: %s; "
               "opening a new one",
               err);
        return CONNECT_FAILED;
    }
    wn_log(WN_LOG_INFO,
           "replication stream rewound to %s on the same connection (walsender PID %d)",
           wn_lsn_format(r->resume, text), wn_stream_backend_pid(r->stream));
    return CONNECT_OK;
}

/* Connect, stream until the stream ends, and again while it was only lost. */
static int run_pipeline(pipeline *r, wn_session *sess)
{
    char err[ERR_MAX];
    reader_args reader = {.err = ""};
    const char *lost = NULL; /* why the previous stream ended; NULL before the first */
    bool rewound = false;    /* it ended for a rewind: no reconnection backoff */

    for (;;) {
        wn_dispatch_result result;
        int status = 0;

        /* After a rewind the stream is still open: it starts again on its own connection. */
        switch (r->stream ? restart_in_place(r, &status)
                          : connect_with_retry(r, sess, lost, rewound, &status)) {
        case CONNECT_OK:
            break;
        case CONNECT_FAILED:
            if (status >= 0)
                return status;
            wn_stream_close(r->stream);
            r->stream = NULL;
            lost = "a plugin asked for a rewind";
            continue;
        case CONNECT_STOPPED:
        case CONNECT_NOTHING_TO_DO:
            return 0;
        }
        result = stream_once(r, sess, &reader, err, sizeof err);
        status = after_stream(result, err, &reader, sess);
        if (status >= 0)
            return status;
        rewound = status == STREAM_REWOUND;
        if (rewound)
            continue;
        wn_stream_close(r->stream);
        r->stream = NULL;
        /* A lost stream takes a new snapshot. */
        end_snapshot(r);
        lost = result == WN_DISPATCH_TABLES_UNKNOWN || result == WN_DISPATCH_SNAPSHOT_LOST
                   ? err
                   : reader.err;
    }
}

int wn_pipeline_create_slot(const wn_config *config, wn_session *session)
{
    wn_server_state server;
    char err[ERR_MAX];
    int status =
        wn_setup_prepare(config, NULL, NULL, wn_session_stop_fd(session), &server, err, sizeof err);

    if (status == WN_EXIT_STOPPED) {
        wn_log(WN_LOG_INFO, "%s (asked by %s); nothing more was created", err,
               wn_session_signal_name(session));
        return 0;
    }
    return status == 0 ? 0 : wn_die(wn_exit_status(status), "%s", err);
}

int wn_pipeline_run(const wn_config *config, wn_plugin *plugins, size_t nplugins, wn_lsn endpos,
                    wn_session *session, wn_metrics *metrics, wn_notify *notify)
{
    pipeline r = {
        .config = config,
        .endpos = endpos,
        .seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16),
        .stop_fd = wn_session_stop_fd(session),
        .metrics = metrics,
        .notify = notify,
    };
    int status;

    if (wn_reload_begin(&r.reload, config, plugins, nplugins, session) != 0) {
        wn_pipeline_unload_plugins(plugins, nplugins);
        return wn_die(WN_EXIT_INTERNAL, "out of memory starting the run");
    }
    wn_metrics_set_running(metrics, true);
    status = run_pipeline(&r, session);
    wn_metrics_set_state(metrics, WN_RUN_STOPPING);
    wn_metrics_set_running(metrics, false);
    wn_notify_stopping(notify);

    /* The plugins are shut down while the slot is still held, so that a standby taking over
     * never meets a sink this host has not released yet. */
    wn_reload_end(&r.reload);
    end_snapshot(&r);
    if (r.stream != NULL)
        wn_stream_close(r.stream);
    /* Lent to the plugins until their shutdown returned. */
    wn_setup_free_catalog(&r.catalog);
    wn_tablewatch_destroy(r.watch);
    free(r.table_oids);
    return status;
}
