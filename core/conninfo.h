/*
 * conninfo: connections made the way walnotify needs them: the user's conninfo, plus the
 * contract's session settings appended to the user's own `options`, plus replication=database
 * for the stream. Passwords never reach a log line.
 */
#ifndef WN_CONNINFO_H
#define WN_CONNINFO_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "exitcode.h" /* how a failed connection should end the run */

/*
 * Checks conninfo (keywords or URI) without connecting: true when libpq can parse it and it
 * leaves `replication` to walnotify. Otherwise false with one line in why (whylen bytes) that
 * quotes nothing of the conninfo but, at most, the name of a keyword libpq does not know.
 */
bool wn_conninfo_check(const char *conninfo, char *why, size_t whylen);

/* The parameters of one connection, as PQconnectdbParams takes them. */
typedef struct wn_conn_params {
    const char **keywords;    /* NULL-terminated; owned array, strings borrowed from parsed,
                                 options or static text */
    const char **values;      /* values[i] goes with keywords[i] */
    PQconninfoOption *parsed; /* the user's conninfo, parsed; owned */
    char *options;            /* the merged `options` value; owned */
} wn_conn_params;

/*
 * Builds the parameters walnotify connects with from `conninfo` (keywords or URI): every keyword
 * the user set, each once, except the ones walnotify manages; `options` = the user's own options
 * followed by the contract's session settings (-c datestyle=ISO -c intervalstyle=postgres
 * -c extra_float_digits=3 -c timezone=UTC -c bytea_output=hex), so that the session settings win;
 * replication=database when replication (a user's `replication` is dropped either way);
 * client_encoding=UTF8 when utf8, else the user's own if any; fallback_application_name (the
 * user's, else "walnotify"); and TCP keepalives (keepalives=1, keepalives_idle=30,
 * keepalives_interval=10, keepalives_count=3), each unless the user set it.
 * Returns 0 (free *params with wn_conn_params_free), or the exit status with one line in err:
 * WN_EXIT_CONFIG when conninfo does not parse (the line quotes no value of it), WN_EXIT_SERVER
 * when out of memory; *params then holds nothing to free.
 */
int wn_conn_params_build(const char *conninfo, bool replication, bool utf8,
                         wn_conn_params *params, char *err, size_t errlen);
void wn_conn_params_free(wn_conn_params *params);

/*
 * Connects with the parameters wn_conn_params_build makes of `conninfo`: replication adds
 * replication=database; utf8 adds client_encoding=UTF8 (leave it false for a SQL_ASCII
 * database); TCP keepalives are switched on (idle 30 s, interval 10 s, 3 probes) unless the
 * conninfo sets them. Returns the connection, or NULL with one line in err (where the
 * conninfo's password never appears, even when libpq's message quotes it) and *exit_status set:
 * WN_EXIT_CONFIG for an unparsable conninfo, WN_EXIT_TRANSIENT when waiting may help (refused,
 * unreachable, starting up, shutting down, too many clients), WN_EXIT_SERVER otherwise
 * (authentication refused, unknown role or database).
 */
PGconn *wn_connect(const char *conninfo, bool replication, bool utf8, int *exit_status, char *err,
                   size_t errlen);

/* WN_EXIT_TRANSIENT or WN_EXIT_SERVER for libpq's message about a connection that failed. */
int wn_connect_failure_status(const char *message);

/* WN_EXIT_TRANSIENT when a failed command on conn is worth retrying on a new connection (the
 * connection is gone, or the SQLSTATE of res says the server is going down, starting up, short
 * of resources, or terminated the session), else WN_EXIT_SERVER. */
int wn_command_failure_status(PGconn *conn, const PGresult *res);

/* A copy of conninfo fit for a log line: the password, if any, replaced by "********". Caller
 * frees. */
char *wn_conninfo_redact(const char *conninfo);

/* Copies src into dst (dstlen bytes) with every run of whitespace, newlines included, folded to
 * one space and the ends trimmed, so that a libpq message fits on one line. */
void wn_fold_lines(char *dst, size_t dstlen, const char *src);

/* The server's reason for a failed command (its primary message, without "ERROR:  "), else
 * libpq's, on one line; res may be NULL. */
void wn_server_message(PGconn *conn, const PGresult *res, char *out, size_t outlen);

#endif
