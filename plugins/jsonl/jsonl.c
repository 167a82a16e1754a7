/*
 * jsonl: walnotify's reference sink. One JSON object per event, one line each, appended to a
 * file (or written to standard output). Each line is the event's canonical JSON, which the host
 * renders (walnotify_host.encode_json), and a newline.
 *
 * The file only ever holds whole lines: lines are gathered in a buffer and written once per
 * transaction (or whenever the buffer passes JSONL_WRITE_THRESHOLD, whole lines only; a line
 * that long on its own goes out at once, without the copy); a failed write, an aborted
 * transaction and a torn tail found at start are all cut off with ftruncate.
 * An exclusive flock keeps two processes from appending to one file: init answers RETRY while
 * another process holds it (the other host of an active/standby pair, until it lets the file
 * go). Standard output that is a regular file is treated the same way. A new file is created
 * 0600 (the `mode` setting widens it); a symbolic link, a FIFO or a block device at `path` is
 * refused, not followed or waited on (a pipe is for "-" and the shell's redirection); a
 * character device such as /dev/null is written as it comes.
 * A file at `path` is the host's durable append file (core/appendfile.c, lines: a torn tail is
 * cut at the last newline), compiled into this plugin with core/files.c.
 */
#include <walnotify/plugin.h>

#include "appendfile.h"
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef WALNOTIFY_VERSION
#define WALNOTIFY_VERSION "1.0.0"
#endif

/* Buffered lines of one transaction are written out once they pass this size. */
#define JSONL_WRITE_THRESHOLD ((size_t)256 * 1024)
/* The buffer a state starts with, and the most it keeps after a huge transaction. */
#define JSONL_INITIAL_CAP ((size_t)64 * 1024)
#define JSONL_KEEP_CAP ((size_t)8 * 1024 * 1024)

/* Whole lines not written yet: bytes only, the JSON comes from the host's encoder. */
typedef struct line_buffer {
    char *data; /* owned */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
} line_buffer;

typedef struct jsonl_state {
    const walnotify_host *host; /* borrowed until shutdown returns */
    char *path;                 /* owned copy, "standard output" for "-"; for messages */
    wn_appendfile *file;        /* the file at `path`; NULL for standard output */
    int fd;                     /* the file's; STDOUT_FILENO (not ours to close) for "-" */
    bool is_stdout;
    bool is_regular; /* a regular file (also standard output): locked, and cut back
                        with ftruncate */
    bool appends;    /* O_APPEND: writes land at the end whatever the offset */
    mode_t mode;     /* a new file's mode */
    bool fsync_enabled;
    bool unsynced;   /* written or cut since the last fsync */
    bool in_txn;     /* between begin and commit/abort */
    off_t file_end;  /* bytes of whole lines in the file after our last change */
    off_t txn_start; /* file_end when the current transaction began */
    line_buffer buf; /* whole lines not written yet */
} jsonl_state;

static const walnotify_setting jsonl_settings[] = {
    {.name = "path",
     .type = WALNOTIFY_SETTING_PATH,
     .default_value = "-",
     .description =
         "file the events are appended to, one JSON line each; \"-\" for standard output"},
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

/* ---- lines --------------------------------------------------------------------------------- */

/* Makes room for `extra` more bytes (the caller found too little); false when memory (or
 * size_t) runs out. */
static bool buffer_grow(line_buffer *buf, size_t extra)
{
    if (extra <= buf->cap - buf->len)
        return true;
    if (extra > SIZE_MAX / 2 - buf->len)
        return false;
    size_t cap = buf->cap < JSONL_INITIAL_CAP ? JSONL_INITIAL_CAP : buf->cap;
    while (cap < buf->len + extra)
        cap *= 2;
    char *data = realloc(buf->data, cap);
    if (data == NULL)
        return false;
    buf->data = data;
    buf->cap = cap;
    return true;
}

static void buffer_free(line_buffer *buf)
{
    free(buf->data);
    *buf = (line_buffer){0};
}

/* Appends the event's line (its canonical JSON, which the host renders, and a newline). */
static bool buffer_line(line_buffer *buf, const char *json, size_t length)
{
    /* Nearly always there is room: one compare, no call. */
    if (length >= buf->cap - buf->len && (length == SIZE_MAX || !buffer_grow(buf, length + 1)))
        return false;
    memcpy(buf->data + buf->len, json, length);
    buf->data[buf->len + length] = '\n';
    buf->len += length + 1;
    return true;
}

/* ---- output ---------------------------------------------------------------------------------- */

/* Cuts a regular file back to `offset`, where its last whole line ends. */
static bool cut_file(jsonl_state *st, off_t offset)
{
    if (st->file != NULL) {
        char err[512];

        if (wn_appendfile_cut(st->file, offset, err, sizeof err) == 0)
            return true;
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "%s", err);
        return false;
    }
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

/* write_lines to the file at `path`: a failed write leaves it ending with a whole line. */
static walnotify_status append_lines(jsonl_state *st, const char *data, size_t length, bool newline)
{
    char err[512];

    if (wn_appendfile_append(st->file, data, length, err, sizeof err) != 0 ||
        (newline && wn_appendfile_append(st->file, "\n", 1, err, sizeof err) != 0)) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "%s", err);
        /* A line without its newline is no line: back to where this one started. */
        cut_file(st, st->file_end);
        return WALNOTIFY_FATAL;
    }
    st->file_end = wn_appendfile_length(st->file);
    st->unsynced = true;
    return WALNOTIFY_OK;
}

/* Writes `length` bytes of whole lines, and a newline when `newline` (a line that ends
 * there). On failure the file is cut back to its last whole line. */
static walnotify_status write_lines(jsonl_state *st, const char *data, size_t length, bool newline)
{
    if (st->file != NULL)
        return append_lines(st, data, length, newline);
    int err = wn_files_write_all(st->fd, data, length);
    if (err == 0 && newline)
        err = wn_files_write_all(st->fd, "\n", 1);
    if (err != 0) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "write of %zu bytes to %s failed: %s",
                      length + (newline ? 1 : 0), st->path, strerror(err));
        if (st->is_regular)
            cut_file(st, st->file_end);
        return WALNOTIFY_FATAL;
    }
    st->file_end += (off_t)(length + (newline ? 1 : 0));
    st->unsynced = true;
    return WALNOTIFY_OK;
}

/* Writes the buffered whole lines. */
static walnotify_status write_buffer(jsonl_state *st)
{
    if (st->buf.len == 0)
        return WALNOTIFY_OK;
    walnotify_status status = write_lines(st, st->buf.data, st->buf.len, false);
    if (status != WALNOTIFY_OK)
        return status;
    st->buf.len = 0;
    /* One huge transaction must not pin its memory for the rest of the run. */
    if (st->buf.cap > JSONL_KEEP_CAP)
        buffer_free(&st->buf);
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

/* What a lock's outcome means for init, after logging it. */
static walnotify_status lock_status(jsonl_state *st, int err, long holder)
{
    if (err == 0)
        return WALNOTIFY_OK;
    if (err != EWOULDBLOCK && err != EDEADLK) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "cannot lock %s: %s", st->path, strerror(err));
        return WALNOTIFY_FATAL;
    }
    if (err == EDEADLK) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "%s is already written by another plugin block of this walnotify (pid %ld): "
                      "give each block a file of its own",
                      st->path, holder);
        return WALNOTIFY_FATAL;
    }
    if (holder > 0)
        st->host->log(st->host, WALNOTIFY_LOG_WARNING,
                      "%s is locked by another process (pid %ld): only one walnotify may write to "
                      "it; waiting until it releases the file",
                      st->path, holder);
    else
        st->host->log(st->host, WALNOTIFY_LOG_WARNING,
                      "%s is locked by another process: only one walnotify may write to it; "
                      "waiting until it releases the file",
                      st->path);
    return WALNOTIFY_RETRY;
}

/*
 * Takes the file's lock. WALNOTIFY_RETRY while another process holds it: the other host of an
 * active/standby pair, which releases the file when it finds the slot taken (the host calls
 * init again meanwhile and says an unchanged reason once). FATAL when this process itself holds
 * it (two blocks of one configuration on one file: waiting would never end) or flock fails.
 */
static walnotify_status lock_file(jsonl_state *st)
{
    long holder;
    int err = wn_files_lock(st->fd, &holder);
    return lock_status(st, err, holder);
}

/* false after logging why; *status says whether waiting may help. */
static bool locked(jsonl_state *st, walnotify_status *status)
{
    *status = lock_file(st);
    return *status == WALNOTIFY_OK;
}

static bool open_file(jsonl_state *st, walnotify_status *status)
{
    wn_append_opened opened;
    char err[512];
    /* A character device is taken (/dev/null discards); a FIFO, whose reader may never come,
     * and a block device are refused. */
    int rc = wn_appendfile_open(st->path, st->mode, WN_APPEND_LINES, WN_APPEND_DEVICES_TOO,
                                "jsonl file", &st->file, &opened, err, sizeof err);
    if (rc == EWOULDBLOCK || rc == EDEADLK) {
        *status = lock_status(st, rc, opened.holder);
        return false;
    }
    if (rc != 0) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR, "%s", err);
        return false;
    }
    st->fd = wn_appendfile_fd(st->file);
    st->appends = true;
    st->is_regular = opened.regular;
    st->file_end = opened.length;
    if (opened.cut > 0)
        st->host->log(st->host, WALNOTIFY_LOG_WARNING,
                      "%s ended in a torn line: cut %lld bytes, the file now holds %lld bytes of "
                      "whole lines",
                      st->path, (long long)opened.cut, (long long)opened.length);
    /* A new file's folder is synced at the first flush, before anything is acknowledged. */
    st->unsynced = opened.created || opened.cut > 0;
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
static bool open_stdout(jsonl_state *st, walnotify_status *status)
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
    if (!locked(st, status))
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
static bool read_mode(const walnotify_host *host, mode_t *out)
{
    const char *text = host->get_string(host, "mode");
    if (text == NULL) {
        *out = WN_FILES_MODE;
        return true;
    }
    char *end = NULL;
    errno = 0;
    unsigned long mode = strtoul(text, &end, 8);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || text[0] == '+' ||
        (mode & 0600) != 0600 || (mode & ~0664UL) != 0) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting mode = \"%.32s\" is not a file mode walnotify creates a file "
                  "with: give octal digits such as \"0600\" or \"0640\" (owner read and "
                  "write, no execute, not writable by others)",
                  text);
        return false;
    }
    *out = (mode_t)mode;
    return true;
}

/* The path setting: absent means standard output; empty is a mistake. */
static const char *read_path(const walnotify_host *host)
{
    const char *path = host->get_string(host, "path");
    if (path == NULL)
        return "-";
    if (path[0] == '\0') {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting path is empty (use \"-\" for standard output)");
        return NULL;
    }
    return path;
}

/* ---- callbacks ------------------------------------------------------------------------------- */

static void jsonl_shutdown(void *state)
{
    jsonl_state *st = state;
    if (st == NULL)
        return;
    if (st->file != NULL)
        wn_appendfile_close(st->file); /* also releases the lock */
    else if (st->is_stdout && st->is_regular)
        flock(st->fd, LOCK_UN); /* standard output stays open; the file is free for another */
    buffer_free(&st->buf);
    free(st->path);
    free(st);
}

/* The settings alone, before anything is opened: --check-config catches them too. */
static walnotify_status jsonl_check(const walnotify_host *host)
{
    mode_t mode;

    if (read_path(host) == NULL || !read_mode(host, &mode))
        return WALNOTIFY_FATAL;
    return WALNOTIFY_OK;
}

static walnotify_status jsonl_init(const walnotify_host *host, void **state)
{
    /* The lines are the host's canonical JSON: a host without its encoder cannot serve. */
    if (!WALNOTIFY_HAS(walnotify_host, host, encode_json) || host->encode_json == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "the host lends no encode_json (ABI %u.%u)",
                  (unsigned)host->abi_major, (unsigned)host->abi_minor);
        return WALNOTIFY_FATAL;
    }
    walnotify_status status = WALNOTIFY_FATAL; /* what a failure below answers */
    jsonl_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return WALNOTIFY_FATAL;
    }
    st->host = host;
    st->fd = -1;

    const char *path = read_path(host);
    if (path == NULL)
        goto fail;
    /* Messages name the file; standard output's name is what a reader understands. */
    st->path = strdup(strcmp(path, "-") == 0 ? "standard output" : path);
    if (st->path == NULL || !buffer_grow(&st->buf, JSONL_INITIAL_CAP)) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        goto fail;
    }
    st->fsync_enabled = host->get_boolean(host, "fsync");
    if (!read_mode(host, &st->mode))
        goto fail;

    if (strcmp(path, "-") == 0) {
        st->is_stdout = true;
        if (!open_stdout(st, &status))
            goto fail;
    } else if (!open_file(st, &status)) {
        goto fail;
    }
    *state = st;
    return WALNOTIFY_OK;

fail:
    /* Also on RETRY: the next init starts afresh, and the file is not held meanwhile. */
    jsonl_shutdown(st);
    return status == WALNOTIFY_OK ? WALNOTIFY_FATAL : status;
}

static walnotify_status jsonl_handle(void *state, const walnotify_event *ev)
{
    jsonl_state *st = state;
    size_t length = 0;
    const char *json = st->host->encode_json(st->host, ev, &length);
    if (json == NULL) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "cannot render the event at %" PRIX32 "/%" PRIX32 " seq %u (operation %d) on "
                      "%s: out of memory, or an operation the host cannot render",
                      (uint32_t)(ev->commit_lsn >> 32), (uint32_t)ev->commit_lsn, ev->seq,
                      (int)ev->op, ev->table != NULL ? ev->table : "no table");
        return WALNOTIFY_FATAL;
    }
    /* A huge line goes out straight from the host's text, after the lines before it, rather
     * than being copied once more. */
    if (length >= JSONL_WRITE_THRESHOLD) {
        walnotify_status status = write_buffer(st);
        return status != WALNOTIFY_OK ? status : write_lines(st, json, length, true);
    }
    if (!buffer_line(&st->buf, json, length)) {
        st->host->log(st->host, WALNOTIFY_LOG_ERROR,
                      "out of memory buffering a line of %zu bytes (event seq %u of transaction "
                      "%u on %s)",
                      length + 1, ev->seq, ev->xid, ev->table != NULL ? ev->table : "no table");
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
    if (st->file != NULL) {
        char err[512];
        if (wn_appendfile_sync(st->file, (walnotify_id){0, 0}, err, sizeof err) != 0) {
            st->host->log(st->host, WALNOTIFY_LOG_ERROR, "%s", err);
            return WALNOTIFY_FATAL;
        }
        st->unsynced = false;
        return WALNOTIFY_OK;
    }
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
    .check = jsonl_check,
    .handle = jsonl_handle,
    .shutdown = jsonl_shutdown,
    .begin = jsonl_begin,
    .commit = jsonl_commit,
    .abort = jsonl_abort,
    .flush = jsonl_flush,
    .ops = WALNOTIFY_OP_INSERT | WALNOTIFY_OP_UPDATE | WALNOTIFY_OP_DELETE | WALNOTIFY_OP_TRUNCATE |
           WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE,
};

const walnotify_plugin *walnotify_plugin_entry(void)
{
    return &jsonl_plugin;
}
