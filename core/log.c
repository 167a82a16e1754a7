/* log: one line per message on standard error. */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static atomic_int current_level = WN_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

void wn_log_set_level(wn_log_level level)
{
    atomic_store(&current_level, (int)level);
}

wn_log_level wn_log_get_level(void)
{
    return (wn_log_level)atomic_load(&current_level);
}

bool wn_log_level_parse(const char *text, wn_log_level *level)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(text, names[i]) == 0) {
            *level = (wn_log_level)i;
            return true;
        }
    }
    return false;
}

/* Copies the message text into line[*used..] (room bytes in all, one kept for the newline),
 * each line break or tab as a space and every other control byte as \xNN: a message may quote
 * a server's or a child's words, and a terminal reading the log must not obey them. */
static void append_escaped(char *line, size_t *used, size_t room, const char *text)
{
    static const char hex[] = "0123456789abcdef";

    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t') {
            if (*used + 2 > room)
                return;
            line[(*used)++] = ' ';
        } else if (*p < 0x20 || *p == 0x7f) {
            if (*used + 5 > room)
                return;
            line[(*used)++] = '\\';
            line[(*used)++] = 'x';
            line[(*used)++] = hex[*p >> 4];
            line[(*used)++] = hex[*p & 0xf];
        } else {
            if (*used + 2 > room)
                return;
            line[(*used)++] = (char)*p;
        }
    }
}

/* Writes one line "TIME walnotify[PID] LEVEL: PREFIXmessage" to standard error. */
static void write_line(const char *level_name, const char *prefix, const char *format, va_list args)
    __attribute__((format(printf, 3, 0)));

static void write_line(const char *level_name, const char *prefix, const char *format, va_list args)
{
    char line[LOG_LINE_MAX];
    char text[LOG_LINE_MAX];
    struct timeval now;
    struct tm utc;
    size_t used;
    int n;

    gettimeofday(&now, NULL);
    gmtime_r(&now.tv_sec, &utc);
    used = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &utc);
    n = snprintf(line + used, sizeof line - used,
                 ".%03ldZ walnotify[%ld] %s: ", (long)(now.tv_usec / 1000), (long)getpid(),
                 level_name);
    if (n > 0)
        used += (size_t)n < sizeof line - used ? (size_t)n : sizeof line - used - 1;
    append_escaped(line, &used, sizeof line, prefix ? prefix : "");
    if (vsnprintf(text, sizeof text, format, args) < 0)
        text[0] = '\0';
    append_escaped(line, &used, sizeof line, text);
    line[used++] = '\n';
    /* One write per line, so that lines of two threads never interleave. */
    if (write(STDERR_FILENO, line, used) < 0)
        return;
}

void wn_logv(wn_log_level level, const char *prefix, const char *format, va_list args)
{
    if ((int)level < atomic_load(&current_level))
        return;
    write_line(level_names[level], prefix, format, args);
}

void wn_log(wn_log_level level, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    wn_logv(level, NULL, format, args);
    va_end(args);
}

int wn_die(int status, const char *format, ...)
{
    va_list args;

    /* The reason of an exit is shown whatever log_level says. */
    va_start(args, format);
    write_line("FATAL", NULL, format, args);
    va_end(args);
    return status;
}
