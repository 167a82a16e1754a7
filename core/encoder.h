/*
 * encoder: the one JSON encoder of the tree. An event becomes its canonical JSON line (the jsonl
 * plugin's line, without the newline), or its key columns as a JSON object. The jsonl plugin
 * (through walnotify_host.encode_json) and the dead-letter writer use it.
 */
#ifndef WN_ENCODER_H
#define WN_ENCODER_H

#include <stddef.h>

#include <walnotify/plugin.h>

typedef struct wn_encoder wn_encoder; /* a reusable output buffer and its caches */

/* NULL when out of memory. */
wn_encoder *wn_encoder_create(void);
void wn_encoder_destroy(wn_encoder *encoder);

/*
 * The event's canonical JSON, NUL-terminated, *length (when not NULL) its bytes. The text lives
 * in the encoder until its next call. NULL when out of memory (or an operation it does not know).
 * Keys come in this order (README, "The jsonl plugin"):
 *
 *   change    {"lsn","seq","xid","commit_time","table","op","values","unchanged","old","options"}
 *             (values and unchanged for insert and update, old when the server sent one,
 *             options for truncate)
 *   message   {"lsn","ordinal"[,"xid","commit_time"],"op":"message","transactional","prefix",
 *             "content" | "content_hex"}: xid and commit_time only when transactional;
 *             content_hex (lower-case) unless the content is UTF-8 without NUL
 *   snapshot  {"snapshot","ordinal","table","op":"snapshot","values"} for a row,
 *             {"snapshot","ordinal","op":"snapshot","marker":"begin"} and
 *             {"snapshot","ordinal","op":"snapshot","marker":"end","rows"}; snapshot is the
 *             consistent point (event->commit_lsn)
 */
const char *wn_encoder_event(wn_encoder *encoder, const walnotify_event *event, size_t *length);

/*
 * The event's key columns as a JSON object: table->key_columns when table is not NULL (matched
 * to the event's columns by name), else the columns marked is_key. NULL when the event has no
 * key (see walnotify_host.encode_key) or when out of memory.
 */
const char *wn_encoder_key(wn_encoder *encoder, const walnotify_event *event,
                           const walnotify_table *table, size_t *length);

#endif
