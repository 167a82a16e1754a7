/*
 * redisserver: a throwaway redis-server for the redis plugin's tests, started by the test itself
 * on a Unix socket in the test's folder (never TCP, never the system's service), with an
 * append-only file fsynced at every write (appendfsync always), and redis-cli to look at it.
 * Every helper fails the running Check test on an error.
 */
#ifndef WN_TEST_REDISSERVER_H
#define WN_TEST_REDISSERVER_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct redis_server {
    pid_t pid;           /* 0 when not running */
    char dir[PATH_MAX];  /* its folder: configuration, append-only file, log */
    char sock[108];      /* the Unix socket's path (sun_path's size) */
    char conf[PATH_MAX]; /* its configuration file */
} redis_server;

/* A server in dir/redis (made here); extra holds more configuration lines (or ""). Waits until
 * it answers PING. */
void redis_server_start(redis_server *rs, const char *dir, const char *extra);
/* The same server again, on its files (after redis_server_kill). */
void redis_server_restart(redis_server *rs);
/* SIGKILL, reaped. */
void redis_server_kill(redis_server *rs);
/* SIGTERM, reaped; for the end of a test (nothing is raised: it also runs after a failure). */
void redis_server_stop(redis_server *rs);

/* redis-cli --raw on the server with the arguments (ended by NULL); its standard output, to
 * free. Fails the test unless it exits 0. */
char *redis_cli(const redis_server *rs, const char *const *args);

/* One entry of a stream as the plugin writes it. */
typedef struct redis_entry {
    char *id;
    char *lsn, *seq, *xid, *op, *table, *data; /* NULL when missing */
} redis_entry;

/* Every entry of the stream, in order; *count of them; to free with redis_entries_free. */
redis_entry *redis_entries(const redis_server *rs, const char *stream, size_t *count);
void redis_entries_free(redis_entry *entries, size_t count);

/* XLEN, and GET (NULL when missing, to free). */
long long redis_xlen(const redis_server *rs, const char *stream);
char *redis_get(const redis_server *rs, const char *key);

#endif
