/* itest_loglines: the fixtures' logs; see itest_loglines.h. */
#include "itest_loglines.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest_files.h"

static itest_loglines parse_log(const char *path, const itest_lines *lines)
{
    itest_loglines out = {0};

    out.line = calloc(lines->count + 1, sizeof *out.line);
    ck_assert_msg(out.line != NULL, "out of memory");
    for (size_t i = 0; i < lines->count; i++) {
        itest_logline *l = &out.line[out.count++];
        char lsn[32];
        ck_assert_msg(sscanf(lines->line[i], "%31s %ld %127s %15s %63s", lsn, &l->seq, l->table,
                             l->op, l->id) == 5 &&
                          wn_lsn_parse(lsn, &l->lsn),
                      "%s line %zu is malformed: %s", path, i + 1, lines->line[i]);
    }
    return out;
}

itest_loglines itest_read_log(const char *path)
{
    itest_lines lines = itest_read_lines(path);
    itest_loglines out = parse_log(path, &lines);

    itest_lines_free(&lines);
    return out;
}

itest_loglines itest_wait_log(const char *path, size_t count, int timeout_s)
{
    itest_lines lines = itest_wait_lines(path, count, timeout_s);
    itest_loglines out = parse_log(path, &lines);

    itest_lines_free(&lines);
    return out;
}

void itest_loglines_free(itest_loglines *lines)
{
    free(lines->line);
    memset(lines, 0, sizeof *lines);
}
