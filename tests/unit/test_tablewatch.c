/* Unit tests for the table check's verdicts: what became of a configured table, from what the
 * catalog says and the OID it should have. (The query itself runs against PostgreSQL in
 * tests/integration/test_relchange.c.) */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "tablewatch.h"
#include "run_suite.h"

static wn_table_seen seen_as(uint32_t oid, bool published, const char *expected_now,
                             bool configured)
{
    wn_table_seen seen = {.oid = oid, .published = published};

    seen.expected_exists = expected_now != NULL;
    snprintf(seen.expected_now, sizeof seen.expected_now, "%s", expected_now ? expected_now : "");
    seen.expected_now_configured = configured;
    return seen;
}

static wn_table_verdict judge(const wn_table_seen *seen, uint32_t expected, char *why,
                              size_t whylen)
{
    why[0] = '\0';
    return wn_table_judge(seen, expected, "public.rn", "pub", why, whylen);
}

START_TEST(test_same)
{
    wn_table_seen seen = seen_as(16385, true, "public.rn", true);
    char why[512];

    ck_assert_int_eq(judge(&seen, 16385, why, sizeof why), WN_TABLE_SAME);
    /* Nothing expected yet: whatever it has now is taken. */
    ck_assert_int_eq(judge(&seen, 0, why, sizeof why), WN_TABLE_SAME);
    ck_assert_str_eq(why, "");
}
END_TEST

START_TEST(test_unpublished)
{
    wn_table_seen seen = seen_as(16385, false, "public.rn", true);
    char why[1024];

    ck_assert_int_eq(judge(&seen, 16385, why, sizeof why), WN_TABLE_UNPUBLISHED);
    ck_assert_ptr_nonnull(strstr(why, "table \"public.rn\" (OID 16385) is no longer in "
                                      "publication \"pub\": "));
    ck_assert_ptr_null(strstr(why, "created again"));

    /* Dropped, created again, and not put back into the publication. */
    seen = seen_as(16400, false, NULL, false);
    ck_assert_int_eq(judge(&seen, 16385, why, sizeof why), WN_TABLE_UNPUBLISHED);
    ck_assert_ptr_nonnull(strstr(why, "(OID 16400) is no longer in publication \"pub\" (it was "
                                      "dropped and created again)"));
}
END_TEST

START_TEST(test_renamed)
{
    wn_table_seen seen = seen_as(0, false, "public.rn2", false);
    char why[1024];

    ck_assert_int_eq(judge(&seen, 16385, why, sizeof why), WN_TABLE_RENAMED);
    ck_assert_ptr_nonnull(strstr(why, "table \"public.rn\" (OID 16385) was renamed to "
                                      "\"public.rn2\": "));
    /* Either remedy makes the next start deliver what was not acknowledged. */
    ck_assert_ptr_nonnull(strstr(why, "rename it back, or replace \"public.rn\" by \"public.rn2\" "
                                      "in source.tables"));
    ck_assert_ptr_nonnull(strstr(why, "whatever name they were made under"));

    /* Renamed away, and another table took its name: renaming back is no remedy then. */
    seen = seen_as(16400, true, "s2.rn", false);
    ck_assert_int_eq(judge(&seen, 16385, why, sizeof why), WN_TABLE_RENAMED);
    ck_assert_ptr_nonnull(strstr(why, "was renamed to \"s2.rn\", and another table now has its "
                                      "old name"));
    ck_assert_ptr_nonnull(strstr(why, "replace \"public.rn\" by \"s2.rn\" in source.tables"));
    ck_assert_ptr_nonnull(strstr(why, "to follow the table that has the old name now, start "
                                      "again as it is"));
    ck_assert_ptr_null(strstr(why, "rename it back"));
    ck_assert_uint_lt(strlen(why), sizeof why - 1);
}
END_TEST

START_TEST(test_renamed_to_configured_name)
{
    /* Its changes go on under the other configured name; its own name now means another
     * table, judged as one made again. */
    wn_table_seen seen = seen_as(16400, true, "public.b", true);
    char why[512];

    ck_assert_int_eq(judge(&seen, 16385, why, sizeof why), WN_TABLE_MADE_AGAIN);
    seen = seen_as(16400, false, "public.b", true);
    ck_assert_int_eq(judge(&seen, 16385, why, sizeof why), WN_TABLE_UNPUBLISHED);
}
END_TEST

START_TEST(test_dropped_and_made_again)
{
    wn_table_seen seen = seen_as(0, false, NULL, false);
    char why[1024];

    ck_assert_int_eq(judge(&seen, 16385, why, sizeof why), WN_TABLE_DROPPED);
    ck_assert_ptr_nonnull(strstr(why, "table \"public.rn\" (OID 16385) was dropped: "));
    seen = seen_as(16400, true, NULL, false);
    ck_assert_int_eq(judge(&seen, 16385, why, sizeof why), WN_TABLE_MADE_AGAIN);
}
END_TEST

START_TEST(test_short_buffer)
{
    wn_table_seen seen = seen_as(0, false, "public.rn2", false);
    char why[16];

    memset(why, 'x', sizeof why);
    ck_assert_int_eq(judge(&seen, 16385, why, sizeof why), WN_TABLE_RENAMED);
    ck_assert_uint_eq(strlen(why), sizeof why - 1);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("tablewatch");
    TCase *tc = tcase_create("judge");

    tcase_add_test(tc, test_same);
    tcase_add_test(tc, test_unpublished);
    tcase_add_test(tc, test_renamed);
    tcase_add_test(tc, test_renamed_to_configured_name);
    tcase_add_test(tc, test_dropped_and_made_again);
    tcase_add_test(tc, test_short_buffer);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? 0 : 1;
}
