/*
 * unit_paths: where a unit test finds the repository's files (build/plugins, tests/fixtures), the
 * fresh folder it works in, and how it removes it. Header-only (static inline), so a unit test
 * links nothing more.
 */
#ifndef WN_TEST_UNIT_PATHS_H
#define WN_TEST_UNIT_PATHS_H

#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The file rel of the repository into out (size bytes). The root is three components up from
 * source, the test's own __FILE__ (tests/unit/test_x.c), or "." when the compiler was given a
 * shorter path. Fails the test when the path does not fit.
 */
static inline void unit_repo_file(char *out, size_t size, const char *source, const char *rel)
{
    char root[4096];
    int n;

    ck_assert_msg(strlen(source) < sizeof root, "source path too long: %s", source);
    strcpy(root, source);
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(root, '/');

        if (slash == NULL) {
            strcpy(root, ".");
            break;
        }
        *slash = '\0';
    }
    n = snprintf(out, size, "%s/%s", root, rel); /* "" (the file system's root): "/rel" */
    ck_assert_msg(n > 0 && (size_t)n < size, "path too long: %s/%s", root, rel);
}

static inline int unit_remove_entry(const char *path, const struct stat *st, int flag,
                                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir and everything below it, as far as it can. */
static inline void unit_remove_tree(const char *dir)
{
    nftw(dir, unit_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates /tmp/NAME.XXXXXX (0700) and writes its canonical path into dir, so that what the code
 * under test resolves compares equal. */
static inline void unit_temp_dir(char *dir, size_t size, const char *name)
{
    char made[PATH_MAX];

    ck_assert(size >= PATH_MAX);
    ck_assert(snprintf(made, sizeof made, "/tmp/%s.XXXXXX", name) < (int)sizeof made);
    ck_assert_ptr_nonnull(mkdtemp(made));
    ck_assert_ptr_nonnull(realpath(made, dir));
}

/*
 * The user "nobody", whose files stand for another user's: made with chown, which needs root (the
 * tests run as root in CI). False, after saying on standard error that test skips what needs it,
 * when not run as root.
 */
static inline bool unit_other_user(const char *test, uid_t *uid, gid_t *gid)
{
    const struct passwd *pw;

    if (geteuid() != 0) {
        fprintf(stderr, "%s: not run as root: the cases with another user's files are skipped\n",
                test);
        return false;
    }
    pw = getpwnam("nobody");
    ck_assert_msg(pw != NULL, "no user \"nobody\" to own another user's files");
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return true;
}

/* dir/name into out. */
static inline char *unit_temp_path(char *out, size_t size, const char *dir, const char *name)
{
    ck_assert(snprintf(out, size, "%s/%s", dir, name) < (int)size);
    return out;
}

#endif
