/*
 * requests: what a plugin instance asks of the host from inside a callback (ABI 1.1): a rewind
 * (walnotify_host.rewind), or delivered events named as failed (walnotify_host.fail_events).
 *
 * The loader's host services record a request here; the dispatcher acts on it when the callback
 * returns. What must outlive one stream also lives here, since a rewind ends the stream: the
 * failures named and not yet acknowledged (on redelivery they meet the instance's policy) and
 * the rewinds asked for since the acknowledged position last moved. One wn_requests per
 * instance, used on the host thread only (the header allows these services nowhere else).
 */
#ifndef WN_REQUESTS_H
#define WN_REQUESTS_H

#include <stdbool.h>
#include <stddef.h>

#include <walnotify/plugin.h>

#include "lsn.h"

#define WN_REQUEST_REASON_MAX 256  /* bytes of a plugin's reason kept, NUL included */
#define WN_REQUEST_MESSAGE_MAX 512 /* bytes of the message of an invalid request */
#define WN_FAILURES_MAX 32         /* distinct ranges named and not yet acknowledged */
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
    unsigned long serial;   /* when it was last named: the latest naming wins */
    const char *from;       /* the callback that named it last: static text; NULL when
                               the host named it (a bare rewind's skip) */
    char reason[WN_REQUEST_REASON_MAX];
} wn_failure;

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
    wn_lsn acknowledged; /* the last position published as safe to acknowledge */

    /* The request made during the callback in progress. */
    wn_request_kind pending;
    char reason[WN_REQUEST_REASON_MAX];   /* REWIND: the plugin's reason */
    char message[WN_REQUEST_MESSAGE_MAX]; /* INVALID: why the host refuses it */
    const char *from;                     /* the callback it came from */

    /* Kept across streams until acknowledged. */
    wn_failure failures[WN_FAILURES_MAX];
    size_t nfailures;
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

/* The dispatcher: the event with this identity is about to be handed to handle. */
void wn_requests_delivering(wn_requests *requests, walnotify_id id);

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

/* Records a failure without validation (the host's own: a bare rewind's `then = "skip"`).
 * false when WN_FAILURES_MAX ranges are already due. */
bool wn_requests_add_failure(wn_requests *requests, walnotify_id first, walnotify_id last,
                             walnotify_failure failure, const char *from, const char *reason);

/* Whether failures are due for the identity; *named receives their sum. */
bool wn_requests_named(const wn_requests *requests, walnotify_id id, wn_named *named);

/* The pending request, cleared. */
wn_request_kind wn_requests_take(wn_requests *requests);

#endif
