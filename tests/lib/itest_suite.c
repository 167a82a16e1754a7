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
