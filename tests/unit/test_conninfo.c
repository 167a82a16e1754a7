/* conninfo: redaction, parse errors and a refused connection, without a server. */
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conninfo.h"

/* A TCP port on 127.0.0.1 that nothing listens on: bound, then closed at once. */
static int closed_port(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

START_TEST(redacts_keyword_password)
{
    char *r = wn_conninfo_redact("host=db.example port=5433 user=app password=s3cret dbname=x");

    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(strstr(r, "s3cret"));
    ck_assert_ptr_nonnull(strstr(r, "password=********"));
    ck_assert_ptr_nonnull(strstr(r, "host=db.example"));
    ck_assert_ptr_nonnull(strstr(r, "port=5433"));
    ck_assert_ptr_nonnull(strstr(r, "user=app"));
    ck_assert_ptr_nonnull(strstr(r, "dbname=x"));
    free(r);
}
END_TEST

START_TEST(redacts_uri_password)
{
    char *r = wn_conninfo_redact("postgresql://app:s3cret@db.example:5433/shop?sslmode=disable");

    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(strstr(r, "s3cret"));
    ck_assert_ptr_nonnull(strstr(r, "password=********"));
    ck_assert_ptr_nonnull(strstr(r, "user=app"));
    ck_assert_ptr_nonnull(strstr(r, "host=db.example"));
    ck_assert_ptr_nonnull(strstr(r, "port=5433"));
    ck_assert_ptr_nonnull(strstr(r, "dbname=shop"));
    ck_assert_ptr_nonnull(strstr(r, "sslmode=disable"));
    free(r);
}
END_TEST

START_TEST(quotes_values_that_need_it)
{
    char *r = wn_conninfo_redact("dbname='my db' application_name='it\\'s' user=a");

    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(strstr(r, "dbname='my db'"));
    ck_assert_ptr_nonnull(strstr(r, "application_name='it\\'s'"));
    ck_assert_ptr_null(strstr(r, "password"));
    free(r);
}
END_TEST

START_TEST(redacted_text_parses_back)
{
    char *r = wn_conninfo_redact("dbname='my db' password='a b\\'c' host=h");
    char *again;

    ck_assert_ptr_nonnull(r);
    again = wn_conninfo_redact(r);
    ck_assert_ptr_nonnull(again);
    ck_assert_str_eq(again, r);
    free(again);
    free(r);
}
END_TEST

START_TEST(unparsable_redaction_hides_everything)
{
    char *r = wn_conninfo_redact("host=h password=s3cret nonsense");

    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(strstr(r, "s3cret"));
    free(r);
}
END_TEST

START_TEST(unparsable_conninfo_is_a_config_error)
{
    char err[512] = "";
    int status = 0;
    PGconn *conn = wn_connect("host=h bogus_keyword=1", false, true, &status, err, sizeof err);

    ck_assert_ptr_null(conn);
    ck_assert_int_eq(status, WN_EXIT_CONFIG);
    ck_assert_msg(strncmp(err, "conninfo: ", 10) == 0, "err: %s", err);
    ck_assert_ptr_nonnull(strstr(err, "bogus_keyword"));
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(unparsable_uri_is_a_config_error)
{
    char err[512] = "";
    int status = 0;
    PGconn *conn = wn_connect("postgresql://h:notaport:x/db?nope=1", true, true, &status, err,
                              sizeof err);

    ck_assert_ptr_null(conn);
    ck_assert_int_eq(status, WN_EXIT_CONFIG);
    ck_assert_msg(strncmp(err, "conninfo: ", 10) == 0, "err: %s", err);
}
END_TEST

START_TEST(closed_port_is_transient_on_one_line)
{
    char conninfo[256], err[1024] = "";
    int status = 0;
    PGconn *conn;

    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%d user=app password=s3cret dbname=x connect_timeout=5",
             closed_port());
    conn = wn_connect(conninfo, true, true, &status, err, sizeof err);
    ck_assert_ptr_null(conn);
    /* Nothing listening yet: a server that is still starting, worth waiting for. */
    ck_assert_int_eq(status, WN_EXIT_TRANSIENT);
    ck_assert_msg(strncmp(err, "cannot connect to ", 18) == 0, "err: %s", err);
    ck_assert_msg(strstr(err, "password=********") != NULL, "err: %s", err);
    ck_assert_msg(strstr(err, "s3cret") == NULL, "err: %s", err);
    ck_assert_msg(strchr(err, '\n') == NULL, "err: %s", err);
    ck_assert_msg(strstr(err, "refused") != NULL, "err: %s", err);
}
END_TEST

/* libpq's messages for connections that failed, and whether waiting may cure them. */
static const struct {
    const char *message;
    int status;
} connect_failures[] = {
    {"connection to server at \"db\" (10.0.0.1), port 5432 failed: Connection refused",
     WN_EXIT_TRANSIENT},
    {"connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: No such file or directory",
     WN_EXIT_TRANSIENT},
    {"connection to server at \"db\" failed: FATAL: the database system is starting up",
     WN_EXIT_TRANSIENT},
    {"connection to server at \"db\" failed: FATAL: the database system is shutting down",
     WN_EXIT_TRANSIENT},
    {"connection to server at \"db\" failed: FATAL: sorry, too many clients already",
     WN_EXIT_TRANSIENT},
    {"timeout expired", WN_EXIT_TRANSIENT},
    {"connection to server at \"db\" failed: FATAL: password authentication failed for user "
     "\"app\"",
     WN_EXIT_SERVER},
    {"connection to server at \"db\" failed: FATAL: no pg_hba.conf entry for replication "
     "connection from host \"10.0.0.2\", user \"app\", no encryption",
     WN_EXIT_SERVER},
    {"connection to server at \"db\" failed: fe_sendauth: no password supplied", WN_EXIT_SERVER},
    {"connection to server at \"db\" failed: FATAL: role \"app\" does not exist",
     WN_EXIT_SERVER},
    {"connection to server at \"db\" failed: FATAL: database \"shop\" does not exist",
     WN_EXIT_SERVER},
    {"connection to server at \"db\" failed: FATAL: must be superuser or replication role to "
     "start walsender",
     WN_EXIT_SERVER},
};

START_TEST(connect_failures_are_classified)
{
    ck_assert_msg(wn_connect_failure_status(connect_failures[_i].message) ==
                      connect_failures[_i].status,
                  "\"%s\": expected %s", connect_failures[_i].message,
                  connect_failures[_i].status == WN_EXIT_SERVER ? "fatal" : "transient");
}
END_TEST

START_TEST(lost_connection_is_transient)
{
    ck_assert_int_eq(wn_command_failure_status(NULL, NULL), WN_EXIT_TRANSIENT);
}
END_TEST

static Suite *conninfo_suite(void)
{
    Suite *s = suite_create("conninfo");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, redacts_keyword_password);
    tcase_add_test(tc, redacts_uri_password);
    tcase_add_test(tc, quotes_values_that_need_it);
    tcase_add_test(tc, redacted_text_parses_back);
    tcase_add_test(tc, unparsable_redaction_hides_everything);
    tcase_add_test(tc, unparsable_conninfo_is_a_config_error);
    tcase_add_test(tc, unparsable_uri_is_a_config_error);
    tcase_add_test(tc, closed_port_is_transient_on_one_line);
    tcase_add_loop_test(tc, connect_failures_are_classified, 0,
                        (int)(sizeof connect_failures / sizeof connect_failures[0]));
    tcase_add_test(tc, lost_connection_is_transient);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conninfo_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
