/*
 * walnotify/plugin.h: the ABI between the walnotify host and its handler plugins.
 *
 * This is the only header a plugin needs. A plugin is a shared object that exports one function,
 * walnotify_plugin_entry(), returning a pointer to a constant descriptor. The host loads the
 * object with dlopen(RTLD_NOW | RTLD_LOCAL), checks the descriptor and then, for each block of the
 * configuration that names the object, calls:
 *
 *     init      once, after the replication slot is acquired;
 *     begin     (optional) before the first event of a transaction this instance receives;
 *     handle    once per event, in commit order;
 *     commit    (optional) after the last event of a transaction that saw begin;
 *     abort     (optional) when a transaction that saw begin will not be committed: the host is
 *               stopping, or another plugin failed; it is delivered again on the next run;
 *     flush     (optional) to make durable every transaction this instance finished (its commit
 *               returned, or its last handle for a plugin without commit); the host
 *               acknowledges a position to PostgreSQL only after every plugin's flush returned
 *               WALNOTIFY_OK. It may come between a begin and its commit: the open
 *               transaction's batch may wait for its commit and the next flush;
 *     shutdown  once, at the end, in the reverse order of the configuration.
 *
 * Threads: every callback of every plugin is called from one and the same host thread, never
 * concurrently. A callback may block (for minutes if it must): the host keeps the replication
 * connection alive on another thread meanwhile.
 *
 * State: the same object may be listed several times in one configuration, so a plugin keeps no
 * state in globals. init returns a state pointer that the host hands back to every other call.
 *
 * Lifetimes: everything the host passes in (events, columns, strings, the transaction) is
 * borrowed for the duration of the call only; copy what you keep. The walnotify_host table passed
 * to init, and every string its getters return, stay valid until shutdown returns.
 *
 * Delivery is at least once: after a crash, transactions after the last acknowledged position
 * come again. (commit_lsn, seq) names an event uniquely and is the same on every delivery, so a
 * sink can drop what it has already seen.
 *
 * Compatibility: a host accepts a plugin whose abi_major equals its own and whose abi_minor is
 * not newer than its own. Minor versions only append members at the end of a structure; every
 * structure that can grow carries its size (walnotify_event, walnotify_txn, walnotify_host,
 * walnotify_plugin), so a plugin built against this header loads in every later host of the same
 * major version. walnotify_column and walnotify_setting are array elements: their layout is
 * fixed for the whole major version.
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
#define WALNOTIFY_ABI_MINOR 0

/* Return codes of init, handle, begin, commit and flush. */
typedef enum walnotify_status {
    WALNOTIFY_OK = 0,    /* done */
    WALNOTIFY_RETRY = 1, /* transient: the host calls again with the same arguments later (for
                            handle, as the instance's on_error/retry_max allow) */
    WALNOTIFY_FATAL = 2  /* permanent: from handle, the event meets the instance's on_error
                            policy (skip to the dead-letter file, or stop); from any other
                            callback the host stops (exit 2) and acknowledges nothing after */
} walnotify_status;

/* Operations; bit values so that a set of them fits in one unsigned. */
typedef enum walnotify_op {
    WALNOTIFY_OP_INSERT = 1,
    WALNOTIFY_OP_UPDATE = 2,
    WALNOTIFY_OP_DELETE = 4,
    WALNOTIFY_OP_TRUNCATE = 8
} walnotify_op;

/* What a column of an event holds. */
typedef enum walnotify_value_kind {
    WALNOTIFY_VALUE_NULL = 0,
    WALNOTIFY_VALUE_TEXT = 1,     /* value/length hold PostgreSQL's text output */
    WALNOTIFY_VALUE_UNCHANGED = 2 /* updates only: an unchanged TOAST value the server did not send */
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
    size_t size;                /* sizeof(walnotify_event) as the host was built: members past it
                                   are absent */
    const char *table;          /* "schema.name", NUL-terminated */
    const char *schema;         /* "schema" */
    const char *name;           /* "name" */
    walnotify_op op;            /* one operation */
    uint64_t commit_lsn;        /* the transaction's commit LSN (Begin's final LSN) */
    uint32_t xid;               /* the transaction's id */
    int64_t commit_time;        /* microseconds since 1970-01-01 00:00:00 UTC */
    uint32_t seq;               /* 0-based position among its transaction's data changes */
    const walnotify_column *columns; /* the new row (insert, update); NULL otherwise */
    size_t ncolumns;
    walnotify_old_kind old_kind;     /* update and delete: what old_columns holds */
    const walnotify_column *old_columns; /* the old row or key; NULL when old_kind is NONE */
    size_t nold_columns;
    unsigned truncate_options;  /* truncate only: WALNOTIFY_TRUNCATE_* bits */
} walnotify_event;

/* The transaction being delivered, as begin, commit and abort see it. */
typedef struct walnotify_txn {
    size_t size;         /* sizeof(walnotify_txn) as the host was built */
    uint64_t commit_lsn; /* Begin's final LSN */
    uint32_t xid;
    int64_t commit_time; /* microseconds since 1970-01-01 00:00:00 UTC */
} walnotify_txn;

/* Settings a plugin declares; the host validates the configuration against them. */
typedef enum walnotify_setting_type {
    WALNOTIFY_SETTING_STRING = 1,
    WALNOTIFY_SETTING_INTEGER = 2, /* 64-bit signed */
    WALNOTIFY_SETTING_BOOLEAN = 3,
    WALNOTIFY_SETTING_LIST = 4,    /* a list of strings */
    WALNOTIFY_SETTING_PATH = 5     /* a string; relative paths resolve against the configuration
                                      file's folder ("-" is left alone) */
} walnotify_setting_type;

typedef struct walnotify_setting {
    const char *name;                 /* NULL ends the array */
    walnotify_setting_type type;
    const char *default_value;        /* text of the default ("true", "42", "a,b" for a list), or
                                         NULL: the setting is required */
    const char *description;          /* one line, for --check-config and documentation */
} walnotify_setting;

typedef enum walnotify_log_level {
    WALNOTIFY_LOG_DEBUG = 0,
    WALNOTIFY_LOG_INFO = 1,
    WALNOTIFY_LOG_WARNING = 2,
    WALNOTIFY_LOG_ERROR = 3
} walnotify_log_level;

/*
 * The services the host lends to one plugin instance, passed to init. Members are only ever
 * appended: check `size` before using a member newer than WALNOTIFY_ABI_MINOR 0.
 * A getter asked for a setting the plugin did not declare, or as another type, returns the
 * zero value (NULL, 0, false).
 */
typedef struct walnotify_host walnotify_host;
struct walnotify_host {
    size_t size;                /* sizeof(walnotify_host) as the host was built */
    uint32_t abi_major;         /* the host's ABI version */
    uint32_t abi_minor;
    const char *instance_name;  /* the plugin block's `name`, for messages */

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
};

/*
 * The descriptor. Fill it with designated initializers so every member a plugin does not name is
 * zero (an absent optional callback).
 */
typedef struct walnotify_plugin {
    uint32_t magic;        /* WALNOTIFY_PLUGIN_MAGIC */
    uint16_t abi_major;    /* WALNOTIFY_ABI_MAJOR */
    uint16_t abi_minor;    /* WALNOTIFY_ABI_MINOR */
    uint32_t size;         /* sizeof(walnotify_plugin) */
    const char *name;      /* the plugin's own name, e.g. "jsonl" */
    const char *version;   /* the plugin's own version, e.g. "1.0.0" */
    const walnotify_setting *settings; /* ended by a member with name NULL; NULL for none */

    /* Required. Returns WALNOTIFY_OK and sets *state, or an error after logging why. */
    walnotify_status (*init)(const walnotify_host *host, void **state);
    /* Required. One event, borrowed for the call. */
    walnotify_status (*handle)(void *state, const walnotify_event *event);
    /* Required. Releases everything; called once, also after a failed run. */
    void (*shutdown)(void *state);

    /* Optional: batch a transaction. begin precedes this instance's first event of it. */
    walnotify_status (*begin)(void *state, const walnotify_txn *txn);
    /* Optional: after the transaction's last event; RETRY is retried, the batch kept. */
    walnotify_status (*commit)(void *state, const walnotify_txn *txn);
    /* Optional: the transaction that saw begin will not be committed now; drop its batch. */
    void (*abort)(void *state, const walnotify_txn *txn);
    /* Optional: make durable every transaction finished so far (once per status interval at
       most, and once when the host stops). */
    walnotify_status (*flush)(void *state);
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

#ifdef __cplusplus
}
#endif

#endif /* WALNOTIFY_PLUGIN_H */
