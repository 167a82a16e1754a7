/*
 * redissink: what the redis plugin's tests share: a configuration with one redis block, and the
 * check that a stream holds each committed row of a table exactly once.
 */
#ifndef WN_TEST_REDISSINK_H
#define WN_TEST_REDISSINK_H

#include "itest.h"
#include "redisserver.h"

#define REDIS_PLUGIN "build/plugins/redis.so"

/* A configuration of one redis block on table public.t, the server's socket as address;
 * `block` adds block keys and `settings` settings (each ending with ';'). */
itest_path redissink_config(const itest_ctx *ctx, const char *name, const redis_server *rs,
                            const char *block, const char *settings);

/*
 * Checks that the stream holds exactly one entry per row of public.t (ids from `SELECT id FROM
 * t`), in commit order: IDs increasing, each ID the event's identity (its lsn and seq), data
 * naming the row's id, and the stream's walnotify-last-id key equal to its last entry's ID.
 * Returns the number of entries.
 */
size_t redissink_assert_once(const itest_ctx *ctx, const redis_server *rs, const char *stream);

/* XINFO STREAM's entries-added: every entry ever added, trimmed ones included. */
long long redissink_entries_added(const redis_server *rs, const char *stream);

#endif
