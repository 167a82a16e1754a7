/*
 * writers: two writers on one file are refused, by name and by what the file is (a hard link, a
 * link in the folders), naming both settings with their lines; the state file's temporary names
 * are its own; a plugin's other path settings may share with each other but not with walnotify's
 * files. The configurations are read by the real configuration reader; the plugins' settings are
 * written as the collector makes them.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "run_suite.h"
#include "unit_paths.h"
#include "writers.h"

#define WRITERS_MAX 16

static char dir[PATH_MAX];

static void make_dir(void)
{
    unit_temp_dir(dir, sizeof dir, "test_writers");
}

static void remove_dir(void)
{
    unit_remove_tree(dir);
}

/* Reads a configuration of a source with state_file (when not NULL) and plugins text; returns
 * what wn_writers_check says of its files ("" when nothing), in a static buffer. */
static const char *check_config(const char *state_file, const char *plugins)
{
    static char err[1024];
    char conf[PATH_MAX], load_err[1024] = "";
    wn_writer writers[WRITERS_MAX];
    wn_config config;
    FILE *f;
    int n;

    f = fopen(unit_temp_path(conf, sizeof conf, dir, "w.conf"), "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];%s%s%s };\n",
            state_file ? " state_file = \"" : "", state_file ? state_file : "",
            state_file ? "\";" : "");
    fprintf(f, "plugins = (\n%s\n);\n", plugins);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_msg(wn_config_load(conf, &config, load_err, sizeof load_err) == 0, "%s", load_err);
    n = wn_writers_collect(&config, NULL, 0, writers, WRITERS_MAX);
    ck_assert_int_ge(n, 0);
    err[0] = '\0';
    if (wn_writers_check(writers, (size_t)n, err, sizeof err) == 0)
        ck_assert_str_eq(err, "");
    else
        ck_assert_str_ne(err, "");
    wn_config_free(&config);
    return err;
}

#define SKIP_BLOCK(name, file)                                                                     \
    "  { name = \"" name "\"; path = \"p.so\"; on_error = \"skip\";\n"                             \
    "    dead_letter = \"" file "\"; }"

static void assert_has(const char *err, const char *what)
{
    ck_assert_msg(strstr(err, what) != NULL, "\"%s\" lacks \"%s\"", err, what);
}

START_TEST(dead_letters_shared_by_name)
{
    const char *err =
        check_config(NULL, SKIP_BLOCK("p", "dead.jsonl") ",\n" SKIP_BLOCK(
                               "q", "q.jsonl") ",\n" SKIP_BLOCK("r", "./sub//../dead.jsonl"));

    /* The later setting's line leads; the earlier one's is named. */
    assert_has(err, "w.conf:8: plugin \"r\": dead_letter names");
    assert_has(err, "the file of plugin \"p\": dead_letter (");
    assert_has(err, "w.conf:4)");
    assert_has(err, "no two writers may share a file");
}
END_TEST

START_TEST(dead_letter_is_the_state_file)
{
    const char *err = check_config("s", SKIP_BLOCK("p", "s"));

    assert_has(err, "w.conf:4: plugin \"p\": dead_letter names");
    assert_has(err, "the file of source.state_file (");
    assert_has(err, "w.conf:1)");
}
END_TEST

/* Two names, one file: a hard link made before the start, or a folder reached through a link. */
START_TEST(same_file_by_another_name)
{
    char a[PATH_MAX], b[PATH_MAX], sub[PATH_MAX];
    const char *err;

    unit_temp_path(a, sizeof a, dir, "state");
    ck_assert_int_eq(fclose(fopen(a, "w")), 0);
    ck_assert_int_eq(link(a, unit_temp_path(b, sizeof b, dir, "hard")), 0);
    err = check_config("state", SKIP_BLOCK("p", "hard"));
    assert_has(err, "w.conf:4: plugin \"p\": dead_letter names");
    assert_has(err, "the same file as");
    assert_has(err, "through a link or a hard link");

    /* Not made yet: the same folder and name. */
    ck_assert_int_eq(symlink(dir, unit_temp_path(sub, sizeof sub, dir, "alias")), 0);
    err = check_config(NULL, SKIP_BLOCK("p", "d.jsonl") ",\n" SKIP_BLOCK("q", "alias/d.jsonl"));
    /* The folder of a path is made canonical when it is read: the names are equal already. */
    assert_has(err, "plugin \"q\": dead_letter names");
}
END_TEST

START_TEST(state_temporary_names_are_its_own)
{
    const char *err = check_config("state", SKIP_BLOCK("p", "state.tmp-Ab12Cd"));

    assert_has(err, "w.conf:4: plugin \"p\": dead_letter names");
    assert_has(err, "a name source.state_file (");
    assert_has(err, "gives its temporary files");
    /* A name mkstemp cannot give is anybody's. */
    ck_assert_str_eq(check_config("state", SKIP_BLOCK("p", "state.tmp-Ab12C")), "");
    ck_assert_str_eq(check_config("state", SKIP_BLOCK("p", "sub.state.tmp-Ab12Cd")), "");
}
END_TEST

START_TEST(distinct_files_pass)
{
    ck_assert_str_eq(
        check_config("state", SKIP_BLOCK("p", "p.jsonl") ",\n" SKIP_BLOCK("q", "q.jsonl")), "");
}
END_TEST

/* A plugin record as the collector makes one. */
static wn_writer plugin_record(const char *path, wn_writer_kind kind, int line)
{
    wn_writer w = {.path = path, .file = "w.conf", .line = line, .kind = kind};

    snprintf(w.what, sizeof w.what, "plugin \"p%d\": settings.path", line);
    return w;
}

START_TEST(plugin_settings_by_kind)
{
    wn_writer w[3];
    char err[1024];

    /* Two files a plugin writes: refused. */
    w[0] = plugin_record("/x/out.jsonl", WN_WRITER_PLUGIN, 2);
    w[1] = plugin_record("/x/./out.jsonl", WN_WRITER_PLUGIN, 3);
    ck_assert_int_eq(wn_writers_check(w, 2, err, sizeof err), -1);
    assert_has(err, "w.conf:3: plugin \"p3\": settings.path names /x/./out.jsonl, the file of "
                    "plugin \"p2\": settings.path (w.conf:2)");

    /* Another plugin's path setting may read a file a plugin writes... */
    w[1].kind = WN_WRITER_OTHER;
    ck_assert_int_eq(wn_writers_check(w, 2, err, sizeof err), 0);

    /* ...but none names walnotify's own files. */
    w[2] = (wn_writer){.path = "/x/out.jsonl", .file = "w.conf", .line = 9, .kind = WN_WRITER_HOST};
    snprintf(w[2].what, sizeof w[2].what, "source.state_file");
    ck_assert_int_eq(wn_writers_check(&w[1], 2, err, sizeof err), -1);
    assert_has(err, "source.state_file");
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("writers");
    TCase *tc = tcase_create("writers");

    tcase_add_checked_fixture(tc, make_dir, remove_dir);
    tcase_add_test(tc, dead_letters_shared_by_name);
    tcase_add_test(tc, dead_letter_is_the_state_file);
    tcase_add_test(tc, same_file_by_another_name);
    tcase_add_test(tc, state_temporary_names_are_its_own);
    tcase_add_test(tc, distinct_files_pass);
    tcase_add_test(tc, plugin_settings_by_kind);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
