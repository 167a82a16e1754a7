/*
 * watch: keeps a faults_history (faults.h) up to date from a thread of its own while a test
 * drives the host, so that the delivery invariant can be checked for any test, not only for
 * those that kill the host:
 *
 *   - every ITEST_POLL_MS it samples the slot's confirmed_flush_lsn (and the fixture's log size);
 *   - it follows the host's stderr and cuts the history into one run per replication stream:
 *     a stream ends when the host logs "dispatcher stopped" or "stream rewound" (every plugin call of that stream is
 *     over), and the next one starts where "replication stream back at LSN" (or "up at LSN",
 *     for a host that waited for the slot) says. The log size between the two lines is where
 *     the ended stream's lines end.
 *
 * The first run is the caller's (faults_run_begin before the host starts); the last run is
 * ended by the caller (faults_run_end) after watch_stop. Between watch_start and watch_stop the
 * history belongs to the watch. Like itest, every helper fails the running Check test instead of
 * returning an error; what goes wrong in the thread is reported by the next watch_* call.
 */
#ifndef WN_TEST_WATCH_H
#define WN_TEST_WATCH_H

#include <stdbool.h>

#include "faults.h"
#include "itest.h"

typedef struct watch watch;

/*
 * Starts watching ctx's slot into history (whose log_path is the fixture's log) and following
 * host's stderr (none when host is NULL: one stream, one run). The watch has its own connection
 * to ctx->db. To free with watch_stop.
 */
watch *watch_start(const itest_ctx *ctx, faults_history *history, const itest_host *host);

/* Samples once more (unless the server is down), stops the thread and frees the watch. */
void watch_stop(watch *w);

/* The server is going down: no sampling until watch_server_up; stderr is still followed. */
void watch_server_down(watch *w);
/* The server is back: the watch's connection is made again and sampling goes on. */
void watch_server_up(watch *w);

/*
 * The followed host is gone (killed and reaped): its run ends at the log's size now, and the
 * next run starts where host, which has not streamed yet, says its stream starts.
 */
void watch_takeover(watch *w, const itest_host *host);

/* Reconnections seen so far, the host's stderr read up to now (runs begun after a stream
 * ended). */
int watch_reconnections(watch *w);

/* The number of slot samples so far. */
size_t watch_samples(watch *w);

/*
 * Starts the host (args, as for itest_host_start) for a run the test ends itself: its first run
 * begun (faults_run_begin), then watched and its stderr followed (watch_start). The test ends it
 * with watch_stop and faults_run_end.
 */
watch *watch_host_start(itest_ctx *ctx, faults_history *history, itest_host *host,
                        const char *const *args);

/*
 * Runs the host to its end like itest_host_run, watched: faults_run_begin before it starts,
 * faults_run_end after it exits (whole when it exited 0, as a run to --endpos does). Returns
 * its exit code.
 */
int watch_host_run(itest_ctx *ctx, faults_history *history, itest_host *host,
                   const char *const *args);

#endif
