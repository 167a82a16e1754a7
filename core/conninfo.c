/* conninfo: the user's conninfo plus the session settings walnotify needs for stable text. */
#include "conninfo.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values print the same whatever the server's defaults (see the contract's session settings). */
#define SESSION_OPTIONS                                                                   \
    "-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 -c timezone=UTC " \
    "-c bytea_output=hex"
#define REDACTED_PASSWORD "********"
#define MANAGED_MAX 9 /* options, replication, client_encoding, fallback name, 4 keepalives, NULL */
#define KEYWORD_MAX 64 /* longer than any libpq keyword: a longer "keyword" is not named */
#define NOT_A_CONNINFO "not a valid libpq connection string or URI"

/* libpq's messages for a keyword it does not know; only these are ever looked into. */
static const char *const unknown_keyword_prefixes[] = {
    "invalid connection option \"",
    "invalid URI query parameter: \"",
};

/* TCP keepalives, so that a half-open connection is noticed in about a minute even while
 * nothing is sent; libpq ignores them on Unix sockets. A user's own value wins. */
static const char *const keepalive_defaults[][2] = {
    {"keepalives", "1"},
    {"keepalives_idle", "30"},
    {"keepalives_interval", "10"},
    {"keepalives_count", "3"},
};
#define NKEEPALIVES (sizeof keepalive_defaults / sizeof keepalive_defaults[0])

/* Keywords walnotify sets itself: a user's value for them is replaced or merged, never passed
 * twice. */
static bool is_managed_keyword(const char *keyword)
{
    static const char *const managed[] = {"options", "replication", "client_encoding",
                                          "fallback_application_name"};

    for (size_t i = 0; i < sizeof managed / sizeof managed[0]; i++) {
        if (strcmp(keyword, managed[i]) == 0)
            return true;
    }
    return false;
}

static const char *option_value(const PQconninfoOption *options, const char *keyword)
{
    for (const PQconninfoOption *o = options; o->keyword; o++) {
        if (strcmp(o->keyword, keyword) == 0)
            return o->val;
    }
    return NULL;
}

/* The keyword quoted in libpq's message about an unknown keyword, copied to out; false when the
 * message is another one or the text quoted is not shaped like a keyword. */
static bool unknown_keyword(const char *libpq_message, char *out, size_t outlen)
{
    for (size_t i = 0; i < sizeof unknown_keyword_prefixes / sizeof unknown_keyword_prefixes[0];
         i++) {
        size_t prefix = strlen(unknown_keyword_prefixes[i]);
        const char *start = libpq_message + prefix;
        size_t len = 0;

        if (strncmp(libpq_message, unknown_keyword_prefixes[i], prefix) != 0)
            continue;
        while (isalnum((unsigned char)start[len]) || start[len] == '_')
            len++;
        if (len == 0 || len > KEYWORD_MAX || len >= outlen || start[len] != '"' ||
            strspn(start + len + 1, "\n") != strlen(start + len + 1))
            return false;
        memcpy(out, start, len);
        out[len] = '\0';
        return true;
    }
    return false;
}

/*
 * Why conninfo does not parse, in walnotify's words: libpq's own message may quote any part of
 * the text, a password included ("invalid percent-encoded token: \"s3cr%zz\""), so it is never
 * passed on. Only the name of an unknown keyword is, and not when the text holds a password at
 * all: in "password=two words" the "keyword" libpq trips over is the rest of the password.
 */
static void describe_parse_error(const char *conninfo, const char *libpq_message, char *why,
                                 size_t whylen)
{
    char keyword[KEYWORD_MAX + 1];

    if (libpq_message == NULL) {
        snprintf(why, whylen, "out of memory");
        return;
    }
    if (strcasestr(conninfo, "password") == NULL &&
        unknown_keyword(libpq_message, keyword, sizeof keyword)) {
        snprintf(why, whylen, "unknown keyword \"%s\" (not a libpq connection parameter)",
                 keyword);
        return;
    }
    snprintf(why, whylen, "%s", NOT_A_CONNINFO);
}

bool wn_conninfo_check(const char *conninfo, char *why, size_t whylen)
{
    char *errmsg = NULL;
    PQconninfoOption *options = PQconninfoParse(conninfo ? conninfo : "", &errmsg);
    bool ok = false;

    if (options == NULL) {
        describe_parse_error(conninfo ? conninfo : "", errmsg, why, whylen);
        PQfreemem(errmsg);
        return false;
    }
    /* walnotify makes the stream's connection a replication one and its other connections
     * ordinary ones: a conninfo that decides it itself would be silently overridden. */
    if (option_value(options, "replication") != NULL)
        snprintf(why, whylen, "sets replication, which walnotify sets itself (remove it)");
    else
        ok = true;
    PQconninfoFree(options);
    return ok;
}

/* Copies src into dst (dstlen bytes) with every run of whitespace, newlines included, folded to
 * one space and the ends trimmed, so that a libpq message fits on one line. */
void wn_fold_lines(char *dst, size_t dstlen, const char *src)
{
    size_t used = 0;
    bool space = false;

    if (dstlen == 0)
        return;
    for (const char *p = src ? src : ""; *p && used + 1 < dstlen; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
            space = used > 0;
            continue;
        }
        if (space && used + 2 < dstlen)
            dst[used++] = ' ';
        space = false;
        dst[used++] = *p;
    }
    dst[used] = '\0';
}

void wn_server_message(PGconn *conn, const PGresult *res, char *out, size_t outlen)
{
    const char *text = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    if (!text || !text[0])
        text = res ? PQresultErrorMessage(res) : NULL;
    if (!text || !text[0])
        text = PQerrorMessage(conn);
    wn_fold_lines(out, outlen, text);
    if (out[0] == '\0')
        snprintf(out, outlen, "no reason given");
}

static bool needs_quotes(const char *value)
{
    if (value[0] == '\0')
        return true;
    return strpbrk(value, " \t\n\r\f\v'\\") != NULL;
}

/* Appends " key=value" (value quoted when libpq would need it) to buf; false when out of memory.
 */
static bool append_pair(char **buf, size_t *len, size_t *cap, const char *key, const char *value)
{
    size_t need = strlen(key) + 2 * strlen(value) + 5;
    char *p;

    if (*len + need >= *cap) {
        size_t ncap = (*cap + need) * 2;
        char *grown = realloc(*buf, ncap);

        if (!grown)
            return false;
        *buf = grown;
        *cap = ncap;
    }
    p = *buf + *len;
    if (*len > 0)
        *p++ = ' ';
    p += sprintf(p, "%s=", key);
    if (!needs_quotes(value)) {
        p += sprintf(p, "%s", value);
    } else {
        *p++ = '\'';
        for (const char *v = value; *v; v++) {
            if (*v == '\'' || *v == '\\')
                *p++ = '\\';
            *p++ = *v;
        }
        *p++ = '\'';
    }
    *p = '\0';
    *len = (size_t)(p - *buf);
    return true;
}

char *wn_conninfo_redact(const char *conninfo)
{
    PQconninfoOption *options;
    char *errmsg = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;

    options = PQconninfoParse(conninfo ? conninfo : "", &errmsg);
    if (!options) {
        PQfreemem(errmsg);
        return strdup("(unparsable conninfo)");
    }
    buf = calloc(1, 1);
    if (!buf)
        goto free_options;
    cap = 1;
    for (const PQconninfoOption *o = options; o->keyword; o++) {
        const char *value = o->val;

        if (!value)
            continue;
        if (strcmp(o->keyword, "password") == 0)
            value = REDACTED_PASSWORD;
        if (!append_pair(&buf, &len, &cap, o->keyword, value)) {
            free(buf);
            buf = NULL;
            goto free_options;
        }
    }
free_options:
    PQconninfoFree(options);
    return buf;
}

/* Fills keywords/values (each sized for every parsed option plus the managed ones, NULL-ended)
 * from the user's options and walnotify's own. options_value receives the merged `options`
 * string, which the caller frees. */
static bool build_params(const PQconninfoOption *options, bool replication, bool utf8,
                         const char **keywords, const char **values, char **options_value)
{
    const char *user_options = option_value(options, "options");
    const char *user_encoding = option_value(options, "client_encoding");
    const char *user_fallback = option_value(options, "fallback_application_name");
    size_t n = 0;
    size_t optlen;

    for (const PQconninfoOption *o = options; o->keyword; o++) {
        if (!o->val || is_managed_keyword(o->keyword))
            continue;
        keywords[n] = o->keyword;
        values[n++] = o->val;
    }
    optlen = (user_options ? strlen(user_options) + 1 : 0) + sizeof SESSION_OPTIONS;
    *options_value = malloc(optlen);
    if (!*options_value)
        return false;
    /* After the user's own: for a setting given twice, the server keeps the last. */
    snprintf(*options_value, optlen, "%s%s%s", user_options ? user_options : "",
             user_options && user_options[0] ? " " : "", SESSION_OPTIONS);
    keywords[n] = "options";
    values[n++] = *options_value;
    if (replication) {
        keywords[n] = "replication";
        values[n++] = "database";
    }
    if (utf8) {
        keywords[n] = "client_encoding";
        values[n++] = "UTF8";
    } else if (user_encoding) {
        keywords[n] = "client_encoding";
        values[n++] = user_encoding;
    }
    keywords[n] = "fallback_application_name";
    values[n++] = user_fallback ? user_fallback : "walnotify";
    for (size_t i = 0; i < NKEEPALIVES; i++) {
        if (option_value(options, keepalive_defaults[i][0]))
            continue;
        keywords[n] = keepalive_defaults[i][0];
        values[n++] = keepalive_defaults[i][1];
    }
    keywords[n] = NULL;
    values[n] = NULL;
    return true;
}

int wn_conn_params_build(const char *conninfo, bool replication, bool utf8,
                         wn_conn_params *params, char *err, size_t errlen)
{
    char *errmsg = NULL;
    char why[256];
    size_t count = 0;

    memset(params, 0, sizeof *params);
    params->parsed = PQconninfoParse(conninfo ? conninfo : "", &errmsg);
    if (!params->parsed) {
        describe_parse_error(conninfo ? conninfo : "", errmsg, why, sizeof why);
        snprintf(err, errlen, "conninfo: %s", why);
        PQfreemem(errmsg);
        return WN_EXIT_CONFIG;
    }
    for (const PQconninfoOption *o = params->parsed; o->keyword; o++)
        count++;
    /* Room for every parsed option, the managed ones and the terminator. */
    params->keywords = calloc(count + MANAGED_MAX, sizeof *params->keywords);
    params->values = calloc(count + MANAGED_MAX, sizeof *params->values);
    if (!params->keywords || !params->values ||
        !build_params(params->parsed, replication, utf8, params->keywords, params->values,
                      &params->options)) {
        snprintf(err, errlen, "cannot connect: out of memory");
        wn_conn_params_free(params);
        return WN_EXIT_SERVER;
    }
    return 0;
}

void wn_conn_params_free(wn_conn_params *params)
{
    free(params->options);
    free(params->keywords);
    free(params->values);
    PQconninfoFree(params->parsed);
    memset(params, 0, sizeof *params);
}

/* Replaces every occurrence of secret in text (textlen bytes of room, NUL-terminated) by
 * REDACTED_PASSWORD, cutting the text short rather than overflowing; out of memory, the whole
 * text goes. */
static void scrub(char *text, size_t textlen, const char *secret)
{
    size_t secret_len = secret ? strlen(secret) : 0;
    char *copy;
    const char *from;
    const char *hit;
    size_t used = 0;

    if (secret_len == 0 || !strstr(text, secret))
        return;
    copy = strdup(text);
    if (!copy) {
        snprintf(text, textlen, "(message withheld: out of memory)");
        return;
    }
    from = copy;
    text[0] = '\0';
    while ((hit = strstr(from, secret)) != NULL && used + 1 < textlen) {
        int n = snprintf(text + used, textlen - used, "%.*s%s", (int)(hit - from), from,
                         REDACTED_PASSWORD);

        used += n > 0 ? (size_t)n : 0;
        from = hit + secret_len;
    }
    if (used + 1 < textlen)
        snprintf(text + used, textlen - used, "%s", from);
    free(copy);
}

PGconn *wn_connect(const char *conninfo, bool replication, bool utf8, int *exit_status, char *err,
                   size_t errlen)
{
    wn_conn_params params;
    char *redacted = NULL;
    char message[1024];
    PGconn *conn = NULL;

    *exit_status = wn_conn_params_build(conninfo, replication, utf8, &params, err, errlen);
    if (*exit_status != 0)
        return NULL;
    *exit_status = WN_EXIT_SERVER;
    conn = PQconnectdbParams(params.keywords, params.values, 0);
    if (!conn) {
        snprintf(err, errlen, "cannot connect: out of memory");
        goto free_params;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        redacted = wn_conninfo_redact(conninfo);
        wn_fold_lines(message, sizeof message, PQerrorMessage(conn));
        snprintf(err, errlen, "cannot connect to %s: %s",
                 !redacted ? "(out of memory)" : redacted[0] ? redacted : "(libpq defaults)",
                 message);
        /* libpq quotes option values in its messages, and the password may also have been
         * written, by mistake, as another option's value: it goes wherever it shows. */
        scrub(err, errlen, option_value(params.parsed, "password"));
        *exit_status = wn_connect_failure_status(message);
        free(redacted);
        PQfinish(conn);
        conn = NULL;
    }
free_params:
    wn_conn_params_free(&params);
    return conn;
}

int wn_connect_failure_status(const char *message)
{
    /* What a person has to fix: credentials, pg_hba.conf, a role or database name, privileges.
     * Everything else (refused, no such socket, timeout, starting up, shutting down, too many
     * clients, unknown host while DNS is down) may pass by itself. */
    static const char *const needs_a_person[] = {
        "authentication failed", "pg_hba.conf",     "password",        "does not exist",
        "permission denied",     "must be superuser", "replication role", "not permitted",
        "invalid",               "unsupported",     "certificate",
    };

    for (size_t i = 0; i < sizeof needs_a_person / sizeof needs_a_person[0]; i++) {
        if (message && strstr(message, needs_a_person[i]))
            return WN_EXIT_SERVER;
    }
    return WN_EXIT_TRANSIENT;
}

int wn_command_failure_status(PGconn *conn, const PGresult *res)
{
    /* 08: connection exception; 53: insufficient resources; 57P01-03: terminated by an
     * administrator, crash shutdown, cannot connect now; 40001/40P01: serialization, deadlock. */
    static const char *const transient[] = {"08", "53", "57P01", "57P02", "57P03", "40001",
                                            "40P01"};
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return WN_EXIT_TRANSIENT;
    if (!state)
        return res ? WN_EXIT_SERVER : WN_EXIT_TRANSIENT;
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++) {
        if (strncmp(state, transient[i], strlen(transient[i])) == 0)
            return WN_EXIT_TRANSIENT;
    }
    return WN_EXIT_SERVER;
}
