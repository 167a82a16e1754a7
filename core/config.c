/*
 * config: reads the configuration file with libconfig and turns it into plain structures.
 * Everything is validated here except plugin settings, which only the plugin's own declarations
 * can judge (the loader does that). Every error is one line naming the file and the line.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <walnotify/plugin.h>

#include "conninfo.h"

/* A configuration file is a few kilobytes; anything this big is a mistake, not a config. */
#define CONFIG_MAX_BYTES (1024 * 1024) /* the file with everything it includes */
#define INCLUDE_DEPTH_MAX 10          /* libconfig's own limit */
/* User text quoted in a message is cut here so that one bad value cannot flood the line. */
#define QUOTE_MAX 80
#define STATUS_INTERVAL_MIN 100
#define STATUS_INTERVAL_MAX 60000
#define BACKOFF_MAX_MS 3600000 /* an hour: the longest wait any backoff setting may ask for */
#define RETRY_INITIAL_MIN 1
#define RECONNECT_INITIAL_MIN 10
#define RECEIVE_TIMEOUT_MIN 1000
#define PROGRESS_INTERVAL_MIN 1000
#define PROGRESS_INTERVAL_MAX 86400000 /* a day */

typedef struct load_ctx {
    const char *path; /* the file as given, for messages */
    const char *dir;  /* its canonical folder, once known: @include names resolve there */
    char **included;  /* every file @include reads, resolved; owned */
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

static const char *const top_keys[] = {"source", "plugins", "log_level", NULL};
static const char *const source_keys[] = {
    "conninfo",         "tables",     "slot",
    "publication",      "status_interval_ms", "state_file",
    "reconnect_initial_ms", "reconnect_max_ms", "receive_timeout_ms",
    "progress_interval_ms", NULL};
#define SOURCE_KEYS_TEXT                                                                 \
    "conninfo, tables, slot, publication, status_interval_ms, state_file, "              \
    "reconnect_initial_ms, reconnect_max_ms, receive_timeout_ms, progress_interval_ms"
static const char *const plugin_keys[] = {
    "name",      "path",             "tables",       "ops",  "settings",    "on_error",
    "retry_max", "retry_initial_ms", "retry_max_ms", "then", "dead_letter", NULL};
#define PLUGIN_KEYS_TEXT                                                                 \
    "name, path, tables, ops, settings, on_error, retry_max, retry_initial_ms, "          \
    "retry_max_ms, then, dead_letter"

static const struct {
    const char *name;
    wn_on_error value;
} policy_names[] = {
    {"retry", WN_ON_ERROR_RETRY},
    {"skip", WN_ON_ERROR_SKIP},
    {"stop", WN_ON_ERROR_STOP},
};

static const struct {
    const char *name;
    unsigned bit;
} op_names[] = {
    {"insert", WALNOTIFY_OP_INSERT},
    {"update", WALNOTIFY_OP_UPDATE},
    {"delete", WALNOTIFY_OP_DELETE},
    {"truncate", WALNOTIFY_OP_TRUNCATE},
    {"snapshot", WALNOTIFY_OP_SNAPSHOT},
    {"message", WALNOTIFY_OP_MESSAGE},
};

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

/* A message must stay one line whatever the file name or libconfig said. */
static void flatten(char *text)
{
    for (; *text != '\0'; text++) {
        if ((unsigned char)*text < 0x20 || *text == 0x7f)
            *text = '?';
    }
}

static void put_error(load_ctx *ctx, const char *file, int line, const char *format,
                      va_list args) __attribute__((format(printf, 4, 0)));

static void put_error(load_ctx *ctx, const char *file, int line, const char *format,
                      va_list args)
{
    int n;

    if (ctx->err == NULL || ctx->errlen == 0)
        return;
    if (line > 0)
        n = snprintf(ctx->err, ctx->errlen, "%s:%d: ", file, line);
    else
        n = snprintf(ctx->err, ctx->errlen, "%s: ", file);
    if (n >= 0 && (size_t)n < ctx->errlen)
        vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, format, args);
    flatten(ctx->err);
}

/* The file a setting or an error comes from, for a message: the configuration file itself (libconfig
 * knows no name for it), or an included file, named as libconfig opened it (relative to the
 * configuration's folder) made whole. */
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
    put_error(ctx, ctx->path, 0, format, args);
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
    put_error(ctx, include_name(ctx, file, included, sizeof included), line > 0 ? line : 1,
              format, args);
    va_end(args);
    return -1;
}

/* "FILE:LINE: message" where no setting exists to point at. */
static int fail_line(load_ctx *ctx, int line, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_line(load_ctx *ctx, int line, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    put_error(ctx, ctx->path, line, format, args);
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
    put_error(ctx, file, line, format, args);
    va_end(args);
    return -1;
}

static int fail_nomem(load_ctx *ctx)
{
    return fail_file(ctx, "out of memory");
}

/* ---- small helpers ---------------------------------------------------------------------- */

static char *join3(const char *a, const char *sep, const char *b)
{
    size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
    char *out = malloc(la + ls + lb + 1);

    if (out == NULL)
        return NULL;
    memcpy(out, a, la);
    memcpy(out + la, sep, ls);
    memcpy(out + la + ls, b, lb + 1);
    return out;
}

static bool is_one_of(const char *name, const char *const *names)
{
    for (; *names != NULL; names++) {
        if (strcmp(name, *names) == 0)
            return true;
    }
    return false;
}

/* Rejects any member of group whose name is not in allowed. */
static int check_keys(load_ctx *ctx, const config_setting_t *group, const char *const *allowed,
                      const char *where, const char *expected)
{
    int n = config_setting_length(group);

    for (int i = 0; i < n; i++) {
        const config_setting_t *member = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(member);

        if (name != NULL && !is_one_of(name, allowed))
            return fail_at(ctx, member, "unknown setting \"%s\"%s (expected %s)", name, where,
                           expected);
    }
    return 0;
}

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

typedef enum table_parse {
    TABLE_OK,
    TABLE_INVALID,
    TABLE_NOMEM
} table_parse;

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
    ref->qualified = join3(ref->schema, ".", ref->name);
    if (ref->qualified == NULL)
        goto fail_nomem;
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

/* Parses one table item of `owner` (a message prefix such as "source.tables"). */
static int parse_table_item(load_ctx *ctx, const config_setting_t *item, const char *owner,
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
                   "%s: \"%s\" is not a table name (expected \"schema.name\" or \"name\", "
                   "each 1 to %d bytes)",
                   owner, quote(&q, text), WN_NAME_MAX);
}

/* ---- source ----------------------------------------------------------------------------- */

/* Looks up an optional string member; *out stays as is when absent. */
static int optional_string(load_ctx *ctx, const config_setting_t *group, const char *key,
                           const char *label, const char **out, const config_setting_t **where)
{
    const config_setting_t *s = config_setting_get_member(group, key);

    if (where != NULL)
        *where = s;
    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail_at(ctx, s, "%s must be a string", label);
    *out = config_setting_get_string(s);
    return 0;
}

static int required_string(load_ctx *ctx, const config_setting_t *group, const char *key,
                           const char *label, const char **out, const config_setting_t **where)
{
    const config_setting_t *s = NULL;

    *out = NULL;
    if (optional_string(ctx, group, key, label, out, &s) != 0)
        return -1;
    if (s == NULL)
        return fail_at(ctx, group, "%s is required", label);
    if (**out == '\0')
        return fail_at(ctx, s, "%s must not be empty", label);
    if (where != NULL)
        *where = s;
    return 0;
}

static int parse_source_tables(load_ctx *ctx, const config_setting_t *source,
                               wn_source_config *out)
{
    const config_setting_t *tables = config_setting_get_member(source, "tables");
    int n;

    if (tables == NULL)
        return fail_at(ctx, source, "source.tables is required");
    if (!is_string_list(tables))
        return fail_at(ctx, first_non_string(tables), "source.tables must be a list of strings");
    n = config_setting_length(tables);
    if (n == 0)
        return fail_at(ctx, tables, "source.tables must name at least one table");
    out->tables = calloc((size_t)n, sizeof *out->tables);
    if (out->tables == NULL)
        return fail_nomem(ctx);
    out->ntables = (size_t)n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *item = config_setting_get_elem(tables, (unsigned)i);
        wn_table_ref *ref = &out->tables[i];
        quoted q;

        if (parse_table_item(ctx, item, "source.tables", ref) != 0)
            return -1;
        if (table_index(out->tables, (size_t)i, ref->schema, ref->name) >= 0)
            return fail_at(ctx, item, "source.tables: \"%s\" is listed twice",
                           quote(&q, ref->qualified));
    }
    return 0;
}

/*
 * An optional integer member within [min, max]; *out is fallback when it is absent. *where (if
 * not NULL) receives the setting, NULL when absent, so a later check can point at it.
 */
static int optional_int(load_ctx *ctx, const config_setting_t *group, const char *key,
                        const char *label, int fallback, int min, int max, int *out,
                        const config_setting_t **where)
{
    const config_setting_t *s = config_setting_get_member(group, key);
    long long value;

    *out = fallback;
    if (where != NULL)
        *where = s;
    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
        return fail_at(ctx, s, "%s must be an integer", label);
    value = config_setting_get_int64(s);
    if (max == INT_MAX && value < min)
        return fail_at(ctx, s, "%s must be %d or more (got %lld)", label, min, value);
    if (value < min || value > max)
        return fail_at(ctx, s, "%s must be between %d and %d (got %lld)", label, min, max, value);
    *out = (int)value;
    return 0;
}

/* An optional file name, resolved against dir; *out stays NULL when absent. */
static int optional_path(load_ctx *ctx, const config_setting_t *group, const char *key,
                         const char *label, const char *dir, char **out,
                         const config_setting_t **where)
{
    const config_setting_t *s = NULL;
    const char *text = NULL;

    *out = NULL;
    if (optional_string(ctx, group, key, label, &text, &s) != 0)
        return -1;
    if (where != NULL)
        *where = s;
    if (s == NULL)
        return 0;
    if (text[0] == '\0')
        return fail_at(ctx, s, "%s must not be empty", label);
    /* "-" means standard output elsewhere; here it can only be a mistake. */
    if (strcmp(text, "-") == 0)
        return fail_at(ctx, s, "%s must name a file, not \"-\"", label);
    *out = wn_config_resolve_path(dir, text);
    return *out == NULL ? fail_nomem(ctx) : 0;
}

/* The setting to blame for a pair that does not fit: the one written, the later if both were. */
static const config_setting_t *blame(const config_setting_t *later,
                                     const config_setting_t *earlier,
                                     const config_setting_t *group)
{
    if (later != NULL)
        return later;
    return earlier != NULL ? earlier : group;
}

static int parse_source_timing(load_ctx *ctx, const config_setting_t *source,
                               wn_source_config *out)
{
    const config_setting_t *status = NULL, *initial = NULL, *max = NULL, *timeout = NULL;
    const config_setting_t *progress = NULL;

    if (optional_int(ctx, source, "status_interval_ms", "source.status_interval_ms",
                     WN_DEFAULT_STATUS_INTERVAL_MS, STATUS_INTERVAL_MIN, STATUS_INTERVAL_MAX,
                     &out->status_interval_ms, &status) != 0)
        return -1;
    if (optional_int(ctx, source, "reconnect_initial_ms", "source.reconnect_initial_ms",
                     WN_DEFAULT_RECONNECT_INITIAL_MS, RECONNECT_INITIAL_MIN, BACKOFF_MAX_MS,
                     &out->reconnect_initial_ms, &initial) != 0)
        return -1;
    if (optional_int(ctx, source, "reconnect_max_ms", "source.reconnect_max_ms",
                     WN_DEFAULT_RECONNECT_MAX_MS, RECONNECT_INITIAL_MIN, BACKOFF_MAX_MS,
                     &out->reconnect_max_ms, &max) != 0)
        return -1;
    if (out->reconnect_max_ms < out->reconnect_initial_ms)
        return fail_at(ctx, blame(max, initial, source),
                       "source.reconnect_max_ms (%d) must not be less than "
                       "source.reconnect_initial_ms (%d)",
                       out->reconnect_max_ms, out->reconnect_initial_ms);
    if (optional_int(ctx, source, "receive_timeout_ms", "source.receive_timeout_ms",
                     WN_DEFAULT_RECEIVE_TIMEOUT_MS, RECEIVE_TIMEOUT_MIN, BACKOFF_MAX_MS,
                     &out->receive_timeout_ms, &timeout) != 0)
        return -1;
    /* Feedback goes out every status interval: a shorter silence limit would fire by itself. */
    if (out->receive_timeout_ms <= out->status_interval_ms)
        return fail_at(ctx, blame(timeout, status, source),
                       "source.receive_timeout_ms (%d) must be greater than "
                       "source.status_interval_ms (%d)",
                       out->receive_timeout_ms, out->status_interval_ms);
    return optional_int(ctx, source, "progress_interval_ms", "source.progress_interval_ms",
                        WN_DEFAULT_PROGRESS_INTERVAL_MS, PROGRESS_INTERVAL_MIN,
                        PROGRESS_INTERVAL_MAX, &out->progress_interval_ms, &progress);
}

/* libpq's own verdict, without connecting, so that --check-config catches a conninfo that no
 * connection could use; the message never quotes a value (a password may be among them). */
/* ---- who may change what walnotify trusts ------------------------------------------------ */

/* Owned by root or by the user walnotify runs as. */
static bool trusted_owner(const struct stat *st)
{
    return st->st_uid == 0 || st->st_uid == geteuid();
}

/* One step of the walk: path (a folder, or the file itself when child is NULL) with its status
 * st; child_st is the status of the entry below it. */
static bool trusted_step(const char *path, const struct stat *st, const struct stat *child_st,
                         char *why, size_t whylen)
{
    const char *what = S_ISDIR(st->st_mode) ? "folder" : "file";

    if (!trusted_owner(st)) {
        snprintf(why, whylen, "%s %s is owned by uid %u, not by root or by the user walnotify "
                 "runs as (uid %u)", what, path, (unsigned)st->st_uid, (unsigned)geteuid());
        return false;
    }
    if (!(st->st_mode & (S_IWGRP | S_IWOTH)))
        return true;
    /* As /tmp: others may add entries, but only the owner of an entry may replace it. */
    if (child_st && (st->st_mode & S_ISVTX) && trusted_owner(child_st))
        return true;
    snprintf(why, whylen, "%s %s is writable by %s (mode %04o)", what, path,
             st->st_mode & S_IWOTH ? "everyone" : "its group", (unsigned)(st->st_mode & 07777));
    return false;
}

bool wn_config_unsafe_paths_allowed(void)
{
    const char *allow = getenv(WN_ALLOW_UNSAFE_PATHS_ENV);

    return allow != NULL && strcmp(allow, "1") == 0;
}

/* From real (canonical, owned; cut short as the walk goes up) to "/": whoever can write any of
 * them can replace what is loaded. child, when not NULL, is the entry below real. */
static bool trusted_chain(char *real, const struct stat *child, char *why, size_t whylen)
{
    struct stat st, below;
    bool have_below = child != NULL;

    if (child)
        below = *child;
    for (;;) {
        char *slash;

        if (stat(real, &st) != 0) {
            snprintf(why, whylen, "cannot read the status of %s: %s", real, strerror(errno));
            return false;
        }
        if (!trusted_step(real, &st, have_below ? &below : NULL, why, whylen))
            return false;
        if (strcmp(real, "/") == 0)
            return true;
        below = st;
        have_below = true;
        slash = strrchr(real, '/');
        slash[slash == real ? 1 : 0] = '\0';
    }
}

bool wn_config_path_trusted(const char *path, char *why, size_t whylen)
{
    char *real = path ? realpath(path, NULL) : NULL;
    char *folder = NULL, *slash;
    struct stat link;
    bool ok;

    if (!real) {
        snprintf(why, whylen, "cannot resolve %s: %s", path ? path : "(null)", strerror(errno));
        return false;
    }
    ok = trusted_chain(real, NULL, why, whylen);
    free(real);
    /* A link as the last component: the folder holding the link decides too, since whoever
     * may replace the link chooses what is loaded. */
    if (!ok || lstat(path, &link) != 0 || !S_ISLNK(link.st_mode))
        return ok;
    slash = strrchr(path, '/');
    folder = slash == NULL ? strdup(".") : slash == path ? strdup("/")
                                                         : strndup(path, (size_t)(slash - path));
    real = folder ? realpath(folder, NULL) : NULL;
    free(folder);
    if (!real) {
        snprintf(why, whylen, "cannot resolve the folder of %s: %s", path, strerror(errno));
        return false;
    }
    ok = trusted_chain(real, &link, why, whylen);
    free(real);
    return ok;
}

/* A file holding a secret must not be changeable by others: they would point walnotify at a
 * server of theirs and collect the password. */
static int check_secret_file(load_ctx *ctx, const config_setting_t *where, const char *conninfo)
{
    PQconninfoOption *options = PQconninfoParse(conninfo, NULL);
    char why[PATH_MAX + 256];
    bool secret = false;

    for (const PQconninfoOption *o = options; o && o->keyword; o++)
        secret |= o->val && o->val[0] && wn_conninfo_is_secret(o);
    PQconninfoFree(options);
    if (!secret || wn_config_unsafe_paths_allowed())
        return 0;
    /* The file itself and every file it includes: any of them could redirect the password. */
    for (size_t i = 0; i <= ctx->nincluded; i++) {
        if (!wn_config_path_trusted(i == 0 ? ctx->path : ctx->included[i - 1], why, sizeof why))
            return fail_at(ctx, where,
                           "source.conninfo holds a password, and %s (set %s=1 to allow this "
                           "in a development tree)",
                           why, WN_ALLOW_UNSAFE_PATHS_ENV);
    }
    return 0;
}

static int parse_conninfo(load_ctx *ctx, const config_setting_t *where, const char *conninfo)
{
    char why[256];

    if (wn_conninfo_check(conninfo, why, sizeof why))
        return check_secret_file(ctx, where, conninfo);
    return fail_at(ctx, where, "source.conninfo: %s", why);
}

static int parse_source(load_ctx *ctx, const config_setting_t *root, const char *dir,
                        wn_source_config *out)
{
    const config_setting_t *source = config_setting_get_member(root, "source");
    const config_setting_t *where = NULL;
    const char *conninfo = NULL;
    const char *slot = WN_DEFAULT_SLOT;
    const char *publication = WN_DEFAULT_PUBLICATION;
    quoted q;

    if (source == NULL)
        return fail_at(ctx, root, "source is required");
    if (!config_setting_is_group(source))
        return fail_at(ctx, source, "source must be a group");
    if (check_keys(ctx, source, source_keys, " in source", SOURCE_KEYS_TEXT) != 0)
        return -1;
    if (required_string(ctx, source, "conninfo", "source.conninfo", &conninfo, &where) != 0)
        return -1;
    if (parse_conninfo(ctx, where, conninfo) != 0)
        return -1;
    if (parse_source_tables(ctx, source, out) != 0)
        return -1;
    if (optional_string(ctx, source, "slot", "source.slot", &slot, &where) != 0)
        return -1;
    if (!wn_config_valid_slot_name(slot))
        return fail_at(ctx, where,
                       "source.slot \"%s\" is not a valid slot name (1 to %d lower-case letters, "
                       "digits or underscores)",
                       quote(&q, slot), WN_NAME_MAX);
    if (optional_string(ctx, source, "publication", "source.publication", &publication,
                        &where) != 0)
        return -1;
    if (publication[0] == '\0' || strlen(publication) > WN_NAME_MAX)
        return fail_at(ctx, where, "source.publication \"%s\" must be 1 to %d bytes",
                       quote(&q, publication), WN_NAME_MAX);
    if (parse_source_timing(ctx, source, out) != 0)
        return -1;
    if (optional_path(ctx, source, "state_file", "source.state_file", dir, &out->state_file,
                      NULL) != 0)
        return -1;
    out->conninfo = strdup(conninfo);
    out->slot = strdup(slot);
    out->publication = strdup(publication);
    if (out->conninfo == NULL || out->slot == NULL || out->publication == NULL)
        return fail_nomem(ctx);
    return 0;
}

/* ---- plugins ---------------------------------------------------------------------------- */

/* How messages name a plugin block: by its name when it has a usable one, else by position. */
static void plugin_label(const config_setting_t *block, int index, char *label, size_t size)
{
    const config_setting_t *name = config_setting_get_member(block, "name");
    const char *text = name != NULL && config_setting_type(name) == CONFIG_TYPE_STRING
                           ? config_setting_get_string(name)
                           : NULL;
    quoted q;

    if (text != NULL && text[0] != '\0' && strlen(text) <= WN_NAME_MAX)
        snprintf(label, size, "plugin \"%s\"", quote(&q, text));
    else
        snprintf(label, size, "plugins[%d]", index);
}

static int parse_plugin_name(load_ctx *ctx, const config_setting_t *block, int index,
                             const wn_plugin_config *earlier, wn_plugin_config *out)
{
    const config_setting_t *s = config_setting_get_member(block, "name");
    const char *name;
    quoted q;

    if (s == NULL)
        return fail_at(ctx, block, "plugins[%d].name is required", index);
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail_at(ctx, s, "plugins[%d].name must be a string", index);
    name = config_setting_get_string(s);
    if (name[0] == '\0' || strlen(name) > WN_NAME_MAX)
        return fail_at(ctx, s, "plugins[%d].name must be 1 to %d bytes", index, WN_NAME_MAX);
    for (int i = 0; i < index; i++) {
        if (strcmp(earlier[i].name, name) == 0)
            return fail_at(ctx, s, "plugin \"%s\" is defined twice (first at line %d)",
                           quote(&q, name), earlier[i].line);
    }
    out->name = strdup(name);
    return out->name == NULL ? fail_nomem(ctx) : 0;
}

/* Where `make install` puts plugins (walnotify.pc's plugindir): the Makefile passes it. */
#ifndef WALNOTIFY_PLUGINDIR
#error "WALNOTIFY_PLUGINDIR is not defined: the Makefile passes it (-DWALNOTIFY_PLUGINDIR=...)"
#endif

/*
 * A plugin path that is a bare file name ("webhook.so") names the file next to the
 * configuration when there is one there, else the one in the installed plugin folder, so that a
 * configuration can name an installed plugin without knowing the prefix. Any other path, and a
 * bare name found in neither place, resolves against the configuration's folder (the loader then
 * names the file it could not open). Caller frees; NULL when out of memory.
 */
static char *resolve_plugin_path(const char *dir, const char *path)
{
    char *local = wn_config_resolve_path(dir, path);
    char *installed;

    if (local == NULL || strchr(path, '/') != NULL || access(local, F_OK) == 0)
        return local;
    installed = join3(WALNOTIFY_PLUGINDIR, "/", path);
    if (installed == NULL || access(installed, F_OK) != 0) {
        free(installed);
        return local;
    }
    free(local);
    return installed;
}

static int parse_plugin_path(load_ctx *ctx, const config_setting_t *block, const char *label,
                             const char *dir, wn_plugin_config *out)
{
    char key[LABEL_MAX + 16];
    const char *path = NULL;

    snprintf(key, sizeof key, "%s: path", label);
    if (required_string(ctx, block, "path", key, &path, NULL) != 0)
        return -1;
    out->path = resolve_plugin_path(dir, path);
    return out->path == NULL ? fail_nomem(ctx) : 0;
}

static int parse_plugin_tables(load_ctx *ctx, const config_setting_t *block, const char *label,
                               const wn_source_config *source, wn_plugin_config *out)
{
    const config_setting_t *tables = config_setting_get_member(block, "tables");
    int n;

    out->watches = calloc(source->ntables, sizeof *out->watches);
    if (out->watches == NULL)
        return fail_nomem(ctx);
    if (tables == NULL) {
        for (size_t i = 0; i < source->ntables; i++)
            out->watches[i] = true;
        return 0;
    }
    if (!is_string_list(tables))
        return fail_at(ctx, first_non_string(tables), "%s: tables must be a list of strings",
                       label);
    n = config_setting_length(tables);
    if (n == 0)
        return fail_at(ctx, tables, "%s: tables must name at least one table", label);
    for (int i = 0; i < n; i++) {
        const config_setting_t *item = config_setting_get_elem(tables, (unsigned)i);
        wn_table_ref ref;
        int found;
        quoted q;

        if (parse_table_item(ctx, item, label, &ref) != 0)
            return -1;
        found = table_index(source->tables, source->ntables, ref.schema, ref.name);
        quote(&q, ref.qualified);
        table_ref_free(&ref);
        if (found < 0)
            return fail_at(ctx, item, "%s: table \"%s\" is not in source.tables", label, q.text);
        if (out->watches[found])
            return fail_at(ctx, item, "%s: table \"%s\" is listed twice", label, q.text);
        out->watches[found] = true;
    }
    return 0;
}

static unsigned op_bit(const char *name)
{
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++) {
        if (strcmp(name, op_names[i].name) == 0)
            return op_names[i].bit;
    }
    return 0;
}

static int parse_plugin_ops(load_ctx *ctx, const config_setting_t *block, const char *label,
                            wn_plugin_config *out)
{
    const config_setting_t *ops = config_setting_get_member(block, "ops");
    int n;

    /* Without `ops` the block gets insert; the loader checks that its plugin handles it. */
    out->ops = WALNOTIFY_OP_INSERT;
    out->ops_line = 0;
    if (ops == NULL)
        return 0;
    out->ops_line = (int)config_setting_source_line(ops);
    if (!is_string_list(ops))
        return fail_at(ctx, first_non_string(ops), "%s: ops must be a list of strings", label);
    n = config_setting_length(ops);
    if (n == 0)
        return fail_at(ctx, ops, "%s: ops must name at least one operation", label);
    out->ops = 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *item = config_setting_get_elem(ops, (unsigned)i);
        const char *name = config_setting_get_string(item);
        unsigned bit = op_bit(name);
        quoted q;

        if (bit == 0)
            return fail_at(ctx, item,
                           "%s: unknown operation \"%s\" in ops (expected insert, update, "
                           "delete, truncate, snapshot, message)",
                           label, quote(&q, name));
        if (out->ops & bit)
            return fail_at(ctx, item, "%s: operation \"%s\" is listed twice in ops", label,
                           name);
        out->ops |= bit;
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

/* Copies one setting as written; returns -1 only when memory runs out. */
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

static int parse_plugin_settings(load_ctx *ctx, const config_setting_t *block, const char *label,
                                 wn_plugin_config *out)
{
    const config_setting_t *settings = config_setting_get_member(block, "settings");
    int n;

    if (settings == NULL)
        return 0;
    if (!config_setting_is_group(settings))
        return fail_at(ctx, settings, "%s: settings must be a group", label);
    n = config_setting_length(settings);
    if (n == 0)
        return 0;
    out->settings = calloc((size_t)n, sizeof *out->settings);
    if (out->settings == NULL)
        return fail_nomem(ctx);
    out->nsettings = (size_t)n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(settings, (unsigned)i);

        if (copy_setting(s, &out->settings[i]) != 0 ||
            included_from(ctx, s, &out->settings[i].file) != 0)
            return fail_nomem(ctx);
    }
    return 0;
}

static const char *policy_text(wn_on_error value)
{
    for (size_t i = 0; i < sizeof policy_names / sizeof policy_names[0]; i++) {
        if (policy_names[i].value == value)
            return policy_names[i].name;
    }
    return "?";
}

/* `on_error` (retry, skip, stop) or, without retry, `then` (skip, stop). */
static int parse_policy_name(load_ctx *ctx, const config_setting_t *block, const char *key,
                             const char *label, bool allow_retry, wn_on_error *out,
                             const config_setting_t **where)
{
    char what[LABEL_MAX + 16];
    const char *text = NULL;
    quoted q;

    snprintf(what, sizeof what, "%s: %s", label, key);
    if (optional_string(ctx, block, key, what, &text, where) != 0)
        return -1;
    if (text == NULL)
        return 0;
    for (size_t i = 0; i < sizeof policy_names / sizeof policy_names[0]; i++) {
        if (strcmp(text, policy_names[i].name) == 0 &&
            (allow_retry || policy_names[i].value != WN_ON_ERROR_RETRY)) {
            *out = policy_names[i].value;
            return 0;
        }
    }
    return fail_at(ctx, *where, "%s \"%s\" is not one of %s", what, quote(&q, text),
                   allow_retry ? "retry, skip, stop" : "skip, stop");
}

static int parse_plugin_backoff(load_ctx *ctx, const config_setting_t *block, const char *label,
                                wn_plugin_config *out)
{
    char what[LABEL_MAX + 32];
    const config_setting_t *initial = NULL, *max = NULL;

    snprintf(what, sizeof what, "%s: retry_initial_ms", label);
    if (optional_int(ctx, block, "retry_initial_ms", what, WN_DEFAULT_RETRY_INITIAL_MS,
                     RETRY_INITIAL_MIN, BACKOFF_MAX_MS, &out->retry_initial_ms, &initial) != 0)
        return -1;
    snprintf(what, sizeof what, "%s: retry_max_ms", label);
    if (optional_int(ctx, block, "retry_max_ms", what, WN_DEFAULT_RETRY_MAX_MS, RETRY_INITIAL_MIN,
                     BACKOFF_MAX_MS, &out->retry_max_ms, &max) != 0)
        return -1;
    if (out->retry_max_ms < out->retry_initial_ms)
        return fail_at(ctx, blame(max, initial, block),
                       "%s: retry_max_ms (%d) must not be less than retry_initial_ms (%d)", label,
                       out->retry_max_ms, out->retry_initial_ms);
    return 0;
}

/*
 * path with empty and "." segments dropped and ".." taken back, so that two spellings of one
 * file compare equal (symbolic links are not followed: the files may not exist yet). Caller
 * frees; NULL when out of memory.
 */
static char *normalise_path(const char *path)
{
    char *out = malloc(strlen(path) + 2);
    size_t used = 0;

    if (out == NULL)
        return NULL;
    while (*path != '\0') {
        size_t len = strcspn(path, "/");

        if (len == 2 && path[0] == '.' && path[1] == '.') {
            while (used > 0 && out[used - 1] != '/')
                used--;
            if (used > 0)
                used--;
        } else if (len > 0 && !(len == 1 && path[0] == '.')) {
            out[used++] = '/';
            memcpy(out + used, path, len);
            used += len;
        }
        path += len;
        path += *path == '/';
    }
    out[used] = '\0';
    return out;
}

/* Whether two resolved paths name one file; -1 when out of memory. */
static int same_path(const char *a, const char *b)
{
    char *na = normalise_path(a);
    char *nb = normalise_path(b);
    int same = na == NULL || nb == NULL ? -1 : strcmp(na, nb) == 0;

    free(na);
    free(nb);
    return same;
}

/* The dead-letter file: required exactly when something can be skipped, and one per plugin. */
static int parse_dead_letter(load_ctx *ctx, const config_setting_t *block, const char *label,
                             const wn_config *config, int index, const config_setting_t *asker,
                             wn_plugin_config *out)
{
    const config_setting_t *where = NULL;
    char what[LABEL_MAX + 16];
    bool skipping = out->on_error == WN_ON_ERROR_SKIP ||
                    (out->on_error == WN_ON_ERROR_RETRY && out->then == WN_ON_ERROR_SKIP);

    snprintf(what, sizeof what, "%s: dead_letter", label);
    if (optional_path(ctx, block, "dead_letter", what, config->dir, &out->dead_letter, &where) !=
        0)
        return -1;
    if (skipping && out->dead_letter == NULL)
        return fail_at(ctx, asker, "%s is required when %s is \"skip\"", what,
                       out->on_error == WN_ON_ERROR_SKIP ? "on_error" : "then");
    if (!skipping && out->dead_letter != NULL)
        return fail_at(ctx, where, "%s is only used when on_error or then is \"skip\"", what);
    if (out->dead_letter == NULL)
        return 0;
    if (config->source.state_file != NULL) {
        int same = same_path(config->source.state_file, out->dead_letter);

        if (same != 0)
            return same < 0 ? fail_nomem(ctx)
                            : fail_at(ctx, where, "%s is the same file as source.state_file",
                                      what);
    }
    for (int i = 0; i < index; i++) {
        const wn_plugin_config *earlier = &config->plugins[i];
        int same;
        quoted q;

        if (earlier->dead_letter == NULL)
            continue;
        same = same_path(earlier->dead_letter, out->dead_letter);
        if (same < 0)
            return fail_nomem(ctx);
        if (same)
            return fail_at(ctx, where, "%s is the same file as plugin \"%s\"'s (line %d)", what,
                           quote(&q, earlier->name), earlier->line);
    }
    return 0;
}

/* on_error, then, retry_max, the backoff and the dead-letter file. */
static int parse_plugin_policy(load_ctx *ctx, const config_setting_t *block, const char *label,
                               const wn_config *config, int index, wn_plugin_config *out)
{
    const config_setting_t *on_error = NULL, *then = NULL, *retry_max = NULL;
    char what[LABEL_MAX + 16];

    out->on_error = WN_ON_ERROR_RETRY;
    out->then = WN_ON_ERROR_STOP;
    if (parse_policy_name(ctx, block, "on_error", label, true, &out->on_error, &on_error) != 0)
        return -1;
    if (parse_policy_name(ctx, block, "then", label, false, &out->then, &then) != 0)
        return -1;
    snprintf(what, sizeof what, "%s: retry_max", label);
    if (optional_int(ctx, block, "retry_max", what, 0, 0, INT_MAX, &out->retry_max, &retry_max) !=
        0)
        return -1;
    /* Without retries neither setting can take effect: saying so beats ignoring it. */
    if (out->on_error != WN_ON_ERROR_RETRY && (then != NULL || retry_max != NULL))
        return fail_at(ctx, then != NULL ? then : retry_max,
                       "%s: %s applies only when on_error is \"retry\" (it is \"%s\")", label,
                       then != NULL ? "then" : "retry_max", policy_text(out->on_error));
    if (parse_plugin_backoff(ctx, block, label, out) != 0)
        return -1;
    return parse_dead_letter(ctx, block, label, config, index,
                             out->on_error == WN_ON_ERROR_SKIP ? on_error : then, out);
}

static int parse_plugin(load_ctx *ctx, const config_setting_t *block, int index,
                        wn_config *config)
{
    wn_plugin_config *out = &config->plugins[index];
    char label[LABEL_MAX];
    char where[LABEL_MAX + 8];

    if (!config_setting_is_group(block))
        return fail_at(ctx, block, "plugins[%d] must be a group", index);
    plugin_label(block, index, label, sizeof label);
    out->line = (int)config_setting_source_line(block);
    if (included_from(ctx, block, &out->file) != 0)
        return fail_nomem(ctx);
    snprintf(where, sizeof where, " in %s", label);
    if (check_keys(ctx, block, plugin_keys, where, PLUGIN_KEYS_TEXT) != 0)
        return -1;
    if (parse_plugin_name(ctx, block, index, config->plugins, out) != 0)
        return -1;
    if (parse_plugin_path(ctx, block, label, config->dir, out) != 0)
        return -1;
    if (parse_plugin_tables(ctx, block, label, &config->source, out) != 0)
        return -1;
    if (parse_plugin_ops(ctx, block, label, out) != 0)
        return -1;
    if (parse_plugin_settings(ctx, block, label, out) != 0)
        return -1;
    if (parse_plugin_policy(ctx, block, label, config, index, out) != 0)
        return -1;
    /* snapshot and message rows are not published: they never change the publication. */
    config->ops |= out->ops & WALNOTIFY_OPS_CHANGES;
    return 0;
}

static int parse_plugins(load_ctx *ctx, const config_setting_t *root, wn_config *config)
{
    const config_setting_t *plugins = config_setting_get_member(root, "plugins");
    int n;

    if (plugins == NULL)
        return fail_at(ctx, root, "plugins is required");
    n = config_setting_length(plugins);
    /* An empty [] is an array to libconfig, but it says the same as an empty (). */
    if (!config_setting_is_list(plugins) && !(config_setting_is_array(plugins) && n == 0))
        return fail_at(ctx, plugins, "plugins must be a list of groups");
    if (n == 0)
        return fail_at(ctx, plugins, "plugins must list at least one plugin");
    config->plugins = calloc((size_t)n, sizeof *config->plugins);
    if (config->plugins == NULL)
        return fail_nomem(ctx);
    config->nplugins = (size_t)n;
    for (int i = 0; i < n; i++) {
        if (parse_plugin(ctx, config_setting_get_elem(plugins, (unsigned)i), i, config) != 0)
            return -1;
    }
    return 0;
}

static int parse_log_level(load_ctx *ctx, const config_setting_t *root, wn_log_level *out)
{
    const config_setting_t *where = NULL;
    const char *text = NULL;
    quoted q;

    *out = WN_LOG_INFO;
    if (optional_string(ctx, root, "log_level", "log_level", &text, &where) != 0)
        return -1;
    if (text == NULL)
        return 0;
    if (!wn_log_level_parse(text, out))
        return fail_at(ctx, where, "log_level \"%s\" is not one of debug, info, warning, error",
                       quote(&q, text));
    return 0;
}

/* ---- reading the file ------------------------------------------------------------------- */

/* Reads the whole file, NUL-terminated; a NUL inside would silently cut libconfig's input. */
static int read_text(load_ctx *ctx, char **out)
{
    size_t size = 0, cap = 4096;
    char *text = NULL;
    int fd;
    int rc = -1;

    *out = NULL;
    fd = open(ctx->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_file(ctx, "cannot read: %s", strerror(errno));
    text = malloc(cap);
    if (text == NULL) {
        fail_nomem(ctx);
        goto close_fd;
    }
    for (;;) {
        ssize_t n;

        if (size + 1 == cap) {
            char *bigger;

            if (cap > CONFIG_MAX_BYTES) {
                fail_file(ctx, "cannot read: larger than %d bytes", CONFIG_MAX_BYTES);
                goto free_text;
            }
            bigger = realloc(text, cap * 2);
            if (bigger == NULL) {
                fail_nomem(ctx);
                goto free_text;
            }
            text = bigger;
            cap *= 2;
        }
        n = read(fd, text + size, cap - size - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail_file(ctx, "cannot read: %s", strerror(errno));
            goto free_text;
        }
        if (n == 0)
            break;
        size += (size_t)n;
    }
    text[size] = '\0';
    if (strlen(text) != size) {
        int line = 1;

        for (const char *p = text; *p != '\0'; p++)
            line += *p == '\n';
        fail_line(ctx, line, "NUL byte in the file");
        goto free_text;
    }
    *out = text;
    text = NULL;
    rc = 0;
free_text:
    free(text);
close_fd:
    close(fd);
    return rc;
}

/* The absolute folder of the file: every relative path in it resolves there. */
static int config_dir(load_ctx *ctx, char **out)
{
    char *copy = strdup(ctx->path);
    char *slash;
    const char *folder;

    *out = NULL;
    if (copy == NULL)
        return fail_nomem(ctx);
    slash = strrchr(copy, '/');
    if (slash == NULL) {
        folder = ".";
    } else {
        /* "/x.conf" lives in "/", not in "" */
        slash[slash == copy ? 1 : 0] = '\0';
        folder = copy;
    }
    *out = realpath(folder, NULL);
    if (*out == NULL) {
        int saved = errno;

        free(copy);
        return fail_file(ctx, "cannot resolve its folder: %s", strerror(saved));
    }
    free(copy);
    return 0;
}

/* ---- @include ---------------------------------------------------------------------------- */

/*
 * libconfig reads @include itself, without the size limit of the configuration file, and from
 * anywhere. Before it does, every @include is followed here: each must name a regular file in
 * the configuration's folder or below (libconfig joins even an absolute name to that folder;
 * ".." or a link leading out is refused), nested at most INCLUDE_DEPTH_MAX deep, and the file
 * with all it includes must stay within CONFIG_MAX_BYTES. The scan takes every line shaped like
 * a directive, even one libconfig would skip inside a comment: it may refuse more, never less.
 */
typedef struct include_walk {
    load_ctx *ctx;
    size_t total; /* bytes of the configuration and of its includes so far */
} include_walk;

static int walk_includes(include_walk *walk, const char *file, const char *text, int depth);

/* The name of the @include directive starting line (up to its end), into name; 0 when the line
 * is no directive, 1 when it is, -1 when it is one walnotify cannot follow (why set). */
static int include_directive(const char *line, const char *end, char *name, size_t namelen,
                             const char **why)
{
    const char *p = line + strspn(line, " \t");
    const char *close;

    if ((size_t)(end - p) < 9 || strncmp(p, "@include", 8) != 0 || (p[8] != ' ' && p[8] != '\t'))
        return 0;
    p += 8 + strspn(p + 8, " \t");
    if (p >= end || *p != '"')
        return 0; /* libconfig's syntax error, said by libconfig */
    close = memchr(p + 1, '"', (size_t)(end - p - 1));
    if (close == NULL)
        return 0;
    if (memchr(p + 1, '\\', (size_t)(close - p - 1)) != NULL) {
        *why = "a backslash in an @include name is not supported";
        return -1;
    }
    if ((size_t)(close - p - 1) >= namelen || close == p + 1) {
        *why = close == p + 1 ? "empty @include name" : "@include name too long";
        return -1;
    }
    memcpy(name, p + 1, (size_t)(close - p - 1));
    name[close - p - 1] = '\0';
    return 1;
}

/* Reads the included file real (already resolved) whole, within what is left of the limit. */
static int read_included(include_walk *walk, const char *from, int line, const char *real,
                         char **out)
{
    size_t left = CONFIG_MAX_BYTES - walk->total, size = 0;
    struct stat st;
    char *text;
    int fd = open(real, O_RDONLY | O_CLOEXEC);

    *out = NULL;
    if (fd < 0)
        return fail_line_in(walk->ctx, from, line, "@include %s: %s", real, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail_line_in(walk->ctx, from, line, "@include %s: not a regular file", real);
    }
    if ((size_t)st.st_size > left) {
        close(fd);
        return fail_line_in(walk->ctx, from, line,
                            "@include %s: the configuration with everything it includes would "
                            "pass %d bytes", real, CONFIG_MAX_BYTES);
    }
    text = malloc(left + 2);
    while (text != NULL && size <= left) {
        ssize_t n = read(fd, text + size, left + 1 - size);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size += (size_t)n;
    }
    close(fd);
    if (text == NULL)
        return fail_nomem(walk->ctx);
    if (size > left) {
        free(text);
        return fail_line_in(walk->ctx, from, line,
                            "@include %s: the configuration with everything it includes would "
                            "pass %d bytes", real, CONFIG_MAX_BYTES);
    }
    text[size] = '\0';
    walk->total += size;
    *out = text;
    return 0;
}

/* Keeps a copy of real in ctx->included, for the checks of a file holding a password. */
static int remember_include(load_ctx *ctx, const char *real)
{
    char **grown = realloc(ctx->included, (ctx->nincluded + 1) * sizeof *grown);

    if (grown == NULL)
        return fail_nomem(ctx);
    ctx->included = grown;
    ctx->included[ctx->nincluded] = strdup(real);
    if (ctx->included[ctx->nincluded] == NULL)
        return fail_nomem(ctx);
    ctx->nincluded++;
    return 0;
}

/* Follows one @include name written at from:line. */
static int follow_include(include_walk *walk, const char *from, int line, const char *name,
                          int depth)
{
    const char *dir = walk->ctx->dir;
    size_t dirlen = strlen(dir);
    char *joined, *real, *text = NULL;
    int rc;

    if (depth >= INCLUDE_DEPTH_MAX)
        return fail_line_in(walk->ctx, from, line,
                            "@include \"%s\": nested more than %d deep (does it include itself?)",
                            name, INCLUDE_DEPTH_MAX);
    /* As libconfig opens it: the configuration's folder, "/", the name. */
    joined = join3(dir, "/", name);
    if (joined == NULL)
        return fail_nomem(walk->ctx);
    real = realpath(joined, NULL);
    if (real == NULL) {
        rc = fail_line_in(walk->ctx, from, line, "@include %s: %s", joined, strerror(errno));
        free(joined);
        return rc;
    }
    free(joined);
    if (strcmp(dir, "/") != 0 && (strncmp(real, dir, dirlen) != 0 || real[dirlen] != '/')) {
        rc = fail_line_in(walk->ctx, from, line,
                          "@include \"%s\" leads to %s, outside the configuration's folder %s "
                          "(an included file must be in that folder or below)",
                          name, real, dir);
        free(real);
        return rc;
    }
    rc = read_included(walk, from, line, real, &text);
    if (rc == 0)
        rc = remember_include(walk->ctx, real);
    if (rc == 0)
        rc = walk_includes(walk, real, text, depth + 1);
    free(text);
    free(real);
    return rc;
}

static int walk_includes(include_walk *walk, const char *file, const char *text, int depth)
{
    char name[PATH_MAX];
    int line = 1;

    for (const char *start = text; *start != '\0'; line++) {
        const char *end = strchr(start, '\n');
        const char *why = NULL;
        int found;

        if (end == NULL)
            end = start + strlen(start);
        found = include_directive(start, end, name, sizeof name, &why);
        if (found < 0)
            return fail_line_in(walk->ctx, file, line, "%s", why);
        if (found > 0 && follow_include(walk, file, line, name, depth) != 0)
            return -1;
        if (*end == '\0')
            break;
        start = end + 1;
    }
    return 0;
}

static int parse_syntax(load_ctx *ctx, config_t *lc, const char *text, const char *dir)
{
    include_walk walk = {.ctx = ctx, .total = strlen(text)};
    char included[PATH_MAX];
    const char *file;

    if (walk_includes(&walk, ctx->path, text, 0) != 0)
        return -1;
    config_set_include_dir(lc, dir);
    if (config_read_string(lc, text) == CONFIG_TRUE)
        return 0;
    file = include_name(ctx, config_error_file(lc), included, sizeof included);
    return fail_line_in(ctx, file, config_error_line(lc), "%s",
                        config_error_text(lc) != NULL ? config_error_text(lc) : "syntax error");
}

static int parse_all(load_ctx *ctx, const config_setting_t *root, wn_config *config)
{
    if (check_keys(ctx, root, top_keys, "", "source, plugins, log_level") != 0)
        return -1;
    if (parse_source(ctx, root, config->dir, &config->source) != 0)
        return -1;
    if (parse_plugins(ctx, root, config) != 0)
        return -1;
    return parse_log_level(ctx, root, &config->log_level);
}

int wn_config_load(const char *path, wn_config *config, char *err, size_t errlen)
{
    load_ctx ctx = {.path = path != NULL ? path : "(null)", .err = err, .errlen = errlen};
    config_t lc;
    char *text = NULL;
    int rc = -1;

    memset(config, 0, sizeof *config);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (path == NULL || path[0] == '\0')
        return fail_file(&ctx, "cannot read: no file name");
    if (read_text(&ctx, &text) != 0)
        return -1;
    config->file = strdup(path);
    if (config->file == NULL) {
        fail_nomem(&ctx);
        goto free_text;
    }
    if (config_dir(&ctx, &config->dir) != 0)
        goto free_config;
    ctx.dir = config->dir;
    config_init(&lc);
    if (parse_syntax(&ctx, &lc, text, config->dir) != 0)
        goto destroy_lc;
    if (parse_all(&ctx, config_root_setting(&lc), config) != 0)
        goto destroy_lc;
    rc = 0;
destroy_lc:
    config_destroy(&lc);
    for (size_t i = 0; i < ctx.nincluded; i++)
        free(ctx.included[i]);
    free(ctx.included);
free_config:
    if (rc != 0)
        wn_config_free(config);
free_text:
    free(text);
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
    free(plugin->path);
    free(plugin->watches);
    for (size_t i = 0; i < plugin->nsettings; i++)
        setting_value_free(&plugin->settings[i]);
    free(plugin->settings);
    free(plugin->dead_letter);
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
    free(config->source.conninfo);
    free(config->source.slot);
    free(config->source.publication);
    free(config->source.state_file);
    free(config->file);
    free(config->dir);
    memset(config, 0, sizeof *config);
}

/*
 * path with its folder made canonical ("/a/neg/../x.so" -> "/a/x.so") when that folder exists,
 * so that messages name the file plainly. The last component is kept as written: a link there
 * stays a link, for whoever opens the file to see. Takes path; returns it or its replacement.
 */
static char *canonical_folder(char *path)
{
    char *slash = path ? strrchr(path, '/') : NULL;
    const char *base = slash ? slash + 1 : NULL;
    char *folder, *real, *joined;

    if (!slash || base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return path;
    folder = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    real = folder ? realpath(folder, NULL) : NULL;
    free(folder);
    if (!real)
        return path;
    joined = join3(real, strcmp(real, "/") == 0 ? "" : "/", base);
    free(real);
    if (!joined)
        return path;
    free(path);
    return joined;
}

char *wn_config_resolve_path(const char *dir, const char *path)
{
    if (path == NULL)
        return NULL;
    if (strcmp(path, "-") == 0)
        return strdup(path);
    if (path[0] == '/' || dir == NULL || dir[0] == '\0')
        return canonical_folder(strdup(path));
    return canonical_folder(join3(dir, strcmp(dir, "/") == 0 ? "" : "/", path));
}

int wn_config_find_table(const wn_config *config, const char *schema, const char *name)
{
    if (config == NULL || schema == NULL || name == NULL)
        return -1;
    return table_index(config->source.tables, config->source.ntables, schema, name);
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
