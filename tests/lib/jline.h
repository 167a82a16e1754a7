/*
 * jline: a small, strict JSON reader for the lines walnotify's jsonl plugin writes.
 * Objects keep their keys in the order written; strings are unescaped to UTF-8.
 */
#ifndef WN_TEST_JLINE_H
#define WN_TEST_JLINE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum jl_kind { JL_NULL, JL_BOOL, JL_NUMBER, JL_STRING, JL_ARRAY, JL_OBJECT } jl_kind;

typedef struct jl_value jl_value;
struct jl_value {
    jl_kind kind;
    char *text;       /* STRING: unescaped bytes, NUL-terminated; NUMBER: as written; BOOL */
    size_t length;    /* bytes of text, excluding the NUL */
    char **keys;      /* OBJECT: count keys, in the order written */
    jl_value **items; /* OBJECT: the value of each key; ARRAY: the elements */
    size_t count;
};

/*
 * Parses exactly one JSON value from text[0..length) (surrounding white space allowed).
 * Rejects raw control characters inside strings, invalid UTF-8, lone surrogates and trailing
 * bytes. Returns the value (free with jl_free), or NULL with a message in err.
 */
jl_value *jl_parse(const char *text, size_t length, char *err, size_t errlen);
void jl_free(jl_value *value);

/* The member named key of an object, or NULL (also when value is not an object). */
const jl_value *jl_get(const jl_value *value, const char *key);

#endif
