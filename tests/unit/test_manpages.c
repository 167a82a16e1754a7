/*
 * manpages: the manual pages against the program. Every option `walnotify --help` names is a term
 * of walnotify(1)'s OPTIONS; every configuration key the configuration reader knows (as its
 * unknown-key messages list them, at the top level, in source and in a plugin block) is a term of
 * its section of walnotify.conf(5); and every setting of every plugin built in build/plugins (as
 * `walnotify --describe` lists them) is a term of that plugin's subsection of PLUGIN SETTINGS.
 *
 * A term is what a tagged paragraph (.TP) names on its next line, font escapes dropped.
 */
#include <check.h>
#include <glob.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_suite.h"
#include "unit_paths.h"

#define TERMS_MAX 512
#define TEXT_MAX (64 * 1024)

typedef struct term {
    char section[64]; /* the .SH or .SS heading it is under */
    char name[128];   /* one word of the term line */
} term;

typedef struct page {
    const char *file;
    term terms[TERMS_MAX];
    size_t nterms;
} page;

static char dir[PATH_MAX];

static void make_dir(void)
{
    unit_temp_dir(dir, sizeof dir, "test_manpages");
}

static void remove_dir(void)
{
    unit_remove_tree(dir);
}

/* A roff line as text: font escapes (\fB, \fR, ...) and quotes dropped, \- as -. In place. */
static void plain(char *line)
{
    char *out = line;

    for (const char *in = line; *in != '\0'; in++) {
        if (in[0] == '\\' && in[1] == 'f' && in[2] != '\0') {
            in += 2;
            continue;
        }
        if (in[0] == '\\' && in[1] == '-') {
            *out++ = '-';
            in++;
            continue;
        }
        if (*in == '"' || *in == '\n')
            continue;
        *out++ = *in;
    }
    *out = '\0';
}

static void add_words(page *p, const char *section, char *line)
{
    static const char separators[] = " \t,|[]()=";

    /* A macro (.B, .BR, .BI) at the start of the line is not a word of the term. */
    if (line[0] == '.')
        line += strcspn(line, " \t");
    for (char *w = strtok(line, separators); w != NULL; w = strtok(NULL, separators)) {
        ck_assert_msg(p->nterms < TERMS_MAX, "%s: more than %d terms", p->file, TERMS_MAX);
        snprintf(p->terms[p->nterms].section, sizeof p->terms[0].section, "%.63s", section);
        snprintf(p->terms[p->nterms].name, sizeof p->terms[0].name, "%.127s", w);
        p->nterms++;
    }
}

static void read_page(page *p, const char *file)
{
    char path[PATH_MAX], line[1024], section[64] = "";
    bool tagged = false;
    FILE *f;

    p->file = file;
    p->nterms = 0;
    unit_repo_file(path, sizeof path, __FILE__, file);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, ".SH ", 4) == 0 || strncmp(line, ".SS ", 4) == 0) {
            plain(line + 4);
            snprintf(section, sizeof section, "%.63s", line + 4);
        } else if (tagged) {
            plain(line);
            add_words(p, section, line);
        }
        tagged = strncmp(line, ".TP", 3) == 0;
    }
    fclose(f);
    ck_assert_msg(p->nterms > 0, "%s has no tagged paragraphs", path);
}

static bool has_term(const page *p, const char *section, const char *name)
{
    for (size_t i = 0; i < p->nterms; i++) {
        if (strcmp(p->terms[i].section, section) == 0 && strcmp(p->terms[i].name, name) == 0)
            return true;
    }
    return false;
}

static void assert_term(const page *p, const char *section, const char *name, const char *source)
{
    ck_assert_msg(has_term(p, section, name), "%s: \"%s\" (from %s) is not a term under %s",
                  p->file, name, source, section);
}

/* The output (standard output and error) of a shell command, into out; returns it. */
static char *run(const char *command, char *out, size_t size)
{
    FILE *f = popen(command, "r");
    size_t n;

    ck_assert_msg(f != NULL, "cannot run %s", command);
    n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    pclose(f);
    ck_assert_msg(n < size - 1, "%s: more output than %zu bytes", command, size - 1);
    return out;
}

static void host_path(char *out, size_t size)
{
    unit_repo_file(out, size, __FILE__, "build/walnotify");
}

START_TEST(every_option_of_help_is_in_walnotify_1)
{
    static page p;
    static char help[TEXT_MAX];
    char host[PATH_MAX], command[PATH_MAX + 32];
    int options = 0;

    read_page(&p, "man/walnotify.1");
    ck_assert(!has_term(&p, "OPTIONS", "--no-such-option"));
    host_path(host, sizeof host);
    snprintf(command, sizeof command, "'%s' --help 2>&1", host);
    run(command, help, sizeof help);
    for (char *w = strtok(help, " \t\n,|[]:;"); w != NULL; w = strtok(NULL, " \t\n,|[]:;")) {
        if (w[0] != '-' || !(w[1] == '-' || (w[1] >= 'a' && w[1] <= 'z') ||
                             (w[1] >= 'A' && w[1] <= 'Z')))
            continue;
        assert_term(&p, "OPTIONS", w, "walnotify --help");
        options++;
    }
    ck_assert_int_ge(options, 10);
}
END_TEST

/*
 * The keys the configuration reader knows where `where` is, from its message about an unknown
 * key put there ("... (expected a, b, c)"): each a term under section.
 */
static int check_keys(const page *p, const char *conf_text, const char *section)
{
    static char out[TEXT_MAX];
    char host[PATH_MAX], conf[PATH_MAX], command[2 * PATH_MAX + 64];
    char *list, *end;
    int keys = 0;
    FILE *f;

    host_path(host, sizeof host);
    f = fopen(unit_temp_path(conf, sizeof conf, dir, "keys.conf"), "w");
    ck_assert_ptr_nonnull(f);
    fputs(conf_text, f);
    ck_assert_int_eq(fclose(f), 0);
    snprintf(command, sizeof command, "'%s' --check-config -c '%s' 2>&1", host, conf);
    run(command, out, sizeof out);
    list = strstr(out, "(expected ");
    ck_assert_msg(list != NULL, "no list of keys in: %s", out);
    list += strlen("(expected ");
    end = strchr(list, ')');
    ck_assert_ptr_nonnull(end);
    *end = '\0';
    for (char *k = strtok(list, ", "); k != NULL; k = strtok(NULL, ", ")) {
        assert_term(p, section, k, "the configuration reader");
        keys++;
    }
    return keys;
}

START_TEST(every_configuration_key_is_in_walnotify_conf_5)
{
    static page p;
    char plugin[PATH_MAX], text[2 * PATH_MAX];

    read_page(&p, "man/walnotify.conf.5");
    ck_assert(!has_term(&p, "SOURCE", "no_such_key"));
    unit_repo_file(plugin, sizeof plugin, __FILE__, "build/plugins/jsonl.so");
    ck_assert_int_ge(check_keys(&p,
                                "unknown_key = 1;\n"
                                "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ]; };\n"
                                "plugins = ();\n",
                                "TOP-LEVEL KEYS"),
                     4);
    ck_assert_int_ge(check_keys(&p,
                                "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n"
                                "           unknown_key = 1; };\n"
                                "plugins = ();\n",
                                "SOURCE"),
                     10);
    snprintf(text, sizeof text,
             "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ]; };\n"
             "plugins = ( { name = \"a\"; path = \"%s\"; unknown_key = 1; } );\n",
             plugin);
    ck_assert_int_ge(check_keys(&p, text, "PLUGIN BLOCKS"), 10);
}
END_TEST

/* The settings `walnotify --describe` lists for the plugin at so, under its name's subsection. */
static void check_plugin(const page *p, const char *host, const char *so)
{
    static char out[TEXT_MAX];
    char command[2 * PATH_MAX + 32], name[64];
    int settings = 0;

    snprintf(command, sizeof command, "'%s' --describe '%s' 2>&1", host, so);
    run(command, out, sizeof out);
    ck_assert_msg(sscanf(out, "%63s", name) == 1, "%s: %s", command, out);
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char setting[128];

        /* "  path (path, default "-"): ..." */
        if (strncmp(line, "  ", 2) != 0 || sscanf(line, "%127s (", setting) != 1)
            continue;
        ck_assert_msg(has_term(p, name, setting), "%s: setting \"%s\" of %s is not a term under %s",
                      p->file, setting, so, name);
        settings++;
    }
    ck_assert_msg(settings > 0, "%s lists no settings: %s", command, out);
}

START_TEST(every_setting_of_every_built_plugin_is_in_walnotify_conf_5)
{
    static page p;
    char host[PATH_MAX], pattern[PATH_MAX];
    glob_t found;

    read_page(&p, "man/walnotify.conf.5");
    host_path(host, sizeof host);
    unit_repo_file(pattern, sizeof pattern, __FILE__, "build/plugins/*.so");
    ck_assert_int_eq(glob(pattern, 0, NULL, &found), 0);
    ck_assert_int_ge(found.gl_pathc, 4);
    for (size_t i = 0; i < found.gl_pathc; i++)
        check_plugin(&p, host, found.gl_pathv[i]);
    globfree(&found);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("manpages");
    TCase *tc = tcase_create("pages");

    tcase_add_checked_fixture(tc, make_dir, remove_dir);
    tcase_add_test(tc, every_option_of_help_is_in_walnotify_1);
    tcase_add_test(tc, every_configuration_key_is_in_walnotify_conf_5);
    tcase_add_test(tc, every_setting_of_every_built_plugin_is_in_walnotify_conf_5);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
