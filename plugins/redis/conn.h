/*
 * conn: the plugin's one connection to Redis through hiredis: connecting (TCP or a Unix socket,
 * bounded by timeout_ms), logging in with the password read from password_file, SELECTing the
 * database, and one pipelined exchange of many commands at a time.
 */
#ifndef REDIS_CONN_H
#define REDIS_CONN_H

#include "settings.h"

#include <hiredis/hiredis.h>

#include <stdbool.h>
#include <stddef.h>

#define REDIS_WHY_MAX 512

typedef struct redis_conn redis_conn;

typedef enum redis_conn_status {
    REDIS_CONN_OK = 0,
    REDIS_CONN_DOWN = 1,   /* no connection, or it was lost: may succeed later */
    REDIS_CONN_REFUSED = 2 /* the server refused the login or the database: a person must act */
} redis_conn_status;

/*
 * Reads the password file (refused unless only root or walnotify's user can change it; never
 * through a symbolic link). Connects nothing yet. Logs why and returns NULL on failure.
 */
redis_conn *redis_conn_new(const walnotify_host *host, const redis_settings *settings);

/* Closes the connection and forgets the password. NULL is allowed. */
void redis_conn_free(redis_conn *conn);

/* Connects, logs in and SELECTs unless connected already; on failure one line in why. */
redis_conn_status redis_conn_ensure(redis_conn *conn, char *why, size_t whylen);

/* Drops the connection (the next redis_conn_ensure connects again). */
void redis_conn_drop(redis_conn *conn);

/*
 * Sends the RESP commands of head then tail (already formatted; len bytes each), all of them,
 * without waiting for a reply. Returns REDIS_CONN_DOWN, the connection dropped and the reason in
 * why, when the connection failed on the way. Must be connected.
 */
redis_conn_status redis_conn_send(redis_conn *conn, const char *head, size_t headlen,
                                  const char *tail, size_t taillen, char *why, size_t whylen);

/*
 * Reads the `nreplies` replies of what was sent, keeping only the last one in *last (to
 * freeReplyObject). The first error among the others is kept in why (*why is "" when there is
 * none). Returns REDIS_CONN_DOWN, the connection dropped, when it failed or timed out on the way
 * (what the server did of the commands is then unknown).
 */
redis_conn_status redis_conn_collect(redis_conn *conn, size_t nreplies, redisReply **last,
                                     char *why, size_t whylen);

#endif
