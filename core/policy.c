/*
 * policy: how the dispatcher calls a plugin, and what a failing call leads to.
 *
 * A failing `handle` meets its plugin's policy (on_error): retried with the plugin's backoff
 * (up to retry_max retries, then `then`), skipped (the event goes to the plugin's dead-letter
 * file, which is fsynced before any position past it is published), or the host stops. begin,
 * commit and flush are always retried on RETRY and stop the host on FATAL: skipping them would
 * lose a whole batch. (Once a stop is requested, the last flush gets a few retries only: what it
 * fails to make durable is simply not acknowledged.)
 */
#include "policy.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#define REASON_MAX 96 /* "handle returned RETRY after 4294967295 attempts" and the like */
#define NAMED_REASON_MAX (WN_REQUEST_REASON_MAX + 96) /* a named failure's, with its reason */
#define FINAL_FLUSH_RETRIES 5 /* a stop still retries the last flush this often (~3 s) */

static const char *call_name(call_kind kind)
{
    switch (kind) {
    case CALL_BEGIN:
        return "begin";
    case CALL_HANDLE:
        return "handle";
    case CALL_COMMIT:
        return "commit";
    case CALL_FLUSH:
        return "flush";
    }
    return "?";
}

static flow act_on_request(dispatcher *d, instance *inst);

static walnotify_status call_callback(instance *inst, call_kind kind, const walnotify_txn *txn,
                                      const walnotify_event *event)
{
    const walnotify_plugin *desc = &inst->plugin->descriptor;
    void *state = inst->plugin->state;

    switch (kind) {
    case CALL_BEGIN:
        return desc->begin ? desc->begin(state, txn) : WALNOTIFY_OK;
    case CALL_HANDLE:
        return desc->handle(state, event);
    case CALL_COMMIT:
        return desc->commit ? desc->commit(state, txn) : WALNOTIFY_OK;
    case CALL_FLUSH:
        return desc->flush ? desc->flush(state) : WALNOTIFY_OK;
    }
    return WALNOTIFY_FATAL;
}

/* One call. handle, commit and flush may ask for a rewind or name failed events (ABI 1.1);
 * begin may not. */
static walnotify_status call_once(instance *inst, call_kind kind, const walnotify_txn *txn,
                                  const walnotify_event *event)
{
    static const wn_metrics_call timed[] = {[CALL_HANDLE] = WN_METRICS_HANDLE,
                                            [CALL_COMMIT] = WN_METRICS_COMMIT,
                                            [CALL_FLUSH] = WN_METRICS_FLUSH};
    wn_requests *requests = &inst->plugin->requests;
    uint64_t start = kind != CALL_BEGIN ? wn_metrics_clock(inst->metrics) : 0;
    walnotify_status status;

    if (kind != CALL_BEGIN)
        wn_requests_open(requests, call_name(kind));
    status = call_callback(inst, kind, txn, event);
    wn_requests_close(requests);
    if (kind != CALL_BEGIN)
        wn_metrics_call_done(inst->metrics, timed[kind], start);
    return status;
}

/* How often a wait looks whether a SIGHUP came (a flag, with no descriptor to poll). */
#define RELOAD_LOOK_MS 100

/* Sleeps up to ms, waking early when a stop is requested or a reload waits; systemd's watchdog
 * is pinged meanwhile (a wait is not a hang). */
static void sleep_unless_stopped(dispatcher *d, int ms)
{
    struct pollfd pfd = {.fd = wn_handoff_stop_fd(d->handoff), .events = POLLIN};

    for (int left = ms; left > 0 && !wn_handoff_stop_requested(d->handoff) &&
                        !wn_reload_pending(d->options->reload);) {
        int step = wn_notify_wait_ms(d->options->notify, left);

        if (d->options->reload != NULL && step > RELOAD_LOOK_MS)
            step = RELOAD_LOOK_MS;

        if (poll(&pfd, 1, step) < 0 && errno != EINTR)
            wn_log(WN_LOG_WARNING, "poll while waiting to retry: %s", strerror(errno));
        wn_notify_alive(d->options->notify, wn_metrics_now_ns() / 1000000);
        left -= step;
    }
}

/* The plugin's backoff, as the configuration gives it (with its defaults filled in). */
static int backoff_first_ms(const wn_plugin_config *config)
{
    return config->retry_initial_ms;
}

static int backoff_cap_ms(const wn_plugin_config *config)
{
    int cap = config->retry_max_ms;
    int first = backoff_first_ms(config);

    return cap < first ? first : cap;
}

/*
 * The last flush of a run that is stopping: what it makes durable is acknowledged, so a stop
 * request does not cut it short, but it gets a few retries only (the user asked to stop).
 */
static flow wait_to_retry_final(dispatcher *d, const instance *inst, call_kind kind,
                                int *backoff_ms)
{
    const char *name = inst->plugin->config->name;
    int wait_ms = *backoff_ms < 1000 ? *backoff_ms : 1000;

    if (++d->final_retries > FINAL_FLUSH_RETRIES)
        return fail(d, WN_DISPATCH_STOPPED,
                    "plugin \"%s\": %s still failing after %u retries since the stop request", name,
                    call_name(kind), FINAL_FLUSH_RETRIES);
    wn_log(WN_LOG_WARNING, "plugin \"%s\": %s failed transiently while stopping, retrying in %d ms",
           name, call_name(kind), wait_ms);
    (void)poll(NULL, 0, wait_ms);
    *backoff_ms = wait_ms * 2;
    return FLOW_CONTINUE;
}

/*
 * Waits before retry number `retry` (1-based) of a call, then doubles *backoff_ms up to the
 * plugin's cap. FLOW_DONE when a stop is requested meanwhile.
 */
static flow wait_to_retry(dispatcher *d, const instance *inst, call_kind kind, unsigned retry,
                          int *backoff_ms)
{
    const wn_plugin_config *config = inst->plugin->config;
    int cap = backoff_cap_ms(config);

    if (wn_handoff_stop_requested(d->handoff)) {
        if (d->finishing)
            return wait_to_retry_final(d, inst, kind, backoff_ms);
        return fail(d, WN_DISPATCH_STOPPED, "stopped while retrying plugin \"%s\"", config->name);
    }
    wn_metrics_retry(inst->metrics);
    wn_log(retry == 1 ? WN_LOG_WARNING : WN_LOG_DEBUG,
           "plugin \"%s\": %s failed transiently (attempt %u), retrying in %d ms", config->name,
           call_name(kind), retry, *backoff_ms);
    sleep_unless_stopped(d, *backoff_ms);
    if (wn_handoff_stop_requested(d->handoff) && !d->finishing)
        return fail(d, WN_DISPATCH_STOPPED, "stopped while retrying plugin \"%s\"", config->name);
    /* Fixing the sink is the usual reason to reload: the transaction in hand is abandoned and
     * streamed again from the acknowledged position, the new configuration applied first. */
    if (wn_reload_pending(d->options->reload) && !d->finishing) {
        wn_log(WN_LOG_INFO,
               "plugin \"%s\": a reload ends its retries; streaming again from the "
               "acknowledged position with the new configuration",
               config->name);
        d->rewind_wait_ms = 0;
        return fail(d, WN_DISPATCH_REWIND, "a reload ended the retries of plugin \"%s\"",
                    config->name);
    }
    *backoff_ms = *backoff_ms > cap / 2 ? cap : *backoff_ms * 2;
    return FLOW_CONTINUE;
}

/*
 * Calls begin, commit or flush of one plugin until it succeeds. A transient failure is retried
 * for this plugin and this call only, nothing else being delivered meanwhile, with the plugin's
 * backoff. Returns FLOW_CONTINUE on success; FLOW_DONE on a fatal failure or a stop.
 */
flow wn_policy_call(dispatcher *d, instance *inst, call_kind kind, const walnotify_event *event)
{
    const char *name = inst->plugin->config->name;
    int backoff_ms = backoff_first_ms(inst->plugin->config);
    unsigned attempts = 0;

    for (;;) {
        walnotify_status status = call_once(inst, kind, &d->xact.txn, event);

        if (inst->plugin->requests.pending != WN_REQUEST_NONE)
            return act_on_request(d, inst);
        if (status == WALNOTIFY_OK) {
            if (attempts > 0)
                wn_log(WN_LOG_INFO, "plugin \"%s\": %s succeeded after %u retries", name,
                       call_name(kind), attempts);
            return FLOW_CONTINUE;
        }
        if (status != WALNOTIFY_RETRY)
            return fail(d, WN_DISPATCH_PLUGIN_FATAL, "plugin \"%s\" failed fatally in %s%s", name,
                        call_name(kind), status == WALNOTIFY_FATAL ? "" : " (unknown status)");
        attempts++;
        if (wait_to_retry(d, inst, kind, attempts, &backoff_ms) != FLOW_CONTINUE)
            return FLOW_DONE;
    }
}

/* What the policy does once it gives up on an event: `then` after retries, else on_error. */
static wn_on_error policy_end(const wn_plugin_config *config)
{
    wn_on_error end = config->on_error == WN_ON_ERROR_RETRY ? config->then : config->on_error;

    return end == WN_ON_ERROR_SKIP ? WN_ON_ERROR_SKIP : WN_ON_ERROR_STOP;
}

static bool may_retry(const wn_plugin_config *config, unsigned retries)
{
    return config->on_error == WN_ON_ERROR_RETRY &&
           (config->retry_max <= 0 || retries < (unsigned)config->retry_max);
}

/* The error a dead-letter line and a message give: how handle failed, the last time. */
static void describe_failure(walnotify_status status, unsigned retries, char *out, size_t size)
{
    if (status == WALNOTIFY_FATAL)
        snprintf(out, size, "handle returned FATAL");
    else if (status != WALNOTIFY_RETRY)
        snprintf(out, size, "handle returned unknown status %d", (int)status);
    else if (retries == 0)
        snprintf(out, size, "handle returned RETRY");
    else
        snprintf(out, size, "handle returned RETRY after %u attempts", retries + 1);
}

/* What a message names an event by: its table, or "a message" for a logical decoding message. */
static const char *event_subject(const walnotify_event *event)
{
    return event->table ? event->table : "a message";
}

/* A skipped event is in the dead-letter file: a rewind before the next acknowledgement delivers
 * it again, and it must neither reach handle nor be written a second time. */
static void remember_skipped(instance *inst, const walnotify_event *event)
{
    wn_requests *requests = &inst->plugin->requests;

    if (wn_requests_settle(requests, event->id) || requests->settled_full_said)
        return;
    requests->settled_full_said = true;
    wn_log(WN_LOG_WARNING,
           "plugin \"%s\": %d runs of skipped events wait for an acknowledgement: the events "
           "skipped from now on may be written to %s again if the stream is rewound before it",
           inst->plugin->config->name, WN_SETTLED_MAX, wn_deadletter_path(inst->deadletter));
}

/* The run of skipped events ended: one line for it (the events are in the dead-letter file). */
static void log_run(instance *inst)
{
    skip_run *run = &inst->skips;
    char first[WN_LSN_TEXT_MAX], last[WN_LSN_TEXT_MAX];

    if (run->count == 0)
        return;
    wn_lsn_format(run->first_lsn, first);
    wn_lsn_format(run->last_lsn, last);
    if (run->count == 1)
        wn_log(WN_LOG_WARNING,
               "plugin \"%s\": skipped event %s seq %" PRIu32 " (%s); %" PRIu64
               " skipped so far, see %s",
               inst->plugin->config->name, first, run->first_seq, run->reason, inst->skipped,
               wn_deadletter_path(inst->deadletter));
    else
        wn_log(WN_LOG_WARNING,
               "plugin \"%s\": skipped %" PRIu64 " events from %s seq %" PRIu32
               " to %s seq %" PRIu32 " (%s); %" PRIu64 " skipped so far, see %s",
               inst->plugin->config->name, run->count, first, run->first_seq, last, run->last_seq,
               run->reason, inst->skipped, wn_deadletter_path(inst->deadletter));
    run->count = 0;
}

/* Adds a skipped event to the instance's run; another reason starts another run. */
static void add_to_run(instance *inst, const walnotify_event *event, const char *reason)
{
    skip_run *run = &inst->skips;

    if (run->count > 0 && strncmp(run->reason, reason, sizeof run->reason - 1) != 0)
        log_run(inst);
    if (run->count == 0) {
        run->first_lsn = event->commit_lsn;
        run->first_seq = event->seq;
        snprintf(run->reason, sizeof run->reason, "%s", reason);
    }
    run->last_lsn = event->commit_lsn;
    run->last_seq = event->seq;
    run->count++;
}

void wn_policy_log_skips(dispatcher *d)
{
    for (size_t i = 0; i < d->ninstances; i++)
        log_run(&d->instances[i]);
}

/* Writes the event to the plugin's dead-letter file, counts it, and goes on; the run of skipped
 * events it belongs to is logged when it ends. */
static flow skip_event(dispatcher *d, instance *inst, const walnotify_event *event,
                       const char *reason)
{
    const char *name = inst->plugin->config->name;
    char lsn[WN_LSN_TEXT_MAX];
    char why[512];

    wn_lsn_format(event->commit_lsn, lsn);
    wn_metrics_skipped(inst->metrics);
    if (inst->deadletter == NULL)
        return fail(d, WN_DISPATCH_PLUGIN_FATAL,
                    "plugin \"%s\": cannot skip event %s seq %" PRIu32 " of %s (%s): it has no "
                    "dead_letter file",
                    name, lsn, event->seq, event_subject(event), reason);
    if (wn_deadletter_append(inst->deadletter, name, event, reason, why, sizeof why) != 0)
        return fail(d, WN_DISPATCH_PLUGIN_FATAL,
                    "plugin \"%s\": cannot record skipped event %s seq %" PRIu32 " of %s: %s", name,
                    lsn, event->seq, event_subject(event), why);
    inst->skipped++;
    wn_metrics_dead_letter(inst->metrics);
    remember_skipped(inst, event);
    add_to_run(inst, event, reason);
    return FLOW_CONTINUE;
}

/*
 * The end of the policy for an event that failed for reason: to the dead-letter file when it
 * skips, else a stop naming the event and the policy. after_reason goes between the reason and
 * the event in the stop's message.
 */
static flow give_up(dispatcher *d, instance *inst, const walnotify_event *event, const char *reason,
                    const char *after_reason)
{
    const wn_plugin_config *config = inst->plugin->config;
    char lsn[WN_LSN_TEXT_MAX];

    if (policy_end(config) == WN_ON_ERROR_SKIP)
        return skip_event(d, inst, event, reason);
    return fail(d, WN_DISPATCH_PLUGIN_FATAL,
                "plugin \"%s\" failed: %s%s for event %s seq %" PRIu32 " of %s; stopping "
                "(on_error = \"%s\"%s)",
                config->name, reason, after_reason, wn_lsn_format(event->commit_lsn, lsn),
                event->seq, event_subject(event), wn_config_on_error_text(config->on_error),
                config->on_error == WN_ON_ERROR_RETRY ? ", then = \"stop\"" : "");
}

/*
 * Calls handle under the plugin's policy, `retries` retries having been made already (a failure
 * named late counts them across rewinds) and the next wait being backoff_ms. FLOW_CONTINUE when
 * the event was handled or skipped; FLOW_DONE when the host stops (the policy says so, a
 * dead-letter write failed, or a stop was requested while retrying) or rewinds.
 */
static flow handle_under_policy(dispatcher *d, instance *inst, const walnotify_event *event,
                                unsigned retries, int backoff_ms)
{
    const wn_plugin_config *config = inst->plugin->config;
    char reason[REASON_MAX];

    for (;;) {
        walnotify_status status = call_once(inst, CALL_HANDLE, &d->xact.txn, event);

        if (inst->plugin->requests.pending != WN_REQUEST_NONE)
            return act_on_request(d, inst);
        if (status == WALNOTIFY_OK) {
            if (retries > 0)
                wn_log(WN_LOG_INFO, "plugin \"%s\": handle succeeded after %u retries",
                       config->name, retries);
            return FLOW_CONTINUE;
        }
        /* FATAL goes straight to the policy's end: retrying what cannot work only waits. */
        if (status == WALNOTIFY_RETRY && may_retry(config, retries)) {
            retries++;
            if (wait_to_retry(d, inst, CALL_HANDLE, retries, &backoff_ms) != FLOW_CONTINUE)
                return FLOW_DONE;
            continue;
        }
        describe_failure(status, retries, reason, sizeof reason);
        return give_up(d, inst, event, reason, "");
    }
}

static flow call_handle(dispatcher *d, instance *inst, const walnotify_event *event)
{
    log_run(inst); /* an event that is not skipped ends the run */
    return handle_under_policy(d, inst, event, 0, backoff_first_ms(inst->plugin->config));
}

/* ---- rewinds and failures named late (ABI 1.1) ------------------------------------------------
 *
 * From handle, commit or flush a plugin may ask for a rewind (its sink lost what it had not made
 * durable) or name delivered events as failed (which rewinds too). The dispatcher then stops
 * this stream without flushing anyone and without publishing anything new (the requester's
 * unflushed work is gone: acknowledging it would lose it), after the requester's backoff for a
 * bare rewind, and the pipeline streams again from the last published position. The named
 * failures live in the instance's wn_requests, beyond this stream: on redelivery each named
 * event meets the instance's policy instead of handle.
 */

void wn_policy_acknowledged(dispatcher *d, wn_lsn lsn)
{
    for (size_t i = 0; i < d->ninstances; i++)
        wn_requests_acknowledged(&d->instances[i].plugin->requests, lsn);
}

/* The wait before retry number `retry` (1-based): the first wait doubled retry - 1 times, up to
 * the cap. */
static int backoff_for_retry(const wn_plugin_config *config, unsigned retry)
{
    int cap = backoff_cap_ms(config);
    int wait_ms = backoff_first_ms(config);

    for (unsigned i = 1; i < retry && wait_ms < cap; i++)
        wait_ms = wait_ms > cap / 2 ? cap : wait_ms * 2;
    return wait_ms;
}

static flow rewind_now(dispatcher *d, int wait_ms)
{
    d->rewind_wait_ms = wait_ms;
    d->result = WN_DISPATCH_REWIND;
    return FLOW_DONE;
}

/* `then = "skip"` (or on_error = "skip") for a bare rewind: what the requester received since the
 * last acknowledgement goes to its dead-letter file when it comes again. */
static flow skip_after_rewinds(dispatcher *d, instance *inst, unsigned rewinds)
{
    wn_requests *requests = &inst->plugin->requests;
    const wn_plugin_config *config = inst->plugin->config;
    walnotify_id first = {.position = d->published, .ordinal = 0};
    char why[NAMED_REASON_MAX], a[WN_ID_TEXT_MAX], b[WN_ID_TEXT_MAX];

    requests->rewinds = 0;
    if (!requests->have_delivered || wn_id_compare(requests->delivered, first) < 0) {
        /* Nothing of it to skip: wait as long as the policy ever waits, and try again. */
        wn_log(WN_LOG_WARNING,
               "plugin \"%s\" asked for a rewind from %s (%s) %u times without progress and "
               "received nothing since the last acknowledgement: nothing to skip; streaming "
               "again in %d ms",
               config->name, requests->from, requests->reason, rewinds, backoff_cap_ms(config));
        return rewind_now(d, backoff_cap_ms(config));
    }
    snprintf(why, sizeof why, "%u rewind%s without progress, the last from %s: %s", rewinds,
             rewinds == 1 ? "" : "s", requests->from, requests->reason);
    /* No callback named these events: the reason alone says what happened. */
    if (!wn_requests_add_failure(requests, first, requests->delivered, WALNOTIFY_FAILURE_PERMANENT,
                                 NULL, why))
        return fail(d, WN_DISPATCH_PLUGIN_FATAL,
                    "plugin \"%s\": cannot skip after its rewinds: %d ranges named as failed "
                    "are already due",
                    config->name, WN_FAILURES_MAX);
    wn_log(WN_LOG_WARNING,
           "plugin \"%s\" asked for a rewind from %s (%s) %u times without progress; skipping "
           "what it received since the last acknowledgement (%s .. %s) to its dead-letter file "
           "(on_error = \"%s\"%s)",
           config->name, requests->from, requests->reason, rewinds, wn_id_format(first, a),
           wn_id_format(requests->delivered, b), wn_config_on_error_text(config->on_error),
           config->on_error == WN_ON_ERROR_RETRY ? ", then = \"skip\"" : "");
    return rewind_now(d, 0);
}

/* A bare rewind counts as a retry of the requester: its backoff, retry_max, then `then`. The
 * count is of rewinds since the acknowledged position last moved. */
static flow bare_rewind(dispatcher *d, instance *inst)
{
    wn_requests *requests = &inst->plugin->requests;
    const wn_plugin_config *config = inst->plugin->config;
    unsigned rewinds = ++requests->rewinds;

    requests->rewound_at = d->published;
    if (may_retry(config, rewinds - 1)) {
        int wait_ms = backoff_for_retry(config, rewinds);
        char lsn[WN_LSN_TEXT_MAX];

        wn_log(WN_LOG_WARNING,
               "plugin \"%s\" asked for a rewind from %s: %s; streaming again from %s in %d ms "
               "(rewind %u without progress)",
               config->name, requests->from, requests->reason, wn_lsn_format(d->published, lsn),
               wait_ms, rewinds);
        return rewind_now(d, wait_ms);
    }
    if (policy_end(config) == WN_ON_ERROR_SKIP)
        return skip_after_rewinds(d, inst, rewinds);
    return fail(d, WN_DISPATCH_PLUGIN_FATAL,
                "plugin \"%s\" failed: it asked for a rewind from %s %u times without the "
                "acknowledged position moving (last: %s); stopping (on_error = \"%s\"%s)",
                config->name, requests->from, rewinds, requests->reason,
                wn_config_on_error_text(config->on_error),
                config->on_error == WN_ON_ERROR_RETRY ? ", then = \"stop\"" : "");
}

/* What a plugin asked for during the callback that just returned, whatever it returned. */
static flow act_on_request(dispatcher *d, instance *inst)
{
    wn_requests *requests = &inst->plugin->requests;
    const char *name = inst->plugin->config->name;
    char lsn[WN_LSN_TEXT_MAX];

    switch (wn_requests_take(requests)) {
    case WN_REQUEST_NONE:
        return FLOW_CONTINUE;
    case WN_REQUEST_INVALID:
        return fail(d, WN_DISPATCH_PLUGIN_FATAL, "plugin \"%s\": %s; stopping", name,
                    requests->message);
    case WN_REQUEST_FAIL:
        wn_metrics_rewind(inst->metrics);
        wn_log(WN_LOG_WARNING,
               "plugin \"%s\" named events as failed from %s; streaming again from %s, where "
               "they meet its policy",
               name, requests->from, wn_lsn_format(d->published, lsn));
        return rewind_now(d, 0);
    case WN_REQUEST_REWIND:
        wn_metrics_rewind(inst->metrics);
        return bare_rewind(d, inst);
    }
    return FLOW_CONTINUE;
}

/* The error a dead-letter line and a message give for a failure named late. */
static void describe_named(const wn_named *named, char *out, size_t size)
{
    const char *kind = named->kind == WALNOTIFY_FAILURE_PERMANENT ? "permanent" : "transient";

    if (named->from == NULL)
        snprintf(out, size, "%s", named->reason);
    else if (named->count > 1)
        snprintf(out, size, "%s named it failed (%s) after %u attempts: %s", named->from, kind,
                 named->count, named->reason);
    else
        snprintf(out, size, "%s named it failed (%s): %s", named->from, kind, named->reason);
}

/*
 * An event the instance named as failed comes again: its policy decides instead of handle. A
 * transient failure is retried (handle called again after the backoff of the attempts so far)
 * while the policy allows; then, and for a permanent one, the policy's end: skip to the
 * dead-letter file (from this redelivered event) or stop.
 */
static flow meet_named_failure(dispatcher *d, instance *inst, const walnotify_event *event,
                               const wn_named *named)
{
    const wn_plugin_config *config = inst->plugin->config;
    unsigned retries = named->count; /* every naming was a failed attempt */
    char reason[NAMED_REASON_MAX], lsn[WN_LSN_TEXT_MAX];

    if (named->kind == WALNOTIFY_FAILURE_TRANSIENT && may_retry(config, retries - 1)) {
        int backoff_ms = backoff_for_retry(config, retries);

        wn_log(WN_LOG_WARNING,
               "plugin \"%s\": event %s seq %" PRIu32 " of %s was named failed by %s (%s; "
               "attempt %u): handing it to handle again in %d ms",
               config->name, wn_lsn_format(event->commit_lsn, lsn), event->seq,
               event_subject(event), named->from ? named->from : "the host", named->reason, retries,
               backoff_ms);
        sleep_unless_stopped(d, backoff_ms);
        if (wn_handoff_stop_requested(d->handoff))
            return fail(d, WN_DISPATCH_STOPPED, "stopped while retrying plugin \"%s\"",
                        config->name);
        wn_requests_retrying(&inst->plugin->requests, event->id);
        return handle_under_policy(d, inst, event, retries, backoff_for_retry(config, retries + 1));
    }
    describe_named(named, reason, sizeof reason);
    /* The plugin's own words end the reason: a comma keeps them apart from the event's. */
    return give_up(d, inst, event, reason, ",");
}

/* One event to one instance: to handle, or to its policy when the instance named it failed; not
 * at all when the policy skipped it already, before a rewind. */
flow wn_policy_deliver(dispatcher *d, instance *inst, const walnotify_event *event)
{
    wn_requests *requests = &inst->plugin->requests;
    wn_named named;

    wn_requests_delivering(requests, event->id);
    if (requests->nsettled > 0 && wn_requests_settled(requests, event->id))
        return FLOW_CONTINUE;
    if (requests->nfailures > 0 && wn_requests_named(requests, event->id, &named))
        return meet_named_failure(d, inst, event, &named);
    return call_handle(d, inst, event);
}

/*
 * Whether a transaction that just ended at lsn finished what some instance's policy settled
 * (events named failed, or skipped): it is then acknowledged at once rather than at the status
 * interval, so that a rewind that follows (the next failure named) starts after it, and what the
 * instances keep of it is released.
 */
bool wn_policy_settled_before(const dispatcher *d, wn_lsn lsn)
{
    for (size_t i = 0; i < d->ninstances; i++) {
        if (wn_requests_due_before(&d->instances[i].plugin->requests, lsn))
            return true;
    }
    return false;
}

/* The requester's backoff runs while this stream's reader keeps the connection alive; a stop
 * request cuts it short. */
void wn_policy_wait_before_rewind(dispatcher *d)
{
    if (d->rewind_wait_ms > 0)
        sleep_unless_stopped(d, d->rewind_wait_ms);
}

/* Skipped events must be durable before the transactions that held them are acknowledged. */
flow wn_policy_sync_dead_letters(dispatcher *d)
{
    char why[512];

    wn_policy_log_skips(d);
    for (size_t i = 0; i < d->ninstances; i++) {
        instance *inst = &d->instances[i];

        if (inst->deadletter != NULL && wn_deadletter_sync(inst->deadletter, why, sizeof why) != 0)
            return fail(d, WN_DISPATCH_PLUGIN_FATAL, "plugin \"%s\": %s",
                        inst->plugin->config->name, why);
    }
    return FLOW_CONTINUE;
}

/* Every dead-letter file is opened before anything is delivered, so a bad path fails at once. */
int wn_policy_open_dead_letters(dispatcher *d)
{
    char why[512];

    for (size_t i = 0; i < d->ninstances; i++) {
        instance *inst = &d->instances[i];
        const char *path = inst->plugin->config->dead_letter;

        if (path == NULL)
            continue;
        inst->deadletter = wn_deadletter_open(path, why, sizeof why);
        if (inst->deadletter == NULL) {
            fail(d, WN_DISPATCH_PLUGIN_FATAL, "plugin \"%s\": %s", inst->plugin->config->name, why);
            return -1;
        }
    }
    return 0;
}
