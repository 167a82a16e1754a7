/*
 * loader: loads plugins with dlopen, checks their descriptors, validates their settings against
 * what they declare, and lends each instance the host's services (walnotify_host).
 */
#ifndef WN_LOADER_H
#define WN_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include <walnotify/plugin.h>
#include "config.h"
#include "requests.h"

typedef struct wn_plugin_settings wn_plugin_settings; /* validated values; loader.c's own */

typedef struct wn_plugin {
    const wn_plugin_config *config; /* borrowed from the wn_config */
    void *library;                  /* dlopen handle */
    int fd;                         /* the file loaded as /proc/self/fd/N; open while library is */
    struct stat object;             /* the plugin's file as opened (device, inode, size, mtime):
                                       what a reload compares to notice a new build */
    walnotify_plugin descriptor;    /* zero-extended copy of the plugin's own */
    wn_plugin_settings *settings;
    walnotify_host host; /* the services lent to this instance */
    void *state;         /* from init */
    bool initialised;
    wn_requests requests; /* rewinds and failures it asked for (ABI 1.1); the
                             services find it from `host`, which lives beside it */
} wn_plugin;

/* wn_plugin_load's failures: the shared object itself (exit 2), or its settings in the
 * configuration file (exit 1). */
#define WN_LOAD_REFUSED (-1)
#define WN_LOAD_BAD_SETTINGS (-2)

/*
 * Loads config->path and validates config->settings (file is the configuration file, for
 * messages). Returns 0, or WN_LOAD_REFUSED / WN_LOAD_BAD_SETTINGS with one line in err naming
 * the file and the reason, e.g.
 * "plugin "orders-log" (/x/jsonl.so): ABI major version 2, this host speaks 1" or
 * "etc/w.conf:14: plugin "orders-log": unknown setting "pth" (jsonl declares: path, fsync)".
 * On failure *plugin holds nothing that needs freeing.
 */
int wn_plugin_load(wn_plugin *plugin, const wn_plugin_config *config, const char *file,
                   const char *config_dir, char *err, size_t errlen);

/*
 * wn_plugin_load, from a copy of the file of its own: an in-memory file (memfd_create, sealed),
 * read through the descriptor the trust checks opened. For a new build of a plugin loaded
 * already: dlopen knows a loaded object by its device and inode, and would hand back the old one
 * for a file overwritten in place; a copy is always new to it, and no folder needs to be
 * writable for it.
 */
int wn_plugin_load_copy(wn_plugin *plugin, const wn_plugin_config *config, const char *file,
                        const char *config_dir, char *err, size_t errlen);

/*
 * Calls the plugin's check, if it has one, with only the setting getters and log working (every
 * other service answers its zero value meanwhile), and for a plugin built for ABI 1.2 or later
 * the table list: the block's tables of source (NULL: none) by name, with no catalog facts.
 * WALNOTIFY_OK, or WALNOTIFY_FATAL with one line in err, a configuration error like any other: the
 * configuration file (file, or the @include'd one the block is in), the line of the block, and what
 * the plugin logged at ERROR inside check (which is not logged apart), e.g. "etc/w.conf:14: plugin
 * "orders-log": setting mode = "999" is not a file mode ...".
 */
walnotify_status wn_plugin_check(wn_plugin *plugin, const wn_source_config *source,
                                 const char *file, char *err, size_t errlen);

/*
 * What the instance's services report from init on: the source, its tables (borrowed: they must
 * outlive wn_plugin_unload) and the position the stream resumes from.
 */
void wn_plugin_set_context(wn_plugin *plugin, const walnotify_source *source,
                           const walnotify_table *tables, size_t ntables, uint64_t resume);

/* What flush_position() answers: set around a flush call, 0 outside. */
void wn_plugin_set_flush_position(wn_plugin *plugin, uint64_t position);

/* true when the instance asked to be flushed before every acknowledgement. */
bool wn_plugin_flush_always(const wn_plugin *plugin);

/* The operations the plugin handles: its descriptor's ops, WALNOTIFY_OPS_CHANGES when 0. */
unsigned wn_plugin_ops(const wn_plugin *plugin);

/* The operations its block receives for a table: what the block asks for and the plugin
 * handles, of those that belong to a table (a message belongs to none). */
unsigned wn_plugin_table_ops(const wn_plugin *plugin);

/* Calls init (again after RETRY, or after wn_plugin_shutdown). Returns the walnotify_status
 * init returned. While init is called again after a RETRY, a log line of the instance equal to
 * its previous one goes to DEBUG: a reason that does not change is said once. */
walnotify_status wn_plugin_init(wn_plugin *plugin);

/* Calls shutdown when init succeeded, keeping the plugin loaded: wn_plugin_init may start it
 * again (a host that lost its slot to another releases its sinks meanwhile). */
void wn_plugin_shutdown(wn_plugin *plugin);

/* Calls shutdown when init succeeded, then releases everything, dlclose included. */
void wn_plugin_unload(wn_plugin *plugin);

/*
 * Describes a loaded plugin: "NAME VERSION (plugin ABI 1.1)", "operations: ...", "settings:"
 * and one line per declared setting (type, default or required, description). Cut short,
 * terminated, when out is too small.
 */
void wn_plugin_describe(const wn_plugin *plugin, char *out, size_t outlen);

/*
 * The same description for the shared object at path, read from its descriptor alone (no
 * settings, no check, no init): --describe. Returns 0, or WN_LOAD_REFUSED with one line in err.
 */
int wn_plugin_describe_file(const char *path, char *out, size_t outlen, char *err, size_t errlen);

#endif
