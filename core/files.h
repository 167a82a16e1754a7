/*
 * files: how walnotify writes the files that hold row data or its progress (the jsonl plugin's
 * output, the dead-letter file, the state file), in one place.
 *
 * - Nothing here follows a symbolic link where a regular file is expected: a link planted at a
 *   data file's path would otherwise make walnotify append to, or cut, whatever it points at.
 * - Files are created with an exact mode (0600 unless a setting asks for more), whatever the
 *   process's umask, because they hold rows.
 * - No logging: the jsonl plugin compiles this file in (a plugin links nothing of the host), so
 *   every function returns an errno value and each caller words its own message.
 */
#ifndef WN_FILES_H
#define WN_FILES_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The mode a file holding rows is created with, unless a setting asks for another. */
#define WN_FILES_MODE 0600

/*
 * Writes all length bytes of data to fd, through partial writes, EINTR, and EAGAIN on a
 * non-blocking descriptor (it waits in poll). Returns 0 or an errno value (EIO when write(2)
 * makes no progress and gives no reason).
 */
int wn_files_write_all(int fd, const void *data, size_t length);

/*
 * fsyncs the folder that holds path (".", when path has no slash), so that a file created or
 * renamed there survives a crash. A file system that cannot sync a folder (EINVAL) counts as
 * done. Returns 0 or an errno value (ENAMETOOLONG past PATH_MAX).
 */
int wn_files_sync_folder(const char *path);

/* What wn_files_open_append accepts at path besides a regular file. */
typedef enum wn_files_accept {
    WN_FILES_REGULAR_ONLY,   /* a file that must hold whole lines, durably */
    WN_FILES_CHAR_DEVICE_TOO /* also a character device (/dev/null), written as it comes */
} wn_files_accept;

/*
 * Opens path for reading and appending, close-on-exec, without following a symbolic link at its
 * last component (ELOOP then) and without waiting on what is not a regular file: a FIFO (whose
 * reader may never come), a socket, a folder or a device there is refused (EINVAL, which
 * wn_files_reason words), but for a character device when accept says so. A missing file is
 * created with exactly mode (the umask does not narrow it); *created says whether it was.
 * Returns the descriptor, or -1 with errno set.
 */
int wn_files_open_append(const char *path, mode_t mode, wn_files_accept accept, bool *created);

/*
 * A crash may leave part of a line at the end of a file of lines. Cuts the file behind fd back to
 * just after its last newline (to 0 when it has none). read_fd is a descriptor of the same file
 * open for reading: fd itself when fd was opened read-write. *kept gets the size afterwards,
 * *cut the bytes removed (0: the file ended in a whole line). Returns 0 or an errno value.
 */
int wn_files_cut_torn_tail(int fd, int read_fd, off_t *kept, off_t *cut);

/*
 * Takes an exclusive flock on fd without waiting. Returns 0; EWOULDBLOCK when another process
 * holds it, with *holder its process id (0 when /proc/locks does not say); EDEADLK when this
 * process holds it through another descriptor (waiting would never end); or flock's errno.
 */
int wn_files_lock(int fd, long *holder);

/*
 * Replaces path with length bytes of data, atomically and durably: a temporary file of a unique
 * name in the same folder (`PATH.tmp-XXXXXX`, created exclusively, so neither a link planted
 * there nor a second process writing the same path can meet it), written, given mode, fsynced,
 * renamed over path, then the folder fsynced. A crash leaves either the old content or the new,
 * and at most a stray temporary file (see wn_files_remove_stale_temps). `what` names the file
 * in messages ("state file"). Returns 0, or the errno value of the step that failed
 * (ENAMETOOLONG for a path too long for its temporary file) with one line in err naming the
 * path, the step and the reason; the temporary file is then removed.
 */
int wn_files_replace(const char *path, const void *data, size_t length, mode_t mode,
                     const char *what, char *err, size_t errlen);

/*
 * Removes the temporary files wn_files_replace left beside path when a crash came between their
 * creation and their rename: regular files named `PATH.tmp-XXXXXX`, owned by this user, last
 * changed more than min_age_s seconds ago (a younger one may belong to another process writing
 * the same path right now). Returns how many were removed; what cannot be read or removed is
 * left alone.
 */
int wn_files_remove_stale_temps(const char *path, long min_age_s);

/* true when name is base's temporary file as wn_files_replace names it: base + ".tmp-" + the
 * six letters or digits mkstemp chooses. Both are names within one folder, without a slash. */
bool wn_files_is_temp_name(const char *name, const char *base);

/*
 * strerror(err), except that it says plainly when path is a symbolic link (ELOOP) or something
 * other than a regular file (EINVAL from wn_files_open_append: "it is a FIFO ...").
 */
const char *wn_files_reason(const char *path, int err);

/* "a FIFO", "a character device", "a folder", ... for a mode that is not a regular file's. */
const char *wn_files_kind(mode_t mode);

/*
 * Which file a path names, as far as the system can tell before it is written: the device and
 * inode of the file (a symbolic link at its end followed), or, when there is no file yet, those
 * of its folder and the name it would get there. Two paths with equal identities name one file
 * (a hard link, a link or `..` in the folders). The folder of a missing file must exist.
 */
typedef struct wn_file_id {
    dev_t dev;
    ino_t ino;
    bool exists;             /* the file's own; else its folder's, with base */
    char base[NAME_MAX + 1]; /* the last component, when !exists */
} wn_file_id;

/* Fills *id for path. Returns 0 or an errno value (ENOENT: neither the file nor its folder). */
int wn_files_identity(const char *path, wn_file_id *id);

/* true when a and b name the same file. */
bool wn_files_same_identity(const wn_file_id *a, const wn_file_id *b);

#endif
