/*
 * conn: hiredis's blocking context, one per instance, its socket timeouts set to timeout_ms so
 * that no call waits longer for the server. The password lives in memory from init to shutdown
 * (it is needed again at every reconnection) and is wiped before it is freed.
 */
#include "conn.h"

#include "trust.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define PASSWORD_MAX_BYTES 4096 /* a password file larger than this is not a password */

struct redis_conn {
    const walnotify_host *host;     /* borrowed until shutdown */
    const redis_settings *settings; /* borrowed: the state's own copy */
    char *password;                 /* NULL when none; wiped before free */
    redisContext *ctx;              /* NULL when not connected */
};

/* ---- the password ---------------------------------------------------------------------------- */

/* The password is the file's first line, without the newline an editor adds. */
static char *read_password(const walnotify_host *host, const char *path)
{
    char why[PATH_MAX + 512];
    char *text = wn_trust_read_secret("password_file", path, PASSWORD_MAX_BYTES, why, sizeof why);
    size_t len;

    if (text == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "%s", why);
        return NULL;
    }
    len = strcspn(text, "\r\n");
    if (text[len] != '\0' && text[len + strspn(text + len, "\r\n")] != '\0') {
        /* Where, not what: the password must not reach a log. */
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "password_file %s holds more than one line: a password is one line", path);
        goto refuse;
    }
    text[len] = '\0';
    if (len == 0) {
        host->log(host, WALNOTIFY_LOG_ERROR, "password_file %s is empty", path);
        goto refuse;
    }
    return text;

refuse:
    wn_trust_free_secret(text);
    return NULL;
}

/* ---- connecting ------------------------------------------------------------------------------ */

redis_conn *redis_conn_new(const walnotify_host *host, const redis_settings *settings)
{
    redis_conn *conn = calloc(1, sizeof *conn);

    if (conn == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return NULL;
    }
    conn->host = host;
    conn->settings = settings;
    if (settings->password_file != NULL) {
        conn->password = read_password(host, settings->password_file);
        if (conn->password == NULL) {
            free(conn);
            return NULL;
        }
    }
    return conn;
}

void redis_conn_drop(redis_conn *conn)
{
    if (conn->ctx != NULL)
        redisFree(conn->ctx);
    conn->ctx = NULL;
}

void redis_conn_free(redis_conn *conn)
{
    if (conn == NULL)
        return;
    redis_conn_drop(conn);
    wn_trust_free_secret(conn->password);
    free(conn);
}

static struct timeval timeout_of(const redis_settings *settings)
{
    return (struct timeval){.tv_sec = settings->timeout_ms / 1000,
                            .tv_usec = (settings->timeout_ms % 1000) * 1000};
}

/* One command with a status reply expected; false with the reason in why. */
static redis_conn_status run_command(redis_conn *conn, int argc, const char **argv,
                                     const char *what, char *why, size_t whylen)
{
    redisReply *reply = redisCommandArgv(conn->ctx, argc, argv, NULL);
    redis_conn_status status = REDIS_CONN_OK;

    if (reply == NULL) {
        snprintf(why, whylen, "%s at %s failed: %s", what, conn->settings->address,
                 conn->ctx->errstr);
        return REDIS_CONN_DOWN;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, whylen, "%s refused by %s: %s", what, conn->settings->address, reply->str);
        /* A server still loading its data answers LOADING: it will take us later. */
        status = strncmp(reply->str, "LOADING", 7) == 0 ? REDIS_CONN_DOWN : REDIS_CONN_REFUSED;
    }
    freeReplyObject(reply);
    return status;
}

static redis_conn_status log_in(redis_conn *conn, char *why, size_t whylen)
{
    const redis_settings *s = conn->settings;
    const char *argv[3] = {"AUTH"};
    char db[24], what[128];
    redis_conn_status status = REDIS_CONN_OK;
    int argc = 1;

    if (conn->password != NULL) {
        if (s->username != NULL)
            argv[argc++] = s->username;
        argv[argc++] = conn->password;
        snprintf(what, sizeof what, "AUTH as %s with the password of password_file",
                 s->username != NULL ? s->username : "the default user");
        status = run_command(conn, argc, argv, what, why, whylen);
    }
    if (status == REDIS_CONN_OK && s->db != 0) {
        snprintf(db, sizeof db, "%lld", (long long)s->db);
        snprintf(what, sizeof what, "SELECT %s (setting db)", db);
        status = run_command(conn, 2, (const char *[]){"SELECT", db}, what, why, whylen);
    }
    return status;
}

redis_conn_status redis_conn_ensure(redis_conn *conn, char *why, size_t whylen)
{
    const redis_settings *s = conn->settings;
    struct timeval tv = timeout_of(s);
    redis_conn_status status;

    if (conn->ctx != NULL)
        return REDIS_CONN_OK;
    conn->ctx = s->unix_socket ? redisConnectUnixWithTimeout(s->address, tv)
                               : redisConnectWithTimeout(s->host, s->port, tv);
    if (conn->ctx == NULL || conn->ctx->err != 0) {
        snprintf(why, whylen, "cannot connect to %s: %s", s->address,
                 conn->ctx != NULL ? conn->ctx->errstr : "out of memory");
        redis_conn_drop(conn);
        return REDIS_CONN_DOWN;
    }
    if (redisSetTimeout(conn->ctx, tv) != REDIS_OK) {
        snprintf(why, whylen, "cannot set the timeout of the connection to %s: %s", s->address,
                 conn->ctx->errstr);
        redis_conn_drop(conn);
        return REDIS_CONN_DOWN;
    }
    status = log_in(conn, why, whylen);
    if (status != REDIS_CONN_OK)
        redis_conn_drop(conn);
    return status;
}

/* ---- one exchange ---------------------------------------------------------------------------- */

static redis_conn_status lost(redis_conn *conn, char *why, size_t whylen)
{
    snprintf(why, whylen, "the connection to %s failed: %s", conn->settings->address,
             conn->ctx->errstr[0] != '\0' ? conn->ctx->errstr : "closed");
    redis_conn_drop(conn);
    return REDIS_CONN_DOWN;
}

redis_conn_status redis_conn_send(redis_conn *conn, const char *head, size_t headlen,
                                  const char *tail, size_t taillen, char *why, size_t whylen)
{
    int done = 0;

    if (redisAppendFormattedCommand(conn->ctx, head, headlen) != REDIS_OK ||
        redisAppendFormattedCommand(conn->ctx, tail, taillen) != REDIS_OK)
        return lost(conn, why, whylen);
    while (!done)
        if (redisBufferWrite(conn->ctx, &done) != REDIS_OK)
            return lost(conn, why, whylen);
    return REDIS_CONN_OK;
}

redis_conn_status redis_conn_collect(redis_conn *conn, size_t nreplies, redisReply **last,
                                     char *why, size_t whylen)
{
    void *reply = NULL;

    *last = NULL;
    why[0] = '\0';
    if (conn->ctx == NULL) {
        snprintf(why, whylen, "the connection to %s was closed", conn->settings->address);
        return REDIS_CONN_DOWN;
    }
    for (size_t i = 0; i < nreplies; i++) {
        if (redisGetReply(conn->ctx, &reply) != REDIS_OK || reply == NULL)
            return lost(conn, why, whylen);
        if (i + 1 == nreplies) {
            *last = reply;
            break;
        }
        const redisReply *r = reply;
        if (r->type == REDIS_REPLY_ERROR && why[0] == '\0')
            snprintf(why, whylen, "%s", r->str);
        freeReplyObject(reply);
    }
    return REDIS_CONN_OK;
}
