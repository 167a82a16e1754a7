/*
 * itest: helpers for walnotify's end-to-end tests against a running PostgreSQL, one module per
 * concern; an integration test includes this header for all of them.
 *
 * Every helper fails the running Check test (ck_abort_msg) instead of returning an error, and
 * every wait is bounded (itest_time.h).
 *
 *   itest_time.h      the bounds of waits, deadlines, sleeping
 *   itest_env.h       the harness's environment (server, repository) and the server's log
 *   itest_sql.h       SQL over libpq: commands, one-value queries, waiting on a query
 *   itest_slot.h      WAL positions, replication slots and publications
 *   itest_ctx.h       a test's own database, slot, publication, folder and configuration files
 *   itest_files.h     files and their lines
 *   itest_fork.h      forking while helper threads run
 *   itest_host.h      walnotify run as a child: start, wait, stop, its output and exit
 *   itest_writer.h    a child process committing in a loop
 *   itest_events.h    the jsonl plugin's output parsed, described and compared
 *   itest_loglines.h  the test fixtures' event logs
 *   itest_suite.h     the main: test cases and the run of the suite (run_suite.h)
 */
#ifndef WN_TEST_ITEST_H
#define WN_TEST_ITEST_H

#include "itest_ctx.h"
#include "itest_env.h"
#include "itest_events.h"
#include "itest_files.h"
#include "itest_fork.h"
#include "itest_host.h"
#include "itest_loglines.h"
#include "itest_slot.h"
#include "itest_sql.h"
#include "itest_suite.h"
#include "itest_time.h"
#include "itest_writer.h"

#endif
