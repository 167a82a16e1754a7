/*
 * dispatcher: the thread that turns queued messages into events and hands them to the plugins,
 * in commit order, each event to every plugin before the next; retries transient failures;
 * flushes the plugins once per status interval (with source.flush = "commit": as soon as nothing
 * more waits, or per bounded group while busy) and publishes the position that is then safe to
 * acknowledge.
 */
#ifndef WN_DISPATCHER_H
#define WN_DISPATCHER_H

#include <stddef.h>

#include "config.h"
#include "handoff.h"
#include "loader.h"
#include "lsn.h"
#include "metrics.h"
#include "notify.h"
#include "reload.h"
#include "snapshot.h"
#include "tablewatch.h"

typedef enum wn_dispatch_result {
    WN_DISPATCH_STOPPED,        /* a stop was requested */
    WN_DISPATCH_ENDPOS,         /* --endpos reached */
    WN_DISPATCH_PLUGIN_FATAL,   /* a plugin failed fatally: exit 2 */
    WN_DISPATCH_STREAM_ENDED,   /* the reader ended without a stop request */
    WN_DISPATCH_PROTOCOL_ERROR, /* a message could not be decoded or made no sense */
    WN_DISPATCH_INTERNAL,       /* walnotify itself failed (out of memory): exit 2 */
    WN_DISPATCH_SERVER_STATE,   /* a configured table was renamed, dropped or taken out of the
                                   publication: a person must look (exit 3) */
    WN_DISPATCH_TABLES_UNKNOWN, /* the tables could not be checked before acknowledging (the
                                   server going down?): end this stream, as if it were lost */
    WN_DISPATCH_SNAPSHOT_LOST,  /* the initial snapshot could not be read on (its connection
                                   lost): take a new one, as after a lost stream */
    WN_DISPATCH_REWIND          /* a plugin asked for a rewind or named failed events: nothing
                                   new was flushed or published; stream again from the last
                                   published position (after the requester's backoff, which
                                   the dispatcher has already waited) */
} wn_dispatch_result;

typedef struct wn_dispatcher_options {
    const wn_config *config;
    wn_plugin *plugins; /* initialised, in configuration order */
    size_t nplugins;
    wn_lsn start_lsn;             /* the slot's confirmed_flush_lsn when streaming began */
    wn_lsn endpos;                /* 0: none */
    const uint32_t *table_oids;   /* [config->source.ntables]: each table's OID when streaming
                                     began (0 or NULL: unknown) */
    wn_tables_reader read_tables; /* NULL: no catalog check before acknowledging */
    wn_tables_sender send_tables; /* NULL: read_tables sends its query itself */
    void *tables_watch;           /* read_tables' first argument */
    /* The initial snapshot still to deliver in this stream (NULL: none): its rows come when the
       stream reaches its consistent point, and until every plugin flushed its end marker and
       record_snapshot returned 0, no position at or past that point is published. */
    wn_snapshot *snapshot;
    wn_lsn snapshot_lsn; /* its consistent point */
    /* Records durably that the snapshot finished; 0, or an errno value with one line in err.
       The handle may be ended there: the dispatcher no longer uses it. */
    int (*record_snapshot)(void *arg, wn_lsn consistent_point, char *err, size_t errlen);
    void *record_arg;
    wn_metrics *metrics; /* counters for the metrics endpoint; NULL: none */
    wn_notify *notify;   /* systemd's watchdog, pinged between items; NULL: none */
    /* SIGHUP's reloads, applied between transactions; NULL: none. When set, the instances are
       its plugins, not `plugins` (which then serves nothing). */
    wn_reload *reload;
} wn_dispatcher_options;

/*
 * Runs until stop, endpos, a fatal plugin failure, a configured table renamed, dropped or taken
 * out of the publication, a rewind, or the end of the stream. Before returning it aborts the
 * transaction in hand, flushes the plugins and publishes the last safe position (not after a
 * fatal failure or a rewind), and marks the dispatcher done. err receives one line for the
 * failures.
 */
wn_dispatch_result wn_dispatch_run(const wn_dispatcher_options *options, wn_handoff *handoff,
                                   char *err, size_t errlen);

#endif
