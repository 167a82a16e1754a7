/* Unit tests for the relation cache: put, get, replace, growth, pg_catalog mapping. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relcache.h"
#include "run_suite.h"

/* A decoded Relation message built in memory; the strings live in the fixture. */
typedef struct relation_fixture {
    wn_message message;
    wn_relation_column columns[8];
    char names[8][16];
    char nspname[32];
    char relname[32];
} relation_fixture;

static void fixture_init(relation_fixture *f, uint32_t relid, const char *nspname,
                         const char *relname, uint16_t ncolumns)
{
    ck_assert_uint_le(ncolumns, 8);
    memset(f, 0, sizeof *f);
    snprintf(f->nspname, sizeof f->nspname, "%s", nspname);
    snprintf(f->relname, sizeof f->relname, "%s", relname);
    for (uint16_t i = 0; i < ncolumns; i++) {
        snprintf(f->names[i], sizeof f->names[i], "col%u", i);
        f->columns[i].flags = i == 0 ? 1 : 0;
        f->columns[i].name = f->names[i];
        f->columns[i].type_oid = 23u + i;
        f->columns[i].typmod = i == 0 ? -1 : (int32_t)i;
    }
    f->message.kind = 'R';
    f->message.u.relation.relid = relid;
    f->message.u.relation.nspname = f->nspname;
    f->message.u.relation.relname = f->relname;
    f->message.u.relation.replident = 'd';
    f->message.u.relation.ncolumns = ncolumns;
    f->message.u.relation.columns = f->columns;
}

START_TEST(test_put_get)
{
    wn_relcache *cache = wn_relcache_create();
    relation_fixture f;
    wn_relation *put;

    ck_assert_ptr_nonnull(cache);
    ck_assert_ptr_null(wn_relcache_get(cache, 16385));
    fixture_init(&f, 16385, "public", "orders", 3);
    put = wn_relcache_put(cache, &f.message);
    ck_assert_ptr_nonnull(put);
    ck_assert_ptr_eq(wn_relcache_get(cache, 16385), put);
    ck_assert_ptr_null(wn_relcache_get(cache, 16386));

    ck_assert_uint_eq(put->relid, 16385);
    ck_assert_str_eq(put->schema, "public");
    ck_assert_str_eq(put->name, "orders");
    ck_assert_str_eq(put->qualified, "public.orders");
    ck_assert_int_eq(put->replident, 'd');
    ck_assert_int_eq(put->table_index, -1);
    ck_assert_uint_eq(put->ncolumns, 3);
    ck_assert_str_eq(put->columns[0].name, "col0");
    ck_assert(put->columns[0].is_key);
    ck_assert_uint_eq(put->columns[0].type_oid, 23);
    ck_assert_int_eq(put->columns[0].typmod, -1);
    ck_assert(!put->columns[1].is_key);
    ck_assert_str_eq(put->columns[2].name, "col2");
    ck_assert_uint_eq(put->columns[2].type_oid, 25);
    ck_assert_int_eq(put->columns[2].typmod, 2);

    /* Every string is a copy: the message's buffer can go away. */
    ck_assert_ptr_ne(put->name, f.relname);
    ck_assert_ptr_ne(put->columns[0].name, f.names[0]);
    memset(&f, 0x55, sizeof f);
    ck_assert_str_eq(put->qualified, "public.orders");
    ck_assert_str_eq(put->columns[1].name, "col1");
    wn_relcache_destroy(cache);
}
END_TEST

START_TEST(test_pg_catalog_and_key_flags)
{
    wn_relcache *cache = wn_relcache_create();
    relation_fixture f;
    wn_relation *put;

    fixture_init(&f, 1259, "", "pg_class", 2);
    f.columns[0].flags = 0;
    f.columns[1].flags = 3; /* only bit 0 means key */
    f.message.u.relation.replident = 'f';
    put = wn_relcache_put(cache, &f.message);
    ck_assert_ptr_nonnull(put);
    ck_assert_str_eq(put->schema, "pg_catalog");
    ck_assert_str_eq(put->qualified, "pg_catalog.pg_class");
    ck_assert_int_eq(put->replident, 'f');
    ck_assert(!put->columns[0].is_key);
    ck_assert(put->columns[1].is_key);
    wn_relcache_destroy(cache);
}
END_TEST

START_TEST(test_no_columns)
{
    wn_relcache *cache = wn_relcache_create();
    relation_fixture f;
    wn_relation *put;

    fixture_init(&f, 5, "s", "empty", 0);
    put = wn_relcache_put(cache, &f.message);
    ck_assert_ptr_nonnull(put);
    ck_assert_uint_eq(put->ncolumns, 0);
    ck_assert_str_eq(put->qualified, "s.empty");
    wn_relcache_destroy(cache);
}
END_TEST

START_TEST(test_relid_zero_and_max)
{
    wn_relcache *cache = wn_relcache_create();
    relation_fixture f;

    fixture_init(&f, 0, "a", "zero", 1);
    ck_assert_ptr_nonnull(wn_relcache_put(cache, &f.message));
    fixture_init(&f, UINT32_MAX, "a", "max", 1);
    ck_assert_ptr_nonnull(wn_relcache_put(cache, &f.message));
    ck_assert_str_eq(wn_relcache_get(cache, 0)->name, "zero");
    ck_assert_str_eq(wn_relcache_get(cache, UINT32_MAX)->name, "max");
    wn_relcache_destroy(cache);
}
END_TEST

START_TEST(test_not_a_relation_message)
{
    wn_relcache *cache = wn_relcache_create();
    relation_fixture f;

    fixture_init(&f, 1, "a", "b", 1);
    f.message.kind = 'I';
    ck_assert_ptr_null(wn_relcache_put(cache, &f.message));
    ck_assert_ptr_null(wn_relcache_get(cache, 1));
    wn_relcache_destroy(cache);
}
END_TEST

START_TEST(test_replace)
{
    wn_relcache *cache = wn_relcache_create();
    relation_fixture f;
    wn_relation *first, *second;

    fixture_init(&f, 16385, "public", "orders", 2);
    first = wn_relcache_put(cache, &f.message);
    ck_assert_ptr_nonnull(first);
    first->table_index = 4;

    /* ALTER TABLE orders ADD COLUMN: a new layout for the same id. */
    fixture_init(&f, 16385, "sales", "orders_v2", 5);
    f.message.u.relation.replident = 'i';
    second = wn_relcache_put(cache, &f.message);
    ck_assert_ptr_nonnull(second);
    ck_assert_ptr_eq(wn_relcache_get(cache, 16385), second);
    ck_assert_str_eq(second->qualified, "sales.orders_v2");
    ck_assert_int_eq(second->replident, 'i');
    ck_assert_uint_eq(second->ncolumns, 5);
    ck_assert_str_eq(second->columns[4].name, "col4");
    /* A replaced layout starts unbound: the owner rebinds it. */
    ck_assert_int_eq(second->table_index, -1);
    wn_relcache_destroy(cache);
}
END_TEST

/* A layout replaced between the rows of one transaction: rows before the change were read with
 * the old layout, rows after with the new one; other relations are untouched. */
START_TEST(test_replace_mid_use)
{
    wn_relcache *cache = wn_relcache_create();
    relation_fixture f;
    wn_relation *other, *current;

    fixture_init(&f, 7, "public", "other", 1);
    other = wn_relcache_put(cache, &f.message);
    fixture_init(&f, 8, "public", "orders", 2);
    ck_assert_ptr_nonnull(wn_relcache_put(cache, &f.message));

    current = wn_relcache_get(cache, 8);
    ck_assert_uint_eq(current->ncolumns, 2);
    for (int version = 3; version <= 8; version++) {
        fixture_init(&f, 8, "public", "orders", (uint16_t)version);
        ck_assert_ptr_nonnull(wn_relcache_put(cache, &f.message));
        current = wn_relcache_get(cache, 8);
        ck_assert_uint_eq(current->ncolumns, (unsigned)version);
        ck_assert_str_eq(current->columns[version - 1].name, f.names[version - 1]);
    }
    /* Shrinking works too. */
    fixture_init(&f, 8, "public", "orders", 1);
    ck_assert_ptr_nonnull(wn_relcache_put(cache, &f.message));
    ck_assert_uint_eq(wn_relcache_get(cache, 8)->ncolumns, 1);
    ck_assert_ptr_eq(wn_relcache_get(cache, 7), other);
    ck_assert_str_eq(other->qualified, "public.other");
    wn_relcache_destroy(cache);
}
END_TEST

START_TEST(test_many_relations)
{
    enum { COUNT = 10000 };
    wn_relcache *cache = wn_relcache_create();
    relation_fixture f;
    char name[32];

    /* Ids in two shapes: consecutive (as the server hands them out) and scattered. */
    for (uint32_t i = 0; i < COUNT; i++) {
        uint32_t relid = i % 2 ? 16384 + i : i * 2654435761u;

        snprintf(name, sizeof name, "t%u", i);
        fixture_init(&f, relid, "s", name, (uint16_t)(i % 4));
        ck_assert_ptr_nonnull(wn_relcache_put(cache, &f.message));
    }
    /* Replace every tenth: the count stays, the layout changes. */
    for (uint32_t i = 0; i < COUNT; i += 10) {
        uint32_t relid = i % 2 ? 16384 + i : i * 2654435761u;

        snprintf(name, sizeof name, "r%u", i);
        fixture_init(&f, relid, "s", name, 5);
        ck_assert_ptr_nonnull(wn_relcache_put(cache, &f.message));
    }
    for (uint32_t i = 0; i < COUNT; i++) {
        uint32_t relid = i % 2 ? 16384 + i : i * 2654435761u;
        wn_relation *r = wn_relcache_get(cache, relid);

        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(r->relid, relid);
        snprintf(name, sizeof name, "%c%u", i % 10 == 0 ? 'r' : 't', i);
        ck_assert_str_eq(r->name, name);
        ck_assert_uint_eq(r->ncolumns, i % 10 == 0 ? 5 : i % 4);
    }
    ck_assert_ptr_null(wn_relcache_get(cache, 16384 + COUNT + 1));
    ck_assert_ptr_null(wn_relcache_get(cache, 16384));
    wn_relcache_destroy(cache);
}
END_TEST

START_TEST(test_retyped_columns)
{
    wn_relcache *cache = wn_relcache_create();
    relation_fixture f;
    const wn_rel_column *was = NULL;
    wn_relation *put;

    fixture_init(&f, 16385, "public", "a", 4);
    put = wn_relcache_put(cache, &f.message);
    ck_assert_ptr_nonnull(put);
    ck_assert_int_eq(wn_relation_next_retyped(put, &f.message, 0, &was), -1);

    /* col1 changes type, col2 its typmod only; col3 is dropped and a new col9 appears. */
    f.columns[1].type_oid = 20;
    f.columns[2].typmod = 99;
    snprintf(f.names[3], sizeof f.names[3], "col9");
    f.columns[3].type_oid = 1043;
    ck_assert_int_eq(wn_relation_next_retyped(put, &f.message, 0, &was), 1);
    ck_assert_str_eq(was->name, "col1");
    ck_assert_uint_eq(was->type_oid, 24);
    ck_assert_int_eq(wn_relation_next_retyped(put, &f.message, 2, &was), 2);
    ck_assert_int_eq(was->typmod, 2);
    ck_assert_int_eq(wn_relation_next_retyped(put, &f.message, 3, &was), -1);

    /* Columns are matched by name, wherever they moved. */
    fixture_init(&f, 16385, "public", "a", 4);
    snprintf(f.names[0], sizeof f.names[0], "col2");
    f.columns[0].type_oid = 25;
    f.columns[0].typmod = 2;
    snprintf(f.names[2], sizeof f.names[2], "col0");
    f.columns[2].type_oid = 700;
    ck_assert_int_eq(wn_relation_next_retyped(put, &f.message, 0, &was), 2);
    ck_assert_str_eq(was->name, "col0");
    ck_assert_uint_eq(was->type_oid, 23);
    wn_relcache_destroy(cache);
}
END_TEST

START_TEST(test_destroy_null)
{
    wn_relcache_destroy(NULL);
}
END_TEST

static Suite *relcache_suite(void)
{
    Suite *s = suite_create("relcache");
    TCase *tc = tcase_create("relcache");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_put_get);
    tcase_add_test(tc, test_pg_catalog_and_key_flags);
    tcase_add_test(tc, test_no_columns);
    tcase_add_test(tc, test_relid_zero_and_max);
    tcase_add_test(tc, test_not_a_relation_message);
    tcase_add_test(tc, test_replace);
    tcase_add_test(tc, test_replace_mid_use);
    tcase_add_test(tc, test_many_relations);
    tcase_add_test(tc, test_retyped_columns);
    tcase_add_test(tc, test_destroy_null);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(relcache_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
