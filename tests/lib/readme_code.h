/*
 * readme_code: the plugins README.md shows, taken at their word. A test cuts a plugin's C block
 * out of README.md and builds it with the very line the README gives its reader, so that a
 * change to the header, the host or the text that breaks the guide breaks the test.
 */
#ifndef WN_TEST_README_CODE_H
#define WN_TEST_README_CODE_H

#include "itest.h"

#define README_BUILD_LINE_MAX 200 /* bytes of the longest build line a test may pass */

/*
 * Builds the first C block ("```c" to the next "```" line) after `mark` in README.md as its
 * reader would: written to ctx->dir/source beside a link to the tree's include/, then
 * `build_line` run in ctx->dir. Fails the running test unless README.md holds the mark, the
 * block, and build_line as a line of its own, and the build succeeds.
 */
void readme_code_build(itest_ctx *ctx, const char *mark, const char *source,
                       const char *build_line);

/* The non-blank lines of the first C block after mark in README.md, comments included. */
int readme_code_lines(const char *mark);

/*
 * A sink under kill -9: a writer commits rows into table (ids from sequence, so they grow in
 * commit order) while walnotify runs with conf and is killed with SIGKILL `rounds` times at
 * random points (seeded by faults_seed(what), printed); then the writer stops and walnotify runs
 * once more to the end of the WAL, which it must reach with exit 0. Returns the rows written:
 * the sink's output must then hold ids 1 to that, each once, in order.
 */
long long readme_code_kill_loop(itest_ctx *ctx, const char *conf, const char *table,
                                const char *sequence, int rounds, const char *what);

#endif
