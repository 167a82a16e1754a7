/*
 * http: one POST at a time through one libcurl handle, kept alive between requests, and what
 * came of it sorted into delivered, transient or permanent. A request may be started and its
 * answer collected later: starting it sends it, so the host thread decodes the next transaction
 * while the receiver takes this one, and collecting it reads the answer.
 */
#ifndef WEBHOOK_HTTP_H
#define WEBHOOK_HTTP_H

#include "settings.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct webhook_http webhook_http;

typedef enum webhook_outcome {
    WEBHOOK_DELIVERED = 0, /* a 2xx */
    WEBHOOK_TRANSIENT = 1, /* 408, 429, 5xx, other non-4xx answers, connection failures and
                              timeouts: the same request may succeed later */
    WEBHOOK_PERMANENT = 2  /* any other 4xx: the receiver refuses this request's content */
} webhook_outcome;

#define WEBHOOK_WHAT_MAX 512

typedef struct webhook_reply {
    webhook_outcome outcome;
    long status;                 /* the HTTP status, 0 when no answer came */
    bool cut_after_send;         /* the connection was reset or closed after the request went out:
                                    the receiver may hold some of it, and may have dropped what it
                                    gathered on that connection */
    long retry_after_ms;         /* from a Retry-After header, 0 when none */
    char what[WEBHOOK_WHAT_MAX]; /* "HTTP 500 ...", or libcurl's reason, for messages */
} webhook_reply;

/* The headers that change from one request to the next. */
typedef struct webhook_request {
    const char *body;            /* borrowed for the call */
    size_t length;               /* bytes of body */
    const char *idempotency_key; /* the Idempotency-Key header's value */
    const char *commit_lsn;      /* the Walnotify-Commit-LSN header's value */
    const char *extra[2];        /* further "Name: value" headers, NULL when unused */
} webhook_request;

/*
 * Sets up the client: libcurl, the handle and its options, and the bearer token read from its
 * file (refused unless only root or walnotify's user can change it; never through a symbolic
 * link). Warns once when a credential would go over plain http off this machine. Logs why and
 * returns NULL on failure. The token never appears in a message.
 */
webhook_http *webhook_http_open(const walnotify_host *host, const webhook_settings *settings);

/* Cuts short a request in flight, closes the connection and forgets the token. NULL is
 * allowed. */
void webhook_http_close(webhook_http *http);

/* Sends one POST and waits (timeout_ms at most) for its answer. Nothing may be in flight. */
void webhook_http_post(webhook_http *http, const webhook_request *request, webhook_reply *reply);

/*
 * Starts one POST, sending what the connection takes without waiting; the request (its body and
 * every string) stays borrowed until webhook_http_finish returns. Nothing may be in flight.
 */
void webhook_http_start(webhook_http *http, const webhook_request *request);

/* Lets the started request go on, its body out and its answer in, without waiting. */
void webhook_http_progress(webhook_http *http);

/* Sends the rest of the started request and waits for its answer, until timeout_ms after the
 * start. An answer that has already come counts, however late this is called. */
void webhook_http_finish(webhook_http *http, webhook_reply *reply);

/* The URL without user, password, query or fragment: what messages name. */
const char *webhook_http_target(const webhook_http *http);

#endif
