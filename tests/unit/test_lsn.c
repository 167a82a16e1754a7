/* Unit tests of WAL position parsing and printing. */
#include <check.h>
#include <stdlib.h>

#include "lsn.h"
#include "run_suite.h"

START_TEST(parses_and_prints)
{
    static const struct {
        const char *text;
        wn_lsn value;
    } cases[] = {
        {"0/0", 0},
        {"0/1A2B3C8", 0x1A2B3C8},
        {"16/B374D848", 0x16B374D848ULL},
        {"FFFFFFFF/FFFFFFFF", UINT64_MAX},
    };
    char text[WN_LSN_TEXT_MAX];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wn_lsn lsn = 1;

        ck_assert_msg(wn_lsn_parse(cases[i].text, &lsn), "%s", cases[i].text);
        ck_assert_uint_eq(lsn, cases[i].value);
        ck_assert_str_eq(wn_lsn_format(lsn, text), cases[i].text);
    }
    wn_lsn lsn;
    ck_assert(wn_lsn_parse("16/b374d848", &lsn));
    ck_assert_uint_eq(lsn, 0x16B374D848ULL);
}
END_TEST

START_TEST(rejects_malformed)
{
    static const char *const bad[] = {"", "/", "0/", "/0", "0", "0/0/0", "G/0", "0/0 ",
                                      " 0/0", "123456789/0", "0/123456789", "-1/0", "0x1/0"};
    wn_lsn lsn;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!wn_lsn_parse(bad[i], &lsn), "accepted \"%s\"", bad[i]);
    ck_assert(!wn_lsn_parse(NULL, &lsn));
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("lsn");
    TCase *tc = tcase_create("lsn");

    tcase_add_test(tc, parses_and_prints);
    tcase_add_test(tc, rejects_malformed);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
