/*
 * Files that hold rows: core/files.c itself, then the three writers that use it (the dead-letter
 * file, the jsonl plugin's file, and the jsonl plugin on standard output when that is a regular
 * file): modes, symbolic links, torn tails, truncation on abort, the lock.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <walnotify/plugin.h>

#include "deadletter.h"
#include "encoder.h"
#include "files.h"
#include "run_suite.h"
#include "unit_paths.h"

static char dir[PATH_MAX];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_files.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
    unit_remove_tree(dir);
}

/* dir/name into out. */
static char *in_dir(char *out, size_t size, const char *name)
{
    ck_assert(snprintf(out, size, "%s/%s", dir, name) < (int)size);
    return out;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "create %s: %s", path, strerror(errno));
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* The whole file (up to 64 KiB), NUL-terminated, in a static buffer. */
static const char *slurp(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static mode_t mode_of(const char *path)
{
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    return sb.st_mode & 07777;
}

/* ---- core/files.c ---------------------------------------------------------------------------- */

START_TEST(open_append_creates_with_exact_mode)
{
    char path[PATH_MAX];
    bool created = false;
    mode_t old_mask = umask(077); /* the service's UMask: it must not narrow an asked-for 0640 */
    int fd = wn_files_open_append(in_dir(path, sizeof path, "new"), 0640, WN_FILES_REGULAR_ONLY,
                                  &created);
    umask(old_mask);
    ck_assert_int_ge(fd, 0);
    ck_assert(created);
    ck_assert_uint_eq(mode_of(path), 0640);
    close(fd);

    /* An existing file keeps its own mode. */
    ck_assert_int_eq(chmod(path, 0604), 0);
    fd = wn_files_open_append(path, WN_FILES_MODE, WN_FILES_REGULAR_ONLY, &created);
    ck_assert_int_ge(fd, 0);
    ck_assert(!created);
    ck_assert_uint_eq(mode_of(path), 0604);
    close(fd);
}
END_TEST

START_TEST(open_append_refuses_a_link)
{
    char path[PATH_MAX], target[PATH_MAX], dangling[PATH_MAX];
    bool created = true;
    spit(in_dir(target, sizeof target, "target"), "{\"a\":");
    ck_assert_int_eq(symlink(target, in_dir(path, sizeof path, "link")), 0);
    errno = 0;
    ck_assert_int_eq(wn_files_open_append(path, WN_FILES_MODE, WN_FILES_REGULAR_ONLY, &created),
                     -1);
    ck_assert_int_eq(errno, ELOOP);
    ck_assert_msg(strstr(wn_files_reason(path, errno), "symbolic link") != NULL, "%s",
                  wn_files_reason(path, errno));

    /* A dangling link does not make a file appear at its target either. */
    ck_assert_int_eq(symlink(in_dir(target, sizeof target, "nowhere"),
                             in_dir(dangling, sizeof dangling, "dangling")),
                     0);
    ck_assert_int_eq(wn_files_open_append(dangling, WN_FILES_MODE, WN_FILES_REGULAR_ONLY, &created),
                     -1);
    ck_assert_int_eq(access(target, F_OK), -1);
}
END_TEST

/* A FIFO is refused at once (not waited on for a peer), a character device only when asked. */
START_TEST(open_append_refuses_a_fifo_and_a_device)
{
    char path[PATH_MAX];
    bool created = true;
    ck_assert_int_eq(mkfifo(in_dir(path, sizeof path, "fifo"), 0600), 0);
    errno = 0;
    ck_assert_int_eq(wn_files_open_append(path, WN_FILES_MODE, WN_FILES_CHAR_DEVICE_TOO, &created),
                     -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_msg(strstr(wn_files_reason(path, errno), "FIFO") != NULL, "%s",
                  wn_files_reason(path, errno));

    errno = 0;
    ck_assert_int_eq(
        wn_files_open_append("/dev/null", WN_FILES_MODE, WN_FILES_REGULAR_ONLY, &created), -1);
    ck_assert_msg(strstr(wn_files_reason("/dev/null", errno), "device") != NULL, "%s",
                  wn_files_reason("/dev/null", errno));
    int fd = wn_files_open_append("/dev/null", WN_FILES_MODE, WN_FILES_CHAR_DEVICE_TOO, &created);
    ck_assert_int_ge(fd, 0);
    ck_assert(!created);
    close(fd);
}
END_TEST

/* Two paths to one file are told apart from two files, whether the file exists yet or not. */
START_TEST(identity_sees_through_links_and_dots)
{
    char a[PATH_MAX], b[PATH_MAX], sub[PATH_MAX], alias[PATH_MAX];
    wn_file_id ida, idb;

    ck_assert_int_eq(mkdir(in_dir(sub, sizeof sub, "sub"), 0700), 0);
    ck_assert_int_eq(symlink(sub, in_dir(alias, sizeof alias, "alias")), 0);
    /* Not there yet: the folder and the name decide. */
    ck_assert(snprintf(a, sizeof a, "%s/sub/f", dir) < (int)sizeof a);
    ck_assert(snprintf(b, sizeof b, "%s/alias/f", dir) < (int)sizeof b);
    ck_assert_int_eq(wn_files_identity(a, &ida), 0);
    ck_assert_int_eq(wn_files_identity(b, &idb), 0);
    ck_assert(!ida.exists);
    ck_assert(wn_files_same_identity(&ida, &idb));
    ck_assert(snprintf(b, sizeof b, "%s/alias/../sub/g", dir) < (int)sizeof b);
    ck_assert_int_eq(wn_files_identity(b, &idb), 0);
    ck_assert(!wn_files_same_identity(&ida, &idb));

    /* There: a hard link is the same file. */
    spit(a, "x\n");
    ck_assert(snprintf(b, sizeof b, "%s/hard", dir) < (int)sizeof b);
    ck_assert_int_eq(link(a, b), 0);
    ck_assert_int_eq(wn_files_identity(a, &ida), 0);
    ck_assert_int_eq(wn_files_identity(b, &idb), 0);
    ck_assert(ida.exists);
    ck_assert(wn_files_same_identity(&ida, &idb));
    ck_assert_int_eq(wn_files_identity(in_dir(b, sizeof b, "nowhere/f"), &idb), ENOENT);
}
END_TEST

/* Each file content, and what the cut keeps of it. */
static const struct {
    const char *text;
    const char *kept;
} torn[] = {
    {"", ""},
    {"{\"a\":1}\n", "{\"a\":1}\n"},
    {"{\"a\":1}\n{\"b\":", "{\"a\":1}\n"},
    {"{\"b\":", ""},
};

START_TEST(cut_torn_tail_keeps_whole_lines)
{
    char path[PATH_MAX];
    spit(in_dir(path, sizeof path, "torn"), torn[_i].text);
    /* Write-only, with a separate reader: standard output redirected with `>`. */
    int fd = open(path, O_WRONLY);
    int reader = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(reader, 0);
    off_t kept = -1, cut = -1;
    ck_assert_int_eq(wn_files_cut_torn_tail(fd, reader, &kept, &cut), 0);
    ck_assert_int_eq(kept, (off_t)strlen(torn[_i].kept));
    ck_assert_int_eq(cut, (off_t)(strlen(torn[_i].text) - strlen(torn[_i].kept)));
    ck_assert_str_eq(slurp(path), torn[_i].kept);
    close(reader);
    close(fd);
}
END_TEST

START_TEST(cut_torn_tail_longer_than_a_read)
{
    char path[PATH_MAX];
    static char text[100004];
    memcpy(text, "ok\n", 3);
    memset(text + 3, 'x', sizeof text - 4);
    spit(in_dir(path, sizeof path, "long"), text);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    off_t kept, cut;
    ck_assert_int_eq(wn_files_cut_torn_tail(fd, fd, &kept, &cut), 0);
    ck_assert_int_eq(kept, 3);
    ck_assert_int_eq(cut, (off_t)sizeof text - 4);
    close(fd);
}
END_TEST

START_TEST(replace_is_0600_and_replaces_a_link_not_its_target)
{
    char path[PATH_MAX], target[PATH_MAX], err[512] = "";
    spit(in_dir(target, sizeof target, "target"), "precious\n");
    ck_assert_int_eq(symlink(target, in_dir(path, sizeof path, "state")), 0);
    mode_t old_mask = umask(022);
    int rc = wn_files_replace(path, "new\n", 4, WN_FILES_MODE, "state file", err, sizeof err);
    umask(old_mask);
    ck_assert_msg(rc == 0, "err: %s", err);
    ck_assert_str_eq(slurp(target), "precious\n");
    ck_assert_str_eq(slurp(path), "new\n");
    struct stat sb;
    ck_assert_int_eq(lstat(path, &sb), 0);
    ck_assert(S_ISREG(sb.st_mode));
    ck_assert_uint_eq(sb.st_mode & 07777, 0600);
    /* No temporary file is left beside them. */
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(unlink(target), 0);
    ck_assert_int_eq(rmdir(dir), 0);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
}
END_TEST

START_TEST(replace_failure_names_the_step_and_leaves_nothing)
{
    char err[512] = "";
    ck_assert_int_eq(wn_files_replace("/nonexistent/walnotify/state", "x", 1, WN_FILES_MODE,
                                      "state file", err, sizeof err),
                     ENOENT);
    ck_assert_msg(strstr(err, "/nonexistent/walnotify/state") != NULL &&
                      strstr(err, "temporary file") != NULL,
                  "err: %s", err);
}
END_TEST

/* ---- the dead-letter file -------------------------------------------------------------------- */

/* An insert of one text column "v" holding bytes bytes of value (col is filled in). */
static walnotify_event sized_event(const char *value, size_t bytes, walnotify_column *col)
{
    *col = (walnotify_column){.name = "v",
                              .type_oid = 25,
                              .typmod = -1,
                              .kind = WALNOTIFY_VALUE_TEXT,
                              .value = value,
                              .length = bytes};
    return (walnotify_event){.size = sizeof(walnotify_event),
                             .table = "public.t",
                             .op = WALNOTIFY_OP_INSERT,
                             .commit_lsn = 0x1A2B3C8,
                             .xid = 744,
                             .columns = col,
                             .ncolumns = 1};
}

START_TEST(deadletter_is_created_0600)
{
    char path[PATH_MAX], err[512] = "";
    mode_t old_mask = umask(022);
    wn_deadletter *f = wn_deadletter_open(in_dir(path, sizeof path, "dead.jsonl"), err, sizeof err);
    umask(old_mask);
    ck_assert_msg(f != NULL, "err: %s", err);
    walnotify_column col;
    walnotify_event ev = sized_event("7", 1, &col);
    ck_assert_int_eq(wn_deadletter_append(f, "p", &ev, "handle returned FATAL", err, sizeof err),
                     0);
    ck_assert_int_eq(wn_deadletter_sync(f, err, sizeof err), 0);
    wn_deadletter_close(f);
    ck_assert_uint_eq(mode_of(path), 0600);
    ck_assert_ptr_nonnull(strstr(slurp(path), "\"plugin\":\"p\""));
}
END_TEST

START_TEST(deadletter_refuses_a_link)
{
    char path[PATH_MAX], target[PATH_MAX], err[512] = "";
    spit(in_dir(target, sizeof target, "target"), "keep\ntorn");
    ck_assert_int_eq(symlink(target, in_dir(path, sizeof path, "dead.jsonl")), 0);
    ck_assert_ptr_null(wn_deadletter_open(path, err, sizeof err));
    ck_assert_msg(strstr(err, path) != NULL && strstr(err, "symbolic link") != NULL, "err: %s",
                  err);
    ck_assert_str_eq(slurp(target), "keep\ntorn"); /* not cut */
}
END_TEST

START_TEST(deadletter_refuses_a_fifo)
{
    char path[PATH_MAX], err[512] = "";
    ck_assert_int_eq(mkfifo(in_dir(path, sizeof path, "dead.jsonl"), 0600), 0);
    ck_assert_ptr_null(wn_deadletter_open(path, err, sizeof err));
    ck_assert_msg(strstr(err, path) != NULL && strstr(err, "FIFO") != NULL, "err: %s", err);
}
END_TEST

START_TEST(deadletter_cuts_a_torn_line)
{
    char path[PATH_MAX], err[512] = "";
    spit(in_dir(path, sizeof path, "dead.jsonl"), "{\"a\":1}\n{\"b\":");
    wn_deadletter *f = wn_deadletter_open(path, err, sizeof err);
    ck_assert_msg(f != NULL, "err: %s", err);
    ck_assert_str_eq(slurp(path), "{\"a\":1}\n");
    wn_deadletter_close(f);
}
END_TEST

/* ---- the jsonl plugin ------------------------------------------------------------------------ */

static void *plugin_handle;
static const walnotify_plugin *plugin;

typedef struct host {
    walnotify_host host;
    const char *path;
    const char *mode; /* NULL: the default */
    wn_encoder *encoder;
    char log[4096];
} host;

static void host_log(const walnotify_host *h, walnotify_log_level level, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void host_log(const walnotify_host *h, walnotify_log_level level, const char *format, ...)
{
    host *self = h->host_private;
    size_t used = strlen(self->log);
    va_list args;
    (void)level;
    va_start(args, format);
    vsnprintf(self->log + used, sizeof self->log - used, format, args);
    va_end(args);
    used = strlen(self->log);
    if (used + 1 < sizeof self->log)
        strcat(self->log, "\n");
}

static const char *host_string(const walnotify_host *h, const char *name)
{
    host *self = h->host_private;
    if (strcmp(name, "path") == 0)
        return self->path;
    return strcmp(name, "mode") == 0 ? self->mode : NULL;
}

static bool host_boolean(const walnotify_host *h, const char *name)
{
    (void)h;
    return strcmp(name, "fsync") == 0;
}

static const char *host_encode_json(const walnotify_host *h, const walnotify_event *event,
                                    size_t *length)
{
    host *self = h->host_private;
    return wn_encoder_event(self->encoder, event, length);
}

static host *host_new(const char *path, const char *mode)
{
    host *h = calloc(1, sizeof *h);
    ck_assert_ptr_nonnull(h);
    h->host = (walnotify_host){.size = sizeof(walnotify_host),
                               .abi_major = WALNOTIFY_ABI_MAJOR,
                               .abi_minor = WALNOTIFY_ABI_MINOR,
                               .instance_name = "test",
                               .log = host_log,
                               .get_string = host_string,
                               .get_boolean = host_boolean,
                               .encode_json = host_encode_json,
                               .host_private = h};
    h->encoder = wn_encoder_create();
    ck_assert_ptr_nonnull(h->encoder);
    h->path = path;
    h->mode = mode;
    return h;
}

static void host_free(host *h)
{
    wn_encoder_destroy(h->encoder);
    free(h);
}

static void load_plugin(void)
{
    char path[PATH_MAX];
    unit_repo_file(path, sizeof path, __FILE__, "build/plugins/jsonl.so");
    plugin_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(plugin_handle != NULL, "dlopen %s: %s", path, dlerror());
    walnotify_plugin_entry_fn entry;
    *(void **)&entry = dlsym(plugin_handle, WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
    ck_assert_ptr_nonnull(entry);
    plugin = entry();
}

static void setup_plugin(void)
{
    make_dir();
    load_plugin();
}

static void teardown_plugin(void)
{
    dlclose(plugin_handle);
    remove_dir();
}

static const walnotify_txn txn = {
    .size = sizeof(walnotify_txn), .commit_lsn = 0x1A2B3C8, .xid = 744};

START_TEST(jsonl_mode_setting_is_honoured)
{
    char path[PATH_MAX];
    host *h = host_new(in_dir(path, sizeof path, "out.jsonl"), "0640");
    void *state = NULL;
    mode_t old_mask = umask(077);
    walnotify_status status = plugin->init(&h->host, &state);
    umask(old_mask);
    ck_assert_msg(status == WALNOTIFY_OK, "log: %s", h->log);
    plugin->shutdown(state);
    ck_assert_uint_eq(mode_of(path), 0640);
    host_free(h);
}
END_TEST

START_TEST(jsonl_bad_mode_is_refused)
{
    static const char *const bad[] = {"0777", "0606", "0400", "640x", "", "-0600", "0o640"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        host *h = host_new(in_dir(path, sizeof path, "bad.jsonl"), bad[i]);
        void *state = NULL;
        ck_assert_int_eq(plugin->init(&h->host, &state), WALNOTIFY_FATAL);
        char quoted[32];
        snprintf(quoted, sizeof quoted, "mode = \"%s\"", bad[i]);
        ck_assert_msg(strstr(h->log, quoted) != NULL, "%s: log: %s", bad[i], h->log);
        ck_assert_int_eq(access(path, F_OK), -1);
        host_free(h);
    }
}
END_TEST

/* check sees the same mistakes without side effects, so --check-config reports them. */
START_TEST(jsonl_check_refuses_a_bad_mode)
{
    char path[PATH_MAX];
    host *h = host_new(in_dir(path, sizeof path, "checked.jsonl"), "0777");
    ck_assert_ptr_nonnull(plugin->check);
    ck_assert_int_eq(plugin->check(&h->host), WALNOTIFY_FATAL);
    ck_assert_msg(strstr(h->log, "mode = \"0777\"") != NULL, "log: %s", h->log);
    host_free(h);

    h = host_new(in_dir(path, sizeof path, "checked.jsonl"), "0640");
    ck_assert_int_eq(plugin->check(&h->host), WALNOTIFY_OK);
    host_free(h);

    h = host_new("", NULL);
    ck_assert_int_eq(plugin->check(&h->host), WALNOTIFY_FATAL);
    ck_assert_msg(strstr(h->log, "path is empty") != NULL, "log: %s", h->log);
    host_free(h);
    ck_assert_int_eq(access(path, F_OK), -1); /* nothing was created */
}
END_TEST

START_TEST(jsonl_refuses_a_link)
{
    char path[PATH_MAX], target[PATH_MAX];
    spit(in_dir(target, sizeof target, "target"), "keep\ntorn");
    ck_assert_int_eq(symlink(target, in_dir(path, sizeof path, "out.jsonl")), 0);
    host *h = host_new(path, NULL);
    void *state = NULL;
    ck_assert_int_eq(plugin->init(&h->host, &state), WALNOTIFY_FATAL);
    ck_assert_msg(strstr(h->log, path) != NULL && strstr(h->log, "symbolic link") != NULL,
                  "log: %s", h->log);
    ck_assert_str_eq(slurp(target), "keep\ntorn"); /* its torn tail was not cut */
    host_free(h);
}
END_TEST

/* A FIFO at path would block the host once nobody reads it: refused at init. /dev/null is a
 * character device, written as it comes (a way to discard the lines). */
START_TEST(jsonl_refuses_a_fifo)
{
    char path[PATH_MAX];
    ck_assert_int_eq(mkfifo(in_dir(path, sizeof path, "out.jsonl"), 0600), 0);
    host *h = host_new(path, NULL);
    void *state = NULL;
    ck_assert_int_eq(plugin->init(&h->host, &state), WALNOTIFY_FATAL);
    ck_assert_msg(strstr(h->log, path) != NULL && strstr(h->log, "FIFO") != NULL, "log: %s",
                  h->log);
    host_free(h);

    h = host_new("/dev/null", NULL);
    ck_assert_int_eq(plugin->init(&h->host, &state), WALNOTIFY_OK);
    plugin->shutdown(state);
    host_free(h);
}
END_TEST

/* Standard output becomes FILE, opened with flags (as the shell would for `>` or `>>`); the
 * earlier standard output is returned, for put_back_stdout. */
static int stdout_to(const char *file, int flags)
{
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(file, flags, 0600);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(dup2(fd, STDOUT_FILENO), 0);
    close(fd);
    return saved;
}

static void put_back_stdout(int saved)
{
    ck_assert_int_ge(dup2(saved, STDOUT_FILENO), 0);
    close(saved);
}

/* Whether another open of path can take the exclusive lock now. */
static bool lockable(const char *path)
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    bool ok = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    return ok;
}

/* `walnotify ... > FILE` (no O_APPEND) and `>> FILE`: both are files like a path. */
static const int stdout_flags[] = {O_WRONLY, O_WRONLY | O_APPEND, O_RDWR};

START_TEST(jsonl_stdout_file_is_treated_as_a_file)
{
    char path[PATH_MAX];
    spit(in_dir(path, sizeof path, "stdout.jsonl"), "{\"kept\":1}\n{\"torn\":");
    int saved = stdout_to(path, stdout_flags[_i]);
    host *h = host_new("-", NULL);
    void *state = NULL;
    walnotify_status status = plugin->init(&h->host, &state);

    /* The torn last line of an earlier run is cut at start. */
    ck_assert_msg(status == WALNOTIFY_OK, "log: %s", h->log);
    ck_assert_str_eq(slurp(path), "{\"kept\":1}\n");
    ck_assert_msg(strstr(h->log, "standard output ended in a torn line") != NULL, "log: %s",
                  h->log);
    /* Locked like a file: a second walnotify on it is refused. */
    ck_assert(!lockable(path));

    /* A large transaction, partly written already, is cut out again on abort. */
    size_t big = 300 * 1024;
    char *value = malloc(big);
    ck_assert_ptr_nonnull(value);
    memset(value, 'v', big);
    walnotify_column col;
    walnotify_event ev = sized_event(value, big, &col);
    ck_assert_int_eq(plugin->begin(state, &txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &ev), WALNOTIFY_OK);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_gt(sb.st_size, (off_t)big);
    plugin->abort(state, &txn);
    ck_assert_str_eq(slurp(path), "{\"kept\":1}\n");

    /* The next transaction lands right after the last whole line, with no hole before it. */
    walnotify_event small = sized_event("s", 1, &col);
    ck_assert_int_eq(plugin->begin(state, &txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->handle(state, &small), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->commit(state, &txn), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->flush(state), WALNOTIFY_OK);
    const char *text = slurp(path);
    ck_assert_msg(strncmp(text, "{\"kept\":1}\n{\"lsn\":", 18) == 0 &&
                      strstr(text, "\"values\":{\"v\":\"s\"}}\n") != NULL,
                  "file: %s", text);
    ck_assert_uint_eq(strlen(text), (size_t)(stat(path, &sb) == 0 ? sb.st_size : -1));

    plugin->shutdown(state);
    ck_assert(lockable(path)); /* released at shutdown, though standard output stays open */
    put_back_stdout(saved);
    free(value);
    host_free(h);
}
END_TEST

START_TEST(jsonl_stdout_shared_with_stderr_is_refused)
{
    char path[PATH_MAX];
    int saved = stdout_to(in_dir(path, sizeof path, "both.log"), O_WRONLY | O_CREAT);
    int saved_err = dup(STDERR_FILENO);
    ck_assert_int_ge(dup2(STDOUT_FILENO, STDERR_FILENO), 0); /* `> FILE 2>&1` */
    host *h = host_new("-", NULL);
    void *state = NULL;
    walnotify_status status = plugin->init(&h->host, &state);
    ck_assert_int_ge(dup2(saved_err, STDERR_FILENO), 0);
    close(saved_err);
    put_back_stdout(saved);
    ck_assert_int_eq(status, WALNOTIFY_FATAL);
    ck_assert_msg(strstr(h->log, "standard output and standard error are the same file") != NULL,
                  "log: %s", h->log);
    host_free(h);
}
END_TEST

static Suite *files_suite(void)
{
    Suite *s = suite_create("files");

    TCase *core = tcase_create("core");
    tcase_add_checked_fixture(core, make_dir, remove_dir);
    tcase_add_test(core, open_append_creates_with_exact_mode);
    tcase_add_test(core, open_append_refuses_a_link);
    tcase_add_test(core, open_append_refuses_a_fifo_and_a_device);
    tcase_add_test(core, identity_sees_through_links_and_dots);
    tcase_add_loop_test(core, cut_torn_tail_keeps_whole_lines, 0,
                        (int)(sizeof torn / sizeof torn[0]));
    tcase_add_test(core, cut_torn_tail_longer_than_a_read);
    tcase_add_test(core, replace_is_0600_and_replaces_a_link_not_its_target);
    tcase_add_test(core, replace_failure_names_the_step_and_leaves_nothing);
    suite_add_tcase(s, core);

    TCase *deadletter = tcase_create("deadletter");
    tcase_add_checked_fixture(deadletter, make_dir, remove_dir);
    tcase_add_test(deadletter, deadletter_is_created_0600);
    tcase_add_test(deadletter, deadletter_refuses_a_link);
    tcase_add_test(deadletter, deadletter_refuses_a_fifo);
    tcase_add_test(deadletter, deadletter_cuts_a_torn_line);
    suite_add_tcase(s, deadletter);

    TCase *jsonl = tcase_create("jsonl");
    tcase_add_checked_fixture(jsonl, setup_plugin, teardown_plugin);
    tcase_add_test(jsonl, jsonl_mode_setting_is_honoured);
    tcase_add_test(jsonl, jsonl_bad_mode_is_refused);
    tcase_add_test(jsonl, jsonl_check_refuses_a_bad_mode);
    tcase_add_test(jsonl, jsonl_refuses_a_link);
    tcase_add_test(jsonl, jsonl_refuses_a_fifo);
    tcase_add_loop_test(jsonl, jsonl_stdout_file_is_treated_as_a_file, 0,
                        (int)(sizeof stdout_flags / sizeof stdout_flags[0]));
    tcase_add_test(jsonl, jsonl_stdout_shared_with_stderr_is_refused);
    suite_add_tcase(s, jsonl);
    return s;
}

int main(void)
{
    return run_suite(files_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
