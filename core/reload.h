/*
 * reload: SIGHUP's new configuration, applied while the stream keeps flowing. The dispatcher
 * calls wn_reload_apply at a transaction boundary, after flushing every instance: plugin blocks
 * are matched by name; those added start, those removed shut down, those changed (settings,
 * tables, ops, policies, or a new build of the shared object) shut down and start again with
 * the new block; the others run on untouched. What needs a new slot, publication or listener
 * is refused, naming the key, and the running configuration is kept; so is one that does not
 * parse, or whose new plugins do not load or pass their check.
 *
 * It owns the instances in force across the run (the pipeline starts, stops and unloads them
 * through it) and every configuration a reload read, freed at the end: an instance's block
 * stays where it was read.
 */
#ifndef WN_RELOAD_H
#define WN_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "loader.h"
#include "lsn.h"
#include "metrics.h"
#include "session.h"
#include "setup.h"

typedef struct wn_reload {
    wn_session *session;     /* where SIGHUP's request waits */
    const wn_config *config; /* the configuration in force: the first, or a reload's */
    wn_config **configs;     /* read by reloads; owned, freed by wn_reload_end */
    size_t nconfigs;
    wn_plugin **plugins;      /* the instances in force, in configuration order */
    walnotify_table **tables; /* [nplugins]: each instance's tables, lent to it; owned */
    size_t nplugins;
    wn_plugin *first; /* the array the run began with (the caller's) */
    size_t nfirst;
    const wn_catalog *catalog; /* the source as the plugins learn it; NULL until read */
} wn_reload;

/* Takes the plugins the run begins with (loaded, checked; the array stays the caller's, and is
 * released by wn_reload_end). Returns 0, or -1 when out of memory. */
int wn_reload_begin(wn_reload *reload, const wn_config *config, wn_plugin *plugins, size_t nplugins,
                    wn_session *session);

/* Shuts down and unloads every instance in force (in reverse order), frees the first array and
 * what reloads made. */
void wn_reload_end(wn_reload *reload);

/* Tells instance i its source, its tables and where the stream resumes, before its init. The
 * tables are kept in reload until the instance goes. Returns false when out of memory. */
bool wn_reload_lend(wn_reload *reload, size_t i, wn_lsn resume);

struct dispatcher;

/*
 * The dispatcher, between transactions with every instance flushed, applies the configuration
 * file as it reads now (options->reload), after taking the SIGHUP's request. Each change applied
 * is said in one log line; a refusal in one line naming the key or block, the running
 * configuration kept. false (d->result and d->err set) when a changed instance could start
 * neither with its new block nor its old one, or an added one failed to start: exit 2.
 */
bool wn_reload_apply(struct dispatcher *d);

/* The counters of the instance named name: those of the block of that name in the configuration
 * the run began with (the metrics endpoint lists those); NULL for a block added by a reload, or
 * without an endpoint. */
wn_plugin_metrics *wn_reload_metrics(wn_metrics *metrics, const char *name);

/* Whether a SIGHUP waits to be applied (cheap: a relaxed load). reload may be NULL. */
bool wn_reload_pending(const wn_reload *reload);

#endif
