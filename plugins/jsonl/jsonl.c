/*
 * jsonl: walnotify's reference sink. One JSON object per event, one line each, appended to a
 * file (or written to standard output).
 *
 * The file only ever holds whole lines: lines are formatted into a buffer and written once per
 * transaction (or whenever the buffer passes JSONL_WRITE_THRESHOLD, whole lines only); a failed
 * write, an aborted transaction and a torn tail found at start are all cut off with ftruncate.
 * An exclusive flock keeps two processes from appending to one file. Standard output that is a
 * regular file is treated the same way. A new file is created 0600 (the `mode` setting widens
 * it), and a symbolic link at `path` is refused, not followed. The file helpers are the host's
 * core/files.c, compiled into this plugin.
 */
#include <walnotify/plugin.h>

#include "files.h"
#include "jsonbuf.h"
#include "namecache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef WALNOTIFY_VERSION
#define WALNOTIFY_VERSION "1.0.0"
#endif

/* Buffered lines of one transaction are written out once they pass this size. */
#define JSONL_WRITE_THRESHOLD ((size_t)256 * 1024)
/* The buffer a state starts with, and the most it keeps after a huge transaction. */
#define JSONL_INITIAL_CAP ((size_t)64 * 1024)
#define JSONL_KEEP_CAP ((size_t)8 * 1024 * 1024)

/*
 * The part of a line that only changes with the transaction: `{"lsn":"X/Y","seq":` then, after
 * the event's seq, `,"xid":N,"commit_time":"T","table":`. Formatting the time and the LSN cost
 * more than the rest of a small row, so they are formatted once per transaction (once per event
 * only when events of different transactions alternate). Keyed by the event's own values, not
 * by begin's, since those are what the line shows.
 */
typedef struct line_head {
    bool valid;           /* text matches the key below */
    uint64_t commit_lsn;  /* the key: the event values the text was made from */
    uint32_t xid;
    int64_t commit_time;
    size_t seq_at;        /* text[0, seq_at) comes before the seq, the rest after it */
    jsonbuf text;
} line_head;

typedef struct jsonl_state {
    const walnotify_host *host; /* borrowed until shutdown returns */
    char *path;                 /* owned copy, "standard output" for "-"; for messages */
    int fd;                     /* -1 when closed; STDOUT_FILENO (not ours to close) for "-" */
    bool is_stdout;
    bool is_regular;            /* a regular file (also standard output): locked, and cut back
                                   with ftruncate */
    bool appends;               /* O_APPEND: writes land at the end whatever the offset */
    mode_t mode;                /* a new file's mode */
    bool fsync_enabled;
    bool unsynced;              /* written or cut since the last fsync */
    bool in_txn;                /* between begin and commit/abort */
    off_t file_end;             /* bytes of whole lines in the file after our last change */
    off_t txn_start;            /* file_end when the current transaction began */
    jsonbuf buf;                /* whole lines not written yet */
    line_head head;             /* the start of a line, kept while the transaction lasts */
    namecache table_name;       /* the last event's table, escaped */
    namecache column_names;     /* the last new row's column names, escaped */
} jsonl_state;

static const walnotify_setting jsonl_settings[] = {
    {.name = "path",
     .type = WALNOTIFY_SETTING_PATH,
     .default_value = "-",
     .description = "file the events are appended to, one JSON line each; \"-\" for standard output"},
    {.name = "fsync",
     .type = WALNOTIFY_SETTING_BOOLEAN,
     .default_value = "true",
     .description = "fsync the file before the host acknowledges what it holds"},
    {.name = "mode",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "0600",
     .description = "octal mode a new file is created with, e.g. \"0640\" for a reading group"},
    {.name = NULL},
};

/* ---- formatting ------------------------------------------------------------------------------ */

/* `,"op":"NAME"`: the member after the table, whole. */
typedef struct op_text {
    const char *json;
    size_t length;
} op_text;

#define OP_TEXT(name) {",\"op\":\"" name "\"", sizeof(",\"op\":\"" name "\"") - 1}

/* False for an operation this plugin does not know. */
static bool op_member(walnotify_op op, op_text *out)
{
    static const op_text op_insert = OP_TEXT("insert"), op_update = OP_TEXT("update"),
                         op_delete = OP_TEXT("delete"), op_truncate = OP_TEXT("truncate");
    switch (op) {
    case WALNOTIFY_OP_INSERT: *out = op_insert; return true;
    case WALNOTIFY_OP_UPDATE: *out = op_update; return true;
    case WALNOTIFY_OP_DELETE: *out = op_delete; return true;
    case WALNOTIFY_OP_TRUNCATE: *out = op_truncate; return true;
    case WALNOTIFY_OP_SNAPSHOT:
    case WALNOTIFY_OP_MESSAGE: return false;
    }
    return false;
}

/* Makes `head` hold the text for the event's transaction; false when out of memory. */
static bool refresh_head(line_head *head, const walnotify_event *ev)
{
    if (head->valid && head->commit_lsn == ev->commit_lsn && head->xid == ev->xid &&
        head->commit_time == ev->commit_time)
        return true;
    jsonbuf *text = &head->text;
    text->len = 0;
    jsonbuf_puts(text, "{\"lsn\":\"");
    jsonbuf_lsn(text, ev->commit_lsn);
    jsonbuf_puts(text, "\",\"seq\":");
    head->seq_at = text->len;
    jsonbuf_puts(text, ",\"xid\":");
    jsonbuf_u64(text, ev->xid);
    jsonbuf_puts(text, ",\"commit_time\":\"");
    jsonbuf_timestamp(text, ev->commit_time);
    jsonbuf_puts(text, "\",\"table\":");
    if (text->failed) {
        text->failed = false;
        head->valid = false;
        return false;
    }
    head->commit_lsn = ev->commit_lsn;
    head->xid = ev->xid;
    head->commit_time = ev->commit_time;
    head->valid = true;
    return true;
}

static void put_cstring(jsonbuf *buf, const char *text)
{
    jsonbuf_string(buf, text != NULL ? text : "", text != NULL ? strlen(text) : 0);
}

/* A name as a JSON string, through `names` (the index-th of its list) when there is one. */
static void put_name(jsonbuf *buf, namecache *names, size_t index, const char *name)
{
    if (names != NULL && name != NULL)
        namecache_put(names, index, name, buf);
    else
        put_cstring(buf, name);
}

/* The index-th column as `"name":value`; the caller has excluded unchanged TOAST values. */
static void put_member(jsonbuf *buf, namecache *names, size_t index, const walnotify_column *col)
{
    put_name(buf, names, index, col->name);
    jsonbuf_put(buf, ":", 1);
    if (col->kind != WALNOTIFY_VALUE_TEXT) {
        jsonbuf_put(buf, "null", 4);
        return;
    }
    jsonbuf_string(buf, col->value != NULL ? col->value : "", col->value != NULL ? col->length : 0);
}

/* `,"key":{...}` with every column that was sent (and, with keys_only, is part of the key);
 * names through `names` unless NULL. */
static void put_row(jsonbuf *buf, namecache *names, const char *key, const walnotify_column *cols,
                    size_t ncols, bool keys_only)
{
    bool first = true;
    jsonbuf_puts(buf, key);
    jsonbuf_put(buf, "{", 1);
    for (size_t i = 0; i < ncols; i++) {
        if (cols[i].kind == WALNOTIFY_VALUE_UNCHANGED || (keys_only && !cols[i].is_key))
            continue;
        if (!first)
            jsonbuf_put(buf, ",", 1);
        put_member(buf, names, i, &cols[i]);
        first = false;
    }
    jsonbuf_put(buf, "}", 1);
}

/* `,"unchanged":[...]` naming the columns whose unchanged TOAST value was not sent, if any. */
static void put_unchanged(jsonbuf *buf, const walnotify_column *cols, size_t ncols)
{
    bool first = true;
    for (size_t i = 0; i < ncols; i++) {
        if (cols[i].kind != WALNOTIFY_VALUE_UNCHANGED)
            continue;
        jsonbuf_puts(buf, first ? ",\"unchanged\":[" : ",");
        put_cstring(buf, cols[i].name);
        first = false;
    }
    if (!first)
        jsonbuf_put(buf, "]", 1);
}

static void put_truncate_options(jsonbuf *buf, unsigned options)
{
    bool first = true;
    jsonbuf_puts(buf, ",\"options\":[");
    if (options & WALNOTIFY_TRUNCATE_CASCADE) {
        jsonbuf_puts(buf, "\"cascade\"");
        first = false;
    }
    if (options & WALNOTIFY_TRUNCATE_RESTART_IDENTITY)
        jsonbuf_puts(buf, first ? "\"restart_identity\"" : ",\"restart_identity\"");
    jsonbuf_put(buf, "]", 1);
}

/* Appends the event's line, newline included, to st->buf, after st->head (refreshed for this
 * event). The caller checks st->buf.failed. */
static void format_event(jsonl_state *st, const walnotify_event *ev, const op_text *op)
{
    jsonbuf *buf = &st->buf;
    const jsonbuf *head = &st->head.text;
    jsonbuf_put(buf, head->data, st->head.seq_at);
    jsonbuf_u64(buf, ev->seq);
    jsonbuf_put(buf, head->data + st->head.seq_at, head->len - st->head.seq_at);
    put_name(buf, &st->table_name, 0, ev->table);
    jsonbuf_put(buf, op->json, op->length);

    if (ev->op == WALNOTIFY_OP_INSERT || ev->op == WALNOTIFY_OP_UPDATE) {
        put_row(buf, &st->column_names, ",\"values\":", ev->columns,
                ev->columns != NULL ? ev->ncolumns : 0, false);
        put_unchanged(buf, ev->columns, ev->columns != NULL ? ev->ncolumns : 0);
    }
    if ((ev->op == WALNOTIFY_OP_UPDATE || ev->op == WALNOTIFY_OP_DELETE) &&
        ev->old_kind != WALNOTIFY_OLD_NONE) {
        put_row(buf, NULL, ",\"old\":", ev->old_columns,
                ev->old_columns != NULL ? ev->nold_columns : 0, ev->old_kind == WALNOTIFY_OLD_KEY);
    }
    if (ev->op == WALNOTIFY_OP_TRUNCATE)
        put_truncate_options(buf, ev->truncate_options);
    jsonbuf_put(buf, "}\n", 2);
}

/* ---- output ---------------------------------------------------------------------------------- */

/* Cuts a regular file back to `offset`, where its last whole line ends. */
static bool cut_file(jsonl_state *st, off_t offset)
{
    while (ftruncate(st->fd, offset) != 0) {
        if (errno == EINTR)
            continue;
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "cannot truncate %s back to %lld bytes: %s",
                      st->path, (long long)offset, strerror(errno));
        return false;
    }
    st->unsynced = true;
    /* Standard output redirected with `>` has no O_APPEND: the next line goes at the offset. */
    if (!st->appends && lseek(st->fd, offset, SEEK_SET) < 0) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "cannot seek %s to %lld bytes: %s", st->path,
                      (long long)offset, strerror(errno));
        return false;
    }
    return true;
}

/* Writes the buffered whole lines. On failure the file is cut back to its last whole line. */
static walnotify_status write_buffer(jsonl_state *st)
{
    if (st->buf.len == 0)
        return WALNOTIFY_OK;
    int err = wn_files_write_all(st->fd, st->buf.data, st->buf.len);
    if (err != 0) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "write of %zu bytes to %s failed: %s",
                      st->buf.len, st->path, strerror(err));
        if (st->is_regular)
            cut_file(st, st->file_end);
        return WALNOTIFY_FATAL;
    }
    st->file_end += (off_t)st->buf.len;
    st->unsynced = true;
    st->buf.len = 0;
    /* One huge value must not pin its memory for the rest of the run. */
    if (st->buf.cap > JSONL_KEEP_CAP)
        jsonbuf_free(&st->buf);
    return WALNOTIFY_OK;
}

/* ---- opening --------------------------------------------------------------------------------- */

/* A crash may have left part of a line at the end: cut it, so the file holds whole lines.
 * read_fd reads the same file (st->fd itself unless that is write-only). */
static bool cut_torn_tail(jsonl_state *st, int read_fd)
{
    off_t cut;
    int err = wn_files_cut_torn_tail(st->fd, read_fd, &st->file_end, &cut);
    if (err != 0) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "cannot cut the torn last line of %s: %s",
                      st->path, strerror(err));
        return false;
    }
    if (cut == 0)
        return true;
    st->unsynced = true;
    st->host->log(st->host, WALNOTIFY_LOG_WARNING,
                  "%s ended in a torn line: cut %lld bytes, the file now holds %lld bytes of whole "
                  "lines",
                  st->path, (long long)cut, (long long)st->file_end);
    return true;
}

/* The process holding a flock on the file, from /proc/locks (Linux); 0 when unknown. */
static long lock_holder(int fd)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return 0;
    FILE *locks = fopen("/proc/locks", "re");
    if (locks == NULL)
        return 0;
    long holder = 0;
    char line[256];
    while (holder == 0 && fgets(line, sizeof line, locks) != NULL) {
        char type[16];
        long pid;
        unsigned dev_major, dev_minor;
        unsigned long inode;
        /* "1: FLOCK  ADVISORY  WRITE 4242 08:01:131 0 EOF"; waiters ("1: -> ...") do not match */
        if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%lu", type, &pid, &dev_major, &dev_minor,
                   &inode) == 5 &&
            strcmp(type, "FLOCK") == 0 && dev_major == major(sb.st_dev) &&
            dev_minor == minor(sb.st_dev) && inode == (unsigned long)sb.st_ino)
            holder = pid;
    }
    fclose(locks);
    return holder;
}

static bool lock_file(jsonl_state *st)
{
    int err;
    do
        err = flock(st->fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
    while (err == EINTR);
    if (err == 0)
        return true;
    if (err != EWOULDBLOCK) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "cannot lock %s: %s", st->path, strerror(err));
        return false;
    }
    long holder = lock_holder(st->fd);
    if (holder > 0)
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "%s is locked by another process (pid %ld): only one walnotify may write to it",
                      st->path, holder);
    else
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "%s is locked by another process: only one walnotify may write to it",
                      st->path);
    return false;
}

static bool open_file(jsonl_state *st)
{
    bool created;
    st->fd = wn_files_open_append(st->path, st->mode, &created);
    if (st->fd < 0) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "cannot open %s: %s", st->path,
                      wn_files_reason(st->path, errno));
        return false;
    }
    st->appends = true;

    struct stat sb;
    if (fstat(st->fd, &sb) != 0) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "cannot stat %s: %s", st->path,
                      strerror(errno));
        return false;
    }
    st->is_regular = S_ISREG(sb.st_mode);
    if (!st->is_regular)
        return true; /* a FIFO or device: nothing to lock, cut or sync */
    /* The size only counts once the lock is ours. */
    if (!lock_file(st) || !cut_torn_tail(st, st->fd))
        return false;
    if (created && st->fsync_enabled) {
        int err = wn_files_sync_folder(st->path);
        if (err != 0) {
            st->host->log(st->host, WALNOTIFY_LOG_ERROR, "fsync of the folder of %s failed: %s",
                          st->path, strerror(err));
            return false;
        }
    }
    return true;
}

/* true when standard error is the same file as standard output (`> FILE 2>&1`). */
static bool stderr_is_same_file(const struct stat *out)
{
    struct stat err;
    return fstat(STDERR_FILENO, &err) == 0 && err.st_dev == out->st_dev &&
           err.st_ino == out->st_ino;
}

/*
 * A descriptor to read standard output's file through: standard output itself when it was
 * opened read-write, else a fresh read-only open of the same file (`> FILE` opens it write-only)
 * through /proc. -1 after logging why not.
 */
static int stdout_reader(jsonl_state *st, const struct stat *out)
{
    int flags = fcntl(STDOUT_FILENO, F_GETFL);
    if (flags >= 0 && (flags & O_ACCMODE) == O_RDWR)
        return STDOUT_FILENO;
    int fd = open("/proc/self/fd/1", O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_dev == out->st_dev && sb.st_ino == out->st_ino)
        return fd;
    st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                  "standard output is a regular file opened write-only, and it cannot be read "
                  "back through /proc/self/fd/1 to find a torn last line: redirect it with 1<> "
                  "instead of >, or give the file as path");
    if (fd >= 0)
        close(fd);
    return -1;
}

/*
 * Standard output that is a regular file (`walnotify ... > FILE`) holds the same rows as a path
 * would, so it gets the same care: the lock, the torn-tail cut, truncation on abort and fsync.
 * A pipe or a terminal is written as it is.
 */
static bool open_stdout(jsonl_state *st)
{
    struct stat sb;
    st->fd = STDOUT_FILENO;
    if (fstat(st->fd, &sb) != 0) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "cannot stat standard output: %s",
                      strerror(errno));
        return false;
    }
    if (!S_ISREG(sb.st_mode))
        return true;
    if (stderr_is_same_file(&sb)) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "standard output and standard error are the same file: log lines would be "
                      "mixed into the events and cut with them; send standard error elsewhere or "
                      "give the file as path");
        return false;
    }
    st->is_regular = true;
    int flags = fcntl(st->fd, F_GETFL);
    st->appends = flags >= 0 && (flags & O_APPEND) != 0;
    if (!lock_file(st))
        return false;
    int read_fd = stdout_reader(st, &sb);
    if (read_fd < 0)
        return false;
    bool ok = cut_torn_tail(st, read_fd);
    if (read_fd != STDOUT_FILENO)
        close(read_fd);
    /* Lines go after the last whole one, whatever offset the shell left (`1<>` starts at 0). */
    if (ok && !st->appends && lseek(st->fd, st->file_end, SEEK_SET) < 0) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "cannot seek standard output: %s",
                      strerror(errno));
        ok = false;
    }
    return ok;
}

/* Reads the `mode` setting: octal, with owner read and write, nothing executable or writable by
 * others. */
static bool read_mode(jsonl_state *st)
{
    const char *text = st->host->get_string(st->host, "mode");
    if (text == NULL) {
        st->mode = WN_FILES_MODE;
        return true;
    }
    char *end = NULL;
    errno = 0;
    unsigned long mode = strtoul(text, &end, 8);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || text[0] == '+' ||
        (mode & 0600) != 0600 || (mode & ~0664UL) != 0) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "setting mode = \"%.32s\" is not a file mode walnotify creates a file "
                      "with: give octal digits such as \"0600\" or \"0640\" (owner read and "
                      "write, no execute, not writable by others)",
                      text);
        return false;
    }
    st->mode = (mode_t)mode;
    return true;
}

/* ---- callbacks ------------------------------------------------------------------------------- */

static void jsonl_shutdown(void *state)
{
    jsonl_state *st = state;
    if (st == NULL)
        return;
    if (st->fd >= 0 && !st->is_stdout)
        close(st->fd); /* also releases the lock */
    else if (st->is_stdout && st->is_regular)
        flock(st->fd, LOCK_UN); /* standard output stays open; the file is free for another */
    jsonbuf_free(&st->buf);
    jsonbuf_free(&st->head.text);
    namecache_free(&st->table_name);
    namecache_free(&st->column_names);
    free(st->path);
    free(st);
}

static walnotify_status jsonl_init(const walnotify_host *host, void **state)
{
    jsonl_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return WALNOTIFY_FATAL;
    }
    st->host = host;
    st->fd = -1;

    const char *path = host->get_string(host, "path");
    if (path == NULL)
        path = "-";
    if (path[0] == '\0') {
        host->log(host, WALNOTIFY_LOG_ERROR, "setting path is empty (use \"-\" for standard output)");
        goto fail;
    }
    /* Messages name the file; standard output's name is what a reader understands. */
    st->path = strdup(strcmp(path, "-") == 0 ? "standard output" : path);
    if (st->path == NULL || !jsonbuf_reserve(&st->buf, JSONL_INITIAL_CAP)) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        goto fail;
    }
    st->fsync_enabled = host->get_boolean(host, "fsync");
    if (!read_mode(st))
        goto fail;

    if (strcmp(path, "-") == 0) {
        st->is_stdout = true;
        if (!open_stdout(st))
            goto fail;
    } else if (!open_file(st)) {
        goto fail;
    }
    *state = st;
    return WALNOTIFY_OK;

fail:
    jsonl_shutdown(st);
    return WALNOTIFY_FATAL;
}

static walnotify_status jsonl_handle(void *state, const walnotify_event *ev)
{
    jsonl_state *st = state;
    op_text op;
    if (!op_member(ev->op, &op)) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "event for %s has an unknown operation %d",
                      ev->table != NULL ? ev->table : "?", (int)ev->op);
        return WALNOTIFY_FATAL;
    }

    size_t line_start = st->buf.len;
    if (refresh_head(&st->head, ev))
        format_event(st, ev, &op);
    else
        st->buf.failed = true;
    if (st->buf.failed) {
        st->buf.len = line_start;
        st->buf.failed = false;
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "out of memory formatting event seq %u of transaction %u on %s",
                      ev->seq, ev->xid, ev->table != NULL ? ev->table : "?");
        return WALNOTIFY_FATAL;
    }
    if (!st->in_txn || st->buf.len >= JSONL_WRITE_THRESHOLD)
        return write_buffer(st);
    return WALNOTIFY_OK;
}

static walnotify_status jsonl_begin(void *state, const walnotify_txn *txn)
{
    jsonl_state *st = state;
    (void)txn;
    /* Lines left from events handled outside a transaction belong to nobody's abort. */
    walnotify_status status = write_buffer(st);
    if (status != WALNOTIFY_OK)
        return status;
    st->in_txn = true;
    st->txn_start = st->file_end;
    return WALNOTIFY_OK;
}

static walnotify_status jsonl_commit(void *state, const walnotify_txn *txn)
{
    jsonl_state *st = state;
    (void)txn;
    walnotify_status status = write_buffer(st);
    if (status == WALNOTIFY_OK)
        st->in_txn = false;
    return status;
}

static void jsonl_abort(void *state, const walnotify_txn *txn)
{
    jsonl_state *st = state;
    st->buf.len = 0;
    if (!st->in_txn)
        return;
    st->in_txn = false;
    if (st->file_end == st->txn_start)
        return;
    if (st->is_regular) {
        if (cut_file(st, st->txn_start))
            st->file_end = st->txn_start;
        return;
    }
    st->host->log(st->host, WALNOTIFY_LOG_WARNING,
                  "%lld bytes of aborted transaction %u were already written to %s; it will be "
                  "delivered again",
                  (long long)(st->file_end - st->txn_start), txn != NULL ? txn->xid : 0,
                  st->is_stdout ? "standard output" : st->path);
    st->txn_start = st->file_end;
}

static walnotify_status jsonl_flush(void *state)
{
    jsonl_state *st = state;
    if (!st->fsync_enabled || !st->unsynced || !st->is_regular)
        return WALNOTIFY_OK;
    while (fdatasync(st->fd) != 0) {
        if (errno == EINTR)
            continue;
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "fsync of %s failed: %s", st->path,
                      strerror(errno));
        return WALNOTIFY_FATAL;
    }
    st->unsynced = false;
    return WALNOTIFY_OK;
}

static const walnotify_plugin jsonl_plugin = {
    .magic = WALNOTIFY_PLUGIN_MAGIC,
    .abi_major = WALNOTIFY_ABI_MAJOR,
    .abi_minor = WALNOTIFY_ABI_MINOR,
    .size = sizeof(walnotify_plugin),
    .name = "jsonl",
    .version = WALNOTIFY_VERSION,
    .settings = jsonl_settings,
    .init = jsonl_init,
    .handle = jsonl_handle,
    .shutdown = jsonl_shutdown,
    .begin = jsonl_begin,
    .commit = jsonl_commit,
    .abort = jsonl_abort,
    .flush = jsonl_flush,
};

const walnotify_plugin *walnotify_plugin_entry(void)
{
    return &jsonl_plugin;
}
