/*
 * settings: a plugin's declared settings (walnotify_setting) checked, then the configured values
 * checked against them and stored, with the instance's context the host services read.
 */
#ifndef WN_SETTINGS_H
#define WN_SETTINGS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <walnotify/plugin.h>
#include "encoder.h"
#include "loader.h"

/* The validated value of one declared setting: configured, or its default. */
typedef struct setting_value {
    const walnotify_setting *decl; /* the plugin's declaration; lives as long as the library */
    bool has_value;                /* filled: getters read nothing from a half-built value */
    char *string;                  /* STRING, PATH (resolved); owned */
    int64_t integer;               /* INTEGER */
    bool boolean;                  /* BOOLEAN */
    char **items;                  /* LIST; owned, each item owned */
    size_t nitems;
} setting_value;

/* What the host table's services read: the instance's settings and what the host tells it. */
struct wn_plugin_settings {
    char *log_prefix;               /* "plugin "NAME": "; owned */
    bool checking;                  /* inside check: only the getters and log work */
    char check_said[1024];          /* what the plugin logged at ERROR inside check, lines
                                       joined by "; ": the reason of its refusal */
    const walnotify_source *source; /* borrowed from the pipeline; NULL until it is known */
    const walnotify_table *tables;  /* borrowed from the pipeline; this instance's, in order */
    size_t ntables;
    const walnotify_table *check_tables; /* during check (ABI 1.2): the block's tables by name */
    size_t ncheck_tables;
    uint64_t resume;         /* where the stream resumes */
    uint64_t flush_position; /* during flush: what is acknowledged if it succeeds */
    bool flush_always;       /* flushed before every acknowledgement */
    wn_encoder *encoder;     /* the instance's encode_json and encode_key; owned */
    /* An init answering RETRY tends to log the same reason on every attempt: while init is
     * called again, a line equal to the instance's previous one goes to DEBUG. Atomic, as log
     * may come from a thread of the plugin's. */
    atomic_bool init_again;     /* the running init follows a RETRY */
    _Atomic uint64_t last_line; /* hash of the instance's last log line; 0 before any */
    size_t nvalues;
    setting_value values[]; /* one per declaration, in declaration order */
};

/* `plugin "NAME" (PATH): reason` in err: a refusal about the shared object itself. Returns
 * WN_LOAD_REFUSED. */
__attribute__((format(printf, 4, 5))) int
wn_refuse_plugin(char *err, size_t errlen, const wn_plugin_config *config, const char *format, ...);

/* `FILE:LINE: plugin "NAME": reason` in err: a refusal about the configuration. Returns
 * WN_LOAD_BAD_SETTINGS. */
__attribute__((format(printf, 6, 7))) int wn_refuse_setting(char *err, size_t errlen,
                                                            const char *file, int line,
                                                            const wn_plugin_config *config,
                                                            const char *format, ...);

/* What a declared type is called ("path"); NULL for a type this host does not know. */
const char *wn_settings_type_name(walnotify_setting_type type);

/* How many declarations the array (ended by a NULL name, or NULL itself) holds. */
size_t wn_settings_count(const walnotify_setting *decls);

/* A declaration the host cannot honour (empty or repeated name, unknown type, default that does
 * not parse) is the plugin's bug: 0, or WN_LOAD_REFUSED with one line in err. */
int wn_settings_check_declarations(const walnotify_plugin *d, const wn_plugin_config *config,
                                   char *err, size_t errlen);

/* Every configured setting declared, once, and of its declared kind: 0, or
 * WN_LOAD_BAD_SETTINGS naming the file and line of the setting. */
int wn_settings_check_configured(const wn_plugin *plugin, const wn_plugin_config *config,
                                 const char *file, char *err, size_t errlen);

/* Stores every declared setting's value (configured, or its default) in plugin->settings, which
 * is set even on failure (free it with wn_settings_free). 0, or a refusal in err. */
int wn_settings_build(wn_plugin *plugin, const wn_plugin_config *config, const char *file,
                      const char *config_dir, char *err, size_t errlen);

/* The value of the declared setting of that name; NULL when there is none. */
const setting_value *wn_settings_find(const wn_plugin_settings *settings, const char *name);

/* Frees everything settings owns, itself included; NULL is fine. */
void wn_settings_free(wn_plugin_settings *settings);

#endif
