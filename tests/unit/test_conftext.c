/*
 * core/conftext.c: the configuration's text read whole, and its @include directives followed
 * and checked before libconfig reads any of it.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conftext.h"
#include "run_suite.h"
#include "unit_paths.h"

static char dir[PATH_MAX]; /* canonical: mkdtemp under a canonical /tmp */

/* Writes length bytes of text to dir/name; the path into out. */
static char *spit(char *out, size_t size, const char *name, const char *text, size_t length)
{
    FILE *f = fopen(unit_temp_path(out, size, dir, name), "wb");

    ck_assert_msg(f != NULL, "create %s: %s", out, strerror(errno));
    ck_assert_uint_eq(fwrite(text, 1, length, f), length);
    ck_assert_int_eq(fclose(f), 0);
    return out;
}

#define SPIT(out, name, text) spit(out, sizeof out, name, text, strlen(text))

START_TEST(reads_the_text_and_follows_includes)
{
    char conf[PATH_MAX], inc[PATH_MAX], nested[PATH_MAX], sub[PATH_MAX], err[512] = "";
    wn_conftext t;

    unit_temp_dir(dir, sizeof dir, "test_conftext");
    ck_assert_int_eq(mkdir(unit_temp_path(sub, sizeof sub, dir, "conf.d"), 0700), 0);
    SPIT(nested, "conf.d/nested.conf", "log_level = \"debug\";\n");
    SPIT(inc, "conf.d/source.conf", "source = { };\n  @include \"conf.d/nested.conf\"\n");
    SPIT(conf, "w.conf", "# walnotify\n@include \"conf.d/source.conf\"\nplugins = ();\n");
    ck_assert_msg(wn_conftext_read(conf, &t, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(t.text, "# walnotify\n@include \"conf.d/source.conf\"\nplugins = ();\n");
    ck_assert_str_eq(t.dir, dir);
    ck_assert_uint_eq(t.nincluded, 2);
    ck_assert_str_eq(t.included[0], inc);
    ck_assert_str_eq(t.included[1], nested);
    wn_conftext_free(&t);
    ck_assert_ptr_null(t.text);
    unit_remove_tree(dir);
}
END_TEST

START_TEST(an_include_leading_out_of_the_folder_is_refused)
{
    char conf[PATH_MAX], sub[PATH_MAX], outside[PATH_MAX], err[PATH_MAX * 4], want[PATH_MAX * 4];
    wn_conftext t;

    unit_temp_dir(dir, sizeof dir, "test_conftext");
    SPIT(outside, "outside.conf", "log_level = \"info\";\n");
    ck_assert_int_eq(mkdir(unit_temp_path(sub, sizeof sub, dir, "etc"), 0700), 0);
    SPIT(conf, "etc/w.conf", "plugins = ();\n@include \"../outside.conf\"\n");
    ck_assert_int_eq(wn_conftext_read(conf, &t, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "%s:2: @include \"../outside.conf\" leads to %s, outside the configuration's folder "
             "%s (an included file must be in that folder or below)",
             conf, outside, sub);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(t.text);
    ck_assert_ptr_null(t.included);
    unit_remove_tree(dir);
}
END_TEST

START_TEST(an_include_of_itself_stops_at_the_depth_limit)
{
    char conf[PATH_MAX], err[PATH_MAX * 2];
    wn_conftext t;

    unit_temp_dir(dir, sizeof dir, "test_conftext");
    SPIT(conf, "w.conf", "@include \"w.conf\"\n");
    ck_assert_int_eq(wn_conftext_read(conf, &t, err, sizeof err), -1);
    ck_assert_msg(strstr(err, ":1: @include \"w.conf\": nested more than 10 deep (does it include "
                              "itself?)") != NULL,
                  "%s", err);
    unit_remove_tree(dir);
}
END_TEST

START_TEST(a_nul_byte_is_named_with_its_line)
{
    char conf[PATH_MAX], err[PATH_MAX * 2], want[PATH_MAX * 2];
    wn_conftext t;

    unit_temp_dir(dir, sizeof dir, "test_conftext");
    spit(conf, sizeof conf, "w.conf", "a = 1;\nb = \0;\n", 14);
    ck_assert_int_eq(wn_conftext_read(conf, &t, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2: NUL byte in the file", conf);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(
        wn_conftext_read(unit_temp_path(conf, sizeof conf, dir, "absent.conf"), &t, err, sizeof err),
        -1);
    snprintf(want, sizeof want, "%s: cannot read: No such file or directory", conf);
    ck_assert_str_eq(err, want);
    unit_remove_tree(dir);
}
END_TEST

static void verror(char *err, size_t errlen, const char *file, int line, const char *format, ...)
    __attribute__((format(printf, 5, 6)));

static void verror(char *err, size_t errlen, const char *file, int line, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    wn_conftext_verror(err, errlen, file, line, format, args);
    va_end(args);
}

START_TEST(an_error_is_one_line)
{
    char err[64];

    verror(err, sizeof err, "w.conf", 3, "bad %s", "value\nnext");
    ck_assert_str_eq(err, "w.conf:3: bad value?next");
    verror(err, sizeof err, "w\tconf", 0, "cannot read: %s", "gone");
    ck_assert_str_eq(err, "w?conf: cannot read: gone");
    verror(err, 12, "w.conf", 3, "%s", "a long message cut short");
    ck_assert_str_eq(err, "w.conf:3: a");
    verror(NULL, 0, "w.conf", 1, "nothing"); /* no buffer: nothing written, nothing read */
}
END_TEST

static Suite *conftext_suite(void)
{
    Suite *s = suite_create("conftext");
    TCase *tc = tcase_create("conftext");

    tcase_add_test(tc, reads_the_text_and_follows_includes);
    tcase_add_test(tc, an_include_leading_out_of_the_folder_is_refused);
    tcase_add_test(tc, an_include_of_itself_stops_at_the_depth_limit);
    tcase_add_test(tc, a_nul_byte_is_named_with_its_line);
    tcase_add_test(tc, an_error_is_one_line);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(conftext_suite()) == 0 ? 0 : 1;
}
