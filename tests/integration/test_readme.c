/*
 * The README's plugin author's guide, taken at its word: the complete plugin it shows is cut out
 * of README.md, built with the one cc line it gives, checked with --check-config and run against
 * the server. A change to plugin.h or the host that breaks the guide breaks this test. The
 * crash-safe CSV sink is built the same way and killed with -9 in a loop while rows whose values
 * hold quotes, commas and newlines are written: its file must hold every row once, in order.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "readme_code.h"

#define GUIDE_MARK "**A complete plugin**"
#define BUILD_LINE "cc -shared -fPIC -I include -o rowprint.so rowprint.c"
#define CSV_MARK "**A crash-safe CSV sink**"
#define CSV_BUILD_LINE "cc -shared -fPIC -I include -o csvsink.so csvsink.c"
#define CSV_MAX_LINES 80 /* the example stays short: what it needs, the host lends */
#define KILLS 5
#define NOTE "a \"quoted\", value\nover two lines"
#define NOTE_CSV "\"a \"\"quoted\"\", value\nover two lines\""

/* The id (the fifth field) of each record of the CSV text, in order, into ids; returns how many.
 * Fails unless every record is lsn,seq,insert,"public.orders",ID,NOTE_CSV. */
static size_t csv_ids(const char *text, long long *ids, size_t max)
{
    size_t n = 0;

    while (*text != '\0') {
        const char *end, *id;

        ck_assert_msg(n < max, "more than %zu records", max);
        id = strstr(text, ",insert,\"public.orders\",\"");
        ck_assert_msg(id != NULL, "a record without its op and table: %.200s", text);
        id += strlen(",insert,\"public.orders\",\"");
        ids[n++] = strtoll(id, (char **)&end, 10);
        ck_assert_msg(strncmp(end, "\"," NOTE_CSV "\n", strlen(NOTE_CSV) + 3) == 0,
                      "record %zu does not end with its note: %.200s", n, end);
        text = end + strlen(NOTE_CSV) + 3;
    }
    return n;
}

START_TEST(test_the_csv_sink_survives_kill_9)
{
    static long long ids[100000];
    itest_path conf, out;
    itest_ctx ctx;
    long long rows;
    size_t n;
    char *text;

    ck_assert_int_lt(readme_code_lines(CSV_MARK), CSV_MAX_LINES);
    itest_begin(&ctx, "csvsink");
    readme_code_build(&ctx, CSV_MARK, "csvsink.c", CSV_BUILD_LINE);
    itest_exec(ctx.conn, "CREATE SEQUENCE orders_id");
    itest_exec(ctx.conn, "CREATE TABLE orders (id bigint PRIMARY KEY, note text DEFAULT E'%s')",
               "a \"quoted\", value\\nover two lines");
    conf = itest_config(&ctx, "csvsink.conf", "\"public.orders\"", 200,
                        "{ name = \"csv\"; path = \"csvsink.so\"; settings = { path = "
                        "\"orders.csv\"; }; }");
    itest_create_slot(&ctx, conf.s);
    rows = readme_code_kill_loop(&ctx, conf.s, "orders", "orders_id", KILLS, "csvsink");

    out = itest_file(&ctx, "orders.csv");
    text = itest_read_file(out.s, NULL);
    ck_assert_msg(text != NULL, "no %s", out.s);
    n = csv_ids(text, ids, sizeof ids / sizeof ids[0]);
    free(text);
    ck_assert_msg(rows > 0 && (long long)n == rows, "orders.csv holds %zu records for %lld rows", n,
                  rows);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(ids[i] == (long long)i + 1, "record %zu holds id %lld, expected %zu", i + 1,
                      ids[i], i + 1);
    itest_end(&ctx);
}
END_TEST

START_TEST(test_the_guide_plugin_builds_and_runs)
{
    itest_path conf;
    itest_ctx ctx;
    itest_host host;
    char *out, *err;
    wn_lsn end;

    itest_begin(&ctx, "readme");
    readme_code_build(&ctx, GUIDE_MARK, "rowprint.c", BUILD_LINE);

    itest_exec(ctx.conn, "CREATE TABLE orders (id int PRIMARY KEY, note text)");
    conf = itest_config(&ctx, "rowprint.conf", "\"public.orders\"", 200,
                        "{ name = \"printer\"; path = \"rowprint.so\"; "
                        "ops = [ \"insert\", \"update\" ]; settings = { prefix = \"orders:\"; }; }");
    itest_host_run(&ctx, &host, "--check-config", "-c", conf.s);
    itest_assert_exit(&host, 0);
    itest_create_slot(&ctx, conf.s);
    itest_exec(ctx.conn, "INSERT INTO orders VALUES (1, 'first'), (2, NULL)");
    itest_exec(ctx.conn, "UPDATE orders SET note = 'changed' WHERE id = 1");
    end = itest_current_lsn(ctx.conn);
    {
        char *endpos = itest_lsn_text(end);

        itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", endpos);
        free(endpos);
    }
    itest_assert_exit(&host, 0);

    out = itest_host_stdout(&host);
    err = itest_host_stderr(&host);
    ck_assert_msg(err != NULL, "walnotify wrote nothing on stderr");
    ck_assert_msg(strstr(err, "orders: insert public.orders lsn=") != NULL &&
                      strstr(err, " seq=0 id=1 note=first\n") != NULL &&
                      strstr(err, " seq=1 id=2 note=NULL\n") != NULL,
                  "the plugin did not print the inserts: %s", err);
    ck_assert_msg(strstr(err, "orders: update public.orders lsn=") != NULL &&
                      strstr(err, " seq=0 id=1 note=changed\n") != NULL,
                  "the plugin did not print the update: %s", err);
    ck_assert_msg(strstr(err, "printed 3 events") != NULL,
                  "the plugin's shutdown line is missing: %s", err);
    free(out);
    free(err);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("readme");
    TCase *tc = tcase_create("readme");
    SRunner *runner;
    int failed;

    tcase_set_timeout(tc, ITEST_TIMEOUT_S);
    tcase_add_test(tc, test_the_guide_plugin_builds_and_runs);
    tcase_add_test(tc, test_the_csv_sink_survives_kill_9);
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
