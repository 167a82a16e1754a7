/*
 * Unit tests of the plugin loader, against the fixture plugins in build/tests/fixtures (build them
 * first: make build/tests/fixtures/NAME.so for each tests/fixtures/NAME.c).
 */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loader.h"
#include "run_suite.h"
#include "unit_paths.h"

#define CONF_FILE "/etc/wn/w.conf"
#define CONF_DIR "/etc/wn"
#define BLOCK_LINE 5
#define MAX_VALUES 8

/* good.so's state, as good.c lays it out. */
typedef struct good_state {
    uint64_t events;
    uint64_t begins;
    uint64_t commits;
    uint64_t flushes;
    uint64_t last_lsn;
    const char *label;
    int64_t limit;
    bool verbose;
    size_t ntags;
    const char *first_tag;
    const char *output;
    const char *url;
    const char *undeclared;
    int64_t label_as_integer;
} good_state;

/* A plugin block built by hand, as config.c would hand it over. */
typedef struct test_block {
    wn_plugin_config config;
    wn_setting_value values[MAX_VALUES];
    char path[PATH_MAX];
} test_block;

/* snprintf that fails the test instead of cutting the text short. */
__attribute__((format(printf, 3, 4))) static void textf(char *out, size_t outlen,
                                                        const char *format, ...)
{
    va_list args;
    int n;

    va_start(args, format);
    n = vsnprintf(out, outlen, format, args);
    va_end(args);
    ck_assert(n >= 0 && (size_t)n < outlen);
}

/* The repository root: the test binary is ROOT/build/tests/test_loader, wherever we run from. */
static void repo_root(char *out, size_t outlen)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

    ck_assert_msg(n > 0, "cannot read /proc/self/exe");
    exe[n] = '\0';
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(exe, '/');

        ck_assert_ptr_nonnull(slash);
        *slash = '\0';
    }
    textf(out, outlen, "%s", exe);
}

static void fixture(const char *name, char *out, size_t outlen)
{
    char root[PATH_MAX];

    repo_root(root, sizeof root);
    textf(out, outlen, "%s/build/tests/fixtures/%s.so", root, name);
    if (strcmp(name, "nope") != 0)
        ck_assert_msg(access(out, R_OK) == 0, "fixture %s missing: build the fixtures first", out);
}

static void block_init(test_block *b, const char *instance, const char *fixture_name)
{
    memset(b, 0, sizeof *b);
    fixture(fixture_name, b->path, sizeof b->path);
    b->config.name = (char *)instance;
    b->config.path = b->path;
    b->config.line = BLOCK_LINE;
    b->config.ops = WALNOTIFY_OP_INSERT;
    b->config.settings = b->values;
}

static wn_setting_value *block_add(test_block *b, const char *name, wn_setting_kind kind, int line)
{
    wn_setting_value *v;

    ck_assert_uint_lt(b->config.nsettings, MAX_VALUES);
    v = &b->values[b->config.nsettings++];
    v->name = (char *)name;
    v->kind = kind;
    v->line = line;
    return v;
}

static void add_string(test_block *b, const char *name, const char *value, int line)
{
    block_add(b, name, WN_SETTING_STRING, line)->string = (char *)value;
}

static void add_required(test_block *b)
{
    add_string(b, "url", "http://example.com/", 9);
}

static void load_ok(wn_plugin *p, test_block *b)
{
    char err[512] = "";

    ck_assert_msg(wn_plugin_load(p, &b->config, CONF_FILE, CONF_DIR, err, sizeof err) == 0,
                  "load failed: %s", err);
}

/* Loads a block that must be refused, and checks the message and that nothing is left over. */
static void load_refused(test_block *b, const char *expected)
{
    wn_plugin p;
    char err[512] = "";

    /* A fault of the configuration file names it (exit 1); any other is the plugin's (exit 2). */
    int expected_rc = strncmp(expected, CONF_FILE ":", strlen(CONF_FILE ":")) == 0
                          ? WN_LOAD_BAD_SETTINGS
                          : WN_LOAD_REFUSED;

    memset(&p, 0x5a, sizeof p);
    ck_assert_int_eq(wn_plugin_load(&p, &b->config, CONF_FILE, CONF_DIR, err, sizeof err),
                     expected_rc);
    ck_assert_str_eq(err, expected);
    ck_assert_ptr_null(p.library);
    ck_assert_ptr_null(p.settings);
    wn_plugin_unload(&p);
}

static walnotify_event make_event(uint64_t lsn, uint32_t seq)
{
    walnotify_event e;

    memset(&e, 0, sizeof e);
    e.size = sizeof e;
    e.table = "public.orders";
    e.schema = "public";
    e.name = "orders";
    e.op = WALNOTIFY_OP_INSERT;
    e.commit_lsn = lsn;
    e.seq = seq;
    return e;
}

/* ---- refusals of the shared object ----------------------------------------------------------- */

static const struct {
    const char *fixture;
    const char *reason;
} descriptor_refusals[] = {
    {"bad_magic", "descriptor magic 0x12345678, expected 0x574E504C: not a walnotify plugin"},
    {"bad_major", "ABI major version 2, this host speaks 1"},
    {"bad_minor_newer", "built for ABI 1.9, newer than this host's 1.2"},
    {"bad_small_size", "descriptor size 16 bytes, ABI 1.0 needs at least 64"},
    {"bad_short_minor", "descriptor size 96 bytes, ABI 1.1 needs at least 112"},
    {"bad_no_init", "required callback init is NULL"},
    {"bad_no_handle", "required callback handle is NULL"},
    {"bad_no_shutdown", "required callback shutdown is NULL"},
    {"bad_no_entry", "no walnotify_plugin_entry() exported: not a walnotify plugin"},
    {"bad_null_entry", "walnotify_plugin_entry() returned NULL"},
    {"bad_settings_decl", "setting \"path\" is declared twice"},
    {"bad_settings_type", "setting \"ratio\" is declared with unknown type 42"},
    {"bad_settings_integer", "setting \"limit\": default \"12abc\" is not a decimal 64-bit integer"},
    {"bad_settings_boolean", "setting \"fsync\": default \"yes\" is not \"true\" or \"false\""},
};

START_TEST(test_descriptor_refused)
{
    test_block b;
    char expected[1024];

    block_init(&b, "bad-one", descriptor_refusals[_i].fixture);
    textf(expected, sizeof expected, "plugin \"bad-one\" (%s): %s", b.path,
             descriptor_refusals[_i].reason);
    load_refused(&b, expected);
}
END_TEST

START_TEST(test_missing_file)
{
    test_block b;
    char expected[1024];

    block_init(&b, "gone", "nope");
    textf(expected, sizeof expected,
             "plugin \"gone\" (%s): cannot open: No such file or directory", b.path);
    load_refused(&b, expected);
}
END_TEST

START_TEST(test_not_a_shared_object)
{
    test_block b;
    char root[PATH_MAX], prefix[1024], err[512] = "";
    wn_plugin p;

    block_init(&b, "text", "good");
    repo_root(root, sizeof root);
    textf(b.path, sizeof b.path, "%s/tests/fixtures/data/not_a_library.txt", root);
    ck_assert_int_eq(access(b.path, R_OK), 0);
    textf(prefix, sizeof prefix, "plugin \"text\" (%s): not a loadable shared object: ", b.path);
    ck_assert_int_eq(wn_plugin_load(&p, &b.config, CONF_FILE, CONF_DIR, err, sizeof err), -1);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "got: %s", err);
    /* dlerror's own words follow, without the path a second time, nor the name dlopen knew
     * the file by. */
    ck_assert_uint_gt(strlen(err), strlen(prefix));
    ck_assert_ptr_null(strstr(err + strlen(prefix), b.path));
    ck_assert_ptr_null(strstr(err, "/proc/self/fd"));
    ck_assert_ptr_null(p.library);
}
END_TEST

START_TEST(test_directory_refused)
{
    test_block b;
    char expected[1024];
    char *slash;

    block_init(&b, "dir", "good");
    slash = strrchr(b.path, '/');
    *slash = '\0';
    textf(expected, sizeof expected, "plugin \"dir\" (%s): not a regular file", b.path);
    load_refused(&b, expected);
}
END_TEST

/* ---- which file is loaded ------------------------------------------------------------------- */

/* Copies the file from into to (mode 0644). */
static void copy_file(const char *from, const char *to)
{
    char buf[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ssize_t n;

    ck_assert_msg(in >= 0 && out >= 0, "copy %s to %s", from, to);
    while ((n = read(in, buf, sizeof buf)) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    ck_assert_int_eq(n, 0);
    close(in);
    ck_assert_int_eq(close(out), 0);
    ck_assert_int_eq(chmod(to, 0644), 0);
}

/* dir/good (0755) holding a copy of the good fixture as x.so, and dir/st, sticky as /tmp. */
static void sticky_tree(const char *dir)
{
    char good[PATH_MAX], path[PATH_MAX];

    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_int_eq(mkdir(unit_temp_path(good, sizeof good, dir, "good"), 0755), 0);
    fixture("good", path, sizeof path);
    copy_file(path, unit_temp_path(good, sizeof good, dir, "good/x.so"));
    ck_assert_int_eq(mkdir(unit_temp_path(path, sizeof path, dir, "st"), 0700), 0);
    ck_assert_int_eq(chmod(path, 01777), 0);
}

/* A link in the middle of the path is checked as the file is: in a sticky folder, one that
 * another user owns is that user's choice of what walnotify loads. */
START_TEST(test_link_in_the_middle_refused)
{
    char dir[PATH_MAX], link[PATH_MAX], expected[1024], err[1024] = "";
    test_block b;
    wn_plugin p;
    uid_t uid;
    gid_t gid;

    unit_temp_dir(dir, sizeof dir, "test_loader");
    sticky_tree(dir);
    ck_assert_int_eq(symlink("../good", unit_temp_path(link, sizeof link, dir, "st/dirlink")), 0);
    block_init(&b, "mid", "good");
    add_required(&b);
    unit_temp_path(b.path, sizeof b.path, dir, "st/dirlink/x.so");
    ck_assert_msg(wn_plugin_load(&p, &b.config, CONF_FILE, CONF_DIR, err, sizeof err) == 0,
                  "load failed: %s", err);
    ck_assert_str_eq(p.descriptor.name, "good");
    wn_plugin_unload(&p);
    if (unit_other_user("test_link_in_the_middle_refused", &uid, &gid)) {
        ck_assert_int_eq(lchown(link, uid, gid), 0);
        textf(expected, sizeof expected,
              "plugin \"mid\" (%s): refused: link %s is owned by uid %u, not by root or by the "
              "user walnotify runs as (uid 0) (set WALNOTIFY_ALLOW_UNSAFE_PATHS=1 to allow this "
              "in a development tree)",
              b.path, link, (unsigned)uid);
        load_refused(&b, expected);
    }
    unit_remove_tree(dir);
}
END_TEST

/* Two files loaded one after the other are two libraries, also after the first is unloaded:
 * each is loaded through its own descriptor's name, which no other file takes meanwhile. */
START_TEST(test_each_file_its_own_library)
{
    test_block b1, b2, b3;
    wn_plugin p1, p2, p3;

    block_init(&b1, "first", "good");
    add_required(&b1);
    block_init(&b2, "second", "old_minor");
    block_init(&b3, "third", "good");
    add_required(&b3);
    load_ok(&p1, &b1);
    load_ok(&p2, &b2);
    ck_assert_str_eq(p1.descriptor.name, "good");
    ck_assert_str_eq(p2.descriptor.name, "old");
    wn_plugin_unload(&p2);
    wn_plugin_unload(&p1);
    load_ok(&p2, &b2);
    load_ok(&p3, &b3);
    ck_assert_str_eq(p2.descriptor.name, "old");
    ck_assert_str_eq(p3.descriptor.name, "good");
    wn_plugin_unload(&p3);
    wn_plugin_unload(&p2);
}
END_TEST

/* Flips dir/st/dirlink between dir/good and dir/evil as another user would, forever; writes a
 * byte to ready after the first flip. Runs in a child process. */
static void flip_forever(const char *dir, uid_t uid, gid_t gid, int ready)
{
    char targets[2][PATH_MAX], link[PATH_MAX], next[PATH_MAX];

    if (setgid(gid) != 0 || setuid(uid) != 0)
        _exit(2);
    unit_temp_path(targets[0], PATH_MAX, dir, "good");
    unit_temp_path(targets[1], PATH_MAX, dir, "evil");
    unit_temp_path(link, sizeof link, dir, "st/dirlink");
    unit_temp_path(next, sizeof next, dir, "st/next");
    for (unsigned long i = 0;; i++) {
        unlink(next);
        if (symlink(targets[i % 2], next) != 0 || rename(next, link) != 0)
            _exit(3);
        if (i == 0 && write(ready, "x", 1) != 1)
            _exit(4);
    }
}

/* The tries of the flipping race: WN_TEST_FLIP_TRIES (make check-faults sets many), else a few. */
static long flip_tries(void)
{
    const char *text = getenv("WN_TEST_FLIP_TRIES");

    return text ? strtol(text, NULL, 10) : 50;
}

/* Another user flips a link in the middle of the plugin's path between a trusted folder and
 * theirs while walnotify loads it: their plugin's code must never run, whichever way the link
 * points when it is checked or when it is opened. */
START_TEST(test_flipped_link_never_loads_another_users_plugin)
{
    char dir[PATH_MAX], evil[PATH_MAX], source[PATH_MAX], path[PATH_MAX], marker[PATH_MAX];
    char err[1024];
    test_block b;
    wn_plugin p;
    int ready[2], status;
    long tries = flip_tries(), loaded = 0;
    pid_t child;
    uid_t uid;
    gid_t gid;
    char byte;

    if (!unit_other_user("test_flipped_link_never_loads_another_users_plugin", &uid, &gid))
        return;
    unit_temp_dir(dir, sizeof dir, "test_loader");
    sticky_tree(dir);
    ck_assert_int_eq(mkdir(unit_temp_path(evil, sizeof evil, dir, "evil"), 0755), 0);
    fixture("marker", source, sizeof source);
    copy_file(source, unit_temp_path(path, sizeof path, dir, "evil/x.so"));
    ck_assert_int_eq(chown(path, uid, gid), 0);
    ck_assert_int_eq(chown(evil, uid, gid), 0);
    unit_temp_path(marker, sizeof marker, dir, "marker-ran");
    ck_assert_int_eq(setenv("WN_TEST_CONSTRUCTOR_MARKER", marker, 1), 0);

    ck_assert_int_eq(pipe(ready), 0);
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        flip_forever(dir, uid, gid, ready[1]);
    ck_assert_int_eq(read(ready[0], &byte, 1), 1);
    block_init(&b, "flipped", "good");
    add_required(&b);
    unit_temp_path(b.path, sizeof b.path, dir, "st/dirlink/x.so");
    for (long i = 0; i < tries && access(marker, F_OK) != 0; i++) {
        if (wn_plugin_load(&p, &b.config, CONF_FILE, CONF_DIR, err, sizeof err) != 0)
            continue;
        loaded++;
        wn_plugin_unload(&p);
    }
    ck_assert_int_eq(kill(child, SIGKILL), 0);
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFSIGNALED(status), "the flipping child stopped early (status %d)", status);
    ck_assert_msg(access(marker, F_OK) != 0, "another user's plugin ran as root");
    ck_assert_int_eq(loaded, 0);
    unsetenv("WN_TEST_CONSTRUCTOR_MARKER");
    close(ready[0]);
    close(ready[1]);
    unit_remove_tree(dir);
}
END_TEST

/* ---- settings -------------------------------------------------------------------------------- */

START_TEST(test_good_defaults)
{
    test_block b;
    wn_plugin p;
    const walnotify_host *h;

    block_init(&b, "one", "good");
    add_required(&b);
    load_ok(&p, &b);
    h = &p.host;
    ck_assert_uint_eq(h->size, sizeof(walnotify_host));
    ck_assert_uint_eq(h->abi_major, WALNOTIFY_ABI_MAJOR);
    ck_assert_uint_eq(h->abi_minor, WALNOTIFY_ABI_MINOR);
    ck_assert_str_eq(h->instance_name, "one");
    ck_assert_ptr_eq(p.config, &b.config);
    ck_assert_str_eq(p.descriptor.name, "good");
    ck_assert_ptr_nonnull(p.descriptor.begin);
    ck_assert_ptr_nonnull(p.descriptor.commit);
    ck_assert_ptr_nonnull(p.descriptor.abort);
    ck_assert_ptr_nonnull(p.descriptor.flush);

    ck_assert_str_eq(h->get_string(h, "label"), "good");
    ck_assert_int_eq(h->get_integer(h, "limit"), 100);
    ck_assert(!h->get_boolean(h, "verbose"));
    ck_assert_uint_eq(h->get_list_length(h, "tags"), 3);
    ck_assert_str_eq(h->get_list_item(h, "tags", 0), "a");
    ck_assert_str_eq(h->get_list_item(h, "tags", 1), "b");
    ck_assert_str_eq(h->get_list_item(h, "tags", 2), "c");
    ck_assert_ptr_null(h->get_list_item(h, "tags", 3));
    ck_assert_str_eq(h->get_string(h, "output"), CONF_DIR "/out/good.log");
    ck_assert_str_eq(h->get_string(h, "url"), "http://example.com/");

    /* Undeclared names and the wrong type read as the zero value. */
    ck_assert_ptr_null(h->get_string(h, "nope"));
    ck_assert_int_eq(h->get_integer(h, "nope"), 0);
    ck_assert(!h->get_boolean(h, "nope"));
    ck_assert_uint_eq(h->get_list_length(h, "nope"), 0);
    ck_assert_ptr_null(h->get_list_item(h, "nope", 0));
    ck_assert_ptr_null(h->get_string(h, "limit"));
    ck_assert_int_eq(h->get_integer(h, "label"), 0);
    ck_assert(!h->get_boolean(h, "tags"));
    ck_assert_uint_eq(h->get_list_length(h, "label"), 0);
    ck_assert_ptr_null(h->get_string(h, NULL));
    wn_plugin_unload(&p);
    ck_assert_ptr_null(p.library);
}
END_TEST

START_TEST(test_good_configured)
{
    static char *const tags[] = {"x", "y"};
    test_block b;
    wn_plugin p;
    const walnotify_host *h;
    wn_setting_value *v;

    block_init(&b, "two", "good");
    add_string(&b, "label", "custom", 10);
    block_add(&b, "limit", WN_SETTING_INTEGER, 11)->integer = -9000000000LL;
    block_add(&b, "verbose", WN_SETTING_BOOLEAN, 12)->boolean = true;
    v = block_add(&b, "tags", WN_SETTING_STRING_LIST, 13);
    v->items = (char **)tags;
    v->nitems = 2;
    add_string(&b, "output", "logs/x.log", 14);
    add_required(&b);
    load_ok(&p, &b);
    h = &p.host;
    ck_assert_str_eq(h->get_string(h, "label"), "custom");
    ck_assert_int_eq(h->get_integer(h, "limit"), -9000000000LL);
    ck_assert(h->get_boolean(h, "verbose"));
    ck_assert_uint_eq(h->get_list_length(h, "tags"), 2);
    ck_assert_str_eq(h->get_list_item(h, "tags", 1), "y");
    /* Copies, not the configuration's own strings. */
    ck_assert_ptr_ne(h->get_list_item(h, "tags", 1), tags[1]);
    ck_assert_str_eq(h->get_string(h, "output"), CONF_DIR "/logs/x.log");
    wn_plugin_unload(&p);
}
END_TEST

START_TEST(test_path_values)
{
    static const char *const cases[][2] = {
        {"-", "-"},
        {"/var/log/x", "/var/log/x"},
        {"x", CONF_DIR "/x"},
    };
    test_block b;
    wn_plugin p;

    block_init(&b, "paths", "good");
    add_string(&b, "output", cases[_i][0], 10);
    add_required(&b);
    load_ok(&p, &b);
    ck_assert_str_eq(p.host.get_string(&p.host, "output"), cases[_i][1]);
    wn_plugin_unload(&p);
}
END_TEST

START_TEST(test_empty_list)
{
    test_block b;
    wn_plugin p;

    block_init(&b, "empty", "good");
    block_add(&b, "tags", WN_SETTING_STRING_LIST, 10);
    add_required(&b);
    load_ok(&p, &b);
    ck_assert_uint_eq(p.host.get_list_length(&p.host, "tags"), 0);
    ck_assert_ptr_null(p.host.get_list_item(&p.host, "tags", 0));
    wn_plugin_unload(&p);
}
END_TEST

START_TEST(test_unknown_setting)
{
    test_block b;

    block_init(&b, "orders-log", "good");
    add_required(&b);
    add_string(&b, "pth", "x", 12);
    load_refused(&b, CONF_FILE ":12: plugin \"orders-log\": unknown setting \"pth\" "
                     "(good declares: label, limit, verbose, tags, output, url)");
}
END_TEST

START_TEST(test_unknown_setting_none_declared)
{
    test_block b;

    block_init(&b, "old-one", "old_minor");
    add_string(&b, "path", "x", 7);
    load_refused(&b, CONF_FILE ":7: plugin \"old-one\": unknown setting \"path\" "
                     "(old declares: none)");
}
END_TEST

static const struct {
    const char *name;
    wn_setting_kind kind;
    const char *must_be;
} wrong_kinds[] = {
    {"verbose", WN_SETTING_STRING, "a boolean"},
    {"verbose", WN_SETTING_INTEGER, "a boolean"},
    {"limit", WN_SETTING_FLOAT, "an integer"},
    {"limit", WN_SETTING_STRING, "an integer"},
    {"label", WN_SETTING_STRING_LIST, "a string"},
    {"label", WN_SETTING_OTHER, "a string"},
    {"tags", WN_SETTING_STRING, "a list of strings"},
    {"tags", WN_SETTING_OTHER, "a list of strings"},
    {"output", WN_SETTING_BOOLEAN, "a string (a path)"},
};

START_TEST(test_wrong_kind)
{
    test_block b;
    char expected[512];

    block_init(&b, "typed", "good");
    add_required(&b);
    block_add(&b, wrong_kinds[_i].name, wrong_kinds[_i].kind, 13)->string = (char *)"1";
    textf(expected, sizeof expected, CONF_FILE ":13: plugin \"typed\": setting \"%s\" must be %s",
             wrong_kinds[_i].name, wrong_kinds[_i].must_be);
    load_refused(&b, expected);
}
END_TEST

START_TEST(test_missing_required)
{
    test_block b;

    block_init(&b, "needy", "good");
    add_string(&b, "label", "x", 6);
    load_refused(&b, CONF_FILE ":5: plugin \"needy\": setting \"url\" is required");
}
END_TEST

START_TEST(test_setting_given_twice)
{
    test_block b;

    block_init(&b, "twice", "good");
    add_required(&b);
    add_string(&b, "label", "x", 10);
    add_string(&b, "label", "y", 11);
    load_refused(&b, CONF_FILE ":11: plugin \"twice\": setting \"label\" is given twice");
}
END_TEST

/* ---- running ----------------------------------------------------------------------------------- */

/* Runs init with standard error captured into out. */
static walnotify_status init_capturing(wn_plugin *p, char *out, size_t outlen)
{
    char name[] = "/tmp/wn-test-loader-XXXXXX";
    int fd = mkstemp(name);
    int saved;
    walnotify_status status;
    ssize_t n;

    ck_assert_int_ge(fd, 0);
    unlink(name);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    dup2(fd, STDERR_FILENO);
    status = wn_plugin_init(p);
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(fd, out, outlen - 1, 0);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    return status;
}

START_TEST(test_init_handle_shutdown)
{
    test_block b;
    wn_plugin p;
    walnotify_event e;
    walnotify_txn txn = {.size = sizeof txn, .commit_lsn = 0x16B3748, .xid = 7};
    const good_state *s;
    char log[4096];

    block_init(&b, "runner", "good");
    add_required(&b);
    load_ok(&p, &b);
    ck_assert(!p.initialised);
    ck_assert_int_eq(init_capturing(&p, log, sizeof log), WALNOTIFY_OK);
    ck_assert(p.initialised);
    ck_assert_msg(strstr(log, " WARNING: plugin \"runner\": good ready: label good, 3 tags\n"),
                  "log was: %s", log);
    s = p.state;
    ck_assert_ptr_nonnull(s);
    /* What the plugin itself read through the host table. */
    ck_assert_str_eq(s->label, "good");
    ck_assert_int_eq(s->limit, 100);
    ck_assert(!s->verbose);
    ck_assert_uint_eq(s->ntags, 3);
    ck_assert_str_eq(s->first_tag, "a");
    ck_assert_str_eq(s->output, CONF_DIR "/out/good.log");
    ck_assert_str_eq(s->url, "http://example.com/");
    ck_assert_ptr_null(s->undeclared);
    ck_assert_int_eq(s->label_as_integer, 0);

    ck_assert_int_eq(p.descriptor.begin(p.state, &txn), WALNOTIFY_OK);
    e = make_event(0x16B3748, 0);
    ck_assert_int_eq(p.descriptor.handle(p.state, &e), WALNOTIFY_OK);
    e = make_event(0x16B3748, 1);
    ck_assert_int_eq(p.descriptor.handle(p.state, &e), WALNOTIFY_OK);
    ck_assert_int_eq(p.descriptor.commit(p.state, &txn), WALNOTIFY_OK);
    ck_assert_int_eq(p.descriptor.flush(p.state), WALNOTIFY_OK);
    ck_assert_uint_eq(s->events, 2);
    ck_assert_uint_eq(s->begins, 1);
    ck_assert_uint_eq(s->commits, 1);
    ck_assert_uint_eq(s->flushes, 1);
    ck_assert_uint_eq(s->last_lsn, 0x16B3748);
    /* A second init is not a second instance. */
    ck_assert_int_eq(wn_plugin_init(&p), WALNOTIFY_OK);
    ck_assert_ptr_eq(p.state, s);
    wn_plugin_unload(&p);
    ck_assert(!p.initialised);
    ck_assert_ptr_null(p.library);
}
END_TEST

START_TEST(test_plugin_error_status)
{
    test_block b;
    wn_plugin p;
    walnotify_event e = make_event(1, 0);

    block_init(&b, "limited", "good");
    add_required(&b);
    block_add(&b, "limit", WN_SETTING_INTEGER, 10)->integer = 1;
    load_ok(&p, &b);
    ck_assert_int_eq(wn_plugin_init(&p), WALNOTIFY_OK);
    ck_assert_int_eq(p.descriptor.handle(p.state, &e), WALNOTIFY_OK);
    ck_assert_int_eq(p.descriptor.handle(p.state, &e), WALNOTIFY_FATAL);
    wn_plugin_unload(&p);
}
END_TEST

START_TEST(test_two_instances)
{
    test_block b1, b2;
    wn_plugin p1, p2;
    walnotify_event e = make_event(42, 0);
    const good_state *s1, *s2;

    block_init(&b1, "first", "good");
    add_required(&b1);
    add_string(&b1, "label", "one", 10);
    block_init(&b2, "second", "good");
    add_required(&b2);
    add_string(&b2, "label", "two", 20);
    load_ok(&p1, &b1);
    load_ok(&p2, &b2);
    ck_assert_int_eq(wn_plugin_init(&p1), WALNOTIFY_OK);
    ck_assert_int_eq(wn_plugin_init(&p2), WALNOTIFY_OK);
    s1 = p1.state;
    s2 = p2.state;
    ck_assert_ptr_ne(s1, s2);
    ck_assert_str_eq(s1->label, "one");
    ck_assert_str_eq(s2->label, "two");
    ck_assert_str_eq(p1.host.instance_name, "first");
    ck_assert_str_eq(p2.host.instance_name, "second");
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(p1.descriptor.handle(p1.state, &e), WALNOTIFY_OK);
    ck_assert_int_eq(p2.descriptor.handle(p2.state, &e), WALNOTIFY_OK);
    ck_assert_uint_eq(s1->events, 3);
    ck_assert_uint_eq(s2->events, 1);
    /* Unloading one leaves the other's library and settings in place. */
    wn_plugin_unload(&p1);
    ck_assert_int_eq(p2.descriptor.handle(p2.state, &e), WALNOTIFY_OK);
    ck_assert_uint_eq(s2->events, 2);
    ck_assert_str_eq(p2.host.get_string(&p2.host, "label"), "two");
    wn_plugin_unload(&p2);
}
END_TEST

START_TEST(test_old_minor)
{
    test_block b;
    wn_plugin p;
    walnotify_event e = make_event(9, 0);
    char text[256];

    block_init(&b, "elder", "old_minor");
    load_ok(&p, &b);
    ck_assert_uint_eq(p.descriptor.size, 64);
    ck_assert_ptr_nonnull(p.descriptor.init);
    ck_assert_ptr_nonnull(p.descriptor.handle);
    ck_assert_ptr_nonnull(p.descriptor.shutdown);
    ck_assert_ptr_null(p.descriptor.begin);
    ck_assert_ptr_null(p.descriptor.commit);
    ck_assert_ptr_null(p.descriptor.abort);
    ck_assert_ptr_null(p.descriptor.flush);
    ck_assert_int_eq(wn_plugin_init(&p), WALNOTIFY_OK);
    ck_assert_int_eq(p.descriptor.handle(p.state, &e), WALNOTIFY_OK);
    ck_assert_int_eq(p.descriptor.handle(p.state, &e), WALNOTIFY_OK);
    ck_assert_uint_eq(*(const uint64_t *)p.state, 2);
    wn_plugin_describe(&p, text, sizeof text);
    ck_assert_str_eq(text, "old 0.9 (plugin ABI 1.0)\n"
                           "operations: insert, update, delete, truncate\n"
                           "settings: none\n");
    /* A 1.0 plugin handles the changes only; 1.1's services are lent to it all the same. */
    ck_assert_uint_eq(wn_plugin_ops(&p), WALNOTIFY_OPS_CHANGES);
    ck_assert_uint_eq(p.descriptor.ops, 0);
    ck_assert_ptr_null(p.descriptor.check);
    wn_plugin_unload(&p);
}
END_TEST

START_TEST(test_describe)
{
    test_block b;
    wn_plugin p;
    char text[1024];
    char small[16];

    block_init(&b, "described", "good");
    add_required(&b);
    load_ok(&p, &b);
    wn_plugin_describe(&p, text, sizeof text);
    ck_assert_str_eq(text,
                     "good 1.2.3 (plugin ABI 1.2)\n"
                     "operations: insert, update, delete, truncate\n"
                     "settings:\n"
                     "  label (string, default \"good\"): a name for the instance\n"
                     "  limit (integer, default \"100\"): events accepted before handle fails\n"
                     "  verbose (boolean, default \"false\"): log every event\n"
                     "  tags (list, default \" a, b ,c\"): free-form tags\n"
                     "  output (path, default \"out/good.log\"): where nothing is written\n"
                     "  url (string, required): required: anything\n");
    /* A short buffer gets a cut, terminated text. */
    wn_plugin_describe(&p, small, sizeof small);
    ck_assert_str_eq(small, "good 1.2.3 (plu");
    wn_plugin_unload(&p);
}
END_TEST

/* The descriptor alone: --describe needs no configuration block and calls neither check nor init. */
START_TEST(test_describe_file)
{
    char path[PATH_MAX], text[2048], err[512] = "";

    fixture("lifecycle", path, sizeof path);
    ck_assert_msg(wn_plugin_describe_file(path, text, sizeof text, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(text,
                     "lifecycle 1.1.0 (plugin ABI 1.2)\n"
                     "operations: insert, update, delete, truncate, message\n"
                     "settings:\n"
                     "  log (path, default \"-\"): file that receives one line per callback "
                     "(\"-\": none)\n"
                     "  refuse (boolean, default \"false\"): check refuses the settings\n"
                     "  lock (path, default \"-\"): init answers RETRY while another process "
                     "holds this file's lock\n"
                     "  flush_always (boolean, default \"false\"): ask to be flushed before every "
                     "acknowledgement\n");
    /* The same plugin built against ABI 1.1's header says so. */
    fixture("abi11_lifecycle", path, sizeof path);
    ck_assert_msg(wn_plugin_describe_file(path, text, sizeof text, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(strncmp(text, "lifecycle 1.1.0 (plugin ABI 1.1)\n", 33) == 0, "%s", text);
    fixture("bad_short_minor", path, sizeof path);
    ck_assert_int_eq(wn_plugin_describe_file(path, text, sizeof text, err, sizeof err),
                     WN_LOAD_REFUSED);
    ck_assert_ptr_nonnull(strstr(err, "descriptor size 96 bytes, ABI 1.1 needs at least 112"));
}
END_TEST

/* A block asks only for what its plugin declares; without ops it gets insert. */
START_TEST(test_ops_refused)
{
    test_block b;
    wn_plugin p;

    block_init(&b, "asks", "good");
    add_required(&b);
    b.config.ops = WALNOTIFY_OP_INSERT | WALNOTIFY_OP_MESSAGE;
    b.config.ops_line = 15;
    load_refused(&b, CONF_FILE ":15: plugin \"asks\": ops asks for message, which good does not "
                              "handle (good declares: insert, update, delete, truncate)");

    block_init(&b, "legacy", "abi10_legacy");
    b.config.ops = WALNOTIFY_OP_SNAPSHOT;
    b.config.ops_line = 16;
    load_refused(&b, CONF_FILE ":16: plugin \"legacy\": ops asks for snapshot, which "
                              "abi10_legacy does not handle (abi10_legacy declares: insert, "
                              "update, delete, truncate)");

    /* Without ops a block gets insert, which this plugin does not handle. */
    block_init(&b, "bare", "messages_only");
    load_refused(&b, CONF_FILE ":5: plugin \"bare\": no ops given, so it would get insert, "
                              "which messages_only does not handle (messages_only declares: "
                              "message); name its operations in ops");
    block_init(&b, "named", "messages_only");
    b.config.ops = WALNOTIFY_OP_MESSAGE;
    b.config.ops_line = 13;
    load_ok(&p, &b);
    wn_plugin_unload(&p);

    block_init(&b, "fine", "lifecycle");
    b.config.ops = WALNOTIFY_OP_MESSAGE | WALNOTIFY_OP_DELETE;
    b.config.ops_line = 17;
    load_ok(&p, &b);
    ck_assert_uint_eq(wn_plugin_ops(&p), WALNOTIFY_OPS_CHANGES | WALNOTIFY_OP_MESSAGE);
    wn_plugin_unload(&p);
}
END_TEST

/* check runs with the getters and log only; its refusal is FATAL; the services work after it. */
START_TEST(test_check)
{
    static const walnotify_source source = {.size = sizeof source, .system_identifier = 7,
                                            .database = "app", .slot = "s", .publication = "p"};
    static const walnotify_table tables[1] = {{.size = sizeof(walnotify_table), .table = "public.t"}};
    test_block b;
    wn_plugin p;
    char err[512] = "";

    block_init(&b, "checked", "lifecycle");
    load_ok(&p, &b);
    /* Even with the context lent, check sees only zero values (the fixture refuses otherwise). */
    wn_plugin_set_context(&p, &source, tables, 1, 0x16B3748);
    ck_assert_int_eq(wn_plugin_check(&p, NULL, CONF_FILE, err, sizeof err), WALNOTIFY_OK);
    ck_assert_ptr_eq(p.host.source(&p.host), &source);
    ck_assert_uint_eq(p.host.table_count(&p.host), 1);
    ck_assert_str_eq(p.host.table(&p.host, 0)->table, "public.t");
    ck_assert_ptr_null(p.host.table(&p.host, 1));
    ck_assert_uint_eq(p.host.resume_position(&p.host), 0x16B3748);
    ck_assert_uint_eq(p.host.flush_position(&p.host), 0);
    wn_plugin_set_flush_position(&p, 0x2000);
    ck_assert_uint_eq(p.host.flush_position(&p.host), 0x2000);
    wn_plugin_set_flush_position(&p, 0);
    ck_assert(!wn_plugin_flush_always(&p));
    p.host.set_flush_always(&p.host, true);
    ck_assert(wn_plugin_flush_always(&p));
    /* Outside handle, commit and flush the two failure services refuse, and record nothing. */
    ck_assert_int_eq(p.host.fail_events(&p.host, (walnotify_id){0}, (walnotify_id){0},
                                        WALNOTIFY_FAILURE_TRANSIENT, "x"),
                     WALNOTIFY_FATAL);
    ck_assert_int_eq(p.host.rewind(&p.host, "x"), WALNOTIFY_FATAL);
    ck_assert_int_eq(p.requests.pending, WN_REQUEST_NONE);
    /* Inside one they record the request for this instance, found from its host table. */
    wn_requests_open(&p.requests, "flush");
    ck_assert_int_eq(p.host.rewind(&p.host, "lost"), WALNOTIFY_RETRY);
    wn_requests_close(&p.requests);
    ck_assert_int_eq(wn_requests_take(&p.requests), WN_REQUEST_REWIND);
    ck_assert_str_eq(p.requests.reason, "lost");
    wn_plugin_unload(&p);

    block_init(&b, "refusing", "lifecycle");
    block_add(&b, "refuse", WN_SETTING_BOOLEAN, 12)->boolean = true;
    load_ok(&p, &b);
    /* A refusal is one configuration error: the file, the block's line, what check said. */
    ck_assert_int_eq(wn_plugin_check(&p, NULL, CONF_FILE, err, sizeof err), WALNOTIFY_FATAL);
    ck_assert_str_eq(err, CONF_FILE ":5: plugin \"refusing\": refuse = true: refusing on purpose");
    wn_plugin_unload(&p);

    /* No check callback (a 1.0 plugin): nothing to refuse. */
    block_init(&b, "elder", "old_minor");
    load_ok(&p, &b);
    ck_assert_int_eq(wn_plugin_check(&p, NULL, CONF_FILE, err, sizeof err), WALNOTIFY_OK);
    wn_plugin_unload(&p);
}
END_TEST

/* The durable append files lent to an instance (1.2): what a sync recorded comes back at the
 * next open; a second opener, a link, and the check callback are refused. */
START_TEST(test_file_services)
{
    char dir[] = "/tmp/test_loader_files.XXXXXX", path[64], link_path[64];
    walnotify_file *file = NULL, *again = NULL;
    walnotify_id last = {1, 1};
    test_block b;
    wn_plugin p;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/out.csv", dir);
    snprintf(link_path, sizeof link_path, "%s/link.csv", dir);
    block_init(&b, "filer", "lifecycle");
    load_ok(&p, &b);
    ck_assert_int_eq(p.host.file_open(&p.host, path, 0, &file, &last), WALNOTIFY_OK);
    ck_assert_uint_eq(last.position, 0);
    ck_assert_int_eq(p.host.file_append(&p.host, file, "1,\"a\nb\"\n", 8), WALNOTIFY_OK);
    ck_assert_int_eq(p.host.file_sync(&p.host, file, (walnotify_id){0x300, 2}), WALNOTIFY_OK);
    ck_assert_int_eq(p.host.file_append(&p.host, file, "2,\"not", 6), WALNOTIFY_OK);
    ck_assert_int_eq(p.host.file_open(&p.host, path, 0, &again, &last), WALNOTIFY_FATAL);
    ck_assert_ptr_null(again);
    p.host.file_close(&p.host, file);
    ck_assert_int_eq(p.host.file_open(&p.host, path, 0, &file, &last), WALNOTIFY_OK);
    ck_assert_uint_eq(last.position, 0x300);
    ck_assert_uint_eq(last.ordinal, 2);
    p.host.file_close(&p.host, file);
    ck_assert_int_eq(symlink(path, link_path), 0);
    ck_assert_int_eq(p.host.file_open(&p.host, link_path, 0, &file, &last), WALNOTIFY_FATAL);
    wn_plugin_unload(&p);
    unit_remove_tree(dir);
}
END_TEST

START_TEST(test_unload_unloaded)
{
    wn_plugin p;

    memset(&p, 0, sizeof p);
    wn_plugin_unload(&p);
    ck_assert_int_eq(wn_plugin_init(&p), WALNOTIFY_FATAL);
}
END_TEST

static Suite *loader_suite(void)
{
    Suite *s = suite_create("loader");
    TCase *refusals = tcase_create("refusals");
    TCase *settings = tcase_create("settings");
    TCase *running = tcase_create("running");
    TCase *files = tcase_create("files");
    TCase *flip = tcase_create("flip");

    tcase_add_loop_test(refusals, test_descriptor_refused, 0,
                        (int)(sizeof descriptor_refusals / sizeof descriptor_refusals[0]));
    tcase_add_test(refusals, test_missing_file);
    tcase_add_test(refusals, test_not_a_shared_object);
    tcase_add_test(refusals, test_directory_refused);
    suite_add_tcase(s, refusals);

    tcase_add_test(files, test_link_in_the_middle_refused);
    tcase_add_test(files, test_each_file_its_own_library);
    suite_add_tcase(s, files);
    /* Run alone, longer, by make check-faults (CK_RUN_CASE=flip WN_TEST_FLIP_TRIES=...). */
    tcase_add_test(flip, test_flipped_link_never_loads_another_users_plugin);
    tcase_set_timeout(flip, 600);
    suite_add_tcase(s, flip);

    tcase_add_test(settings, test_good_defaults);
    tcase_add_test(settings, test_good_configured);
    tcase_add_loop_test(settings, test_path_values, 0, 3);
    tcase_add_test(settings, test_empty_list);
    tcase_add_test(settings, test_unknown_setting);
    tcase_add_test(settings, test_unknown_setting_none_declared);
    tcase_add_loop_test(settings, test_wrong_kind, 0,
                        (int)(sizeof wrong_kinds / sizeof wrong_kinds[0]));
    tcase_add_test(settings, test_missing_required);
    tcase_add_test(settings, test_setting_given_twice);
    suite_add_tcase(s, settings);

    tcase_add_test(running, test_init_handle_shutdown);
    tcase_add_test(running, test_plugin_error_status);
    tcase_add_test(running, test_two_instances);
    tcase_add_test(running, test_old_minor);
    tcase_add_test(running, test_describe);
    tcase_add_test(running, test_describe_file);
    tcase_add_test(running, test_ops_refused);
    tcase_add_test(running, test_check);
    tcase_add_test(running, test_file_services);
    tcase_add_test(running, test_unload_unloaded);
    suite_add_tcase(s, running);
    return s;
}

int main(void)
{
    return run_suite(loader_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
