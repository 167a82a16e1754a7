/*
 * The README's second complete plugin, the batching sink, taken at its word: cut out of
 * README.md, built with the cc line given there, and run against the server. Its file starts
 * with a torn line (a crash's), which init must cut; one row is too long for its "downstream",
 * which it names as failed, so that on_error = "skip" puts it in the dead-letter file; a second
 * slot then delivers everything again, and the sink drops every replay by identity.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define GUIDE_MARK "**A batching sink**"
#define BUILD_LINE "cc -shared -fPIC -I include -o batchsink.so batchsink.c"
#define TORN "{\"lsn\":\"0/1\",\"seq\":0,\"xid\":1,\"comm"

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

static void build_the_guide_plugin(itest_ctx *ctx)
{
    itest_path readme = itest_root_file("README.md");
    itest_path source = itest_file(ctx, "batchsink.c"), include = itest_file(ctx, "include");
    char command[sizeof ctx->dir + sizeof BUILD_LINE + 32];
    char *text = itest_read_file(readme.s, NULL), *code;

    ck_assert_msg(text != NULL, "cannot read %s", readme.s);
    ck_assert_msg(strstr(text, "\n" BUILD_LINE "\n") != NULL,
                  "README.md no longer gives the build line \"%s\"", BUILD_LINE);
    code = code_block_after(text, GUIDE_MARK);
    free(text);
    itest_write_file(source.s, "%s", code);
    free(code);
    ck_assert_int_eq(symlink(itest_root_file("include").s, include.s), 0);
    snprintf(command, sizeof command, "cd '%s' && %s 2>&1", ctx->dir, BUILD_LINE);
    ck_assert_msg(system(command) == 0, "the guide's build line failed: %s", command);
}

static itest_path write_config(itest_ctx *ctx, const char *name, const char *slot)
{
    itest_path path = itest_file(ctx, name);

    itest_write_file(path.s,
                     "source: { conninfo = \"%s\"; tables = [ \"public.orders\" ]; slot = \"%s\"; "
                     "publication = \"%s\"; status_interval_ms = 200; reconnect_initial_ms = 50; "
                     "};\n"
                     "plugins = ( { name = \"batch\"; path = \"batchsink.so\"; settings = { path = "
                     "\"orders.jsonl\"; }; on_error = \"skip\"; dead_letter = "
                     "\"orders-refused.jsonl\"; } );\n",
                     ctx->conninfo, slot, ctx->pub);
    return path;
}

static void run_to(itest_ctx *ctx, const char *conf, wn_lsn end)
{
    itest_host host;
    char *endpos = itest_lsn_text(end);

    itest_host_run(ctx, &host, "-c", conf, "--endpos", endpos);
    free(endpos);
    itest_assert_exit(&host, 0);
}

/* The ids of the file's lines, in order, as "1,3,4". */
static void ids_of(const char *path, char *out, size_t size)
{
    itest_events events = itest_read_events(path);
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < events.count && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "",
                                 itest_value(&events.event[i], "id"));
    itest_events_free(&events);
}

START_TEST(test_the_batching_sink_of_the_guide)
{
    itest_ctx ctx;
    itest_path conf, again, out, refused;
    char ids[256], second_slot[80];
    itest_lines lines;
    wn_lsn end;

    itest_begin(&ctx, "batchsink");
    build_the_guide_plugin(&ctx);
    itest_exec(ctx.conn, "CREATE TABLE orders (id int PRIMARY KEY, note text)");
    conf = write_config(&ctx, "batchsink.conf", ctx.slot);
    snprintf(second_slot, sizeof second_slot, "%s_b", ctx.slot);
    again = write_config(&ctx, "again.conf", second_slot);
    itest_create_slot(&ctx, conf.s);
    itest_create_slot(&ctx, again.s);
    out = itest_file(&ctx, "orders.jsonl");
    refused = itest_file(&ctx, "orders-refused.jsonl");
    itest_write_file(out.s, "%s", TORN);

    itest_exec(ctx.conn, "INSERT INTO orders VALUES (1, 'a'), (2, repeat('x', 5000)), (3, 'c')");
    itest_exec(ctx.conn, "INSERT INTO orders VALUES (4, 'd')");
    end = itest_current_lsn(ctx.conn);
    run_to(&ctx, conf.s, end);

    ids_of(out.s, ids, sizeof ids);
    ck_assert_msg(strcmp(ids, "1,3,4") == 0, "orders.jsonl holds ids %s, expected 1,3,4", ids);
    lines = itest_read_lines(refused.s);
    ck_assert_msg(lines.count == 1 && strstr(lines.line[0], "\"id\":\"2\"") != NULL &&
                      strstr(lines.line[0], "line too long for the downstream") != NULL,
                  "the dead-letter file does not hold row 2 once, with the sink's reason");
    itest_lines_free(&lines);

    /* Everything again, from a slot made before it: every line is a replay. */
    run_to(&ctx, again.s, end);
    ids_of(out.s, ids, sizeof ids);
    ck_assert_msg(strcmp(ids, "1,3,4") == 0, "after the replay orders.jsonl holds ids %s", ids);
    itest_exec(ctx.conn, "SELECT pg_drop_replication_slot('%s')", second_slot);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("batchsink");
    TCase *tc = tcase_create("batchsink");
    SRunner *runner;
    int failed;

    tcase_set_timeout(tc, ITEST_TIMEOUT_S);
    tcase_add_test(tc, test_the_batching_sink_of_the_guide);
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
