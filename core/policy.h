/*
 * policy: how the dispatcher calls a plugin, and what a failing call leads to: retries with the
 * plugin's backoff, skips to its dead-letter file, a stop; rewinds and failures named late
 * (ABI 1.1), whose bookkeeping beyond one stream is requests.c's. Every function takes the
 * dispatcher's state (dispatchstate.h); a FLOW_DONE leaves d->result saying why.
 */
#ifndef WN_POLICY_H
#define WN_POLICY_H

#include <stdbool.h>

#include "dispatchstate.h"
#include "lsn.h"

typedef enum call_kind { CALL_BEGIN, CALL_HANDLE, CALL_COMMIT, CALL_FLUSH } call_kind;

/* Opens every configured dead-letter file, before anything is delivered. Returns 0, or -1 with
 * d->result and d->err set. */
int wn_policy_open_dead_letters(dispatcher *d);

/* Calls begin, commit or flush (kind) of one instance until it succeeds, retrying transient
 * failures with its backoff. FLOW_DONE on a fatal failure, a stop or a rewind. */
flow wn_policy_call(dispatcher *d, instance *inst, call_kind kind, const walnotify_event *event);

/* One event to one instance: to handle under its policy, to its policy alone when the instance
 * named the event failed, or nowhere when the policy already skipped it. FLOW_CONTINUE when it
 * was handled or skipped. */
flow wn_policy_deliver(dispatcher *d, instance *inst, const walnotify_event *event);

/* Whether a transaction ending at lsn finished what some instance's policy settled: it is then
 * to be acknowledged at once. */
bool wn_policy_settled_before(const dispatcher *d, wn_lsn lsn);

/* lsn was published: what the instances keep for positions before it is released. */
void wn_policy_acknowledged(dispatcher *d, wn_lsn lsn);

/* Makes the skipped events durable; before any position past them is published. */
flow wn_policy_sync_dead_letters(dispatcher *d);

/* Logs every instance's run of skipped events not said yet: one line per run, with its range and
 * count (also done by wn_policy_sync_dead_letters, and when a run ends). */
void wn_policy_log_skips(dispatcher *d);

/* After WN_DISPATCH_REWIND: the requester's backoff, cut short by a stop request. */
void wn_policy_wait_before_rewind(dispatcher *d);

#endif
