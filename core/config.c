/*
 * config: turns the configuration file into plain structures, one table row per key driving
 * defaults, parsing, bounds and messages, with the rules across keys beside them. Everything
 * is validated here except plugin settings, which only the plugin's own declarations can judge
 * (the loader does that). The text and its @include directives come from conftext, paths are
 * resolved by paths, and every file of the configuration is checked by trust. Every error is one
 * line naming the file and the line.
 */
#include "config.h"

#include <arpa/inet.h>
#include <libconfig.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <walnotify/plugin.h>

#include "conftext.h"
#include "conninfo.h"
#include "paths.h"
#include "trust.h"

/* User text quoted in a message is cut here so that one bad value cannot flood the line. */
#define QUOTE_MAX 80

typedef struct load_ctx {
    const char *path;      /* the file as given, for messages */
    const char *dir;       /* its canonical folder, once known: @include names resolve there */
    char *const *included; /* every file @include reads, resolved; borrowed */
    size_t nincluded;
    char *err;
    size_t errlen;
} load_ctx;

/* A value written into a message: escaped, bounded, always NUL-terminated. */
typedef struct quoted {
    char text[QUOTE_MAX * 4 + 8];
} quoted;

/* "plugin \"NAME\"" or "plugins[N]", NAME quoted. */
#define LABEL_MAX (sizeof(quoted) + 32)

/* ---- messages --------------------------------------------------------------------------- */

static const char *quote(quoted *q, const char *s)
{
    size_t used = 0;
    size_t i;

    for (i = 0; i < QUOTE_MAX && s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            used += (size_t)snprintf(q->text + used, sizeof q->text - used, "\\x%02x", c);
        else
            q->text[used++] = (char)c;
    }
    if (s[i] != '\0') {
        memcpy(q->text + used, "...", 3);
        used += 3;
    }
    q->text[used] = '\0';
    return q->text;
}

/* The file a setting or an error comes from, for a message: the configuration file itself
 * (libconfig knows no name for it), or an included file, named as libconfig opened it (relative to
 * the configuration's folder) made whole. */
static const char *include_name(const load_ctx *ctx, const char *file, char *out, size_t outlen)
{
    int n;

    if (file == NULL)
        return ctx->path;
    if (file[0] == '/' || ctx->dir == NULL)
        return file;
    n = snprintf(out, outlen, "%s/%s", ctx->dir, file);
    return n > 0 && (size_t)n < outlen ? out : file;
}

/* "FILE: message": the file as a whole is the problem. */
static int fail_file(load_ctx *ctx, const char *format, ...) __attribute__((format(printf, 2, 3)));

static int fail_file(load_ctx *ctx, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    wn_conftext_verror(ctx->err, ctx->errlen, ctx->path, 0, format, args);
    va_end(args);
    return -1;
}

/* "FILE:LINE: message" at a setting; the root group has no line of its own, so it gets 1. */
static int fail_at(load_ctx *ctx, const config_setting_t *where, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(load_ctx *ctx, const config_setting_t *where, const char *format, ...)
{
    char included[PATH_MAX];
    const char *file = config_setting_source_file(where);
    int line = (int)config_setting_source_line(where);
    va_list args;

    va_start(args, format);
    wn_conftext_verror(ctx->err, ctx->errlen, include_name(ctx, file, included, sizeof included),
                       line > 0 ? line : 1, format, args);
    va_end(args);
    return -1;
}

/* libconfig's own syntax errors, which may come from an included file. */
static int fail_line_in(load_ctx *ctx, const char *file, int line, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_line_in(load_ctx *ctx, const char *file, int line, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    wn_conftext_verror(ctx->err, ctx->errlen, file, line, format, args);
    va_end(args);
    return -1;
}

static int fail_nomem(load_ctx *ctx)
{
    return fail_file(ctx, "out of memory");
}

/* ---- small helpers ---------------------------------------------------------------------- */

static bool is_list_like(const config_setting_t *s)
{
    return config_setting_is_list(s) || config_setting_is_array(s);
}

/* A list or array whose every item is a string (maybe none). */
static bool is_string_list(const config_setting_t *s)
{
    int n;

    if (!is_list_like(s))
        return false;
    n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        if (config_setting_type(config_setting_get_elem(s, (unsigned)i)) != CONFIG_TYPE_STRING)
            return false;
    }
    return true;
}

/* The first item that is not a string, or the list itself when it is not a list. */
static const config_setting_t *first_non_string(const config_setting_t *s)
{
    int n;

    if (!is_list_like(s))
        return s;
    n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        const config_setting_t *item = config_setting_get_elem(s, (unsigned)i);

        if (config_setting_type(item) != CONFIG_TYPE_STRING)
            return item;
    }
    return s;
}

/* ---- table names ------------------------------------------------------------------------ */

typedef enum table_parse { TABLE_OK, TABLE_INVALID, TABLE_NOMEM } table_parse;

static void table_ref_free(wn_table_ref *ref)
{
    free(ref->schema);
    free(ref->name);
    free(ref->qualified);
    memset(ref, 0, sizeof *ref);
}

/* "schema.name" (split at the first dot) or a bare "name" in public; each part 1..63 bytes. */
static table_parse table_ref_parse(const char *text, wn_table_ref *ref)
{
    const char *dot = strchr(text, '.');
    const char *name = dot != NULL ? dot + 1 : text;
    size_t schema_len = dot != NULL ? (size_t)(dot - text) : strlen("public");
    size_t name_len = strlen(name);

    memset(ref, 0, sizeof *ref);
    if (schema_len == 0 || schema_len > WN_NAME_MAX || name_len == 0 || name_len > WN_NAME_MAX)
        return TABLE_INVALID;
    ref->schema = dot != NULL ? strndup(text, schema_len) : strdup("public");
    ref->name = strdup(name);
    if (ref->schema == NULL || ref->name == NULL)
        goto fail_nomem;
    if (asprintf(&ref->qualified, "%s.%s", ref->schema, ref->name) < 0) {
        ref->qualified = NULL; /* asprintf leaves it undefined on failure */
        goto fail_nomem;
    }
    return TABLE_OK;

fail_nomem:
    table_ref_free(ref);
    return TABLE_NOMEM;
}

static int table_index(const wn_table_ref *tables, size_t ntables, const char *schema,
                       const char *name)
{
    for (size_t i = 0; i < ntables && i <= INT_MAX; i++) {
        if (tables[i].schema != NULL && tables[i].name != NULL &&
            strcmp(tables[i].schema, schema) == 0 && strcmp(tables[i].name, name) == 0)
            return (int)i;
    }
    return -1;
}

/* Parses one table item; lead starts its messages ("source.tables: ", "plugin \"p\": "). */
static int parse_table_item(load_ctx *ctx, const config_setting_t *item, const char *lead,
                            wn_table_ref *ref)
{
    const char *text = config_setting_get_string(item);
    quoted q;

    switch (table_ref_parse(text, ref)) {
    case TABLE_OK:
        return 0;
    case TABLE_NOMEM:
        return fail_nomem(ctx);
    case TABLE_INVALID:
        break;
    }
    return fail_at(ctx, item,
                   "%s\"%s\" is not a table name (expected \"schema.name\" or \"name\", "
                   "each 1 to %d bytes)",
                   lead, quote(&q, text), WN_NAME_MAX);
}

/* ---- what a written value must be ---------------------------------------------------------- */

/*
 * The checks a string key may name in its row: each gets the setting, its label for messages
 * ("source.slot", "plugin \"p\": path") and the text, and returns 0 or fails naming them.
 */
typedef int value_check(load_ctx *ctx, const config_setting_t *s, const char *label,
                        const char *value);

static int check_filled(load_ctx *ctx, const config_setting_t *s, const char *label,
                        const char *value)
{
    return value[0] == '\0' ? fail_at(ctx, s, "%s must not be empty", label) : 0;
}

static int check_file_name(load_ctx *ctx, const config_setting_t *s, const char *label,
                           const char *value)
{
    if (check_filled(ctx, s, label, value) != 0)
        return -1;
    /* "-" means standard output elsewhere; here it can only be a mistake. */
    if (strcmp(value, "-") == 0)
        return fail_at(ctx, s, "%s must name a file, not \"-\"", label);
    return 0;
}

/* libpq's own verdict, without connecting, so that --check-config catches a conninfo that no
 * connection could use; the message never quotes a value (a password may be among them). */
static int check_conninfo(load_ctx *ctx, const config_setting_t *s, const char *label,
                          const char *value)
{
    char why[256];

    if (check_filled(ctx, s, label, value) != 0)
        return -1;
    if (!wn_conninfo_check(value, why, sizeof why))
        return fail_at(ctx, s, "%s: %s", label, why);
    return 0;
}

static int check_slot(load_ctx *ctx, const config_setting_t *s, const char *label,
                      const char *value)
{
    quoted q;

    if (wn_config_valid_slot_name(value))
        return 0;
    return fail_at(ctx, s,
                   "%s \"%s\" is not a valid slot name (1 to %d lower-case letters, digits or "
                   "underscores)",
                   label, quote(&q, value), WN_NAME_MAX);
}

static int check_pg_name(load_ctx *ctx, const config_setting_t *s, const char *label,
                         const char *value)
{
    quoted q;

    if (value[0] != '\0' && strlen(value) <= WN_NAME_MAX)
        return 0;
    return fail_at(ctx, s, "%s \"%s\" must be 1 to %d bytes", label, quote(&q, value), WN_NAME_MAX);
}

static int check_listen(load_ctx *ctx, const config_setting_t *s, const char *label,
                        const char *value)
{
    struct sockaddr_storage addr;
    socklen_t addrlen;
    quoted q;

    if (wn_config_listen_address(value, &addr, &addrlen))
        return 0;
    return fail_at(ctx, s,
                   "%s \"%s\" is not an address to listen on (expected \"IPv4:PORT\" or "
                   "\"[IPv6]:PORT\", PORT 1 to 65535, e.g. \"127.0.0.1:9781\")",
                   label, quote(&q, value));
}

/* Where `make install` puts plugins (walnotify.pc's plugindir): the Makefile passes it. */
#ifndef WALNOTIFY_PLUGINDIR
#error "WALNOTIFY_PLUGINDIR is not defined: the Makefile passes it (-DWALNOTIFY_PLUGINDIR=...)"
#endif

/* A plugin's path: a bare file name may name an installed plugin. */
static char *resolve_plugin_path(const char *dir, const char *path)
{
    return wn_paths_resolve_plugin(dir, path, WALNOTIFY_PLUGINDIR);
}

/* ---- the key tables ---------------------------------------------------------------------- */

/* A name and the value it stands for: the choices of a key, the operations of `ops`. */
typedef struct choice {
    const char *name;
    int value;
} choice;

typedef enum key_type {
    KEY_INT,    /* an integer within [min, max], stored as int */
    KEY_STRING, /* a string, passed through check, stored as resolve made it (or a copy) */
    KEY_CHOICE, /* one name of choices, stored as its value (an int-sized enum) */
    KEY_FLAGS,  /* a non-empty list of names of choices, stored as the OR of their values */
    KEY_CUSTOM  /* read by parse, which is called also when the key is absent */
} key_type;

typedef struct block block;

/* One row per key a group of the file may hold. */
typedef struct key {
    const char *name;
    key_type type;
    size_t offset;           /* of the field in the group's structure; CUSTOM: unused */
    const char *description; /* what the key is, in one line */
    bool required;           /* absent: "LABEL is required" */
    int fallback;            /* INT, CHOICE, FLAGS: the value when absent */
    int min, max;            /* INT: the bounds, inclusive */
    const char *text;        /* STRING: the value when absent (copied); NULL: none */
    const choice *choices;   /* CHOICE, FLAGS: ending with a NULL name */
    bool any_case;           /* CHOICE: names match whatever their case */
    const char *noun;        /* FLAGS: what one name is, for messages */
    value_check *check;      /* STRING: NULL when any string will do */
    char *(*resolve)(const char *dir, const char *value); /* STRING: what is stored */
    int (*parse)(block *b, const config_setting_t *s, const char *label); /* CUSTOM */
} key;

#define KEYS_MAX 16 /* rows in one table, for block.written */

/* One group of the file being read against its table. */
struct block {
    load_ctx *ctx;
    wn_config *config; /* everything read so far */
    const config_setting_t *group;
    const key *keys;                           /* ending with a NULL name */
    void *base;                                /* the structure the offsets point into */
    const char *lead;                          /* starts every message: "" or "plugin \"p\": " */
    const char *path;                          /* before a key's name: "" or "source." */
    const char *where;                         /* after an unknown key's name: "" or " in source" */
    int index;                                 /* a plugin block's position in plugins */
    const config_setting_t *written[KEYS_MAX]; /* each row's setting; NULL when absent */
};

static int parse_source_tables(block *b, const config_setting_t *s, const char *label);
static int parse_plugin_name(block *b, const config_setting_t *s, const char *label);
static int parse_plugin_tables(block *b, const config_setting_t *s, const char *label);
static int parse_plugin_settings(block *b, const config_setting_t *s, const char *label);
static int parse_message_prefixes(block *b, const config_setting_t *s, const char *label);
static int parse_source(block *b, const config_setting_t *s, const char *label);
static int parse_plugins(block *b, const config_setting_t *s, const char *label);

#define BACKOFF_MAX_MS 3600000 /* an hour: the longest wait any backoff setting may ask for */

static const choice log_levels[] = {{"debug", WN_LOG_DEBUG},
                                    {"info", WN_LOG_INFO},
                                    {"warning", WN_LOG_WARNING},
                                    {"error", WN_LOG_ERROR},
                                    {NULL, 0}};
static const choice on_error_choices[] = {{"retry", WN_ON_ERROR_RETRY},
                                          {"skip", WN_ON_ERROR_SKIP},
                                          {"stop", WN_ON_ERROR_STOP},
                                          {NULL, 0}};
static const choice snapshot_choices[] = {
    {"never", WN_SNAPSHOT_NEVER}, {"initial", WN_SNAPSHOT_INITIAL}, {NULL, 0}};
static const choice flush_choices[] = {
    {"interval", WN_FLUSH_INTERVAL}, {"commit", WN_FLUSH_COMMIT}, {NULL, 0}};
static const choice then_choices[] = {
    {"skip", WN_ON_ERROR_SKIP}, {"stop", WN_ON_ERROR_STOP}, {NULL, 0}};
static const choice op_names[] = {{"insert", WALNOTIFY_OP_INSERT},
                                  {"update", WALNOTIFY_OP_UPDATE},
                                  {"delete", WALNOTIFY_OP_DELETE},
                                  {"truncate", WALNOTIFY_OP_TRUNCATE},
                                  {"snapshot", WALNOTIFY_OP_SNAPSHOT},
                                  {"message", WALNOTIFY_OP_MESSAGE},
                                  {NULL, 0}};

void wn_config_ops_text(unsigned ops, char *out, size_t outlen)
{
    size_t used = 0;

    out[0] = '\0';
    for (const choice *c = op_names; c->name != NULL; c++) {
        int n;

        if (!(ops & (unsigned)c->value))
            continue;
        n = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", c->name);
        if (n < 0 || (size_t)n >= outlen - used)
            return;
        used += (size_t)n;
    }
}

/* Rows named after their member; STRING, CHOICE and CUSTOM rows may add fields after desc. */
#define INT_KEY(type, member, def, lo, hi, desc)                                                   \
    {                                                                                              \
#member, KEY_INT, offsetof(type, member), desc, .fallback = (def), .min = (lo),            \
                                                        .max = (hi)                                \
    }
#define STRING_KEY(type, member, desc, ...)                                                        \
    {                                                                                              \
#member, KEY_STRING, offsetof(type, member), desc, __VA_ARGS__                             \
    }
#define CHOICE_KEY(type, member, def, list, desc, ...)                                             \
    {                                                                                              \
#member, KEY_CHOICE, offsetof(type, member), desc, .fallback = (def), .choices = (list),   \
                                                           __VA_ARGS__                             \
    }
#define CUSTOM_KEY(name, parser, desc, ...)                                                        \
    {                                                                                              \
        name, KEY_CUSTOM, 0, desc, .parse = (parser), __VA_ARGS__                                  \
    }
#define END_KEYS                                                                                   \
    {                                                                                              \
        NULL, KEY_CUSTOM, 0, NULL                                                                  \
    }

static const key source_keys[] = {
    STRING_KEY(wn_source_config, conninfo, "libpq keywords or URI (walnotify adds replication)",
               .required = true, .check = check_conninfo),
    CUSTOM_KEY("tables", parse_source_tables, "\"schema.name\" or a name in public",
               .required = true),
    STRING_KEY(wn_source_config, slot, "the slot, created on first run", .text = "walnotify",
               .check = check_slot),
    STRING_KEY(wn_source_config, publication, "created for tables before the slot",
               .text = "walnotify", .check = check_pg_name),
    INT_KEY(wn_source_config, status_interval_ms, 1000, 100, 60000,
            "between status updates to the server, and between plugin flushes"),
    STRING_KEY(wn_source_config, state_file, "a local copy of the acknowledged position",
               .check = check_file_name, .resolve = wn_paths_resolve),
    INT_KEY(wn_source_config, reconnect_initial_ms, 1000, 10, BACKOFF_MAX_MS,
            "the first wait before reconnecting, doubling, with jitter"),
    INT_KEY(wn_source_config, reconnect_max_ms, 60000, 10, BACKOFF_MAX_MS,
            "the longest wait before reconnecting"),
    INT_KEY(wn_source_config, receive_timeout_ms, 30000, 1000, BACKOFF_MAX_MS,
            "silence before asking the server for a reply, and again before reconnecting"),
    INT_KEY(wn_source_config, progress_interval_ms, 60000, 1000, 86400000 /* a day */,
            "between progress lines in the log"),
    CHOICE_KEY(wn_source_config, snapshot, WN_SNAPSHOT_NEVER, snapshot_choices,
               "\"initial\": the tables' rows first, once (needs state_file)"),
    CHOICE_KEY(wn_source_config, flush, WN_FLUSH_INTERVAL, flush_choices,
               "\"commit\": flush and acknowledge as soon as the queue is empty"),
    END_KEYS,
};

static const key plugin_keys[] = {
    CUSTOM_KEY("name", parse_plugin_name, "unique; names the instance in messages"),
    STRING_KEY(wn_plugin_config, path, "the shared object, or an installed plugin's file name",
               .required = true, .check = check_filled, .resolve = resolve_plugin_path),
    CUSTOM_KEY("tables", parse_plugin_tables, "what it receives of source.tables (default all)"),
    {"ops", KEY_FLAGS, offsetof(wn_plugin_config, ops), "the operations it receives",
     .fallback = WALNOTIFY_OP_INSERT, .choices = op_names, .noun = "operation"},
    CUSTOM_KEY("message_prefixes", parse_message_prefixes,
               "the prefixes of the messages it receives (default all)"),
    CUSTOM_KEY("settings", parse_plugin_settings, "its own, checked against its declarations"),
    CHOICE_KEY(wn_plugin_config, on_error, WN_ON_ERROR_RETRY, on_error_choices,
               "what a failed handle leads to"),
    INT_KEY(wn_plugin_config, retry_max, 0, 0, INT_MAX, "retries before `then`; 0: unlimited"),
    INT_KEY(wn_plugin_config, retry_initial_ms, 100, 1, BACKOFF_MAX_MS,
            "the first wait before a retry, doubling"),
    INT_KEY(wn_plugin_config, retry_max_ms, 30000, 1, BACKOFF_MAX_MS,
            "the longest wait before a retry"),
    CHOICE_KEY(wn_plugin_config, then, WN_ON_ERROR_STOP, then_choices,
               "what follows the last retry"),
    STRING_KEY(wn_plugin_config, dead_letter, "where skipped events go (jsonl)",
               .check = check_file_name, .resolve = wn_paths_resolve),
    END_KEYS,
};

static const key top_keys[] = {
    CUSTOM_KEY("source", parse_source, "the database and what to follow", .required = true),
    CUSTOM_KEY("plugins", parse_plugins, "the plugin instances, in delivery order",
               .required = true),
    CHOICE_KEY(wn_config, log_level, WN_LOG_INFO, log_levels, "the lowest level logged",
               .any_case = true),
    INT_KEY(wn_config, stop_timeout_ms, 60000, 1000, BACKOFF_MAX_MS,
            "how long a stop may wait for a plugin call before walnotify exits anyway"),
    STRING_KEY(wn_config, metrics_listen, "where /metrics, /healthz and /readyz are served",
               .check = check_listen),
    END_KEYS,
};

_Static_assert(sizeof source_keys / sizeof source_keys[0] <= KEYS_MAX &&
                   sizeof plugin_keys / sizeof plugin_keys[0] <= KEYS_MAX &&
                   sizeof top_keys / sizeof top_keys[0] <= KEYS_MAX,
               "a key table outgrows block.written");
/* CHOICE and FLAGS values are written through int and unsigned pointers. */
_Static_assert(sizeof(wn_on_error) == sizeof(int) && sizeof(wn_log_level) == sizeof(int) &&
                   sizeof(wn_snapshot_mode) == sizeof(int) && sizeof(wn_flush_mode) == sizeof(int),
               "an enum a CHOICE key stores is not int-sized");

/* ---- reading a group by its table -------------------------------------------------------- */

static void *field(const void *base, const key *k)
{
    return (char *)base + k->offset;
}

/* Every default but the strings (those are copied when read), into base. */
static void set_defaults(const key *keys, void *base)
{
    for (const key *k = keys; k->name != NULL; k++) {
        if (k->type == KEY_INT || k->type == KEY_CHOICE)
            *(int *)field(base, k) = k->fallback;
        else if (k->type == KEY_FLAGS)
            *(unsigned *)field(base, k) = (unsigned)k->fallback;
    }
}

static void free_strings(const key *keys, void *base)
{
    for (const key *k = keys; k->name != NULL; k++) {
        if (k->type == KEY_STRING)
            free(*(char **)field(base, k));
    }
}

static int key_index(const key *keys, const char *name)
{
    for (int i = 0; keys[i].name != NULL; i++) {
        if (strcmp(keys[i].name, name) == 0)
            return i;
    }
    return -1;
}

/* The setting written for the key called name, or NULL. */
static const config_setting_t *written(const block *b, const char *name)
{
    int i = key_index(b->keys, name);

    return i < 0 ? NULL : b->written[i];
}

#define NAMES_MAX 256

/* "a, b, c": the names of a table's rows (keys or choices: each starts with its name). */
static const char *names_text(const void *rows, size_t stride, char *out, size_t outlen)
{
    size_t used = 0;

    out[0] = '\0';
    for (const char *row = rows; *(const char *const *)row != NULL; row += stride) {
        int n = snprintf(out + used, outlen - used, "%s%s", used > 0 ? ", " : "",
                         *(const char *const *)row);

        if (n < 0 || (size_t)n >= outlen - used)
            break;
        used += (size_t)n;
    }
    return out;
}

static const choice *choice_named(const choice *choices, const char *name, bool any_case)
{
    for (; choices->name != NULL; choices++) {
        if ((any_case ? strcasecmp(name, choices->name) : strcmp(name, choices->name)) == 0)
            return choices;
    }
    return NULL;
}

static const char *choice_text(const choice *choices, int value)
{
    for (; choices->name != NULL; choices++) {
        if (choices->value == value)
            return choices->name;
    }
    return "?";
}

const char *wn_config_on_error_text(wn_on_error policy)
{
    return choice_text(on_error_choices, (int)policy);
}

static int reject_unknown(block *b)
{
    int n = config_setting_length(b->group);
    char known[NAMES_MAX];

    for (int i = 0; i < n; i++) {
        const config_setting_t *member = config_setting_get_elem(b->group, (unsigned)i);
        const char *name = config_setting_name(member);

        if (name != NULL && key_index(b->keys, name) < 0)
            return fail_at(b->ctx, member, "unknown setting \"%s\"%s (expected %s)", name, b->where,
                           names_text(b->keys, sizeof *b->keys, known, sizeof known));
    }
    return 0;
}

static int read_int(block *b, const key *k, const config_setting_t *s, const char *label)
{
    long long value;

    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
        return fail_at(b->ctx, s, "%s must be an integer", label);
    value = config_setting_get_int64(s);
    if (k->max == INT_MAX && value < k->min)
        return fail_at(b->ctx, s, "%s must be %d or more (got %lld)", label, k->min, value);
    if (value < k->min || value > k->max)
        return fail_at(b->ctx, s, "%s must be between %d and %d (got %lld)", label, k->min, k->max,
                       value);
    *(int *)field(b->base, k) = (int)value;
    return 0;
}

static int read_string(block *b, const key *k, const config_setting_t *s, const char *label)
{
    char **out = field(b->base, k);
    const char *value;

    if (s == NULL) {
        *out = k->text != NULL ? strdup(k->text) : NULL;
        return k->text != NULL && *out == NULL ? fail_nomem(b->ctx) : 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail_at(b->ctx, s, "%s must be a string", label);
    value = config_setting_get_string(s);
    if (k->check != NULL && k->check(b->ctx, s, label, value) != 0)
        return -1;
    *out = k->resolve != NULL ? k->resolve(b->config->dir, value) : strdup(value);
    return *out == NULL ? fail_nomem(b->ctx) : 0;
}

static int read_choice(block *b, const key *k, const config_setting_t *s, const char *label)
{
    char names[NAMES_MAX];
    const choice *c;
    const char *text;
    quoted q;

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail_at(b->ctx, s, "%s must be a string", label);
    text = config_setting_get_string(s);
    c = choice_named(k->choices, text, k->any_case);
    if (c == NULL)
        return fail_at(b->ctx, s, "%s \"%s\" is not one of %s", label, quote(&q, text),
                       names_text(k->choices, sizeof *k->choices, names, sizeof names));
    *(int *)field(b->base, k) = c->value;
    return 0;
}

static int read_flags(block *b, const key *k, const config_setting_t *s, const char *label)
{
    unsigned *out = field(b->base, k);
    char names[NAMES_MAX];
    int n;

    if (!is_string_list(s))
        return fail_at(b->ctx, first_non_string(s), "%s must be a list of strings", label);
    n = config_setting_length(s);
    if (n == 0)
        return fail_at(b->ctx, s, "%s must name at least one %s", label, k->noun);
    *out = 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *item = config_setting_get_elem(s, (unsigned)i);
        const char *name = config_setting_get_string(item);
        const choice *c = choice_named(k->choices, name, false);
        quoted q;

        if (c == NULL)
            return fail_at(b->ctx, item, "%sunknown %s \"%s\" in %s%s (expected %s)", b->lead,
                           k->noun, quote(&q, name), b->path, k->name,
                           names_text(k->choices, sizeof *k->choices, names, sizeof names));
        if (*out & (unsigned)c->value)
            return fail_at(b->ctx, item, "%s%s \"%s\" is listed twice in %s%s", b->lead, k->noun,
                           quote(&q, name), b->path, k->name);
        *out |= (unsigned)c->value;
    }
    return 0;
}

static int read_key(block *b, const key *k, const config_setting_t *s, const char *label)
{
    if (s == NULL && k->required)
        return fail_at(b->ctx, b->group, "%s is required", label);
    if (k->type == KEY_CUSTOM)
        return k->parse(b, s, label);
    if (k->type == KEY_STRING)
        return read_string(b, k, s, label);
    if (s == NULL)
        return 0; /* set_defaults gave it its value */
    if (k->type == KEY_INT)
        return read_int(b, k, s, label);
    if (k->type == KEY_CHOICE)
        return read_choice(b, k, s, label);
    return read_flags(b, k, s, label);
}

/* Refuses unknown keys, then reads every row of the table in order, defaults first. */
static int read_block(block *b)
{
    char label[LABEL_MAX + 64];

    if (reject_unknown(b) != 0)
        return -1;
    set_defaults(b->keys, b->base);
    for (int i = 0; b->keys[i].name != NULL; i++) {
        const key *k = &b->keys[i];

        b->written[i] = config_setting_get_member(b->group, k->name);
        snprintf(label, sizeof label, "%s%s%s", b->lead, b->path, k->name);
        if (read_key(b, k, b->written[i], label) != 0)
            return -1;
    }
    return 0;
}

/* ---- rules across keys ------------------------------------------------------------------- */

/* The setting to blame for a pair that does not fit: the one written, the later if both were. */
static const config_setting_t *blame(const config_setting_t *later, const config_setting_t *earlier,
                                     const config_setting_t *group)
{
    if (later != NULL)
        return later;
    return earlier != NULL ? earlier : group;
}

/* Integer key high must be above low (strict), or not below it. */
typedef struct order_rule {
    const char *high;
    const char *low;
    bool strict;
} order_rule;

static const order_rule source_order[] = {
    {"reconnect_max_ms", "reconnect_initial_ms", false},
    /* Feedback goes out every status interval: a shorter silence limit would fire by itself. */
    {"receive_timeout_ms", "status_interval_ms", true},
    {NULL, NULL, false},
};

static const order_rule plugin_order[] = {
    {"retry_max_ms", "retry_initial_ms", false},
    {NULL, NULL, false},
};

static int check_order(block *b, const order_rule *rules)
{
    for (; rules->high != NULL; rules++) {
        int hi = key_index(b->keys, rules->high), lo = key_index(b->keys, rules->low);
        int high, low;

        if (hi < 0 || lo < 0)
            return fail_file(b->ctx, "no key %s or %s to compare", rules->high, rules->low);
        high = *(int *)field(b->base, &b->keys[hi]);
        low = *(int *)field(b->base, &b->keys[lo]);
        if (rules->strict ? high > low : high >= low)
            continue;
        return fail_at(b->ctx, blame(b->written[hi], b->written[lo], b->group),
                       "%s%s%s (%d) must %s %s%s (%d)", b->lead, b->path, rules->high, high,
                       rules->strict ? "be greater than" : "not be less than", b->path, rules->low,
                       low);
    }
    return 0;
}

/* The dead-letter file: required exactly when something can be skipped. That it shares no file
 * with another writer is writers.c's to check, once the plugins' own files are known. */
static int check_dead_letter(block *b)
{
    wn_plugin_config *out = b->base;
    const config_setting_t *where = written(b, "dead_letter");
    bool skipping = out->on_error == WN_ON_ERROR_SKIP ||
                    (out->on_error == WN_ON_ERROR_RETRY && out->then == WN_ON_ERROR_SKIP);
    const char *asker = out->on_error == WN_ON_ERROR_SKIP ? "on_error" : "then";

    if (skipping && out->dead_letter == NULL)
        return fail_at(b->ctx, blame(written(b, asker), NULL, b->group),
                       "%sdead_letter is required when %s is \"skip\"", b->lead, asker);
    if (!skipping && out->dead_letter != NULL)
        return fail_at(b->ctx, where,
                       "%sdead_letter is only used when on_error or then is "
                       "\"skip\"",
                       b->lead);
    out->dead_letter_line = where != NULL ? (int)config_setting_source_line(where) : 0;
    return 0;
}

static int plugin_rules(block *b)
{
    const wn_plugin_config *out = b->base;
    const config_setting_t *then = written(b, "then"), *retry_max = written(b, "retry_max");

    /* Without retries neither setting can take effect: saying so beats ignoring it. */
    if (out->on_error != WN_ON_ERROR_RETRY && (then != NULL || retry_max != NULL))
        return fail_at(b->ctx, then != NULL ? then : retry_max,
                       "%s%s applies only when on_error is \"retry\" (it is \"%s\")", b->lead,
                       then != NULL ? "then" : "retry_max",
                       choice_text(on_error_choices, (int)out->on_error));
    if (check_order(b, plugin_order) != 0)
        return -1;
    return check_dead_letter(b);
}

/* ---- keys read by their own code ------------------------------------------------------- */

/* The list of tables at s: strings, at least one. Returns its length, or -1. */
static int table_list(block *b, const config_setting_t *s, const char *label)
{
    int n;

    if (!is_string_list(s))
        return fail_at(b->ctx, first_non_string(s), "%s must be a list of strings", label);
    n = config_setting_length(s);
    if (n == 0)
        return fail_at(b->ctx, s, "%s must name at least one table", label);
    return n;
}

static int parse_source_tables(block *b, const config_setting_t *s, const char *label)
{
    wn_source_config *out = b->base;
    char lead[LABEL_MAX];
    int n = table_list(b, s, label);

    if (n < 0)
        return -1;
    out->tables = calloc((size_t)n, sizeof *out->tables);
    if (out->tables == NULL)
        return fail_nomem(b->ctx);
    out->ntables = (size_t)n;
    snprintf(lead, sizeof lead, "%s: ", label);
    for (int i = 0; i < n; i++) {
        const config_setting_t *item = config_setting_get_elem(s, (unsigned)i);
        wn_table_ref *ref = &out->tables[i];
        quoted q;

        if (parse_table_item(b->ctx, item, lead, ref) != 0)
            return -1;
        if (table_index(out->tables, (size_t)i, ref->schema, ref->name) >= 0)
            return fail_at(b->ctx, item, "%s\"%s\" is listed twice", lead,
                           quote(&q, ref->qualified));
    }
    return 0;
}

/* How messages name a plugin block: by its name when it has a usable one, else by position. */
static void plugin_label(const config_setting_t *group, int index, char *label, size_t size)
{
    const config_setting_t *name = config_setting_get_member(group, "name");
    const char *text = name != NULL && config_setting_type(name) == CONFIG_TYPE_STRING
                           ? config_setting_get_string(name)
                           : NULL;
    quoted q;

    if (text != NULL && text[0] != '\0' && strlen(text) <= WN_NAME_MAX)
        snprintf(label, size, "plugin \"%s\"", quote(&q, text));
    else
        snprintf(label, size, "plugins[%d]", index);
}

/* The name is what the label would use, so its messages name the block by position. */
static int parse_plugin_name(block *b, const config_setting_t *s, const char *label)
{
    wn_plugin_config *out = b->base;
    const char *name;
    quoted q;

    (void)label;
    if (s == NULL)
        return fail_at(b->ctx, b->group, "plugins[%d].name is required", b->index);
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail_at(b->ctx, s, "plugins[%d].name must be a string", b->index);
    name = config_setting_get_string(s);
    if (name[0] == '\0' || strlen(name) > WN_NAME_MAX)
        return fail_at(b->ctx, s, "plugins[%d].name must be 1 to %d bytes", b->index, WN_NAME_MAX);
    for (int i = 0; i < b->index; i++) {
        if (strcmp(b->config->plugins[i].name, name) == 0)
            return fail_at(b->ctx, s, "plugin \"%s\" is defined twice (first at line %d)",
                           quote(&q, name), b->config->plugins[i].line);
    }
    out->name = strdup(name);
    return out->name == NULL ? fail_nomem(b->ctx) : 0;
}

/* watches[i]: the plugin wants source table i; all of them when tables is absent. */
static int parse_plugin_tables(block *b, const config_setting_t *s, const char *label)
{
    const wn_source_config *source = &b->config->source;
    wn_plugin_config *out = b->base;
    int n;

    out->watches = calloc(source->ntables, sizeof *out->watches);
    if (out->watches == NULL)
        return fail_nomem(b->ctx);
    for (size_t i = 0; s == NULL && i < source->ntables; i++)
        out->watches[i] = true;
    n = s == NULL ? 0 : table_list(b, s, label);
    for (int i = 0; i < n; i++) {
        const config_setting_t *item = config_setting_get_elem(s, (unsigned)i);
        wn_table_ref ref;
        int found;
        quoted q;

        if (parse_table_item(b->ctx, item, b->lead, &ref) != 0)
            return -1;
        found = table_index(source->tables, source->ntables, ref.schema, ref.name);
        quote(&q, ref.qualified);
        table_ref_free(&ref);
        if (found < 0)
            return fail_at(b->ctx, item, "%stable \"%s\" is not in source.tables", b->lead, q.text);
        if (out->watches[found])
            return fail_at(b->ctx, item, "%stable \"%s\" is listed twice", b->lead, q.text);
        out->watches[found] = true;
    }
    return n < 0 ? -1 : 0;
}

/* Read after ops: a filter on messages means something only to a block that receives them. */
static int parse_message_prefixes(block *b, const config_setting_t *s, const char *label)
{
    wn_plugin_config *out = b->base;
    int n;
    quoted q;

    if (s == NULL)
        return 0;
    if (!(out->ops & WALNOTIFY_OP_MESSAGE))
        return fail_at(b->ctx, s, "%s applies only when ops lists \"message\"", label);
    if (!is_string_list(s))
        return fail_at(b->ctx, first_non_string(s), "%s must be a list of strings", label);
    n = config_setting_length(s);
    if (n == 0)
        return fail_at(b->ctx, s,
                       "%s must name at least one prefix (leave \"message\" out of ops to "
                       "receive none)",
                       label);
    out->message_prefixes = calloc((size_t)n, sizeof *out->message_prefixes);
    if (out->message_prefixes == NULL)
        return fail_nomem(b->ctx);
    for (int i = 0; i < n; i++) {
        const config_setting_t *item = config_setting_get_elem(s, (unsigned)i);
        const char *prefix = config_setting_get_string(item);

        if (prefix[0] == '\0')
            return fail_at(b->ctx, item, "%s: a prefix must not be empty", label);
        if (wn_config_wants_message(out, prefix))
            return fail_at(b->ctx, item, "%s: prefix \"%s\" is listed twice", label,
                           quote(&q, prefix));
        out->message_prefixes[i] = strdup(prefix);
        if (out->message_prefixes[i] == NULL)
            return fail_nomem(b->ctx);
        out->nmessage_prefixes = (size_t)i + 1;
    }
    return 0;
}

static wn_setting_kind setting_kind(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_STRING:
        return WN_SETTING_STRING;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return WN_SETTING_INTEGER;
    case CONFIG_TYPE_FLOAT:
        return WN_SETTING_FLOAT;
    case CONFIG_TYPE_BOOL:
        return WN_SETTING_BOOLEAN;
    default:
        return is_string_list(s) ? WN_SETTING_STRING_LIST : WN_SETTING_OTHER;
    }
}

/* *file: the included file setting s comes from, named whole; NULL when it is in the
 * configuration file itself. -1 when out of memory. */
static int included_from(const load_ctx *ctx, const config_setting_t *s, char **file)
{
    char whole[PATH_MAX];
    const char *name = config_setting_source_file(s);

    *file = NULL;
    if (name == NULL)
        return 0;
    *file = strdup(include_name(ctx, name, whole, sizeof whole));
    return *file == NULL ? -1 : 0;
}

/* Copies one setting as written; returns -1 only when memory runs out. */
static int copy_setting(const config_setting_t *s, wn_setting_value *out)
{
    out->name = strdup(config_setting_name(s));
    out->line = (int)config_setting_source_line(s);
    out->kind = setting_kind(s);
    if (out->name == NULL)
        return -1;
    switch (out->kind) {
    case WN_SETTING_STRING:
        out->string = strdup(config_setting_get_string(s));
        return out->string == NULL ? -1 : 0;
    case WN_SETTING_INTEGER:
        out->integer = (int64_t)config_setting_get_int64(s);
        return 0;
    case WN_SETTING_FLOAT:
        out->real = config_setting_get_float(s);
        return 0;
    case WN_SETTING_BOOLEAN:
        out->boolean = config_setting_get_bool(s) != 0;
        return 0;
    case WN_SETTING_STRING_LIST:
        break;
    case WN_SETTING_OTHER:
        return 0;
    }
    out->nitems = (size_t)config_setting_length(s);
    if (out->nitems == 0)
        return 0;
    out->items = calloc(out->nitems, sizeof *out->items);
    if (out->items == NULL) {
        out->nitems = 0;
        return -1;
    }
    for (size_t i = 0; i < out->nitems; i++) {
        out->items[i] = strdup(config_setting_get_string_elem(s, (int)i));
        if (out->items[i] == NULL)
            return -1;
    }
    return 0;
}

static int parse_plugin_settings(block *b, const config_setting_t *s, const char *label)
{
    wn_plugin_config *out = b->base;
    int n;

    if (s == NULL)
        return 0;
    if (!config_setting_is_group(s))
        return fail_at(b->ctx, s, "%s must be a group", label);
    n = config_setting_length(s);
    if (n == 0)
        return 0;
    out->settings = calloc((size_t)n, sizeof *out->settings);
    if (out->settings == NULL)
        return fail_nomem(b->ctx);
    out->nsettings = (size_t)n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *member = config_setting_get_elem(s, (unsigned)i);

        if (copy_setting(member, &out->settings[i]) != 0 ||
            included_from(b->ctx, member, &out->settings[i].file) != 0)
            return fail_nomem(b->ctx);
    }
    return 0;
}

/* ---- the groups ------------------------------------------------------------------------- */

static int parse_source(block *top, const config_setting_t *s, const char *label)
{
    block b = {.ctx = top->ctx,
               .config = top->config,
               .group = s,
               .keys = source_keys,
               .base = &top->config->source,
               .lead = "",
               .path = "source.",
               .where = " in source"};
    const config_setting_t *state_file;

    if (!config_setting_is_group(s))
        return fail_at(top->ctx, s, "%s must be a group", label);
    if (read_block(&b) != 0)
        return -1;
    /* Kept for writers.c's messages about a file shared with another writer. */
    state_file = written(&b, "state_file");
    if (state_file != NULL) {
        top->config->source.state_file_line = (int)config_setting_source_line(state_file);
        if (included_from(top->ctx, state_file, &top->config->source.state_file_in) != 0)
            return fail_nomem(top->ctx);
    }
    /* Whether the snapshot finished is recorded there, for both hosts of a pair. */
    if (top->config->source.snapshot == WN_SNAPSHOT_INITIAL && state_file == NULL)
        return fail_at(top->ctx, written(&b, "snapshot"),
                       "source.snapshot = \"initial\" needs source.state_file: the file records "
                       "whether the snapshot finished");
    return check_order(&b, source_order);
}

static int parse_plugin(block *top, const config_setting_t *s, int index)
{
    wn_plugin_config *out = &top->config->plugins[index];
    char label[LABEL_MAX], lead[LABEL_MAX + 2], where[LABEL_MAX + 4];
    block b = {.ctx = top->ctx,
               .config = top->config,
               .group = s,
               .keys = plugin_keys,
               .base = out,
               .lead = lead,
               .path = "",
               .where = where,
               .index = index};
    const config_setting_t *ops;

    if (!config_setting_is_group(s))
        return fail_at(top->ctx, s, "plugins[%d] must be a group", index);
    plugin_label(s, index, label, sizeof label);
    snprintf(lead, sizeof lead, "%s: ", label);
    snprintf(where, sizeof where, " in %s", label);
    out->line = (int)config_setting_source_line(s);
    if (included_from(top->ctx, s, &out->file) != 0)
        return fail_nomem(top->ctx);
    if (read_block(&b) != 0 || plugin_rules(&b) != 0)
        return -1;
    /* Kept for the loader's messages about operations the plugin does not handle. */
    ops = written(&b, "ops");
    out->ops_line = ops != NULL ? (int)config_setting_source_line(ops) : 0;
    /* snapshot and message rows are not published: they never change the publication. */
    top->config->ops |= out->ops & WALNOTIFY_OPS_CHANGES;
    return 0;
}

static int parse_plugins(block *top, const config_setting_t *s, const char *label)
{
    wn_config *config = top->config;
    int n = config_setting_length(s);

    /* An empty [] is an array to libconfig, but it says the same as an empty (). */
    if (!config_setting_is_list(s) && !(config_setting_is_array(s) && n == 0))
        return fail_at(top->ctx, s, "%s must be a list of groups", label);
    if (n == 0)
        return fail_at(top->ctx, s, "%s must list at least one plugin", label);
    config->plugins = calloc((size_t)n, sizeof *config->plugins);
    if (config->plugins == NULL)
        return fail_nomem(top->ctx);
    config->nplugins = (size_t)n;
    for (int i = 0; i < n; i++) {
        if (parse_plugin(top, config_setting_get_elem(s, (unsigned)i), i) != 0)
            return -1;
    }
    return 0;
}

/*
 * The configuration file and every file it includes must be changeable only by root or the user
 * walnotify runs as: they name the plugins walnotify loads, the commands and addresses those use,
 * the files it writes, and the password it sends. Checked after conftext read them: every
 * component of their paths being trusted, only root or that user could have changed them since.
 */
static int check_trusted(load_ctx *ctx)
{
    char why[PATH_MAX + 256];

    if (wn_trust_unsafe_allowed())
        return 0;
    for (size_t i = 0; i <= ctx->nincluded; i++) {
        if (!wn_trust_path(i == 0 ? ctx->path : ctx->included[i - 1], why, sizeof why))
            return fail_file(ctx, "refused: %s (set %s=1 to allow this in a development tree)", why,
                             WN_ALLOW_UNSAFE_PATHS_ENV);
    }
    return 0;
}

/* libconfig reads the text (conftext has followed its @include directives already). */
static int parse_syntax(load_ctx *ctx, config_t *lc, const char *text, const char *dir)
{
    char included[PATH_MAX];
    const char *file;

    config_set_include_dir(lc, dir);
    if (config_read_string(lc, text) == CONFIG_TRUE)
        return 0;
    file = include_name(ctx, config_error_file(lc), included, sizeof included);
    return fail_line_in(ctx, file, config_error_line(lc), "%s",
                        config_error_text(lc) != NULL ? config_error_text(lc) : "syntax error");
}

static int parse_all(load_ctx *ctx, const config_setting_t *root, wn_config *config)
{
    block top = {.ctx = ctx,
                 .config = config,
                 .group = root,
                 .keys = top_keys,
                 .base = config,
                 .lead = "",
                 .path = "",
                 .where = ""};

    return read_block(&top);
}

int wn_config_load(const char *path, wn_config *config, char *err, size_t errlen)
{
    load_ctx ctx = {.path = path != NULL ? path : "(null)", .err = err, .errlen = errlen};
    wn_conftext source;
    config_t lc;
    int rc = -1;

    memset(config, 0, sizeof *config);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (path == NULL || path[0] == '\0')
        return fail_file(&ctx, "cannot read: no file name");
    if (wn_conftext_read(path, &source, err, errlen) != 0)
        return -1;
    config->file = strdup(path);
    if (config->file == NULL) {
        fail_nomem(&ctx);
        goto free_source;
    }
    /* The folder is the configuration's from now on. */
    config->dir = source.dir;
    source.dir = NULL;
    ctx.dir = config->dir;
    ctx.included = source.included;
    ctx.nincluded = source.nincluded;
    if (check_trusted(&ctx) != 0)
        goto free_source;
    config_init(&lc);
    if (parse_syntax(&ctx, &lc, source.text, config->dir) != 0)
        goto destroy_lc;
    if (parse_all(&ctx, config_root_setting(&lc), config) != 0)
        goto destroy_lc;
    rc = 0;
destroy_lc:
    config_destroy(&lc);
free_source:
    if (rc != 0)
        wn_config_free(config);
    wn_conftext_free(&source);
    return rc;
}

static void setting_value_free(wn_setting_value *value)
{
    free(value->name);
    free(value->file);
    free(value->string);
    for (size_t i = 0; i < value->nitems; i++)
        free(value->items[i]);
    free(value->items);
}

static void plugin_config_free(wn_plugin_config *plugin)
{
    free(plugin->name);
    free(plugin->file);
    free(plugin->watches);
    for (size_t i = 0; i < plugin->nmessage_prefixes; i++)
        free(plugin->message_prefixes[i]);
    free(plugin->message_prefixes);
    for (size_t i = 0; i < plugin->nsettings; i++)
        setting_value_free(&plugin->settings[i]);
    free(plugin->settings);
    free_strings(plugin_keys, plugin);
}

void wn_config_free(wn_config *config)
{
    if (config == NULL)
        return;
    for (size_t i = 0; i < config->nplugins; i++)
        plugin_config_free(&config->plugins[i]);
    free(config->plugins);
    for (size_t i = 0; i < config->source.ntables; i++)
        table_ref_free(&config->source.tables[i]);
    free(config->source.tables);
    free(config->source.state_file_in);
    free_strings(source_keys, &config->source);
    free_strings(top_keys, config);
    free(config->file);
    free(config->dir);
    memset(config, 0, sizeof *config);
}

wn_config wn_config_defaults(void)
{
    wn_config config;

    memset(&config, 0, sizeof config);
    set_defaults(top_keys, &config);
    set_defaults(source_keys, &config.source);
    return config;
}

wn_plugin_config wn_plugin_config_defaults(void)
{
    wn_plugin_config plugin;

    memset(&plugin, 0, sizeof plugin);
    set_defaults(plugin_keys, &plugin);
    return plugin;
}

/* "1" to "65535", digits only. */
static bool parse_port(const char *text, uint16_t *port)
{
    unsigned long value = 0;

    if (*text == '\0' || strlen(text) > 5)
        return false;
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return false;
        value = value * 10 + (unsigned long)(*c - '0');
    }
    if (value < 1 || value > 65535)
        return false;
    *port = (uint16_t)value;
    return true;
}

bool wn_config_listen_address(const char *text, struct sockaddr_storage *addr, socklen_t *addrlen)
{
    const char *colon = strrchr(text, ':');
    char host[INET6_ADDRSTRLEN + 2];
    size_t hostlen;
    uint16_t port;

    if (colon == NULL || !parse_port(colon + 1, &port))
        return false;
    hostlen = (size_t)(colon - text);
    if (hostlen == 0 || hostlen >= sizeof host)
        return false;
    memcpy(host, text, hostlen);
    host[hostlen] = '\0';
    memset(addr, 0, sizeof *addr);
    if (host[0] == '[' && host[hostlen - 1] == ']') {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;

        host[hostlen - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
            return false;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *addrlen = sizeof *in6;
        return true;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)addr;

    if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
        return false;
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    *addrlen = sizeof *in4;
    return true;
}

int wn_config_find_table(const wn_config *config, const char *schema, const char *name)
{
    if (config == NULL || schema == NULL || name == NULL)
        return -1;
    return table_index(config->source.tables, config->source.ntables, schema, name);
}

bool wn_config_wants_message(const wn_plugin_config *plugin, const char *prefix)
{
    if (plugin->message_prefixes == NULL)
        return true;
    for (size_t i = 0; i < plugin->nmessage_prefixes; i++) {
        if (prefix != NULL && strcmp(plugin->message_prefixes[i], prefix) == 0)
            return true;
    }
    return false;
}

bool wn_config_valid_slot_name(const char *name)
{
    size_t len;

    if (name == NULL)
        return false;
    len = strlen(name);
    if (len == 0 || len > WN_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}
