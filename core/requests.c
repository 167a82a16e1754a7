/*
 * requests: a plugin's rewind and failure requests, recorded for the dispatcher, and the
 * failures it named kept across the streams of a run. See requests.h.
 */
#include "requests.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* A change's ordinal is (seq + 1) << 32 (plugin.h): its low half is zero. */
#define ORDINAL_SEQ_SHIFT 32
#define ORDINAL_LOW_MASK 0xFFFFFFFFu

int wn_id_compare(walnotify_id a, walnotify_id b)
{
    if (a.position != b.position)
        return a.position < b.position ? -1 : 1;
    if (a.ordinal != b.ordinal)
        return a.ordinal < b.ordinal ? -1 : 1;
    return 0;
}

const char *wn_id_format(walnotify_id id, char out[WN_ID_TEXT_MAX])
{
    char lsn[WN_LSN_TEXT_MAX];

    wn_lsn_format(id.position, lsn);
    if (id.ordinal != 0 && (id.ordinal & ORDINAL_LOW_MASK) == 0)
        snprintf(out, WN_ID_TEXT_MAX, "%s seq %" PRIu64, lsn,
                 (id.ordinal >> ORDINAL_SEQ_SHIFT) - 1);
    else
        snprintf(out, WN_ID_TEXT_MAX, "%s ordinal %" PRIu64, lsn, id.ordinal);
    return out;
}

void wn_requests_open(wn_requests *requests, const char *callback)
{
    requests->callback = callback;
}

void wn_requests_close(wn_requests *requests)
{
    requests->callback = NULL;
}

void wn_requests_new_stream(wn_requests *requests)
{
    requests->have_previous = false;
    requests->have_current = false;
}

/* A failure whose events the redelivery has all passed, none of them retried, was settled
 * whole: its events are skipped (remembered in settled[]), and it counts no more. */
static void forget_settled_failures(wn_requests *requests, walnotify_id id)
{
    size_t kept = 0;

    for (size_t i = 0; i < requests->nfailures; i++) {
        const wn_failure *f = &requests->failures[i];

        if (!f->retried && wn_id_compare(f->last, id) < 0)
            continue;
        if (kept != i)
            requests->failures[kept] = *f;
        kept++;
    }
    requests->nfailures = kept;
}

void wn_requests_delivering(wn_requests *requests, walnotify_id id)
{
    if (!requests->have_delivered || wn_id_compare(id, requests->delivered) > 0)
        requests->delivered = id;
    requests->have_delivered = true;
    requests->previous = requests->current;
    requests->have_previous = requests->have_current;
    requests->current = id;
    requests->have_current = true;
    if (requests->nfailures > 0)
        forget_settled_failures(requests, id);
}

/* The index of the last run that starts at or before id; -1 when none does. */
static long settled_before(const wn_requests *requests, walnotify_id id)
{
    size_t low = 0, high = requests->nsettled;

    while (low < high) {
        size_t mid = low + (high - low) / 2;

        if (wn_id_compare(requests->settled[mid].first, id) <= 0)
            low = mid + 1;
        else
            high = mid;
    }
    return (long)low - 1;
}

/* Whether run i ends with the event received just before the one in hand: the two are one run
 * in what this instance receives. */
static bool ends_at_previous(const wn_requests *requests, long i)
{
    return i >= 0 && requests->have_previous &&
           wn_id_compare(requests->settled[i].last, requests->previous) == 0;
}

bool wn_requests_settled(wn_requests *requests, walnotify_id id)
{
    long i = settled_before(requests, id);

    if (i < 0 || wn_id_compare(id, requests->settled[i].last) > 0)
        return false;
    /* Two runs that the instance receives one after the other become one. */
    if (wn_id_compare(id, requests->settled[i].first) == 0 && ends_at_previous(requests, i - 1)) {
        requests->settled[i - 1].last = requests->settled[i].last;
        memmove(&requests->settled[i], &requests->settled[i + 1],
                (requests->nsettled - (size_t)i - 1) * sizeof requests->settled[0]);
        requests->nsettled--;
    }
    return true;
}

bool wn_requests_settle(wn_requests *requests, walnotify_id id)
{
    long i = settled_before(requests, id);
    size_t at = (size_t)(i + 1);

    if (i >= 0 && wn_id_compare(id, requests->settled[i].last) <= 0)
        return true;
    if (ends_at_previous(requests, i)) {
        requests->settled[i].last = id;
        return true;
    }
    if (requests->nsettled == WN_SETTLED_MAX)
        return false;
    memmove(&requests->settled[at + 1], &requests->settled[at],
            (requests->nsettled - at) * sizeof requests->settled[0]);
    requests->settled[at].first = id;
    requests->settled[at].last = id;
    requests->nsettled++;
    return true;
}

void wn_requests_retrying(wn_requests *requests, walnotify_id id)
{
    for (size_t i = 0; i < requests->nfailures; i++) {
        wn_failure *f = &requests->failures[i];

        if (wn_id_compare(id, f->first) >= 0 && wn_id_compare(id, f->last) <= 0)
            f->retried = true;
    }
}

bool wn_requests_due_before(const wn_requests *requests, wn_lsn lsn)
{
    for (size_t i = 0; i < requests->nfailures; i++) {
        if (requests->failures[i].last.position < lsn)
            return true;
    }
    /* Sorted: the first run ends first. */
    return requests->nsettled > 0 && requests->settled[0].last.position < lsn;
}

/* An event of a transaction is acknowledged once the position passes its commit LSN: every
 * acknowledged position is a transaction's end or lies between transactions. */
void wn_requests_acknowledged(wn_requests *requests, wn_lsn lsn)
{
    size_t kept = 0;

    requests->acknowledged = lsn;
    for (size_t i = 0; i < requests->nfailures; i++) {
        if (requests->failures[i].last.position < lsn)
            continue;
        if (kept != i)
            requests->failures[kept] = requests->failures[i];
        kept++;
    }
    requests->nfailures = kept;
    kept = 0;
    while (kept < requests->nsettled && requests->settled[kept].last.position < lsn)
        kept++;
    memmove(&requests->settled[0], &requests->settled[kept],
            (requests->nsettled - kept) * sizeof requests->settled[0]);
    requests->nsettled -= kept;
    if (requests->nsettled == 0)
        requests->settled_full_said = false;
    if (lsn > requests->rewound_at)
        requests->rewinds = 0;
}

/* Copies a plugin's text, bounded, and turns control characters into spaces: it ends up in log
 * lines and the dead-letter file. */
static void copy_reason(char *out, size_t size, const char *reason)
{
    size_t i = 0;

    if (reason == NULL)
        reason = "no reason given";
    for (; reason[i] != '\0' && i + 1 < size; i++)
        out[i] = (unsigned char)reason[i] < 0x20 || reason[i] == 0x7f ? ' ' : reason[i];
    out[i] = '\0';
}

/* Outside the callbacks that may ask, a request is refused loudly, and nothing changes. */
static bool allowed(const wn_requests *requests, const char *instance, const char *service)
{
    if (requests->callback != NULL)
        return true;
    wn_log(WN_LOG_ERROR,
           "plugin \"%s\": %s may be called only from handle, commit or flush (a bug in the "
           "plugin)",
           instance, service);
    return false;
}

walnotify_status wn_requests_rewind(wn_requests *requests, const char *instance, const char *reason)
{
    if (!allowed(requests, instance, "rewind"))
        return WALNOTIFY_FATAL;
    /* A failure named in the same callback rewinds too, and says more. */
    if (requests->pending != WN_REQUEST_NONE)
        return requests->pending == WN_REQUEST_INVALID ? WALNOTIFY_FATAL : WALNOTIFY_RETRY;
    requests->pending = WN_REQUEST_REWIND;
    requests->from = requests->callback;
    copy_reason(requests->reason, sizeof requests->reason, reason);
    return WALNOTIFY_RETRY;
}

__attribute__((format(printf, 2, 3))) static walnotify_status refuse(wn_requests *requests,
                                                                     const char *format, ...)
{
    va_list args;

    va_start(args, format);
    vsnprintf(requests->message, sizeof requests->message, format, args);
    va_end(args);
    requests->pending = WN_REQUEST_INVALID;
    requests->from = requests->callback;
    return WALNOTIFY_FATAL;
}

/* The range must hold only events delivered since the last acknowledgement. */
static walnotify_status check_range(wn_requests *requests, walnotify_id first, walnotify_id last,
                                    walnotify_failure failure)
{
    char a[WN_ID_TEXT_MAX], b[WN_ID_TEXT_MAX], c[WN_ID_TEXT_MAX], d[WN_ID_TEXT_MAX];
    char lsn[WN_LSN_TEXT_MAX];

    if (failure != WALNOTIFY_FAILURE_TRANSIENT && failure != WALNOTIFY_FAILURE_PERMANENT)
        return refuse(requests,
                      "fail_events from %s: failure %d is neither WALNOTIFY_FAILURE_TRANSIENT "
                      "nor WALNOTIFY_FAILURE_PERMANENT (a bug in the plugin)",
                      requests->callback, (int)failure);
    if (wn_id_compare(first, last) > 0)
        return refuse(requests,
                      "fail_events from %s: the range %s .. %s ends before it starts (a bug in "
                      "the plugin)",
                      requests->callback, wn_id_format(first, a), wn_id_format(last, b));
    if (first.position < requests->acknowledged)
        return refuse(requests,
                      "fail_events from %s named %s .. %s as failed, but %s was acknowledged "
                      "already (the acknowledged position is %s): only events delivered since "
                      "the last acknowledgement can fail (a bug in the plugin)",
                      requests->callback, wn_id_format(first, a), wn_id_format(last, b),
                      wn_id_format(first, c), wn_lsn_format(requests->acknowledged, lsn));
    if (!requests->have_delivered || wn_id_compare(last, requests->delivered) > 0)
        return refuse(requests,
                      "fail_events from %s named %s .. %s as failed, but %s was never delivered "
                      "to it (the last event delivered is %s): only events delivered since the "
                      "last acknowledgement can fail (a bug in the plugin)",
                      requests->callback, wn_id_format(first, a), wn_id_format(last, b),
                      wn_id_format(last, c),
                      requests->have_delivered ? wn_id_format(requests->delivered, d) : "none");
    return WALNOTIFY_RETRY;
}

bool wn_requests_add_failure(wn_requests *requests, walnotify_id first, walnotify_id last,
                             walnotify_failure failure, const char *from, const char *reason)
{
    wn_failure *f = NULL;

    for (size_t i = 0; i < requests->nfailures && f == NULL; i++) {
        wn_failure *known = &requests->failures[i];

        if (wn_id_compare(known->first, first) == 0 && wn_id_compare(known->last, last) == 0)
            f = known;
    }
    if (f == NULL) {
        if (requests->nfailures == WN_FAILURES_MAX)
            return false;
        f = &requests->failures[requests->nfailures++];
        memset(f, 0, sizeof *f);
        f->first = first;
        f->last = last;
    }
    f->count++;
    f->kind = failure;
    f->serial = ++requests->serial;
    f->from = from;
    copy_reason(f->reason, sizeof f->reason, reason);
    return true;
}

walnotify_status wn_requests_fail(wn_requests *requests, const char *instance, walnotify_id first,
                                  walnotify_id last, walnotify_failure failure, const char *reason)
{
    walnotify_status status;

    if (!allowed(requests, instance, "fail_events"))
        return WALNOTIFY_FATAL;
    if (requests->pending == WN_REQUEST_INVALID)
        return WALNOTIFY_FATAL;
    status = check_range(requests, first, last, failure);
    if (status != WALNOTIFY_RETRY)
        return status;
    if (!wn_requests_add_failure(requests, first, last, failure, requests->callback, reason))
        return refuse(requests,
                      "fail_events from %s: more than %d distinct ranges named as failed and "
                      "not yet settled within one transaction (name wider ranges)",
                      requests->callback, WN_FAILURES_MAX);
    requests->pending = WN_REQUEST_FAIL;
    requests->from = requests->callback;
    return WALNOTIFY_RETRY;
}

bool wn_requests_named(const wn_requests *requests, walnotify_id id, wn_named *named)
{
    const wn_failure *latest = NULL;

    memset(named, 0, sizeof *named);
    for (size_t i = 0; i < requests->nfailures; i++) {
        const wn_failure *f = &requests->failures[i];

        if (wn_id_compare(id, f->first) < 0 || wn_id_compare(id, f->last) > 0)
            continue;
        named->count += f->count;
        if (latest == NULL || f->serial > latest->serial)
            latest = f;
    }
    if (latest == NULL)
        return false;
    named->kind = latest->kind;
    named->from = latest->from;
    named->reason = latest->reason;
    return true;
}

wn_request_kind wn_requests_take(wn_requests *requests)
{
    wn_request_kind kind = requests->pending;

    requests->pending = WN_REQUEST_NONE;
    return kind;
}
