/*
 * settings: the redis plugin's settings, read and checked in one place, so that `check`
 * (--check-config, no side effects) and `init` refuse exactly the same configurations.
 */
#ifndef REDIS_SETTINGS_H
#define REDIS_SETTINGS_H

#include <walnotify/plugin.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REDIS_HOST_MAX 256 /* bytes of a host name or address, NUL included */

/* What the settings say. Every string is borrowed from the host (valid until shutdown). */
typedef struct redis_settings {
    const char *address;        /* as configured, for messages */
    bool unix_socket;           /* address is a Unix socket's path */
    char host[REDIS_HOST_MAX];  /* TCP: the host part, without brackets */
    int port;                   /* TCP: the port */
    const char *username;       /* NULL when not set: AUTH with the password alone */
    const char *password_file;  /* NULL when not set: no AUTH */
    int64_t db;                 /* SELECTed after connecting when not 0 */
    const char *stream;         /* template of a change's stream: ${schema}, ${table} */
    const char *message_stream; /* template of a message's stream: ${prefix} */
    int64_t maxlen;             /* XADD MAXLEN ~ this; 0: no trimming */
    size_t batch_entries;       /* entries in one MULTI/EXEC, at most */
    long timeout_ms;            /* bound of connecting and of one reply */
} redis_settings;

/* The settings the plugin declares, ended by a member with name NULL. */
extern const walnotify_setting redis_declared[];

/* Reads and checks every setting; logs each problem at ERROR (naming the setting) and returns
 * false when there is one. */
bool redis_settings_read(const walnotify_host *host, redis_settings *out);

#endif
