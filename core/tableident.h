/*
 * tableident: which configured table each relation of the stream is (by OID), and whether the
 * configured tables are still published as they were: renamed, dropped, made again, out of the
 * publication. Every function takes the dispatcher's state (dispatchstate.h); a FLOW_DONE leaves
 * d->result saying why.
 */
#ifndef WN_TABLEIDENT_H
#define WN_TABLEIDENT_H

#include "decoder.h"
#include "dispatchstate.h"
#include "relcache.h"

/* The configured tables' identities, from options->table_oids. Returns 0, or -1 when out of
 * memory; wn_tableident_free releases what was allocated either way. */
int wn_tableident_setup(dispatcher *d, const wn_dispatcher_options *options);
void wn_tableident_free(dispatcher *d);

/* Asks the catalog whether every configured table is still published under the OID it had
 * (options->read_tables; FLOW_CONTINUE without one). FLOW_DONE when one is not, or when the
 * catalog could not be read. */
flow wn_tableident_check(dispatcher *d);

/* Sends the next check's query ahead (options->send_tables; nothing without one), so that the
 * server answers it while the plugins flush; the next wn_tableident_check takes the answer. A
 * failure here is left for that check to meet. */
void wn_tableident_send_check(dispatcher *d);

/* Sets rel->table_index for a relation the stream just described; was_index is its configured
 * table before this Relation message (-1: none, or not described yet). */
flow wn_tableident_identify(dispatcher *d, wn_relation *rel, int was_index);

/* Warns about columns of a configured table (cached, as described before) whose type msg (its
 * new Relation message) changes. */
void wn_tableident_warn_retyped(const wn_relation *cached, const wn_message *msg);

#endif
