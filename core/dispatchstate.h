/*
 * dispatchstate: what the dispatcher knows while it runs. dispatcher.c owns it (one per stream,
 * on its stack) and hands it explicitly to the modules that do parts of its job:
 *   policy.c      what a failing plugin call leads to (retries, skips, stops, rewinds)
 *   tableident.c  which configured table a relation is; renamed, dropped, made-again tables
 *   events.c      protocol messages become events (relation cache, columns, identities, arena)
 * Only the dispatcher and those modules include this header.
 */
#ifndef WN_DISPATCHSTATE_H
#define WN_DISPATCHSTATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "deadletter.h"
#include "decoder.h"
#include "dispatcher.h"
#include "metrics.h"
#include "relcache.h"

/* Events skipped one after the other for one reason, said in one log line when the run ends:
 * a rewind that skips a batch skips thousands. */
typedef struct skip_run {
    uint64_t count;             /* events in the run; 0: none */
    wn_lsn first_lsn, last_lsn; /* commit LSN and seq of its first and last event */
    uint32_t first_seq, last_seq;
    char reason[256]; /* its events' reason, cut short */
} skip_run;

/* What the dispatcher tracks of each plugin instance. */
typedef struct instance {
    wn_plugin *plugin;
    unsigned ops;              /* what the block asks for and the plugin handles: a 1.0 plugin never
                                  receives an operation it does not know */
    bool began;                /* saw begin for the transaction in hand */
    bool dirty;                /* handled or committed something since its last flush */
    wn_deadletter *deadletter; /* where skipped events go; NULL when the policy never skips */
    uint64_t skipped;          /* events skipped in this run */
    skip_run skips;            /* skipped, not yet logged */
    wn_plugin_metrics *metrics; /* its counters; NULL without a metrics endpoint */
} instance;

/* What the dispatcher knows of the identity of one configured table. */
typedef struct table_identity {
    uint32_t oid;          /* the OID it is believed to have: at the start, then as the catalog
                              check saw it change; what its changes are known by */
    uint32_t stream_relid; /* the relation id this stream last described it with; 0: none yet */
    uint32_t warned_old;   /* the last change of OID that was warned about, not to say it */
    uint32_t warned_new;   /* twice (the stream and the catalog check both notice it) */
} table_identity;

/* The transaction in hand: from a Begin to its Commit. */
typedef struct transaction {
    bool open;
    walnotify_txn txn;
    uint32_t seq;                   /* data changes seen so far, before filtering */
    uint32_t messages_since_change; /* messages since the last data change (or the Begin):
                                       the k of a message's identity */
} transaction;

typedef enum flow {
    FLOW_CONTINUE,
    FLOW_DONE /* d->result says why */
} flow;

typedef struct dispatcher {
    const wn_dispatcher_options *options;
    wn_handoff *handoff;
    wn_decoder *decoder;
    wn_relcache *relcache;
    table_identity *tables; /* [source.ntables] */
    uint32_t *expected;     /* [source.ntables], what the catalog check asks about */
    wn_table_seen *seen;    /* [source.ntables], what it answers */
    instance *instances;
    size_t ninstances;

    transaction xact;
    wn_lsn finished;        /* safe to acknowledge once the plugins are flushed */
    wn_lsn published;       /* last value handed to the reader */
    bool snapshot_pending;  /* options->snapshot not finished: publish nothing past snapshot_cap */
    bool snapshot_reading;  /* its rows are being delivered now */
    wn_lsn snapshot_cap;    /* below the consistent point (or the stream's start, if later) */
    bool unflushed;         /* some plugin is dirty */
    bool finishing;         /* the last flush: a stop request no longer cuts its retries short */
    unsigned final_retries; /* retries of the last flush after a stop request */
    int64_t next_flush_ms;
    uint32_t group_transactions; /* flush = "commit": positions finished since the last flush */
    int64_t group_start_ms;      /* when the first of them was */
    wn_lsn checked_upto;         /* the last catalog check covers acknowledgements up to here */
    uint64_t acknowledgements;   /* positions published in this stream */
    uint64_t checks;             /* catalog checks made for them */

    walnotify_column *columns;     /* [WN_MAX_COLUMNS], the new row of the event being built */
    walnotify_column *old_columns; /* [WN_MAX_COLUMNS] */
    char *arena;                   /* NUL-terminated copies of the event's values */
    size_t arena_capacity;

    uint64_t events;    /* delivered to at least one plugin */
    int rewind_wait_ms; /* WN_DISPATCH_REWIND: the requester's backoff */

    wn_dispatch_result result;
    char *err;
    size_t errlen;
} dispatcher;

/* Records why the run ends: result, and one line in err. Returns FLOW_DONE. */
__attribute__((format(printf, 3, 4))) static inline flow
fail(dispatcher *d, wn_dispatch_result result, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    vsnprintf(d->err, d->errlen, format, args);
    va_end(args);
    d->result = result;
    return FLOW_DONE;
}

#endif
