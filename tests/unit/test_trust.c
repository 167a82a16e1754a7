/*
 * core/trust.c: a file walnotify loads or reads a password from must not be changeable by anyone
 * but root and walnotify's own user, nor may any folder above it, nor the folder of a link to it.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trust.h"
#include "run_suite.h"
#include "unit_paths.h"

static char dir[PATH_MAX]; /* canonical, 0700, in /tmp (sticky, root's) */

static void touch(const char *path, mode_t mode)
{
    FILE *f = fopen(path, "w");

    ck_assert_msg(f != NULL, "create %s: %s", path, strerror(errno));
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(own_file_in_own_folder_is_trusted)
{
    char file[PATH_MAX], why[PATH_MAX + 256] = "";

    unit_temp_dir(dir, sizeof dir, "test_trust");
    touch(unit_temp_path(file, sizeof file, dir, "plugin.so"), 0644);
    ck_assert_msg(wn_trust_path(file, why, sizeof why), "refused: %s", why);
    unit_remove_tree(dir);
}
END_TEST

START_TEST(a_file_others_may_write_is_refused)
{
    char file[PATH_MAX], why[PATH_MAX + 256], want[PATH_MAX + 256];

    unit_temp_dir(dir, sizeof dir, "test_trust");
    touch(unit_temp_path(file, sizeof file, dir, "plugin.so"), 0666);
    ck_assert(!wn_trust_path(file, why, sizeof why));
    snprintf(want, sizeof want, "file %s is writable by everyone (mode 0666)", file);
    ck_assert_str_eq(why, want);
    unit_remove_tree(dir);
}
END_TEST

START_TEST(a_folder_its_group_may_write_is_refused)
{
    char sub[PATH_MAX], file[PATH_MAX], why[PATH_MAX + 256], want[PATH_MAX + 256];

    unit_temp_dir(dir, sizeof dir, "test_trust");
    ck_assert_int_eq(mkdir(unit_temp_path(sub, sizeof sub, dir, "lib"), 0700), 0);
    ck_assert_int_eq(chmod(sub, 0770), 0);
    touch(unit_temp_path(file, sizeof file, dir, "lib/plugin.so"), 0644);
    ck_assert(!wn_trust_path(file, why, sizeof why));
    snprintf(want, sizeof want, "folder %s is writable by its group (mode 0770)", sub);
    ck_assert_str_eq(why, want);
    unit_remove_tree(dir);
}
END_TEST

/* Whoever may replace the link chooses what is loaded, wherever it points. */
START_TEST(a_link_in_an_open_folder_is_refused)
{
    char open_dir[PATH_MAX], file[PATH_MAX], link[PATH_MAX];
    char why[PATH_MAX + 256], want[PATH_MAX + 256];

    unit_temp_dir(dir, sizeof dir, "test_trust");
    touch(unit_temp_path(file, sizeof file, dir, "plugin.so"), 0644);
    ck_assert_int_eq(mkdir(unit_temp_path(open_dir, sizeof open_dir, dir, "open"), 0700), 0);
    ck_assert_int_eq(chmod(open_dir, 0777), 0);
    ck_assert_int_eq(symlink(file, unit_temp_path(link, sizeof link, dir, "open/plugin.so")), 0);
    ck_assert(!wn_trust_path(link, why, sizeof why));
    snprintf(want, sizeof want, "folder %s is writable by everyone (mode 0777)", open_dir);
    ck_assert_str_eq(why, want);
    unit_remove_tree(dir);
}
END_TEST

START_TEST(a_missing_file_is_named)
{
    char file[PATH_MAX], why[PATH_MAX + 256], want[PATH_MAX + 256];

    unit_temp_dir(dir, sizeof dir, "test_trust");
    ck_assert(!wn_trust_path(unit_temp_path(file, sizeof file, dir, "absent.so"), why, sizeof why));
    snprintf(want, sizeof want, "cannot resolve %s: No such file or directory", file);
    ck_assert_str_eq(why, want);
    unit_remove_tree(dir);
}
END_TEST

START_TEST(unsafe_paths_allowed_only_by_1)
{
    ck_assert_int_eq(unsetenv(WN_ALLOW_UNSAFE_PATHS_ENV), 0);
    ck_assert(!wn_trust_unsafe_allowed());
    ck_assert_int_eq(setenv(WN_ALLOW_UNSAFE_PATHS_ENV, "yes", 1), 0);
    ck_assert(!wn_trust_unsafe_allowed());
    ck_assert_int_eq(setenv(WN_ALLOW_UNSAFE_PATHS_ENV, "1", 1), 0);
    ck_assert(wn_trust_unsafe_allowed());
    ck_assert_int_eq(unsetenv(WN_ALLOW_UNSAFE_PATHS_ENV), 0);
}
END_TEST

static Suite *trust_suite(void)
{
    Suite *s = suite_create("trust");
    TCase *tc = tcase_create("trust");

    tcase_add_test(tc, own_file_in_own_folder_is_trusted);
    tcase_add_test(tc, a_file_others_may_write_is_refused);
    tcase_add_test(tc, a_folder_its_group_may_write_is_refused);
    tcase_add_test(tc, a_link_in_an_open_folder_is_refused);
    tcase_add_test(tc, a_missing_file_is_named);
    tcase_add_test(tc, unsafe_paths_allowed_only_by_1);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(trust_suite()) == 0 ? 0 : 1;
}
