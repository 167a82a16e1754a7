/* itest_ctx: a test's database, slot, folder and configuration files; see itest_ctx.h. */
#include "itest_ctx.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest_sql.h"
#include "itest_time.h"

void itest_begin(itest_ctx *ctx, const char *name)
{
    PGconn *admin;
    char tmpl[] = "/tmp/walnotify-itest.XXXXXX";
    unsigned nonce = (unsigned)(itest_now_ms() % 100000);

    memset(ctx, 0, sizeof *ctx);
    itest_env("WN_TEST_PGDIR");
    itest_env("WN_ROOT");
    ck_assert_msg(strlen(name) <= 24, "test name too long: %s", name);
    snprintf(ctx->db, sizeof ctx->db, "wn_%s_%d_%u", name, (int)getpid(), nonce);
    snprintf(ctx->slot, sizeof ctx->slot, "s_%s_%d_%u", name, (int)getpid(), nonce);
    snprintf(ctx->pub, sizeof ctx->pub, "p_%s_%d_%u", name, (int)getpid(), nonce);
    ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(ctx->dir, sizeof ctx->dir, "%s", tmpl);
    snprintf(ctx->conninfo, sizeof ctx->conninfo, "host=%s port=%s user=%s dbname=%s",
             itest_env("PGHOST"), itest_env("PGPORT"), itest_env("PGUSER"), ctx->db);

    admin = itest_connect("postgres", NULL);
    itest_exec(admin, "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' "
                      "LC_CTYPE 'C'",
               ctx->db);
    PQfinish(admin);
    ctx->conn = itest_connect(ctx->db, NULL);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void itest_end(itest_ctx *ctx)
{
    PGconn *admin = itest_connect("postgres", NULL);
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    if (ctx->conn != NULL)
        PQfinish(ctx->conn);
    ctx->conn = NULL;
    /* A walsender lingers a moment after its client is gone. */
    while (itest_query_int(admin,
                           "SELECT count(*) FROM pg_replication_slots WHERE database = '%s' AND "
                           "active",
                           ctx->db) > 0) {
        ck_assert_msg(!itest_expired(&deadline), "a slot of %s stays active", ctx->db);
        itest_sleep_ms(ITEST_POLL_MS);
    }
    itest_exec(admin, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                      "WHERE database = '%s'",
               ctx->db);
    itest_exec(admin, "DROP DATABASE %s WITH (FORCE)", ctx->db);
    PQfinish(admin);
    if (getenv("WN_ITEST_KEEP") != NULL) {
        fprintf(stderr, "itest: kept %s\n", ctx->dir);
        return;
    }
    nftw(ctx->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

itest_path itest_file(const itest_ctx *ctx, const char *name)
{
    itest_path path;

    ck_assert_msg(snprintf(path.s, sizeof path.s, "%s/%s", ctx->dir, name) < (int)sizeof path.s,
                  "path too long: %s", name);
    return path;
}

/* The configuration file of itest_config, with source_extra ("" for none) ending the source. */
static itest_path write_config(const itest_ctx *ctx, const char *name, const char *tables,
                               int status_interval_ms, const char *source_extra,
                               const char *format, va_list args)
{
    itest_path path = itest_file(ctx, name);
    FILE *f = fopen(path.s, "w");

    ck_assert_msg(f != NULL, "cannot create %s: %s", path.s, strerror(errno));
    fprintf(f,
            "log_level = \"debug\";\n"
            "source:\n{\n"
            "  conninfo = \"%s\";\n"
            "  tables = [ %s ];\n"
            "  slot = \"%s\";\n"
            "  publication = \"%s\";\n"
            "  status_interval_ms = %d;\n",
            ctx->conninfo, tables, ctx->slot, ctx->pub, status_interval_ms);
    /* Only when there is one: tests quote the lines of the plugins' blocks (file:line). */
    if (source_extra[0] != '\0')
        fprintf(f, "  %s\n", source_extra);
    fprintf(f, "};\nplugins =\n(\n");
    vfprintf(f, format, args);
    fprintf(f, "\n);\n");
    ck_assert_msg(fclose(f) == 0, "cannot write %s", path.s);
    return path;
}

itest_path itest_config(const itest_ctx *ctx, const char *name, const char *tables,
                        int status_interval_ms, const char *format, ...)
{
    va_list args;
    itest_path path;

    va_start(args, format);
    path = write_config(ctx, name, tables, status_interval_ms, "", format, args);
    va_end(args);
    return path;
}

itest_path itest_config_extra(const itest_ctx *ctx, const char *name, const char *tables,
                              int status_interval_ms, const char *source_extra,
                              const char *format, ...)
{
    va_list args;
    itest_path path;

    va_start(args, format);
    path = write_config(ctx, name, tables, status_interval_ms, source_extra, format, args);
    va_end(args);
    return path;
}

itest_path itest_fixture_config(const itest_ctx *ctx, const char *name, const char *tables,
                                int status_interval_ms, const char *plugin, const char *fixture,
                                const char *settings)
{
    char relative[128];

    ck_assert_msg(snprintf(relative, sizeof relative, "build/tests/fixtures/%s.so", fixture) <
                      (int)sizeof relative,
                  "fixture name too long: %s", fixture);
    return itest_config(ctx, name, tables, status_interval_ms,
                        "{ name = \"%s\"; path = \"%s\"; settings = { %s }; }", plugin,
                        itest_root_file(relative).s, settings);
}
