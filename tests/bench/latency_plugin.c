/*
 * latency: a benchmark sink that measures how long a row took to reach a plugin. The row carries
 * the writer's clock_timestamp() as microseconds since 1970 in a bigint column; at the entry of
 * handle the plugin reads CLOCK_REALTIME and keeps the difference. At shutdown it writes the
 * count and the p50/p95/p99/max of those differences (microseconds) to the file named by its
 * `output` setting, one "key value" pair a line.
 *
 * Writer and reader share the machine's clock, so the difference is the end-to-end latency:
 * commit, WAL decoding in the walsender, the network, the host's reader and dispatcher.
 */
#include <walnotify/plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Samples kept at most (8 bytes each); beyond that the run is counted but not measured. */
#define LATENCY_MAX_SAMPLES ((size_t)64 * 1024 * 1024)
#define LATENCY_INITIAL_SAMPLES ((size_t)64 * 1024)

typedef struct latency_state {
    const walnotify_host *host; /* borrowed until shutdown returns */
    char *column;               /* owned copy of the `column` setting */
    char *output;               /* owned copy of the `output` setting */
    int64_t *samples;           /* microseconds, one per measured row */
    size_t nsamples;
    size_t cap;
    uint64_t missing;  /* rows without a readable timestamp column */
    uint64_t dropped;  /* rows past LATENCY_MAX_SAMPLES */
} latency_state;

static const walnotify_setting latency_settings[] = {
    {.name = "column",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "ts_us",
     .description = "bigint column holding the writer's clock_timestamp() in microseconds"},
    {.name = "output",
     .type = WALNOTIFY_SETTING_PATH,
     .default_value = NULL,
     .description = "file the percentiles are written to at shutdown"},
    {.name = NULL},
};

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);

    if (copy != NULL)
        memcpy(copy, s, n);
    return copy;
}

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static walnotify_status latency_init(const walnotify_host *host, void **state)
{
    const char *column = host->get_string(host, "column");
    const char *output = host->get_string(host, "output");
    latency_state *st = calloc(1, sizeof *st);

    if (st == NULL)
        goto fail_alloc;
    st->host = host;
    st->column = copy_string(column != NULL ? column : "ts_us");
    st->output = output != NULL ? copy_string(output) : NULL;
    st->samples = malloc(LATENCY_INITIAL_SAMPLES * sizeof *st->samples);
    if (st->column == NULL || st->output == NULL || st->samples == NULL)
        goto fail_members;
    st->cap = LATENCY_INITIAL_SAMPLES;
    *state = st;
    return WALNOTIFY_OK;

fail_members:
    free(st->samples);
    free(st->output);
    free(st->column);
    free(st);
fail_alloc:
    host->log(host, WALNOTIFY_LOG_ERROR, "out of memory (or no output setting)");
    return WALNOTIFY_FATAL;
}

/* The column's value as a number, or false when it is absent, NULL or not an integer. */
static bool column_value(const latency_state *st, const walnotify_event *event, int64_t *out)
{
    for (size_t i = 0; i < event->ncolumns; i++) {
        const walnotify_column *c = &event->columns[i];
        char *end = NULL;
        long long v;

        if (strcmp(c->name, st->column) != 0)
            continue;
        if (c->kind != WALNOTIFY_VALUE_TEXT || c->length == 0)
            return false;
        errno = 0;
        v = strtoll(c->value, &end, 10); /* value is NUL-terminated by the ABI */
        if (errno != 0 || end != c->value + c->length)
            return false;
        *out = v;
        return true;
    }
    return false;
}

static bool grow(latency_state *st)
{
    size_t cap = st->cap * 2;
    int64_t *more;

    if (cap > LATENCY_MAX_SAMPLES)
        return false;
    more = realloc(st->samples, cap * sizeof *more);
    if (more == NULL)
        return false;
    st->samples = more;
    st->cap = cap;
    return true;
}

static walnotify_status latency_handle(void *state, const walnotify_event *event)
{
    int64_t arrived = now_us(); /* first, so that our own work does not count */
    latency_state *st = state;
    int64_t written;

    if (!column_value(st, event, &written)) {
        st->missing++;
        return WALNOTIFY_OK;
    }
    if (st->nsamples == st->cap && !grow(st)) {
        st->dropped++;
        return WALNOTIFY_OK;
    }
    st->samples[st->nsamples++] = arrived - written;
    return WALNOTIFY_OK;
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* The nearest-rank percentile of sorted samples; n is at least 1. */
static int64_t percentile(const int64_t *sorted, size_t n, unsigned pct)
{
    size_t rank = (n * pct + 99) / 100;

    return sorted[rank == 0 ? 0 : rank - 1];
}

static void write_report(latency_state *st)
{
    FILE *f = fopen(st->output, "w");
    size_t n = st->nsamples;

    if (f == NULL) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "cannot write %s: %s", st->output,
                      strerror(errno));
        return;
    }
    fprintf(f, "count %zu\nmissing %" PRIu64 "\ndropped %" PRIu64 "\n", n, st->missing,
            st->dropped);
    if (n > 0) {
        qsort(st->samples, n, sizeof *st->samples, compare_i64);
        fprintf(f, "p50_us %" PRId64 "\np95_us %" PRId64 "\np99_us %" PRId64 "\nmax_us %" PRId64
                   "\n",
                percentile(st->samples, n, 50), percentile(st->samples, n, 95),
                percentile(st->samples, n, 99), st->samples[n - 1]);
    }
    if (fclose(f) != 0)
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "cannot write %s: %s", st->output,
                      strerror(errno));
}

static void latency_shutdown(void *state)
{
    latency_state *st = state;

    if (st == NULL)
        return;
    write_report(st);
    free(st->samples);
    free(st->output);
    free(st->column);
    free(st);
}

static const walnotify_plugin latency_plugin = {
    .magic = WALNOTIFY_PLUGIN_MAGIC,
    .abi_major = WALNOTIFY_ABI_MAJOR,
    .abi_minor = WALNOTIFY_ABI_MINOR,
    .size = sizeof(walnotify_plugin),
    .name = "latency",
    .version = "1.0.0",
    .settings = latency_settings,
    .init = latency_init,
    .handle = latency_handle,
    .shutdown = latency_shutdown,
};

const walnotify_plugin *walnotify_plugin_entry(void)
{
    return &latency_plugin;
}
