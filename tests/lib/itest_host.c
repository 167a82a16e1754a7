/* itest_host: running walnotify; see itest_host.h. */
#include "itest_host.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest_files.h"
#include "itest_fork.h"
#include "itest_slot.h"

#define MAX_HOST_ARGS 32
#define MAX_WRAPPER_ARGS 32 /* words of WN_HOST_WRAPPER */

static void exec_host(const char *out, const char *err, const char *const *argv)
{
    int fd_in = open("/dev/null", O_RDONLY);
    int fd_out = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fd_err = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    /* The host dies with the test, so a failed test leaves nothing running. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (fd_in < 0 || fd_out < 0 || fd_err < 0 || dup2(fd_in, 0) < 0 || dup2(fd_out, 1) < 0 ||
        dup2(fd_err, 2) < 0)
        _exit(126);
    /* Relative paths must resolve against the configuration's folder, not ours. */
    if (chdir("/") != 0)
        _exit(126);
    /* A wrapper (WN_HOST_WRAPPER) is found on PATH; build/walnotify is an absolute path. */
    execvp(argv[0], (char *const *)argv);
    dprintf(2, "itest: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/*
 * Splits WN_HOST_WRAPPER (e.g. "valgrind --error-exitcode=99 --leak-check=full") at blanks into
 * argv, the words kept in words; returns how many. No quoting: a word cannot hold a blank.
 */
static size_t wrapper_args(char *words, size_t size, const char **argv)
{
    const char *wrapper = getenv("WN_HOST_WRAPPER");
    char *saved = NULL;
    size_t n = 0;

    if (wrapper == NULL)
        return 0;
    ck_assert_msg(strlen(wrapper) < size, "WN_HOST_WRAPPER is longer than %zu bytes", size - 1);
    strcpy(words, wrapper);
    for (char *w = strtok_r(words, " \t", &saved); w != NULL; w = strtok_r(NULL, " \t", &saved)) {
        ck_assert_msg(n < MAX_WRAPPER_ARGS, "WN_HOST_WRAPPER has more than %d words",
                      MAX_WRAPPER_ARGS);
        argv[n++] = w;
    }
    return n;
}

void itest_host_start(itest_ctx *ctx, itest_host *host, const char *const *args)
{
    itest_path program = itest_root_file("build/walnotify");
    const char *argv[MAX_WRAPPER_ARGS + MAX_HOST_ARGS + 2];
    char words[1024];
    char name[64];
    size_t n;

    memset(host, 0, sizeof *host);
    ck_assert_msg(access(program.s, X_OK) == 0, "%s is not built: run make first", program.s);
    n = wrapper_args(words, sizeof words, argv);
    argv[n++] = program.s;
    for (size_t i = 0; args[i] != NULL; i++) {
        ck_assert_msg(i < MAX_HOST_ARGS, "too many host arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    ctx->runs++;
    snprintf(name, sizeof name, "host%d.out", ctx->runs);
    host->out = itest_file(ctx, name);
    snprintf(name, sizeof name, "host%d.err", ctx->runs);
    host->err = itest_file(ctx, name);
    host->status = -1;
    host->pid = itest_fork();
    if (host->pid == 0)
        exec_host(host->out.s, host->err.s, argv);
}

int itest_exit_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

bool itest_host_running(itest_host *host)
{
    int status;
    pid_t got;

    if (host->pid == 0)
        return false;
    got = waitpid(host->pid, &status, WNOHANG);
    ck_assert_msg(got >= 0, "waitpid: %s", strerror(errno));
    if (got == 0)
        return true;
    host->status = itest_exit_status(status);
    host->pid = 0;
    return false;
}

int itest_host_wait(itest_host *host, int timeout_s)
{
    itest_deadline deadline = itest_deadline_in(timeout_s * 1000);

    while (itest_host_running(host)) {
        if (itest_expired(&deadline)) {
            char *err;
            kill(host->pid, SIGKILL);
            waitpid(host->pid, NULL, 0);
            host->pid = 0;
            err = itest_host_stderr(host);
            ck_abort_msg("walnotify did not exit within %d s (killed); stderr ends: %s", timeout_s,
                         err ? err + (strlen(err) > 1500 ? strlen(err) - 1500 : 0) : "");
        }
        itest_sleep_ms(ITEST_POLL_MS);
    }
    return host->status;
}

int itest_host_stop(itest_host *host, int sig)
{
    if (itest_host_running(host))
        ck_assert_msg(kill(host->pid, sig) == 0, "kill: %s", strerror(errno));
    return itest_host_wait(host, ITEST_WAIT_S);
}

char *itest_host_stderr(const itest_host *host)
{
    return itest_read_file(host->err.s, NULL);
}

char *itest_host_stdout(const itest_host *host)
{
    return itest_read_file(host->out.s, NULL);
}

void itest_assert_exit(const itest_host *host, int code)
{
    char *err;
    size_t length;

    if (host->status == code)
        return;
    err = itest_host_stderr(host);
    length = err ? strlen(err) : 0;
    ck_abort_msg("walnotify exited %d, expected %d; stderr ends:\n%s", host->status, code,
                 err ? err + (length > 2000 ? length - 2000 : 0) : "(none)");
}

void itest_create_slot(itest_ctx *ctx, const char *conf)
{
    itest_host host;

    itest_host_run(ctx, &host, "--create-slot", "-c", conf);
    itest_assert_exit(&host, 0);
}

wn_lsn itest_run_to_now(itest_ctx *ctx, const char *conf)
{
    itest_host host;
    wn_lsn end = itest_current_lsn(ctx->conn);
    char *text = itest_lsn_text(end);

    itest_host_run(ctx, &host, "-c", conf, "--endpos", text);
    free(text);
    itest_assert_exit(&host, 0);
    return end;
}

void itest_assert_reason(const itest_host *host)
{
    size_t length = 0;
    char *err = itest_read_file(host->err.s, &length);
    size_t start;

    ck_assert_msg(err != NULL && length > 0, "walnotify exited %d with nothing on stderr",
                  host->status);
    ck_assert_msg(err[length - 1] == '\n', "walnotify's stderr does not end with a newline: %s",
                  err);
    start = length - 1;
    while (start > 0 && err[start - 1] != '\n')
        start--;
    ck_assert_msg(length - 1 - start > 0, "walnotify's stderr ends with an empty line");
    free(err);
}

void itest_assert_failed(const itest_host *host, int code)
{
    ck_assert_msg(code != 0, "itest_assert_failed is for non-zero exit codes");
    itest_assert_exit(host, code);
    itest_assert_reason(host);
}
