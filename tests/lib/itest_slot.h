/*
 * itest_slot: WAL positions, replication slots and publications as the server reports them.
 */
#ifndef WN_TEST_ITEST_SLOT_H
#define WN_TEST_ITEST_SLOT_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "lsn.h"

wn_lsn itest_current_lsn(PGconn *conn);        /* pg_current_wal_lsn() */
wn_lsn itest_insert_lsn(PGconn *conn);         /* pg_current_wal_insert_lsn() */
bool itest_slot_exists(PGconn *conn, const char *slot);
wn_lsn itest_slot_confirmed(PGconn *conn, const char *slot); /* fails when the slot is missing */
bool itest_publication_exists(PGconn *conn, const char *pub);
char *itest_lsn_text(wn_lsn lsn);              /* to free */

#endif
