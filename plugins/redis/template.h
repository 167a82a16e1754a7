/*
 * template: the stream names, "walnotify:${schema}.${table}" and the like, checked once and
 * expanded per event into a bounded buffer.
 */
#ifndef REDIS_TEMPLATE_H
#define REDIS_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#define REDIS_STREAM_MAX 1024 /* bytes of an expanded stream name, NUL included */

/* One variable and its value: {"schema", "public"}. */
typedef struct template_var {
    const char *name;
    const char *value;
} template_var;

/*
 * Whether text is a valid template over the variables names (ended by NULL): every "${" closed
 * by "}" around a known name, and text not empty. On failure one line in why.
 */
bool template_check(const char *text, const char *const *names, char *why, size_t whylen);

/* Expands a checked template; false when the result would not fit in outlen bytes. */
bool template_expand(const char *text, const template_var *vars, size_t nvars, char *out,
                     size_t outlen);

#endif
