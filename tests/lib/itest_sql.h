/*
 * itest_sql: SQL over an ordinary libpq session to the harness's server. Every helper fails the
 * running Check test on an error instead of returning it.
 */
#ifndef WN_TEST_ITEST_SQL_H
#define WN_TEST_ITEST_SQL_H

#include <libpq-fe.h>

/* A session on dbname as the harness's user; options are libpq's (NULL for none). */
PGconn *itest_connect(const char *dbname, const char *options);
/* itest_exec runs commands and fails on error; itest_query returns the one value of a one-row,
 * one-column result (NULL for SQL NULL), to free. */
void itest_exec(PGconn *conn, const char *format, ...) __attribute__((format(printf, 2, 3)));
char *itest_query(PGconn *conn, const char *format, ...) __attribute__((format(printf, 2, 3)));
long long itest_query_int(PGconn *conn, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* Waits (ITEST_WAIT_S at most) until the one-value query returns at least `least`. */
void itest_wait_query_at_least(PGconn *conn, long long least, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* ALTER SYSTEM SET name = 'value' and a reload; waits (ITEST_WAIT_S at most) until SHOW name
 * gives value, as a reload takes effect a moment after pg_reload_conf returns. */
void itest_set_server_setting(PGconn *conn, const char *name, const char *value);
/* ALTER SYSTEM RESET name and a reload, on a connection of its own: for a teardown, which runs
 * also after a failed test; what goes wrong is said on stderr, never raised. */
void itest_reset_server_setting(const char *name);

#endif
