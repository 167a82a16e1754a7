/*
 * loader: loads plugins with dlopen, checks their descriptors, validates their settings against
 * what they declare, and lends each instance the host's services (walnotify_host).
 */
#ifndef WN_LOADER_H
#define WN_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include <walnotify/plugin.h>
#include "config.h"
#include "requests.h"

typedef struct wn_plugin_settings wn_plugin_settings; /* validated values; loader.c's own */

typedef struct wn_plugin {
    const wn_plugin_config *config; /* borrowed from the wn_config */
    void *library;                  /* dlopen handle */
    walnotify_plugin descriptor;    /* zero-extended copy of the plugin's own */
    wn_plugin_settings *settings;
    walnotify_host host;            /* the services lent to this instance */
    void *state;                    /* from init */
    bool initialised;
    wn_requests requests;           /* rewinds and failures it asked for (ABI 1.1); the
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

/* Calls init. Returns the walnotify_status init returned. */
walnotify_status wn_plugin_init(wn_plugin *plugin);

/* Calls shutdown when init succeeded, then releases everything, dlclose included. */
void wn_plugin_unload(wn_plugin *plugin);

/* Prints the declared settings of a loaded plugin, one per line (for --check-config). */
void wn_plugin_describe(const wn_plugin *plugin, char *out, size_t outlen);

#endif
