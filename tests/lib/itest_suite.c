/* itest_suite: an integration test's main; see itest_suite.h. */
#include "itest_suite.h"

#include "itest_time.h"

TCase *itest_tcase(Suite *suite, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_set_timeout(tc, ITEST_TIMEOUT_S);
    suite_add_tcase(suite, tc);
    return tc;
}

int itest_run_suite(Suite *suite)
{
    SRunner *runner = srunner_create(suite);
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed;
}
