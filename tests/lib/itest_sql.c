/* itest_sql: SQL helpers over libpq; see itest_sql.h. */
#include "itest_sql.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest_env.h"
#include "itest_time.h"

PGconn *itest_connect(const char *dbname, const char *options)
{
    const char *keys[] = {"host", "port", "user", "dbname", "options", "client_encoding",
                          "application_name", NULL};
    const char *values[] = {itest_env("PGHOST"), itest_env("PGPORT"), itest_env("PGUSER"),
                            dbname, options ? options : "", "UTF8", "walnotify-itest", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);

    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        ck_abort_msg("cannot connect to database %s: %s", dbname,
                     conn ? PQerrorMessage(conn) : "out of memory");
    return conn;
}

static char *format_sql(const char *format, va_list args)
{
    char *sql = NULL;

    ck_assert_msg(vasprintf(&sql, format, args) >= 0, "out of memory");
    return sql;
}

void itest_exec(PGconn *conn, const char *format, ...)
{
    va_list args;
    char *sql;
    PGresult *res;

    va_start(args, format);
    sql = format_sql(format, args);
    va_end(args);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        ck_abort_msg("SQL failed: %.300s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    free(sql);
}

static char *query_one(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    char *value = NULL;

    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        ck_abort_msg("SQL failed: %.300s: %s", sql, PQerrorMessage(conn));
    if (PQntuples(res) != 1 || PQnfields(res) != 1)
        ck_abort_msg("SQL returned %d rows of %d columns, expected one value: %.300s",
                     PQntuples(res), PQnfields(res), sql);
    if (!PQgetisnull(res, 0, 0)) {
        value = strdup(PQgetvalue(res, 0, 0));
        ck_assert_msg(value != NULL, "out of memory");
    }
    PQclear(res);
    return value;
}

char *itest_query(PGconn *conn, const char *format, ...)
{
    va_list args;
    char *sql, *value;

    va_start(args, format);
    sql = format_sql(format, args);
    va_end(args);
    value = query_one(conn, sql);
    free(sql);
    return value;
}

long long itest_query_int(PGconn *conn, const char *format, ...)
{
    va_list args;
    char *sql, *value, *end;
    long long n;

    va_start(args, format);
    sql = format_sql(format, args);
    va_end(args);
    value = query_one(conn, sql);
    ck_assert_msg(value != NULL, "NULL where a number was expected: %.300s", sql);
    n = strtoll(value, &end, 10);
    ck_assert_msg(*end == '\0', "not an integer: %s from %.300s", value, sql);
    free(value);
    free(sql);
    return n;
}

void itest_wait_query_at_least(PGconn *conn, long long least, const char *format, ...)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    va_list args;
    char *sql, *value;
    long long n;

    va_start(args, format);
    sql = format_sql(format, args);
    va_end(args);
    for (;;) {
        value = query_one(conn, sql);
        n = value ? strtoll(value, NULL, 10) : 0;
        free(value);
        if (n >= least)
            break;
        ck_assert_msg(!itest_expired(&deadline), "%.200s gave %lld after %d s, expected %lld", sql,
                      n, ITEST_WAIT_S, least);
        itest_sleep_ms(ITEST_POLL_MS);
    }
    free(sql);
}

void itest_set_server_setting(PGconn *conn, const char *name, const char *value)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    char *now;

    itest_exec(conn, "ALTER SYSTEM SET %s = '%s'", name, value);
    itest_exec(conn, "SELECT pg_reload_conf()");
    for (;;) {
        now = itest_query(conn, "SHOW %s", name);
        if (now != NULL && strcmp(now, value) == 0)
            break;
        free(now);
        ck_assert_msg(!itest_expired(&deadline), "%s did not become %s", name, value);
        itest_sleep_ms(ITEST_POLL_MS);
    }
    free(now);
}

/* One command of a teardown; says what failed. */
static void exec_quietly(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);

    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fprintf(stderr, "itest: %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
}

void itest_reset_server_setting(const char *name)
{
    PGconn *conn = PQconnectdb("dbname=postgres");
    char sql[128];

    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "itest: cannot reset %s: %s", name, PQerrorMessage(conn));
        PQfinish(conn);
        return;
    }
    if (snprintf(sql, sizeof sql, "ALTER SYSTEM RESET %s", name) < (int)sizeof sql)
        exec_quietly(conn, sql);
    else
        fprintf(stderr, "itest: cannot reset %s: name too long\n", name);
    exec_quietly(conn, "SELECT pg_reload_conf()");
    PQfinish(conn);
}
