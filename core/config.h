/*
 * config: the configuration file, parsed once and validated completely before anything connects.
 * libconfig stays inside config.c: the rest of the host sees only these structures.
 */
#ifndef WN_CONFIG_H
#define WN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "log.h"

#define WN_NAME_MAX 63 /* PostgreSQL's NAMEDATALEN - 1 */

/*
 * One row per key in config.c holds its type, bounds, default and description; every key named
 * in a member's comment below is explained there. Whatever the file leaves out, wn_config_load
 * fills with that default, so the rest of the host never applies one again.
 */

typedef struct wn_table_ref {
    char *schema; /* "public" when the file gave a bare name */
    char *name;
    char *qualified; /* "schema.name" */
} wn_table_ref;

/* A plugin setting as the file wrote it, before the plugin's declarations are known. */
typedef enum wn_setting_kind {
    WN_SETTING_STRING,
    WN_SETTING_INTEGER,
    WN_SETTING_FLOAT,
    WN_SETTING_BOOLEAN,
    WN_SETTING_STRING_LIST, /* an array or list whose items are all strings (maybe empty) */
    WN_SETTING_OTHER        /* a group, or a list holding something else */
} wn_setting_kind;

typedef struct wn_setting_value {
    char *name;
    int line;
    char *file; /* the @include'd file it is written in; NULL: the configuration file */
    wn_setting_kind kind;
    char *string;    /* STRING */
    int64_t integer; /* INTEGER */
    double real;     /* FLOAT */
    bool boolean;    /* BOOLEAN */
    char **items;    /* STRING_LIST */
    size_t nitems;
} wn_setting_value;

/* What the dispatcher does when a plugin's handle fails. */
typedef enum wn_on_error {
    WN_ON_ERROR_RETRY, /* retry with backoff; after retry_max attempts (if set), `then` */
    WN_ON_ERROR_SKIP,  /* write the event and its error to the dead-letter file, go on */
    WN_ON_ERROR_STOP   /* stop the host with exit 2, acknowledging nothing of the transaction */
} wn_on_error;

typedef struct wn_plugin_config {
    char *name;                 /* unique instance name */
    char *path;                 /* the shared object: resolved against the file's folder, or a
                                   bare file name found only in the installed plugin folder */
    int line;                   /* where the block starts */
    char *file;                 /* the @include'd file the block is in; NULL: the configuration
                                   file */
    unsigned ops;               /* `ops`: WALNOTIFY_OP_* bits */
    int ops_line;               /* where `ops` is written; 0 when absent */
    char **message_prefixes;    /* `message_prefixes`: the prefixes of the messages it receives;
                                   NULL when absent (every message) */
    size_t nmessage_prefixes;   /* entries of message_prefixes */
    bool *watches;              /* [source.ntables]: this plugin wants that table */
    wn_setting_value *settings; /* as written, validated later against the plugin's declarations */
    size_t nsettings;
    wn_on_error on_error; /* `on_error` */
    int retry_max;        /* `retry_max`: 0 = unlimited */
    int retry_initial_ms; /* `retry_initial_ms` */
    int retry_max_ms;     /* `retry_max_ms`, never below retry_initial_ms */
    wn_on_error then;     /* `then`: SKIP or STOP once retry_max runs out */
    char *dead_letter;    /* `dead_letter`, resolved; NULL unless skipping */
    int dead_letter_line; /* where `dead_letter` is written (in `file`); 0 when absent */
} wn_plugin_config;

/* `source.snapshot`: whether the tables' rows are read once before the stream goes past them. */
typedef enum wn_snapshot_mode { WN_SNAPSHOT_NEVER = 0, WN_SNAPSHOT_INITIAL = 1 } wn_snapshot_mode;

/* `source.flush`: when the plugins are flushed and the position acknowledged. */
typedef enum wn_flush_mode {
    WN_FLUSH_INTERVAL = 0, /* once per status_interval_ms */
    WN_FLUSH_COMMIT = 1    /* as soon as nothing more waits, or per bounded group while busy */
} wn_flush_mode;

typedef struct wn_source_config {
    char *conninfo;
    wn_table_ref *tables;
    size_t ntables;
    char *slot;
    char *publication;
    int status_interval_ms;    /* `status_interval_ms` */
    char *state_file;          /* `state_file`, resolved; NULL: none */
    int state_file_line;       /* where `state_file` is written; 0 when absent */
    char *state_file_in;       /* the @include'd file it is written in; NULL: the configuration
                                  file */
    int reconnect_initial_ms;  /* `reconnect_initial_ms` */
    int reconnect_max_ms;      /* `reconnect_max_ms`, never below reconnect_initial_ms */
    int receive_timeout_ms;    /* `receive_timeout_ms`, above status_interval_ms */
    int progress_interval_ms;  /* `progress_interval_ms` */
    wn_snapshot_mode snapshot; /* `snapshot` */
    wn_flush_mode flush;       /* `flush` */
} wn_source_config;

typedef struct wn_config {
    char *file; /* as given on the command line */
    char *dir;  /* absolute folder of the file: relative paths resolve here */
    wn_log_level log_level;
    int stop_timeout_ms;  /* `stop_timeout_ms`: how long a clean stop may take */
    char *metrics_listen; /* `metrics_listen`: "ADDRESS:PORT" of the HTTP endpoint; NULL: none */
    wn_source_config source;
    wn_plugin_config *plugins;
    size_t nplugins;
    unsigned ops; /* union of every plugin's ops among insert, update, delete and
                     truncate: what the publication publishes */
} wn_config;

/*
 * Reads and validates `path`. Returns 0, or -1 with one line in err: "FILE:LINE: what is wrong".
 * On failure *config holds nothing that needs freeing.
 */
int wn_config_load(const char *path, wn_config *config, char *err, size_t errlen);
void wn_config_free(wn_config *config);

/*
 * A configuration, or one plugin block, holding every default a file may leave out that needs
 * no memory: numbers, the log level, ops and failure policies. Strings, tables and plugins are
 * NULL (slot and publication too). For configurations built by hand, as tests do; nothing in
 * them needs freeing.
 */
wn_config wn_config_defaults(void);
wn_plugin_config wn_plugin_config_defaults(void);

/*
 * Parses a `metrics_listen` value: "IPv4:PORT" or "[IPv6]:PORT", the address a literal (never a
 * host name: no resolver behind the user's back), PORT 1 to 65535. true with *addr and *addrlen
 * set; false when the text is no such address.
 */
bool wn_config_listen_address(const char *text, struct sockaddr_storage *addr, socklen_t *addrlen);

/* Index of table in config->source.tables, or -1. */
int wn_config_find_table(const wn_config *config, const char *schema, const char *name);

/* Lower-case letters, digits and underscore, 1 to 63 characters: what a slot name may be. */
bool wn_config_valid_slot_name(const char *name);

/* "retry", "skip" or "stop": the name `on_error` and `then` give policy; "?" for no policy. */
const char *wn_config_on_error_text(wn_on_error policy);

/*
 * Whether the block receives a logical decoding message with this prefix: true when its
 * `message_prefixes` is absent, or lists the prefix exactly (bytes compared, case included).
 * Says nothing about `ops`: the caller checks WALNOTIFY_OP_MESSAGE itself.
 */
bool wn_config_wants_message(const wn_plugin_config *plugin, const char *prefix);

/* "insert, update" for a set of WALNOTIFY_OP_* bits, in the order `ops` lists them; "" for none.
 * Cut at a whole name when out is too small. */
void wn_config_ops_text(unsigned ops, char *out, size_t outlen);

#endif
