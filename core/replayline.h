/*
 * replayline: one line of a jsonl or dead-letter file read back into an event, as far as the
 * line tells: every type OID 0, every typmod -1, no key column, the old row as a whole row.
 */
#ifndef WN_REPLAYLINE_H
#define WN_REPLAYLINE_H

#include <stddef.h>

#include <walnotify/plugin.h>

#include "config.h"
#include "jsonread.h"

/* The most columns a replayed row (or old row) holds: PostgreSQL's limit per table. */
#define WN_REPLAY_COLUMNS_MAX 1664

/* One line read back: the event and the storage it borrows (the line itself, decoded in place). */
typedef struct wn_replay_line {
    walnotify_event event;
    long table_index; /* in source.tables */
    walnotify_column columns[WN_REPLAY_COLUMNS_MAX];
    walnotify_column old_columns[WN_REPLAY_COLUMNS_MAX];
    wn_json_doc doc;
} wn_replay_line;

/*
 * Reads the NUL-terminated line (changed in place; the event borrows it) into out. Returns 0, or
 * -1 with one line in err saying why the line is not an event of a table of source.
 */
int wn_replay_line_read(const wn_source_config *source, char *line, wn_replay_line *out, char *err,
                        size_t errlen);

#endif
