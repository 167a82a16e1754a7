/*
 * One large transaction through the redis plugin: it goes in MULTI/EXEC batches of
 * batch_entries, so walnotify's memory stays bounded however large the transaction (neither side
 * queues the whole of it), and the stream ends with one entry per row, in order. walnotify's
 * peak RSS is measured as test_bigtxn does.
 *
 * WN_REDIS_BIG_ROWS sets the rows (default 100,000; `make check-sinks` runs 2,000,000).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "itest.h"
#include "redisserver.h"
#include "redissink.h"

#define STREAM "walnotify:public.t"
#define DEFAULT_ROWS 100000L
#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer keeps freed memory in its quarantine (256 MB): the bound is the plain
 * build's to check. */
#define PEAK_RSS_LIMIT_KB (512L * 1024)
#else
#define PEAK_RSS_LIMIT_KB (16L * 1024)
#endif
#define RUN_S_BASE 60   /* the bound of the host run: this, plus a second per */
#define ROWS_PER_S 8000 /* this many rows (a busy machine streams many more) */

/* The first (or last) entry holds row `id`, and the last one's ID is the recorded one. */
static void assert_end(const redis_server *rs, const char *command, const char *from,
                       const char *to, long id)
{
    char *out = redis_cli(rs, (const char *const[]){command, STREAM, from, to, "COUNT", "1", NULL});
    char expect[64], *last;

    snprintf(expect, sizeof expect, "\"values\":{\"id\":\"%ld\"}", id);
    ck_assert_msg(strstr(out, expect) != NULL, "%s %s: %s", command, STREAM, out);
    if (strcmp(command, "XREVRANGE") == 0) {
        last = redis_get(rs, STREAM ":walnotify-last-id");
        ck_assert_ptr_nonnull(last);
        ck_assert_msg(strncmp(out, last, strlen(last)) == 0 && out[strlen(last)] == '\n',
                      "the recorded last ID %s is not the top entry's: %s", last, out);
        free(last);
    }
    free(out);
}

START_TEST(test_large_transaction)
{
    const char *rows_text = getenv("WN_REDIS_BIG_ROWS");
    long rows = rows_text != NULL && atol(rows_text) > 0 ? atol(rows_text) : DEFAULT_ROWS;
    itest_ctx ctx;
    itest_host host;
    itest_path conf;
    redis_server rs;
    char *end;
    long maxrss_kb = 0;
    size_t used;

    itest_begin(&ctx, "redisbig");
    /* As in test_bigtxn: the walsender's memory, not walnotify's, would otherwise spill. */
    used = strlen(ctx.conninfo);
    ck_assert_msg((size_t)snprintf(ctx.conninfo + used, sizeof ctx.conninfo - used,
                                   " options='-c logical_decoding_work_mem=1GB'") <
                      sizeof ctx.conninfo - used,
                  "conninfo too long");
    itest_exec(ctx.conn, "CREATE TABLE t (id bigint PRIMARY KEY)");
    redis_server_start(&rs, ctx.dir, "");
    conf = redissink_config(&ctx, "big.cfg", &rs, "", "");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t SELECT generate_series(1, %ld)", rows);
    end = itest_lsn_text(itest_current_lsn(ctx.conn));
    faults_host_run_rusage(&ctx, &host, ITEST_ARGS("-c", conf.s, "--endpos", end),
                           (int)(RUN_S_BASE + rows / ROWS_PER_S), &maxrss_kb);
    free(end);
    fprintf(stderr, "redis bigtxn: %ld rows, host peak RSS %ld kB\n", rows, maxrss_kb);
    itest_assert_exit(&host, 0);

    /* Every row once, in order: the stream's length, what Redis ever took, and its ends. */
    ck_assert_int_eq(redis_xlen(&rs, STREAM), rows);
    ck_assert_int_eq(redissink_entries_added(&rs, STREAM), rows);
    assert_end(&rs, "XRANGE", "-", "+", 1);
    assert_end(&rs, "XREVRANGE", "+", "-", rows);
    ck_assert_msg(maxrss_kb < PEAK_RSS_LIMIT_KB,
                  "walnotify's peak RSS was %ld kB, over the %ld kB bound", maxrss_kb,
                  PEAK_RSS_LIMIT_KB);
    redis_server_stop(&rs);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("redis_bigtxn");
    TCase *tc = itest_tcase(suite, "redis_bigtxn");

    tcase_add_test(tc, test_large_transaction);
    return run_suite(suite) == 0 ? 0 : 1;
}
