/*
 * replay: a file's events through the dispatcher's policies (policy.c), without a stream.
 *
 *   check every line -> init the plugins -> per line: begin (new transaction), handle under the
 *   block's policy -> commit -> flush once at the end
 *
 * The lines of one transaction (the same lsn, one after the other) are delivered between one
 * begin and one commit. Nothing is acknowledged anywhere, so a rewind a plugin asks for delivers
 * the file again from its first line, after the plugin's backoff; the events it named meet its
 * policy there, as they would in a stream.
 */
#include "replay.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatchstate.h"
#include "exitcode.h"
#include "handoff.h"
#include "log.h"
#include "pipeline.h"
#include "policy.h"
#include "replayline.h"

#define ERR_MAX 1024

/* What the plugins learn of a source they are not connected to. */
typedef struct context {
    walnotify_source source;
    char *database;          /* the conninfo's dbname, or "" */
    walnotify_table *tables; /* each instance's, one after the other */
} context;

typedef struct replay {
    const wn_config *config;
    const char *file;
    FILE *in;
    size_t lines;   /* lines the file held when it was checked: only those are replayed (a
                       dead-letter file being replayed may grow meanwhile) */
    size_t line_no; /* the line being delivered, from 1 */
    char *line;     /* getline's buffer */
    size_t line_cap;
    wn_replay_line *ev; /* the line read back */
    wn_session *session;
    wn_dispatcher_options options; /* a run's options without a stream: no metrics, no notify */
    dispatcher d;
} replay;

/* ---- reading ----------------------------------------------------------------------------- */

/* The next line into r->line, its newline cut off; false at the end of the file. */
static bool next_line(replay *r)
{
    ssize_t n = getline(&r->line, &r->line_cap, r->in);

    if (n < 0)
        return false;
    if (n > 0 && r->line[n - 1] == '\n')
        r->line[n - 1] = '\0';
    r->line_no++;
    return true;
}

/* Every line is an event of source.tables, or the replay does not start. Returns 0 or exit 1. */
static int check_lines(replay *r)
{
    char why[ERR_MAX / 2];

    while (next_line(r)) {
        if (wn_replay_line_read(&r->config->source, r->line, r->ev, why, sizeof why) != 0)
            return wn_die(WN_EXIT_CONFIG, "%s:%zu: %s", r->file, r->line_no, why);
    }
    if (ferror(r->in))
        return wn_die(WN_EXIT_CONFIG, "%s: %s", r->file, strerror(errno));
    r->lines = r->line_no;
    return 0;
}

static void rewind_file(replay *r)
{
    rewind(r->in);
    r->line_no = 0;
}

/* ---- the plugins' context ---------------------------------------------------------------- */

static char *conninfo_dbname(const char *conninfo)
{
    PQconninfoOption *options = PQconninfoParse(conninfo, NULL);
    char *name = NULL;

    for (PQconninfoOption *o = options; o != NULL && o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "dbname") == 0 && o->val != NULL)
            name = strdup(o->val);
    }
    PQconninfoFree(options);
    return name != NULL ? name : strdup("");
}

/* The source without a server (no system identifier, no version) and each instance's tables
 * without columns or key. Returns 0 or -1 when out of memory. */
static int lend_context(const wn_config *config, wn_plugin *plugins, size_t nplugins, context *c)
{
    const wn_source_config *src = &config->source;
    size_t used = 0;

    c->database = conninfo_dbname(src->conninfo);
    c->tables = calloc(nplugins * src->ntables + 1, sizeof *c->tables);
    if (c->database == NULL || c->tables == NULL)
        return -1;
    c->source = (walnotify_source){.size = sizeof c->source,
                                   .database = c->database,
                                   .slot = src->slot,
                                   .publication = src->publication};
    for (size_t i = 0; i < nplugins; i++) {
        walnotify_table *mine = c->tables + used;
        size_t n = 0;

        for (size_t t = 0; t < src->ntables; t++) {
            if (!plugins[i].config->watches[t])
                continue;
            mine[n++] = (walnotify_table){
                .size = sizeof *mine,
                .table = src->tables[t].qualified,
                .schema = src->tables[t].schema,
                .name = src->tables[t].name,
                .ops = plugins[i].config->ops & wn_plugin_ops(&plugins[i]) &
                       ~(unsigned)WALNOTIFY_OP_MESSAGE,
            };
        }
        used += n;
        wn_plugin_set_context(&plugins[i], &c->source, mine, n, 0);
    }
    return 0;
}

/* init until OK, with the block's backoff after RETRY. Returns 0, an exit status, or
 * WN_EXIT_STOPPED. */
static int init_plugin(wn_plugin *plugin, wn_session *session)
{
    int delay_ms = plugin->config->retry_initial_ms;

    for (;;) {
        walnotify_status status = wn_plugin_init(plugin);

        if (status == WALNOTIFY_OK)
            return 0;
        if (status != WALNOTIFY_RETRY)
            return wn_die(WN_EXIT_PLUGIN,
                          "plugin \"%s\" (%s) failed to start (init returned FATAL)",
                          plugin->config->name, plugin->config->path);
        wn_log(WN_LOG_WARNING, "plugin \"%s\": init answered RETRY; calling it again in %d ms",
               plugin->config->name, delay_ms);
        if (wn_session_wait(session, delay_ms))
            return WN_EXIT_STOPPED;
        delay_ms = delay_ms > plugin->config->retry_max_ms / 2 ? plugin->config->retry_max_ms
                                                               : delay_ms * 2;
    }
}

/* ---- delivering -------------------------------------------------------------------------- */

static bool wants(const instance *inst, const wn_replay_line *ev)
{
    return (inst->ops & ev->event.op) && inst->plugin->config->watches[ev->table_index];
}

/* commit for every instance that saw begin; the transaction is then closed. */
static flow commit_transaction(dispatcher *d)
{
    if (!d->xact.open)
        return FLOW_CONTINUE;
    for (size_t i = 0; i < d->ninstances; i++) {
        instance *inst = &d->instances[i];

        if (!inst->began)
            continue;
        if (wn_policy_call(d, inst, CALL_COMMIT, NULL) != FLOW_CONTINUE)
            return FLOW_DONE;
        inst->began = false;
        inst->dirty = true;
    }
    d->xact.open = false;
    return FLOW_CONTINUE;
}

static void abort_transaction(dispatcher *d)
{
    for (size_t i = 0; d->xact.open && i < d->ninstances; i++) {
        instance *inst = &d->instances[i];

        if (inst->began && inst->plugin->descriptor.abort)
            inst->plugin->descriptor.abort(inst->plugin->state, &d->xact.txn);
        inst->began = false;
    }
    d->xact.open = false;
}

/* A line of another transaction than the one in hand commits that one first. */
static flow enter_transaction(dispatcher *d, const walnotify_event *ev)
{
    if (d->xact.open && d->xact.txn.commit_lsn == ev->commit_lsn && d->xact.txn.xid == ev->xid)
        return FLOW_CONTINUE;
    if (commit_transaction(d) != FLOW_CONTINUE)
        return FLOW_DONE;
    memset(&d->xact, 0, sizeof d->xact);
    d->xact.open = true;
    d->xact.txn = (walnotify_txn){.size = sizeof d->xact.txn,
                                  .commit_lsn = ev->commit_lsn,
                                  .xid = ev->xid,
                                  .commit_time = ev->commit_time,
                                  .kind = WALNOTIFY_TXN_CHANGES};
    return FLOW_CONTINUE;
}

static flow deliver(dispatcher *d, const wn_replay_line *ev)
{
    bool delivered = false;

    if (enter_transaction(d, &ev->event) != FLOW_CONTINUE)
        return FLOW_DONE;
    for (size_t i = 0; i < d->ninstances; i++) {
        instance *inst = &d->instances[i];

        if (!wants(inst, ev))
            continue;
        if (!inst->began) {
            if (wn_policy_call(d, inst, CALL_BEGIN, NULL) != FLOW_CONTINUE)
                return FLOW_DONE;
            inst->began = true;
        }
        inst->dirty = true;
        if (wn_policy_deliver(d, inst, &ev->event) != FLOW_CONTINUE)
            return FLOW_DONE;
        delivered = true;
    }
    d->events += delivered;
    return FLOW_CONTINUE;
}

/* Every instance flushed (the last time: a stop no longer cuts its retries short), then the
 * dead-letter files synced. */
static flow flush_all(dispatcher *d)
{
    d->finishing = true;
    for (size_t i = 0; i < d->ninstances; i++) {
        if (wn_policy_call(d, &d->instances[i], CALL_FLUSH, NULL) != FLOW_CONTINUE)
            return FLOW_DONE;
        d->instances[i].dirty = false;
    }
    return wn_policy_sync_dead_letters(d);
}

/* The file once, from its first line: FLOW_DONE with d->result saying why it ended early. */
static flow deliver_file(replay *r)
{
    char why[ERR_MAX / 2];

    rewind_file(r);
    while (r->line_no < r->lines && next_line(r)) {
        if (wn_handoff_stop_requested(r->d.handoff)) {
            r->d.result = WN_DISPATCH_STOPPED;
            return FLOW_DONE;
        }
        if (wn_replay_line_read(&r->config->source, r->line, r->ev, why, sizeof why) != 0)
            return fail(&r->d, WN_DISPATCH_INTERNAL, "%s:%zu changed while it was replayed: %s",
                        r->file, r->line_no, why);
        if (deliver(&r->d, r->ev) != FLOW_CONTINUE)
            return FLOW_DONE;
    }
    if (r->line_no < r->lines)
        return fail(&r->d, WN_DISPATCH_INTERNAL, "%s: shorter than when it was checked", r->file);
    if (commit_transaction(&r->d) != FLOW_CONTINUE)
        return FLOW_DONE;
    return flush_all(&r->d);
}

/* A stop: the transaction in hand abandoned, what was finished made durable. */
static int stopped(replay *r)
{
    size_t line = r->line_no;

    abort_transaction(&r->d);
    if (flush_all(&r->d) != FLOW_CONTINUE)
        return wn_die(WN_EXIT_PLUGIN, "the last flush failed after a stop: %s", r->d.err);
    wn_log(WN_LOG_INFO, "stopped by %s at line %zu of %s (the lines before it were delivered)",
           wn_session_signal_name(r->session), line, r->file);
    return 0;
}

/* Delivers the file until it went through, again after every rewind. Returns the exit status. */
static int deliver_until_done(replay *r)
{
    dispatcher *d = &r->d;
    bool done = false;

    while (!done) {
        for (size_t i = 0; i < d->ninstances; i++)
            wn_requests_new_stream(&d->instances[i].plugin->requests);
        d->finishing = false;
        d->events = 0;
        done = deliver_file(r) == FLOW_CONTINUE;
        if (done || d->result != WN_DISPATCH_REWIND)
            break;
        abort_transaction(d);
        wn_log(WN_LOG_INFO, "a plugin asked for a rewind: replaying %s again from its first line",
               r->file);
        wn_policy_wait_before_rewind(d);
        if (wn_handoff_stop_requested(d->handoff))
            return stopped(r);
    }
    wn_policy_log_skips(d);
    if (!done && d->result == WN_DISPATCH_STOPPED)
        return stopped(r);
    abort_transaction(d);
    if (!done)
        return wn_die(d->result == WN_DISPATCH_PLUGIN_FATAL ? WN_EXIT_PLUGIN : WN_EXIT_INTERNAL,
                      "%s", d->err);
    wn_log(WN_LOG_INFO, "replayed %zu line(s) of %s: %" PRIu64 " event(s) delivered", r->lines,
           r->file, d->events);
    return 0;
}

/* ---- the run ----------------------------------------------------------------------------- */

/* The instances replayed to: every plugin, or the one named `only`. */
static int choose_instances(replay *r, wn_plugin *plugins, size_t nplugins, const char *only)
{
    dispatcher *d = &r->d;

    d->instances = calloc(nplugins ? nplugins : 1, sizeof *d->instances);
    if (d->instances == NULL)
        return wn_die(WN_EXIT_INTERNAL, "out of memory");
    for (size_t i = 0; i < nplugins; i++) {
        if (only != NULL && strcmp(plugins[i].config->name, only) != 0)
            continue;
        d->instances[d->ninstances].plugin = &plugins[i];
        d->instances[d->ninstances].ops = plugins[i].config->ops & wn_plugin_ops(&plugins[i]);
        d->ninstances++;
    }
    if (d->ninstances == 0)
        return wn_die(WN_EXIT_CONFIG, "--plugin: %s has no plugin block named \"%s\"",
                      r->config->file, only);
    return 0;
}

static int start_instances(replay *r)
{
    for (size_t i = 0; i < r->d.ninstances; i++) {
        int status = init_plugin(r->d.instances[i].plugin, r->session);

        if (status != 0)
            return status;
    }
    if (wn_policy_open_dead_letters(&r->d) != 0)
        return wn_die(WN_EXIT_PLUGIN, "%s", r->d.err);
    return 0;
}

static int replay_file(replay *r, wn_plugin *plugins, size_t nplugins, const char *only)
{
    context c = {0};
    int status = check_lines(r);

    if (status == 0)
        status = choose_instances(r, plugins, nplugins, only);
    if (status == 0 && lend_context(r->config, plugins, nplugins, &c) != 0)
        status = wn_die(WN_EXIT_INTERNAL, "out of memory");
    if (status == 0)
        status = start_instances(r);
    if (status == WN_EXIT_STOPPED || (status == 0 && wn_session_stop_requested(r->session))) {
        wn_log(WN_LOG_INFO, "stopped by %s before replaying %s", wn_session_signal_name(r->session),
               r->file);
        status = 0;
    } else if (status == 0) {
        status = deliver_until_done(r);
    }
    for (size_t i = 0; r->d.instances != NULL && i < r->d.ninstances; i++)
        wn_deadletter_close(r->d.instances[i].deadletter);
    /* The plugins are shut down (they borrow the context) before it is freed. */
    wn_pipeline_unload_plugins(plugins, nplugins);
    free(r->d.instances);
    free(c.tables);
    free(c.database);
    return status;
}

int wn_replay_run(const wn_config *config, wn_plugin *plugins, size_t nplugins, const char *file,
                  const char *only, wn_session *session)
{
    char err[ERR_MAX];
    replay r = {.config = config, .file = file, .session = session};
    int status;

    r.options.config = config;
    r.d.options = &r.options;
    r.d.err = err;
    r.d.errlen = sizeof err;
    err[0] = '\0';
    r.in = fopen(file, "re");
    r.ev = malloc(sizeof *r.ev);
    r.d.handoff = wn_handoff_create(1);
    if (r.in == NULL || r.ev == NULL || r.d.handoff == NULL) {
        status = r.in == NULL ? wn_die(WN_EXIT_CONFIG, "%s: %s", file, strerror(errno))
                              : wn_die(WN_EXIT_INTERNAL, "out of memory");
        wn_pipeline_unload_plugins(plugins, nplugins);
    } else if (!wn_session_attach(session, r.d.handoff)) {
        wn_log(WN_LOG_INFO, "stopped by %s before replaying %s", wn_session_signal_name(session),
               file);
        wn_pipeline_unload_plugins(plugins, nplugins);
        status = 0;
    } else {
        status = replay_file(&r, plugins, nplugins, only);
        wn_session_detach(session);
    }
    if (r.d.handoff != NULL)
        wn_handoff_destroy(r.d.handoff);
    if (r.in != NULL)
        fclose(r.in);
    free(r.ev);
    free(r.line);
    return status;
}
