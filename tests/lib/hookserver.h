/*
 * hookserver: the webhook receiver of the webhook plugin's tests (tests/webhook/server.py), run
 * on loopback as a child of the test. It answers 200 unless told otherwise (a script of answers
 * for the first requests, or 400 for every request holding one of some ids), logs every event of a
 * request it answered 2xx in the fault log format ("LSN SEQ TABLE OP ID", before the answer
 * leaves, so faults_check_history can compare the slot with what the receiver has), and one
 * JSON line per request. Like itest, every helper fails the running Check test on error.
 */
#ifndef WN_TEST_HOOKSERVER_H
#define WN_TEST_HOOKSERVER_H

#include <stddef.h>
#include <sys/types.h>

#include "itest.h"
#include "jline.h"

typedef struct hook_server {
    pid_t pid; /* 0 once stopped */
    int port;
    char url[128];       /* http(s)://127.0.0.1:PORT/hook */
    itest_path log;      /* the fault log of events answered 2xx */
    itest_path requests; /* one JSON object per request */
} hook_server;

/*
 * Starts the server with files named after `name` in ctx->dir and the given extra arguments
 * (e.g. "--script", "500,ok"), ended by NULL; waits until it listens. `tls` picks https (the
 * arguments then name --tls-cert and --tls-key).
 */
void hook_server_start(const itest_ctx *ctx, hook_server *server, const char *name, bool tls,
                       const char *const *args);
void hook_server_stop(hook_server *server);

/* Every request so far, parsed (to free with hook_requests_free). */
typedef struct hook_requests {
    jl_value **request;
    size_t count;
} hook_requests;
hook_requests hook_server_requests(const hook_server *server);
void hook_requests_free(hook_requests *requests);
/* Waits (ITEST_WAIT_S at most) until the server has seen at least count requests. */
void hook_server_wait_requests(const hook_server *server, size_t count);

/*
 * Waits (ITEST_WAIT_S at most) until the server serves no connection but this question's: after
 * a host was killed (its connections closed with it), what it had sent is in the log (or
 * dropped) by then, so that it counts in its run.
 */
void hook_server_wait_idle(const hook_server *server);

/*
 * The ids of the events the server answered 2xx for, in the order of its log, as "1 2 3"; with
 * first_only, each id once, where it first came (a transaction not acknowledged before a stop or
 * a rewind is sent again). To free.
 */
char *hook_server_ids(const hook_server *server, bool first_only);

/* A member of a request's line as text ("" for null or absent). */
const char *hook_field(const jl_value *request, const char *key);

/* A CA and a server certificate for 127.0.0.1 signed by it, made with the openssl command in
 * ctx->dir: NAME-ca.pem, NAME-cert.pem, NAME-key.pem. */
void hook_make_ca(const itest_ctx *ctx, const char *name);

#endif
