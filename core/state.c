/* state: the local progress file, read once per connection and replaced atomically. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"

#define STATE_MAGIC "walnotify-state 1"
#define STATE_SIZE_MAX 4096 /* far more than a valid file needs */
#define SYSID_DIGITS_MAX 20 /* 18446744073709551615 */
/* A temporary file beside the state file lives for one write and fsync; one an hour old was left
 * by a crash, not by a host of an active/standby pair writing right now. */
#define STATE_TEMP_STALE_S 3600L

enum { KEY_SYSTEM, KEY_DATABASE, KEY_SLOT, KEY_LSN, KEY_SNAPSHOT, NKEYS };
static const char *const key_names[NKEYS] = {"system_identifier", "database", "slot", "lsn",
                                             "snapshot"};
#define KEY_OPTIONAL(k) ((k) == KEY_SNAPSHOT)

typedef struct parser {
    const char *path;
    int line;
    char *err;
    size_t errlen;
} parser;

static int bad(parser *p, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* "FILE:LINE: message" into err; returns -1. */
static int bad(parser *p, const char *format, ...)
{
    char message[512];
    va_list args;

    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    snprintf(p->err, p->errlen, "%s:%d: %s", p->path, p->line, message);
    return -1;
}

static bool parse_sysid(const char *text, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = strlen(text);

    if (n == 0 || n > SYSID_DIGITS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned digit;

        if (text[i] < '0' || text[i] > '9')
            return false;
        digit = (unsigned)(text[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *out = v;
    return v != 0;
}

/* A database or slot name as PostgreSQL could have made it: 1 to 63 bytes, no control bytes. */
static bool valid_name(const char *text)
{
    size_t n = strlen(text);

    if (n == 0 || n >= WN_STATE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            return false;
    }
    return true;
}

static int parse_pair(parser *p, char *line, wn_state *state, bool *seen)
{
    char *eq = strchr(line, '=');
    const char *value;
    int key = -1;

    if (!eq)
        return bad(p, "expected key=value, found \"%.60s\"", line);
    *eq = '\0';
    value = eq + 1;
    for (int k = 0; k < NKEYS; k++) {
        if (strcmp(line, key_names[k]) == 0)
            key = k;
    }
    if (key < 0)
        return bad(p,
                   "unknown key \"%.60s\" (expected system_identifier, database, slot, lsn, "
                   "snapshot)",
                   line);
    if (seen[key])
        return bad(p, "\"%s\" given twice", key_names[key]);
    seen[key] = true;
    switch (key) {
    case KEY_SYSTEM:
        if (!parse_sysid(value, &state->system_identifier))
            return bad(p, "system_identifier \"%.60s\" is not a positive decimal number", value);
        break;
    case KEY_DATABASE:
    case KEY_SLOT:
        if (!valid_name(value))
            return bad(p, "%s \"%.60s\" is not a name of 1 to 63 bytes", key_names[key], value);
        snprintf(key == KEY_DATABASE ? state->database : state->slot, WN_STATE_NAME_MAX, "%s",
                 value);
        break;
    case KEY_SNAPSHOT:
        if (!wn_lsn_parse(value, &state->snapshot) || state->snapshot == WN_LSN_INVALID)
            return bad(p, "snapshot \"%.60s\" is not a WAL position like 0/1A2B3C8", value);
        break;
    default:
        if (!wn_lsn_parse(value, &state->lsn) || state->lsn == WN_LSN_INVALID)
            return bad(p, "lsn \"%.60s\" is not a WAL position like 0/1A2B3C8", value);
        break;
    }
    return 0;
}

/* Parses the whole text (NUL-terminated, modified in place). */
static int parse(parser *p, char *text, wn_state *state)
{
    bool seen[NKEYS] = {false};
    char *next = text;

    p->line = 0;
    while (*next) {
        char *line = next;
        char *nl = strchr(line, '\n');

        p->line++;
        if (nl) {
            *nl = '\0';
            next = nl + 1;
        } else {
            next = line + strlen(line);
        }
        if (p->line == 1) {
            if (strcmp(line, STATE_MAGIC) != 0)
                return bad(p, "not a walnotify state file (the first line must be \"%s\")",
                           STATE_MAGIC);
            continue;
        }
        if (line[0] == '\0')
            return bad(p, "empty line");
        if (parse_pair(p, line, state, seen) != 0)
            return -1;
    }
    if (p->line == 0) {
        p->line = 1;
        return bad(p, "empty file: not a walnotify state file");
    }
    for (int k = 0; k < NKEYS; k++) {
        if (!seen[k] && !KEY_OPTIONAL(k))
            return bad(p, "no \"%s\" line before the end of the file", key_names[k]);
    }
    return 0;
}

/* false, with err set, unless fd is a regular file. */
static bool is_regular(int fd, const char *path, char *err, size_t errlen)
{
    struct stat sb;

    if (fstat(fd, &sb) != 0) {
        snprintf(err, errlen, "%s: cannot stat the state file: %s", path, strerror(errno));
        return false;
    }
    if (S_ISREG(sb.st_mode))
        return true;
    snprintf(err, errlen,
             "%s: the state file is %s, not a regular file: give source.state_file the path of "
             "a regular file (walnotify creates it)",
             path, wn_files_kind(sb.st_mode));
    return false;
}

int wn_state_read(const char *path, wn_state *state, bool *exists, char *err, size_t errlen)
{
    parser p = {.path = path, .err = err, .errlen = errlen};
    char *text = NULL;
    ssize_t got;
    size_t used = 0;
    int fd, status = -1;

    memset(state, 0, sizeof *state);
    *exists = false;
    wn_files_remove_stale_temps(path, STATE_TEMP_STALE_S);
    /* A link there would be replaced by a file at the first write: refuse it now instead.
     * O_NONBLOCK: a FIFO there must be refused, not waited on for a writer that never comes. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: cannot open the state file: %s", path,
                 wn_files_reason(path, errno));
        return -1;
    }
    if (!is_regular(fd, path, err, errlen))
        goto close_file;
    text = malloc(STATE_SIZE_MAX + 1);
    if (!text) {
        snprintf(err, errlen, "%s: out of memory reading the state file", path);
        goto close_file;
    }
    while ((got = read(fd, text + used, STATE_SIZE_MAX + 1 - used)) > 0)
        used += (size_t)got;
    if (got < 0) {
        snprintf(err, errlen, "%s: cannot read the state file: %s", path, strerror(errno));
        goto free_text;
    }
    if (used > STATE_SIZE_MAX) {
        snprintf(err, errlen, "%s: larger than %d bytes: not a walnotify state file", path,
                 STATE_SIZE_MAX);
        goto free_text;
    }
    text[used] = '\0';
    if (strlen(text) != used) {
        p.line = 1;
        bad(&p, "holds a NUL byte: not a walnotify state file");
        goto free_text;
    }
    if (parse(&p, text, state) != 0) {
        memset(state, 0, sizeof *state);
        goto free_text;
    }
    *exists = true;
    status = 0;
free_text:
    free(text);
close_file:
    close(fd);
    return status;
}

int wn_state_write(const char *path, const wn_state *state, char *err, size_t errlen)
{
    char text[512], lsn[WN_LSN_TEXT_MAX], snapshot[WN_LSN_TEXT_MAX + 16] = "";
    int n;

    if (!valid_name(state->database) || !valid_name(state->slot)) {
        snprintf(err, errlen, "%s: the database or slot name cannot be written to a state file",
                 path);
        return EINVAL;
    }
    if (state->snapshot != WN_LSN_INVALID)
        snprintf(snapshot, sizeof snapshot, "snapshot=%s\n", wn_lsn_format(state->snapshot, lsn));
    n = snprintf(text, sizeof text,
                 STATE_MAGIC "\nsystem_identifier=%" PRIu64 "\ndatabase=%s\nslot=%s\nlsn=%s\n%s",
                 state->system_identifier, state->database, state->slot,
                 wn_lsn_format(state->lsn, lsn), snapshot);
    if (n < 0 || (size_t)n >= sizeof text) {
        snprintf(err, errlen, "%s: content too long for the state file", path);
        return EINVAL;
    }
    return wn_files_replace(path, text, (size_t)n, WN_FILES_MODE, "state file", err, errlen);
}

bool wn_state_write_failure_is_setup(int err)
{
    switch (err) {
    case ENOENT:  /* no such folder */
    case ENOTDIR: /* a file where a folder should be */
    case EACCES:  /* no right to create or replace it */
    case EPERM:
    case EISDIR:       /* a folder at the path */
    case ELOOP:        /* links looping in the folders */
    case ENAMETOOLONG: /* the path */
    case EINVAL:       /* the content: a name no state file can hold */
        return true;
    default:
        return false; /* ENOSPC, EDQUOT, EIO, EROFS, ENOMEM: the machine's, for now */
    }
}

bool wn_state_same_origin(const wn_state *expected, const wn_state *actual, const char *path,
                          char *err, size_t errlen)
{
    if (expected->system_identifier == actual->system_identifier &&
        strcmp(expected->database, actual->database) == 0 &&
        strcmp(expected->slot, actual->slot) == 0)
        return true;
    if (path)
        snprintf(err, errlen,
                 "state file %s belongs to system %" PRIu64 ", database %s, slot %s; this is "
                 "system %" PRIu64 ", database %s, slot %s: remove the file if you moved the "
                 "slot on purpose",
                 path, expected->system_identifier, expected->database, expected->slot,
                 actual->system_identifier, actual->database, actual->slot);
    else
        snprintf(err, errlen,
                 "the server is now system %" PRIu64 ", database %s, slot %s, but walnotify was "
                 "streaming from system %" PRIu64 ", database %s, slot %s: not the same server; "
                 "restart walnotify if the move was on purpose",
                 actual->system_identifier, actual->database, actual->slot,
                 expected->system_identifier, expected->database, expected->slot);
    return false;
}
