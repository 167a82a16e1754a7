/*
 * settings: the webhook plugin's settings, read and checked in one place, so that `check`
 * (--check-config, no side effects) and `init` refuse exactly the same configurations.
 */
#ifndef WEBHOOK_SETTINGS_H
#define WEBHOOK_SETTINGS_H

#include <walnotify/plugin.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum webhook_mode {
    WEBHOOK_MODE_TRANSACTION = 0, /* one POST per transaction (or per part of it), NDJSON */
    WEBHOOK_MODE_EVENT = 1        /* one POST per event, a JSON object */
} webhook_mode;

/* What the settings say. Every string is borrowed from the host (valid until shutdown). */
typedef struct webhook_settings {
    const char *url; /* http:// or https:// */
    webhook_mode mode;
    size_t nheaders;               /* items of the `headers` list, each "Name: value" */
    const char *bearer_token_file; /* NULL when not set */
    const char *ca_file;           /* NULL when not set: the system's certificate authorities */
    bool insecure;                 /* TLS peers not verified */
    bool follow_redirects;
    long timeout_ms;        /* bound of one request, connection included */
    size_t max_batch_bytes; /* transaction mode: the most one POST body holds */
} webhook_settings;

/* The settings the plugin declares, ended by a member with name NULL. */
extern const walnotify_setting webhook_declared[];

/*
 * Reads and checks every setting; logs each problem at ERROR (naming the setting and, for a
 * header, its position and name, never its value) and returns false when there is one.
 */
bool webhook_settings_read(const walnotify_host *host, webhook_settings *out);

/* The index-th header, "Name: value", as configured. */
const char *webhook_settings_header(const walnotify_host *host, size_t index);

#endif
