/*
 * target: the connection to the target database in libpq's pipeline mode. Statements are sent
 * without waiting for their results; the results are read in order as they come (and all of
 * them at a flush), so one round trip serves a whole batch. Each statement sent is remembered
 * (the event it writes, or the commit it is) until its result is read, in a queue of bounded
 * length, so that what goes out stays within a bounded memory whatever the batch's size.
 */
#ifndef PGSINK_TARGET_H
#define PGSINK_TARGET_H

#include <walnotify/plugin.h>

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGSINK_KEY_MAX 64      /* an event's key as a failure names it, truncated */
#define PGSINK_MESSAGE_MAX 512 /* the server's error message, truncated */

typedef enum pgsink_entry_kind {
    PGSINK_ENTRY_COMMAND = 0, /* BEGIN, a PREPARE, the progress row: no event of its own */
    PGSINK_ENTRY_EVENT = 1,   /* one event's statement */
    PGSINK_ENTRY_COMMIT = 2,  /* COMMIT: its success makes `id` and `position` durable */
    PGSINK_ENTRY_SYNC = 3     /* a pipeline sync point */
} pgsink_entry_kind;

/* What one statement sent stands for, until its result is read. */
typedef struct pgsink_entry {
    pgsink_entry_kind kind;
    walnotify_id id;   /* EVENT: the event; COMMIT: the last event it makes durable */
    uint64_t position; /* COMMIT: the position its progress row holds */
    const char *table; /* EVENT: "schema.name" of the source, borrowed from the host */
    bool group;        /* EVENT: a statement of several rows, `id` to `last` */
    walnotify_id last;
    char key[PGSINK_KEY_MAX]; /* EVENT: the event's key, or "" */
} pgsink_entry;

/* The first error of a batch: the statement that failed and why. */
typedef struct pgsink_failure {
    bool set;
    bool transient; /* the connection, a deadlock, a shutdown: the batch may be done again */
    bool synced;    /* a sync point came or was sent after it: the server listens again */
    pgsink_entry entry;
    char sqlstate[6];
    char message[PGSINK_MESSAGE_MAX];
} pgsink_failure;

typedef struct pgsink_target {
    PGconn *conn;        /* NULL when not connected */
    pgsink_entry *queue; /* a ring of `capacity` statements sent, results not read */
    size_t capacity;
    size_t head; /* the oldest */
    size_t count;
    size_t syncs;              /* sync points among them */
    pgsink_failure failure;    /* set once a result failed: the rest up to the sync is skipped */
    walnotify_id committed_id; /* what the last COMMIT read made durable */
    uint64_t committed_position;
    bool committed_moved; /* a COMMIT result was read since the flag was cleared */
} pgsink_target;

/* Connects (pipeline mode, the session settings of the source's text formats); false with why
 * in `why` (never the conninfo, which may hold a password). */
bool pgsink_target_connect(pgsink_target *t, const char *conninfo, char *why, size_t whylen);
void pgsink_target_close(pgsink_target *t);

/* Sends one statement (prepared when name is given, else sql with params); false when the
 * connection is lost (failure then says so). The entry is copied. */
bool pgsink_target_send(pgsink_target *t, const pgsink_entry *entry, const char *name,
                        const char *sql, int nparams, const char *const *values,
                        const int *lengths);
/* Prepares a statement for the event of `entry` (a failure names that event). */
bool pgsink_target_prepare(pgsink_target *t, const pgsink_entry *entry, const char *name,
                           const char *sql);
bool pgsink_target_sync(pgsink_target *t);

/* Reads the results that have come, without waiting; then, when more than `most` statements
 * wait for theirs, waits until no more than `most` do. false once a result failed. */
bool pgsink_target_settle(pgsink_target *t, size_t most);

/* Runs one statement outside the pipeline (the connection must have no statement waiting);
 * the result to PQclear, or NULL with why. */
PGresult *pgsink_target_query(pgsink_target *t, const char *sql, int nparams,
                              const char *const *values, char *why, size_t whylen);

#endif
