/*
 * settings: a plugin's declared settings checked (the declarations themselves, then the
 * configured values against them), and the validated values its instance reads.
 */
#include "settings.h"

#include "encoder.h"
#include "paths.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DECLARED_LIST_MAX 512 /* bytes of "path, fsync" in an unknown-setting message */

/* ---- messages -------------------------------------------------------------------------------- */

/* `plugin "NAME" (PATH): reason`: a refusal about the shared object itself. */
__attribute__((format(printf, 4, 5))) int
wn_refuse_plugin(char *err, size_t errlen, const wn_plugin_config *config, const char *format, ...)
{
    char reason[1024];
    va_list args;

    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    snprintf(err, errlen, "plugin \"%s\" (%s): %s", config->name, config->path, reason);
    return WN_LOAD_REFUSED;
}

/* `FILE:LINE: plugin "NAME": reason`: a refusal about the configuration. */
__attribute__((format(printf, 6, 7))) int wn_refuse_setting(char *err, size_t errlen,
                                                            const char *file, int line,
                                                            const wn_plugin_config *config,
                                                            const char *format, ...)
{
    char reason[1024];
    va_list args;

    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    snprintf(err, errlen, "%s:%d: plugin \"%s\": %s", file, line, config->name, reason);
    return WN_LOAD_BAD_SETTINGS;
}

/* What a declared setting type is called ("path"), and what a configured value of it must be,
 * for "must be ..." messages ("a string (a path)"); indexed by walnotify_setting_type. */
typedef struct type_words {
    const char *name;
    const char *phrase;
} type_words;

static const type_words setting_types[] = {
    [WALNOTIFY_SETTING_STRING] = {"string", "a string"},
    [WALNOTIFY_SETTING_INTEGER] = {"integer", "an integer"},
    [WALNOTIFY_SETTING_BOOLEAN] = {"boolean", "a boolean"},
    [WALNOTIFY_SETTING_LIST] = {"list", "a list of strings"},
    [WALNOTIFY_SETTING_PATH] = {"path", "a string (a path)"},
};

/* NULL for a type this host does not know (a plugin's bug, or a newer ABI's). */
static const type_words *words_of(walnotify_setting_type type)
{
    size_t index = (size_t)type; /* a negative value becomes too large */

    if (index >= sizeof setting_types / sizeof setting_types[0] ||
        setting_types[index].name == NULL)
        return NULL;
    return &setting_types[index];
}

const char *wn_settings_type_name(walnotify_setting_type type)
{
    const type_words *words = words_of(type);

    return words ? words->name : NULL;
}

static const char *type_phrase(walnotify_setting_type type)
{
    const type_words *words = words_of(type);

    return words ? words->phrase : "?";
}

/* ---- parsing declared defaults -----------------------------------------------------------------
 */

static bool parse_integer(const char *text, int64_t *value)
{
    char *end;
    long long parsed;

    if (text[0] == '\0' || (text[0] != '-' && text[0] != '+' && (text[0] < '0' || text[0] > '9')))
        return false;
    errno = 0;
    parsed = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *value = (int64_t)parsed;
    return true;
}

static bool parse_boolean(const char *text, bool *value)
{
    if (strcmp(text, "true") == 0) {
        *value = true;
        return true;
    }
    if (strcmp(text, "false") == 0) {
        *value = false;
        return true;
    }
    return false;
}

static void free_items(char **items, size_t nitems)
{
    for (size_t i = 0; i < nitems; i++)
        free(items[i]);
    free(items);
}

static char *copy_trimmed(const char *start, const char *end)
{
    while (start < end && (*start == ' ' || *start == '\t'))
        start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return strndup(start, (size_t)(end - start));
}

/* "a, b ,c" -> {"a","b","c"}; "" (or only blanks) -> no items. Returns false when out of memory. */
static bool parse_list(const char *text, char ***items, size_t *nitems)
{
    size_t count = 1;
    char **list;
    const char *start = text;

    *items = NULL;
    *nitems = 0;
    if (text[strspn(text, " \t")] == '\0')
        return true;
    for (const char *p = text; *p; p++)
        count += *p == ',';
    list = calloc(count, sizeof *list);
    if (!list)
        return false;
    for (size_t i = 0; i < count; i++) {
        const char *end = strchr(start, ',');

        if (!end)
            end = start + strlen(start);
        list[i] = copy_trimmed(start, end);
        if (!list[i]) {
            free_items(list, i);
            return false;
        }
        start = end + 1;
    }
    *items = list;
    *nitems = count;
    return true;
}

static char **copy_items(char *const *source, size_t nitems)
{
    char **items;

    if (nitems == 0)
        return NULL;
    items = calloc(nitems, sizeof *items);
    if (!items)
        return NULL;
    for (size_t i = 0; i < nitems; i++) {
        items[i] = strdup(source[i]);
        if (!items[i]) {
            free_items(items, i);
            return NULL;
        }
    }
    return items;
}

/* ---- the declarations -------------------------------------------------------------------------
 */

size_t wn_settings_count(const walnotify_setting *decls)
{
    size_t n = 0;

    if (!decls)
        return 0;
    while (decls[n].name)
        n++;
    return n;
}

/* A declaration the host cannot honour is the plugin's bug: refuse it before any configuration. */
int wn_settings_check_declarations(const walnotify_plugin *d, const wn_plugin_config *config,
                                   char *err, size_t errlen)
{
    size_t n = wn_settings_count(d->settings);

    for (size_t i = 0; i < n; i++) {
        const walnotify_setting *s = &d->settings[i];
        const char *text = s->default_value;
        int64_t integer;
        bool boolean;

        if (s->name[0] == '\0')
            return wn_refuse_plugin(err, errlen, config,
                                    "setting %zu is declared with an empty name", i + 1);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d->settings[j].name, s->name) == 0)
                return wn_refuse_plugin(err, errlen, config, "setting \"%s\" is declared twice",
                                        s->name);
        }
        if (!wn_settings_type_name(s->type))
            return wn_refuse_plugin(err, errlen, config,
                                    "setting \"%s\" is declared with unknown type %d", s->name,
                                    (int)s->type);
        if (!text)
            continue;
        if (s->type == WALNOTIFY_SETTING_INTEGER && !parse_integer(text, &integer))
            return wn_refuse_plugin(
                err, errlen, config,
                "setting \"%s\": default \"%s\" is not a decimal 64-bit integer", s->name, text);
        if (s->type == WALNOTIFY_SETTING_BOOLEAN && !parse_boolean(text, &boolean))
            return wn_refuse_plugin(err, errlen, config,
                                    "setting \"%s\": default \"%s\" is not \"true\" or \"false\"",
                                    s->name, text);
    }
    return 0;
}

/* ---- settings ---------------------------------------------------------------------------------
 */

void wn_settings_free(wn_plugin_settings *settings)
{
    if (!settings)
        return;
    for (size_t i = 0; i < settings->nvalues; i++) {
        free(settings->values[i].string);
        free_items(settings->values[i].items, settings->values[i].nitems);
    }
    free(settings->log_prefix);
    wn_encoder_destroy(settings->encoder);
    free(settings);
}

const setting_value *wn_settings_find(const wn_plugin_settings *settings, const char *name)
{
    if (!settings || !name)
        return NULL;
    for (size_t i = 0; i < settings->nvalues; i++) {
        if (strcmp(settings->values[i].decl->name, name) == 0)
            return &settings->values[i];
    }
    return NULL;
}

static const walnotify_setting *find_declaration(const walnotify_plugin *d, const char *name)
{
    size_t n = wn_settings_count(d->settings);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(d->settings[i].name, name) == 0)
            return &d->settings[i];
    }
    return NULL;
}

/* "path, fsync", cut short (with "...") when it does not fit. */
static void list_declarations(const walnotify_plugin *d, char *out, size_t outlen)
{
    size_t n = wn_settings_count(d->settings);
    size_t used = 0;

    out[0] = '\0';
    if (n == 0) {
        snprintf(out, outlen, "none");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "", d->settings[i].name);

        if (w < 0 || (size_t)w >= outlen - used) {
            if (outlen > 4)
                memcpy(out + outlen - 4, "...", 4);
            return;
        }
        used += (size_t)w;
    }
}

static bool kind_fits(walnotify_setting_type type, wn_setting_kind kind)
{
    switch (type) {
    case WALNOTIFY_SETTING_STRING:
    case WALNOTIFY_SETTING_PATH:
        return kind == WN_SETTING_STRING;
    case WALNOTIFY_SETTING_INTEGER:
        return kind == WN_SETTING_INTEGER;
    case WALNOTIFY_SETTING_BOOLEAN:
        return kind == WN_SETTING_BOOLEAN;
    case WALNOTIFY_SETTING_LIST:
        return kind == WN_SETTING_STRING_LIST;
    }
    return false;
}

/* Every configured setting must be declared, once, and of its declared kind. */
int wn_settings_check_configured(const wn_plugin *plugin, const wn_plugin_config *config,
                                 const char *file, char *err, size_t errlen)
{
    const walnotify_plugin *d = &plugin->descriptor;

    for (size_t i = 0; i < config->nsettings; i++) {
        const wn_setting_value *v = &config->settings[i];
        const walnotify_setting *decl = find_declaration(d, v->name);

        if (!decl) {
            char declared[DECLARED_LIST_MAX];

            list_declarations(d, declared, sizeof declared);
            return wn_refuse_setting(err, errlen, v->file ? v->file : file, v->line, config,
                                     "unknown setting \"%s\" (%s declares: %s)", v->name, d->name,
                                     declared);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(config->settings[j].name, v->name) == 0)
                return wn_refuse_setting(err, errlen, v->file ? v->file : file, v->line, config,
                                         "setting \"%s\" is given twice", v->name);
        }
        if (!kind_fits(decl->type, v->kind))
            return wn_refuse_setting(err, errlen, v->file ? v->file : file, v->line, config,
                                     "setting \"%s\" must be %s", v->name, type_phrase(decl->type));
    }
    return 0;
}

static const wn_setting_value *find_configured(const wn_plugin_config *config, const char *name)
{
    for (size_t i = 0; i < config->nsettings; i++) {
        if (strcmp(config->settings[i].name, name) == 0)
            return &config->settings[i];
    }
    return NULL;
}

/* Stores a configured value (already checked by check_configured). 0, or -1 when out of memory. */
static int fill_configured(setting_value *value, const wn_setting_value *v, const char *config_dir)
{
    switch (value->decl->type) {
    case WALNOTIFY_SETTING_STRING:
        value->string = strdup(v->string);
        break;
    case WALNOTIFY_SETTING_PATH:
        value->string = wn_paths_resolve(config_dir, v->string);
        break;
    case WALNOTIFY_SETTING_INTEGER:
        value->integer = v->integer;
        return 0;
    case WALNOTIFY_SETTING_BOOLEAN:
        value->boolean = v->boolean;
        return 0;
    case WALNOTIFY_SETTING_LIST:
        value->items = copy_items(v->items, v->nitems);
        value->nitems = value->items ? v->nitems : 0;
        return v->nitems > 0 && !value->items ? -1 : 0;
    }
    return value->string ? 0 : -1;
}

/* Stores a declared default (already checked by check_declarations). 0, or -1 out of memory. */
static int fill_default(setting_value *value, const char *config_dir)
{
    const char *text = value->decl->default_value;

    switch (value->decl->type) {
    case WALNOTIFY_SETTING_STRING:
        value->string = strdup(text);
        break;
    case WALNOTIFY_SETTING_PATH:
        value->string = wn_paths_resolve(config_dir, text);
        break;
    case WALNOTIFY_SETTING_INTEGER:
        return parse_integer(text, &value->integer) ? 0 : -1;
    case WALNOTIFY_SETTING_BOOLEAN:
        return parse_boolean(text, &value->boolean) ? 0 : -1;
    case WALNOTIFY_SETTING_LIST:
        return parse_list(text, &value->items, &value->nitems) ? 0 : -1;
    }
    return value->string ? 0 : -1;
}

int wn_settings_build(wn_plugin *plugin, const wn_plugin_config *config, const char *file,
                      const char *config_dir, char *err, size_t errlen)
{
    const walnotify_plugin *d = &plugin->descriptor;
    size_t n = wn_settings_count(d->settings);
    wn_plugin_settings *settings;

    settings = calloc(1, sizeof *settings + n * sizeof settings->values[0]);
    if (!settings)
        return wn_refuse_plugin(err, errlen, config, "out of memory");
    plugin->settings = settings;
    if (asprintf(&settings->log_prefix, "plugin \"%s\": ", config->name) < 0) {
        settings->log_prefix = NULL;
        return wn_refuse_plugin(err, errlen, config, "out of memory");
    }
    settings->nvalues = n;
    for (size_t i = 0; i < n; i++) {
        setting_value *value = &settings->values[i];
        const wn_setting_value *v = find_configured(config, d->settings[i].name);

        value->decl = &d->settings[i];
        if (!v && !value->decl->default_value)
            return wn_refuse_setting(err, errlen, config->file ? config->file : file, config->line,
                                     config, "setting \"%s\" is required", value->decl->name);
        if ((v ? fill_configured(value, v, config_dir) : fill_default(value, config_dir)) != 0)
            return wn_refuse_plugin(err, errlen, config, "out of memory");
        value->has_value = true;
    }
    return 0;
}
