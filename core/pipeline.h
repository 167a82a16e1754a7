/*
 * pipeline: a run of the configured pipeline: connect (waiting out what may pass), initialise
 * the plugins once the slot is acquired, stream through a reader + dispatcher pair, reconnect
 * when the stream is lost, stop cleanly.
 */
#ifndef WN_PIPELINE_H
#define WN_PIPELINE_H

#include <stddef.h>

#include "config.h"
#include "exitcode.h"
#include "loader.h"
#include "lsn.h"
#include "metrics.h"
#include "notify.h"
#include "session.h"

/* Loads every plugin of config, in order (no init). Returns 0, or the exit status after printing
 * the reason; *plugins and *nloaded then hold what loaded, for wn_pipeline_unload_plugins. */
int wn_pipeline_load_plugins(const wn_config *config, wn_plugin **plugins, size_t *nloaded);

/* Calls every plugin's check (before init, and for --check-config). Returns 0, or exit status 1
 * after printing, in one line, the configuration file (`file`, or the block's @include'd one),
 * the line of the block that was refused, and why. */
int wn_pipeline_check_plugins(const wn_config *config, wn_plugin *plugins, size_t nplugins);

/* Shuts down (if initialised) and unloads the plugins in reverse order; frees the array. */
void wn_pipeline_unload_plugins(wn_plugin *plugins, size_t nloaded);

/* Checks the server and creates the publication and the slot when missing; a stop from session
 * ends it without creating anything more (exit 0). Returns the exit status, after printing the
 * reason of a failure. */
int wn_pipeline_create_slot(const wn_config *config, wn_session *session);

/*
 * Runs until a stop (session), endpos (0: none), or what waiting cannot fix. Takes the plugins
 * (checked): they are initialised once the slot is acquired, while the reader thread keeps the
 * connection alive (init answering RETRY is called again with the block's backoff until OK,
 * FATAL or a stop), shut down while another process holds the slot after a lost stream (and
 * initialised again once the slot is this host's), and shut down and unloaded before the slot
 * is released. Returns the exit status, after printing the reason of a failure.
 * metrics (NULL: no endpoint) and notify (systemd; NULL: none) hear where the run is: streaming,
 * standby, reconnecting, stopping; the waits in between ping systemd's watchdog.
 */
/* How many messages the reader's queue holds. */
#define WN_PIPELINE_QUEUE_CAPACITY 4096

int wn_pipeline_run(const wn_config *config, wn_plugin *plugins, size_t nplugins, wn_lsn endpos,
                    wn_session *session, wn_metrics *metrics, wn_notify *notify);

#endif
