/*
 * setup: what must exist on the server before streaming, checked (and created when asked) over an
 * ordinary connection: wal_level, the tables and their replica identity, the publication, the
 * slot.
 */
#ifndef WN_SETUP_H
#define WN_SETUP_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "lsn.h"
#include "state.h"
#include "walnotify/plugin.h"

typedef struct wn_server_state {
    bool utf8;              /* false for a SQL_ASCII database: no client_encoding=UTF8 */
    bool slot_created;      /* this call made the slot */
    wn_lsn confirmed_flush; /* the slot's confirmed_flush_lsn */
    wn_lsn wal_end;         /* pg_current_wal_lsn() when checked */
    long slot_active_pid;   /* the process holding the slot when checked; 0: none */
    wn_state origin;        /* this server's system identifier, the database, the slot (lsn 0) */
} wn_server_state;

/*
 * Checks everything; creates the publication, then the slot, when they are missing (both only
 * when missing, every identifier quoted). A publication it creates publishes via the partition
 * root when a source table is partitioned. Refuses, naming the table: a publication of update or
 * delete for a table without replica identity (for an existing publication widened to them: any
 * table it holds); a source table whose changes would arrive under another table's name (a
 * partitioned table in a publication without publish_via_partition_root, a partition whose
 * ancestor is published with it). Refuses a publication missing under an existing slot (the
 * remedy: drop and make the slot again).
 *
 * resume, when not NULL, is where walnotify was before (a state file named by resume_path, or this
 * run's own earlier stream when resume_path is NULL): the server, database and slot must be the
 * same, and the slot must still exist; it is never made again.
 *
 * stop_fd (-1: none) readable means a stop was asked for: nothing more is sent (a command in
 * progress is cancelled), so nothing is created after it.
 *
 * Returns 0, or WN_EXIT_STOPPED after a stop, or WN_EXIT_TRANSIENT when waiting may help
 * (server unreachable, restarting, connection lost), or an exit status (1 or 3), with one line
 * in err.
 */
int wn_setup_prepare(const wn_config *config, const wn_state *resume, const char *resume_path,
                     int stop_fd, wn_server_state *state, char *err, size_t errlen);

/*
 * What plugins learn of the source at startup (walnotify_host.source and .table): the server,
 * and each of source.tables as the catalog describes it. The tables' names are borrowed from the
 * configuration; everything else is owned (wn_setup_free_catalog).
 */
typedef struct wn_catalog {
    walnotify_source source; /* database owned; slot and publication borrowed from config */
    walnotify_table *tables; /* [source.ntables], in configuration order; ops 0 (per block) */
    size_t ntables;
} wn_catalog;

/*
 * Reads the catalog over an ordinary connection: pg_control_system()'s system identifier, the
 * database, server_version_num, and for each table its replica identity, its columns (those an
 * event carries: generated columns are not published) and its key columns (the replica
 * identity's index; the primary key under DEFAULT, FULL and NOTHING). stop_fd as for
 * wn_setup_prepare. Returns 0, or WN_EXIT_TRANSIENT / an exit status with one line in err;
 * *catalog then holds nothing.
 */
int wn_setup_read_catalog(const wn_config *config, int stop_fd, wn_catalog *catalog, char *err,
                          size_t errlen);
void wn_setup_free_catalog(wn_catalog *catalog);

/* Drops the slot (the publication stays, and the log line says so). Returns 0, WN_EXIT_STOPPED
 * after a stop (stop_fd as above), or an exit status with one line in err. */
int wn_setup_drop_slot(const wn_config *config, int stop_fd, char *err, size_t errlen);

#endif
