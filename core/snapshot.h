/*
 * snapshot: the rows of the configured tables as of a consistent point C of the stream, read as
 * the stream would carry them as inserts, for the initial snapshot (`source.snapshot =
 * "initial"`). Every transaction that commits before C is in the rows; every one that commits at
 * or after C comes through the stream: joined there, nothing is lost or doubled.
 *
 * How: a replication connection makes a temporary slot with an exported snapshot
 * (CREATE_REPLICATION_SLOT ... TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT), which gives C; an
 * ordinary connection imports that snapshot into a read-only REPEATABLE READ transaction at
 * once (the export lives only until the replication connection's next command), with
 * row_security off, and locks every table IN ACCESS SHARE MODE (TRUNCATE and table-rewriting
 * ALTER are not MVCC-safe). The replication connection stays open until wn_snapshot_end: it
 * holds the temporary slot, and closing it drops the slot.
 *
 * What is read is what pgoutput publishes: each table in configuration order; a table that is
 * not partitioned FROM ONLY (not its inheritance children), a partitioned one through its root
 * (walnotify's publication publishes via the root); the publication's column list (without
 * one, every column but the generated ones) and row filter (PostgreSQL 15 and later); every
 * value in its type's text output under walnotify's session settings, NULL as NULL. Rows come in
 * a fixed order (the key: the replica identity index, else the primary key; else the physical
 * position), streamed by one COPY (SELECT ...) TO STDOUT per table, the first table's started by
 * begin, so that the server reads rows while walnotify delivers the ones before.
 *
 * Not thread-safe: one thread uses a handle.
 */
#ifndef WN_SNAPSHOT_H
#define WN_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h" /* wn_table_ref */
#include "lsn.h"
#include "walnotify/plugin.h"

/* What wn_snapshot_next returns after the last row. */
#define WN_SNAPSHOT_END (-1)

typedef struct wn_snapshot wn_snapshot;

/* Where and what to read; everything borrowed, and it must outlive the handle. */
typedef struct wn_snapshot_source {
    const char *conninfo;       /* the user's conninfo (walnotify adds its session settings) */
    const char *slot;           /* the configured slot: the temporary slot is named after it */
    const char *publication;    /* its column lists and row filters are applied */
    const wn_table_ref *tables; /* read in this order */
    size_t ntables;
    bool utf8;   /* false for a SQL_ASCII database: no client_encoding=UTF8 */
    int stop_fd; /* readable once a stop is requested (-1: none): a command in progress is
                    cancelled and the call returns WN_EXIT_STOPPED */
} wn_snapshot_source;

/* One row, as an insert of it would carry it. */
typedef struct wn_snapshot_row {
    size_t table;                    /* index into the source's tables */
    uint64_t ordinal;                /* 1, 2, ... in reading order over all tables: the row's
                                        identity's ordinal */
    const walnotify_column *columns; /* name, type_oid, typmod, is_key (pgoutput's: every column
                                        under REPLICA IDENTITY FULL), kind TEXT or NULL, value;
                                        borrowed until the next call on the handle */
    size_t ncolumns;
} wn_snapshot_row;

/* How far reading got, for logging. */
typedef struct wn_snapshot_progress {
    size_t table;           /* the table being read; the source's ntables once every row came */
    uint64_t table_rows;    /* rows of that table read so far */
    int64_t table_estimate; /* its rows as pg_class.reltuples estimated them at C (the leaves'
                               sum for a partitioned table); -1 when never estimated */
    uint64_t rows;          /* rows read over all tables (the last ordinal returned) */
} wn_snapshot_progress;

/*
 * Takes the snapshot: connects twice, makes the temporary slot, imports its snapshot, locks
 * every table, reads each table's columns, key and the publication's filter, and checks that each
 * table can be read in full (a missing SELECT right, or row-level security that would hide
 * rows, is an error naming the table), then starts the first table's COPY. Returns 0 with
 * *snap (free it with wn_snapshot_end) and the consistent point in *consistent_point; or an exit
 * status with one line in err naming what and where: WN_EXIT_STOPPED after a stop,
 * WN_EXIT_TRANSIENT when waiting may help, WN_EXIT_SERVER when a person must act,
 * WN_EXIT_CONFIG for a conninfo that does not parse, WN_EXIT_INTERNAL when out of memory; *snap
 * is then NULL and nothing is left on the server.
 */
int wn_snapshot_begin(const wn_snapshot_source *source, wn_snapshot **snap,
                      wn_lsn *consistent_point, char *err, size_t errlen);

/*
 * The next row into *row: 0, or WN_SNAPSHOT_END after the last one, or an exit status as for
 * begin with one line in err (the imported transaction is then lost: end the handle and take a
 * new snapshot). Holds in memory one row (and libpq's input buffer): the sockets' buffers hold
 * the server back while the caller delivers.
 */
int wn_snapshot_next(wn_snapshot *snap, wn_snapshot_row *row, char *err, size_t errlen);

/*
 * Reads again, in the same imported transaction, so that the next row is the one with `ordinal`
 * (1: from the start), with the same values and ordinals as the first time. ordinal may be at
 * most one past the last one returned. One past it goes on reading; else a table's COPY under
 * way is first read to its end (a COPY cannot be cut short without losing the transaction), its
 * rows dropped, and the table of ordinal read again from there. Returns 0, or an exit status as
 * for next (maybe only from next).
 */
int wn_snapshot_restart(wn_snapshot *snap, uint64_t ordinal, char *err, size_t errlen);

void wn_snapshot_get_progress(const wn_snapshot *snap, wn_snapshot_progress *progress);

/*
 * Ends the read-only transaction (committed; cancelled with its COPY when a table is still being
 * read, which for a read-only transaction comes to the same), closes both connections (which
 * drops the temporary slot) and frees the handle; NULL does nothing. Returns 0, or an exit status
 * with one line in err when the commit failed (the handle is freed either way).
 */
int wn_snapshot_end(wn_snapshot *snap, char *err, size_t errlen);

#endif
