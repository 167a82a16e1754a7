/* itest_env: the harness's environment and the server's log; see itest_env.h. */
#include "itest_env.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "itest_files.h"

const char *itest_env(const char *name)
{
    const char *value = getenv(name);

    if (value == NULL || value[0] == '\0')
        ck_abort_msg("environment variable %s is not set: run the integration tests through "
                     "tests/run.sh (or set PGHOST, PGPORT, PGUSER, WN_TEST_PGDIR, WN_ROOT)",
                     name);
    return value;
}

itest_path itest_root_file(const char *relative)
{
    itest_path path;

    ck_assert_msg(snprintf(path.s, sizeof path.s, "%s/%s", itest_env("WN_ROOT"), relative) <
                      (int)sizeof path.s,
                  "path too long: %s", relative);
    return path;
}

static itest_path server_log_path(void)
{
    itest_path path;

    snprintf(path.s, sizeof path.s, "%s/postgresql.log", itest_env("WN_TEST_PGDIR"));
    return path;
}

long itest_server_log_size(void)
{
    itest_path path = server_log_path();
    struct stat st;

    ck_assert_msg(stat(path.s, &st) == 0, "cannot stat the server log %s: %s", path.s,
                  strerror(errno));
    return (long)st.st_size;
}

char *itest_server_log_since(long offset)
{
    itest_path path = server_log_path();
    size_t length = 0;
    char *data = itest_read_file(path.s, &length);
    char *tail;

    ck_assert_msg(data != NULL, "the server log %s is missing", path.s);
    if ((size_t)offset > length)
        offset = 0; /* rotated */
    tail = strdup(data + offset);
    free(data);
    ck_assert_msg(tail != NULL, "out of memory");
    return tail;
}
