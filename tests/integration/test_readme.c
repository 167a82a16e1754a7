/*
 * The README's plugin author's guide, taken at its word: the complete plugin it shows is cut out
 * of README.md, built with the one cc line it gives, checked with --check-config and run against
 * the server. A change to plugin.h or the host that breaks the guide breaks this test.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "readme_code.h"

#define GUIDE_MARK "**A complete plugin**"
#define BUILD_LINE "cc -shared -fPIC -I include -o rowprint.so rowprint.c"

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
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
