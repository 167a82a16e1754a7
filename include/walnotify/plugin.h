/*
 * walnotify/plugin.h: the ABI between the walnotify host and its handler plugins.
 *
 * This is the only header a plugin needs. A plugin is a shared object that exports one function,
 * walnotify_plugin_entry(), returning a pointer to a constant descriptor. The host loads the
 * object with dlopen(RTLD_NOW | RTLD_LOCAL), checks the descriptor and then, for each block of the
 * configuration that names the object, calls:
 *
 *     check     (optional, 1.1) once by --check-config and once before init: validate the
 *               settings without side effects (only the setting getters and log work);
 *     init      after the replication slot is acquired; RETRY calls it again after the
 *               block's backoff (the host keeps the replication connection alive meanwhile,
 *               and logs a line the instance repeats unchanged at debug level); again after a
 *               shutdown that released the sinks to the other host of an active/standby pair;
 *     begin     (optional) before the first event of a transaction this instance receives;
 *     handle    once per event, in commit order;
 *     commit    (optional) after the last event of a transaction that saw begin;
 *     abort     (optional) when a transaction that saw begin (that is: this instance received
 *               an event of it, whether or not the plugin has begin) will not be committed: the
 *               host is stopping, another plugin failed, or a plugin asked for a rewind (also
 *               from this transaction's own commit: it is in hand until commit returns OK); it
 *               is delivered again (next run, or after the rewind); a sink that drops replays
 *               by identity may keep what it wrote of it;
 *     flush     (optional) to make durable every transaction this instance finished (its commit
 *               returned, or its last handle for a plugin without commit); the host
 *               acknowledges a position to PostgreSQL only after every plugin's flush returned
 *               WALNOTIFY_OK. flush may come between any two callbacks, also for an instance
 *               with nothing new (between a begin and its commit, the open transaction's batch
 *               may wait for its commit and the next flush); it comes at least once per status
 *               interval while the instance has unflushed work, and once at a stop;
 *     shutdown  once, at the end, in the reverse order of the configuration; also when the
 *               host, reconnecting, finds its slot held by another process (everything finished
 *               was flushed): init comes again once the slot is the host's again.
 *
 * Threads: every callback of every plugin is called from one and the same host thread, never
 * concurrently. A callback may block (for minutes if it must): the host keeps the replication
 * connection alive on another thread meanwhile. Of the host services, `log` may be called from
 * any thread a plugin starts; every other service only on the host thread, inside a callback.
 * The host blocks SIGINT, SIGTERM and SIGPIPE in its threads (SIGPIPE is ignored): a plugin
 * that starts child processes must reset the signal mask and SIGPIPE's disposition in the child
 * before exec (posix_spawnattr_setsigmask / setsigdefault), or the child inherits them.
 *
 * State: the same object may be listed several times in one configuration, so a plugin keeps no
 * state in globals. init returns a state pointer that the host hands back to every other call.
 *
 * Lifetimes: everything the host passes in (events, columns, strings, the transaction) is
 * borrowed for the duration of the call only; copy what you keep. The walnotify_host table passed
 * to init, and every string its getters return, stay valid until shutdown returns.
 *
 * Delivery is at least once: after a crash, transactions after the last acknowledged position
 * come again. Every event carries an identity (walnotify_id, 1.1; for changes it is
 * (commit_lsn, seq) as in 1.0) that is the same on every delivery and increases in delivery
 * order, so a sink can drop what it has already seen.
 *
 * Compatibility: a host accepts a plugin whose abi_major equals its own and whose abi_minor is
 * not newer than its own. Minor versions only append members at the end of a structure; every
 * structure that can grow carries its size (walnotify_event, walnotify_txn, walnotify_host,
 * walnotify_plugin, walnotify_source, walnotify_table), so a plugin built against this header
 * loads in every later host of the same major version, and behaves there as it did: a plugin
 * built for 1.0 never receives an operation it does not know (snapshot, message), its init may
 * answer RETRY, and FATAL from its commit or flush still stops the host.
 *
 *   - A structure the host passes in may come from an older host than the header a plugin was
 *     built with. Members up to the minor the plugin requires need no check when the plugin
 *     also requires that minor of the host (the host refuses a plugin whose abi_minor is newer
 *     than its own, so a plugin declaring WALNOTIFY_ABI_MINOR 1 only ever meets 1.1 or later
 *     structures). A plugin that declares an older minor but uses a newer member tests it first
 *     with WALNOTIFY_HAS(type, pointer, member).
 *   - The host refuses a descriptor that claims a minor but is shorter than that minor's
 *     walnotify_plugin.
 *   - walnotify_column and walnotify_setting are array elements: their layout is fixed for the
 *     whole major version. What they lack is found elsewhere (walnotify_table, the event).
 */
#ifndef WALNOTIFY_PLUGIN_H
#define WALNOTIFY_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WALNOTIFY_PLUGIN_MAGIC 0x574E504Cu /* "WNPL": refuses a stray shared object */
#define WALNOTIFY_ABI_MAJOR 1
#define WALNOTIFY_ABI_MINOR 2

/* True when the structure at `ptr` (of type `type`, with a leading `size` member) holds
 * `member`: use it before reading a member newer than the minor your plugin declares. */
#define WALNOTIFY_HAS(type, ptr, member)                                                           \
    ((ptr)->size >= offsetof(type, member) + sizeof(((const type *)0)->member))

/* Return codes of init, handle, begin, commit and flush. */
typedef enum walnotify_status {
    WALNOTIFY_OK = 0,    /* done */
    WALNOTIFY_RETRY = 1, /* transient: the host calls again with the same arguments later, after
                            the instance's backoff (for handle, as its on_error/retry_max allow;
                            for init, until OK, FATAL or a stop: free what init made first) */
    WALNOTIFY_FATAL = 2  /* permanent: from handle, the event meets the instance's on_error
                            policy (skip to the dead-letter file, or stop); from check the host
                            stops with exit 1 (a configuration error); from any other callback
                            the host stops (exit 2) and acknowledges nothing after */
} walnotify_status;

/* Operations; bit values so that a set of them fits in one unsigned. */
typedef enum walnotify_op {
    WALNOTIFY_OP_INSERT = 1,
    WALNOTIFY_OP_UPDATE = 2,
    WALNOTIFY_OP_DELETE = 4,
    WALNOTIFY_OP_TRUNCATE = 8,
    WALNOTIFY_OP_SNAPSHOT = 16, /* 1.1: a row that existed when the initial snapshot was taken,
                                   or one of the snapshot's begin and end markers */
    WALNOTIFY_OP_MESSAGE = 32   /* 1.1: a logical decoding message (pg_logical_emit_message) */
} walnotify_op;

/* What a descriptor without `ops` (every 1.0 plugin) handles. */
#define WALNOTIFY_OPS_CHANGES                                                                      \
    (WALNOTIFY_OP_INSERT | WALNOTIFY_OP_UPDATE | WALNOTIFY_OP_DELETE | WALNOTIFY_OP_TRUNCATE)

/*
 * 1.1: the identity of an event: two unsigned 64-bit numbers, compared as a pair (position
 * first). It never depends on the configuration, is the same on every delivery, never collides
 * across kinds of events, and increases in the order events are delivered. It fits a Redis
 * stream ID ("position-ordinal").
 *
 *   change   position = the transaction's commit LSN;
 *            ordinal  = (seq + 1) << 32: (commit_lsn, seq) as in ABI 1.0, spread apart so that
 *            the messages between two changes fit between them.
 *   message, transactional: position = its transaction's commit LSN;
 *            ordinal  = (changes before it in the transaction) << 32 | k, where k = 1, 2, ...
 *            counts the messages since the last change (or since the Begin).
 *   message, not transactional: position = the message's own LSN; ordinal = 0.
 *   snapshot position = the snapshot's consistent point - 1; ordinal = 0 for the begin marker,
 *            1, 2, ... for the rows in the order they are read, and one more for the end marker.
 *
 * The PostgreSQL rules this relies on: transactions are sent in the order of their commit
 * records, each whole; a non-transactional message is sent when its own record is decoded, so
 * it follows every transaction that committed before it and precedes every one that commits
 * after it. A slot's consistent point is the end of a WAL record: no record starts just under
 * it, every transaction whose commit record starts before it is in the snapshot, and every one
 * whose commit record starts at or after it is streamed (its commit LSN, possibly equal to the
 * consistent point, is above every snapshot identity). A snapshot taken again (after a crash
 * or on a new slot) has a later consistent point, so its identities are new.
 */
typedef struct walnotify_id {
    uint64_t position;
    uint64_t ordinal;
} walnotify_id;

/* What a column of an event holds. */
typedef enum walnotify_value_kind {
    WALNOTIFY_VALUE_NULL = 0,
    WALNOTIFY_VALUE_TEXT = 1,     /* value/length hold PostgreSQL's text output */
    WALNOTIFY_VALUE_UNCHANGED = 2 /* updates only: an unchanged TOAST value not sent */
} walnotify_value_kind;

/* What old row an update or delete carries. */
typedef enum walnotify_old_kind {
    WALNOTIFY_OLD_NONE = 0, /* the server sent no old row */
    WALNOTIFY_OLD_KEY = 1,  /* replica identity columns only: see walnotify_column.is_key */
    WALNOTIFY_OLD_ROW = 2   /* the whole old row (REPLICA IDENTITY FULL) */
} walnotify_old_kind;

#define WALNOTIFY_TRUNCATE_CASCADE 1u
#define WALNOTIFY_TRUNCATE_RESTART_IDENTITY 2u

typedef struct walnotify_column {
    const char *name;          /* column name, NUL-terminated */
    uint32_t type_oid;         /* pg_type OID of the column */
    int32_t typmod;            /* type modifier, -1 when none */
    bool is_key;               /* part of the replica identity */
    walnotify_value_kind kind; /* NULL, text, or unchanged TOAST */
    const char *value;         /* text, NUL-terminated; NULL unless kind is TEXT */
    size_t length;             /* bytes of value, excluding the NUL */
} walnotify_column;

typedef struct walnotify_event {
    size_t size;         /* sizeof(walnotify_event) as the host was built: members past it
                            are absent */
    const char *table;   /* "schema.name" as source.tables names it (also for a change made
                            while the table had another name), NUL-terminated */
    const char *schema;  /* "schema" */
    const char *name;    /* "name" */
    walnotify_op op;     /* one operation */
    uint64_t commit_lsn; /* the transaction's commit LSN (Begin's final LSN) */
    uint32_t xid;        /* the transaction's id */
    int64_t commit_time; /* microseconds since 1970-01-01 00:00:00 UTC */
    uint32_t seq;        /* 0-based position among its transaction's data changes */
    const walnotify_column *columns; /* the new row (insert, update); NULL otherwise */
    size_t ncolumns;
    walnotify_old_kind old_kind;         /* update and delete: what old_columns holds */
    const walnotify_column *old_columns; /* the old row or key; NULL when old_kind is NONE */
    size_t nold_columns;
    unsigned truncate_options; /* truncate only: WALNOTIFY_TRUNCATE_* bits */

    /* ---- ABI 1.1 ---- */
    walnotify_id id; /* the event's identity (above) */
    /* MESSAGE: table, schema and name are NULL; commit_lsn is the id's position; xid and
       commit_time are 0 for a message that is not transactional. seq counts the changes before
       a transactional message, 0 otherwise. */
    bool transactional;          /* MESSAGE: emitted inside a transaction (delivered at its
                                    place in it), or on its own */
    const char *message_prefix;  /* MESSAGE: the prefix, NUL-terminated */
    const char *message_content; /* MESSAGE: the content (may hold NULs; a NUL follows) */
    size_t message_length;       /* MESSAGE: bytes of content, excluding that NUL */
    /* SNAPSHOT: commit_lsn is the snapshot's consistent point; xid and commit_time are 0; seq
       is 0. A row carries the table and columns as an insert does. */
    unsigned snapshot_marker; /* SNAPSHOT: a WALNOTIFY_SNAPSHOT_* value */
    uint64_t snapshot_rows;   /* SNAPSHOT, END marker: rows the snapshot delivered */

    /* ---- ABI 1.2 ---- */
    bool replay; /* read back by `walnotify --replay` from a jsonl or dead-letter file, not
                    from the stream; false for every event of the stream. A replayed event
                    holds what the line holds: type_oid 0, typmod -1, no is_key, an old row as
                    WALNOTIFY_OLD_ROW; its id is the one the stream gave it. Without a
                    database, source() has no system identifier or server version, table()
                    has no columns or key, resume_position() is 0 */
} walnotify_event;

/* What a SNAPSHOT event is. The markers carry no table (NULL) and no columns. */
#define WALNOTIFY_SNAPSHOT_ROW 0u
#define WALNOTIFY_SNAPSHOT_BEGIN 1u /* the first event of a snapshot: nothing of it came before */
#define WALNOTIFY_SNAPSHOT_END 2u   /* the last: every row of the snapshot came before it */

/* The transaction being delivered, as begin, commit and abort see it. */
typedef struct walnotify_txn {
    size_t size;         /* sizeof(walnotify_txn) as the host was built */
    uint64_t commit_lsn; /* Begin's final LSN */
    uint32_t xid;
    int64_t commit_time; /* microseconds since 1970-01-01 00:00:00 UTC */

    /* ---- ABI 1.1 ---- */
    unsigned kind; /* WALNOTIFY_TXN_*: a replicated transaction, or a batch of snapshot
                      rows (the snapshot comes as one or more of them, between its begin
                      and end markers; commit_lsn is then its consistent point) */
} walnotify_txn;

#define WALNOTIFY_TXN_CHANGES 0u
#define WALNOTIFY_TXN_SNAPSHOT 1u

/* 1.2, inline (no host needed): -1, 0 or 1 as a comes before, is, or comes after b. An event
 * whose id compares <= 0 with the last one a sink kept is a replay. */
static inline int walnotify_id_compare(walnotify_id a, walnotify_id b)
{
    if (a.position != b.position)
        return a.position < b.position ? -1 : 1;
    return a.ordinal < b.ordinal ? -1 : a.ordinal > b.ordinal ? 1 : 0;
}

/*
 * 1.2, inline: the identity a sink keeps once it has kept a whole transaction, given `last`, the
 * id of the transaction's last event: every event of the transaction compares <= it, and every
 * event delivered after it compares above.
 *   changes  (commit_lsn, UINT64_MAX), past every event it holds (its messages included);
 *   snapshot `last` and no more: the snapshot's next batch goes on with the next ordinals at the
 *            same position (commit_lsn - 1), and a transaction may commit at commit_lsn itself.
 */
static inline walnotify_id walnotify_txn_id(const walnotify_txn *txn, walnotify_id last)
{
    if (txn->size >= offsetof(walnotify_txn, kind) + sizeof txn->kind &&
        txn->kind == WALNOTIFY_TXN_SNAPSHOT)
        return last;
    last.position = txn->commit_lsn;
    last.ordinal = UINT64_MAX;
    return last;
}

/* 1.2, inline: an operation's name as the configuration's `ops` and the jsonl lines spell it
 * ("insert", "update", "delete", "truncate", "snapshot", "message"); "unknown" for another
 * value. */
static inline const char *walnotify_op_name(walnotify_op op)
{
    switch (op) {
    case WALNOTIFY_OP_INSERT:
        return "insert";
    case WALNOTIFY_OP_UPDATE:
        return "update";
    case WALNOTIFY_OP_DELETE:
        return "delete";
    case WALNOTIFY_OP_TRUNCATE:
        return "truncate";
    case WALNOTIFY_OP_SNAPSHOT:
        return "snapshot";
    case WALNOTIFY_OP_MESSAGE:
        return "message";
    }
    return "unknown";
}

/* 1.1: how a failure named with walnotify_host.fail_events is treated. */
typedef enum walnotify_failure {
    WALNOTIFY_FAILURE_TRANSIENT = 1, /* as RETRY from handle: retried under the policy */
    WALNOTIFY_FAILURE_PERMANENT = 2  /* as FATAL from handle: straight to the policy's end */
} walnotify_failure;

/* 1.1: the replica identity of a table (pg_class.relreplident). */
typedef enum walnotify_replica_identity {
    WALNOTIFY_IDENTITY_DEFAULT = 'd', /* the primary key, if any */
    WALNOTIFY_IDENTITY_INDEX = 'i',   /* a chosen unique index */
    WALNOTIFY_IDENTITY_FULL = 'f',    /* every column */
    WALNOTIFY_IDENTITY_NOTHING = 'n'  /* none: updates and deletes cannot be published */
} walnotify_replica_identity;

/* 1.1: the source the host streams from, as read at startup. */
typedef struct walnotify_source {
    size_t size;                /* sizeof(walnotify_source) as the host was built */
    uint64_t system_identifier; /* the cluster's (pg_control_system()) */
    const char *database;       /* the database streamed from */
    const char *slot;           /* the replication slot */
    const char *publication;    /* the publication */
    uint32_t server_version;    /* as server_version_num, e.g. 150008 */
} walnotify_source;

/*
 * 1.1: a table this instance receives, as the catalog described it at startup (a later ALTER
 * TABLE is not reflected here; events carry the columns in force).
 */
typedef struct walnotify_table {
    size_t size;       /* sizeof(walnotify_table) as the host was built */
    const char *table; /* "schema.name" */
    const char *schema;
    const char *name;
    unsigned ops; /* WALNOTIFY_OP_* this instance receives for it */
    walnotify_replica_identity replica_identity;
    const walnotify_column *columns; /* every column in table order: name, type_oid, typmod and
                                        is_key (a key column, below); kind NULL, no value */
    size_t ncolumns;
    /* The key columns, as indexes into columns, in key order: the replica identity's (the
       primary key under DEFAULT, the chosen index under INDEX), and the primary key under FULL
       or NOTHING; none when there is no such key. These are the columns encode_key renders. */
    const size_t *key_columns;
    size_t nkey_columns;
} walnotify_table;

/* Settings a plugin declares; the host validates the configuration against them. */
typedef enum walnotify_setting_type {
    WALNOTIFY_SETTING_STRING = 1,
    WALNOTIFY_SETTING_INTEGER = 2, /* 64-bit signed */
    WALNOTIFY_SETTING_BOOLEAN = 3,
    WALNOTIFY_SETTING_LIST = 4, /* a list of strings */
    WALNOTIFY_SETTING_PATH = 5  /* a string; relative paths resolve against the configuration
                                   file's folder ("-" is left alone) */
} walnotify_setting_type;

typedef struct walnotify_setting {
    const char *name; /* NULL ends the array */
    walnotify_setting_type type;
    const char *default_value; /* text of the default ("true", "42", "a,b" for a list), or
                                  NULL: the setting is required */
    const char *description;   /* one line, for --check-config and documentation */
} walnotify_setting;

typedef enum walnotify_log_level {
    WALNOTIFY_LOG_DEBUG = 0,
    WALNOTIFY_LOG_INFO = 1,
    WALNOTIFY_LOG_WARNING = 2,
    WALNOTIFY_LOG_ERROR = 3
} walnotify_log_level;

/*
 * The services the host lends to one plugin instance, passed to check and init. Members are only
 * ever appended (see Compatibility above). A getter asked for a setting the plugin did not
 * declare, or as another type, returns the zero value (NULL, 0, false). During check only the
 * setting getters and log work: every other service returns its zero value there, but for
 * table_count and table (1.2, to a plugin that declares minor 2 or later): the block's tables as
 * the configuration names them (table, schema, name and ops; no columns, no key), so that check
 * can refuse a name its sink cannot take before any server is asked.
 */
typedef struct walnotify_host walnotify_host;

/* 1.2: an open durable append file (see file_open below); the host's own. */
typedef struct walnotify_file walnotify_file;
#define WALNOTIFY_FILE_LINES 1u /* file_open: records are lines without a raw newline */

struct walnotify_host {
    size_t size;        /* sizeof(walnotify_host) as the host was built */
    uint32_t abi_major; /* the host's ABI version */
    uint32_t abi_minor;
    const char *instance_name; /* the plugin block's `name`, for messages */

    /* One log line on the host's log, prefixed with the instance name. */
    void (*log)(const walnotify_host *host, walnotify_log_level level, const char *format, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    /* STRING or PATH (absolute once resolved); NULL when absent without default. */
    const char *(*get_string)(const walnotify_host *host, const char *name);
    int64_t (*get_integer)(const walnotify_host *host, const char *name);
    bool (*get_boolean)(const walnotify_host *host, const char *name);
    size_t (*get_list_length)(const walnotify_host *host, const char *name);
    const char *(*get_list_item)(const walnotify_host *host, const char *name, size_t index);

    void *host_private; /* the host's own; plugins leave it alone */

    /* ---- ABI 1.1 ---- */

    /* The source streamed from; valid until shutdown returns. */
    const walnotify_source *(*source)(const walnotify_host *host);
    /* The tables this instance receives (its block's `tables`), in configuration order; each
       valid until shutdown returns. table() returns NULL past the end. */
    size_t (*table_count)(const walnotify_host *host);
    const walnotify_table *(*table)(const walnotify_host *host, size_t index);

    /* Where the stream resumes: every transaction that commits after it comes (again). */
    uint64_t (*resume_position)(const walnotify_host *host);
    /* During flush: the position acknowledged to PostgreSQL if every flush succeeds (a
       transaction's end, or a keepalive's position); 0 outside flush. */
    uint64_t (*flush_position)(const walnotify_host *host);
    /* Asks to be flushed before every acknowledgement, even when this instance handled nothing
       since its last flush (a sink that records its progress downstream needs it: keepalives
       move the acknowledged position too). Off by default. */
    void (*set_flush_always)(const walnotify_host *host, bool always);

    /*
     * The event's canonical JSON: byte for byte the jsonl plugin's line, without the newline.
     * The key variant renders the row's key columns (walnotify_table.key_columns) as one JSON
     * object ({"id":"7"}), the same columns for every operation: from the new row for an
     * insert, update or snapshot row, from the old key or row for a delete (pgoutput marks
     * every column as key under REPLICA IDENTITY FULL: the primary key read from the catalog is
     * used there). It returns NULL when the event has no key: a truncate, a message, a snapshot
     * marker, a table without a key, or a key value that is an unchanged TOAST value.
     * The text is NUL-terminated, *length (when not NULL) its bytes; it lives in a buffer owned
     * by the instance, valid until its next encoder call or the end of the callback. NULL when
     * out of memory, or outside a callback that carries the event.
     */
    const char *(*encode_json)(const walnotify_host *host, const walnotify_event *event,
                               size_t *length);
    const char *(*encode_key)(const walnotify_host *host, const walnotify_event *event,
                              size_t *length);

    /*
     * From handle, commit or flush: names the delivered events from `first` to `last` (their
     * identities, inclusive) as failed, with a reason, and asks for a rewind. The host calls
     * abort for the transaction in hand, acknowledges nothing new, and streams again from the
     * last acknowledged position; on that redelivery the named events go to the instance's
     * failure policy (on_error: retry with backoff, skip to the dead-letter file, or stop)
     * instead of to handle, and the rest is delivered as usual; every naming of an event counts
     * as one failed attempt of it, until it is acknowledged. Naming an event that was not
     * delivered since the last acknowledgement is a bug of the plugin: the host stops (exit 2).
     * Returns WALNOTIFY_RETRY: return it from the callback (WALNOTIFY_FATAL when the host
     * refuses the request: outside handle, commit or flush, or a bug as above).
     */
    walnotify_status (*fail_events)(const walnotify_host *host, walnotify_id first,
                                    walnotify_id last, walnotify_failure failure,
                                    const char *reason);
    /*
     * From handle, commit or flush: the sink lost what it had not made durable (a connection
     * reset, a child process that died). The host calls abort for the transaction in hand,
     * flushes no one on this instance's behalf, acknowledges nothing new, and streams again
     * from the last acknowledged position: every instance receives everything after it again.
     * A rewind counts as a retry of this instance (its backoff, retry_max, then `then`), the
     * rewinds being counted until the acknowledged position moves on: `then = "stop"` stops
     * the host (exit 2); "skip" sends what this instance received since the last
     * acknowledgement to its dead-letter file when it comes again.
     * Returns WALNOTIFY_RETRY: return it from the callback (WALNOTIFY_FATAL outside handle,
     * commit or flush).
     */
    walnotify_status (*rewind)(const walnotify_host *host, const char *reason);

    /* ---- ABI 1.2 ---- */

    /*
     * Durable append files: a file the plugin appends records to, that after a crash holds only
     * what a sync made durable, whatever the records hold (CSV with quoted newlines too).
     *
     * file_open opens `path` (absolute, as a PATH setting's value is), creating it 0600 (the
     * umask does not change that); a symbolic link there is refused, not followed, and so is
     * anything but a regular file. It takes an exclusive lock: one writer per file. Then it cuts
     * the file back to the length the last sync made durable and sets *last to the identity
     * that sync recorded (zero for a new file). The durable length and identity live in a
     * companion file, PATH.durable, replaced atomically at each sync: leave it beside the file.
     * A file that exists without its companion (not written through this service) is refused.
     * With WALNOTIFY_FILE_LINES, for records that are lines never holding a raw newline (JSON
     * lines), there is no companion: the file is cut after its last newline, *last is zero.
     * Returns OK with *file set; RETRY when another process holds the lock (the other host of
     * an active/standby pair: answer RETRY from init); FATAL otherwise (during check too).
     *
     * file_append adds length bytes at the end; a record may be added in pieces. The host
     * gathers them in memory and writes them once they pass 1 MiB, or at the next file_sync.
     * When a write fails (a full disk, a file size limit), the file is cut back to what the
     * last sync made durable and refuses every later call (FATAL): reopen it (the next run
     * does) to go on from there. OK, or FATAL (also out of memory).
     *
     * file_sync makes everything appended durable: writes it, fsyncs the file, its folder the
     * first time (a new file's name), then records the length with `last`, the identity the
     * plugin says those bytes end with (the last event it added, or walnotify_txn_id of the
     * last transaction it kept). Call it from flush, when what was appended ends with a whole
     * record. OK or FATAL (return it: walnotify stops and acknowledges nothing after).
     *
     * file_close closes the file without syncing and releases the lock; call it in shutdown.
     * Every failure is logged by the host, naming the file and the reason. Host thread only.
     */
    walnotify_status (*file_open)(const walnotify_host *host, const char *path, unsigned flags,
                                  walnotify_file **file, walnotify_id *last);
    walnotify_status (*file_append)(const walnotify_host *host, walnotify_file *file,
                                    const void *data, size_t length);
    walnotify_status (*file_sync)(const walnotify_host *host, walnotify_file *file,
                                  walnotify_id last);
    void (*file_close)(const walnotify_host *host, walnotify_file *file);
};

/*
 * The descriptor. Fill it with designated initializers so every member a plugin does not name is
 * zero (an absent optional callback).
 */
typedef struct walnotify_plugin {
    uint32_t magic;                    /* WALNOTIFY_PLUGIN_MAGIC */
    uint16_t abi_major;                /* WALNOTIFY_ABI_MAJOR */
    uint16_t abi_minor;                /* WALNOTIFY_ABI_MINOR */
    uint32_t size;                     /* sizeof(walnotify_plugin) */
    const char *name;                  /* the plugin's own name, e.g. "jsonl" */
    const char *version;               /* the plugin's own version, e.g. "1.0.0" */
    const walnotify_setting *settings; /* ended by a member with name NULL; NULL for none */

    /* Required. Returns WALNOTIFY_OK and sets *state, or an error after logging why. */
    walnotify_status (*init)(const walnotify_host *host, void **state);
    /* Required. One event, borrowed for the call. */
    walnotify_status (*handle)(void *state, const walnotify_event *event);
    /* Required. Releases everything; called once after each init that returned OK, also
       after a failed run. */
    void (*shutdown)(void *state);

    /* Optional: batch a transaction. begin precedes this instance's first event of it. */
    walnotify_status (*begin)(void *state, const walnotify_txn *txn);
    /* Optional: after the transaction's last event; RETRY is retried, the batch kept. */
    walnotify_status (*commit)(void *state, const walnotify_txn *txn);
    /* Optional: the transaction that saw begin will not be committed now; drop its batch. */
    void (*abort)(void *state, const walnotify_txn *txn);
    /* Optional: make durable every transaction finished so far (see the top of this file for
       when it comes). */
    walnotify_status (*flush)(void *state);

    /* ---- ABI 1.1 ---- */

    /* The operations this plugin handles (WALNOTIFY_OP_* bits); 0 means
       WALNOTIFY_OPS_CHANGES. A block's `ops` may ask only for these; a block without `ops` gets
       insert, which the plugin must then handle. */
    unsigned ops;
    /* Optional: checks the settings, without side effects (no files, no sockets, no threads):
       only the setting getters and log work. Called once by --check-config and once before
       init. WALNOTIFY_OK, or anything else after logging why (the host stops, exit 1). */
    walnotify_status (*check)(const walnotify_host *host);
} walnotify_plugin;

/* The one symbol a plugin exports. */
#define WALNOTIFY_PLUGIN_ENTRY_SYMBOL "walnotify_plugin_entry"
typedef const walnotify_plugin *(*walnotify_plugin_entry_fn)(void);

#if defined(__GNUC__)
#define WALNOTIFY_EXPORT __attribute__((visibility("default")))
#else
#define WALNOTIFY_EXPORT
#endif

const walnotify_plugin *walnotify_plugin_entry(void) WALNOTIFY_EXPORT;

/* 1.2: the fixed members of a descriptor (magic, both ABI numbers as this header says, size), as
 * its first initializers:
 *     static const walnotify_plugin p = {WALNOTIFY_PLUGIN_HEADER, .name = "csvsink", ...}; */
#define WALNOTIFY_PLUGIN_HEADER                                                                    \
    .magic = WALNOTIFY_PLUGIN_MAGIC, .abi_major = WALNOTIFY_ABI_MAJOR,                             \
    .abi_minor = WALNOTIFY_ABI_MINOR, .size = sizeof(walnotify_plugin)

/* 1.2: the descriptor, its fixed members filled and the rest given as designated initializers,
 * and walnotify_plugin_entry returning it; once per plugin, at file scope:
 *     WALNOTIFY_PLUGIN(.name = "csvsink", .version = "1.0.0", .init = init, ...); */
#define WALNOTIFY_PLUGIN(...)                                                                      \
    static const walnotify_plugin walnotify_plugin_descriptor = {WALNOTIFY_PLUGIN_HEADER,          \
                                                                 __VA_ARGS__};                     \
    const walnotify_plugin *walnotify_plugin_entry(void)                                           \
    {                                                                                              \
        return &walnotify_plugin_descriptor;                                                       \
    }                                                                                              \
    const walnotify_plugin *walnotify_plugin_entry(void)

#ifdef __cplusplus
}
#endif

#endif /* WALNOTIFY_PLUGIN_H */
