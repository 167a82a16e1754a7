/* itest_slot: WAL positions, slots and publications; see itest_slot.h. */
#include "itest_slot.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "itest_sql.h"

static wn_lsn query_lsn(PGconn *conn, const char *sql)
{
    char *text = itest_query(conn, "%s", sql);
    wn_lsn lsn;

    ck_assert_msg(text != NULL, "NULL where an LSN was expected: %s", sql);
    ck_assert_msg(wn_lsn_parse(text, &lsn), "not an LSN: %s", text);
    free(text);
    return lsn;
}

wn_lsn itest_current_lsn(PGconn *conn)
{
    return query_lsn(conn, "SELECT pg_current_wal_lsn()");
}

wn_lsn itest_insert_lsn(PGconn *conn)
{
    return query_lsn(conn, "SELECT pg_current_wal_insert_lsn()");
}

bool itest_slot_exists(PGconn *conn, const char *slot)
{
    return itest_query_int(conn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s'",
                           slot) == 1;
}

wn_lsn itest_slot_confirmed(PGconn *conn, const char *slot)
{
    char *sql = NULL;
    wn_lsn lsn;

    ck_assert_msg(itest_slot_exists(conn, slot), "replication slot %s does not exist", slot);
    ck_assert(asprintf(&sql,
                       "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '%s'",
                       slot) >= 0);
    lsn = query_lsn(conn, sql);
    free(sql);
    return lsn;
}

bool itest_publication_exists(PGconn *conn, const char *pub)
{
    return itest_query_int(conn, "SELECT count(*) FROM pg_publication WHERE pubname = '%s'", pub) ==
           1;
}

char *itest_lsn_text(wn_lsn lsn)
{
    char *text = malloc(WN_LSN_TEXT_MAX);

    ck_assert_msg(text != NULL, "out of memory");
    return wn_lsn_format(lsn, text);
}
