/*
 * itest_files: whole files and their lines, read as a test checks what a host or a plugin wrote.
 */
#ifndef WN_TEST_ITEST_FILES_H
#define WN_TEST_ITEST_FILES_H

#include <stddef.h>

typedef struct itest_lines {
    char **line;            /* without their newline; owned */
    size_t *length;
    size_t count;
} itest_lines;

char *itest_read_file(const char *path, size_t *length); /* NULL when missing; to free */
void itest_write_file(const char *path, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
itest_lines itest_read_lines(const char *path); /* fails on a partial last line */
/* Waits (timeout_s at most) until path holds count whole lines; a partial last one is left out. */
itest_lines itest_wait_lines(const char *path, size_t count, int timeout_s);
void itest_lines_free(itest_lines *lines);

#endif
