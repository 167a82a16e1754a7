/*
 * trust: walks a path and every folder above it, refusing what someone other than root or the
 * user walnotify runs as could change.
 */
#include "trust.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Owned by root or by the user walnotify runs as. */
static bool trusted_owner(const struct stat *st)
{
    return st->st_uid == 0 || st->st_uid == geteuid();
}

/* One step of the walk: path (a folder, or the file itself when child is NULL) with its status
 * st; child_st is the status of the entry below it. */
static bool trusted_step(const char *path, const struct stat *st, const struct stat *child_st,
                         char *why, size_t whylen)
{
    const char *what = S_ISDIR(st->st_mode) ? "folder" : "file";

    if (!trusted_owner(st)) {
        snprintf(why, whylen,
                 "%s %s is owned by uid %u, not by root or by the user walnotify "
                 "runs as (uid %u)",
                 what, path, (unsigned)st->st_uid, (unsigned)geteuid());
        return false;
    }
    if (!(st->st_mode & (S_IWGRP | S_IWOTH)))
        return true;
    /* As /tmp: others may add entries, but only the owner of an entry may replace it. */
    if (child_st && (st->st_mode & S_ISVTX) && trusted_owner(child_st))
        return true;
    snprintf(why, whylen, "%s %s is writable by %s (mode %04o)", what, path,
             st->st_mode & S_IWOTH ? "everyone" : "its group", (unsigned)(st->st_mode & 07777));
    return false;
}

bool wn_trust_unsafe_allowed(void)
{
    const char *allow = getenv(WN_ALLOW_UNSAFE_PATHS_ENV);

    return allow != NULL && strcmp(allow, "1") == 0;
}

/* From real (canonical, owned; cut short as the walk goes up) to "/": whoever can write any of
 * them can replace what is loaded. child, when not NULL, is the entry below real. */
static bool trusted_chain(char *real, const struct stat *child, char *why, size_t whylen)
{
    struct stat st, below;
    bool have_below = child != NULL;

    if (child)
        below = *child;
    for (;;) {
        char *slash;

        if (stat(real, &st) != 0) {
            snprintf(why, whylen, "cannot read the status of %s: %s", real, strerror(errno));
            return false;
        }
        if (!trusted_step(real, &st, have_below ? &below : NULL, why, whylen))
            return false;
        if (strcmp(real, "/") == 0)
            return true;
        below = st;
        have_below = true;
        slash = strrchr(real, '/');
        slash[slash == real ? 1 : 0] = '\0';
    }
}

bool wn_trust_path(const char *path, char *why, size_t whylen)
{
    char *real = path ? realpath(path, NULL) : NULL;
    char *folder = NULL, *slash;
    struct stat link;
    bool ok;

    if (!real) {
        snprintf(why, whylen, "cannot resolve %s: %s", path ? path : "(null)", strerror(errno));
        return false;
    }
    ok = trusted_chain(real, NULL, why, whylen);
    free(real);
    /* A link as the last component: the folder holding the link decides too, since whoever
     * may replace the link chooses what is loaded. */
    if (!ok || lstat(path, &link) != 0 || !S_ISLNK(link.st_mode))
        return ok;
    slash = strrchr(path, '/');
    folder = slash == NULL   ? strdup(".")
             : slash == path ? strdup("/")
                             : strndup(path, (size_t)(slash - path));
    real = folder ? realpath(folder, NULL) : NULL;
    free(folder);
    if (!real) {
        snprintf(why, whylen, "cannot resolve the folder of %s: %s", path, strerror(errno));
        return false;
    }
    ok = trusted_chain(real, &link, why, whylen);
    free(real);
    return ok;
}
