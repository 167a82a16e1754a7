/*
 * conftext: reads the configuration file whole and follows its @include directives before
 * libconfig does, so that what libconfig reads is bounded and stays in the configuration's
 * folder. Every error is one line naming the file and, where there is one, the line.
 */
#include "conftext.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A configuration file is a few kilobytes; anything this big is a mistake, not a config. */
#define CONFIG_MAX_BYTES (1024 * 1024) /* the file with everything it includes */
#define INCLUDE_DEPTH_MAX 10           /* libconfig's own limit */

typedef struct reader {
    const char *path; /* the configuration file as given, for messages */
    wn_conftext *out; /* what is read so far */
    size_t total;     /* bytes of the configuration and of its includes so far */
    char *err;
    size_t errlen;
} reader;

/* ---- messages --------------------------------------------------------------------------- */

/* A message must stay one line whatever the file name or libconfig said. */
static void flatten(char *text)
{
    for (; *text != '\0'; text++) {
        if ((unsigned char)*text < 0x20 || *text == 0x7f)
            *text = '?';
    }
}

void wn_conftext_verror(char *err, size_t errlen, const char *file, int line, const char *format,
                        va_list args)
{
    int n;

    if (err == NULL || errlen == 0)
        return;
    if (line > 0)
        n = snprintf(err, errlen, "%s:%d: ", file, line);
    else
        n = snprintf(err, errlen, "%s: ", file);
    if (n >= 0 && (size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, format, args);
    flatten(err);
}

/* "FILE:LINE: message" about file (the configuration or an included one); line 0: "FILE: ". */
static int fail_line_in(reader *r, const char *file, int line, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_line_in(reader *r, const char *file, int line, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    wn_conftext_verror(r->err, r->errlen, file, line, format, args);
    va_end(args);
    return -1;
}

/* The configuration file as a whole, or one of its lines. */
#define fail_file(r, ...) fail_line_in((r), (r)->path, 0, __VA_ARGS__)
#define fail_line(r, line, ...) fail_line_in((r), (r)->path, (line), __VA_ARGS__)

static int fail_nomem(reader *r)
{
    return fail_file(r, "out of memory");
}

/* ---- the configuration file ------------------------------------------------------------- */

/* Reads the whole file, NUL-terminated; a NUL inside would silently cut libconfig's input. */
static int read_text(reader *r, char **out)
{
    size_t size = 0, cap = 4096;
    char *text = NULL;
    int fd;
    int rc = -1;

    *out = NULL;
    fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_file(r, "cannot read: %s", strerror(errno));
    text = malloc(cap);
    if (text == NULL) {
        fail_nomem(r);
        goto close_fd;
    }
    for (;;) {
        ssize_t n;

        if (size + 1 == cap) {
            char *bigger;

            if (cap > CONFIG_MAX_BYTES) {
                fail_file(r, "cannot read: larger than %d bytes", CONFIG_MAX_BYTES);
                goto free_text;
            }
            bigger = realloc(text, cap * 2);
            if (bigger == NULL) {
                fail_nomem(r);
                goto free_text;
            }
            text = bigger;
            cap *= 2;
        }
        n = read(fd, text + size, cap - size - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail_file(r, "cannot read: %s", strerror(errno));
            goto free_text;
        }
        if (n == 0)
            break;
        size += (size_t)n;
    }
    text[size] = '\0';
    if (strlen(text) != size) {
        int line = 1;

        for (const char *p = text; *p != '\0'; p++)
            line += *p == '\n';
        fail_line(r, line, "NUL byte in the file");
        goto free_text;
    }
    *out = text;
    text = NULL;
    rc = 0;
free_text:
    free(text);
close_fd:
    close(fd);
    return rc;
}

/* The absolute folder of the file: every relative path in it resolves there. */
static int config_dir(reader *r, char **out)
{
    char *copy = strdup(r->path);
    char *slash;
    const char *folder;

    *out = NULL;
    if (copy == NULL)
        return fail_nomem(r);
    slash = strrchr(copy, '/');
    if (slash == NULL) {
        folder = ".";
    } else {
        /* "/x.conf" lives in "/", not in "" */
        slash[slash == copy ? 1 : 0] = '\0';
        folder = copy;
    }
    *out = realpath(folder, NULL);
    if (*out == NULL) {
        int saved = errno;

        free(copy);
        return fail_file(r, "cannot resolve its folder: %s", strerror(saved));
    }
    free(copy);
    return 0;
}

/* ---- @include ---------------------------------------------------------------------------- */

/*
 * libconfig reads @include itself, without the size limit of the configuration file, and from
 * anywhere. Before it does, every @include is followed here: each must name a regular file in
 * the configuration's folder or below (libconfig joins even an absolute name to that folder;
 * ".." or a link leading out is refused), nested at most INCLUDE_DEPTH_MAX deep, and the file
 * with all it includes must stay within CONFIG_MAX_BYTES. The scan takes every line shaped like
 * a directive, even one libconfig would skip inside a comment: it may refuse more, never less.
 */
static int walk_includes(reader *r, const char *file, const char *text, int depth);

/* The name of the @include directive starting line (up to its end), into name; 0 when the line
 * is no directive, 1 when it is, -1 when it is one walnotify cannot follow (why set). */
static int include_directive(const char *line, const char *end, char *name, size_t namelen,
                             const char **why)
{
    const char *p = line + strspn(line, " \t");
    const char *close;

    if ((size_t)(end - p) < 9 || strncmp(p, "@include", 8) != 0 || (p[8] != ' ' && p[8] != '\t'))
        return 0;
    p += 8 + strspn(p + 8, " \t");
    if (p >= end || *p != '"')
        return 0; /* libconfig's syntax error, said by libconfig */
    close = memchr(p + 1, '"', (size_t)(end - p - 1));
    if (close == NULL)
        return 0;
    if (memchr(p + 1, '\\', (size_t)(close - p - 1)) != NULL) {
        *why = "a backslash in an @include name is not supported";
        return -1;
    }
    if ((size_t)(close - p - 1) >= namelen || close == p + 1) {
        *why = close == p + 1 ? "empty @include name" : "@include name too long";
        return -1;
    }
    memcpy(name, p + 1, (size_t)(close - p - 1));
    name[close - p - 1] = '\0';
    return 1;
}

/* Reads the included file real (already resolved) whole, within what is left of the limit. */
static int read_included(reader *r, const char *from, int line, const char *real, char **out)
{
    size_t left = CONFIG_MAX_BYTES - r->total, size = 0;
    struct stat st;
    char *text;
    int fd = open(real, O_RDONLY | O_CLOEXEC);

    *out = NULL;
    if (fd < 0)
        return fail_line_in(r, from, line, "@include %s: %s", real, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail_line_in(r, from, line, "@include %s: not a regular file", real);
    }
    if ((size_t)st.st_size > left) {
        close(fd);
        return fail_line_in(r, from, line,
                            "@include %s: the configuration with everything it includes would "
                            "pass %d bytes",
                            real, CONFIG_MAX_BYTES);
    }
    text = malloc(left + 2);
    while (text != NULL && size <= left) {
        ssize_t n = read(fd, text + size, left + 1 - size);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size += (size_t)n;
    }
    close(fd);
    if (text == NULL)
        return fail_nomem(r);
    if (size > left) {
        free(text);
        return fail_line_in(r, from, line,
                            "@include %s: the configuration with everything it includes would "
                            "pass %d bytes",
                            real, CONFIG_MAX_BYTES);
    }
    text[size] = '\0';
    r->total += size;
    *out = text;
    return 0;
}

/* Keeps a copy of real in out->included, for the checks of a file holding a password. */
static int remember_include(reader *r, const char *real)
{
    wn_conftext *out = r->out;
    char **grown = realloc(out->included, (out->nincluded + 1) * sizeof *grown);

    if (grown == NULL)
        return fail_nomem(r);
    out->included = grown;
    out->included[out->nincluded] = strdup(real);
    if (out->included[out->nincluded] == NULL)
        return fail_nomem(r);
    out->nincluded++;
    return 0;
}

/* Follows one @include name written at from:line. */
static int follow_include(reader *r, const char *from, int line, const char *name, int depth)
{
    const char *dir = r->out->dir;
    size_t dirlen = strlen(dir);
    char *joined, *real, *text = NULL;
    int rc;

    if (depth >= INCLUDE_DEPTH_MAX)
        return fail_line_in(r, from, line,
                            "@include \"%s\": nested more than %d deep (does it include itself?)",
                            name, INCLUDE_DEPTH_MAX);
    /* As libconfig opens it: the configuration's folder, "/", the name. */
    if (asprintf(&joined, "%s/%s", dir, name) < 0)
        return fail_nomem(r);
    real = realpath(joined, NULL);
    if (real == NULL) {
        rc = fail_line_in(r, from, line, "@include %s: %s", joined, strerror(errno));
        free(joined);
        return rc;
    }
    free(joined);
    if (strcmp(dir, "/") != 0 && (strncmp(real, dir, dirlen) != 0 || real[dirlen] != '/')) {
        rc = fail_line_in(r, from, line,
                          "@include \"%s\" leads to %s, outside the configuration's folder %s "
                          "(an included file must be in that folder or below)",
                          name, real, dir);
        free(real);
        return rc;
    }
    rc = read_included(r, from, line, real, &text);
    if (rc == 0)
        rc = remember_include(r, real);
    if (rc == 0)
        rc = walk_includes(r, real, text, depth + 1);
    free(text);
    free(real);
    return rc;
}

static int walk_includes(reader *r, const char *file, const char *text, int depth)
{
    char name[PATH_MAX];
    int line = 1;

    for (const char *start = text; *start != '\0'; line++) {
        const char *end = strchr(start, '\n');
        const char *why = NULL;
        int found;

        if (end == NULL)
            end = start + strlen(start);
        found = include_directive(start, end, name, sizeof name, &why);
        if (found < 0)
            return fail_line_in(r, file, line, "%s", why);
        if (found > 0 && follow_include(r, file, line, name, depth) != 0)
            return -1;
        if (*end == '\0')
            break;
        start = end + 1;
    }
    return 0;
}

/* ---- the whole text --------------------------------------------------------------------- */

void wn_conftext_free(wn_conftext *conftext)
{
    if (conftext == NULL)
        return;
    free(conftext->text);
    free(conftext->dir);
    for (size_t i = 0; i < conftext->nincluded; i++)
        free(conftext->included[i]);
    free(conftext->included);
    memset(conftext, 0, sizeof *conftext);
}

int wn_conftext_read(const char *path, wn_conftext *out, char *err, size_t errlen)
{
    reader r = {.path = path != NULL ? path : "(null)", .out = out, .err = err, .errlen = errlen};

    memset(out, 0, sizeof *out);
    if (read_text(&r, &out->text) != 0)
        return -1;
    r.total = strlen(out->text);
    if (config_dir(&r, &out->dir) != 0 || walk_includes(&r, r.path, out->text, 0) != 0) {
        wn_conftext_free(out);
        return -1;
    }
    return 0;
}
