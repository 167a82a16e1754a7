/* readme_code: the plugins README.md shows, cut out and built as it says; see readme_code.h. */
#include "readme_code.h"

#include "faults.h"
#include "itest_writer.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define C_OPENING "\n```c\n"
#define CLOSING "\n```\n"

/* The text of the first C block after mark in text, with its last newline; to free. */
static char *code_block_after(const char *text, const char *mark)
{
    const char *start = strstr(text, mark);
    const char *end;
    char *block;

    ck_assert_msg(start != NULL, "README.md has no \"%s\"", mark);
    start = strstr(start, C_OPENING);
    ck_assert_msg(start != NULL, "README.md has no C block after \"%s\"", mark);
    start += strlen(C_OPENING);
    end = strstr(start, CLOSING);
    ck_assert_msg(end != NULL, "README.md's C block after \"%s\" does not end", mark);
    block = strndup(start, (size_t)(end - start) + 1);
    ck_assert_ptr_nonnull(block);
    return block;
}

int readme_code_lines(const char *mark)
{
    itest_path readme = itest_root_file("README.md");
    char *text = itest_read_file(readme.s, NULL);
    char *code;
    int lines = 0;

    ck_assert_msg(text != NULL, "cannot read %s", readme.s);
    code = code_block_after(text, mark);
    free(text);
    for (char *line = strtok(code, "\n"); line != NULL; line = strtok(NULL, "\n"))
        lines += line[strspn(line, " \t")] != '\0';
    free(code);
    return lines;
}

long long readme_code_kill_loop(itest_ctx *ctx, const char *conf, const char *table,
                                const char *sequence, int rounds, const char *what)
{
    const faults_mix mix = {.min_rows = 1, .max_rows = 20, .pause_ms = 5};
    uint64_t seed = faults_seed(what);
    faults_rng rng = faults_rng_new(seed);
    pid_t writer = faults_writer_start(ctx, table, sequence, seed, &mix);
    itest_host host;
    char *end;

    for (int i = 0; i < rounds; i++) {
        faults_wait_slot_released(ctx->conn, ctx->slot);
        itest_host_start(ctx, &host, ITEST_ARGS("-c", conf));
        itest_sleep_ms((int)faults_rng_range(&rng, 200, 700));
        ck_assert_msg(itest_host_running(&host), "walnotify stopped by itself (exit %d), seed %llu",
                      host.status, (unsigned long long)seed);
        faults_host_kill(&host);
    }
    itest_writer_stop(writer);
    end = itest_lsn_text(itest_current_lsn(ctx->conn));
    faults_wait_slot_released(ctx->conn, ctx->slot);
    itest_host_run(ctx, &host, "-c", conf, "--endpos", end);
    free(end);
    itest_assert_exit(&host, 0);
    return itest_query_int(ctx->conn, "SELECT count(*) FROM %s", table);
}

void readme_code_build(itest_ctx *ctx, const char *mark, const char *source,
                       const char *build_line)
{
    itest_path readme = itest_root_file("README.md");
    itest_path file = itest_file(ctx, source), include = itest_file(ctx, "include");
    char line[README_BUILD_LINE_MAX + 3];
    char command[sizeof ctx->dir + README_BUILD_LINE_MAX + 32];
    char *text, *code;

    ck_assert_msg(strlen(build_line) <= README_BUILD_LINE_MAX,
                  "the build line \"%s\" is longer than %d bytes", build_line,
                  README_BUILD_LINE_MAX);
    text = itest_read_file(readme.s, NULL);
    ck_assert_msg(text != NULL, "cannot read %s", readme.s);
    /* A line of its own: a longer line that holds it does not count. */
    snprintf(line, sizeof line, "\n%s\n", build_line);
    ck_assert_msg(strstr(text, line) != NULL, "README.md no longer gives the build line \"%s\"",
                  build_line);
    code = code_block_after(text, mark);
    free(text);
    itest_write_file(file.s, "%s", code);
    free(code);

    /* From a folder that holds include/, as the top of the source tree does. */
    ck_assert_int_eq(symlink(itest_root_file("include").s, include.s), 0);
    snprintf(command, sizeof command, "cd '%s' && %s 2>&1", ctx->dir, build_line);
    ck_assert_msg(system(command) == 0, "the guide's build line failed: %s", command);
}
