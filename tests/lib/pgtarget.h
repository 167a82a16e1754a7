/*
 * pgtarget: the postgres plugin's tests' target, a second database on the harness's server
 * (the test's own database with "_t"), and what they compare between the two.
 */
#ifndef WN_TEST_PGTARGET_H
#define WN_TEST_PGTARGET_H

#include <libpq-fe.h>

#include "itest_ctx.h"
#include "itest_host.h"

#define PGTARGET_PLUGIN "build/plugins/postgres.so"

/* Creates the target database of the test; a session on it, owned by the caller. */
PGconn *pgtarget_create(const itest_ctx *ctx);
/* Closes the session and drops the target database. */
void pgtarget_drop(const itest_ctx *ctx, PGconn *target);

/* A configuration with one postgres block named "pg" into the target: `block` holds more of the
 * block's keys, `settings` more settings (each "" for none); ops are the four changes unless block
 * sets them. */
itest_path pgtarget_config(const itest_ctx *ctx, const char *name, const char *tables,
                           const char *block, const char *settings);
/* The same block as text, to put in a list of plugins of one's own. */
void pgtarget_block(const itest_ctx *ctx, char *out, size_t outlen, const char *block,
                    const char *settings);
/* The same block connecting to the target as user. */
void pgtarget_block_as(const itest_ctx *ctx, char *out, size_t outlen, const char *user,
                       const char *block, const char *settings);

/* Fails unless the two queries give the same rows, in their order. */
void pgtarget_assert_same(PGconn *source, const char *source_query, PGconn *target,
                          const char *target_query);
/* Runs walnotify -c conf to the current position; fails unless it exits with code. */
void pgtarget_run(itest_ctx *ctx, itest_host *host, const char *conf, int code);

#endif
