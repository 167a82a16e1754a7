/* Unit tests of the log: every line, the reason of an exit included, has the same shape. */
#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "run_suite.h"

#define CAPTURE_MAX 8192

/* "2026-11-25T11:00:00.123Z walnotify[PID] LEVEL: " */
#define LINE_HEAD "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z walnotify\\[[0-9]+\\] "

/* Standard error, captured in a temporary file while a test runs. */
typedef struct capture {
    FILE *file;
    int saved;
} capture;

static void capture_start(capture *c)
{
    c->file = tmpfile();
    ck_assert_ptr_nonnull(c->file);
    c->saved = dup(STDERR_FILENO);
    ck_assert_int_ge(c->saved, 0);
    ck_assert_int_ge(dup2(fileno(c->file), STDERR_FILENO), 0);
}

/* Restores standard error and returns what was written to it (NUL-terminated). */
static void capture_end(capture *c, char *out, size_t outlen)
{
    size_t n;

    fflush(stderr);
    ck_assert_int_ge(dup2(c->saved, STDERR_FILENO), 0);
    close(c->saved);
    rewind(c->file);
    n = fread(out, 1, outlen - 1, c->file);
    out[n] = '\0';
    fclose(c->file);
}

static void assert_line(const char *text, const char *level, const char *message)
{
    char pattern[256];
    regex_t re;
    int rc;

    snprintf(pattern, sizeof pattern, LINE_HEAD "%s: %s\n$", level, message);
    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    rc = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    ck_assert_msg(rc == 0, "not one \"%s\" line: \"%s\"", level, text);
}

START_TEST(log_line_shape)
{
    char text[CAPTURE_MAX];
    capture c;

    wn_log_set_level(WN_LOG_DEBUG);
    capture_start(&c);
    wn_log(WN_LOG_WARNING, "slot %s is %s", "s", "busy");
    capture_end(&c, text, sizeof text);
    assert_line(text, "WARNING", "slot s is busy");
}
END_TEST

START_TEST(fatal_line_has_the_same_shape)
{
    char text[CAPTURE_MAX];
    capture c;
    int status;

    wn_log_set_level(WN_LOG_ERROR);
    capture_start(&c);
    status = wn_die(3, "cannot connect to %s:\nrefused", "host=h");
    capture_end(&c, text, sizeof text);
    ck_assert_int_eq(status, 3);
    /* One line, newlines inside folded, shown whatever the log level. */
    assert_line(text, "FATAL", "cannot connect to host=h: refused");
}
END_TEST

START_TEST(control_characters_are_escaped)
{
    char text[CAPTURE_MAX];
    capture c;

    wn_log_set_level(WN_LOG_INFO);
    capture_start(&c);
    /* A server's or a child's words, quoted in a message, never reach a terminal as commands. */
    wn_log(WN_LOG_ERROR, "server said: %s", "bad\x1b[31mred\x07\x7f\tend\r\nnext");
    capture_end(&c, text, sizeof text);
    assert_line(text, "ERROR", "server said: bad\\\\x1b\\[31mred\\\\x07\\\\x7f end  next");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("lines");

    tcase_add_test(tc, log_line_shape);
    tcase_add_test(tc, fatal_line_has_the_same_shape);
    tcase_add_test(tc, control_characters_are_escaped);
    suite_add_tcase(s, tc);
    return run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
