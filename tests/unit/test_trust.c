/*
 * core/trust.c: a file walnotify loads or reads its configuration from must not be changeable by
 * anyone but root and walnotify's own user, nor may any component of its path: a folder, a link
 * wherever it stands, the folder holding that link; and a file holding a secret is read only
 * when it passes, never through a symbolic link at its path.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
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

/* good/plugin.so (0644, in a folder 0755) and an empty folder name (mode 0700) in dir. */
static void good_and_folder(char *file, char *folder, const char *name)
{
    char good[PATH_MAX];

    ck_assert_int_eq(mkdir(unit_temp_path(good, PATH_MAX, dir, "good"), 0755), 0);
    touch(unit_temp_path(file, PATH_MAX, dir, "good/plugin.so"), 0644);
    ck_assert_int_eq(mkdir(unit_temp_path(folder, PATH_MAX, dir, name), 0700), 0);
}

/* A link in the middle of the path counts as much as the file: whoever may replace it chooses
 * the folder the rest of the path is read from. */
START_TEST(a_link_in_the_middle_in_an_open_folder_is_refused)
{
    char file[PATH_MAX], open_dir[PATH_MAX], link[PATH_MAX], path[PATH_MAX];
    char why[PATH_MAX + 256], want[PATH_MAX + 256];

    unit_temp_dir(dir, sizeof dir, "test_trust");
    good_and_folder(file, open_dir, "open");
    ck_assert_int_eq(chmod(open_dir, 0777), 0);
    ck_assert_int_eq(symlink("../good", unit_temp_path(link, sizeof link, dir, "open/dirlink")), 0);
    unit_temp_path(path, sizeof path, dir, "open/dirlink/plugin.so");
    ck_assert(!wn_trust_path(path, why, sizeof why));
    snprintf(want, sizeof want, "folder %s is writable by everyone (mode 0777)", open_dir);
    ck_assert_str_eq(why, want);
    unit_remove_tree(dir);
}
END_TEST

/* In a sticky folder (as /tmp) an entry's owner may replace it: a link there owned by another
 * user is that user's choice of folder, and is refused; one of ours is not. */
START_TEST(a_link_in_the_middle_owned_by_another_user_is_refused)
{
    char file[PATH_MAX], sticky[PATH_MAX], link[PATH_MAX], path[PATH_MAX];
    char why[PATH_MAX + 256] = "", want[PATH_MAX + 256];
    uid_t uid;
    gid_t gid;

    unit_temp_dir(dir, sizeof dir, "test_trust");
    good_and_folder(file, sticky, "st");
    ck_assert_int_eq(chmod(sticky, 01777), 0);
    ck_assert_int_eq(symlink(dir, unit_temp_path(link, sizeof link, dir, "st/dirlink")), 0);
    unit_temp_path(path, sizeof path, dir, "st/dirlink/good/plugin.so");
    ck_assert_msg(wn_trust_path(path, why, sizeof why), "refused: %s", why);
    if (unit_other_user("a_link_in_the_middle_owned_by_another_user_is_refused", &uid, &gid)) {
        ck_assert_int_eq(lchown(link, uid, gid), 0);
        ck_assert(!wn_trust_path(path, why, sizeof why));
        snprintf(want, sizeof want,
                 "link %s is owned by uid %u, not by root or by the user walnotify runs as "
                 "(uid 0)",
                 link, (unsigned)uid);
        ck_assert_str_eq(why, want);
        /* Another user's folder on the way: the same. */
        ck_assert_int_eq(lchown(link, 0, 0), 0);
        ck_assert_int_eq(chown(sticky, uid, gid), 0);
        ck_assert(!wn_trust_path(path, why, sizeof why));
        snprintf(want, sizeof want,
                 "folder %s is owned by uid %u, not by root or by the user walnotify runs as "
                 "(uid 0)",
                 sticky, (unsigned)uid);
        ck_assert_str_eq(why, want);
    }
    unit_remove_tree(dir);
}
END_TEST

/* The walk resolves as the kernel does: relative targets from the link's folder, ".." after a
 * link from where the link led, a loop of links ends. */
START_TEST(links_resolve_as_the_kernel_resolves_them)
{
    char file[PATH_MAX], sub[PATH_MAX], path[PATH_MAX], loop[PATH_MAX];
    char why[PATH_MAX + 256] = "", want[PATH_MAX + 256];

    unit_temp_dir(dir, sizeof dir, "test_trust");
    good_and_folder(file, sub, "sub");
    ck_assert_int_eq(symlink("../good", unit_temp_path(path, sizeof path, dir, "sub/up")), 0);
    /* sub/up/.. is dir (the parent of where up leads), not sub: sub/good does not exist. */
    unit_temp_path(path, sizeof path, dir, "sub/up/../good/./plugin.so");
    ck_assert_msg(wn_trust_path(path, why, sizeof why), "refused: %s", why);
    ck_assert_int_eq(symlink("loop", unit_temp_path(loop, sizeof loop, dir, "sub/loop")), 0);
    ck_assert(!wn_trust_path(loop, why, sizeof why));
    snprintf(want, sizeof want, "cannot resolve %s: Too many levels of symbolic links", loop);
    ck_assert_str_eq(why, want);
    unit_remove_tree(dir);
}
END_TEST

/* wn_trust_open hands back the file the walk checked, and only a regular one. */
START_TEST(open_returns_the_checked_file)
{
    char file[PATH_MAX], sub[PATH_MAX], why[PATH_MAX + 256] = "", want[PATH_MAX + 256];
    struct stat expected, opened;
    int fd;

    unit_temp_dir(dir, sizeof dir, "test_trust");
    good_and_folder(file, sub, "sub");
    fd = wn_trust_open(file, why, sizeof why);
    ck_assert_msg(fd >= 0, "refused: %s", why);
    ck_assert_int_eq(fstat(fd, &opened), 0);
    ck_assert_int_eq(stat(file, &expected), 0);
    ck_assert(opened.st_dev == expected.st_dev && opened.st_ino == expected.st_ino);
    ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    ck_assert_int_eq(close(fd), 0);
    ck_assert_int_eq(wn_trust_open(sub, why, sizeof why), -1);
    snprintf(want, sizeof want, "%s is not a regular file", sub);
    ck_assert_str_eq(why, want);
    ck_assert_int_eq(chmod(file, 0664), 0);
    ck_assert_int_eq(wn_trust_open(file, why, sizeof why), -1);
    snprintf(want, sizeof want, "file %s is writable by its group (mode 0664)", file);
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

/* A secret file: its content, or NULL and why. */
static char *secret(const char *name, const char *content, mode_t mode, char *why, size_t whylen)
{
    char file[PATH_MAX];
    FILE *f = fopen(unit_temp_path(file, sizeof file, dir, name), "w");

    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(file, mode), 0);
    return wn_trust_read_secret("token_file", file, 64, why, whylen);
}

START_TEST(a_secret_is_read_whole)
{
    char why[PATH_MAX + 256] = "";
    char *text;

    unit_temp_dir(dir, sizeof dir, "test_trust");
    text = secret("token", "s3cret\n", 0600, why, sizeof why);
    ck_assert_msg(text != NULL, "refused: %s", why);
    ck_assert_str_eq(text, "s3cret\n");
    wn_trust_free_secret(text);
    unit_remove_tree(dir);
}
END_TEST

START_TEST(a_secret_file_refused_is_named_not_quoted)
{
    char file[PATH_MAX], link[PATH_MAX], why[PATH_MAX + 256], want[2 * PATH_MAX + 256];

    unit_temp_dir(dir, sizeof dir, "test_trust");
    unit_temp_path(file, sizeof file, dir, "open");
    ck_assert_ptr_null(secret("open", "s3cret", 0666, why, sizeof why));
    snprintf(want, sizeof want,
             "token_file refused: file %s is writable by everyone (mode 0666) (set %s=1 to allow "
             "this in a development tree)",
             file, WN_ALLOW_UNSAFE_PATHS_ENV);
    ck_assert_str_eq(why, want);

    ck_assert_ptr_null(secret("big", "0123456789012345678901234567890123456789012345678901234567"
                                     "890123456789",
                              0600, why, sizeof why));
    ck_assert_msg(strstr(why, "is not a regular file of at most 64 bytes") != NULL, "%s", why);

    ck_assert_int_eq(chmod(file, 0600), 0);
    ck_assert_int_eq(symlink(file, unit_temp_path(link, sizeof link, dir, "link")), 0);
    ck_assert_ptr_null(wn_trust_read_secret("token_file", link, 64, why, sizeof why));
    snprintf(want, sizeof want,
             "token_file %s is a symbolic link, which walnotify does not follow: name the file "
             "itself",
             link);
    ck_assert_str_eq(why, want);

    ck_assert_ptr_null(wn_trust_read_secret("token_file", "/nonexistent/token", 64, why,
                                            sizeof why));
    ck_assert_str_eq(why, "cannot open token_file /nonexistent/token: No such file or directory");
    ck_assert_msg(strstr(why, "s3cret") == NULL, "%s", why);
    unit_remove_tree(dir);
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
    tcase_add_test(tc, a_link_in_the_middle_in_an_open_folder_is_refused);
    tcase_add_test(tc, a_link_in_the_middle_owned_by_another_user_is_refused);
    tcase_add_test(tc, links_resolve_as_the_kernel_resolves_them);
    tcase_add_test(tc, open_returns_the_checked_file);
    tcase_add_test(tc, a_missing_file_is_named);
    tcase_add_test(tc, unsafe_paths_allowed_only_by_1);
    tcase_add_test(tc, a_secret_is_read_whole);
    tcase_add_test(tc, a_secret_file_refused_is_named_not_quoted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(trust_suite()) == 0 ? 0 : 1;
}
