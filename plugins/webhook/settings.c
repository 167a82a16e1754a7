/*
 * settings: reading and checking the webhook plugin's settings. Nothing here opens a file or a
 * socket: `check` runs it under --check-config.
 */
#include "settings.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define TIMEOUT_MIN_MS 10L
#define TIMEOUT_MAX_MS 3600000L
#define BATCH_MIN_BYTES 1024LL
#define BATCH_MAX_BYTES (1024LL * 1024 * 1024)
#define HEADER_MAX_BYTES 8192 /* one configured header line */

const walnotify_setting webhook_declared[] = {
    {.name = "url",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = NULL,
     .description = "where events are POSTed: an http:// or https:// URL"},
    {.name = "mode",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "transaction",
     .description = "\"transaction\": one NDJSON POST per transaction; \"event\": one JSON POST "
                    "per event"},
    {.name = "headers",
     .type = WALNOTIFY_SETTING_LIST,
     .default_value = "",
     .description = "extra request headers, each \"Name: value\""},
    {.name = "bearer_token_file",
     .type = WALNOTIFY_SETTING_PATH,
     .default_value = "",
     .description = "file holding a bearer token sent as Authorization (read at start; never "
                    "logged)"},
    {.name = "timeout_ms",
     .type = WALNOTIFY_SETTING_INTEGER,
     .default_value = "10000",
     .description = "bound of one request, connection included (10 to 3600000 ms)"},
    {.name = "max_batch_bytes",
     .type = WALNOTIFY_SETTING_INTEGER,
     .default_value = "1048576",
     .description = "transaction mode: the most one POST body holds; a larger transaction goes "
                    "as several parts, in order"},
    {.name = "ca_file",
     .type = WALNOTIFY_SETTING_PATH,
     .default_value = "",
     .description = "PEM file of the certificate authorities that sign the server's certificate "
                    "(default: the system's)"},
    {.name = "insecure",
     .type = WALNOTIFY_SETTING_BOOLEAN,
     .default_value = "false",
     .description = "do not verify the TLS peer (certificate and name): for tests only"},
    {.name = "follow_redirects",
     .type = WALNOTIFY_SETTING_BOOLEAN,
     .default_value = "false",
     .description = "follow 3xx redirects within the URL's origin (scheme, host, port; the POST "
                    "stays a POST)"},
    {.name = NULL},
};

/* Headers walnotify sets itself, or that would break the request if a user set them. */
static const char *const reserved_headers[] = {
    "Content-Type", "Content-Length", "Transfer-Encoding", "Expect", "Host", "Idempotency-Key",
    NULL,
};

static const char reserved_prefix[] = "Walnotify-";

/*
 * A path setting left at its default "" comes back resolved against the configuration's folder
 * (so it ends with '/'), or empty when there is no folder: both mean "not set", since no file
 * name ends with '/'.
 */
static const char *optional_path(const walnotify_host *host, const char *name)
{
    const char *path = host->get_string(host, name);
    size_t len = path != NULL ? strlen(path) : 0;

    if (len == 0 || path[len - 1] == '/')
        return NULL;
    return path;
}

static bool has_control(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

static bool read_url(const walnotify_host *host, webhook_settings *out)
{
    const char *url = host->get_string(host, "url");

    if (url == NULL || url[0] == '\0') {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting url is required (an http:// or https:// URL)");
        return false;
    }
    /* The URL may carry credentials: messages name the problem, not the text. */
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting url must start with http:// or https:// (it starts otherwise)");
        return false;
    }
    if (has_control(url) || strchr(url, ' ') != NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting url holds a space or a control character: encode it (%%20)");
        return false;
    }
    out->url = url;
    return true;
}

static bool read_mode(const walnotify_host *host, webhook_settings *out)
{
    const char *mode = host->get_string(host, "mode");

    if (mode != NULL && strcmp(mode, "transaction") == 0) {
        out->mode = WEBHOOK_MODE_TRANSACTION;
        return true;
    }
    if (mode != NULL && strcmp(mode, "event") == 0) {
        out->mode = WEBHOOK_MODE_EVENT;
        return true;
    }
    host->log(host, WALNOTIFY_LOG_ERROR,
              "setting mode is \"%s\": expected \"transaction\" or \"event\"",
              mode != NULL ? mode : "");
    return false;
}

/* RFC 9110 token characters, the only ones a header name may hold. */
static bool is_token_char(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_reserved(const char *name, size_t len)
{
    if (len >= sizeof reserved_prefix - 1 &&
        strncasecmp(name, reserved_prefix, sizeof reserved_prefix - 1) == 0)
        return true;
    for (size_t i = 0; reserved_headers[i] != NULL; i++)
        if (strlen(reserved_headers[i]) == len && strncasecmp(name, reserved_headers[i], len) == 0)
            return true;
    return false;
}

/* One "Name: value" item. The value may be a secret: messages quote the name only. */
static bool check_header(const walnotify_host *host, size_t index, const char *item, bool has_token)
{
    const char *colon = item != NULL ? strchr(item, ':') : NULL;
    size_t len = colon != NULL ? (size_t)(colon - item) : 0;

    if (colon == NULL || len == 0) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting headers, item %zu: expected \"Name: value\" (no colon after a name)",
                  index + 1);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_token_char((unsigned char)item[i])) {
            host->log(host, WALNOTIFY_LOG_ERROR,
                      "setting headers, item %zu: the name before the colon holds '%c', which a "
                      "header name cannot",
                      index + 1, isprint((unsigned char)item[i]) ? item[i] : '?');
            return false;
        }
    }
    if (strlen(item) > HEADER_MAX_BYTES || has_control(colon)) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting headers, item %zu (%.*s): the value is longer than %d bytes or holds a "
                  "control character",
                  index + 1, (int)len, item, HEADER_MAX_BYTES);
        return false;
    }
    if (is_reserved(item, len) ||
        (has_token && len == 13 && strncasecmp(item, "Authorization", 13) == 0)) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting headers, item %zu: walnotify sets %.*s itself%s", index + 1, (int)len,
                  item, has_token ? " (bearer_token_file is set)" : "");
        return false;
    }
    return true;
}

static bool read_headers(const walnotify_host *host, webhook_settings *out)
{
    bool ok = true;

    out->nheaders = host->get_list_length(host, "headers");
    for (size_t i = 0; i < out->nheaders; i++)
        ok = check_header(host, i, host->get_list_item(host, "headers", i),
                          out->bearer_token_file != NULL) &&
             ok;
    return ok;
}

static bool read_numbers(const walnotify_host *host, webhook_settings *out)
{
    int64_t timeout = host->get_integer(host, "timeout_ms");
    int64_t batch = host->get_integer(host, "max_batch_bytes");

    if (timeout < TIMEOUT_MIN_MS || timeout > TIMEOUT_MAX_MS) {
        host->log(host, WALNOTIFY_LOG_ERROR, "setting timeout_ms is %lld: expected %ld to %ld",
                  (long long)timeout, TIMEOUT_MIN_MS, TIMEOUT_MAX_MS);
        return false;
    }
    if (batch < BATCH_MIN_BYTES || batch > BATCH_MAX_BYTES) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting max_batch_bytes is %lld: expected %lld to %lld", (long long)batch,
                  BATCH_MIN_BYTES, BATCH_MAX_BYTES);
        return false;
    }
    out->timeout_ms = (long)timeout;
    out->max_batch_bytes = (size_t)batch;
    return true;
}

static bool read_tls(const walnotify_host *host, webhook_settings *out)
{
    out->ca_file = optional_path(host, "ca_file");
    out->insecure = host->get_boolean(host, "insecure");
    out->follow_redirects = host->get_boolean(host, "follow_redirects");
    if (out->insecure && out->ca_file != NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "settings ca_file and insecure = true contradict each other: keep one");
        return false;
    }
    return true;
}

bool webhook_settings_read(const walnotify_host *host, webhook_settings *out)
{
    bool ok = true;

    memset(out, 0, sizeof *out);
    out->bearer_token_file = optional_path(host, "bearer_token_file");
    ok = read_url(host, out) && ok;
    ok = read_mode(host, out) && ok;
    ok = read_headers(host, out) && ok;
    ok = read_numbers(host, out) && ok;
    ok = read_tls(host, out) && ok;
    return ok;
}

const char *webhook_settings_header(const walnotify_host *host, size_t index)
{
    return host->get_list_item(host, "headers", index);
}
