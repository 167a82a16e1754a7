/* itest_writer: a writer process; see itest_writer.h. */
#include "itest_writer.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest_fork.h"
#include "itest_sql.h"
#include "itest_time.h"

static volatile sig_atomic_t writer_stop_asked;

static void note_writer_stop(int signo)
{
    (void)signo;
    writer_stop_asked = 1;
}

void itest_writer_child_setup(void)
{
    struct sigaction action = {.sa_handler = note_writer_stop, .sa_flags = SA_RESTART};

    /* SIGTERM ends a writer between two statements, never during one: a commit cut off with its
     * client could still land after the test read the WAL position it waits for, and its rows
     * would then be counted as committed but never delivered. (Check's own handler, inherited
     * from the test, would signal the test's whole group.) */
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

void itest_writer_stop_if_asked(void)
{
    if (!writer_stop_asked)
        return;
    signal(SIGTERM, SIG_DFL);
    raise(SIGTERM);
}

static void run_writer(const char *db, const char *sql)
{
    PGconn *conn;

    itest_writer_child_setup();
    conn = itest_connect(db, NULL);
    for (;;) {
        PGresult *res = PQexec(conn, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            fprintf(stderr, "itest writer: %s: %s", sql, PQerrorMessage(conn));
            _exit(1);
        }
        PQclear(res);
        itest_writer_stop_if_asked();
        itest_sleep_ms(2);
        itest_writer_stop_if_asked();
    }
}

pid_t itest_writer_start(const itest_ctx *ctx, const char *sql)
{
    pid_t pid;

    pid = itest_fork();
    if (pid == 0)
        run_writer(ctx->db, sql);
    return pid;
}

void itest_writer_stop(pid_t pid)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);
    int status;

    kill(pid, SIGTERM);
    while (waitpid(pid, &status, WNOHANG) == 0) {
        ck_assert_msg(!itest_expired(&deadline), "the writer did not stop");
        itest_sleep_ms(ITEST_POLL_MS);
    }
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM,
                  "the writer failed by itself (status %d)", status);
}
