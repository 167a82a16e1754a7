/*
 * replay: --replay FILE. The events of a jsonl or dead-letter file delivered to the configured
 * plugins (or one of them), in file order, with the calls and failure policies of a run, and
 * without a database.
 */
#ifndef WN_REPLAY_H
#define WN_REPLAY_H

#include <stddef.h>

#include "config.h"
#include "loader.h"
#include "session.h"

/*
 * Reads every line of `file` first (a line that is not an event ends the replay before
 * anything is delivered, exit 1, naming the file and the line), then initialises the plugins
 * (all of them, or the block named `only` when not NULL), delivers, flushes and shuts them down.
 * Takes the loaded, checked plugins. Returns the exit status, after printing the reason of a
 * failure.
 */
int wn_replay_run(const wn_config *config, wn_plugin *plugins, size_t nplugins, const char *file,
                  const char *only, wn_session *session);

#endif
