/* metrics: counters written by the dispatching thread, rendered for Prometheus by any other. */
#include "metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <walnotify/plugin.h>

#define RELAXED memory_order_relaxed

static const int64_t bucket_ns[WN_METRICS_BUCKETS] = {
    5000,       10000,       25000,       50000,       100000,       250000,
    500000,     1000000,     2500000,     5000000,     10000000,     25000000,
    50000000,   100000000,   250000000,   500000000,   1000000000,   2500000000,
    5000000000, 10000000000, 30000000000, 60000000000, 120000000000, 300000000000,
};

static const char *const op_names[WN_METRICS_OPS] = {"insert",   "update",   "delete",
                                                     "truncate", "snapshot", "message"};

static const char *const call_names[WN_METRICS_CALLS] = {"handle", "commit", "flush"};

/* The one writer's increment: no read-modify-write instruction, no lock. */
static void bump(_Atomic uint64_t *counter)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, RELAXED) + 1, RELAXED);
}

static uint64_t get(const _Atomic uint64_t *value)
{
    return atomic_load_explicit(value, RELAXED);
}

int64_t wn_metrics_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>

/* Whether /proc/cpuinfo says the time-stamp counter ticks at one rate, also in sleep states. */
static bool constant_tsc(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[4096];
    bool constant = false, nonstop = false;

    if (f == NULL)
        return false;
    while (fgets(line, sizeof line, f) != NULL && strncmp(line, "flags", 5) != 0)
        ;
    if (!feof(f)) {
        constant = strstr(line, " constant_tsc") != NULL;
        nonstop = strstr(line, " nonstop_tsc") != NULL;
    }
    fclose(f);
    return constant && nonstop;
}

static uint64_t read_tsc(void)
{
    return __rdtsc();
}
#else
static bool constant_tsc(void)
{
    return false;
}

static uint64_t read_tsc(void)
{
    return 0;
}
#endif

/* The counter's rate against CLOCK_MONOTONIC over 20 ms, once. */
static void calibrate(wn_ticks *ticks)
{
    struct timespec pause = {.tv_nsec = 20000000};
    int64_t ns0, ns1;
    uint64_t t0, t1;

    ticks->tsc = constant_tsc();
    ticks->ns_per_tick = 1.0;
    if (ticks->tsc) {
        ns0 = wn_metrics_now_ns();
        t0 = read_tsc();
        nanosleep(&pause, NULL);
        ns1 = wn_metrics_now_ns();
        t1 = read_tsc();
        if (t1 > t0 && ns1 > ns0)
            ticks->ns_per_tick = (double)(ns1 - ns0) / (double)(t1 - t0);
        else
            ticks->tsc = false;
    }
    for (size_t b = 0; b < WN_METRICS_BUCKETS; b++)
        ticks->bounds[b] = (uint64_t)((double)bucket_ns[b] / ticks->ns_per_tick);
}

wn_metrics *wn_metrics_create(const wn_config *config, size_t queue_capacity)
{
    wn_metrics *m = calloc(1, sizeof *m);
    size_t cells = (config->source.ntables + 1) * WN_METRICS_OPS;

    if (m == NULL)
        return NULL;
    m->config = config;
    m->queue_capacity = queue_capacity;
    calibrate(&m->ticks);
    m->plugins = calloc(config->nplugins ? config->nplugins : 1, sizeof *m->plugins);
    if (m->plugins == NULL)
        goto free_metrics;
    m->nplugins = config->nplugins;
    for (size_t i = 0; i < m->nplugins; i++) {
        m->plugins[i].name = config->plugins[i].name;
        m->plugins[i].ntables = config->source.ntables;
        m->plugins[i].ticks = &m->ticks;
        m->plugins[i].delivered = calloc(cells, sizeof *m->plugins[i].delivered);
        if (m->plugins[i].delivered == NULL)
            goto free_plugins;
    }
    return m;

free_plugins:
    for (size_t i = 0; i < m->nplugins; i++)
        free(m->plugins[i].delivered);
    free(m->plugins);
free_metrics:
    free(m);
    return NULL;
}

void wn_metrics_destroy(wn_metrics *metrics)
{
    if (metrics == NULL)
        return;
    for (size_t i = 0; i < metrics->nplugins; i++)
        free(metrics->plugins[i].delivered);
    free(metrics->plugins);
    free(metrics);
}

wn_plugin_metrics *wn_metrics_plugin(wn_metrics *metrics, size_t i)
{
    return metrics != NULL && i < metrics->nplugins ? &metrics->plugins[i] : NULL;
}

/* ---- the writer's side ------------------------------------------------------------------- */

void wn_metrics_delivered(wn_plugin_metrics *plugin, long table, unsigned op)
{
    size_t row;

    if (plugin == NULL || op == 0)
        return;
    row = table < 0 || (size_t)table >= plugin->ntables ? plugin->ntables : (size_t)table;
    bump(&plugin->delivered[row * WN_METRICS_OPS + (size_t)__builtin_ctz(op)]);
}

uint64_t wn_metrics_clock(const wn_plugin_metrics *plugin)
{
    if (plugin == NULL)
        return 0;
    return plugin->ticks->tsc ? read_tsc() : (uint64_t)wn_metrics_now_ns();
}

void wn_metrics_call_done(wn_plugin_metrics *plugin, wn_metrics_call call, uint64_t start)
{
    wn_histogram *h;
    uint64_t now, took;
    size_t b = 0;

    if (plugin == NULL)
        return;
    h = &plugin->calls[call];
    now = wn_metrics_clock(plugin);
    /* A thread moved to another CPU may read a counter a little behind. */
    took = now > start ? now - start : 0;
    while (b < WN_METRICS_BUCKETS && took > plugin->ticks->bounds[b])
        b++;
    bump(&h->counts[b]);
    atomic_store_explicit(&h->sum, get(&h->sum) + took, RELAXED);
}

void wn_metrics_retry(wn_plugin_metrics *plugin)
{
    if (plugin != NULL)
        bump(&plugin->retries);
}

void wn_metrics_skipped(wn_plugin_metrics *plugin)
{
    if (plugin != NULL)
        bump(&plugin->skipped);
}

void wn_metrics_dead_letter(wn_plugin_metrics *plugin)
{
    if (plugin != NULL)
        bump(&plugin->dead_letters);
}

void wn_metrics_rewind(wn_plugin_metrics *plugin)
{
    if (plugin != NULL)
        bump(&plugin->rewinds);
}

void wn_metrics_transaction_received(wn_metrics *metrics)
{
    if (metrics == NULL)
        return;
    metrics->open_since_ns = wn_metrics_now_ns();
    if (atomic_load_explicit(&metrics->pending_since_ns, RELAXED) == 0)
        atomic_store_explicit(&metrics->pending_since_ns, metrics->open_since_ns, RELAXED);
}

void wn_metrics_acknowledged(wn_metrics *metrics, wn_lsn lsn, bool open)
{
    if (metrics == NULL)
        return;
    atomic_store_explicit(&metrics->acknowledged, lsn, RELAXED);
    /* Everything finished is acknowledged now: what is still waiting is the transaction in
     * hand, if any. */
    atomic_store_explicit(&metrics->pending_since_ns, open ? metrics->open_since_ns : 0, RELAXED);
}

void wn_metrics_wal_end(wn_metrics *metrics, wn_lsn lsn)
{
    if (metrics != NULL && lsn > get(&metrics->wal_end))
        atomic_store_explicit(&metrics->wal_end, lsn, RELAXED);
}

void wn_metrics_queue(wn_metrics *metrics, size_t items)
{
    if (metrics != NULL)
        atomic_store_explicit(&metrics->queue_items, items, RELAXED);
}

void wn_metrics_reconnected(wn_metrics *metrics)
{
    if (metrics != NULL)
        bump(&metrics->reconnections);
}

void wn_metrics_set_state(wn_metrics *metrics, wn_run_state state)
{
    if (metrics != NULL)
        atomic_store_explicit(&metrics->state, (int)state, RELAXED);
}

void wn_metrics_set_running(wn_metrics *metrics, bool running)
{
    if (metrics != NULL)
        atomic_store_explicit(&metrics->running, running, RELAXED);
}

void wn_metrics_set_snapshot_pending(wn_metrics *metrics, bool pending)
{
    if (metrics != NULL)
        atomic_store_explicit(&metrics->snapshot_pending, pending, RELAXED);
}

bool wn_metrics_alive(const wn_metrics *metrics)
{
    return atomic_load_explicit(&metrics->running, RELAXED);
}

bool wn_metrics_ready(const wn_metrics *metrics)
{
    return atomic_load_explicit(&metrics->running, RELAXED) &&
           atomic_load_explicit(&metrics->state, RELAXED) == WN_RUN_STREAMING;
}

/* ---- rendering ----------------------------------------------------------------------------- */

/* A label value: backslash, double quote and newline escaped, as the format asks. */
static void put_label(FILE *out, const char *value)
{
    for (const char *c = value; *c != '\0'; c++) {
        if (*c == '\\' || *c == '"')
            fprintf(out, "\\%c", *c);
        else if (*c == '\n')
            fputs("\\n", out);
        else
            fputc(*c, out);
    }
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void plugin_sample(FILE *out, const char *name, const wn_plugin_metrics *p, uint64_t value)
{
    fprintf(out, "%s{plugin=\"", name);
    put_label(out, p->name);
    fprintf(out, "\"} %" PRIu64 "\n", value);
}

static void render_delivered(const wn_metrics *m, FILE *out)
{
    const wn_source_config *source = &m->config->source;

    family(out, "walnotify_events_delivered_total", "counter",
           "Events a plugin finished with (handled, or skipped to its dead-letter file).");
    for (size_t i = 0; i < m->nplugins; i++) {
        const wn_plugin_config *config = &m->config->plugins[i];

        for (size_t t = 0; t <= source->ntables; t++) {
            if (t < source->ntables && !config->watches[t])
                continue;
            for (unsigned op = 0; op < WN_METRICS_OPS; op++) {
                bool message = (1u << op) == WALNOTIFY_OP_MESSAGE;

                if (!(config->ops & (1u << op)) || message != (t == source->ntables))
                    continue;
                fputs("walnotify_events_delivered_total{plugin=\"", out);
                put_label(out, config->name);
                fputs("\",table=\"", out);
                put_label(out, t < source->ntables ? source->tables[t].qualified : "");
                fprintf(out, "\",op=\"%s\"} %" PRIu64 "\n", op_names[op],
                        get(&m->plugins[i].delivered[t * WN_METRICS_OPS + op]));
            }
        }
    }
}

static void render_histogram(const wn_metrics *m, FILE *out, wn_metrics_call call)
{
    char name[64], help[128];

    snprintf(name, sizeof name, "walnotify_%s_duration_seconds", call_names[call]);
    snprintf(help, sizeof help, "How long the plugin's %s calls took.", call_names[call]);
    family(out, name, "histogram", help);
    for (size_t i = 0; i < m->nplugins; i++) {
        const wn_histogram *h = &m->plugins[i].calls[call];
        uint64_t cumulative = 0;

        for (size_t b = 0; b <= WN_METRICS_BUCKETS; b++) {
            cumulative += get(&h->counts[b]);
            fprintf(out, "%s_bucket{plugin=\"", name);
            put_label(out, m->plugins[i].name);
            if (b < WN_METRICS_BUCKETS)
                fprintf(out, "\",le=\"%g\"} %" PRIu64 "\n", (double)bucket_ns[b] / 1e9, cumulative);
            else
                fprintf(out, "\",le=\"+Inf\"} %" PRIu64 "\n", cumulative);
        }
        fprintf(out, "%s_sum{plugin=\"", name);
        put_label(out, m->plugins[i].name);
        fprintf(out, "\"} %.9f\n", (double)get(&h->sum) * m->plugins[i].ticks->ns_per_tick / 1e9);
        /* The count is the +Inf bucket as read above, so the two always agree. */
        fprintf(out, "%s_count{plugin=\"", name);
        put_label(out, m->plugins[i].name);
        fprintf(out, "\"} %" PRIu64 "\n", cumulative);
    }
}

/* One counter per plugin, read at offset within wn_plugin_metrics. */
static void render_plugin_counter(const wn_metrics *m, FILE *out, const char *name,
                                  const char *help, size_t offset)
{
    family(out, name, "counter", help);
    for (size_t i = 0; i < m->nplugins; i++)
        plugin_sample(out, name, &m->plugins[i],
                      get((const _Atomic uint64_t *)((const char *)&m->plugins[i] + offset)));
}

static void gauge(FILE *out, const char *name, const char *help, double value)
{
    family(out, name, "gauge", help);
    fprintf(out, "%s %.17g\n", name, value);
}

static void render_positions(const wn_metrics *m, FILE *out)
{
    uint64_t acked = get(&m->acknowledged);
    uint64_t end = get(&m->wal_end);
    int64_t since = atomic_load_explicit(&m->pending_since_ns, RELAXED);
    int64_t now = wn_metrics_now_ns();

    gauge(out, "walnotify_acknowledged_position_bytes",
          "The WAL position last acknowledged to the server, as a number (0/1A2B3C8 is 0x1A2B3C8).",
          (double)acked);
    gauge(out, "walnotify_server_wal_end_bytes",
          "The server's WAL end as its last message to walnotify said, as a number.", (double)end);
    gauge(out, "walnotify_lag_bytes",
          "WAL between the acknowledged position and the server's WAL end.",
          end > acked ? (double)(end - acked) : 0.0);
    gauge(out, "walnotify_oldest_unacknowledged_transaction_age_seconds",
          "How long ago the oldest transaction received and not yet acknowledged came; 0 when "
          "everything received is acknowledged.",
          since > 0 && now > since ? (double)(now - since) / 1e9 : 0.0);
}

static void render_run(const wn_metrics *m, FILE *out)
{
    int state = atomic_load_explicit(&m->state, RELAXED);

    family(out, "walnotify_reconnections_total", "counter",
           "Replication streams started again after one was lost.");
    fprintf(out, "walnotify_reconnections_total %" PRIu64 "\n", get(&m->reconnections));
    gauge(out, "walnotify_queue_items", "Messages waiting in the reader's queue.",
          (double)get(&m->queue_items));
    gauge(out, "walnotify_queue_capacity_items", "The most messages the reader's queue holds.",
          (double)m->queue_capacity);
    gauge(out, "walnotify_slot_held", "1 while this host holds the slot and streams, else 0.",
          state == WN_RUN_STREAMING ? 1 : 0);
    gauge(out, "walnotify_standby",
          "1 while this host waits as a standby because another process holds the slot, else 0.",
          state == WN_RUN_STANDBY ? 1 : 0);
    gauge(out, "walnotify_snapshot_pending",
          "1 while a configured initial snapshot is not finished, else 0; its rows are "
          "walnotify_events_delivered_total{op=\"snapshot\"}.",
          atomic_load_explicit(&m->snapshot_pending, RELAXED) ? 1 : 0);
    family(out, "walnotify_build_info", "gauge", "The walnotify version and plugin ABI; always 1.");
    fprintf(out, "walnotify_build_info{version=\"%s\",abi=\"%d.%d\"} 1\n", WALNOTIFY_VERSION,
            WALNOTIFY_ABI_MAJOR, WALNOTIFY_ABI_MINOR);
}

int wn_metrics_render(const wn_metrics *m, FILE *out)
{
    render_delivered(m, out);
    for (int call = 0; call < WN_METRICS_CALLS; call++)
        render_histogram(m, out, (wn_metrics_call)call);
    render_plugin_counter(m, out, "walnotify_retries_total",
                          "Plugin calls that answered RETRY and were called again.",
                          offsetof(wn_plugin_metrics, retries));
    render_plugin_counter(m, out, "walnotify_events_skipped_total",
                          "Events the plugin's policy skipped.",
                          offsetof(wn_plugin_metrics, skipped));
    render_plugin_counter(m, out, "walnotify_dead_letters_total",
                          "Events written to the plugin's dead-letter file.",
                          offsetof(wn_plugin_metrics, dead_letters));
    render_plugin_counter(m, out, "walnotify_rewinds_total",
                          "Streams ended and read again because the plugin asked for a rewind.",
                          offsetof(wn_plugin_metrics, rewinds));
    render_positions(m, out);
    render_run(m, out);
    return ferror(out) ? -1 : 0;
}
