/*
 * itest_loglines: the logs the test fixtures (flaky, blocker, ...) write, one line per event they
 * handle: "LSN SEQ TABLE OP ID".
 */
#ifndef WN_TEST_ITEST_LOGLINES_H
#define WN_TEST_ITEST_LOGLINES_H

#include <stddef.h>

#include "lsn.h"

typedef struct itest_logline {
    wn_lsn lsn;
    long seq;
    char table[128];
    char op[16];
    char id[64];
} itest_logline;

typedef struct itest_loglines {
    itest_logline *line;
    size_t count;
} itest_loglines;

itest_loglines itest_read_log(const char *path);
/* Waits (timeout_s at most) until path holds count lines. */
itest_loglines itest_wait_log(const char *path, size_t count, int timeout_s);
void itest_loglines_free(itest_loglines *lines);

#endif
