/*
 * Durable append files (core/appendfile.c): what a crash leaves is cut back to what a sync made
 * durable, whatever the records hold; links and second writers are refused; a write that fails
 * part way (a file size limit) leaves only whole records, and nothing recorded past them.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "appendfile.h"
#include "files.h"
#include "run_suite.h"
#include "unit_paths.h"

static char dir[64];
static char path[128];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_appendfile.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/out.csv", dir);
}

static void remove_dir(void)
{
    unit_remove_tree(dir);
}

/* The whole file (up to 4 KiB), NUL-terminated, in a static buffer. */
static const char *slurp(const char *name)
{
    static char buf[4096];
    int fd = open(name, O_RDONLY);
    ssize_t n;

    ck_assert_msg(fd >= 0, "open %s: %s", name, strerror(errno));
    n = read(fd, buf, sizeof buf - 1);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    close(fd);
    return buf;
}

static wn_appendfile *open_flags(wn_append_mode how, unsigned flags, wn_append_opened *opened)
{
    wn_appendfile *f = NULL;
    char err[512] = "";
    int rc =
        wn_appendfile_open(path, WN_FILES_MODE, how, flags, "file", &f, opened, err, sizeof err);

    ck_assert_msg(rc == 0, "open: %s", err);
    return f;
}

static wn_appendfile *open_ok(wn_append_mode how, wn_append_opened *opened)
{
    return open_flags(how, 0, opened);
}

static void append_ok(wn_appendfile *f, const char *text)
{
    char err[512] = "";

    ck_assert_msg(wn_appendfile_append(f, text, strlen(text), err, sizeof err) == 0, "%s", err);
}

static void sync_ok(wn_appendfile *f, uint64_t position, uint64_t ordinal)
{
    char err[512] = "";
    walnotify_id id = {position, ordinal};

    ck_assert_msg(wn_appendfile_sync(f, id, err, sizeof err) == 0, "%s", err);
}

#define REC1 "1,plain\n"
#define REC2 "2,\"two\nlines\"\n" /* a quoted value holding a newline */
#define TORN "3,\"half\nof"       /* a crash in the middle of a record */

/* A crash after records that no sync covered: the next open cuts them, whatever they hold (a
 * newline inside would fool a cut at the last newline), and hands back the identity synced. */
START_TEST(test_torn_tail_cut_to_durable)
{
    wn_append_opened opened;
    wn_appendfile *f = open_ok(WN_APPEND_RECORDS, &opened);

    ck_assert(opened.created);
    ck_assert_uint_eq(opened.last.position, 0);
    append_ok(f, REC1);
    sync_ok(f, 10, 1);
    append_ok(f, REC2);
    sync_ok(f, 20, 2);
    append_ok(f, "4,\"not synced\"\n");
    append_ok(f, TORN);
    wn_appendfile_close(f);

    f = open_ok(WN_APPEND_RECORDS, &opened);
    ck_assert_str_eq(slurp(path), REC1 REC2);
    ck_assert_int_eq(opened.length, (off_t)strlen(REC1 REC2));
    ck_assert_int_eq(opened.cut, (off_t)strlen("4,\"not synced\"\n" TORN));
    ck_assert_uint_eq(opened.last.position, 20);
    ck_assert_uint_eq(opened.last.ordinal, 2);
    ck_assert(!opened.created);
    wn_appendfile_close(f);
}
END_TEST

/* The same crash in lines mode keeps what ends with a newline (no companion to say better):
 * right for lines that never hold one, which is why a CSV file needs records mode. */
START_TEST(test_lines_mode_cuts_at_newline)
{
    wn_append_opened opened;
    wn_appendfile *f = open_ok(WN_APPEND_LINES, &opened);

    append_ok(f, "{\"a\":1}\n{\"b\":");
    wn_appendfile_close(f);
    f = open_ok(WN_APPEND_LINES, &opened);
    ck_assert_str_eq(slurp(path), "{\"a\":1}\n");
    ck_assert_int_eq(opened.cut, 5);
    wn_appendfile_close(f);
    char companion[160];
    snprintf(companion, sizeof companion, "%s%s", path, WN_APPEND_COMPANION_SUFFIX);
    ck_assert_int_ne(access(companion, F_OK), 0);
}
END_TEST

START_TEST(test_link_refused)
{
    char target[PATH_MAX], err[512] = "";
    wn_append_opened opened;
    wn_appendfile *f = NULL;

    snprintf(target, sizeof target, "%s/elsewhere", dir);
    ck_assert_int_eq(symlink(target, path), 0);
    ck_assert_int_eq(wn_appendfile_open(path, WN_FILES_MODE, WN_APPEND_RECORDS, 0, "file", &f,
                                        &opened, err, sizeof err),
                     ELOOP);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(err, path) != NULL && strstr(err, "symbolic link") != NULL, "%s", err);
    ck_assert_int_ne(access(target, F_OK), 0);
}
END_TEST

/* One writer: this process again (EDEADLK: waiting would never end), another process
 * (EWOULDBLOCK: the other host of a pair, worth waiting for). */
START_TEST(test_second_opener_refused)
{
    wn_append_opened opened;
    wn_appendfile *f = open_ok(WN_APPEND_RECORDS, &opened), *g = NULL;
    char err[512] = "";
    pid_t child;
    int status;

    ck_assert_int_eq(wn_appendfile_open(path, WN_FILES_MODE, WN_APPEND_RECORDS, 0, "file", &g,
                                        &opened, err, sizeof err),
                     EDEADLK);
    ck_assert_ptr_null(g);
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        int rc = wn_appendfile_open(path, WN_FILES_MODE, WN_APPEND_RECORDS, 0, "file", &g,
                                    &opened, err, sizeof err);
        _exit(rc == EWOULDBLOCK && opened.holder == (long)getppid() ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the other process got in");
    wn_appendfile_close(f);
}
END_TEST

/* A file holding data but no companion was not written this way: refused, not cut to 0. */
START_TEST(test_foreign_file_refused)
{
    wn_append_opened opened;
    wn_appendfile *f = NULL;
    char err[512] = "";
    int fd = open(path, O_WRONLY | O_CREAT, 0600);

    ck_assert_int_eq(write(fd, REC1, strlen(REC1)), (ssize_t)strlen(REC1));
    close(fd);
    ck_assert_int_eq(wn_appendfile_open(path, WN_FILES_MODE, WN_APPEND_RECORDS, 0, "file", &f,
                                        &opened, err, sizeof err),
                     EEXIST);
    ck_assert_msg(strstr(err, "companion") != NULL, "%s", err);
    ck_assert_str_eq(slurp(path), REC1);
}
END_TEST

/* In a child: a file size limit just past the first record, SIGXFSZ ignored, so the second
 * record's write is short and the next one fails with EFBIG. */
static int write_past_limit(void)
{
    wn_append_opened opened;
    wn_appendfile *f;
    char big[200], err[512] = "";
    struct rlimit limit;
    int rc;

    f = open_ok(WN_APPEND_RECORDS, &opened);
    append_ok(f, REC1);
    sync_ok(f, 10, 1);
    signal(SIGXFSZ, SIG_IGN);
    limit.rlim_cur = limit.rlim_max = strlen(REC1) + 50;
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0)
        return 10;
    memset(big, 'x', sizeof big - 2);
    big[sizeof big - 2] = '\n';
    big[sizeof big - 1] = '\0';
    rc = wn_appendfile_append(f, big, strlen(big), err, sizeof err);
    if (rc != EFBIG)
        return 11;
    if (wn_appendfile_length(f) != (off_t)strlen(REC1) || strstr(err, "write of") == NULL)
        return 12;
    /* What the next sync records is only what is whole. */
    sync_ok(f, 30, 3);
    wn_appendfile_close(f);
    return 0;
}

START_TEST(test_file_size_limit)
{
    wn_append_opened opened;
    wn_appendfile *f;
    pid_t child = fork();
    int status;

    ck_assert_int_ge(child, 0);
    if (child == 0)
        _exit(write_past_limit());
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %d", status);
    ck_assert_str_eq(slurp(path), REC1);
    f = open_ok(WN_APPEND_RECORDS, &opened);
    ck_assert_int_eq(opened.length, (off_t)strlen(REC1));
    ck_assert_int_eq(opened.cut, 0);
    ck_assert_uint_eq(opened.last.position, 30);
    wn_appendfile_close(f);
}
END_TEST

/* The same limit met by the buffered file the host lends plugins, whose records come in pieces:
 * the sync that writes them fails, the file goes back to what was durable, and it refuses
 * everything after (a later sync must not record a length inside a record). */
static int sync_past_limit(void)
{
    wn_append_opened opened;
    wn_appendfile *f = open_flags(WN_APPEND_RECORDS, WN_APPEND_BUFFERED, &opened);
    char err[512] = "";
    struct rlimit limit;
    walnotify_id id = {30, 3};

    append_ok(f, "1,");
    append_ok(f, "plain\n");
    sync_ok(f, 10, 1);
    signal(SIGXFSZ, SIG_IGN);
    limit.rlim_cur = limit.rlim_max = strlen(REC1) + 20;
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0)
        return 10;
    for (int i = 0; i < 3; i++)
        append_ok(f, "2,\"a value of some length\"\n");
    if (wn_appendfile_sync(f, id, err, sizeof err) != EFBIG)
        return 11;
    if (wn_appendfile_length(f) != (off_t)strlen(REC1) || strstr(err, "cut back") == NULL)
        return 12;
    if (wn_appendfile_append(f, "3\n", 2, err, sizeof err) == 0 ||
        wn_appendfile_sync(f, id, err, sizeof err) == 0)
        return 13;
    wn_appendfile_close(f);
    return 0;
}

START_TEST(test_buffered_size_limit)
{
    wn_append_opened opened;
    wn_appendfile *f;
    pid_t child = fork();
    int status;

    ck_assert_int_ge(child, 0);
    if (child == 0)
        _exit(sync_past_limit());
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %d", status);
    ck_assert_str_eq(slurp(path), REC1);
    f = open_ok(WN_APPEND_RECORDS, &opened);
    ck_assert_uint_eq(opened.last.position, 10);
    wn_appendfile_close(f);
}
END_TEST

static Suite *appendfile_suite(void)
{
    Suite *s = suite_create("appendfile");
    TCase *tc = tcase_create("files");

    tcase_add_checked_fixture(tc, make_dir, remove_dir);
    tcase_add_test(tc, test_torn_tail_cut_to_durable);
    tcase_add_test(tc, test_lines_mode_cuts_at_newline);
    tcase_add_test(tc, test_link_refused);
    tcase_add_test(tc, test_second_opener_refused);
    tcase_add_test(tc, test_foreign_file_refused);
    tcase_add_test(tc, test_file_size_limit);
    tcase_add_test(tc, test_buffered_size_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(appendfile_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
