/*
 * settings: reading and checking the redis plugin's settings. Nothing here opens a file or a
 * socket: `check` runs it under --check-config.
 */
#include "settings.h"

#include "template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MIN_MS 10L
#define TIMEOUT_MAX_MS 3600000L
#define BATCH_MAX_ENTRIES 100000LL
#define DB_MAX 2147483647LL

const walnotify_setting redis_declared[] = {
    {.name = "address",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "127.0.0.1:6379",
     .description = "the Redis server: host:port ([v6]:port), or a Unix socket's path (starts "
                    "with /)"},
    {.name = "username",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "",
     .description = "the Redis 6 ACL user (AUTH username password); empty: the password alone"},
    {.name = "password_file",
     .type = WALNOTIFY_SETTING_PATH,
     .default_value = "",
     .description = "file holding the password (read at start; never logged); empty: no AUTH"},
    {.name = "db",
     .type = WALNOTIFY_SETTING_INTEGER,
     .default_value = "0",
     .description = "the database number SELECTed after connecting"},
    {.name = "stream",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "walnotify:${schema}.${table}",
     .description = "the stream of a table's events; ${schema} and ${table} are replaced"},
    {.name = "message_stream",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "walnotify:messages:${prefix}",
     .description = "the stream of logical decoding messages; ${prefix} is replaced"},
    {.name = "maxlen",
     .type = WALNOTIFY_SETTING_INTEGER,
     .default_value = "0",
     .description = "trim each stream to about this many entries (XADD MAXLEN ~); 0 keeps all"},
    {.name = "batch_entries",
     .type = WALNOTIFY_SETTING_INTEGER,
     .default_value = "1000",
     .description = "the most entries one MULTI/EXEC carries (1 to 100000)"},
    {.name = "timeout_ms",
     .type = WALNOTIFY_SETTING_INTEGER,
     .default_value = "10000",
     .description = "bound of connecting and of waiting for a reply (10 to 3600000 ms)"},
    {.name = NULL},
};

static const char *const stream_vars[] = {"schema", "table", NULL};
static const char *const message_vars[] = {"prefix", NULL};

/* An empty string setting means "not set". */
static const char *optional_string(const walnotify_host *host, const char *name)
{
    const char *text = host->get_string(host, name);

    return text != NULL && text[0] != '\0' ? text : NULL;
}

/* A path setting left at its default "" comes back as the configuration's folder (ending with
 * '/') or empty: both mean "not set", since no file name ends with '/'. */
static const char *optional_path(const walnotify_host *host, const char *name)
{
    const char *path = host->get_string(host, name);
    size_t len = path != NULL ? strlen(path) : 0;

    if (len == 0 || path[len - 1] == '/')
        return NULL;
    return path;
}

/* "host:port", "[v6]:port"; the port 1 to 65535. */
static bool parse_tcp(const char *address, redis_settings *out)
{
    const char *colon = strrchr(address, ':');
    const char *host = address, *host_end = colon;
    char *end;
    long port;

    if (colon == NULL)
        return false;
    if (address[0] == '[') {
        host = address + 1;
        host_end = colon > address && colon[-1] == ']' ? colon - 1 : NULL;
        if (host_end == NULL)
            return false;
    }
    if (host_end <= host || (size_t)(host_end - host) >= sizeof out->host)
        return false;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
        return false;
    memcpy(out->host, host, (size_t)(host_end - host));
    out->host[host_end - host] = '\0';
    out->port = (int)port;
    return true;
}

static bool read_address(const walnotify_host *host, redis_settings *out)
{
    const char *address = host->get_string(host, "address");

    out->address = address != NULL ? address : "";
    if (out->address[0] == '/') {
        out->unix_socket = true;
        return true;
    }
    if (parse_tcp(out->address, out))
        return true;
    host->log(host, WALNOTIFY_LOG_ERROR,
              "setting address is \"%s\": expected host:port, [v6]:port or a Unix socket's "
              "absolute path",
              out->address);
    return false;
}

static bool read_template(const walnotify_host *host, const char *name, const char *const *vars,
                          const char **out)
{
    const char *text = host->get_string(host, name);
    char why[256];

    if (!template_check(text, vars, why, sizeof why)) {
        host->log(host, WALNOTIFY_LOG_ERROR, "setting %s \"%s\" %s", name, text != NULL ? text : "",
                  why);
        return false;
    }
    *out = text;
    return true;
}

static bool in_range(const walnotify_host *host, const char *name, int64_t value, long long low,
                     long long high)
{
    if (value >= low && value <= high)
        return true;
    host->log(host, WALNOTIFY_LOG_ERROR, "setting %s is %lld: expected %lld to %lld", name,
              (long long)value, low, high);
    return false;
}

static bool read_numbers(const walnotify_host *host, redis_settings *out)
{
    int64_t timeout = host->get_integer(host, "timeout_ms");
    int64_t batch = host->get_integer(host, "batch_entries");
    bool ok = true;

    out->db = host->get_integer(host, "db");
    out->maxlen = host->get_integer(host, "maxlen");
    ok = in_range(host, "db", out->db, 0, DB_MAX) && ok;
    ok = in_range(host, "maxlen", out->maxlen, 0, INT64_MAX) && ok;
    ok = in_range(host, "batch_entries", batch, 1, BATCH_MAX_ENTRIES) && ok;
    ok = in_range(host, "timeout_ms", timeout, TIMEOUT_MIN_MS, TIMEOUT_MAX_MS) && ok;
    out->batch_entries = (size_t)batch;
    out->timeout_ms = (long)timeout;
    return ok;
}

bool redis_settings_read(const walnotify_host *host, redis_settings *out)
{
    bool ok = true;

    memset(out, 0, sizeof *out);
    out->username = optional_string(host, "username");
    out->password_file = optional_path(host, "password_file");
    ok = read_address(host, out) && ok;
    ok = read_template(host, "stream", stream_vars, &out->stream) && ok;
    ok = read_template(host, "message_stream", message_vars, &out->message_stream) && ok;
    ok = read_numbers(host, out) && ok;
    if (out->username != NULL && out->password_file == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting username is set without password_file: Redis ACL users log in with "
                  "a password");
        ok = false;
    }
    return ok;
}
