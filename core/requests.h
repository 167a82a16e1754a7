/*
 * requests: what a plugin instance asks of the host from inside a callback (ABI 1.1): a rewind
 * (walnotify_host.rewind), or delivered events named as failed (walnotify_host.fail_events).
 *
 * The loader's host services record a request here; the dispatcher acts on it when the callback
 * returns. What must outlive one stream also lives here, since a rewind ends the stream: the
 * failures named and not yet settled (on redelivery they meet the instance's policy), the events
 * the policy skipped to the dead-letter file (a later rewind must not skip them again), and the
 * rewinds asked for since the acknowledged position last moved; all of it until the acknowledged
 * position passes it. One wn_requests per instance, used on the host thread only (the header
 * allows these services nowhere else).
 *
 * Both tables are fixed: the dispatcher acknowledges a transaction as soon as what its policy
 * settled in it is durable, so they only hold what one transaction (or the few since the last
 * acknowledgement) needs. A failure leaves its table once every event it names was skipped.
 */
#ifndef WN_REQUESTS_H
#define WN_REQUESTS_H

#include <stdbool.h>
#include <stddef.h>

#include <walnotify/plugin.h>

#include "lsn.h"

#define WN_REQUEST_REASON_MAX 256  /* bytes of a plugin's reason kept, NUL included */
#define WN_REQUEST_MESSAGE_MAX 512 /* bytes of the message of an invalid request */
#define WN_FAILURES_MAX 256        /* ranges named and not yet settled or acknowledged */
#define WN_SETTLED_MAX 4096        /* runs of skipped events not yet acknowledged */
#define WN_ID_TEXT_MAX 64          /* "0/16B3F28 seq 4294967295" and the like */

typedef enum wn_request_kind {
    WN_REQUEST_NONE = 0,
    WN_REQUEST_REWIND, /* rewind(): the sink lost what it had not made durable */
    WN_REQUEST_FAIL,   /* fail_events(): recorded in failures[], and a rewind */
    WN_REQUEST_INVALID /* a request the host refuses: a bug in the plugin (message) */
} wn_request_kind;

/* One range named as failed. The same range named again counts again. */
typedef struct wn_failure {
    walnotify_id first;     /* inclusive */
    walnotify_id last;      /* inclusive */
    walnotify_failure kind; /* as the last naming said */
    unsigned count;         /* times this range was named */
    bool retried;           /* some event of it went to handle again: its count still matters */
    unsigned long serial;   /* when it was last named: the latest naming wins */
    const char *from;       /* the callback that named it last: static text; NULL when
                               the host named it (a bare rewind's skip) */
    char reason[WN_REQUEST_REASON_MAX];
} wn_failure;

/* Events the policy skipped, one after the other in what this instance received: from first to
 * last (inclusive), every event it received is in its dead-letter file. */
typedef struct wn_settled {
    walnotify_id first;
    walnotify_id last;
} wn_settled;

/* What the failures due for one identity add up to. */
typedef struct wn_named {
    unsigned count;         /* namings of ranges that hold the identity: failed attempts */
    walnotify_failure kind; /* of the latest such naming */
    const char *from;
    const char *reason; /* borrowed from the wn_requests, until it changes */
} wn_named;

typedef struct wn_requests {
    /* Set by the dispatcher. */
    const char *callback;   /* "handle", "commit" or "flush" while one runs; else NULL */
    walnotify_id delivered; /* the highest identity handed to handle */
    bool have_delivered;
    walnotify_id previous; /* in this stream: the event received before the one in hand */
    walnotify_id current;  /* in this stream: the event in hand */
    bool have_previous;
    bool have_current;
    wn_lsn acknowledged; /* the last position published as safe to acknowledge */

    /* The request made during the callback in progress. */
    wn_request_kind pending;
    char reason[WN_REQUEST_REASON_MAX];   /* REWIND: the plugin's reason */
    char message[WN_REQUEST_MESSAGE_MAX]; /* INVALID: why the host refuses it */
    const char *from;                     /* the callback it came from */

    /* Kept across streams until acknowledged. */
    wn_failure failures[WN_FAILURES_MAX];
    size_t nfailures;
    wn_settled settled[WN_SETTLED_MAX]; /* sorted, disjoint */
    size_t nsettled;
    bool settled_full_said; /* the warning that WN_SETTLED_MAX was reached was logged since
                               the table was last empty */
    unsigned long serial;
    unsigned rewinds;  /* bare rewinds since the acknowledged position last moved */
    wn_lsn rewound_at; /* the acknowledged position at the last bare rewind */
} wn_requests;

/* Compares two identities: position first. <0, 0, >0. */
int wn_id_compare(walnotify_id a, walnotify_id b);

/* "0/16B3F28 seq 4" for a change's identity, "0/16B3F28 ordinal 5" for any other. */
const char *wn_id_format(walnotify_id id, char out[WN_ID_TEXT_MAX]);

/* The dispatcher: a callback that may ask begins (callback: its name, static) and ends. */
void wn_requests_open(wn_requests *requests, const char *callback);
void wn_requests_close(wn_requests *requests);

/* The dispatcher: a stream begins; nothing was received in it yet. */
void wn_requests_new_stream(wn_requests *requests);

/* The dispatcher: the event with this identity is about to be handed to the instance (to handle
 * or to its policy). Failures wholly before it whose events were all skipped are forgotten. */
void wn_requests_delivering(wn_requests *requests, walnotify_id id);

/* The dispatcher: the policy skipped the event in hand to the dead-letter file. false when
 * WN_SETTLED_MAX runs are kept already: then it is not remembered, and a later rewind before
 * the next acknowledgement may skip it again. */
bool wn_requests_settle(wn_requests *requests, walnotify_id id);

/* Whether the event in hand (id) was skipped to the dead-letter file already. */
bool wn_requests_settled(wn_requests *requests, walnotify_id id);

/* The dispatcher: handle receives the event again (a transient failure named late is retried):
 * the failures that name it keep their count until acknowledged. */
void wn_requests_retrying(wn_requests *requests, walnotify_id id);

/* Whether some failure or skipped event lies wholly before lsn (in a finished transaction):
 * acknowledging lsn releases it. */
bool wn_requests_due_before(const wn_requests *requests, wn_lsn lsn);

/* The dispatcher: lsn was published as safe to acknowledge: failures wholly before it are
 * forgotten, and a move past the last bare rewind's position resets the count of rewinds. */
void wn_requests_acknowledged(wn_requests *requests, wn_lsn lsn);

/*
 * The services. Outside handle, commit and flush they log an ERROR (naming the instance) and
 * return WALNOTIFY_FATAL, recording nothing. fail_events validates the range against what
 * was delivered since the last acknowledgement: a range outside it is recorded as an INVALID
 * request (the dispatcher stops the host with its message) and answered WALNOTIFY_FATAL.
 * Otherwise both answer WALNOTIFY_RETRY. reason may be NULL.
 */
walnotify_status wn_requests_rewind(wn_requests *requests, const char *instance,
                                    const char *reason);
walnotify_status wn_requests_fail(wn_requests *requests, const char *instance, walnotify_id first,
                                  walnotify_id last, walnotify_failure failure, const char *reason);

/* Records a failure without validation (the host's own: a bare rewind's `then = "skip"`). A
 * range named again counts again; false when WN_FAILURES_MAX ranges are already due. */
bool wn_requests_add_failure(wn_requests *requests, walnotify_id first, walnotify_id last,
                             walnotify_failure failure, const char *from, const char *reason);

/* Whether failures are due for the identity; *named receives their sum. */
bool wn_requests_named(const wn_requests *requests, walnotify_id id, wn_named *named);

/* The pending request, cleared. */
wn_request_kind wn_requests_take(wn_requests *requests);

#endif
