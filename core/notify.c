/* notify: systemd's notify socket, written to directly. */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MESSAGE_MAX 1024

static int64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* NOTIFY_SOCKET into addr: an absolute path, or '@' for the abstract namespace. */
static bool socket_address(wn_notify *notify, const char *name)
{
    size_t len = strlen(name);

    if ((name[0] != '/' && name[0] != '@') || len < 2 || len >= sizeof notify->addr.sun_path)
        return false;
    memset(&notify->addr, 0, sizeof notify->addr);
    notify->addr.sun_family = AF_UNIX;
    memcpy(notify->addr.sun_path, name, len);
    if (name[0] == '@')
        notify->addr.sun_path[0] = '\0';
    notify->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    return true;
}

/* WATCHDOG_USEC, when WATCHDOG_PID is absent or names this process: pings at half of it. */
static int64_t watchdog_every_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    char *end;
    unsigned long long value;

    if (usec == NULL)
        return 0;
    if (pid != NULL && strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    errno = 0;
    value = strtoull(usec, &end, 10);
    if (errno != 0 || *end != '\0' || value == 0) {
        wn_log(WN_LOG_WARNING, "WATCHDOG_USEC \"%s\" is not a number of microseconds; no watchdog",
               usec);
        return 0;
    }
    return value / 2000 > 0 ? (int64_t)(value / 2000) : 1;
}

void wn_notify_open(wn_notify *notify)
{
    const char *name = getenv("NOTIFY_SOCKET");

    memset(notify, 0, sizeof *notify);
    notify->fd = -1;
    if (name == NULL)
        return;
    if (!socket_address(notify, name)) {
        wn_log(WN_LOG_WARNING, "NOTIFY_SOCKET \"%s\" is not a socket path; not notifying systemd",
               name);
        return;
    }
    notify->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (notify->fd < 0) {
        wn_log(WN_LOG_WARNING, "cannot make a socket for NOTIFY_SOCKET: %s", strerror(errno));
        return;
    }
    notify->watchdog_every_ms = watchdog_every_ms();
    notify->next_ping_ms = monotonic_ms() + notify->watchdog_every_ms;
}

void wn_notify_close(wn_notify *notify)
{
    if (notify->fd >= 0)
        close(notify->fd);
    notify->fd = -1;
}

static void send_text(wn_notify *notify, const char *text)
{
    /* Never waits: a listener that does not read must not stall the dispatching thread (a
     * message it misses is its loss, and the next ping comes anyway). */
    if (sendto(notify->fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT,
               (struct sockaddr *)&notify->addr, notify->addrlen) < 0)
        wn_log(WN_LOG_DEBUG, "notify socket: %s", strerror(errno));
}

void wn_notify_status(wn_notify *notify, const char *format, ...)
{
    char text[MESSAGE_MAX];
    int used;
    va_list args;

    if (notify == NULL || notify->fd < 0)
        return;
    used = snprintf(text, sizeof text, "%sSTATUS=", notify->ready ? "" : "READY=1\n");
    va_start(args, format);
    vsnprintf(text + used, sizeof text - (size_t)used, format, args);
    va_end(args);
    /* STATUS is one line: a newline in a reason would start another key. */
    for (char *c = text + used; *c != '\0'; c++)
        if (*c == '\n')
            *c = ' ';
    send_text(notify, text);
    notify->ready = true;
    notify->next_progress_ms = monotonic_ms() + WN_NOTIFY_PROGRESS_MS;
}

void wn_notify_progress(wn_notify *notify, const char *slot, const char *lsn)
{
    int64_t now;

    if (notify == NULL || notify->fd < 0)
        return;
    now = monotonic_ms();
    if (now < notify->next_progress_ms)
        return;
    wn_notify_status(notify, "streaming slot \"%s\" at %s", slot, lsn);
}

void wn_notify_alive(wn_notify *notify, int64_t now_ms)
{
    if (notify == NULL || notify->watchdog_every_ms == 0 || now_ms < notify->next_ping_ms)
        return;
    notify->next_ping_ms = now_ms + notify->watchdog_every_ms;
    send_text(notify, "WATCHDOG=1");
}

int wn_notify_wait_ms(const wn_notify *notify, int ms)
{
    if (notify == NULL || notify->watchdog_every_ms == 0 || ms <= notify->watchdog_every_ms)
        return ms;
    return (int)notify->watchdog_every_ms;
}

void wn_notify_reloading(wn_notify *notify)
{
    char text[MESSAGE_MAX];

    if (notify == NULL || notify->fd < 0)
        return;
    snprintf(text, sizeof text, "RELOADING=1\nMONOTONIC_USEC=%lld",
             (long long)monotonic_ms() * 1000);
    send_text(notify, text);
}

void wn_notify_reloaded(wn_notify *notify)
{
    if (notify != NULL && notify->fd >= 0)
        send_text(notify, "READY=1");
}

void wn_notify_stopping(wn_notify *notify)
{
    if (notify != NULL && notify->fd >= 0)
        send_text(notify, "STOPPING=1");
}
