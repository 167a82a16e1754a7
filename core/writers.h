/*
 * writers: no two writers on one file. Each file walnotify or a plugin writes is one writer's:
 * two on one file destroy each other's rows (the state file's rename replaces a jsonl file
 * whole; jsonl's abort cuts a dead-letter file back to its own offset, through a line of an
 * acknowledged transaction).
 *
 * The writers are walnotify's own files (source.state_file with the temporary files it is
 * replaced through, and each block's dead_letter) and the files plugins write. A plugin
 * declares only its settings' types (walnotify_setting is an array element, fixed for ABI 1.x:
 * it cannot grow a flag), so which of its path settings it writes to is known for the shipped
 * plugins alone, by name (jsonl's `path`); every other path setting of any plugin is kept off
 * walnotify's own files, which no plugin has reason to name, but may share a file with another
 * plugin's (two blocks may read one file).
 *
 * Two writers share a file when their resolved paths are the same once `.` and `..` are taken
 * out, or when the system says so (the same device and inode: a hard link, or a symbolic link
 * in the path; the same folder and name for a file not made yet), or when one is named as the
 * state file's temporary files are (`STATE.tmp-XXXXXX` beside it: walnotify removes old ones).
 */
#ifndef WN_WRITERS_H
#define WN_WRITERS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "loader.h"

/* Who a path belongs to, which decides what it may share. */
typedef enum wn_writer_kind {
    WN_WRITER_HOST,   /* walnotify's own: shares with nothing */
    WN_WRITER_PLUGIN, /* a file a plugin writes: shares with nothing */
    WN_WRITER_OTHER   /* any other path setting of a plugin: kept off walnotify's own files */
} wn_writer_kind;

#define WN_WRITER_WHAT_MAX 160

typedef struct wn_writer {
    const char *path;              /* resolved; borrowed */
    char what[WN_WRITER_WHAT_MAX]; /* "source.state_file", "plugin \"out\": settings.path" */
    const char *file;              /* the configuration file it is written in; borrowed */
    int line;                      /* where; the block's line when the value is a default */
    bool by_default;               /* the plugin's default, not written */
    wn_writer_kind kind;
    bool is_state; /* the state file: its temporary files are its too */
} wn_writer;

/*
 * Fills writers (room for max) with every file the configuration and the loaded plugins name:
 * the state file, each dead-letter file, each plugin path setting (not "-"). Returns how many,
 * or -1 when there are more than max.
 */
int wn_writers_collect(const wn_config *config, const wn_plugin *plugins, size_t nplugins,
                       wn_writer *writers, size_t max);

/*
 * Refuses two writers on one file. Returns 0, or -1 with one line in err naming both settings
 * with their file and line: "FILE:LINE: plugin "out": settings.path names /x/state, the file of
 * source.state_file (FILE:3): no two writers may share a file".
 */
int wn_writers_check(const wn_writer *writers, size_t n, char *err, size_t errlen);

/* Both steps for a loaded configuration: 0, or WN_EXIT_CONFIG after printing the reason. */
int wn_writers_refuse_shared(const wn_config *config, const wn_plugin *plugins, size_t nplugins);

#endif
