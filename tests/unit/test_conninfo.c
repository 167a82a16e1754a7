/* conninfo: secrets kept out of messages, parse errors, a refused connection, a silent server,
 * a stop while connecting, and the parameters of every connection, without a server. */
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conninfo.h"
#include "run_suite.h"

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

START_TEST(unparsable_conninfo_is_a_config_error)
{
    char err[512] = "";
    int status = 0;
    PGconn *conn = wn_connect("host=h bogus_keyword=1", false, true, -1, &status, err, sizeof err);

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
    PGconn *conn = wn_connect("postgresql://h:notaport:x/db?nope=1", true, true, -1, &status, err,
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
    conn = wn_connect(conninfo, true, true, -1, &status, err, sizeof err);
    ck_assert_ptr_null(conn);
    /* Nothing listening yet: a server that is still starting, worth waiting for. */
    ck_assert_int_eq(status, WN_EXIT_TRANSIENT);
    ck_assert_msg(strncmp(err, "cannot connect to host 127.0.0.1 port ", 38) == 0, "err: %s",
                  err);
    ck_assert_msg(strstr(err, "s3cret") == NULL, "err: %s", err);
    /* The conninfo itself is never echoed: not even a harmless value of it. */
    ck_assert_msg(strstr(err, "user=app") == NULL && strstr(err, "dbname") == NULL, "err: %s",
                  err);
    ck_assert_msg(strchr(err, '\n') == NULL, "err: %s", err);
    ck_assert_msg(strstr(err, "refused") != NULL, "err: %s", err);
}
END_TEST

/* A TCP port on 127.0.0.1 that takes connections (the kernel completes them) and never
 * answers: a server hung, or something else listening. Returns the listening socket. */
static int silent_server(int *port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* Every keyword libpq itself hides: none of their values may reach a message, whether the
 * conninfo is only named (it used to be echoed, secrets but the password included) or libpq
 * quotes the value because it was also written, by mistake, as another option's. */
START_TEST(no_secret_keyword_reaches_a_message)
{
    PQconninfoOption *defaults = PQconndefaults();
    int port = closed_port();
    size_t nsecret = 0;
    bool password = false, sslpassword = false;

    ck_assert_ptr_nonnull(defaults);
    for (PQconninfoOption *o = defaults; o->keyword; o++) {
        char conninfo[512], err[1024] = "";
        int status = 0;

        if (!wn_conninfo_is_secret(o))
            continue;
        nsecret++;
        password |= strcmp(o->keyword, "password") == 0;
        sslpassword |= strcmp(o->keyword, "sslpassword") == 0;
        snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=app %s=s3cretword",
                 port, o->keyword);
        ck_assert_ptr_null(wn_connect(conninfo, false, true, -1, &status, err, sizeof err));
        ck_assert_msg(strstr(err, "s3cretword") == NULL, "%s: err: %s", o->keyword, err);
        ck_assert_msg(strstr(err, "refused") != NULL, "%s: err: %s", o->keyword, err);

        snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=s3cretword %s=s3cretword",
                 o->keyword);
        ck_assert_ptr_null(wn_connect(conninfo, false, true, -1, &status, err, sizeof err));
        ck_assert_msg(strstr(err, "s3cretword") == NULL, "%s: err: %s", o->keyword, err);
        ck_assert_msg(strstr(err, "\"********\"") != NULL, "%s: err: %s", o->keyword, err);
    }
    PQconninfoFree(defaults);
    ck_assert_msg(password && sslpassword && nsecret >= 2,
                  "libpq hides %zu keywords, password %d, sslpassword %d", nsecret, password,
                  sslpassword);
}
END_TEST

/* A one-letter password must not turn "connection" into "c********nnecti********n". */
START_TEST(short_password_leaves_words_alone)
{
    char conninfo[256], err[1024] = "";
    int status = 0;

    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d password=o", closed_port());
    ck_assert_ptr_null(wn_connect(conninfo, false, true, -1, &status, err, sizeof err));
    ck_assert_msg(strstr(err, "cannot connect to host") != NULL, "err: %s", err);
    ck_assert_msg(strstr(err, "Connection refused") != NULL, "err: %s", err);
    ck_assert_msg(strstr(err, "********") == NULL, "err: %s", err);
}
END_TEST

/* A server that takes the connection and never answers: connect_timeout ends the attempt, as
 * one that waiting may cure. */
START_TEST(silent_server_times_out)
{
    char conninfo[256], err[1024] = "";
    int status = 0, port;
    int fd = silent_server(&port);

    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d connect_timeout=2", port);
    ck_assert_ptr_null(wn_connect(conninfo, true, true, -1, &status, err, sizeof err));
    ck_assert_int_eq(status, WN_EXIT_TRANSIENT);
    ck_assert_msg(strstr(err, "no answer within 2 s") != NULL, "err: %s", err);
    close(fd);
}
END_TEST

static void *stop_soon(void *arg)
{
    int *pipefd = arg;

    usleep(200 * 1000);
    ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
    return NULL;
}

/* A stop while a silent server holds the attempt ends it at once, long before the default
 * connect_timeout; a stop already asked for connects nowhere. */
START_TEST(stop_ends_connecting)
{
    char conninfo[256], err[1024] = "";
    int status = 0, port, pipefd[2];
    int fd = silent_server(&port);
    pthread_t thread;

    ck_assert_int_eq(pipe(pipefd), 0);
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d", port);
    ck_assert_int_eq(pthread_create(&thread, NULL, stop_soon, pipefd), 0);
    ck_assert_ptr_null(wn_connect(conninfo, true, true, pipefd[0], &status, err, sizeof err));
    pthread_join(thread, NULL);
    ck_assert_int_eq(status, WN_EXIT_STOPPED);
    ck_assert_ptr_null(wn_connect(conninfo, false, true, pipefd[0], &status, err, sizeof err));
    ck_assert_int_eq(status, WN_EXIT_STOPPED);
    close(pipefd[0]);
    close(pipefd[1]);
    close(fd);
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
    PGconn *conn = wn_connect(unparsable_with_password[_i].conninfo, true, true, -1, &status, err,
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
    PGconn *conn = wn_connect(refused_quoting_password[_i], false, true, -1, &status, err,
                              sizeof err);

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
    assert_param(params, "connect_timeout", "10");
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

    /* The stream names itself after its slot, unless the user named it. */
    char err[512] = "";
    ck_assert_int_eq(
        wn_conn_params_build_as("dbname=shop", "orders_slot", true, true, &params, err, sizeof err),
        0);
    assert_param(&params, "fallback_application_name", "orders_slot");
    wn_conn_params_free(&params);
    ck_assert_int_eq(wn_conn_params_build_as("dbname=shop application_name=app", "orders_slot",
                                             true, true, &params, err, sizeof err),
                     0);
    assert_param(&params, "application_name", "app");
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

/* The SQLSTATEs a server refuses a connection with, and whether waiting may cure them. */
static const struct {
    const char *sqlstate;
    int status;
} connect_failures[] = {
    {"57P03", WN_EXIT_TRANSIENT}, /* starting up, shutting down, not accepting connections */
    {"53300", WN_EXIT_TRANSIENT}, /* too many clients */
    {"08006", WN_EXIT_TRANSIENT},
    {"57P01", WN_EXIT_TRANSIENT},
    {NULL, WN_EXIT_TRANSIENT},    /* no server answered */
    {"28P01", WN_EXIT_SERVER},    /* password authentication failed */
    {"28000", WN_EXIT_SERVER},    /* no pg_hba.conf entry, unknown role */
    {"3D000", WN_EXIT_SERVER},    /* database does not exist */
    {"42501", WN_EXIT_SERVER},    /* must be superuser or replication role */
};

START_TEST(connect_failures_are_classified)
{
    ck_assert_msg(wn_connect_sqlstate_status(connect_failures[_i].sqlstate) ==
                      connect_failures[_i].status,
                  "%s: expected %s", connect_failures[_i].sqlstate ? connect_failures[_i].sqlstate
                                                                    : "(none)",
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
    tcase_add_test(tc, unparsable_conninfo_is_a_config_error);
    tcase_add_test(tc, unparsable_uri_is_a_config_error);
    tcase_add_test(tc, closed_port_is_transient_on_one_line);
    tcase_add_test(tc, no_secret_keyword_reaches_a_message);
    tcase_add_test(tc, short_password_leaves_words_alone);
    tcase_add_test(tc, silent_server_times_out);
    tcase_add_test(tc, stop_ends_connecting);
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
    return run_suite(conninfo_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
