/*
 * deadletter: skipped events as JSON lines, rendered by the host's encoder (core/encoder.c).
 */
#include "deadletter.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encoder.h"
#include "files.h"
#include "jsonbuf.h"
#include "log.h"

/* A line longer than this is refused: it would be a broken event, not a row. */
#define LINE_MAX_BYTES ((size_t)1 << 30)
/* The most the line buffer keeps between skips. */
#define LINE_KEEP_BYTES ((size_t)8 * 1024 * 1024)

struct wn_deadletter {
    char *path; /* as given, owned */
    int fd;
    bool unsynced;       /* appended since the last fsync */
    bool folder_synced;  /* the folder's entry for the file is durable */
    wn_encoder *encoder; /* renders the event; owned */
    jsonbuf line;        /* the line being built, reused */
};

/* ---- the line ------------------------------------------------------------------------------ */

/*
 * The event's canonical JSON with `,"plugin":"P","error":"E"` spliced in before its closing
 * brace, and a newline: the jsonl plugin's line plus two keys, from the one encoder of the tree.
 */
static bool format_line(wn_deadletter *f, const char *plugin, const walnotify_event *ev,
                        const char *error)
{
    size_t length = 0;
    const char *json = wn_encoder_event(f->encoder, ev, &length);

    f->line.len = 0;
    f->line.failed = false;
    if (json == NULL || length == 0 || json[length - 1] != '}' || length > LINE_MAX_BYTES)
        return false;
    /* A huge line must not pin its memory until the next skip. */
    if (f->line.cap > LINE_KEEP_BYTES)
        jsonbuf_free(&f->line);
    jsonbuf_put(&f->line, json, length - 1);
    jsonbuf_puts(&f->line, ",\"plugin\":");
    jsonbuf_string(&f->line, plugin != NULL ? plugin : "", plugin != NULL ? strlen(plugin) : 0);
    jsonbuf_puts(&f->line, ",\"error\":");
    jsonbuf_string(&f->line, error != NULL ? error : "", error != NULL ? strlen(error) : 0);
    jsonbuf_put(&f->line, "}\n", 2);
    return !f->line.failed;
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

    if (f == NULL || (f->path = strdup(path)) == NULL ||
        (f->encoder = wn_encoder_create()) == NULL) {
        snprintf(err, errlen, "dead-letter file %s: out of memory", path);
        goto free_file;
    }
    f->fd = wn_files_open_append(path, WN_FILES_MODE, WN_FILES_REGULAR_ONLY, &created);
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
    if (f != NULL) {
        free(f->path);
        wn_encoder_destroy(f->encoder);
    }
    free(f);
    return NULL;
}

int wn_deadletter_append(wn_deadletter *f, const char *plugin, const walnotify_event *event,
                         const char *error, char *err, size_t errlen)
{
    off_t before;
    int rc;

    if (!format_line(f, plugin, event, error)) {
        snprintf(err, errlen,
                 "dead-letter file %s: cannot render the event at %" PRIX32 "/%" PRIX32
                 " seq %" PRIu32 " (operation %d): out of memory, too long, or an operation "
                 "without a line",
                 f->path, (uint32_t)(event->commit_lsn >> 32), (uint32_t)event->commit_lsn,
                 event->seq, (int)event->op);
        return -1;
    }
    before = lseek(f->fd, 0, SEEK_END);
    if (before < 0) {
        snprintf(err, errlen, "dead-letter file %s: %s", f->path, strerror(errno));
        return -1;
    }
    rc = wn_files_write_all(f->fd, f->line.data, f->line.len);
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
    jsonbuf_free(&f->line);
    wn_encoder_destroy(f->encoder);
    free(f->path);
    free(f);
}
