/*
 * deadletter: skipped events as JSON lines, with a small JSON writer of the host's own (the
 * jsonl plugin's code is a plugin's, never linked into the host).
 */
#include "deadletter.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "log.h"

/* A line longer than this is refused: it would be a broken event, not a row. */
#define LINE_MAX_BYTES ((size_t)1 << 30)

struct wn_deadletter {
    char *path;          /* as given, owned */
    int fd;
    bool unsynced;       /* appended since the last fsync */
    bool folder_synced;  /* the folder's entry for the file is durable */
    char *line;          /* the line being built, reused */
    size_t len;          /* bytes of line in use */
    size_t cap;          /* bytes allocated */
    bool failed;         /* the line being built ran out of memory or past LINE_MAX_BYTES */
};

static const char hex_digits[] = "0123456789abcdef";

/* ---- the JSON writer ------------------------------------------------------------------------ */

static bool reserve(wn_deadletter *f, size_t extra)
{
    size_t cap = f->cap != 0 ? f->cap : 1024;
    char *grown;

    if (f->failed)
        return false;
    if (extra > LINE_MAX_BYTES - f->len) {
        f->failed = true;
        return false;
    }
    if (f->len + extra <= f->cap)
        return true;
    while (cap < f->len + extra)
        cap *= 2;
    grown = realloc(f->line, cap);
    if (grown == NULL) {
        f->failed = true;
        return false;
    }
    f->line = grown;
    f->cap = cap;
    return true;
}

static void put(wn_deadletter *f, const char *bytes, size_t length)
{
    if (!reserve(f, length))
        return;
    memcpy(f->line + f->len, bytes, length);
    f->len += length;
}

static void puts_raw(wn_deadletter *f, const char *text)
{
    put(f, text, strlen(text));
}

__attribute__((format(printf, 2, 3))) static void put_format(wn_deadletter *f,
                                                             const char *format, ...)
{
    char text[64];
    va_list args;
    int n;

    va_start(args, format);
    n = vsnprintf(text, sizeof text, format, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof text) {
        f->failed = true;
        return;
    }
    put(f, text, (size_t)n);
}

/* Microseconds since 1970 as "YYYY-MM-DDTHH:MM:SS.ffffffZ", in UTC. */
static void put_time(wn_deadletter *f, int64_t usec)
{
    int64_t secs = usec / 1000000;
    int64_t frac = usec % 1000000;
    time_t t;
    struct tm tm;

    if (frac < 0) { /* floor, so a time before 1970 keeps a fraction in [0, 1 s) */
        frac += 1000000;
        secs--;
    }
    t = (time_t)secs;
    if (gmtime_r(&t, &tm) == NULL) {
        f->failed = true;
        return;
    }
    put_format(f, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
               tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

/*
 * Bytes of the well-formed UTF-8 sequence at p (at most avail), or 0 when p[0] does not start
 * one: overlong forms, surrogates, code points past U+10FFFF and cut sequences are all refused.
 */
static size_t utf8_length(const unsigned char *p, size_t avail)
{
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    size_t need;

    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        need = 2;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        need = 3;
        lo = p[0] == 0xE0 ? 0xA0 : 0x80;
        hi = p[0] == 0xED ? 0x9F : 0xBF;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        need = 4;
        lo = p[0] == 0xF0 ? 0x90 : 0x80;
        hi = p[0] == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (avail < need || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    }
    return need;
}

static void put_escape(wn_deadletter *f, unsigned char c)
{
    char text[6] = {'\\', 'u', '0', '0', hex_digits[c >> 4], hex_digits[c & 0xF]};

    switch (c) {
    case '"':
        put(f, "\\\"", 2);
        return;
    case '\\':
        put(f, "\\\\", 2);
        return;
    case '\n':
        put(f, "\\n", 2);
        return;
    case '\r':
        put(f, "\\r", 2);
        return;
    case '\t':
        put(f, "\\t", 2);
        return;
    default:
        put(f, text, sizeof text);
        return;
    }
}

/* A quoted JSON string of length bytes of text, which may hold anything. */
static void put_string(wn_deadletter *f, const char *text, size_t length)
{
    const unsigned char *in = (const unsigned char *)text;
    size_t i = 0;

    put(f, "\"", 1);
    while (i < length && !f->failed) {
        size_t run = 0;
        size_t n;

        /* Plain printable ASCII goes in one piece. */
        while (i + run < length && in[i + run] >= 0x20 && in[i + run] < 0x7F &&
               in[i + run] != '"' && in[i + run] != '\\')
            run++;
        put(f, text + i, run);
        i += run;
        if (i == length)
            break;
        if (in[i] < 0x80) {
            put_escape(f, in[i]);
            i++;
            continue;
        }
        n = utf8_length(in + i, length - i);
        if (n == 0) {
            put(f, "\\ufffd", 6);
            i++;
            continue;
        }
        put(f, text + i, n);
        i += n;
    }
    put(f, "\"", 1);
}

static void put_cstring(wn_deadletter *f, const char *text)
{
    if (text == NULL)
        text = "";
    put_string(f, text, strlen(text));
}

static const char *op_text(walnotify_op op)
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

/* `,"key":{...}`: every column that was sent (only the key's, with keys_only). */
static void put_row(wn_deadletter *f, const char *key, const walnotify_column *columns,
                    size_t ncolumns, bool keys_only)
{
    bool first = true;

    puts_raw(f, key);
    put(f, "{", 1);
    for (size_t i = 0; columns != NULL && i < ncolumns; i++) {
        const walnotify_column *c = &columns[i];

        if (c->kind == WALNOTIFY_VALUE_UNCHANGED || (keys_only && !c->is_key))
            continue;
        if (!first)
            put(f, ",", 1);
        first = false;
        put_cstring(f, c->name);
        put(f, ":", 1);
        if (c->kind == WALNOTIFY_VALUE_TEXT && c->value != NULL)
            put_string(f, c->value, c->length);
        else
            put(f, "null", 4);
    }
    put(f, "}", 1);
}

/* `,"unchanged":[...]` when some column is an unchanged TOAST value. */
static void put_unchanged(wn_deadletter *f, const walnotify_column *columns, size_t ncolumns)
{
    bool first = true;

    for (size_t i = 0; columns != NULL && i < ncolumns; i++) {
        if (columns[i].kind != WALNOTIFY_VALUE_UNCHANGED)
            continue;
        puts_raw(f, first ? ",\"unchanged\":[" : ",");
        first = false;
        put_cstring(f, columns[i].name);
    }
    if (!first)
        put(f, "]", 1);
}

static void put_truncate_options(wn_deadletter *f, unsigned options)
{
    puts_raw(f, ",\"options\":[");
    if (options & WALNOTIFY_TRUNCATE_CASCADE)
        puts_raw(f, "\"cascade\"");
    if (options & WALNOTIFY_TRUNCATE_RESTART_IDENTITY)
        puts_raw(f, options & WALNOTIFY_TRUNCATE_CASCADE ? ",\"restart_identity\""
                                                          : "\"restart_identity\"");
    put(f, "]", 1);
}

static void format_line(wn_deadletter *f, const char *plugin, const walnotify_event *ev,
                        const char *error)
{
    f->len = 0;
    f->failed = false;
    put_format(f, "{\"lsn\":\"%" PRIX32 "/%" PRIX32 "\",\"seq\":%" PRIu32 ",\"xid\":%" PRIu32,
               (uint32_t)(ev->commit_lsn >> 32), (uint32_t)ev->commit_lsn, ev->seq, ev->xid);
    puts_raw(f, ",\"commit_time\":\"");
    put_time(f, ev->commit_time);
    puts_raw(f, "\",\"table\":");
    put_cstring(f, ev->table);
    puts_raw(f, ",\"op\":\"");
    puts_raw(f, op_text(ev->op));
    put(f, "\"", 1);
    if (ev->op == WALNOTIFY_OP_INSERT || ev->op == WALNOTIFY_OP_UPDATE) {
        put_row(f, ",\"values\":", ev->columns, ev->ncolumns, false);
        put_unchanged(f, ev->columns, ev->ncolumns);
    }
    if ((ev->op == WALNOTIFY_OP_UPDATE || ev->op == WALNOTIFY_OP_DELETE) &&
        ev->old_kind != WALNOTIFY_OLD_NONE)
        put_row(f, ",\"old\":", ev->old_columns, ev->nold_columns,
                ev->old_kind == WALNOTIFY_OLD_KEY);
    if (ev->op == WALNOTIFY_OP_TRUNCATE)
        put_truncate_options(f, ev->truncate_options);
    puts_raw(f, ",\"plugin\":");
    put_cstring(f, plugin);
    puts_raw(f, ",\"error\":");
    put_cstring(f, error);
    put(f, "}\n", 2);
}

/* ---- the file ------------------------------------------------------------------------------- */

/* A crash may have left part of a line at the end: its event was not acknowledged, cut it. */
static int cut_torn_tail(wn_deadletter *f, char *err, size_t errlen)
{
    off_t kept, cut;
    int rc = wn_files_cut_torn_tail(f->fd, f->fd, &kept, &cut);

    if (rc != 0) {
        snprintf(err, errlen, "dead-letter file %s: cannot cut its torn last line: %s", f->path,
                 strerror(rc));
        return -1;
    }
    if (cut == 0)
        return 0;
    wn_log(WN_LOG_WARNING, "dead-letter file %s ended in a torn line: cut %lld bytes", f->path,
           (long long)cut);
    f->unsynced = true;
    return 0;
}

wn_deadletter *wn_deadletter_open(const char *path, char *err, size_t errlen)
{
    wn_deadletter *f = calloc(1, sizeof *f);
    bool created; /* the folder is synced at the first sync either way: an earlier run may have
                     created the file and stopped before it synced the folder */

    if (f == NULL || (f->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "dead-letter file %s: out of memory", path);
        goto free_file;
    }
    f->fd = wn_files_open_append(path, WN_FILES_MODE, &created);
    if (f->fd < 0) {
        snprintf(err, errlen, "dead-letter file %s: cannot open: %s", path,
                 wn_files_reason(path, errno));
        goto free_file;
    }
    if (cut_torn_tail(f, err, errlen) != 0)
        goto close_fd;
    return f;

close_fd:
    close(f->fd);
free_file:
    if (f != NULL)
        free(f->path);
    free(f);
    return NULL;
}

int wn_deadletter_append(wn_deadletter *f, const char *plugin, const walnotify_event *event,
                         const char *error, char *err, size_t errlen)
{
    off_t before;
    int rc;

    format_line(f, plugin, event, error);
    if (f->failed) {
        snprintf(err, errlen, "dead-letter file %s: out of memory formatting an event", f->path);
        return -1;
    }
    before = lseek(f->fd, 0, SEEK_END);
    if (before < 0) {
        snprintf(err, errlen, "dead-letter file %s: %s", f->path, strerror(errno));
        return -1;
    }
    rc = wn_files_write_all(f->fd, f->line, f->len);
    f->unsynced = true;
    if (rc == 0)
        return 0;
    /* Keep whole lines: take back whatever part of the line made it. */
    if (ftruncate(f->fd, before) != 0)
        wn_log(WN_LOG_WARNING, "dead-letter file %s: cannot cut a partial line: %s", f->path,
               strerror(errno));
    snprintf(err, errlen, "dead-letter file %s: write failed: %s", f->path, strerror(rc));
    return -1;
}

static int sync_folder(wn_deadletter *f, char *err, size_t errlen)
{
    int rc = wn_files_sync_folder(f->path);

    if (rc != 0) {
        snprintf(err, errlen, "dead-letter file %s: fsync of its folder failed: %s", f->path,
                 strerror(rc));
        return -1;
    }
    f->folder_synced = true;
    return 0;
}

int wn_deadletter_sync(wn_deadletter *f, char *err, size_t errlen)
{
    if (!f->unsynced)
        return 0;
    if (fsync(f->fd) != 0) {
        snprintf(err, errlen, "dead-letter file %s: fsync failed: %s", f->path, strerror(errno));
        return -1;
    }
    if (!f->folder_synced && sync_folder(f, err, errlen) != 0)
        return -1;
    f->unsynced = false;
    return 0;
}

const char *wn_deadletter_path(const wn_deadletter *f)
{
    return f->path;
}

void wn_deadletter_close(wn_deadletter *f)
{
    if (f == NULL)
        return;
    close(f->fd);
    free(f->line);
    free(f->path);
    free(f);
}
