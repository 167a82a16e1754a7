/*
 * core/paths.c: how a path the configuration writes becomes the file walnotify opens, and when
 * two spellings name one file.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paths.h"
#include "run_suite.h"
#include "unit_paths.h"

static char dir[PATH_MAX]; /* canonical: mkdtemp under a canonical /tmp */

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");

    ck_assert_msg(f != NULL, "create %s: %s", path, strerror(errno));
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(resolve_joins_to_the_folder)
{
    char *p;

    p = wn_paths_resolve("/etc/walnotify", "x.so");
    ck_assert_str_eq(p, "/etc/walnotify/x.so");
    free(p);
    /* A folder that does not exist is kept as written. */
    p = wn_paths_resolve("/nonexistent-walnotify", "../lib/x.so");
    ck_assert_str_eq(p, "/nonexistent-walnotify/../lib/x.so");
    free(p);
    p = wn_paths_resolve("/etc/walnotify", "/usr/lib/x.so");
    ck_assert_str_eq(p, "/usr/lib/x.so");
    free(p);
    p = wn_paths_resolve("/etc/walnotify", "-");
    ck_assert_str_eq(p, "-");
    free(p);
    p = wn_paths_resolve("/", "x.so");
    ck_assert_str_eq(p, "/x.so");
    free(p);
    p = wn_paths_resolve("/etc", "-x");
    ck_assert_str_eq(p, "/etc/-x");
    free(p);
    ck_assert_ptr_null(wn_paths_resolve("/etc", NULL));
}
END_TEST

START_TEST(resolve_makes_an_existing_folder_canonical)
{
    char sub[PATH_MAX], want[PATH_MAX];
    char *p;

    unit_temp_dir(dir, sizeof dir, "test_paths");
    ck_assert_int_eq(mkdir(unit_temp_path(sub, sizeof sub, dir, "sub"), 0700), 0);
    p = wn_paths_resolve(sub, "../x.so");
    ck_assert_str_eq(p, unit_temp_path(want, sizeof want, dir, "x.so"));
    free(p);
    /* The last component stays as written: a link there is for whoever opens it to see. */
    p = wn_paths_resolve(dir, "sub/..");
    ck_assert_str_eq(p, unit_temp_path(want, sizeof want, dir, "sub/.."));
    free(p);
    unit_remove_tree(dir);
}
END_TEST

START_TEST(resolve_plugin_prefers_the_local_file_then_the_installed_one)
{
    char conf[PATH_MAX], installed[PATH_MAX], path[PATH_MAX];
    char *p;

    unit_temp_dir(dir, sizeof dir, "test_paths");
    ck_assert_int_eq(mkdir(unit_temp_path(conf, sizeof conf, dir, "conf"), 0700), 0);
    ck_assert_int_eq(mkdir(unit_temp_path(installed, sizeof installed, dir, "lib"), 0700), 0);

    /* Nowhere: the configuration's folder, for the loader to name. */
    p = wn_paths_resolve_plugin(conf, "webhook.so", installed);
    unit_temp_path(path, sizeof path, conf, "webhook.so");
    ck_assert_str_eq(p, path);
    free(p);

    /* Installed only: the installed file. */
    unit_temp_path(path, sizeof path, installed, "webhook.so");
    touch(path);
    p = wn_paths_resolve_plugin(conf, "webhook.so", installed);
    ck_assert_str_eq(p, path);
    free(p);

    /* Next to the configuration too: that one. */
    unit_temp_path(path, sizeof path, conf, "webhook.so");
    touch(path);
    p = wn_paths_resolve_plugin(conf, "webhook.so", installed);
    ck_assert_str_eq(p, path);
    free(p);

    /* A name with a slash is never looked up in the installed folder. */
    p = wn_paths_resolve_plugin(conf, "./jsonl.so", installed);
    unit_temp_path(path, sizeof path, conf, "jsonl.so");
    ck_assert_str_eq(p, path);
    free(p);
    unit_remove_tree(dir);
}
END_TEST

/* A link in a plugin's folder stays in its path, for the loader to check; a folder no link
 * decides is named canonically. */
START_TEST(resolve_plugin_keeps_links_in_its_folder)
{
    char sub[PATH_MAX], link[PATH_MAX], want[PATH_MAX];
    char *p;

    unit_temp_dir(dir, sizeof dir, "test_paths");
    ck_assert_int_eq(mkdir(unit_temp_path(sub, sizeof sub, dir, "sub"), 0700), 0);
    ck_assert_int_eq(mkdir(unit_temp_path(sub, sizeof sub, dir, "sub/deep"), 0700), 0);
    ck_assert_int_eq(symlink("sub/deep", unit_temp_path(link, sizeof link, dir, "link")), 0);
    p = wn_paths_resolve_plugin(dir, "link/./x.so", "/nonexistent-walnotify");
    ck_assert_str_eq(p, unit_temp_path(want, sizeof want, dir, "link/x.so"));
    free(p);
    /* link/.. is sub, where link leads: only the link says so. */
    p = wn_paths_resolve_plugin(dir, "link/../x.so", "/nonexistent-walnotify");
    ck_assert_str_eq(p, unit_temp_path(want, sizeof want, dir, "link/../x.so"));
    free(p);
    p = wn_paths_resolve_plugin(dir, "sub/../sub//x.so", "/nonexistent-walnotify");
    ck_assert_str_eq(p, unit_temp_path(want, sizeof want, dir, "sub/x.so"));
    free(p);
    unit_remove_tree(dir);
}
END_TEST

START_TEST(same_compares_spellings)
{
    ck_assert_int_eq(wn_paths_same("/a/b/c", "/a/b/c"), 1);
    ck_assert_int_eq(wn_paths_same("/a//b/./c", "/a/b/c"), 1);
    ck_assert_int_eq(wn_paths_same("/a/x/../b/c", "/a/b/c"), 1);
    ck_assert_int_eq(wn_paths_same("/a/b/c/", "/a/b/c"), 1);
    ck_assert_int_eq(wn_paths_same("/../a", "/a"), 1);
    ck_assert_int_eq(wn_paths_same("/a/b/c", "/a/b/d"), 0);
    ck_assert_int_eq(wn_paths_same("/a/b", "/a/b/c/.."), 1);
}
END_TEST

static Suite *paths_suite(void)
{
    Suite *s = suite_create("paths");
    TCase *tc = tcase_create("paths");

    tcase_add_test(tc, resolve_joins_to_the_folder);
    tcase_add_test(tc, resolve_makes_an_existing_folder_canonical);
    tcase_add_test(tc, resolve_plugin_prefers_the_local_file_then_the_installed_one);
    tcase_add_test(tc, resolve_plugin_keeps_links_in_its_folder);
    tcase_add_test(tc, same_compares_spellings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(paths_suite()) == 0 ? 0 : 1;
}
