/*
 * services: the host table (walnotify_host) lent to each plugin instance: its settings' getters,
 * the log, and what the host tells it about the stream.
 */
#include "services.h"

#include "appendfile.h"
#include "encoder.h"
#include "files.h"
#include "log.h"
#include "settings.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PLUGIN_LINE_MAX 4096 /* bytes of a plugin's log line; the log cuts longer ones anyway */

/* ---- the host table ---------------------------------------------------------------------------
 */

static const setting_value *host_value(const walnotify_host *host, const char *name,
                                       walnotify_setting_type type)
{
    const setting_value *value;

    if (!host)
        return NULL;
    value = wn_settings_find(host->host_private, name);
    if (!value || !value->has_value)
        return NULL;
    if (value->decl->type == type)
        return value;
    /* A path is a string too. */
    if (type == WALNOTIFY_SETTING_STRING && value->decl->type == WALNOTIFY_SETTING_PATH)
        return value;
    return NULL;
}

static const char *host_get_string(const walnotify_host *host, const char *name)
{
    const setting_value *value = host_value(host, name, WALNOTIFY_SETTING_STRING);

    return value ? value->string : NULL;
}

static int64_t host_get_integer(const walnotify_host *host, const char *name)
{
    const setting_value *value = host_value(host, name, WALNOTIFY_SETTING_INTEGER);

    return value ? value->integer : 0;
}

static bool host_get_boolean(const walnotify_host *host, const char *name)
{
    const setting_value *value = host_value(host, name, WALNOTIFY_SETTING_BOOLEAN);

    return value ? value->boolean : false;
}

static size_t host_get_list_length(const walnotify_host *host, const char *name)
{
    const setting_value *value = host_value(host, name, WALNOTIFY_SETTING_LIST);

    return value ? value->nitems : 0;
}

static const char *host_get_list_item(const walnotify_host *host, const char *name, size_t index)
{
    const setting_value *value = host_value(host, name, WALNOTIFY_SETTING_LIST);

    return value && index < value->nitems ? value->items[index] : NULL;
}

static wn_log_level host_level(walnotify_log_level level)
{
    switch (level) {
    case WALNOTIFY_LOG_DEBUG:
        return WN_LOG_DEBUG;
    case WALNOTIFY_LOG_INFO:
        return WN_LOG_INFO;
    case WALNOTIFY_LOG_WARNING:
        return WN_LOG_WARNING;
    case WALNOTIFY_LOG_ERROR:
        return WN_LOG_ERROR;
    }
    /* A level from a newer ABI: better loud than lost. */
    return WN_LOG_ERROR;
}

/* FNV-1a: tells one log line from the next; a collision only changes a line's level. */
static uint64_t line_hash(const char *line)
{
    uint64_t hash = UINT64_C(14695981039346656037);

    for (const unsigned char *p = (const unsigned char *)line; *p; p++)
        hash = (hash ^ *p) * UINT64_C(1099511628211);
    return hash ? hash : 1;
}

__attribute__((format(printf, 3, 4))) static void
log_prefixed(wn_log_level level, const char *prefix, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    wn_logv(level, prefix, format, args);
    va_end(args);
}

__attribute__((format(printf, 3, 4))) static void
host_log(const walnotify_host *host, walnotify_log_level level, const char *format, ...)
{
    wn_plugin_settings *settings = host ? host->host_private : NULL;
    const char *prefix = settings ? settings->log_prefix : "plugin: ";
    wn_log_level wn_level = host_level(level);
    char line[PLUGIN_LINE_MAX];
    va_list args;
    uint64_t hash;

    if (!format)
        return;
    va_start(args, format);
    vsnprintf(line, sizeof line, format, args);
    va_end(args);
    /* A refusal from check is one configuration error, said in one line with the block's file
     * and line (wn_plugin_check): what check logs at ERROR is its reason. */
    if (settings && settings->checking && level >= WALNOTIFY_LOG_ERROR) {
        size_t used = strlen(settings->check_said);

        snprintf(settings->check_said + used, sizeof settings->check_said - used, "%s%s",
                 used > 0 ? "; " : "", line);
        return;
    }
    hash = line_hash(line);
    if (settings && atomic_exchange(&settings->last_line, hash) == hash &&
        atomic_load(&settings->init_again))
        wn_level = WN_LOG_DEBUG;
    log_prefixed(wn_level, prefix, "%s", line);
}

/* The instance's context when a 1.1 service may answer: not during check (zero values there). */
static const wn_plugin_settings *serving(const walnotify_host *host)
{
    const wn_plugin_settings *settings = host ? host->host_private : NULL;

    return settings && !settings->checking ? settings : NULL;
}

static const walnotify_source *host_source(const walnotify_host *host)
{
    const wn_plugin_settings *settings = serving(host);

    return settings ? settings->source : NULL;
}

/* The instance's tables: during check, those its block names (a plugin built for 1.2 or later
 * only; the catalog is not read there); after, as the catalog described them. */
static size_t host_table_count(const walnotify_host *host)
{
    const wn_plugin_settings *settings = host ? host->host_private : NULL;

    if (settings == NULL)
        return 0;
    return settings->checking ? settings->ncheck_tables : settings->ntables;
}

static const walnotify_table *host_table(const walnotify_host *host, size_t index)
{
    const wn_plugin_settings *settings = host ? host->host_private : NULL;

    if (settings == NULL || index >= host_table_count(host))
        return NULL;
    return settings->checking ? &settings->check_tables[index] : &settings->tables[index];
}

static uint64_t host_resume_position(const walnotify_host *host)
{
    const wn_plugin_settings *settings = serving(host);

    return settings ? settings->resume : 0;
}

static uint64_t host_flush_position(const walnotify_host *host)
{
    const wn_plugin_settings *settings = serving(host);

    return settings ? settings->flush_position : 0;
}

static void host_set_flush_always(const walnotify_host *host, bool always)
{
    wn_plugin_settings *settings = host ? host->host_private : NULL;

    /* The host table is const for the plugin; its private part is the host's to change. */
    if (settings && !settings->checking)
        settings->flush_always = always;
}

/* ---- rewind and failure naming (ABI 1.1) --------------------------------------------------- */

/* The host table an instance receives is always the `host` member of its own wn_plugin, so the
 * instance's requests are found from it without any global. */
static wn_plugin *host_plugin(const walnotify_host *host)
{
    return (wn_plugin *)(void *)((char *)(uintptr_t)host - offsetof(wn_plugin, host));
}

static walnotify_status host_fail_events(const walnotify_host *host, walnotify_id first,
                                         walnotify_id last, walnotify_failure failure,
                                         const char *reason)
{
    wn_plugin *plugin;

    if (!host)
        return WALNOTIFY_FATAL;
    plugin = host_plugin(host);
    return wn_requests_fail(&plugin->requests, host->instance_name, first, last, failure, reason);
}

static walnotify_status host_rewind(const walnotify_host *host, const char *reason)
{
    if (!host)
        return WALNOTIFY_FATAL;
    return wn_requests_rewind(&host_plugin(host)->requests, host->instance_name, reason);
}

/* The instance's own table of that name, for the key columns the catalog gives. */
static const walnotify_table *find_table(const wn_plugin_settings *settings,
                                         const walnotify_event *event)
{
    if (event->table == NULL)
        return NULL;
    for (size_t i = 0; i < settings->ntables; i++) {
        if (strcmp(settings->tables[i].table, event->table) == 0)
            return &settings->tables[i];
    }
    return NULL;
}

static const char *host_encode_json(const walnotify_host *host, const walnotify_event *event,
                                    size_t *length)
{
    const wn_plugin_settings *settings = serving(host);

    return settings ? wn_encoder_event(settings->encoder, event, length) : NULL;
}

static const char *host_encode_key(const walnotify_host *host, const walnotify_event *event,
                                   size_t *length)
{
    const wn_plugin_settings *settings = serving(host);

    /* With the catalog's table the key is its key columns (the primary key under REPLICA
     * IDENTITY FULL, where the server marks every column as key); without it, the columns the
     * server marks. */
    return settings ? wn_encoder_key(settings->encoder, event, find_table(settings, event), length)
                    : NULL;
}

/* ---- durable append files (ABI 1.2) -------------------------------------------------------- */

static walnotify_status host_file_open(const walnotify_host *host, const char *path, unsigned flags,
                                       walnotify_file **file, walnotify_id *last)
{
    wn_append_mode how = flags & WALNOTIFY_FILE_LINES ? WN_APPEND_LINES : WN_APPEND_RECORDS;
    wn_append_opened opened;
    char err[1024];
    int rc;

    if (file != NULL)
        *file = NULL;
    if (last != NULL)
        *last = (walnotify_id){0, 0};
    if (serving(host) == NULL || file == NULL)
        return WALNOTIFY_FATAL;
    if (path == NULL || path[0] == '\0') {
        host_log(host, WALNOTIFY_LOG_ERROR, "file_open: no path given");
        return WALNOTIFY_FATAL;
    }
    rc = wn_appendfile_open(path, WN_FILES_MODE, how, WN_APPEND_BUFFERED, "file", file, &opened,
                            err, sizeof err);
    if (rc != 0) {
        host_log(host, rc == EWOULDBLOCK ? WALNOTIFY_LOG_WARNING : WALNOTIFY_LOG_ERROR, "%s%s", err,
                 rc == EWOULDBLOCK ? ": waiting until it releases the file" : "");
        return rc == EWOULDBLOCK ? WALNOTIFY_RETRY : WALNOTIFY_FATAL;
    }
    if (opened.cut > 0)
        host_log(host, WALNOTIFY_LOG_WARNING,
                 "file %s: cut %lld bytes that were not made durable (a crash), it now holds %lld",
                 path, (long long)opened.cut, (long long)opened.length);
    if (last != NULL)
        *last = opened.last;
    return WALNOTIFY_OK;
}

static walnotify_status host_file_append(const walnotify_host *host, walnotify_file *file,
                                         const void *data, size_t length)
{
    char err[1024];

    if (serving(host) == NULL || file == NULL)
        return WALNOTIFY_FATAL;
    if (wn_appendfile_append(file, data, length, err, sizeof err) == 0)
        return WALNOTIFY_OK;
    host_log(host, WALNOTIFY_LOG_ERROR, "%s", err);
    return WALNOTIFY_FATAL;
}

static walnotify_status host_file_sync(const walnotify_host *host, walnotify_file *file,
                                       walnotify_id last)
{
    char err[1024];

    if (serving(host) == NULL || file == NULL)
        return WALNOTIFY_FATAL;
    if (wn_appendfile_sync(file, last, err, sizeof err) == 0)
        return WALNOTIFY_OK;
    host_log(host, WALNOTIFY_LOG_ERROR, "%s", err);
    return WALNOTIFY_FATAL;
}

static void host_file_close(const walnotify_host *host, walnotify_file *file)
{
    (void)host;
    wn_appendfile_close(file);
}

void wn_services_fill(wn_plugin *plugin, const wn_plugin_config *config)
{
    walnotify_host *host = &plugin->host;

    host->size = sizeof *host;
    host->abi_major = WALNOTIFY_ABI_MAJOR;
    host->abi_minor = WALNOTIFY_ABI_MINOR;
    host->instance_name = config->name;
    host->log = host_log;
    host->get_string = host_get_string;
    host->get_integer = host_get_integer;
    host->get_boolean = host_get_boolean;
    host->get_list_length = host_get_list_length;
    host->get_list_item = host_get_list_item;
    host->host_private = plugin->settings;
    host->source = host_source;
    host->table_count = host_table_count;
    host->table = host_table;
    host->resume_position = host_resume_position;
    host->flush_position = host_flush_position;
    host->set_flush_always = host_set_flush_always;
    host->fail_events = host_fail_events;
    host->rewind = host_rewind;
    host->encode_json = host_encode_json;
    host->encode_key = host_encode_key;
    host->file_open = host_file_open;
    host->file_append = host_file_append;
    host->file_sync = host_file_sync;
    host->file_close = host_file_close;
}
