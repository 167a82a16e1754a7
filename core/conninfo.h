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

/*
 * Connects with `conninfo` (keywords or URI). replication adds replication=database; utf8 adds
 * client_encoding=UTF8 (leave it false for a SQL_ASCII database). Returns the connection, or
 * NULL with one line in err and *exit_status set (WN_EXIT_CONFIG for an unparsable conninfo,
 * WN_EXIT_SERVER otherwise, authentication refused included).
 */
PGconn *wn_connect(const char *conninfo, bool replication, bool utf8, int *exit_status, char *err,
                   size_t errlen);

/* A copy of conninfo fit for a log line: the password, if any, replaced by "********". Caller
 * frees. */
char *wn_conninfo_redact(const char *conninfo);

#endif
