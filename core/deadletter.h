/*
 * deadletter: the file where a plugin's skipped events go, one JSON object per line.
 *
 * A line holds the event's canonical JSON, the line the jsonl plugin writes (core/encoder.h),
 * then "plugin" (the instance name) and "error" (why it was skipped). The JSON is valid UTF-8:
 * control characters are escaped and bytes that are not UTF-8 become \ufffd. The file only
 * ever holds whole lines, also after a crash: a torn last line left by one is cut when the file
 * is opened (its event was never acknowledged, so it comes again).
 */
#ifndef WN_DEADLETTER_H
#define WN_DEADLETTER_H

#include <stddef.h>

#include <walnotify/plugin.h>

typedef struct wn_deadletter wn_deadletter;

/*
 * Opens path for appending (created with mode 0600 when missing: it holds rows) and cuts a torn
 * last line. A symbolic link at path is refused, not followed. Returns the file, or NULL with one
 * line in err naming the path and the reason.
 */
wn_deadletter *wn_deadletter_open(const char *path, char *err, size_t errlen);

/*
 * Appends the line of one skipped event: `plugin` is the instance name, `error` the reason
 * ("handle returned FATAL"). The line is written with one write(2); it is durable only after
 * wn_deadletter_sync. Returns 0, or -1 with one line in err (the file then still holds whole
 * lines only, as far as the system allows).
 */
int wn_deadletter_append(wn_deadletter *file, const char *plugin, const walnotify_event *event,
                         const char *error, char *err, size_t errlen);

/* fsyncs what was appended since the last sync (and, the first time, the file's folder). Returns
 * 0 (also when there was nothing to do), or -1 with one line in err. */
int wn_deadletter_sync(wn_deadletter *file, char *err, size_t errlen);

/* The path as given to wn_deadletter_open, for messages. */
const char *wn_deadletter_path(const wn_deadletter *file);

/* Closes the file (without syncing) and frees it. NULL is allowed. */
void wn_deadletter_close(wn_deadletter *file);

#endif
