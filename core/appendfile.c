/*
 * appendfile: durable append files (see appendfile.h). Compiled into the host and into the jsonl
 * plugin, so it logs nothing.
 */
#include "appendfile.h"

#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMPANION_MAX 128 /* bytes of a companion's text: three numbers and a header */
#define COMPANION_HEADER "walnotify durable 1\n"
/* A stray temporary companion older than this is a crash's leftover (see wn_files_replace). */
#define STALE_TEMP_S 60
/* WN_APPEND_BUFFERED: what is appended goes to the file once it passes this, or at a sync. */
#define BUFFER_WRITE ((size_t)1024 * 1024)

struct walnotify_file {
    char *path;      /* as given; owned */
    char *companion; /* RECORDS: PATH.durable; NULL for LINES; owned */
    const char *what;
    int fd;
    bool regular;       /* a regular file: locked, cut, synced */
    bool folder_synced; /* the folder's entry for the file is durable */
    off_t length;       /* bytes of whole records in the file */
    off_t durable;      /* bytes the last sync made durable */
    walnotify_id last;  /* the identity recorded with them */
    bool buffering;     /* WN_APPEND_BUFFERED */
    char *buf;          /* appended, not written yet; owned */
    size_t buffered;    /* bytes in buf */
    size_t cap;         /* bytes allocated */
    int failed;         /* buffering: the errno of a write that failed; the file was cut back to
                           `durable` and refuses everything since */
};

__attribute__((format(printf, 5, 6))) static int fail(const wn_appendfile *f, int rc, char *err,
                                                      size_t errlen, const char *format, ...)
{
    char step[512];
    va_list args;

    va_start(args, format);
    vsnprintf(step, sizeof step, format, args);
    va_end(args);
    snprintf(err, errlen, "%s %s: %s", f->what, f->path, step);
    return rc;
}

static int cut_to(wn_appendfile *f, off_t length)
{
    while (ftruncate(f->fd, length) != 0) {
        if (errno != EINTR)
            return errno;
    }
    f->length = length;
    return 0;
}

/* ---- the companion -------------------------------------------------------------------------- */

/* Reads PATH.durable into f->durable and f->last; ENOENT when there is none. */
static int read_companion(wn_appendfile *f)
{
    char text[COMPANION_MAX + 1];
    /* Not through a link: the companion is replaced by rename, never written through one. */
    int fd = open(f->companion, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    long long length;
    uint64_t position, ordinal;
    ssize_t n;
    int end = 0;

    if (fd < 0)
        return errno;
    do
        n = read(fd, text, COMPANION_MAX);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0)
        return EIO;
    text[n] = '\0';
    if (strncmp(text, COMPANION_HEADER, strlen(COMPANION_HEADER)) != 0 ||
        sscanf(text + strlen(COMPANION_HEADER), "%lld %" SCNu64 " %" SCNu64 "\n%n", &length,
               &position, &ordinal, &end) != 3 ||
        end == 0 || text[strlen(COMPANION_HEADER) + (size_t)end] != '\0' || length < 0)
        return EBADMSG;
    f->durable = (off_t)length;
    f->last = (walnotify_id){.position = position, .ordinal = ordinal};
    return 0;
}

static int write_companion(wn_appendfile *f, off_t length, walnotify_id last, char *err,
                           size_t errlen)
{
    char text[COMPANION_MAX];
    int n = snprintf(text, sizeof text, COMPANION_HEADER "%lld %" PRIu64 " %" PRIu64 "\n",
                     (long long)length, last.position, last.ordinal);

    return wn_files_replace(f->companion, text, (size_t)n, WN_FILES_MODE, "companion file", err,
                            errlen);
}

/* Cuts what the last run did not make durable. A new (or empty, companionless) file gets its
 * companion at once: a companion missing later means the file is not this service's. */
static int cut_records(wn_appendfile *f, off_t size, char *err, size_t errlen)
{
    int rc = read_companion(f);

    if (rc == ENOENT && size == 0)
        return write_companion(f, 0, f->last, err, errlen);
    if (rc == ENOENT)
        return fail(f, EEXIST, err, errlen,
                    "holds %lld bytes but has no companion file %s: it was not written by a "
                    "durable append file, so what in it is whole cannot be told",
                    (long long)size, f->companion);
    if (rc != 0)
        return fail(f, rc, err, errlen, "cannot read its companion file %s: %s", f->companion,
                    rc == EBADMSG ? "not a companion file" : strerror(rc));
    if (size < f->durable)
        return fail(f, EUCLEAN, err, errlen,
                    "holds %lld bytes, fewer than the %lld its companion file says were made "
                    "durable: something else cut it",
                    (long long)size, (long long)f->durable);
    rc = size > f->durable ? cut_to(f, f->durable) : 0;
    return rc == 0 ? 0 : fail(f, rc, err, errlen, "cannot cut it back: %s", strerror(rc));
}

/* ---- open and close ------------------------------------------------------------------------- */

static int take_file(wn_appendfile *f, wn_append_mode how, bool lock, wn_append_opened *opened,
                     char *err, size_t errlen)
{
    struct stat sb;
    off_t cut;
    int rc;

    if (fstat(f->fd, &sb) != 0)
        return fail(f, errno, err, errlen, "cannot stat: %s", strerror(errno));
    f->regular = S_ISREG(sb.st_mode);
    opened->regular = f->regular;
    if (!f->regular)
        return 0; /* a character device (/dev/null): nothing to lock, cut or sync */
    rc = lock ? wn_files_lock(f->fd, &opened->holder) : 0;
    if (rc == EWOULDBLOCK)
        return fail(f, rc, err, errlen, "is locked by another process (pid %ld)", opened->holder);
    if (rc == EDEADLK)
        return fail(f, rc, err, errlen, "is already written by this process (pid %ld)",
                    opened->holder);
    if (rc != 0)
        return fail(f, rc, err, errlen, "cannot lock: %s", strerror(rc));
    /* The size only counts once the lock is ours. */
    if (how == WN_APPEND_LINES) {
        rc = wn_files_cut_torn_tail(f->fd, f->fd, &f->length, &cut);
        if (rc != 0)
            return fail(f, rc, err, errlen, "cannot cut its torn last line: %s", strerror(rc));
        f->durable = f->length;
        opened->cut = cut;
    } else {
        f->length = sb.st_size;
        rc = cut_records(f, sb.st_size, err, errlen);
        if (rc != 0)
            return rc;
        opened->cut = sb.st_size - f->length;
        wn_files_remove_stale_temps(f->companion, STALE_TEMP_S);
    }
    opened->length = f->length;
    opened->last = f->last;
    return 0;
}

int wn_appendfile_open(const char *path, mode_t mode, wn_append_mode how, unsigned flags,
                       const char *what, wn_appendfile **file, wn_append_opened *opened, char *err,
                       size_t errlen)
{
    wn_appendfile *f = calloc(1, sizeof *f);
    int rc = ENOMEM;

    *file = NULL;
    memset(opened, 0, sizeof *opened);
    if (f != NULL && how == WN_APPEND_RECORDS &&
        asprintf(&f->companion, "%s%s", path, WN_APPEND_COMPANION_SUFFIX) < 0)
        f->companion = NULL; /* asprintf leaves it undefined */
    if (f == NULL || (f->path = strdup(path)) == NULL ||
        (how == WN_APPEND_RECORDS && f->companion == NULL)) {
        snprintf(err, errlen, "%s %s: out of memory", what, path);
        goto free_file;
    }
    f->what = what;
    f->buffering = (flags & WN_APPEND_BUFFERED) != 0;
    f->fd = wn_files_open_append(path, mode,
                                 flags & WN_APPEND_DEVICES_TOO ? WN_FILES_CHAR_DEVICE_TOO
                                                               : WN_FILES_REGULAR_ONLY,
                                 &opened->created);
    if (f->fd < 0) {
        rc = errno;
        snprintf(err, errlen, "%s %s: cannot open: %s", what, path, wn_files_reason(path, rc));
        goto free_file;
    }
    rc = take_file(f, how, (flags & WN_APPEND_UNLOCKED) == 0, opened, err, errlen);
    if (rc != 0)
        goto close_fd;
    /* A file created now has a name that is not durable until its folder is synced; an earlier
     * run may have created it and stopped before: the first sync does the folder either way. */
    *file = f;
    return 0;

close_fd:
    close(f->fd);
free_file:
    if (f != NULL) {
        free(f->companion);
        free(f->path);
    }
    free(f);
    return rc;
}

void wn_appendfile_close(wn_appendfile *f)
{
    if (f == NULL)
        return;
    close(f->fd); /* also releases the lock */
    free(f->buf);
    free(f->companion);
    free(f->path);
    free(f);
}

/* ---- writing -------------------------------------------------------------------------------- */

/* Buffering: a write of step failed with rc, or memory ran out, perhaps in the middle of a record:
 * the file goes back to its durable length and refuses everything from now on. */
static int broken(wn_appendfile *f, int rc, const char *step, char *err, size_t errlen)
{
    size_t lost = f->buffered;
    int cut;

    f->failed = rc;
    f->buffered = 0;
    cut = f->regular ? cut_to(f, f->durable) : 0;
    if (cut != 0)
        return fail(f, rc, err, errlen,
                    "%s of %zu bytes failed (%s), and it cannot be cut back to the %lld bytes "
                    "made durable: %s",
                    step, lost, strerror(rc), (long long)f->durable, strerror(cut));
    return fail(f, rc, err, errlen,
                "%s of %zu bytes failed (%s): cut back to the %lld bytes made durable", step, lost,
                strerror(rc), (long long)f->durable);
}

/* Writes what is buffered. A failure cuts the file back to its durable length (what was written
 * since may end in the middle of a record) and leaves it refusing everything: only a sync may say
 * what is whole. */
static int write_buffer(wn_appendfile *f, char *err, size_t errlen)
{
    int rc;

    if (f->failed != 0)
        return fail(f, f->failed, err, errlen,
                    "an earlier write failed (%s): it holds only what was made durable until it "
                    "is opened again",
                    strerror(f->failed));
    if (f->buffered == 0)
        return 0;
    rc = wn_files_write_all(f->fd, f->buf, f->buffered);
    if (rc == 0) {
        f->buffered = 0;
        return 0;
    }
    return broken(f, rc, "write", err, errlen);
}

/* Buffering: copies data into the buffer, written out once it passes BUFFER_WRITE. */
static int buffer_append(wn_appendfile *f, const void *data, size_t length, char *err,
                         size_t errlen)
{
    if (f->failed != 0 || (f->buffered > 0 && f->buffered + length > BUFFER_WRITE)) {
        int rc = write_buffer(f, err, errlen);

        if (rc != 0)
            return rc;
    }
    if (length > f->cap - f->buffered) {
        size_t cap = f->buffered + length < BUFFER_WRITE ? BUFFER_WRITE : f->buffered + length;
        char *grown = realloc(f->buf, cap);

        if (grown == NULL)
            return broken(f, ENOMEM, "buffering", err, errlen);
        f->buf = grown;
        f->cap = cap;
    }
    memcpy(f->buf + f->buffered, data, length);
    f->buffered += length;
    f->length += (off_t)length;
    return 0;
}

int wn_appendfile_append(wn_appendfile *f, const void *data, size_t length, char *err,
                         size_t errlen)
{
    int rc;

    if (f->buffering)
        return buffer_append(f, data, length, err, errlen);
    rc = wn_files_write_all(f->fd, data, length);

    if (rc == 0) {
        f->length += (off_t)length;
        return 0;
    }
    /* Whole records only: take back whatever part of this one made it. */
    if (f->regular && cut_to(f, f->length) != 0)
        return fail(f, rc, err, errlen,
                    "write of %zu bytes failed (%s), and the part written cannot be cut: %s",
                    length, strerror(rc), strerror(errno));
    return fail(f, rc, err, errlen, "write of %zu bytes failed: %s", length, strerror(rc));
}

off_t wn_appendfile_length(const wn_appendfile *f)
{
    return f->length;
}

int wn_appendfile_fd(const wn_appendfile *f)
{
    return f != NULL ? f->fd : -1;
}

int wn_appendfile_cut(wn_appendfile *f, off_t length, char *err, size_t errlen)
{
    int rc;

    if (f->buffering)
        return fail(f, EINVAL, err, errlen, "a buffered file is not cut");
    /* A companion names the durable length: the file must never be shorter. Lines need none. */
    if (length > f->length || length < 0 || (f->companion != NULL && length < f->durable))
        return fail(f, EINVAL, err, errlen,
                    "cannot cut it to %lld bytes: it holds %lld, %lld of them durable",
                    (long long)length, (long long)f->length, (long long)f->durable);
    if (length == f->length || !f->regular)
        return 0;
    rc = cut_to(f, length);
    if (rc != 0)
        return fail(f, rc, err, errlen, "cannot cut it back to %lld bytes: %s", (long long)length,
                    strerror(rc));
    if (f->durable > length)
        f->durable = length;
    return 0;
}

static bool same_id(walnotify_id a, walnotify_id b)
{
    return a.position == b.position && a.ordinal == b.ordinal;
}

int wn_appendfile_sync(wn_appendfile *f, walnotify_id last, char *err, size_t errlen)
{
    int rc = f->buffering ? write_buffer(f, err, errlen) : 0;

    if (rc != 0)
        return rc;
    if (!f->regular || (f->length == f->durable && f->folder_synced &&
                        (f->companion == NULL || same_id(last, f->last))))
        return 0;
    while (fsync(f->fd) != 0) {
        if (errno != EINTR)
            return fail(f, errno, err, errlen, "fsync failed: %s", strerror(errno));
    }
    if (!f->folder_synced) {
        rc = wn_files_sync_folder(f->path);
        if (rc != 0)
            return fail(f, rc, err, errlen, "fsync of its folder failed: %s", strerror(rc));
        f->folder_synced = true;
    }
    if (f->companion != NULL) {
        rc = write_companion(f, f->length, last, err, errlen);
        if (rc != 0)
            return rc;
        f->last = last;
    }
    f->durable = f->length;
    return 0;
}
