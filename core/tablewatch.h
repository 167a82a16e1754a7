/*
 * tablewatch: what the catalog says now of the configured tables, read over an ordinary
 * connection of its own. A table taken out of the publication leaves nothing at all in the
 * stream, so before an acknowledgement moves the dispatcher asks here whether every configured
 * table is still published under the OID it had.
 */
#ifndef WN_TABLEWATCH_H
#define WN_TABLEWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define WN_QUALIFIED_MAX (2 * WN_NAME_MAX + 2) /* "schema.name" and its NUL */

/* One configured table as the catalog has it now. */
typedef struct wn_table_seen {
    uint32_t oid;                        /* the table under its configured name; 0: none */
    bool published;                      /* the publication carries its changes */
    bool expected_exists;                /* the OID asked about still names a relation... */
    char expected_now[WN_QUALIFIED_MAX]; /* ...called "schema.name" now ("" when not)... */
    bool expected_now_configured;        /* ...which is also in source.tables */
} wn_table_seen;

/* How a read of the catalog went. */
typedef enum wn_tables_read {
    WN_TABLES_READ = 0, /* seen[] is filled */
    WN_TABLES_UNKNOWN,  /* the connection failed, timed out or was stopped: try again later */
    WN_TABLES_REFUSED   /* the server refused the query (the publication is gone) */
} wn_tables_read;

/*
 * Reads the catalog for every table of source.tables, in order: seen[i] for table i, where
 * expected[i] is the OID walnotify believes it has (0: none, NULL: all 0). stop_fd (or -1) cuts a
 * wait short when it becomes readable. Returns how it went, with one line in err when it failed.
 */
typedef wn_tables_read (*wn_tables_reader)(void *watch, const uint32_t *expected,
                                           wn_table_seen *seen, int stop_fd, char *err,
                                           size_t errlen);

/*
 * Sends the same query without waiting for its answer, so that the server works on it while the
 * caller does something else; the next read with the same expected OIDs takes its answer (a read
 * with others drops it and asks again). Returns WN_TABLES_READ once sent, or a failure with one
 * line in err.
 */
typedef wn_tables_read (*wn_tables_sender)(void *watch, const uint32_t *expected, int stop_fd,
                                           char *err, size_t errlen);

typedef struct wn_tablewatch wn_tablewatch;

/* A watch for config's tables and publication; it connects when first read. NULL when out of
 * memory. utf8: as the server state said (false for a SQL_ASCII database). */
wn_tablewatch *wn_tablewatch_create(const wn_config *config, bool utf8);

/* A wn_tables_reader; watch is a wn_tablewatch. The connection is dropped after a failure and
 * made again at the next read. */
wn_tables_read wn_tablewatch_read(void *watch, const uint32_t *expected, wn_table_seen *seen,
                                  int stop_fd, char *err, size_t errlen);

/* A wn_tables_sender; watch is a wn_tablewatch. */
wn_tables_read wn_tablewatch_send(void *watch, const uint32_t *expected, int stop_fd, char *err,
                                  size_t errlen);

/* Drops the connection, if any: the next read makes a new one. */
void wn_tablewatch_reset(wn_tablewatch *watch);

/* What became of a configured table, from what the catalog says and the OID it should have. */
typedef enum wn_table_verdict {
    WN_TABLE_SAME,       /* published under the OID it had */
    WN_TABLE_MADE_AGAIN, /* another table under its name (dropped and created again), published */
    WN_TABLE_RENAMED,    /* the table it was now has a name or schema source.tables lacks */
    WN_TABLE_DROPPED,    /* no table under its name, and the one it was is gone */
    WN_TABLE_UNPUBLISHED /* the publication does not carry it (any more) */
} wn_table_verdict;

/*
 * Judges what the catalog says of configured table `qualified` against the OID it should have
 * (expected; 0: whatever it has). For RENAMED, DROPPED and UNPUBLISHED, why receives one line
 * naming the table, what happened and the remedy (every remedy it gives lets the next start
 * deliver the table's changes not yet acknowledged, or says which it passes over).
 */
wn_table_verdict wn_table_judge(const wn_table_seen *seen, uint32_t expected, const char *qualified,
                                const char *publication, char *why, size_t whylen);

/* Logs the warning for WN_TABLE_MADE_AGAIN: `qualified` now has new_oid, not old_oid. */
void wn_table_say_made_again(const char *qualified, uint32_t old_oid, uint32_t new_oid);

/* Closes the connection, if any, and frees the watch. */
void wn_tablewatch_destroy(wn_tablewatch *watch);

#endif
