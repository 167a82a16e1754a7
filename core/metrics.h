/*
 * metrics: what an operator's Prometheus scrapes. The dispatching thread (the main thread: it
 * connects, waits as a standby, and dispatches) is the only writer of every counter and gauge
 * here; the HTTP thread only reads. So nothing takes a lock per event: each value is a relaxed
 * atomic that its one writer loads, changes and stores (a plain move on common hardware), and a
 * reader sees each value whole, if a moment old. Every function taking a wn_metrics or
 * wn_plugin_metrics pointer accepts NULL and does nothing (no endpoint configured: the
 * dispatcher pays nothing).
 */
#ifndef WN_METRICS_H
#define WN_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "lsn.h"

/* Upper bounds of the duration histograms' buckets, in nanoseconds: from 5 µs (a handle that
 * appends to a buffer) to 5 minutes (a flush blocked on its sink). */
#define WN_METRICS_BUCKETS 24

/* The plugin calls that are timed. */
typedef enum wn_metrics_call {
    WN_METRICS_HANDLE,
    WN_METRICS_COMMIT,
    WN_METRICS_FLUSH,
    WN_METRICS_CALLS
} wn_metrics_call;

/* The operations events are counted by: the bits of WALNOTIFY_OP_*, in that order. */
#define WN_METRICS_OPS 6

typedef struct wn_histogram {
    _Atomic uint64_t counts[WN_METRICS_BUCKETS + 1]; /* per bucket, not cumulative; the last:
                                                        above every bound */
    _Atomic uint64_t sum;                            /* in ticks of wn_metrics_clock */
} wn_histogram;

/* How call durations are read: the CPU's time-stamp counter where it runs at a constant rate
 * (a quarter of clock_gettime's cost, which counts per event), else nanoseconds of
 * CLOCK_MONOTONIC. */
typedef struct wn_ticks {
    bool tsc;                            /* ticks are the time-stamp counter's */
    double ns_per_tick;                  /* 1 for CLOCK_MONOTONIC */
    uint64_t bounds[WN_METRICS_BUCKETS]; /* the buckets' upper bounds, in ticks */
} wn_ticks;

typedef struct wn_plugin_metrics {
    const char *name;            /* the instance's, borrowed from the configuration */
    size_t ntables;              /* source.ntables */
    const wn_ticks *ticks;       /* the metrics' own */
    _Atomic uint64_t *delivered; /* [(ntables + 1) * WN_METRICS_OPS]: the configured tables,
                                    then events of no table (messages) */
    wn_histogram calls[WN_METRICS_CALLS];
    _Atomic uint64_t retries;      /* RETRY answered by any call, each retried */
    _Atomic uint64_t skipped;      /* events the policy skipped */
    _Atomic uint64_t dead_letters; /* lines written to the dead-letter file */
    _Atomic uint64_t rewinds;      /* streams ended because it asked for a rewind */
} wn_plugin_metrics;

/* Where the run is, for /readyz, the gauges and systemd's STATUS. */
typedef enum wn_run_state {
    WN_RUN_STARTING,     /* before the first stream or wait */
    WN_RUN_STREAMING,    /* this host holds the slot, the plugins are started */
    WN_RUN_STANDBY,      /* another process holds the slot; this host waits for it */
    WN_RUN_RECONNECTING, /* the server is away; waiting to connect again */
    WN_RUN_STOPPING      /* the loop ended */
} wn_run_state;

typedef struct wn_metrics {
    const wn_config *config; /* borrowed: names of the plugins and tables */
    wn_plugin_metrics *plugins;
    size_t nplugins;
    size_t queue_capacity;            /* items the reader's queue holds at most */
    _Atomic int state;                /* wn_run_state */
    _Atomic bool running;             /* the run's loop is going: /healthz */
    _Atomic uint64_t acknowledged;    /* the last position handed to the server */
    _Atomic uint64_t wal_end;         /* the server's WAL end, as its last message said */
    _Atomic int64_t pending_since_ns; /* monotonic time the oldest transaction received and
                                         not acknowledged came; 0: none */
    _Atomic uint64_t reconnections;   /* streams started again after one was lost */
    _Atomic uint64_t queue_items;     /* the reader's queue, at the dispatcher's last look */
    _Atomic bool snapshot_pending;    /* an initial snapshot is configured and not finished */
    int64_t open_since_ns;            /* writer's own: when the transaction in hand came */
    wn_ticks ticks;                   /* set once at creation */
} wn_metrics;

/* For the configuration's plugins and tables. NULL when out of memory. */
wn_metrics *wn_metrics_create(const wn_config *config, size_t queue_capacity);
void wn_metrics_destroy(wn_metrics *metrics);

/* Plugin i's counters (NULL when metrics is NULL). */
wn_plugin_metrics *wn_metrics_plugin(wn_metrics *metrics, size_t i);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t wn_metrics_now_ns(void);
/* The clock of call durations: pass its reading at a call's start to wn_metrics_call_done. */
uint64_t wn_metrics_clock(const wn_plugin_metrics *plugin);

/* One event finished by the plugin (handled, or skipped): table is its index in source.tables,
 * -1 for none (a message); op a WALNOTIFY_OP_* bit. */
void wn_metrics_delivered(wn_plugin_metrics *plugin, long table, unsigned op);
/* A call that began at start (wn_metrics_clock) returned. */
void wn_metrics_call_done(wn_plugin_metrics *plugin, wn_metrics_call call, uint64_t start);
void wn_metrics_retry(wn_plugin_metrics *plugin);
void wn_metrics_skipped(wn_plugin_metrics *plugin);
void wn_metrics_dead_letter(wn_plugin_metrics *plugin);
void wn_metrics_rewind(wn_plugin_metrics *plugin);

/* A transaction's Begin came (the dispatcher's own clock reading, in nanoseconds). */
void wn_metrics_transaction_received(wn_metrics *metrics);
/* lsn was handed to the server; open says a transaction is in hand (received, not finished). */
void wn_metrics_acknowledged(wn_metrics *metrics, wn_lsn lsn, bool open);
void wn_metrics_wal_end(wn_metrics *metrics, wn_lsn lsn);
void wn_metrics_queue(wn_metrics *metrics, size_t items);
void wn_metrics_reconnected(wn_metrics *metrics);
void wn_metrics_set_state(wn_metrics *metrics, wn_run_state state);
void wn_metrics_set_running(wn_metrics *metrics, bool running);
void wn_metrics_set_snapshot_pending(wn_metrics *metrics, bool pending);

/* Whether the loop runs (/healthz) and whether this host streams (/readyz). */
bool wn_metrics_alive(const wn_metrics *metrics);
bool wn_metrics_ready(const wn_metrics *metrics);

/* Writes every metric in the Prometheus text exposition format (version 0.0.4). Returns 0, or
 * -1 when out writes failed. Called from any thread. */
int wn_metrics_render(const wn_metrics *metrics, FILE *out);

#endif
