/*
 * The README's plugin author's guide, taken at its word: the complete plugin it shows is cut out
 * of README.md, built with the one cc line it gives, checked with --check-config and run against
 * the server. A change to plugin.h or the host that breaks the guide breaks this test.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define GUIDE_MARK "**A complete plugin**"
#define BUILD_LINE "cc -shared -fPIC -I include -o rowprint.so rowprint.c"

/* The text between the first "```c" line after mark and the next "```" line; to free. */
static char *code_block_after(const char *text, const char *mark)
{
    const char *start = strstr(text, mark);
    const char *end;
    char *block;

    ck_assert_msg(start != NULL, "README.md has no \"%s\"", mark);
    start = strstr(start, "\n```c\n");
    ck_assert_msg(start != NULL, "README.md has no C block after \"%s\"", mark);
    start += strlen("\n```c\n");
    end = strstr(start, "\n```\n");
    ck_assert_msg(end != NULL, "README.md's C block after \"%s\" does not end", mark);
    block = strndup(start, (size_t)(end - start) + 1);
    ck_assert_ptr_nonnull(block);
    return block;
}

START_TEST(test_the_guide_plugin_builds_and_runs)
{
    itest_path readme = itest_root_file("README.md");
    itest_path source, include, conf;
    itest_ctx ctx;
    char command[sizeof ctx.dir + sizeof BUILD_LINE + 32];
    itest_host host;
    char *text, *code, *out, *err;
    wn_lsn end;

    itest_begin(&ctx, "readme");
    text = itest_read_file(readme.s, NULL);
    ck_assert_msg(text != NULL, "cannot read %s", readme.s);
    ck_assert_msg(strstr(text, "\n" BUILD_LINE "\n") != NULL,
                  "README.md no longer gives the build line \"%s\"", BUILD_LINE);
    code = code_block_after(text, GUIDE_MARK);
    free(text);

    /* Built as the guide says, from a folder that holds include/ like the source tree. */
    source = itest_file(&ctx, "rowprint.c");
    itest_write_file(source.s, "%s", code);
    free(code);
    include = itest_file(&ctx, "include");
    ck_assert_int_eq(symlink(itest_root_file("include").s, include.s), 0);
    snprintf(command, sizeof command, "cd '%s' && %s 2>&1", ctx.dir, BUILD_LINE);
    ck_assert_msg(system(command) == 0, "the guide's build line failed: %s", command);

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
