/* template: "${name}" replaced by its value; nothing else is special. */
#include "template.h"

#include <stdio.h>
#include <string.h>

static bool known(const char *name, size_t len, const char *const *names)
{
    for (size_t i = 0; names[i] != NULL; i++)
        if (strlen(names[i]) == len && strncmp(names[i], name, len) == 0)
            return true;
    return false;
}

bool template_check(const char *text, const char *const *names, char *why, size_t whylen)
{
    const char *p = text;

    if (text == NULL || text[0] == '\0') {
        snprintf(why, whylen, "is empty");
        return false;
    }
    while ((p = strstr(p, "${")) != NULL) {
        const char *end = strchr(p + 2, '}');
        if (end == NULL) {
            snprintf(why, whylen, "has \"${\" without \"}\" at byte %zu", (size_t)(p - text) + 1);
            return false;
        }
        if (!known(p + 2, (size_t)(end - p - 2), names)) {
            snprintf(why, whylen, "names ${%.*s}, which is not one of its variables",
                     (int)(end - p - 2), p + 2);
            return false;
        }
        p = end + 1;
    }
    return true;
}

static const char *value_of(const char *name, size_t len, const template_var *vars, size_t nvars)
{
    for (size_t i = 0; i < nvars; i++)
        if (strlen(vars[i].name) == len && strncmp(vars[i].name, name, len) == 0)
            return vars[i].value != NULL ? vars[i].value : "";
    return "";
}

static bool put(char *out, size_t outlen, size_t *used, const char *text, size_t len)
{
    if (*used + len >= outlen)
        return false;
    memcpy(out + *used, text, len);
    *used += len;
    return true;
}

bool template_expand(const char *text, const template_var *vars, size_t nvars, char *out,
                     size_t outlen)
{
    size_t used = 0;
    const char *p = text, *var;

    while ((var = strstr(p, "${")) != NULL) {
        const char *end = strchr(var + 2, '}');
        const char *value = value_of(var + 2, (size_t)(end - var - 2), vars, nvars);
        if (!put(out, outlen, &used, p, (size_t)(var - p)) ||
            !put(out, outlen, &used, value, strlen(value)))
            return false;
        p = end + 1;
    }
    if (!put(out, outlen, &used, p, strlen(p)))
        return false;
    out[used] = '\0';
    return true;
}
