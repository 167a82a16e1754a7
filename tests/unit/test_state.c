/* state: the progress file: round trip, atomic replacement, every malformed case with its
 * FILE:LINE, and the refusal of a file that belongs elsewhere. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "state.h"
#include "run_suite.h"

typedef struct folder {
    char dir[PATH_MAX];
    char file[PATH_MAX];
} folder;

static folder make_folder(void)
{
    folder f;
    char tmpl[] = "/tmp/walnotify-state-test.XXXXXX";

    ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(f.dir, sizeof f.dir, "%s", tmpl);
    snprintf(f.file, sizeof f.file, "%s/progress", tmpl);
    return f;
}

static void remove_folder(const folder *f)
{
    char tmp[PATH_MAX + 8];

    snprintf(tmp, sizeof tmp, "%s.tmp", f->file);
    unlink(tmp);
    unlink(f->file);
    ck_assert_int_eq(rmdir(f->dir), 0); /* nothing else was left behind */
}

static void put(const char *path, const char *text)
{
    FILE *out = fopen(path, "w");

    ck_assert_ptr_nonnull(out);
    fputs(text, out);
    ck_assert_int_eq(fclose(out), 0);
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *in = fopen(path, "r");
    size_t n;

    ck_assert_ptr_nonnull(in);
    n = fread(buf, 1, sizeof buf - 1, in);
    buf[n] = '\0';
    fclose(in);
    return buf;
}

static wn_state sample(void)
{
    wn_state s = {.system_identifier = UINT64_C(7312345678901234567), .lsn = 0x1A2B3C8};

    snprintf(s.database, sizeof s.database, "app db");
    snprintf(s.slot, sizeof s.slot, "walnotify");
    return s;
}

START_TEST(round_trip)
{
    folder f = make_folder();
    wn_state in = sample(), out;
    bool exists = false;
    char err[512] = "";

    ck_assert_int_eq(wn_state_write(f.file, &in, err, sizeof err), 0);
    ck_assert_str_eq(slurp(f.file), "walnotify-state 1\nsystem_identifier=7312345678901234567\n"
                                    "database=app db\nslot=walnotify\nlsn=0/1A2B3C8\n");
    ck_assert_int_eq(wn_state_read(f.file, &out, &exists, err, sizeof err), 0);
    ck_assert(exists);
    ck_assert(out.system_identifier == in.system_identifier);
    ck_assert_str_eq(out.database, in.database);
    ck_assert_str_eq(out.slot, in.slot);
    ck_assert(out.lsn == in.lsn);
    ck_assert(out.snapshot == WN_LSN_INVALID);
    remove_folder(&f);
}
END_TEST

/* A finished snapshot is one more line, read back as written. */
START_TEST(snapshot_round_trip)
{
    folder f = make_folder();
    wn_state in = sample(), out;
    bool exists = false;
    char err[512] = "";

    in.snapshot = 0x1A2B000;
    ck_assert_int_eq(wn_state_write(f.file, &in, err, sizeof err), 0);
    ck_assert_str_eq(slurp(f.file), "walnotify-state 1\nsystem_identifier=7312345678901234567\n"
                                    "database=app db\nslot=walnotify\nlsn=0/1A2B3C8\n"
                                    "snapshot=0/1A2B000\n");
    ck_assert_int_eq(wn_state_read(f.file, &out, &exists, err, sizeof err), 0);
    ck_assert(exists);
    ck_assert(out.lsn == in.lsn);
    ck_assert(out.snapshot == in.snapshot);
    remove_folder(&f);
}
END_TEST

START_TEST(missing_file_is_no_state)
{
    folder f = make_folder();
    wn_state out;
    bool exists = true;
    char err[512] = "";

    ck_assert_int_eq(wn_state_read(f.file, &out, &exists, err, sizeof err), 0);
    ck_assert(!exists);
    ck_assert(out.lsn == WN_LSN_INVALID);
    remove_folder(&f);
}
END_TEST

START_TEST(write_replaces_atomically)
{
    folder f = make_folder();
    wn_state s = sample(), out;
    char err[512] = "", tmp[PATH_MAX + 8], victim[PATH_MAX + 8];
    bool exists;
    struct stat st;

    ck_assert_int_eq(wn_state_write(f.file, &s, err, sizeof err), 0);
    s.lsn = 0x2000000;
    /* A link at the fixed name an older walnotify used is neither followed nor touched: the
     * temporary file's name is unique. */
    snprintf(tmp, sizeof tmp, "%s.tmp", f.file);
    snprintf(victim, sizeof victim, "%s/victim", f.dir);
    put(victim, "precious\n");
    ck_assert_int_eq(symlink(victim, tmp), 0);
    ck_assert_int_eq(wn_state_write(f.file, &s, err, sizeof err), 0);
    ck_assert_str_eq(slurp(victim), "precious\n");
    ck_assert_int_eq(lstat(tmp, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(lstat(f.file, &st), 0);
    ck_assert(S_ISREG(st.st_mode)); /* renamed into place, not written through a link */
    ck_assert_int_eq(wn_state_read(f.file, &out, &exists, err, sizeof err), 0);
    ck_assert(out.lsn == 0x2000000);
    ck_assert_int_eq(unlink(victim), 0);
    remove_folder(&f);
}
END_TEST

START_TEST(fixed_temporary_name_cannot_block_a_write)
{
    folder f = make_folder();
    wn_state s = sample();
    char err[512] = "", tmp[PATH_MAX + 8];

    /* Something else holding `<path>.tmp` (here a folder) is no obstacle. */
    snprintf(tmp, sizeof tmp, "%s.tmp", f.file);
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    ck_assert_msg(wn_state_write(f.file, &s, err, sizeof err) == 0, "err: %s", err);
    ck_assert_int_eq(rmdir(tmp), 0);
    remove_folder(&f);
}
END_TEST

/* Each of two processes replaces the same state file this many times, at once. */
#define RACING_WRITES 100

START_TEST(two_writers_never_collide)
{
    folder f = make_folder();
    pid_t pids[2];

    /* The two hosts of an active/standby pair share one state file: with one fixed temporary
     * name, one's rename would take the other's file away from under it. */
    for (int w = 0; w < 2; w++) {
        pids[w] = fork();
        ck_assert_int_ge(pids[w], 0);
        if (pids[w] == 0) {
            wn_state s = sample();
            char err[512];

            for (int i = 0; i < RACING_WRITES; i++) {
                s.lsn = (wn_lsn)(0x1000000 * (w + 1) + i + 1);
                if (wn_state_write(f.file, &s, err, sizeof err) != 0) {
                    fprintf(stderr, "writer %d, write %d: %s\n", w, i, err);
                    _exit(1);
                }
            }
            _exit(0);
        }
    }
    for (int w = 0; w < 2; w++) {
        int status;

        ck_assert_int_eq(waitpid(pids[w], &status, 0), pids[w]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", w);
    }
    {
        wn_state out;
        bool exists = false;
        char err[512] = "";

        ck_assert_int_eq(wn_state_read(f.file, &out, &exists, err, sizeof err), 0);
        ck_assert(exists);
    }
    remove_folder(&f); /* no temporary file left either */
}
END_TEST

START_TEST(state_file_is_created_0600)
{
    folder f = make_folder();
    wn_state s = sample();
    char err[512] = "";
    struct stat st;
    mode_t old_mask = umask(022);

    ck_assert_int_eq(wn_state_write(f.file, &s, err, sizeof err), 0);
    umask(old_mask);
    ck_assert_int_eq(stat(f.file, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    remove_folder(&f);
}
END_TEST

START_TEST(state_file_link_is_refused)
{
    folder f = make_folder();
    wn_state s = sample(), out;
    char err[512] = "", real[PATH_MAX + 8];
    bool exists = true;

    snprintf(real, sizeof real, "%s/real", f.dir);
    ck_assert_int_eq(wn_state_write(real, &s, err, sizeof err), 0);
    ck_assert_int_eq(symlink(real, f.file), 0);
    ck_assert_int_eq(wn_state_read(f.file, &out, &exists, err, sizeof err), -1);
    ck_assert(!exists);
    ck_assert_msg(strstr(err, f.file) != NULL && strstr(err, "symbolic link") != NULL, "err: %s",
                  err);
    ck_assert_int_eq(unlink(real), 0);
    remove_folder(&f);
}
END_TEST

/* A FIFO (or a device) at the path is refused at once: opening a FIFO to read would wait for a
 * writer that never comes, deaf to the signals that should stop walnotify. */
START_TEST(state_file_fifo_is_refused_without_waiting)
{
    folder f = make_folder();
    wn_state out;
    char err[512] = "";
    bool exists = true;

    ck_assert_int_eq(mkfifo(f.file, 0600), 0);
    ck_assert_int_eq(wn_state_read(f.file, &out, &exists, err, sizeof err), -1);
    ck_assert(!exists);
    ck_assert_msg(strstr(err, f.file) != NULL && strstr(err, "a FIFO, not a regular file"),
                  "err: %s", err);
    ck_assert_int_eq(unlink(f.file), 0);
    ck_assert_int_eq(wn_state_read("/dev/null", &out, &exists, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "a character device, not a regular file"), "err: %s", err);
    remove_folder(&f);
}
END_TEST

/* A full disk or an I/O error is the machine's, for a restart to retry; not configuration. */
START_TEST(machine_failures_are_not_setup_errors)
{
    ck_assert(!wn_state_write_failure_is_setup(ENOSPC));
    ck_assert(!wn_state_write_failure_is_setup(EIO));
    ck_assert(!wn_state_write_failure_is_setup(EDQUOT));
    ck_assert(wn_state_write_failure_is_setup(EACCES));
}
END_TEST

START_TEST(stale_temporary_files_are_removed)
{
    folder f = make_folder();
    wn_state out;
    char err[512] = "", old[PATH_MAX + 16], fresh[PATH_MAX + 16], other[PATH_MAX + 16];
    struct timespec two_hours_ago[2] = {{.tv_sec = time(NULL) - 7200},
                                        {.tv_sec = time(NULL) - 7200}};
    struct stat st;
    bool exists;

    snprintf(old, sizeof old, "%s.tmp-AbC123", f.file);
    snprintf(fresh, sizeof fresh, "%s.tmp-XyZ789", f.file);
    snprintf(other, sizeof other, "%s.tmp-notours1", f.file);
    put(old, "left by a crash");
    put(fresh, "another host writing now");
    put(other, "not a name walnotify makes");
    ck_assert_int_eq(utimensat(AT_FDCWD, old, two_hours_ago, 0), 0);
    ck_assert_int_eq(utimensat(AT_FDCWD, other, two_hours_ago, 0), 0);
    ck_assert_int_eq(wn_state_read(f.file, &out, &exists, err, sizeof err), 0);
    ck_assert_int_ne(stat(old, &st), 0);
    ck_assert_int_eq(stat(fresh, &st), 0);
    ck_assert_int_eq(stat(other, &st), 0);
    ck_assert_int_eq(unlink(fresh), 0);
    ck_assert_int_eq(unlink(other), 0);
    remove_folder(&f);
}
END_TEST

START_TEST(unwritable_folder_is_an_error)
{
    wn_state s = sample();
    char err[512] = "";

    ck_assert_int_eq(wn_state_write("/nonexistent/walnotify/state", &s, err, sizeof err), ENOENT);
    /* A missing folder is for a person to fix: a configuration error, not a run-time one. */
    ck_assert(wn_state_write_failure_is_setup(ENOENT));
    ck_assert_msg(strstr(err, "/nonexistent/walnotify/state") != NULL, "err: %s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

/* Each malformed file, and the FILE:LINE: prefix plus a word its message must hold. */
static const struct {
    const char *text;
    int line;
    const char *says;
} malformed[] = {
    {"", 1, "empty file"},
    {"walnotify-state 2\n", 1, "not a walnotify state file"},
    {"lsn=0/1\n", 1, "not a walnotify state file"},
    {"walnotify-state 1\nsystem_identifier=12\ndatabase=a\nslot=s\n", 4, "\"lsn\""},
    {"walnotify-state 1\nsystem_identifier=x12\ndatabase=a\nslot=s\nlsn=0/1\n", 2,
     "system_identifier"},
    {"walnotify-state 1\nsystem_identifier=99999999999999999999\n", 2, "system_identifier"},
    {"walnotify-state 1\nsystem_identifier=12\ndatabase=\nslot=s\nlsn=0/1\n", 3, "database"},
    {"walnotify-state 1\nsystem_identifier=12\ndatabase=a\nslot=s\nlsn=zz\n", 5, "lsn"},
    {"walnotify-state 1\nsystem_identifier=12\ndatabase=a\nslot=s\nlsn=0/0\n", 5, "lsn"},
    {"walnotify-state 1\nsystem_identifier=12\ndatabase=a\ncolour=blue\n", 4, "unknown key"},
    {"walnotify-state 1\nsystem_identifier=12\ndatabase=a\nslot=s\nlsn=0/1\nsnapshot=0/0\n", 6,
     "snapshot"},
    {"walnotify-state 1\nsystem_identifier=12\nslot=s\nslot=t\n", 4, "twice"},
    {"walnotify-state 1\nsystem_identifier=12\n\ndatabase=a\n", 3, "empty line"},
    {"walnotify-state 1\njust words\n", 2, "key=value"},
};

START_TEST(malformed_files_name_file_and_line)
{
    folder f = make_folder();
    char err[512], prefix[PATH_MAX + 16];
    wn_state out;
    bool exists;

    put(f.file, malformed[_i].text);
    err[0] = '\0';
    exists = true;
    ck_assert_int_eq(wn_state_read(f.file, &out, &exists, err, sizeof err), -1);
    ck_assert(!exists);
    snprintf(prefix, sizeof prefix, "%s:%d: ", f.file, malformed[_i].line);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "case %d: expected %s..., got %s", _i,
                  prefix, err);
    ck_assert_msg(strstr(err, malformed[_i].says) != NULL, "case %d: \"%s\" not in %s", _i,
                  malformed[_i].says, err);
    ck_assert_ptr_null(strchr(err, '\n'));
    remove_folder(&f);
}
END_TEST

START_TEST(oversized_file_is_refused)
{
    folder f = make_folder();
    char big[6000], err[512] = "";
    wn_state out;
    bool exists;

    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    put(f.file, big);
    ck_assert_int_eq(wn_state_read(f.file, &out, &exists, err, sizeof err), -1);
    ck_assert_msg(strstr(err, f.file) != NULL && strstr(err, "larger") != NULL, "err: %s", err);
    remove_folder(&f);
}
END_TEST

START_TEST(same_origin_and_mismatch_messages)
{
    wn_state a = sample(), b = sample();
    char err[1024] = "";

    b.lsn = 0x99; /* the position does not matter */
    ck_assert(wn_state_same_origin(&a, &b, "/x/state", err, sizeof err));

    b.system_identifier = 42;
    ck_assert(!wn_state_same_origin(&a, &b, "/x/state", err, sizeof err));
    ck_assert_msg(strstr(err, "state file /x/state belongs to system 7312345678901234567, "
                              "database app db, slot walnotify; this is system 42, database "
                              "app db, slot walnotify: remove the file") != NULL,
                  "err: %s", err);

    b = sample();
    snprintf(b.slot, sizeof b.slot, "other");
    ck_assert(!wn_state_same_origin(&a, &b, "/x/state", err, sizeof err));
    ck_assert_msg(strstr(err, "slot walnotify; this is") && strstr(err, "slot other:"), "err: %s",
                  err);

    b = sample();
    snprintf(b.database, sizeof b.database, "shop");
    ck_assert(!wn_state_same_origin(&a, &b, NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "database shop") && strstr(err, "was streaming from"), "err: %s",
                  err);
}
END_TEST

START_TEST(unwritable_names_are_refused)
{
    folder f = make_folder();
    wn_state s = sample();
    char err[512] = "";

    snprintf(s.database, sizeof s.database, "two\nlines");
    ck_assert_int_eq(wn_state_write(f.file, &s, err, sizeof err), EINVAL);
    ck_assert_msg(strstr(err, f.file) != NULL, "err: %s", err);
    remove_folder(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, snapshot_round_trip);
    tcase_add_test(tc, missing_file_is_no_state);
    tcase_add_test(tc, write_replaces_atomically);
    tcase_add_test(tc, fixed_temporary_name_cannot_block_a_write);
    tcase_add_test(tc, two_writers_never_collide);
    tcase_add_test(tc, state_file_is_created_0600);
    tcase_add_test(tc, state_file_link_is_refused);
    tcase_add_test(tc, state_file_fifo_is_refused_without_waiting);
    tcase_add_test(tc, machine_failures_are_not_setup_errors);
    tcase_add_test(tc, stale_temporary_files_are_removed);
    tcase_add_test(tc, unwritable_folder_is_an_error);
    tcase_add_loop_test(tc, malformed_files_name_file_and_line, 0,
                        (int)(sizeof malformed / sizeof malformed[0]));
    tcase_add_test(tc, oversized_file_is_refused);
    tcase_add_test(tc, same_origin_and_mismatch_messages);
    tcase_add_test(tc, unwritable_names_are_refused);
    suite_add_tcase(s, tc);
    return run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
