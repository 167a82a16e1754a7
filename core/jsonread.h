/*
 * jsonread: one JSON text (a line walnotify wrote) read into a small tree, in place. Strings are
 * decoded over the text they came from (escapes, \u sequences and surrogate pairs to UTF-8), so
 * the tree borrows the caller's buffer and holds no copies.
 */
#ifndef WN_JSONREAD_H
#define WN_JSONREAD_H

#include <stdbool.h>
#include <stddef.h>

typedef enum wn_json_kind {
    WN_JSON_NULL,
    WN_JSON_FALSE,
    WN_JSON_TRUE,
    WN_JSON_NUMBER, /* text: the number as written */
    WN_JSON_STRING, /* text: decoded, NUL-terminated (a \u0000 is refused) */
    WN_JSON_OBJECT,
    WN_JSON_ARRAY
} wn_json_kind;

typedef struct wn_json {
    wn_json_kind kind;
    const char *key;  /* the member's name inside an object; NULL otherwise */
    const char *text; /* NUMBER and STRING; points into the buffer */
    size_t length;    /* bytes of text, excluding the NUL */
    int first;        /* OBJECT and ARRAY: index of the first member, -1 when empty */
    int next;         /* index of the next member of the same parent, -1 after the last */
} wn_json;

/* The most nodes one text may hold: a row of 1,600 columns with its old row, and room. */
#define WN_JSON_NODES_MAX 4096

typedef struct wn_json_doc {
    wn_json nodes[WN_JSON_NODES_MAX]; /* nodes[0] is the root */
    int count;
} wn_json_doc;

/*
 * Parses the NUL-terminated text (changed in place: strings are decoded over it). Returns 0, or
 * -1 with one line in err naming the byte where the text goes wrong.
 */
int wn_json_parse(char *text, wn_json_doc *doc, char *err, size_t errlen);

/* The member `key` of the object at index `object`, or NULL. */
const wn_json *wn_json_member(const wn_json_doc *doc, int object, const char *key);

/* The node after `node` in its parent (NULL after the last); the first child of a container is
 * wn_json_first. */
const wn_json *wn_json_first(const wn_json_doc *doc, const wn_json *container);
const wn_json *wn_json_next(const wn_json_doc *doc, const wn_json *node);

#endif
