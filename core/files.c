/*
 * files: writing, syncing, cutting and replacing the files walnotify keeps. Shared by the host
 * (state file, dead-letter file) and compiled into the jsonl plugin, so it logs nothing.
 */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* Bytes read per step when looking backwards for the last newline of a torn file. */
#define TAIL_CHUNK ((size_t)16 * 1024)
/* What mkstemp replaces, after PATH + TEMP_MARK. */
#define TEMP_MARK ".tmp-"
#define TEMP_X "XXXXXX"

int wn_files_write_all(int fd, const void *data, size_t length)
{
    const char *at = data;

    while (length > 0) {
        size_t step = length > (size_t)SSIZE_MAX ? (size_t)SSIZE_MAX : length;
        ssize_t n = write(fd, at, step);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Standard output may be a non-blocking pipe someone else set up. */
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};

            if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                return errno;
            continue;
        }
        if (n < 0)
            return errno;
        if (n == 0)
            return EIO; /* no progress and no reason: do not spin */
        at += n;
        length -= (size_t)n;
    }
    return 0;
}

/* The folder part of path into out: "." without a slash, "/" for a file at the root. */
static int folder_of(const char *path, char *out, size_t size)
{
    char *slash;

    if (snprintf(out, size, "%s", path) >= (int)size)
        return ENAMETOOLONG;
    slash = strrchr(out, '/');
    if (slash == NULL)
        snprintf(out, size, ".");
    else if (slash == out)
        slash[1] = '\0';
    else
        *slash = '\0';
    return 0;
}

int wn_files_sync_folder(const char *path)
{
    char folder[PATH_MAX];
    int fd, rc;

    rc = folder_of(path, folder, sizeof folder);
    if (rc != 0)
        return rc;
    fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    rc = fsync(fd) == 0 || errno == EINVAL ? 0 : errno;
    close(fd);
    return rc;
}

/* Refuses what fd opened unless it is a regular file, or a character device that accept takes
 * (EINVAL), and takes O_NONBLOCK off again: that flag was only there so that opening a FIFO
 * could not wait for a peer. */
static int check_kind(int fd, wn_files_accept accept)
{
    struct stat sb;
    int flags;

    if (fstat(fd, &sb) != 0)
        return errno;
    if (!S_ISREG(sb.st_mode) && !(S_ISCHR(sb.st_mode) && accept == WN_FILES_CHAR_DEVICE_TOO))
        return EINVAL;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
        return errno;
    return 0;
}

int wn_files_open_append(const char *path, mode_t mode, wn_files_accept accept, bool *created)
{
    /* Read access too, to find a torn tail; O_APPEND writes land at the end whatever the offset,
     * and ftruncate still cuts the file back. O_NONBLOCK: a FIFO there is refused below, never
     * waited on. */
    const int flags = O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    int fd, rc;

    *created = true;
    /* O_EXCL: never created through a link, and the mode below is only ever set on a new file. */
    do
        fd = open(path, flags | O_CREAT | O_EXCL, mode);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno == EEXIST) {
        *created = false;
        do
            fd = open(path, flags);
        while (fd < 0 && errno == EINTR);
    }
    if (fd < 0)
        return -1;
    rc = check_kind(fd, accept);
    if (rc != 0) {
        close(fd);
        errno = rc;
        return -1;
    }
    /* The umask would narrow mode (UMask=0077 turns 0640 into 0600): a setting that asked for
     * 0640 meant it. */
    if (*created && fchmod(fd, mode) != 0) {
        int saved = errno;

        close(fd);
        unlink(path);
        errno = saved;
        return -1;
    }
    return fd;
}

/* The offset just past the last '\n' among the first size bytes, or 0 when there is none. */
static int last_line_end(int fd, off_t size, off_t *end)
{
    char chunk[TAIL_CHUNK];
    off_t at = size;

    while (at > 0) {
        size_t want = at > (off_t)sizeof chunk ? sizeof chunk : (size_t)at;
        ssize_t n = pread(fd, chunk, want, at - (off_t)want);

        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)want)
            return n < 0 ? errno : EIO;
        at -= (off_t)want;
        for (size_t i = want; i > 0; i--) {
            if (chunk[i - 1] == '\n') {
                *end = at + (off_t)i;
                return 0;
            }
        }
    }
    *end = 0;
    return 0;
}

int wn_files_cut_torn_tail(int fd, int read_fd, off_t *kept, off_t *cut)
{
    struct stat sb;
    off_t end = 0;
    int rc;

    *cut = 0;
    if (fstat(fd, &sb) != 0)
        return errno;
    *kept = sb.st_size;
    if (sb.st_size == 0)
        return 0;
    rc = last_line_end(read_fd, sb.st_size, &end);
    if (rc != 0)
        return rc;
    if (end == sb.st_size)
        return 0;
    while (ftruncate(fd, end) != 0) {
        if (errno != EINTR)
            return errno;
    }
    *kept = end;
    *cut = sb.st_size - end;
    return 0;
}

/* The process holding a flock on the file, from /proc/locks (Linux); 0 when unknown. */
static long lock_holder(int fd)
{
    struct stat sb;
    FILE *locks;
    long holder = 0;
    char line[256];

    if (fstat(fd, &sb) != 0)
        return 0;
    locks = fopen("/proc/locks", "re");
    if (locks == NULL)
        return 0;
    while (holder == 0 && fgets(line, sizeof line, locks) != NULL) {
        char type[16];
        long pid;
        unsigned dev_major, dev_minor;
        unsigned long inode;

        /* "1: FLOCK  ADVISORY  WRITE 4242 08:01:131 0 EOF"; waiters ("1: -> ...") do not match */
        if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%lu", type, &pid, &dev_major, &dev_minor,
                   &inode) == 5 &&
            strcmp(type, "FLOCK") == 0 && dev_major == major(sb.st_dev) &&
            dev_minor == minor(sb.st_dev) && inode == (unsigned long)sb.st_ino)
            holder = pid;
    }
    fclose(locks);
    return holder;
}

int wn_files_lock(int fd, long *holder)
{
    int err;

    *holder = 0;
    do
        err = flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
    while (err == EINTR);
    if (err != EWOULDBLOCK)
        return err;
    *holder = lock_holder(fd);
    return *holder == (long)getpid() ? EDEADLK : EWOULDBLOCK;
}

/* Writes, chmods and fsyncs the new content into the open temporary file; errno value or 0. */
static int fill_temp(int fd, const void *data, size_t length, mode_t mode)
{
    int rc = wn_files_write_all(fd, data, length);

    if (rc != 0)
        return rc;
    if (mode != WN_FILES_MODE && fchmod(fd, mode) != 0)
        return errno;
    return fsync(fd) == 0 ? 0 : errno;
}

int wn_files_replace(const char *path, const void *data, size_t length, mode_t mode,
                     const char *what, char *err, size_t errlen)
{
    char temp[PATH_MAX];
    int fd, rc;

    if (snprintf(temp, sizeof temp, "%s" TEMP_MARK TEMP_X, path) >= (int)sizeof temp) {
        snprintf(err, errlen, "%s %s: path too long for its temporary file", what, path);
        return ENAMETOOLONG;
    }
    fd = mkostemp(temp, O_CLOEXEC); /* O_EXCL, mode 0600: a link or a namesake is never met */
    if (fd < 0) {
        rc = errno;
        snprintf(err, errlen, "cannot create a temporary file beside the %s %s: %s", what, path,
                 strerror(rc));
        return rc;
    }
    rc = fill_temp(fd, data, length, mode);
    if (close(fd) != 0 && rc == 0)
        rc = errno;
    if (rc != 0) {
        snprintf(err, errlen, "cannot write the %s's temporary file %s: %s", what, temp,
                 strerror(rc));
        goto unlink_temp;
    }
    /* rename replaces a link at path itself, never what it points at. */
    if (rename(temp, path) != 0) {
        rc = errno;
        snprintf(err, errlen, "cannot rename %s to the %s %s: %s", temp, what, path, strerror(rc));
        goto unlink_temp;
    }
    rc = wn_files_sync_folder(path);
    if (rc != 0)
        snprintf(err, errlen, "cannot sync the folder of the %s %s: %s", what, path, strerror(rc));
    return rc;

unlink_temp:
    unlink(temp);
    return rc;
}

bool wn_files_is_temp_name(const char *name, const char *base)
{
    size_t n = strlen(base), mark = strlen(TEMP_MARK), x = strlen(TEMP_X);
    const char *suffix;

    if (strncmp(name, base, n) != 0 || strncmp(name + n, TEMP_MARK, mark) != 0)
        return false;
    suffix = name + n + mark;
    if (strlen(suffix) != x)
        return false;
    for (size_t i = 0; i < x; i++) {
        char c = suffix[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* Removes name (in the folder dir refers to) when it is an old leftover of ours. */
static bool remove_if_stale(DIR *dir, const char *name, time_t before)
{
    struct stat sb;

    if (fstatat(dirfd(dir), name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
        return false;
    if (!S_ISREG(sb.st_mode) || sb.st_uid != geteuid() || sb.st_mtime >= before)
        return false;
    return unlinkat(dirfd(dir), name, 0) == 0;
}

int wn_files_remove_stale_temps(const char *path, long min_age_s)
{
    char folder[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    time_t before = time(NULL) - (time_t)min_age_s;
    struct dirent *entry;
    DIR *dir;
    int removed = 0;

    if (base[0] == '\0' || folder_of(path, folder, sizeof folder) != 0)
        return 0;
    dir = opendir(folder);
    if (dir == NULL)
        return 0;
    while ((entry = readdir(dir)) != NULL) {
        if (wn_files_is_temp_name(entry->d_name, base) &&
            remove_if_stale(dir, entry->d_name, before))
            removed++;
    }
    closedir(dir);
    return removed;
}

const char *wn_files_kind(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISDIR(mode))
        return "a folder";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISLNK(mode))
        return "a symbolic link";
    return S_ISREG(mode) ? "a regular file" : "not a regular file";
}

const char *wn_files_reason(const char *path, int err)
{
    struct stat sb;

    if (err == ELOOP && lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode))
        return "it is a symbolic link, and walnotify does not follow one there (give the path of "
               "the file itself)";
    if (err == EINVAL && lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        if (S_ISFIFO(sb.st_mode))
            return "it is a FIFO, not a regular file: walnotify writes rows and progress only to "
                   "regular files";
        if (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode))
            return "it is a device, not a regular file: walnotify writes rows and progress only "
                   "to regular files";
        return "it is not a regular file: walnotify writes rows and progress only to regular "
               "files";
    }
    return strerror(err);
}

/* The last component of path, "" when it ends in a slash. */
static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash != NULL ? slash + 1 : path;
}

int wn_files_identity(const char *path, wn_file_id *id)
{
    char folder[PATH_MAX];
    struct stat sb;
    int rc;

    memset(id, 0, sizeof *id);
    if (stat(path, &sb) == 0) {
        id->exists = true;
    } else {
        rc = folder_of(path, folder, sizeof folder);
        if (rc != 0)
            return rc;
        if (stat(folder, &sb) != 0)
            return errno;
        if (snprintf(id->base, sizeof id->base, "%s", base_of(path)) >= (int)sizeof id->base)
            return ENAMETOOLONG;
    }
    id->dev = sb.st_dev;
    id->ino = sb.st_ino;
    return 0;
}

bool wn_files_same_identity(const wn_file_id *a, const wn_file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->exists == b->exists &&
           strcmp(a->base, b->base) == 0;
}
