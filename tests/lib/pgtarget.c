/* pgtarget: the postgres plugin's tests' target database; see pgtarget.h. */
#include "pgtarget.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest_slot.h"
#include "itest_sql.h"

PGconn *pgtarget_create(const itest_ctx *ctx)
{
    PGconn *admin = itest_connect("postgres", NULL);
    char name[80];

    snprintf(name, sizeof name, "%s_t", ctx->db);
    itest_exec(admin,
               "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
               name);
    PQfinish(admin);
    return itest_connect(name, NULL);
}

void pgtarget_drop(const itest_ctx *ctx, PGconn *target)
{
    PGconn *admin = itest_connect("postgres", NULL);

    PQfinish(target);
    itest_exec(admin, "DROP DATABASE %s_t WITH (FORCE)", ctx->db);
    PQfinish(admin);
}

void pgtarget_block_as(const itest_ctx *ctx, char *out, size_t outlen, const char *user,
                       const char *block, const char *settings)
{
    int n = snprintf(out, outlen,
                     "{ name = \"pg\"; path = \"%s\"; retry_initial_ms = 10; retry_max_ms = 200; "
                     "%s %s "
                     "settings = { conninfo = \"host=%s port=%s user=%s dbname=%s_t\"; %s }; }",
                     itest_root_file(PGTARGET_PLUGIN).s,
                     strstr(block, "ops =") != NULL
                         ? ""
                         : "ops = [\"insert\", \"update\", \"delete\", \"truncate\"];",
                     block, itest_env("PGHOST"), itest_env("PGPORT"), user, ctx->db, settings);

    ck_assert_msg(n > 0 && (size_t)n < outlen, "plugin block too long");
}

void pgtarget_block(const itest_ctx *ctx, char *out, size_t outlen, const char *block,
                    const char *settings)
{
    pgtarget_block_as(ctx, out, outlen, itest_env("PGUSER"), block, settings);
}

itest_path pgtarget_config(const itest_ctx *ctx, const char *name, const char *tables,
                           const char *block, const char *settings)
{
    char text[4096];

    pgtarget_block(ctx, text, sizeof text, block, settings);
    return itest_config(ctx, name, tables, 200, "%s", text);
}

void pgtarget_assert_same(PGconn *source, const char *source_query, PGconn *target,
                          const char *target_query)
{
#define AGG "SELECT coalesce(string_agg(r::text, E'\\n'), '') FROM (%s) r"
    char *a = itest_query(source, AGG, source_query);
    char *b = itest_query(target, AGG, target_query);

    ck_assert_msg(strcmp(a, b) == 0, "the target differs:\nsource:\n%.2000s\ntarget:\n%.2000s", a,
                  b);
    free(a);
    free(b);
}

void pgtarget_run(itest_ctx *ctx, itest_host *host, const char *conf, int code)
{
    char *end = itest_lsn_text(itest_current_lsn(ctx->conn));
    int status = itest_host_run(ctx, host, "-c", conf, "--endpos", end);

    free(end);
    if (status != code)
        itest_assert_exit(host, code);
}
