/* itest_files: files and their lines; see itest_files.h. */
#include "itest_files.h"

#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest_time.h"

char *itest_read_file(const char *path, size_t *length)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t size = 0, capacity = 0, n;

    if (f == NULL) {
        ck_assert_msg(errno == ENOENT, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    do {
        if (capacity - size < 65536) {
            capacity = capacity ? capacity * 2 : 131072;
            data = realloc(data, capacity + 1);
            ck_assert_msg(data != NULL, "out of memory reading %s", path);
        }
        n = fread(data + size, 1, capacity - size, f);
        size += n;
    } while (n > 0);
    ck_assert_msg(!ferror(f), "cannot read %s", path);
    fclose(f);
    data[size] = '\0';
    if (length != NULL)
        *length = size;
    return data;
}

void itest_write_file(const char *path, const char *format, ...)
{
    va_list args;
    FILE *f = fopen(path, "w");

    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    va_start(args, format);
    vfprintf(f, format, args);
    va_end(args);
    ck_assert_msg(fclose(f) == 0, "cannot write %s", path);
}

/* Splits data into lines; a trailing partial line fails the test unless partial_ok. */
static itest_lines split_lines(const char *path, const char *data, size_t length, bool partial_ok)
{
    itest_lines lines = {0};
    size_t start = 0;

    if (data == NULL)
        return lines;
    for (size_t i = 0; i < length; i++) {
        if (data[i] != '\n')
            continue;
        lines.line = realloc(lines.line, (lines.count + 1) * sizeof *lines.line);
        lines.length = realloc(lines.length, (lines.count + 1) * sizeof *lines.length);
        ck_assert_msg(lines.line != NULL && lines.length != NULL, "out of memory");
        lines.line[lines.count] = strndup(data + start, i - start);
        lines.length[lines.count] = i - start;
        ck_assert_msg(lines.line[lines.count] != NULL, "out of memory");
        lines.count++;
        start = i + 1;
    }
    ck_assert_msg(partial_ok || start == length, "%s ends with a partial line of %zu bytes", path,
                  length - start);
    return lines;
}

itest_lines itest_read_lines(const char *path)
{
    size_t length = 0;
    char *data = itest_read_file(path, &length);
    itest_lines lines = split_lines(path, data, length, false);

    free(data);
    return lines;
}

itest_lines itest_wait_lines(const char *path, size_t count, int timeout_s)
{
    itest_deadline deadline = itest_deadline_in(timeout_s * 1000);

    for (;;) {
        size_t length = 0;
        char *data = itest_read_file(path, &length);
        itest_lines lines = split_lines(path, data, length, true);

        free(data);
        if (lines.count >= count)
            return lines;
        if (itest_expired(&deadline))
            ck_abort_msg("%s holds %zu lines after %d s, expected %zu", path, lines.count,
                         timeout_s, count);
        itest_lines_free(&lines);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

void itest_lines_free(itest_lines *lines)
{
    for (size_t i = 0; i < lines->count; i++)
        free(lines->line[i]);
    free(lines->line);
    free(lines->length);
    memset(lines, 0, sizeof *lines);
}
