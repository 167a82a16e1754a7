/*
 * itest_ctx: one end-to-end test's own database, slot, publication and temporary folder, made by
 * itest_begin and removed by itest_end (the folder is kept when WN_ITEST_KEEP is set, to look at
 * what the host wrote), and the configuration files written into that folder.
 */
#ifndef WN_TEST_ITEST_CTX_H
#define WN_TEST_ITEST_CTX_H

#include <limits.h>

#include <libpq-fe.h>

#include "itest_env.h"

typedef struct itest_ctx {
    char db[64];            /* database, slot and publication of this test */
    char slot[64];
    char pub[64];
    char dir[PATH_MAX];     /* temporary folder: configurations, plugin outputs, host outputs */
    char conninfo[1024];    /* libpq conninfo of db, for configurations */
    PGconn *conn;           /* an ordinary session on db, owned by the context */
    int runs;               /* host runs so far: names their output files */
} itest_ctx;

/* name is a short lower-case word naming the test. */
void itest_begin(itest_ctx *ctx, const char *name);
void itest_end(itest_ctx *ctx);
itest_path itest_file(const itest_ctx *ctx, const char *name); /* ctx->dir/name */

/*
 * A configuration file ctx->dir/name with the test's source (conninfo, slot, publication),
 * `tables` (the inside of the list, e.g. "\"public.a\", \"public.b\""), the status interval,
 * log_level debug, and the plugin list given by format (the inside of `plugins = ( ... )`).
 */
itest_path itest_config(const itest_ctx *ctx, const char *name, const char *tables,
                        int status_interval_ms, const char *format, ...)
    __attribute__((format(printf, 5, 6)));
/* itest_config with source_extra (e.g. "reconnect_initial_ms = 50;") at the end of the source. */
itest_path itest_config_extra(const itest_ctx *ctx, const char *name, const char *tables,
                              int status_interval_ms, const char *source_extra,
                              const char *format, ...) __attribute__((format(printf, 6, 7)));
/* itest_config with one plugin block: named plugin, the test fixture
 * build/tests/fixtures/FIXTURE.so, and settings (the inside of its `settings = { ... }`). */
itest_path itest_fixture_config(const itest_ctx *ctx, const char *name, const char *tables,
                                int status_interval_ms, const char *plugin, const char *fixture,
                                const char *settings);

#endif
