/*
 * writers: every file the configuration names for writing, compared pair by pair by name and by
 * what the system says the file is.
 */
#include "writers.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "files.h"
#include "log.h"
#include "paths.h"

#define ERR_MAX 1024

/*
 * The settings through which the shipped plugins name a file they write, by the plugin's own
 * name (its descriptor's). Until the ABI lends plugins a file service through which walnotify
 * learns every file a plugin writes, this list is how it knows them.
 */
static const struct {
    const char *plugin;
    const char *setting;
} known_outputs[] = {
    {"jsonl", "path"},
};

static bool is_known_output(const char *plugin, const char *setting)
{
    for (size_t i = 0; i < sizeof known_outputs / sizeof known_outputs[0]; i++) {
        if (plugin != NULL && strcmp(known_outputs[i].plugin, plugin) == 0 &&
            strcmp(known_outputs[i].setting, setting) == 0)
            return true;
    }
    return false;
}

/* ---- collecting -------------------------------------------------------------------------- */

static wn_writer *add(wn_writer *writers, size_t *n, size_t max, const char *path, const char *file,
                      int line, wn_writer_kind kind)
{
    wn_writer *w;

    if (*n >= max)
        return NULL;
    w = &writers[(*n)++];
    memset(w, 0, sizeof *w);
    w->path = path;
    w->file = file;
    w->line = line;
    w->kind = kind;
    return w;
}

/* Where a plugin setting is written, or the block's line when it is the plugin's default. */
static void setting_place(const wn_plugin_config *block, const char *name, const char *config_file,
                          wn_writer *w)
{
    for (size_t i = 0; i < block->nsettings; i++) {
        if (strcmp(block->settings[i].name, name) == 0) {
            w->file = block->settings[i].file != NULL ? block->settings[i].file : config_file;
            w->line = block->settings[i].line;
            return;
        }
    }
    w->file = block->file != NULL ? block->file : config_file;
    w->line = block->line;
    w->by_default = true;
}

/* Every path setting of one loaded plugin but "-". Returns false when writers is full. */
static bool collect_plugin(const wn_plugin *plugin, const char *config_file, wn_writer *writers,
                           size_t *n, size_t max)
{
    const walnotify_setting *decl = plugin->descriptor.settings;

    for (; decl != NULL && decl->name != NULL; decl++) {
        const char *path;
        wn_writer *w;

        if (decl->type != WALNOTIFY_SETTING_PATH)
            continue;
        path = plugin->host.get_string(&plugin->host, decl->name);
        if (path == NULL || path[0] == '\0' || strcmp(path, "-") == 0)
            continue;
        w = add(writers, n, max, path, NULL, 0,
                is_known_output(plugin->descriptor.name, decl->name) ? WN_WRITER_PLUGIN
                                                                     : WN_WRITER_OTHER);
        if (w == NULL)
            return false;
        setting_place(plugin->config, decl->name, config_file, w);
        snprintf(w->what, sizeof w->what, "plugin \"%s\": settings.%s", plugin->config->name,
                 decl->name);
    }
    return true;
}

int wn_writers_collect(const wn_config *config, const wn_plugin *plugins, size_t nplugins,
                       wn_writer *writers, size_t max)
{
    const wn_source_config *source = &config->source;
    size_t n = 0;
    wn_writer *w;

    if (source->state_file != NULL) {
        w = add(writers, &n, max, source->state_file,
                source->state_file_in != NULL ? source->state_file_in : config->file,
                source->state_file_line, WN_WRITER_HOST);
        if (w == NULL)
            return -1;
        w->is_state = true;
        snprintf(w->what, sizeof w->what, "source.state_file");
    }
    for (size_t i = 0; i < config->nplugins; i++) {
        const wn_plugin_config *block = &config->plugins[i];

        if (block->dead_letter == NULL)
            continue;
        w = add(writers, &n, max, block->dead_letter,
                block->file != NULL ? block->file : config->file, block->dead_letter_line,
                WN_WRITER_HOST);
        if (w == NULL)
            return -1;
        snprintf(w->what, sizeof w->what, "plugin \"%s\": dead_letter", block->name);
    }
    for (size_t i = 0; i < nplugins; i++) {
        if (!collect_plugin(&plugins[i], config->file, writers, &n, max))
            return -1;
    }
    return (int)n;
}

/* ---- comparing -------------------------------------------------------------------------- */

/* What a pair may share: only two plugin settings of which neither is known to be written. */
static bool may_share(const wn_writer *a, const wn_writer *b)
{
    if (a->kind == WN_WRITER_HOST || b->kind == WN_WRITER_HOST)
        return false;
    return a->kind == WN_WRITER_OTHER || b->kind == WN_WRITER_OTHER;
}

/* The folder part of path into out ("." without a slash). */
static void folder_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        snprintf(out, size, ".");
    else if (slash == path)
        snprintf(out, size, "/");
    else
        snprintf(out, size, "%.*s", (int)(slash - path), path);
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash != NULL ? slash + 1 : path;
}

/* Two folders are one: by name, or by device and inode. */
static bool same_folder(const char *a, const char *b)
{
    char fa[PATH_MAX], fb[PATH_MAX];
    wn_file_id ia, ib;

    folder_of(a, fa, sizeof fa);
    folder_of(b, fb, sizeof fb);
    if (wn_paths_same(fa, fb) > 0)
        return true;
    return wn_files_identity(fa, &ia) == 0 && wn_files_identity(fb, &ib) == 0 &&
           wn_files_same_identity(&ia, &ib);
}

/* b is named as a temporary file of the state file a is. */
static bool is_state_temp(const wn_writer *a, const wn_writer *b)
{
    return a->is_state && wn_files_is_temp_name(base_of(b->path), base_of(a->path)) &&
           same_folder(a->path, b->path);
}

/* "FILE:LINE: WHAT names PATH" (with "(its default)" for a default), the start of a message. */
static int lead(char *err, size_t errlen, const wn_writer *w)
{
    return snprintf(err, errlen, "%s:%d: %s%s names %s", w->file, w->line, w->what,
                    w->by_default ? " (its default)" : "", w->path);
}

/* One line about the pair a (earlier) and b (later), at b's line; false when they may be. */
static bool judge(const wn_writer *a, const wn_writer *b, char *err, size_t errlen)
{
    wn_file_id ia, ib;
    bool by_name, by_system;
    int used;

    if (is_state_temp(a, b) || is_state_temp(b, a)) {
        const wn_writer *state = a->is_state ? a : b;

        used = lead(err, errlen, b);
        if (used < 0 || (size_t)used >= errlen)
            return true;
        snprintf(err + used, errlen - (size_t)used,
                 ", a name %s (%s:%d) gives its temporary files, which walnotify creates and "
                 "removes: no two writers may share a file",
                 state->what, state->file, state->line);
        return true;
    }
    if (may_share(a, b))
        return false;
    by_name = wn_paths_same(a->path, b->path) > 0;
    by_system = !by_name && wn_files_identity(a->path, &ia) == 0 &&
                wn_files_identity(b->path, &ib) == 0 && wn_files_same_identity(&ia, &ib);
    if (!by_name && !by_system)
        return false;
    used = lead(err, errlen, b);
    if (used < 0 || (size_t)used >= errlen)
        return true;
    if (by_name)
        snprintf(err + used, errlen - (size_t)used,
                 ", the file of %s (%s:%d): no two writers may share a file", a->what, a->file,
                 a->line);
    else
        snprintf(err + used, errlen - (size_t)used,
                 ", the same file as %s of %s (%s:%d), through a link or a hard link: no two "
                 "writers may share a file",
                 a->path, a->what, a->file, a->line);
    return true;
}

int wn_writers_check(const wn_writer *writers, size_t n, char *err, size_t errlen)
{
    for (size_t j = 1; j < n; j++) {
        for (size_t i = 0; i < j; i++) {
            if (judge(&writers[i], &writers[j], err, errlen))
                return -1;
        }
    }
    return 0;
}

int wn_writers_refuse_shared(const wn_config *config, const wn_plugin *plugins, size_t nplugins)
{
    char err[ERR_MAX];
    size_t max = 1 + config->nplugins;
    wn_writer *writers;
    int n, rc;

    for (size_t i = 0; i < nplugins; i++) {
        for (const walnotify_setting *d = plugins[i].descriptor.settings; d && d->name; d++)
            max++;
    }
    writers = calloc(max, sizeof *writers);
    if (writers == NULL)
        return wn_die(WN_EXIT_INTERNAL, "out of memory comparing the files written");
    n = wn_writers_collect(config, plugins, nplugins, writers, max);
    rc = n < 0 ? 0 : wn_writers_check(writers, (size_t)n, err, sizeof err);
    free(writers);
    if (n < 0)
        return wn_die(WN_EXIT_INTERNAL, "more files than counted comparing the files written");
    return rc == 0 ? 0 : wn_die(WN_EXIT_CONFIG, "%s", err);
}
