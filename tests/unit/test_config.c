/*
 * Unit tests of the configuration module: every field of a valid file, the defaults, one invalid
 * file per kind of mistake with its exact message, and a byte-level mangling loop.
 * Files are written from the strings below into a fresh temporary folder.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <walnotify/plugin.h>

#include "config.h"
#include "run_suite.h"
#include "unit_paths.h"

#define ERR_MAX 1024

/* The temporary folder, created once in main() before the runner forks. */
static char tmpdir[PATH_MAX];
/* Its realpath: what config->dir must be. */
static char realdir[PATH_MAX];

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void conf_path(char *out, size_t size, const char *name)
{
    int n = snprintf(out, size, "%s/%s", tmpdir, name);

    ck_assert(n > 0 && (size_t)n < size);
}

static bool is_zeroed(const wn_config *config)
{
    static const wn_config zero;

    return memcmp(config, &zero, sizeof zero) == 0;
}

/* Writes text to NAME in the temporary folder and loads it. */
static int load_text(const char *name, const char *text, wn_config *config, char *err, char *path,
                     size_t pathlen)
{
    int rc;

    conf_path(path, pathlen, name);
    write_file(path, text, strlen(text));
    rc = wn_config_load(path, config, err, ERR_MAX);
    unlink(path);
    return rc;
}

/* ---- a valid file ----------------------------------------------------------------------- */

static const char full_text[] =
    "metrics_listen = \"[::1]:9781\"; # walnotify test configuration\n"               /* 1 */
    "log_level = \"debug\";\n"                                                         /* 2 */
    "source:\n"                                                                        /* 3 */
    "{\n"                                                                              /* 4 */
    "  conninfo = \"host=127.0.0.1 port=5432 dbname=app\";\n"                          /* 5 */
    "  tables = [ \"public.orders\", \"customers\", \"audit.log.v2\" ];\n"             /* 6 */
    "  slot = \"orders_slot_1\";\n"                                                    /* 7 */
    "  publication = \"Orders-Pub\";\n"                                                /* 8 */
    "  status_interval_ms = 250; state_file = \"state/progress\";\n"                   /* 9 */
    "  reconnect_initial_ms = 20; reconnect_max_ms = 500;\n"                           /* 10 */
    "  receive_timeout_ms = 5000; progress_interval_ms = 2000; };\n"                   /* 11 */
    "plugins =\n"                                                                      /* 12 */
    "(\n"                                                                              /* 13 */
    "  {\n"                                                                            /* 14 */
    "    name = \"orders-log\"; retry_initial_ms = 5; retry_max_ms = 5;\n"             /* 15 */
    "    path = \"../build/plugins/jsonl.so\"; then = \"skip\";\n"                     /* 16 */
    "    tables = [ \"orders\", \"audit.log.v2\" ]; dead_letter = \"dead/o.jsonl\";\n" /* 17 */
    "    ops = [ \"insert\", \"update\" ]; on_error = \"retry\"; retry_max = 3;\n"     /* 18 */
    "    settings = { path = \"orders.jsonl\"; fsync = true; limit = 42;\n"            /* 19 */
    "                 big = 5000000000L; ratio = 0.5; names = [ \"a\", \"b\" ];\n"     /* 20 */
    "                 none = []; mixed = ( \"a\", 1 ); nested = { x = 1; };\n"         /* 21 */
    "                 ints = [ 1, 2 ]; };\n"                                           /* 22 */
    "  },\n"                                                                           /* 23 */
    "  {\n"                                                                            /* 24 */
    "    name = \"all\";\n"                                                            /* 25 */
    "    path = \"/opt/walnotify/x.so\";\n"                                            /* 26 */
    "    ops = ( \"delete\", \"truncate\" ); on_error = \"stop\";\n"                   /* 27 */
    "    settings = { };\n"                                                            /* 28 */
    "  }\n"                                                                            /* 29 */
    ");\n";                                                                            /* 30 */

static const wn_setting_value *find_setting(const wn_plugin_config *plugin, const char *name)
{
    for (size_t i = 0; i < plugin->nsettings; i++) {
        if (strcmp(plugin->settings[i].name, name) == 0)
            return &plugin->settings[i];
    }
    ck_abort_msg("setting %s missing", name);
    return NULL;
}

static void assert_table(const wn_table_ref *t, const char *schema, const char *name,
                         const char *qualified)
{
    ck_assert_str_eq(t->schema, schema);
    ck_assert_str_eq(t->name, name);
    ck_assert_str_eq(t->qualified, qualified);
}

START_TEST(test_full_file)
{
    wn_config c;
    char err[ERR_MAX] = "";
    char path[PATH_MAX], expected[PATH_MAX + 64];
    const wn_plugin_config *p;
    const wn_setting_value *s;

    ck_assert_msg(load_text("full.conf", full_text, &c, err, path, sizeof path) == 0, "%s", err);
    ck_assert_str_eq(c.file, path);
    ck_assert_str_eq(c.dir, realdir);
    ck_assert_int_eq(c.log_level, WN_LOG_DEBUG);
    ck_assert_str_eq(c.metrics_listen, "[::1]:9781");

    ck_assert_str_eq(c.source.conninfo, "host=127.0.0.1 port=5432 dbname=app");
    ck_assert_uint_eq(c.source.ntables, 3);
    assert_table(&c.source.tables[0], "public", "orders", "public.orders");
    assert_table(&c.source.tables[1], "public", "customers", "public.customers");
    assert_table(&c.source.tables[2], "audit", "log.v2", "audit.log.v2");
    ck_assert_str_eq(c.source.slot, "orders_slot_1");
    ck_assert_str_eq(c.source.publication, "Orders-Pub");
    ck_assert_int_eq(c.source.status_interval_ms, 250);
    snprintf(expected, sizeof expected, "%s/state/progress", realdir);
    ck_assert_str_eq(c.source.state_file, expected);
    ck_assert_int_eq(c.source.reconnect_initial_ms, 20);
    ck_assert_int_eq(c.source.reconnect_max_ms, 500);
    ck_assert_int_eq(c.source.receive_timeout_ms, 5000);
    ck_assert_int_eq(c.source.progress_interval_ms, 2000);

    ck_assert_uint_eq(c.nplugins, 2);
    p = &c.plugins[0];
    ck_assert_str_eq(p->name, "orders-log");
    snprintf(expected, sizeof expected, "%s/../build/plugins/jsonl.so", realdir);
    ck_assert_str_eq(p->path, expected);
    ck_assert_int_eq(p->line, 14);
    ck_assert_uint_eq(p->ops, WALNOTIFY_OP_INSERT | WALNOTIFY_OP_UPDATE);
    ck_assert(p->watches[0] && !p->watches[1] && p->watches[2]);
    ck_assert_int_eq(p->on_error, WN_ON_ERROR_RETRY);
    ck_assert_int_eq(p->retry_max, 3);
    ck_assert_int_eq(p->then, WN_ON_ERROR_SKIP);
    ck_assert_int_eq(p->retry_initial_ms, 5);
    ck_assert_int_eq(p->retry_max_ms, 5);
    snprintf(expected, sizeof expected, "%s/dead/o.jsonl", realdir);
    ck_assert_str_eq(p->dead_letter, expected);
    ck_assert_uint_eq(p->nsettings, 10);
    ck_assert_str_eq(p->settings[0].name, "path"); /* kept in file order */
    s = find_setting(p, "path");
    ck_assert_int_eq(s->kind, WN_SETTING_STRING);
    ck_assert_str_eq(s->string, "orders.jsonl"); /* resolving is the loader's job */
    ck_assert_int_eq(s->line, 19);
    s = find_setting(p, "fsync");
    ck_assert_int_eq(s->kind, WN_SETTING_BOOLEAN);
    ck_assert(s->boolean);
    s = find_setting(p, "limit");
    ck_assert_int_eq(s->kind, WN_SETTING_INTEGER);
    ck_assert_int_eq(s->integer, 42);
    s = find_setting(p, "big");
    ck_assert_int_eq(s->kind, WN_SETTING_INTEGER);
    ck_assert(s->integer == INT64_C(5000000000));
    ck_assert_int_eq(s->line, 20);
    s = find_setting(p, "ratio");
    ck_assert_int_eq(s->kind, WN_SETTING_FLOAT);
    ck_assert(s->real == 0.5);
    s = find_setting(p, "names");
    ck_assert_int_eq(s->kind, WN_SETTING_STRING_LIST);
    ck_assert_uint_eq(s->nitems, 2);
    ck_assert_str_eq(s->items[0], "a");
    ck_assert_str_eq(s->items[1], "b");
    s = find_setting(p, "none");
    ck_assert_int_eq(s->kind, WN_SETTING_STRING_LIST);
    ck_assert_uint_eq(s->nitems, 0);
    ck_assert_int_eq(find_setting(p, "mixed")->kind, WN_SETTING_OTHER);
    ck_assert_int_eq(find_setting(p, "nested")->kind, WN_SETTING_OTHER);
    ck_assert_int_eq(find_setting(p, "ints")->kind, WN_SETTING_OTHER);
    ck_assert_int_eq(find_setting(p, "ints")->line, 22);

    p = &c.plugins[1];
    ck_assert_str_eq(p->name, "all");
    ck_assert_str_eq(p->path, "/opt/walnotify/x.so");
    ck_assert_int_eq(p->line, 24);
    ck_assert_uint_eq(p->ops, WALNOTIFY_OP_DELETE | WALNOTIFY_OP_TRUNCATE);
    ck_assert(p->watches[0] && p->watches[1] && p->watches[2]);
    ck_assert_uint_eq(p->nsettings, 0);
    ck_assert_int_eq(p->on_error, WN_ON_ERROR_STOP);
    ck_assert_int_eq(p->retry_max, 0);
    ck_assert_int_eq(p->then, WN_ON_ERROR_STOP);
    ck_assert_int_eq(p->retry_initial_ms, 100);
    ck_assert_int_eq(p->retry_max_ms, 30000);
    ck_assert_ptr_null(p->dead_letter);

    ck_assert_uint_eq(c.ops, WALNOTIFY_OP_INSERT | WALNOTIFY_OP_UPDATE | WALNOTIFY_OP_DELETE |
                                 WALNOTIFY_OP_TRUNCATE);

    ck_assert_int_eq(wn_config_find_table(&c, "public", "customers"), 1);
    ck_assert_int_eq(wn_config_find_table(&c, "audit", "log.v2"), 2);
    ck_assert_int_eq(wn_config_find_table(&c, "public", "log.v2"), -1);
    ck_assert_int_eq(wn_config_find_table(&c, "audit", "orders"), -1);

    wn_config_free(&c);
    ck_assert(is_zeroed(&c));
    wn_config_free(&c); /* idempotent */
    ck_assert(is_zeroed(&c));
}
END_TEST

START_TEST(test_minimal_file)
{
    wn_config c;
    char err[ERR_MAX] = "";
    char path[PATH_MAX], expected[PATH_MAX + 64];
    const char *text = "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ]; };\n"
                       "plugins = ( { name = \"p\"; path = \"p.so\"; } );\n";

    ck_assert_msg(load_text("min.conf", text, &c, err, path, sizeof path) == 0, "%s", err);
    ck_assert_int_eq(c.log_level, WN_LOG_INFO);
    ck_assert_str_eq(c.source.slot, "walnotify");
    ck_assert_str_eq(c.source.publication, "walnotify");
    ck_assert_int_eq(c.source.status_interval_ms, 1000);
    ck_assert_ptr_null(c.source.state_file);
    ck_assert_int_eq(c.source.reconnect_initial_ms, 1000);
    ck_assert_int_eq(c.source.reconnect_max_ms, 60000);
    ck_assert_int_eq(c.source.receive_timeout_ms, 30000);
    ck_assert_int_eq(c.source.progress_interval_ms, 60000);
    ck_assert_ptr_null(c.metrics_listen);
    ck_assert_uint_eq(c.source.ntables, 1);
    assert_table(&c.source.tables[0], "public", "t", "public.t");
    ck_assert_uint_eq(c.nplugins, 1);
    ck_assert_uint_eq(c.plugins[0].ops, WALNOTIFY_OP_INSERT);
    ck_assert_uint_eq(c.ops, WALNOTIFY_OP_INSERT);
    ck_assert(c.plugins[0].watches[0]);
    ck_assert_uint_eq(c.plugins[0].nsettings, 0);
    ck_assert_ptr_null(c.plugins[0].settings);
    ck_assert_int_eq(c.plugins[0].line, 2);
    ck_assert_int_eq(c.plugins[0].on_error, WN_ON_ERROR_RETRY);
    ck_assert_int_eq(c.plugins[0].retry_max, 0);
    ck_assert_int_eq(c.plugins[0].retry_initial_ms, 100);
    ck_assert_int_eq(c.plugins[0].retry_max_ms, 30000);
    ck_assert_int_eq(c.plugins[0].then, WN_ON_ERROR_STOP);
    ck_assert_ptr_null(c.plugins[0].dead_letter);
    snprintf(expected, sizeof expected, "%s/p.so", realdir);
    ck_assert_str_eq(c.plugins[0].path, expected);
    wn_config_free(&c);
}
END_TEST

/* What a file leaves out is what wn_config_defaults gives a configuration built by hand (the
 * host applies no default of its own), and nothing in it needs freeing. */
START_TEST(test_defaults_match_file)
{
    const wn_config d = wn_config_defaults();
    const wn_plugin_config dp = wn_plugin_config_defaults();
    const wn_plugin_config *p;
    wn_config c;
    char err[ERR_MAX] = "";
    char path[PATH_MAX];
    const char *text = "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ]; };\n"
                       "plugins = ( { name = \"p\"; path = \"p.so\"; } );\n"
                       "log_level = \"WARNING\";\n";

    ck_assert_msg(load_text("defaults.conf", text, &c, err, path, sizeof path) == 0, "%s", err);
    ck_assert_int_eq(c.log_level, WN_LOG_WARNING); /* level names match in any case */
    ck_assert_int_eq(d.log_level, WN_LOG_INFO);
    ck_assert_int_eq(d.source.status_interval_ms, c.source.status_interval_ms);
    ck_assert_int_eq(d.source.reconnect_initial_ms, c.source.reconnect_initial_ms);
    ck_assert_int_eq(d.source.reconnect_max_ms, c.source.reconnect_max_ms);
    ck_assert_int_eq(d.source.receive_timeout_ms, c.source.receive_timeout_ms);
    ck_assert_int_eq(d.source.progress_interval_ms, c.source.progress_interval_ms);
    ck_assert_ptr_null(d.source.slot);
    ck_assert_ptr_null(d.source.conninfo);
    ck_assert_ptr_null(d.plugins);
    p = &c.plugins[0];
    ck_assert_uint_eq(dp.ops, p->ops);
    ck_assert_int_eq(dp.on_error, p->on_error);
    ck_assert_int_eq(dp.then, p->then);
    ck_assert_int_eq(dp.retry_max, p->retry_max);
    ck_assert_int_eq(dp.retry_initial_ms, p->retry_initial_ms);
    ck_assert_int_eq(dp.retry_max_ms, p->retry_max_ms);
    ck_assert_ptr_null(dp.name);
    ck_assert_ptr_null(dp.path);
    wn_config_free(&c);
}
END_TEST

/* snapshot and message are operations a block may ask for, but never ones the publication
 * publishes; where `ops` is written is kept for the loader's messages. */
START_TEST(test_ops_snapshot_message)
{
    wn_config c;
    char err[ERR_MAX] = "";
    char path[PATH_MAX];
    const char *text = "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ]; };\n"
                       "plugins = ( { name = \"p\"; path = \"p.so\";\n"
                       "  ops = [ \"message\", \"update\", \"snapshot\" ]; },\n"
                       "  { name = \"q\"; path = \"p.so\"; } );\n";

    ck_assert_msg(load_text("ops.conf", text, &c, err, path, sizeof path) == 0, "%s", err);
    ck_assert_uint_eq(c.plugins[0].ops,
                      WALNOTIFY_OP_MESSAGE | WALNOTIFY_OP_UPDATE | WALNOTIFY_OP_SNAPSHOT);
    ck_assert_int_eq(c.plugins[0].ops_line, 3);
    ck_assert_uint_eq(c.plugins[1].ops, WALNOTIFY_OP_INSERT);
    ck_assert_int_eq(c.plugins[1].ops_line, 0);
    ck_assert_uint_eq(c.ops, WALNOTIFY_OP_INSERT | WALNOTIFY_OP_UPDATE);
    ck_assert_int_eq(c.source.snapshot, WN_SNAPSHOT_NEVER);
    wn_config_free(&c);
    text = "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ]; state_file = \"s\";\n"
           "  snapshot = \"initial\"; };\n"
           "plugins = ( { name = \"p\"; path = \"p.so\"; ops = [ \"snapshot\" ]; } );\n";
    ck_assert_msg(load_text("ops.conf", text, &c, err, path, sizeof path) == 0, "%s", err);
    ck_assert_int_eq(c.source.snapshot, WN_SNAPSHOT_INITIAL);
    ck_assert_int_eq(c.source.flush, WN_FLUSH_INTERVAL);
    wn_config_free(&c);
    text = "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ]; flush = \"commit\"; };\n"
           "plugins = ( { name = \"p\"; path = \"p.so\"; } );\n";
    ck_assert_msg(load_text("ops.conf", text, &c, err, path, sizeof path) == 0, "%s", err);
    ck_assert_int_eq(c.source.flush, WN_FLUSH_COMMIT);
    wn_config_free(&c);
}
END_TEST

/* message_prefixes keeps the prefixes as written; wn_config_wants_message matches them exactly,
 * and a block without the key receives every message. */
START_TEST(test_message_prefixes)
{
    wn_config c;
    char err[ERR_MAX] = "";
    char path[PATH_MAX];
    const char *text = "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ]; };\n"
                       "plugins = ( { name = \"p\"; path = \"p.so\"; ops = [ \"message\" ];\n"
                       "  message_prefixes = [ \"audit\", \"app.cache\" ]; },\n"
                       "  { name = \"q\"; path = \"p.so\"; ops = [ \"message\" ]; } );\n";
    const wn_plugin_config *p, *q;

    ck_assert_msg(load_text("prefixes.conf", text, &c, err, path, sizeof path) == 0, "%s", err);
    p = &c.plugins[0];
    q = &c.plugins[1];
    ck_assert_uint_eq(p->nmessage_prefixes, 2);
    ck_assert_str_eq(p->message_prefixes[0], "audit");
    ck_assert_str_eq(p->message_prefixes[1], "app.cache");
    ck_assert(wn_config_wants_message(p, "audit"));
    ck_assert(wn_config_wants_message(p, "app.cache"));
    ck_assert(!wn_config_wants_message(p, "Audit"));
    ck_assert(!wn_config_wants_message(p, "audit.x"));
    ck_assert(!wn_config_wants_message(p, "app"));
    ck_assert(!wn_config_wants_message(p, ""));
    ck_assert(!wn_config_wants_message(p, NULL));
    ck_assert_ptr_null(q->message_prefixes);
    ck_assert(wn_config_wants_message(q, "audit"));
    ck_assert(wn_config_wants_message(q, ""));
    wn_config_free(&c);
}
END_TEST

/* A relative file name: config->file stays as given, config->dir becomes absolute. */
START_TEST(test_relative_file_name)
{
    wn_config c;
    char err[ERR_MAX] = "";
    char cwd[PATH_MAX], path[PATH_MAX], expected[PATH_MAX + 64];
    const char *text = "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ]; };\n"
                       "plugins = ( { name = \"p\"; path = \"sub/p.so\"; } );\n";
    int rc;

    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    conf_path(path, sizeof path, "rel.conf");
    write_file(path, text, strlen(text));
    ck_assert_int_eq(chdir(tmpdir), 0);
    rc = wn_config_load("rel.conf", &c, err, sizeof err);
    ck_assert_int_eq(chdir(cwd), 0);
    unlink(path);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_str_eq(c.file, "rel.conf");
    ck_assert_str_eq(c.dir, realdir);
    snprintf(expected, sizeof expected, "%s/sub/p.so", realdir);
    ck_assert_str_eq(c.plugins[0].path, expected);
    wn_config_free(&c);
}
END_TEST

/* ---- one invalid file per mistake ------------------------------------------------------- */

#define SRC "source = { conninfo = \"dbname=x\"; tables = [ \"t\", \"s.u\" ]; };\n"
#define PLG "plugins = ( { name = \"p\"; path = \"p.so\"; } );\n"
#define LONG64 "a234567890123456789012345678901234567890123456789012345678901234"
#define PLUGIN_KEYS                                                                                \
    "name, path, tables, ops, message_prefixes, settings, on_error, retry_max, retry_initial_ms, " \
    "retry_max_ms, then, dead_letter"
/* A source block whose last member is on line 2, and a plugin block opening on line 2. */
#define SRC2(members)                                                                              \
    "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n" members " };\n" PLG
#define PLUG(members) SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n" members " } );\n"

typedef struct bad_case {
    const char *what;
    const char *text;
    int line;            /* 0: the message has no line */
    const char *message; /* after "FILE:LINE: " */
} bad_case;

static const bad_case bad_cases[] = {
    {"syntax error", "source = {\n  conninfo = ;\n};\n", 2, "syntax error"},
    {"mismatched array", SRC "x = [ 1,\n \"a\" ];\n" PLG, 3, "mismatched element type in array"},
    {"empty file", "", 1, "source is required"},
    {"missing source", PLG, 1, "source is required"},
    {"source not a group", "source = \"x\";\n" PLG, 1, "source must be a group"},
    {"missing conninfo", PLG "source =\n{\n  tables = [ \"t\" ];\n};\n", 2,
     "source.conninfo is required"},
    {"conninfo not a string", PLG "source = {\n conninfo = 5;\n tables = [ \"t\" ]; };\n", 3,
     "source.conninfo must be a string"},
    {"empty conninfo", PLG "source = {\n conninfo = \"\";\n tables = [ \"t\" ]; };\n", 3,
     "source.conninfo must not be empty"},
    /* conninfo: libpq's verdict, in words that quote no value of it (a password may be one) */
    {"conninfo unknown keyword",
     PLG "source = {\n conninfo = \"host=h bogus_key=1\";\n tables = [ \"t\" ]; };\n", 3,
     "source.conninfo: unknown keyword \"bogus_key\" (not a libpq connection parameter)"},
    {"conninfo unknown URI parameter",
     PLG "source = {\n conninfo = \"postgresql://h/db?sslmode=disable&nope=1\";\n tables = [ \"t\" "
         "]; };\n",
     3, "source.conninfo: unknown keyword \"nope\" (not a libpq connection parameter)"},
    {"conninfo not key=value", PLG "source = {\n conninfo = \"app\";\n tables = [ \"t\" ]; };\n", 3,
     "source.conninfo: not a valid libpq connection string or URI"},
    {"conninfo word without value",
     PLG "source = {\n conninfo = \"host=h s3cret\";\n tables = [ \"t\" ]; };\n", 3,
     "source.conninfo: not a valid libpq connection string or URI"},
    {"conninfo unterminated password",
     PLG "source = {\n conninfo = \"host=h password='s3cret\";\n tables = [ \"t\" ]; };\n", 3,
     "source.conninfo: not a valid libpq connection string or URI"},
    {"conninfo password with a space",
     PLG "source = {\n conninfo = \"host=h password=s3cret words=1\";\n tables = [ \"t\" ]; };\n",
     3, "source.conninfo: not a valid libpq connection string or URI"},
    {"conninfo URI password badly encoded",
     PLG "source = {\n conninfo = \"postgresql://app:s3cr%zzet@h/db\";\n tables = [ \"t\" ]; };\n",
     3, "source.conninfo: not a valid libpq connection string or URI"},
    {"conninfo URI unclosed IPv6 with password",
     PLG "source = {\n conninfo = \"postgresql://app:s3cret@[::1/db\";\n tables = [ \"t\" ]; };\n",
     3, "source.conninfo: not a valid libpq connection string or URI"},
    {"conninfo sets replication",
     PLG "source = {\n conninfo = \"host=h replication=database\";\n tables = [ \"t\" ]; };\n", 3,
     "source.conninfo: sets replication, which walnotify sets itself (remove it)"},
    {"conninfo URI sets replication",
     PLG "source = {\n conninfo = \"postgres://h/db?replication=true\";\n tables = [ \"t\" ]; };\n",
     3, "source.conninfo: sets replication, which walnotify sets itself (remove it)"},
    {"conninfo sets replication off",
     PLG "source = {\n conninfo = \"dbname=x replication=false\";\n tables = [ \"t\" ]; };\n", 3,
     "source.conninfo: sets replication, which walnotify sets itself (remove it)"},
    {"missing tables", PLG "source = {\n conninfo = \"dbname=x\"; };\n", 2,
     "source.tables is required"},
    {"tables not a list", PLG "source = { conninfo = \"dbname=x\";\n tables = \"t\"; };\n", 3,
     "source.tables must be a list of strings"},
    {"table not a string",
     PLG "source = { conninfo = \"dbname=x\";\n tables = ( \"t\",\n 5 ); };\n", 4,
     "source.tables must be a list of strings"},
    {"empty tables", PLG "source = { conninfo = \"dbname=x\";\n tables = [ ]; };\n", 3,
     "source.tables must name at least one table"},
    {"duplicate table",
     PLG "source = { conninfo = \"dbname=x\";\n tables = ( \"t\",\n \"public.t\" ); };\n", 4,
     "source.tables: \"public.t\" is listed twice"},
    {"table ends with dot", PLG "source = { conninfo = \"dbname=x\";\n tables = [ \"s.\" ]; };\n",
     3,
     "source.tables: \"s.\" is not a table name (expected \"schema.name\" or \"name\", each 1 to "
     "63 bytes)"},
    {"table starts with dot", PLG "source = { conninfo = \"dbname=x\";\n tables = [ \".t\" ]; };\n",
     3,
     "source.tables: \".t\" is not a table name (expected \"schema.name\" or \"name\", each 1 to "
     "63 bytes)"},
    {"empty table", PLG "source = { conninfo = \"dbname=x\";\n tables = [ \"\" ]; };\n", 3,
     "source.tables: \"\" is not a table name (expected \"schema.name\" or \"name\", each 1 to "
     "63 bytes)"},
    {"table name too long",
     PLG "source = { conninfo = \"dbname=x\";\n tables = [ \"" LONG64 "\" ]; };\n", 3,
     "source.tables: \"" LONG64 "\" is not a table name (expected \"schema.name\" or \"name\", "
     "each 1 to 63 bytes)"},
    {"table with newline",
     PLG "source = { conninfo = \"dbname=x\";\n tables = [ \"a.\\n\", \"a.\\n\" ]; };\n", 3,
     "source.tables: \"a.\\x0a\" is listed twice"},
    {"unknown key in source",
     PLG "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n  slots = \"a\"; };\n", 3,
     "unknown setting \"slots\" in source (expected conninfo, tables, slot, publication, "
     "status_interval_ms, state_file, reconnect_initial_ms, reconnect_max_ms, "
     "receive_timeout_ms, progress_interval_ms, snapshot, flush)"},
    {"unknown key after source", PLG SRC "source2 = 1;\n", 3,
     "unknown setting \"source2\" (expected source, plugins, log_level, stop_timeout_ms, metrics_listen)"},
    {"slot wrong type",
     PLG "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n slot = 1; };\n", 3,
     "source.slot must be a string"},
    {"slot upper case",
     PLG "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n slot = \"Slot\"; };\n", 3,
     "source.slot \"Slot\" is not a valid slot name (1 to 63 lower-case letters, digits or "
     "underscores)"},
    {"slot too long",
     PLG "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n slot = \"" LONG64 "\"; };\n", 3,
     "source.slot \"" LONG64 "\" is not a valid slot name (1 to 63 lower-case letters, digits or "
     "underscores)"},
    {"slot hyphen",
     PLG "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n slot = \"a-b\"; };\n", 3,
     "source.slot \"a-b\" is not a valid slot name (1 to 63 lower-case letters, digits or "
     "underscores)"},
    {"slot empty",
     PLG "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n slot = \"\"; };\n", 3,
     "source.slot \"\" is not a valid slot name (1 to 63 lower-case letters, digits or "
     "underscores)"},
    {"publication wrong type",
     PLG "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n publication = true; };\n", 3,
     "source.publication must be a string"},
    {"publication empty",
     PLG "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n publication = \"\"; };\n", 3,
     "source.publication \"\" must be 1 to 63 bytes"},
    {"publication too long",
     PLG "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n publication = \"" LONG64
         "\"; };\n",
     3, "source.publication \"" LONG64 "\" must be 1 to 63 bytes"},
    {"status interval wrong type",
     PLG
     "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n status_interval_ms = \"1s\"; };\n",
     3, "source.status_interval_ms must be an integer"},
    {"status interval float",
     PLG
     "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n status_interval_ms = 100.0; };\n",
     3, "source.status_interval_ms must be an integer"},
    {"status interval too small",
     PLG "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n status_interval_ms = 99; };\n",
     3, "source.status_interval_ms must be between 100 and 60000 (got 99)"},
    {"status interval too large",
     PLG
     "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n status_interval_ms = 60001L; };\n",
     3, "source.status_interval_ms must be between 100 and 60000 (got 60001)"},
    {"unknown top-level key", SRC PLG "\nverbose = true;\n", 4,
     "unknown setting \"verbose\" (expected source, plugins, log_level, stop_timeout_ms, metrics_listen)"},
    {"metrics_listen without port", SRC PLG "metrics_listen = \"127.0.0.1\";\n", 3,
     "metrics_listen \"127.0.0.1\" is not an address to listen on (expected \"IPv4:PORT\" or "
     "\"[IPv6]:PORT\", PORT 1 to 65535, e.g. \"127.0.0.1:9781\")"},
    {"metrics_listen host name", SRC PLG "metrics_listen = \"localhost:9781\";\n", 3,
     "metrics_listen \"localhost:9781\" is not an address to listen on (expected \"IPv4:PORT\" "
     "or \"[IPv6]:PORT\", PORT 1 to 65535, e.g. \"127.0.0.1:9781\")"},
    {"metrics_listen port 0", SRC PLG "metrics_listen = \"127.0.0.1:0\";\n", 3,
     "metrics_listen \"127.0.0.1:0\" is not an address to listen on (expected \"IPv4:PORT\" or "
     "\"[IPv6]:PORT\", PORT 1 to 65535, e.g. \"127.0.0.1:9781\")"},
    {"metrics_listen port too large", SRC PLG "metrics_listen = \"[::1]:65536\";\n", 3,
     "metrics_listen \"[::1]:65536\" is not an address to listen on (expected \"IPv4:PORT\" or "
     "\"[IPv6]:PORT\", PORT 1 to 65535, e.g. \"127.0.0.1:9781\")"},
    {"metrics_listen bare IPv6", SRC PLG "metrics_listen = \"::1:9781\";\n", 3,
     "metrics_listen \"::1:9781\" is not an address to listen on (expected \"IPv4:PORT\" or "
     "\"[IPv6]:PORT\", PORT 1 to 65535, e.g. \"127.0.0.1:9781\")"},
    {"metrics_listen wrong type", SRC PLG "metrics_listen = 9781;\n", 3,
     "metrics_listen must be a string"},
    {"log_level wrong type", SRC PLG "log_level = 3;\n", 3, "log_level must be a string"},
    {"log_level unknown", SRC PLG "log_level = \"verbose\";\n", 3,
     "log_level \"verbose\" is not one of debug, info, warning, error"},
    {"no plugins", SRC, 1, "plugins is required"},
    {"empty plugins list", SRC "plugins = ( );\n", 2, "plugins must list at least one plugin"},
    {"empty plugins array", SRC "plugins = [ ];\n", 2, "plugins must list at least one plugin"},
    {"plugins a group", SRC "plugins = { name = \"p\"; path = \"p.so\"; };\n", 2,
     "plugins must be a list of groups"},
    {"plugins an array", SRC "plugins = [ \"p\" ];\n", 2, "plugins must be a list of groups"},
    {"plugin not a group", SRC "plugins = ( { name = \"p\"; path = \"p.so\"; },\n \"q\" );\n", 3,
     "plugins[1] must be a group"},
    {"unknown key in plugin",
     SRC "plugins = ( {\n name = \"p\"; path = \"p.so\";\n setting = 1; } );\n", 4,
     "unknown setting \"setting\" in plugin \"p\" (expected " PLUGIN_KEYS ")"},
    {"unknown key in unnamed plugin", SRC "plugins = ( {\n path = \"p.so\";\n nmae = \"p\"; } );\n",
     4, "unknown setting \"nmae\" in plugins[0] (expected " PLUGIN_KEYS ")"},
    {"missing plugin name", SRC "plugins = ( { path = \"p.so\"; },\n { path = \"q.so\"; } );\n", 2,
     "plugins[0].name is required"},
    {"plugin name wrong type", SRC "plugins = (\n { name = 1; path = \"p.so\"; } );\n", 3,
     "plugins[0].name must be a string"},
    {"plugin name empty",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\"; },\n { name = \"\"; } );\n", 3,
     "plugins[1].name must be 1 to 63 bytes"},
    {"plugin name too long", SRC "plugins = ( { name = \"" LONG64 "\"; path = \"p.so\"; } );\n", 2,
     "plugins[0].name must be 1 to 63 bytes"},
    {"duplicate plugin names",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\"; },\n\n { name = \"p\";\n path = \"q.so\"; } "
         ");\n",
     4, "plugin \"p\" is defined twice (first at line 2)"},
    {"missing plugin path", SRC "plugins = (\n { name = \"p\"; } );\n", 3,
     "plugin \"p\": path is required"},
    {"plugin path wrong type", SRC "plugins = ( { name = \"p\";\n path = [ \"p.so\" ]; } );\n", 3,
     "plugin \"p\": path must be a string"},
    {"plugin path empty", SRC "plugins = ( { name = \"p\";\n path = \"\"; } );\n", 3,
     "plugin \"p\": path must not be empty"},
    {"plugin tables wrong type",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n tables = \"t\"; } );\n", 3,
     "plugin \"p\": tables must be a list of strings"},
    {"plugin table not a string",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n tables = [ 1 ]; } );\n", 3,
     "plugin \"p\": tables must be a list of strings"},
    {"plugin table not in source",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n tables = ( \"t\",\n \"s.t\" ); } );\n", 4,
     "plugin \"p\": table \"s.t\" is not in source.tables"},
    {"plugin table bare name not in source",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n tables = [ \"u\" ]; } );\n", 3,
     "plugin \"p\": table \"public.u\" is not in source.tables"},
    {"plugin table bad name",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n tables = [ \"s.\" ]; } );\n", 3,
     "plugin \"p\": \"s.\" is not a table name (expected \"schema.name\" or \"name\", each 1 to 63 "
     "bytes)"},
    {"plugin table twice",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n tables = [ \"t\", \"public.t\" ]; } );\n",
     3, "plugin \"p\": table \"public.t\" is listed twice"},
    {"plugin tables empty",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n tables = [ ]; } );\n", 3,
     "plugin \"p\": tables must name at least one table"},
    {"ops wrong type",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n ops = \"insert\"; } );\n", 3,
     "plugin \"p\": ops must be a list of strings"},
    {"op not a string",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n ops = ( \"insert\",\n 1 ); } );\n", 4,
     "plugin \"p\": ops must be a list of strings"},
    {"unknown op",
     SRC
     "plugins = ( { name = \"p\"; path = \"p.so\";\n ops = [ \"insert\",\n \"upsert\" ]; } );\n",
     4,
     "plugin \"p\": unknown operation \"upsert\" in ops (expected insert, update, delete, "
     "truncate, snapshot, message)"},
    {"op upper case",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n ops = [ \"INSERT\" ]; } );\n", 3,
     "plugin \"p\": unknown operation \"INSERT\" in ops (expected insert, update, delete, "
     "truncate, snapshot, message)"},
    {"duplicate op",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n ops = [ \"delete\", \"insert\", "
         "\"delete\" ]; } );\n",
     3, "plugin \"p\": operation \"delete\" is listed twice in ops"},
    {"empty ops", SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n ops = ( ); } );\n", 3,
     "plugin \"p\": ops must name at least one operation"},
    {"message_prefixes without message in ops",
     PLUG(" ops = [ \"insert\" ];\n message_prefixes = [ \"a\" ];"), 4,
     "plugin \"p\": message_prefixes applies only when ops lists \"message\""},
    {"message_prefixes with default ops", PLUG(" message_prefixes = [ \"a\" ];"), 3,
     "plugin \"p\": message_prefixes applies only when ops lists \"message\""},
    {"message_prefixes wrong type", PLUG(" ops = [ \"message\" ];\n message_prefixes = \"a\";"), 4,
     "plugin \"p\": message_prefixes must be a list of strings"},
    {"message prefix not a string",
     PLUG(" ops = [ \"message\" ];\n message_prefixes = ( \"a\",\n 1 );"), 5,
     "plugin \"p\": message_prefixes must be a list of strings"},
    {"message_prefixes empty", PLUG(" ops = [ \"message\" ];\n message_prefixes = [ ];"), 4,
     "plugin \"p\": message_prefixes must name at least one prefix (leave \"message\" out of "
     "ops to receive none)"},
    {"empty message prefix",
     PLUG(" ops = [ \"message\" ];\n message_prefixes = ( \"a\",\n \"\" );"), 5,
     "plugin \"p\": message_prefixes: a prefix must not be empty"},
    {"message prefix twice",
     PLUG(" ops = [ \"message\" ];\n message_prefixes = ( \"a\", \"b\",\n \"a\" );"), 5,
     "plugin \"p\": message_prefixes: prefix \"a\" is listed twice"},
    {"settings not a group",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n settings = ( \"fsync\" ); } );\n", 3,
     "plugin \"p\": settings must be a group"},
    {"settings a string",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\";\n settings = \"x\"; } );\n", 3,
     "plugin \"p\": settings must be a group"},
    {"second plugin error names it",
     SRC "plugins = ( { name = \"p\"; path = \"p.so\"; },\n { name = \"q\"; path = \"q.so\";\n ops "
         "= []; } );\n",
     4, "plugin \"q\": ops must name at least one operation"},
    {"duplicate key", SRC PLG "log_level = \"info\";\nlog_level = \"debug\";\n", 4,
     "duplicate setting name"},

    /* source: progress file, reconnection and receive timeout */
    {"state_file wrong type", SRC2(" state_file = 1;"), 2, "source.state_file must be a string"},
    {"state_file empty", SRC2(" state_file = \"\";"), 2, "source.state_file must not be empty"},
    {"state_file dash", SRC2(" state_file = \"-\";"), 2,
     "source.state_file must name a file, not \"-\""},
    {"reconnect_initial_ms wrong type", SRC2(" reconnect_initial_ms = \"1s\";"), 2,
     "source.reconnect_initial_ms must be an integer"},
    {"reconnect_initial_ms too small", SRC2(" reconnect_initial_ms = 9;"), 2,
     "source.reconnect_initial_ms must be between 10 and 3600000 (got 9)"},
    {"reconnect_initial_ms too large", SRC2(" reconnect_initial_ms = 3600001;"), 2,
     "source.reconnect_initial_ms must be between 10 and 3600000 (got 3600001)"},
    {"reconnect_max_ms too large", SRC2(" reconnect_max_ms = 5000000000L;"), 2,
     "source.reconnect_max_ms must be between 10 and 3600000 (got 5000000000)"},
    {"reconnect_max_ms below initial",
     "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ];\n reconnect_max_ms = 200;\n"
     " reconnect_initial_ms = 300; };\n" PLG,
     2, "source.reconnect_max_ms (200) must not be less than source.reconnect_initial_ms (300)"},
    {"reconnect_max_ms below default initial", SRC2(" reconnect_max_ms = 500;"), 2,
     "source.reconnect_max_ms (500) must not be less than source.reconnect_initial_ms (1000)"},
    {"reconnect_initial_ms above default max", SRC2(" reconnect_initial_ms = 70000;"), 2,
     "source.reconnect_max_ms (60000) must not be less than source.reconnect_initial_ms (70000)"},
    {"receive_timeout_ms too small", SRC2(" receive_timeout_ms = 999;"), 2,
     "source.receive_timeout_ms must be between 1000 and 3600000 (got 999)"},
    {"receive_timeout_ms float", SRC2(" receive_timeout_ms = 5000.0;"), 2,
     "source.receive_timeout_ms must be an integer"},
    {"snapshot initial without state_file", SRC2(" snapshot = \"initial\";"), 2,
     "source.snapshot = \"initial\" needs source.state_file: the file records whether the "
     "snapshot finished"},
    {"snapshot unknown", SRC2(" snapshot = \"always\";"), 2,
     "source.snapshot \"always\" is not one of never, initial"},
    {"flush unknown", SRC2(" flush = \"always\";"), 2,
     "source.flush \"always\" is not one of interval, commit"},
    {"progress_interval_ms too small", SRC2(" progress_interval_ms = 999;"), 2,
     "source.progress_interval_ms must be between 1000 and 86400000 (got 999)"},
    {"progress_interval_ms a string", SRC2(" progress_interval_ms = \"60s\";"), 2,
     "source.progress_interval_ms must be an integer"},
    {"receive_timeout_ms not above status interval",
     SRC2(" status_interval_ms = 2000; receive_timeout_ms = 2000;"), 2,
     "source.receive_timeout_ms (2000) must be greater than source.status_interval_ms (2000)"},
    {"status interval above default receive timeout", SRC2(" status_interval_ms = 40000;"), 2,
     "source.receive_timeout_ms (30000) must be greater than source.status_interval_ms (40000)"},

    /* plugins: failure policy */
    {"on_error wrong type", PLUG(" on_error = 1;"), 3, "plugin \"p\": on_error must be a string"},
    {"on_error unknown", PLUG(" on_error = \"ignore\";"), 3,
     "plugin \"p\": on_error \"ignore\" is not one of retry, skip, stop"},
    {"on_error upper case", PLUG(" on_error = \"STOP\";"), 3,
     "plugin \"p\": on_error \"STOP\" is not one of retry, skip, stop"},
    {"then retry", PLUG(" then = \"retry\";"), 3,
     "plugin \"p\": then \"retry\" is not one of skip, stop"},
    {"then wrong type", PLUG(" then = [ \"skip\" ];"), 3, "plugin \"p\": then must be a string"},
    {"then without retry", PLUG(" on_error = \"stop\";\n then = \"stop\";"), 4,
     "plugin \"p\": then applies only when on_error is \"retry\" (it is \"stop\")"},
    {"retry_max without retry", PLUG(" on_error = \"skip\"; dead_letter = \"d\";\n retry_max = 3;"),
     4, "plugin \"p\": retry_max applies only when on_error is \"retry\" (it is \"skip\")"},
    {"retry_max negative", PLUG(" retry_max = -1;"), 3,
     "plugin \"p\": retry_max must be 0 or more (got -1)"},
    {"retry_max too large", PLUG(" retry_max = 3000000000L;"), 3,
     "plugin \"p\": retry_max must be between 0 and 2147483647 (got 3000000000)"},
    {"retry_max wrong type", PLUG(" retry_max = \"3\";"), 3,
     "plugin \"p\": retry_max must be an integer"},
    {"retry_initial_ms zero", PLUG(" retry_initial_ms = 0;"), 3,
     "plugin \"p\": retry_initial_ms must be between 1 and 3600000 (got 0)"},
    {"retry_max_ms too large", PLUG(" retry_max_ms = 3600001;"), 3,
     "plugin \"p\": retry_max_ms must be between 1 and 3600000 (got 3600001)"},
    {"retry_max_ms below initial", PLUG(" retry_initial_ms = 500;\n retry_max_ms = 400;"), 4,
     "plugin \"p\": retry_max_ms (400) must not be less than retry_initial_ms (500)"},
    {"retry_initial_ms above default max", PLUG(" retry_initial_ms = 60000;"), 3,
     "plugin \"p\": retry_max_ms (30000) must not be less than retry_initial_ms (60000)"},
    {"dead_letter missing for on_error skip", PLUG(" on_error = \"skip\";"), 3,
     "plugin \"p\": dead_letter is required when on_error is \"skip\""},
    {"dead_letter missing for then skip", PLUG(" retry_max = 2;\n then = \"skip\";"), 4,
     "plugin \"p\": dead_letter is required when then is \"skip\""},
    {"dead_letter without skipping", PLUG(" retry_max = 2;\n dead_letter = \"d.jsonl\";"), 4,
     "plugin \"p\": dead_letter is only used when on_error or then is \"skip\""},
    {"dead_letter empty", PLUG(" on_error = \"skip\";\n dead_letter = \"\";"), 4,
     "plugin \"p\": dead_letter must not be empty"},
    {"dead_letter dash", PLUG(" on_error = \"skip\";\n dead_letter = \"-\";"), 4,
     "plugin \"p\": dead_letter must name a file, not \"-\""},
    {"dead_letter wrong type", PLUG(" on_error = \"skip\";\n dead_letter = true;"), 4,
     "plugin \"p\": dead_letter must be a string"},
};

START_TEST(test_bad_file)
{
    const bad_case *bc = &bad_cases[_i];
    wn_config c;
    char err[ERR_MAX] = "";
    char path[PATH_MAX], expected[PATH_MAX + ERR_MAX];

    memset(&c, 0xA5, sizeof c); /* the loader must zero it whatever it held */
    ck_assert_msg(load_text("bad.conf", bc->text, &c, err, path, sizeof path) == -1, "%s: accepted",
                  bc->what);
    ck_assert_msg(is_zeroed(&c), "%s: config not zeroed", bc->what);
    if (bc->line > 0)
        snprintf(expected, sizeof expected, "%s:%d: %s", path, bc->line, bc->message);
    else
        snprintf(expected, sizeof expected, "%s: %s", path, bc->message);
    ck_assert_msg(strcmp(err, expected) == 0, "%s:\n got      %s\n expected %s", bc->what, err,
                  expected);
    wn_config_free(&c);
}
END_TEST

/* Both forms libpq takes, and a conninfo that leaves everything to libpq's defaults. */
START_TEST(test_conninfo_forms)
{
    static const char *const accepted[] = {
        "host=/run/postgresql port=5433 dbname='my db' user=app password='s p\\\\ce'",
        "postgresql://app:s3cret@db.example:5433/shop?sslmode=disable&application_name=x",
        "postgres:///shop",
        "  ",
    };
    char text[512], err[ERR_MAX] = "", path[PATH_MAX];
    wn_config c;

    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        snprintf(text, sizeof text, "source = { conninfo = \"%s\"; tables = [ \"t\" ]; };\n" PLG,
                 accepted[i]);
        ck_assert_msg(load_text("forms.conf", text, &c, err, path, sizeof path) == 0, "%s: %s",
                      accepted[i], err);
        wn_config_free(&c);
    }
}
END_TEST

START_TEST(test_unreadable)
{
    wn_config c;
    char err[ERR_MAX] = "";
    char path[PATH_MAX], expected[PATH_MAX + ERR_MAX];

    conf_path(path, sizeof path, "does-not-exist.conf");
    ck_assert_int_eq(wn_config_load(path, &c, err, sizeof err), -1);
    ck_assert(is_zeroed(&c));
    snprintf(expected, sizeof expected, "%s: cannot read: No such file or directory", path);
    ck_assert_str_eq(err, expected);

    ck_assert_int_eq(wn_config_load(tmpdir, &c, err, sizeof err), -1);
    ck_assert(is_zeroed(&c));
    snprintf(expected, sizeof expected, "%s: cannot read: Is a directory", tmpdir);
    ck_assert_str_eq(err, expected);
}
END_TEST

/* Loads path, which must be refused naming the configuration (as given) and then why. */
static void assert_refused(const char *path, const char *why)
{
    wn_config c;
    char err[ERR_MAX] = "", expected[ERR_MAX];

    ck_assert_int_eq(wn_config_load(path, &c, err, sizeof err), -1);
    ck_assert(is_zeroed(&c));
    snprintf(expected, sizeof expected,
             "%s: refused: %s (set WALNOTIFY_ALLOW_UNSAFE_PATHS=1 to allow this in a development "
             "tree)",
             path, why);
    ck_assert_str_eq(err, expected);
}

static void assert_loads(const char *path)
{
    wn_config c;
    char err[ERR_MAX] = "";

    ck_assert_msg(wn_config_load(path, &c, err, sizeof err) == 0, "%s", err);
    wn_config_free(&c);
}

/* Every file of a configuration, password or not, names what walnotify runs, where it sends and
 * what it writes: one that another user could change is refused, included files too. */
START_TEST(test_untrusted_files_refused)
{
    const char *text = "source = { conninfo = \"dbname=x\"; tables = [ \"t\" ]; };\n"
                       "@include \"inc.part\"\n";
    const char *included = "plugins = ( { name = \"p\"; path = \"p.so\"; } );\n";
    char path[PATH_MAX], inc[PATH_MAX], real[PATH_MAX], why[PATH_MAX + 256];
    char sub[PATH_MAX], link[PATH_MAX], linked[PATH_MAX];
    uid_t uid;
    gid_t gid;

    conf_path(path, sizeof path, "plain.conf");
    write_file(path, text, strlen(text));
    conf_path(inc, sizeof inc, "inc.part");
    write_file(inc, included, strlen(included));
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(chmod(inc, 0644), 0);
    assert_loads(path);

    ck_assert_int_eq(chmod(path, 0666), 0);
    snprintf(why, sizeof why, "file %s/plain.conf is writable by everyone (mode 0666)", realdir);
    assert_refused(path, why);
    ck_assert_int_eq(setenv("WALNOTIFY_ALLOW_UNSAFE_PATHS", "1", 1), 0);
    assert_loads(path);
    ck_assert_int_eq(unsetenv("WALNOTIFY_ALLOW_UNSAFE_PATHS"), 0);
    ck_assert_int_eq(chmod(path, 0644), 0);

    ck_assert_int_eq(chmod(inc, 0620), 0);
    snprintf(why, sizeof why, "file %s/inc.part is writable by its group (mode 0620)", realdir);
    assert_refused(path, why);
    ck_assert_int_eq(chmod(inc, 0644), 0);

    /* The folders on the way count as well: a sticky one holding a link another user owns. */
    conf_path(sub, sizeof sub, "st");
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_int_eq(chmod(sub, 01777), 0);
    conf_path(link, sizeof link, "st/up");
    ck_assert_int_eq(symlink("..", link), 0);
    conf_path(linked, sizeof linked, "st/up/plain.conf");
    assert_loads(linked);
    if (unit_other_user("test_untrusted_files_refused", &uid, &gid)) {
        ck_assert_int_eq(lchown(link, uid, gid), 0);
        ck_assert_ptr_nonnull(realpath(sub, real));
        snprintf(why, sizeof why,
                 "link %s/up is owned by uid %u, not by root or by the user walnotify runs as "
                 "(uid 0)",
                 real, (unsigned)uid);
        assert_refused(linked, why);
        ck_assert_int_eq(chown(path, uid, gid), 0);
        snprintf(why, sizeof why,
                 "file %s/plain.conf is owned by uid %u, not by root or by the user walnotify "
                 "runs as (uid 0)",
                 realdir, (unsigned)uid);
        assert_refused(path, why);
    }
    unlink(link);
    rmdir(sub);
    unlink(inc);
    unlink(path);
}
END_TEST

/* libconfig would silently stop at a NUL byte; the rest of the file must not vanish unnoticed. */
START_TEST(test_nul_byte)
{
    static const char text[] = SRC "\n# x\0y\n" PLG;
    wn_config c;
    char err[ERR_MAX] = "";
    char path[PATH_MAX], expected[PATH_MAX + ERR_MAX];

    conf_path(path, sizeof path, "nul.conf");
    write_file(path, text, sizeof text - 1);
    ck_assert_int_eq(wn_config_load(path, &c, err, sizeof err), -1);
    unlink(path);
    ck_assert(is_zeroed(&c));
    snprintf(expected, sizeof expected, "%s:3: NUL byte in the file", path);
    ck_assert_str_eq(err, expected);
}
END_TEST

/* A small error buffer truncates the message but never overflows; NULL is allowed. */
START_TEST(test_small_error_buffer)
{
    wn_config c;
    char err[8];
    char path[PATH_MAX];

    memset(err, 'x', sizeof err);
    conf_path(path, sizeof path, "missing.conf");
    ck_assert_int_eq(wn_config_load(path, &c, err, 5), -1);
    ck_assert_uint_eq(strlen(err), 4);
    ck_assert_int_eq(err[5], 'x');
    ck_assert_int_eq(wn_config_load(path, &c, NULL, 0), -1);
    ck_assert(is_zeroed(&c));
}
END_TEST

/* ---- helpers ---------------------------------------------------------------------------- */

/* Each accepted form of metrics_listen, as the endpoint will bind it. */
START_TEST(test_metrics_listen)
{
    struct sockaddr_storage addr;
    socklen_t len;

    ck_assert(wn_config_listen_address("127.0.0.1:9781", &addr, &len));
    ck_assert_int_eq(addr.ss_family, AF_INET);
    ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&addr)->sin_port), 9781);
    ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&addr)->sin_addr.s_addr), INADDR_LOOPBACK);
    ck_assert(wn_config_listen_address("0.0.0.0:1", &addr, &len));
    ck_assert(wn_config_listen_address("[::1]:65535", &addr, &len));
    ck_assert_int_eq(addr.ss_family, AF_INET6);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
    ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&addr)->sin6_port), 65535);
    ck_assert(!wn_config_listen_address(":9781", &addr, &len));
    ck_assert(!wn_config_listen_address("127.0.0.1:97x1", &addr, &len));
    ck_assert(!wn_config_listen_address("127.0.0.1:", &addr, &len));
    ck_assert(!wn_config_listen_address("127.0.0.1:+9781", &addr, &len));
    ck_assert(!wn_config_listen_address("[::1:9781", &addr, &len));
}
END_TEST

START_TEST(test_valid_slot_name)
{
    ck_assert(wn_config_valid_slot_name("walnotify"));
    ck_assert(wn_config_valid_slot_name("a_1"));
    ck_assert(wn_config_valid_slot_name("_"));
    ck_assert(wn_config_valid_slot_name(LONG64 + 1)); /* 63 characters */
    ck_assert(!wn_config_valid_slot_name(LONG64));
    ck_assert(!wn_config_valid_slot_name(""));
    ck_assert(!wn_config_valid_slot_name(NULL));
    ck_assert(!wn_config_valid_slot_name("Slot"));
    ck_assert(!wn_config_valid_slot_name("a-b"));
    ck_assert(!wn_config_valid_slot_name("a.b"));
    ck_assert(!wn_config_valid_slot_name("a b"));
    ck_assert(!wn_config_valid_slot_name("\xc3\xa9"));
}
END_TEST

/* ---- mangled files ---------------------------------------------------------------------- */

/* "PATH:LINE: text" or "PATH: text", one line. */
static void assert_message_shape(const char *path, const char *err, const char *what, size_t at)
{
    size_t plen = strlen(path);
    const char *rest = err + plen;

    ck_assert_msg(strncmp(err, path, plen) == 0, "%s at %zu: %s", what, at, err);
    ck_assert_msg(strchr(err, '\n') == NULL, "%s at %zu: newline in %s", what, at, err);
    ck_assert_msg(rest[0] == ':', "%s at %zu: %s", what, at, err);
    rest++;
    if (rest[0] >= '0' && rest[0] <= '9') {
        rest += strspn(rest, "0123456789");
        ck_assert_msg(rest[0] == ':', "%s at %zu: %s", what, at, err);
        rest++;
    }
    ck_assert_msg(rest[0] == ' ' && rest[1] != '\0', "%s at %zu: %s", what, at, err);
}

static void load_mangled(const char *path, const char *text, size_t len, const char *what,
                         size_t at)
{
    wn_config c;
    char err[ERR_MAX];

    write_file(path, text, len);
    err[0] = '\0';
    if (wn_config_load(path, &c, err, sizeof err) == 0) {
        ck_assert_ptr_nonnull(c.source.conninfo);
        ck_assert_uint_ge(c.nplugins, 1);
        ck_assert_uint_ge(c.source.ntables, 1);
        wn_config_free(&c);
        return;
    }
    ck_assert_msg(is_zeroed(&c), "%s at %zu: config not zeroed", what, at);
    assert_message_shape(path, err, what, at);
}

START_TEST(test_mangled)
{
    static const char odd[] = {'\0', '\n', '"', '{', ';', '\\', '(', '#', '\xff', '.', '-'};
    size_t len = strlen(full_text);
    char path[PATH_MAX];
    char *copy = malloc(len + 1);

    ck_assert_ptr_nonnull(copy);
    conf_path(path, sizeof path, "mangled.conf");
    for (size_t at = 0; at <= len; at++)
        load_mangled(path, full_text, at, "truncated", at);
    for (size_t at = 0; at < len; at++) {
        for (size_t k = 0; k < sizeof odd; k++) {
            memcpy(copy, full_text, len + 1);
            copy[at] = odd[k];
            load_mangled(path, copy, len, "replaced", at);
        }
    }
    unlink(path);
    free(copy);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    TCase *fuzz = tcase_create("mangled");

    tcase_add_test(tc, test_full_file);
    tcase_add_test(tc, test_minimal_file);
    tcase_add_test(tc, test_defaults_match_file);
    tcase_add_test(tc, test_ops_snapshot_message);
    tcase_add_test(tc, test_message_prefixes);
    tcase_add_test(tc, test_relative_file_name);
    tcase_add_test(tc, test_conninfo_forms);
    tcase_add_loop_test(tc, test_bad_file, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_unreadable);
    tcase_add_test(tc, test_untrusted_files_refused);
    tcase_add_test(tc, test_nul_byte);
    tcase_add_test(tc, test_small_error_buffer);
    tcase_add_test(tc, test_valid_slot_name);
    tcase_add_test(tc, test_metrics_listen);
    suite_add_tcase(s, tc);

    tcase_add_test(fuzz, test_mangled);
    tcase_set_timeout(fuzz, 300);
    suite_add_tcase(s, fuzz);
    return s;
}

int main(void)
{
    int failed;

    snprintf(tmpdir, sizeof tmpdir, "%s/walnotify-config-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmpdir) == NULL || realpath(tmpdir, realdir) == NULL) {
        fprintf(stderr, "test_config: cannot create a temporary folder: %s\n", strerror(errno));
        return 1;
    }
    failed = run_suite(config_suite());
    if (rmdir(tmpdir) != 0)
        fprintf(stderr, "test_config: %s left behind: %s\n", tmpdir, strerror(errno));
    return failed == 0 ? 0 : 1;
}
