/* secretfile: a small file holding a secret, read under walnotify's rule; see secretfile.h. */
#include "secretfile.h"

#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void wn_secret_free(char *text, size_t length)
{
    if (text == NULL)
        return;
    explicit_bzero(text, length);
    free(text);
}

/*
 * Whoever could change the file chooses the secret sent (or the credentials used). The
 * descriptor is checked, not the name.
 */
static bool trusted(const char *setting, const char *path, const struct stat *sb, char *why,
                    size_t whylen)
{
    char reason[512];

    if (wn_trust_unsafe_allowed())
        return true;
    if (sb->st_uid != 0 && sb->st_uid != geteuid())
        snprintf(reason, sizeof reason,
                 "file %s is owned by uid %u, not by root or by the user walnotify runs as "
                 "(uid %u)",
                 path, (unsigned)sb->st_uid, (unsigned)geteuid());
    else if (sb->st_mode & (S_IWGRP | S_IWOTH))
        snprintf(reason, sizeof reason, "file %s is writable by %s (mode %04o)", path,
                 sb->st_mode & S_IWOTH ? "everyone" : "its group", (unsigned)(sb->st_mode & 07777));
    else if (wn_trust_path(path, reason, sizeof reason))
        return true;
    snprintf(why, whylen, "%s refused: %s (set %s=1 to allow this in a development tree)", setting,
             reason, WN_ALLOW_UNSAFE_PATHS_ENV);
    return false;
}

static bool read_all(int fd, char *text, size_t size, const char *setting, const char *path,
                     char *why, size_t whylen)
{
    size_t got = 0;

    while (got < size) {
        ssize_t n = read(fd, text + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(why, whylen, "cannot read %s %s: %s", setting, path,
                     n < 0 ? strerror(errno) : "it shrank while being read");
            return false;
        }
        got += (size_t)n;
    }
    return true;
}

char *wn_secret_read(const char *setting, const char *path, size_t max_bytes, size_t *length,
                     char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    struct stat sb;
    char *text = NULL;

    if (fd < 0 && errno == ELOOP) {
        snprintf(why, whylen,
                 "%s %s is a symbolic link, which walnotify does not follow: name the file itself",
                 setting, path);
        return NULL;
    }
    if (fd < 0) {
        snprintf(why, whylen, "cannot open %s %s: %s", setting, path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > max_bytes) {
        snprintf(why, whylen, "%s %s is not a regular file of at most %zu bytes", setting, path,
                 max_bytes);
        goto close_file;
    }
    if (!trusted(setting, path, &sb, why, whylen))
        goto close_file;
    text = calloc(1, (size_t)sb.st_size + 1);
    if (text == NULL) {
        snprintf(why, whylen, "out of memory reading %s %s", setting, path);
        goto close_file;
    }
    if (!read_all(fd, text, (size_t)sb.st_size, setting, path, why, whylen)) {
        wn_secret_free(text, (size_t)sb.st_size);
        text = NULL;
        goto close_file;
    }
    *length = (size_t)sb.st_size;
close_file:
    close(fd);
    return text;
}
