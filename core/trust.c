/*
 * trust: walks a path from "/" one component at a time, as the kernel would, refusing any
 * component (folder, symbolic link, the file itself) that someone other than root or the user
 * walnotify runs as could change or replace. Every step opens the entry relative to the folder
 * already checked (O_PATH, never following a link), so what is checked is what the walk holds.
 */
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Links one walk follows at most, as the kernel's own limit (ELOOP beyond). */
#define LINKS_MAX 40

/* Where the walk stands: a checked folder, and what remains of the path. */
typedef struct walk {
    const char *path;        /* as given, for messages about resolving it */
    int dir;                 /* O_PATH descriptor of the folder reached; owned */
    struct stat dir_st;      /* its status */
    char dir_path[PATH_MAX]; /* its canonical path, for messages */
    char rest[PATH_MAX];     /* the components still to walk, '/'-separated */
    unsigned links;          /* symbolic links followed so far */
    char *why;
    size_t whylen;
} walk;

/* Owned by root or by the user walnotify runs as. */
static bool trusted_owner(const struct stat *st)
{
    return st->st_uid == 0 || st->st_uid == geteuid();
}

static const char *kind(const struct stat *st)
{
    return S_ISDIR(st->st_mode) ? "folder" : S_ISLNK(st->st_mode) ? "link" : "file";
}

static bool refuse_owner(walk *w, const char *path, const struct stat *st)
{
    snprintf(w->why, w->whylen,
             "%s %s is owned by uid %u, not by root or by the user walnotify runs as (uid %u)",
             kind(st), path, (unsigned)st->st_uid, (unsigned)geteuid());
    return false;
}

static bool refuse_mode(walk *w, const char *path, const struct stat *st)
{
    snprintf(w->why, w->whylen, "%s %s is writable by %s (mode %04o)", kind(st), path,
             st->st_mode & S_IWOTH ? "everyone" : "its group", (unsigned)(st->st_mode & 07777));
    return false;
}

static bool refuse_errno(walk *w)
{
    snprintf(w->why, w->whylen, "cannot resolve %s: %s", w->path, strerror(errno));
    return false;
}

/* refuse_errno, closing fd first (without losing errno). */
static bool refuse_errno_closing(walk *w, int fd)
{
    int saved = errno;

    close(fd);
    errno = saved;
    return refuse_errno(w);
}

/*
 * Whether entry (at entry_path, status st) may be trusted inside the folder the walk stands in:
 * the entry owned by root or walnotify's user (a link too: its owner may replace it in a sticky
 * folder), and the folder writable by no one else, or sticky (as /tmp: others may add entries,
 * but only an entry's owner may replace it).
 */
static bool trusted_entry(walk *w, const char *entry_path, const struct stat *st)
{
    bool open_folder = (w->dir_st.st_mode & (S_IWGRP | S_IWOTH)) != 0;

    if (open_folder && !(w->dir_st.st_mode & S_ISVTX))
        return refuse_mode(w, w->dir_path, &w->dir_st);
    if (!trusted_owner(st))
        return refuse_owner(w, entry_path, st);
    return true;
}

/* What the path names, at the end: nobody else may write it, sticky or not. */
static bool trusted_end(walk *w, const char *path, const struct stat *st)
{
    if (!trusted_owner(st))
        return refuse_owner(w, path, st);
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return refuse_mode(w, path, st);
    return true;
}

/* The walk now stands in the folder fd (status st, canonical path dir_path); takes fd. */
static void enter(walk *w, int fd, const struct stat *st, const char *dir_path)
{
    if (w->dir >= 0)
        close(w->dir);
    w->dir = fd;
    w->dir_st = *st;
    if (dir_path != w->dir_path)
        snprintf(w->dir_path, sizeof w->dir_path, "%s", dir_path);
}

/* Back to "/", checked: its owner (nothing above it can replace it). */
static bool enter_root(walk *w)
{
    struct stat st;
    int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return refuse_errno(w);
    if (fstat(fd, &st) != 0)
        return refuse_errno_closing(w, fd);
    enter(w, fd, &st, "/");
    if (!trusted_owner(&st))
        return refuse_owner(w, "/", &st);
    return true;
}

/* "..": the folder above, already checked on the way down (every folder of dir_path was). */
static bool enter_parent(walk *w)
{
    char *slash = strrchr(w->dir_path, '/');
    struct stat st;
    int fd;

    if (strcmp(w->dir_path, "/") == 0)
        return true;
    fd = openat(w->dir, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return refuse_errno(w);
    if (fstat(fd, &st) != 0)
        return refuse_errno_closing(w, fd);
    slash[slash == w->dir_path ? 1 : 0] = '\0';
    enter(w, fd, &st, w->dir_path);
    return true;
}

/* Takes the next component of rest into name (NUL-terminated); false when none is left. */
static bool next_component(walk *w, char *name, size_t namelen)
{
    char *p = w->rest + strspn(w->rest, "/");
    size_t len = strcspn(p, "/");

    if (len == 0)
        return false;
    if (len >= namelen)
        len = namelen - 1; /* rest and name are both PATH_MAX long: never cut */
    memcpy(name, p, len);
    name[len] = '\0';
    p += len;
    memmove(w->rest, p, strlen(p) + 1);
    return true;
}

static bool more_components(const walk *w)
{
    return w->rest[strspn(w->rest, "/")] != '\0';
}

/* A link: its target goes in front of what remains; an absolute one starts again at "/". */
static bool follow_link(walk *w, int fd)
{
    char target[PATH_MAX], joined[PATH_MAX];
    ssize_t n = readlinkat(fd, "", target, sizeof target - 1);
    int len;

    if (n < 0)
        return refuse_errno(w);
    target[n] = '\0';
    if (++w->links > LINKS_MAX) {
        errno = ELOOP;
        return refuse_errno(w);
    }
    len = snprintf(joined, sizeof joined, "%s/%s", target, w->rest);
    if (len < 0 || (size_t)len >= sizeof joined) {
        errno = ENAMETOOLONG;
        return refuse_errno(w);
    }
    memcpy(w->rest, joined, (size_t)len + 1);
    return target[0] == '/' ? enter_root(w) : true;
}

/*
 * Walks w->rest from the folder the walk stands in. On success *end is an O_PATH descriptor of
 * what the path names (the caller closes it), *end_st its status and end_path its canonical
 * path; the walk stands in the folder holding it (in that folder itself for "/", "." or "..").
 */
static bool walk_all(walk *w, int *end, struct stat *end_st, char *end_path, size_t end_pathlen)
{
    char name[PATH_MAX], entry_path[PATH_MAX];

    while (next_component(w, name, sizeof name)) {
        struct stat st;
        int fd, n;

        if (strcmp(name, ".") == 0)
            continue;
        if (strcmp(name, "..") == 0) {
            if (!enter_parent(w))
                return false;
            continue;
        }
        n = snprintf(entry_path, sizeof entry_path, "%s%s%s", w->dir_path,
                     strcmp(w->dir_path, "/") == 0 ? "" : "/", name);
        if (n < 0 || (size_t)n >= sizeof entry_path) {
            errno = ENAMETOOLONG;
            return refuse_errno(w);
        }
        fd = openat(w->dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return refuse_errno(w);
        if (fstat(fd, &st) != 0)
            return refuse_errno_closing(w, fd);
        if (!trusted_entry(w, entry_path, &st)) {
            close(fd);
            return false;
        }
        if (S_ISLNK(st.st_mode)) {
            bool ok = follow_link(w, fd);

            close(fd);
            if (!ok)
                return false;
            continue;
        }
        if (!more_components(w)) {
            *end = fd;
            *end_st = st;
            snprintf(end_path, end_pathlen, "%s", entry_path);
            return true;
        }
        if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            return refuse_errno_closing(w, fd);
        }
        enter(w, fd, &st, entry_path);
    }
    /* The path ends at a folder ("/", "x/.", "x/.."): that folder is what it names. */
    *end = dup(w->dir);
    *end_st = w->dir_st;
    snprintf(end_path, end_pathlen, "%s", w->dir_path);
    return *end >= 0 ? true : refuse_errno(w);
}

/* Starts a walk of path: from "/", an absolute path, else from the working folder. */
static bool walk_begin(walk *w, const char *path, char *why, size_t whylen)
{
    char cwd[PATH_MAX];
    int n;

    memset(w, 0, sizeof *w);
    w->dir = -1;
    w->path = path ? path : "(null)";
    w->why = why;
    w->whylen = whylen;
    if (whylen > 0)
        why[0] = '\0';
    if (!path || path[0] == '\0') {
        errno = ENOENT;
        return refuse_errno(w);
    }
    if (path[0] != '/' && !getcwd(cwd, sizeof cwd))
        return refuse_errno(w);
    n = snprintf(w->rest, sizeof w->rest, "%s/%s", path[0] == '/' ? "" : cwd, path);
    if (n < 0 || (size_t)n >= sizeof w->rest) {
        errno = ENAMETOOLONG;
        return refuse_errno(w);
    }
    return enter_root(w);
}

static void walk_end(walk *w)
{
    if (w->dir >= 0)
        close(w->dir);
    w->dir = -1;
}

/* The whole check; on success *end (O_PATH, the caller's) and *end_st are what path names. */
static bool check_path(walk *w, const char *path, int *end, struct stat *end_st, char *end_path,
                       size_t end_pathlen, char *why, size_t whylen)
{
    if (!walk_begin(w, path, why, whylen) || !walk_all(w, end, end_st, end_path, end_pathlen))
        return false;
    if (trusted_end(w, end_path, end_st))
        return true;
    close(*end);
    return false;
}

bool wn_trust_path(const char *path, char *why, size_t whylen)
{
    char end_path[PATH_MAX];
    struct stat st;
    walk w;
    int end;
    bool ok = check_path(&w, path, &end, &st, end_path, sizeof end_path, why, whylen);

    if (ok)
        close(end);
    walk_end(&w);
    return ok;
}

/* The file under the O_PATH descriptor end, opened for reading: the same file (device and
 * inode), regular, and still passing the end's checks on the open descriptor itself. */
static int reopen(walk *w, int end, const struct stat *end_st, const char *end_path)
{
    char self[64];
    struct stat st;
    int fd;

    if (!S_ISREG(end_st->st_mode)) {
        snprintf(w->why, w->whylen, "%s is not a regular file", end_path);
        return -1;
    }
    /* The descriptor's own file, whatever its folder holds by now (no path is walked again). */
    snprintf(self, sizeof self, "/proc/self/fd/%d", end);
    fd = open(self, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(w->why, w->whylen, "cannot open %s: %s", end_path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || st.st_dev != end_st->st_dev || st.st_ino != end_st->st_ino ||
        !S_ISREG(st.st_mode) || !trusted_end(w, end_path, &st)) {
        if (w->why[0] == '\0')
            snprintf(w->why, w->whylen, "%s changed while it was opened", end_path);
        close(fd);
        return -1;
    }
    return fd;
}

int wn_trust_open(const char *path, char *why, size_t whylen)
{
    char end_path[PATH_MAX];
    struct stat st;
    walk w;
    int end, fd = -1;

    if (check_path(&w, path, &end, &st, end_path, sizeof end_path, why, whylen)) {
        fd = reopen(&w, end, &st, end_path);
        close(end);
    }
    walk_end(&w);
    return fd;
}

bool wn_trust_unsafe_allowed(void)
{
    const char *allow = getenv(WN_ALLOW_UNSAFE_PATHS_ENV);

    return allow != NULL && strcmp(allow, "1") == 0;
}

/* ---- secrets --------------------------------------------------------------------------------- */

void wn_trust_free_secret(char *secret)
{
    if (secret == NULL)
        return;
    explicit_bzero(secret, strlen(secret));
    free(secret);
}

static bool trusted_secret(const char *setting, const char *path, const struct stat *sb, char *why,
                           size_t whylen)
{
    char reason[PATH_MAX + 256];

    if (wn_trust_unsafe_allowed())
        return true;
    if (!trusted_owner(sb))
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

static bool read_whole(int fd, char *text, size_t size, const char *setting, const char *path,
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

char *wn_trust_read_secret(const char *setting, const char *path, size_t max_bytes, char *why,
                           size_t whylen)
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
    if (!trusted_secret(setting, path, &sb, why, whylen))
        goto close_file;
    text = calloc(1, (size_t)sb.st_size + 1);
    if (text == NULL) {
        snprintf(why, whylen, "out of memory reading %s %s", setting, path);
        goto close_file;
    }
    if (!read_whole(fd, text, (size_t)sb.st_size, setting, path, why, whylen)) {
        wn_trust_free_secret(text);
        text = NULL;
    }
close_file:
    close(fd);
    return text;
}
