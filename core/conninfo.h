/*
 * conninfo: connections made the way walnotify needs them: the user's conninfo, plus the
 * contract's session settings appended to the user's own `options`, plus replication=database
 * for the stream. No conninfo value reaches a message: servers are named by libpq's PQhost and
 * PQport, and every secret (the keywords libpq itself hides: password, sslpassword) is scrubbed
 * from libpq's own messages.
 */
#ifndef WN_CONNINFO_H
#define WN_CONNINFO_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "exitcode.h" /* how a failed connection should end the run */

/* A connection attempt's bound when the conninfo sets no connect_timeout, per host. */
#define WN_DEFAULT_CONNECT_TIMEOUT_S 10
#define WN_DEFAULT_CONNECT_TIMEOUT_TEXT "10"

/* Room for one message about a connection (libpq's text included). */
#define WN_MESSAGE_MAX 2048

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
int wn_conn_params_build(const char *conninfo, bool replication, bool utf8, wn_conn_params *params,
                         char *err, size_t errlen);
/* The same, with fallback_application_name = fallback_name (NULL: "walnotify") unless the
 * user set one. */
int wn_conn_params_build_as(const char *conninfo, const char *fallback_name, bool replication,
                            bool utf8, wn_conn_params *params, char *err, size_t errlen);
void wn_conn_params_free(wn_conn_params *params);

/*
 * Connects with the parameters wn_conn_params_build makes of `conninfo`: replication adds
 * replication=database; utf8 adds client_encoding=UTF8 (leave it false for a SQL_ASCII
 * database); TCP keepalives are switched on (idle 30 s, interval 10 s, 3 probes) and
 * connect_timeout is 10 s, each unless the conninfo sets it. The attempt is polled: it ends when
 * stop_fd (-1: none) becomes readable, or when connect_timeout per listed host has passed.
 * Returns the connection, or NULL with one line in err that names the server by host and port
 * and quotes no secret, and *exit_status set: WN_EXIT_CONFIG for an unparsable conninfo,
 * WN_EXIT_STOPPED when stop_fd became readable, WN_EXIT_TRANSIENT when waiting may help (no
 * server reached, timed out, or a SQLSTATE of starting up, shutting down, too many clients),
 * WN_EXIT_SERVER when a person must act (a password needed, or any other SQLSTATE the server
 * refused with: authentication, unknown role or database, privileges).
 */
PGconn *wn_connect(const char *conninfo, bool replication, bool utf8, int stop_fd, int *exit_status,
                   char *err, size_t errlen);
/* The same, with fallback_application_name = fallback_name (NULL: "walnotify"). */
PGconn *wn_connect_as(const char *conninfo, const char *fallback_name, bool replication, bool utf8,
                      int stop_fd, int *exit_status, char *err, size_t errlen);

/* WN_EXIT_TRANSIENT or WN_EXIT_SERVER for the SQLSTATE a server refused a connection with
 * (NULL: none known, transient). */
int wn_connect_sqlstate_status(const char *sqlstate);

/* WN_EXIT_TRANSIENT when a failed command on conn is worth retrying on a new connection (the
 * connection is gone, or the SQLSTATE of res says the server is going down, starting up, short
 * of resources, or terminated the session), else WN_EXIT_SERVER. */
int wn_command_failure_status(PGconn *conn, const PGresult *res);

/* Whether libpq hides the value of this keyword (password, sslpassword). */
bool wn_conninfo_is_secret(const PQconninfoOption *option);

/* Replaces in text (textlen bytes of room) every occurrence, standing as a token of its own, of
 * the value of each secret keyword in options by "********". */
void wn_conninfo_scrub(const PQconninfoOption *options, char *text, size_t textlen);

/* True when stop_fd (-1: none) is readable: a stop was asked for. */
bool wn_stop_requested(int stop_fd);

/*
 * Runs sql on conn (with the extended protocol and nparams text parameters, or, when params is
 * NULL, as a simple query, as a replication connection needs), waiting for its result while
 * watching stop_fd. Returns the last result (the first copy result for a command that starts a
 * copy), or NULL: *stopped when a stop was asked for (before sending: nothing sent; after: the
 * command was cancelled and its end awaited for a few seconds), else libpq's failure
 * (PQerrorMessage).
 */
PGresult *wn_exec(PGconn *conn, int stop_fd, const char *sql, int nparams,
                  const char *const *params, bool *stopped);

/* The second half of wn_exec: waits for the results of the command sent on conn, watching
 * stop_fd, and returns the last one (or the copy result), NULL as wn_exec does. */
PGresult *wn_await_result(PGconn *conn, int stop_fd, bool *stopped);
/* Waits until conn's socket is readable (data of a copy in progress), or until stop_fd (-1:
 * none) is: then the command is cancelled and false returned. */
bool wn_await_input(PGconn *conn, int stop_fd);
/* Copies src into dst (dstlen bytes) with every run of whitespace, newlines included, folded to
 * one space and the ends trimmed, so that a libpq message fits on one line. */
void wn_fold_lines(char *dst, size_t dstlen, const char *src);

/* The server's reason for a failed command (its primary message, without "ERROR:  "), else
 * libpq's, on one line; res may be NULL. */
void wn_server_message(PGconn *conn, const PGresult *res, char *out, size_t outlen);

#endif
