/* child: starting, relaying and ending the exec plugin's child process (see child.h). */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RELAY_LINE_MAX 2048   /* bytes of one relayed line; the rest of a longer one is dropped */
#define RELAY_BURST 100       /* lines relayed in a row before the rate applies */
#define RELAY_PER_SECOND 10   /* lines relayed a second, on average, past the burst */
#define RELAY_DRAIN_MAX 65536 /* bytes read once the relay is told to stop */
#define WAIT_STEP_MS 10       /* how often a stopping child is looked at */

/* ---- standard error, relayed ----------------------------------------------------------------- */

/* The relay's own state: a line being gathered, and a token bucket that keeps a child that
 * writes without end from filling walnotify's log (and its disk). */
typedef struct relay_buf {
    char text[RELAY_LINE_MAX + 1];
    size_t len;
    bool cut;                   /* the line was longer than RELAY_LINE_MAX: skip to its end */
    long long tokens;           /* lines that may go now, in thousandths */
    long long refilled_ms;      /* when tokens was last refilled (CLOCK_MONOTONIC) */
    unsigned long long dropped; /* lines not relayed since the last one that was */
} relay_buf;

static long long monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* True when one more line may go now. */
static bool relay_take_token(relay_buf *line)
{
    long long now = monotonic_ms();

    line->tokens += (now - line->refilled_ms) * RELAY_PER_SECOND;
    if (line->tokens > RELAY_BURST * 1000LL)
        line->tokens = RELAY_BURST * 1000LL;
    line->refilled_ms = now;
    if (line->tokens < 1000)
        return false;
    line->tokens -= 1000;
    return true;
}

static void relay_say_dropped(const exec_child *child, relay_buf *line)
{
    if (line->dropped == 0)
        return;
    child->host->log(child->host, WALNOTIFY_LOG_WARNING,
                     "child %ld: %llu lines of its standard error dropped (more than %d lines "
                     "in a row, then %d a second)",
                     (long)child->pid, line->dropped, RELAY_BURST, RELAY_PER_SECOND);
    line->dropped = 0;
}

/* One log line of the instance; control characters would let a child forge log lines. */
static void relay_emit(const exec_child *child, relay_buf *line)
{
    if (!relay_take_token(line)) {
        line->dropped++;
        line->len = 0;
        return;
    }
    relay_say_dropped(child, line);
    for (size_t i = 0; i < line->len; i++) {
        unsigned char c = (unsigned char)line->text[i];

        if (c < 0x20 || c == 0x7f)
            line->text[i] = '?';
    }
    line->text[line->len] = '\0';
    child->host->log(child->host, WALNOTIFY_LOG_INFO, "child %ld: %s%s", (long)child->pid,
                     line->text, line->cut ? "... (cut)" : "");
    line->len = 0;
}

static void relay_feed(const exec_child *child, relay_buf *line, const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            if (!line->cut)
                relay_emit(child, line);
            line->cut = false;
            continue;
        }
        if (line->cut)
            continue;
        if (line->len == RELAY_LINE_MAX) {
            line->cut = true;
            relay_emit(child, line);
            continue;
        }
        line->text[line->len++] = data[i];
    }
}

/* Reads what is there, adding the bytes read to *total; false at end of file or on an error. */
static bool relay_read(const exec_child *child, relay_buf *line, size_t *total)
{
    char data[4096];
    ssize_t n = read(child->err_fd, data, sizeof data);

    if (n > 0) {
        relay_feed(child, line, data, (size_t)n);
        *total += (size_t)n;
        return true;
    }
    return n < 0 && (errno == EINTR || errno == EAGAIN);
}

/* Follows standard error until its end, or until told to stop (then drains what is left, up to
 * RELAY_DRAIN_MAX bytes: something the child left behind may write without end). */
static void *relay_main(void *arg)
{
    const exec_child *child = arg;
    relay_buf line = {.len = 0};
    bool stopping = false;
    size_t drained = 0;

    line.tokens = RELAY_BURST * 1000LL;
    line.refilled_ms = monotonic_ms();
    for (;;) {
        struct pollfd fds[2] = {{.fd = child->err_fd, .events = POLLIN},
                                {.fd = child->stop_fds[0], .events = POLLIN}};
        int ready = poll(fds, stopping ? 1 : 2, stopping ? 0 : -1);

        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            break; /* stopping and nothing left, or poll failed */
        if (!stopping && (fds[1].revents & (POLLIN | POLLHUP))) {
            stopping = true;
            drained = 0;
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && !relay_read(child, &line, &drained))
            break;
        if (stopping && drained >= RELAY_DRAIN_MAX)
            break;
    }
    if (line.len > 0 && !line.cut)
        relay_emit(child, &line);
    relay_say_dropped(child, &line);
    return NULL;
}

/* ---- starting -------------------------------------------------------------------------------- */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Signals the host leaves blocked, ignored or handled: the child starts with the defaults. */
static void default_signals(sigset_t *set)
{
    static const int signals[] = {SIGPIPE, SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,
                                  SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM, SIGTSTP};

    sigemptyset(set);
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        sigaddset(set, signals[i]);
}

static int spawn_attributes(posix_spawnattr_t *attr)
{
    sigset_t empty, defaults;
    int rc = posix_spawnattr_init(attr);

    if (rc != 0)
        return rc;
    sigemptyset(&empty);
    default_signals(&defaults);
    rc = posix_spawnattr_setsigmask(attr, &empty);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(attr, &defaults);
    /* A group of its own: a Ctrl-C at walnotify's terminal must not kill the child before
     * walnotify's own clean stop has flushed it; walnotify ends the child itself. */
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(attr, 0);
    if (rc == 0)
        rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                POSIX_SPAWN_SETPGROUP);
    if (rc != 0)
        posix_spawnattr_destroy(attr);
    return rc;
}

/* in, out, err: pipes whose child ends become 0, 1 and 2; nothing else is inherited. */
static int spawn_actions(posix_spawn_file_actions_t *actions, const int in[2], const int out[2],
                         const int err[2], const char *cwd)
{
    int rc = posix_spawn_file_actions_init(actions);

    if (rc != 0)
        return rc;
    rc = posix_spawn_file_actions_adddup2(actions, in[0], 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(actions, out[1], 1);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(actions, err[1], 2);
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(actions, 3);
    if (rc == 0 && cwd != NULL)
        rc = posix_spawn_file_actions_addchdir_np(actions, cwd);
    if (rc != 0)
        posix_spawn_file_actions_destroy(actions);
    return rc;
}

static int spawn(exec_child *child, const exec_command *command, const int in[2], const int out[2],
                 const int err[2])
{
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    int rc = spawn_attributes(&attr);

    if (rc != 0)
        return rc;
    rc = spawn_actions(&actions, in, out, err, command->cwd);
    if (rc != 0)
        goto destroy_attr;
    rc = posix_spawn(&child->pid, command->path, &actions, &attr, command->argv, command->envp);
    if (rc != 0)
        child->pid = 0;
    posix_spawn_file_actions_destroy(&actions);
destroy_attr:
    posix_spawnattr_destroy(&attr);
    return rc;
}

static int make_pipes(int in[2], int out[2], int err[2], int stop[2])
{
    if (pipe2(in, O_CLOEXEC) != 0)
        return errno;
    if (pipe2(out, O_CLOEXEC) != 0)
        return errno;
    if (pipe2(err, O_CLOEXEC) != 0)
        return errno;
    if (pipe2(stop, O_CLOEXEC) != 0)
        return errno;
    /* Our ends never block: every wait is a poll with a deadline. */
    if (fcntl(in[1], F_SETFL, O_NONBLOCK) != 0 || fcntl(out[0], F_SETFL, O_NONBLOCK) != 0 ||
        fcntl(err[0], F_SETFL, O_NONBLOCK) != 0)
        return errno;
    return 0;
}

static void close_pair(int pair[2])
{
    close_fd(&pair[0]);
    close_fd(&pair[1]);
}

int exec_child_start(exec_child *child, const exec_command *command, const walnotify_host *host)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, stop[2] = {-1, -1};
    int rc;

    memset(child, 0, sizeof *child);
    child->in_fd = child->out_fd = child->err_fd = -1;
    child->stop_fds[0] = child->stop_fds[1] = -1;
    child->host = host;
    rc = make_pipes(in, out, err, stop);
    if (rc != 0) {
        host->log(host, WALNOTIFY_LOG_ERROR, "cannot make the child's pipes: %s", strerror(rc));
        goto close_pipes;
    }
    rc = spawn(child, command, in, out, err);
    if (rc != 0) {
        host->log(host, WALNOTIFY_LOG_ERROR, "cannot start command \"%s\" (%s) in %s: %s",
                  command->argv[0], command->path, command->cwd ? command->cwd : ".", strerror(rc));
        goto close_pipes;
    }
    child->in_fd = in[1];
    child->out_fd = out[0];
    child->err_fd = err[0];
    child->stop_fds[0] = stop[0];
    child->stop_fds[1] = stop[1];
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    rc = pthread_create(&child->relay, NULL, relay_main, child);
    child->relay_running = rc == 0;
    if (rc != 0)
        host->log(host, WALNOTIFY_LOG_WARNING,
                  "cannot start the thread relaying the child's standard error (%s): it is "
                  "discarded",
                  strerror(rc));
    host->log(host, WALNOTIFY_LOG_INFO, "started child %ld: %s", (long)child->pid, command->path);
    return 0;

close_pipes:
    close_pair(in);
    close_pair(out);
    close_pair(err);
    close_pair(stop);
    child->pid = 0;
    return rc;
}

/* ---- ending ---------------------------------------------------------------------------------- */

static void describe_status(int status, char *how, size_t howlen)
{
    if (WIFEXITED(status))
        snprintf(how, howlen, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(how, howlen, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(how, howlen, "ended with wait status %d", status);
}

static void sleep_ms(int ms)
{
    struct timespec step = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&step, &step) != 0 && errno == EINTR)
        ;
}

/* Waits up to grace_ms for the child to exit, without reaping it (its pid, and so its process
 * group's id, stays ours until then); true once it has. */
static bool wait_exit(pid_t pid, int grace_ms)
{
    for (int waited = 0;; waited += WAIT_STEP_MS) {
        siginfo_t info = {.si_pid = 0};

        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid)
            return true;
        if (waited >= grace_ms)
            return false;
        sleep_ms(WAIT_STEP_MS);
    }
}

static void stop_relay(exec_child *child)
{
    if (child->relay_running) {
        ssize_t n;

        do
            n = write(child->stop_fds[1], "x", 1);
        while (n < 0 && errno == EINTR);
        pthread_join(child->relay, NULL);
        child->relay_running = false;
    }
    close_fd(&child->err_fd);
    close_pair(child->stop_fds);
}

void exec_child_stop(exec_child *child, int grace_ms, char *how, size_t howlen)
{
    int status = 0;
    bool exited;

    if (child->pid <= 0) {
        snprintf(how, howlen, "was not running");
        return;
    }
    close_fd(&child->in_fd);
    exited = wait_exit(child->pid, grace_ms);
    /* The whole group: whatever the child started would hold standard error open. Sent before
     * the child is reaped, while its pid cannot name anyone else's group. */
    kill(-child->pid, SIGKILL);
    if (!exited)
        kill(child->pid, SIGKILL);
    while (waitpid(child->pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (exited)
        describe_status(status, how, howlen);
    else
        snprintf(how, howlen, "was killed after %d ms", grace_ms);
    close_fd(&child->out_fd);
    stop_relay(child);
    child->pid = 0;
}

bool exec_child_running(const exec_child *child)
{
    return child->pid > 0;
}
