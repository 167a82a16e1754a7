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

#include "appendfile.h"
#include "encoder.h"
#include "files.h"
#include "jsonbuf.h"
#include "log.h"

/* A line longer than this is refused: it would be a broken event, not a row. */
#define LINE_MAX_BYTES ((size_t)1 << 30)
/* The most the line buffer keeps between skips. */
#define LINE_KEEP_BYTES ((size_t)8 * 1024 * 1024)

struct wn_deadletter {
    char *path;          /* as given, owned */
    wn_appendfile *file; /* lines, cut at the last newline */
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

wn_deadletter *wn_deadletter_open(const char *path, char *err, size_t errlen)
{
    wn_deadletter *f = calloc(1, sizeof *f);
    wn_append_opened opened;

    if (f == NULL || (f->path = strdup(path)) == NULL ||
        (f->encoder = wn_encoder_create()) == NULL) {
        snprintf(err, errlen, "dead-letter file %s: out of memory", path);
        goto free_file;
    }
    /* Lines that never hold a raw newline: a torn last line (its event was not acknowledged) is
     * cut at the last newline. */
    if (wn_appendfile_open(path, WN_FILES_MODE, WN_APPEND_LINES, WN_APPEND_UNLOCKED,
                           "dead-letter file", &f->file, &opened, err, errlen) != 0)
        goto free_file;
    if (opened.cut > 0)
        wn_log(WN_LOG_WARNING, "dead-letter file %s ended in a torn line: cut %lld bytes", path,
               (long long)opened.cut);
    return f;

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
    if (!format_line(f, plugin, event, error)) {
        snprintf(err, errlen,
                 "dead-letter file %s: cannot render the event at %" PRIX32 "/%" PRIX32
                 " seq %" PRIu32 " (operation %d): out of memory, too long, or an operation "
                 "without a line",
                 f->path, (uint32_t)(event->commit_lsn >> 32), (uint32_t)event->commit_lsn,
                 event->seq, (int)event->op);
        return -1;
    }
    return wn_appendfile_append(f->file, f->line.data, f->line.len, err, errlen) == 0 ? 0 : -1;
}

int wn_deadletter_sync(wn_deadletter *f, char *err, size_t errlen)
{
    walnotify_id none = {0, 0};

    return wn_appendfile_sync(f->file, none, err, errlen) == 0 ? 0 : -1;
}

const char *wn_deadletter_path(const wn_deadletter *f)
{
    return f->path;
}

void wn_deadletter_close(wn_deadletter *f)
{
    if (f == NULL)
        return;
    wn_appendfile_close(f->file);
    jsonbuf_free(&f->line);
    wn_encoder_destroy(f->encoder);
    free(f->path);
    free(f);
}
