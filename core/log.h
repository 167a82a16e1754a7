/* log: one line per message on standard error, with time and level. */
#ifndef WN_LOG_H
#define WN_LOG_H

#include <stdarg.h>
#include <stdbool.h>

typedef enum wn_log_level {
    WN_LOG_DEBUG = 0,
    WN_LOG_INFO = 1,
    WN_LOG_WARNING = 2,
    WN_LOG_ERROR = 3
} wn_log_level;

/* Lines below `level` are dropped. The default is WN_LOG_INFO. Thread-safe. */
void wn_log_set_level(wn_log_level level);
wn_log_level wn_log_get_level(void);

/* Parses "debug", "info", "warning" or "error"; false for anything else. */
bool wn_log_level_parse(const char *text, wn_log_level *level);

/* Writes one line: "2026-11-25T11:00:00.123Z walnotify[pid] LEVEL: message". Newlines in the
 * message are replaced so that a record is always one line. Thread-safe. */
void wn_log(wn_log_level level, const char *format, ...) __attribute__((format(printf, 2, 3)));
void wn_logv(wn_log_level level, const char *prefix, const char *format, va_list args)
    __attribute__((format(printf, 3, 0)));

/* Writes the one-line reason of a non-zero exit, shaped like every other line but with the level
 * FATAL and whatever the log level: "2026-11-25T11:00:00.123Z walnotify[pid] FATAL: message".
 * Returns status, so that `return wn_die(3, "...")` ends a command. Thread-safe. */
int wn_die(int status, const char *format, ...) __attribute__((format(printf, 2, 3)));

#endif
