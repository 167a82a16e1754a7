/*
 * A fresh folder for one unit test: under /tmp, named by its canonical path (so that what the
 * code under test resolves compares equal), removed with everything in it. Header-only, for the
 * unit tests that include it.
 */
#ifndef WN_TEST_TEMPDIR_H
#define WN_TEST_TEMPDIR_H

#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* Creates /tmp/NAME.XXXXXX (0700) and writes its canonical path into dir. */
static inline void tempdir_make(char *dir, size_t size, const char *name)
{
    char made[PATH_MAX];

    ck_assert(size >= PATH_MAX);
    ck_assert(snprintf(made, sizeof made, "/tmp/%s.XXXXXX", name) < (int)sizeof made);
    ck_assert_ptr_nonnull(mkdtemp(made));
    ck_assert_ptr_nonnull(realpath(made, dir));
}

static inline int tempdir_remove_entry(const char *path, const struct stat *sb, int flag,
                                       struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir and everything below it, links as links. */
static inline void tempdir_remove(const char *dir)
{
    nftw(dir, tempdir_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* dir/name into out. */
static inline char *tempdir_path(char *out, size_t size, const char *dir, const char *name)
{
    ck_assert(snprintf(out, size, "%s/%s", dir, name) < (int)size);
    return out;
}

#endif
