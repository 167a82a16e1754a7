/*
 * itest_writer: a child process committing SQL in a loop while a test stops, kills or restarts
 * things around it.
 */
#ifndef WN_TEST_ITEST_WRITER_H
#define WN_TEST_ITEST_WRITER_H

#include <sys/types.h>

#include "itest_ctx.h"

/* A process committing `sql` in a loop on its own connection to ctx->db until stopped. */
pid_t itest_writer_start(const itest_ctx *ctx, const char *sql);
void itest_writer_stop(pid_t pid);
/* In a writer child: SIGTERM then ends it between statements (itest_writer_stop_if_asked, called
 * after each), so no commit of a stopped writer lands later. */
void itest_writer_child_setup(void);
void itest_writer_stop_if_asked(void);

#endif
