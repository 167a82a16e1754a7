/*
 * itest_env: what the harness (tests/pg-harness.sh, tests/run.sh) hands an end-to-end test: the
 * environment variables naming the server (PGHOST, PGPORT, PGUSER), its folder (WN_TEST_PGDIR,
 * holding postgresql.log) and the repository (WN_ROOT, holding build/). A missing variable fails
 * the test.
 */
#ifndef WN_TEST_ITEST_ENV_H
#define WN_TEST_ITEST_ENV_H

#include <limits.h>

typedef struct itest_path {
    char s[PATH_MAX];
} itest_path;

const char *itest_env(const char *name);
itest_path itest_root_file(const char *relative); /* $WN_ROOT/relative */

/* The server's log from byte offset on (to free); its current size. */
long itest_server_log_size(void);
char *itest_server_log_since(long offset);

#endif
