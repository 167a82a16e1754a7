/*
 * state: the local progress file (`state_file`). It records the end LSN of the last transaction
 * every plugin finished and flushed (and that PostgreSQL was told about), with the server, the
 * database and the slot it belongs to:
 *
 *   walnotify-state 1
 *   system_identifier=7312345678901234567
 *   database=app
 *   slot=walnotify
 *   lsn=0/1A2B3C8
 *   snapshot=0/1A2B000
 *
 * The last line is there once the initial snapshot (`source.snapshot = "initial"`) finished: its
 * consistent point. A file without it is one of a run that took no snapshot, or not yet.
 *
 * It is replaced atomically (a temporary file of a unique name in the same folder, fsync, rename,
 * fsync of the folder), so a crash leaves either the old or the new content, and two hosts of an
 * active/standby pair sharing the file never write the same temporary file. It is created 0600
 * and never read through a symbolic link; anything but a regular file at its path (a FIFO, a
 * device) is refused without waiting on it.
 */
#ifndef WN_STATE_H
#define WN_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

#define WN_STATE_NAME_MAX 64 /* a database or slot name (PostgreSQL's NAMEDATALEN) plus NUL */

typedef struct wn_state {
    uint64_t system_identifier; /* pg_control_system().system_identifier */
    char database[WN_STATE_NAME_MAX];
    char slot[WN_STATE_NAME_MAX];
    wn_lsn lsn;      /* where walnotify may resume */
    wn_lsn snapshot; /* the consistent point of the initial snapshot once it finished; 0: none */
} wn_state;

/*
 * Reads path into *state. Returns 0 with *exists false when there is no such file (state left
 * zeroed), 0 with *exists true after a good read, or -1 with one line in err: "FILE:LINE: what
 * is wrong" for a malformed file, "FILE: reason" when it cannot be read or is a symbolic link.
 * First removes the temporary files an earlier crash left beside path (older than an hour).
 */
int wn_state_read(const char *path, wn_state *state, bool *exists, char *err, size_t errlen);

/*
 * Replaces path with state, atomically and durably. Returns 0, or an errno value with one line in
 * err: the failed step's (ENOSPC for a full disk), EINVAL when the content cannot be written.
 */
int wn_state_write(const char *path, const wn_state *state, char *err, size_t errlen);

/*
 * Whether a failure of wn_state_write (its errno value) is for a person to fix in the
 * configuration or the rights on the file system (a missing folder, no permission, a folder in
 * the way): true. false for the machine's own trouble that a restart may cure (a full disk, an
 * I/O error).
 */
bool wn_state_write_failure_is_setup(int err);

/*
 * true when actual is the same system, database and slot as expected. Otherwise false with one
 * line in err naming both; path names the file expected came from (NULL: this run, which
 * streamed from it before).
 */
bool wn_state_same_origin(const wn_state *expected, const wn_state *actual, const char *path,
                          char *err, size_t errlen);

#endif
