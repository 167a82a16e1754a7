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

/* How a failed connection should end the run: the exit status. */
#define WN_EXIT_CONFIG 1
#define WN_EXIT_SERVER 3

/* Not exit statuses: failures that waiting may cure, for the caller to retry (or to turn into
 * WN_EXIT_SERVER when it does not wait). */
#define WN_EXIT_TRANSIENT 75 /* server unreachable, starting up, shutting down; connection lost */
#define WN_EXIT_SLOT_BUSY 76 /* the slot is active for another process (SQLSTATE 55006) */

/*
 * Connects with `conninfo` (keywords or URI). replication adds replication=database; utf8 adds
 * client_encoding=UTF8 (leave it false for a SQL_ASCII database); TCP keepalives are switched on
 * (idle 30 s, interval 10 s, 3 probes) unless the conninfo sets them. Returns the connection, or
 * NULL with one line in err and *exit_status set: WN_EXIT_CONFIG for an unparsable conninfo,
 * WN_EXIT_TRANSIENT when waiting may help (refused, unreachable, starting up, shutting down, too
 * many clients), WN_EXIT_SERVER otherwise (authentication refused, unknown role or database).
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
