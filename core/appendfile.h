/*
 * appendfile: a file that records are appended to, made durable in steps, that holds only what
 * was made durable after a crash: the host's service for plugins (walnotify_host.file_*), the
 * jsonl plugin's file and the dead-letter file, one implementation.
 *
 * Opening takes the file as core/files.c does (created with an exact mode, no symbolic link
 * followed, nothing but a regular file waited on) and locks it (flock, exclusive): one writer.
 * Then the file is cut back to what the last run made durable, in one of two ways:
 *
 * - WN_APPEND_RECORDS: at each sync a companion file `PATH.durable` records, replaced atomically,
 *   how many bytes of the file are durable and the identity the caller says those bytes end
 *   with; opening cuts the file back to that length and hands the identity back. No record is
 *   parsed, so any format works (CSV whose quoted values hold newlines). A file that exists
 *   without its companion was not written this way and is refused (EEXIST), unless empty.
 * - WN_APPEND_LINES: records are lines that never hold a newline; opening cuts the file back to
 *   just after its last newline. No companion, no identity: files written before this service
 *   existed open as they did.
 *
 * No logging (the jsonl plugin compiles this file in): every function returns 0 or an errno
 * value with one line in err naming the file, the step and the reason.
 */
#ifndef WN_APPENDFILE_H
#define WN_APPENDFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <walnotify/plugin.h>

/* The plugins' walnotify_file is this. */
typedef struct walnotify_file wn_appendfile;

typedef enum wn_append_mode {
    WN_APPEND_RECORDS = 0, /* any bytes; the durable length kept in PATH.durable */
    WN_APPEND_LINES = 1    /* lines without a raw newline inside; cut at the last newline */
} wn_append_mode;

/* wn_appendfile_open's flags. */
/* Also a character device (/dev/null), written as it comes: no lock, no cut, no sync. */
#define WN_APPEND_DEVICES_TOO 1u
/* No lock: the caller keeps other writers away (the dead-letter file: the configuration does). */
#define WN_APPEND_UNLOCKED 2u
/* Appends gather in memory, written at a sync or past 1 MiB (see wn_appendfile_append). */
#define WN_APPEND_BUFFERED 4u

/* What a successful open found and did. */
typedef struct wn_append_opened {
    walnotify_id last; /* RECORDS: the identity the durable part ends with; zero for none */
    off_t length;      /* bytes the file holds after the cut */
    off_t cut;         /* bytes cut from its end (not durable, or a torn line) */
    bool created;      /* the file did not exist */
    bool regular;      /* false for a character device (WN_APPEND_DEVICES_TOO) */
    long holder;       /* EWOULDBLOCK, EDEADLK: the lock holder's process id; 0 if unknown */
} wn_append_opened;

/* The suffix of a RECORDS file's companion. */
#define WN_APPEND_COMPANION_SUFFIX ".durable"

/*
 * Opens path (absolute or relative to the working folder) as above, creating it with mode;
 * flags are WN_APPEND_* bits (0 for none). `what` names the file in messages ("dead-letter file").
 * On success *file is set and *opened filled. Errors: EWOULDBLOCK when another process holds the
 * lock (waiting may help), EDEADLK when this process holds it (another writer of its own), ELOOP
 * for a symbolic link, EEXIST for a RECORDS file without its companion, EUCLEAN when the file is
 * shorter than its companion says (something else cut it), any errno of the system calls.
 */
int wn_appendfile_open(const char *path, mode_t mode, wn_append_mode how, unsigned flags,
                       const char *what, wn_appendfile **file, wn_append_opened *opened, char *err,
                       size_t errlen);

/*
 * Appends length bytes. When the write fails part way (a full disk, a file size limit), the file
 * is cut back to where it was, so it still ends with a whole record. Not durable until
 * wn_appendfile_sync.
 * WN_APPEND_BUFFERED: the bytes are copied into memory; a record may be appended in pieces. When
 * writing the buffer fails (here, once it passes 1 MiB, or in a sync), the file is cut back to
 * its durable length and every later append and sync fails: a sync after it could otherwise
 * record a length that ends inside a record. Opening the file again starts from what was made
 * durable.
 */
int wn_appendfile_append(wn_appendfile *file, const void *data, size_t length, char *err,
                         size_t errlen);

/* The bytes the file holds now (whole records, durable or not). */
off_t wn_appendfile_length(const wn_appendfile *file);

/* Cuts the file back to length (at most its length now; for RECORDS at least its durable
 * length): records appended since, as an aborted transaction's, are dropped. Not buffered. */
int wn_appendfile_cut(wn_appendfile *file, off_t length, char *err, size_t errlen);

/*
 * Makes everything appended so far durable: fsyncs the file, and its folder the first time (a
 * file just created, whose name is not yet durable); RECORDS then replaces the companion with
 * the new length and `last`, the identity the caller says those bytes end with. Nothing to do
 * when nothing changed since the last sync.
 */
int wn_appendfile_sync(wn_appendfile *file, walnotify_id last, char *err, size_t errlen);

/* The descriptor, for a caller that must do more (jsonl seeks standard output); -1 for none. */
int wn_appendfile_fd(const wn_appendfile *file);

/* Closes the file without syncing, releasing the lock; NULL is fine. */
void wn_appendfile_close(wn_appendfile *file);

#endif
