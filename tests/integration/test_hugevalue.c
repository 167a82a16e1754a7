/*
 * A single huge value costs walnotify a small multiple of its own size, never more: the value
 * travels through libpq's buffer, the event and the jsonl line, each once. The line written must
 * hold the value byte for byte.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "itest.h"

#define VALUE_MB 48
#define VALUE_BYTES ((long)VALUE_MB * 1024 * 1024)
/* libpq's copy, the event's, the line's, plus the host's few MiB: well under eight copies. */
#define PEAK_RSS_LIMIT_KB (8L * VALUE_BYTES / 1024)
#define RUN_S 110

START_TEST(test_huge_value_costs_a_small_multiple)
{
    itest_ctx ctx;
    itest_host host;
    itest_path conf, out;
    itest_events events;
    char *end_text;
    long maxrss_kb = 0;
    const char *value;

    itest_begin(&ctx, "hugevalue");
    /* Stored uncompressed, so the server hands over the whole 48 MiB. */
    itest_exec(ctx.conn, "CREATE TABLE t (id int PRIMARY KEY, body text)");
    itest_exec(ctx.conn, "ALTER TABLE t ALTER COLUMN body SET STORAGE EXTERNAL");
    conf = itest_config(&ctx, "h.cfg", "\"public.t\"", 1000,
                        "{ name = \"out\"; path = \"%s\"; settings = { path = \"out.jsonl\"; "
                        "fsync = false; }; }",
                        itest_root_file("build/plugins/jsonl.so").s);
    out = itest_file(&ctx, "out.jsonl");
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO t VALUES (1, repeat('x', %ld))", VALUE_BYTES);
    end_text = itest_lsn_text(itest_current_lsn(ctx.conn));

    faults_host_run_rusage(&ctx, &host, ITEST_ARGS("-c", conf.s, "--endpos", end_text), RUN_S,
                           &maxrss_kb);
    free(end_text);
    fprintf(stderr, "hugevalue: a %d MiB value, host peak RSS %ld kB\n", VALUE_MB, maxrss_kb);
    itest_assert_exit(&host, 0);

    events = itest_read_events(out.s);
    ck_assert_msg(events.count == 1, "%zu events, expected 1", events.count);
    value = itest_value(&events.event[0], "body");
    ck_assert_msg(value && (long)strlen(value) == VALUE_BYTES, "the value arrived with %zu bytes",
                  value ? strlen(value) : 0);
    ck_assert_msg(value[0] == 'x' && value[VALUE_BYTES - 1] == 'x' &&
                      strspn(value, "x") == (size_t)VALUE_BYTES,
                  "the value's bytes changed on the way");
    itest_events_free(&events);
    ck_assert_msg(maxrss_kb < PEAK_RSS_LIMIT_KB,
                  "walnotify's peak RSS was %ld kB for a %d MiB value, over the %ld kB bound",
                  maxrss_kb, VALUE_MB, PEAK_RSS_LIMIT_KB);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("hugevalue");
    TCase *tc = itest_tcase(suite, "hugevalue");

    tcase_add_test(tc, test_huge_value_costs_a_small_multiple);
    return run_suite(suite) == 0 ? 0 : 1;
}
