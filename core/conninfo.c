/* conninfo: the user's conninfo plus the session settings walnotify needs for stable text. */
#include "conninfo.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Values print the same whatever the server's defaults (see the contract's session settings). */
#define SESSION_OPTIONS                                                                            \
    "-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 -c timezone=UTC "          \
    "-c bytea_output=hex"
#define REDACTED "********"
#define MANAGED_MAX                                                                                \
    10 /* options, replication, client_encoding, fallback name, 4 keepalives,                      \
          connect_timeout, NULL */
#define CANCEL_GRACE_MS 5000 /* how long a cancelled command may take to end */
#define KEYWORD_MAX 64       /* longer than any libpq keyword: a longer "keyword" is not named */
#define NOT_A_CONNINFO "not a valid libpq connection string or URI"

/* libpq's messages for a keyword it does not know; only these are ever looked into. */
static const char *const unknown_keyword_prefixes[] = {
    "invalid connection option \"",
    "invalid URI query parameter: \"",
};

/* TCP keepalives, so that a half-open connection is noticed in about a minute even while
 * nothing is sent (libpq ignores them on Unix sockets); and a bound on a connection attempt, so
 * that a server that accepts and never answers cannot hold walnotify. A user's own value wins. */
static const char *const connection_defaults[][2] = {
    {"keepalives", "1"},
    {"keepalives_idle", "30"},
    {"keepalives_interval", "10"},
    {"keepalives_count", "3"},
    {"connect_timeout", WN_DEFAULT_CONNECT_TIMEOUT_TEXT},
};
#define NDEFAULTS (sizeof connection_defaults / sizeof connection_defaults[0])

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
        snprintf(why, whylen, "unknown keyword \"%s\" (not a libpq connection parameter)", keyword);
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

/* Fills keywords/values (each sized for every parsed option plus the managed ones, NULL-ended)
 * from the user's options and walnotify's own. options_value receives the merged `options`
 * string, which the caller frees. */
static bool build_params(const PQconninfoOption *options, const char *fallback_name,
                         bool replication, bool utf8, const char **keywords, const char **values,
                         char **options_value)
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
    values[n++] = user_fallback ? user_fallback : fallback_name ? fallback_name : "walnotify";
    for (size_t i = 0; i < NDEFAULTS; i++) {
        if (option_value(options, connection_defaults[i][0]))
            continue;
        keywords[n] = connection_defaults[i][0];
        values[n++] = connection_defaults[i][1];
    }
    keywords[n] = NULL;
    values[n] = NULL;
    return true;
}

int wn_conn_params_build(const char *conninfo, bool replication, bool utf8, wn_conn_params *params,
                         char *err, size_t errlen)
{
    return wn_conn_params_build_as(conninfo, NULL, replication, utf8, params, err, errlen);
}

int wn_conn_params_build_as(const char *conninfo, const char *fallback_name, bool replication,
                            bool utf8, wn_conn_params *params, char *err, size_t errlen)
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
        !build_params(params->parsed, fallback_name, replication, utf8, params->keywords,
                      params->values, &params->options)) {
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

/* ---- secrets ------------------------------------------------------------------------------ */

bool wn_conninfo_is_secret(const PQconninfoOption *option)
{
    /* libpq marks the keywords whose value must not be shown ("*": password, sslpassword);
     * walnotify follows its list rather than keeping one of its own that could fall behind. */
    return option->dispchar != NULL && option->dispchar[0] == '*';
}

static bool is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Whether the len bytes at hit stand as a token of their own in text: a short secret such as
 * "o" is then replaced where it is quoted, and "cannot" stays "cannot". */
static bool whole_token(const char *text, const char *hit, size_t len)
{
    bool starts = hit == text || !is_word_char(hit[-1]) || !is_word_char(hit[0]);
    bool ends = hit[len] == '\0' || !is_word_char(hit[len]) || !is_word_char(hit[len - 1]);

    return starts && ends;
}

/* Replaces every token-shaped occurrence of secret in text (textlen bytes of room) by REDACTED,
 * cutting the text short rather than overflowing. */
static void scrub(char *text, size_t textlen, const char *secret)
{
    size_t secret_len = secret ? strlen(secret) : 0;
    char copy[WN_MESSAGE_MAX];
    const char *from = copy;
    const char *hit;
    size_t used = 0;

    if (secret_len == 0 || textlen == 0 || !strstr(text, secret))
        return;
    snprintf(copy, sizeof copy, "%s", text);
    text[0] = '\0';
    for (hit = strstr(from, secret); hit && used + 1 < textlen; hit = strstr(hit + 1, secret)) {
        int n;

        if (!whole_token(copy, hit, secret_len) || hit < from)
            continue;
        n = snprintf(text + used, textlen - used, "%.*s%s", (int)(hit - from), from, REDACTED);
        if (n < 0 || (size_t)n >= textlen - used) {
            used = textlen - 1;
            break;
        }
        used += (size_t)n;
        from = hit + secret_len;
    }
    if (used + 1 < textlen)
        snprintf(text + used, textlen - used, "%s", from);
}

void wn_conninfo_scrub(const PQconninfoOption *options, char *text, size_t textlen)
{
    for (const PQconninfoOption *o = options; o && o->keyword; o++) {
        if (o->val && wn_conninfo_is_secret(o))
            scrub(text, textlen, o->val);
    }
}

/* ---- waiting on the server, stoppably ------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool wn_stop_requested(int stop_fd)
{
    struct pollfd fd = {.fd = stop_fd, .events = POLLIN};

    return stop_fd >= 0 && poll(&fd, 1, 0) > 0 && (fd.revents & POLLIN);
}

typedef enum wait_result { WAIT_READY, WAIT_STOPPED, WAIT_TIMEOUT } wait_result;

/* Waits until sock is ready for events, the stop fd is readable, or deadline_ms (monotonic; -1:
 * none) passes. */
static wait_result wait_socket(int sock, short events, int stop_fd, int64_t deadline_ms)
{
    for (;;) {
        struct pollfd fds[2] = {{.fd = sock, .events = events}, {.fd = stop_fd, .events = POLLIN}};
        int64_t left = deadline_ms < 0 ? -1 : deadline_ms - now_ms();
        int n;

        if (deadline_ms >= 0 && left <= 0)
            return WAIT_TIMEOUT;
        n = poll(fds, stop_fd >= 0 ? 2 : 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return WAIT_READY; /* let libpq meet the error itself */
        if (stop_fd >= 0 && (fds[1].revents & POLLIN))
            return WAIT_STOPPED;
        if (n > 0)
            return WAIT_READY;
    }
}

/* ---- connecting ---------------------------------------------------------------------------- */

/* States in which the socket reached a server and the server has been asked something: a
 * failure from here on may carry the server's SQLSTATE. */
static bool server_reached(ConnStatusType status)
{
    switch (status) {
    case CONNECTION_AWAITING_RESPONSE:
    case CONNECTION_AUTH_OK:
    case CONNECTION_SETENV:
    case CONNECTION_CHECK_WRITABLE:
    case CONNECTION_CONSUME:
    case CONNECTION_CHECK_TARGET:
    case CONNECTION_CHECK_STANDBY:
        return true;
    default:
        return false;
    }
}

/* The bound of one connection attempt: connect_timeout (the user's or walnotify's default) for
 * each host the conninfo lists, as libpq itself counts it. */
static int64_t connect_budget_ms(const PQconninfoOption *parsed)
{
    const char *timeout = option_value(parsed, "connect_timeout");
    const char *hosts = option_value(parsed, "host");
    long seconds = timeout ? strtol(timeout, NULL, 10) : WN_DEFAULT_CONNECT_TIMEOUT_S;
    int64_t nhosts = 1;

    if (!hosts)
        hosts = option_value(parsed, "hostaddr");
    for (const char *p = hosts; p && *p; p++)
        nhosts += *p == ',';
    if (seconds <= 0)
        seconds = WN_DEFAULT_CONNECT_TIMEOUT_S;
    /* libpq never waits less than 2 s for one host either. */
    if (seconds < 2)
        seconds = 2;
    return (int64_t)seconds * 1000 * nhosts;
}

/* The SQLSTATE a verbose libpq message carries for the server's error ("FATAL:  28P01: ..."):
 * the last one, since the server's reply comes after anything libpq quotes of the conninfo. */
static bool verbose_sqlstate(const char *message, char code[6])
{
    static const char *const severities[] = {"FATAL:  ", "ERROR:  ", "PANIC:  "};
    const char *found = NULL;

    for (size_t i = 0; i < sizeof severities / sizeof severities[0]; i++) {
        size_t len = strlen(severities[i]);

        for (const char *p = strstr(message, severities[i]); p; p = strstr(p + 1, severities[i])) {
            const char *c = p + len;
            size_t n = strspn(c, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ");

            if (n == 5 && c[5] == ':' && c[6] == ' ' && (!found || c > found))
                found = c;
        }
    }
    if (!found)
        return false;
    memcpy(code, found, 5);
    code[5] = '\0';
    return true;
}

/* The verbose message made readable: "FATAL:  28P01: text" becomes "FATAL:  text", and the
 * LOCATION lines go; folded to one line into out. */
static void tidy_message(const char *message, const char *code, char *out, size_t outlen)
{
    char text[WN_MESSAGE_MAX];
    size_t used = 0;

    for (const char *line = message; *line && used + 1 < sizeof text;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) + 1 : strlen(line);

        if (strncmp(line, "LOCATION:  ", 11) != 0) {
            if (len > sizeof text - used - 1)
                len = sizeof text - used - 1;
            memcpy(text + used, line, len);
            used += len;
        }
        line += end ? (size_t)(end - line) + 1 : len;
    }
    text[used] = '\0';
    if (code) {
        char tag[8];
        char *hit;

        snprintf(tag, sizeof tag, "%s: ", code);
        hit = strstr(text, tag);
        if (hit)
            memmove(hit, hit + 7, strlen(hit + 7) + 1);
    }
    wn_fold_lines(out, outlen, text);
}

int wn_connect_sqlstate_status(const char *sqlstate)
{
    /* Waiting cures these: the server starting up, shutting down, short of connections or
     * memory, or the connection lost. Everything else the server refuses with (28: bad
     * credentials or pg_hba.conf; 3D000: no such database; 42501: no replication privilege;
     * 0A000: unsupported) needs a person. */
    static const char *const transient[] = {"08", "53", "57P01", "57P02", "57P03", "58"};

    if (!sqlstate)
        return WN_EXIT_TRANSIENT;
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++) {
        if (strncmp(sqlstate, transient[i], strlen(transient[i])) == 0)
            return WN_EXIT_TRANSIENT;
    }
    return WN_EXIT_SERVER;
}

/* How far a connection attempt got before it ended. */
typedef struct attempt {
    bool reached;   /* a server was asked something: a failure may carry its SQLSTATE */
    bool in_tls;    /* it failed while setting up TLS */
    bool timed_out; /* no answer within the budget */
} attempt;

/* How a failed attempt should end, from the connection's state and the server's SQLSTATE,
 * never from the words of the message (which quote host names and socket paths). */
static int failure_status(PGconn *conn, const attempt *how, const char *code)
{
    /* The server asked for a password and the conninfo has none, or TLS could not be set up:
     * only a person can fix either, and a run and a slot command say so alike. */
    if (PQconnectionNeedsPassword(conn) || how->in_tls)
        return WN_EXIT_SERVER;
    if (!how->reached || !code)
        return WN_EXIT_TRANSIENT;
    return wn_connect_sqlstate_status(code);
}

/* "host H port P" of the server the attempt ended at, from libpq's own accessors. */
static void server_name(PGconn *conn, char *out, size_t outlen)
{
    const char *host = PQhost(conn);
    const char *port = PQport(conn);

    snprintf(out, outlen, "host %s port %s", host && host[0] ? host : "(default)",
             port && port[0] ? port : "(default)");
}

/* Polls the attempt to its end. Returns 0 when connected, WN_EXIT_STOPPED, or -1 (failed, or
 * timed out), with how far it got in *how. */
static int poll_connection(PGconn *conn, int stop_fd, int64_t budget_ms, attempt *how)
{
    PostgresPollingStatusType polling = PGRES_POLLING_WRITING;
    int64_t deadline = now_ms() + budget_ms;
    ConnStatusType last = CONNECTION_STARTED;

    memset(how, 0, sizeof *how);
    for (;;) {
        ConnStatusType before = PQstatus(conn);
        wait_result waited;

        if (polling == PGRES_POLLING_FAILED || before == CONNECTION_BAD) {
            /* A certificate refused, a client key that its sslpassword does not open, TLS
             * required and not offered: what waiting does not cure. */
            how->in_tls = last == CONNECTION_SSL_STARTUP;
            return -1;
        }
        if (polling == PGRES_POLLING_OK)
            return 0;
        last = before;
        waited = wait_socket(PQsocket(conn), polling == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                             stop_fd, deadline);
        if (waited == WAIT_STOPPED)
            return WN_EXIT_STOPPED;
        if (waited == WAIT_TIMEOUT) {
            how->timed_out = true;
            return -1;
        }
        polling = PQconnectPoll(conn);
        how->reached = server_reached(before) || server_reached(PQstatus(conn));
    }
}

/* Fills err and *exit_status for an attempt that failed. */
static void describe_failure(PGconn *conn, const wn_conn_params *params, const attempt *how,
                             int64_t budget_ms, int *exit_status, char *err, size_t errlen)
{
    char code[6], message[WN_MESSAGE_MAX], server[512];
    bool has_code = how->reached && verbose_sqlstate(PQerrorMessage(conn), code);

    server_name(conn, server, sizeof server);
    if (how->timed_out) {
        snprintf(err, errlen, "cannot connect to %s: no answer within %lld s (connect_timeout)",
                 server, (long long)(budget_ms / 1000));
        *exit_status = WN_EXIT_TRANSIENT;
        return;
    }
    tidy_message(PQerrorMessage(conn), has_code ? code : NULL, message, sizeof message);
    snprintf(err, errlen, "cannot connect to %s: %s", server,
             message[0] ? message : "no reason given");
    /* libpq may quote option values, and a secret may have been written, by mistake, as
     * another option's value: it goes wherever it shows. */
    wn_conninfo_scrub(params->parsed, err, errlen);
    *exit_status = failure_status(conn, how, has_code ? code : NULL);
}

PGconn *wn_connect(const char *conninfo, bool replication, bool utf8, int stop_fd, int *exit_status,
                   char *err, size_t errlen)
{
    return wn_connect_as(conninfo, NULL, replication, utf8, stop_fd, exit_status, err, errlen);
}

PGconn *wn_connect_as(const char *conninfo, const char *fallback_name, bool replication, bool utf8,
                      int stop_fd, int *exit_status, char *err, size_t errlen)
{
    wn_conn_params params;
    attempt how;
    int64_t budget_ms;
    PGconn *conn = NULL;
    int polled;

    *exit_status =
        wn_conn_params_build_as(conninfo, fallback_name, replication, utf8, &params, err, errlen);
    if (*exit_status != 0)
        return NULL;
    *exit_status = WN_EXIT_SERVER;
    if (wn_stop_requested(stop_fd)) {
        snprintf(err, errlen, "stopped before connecting");
        *exit_status = WN_EXIT_STOPPED;
        goto free_params;
    }
    budget_ms = connect_budget_ms(params.parsed);
    conn = PQconnectStartParams(params.keywords, params.values, 0);
    if (!conn) {
        snprintf(err, errlen, "cannot connect: out of memory");
        goto free_params;
    }
    /* The server's SQLSTATE reaches the message only in verbose mode: it is what decides
     * whether a failure needs a person. */
    PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
    polled = poll_connection(conn, stop_fd, budget_ms, &how);
    if (polled == 0) {
        PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
        *exit_status = 0;
        goto free_params;
    }
    if (polled == WN_EXIT_STOPPED) {
        snprintf(err, errlen, "stopped while connecting");
        *exit_status = WN_EXIT_STOPPED;
    } else {
        describe_failure(conn, &params, &how, budget_ms, exit_status, err, errlen);
    }
    PQfinish(conn);
    conn = NULL;
free_params:
    wn_conn_params_free(&params);
    return conn;
}

/* ---- commands, stoppably ------------------------------------------------------------------- */

/* Asks the server to cancel the command in progress, and waits a little for it to end, so that
 * what the command was making (a slot) is not made after all. */
static void cancel_command(PGconn *conn)
{
    char why[256];
    PGcancel *cancel = PQgetCancel(conn);
    int64_t deadline = now_ms() + CANCEL_GRACE_MS;
    PGresult *res;

    if (!cancel)
        return;
    (void)PQcancel(cancel, why, sizeof why);
    PQfreeCancel(cancel);
    while (PQisBusy(conn)) {
        if (wait_socket(PQsocket(conn), POLLIN, -1, deadline) != WAIT_READY ||
            !PQconsumeInput(conn))
            return;
    }
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType status = PQresultStatus(res);

        PQclear(res);
        if (status == PGRES_COPY_BOTH || status == PGRES_COPY_OUT || status == PGRES_COPY_IN)
            return;
    }
}

PGresult *wn_exec(PGconn *conn, int stop_fd, const char *sql, int nparams,
                  const char *const *params, bool *stopped)
{
    int sent;

    *stopped = wn_stop_requested(stop_fd);
    if (*stopped)
        return NULL;
    /* The replication protocol takes only simple queries (params NULL). */
    sent = params ? PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
                  : PQsendQuery(conn, sql);
    if (!sent)
        return NULL;
    return wn_await_result(conn, stop_fd, stopped);
}

PGresult *wn_await_result(PGconn *conn, int stop_fd, bool *stopped)
{
    PGresult *last = NULL, *res;

    *stopped = false;
    while (PQisBusy(conn)) {
        wait_result waited = wait_socket(PQsocket(conn), POLLIN, stop_fd, -1);

        if (waited == WAIT_STOPPED) {
            *stopped = true;
            cancel_command(conn);
            return NULL;
        }
        if (!PQconsumeInput(conn))
            break;
    }
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType status = PQresultStatus(res);

        PQclear(last);
        last = res;
        /* In a copy, PQgetResult keeps answering the copy: the caller goes on from here. */
        if (status == PGRES_COPY_BOTH || status == PGRES_COPY_OUT || status == PGRES_COPY_IN)
            break;
    }
    return last;
}

bool wn_await_input(PGconn *conn, int stop_fd)
{
    if (wait_socket(PQsocket(conn), POLLIN, stop_fd, -1) != WAIT_STOPPED)
        return true;
    cancel_command(conn);
    return false;
}

int wn_command_failure_status(PGconn *conn, const PGresult *res)
{
    /* 08: connection exception; 53: insufficient resources; 57P01-03: terminated by an
     * administrator, crash shutdown, cannot connect now; 40001/40P01: serialization, deadlock. */
    static const char *const transient[] = {"08",    "53",    "57P01", "57P02",
                                            "57P03", "40001", "40P01"};
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
