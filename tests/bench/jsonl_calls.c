/*
 * jsonl_calls: the jsonl plugin's path alone, for instruction counts under callgrind (which are
 * the same from run to run, unlike times on a busy machine). Loads a jsonl.so, lends it the
 * host's encoder as the loader does, and hands it EVENTS inserts of make bench's 5-column row,
 * ROWS_PER_TXN per transaction, written to /dev/null without fsync.
 *
 *     cc -O2 -g -std=c11 -D_GNU_SOURCE -Iinclude -Icore -o build/jsonl_calls \
 *        tests/bench/jsonl_calls.c core/encoder.c core/jsonbuf.c core/namecache.c -ldl
 *     valgrind --tool=callgrind \
 *       --toggle-collect=jsonl_begin --toggle-collect=jsonl_handle --toggle-collect=jsonl_commit \
 *       build/jsonl_calls build/plugins/jsonl.so 200000 10
 *
 * counts the plugin's calls only (making up the rows costs the same in every build), so their
 * total over EVENTS is the jsonl path's instructions per event. JSONL_CALLS_OUT=FILE writes the
 * lines to FILE instead of /dev/null, to compare two builds' output.
 */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <walnotify/plugin.h>

#include "encoder.h"

static wn_encoder *bench_encoder;

static void bench_log(const walnotify_host *host, walnotify_log_level level, const char *format,
                      ...) __attribute__((format(printf, 3, 4)));

static void bench_log(const walnotify_host *host, walnotify_log_level level, const char *format,
                      ...)
{
    va_list args;

    (void)host;
    (void)level;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
}

static const char *bench_get_string(const walnotify_host *host, const char *name)
{
    const char *out = getenv("JSONL_CALLS_OUT"); /* to compare two builds' lines */

    (void)host;
    if (strcmp(name, "path") != 0)
        return NULL;
    return out != NULL ? out : "/dev/null";
}

static bool bench_get_boolean(const walnotify_host *host, const char *name)
{
    (void)host;
    (void)name;
    return false; /* fsync off, as make bench runs it */
}

static const char *bench_encode_json(const walnotify_host *host, const walnotify_event *event,
                                     size_t *length)
{
    (void)host;
    return wn_encoder_event(bench_encoder, event, length);
}

/* One insert of make bench's row for id: bigint, integer, text, numeric(12,2), timestamptz. */
typedef struct bench_row {
    char id[24], qty[16], name[48], amount[24], created[40];
    walnotify_column cols[5];
} bench_row;

static void fill_row(bench_row *row, uint64_t g)
{
    static const char *const names[5] = {"id", "qty", "name", "amount", "created"};
    char *texts[5] = {row->id, row->qty, row->name, row->amount, row->created};

    snprintf(row->id, sizeof row->id, "%" PRIu64, g);
    snprintf(row->qty, sizeof row->qty, "%" PRIu64, g % 1000);
    /* md5 is 32 hex digits: any 32 do for the encoder. */
    snprintf(row->name, sizeof row->name, "customer %016" PRIx64 "%016" PRIx64,
             g * UINT64_C(0x9E3779B97F4A7C15), g ^ UINT64_C(0xC2B2AE3D27D4EB4F));
    snprintf(row->amount, sizeof row->amount, "%" PRIu64 ".%02" PRIu64, g % 100000 / 100,
             g % 100);
    snprintf(row->created, sizeof row->created, "2024-01-%02" PRIu64 " %02" PRIu64 ":%02" PRIu64
             ":%02" PRIu64 "+00", 1 + g / 86400 % 28, g / 3600 % 24, g / 60 % 60, g % 60);
    for (int i = 0; i < 5; i++)
        row->cols[i] = (walnotify_column){.name = names[i], .type_oid = 25, .typmod = -1,
                                          .kind = WALNOTIFY_VALUE_TEXT, .value = texts[i],
                                          .length = strlen(texts[i])};
}

static int run(const walnotify_plugin *plugin, uint64_t events, uint64_t per_txn)
{
    walnotify_host host = {
        .size = sizeof host,
        .abi_major = WALNOTIFY_ABI_MAJOR,
        .abi_minor = WALNOTIFY_ABI_MINOR,
        .instance_name = "bench",
        .log = bench_log,
        .get_string = bench_get_string,
        .get_boolean = bench_get_boolean,
        .encode_json = bench_encode_json,
    };
    void *state = NULL;
    bench_row row;

    if (plugin->init(&host, &state) != WALNOTIFY_OK)
        return 1;
    for (uint64_t g = 1; g <= events; g += per_txn) {
        uint64_t lsn = UINT64_C(0x16B3740000) + g * 64;
        walnotify_txn txn = {.size = sizeof txn, .commit_lsn = lsn, .xid = (uint32_t)(1000 + g),
                             .commit_time = INT64_C(1795604400123456) + (int64_t)g};
        if (plugin->begin(state, &txn) != WALNOTIFY_OK)
            return 1;
        for (uint64_t k = 0; k < per_txn && g + k <= events; k++) {
            fill_row(&row, g + k);
            walnotify_event ev = {.size = sizeof ev, .table = "public.bench", .schema = "public",
                                  .name = "bench", .op = WALNOTIFY_OP_INSERT, .commit_lsn = lsn,
                                  .xid = txn.xid, .commit_time = txn.commit_time,
                                  .seq = (uint32_t)k, .columns = row.cols, .ncolumns = 5};
            if (plugin->handle(state, &ev) != WALNOTIFY_OK)
                return 1;
        }
        if (plugin->commit(state, &txn) != WALNOTIFY_OK)
            return 1;
    }
    plugin->shutdown(state);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s JSONL.so EVENTS ROWS_PER_TXN\n", argv[0]);
        return 2;
    }
    uint64_t events = strtoull(argv[2], NULL, 10);
    uint64_t per_txn = strtoull(argv[3], NULL, 10);
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (library == NULL || per_txn == 0) {
        fprintf(stderr, "%s: %s\n", argv[1], library == NULL ? dlerror() : "ROWS_PER_TXN is 0");
        return 2;
    }
    walnotify_plugin_entry_fn entry;
    void *symbol = dlsym(library, WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
    memcpy(&entry, &symbol, sizeof entry);
    bench_encoder = wn_encoder_create();
    if (symbol == NULL || bench_encoder == NULL)
        return 2;
    int rc = run(entry(), events, per_txn);
    wn_encoder_destroy(bench_encoder);
    dlclose(library);
    return rc;
}
