/* conninfo: redaction, parse errors, a refused connection, and the parameters of every
 * connection, without a server. */
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* libpq's parse messages may quote any part of the text; none of these may reach err. */
static const struct {
    const char *conninfo;
    const char *secret;
} unparsable_with_password[] = {
    {"postgresql://app:s3cr%zzet@127.0.0.1/x", "s3cr"},       /* "invalid percent-encoded token" */
    {"postgresql://app:s3cret@[::1/x", "s3cret"},             /* the whole URI, quoted */
    {"host=127.0.0.1 password=s3cret words=1", "words"},      /* the rest of an unquoted password */
    {"host=127.0.0.1 password=s3cret words", "words"},        /* missing "=" after "words" */
    {"host=127.0.0.1 password='s3cret", "s3cret"},
};

START_TEST(unparsable_conninfo_hides_the_password)
{
    char err[512] = "";
    int status = 0;
    PGconn *conn = wn_connect(unparsable_with_password[_i].conninfo, true, true, &status, err,
                              sizeof err);

    ck_assert_ptr_null(conn);
    ck_assert_int_eq(status, WN_EXIT_CONFIG);
    ck_assert_msg(strncmp(err, "conninfo: ", 10) == 0, "err: %s", err);
    ck_assert_msg(strstr(err, unparsable_with_password[_i].secret) == NULL, "%s: err: %s",
                  unparsable_with_password[_i].conninfo, err);
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

/* libpq quotes option values in its messages: a password also written, by mistake, as the value
 * of another option must still not reach err. */
static const char *const refused_quoting_password[] = {
    "host=127.0.0.1 port=s3cretword password=s3cretword",
    "host=127.0.0.1 port=1 sslmode=s3cretword password=s3cretword",
    "host=127.0.0.1 port=1 keepalives_idle=s3cretword password=s3cretword",
    "postgresql://app:s3cretword@127.0.0.1:1/x?sslmode=s3cretword",
};

START_TEST(failed_connection_hides_the_password)
{
    char err[1024] = "";
    int status = 0;
    PGconn *conn = wn_connect(refused_quoting_password[_i], false, true, &status, err, sizeof err);

    ck_assert_ptr_null(conn);
    ck_assert_msg(strncmp(err, "cannot connect to ", 18) == 0, "err: %s", err);
    ck_assert_msg(strstr(err, "s3cret") == NULL, "err: %s", err);
    ck_assert_msg(strstr(err, "\"********\"") != NULL, "libpq's message is not there: %s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

/* ---- the parameters of a connection ---------------------------------------------------- */

/* The contract's session settings: every connection's values print the same whatever the
 * server's defaults. */
static const char *const session_settings[][2] = {
    {"DateStyle", "ISO"},          {"TimeZone", "UTC"},   {"IntervalStyle", "postgres"},
    {"extra_float_digits", "3"}, {"bytea_output", "hex"},
};
#define NSESSION (sizeof session_settings / sizeof session_settings[0])

/* The user's own options in both forms below: one setting the contract's must override. */
#define USER_OPTIONS "-c work_mem=64MB -c TimeZone=Asia/Tokyo"

static const char *const both_forms[] = {
    "host=db.example port=5433 user=app password=s3cret dbname=shop options='" USER_OPTIONS "'",
    "postgresql://app:s3cret@db.example:5433/shop?options=-c%20work_mem%3D64MB%20-c%20TimeZone%3D"
    "Asia%2FTokyo",
};

/* The value of keyword in params, failing unless it is there exactly once. */
static const char *param(const wn_conn_params *params, const char *keyword)
{
    const char *value = NULL;
    int seen = 0;

    for (size_t i = 0; params->keywords[i] != NULL; i++) {
        ck_assert_ptr_nonnull(params->values[i]);
        if (strcmp(params->keywords[i], keyword) == 0) {
            value = params->values[i];
            seen++;
        }
    }
    ck_assert_msg(seen == 1, "%s given %d times", keyword, seen);
    return value;
}

static bool has_param(const wn_conn_params *params, const char *keyword)
{
    for (size_t i = 0; params->keywords[i] != NULL; i++) {
        if (strcmp(params->keywords[i], keyword) == 0)
            return true;
    }
    return false;
}

static void assert_param(const wn_conn_params *params, const char *keyword, const char *want)
{
    const char *got = param(params, keyword);

    ck_assert_msg(strcmp(got, want) == 0, "%s=%s, expected %s", keyword, got, want);
}

/* Where the setting's last "-c name=value" in options starts, its value in value (the server
 * keeps the last of a setting given twice); -1 when absent. Names compare as the server does. */
static long last_setting(const char *options, const char *name, char *value, size_t valuelen)
{
    size_t namelen = strlen(name);
    long found = -1;

    for (const char *p = options; (p = strstr(p, "-c ")) != NULL; p += 3) {
        const char *setting = p + 3;
        size_t len = strcspn(setting, " ");

        if (strncasecmp(setting, name, namelen) != 0 || setting[namelen] != '=')
            continue;
        found = (long)(p - options);
        snprintf(value, valuelen, "%.*s", (int)(len - namelen - 1), setting + namelen + 1);
    }
    return found;
}

/* `options` holds the user's own options first, untouched, then every session setting. */
static void assert_session_options(const char *options, const char *user_options)
{
    size_t user_len = strlen(user_options);
    char value[64];

    ck_assert_msg(strncmp(options, user_options, user_len) == 0,
                  "options \"%s\" do not start with the user's \"%s\"", options, user_options);
    for (size_t i = 0; i < NSESSION; i++) {
        long at = last_setting(options, session_settings[i][0], value, sizeof value);

        ck_assert_msg(at >= 0, "options \"%s\" lack %s", options, session_settings[i][0]);
        ck_assert_msg((size_t)at >= user_len, "%s is not after the user's options: \"%s\"",
                      session_settings[i][0], options);
        ck_assert_msg(strcmp(value, session_settings[i][1]) == 0, "%s=%s in \"%s\", expected %s",
                      session_settings[i][0], value, options, session_settings[i][1]);
    }
}

static void assert_keepalives(const wn_conn_params *params)
{
    assert_param(params, "keepalives", "1");
    assert_param(params, "keepalives_idle", "30");
    assert_param(params, "keepalives_interval", "10");
    assert_param(params, "keepalives_count", "3");
}

static void build(wn_conn_params *params, const char *conninfo, bool replication, bool utf8)
{
    char err[512] = "";

    ck_assert_msg(wn_conn_params_build(conninfo, replication, utf8, params, err, sizeof err) == 0,
                  "%s: %s", conninfo, err);
}

START_TEST(stream_params_in_both_forms)
{
    wn_conn_params params;

    build(&params, both_forms[_i], true, true);
    assert_param(&params, "replication", "database");
    assert_param(&params, "client_encoding", "UTF8");
    assert_param(&params, "host", "db.example");
    assert_param(&params, "port", "5433");
    assert_param(&params, "user", "app");
    assert_param(&params, "password", "s3cret");
    assert_param(&params, "dbname", "shop");
    assert_param(&params, "fallback_application_name", "walnotify");
    assert_session_options(param(&params, "options"), USER_OPTIONS);
    assert_keepalives(&params);
    wn_conn_params_free(&params);
}
END_TEST

START_TEST(ordinary_params_in_both_forms)
{
    wn_conn_params params;

    build(&params, both_forms[_i], false, true);
    ck_assert_msg(!has_param(&params, "replication"), "an ordinary connection is a replication one");
    assert_param(&params, "client_encoding", "UTF8");
    assert_session_options(param(&params, "options"), USER_OPTIONS);
    assert_keepalives(&params);
    wn_conn_params_free(&params);
}
END_TEST

/* Without options of the user's, the session settings alone, without a leading space. */
START_TEST(session_options_alone)
{
    wn_conn_params params;
    const char *options;

    build(&params, "dbname=shop", true, true);
    options = param(&params, "options");
    ck_assert_msg(options[0] == '-', "options \"%s\"", options);
    assert_session_options(options, "");
    assert_keepalives(&params);
    wn_conn_params_free(&params);
}
END_TEST

/* A user's own keepalive value wins; a user's replication or client_encoding gives way. */
START_TEST(user_values_and_managed_keywords)
{
    wn_conn_params params;

    build(&params,
          "postgresql:///shop?keepalives_idle=5&replication=true&client_encoding=LATIN1"
          "&fallback_application_name=mine",
          true, true);
    assert_param(&params, "keepalives_idle", "5");
    assert_param(&params, "keepalives_count", "3");
    assert_param(&params, "replication", "database");
    assert_param(&params, "client_encoding", "UTF8");
    assert_param(&params, "fallback_application_name", "mine");
    wn_conn_params_free(&params);

    build(&params, "dbname=shop replication=true client_encoding=LATIN1", false, false);
    ck_assert(!has_param(&params, "replication"));
    assert_param(&params, "client_encoding", "LATIN1"); /* a SQL_ASCII database */
    wn_conn_params_free(&params);
}
END_TEST

START_TEST(unparsable_params_are_a_config_error)
{
    wn_conn_params params;
    char err[512] = "";

    ck_assert_int_eq(wn_conn_params_build("postgresql://app:s3cr%zzet@h/x", true, true, &params,
                                          err, sizeof err),
                     WN_EXIT_CONFIG);
    ck_assert_ptr_null(params.keywords);
    ck_assert_ptr_null(params.parsed);
    ck_assert_str_eq(err, "conninfo: not a valid libpq connection string or URI");
}
END_TEST

/* The check the configuration makes. */
START_TEST(conninfo_check)
{
    char why[256];

    ck_assert(wn_conninfo_check("host=h dbname=x", why, sizeof why));
    ck_assert(wn_conninfo_check("postgresql://u:p@h:5/x?sslmode=disable", why, sizeof why));
    ck_assert(!wn_conninfo_check("host=h nope=1", why, sizeof why));
    ck_assert_str_eq(why, "unknown keyword \"nope\" (not a libpq connection parameter)");
    ck_assert(!wn_conninfo_check("host=h password=a nope=1", why, sizeof why));
    ck_assert_str_eq(why, "not a valid libpq connection string or URI");
    ck_assert(!wn_conninfo_check("postgresql://h/x?replication=database", why, sizeof why));
    ck_assert_str_eq(why, "sets replication, which walnotify sets itself (remove it)");
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
    tcase_add_loop_test(tc, unparsable_conninfo_hides_the_password, 0,
                        (int)(sizeof unparsable_with_password / sizeof unparsable_with_password[0]));
    tcase_add_loop_test(tc, failed_connection_hides_the_password, 0,
                        (int)(sizeof refused_quoting_password / sizeof refused_quoting_password[0]));
    tcase_add_loop_test(tc, stream_params_in_both_forms, 0, 2);
    tcase_add_loop_test(tc, ordinary_params_in_both_forms, 0, 2);
    tcase_add_test(tc, session_options_alone);
    tcase_add_test(tc, user_values_and_managed_keywords);
    tcase_add_test(tc, unparsable_params_are_a_config_error);
    tcase_add_test(tc, conninfo_check);
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
