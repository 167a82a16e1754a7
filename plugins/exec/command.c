/* command: resolving the exec plugin's program and holding it to the trust rule (see command.h). */
#include "command.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trust.h"

/* The programs that run a script named among their arguments: the script is what they run. */
static const char *const interpreters[] = {"sh",     "bash", "dash", "zsh",   "ksh",     "mksh",
                                           "python", "perl", "ruby", "php",   "lua",     "node",
                                           "nodejs", "deno", "bun",  "tclsh", "Rscript", NULL};

/* A regular file someone may execute. */
static bool executable_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0;
}

/* folder/name into out; false when it does not fit. */
static bool join(char *out, size_t outlen, const char *folder, size_t folderlen, const char *name)
{
    int n = snprintf(out, outlen, "%.*s/%s", (int)folderlen, folder, name);

    return n > 0 && (size_t)n < outlen;
}

static bool resolve_with_slash(const char *program, const char *cwd, char *path, size_t pathlen,
                               char *why, size_t whylen)
{
    bool fits = program[0] == '/' ? (size_t)snprintf(path, pathlen, "%s", program) < pathlen
                                  : join(path, pathlen, cwd, strlen(cwd), program);

    if (!fits) {
        snprintf(why, whylen, "its path is too long");
        return false;
    }
    if (!executable_file(path)) {
        snprintf(why, whylen, "%s is not an executable file", path);
        return false;
    }
    return true;
}

/* One PATH entry (entry, len bytes): true when the search ends here (found, or refused). */
static bool search_entry(const char *entry, size_t len, const char *program, const char *cwd,
                         char *path, size_t pathlen, bool *found, char *why, size_t whylen)
{
    char relative[PATH_MAX];
    int n;

    if (len > 0 && entry[0] == '/') {
        *found = join(path, pathlen, entry, len, program) && executable_file(path);
        return *found;
    }
    /* posix_spawnp would look in the working folder here: whoever writes there chooses. */
    n = len > 0 ? snprintf(relative, sizeof relative, "%s/%.*s/%s", cwd, (int)len, entry, program)
                : snprintf(relative, sizeof relative, "%s/%s", cwd, program);
    if (n <= 0 || (size_t)n >= sizeof relative || !executable_file(relative))
        return false;
    snprintf(why, whylen,
             "it is found as %s through the %s PATH entry \"%.*s\" (the working folder): name "
             "it with a path, as \"./%s\"",
             relative, len > 0 ? "relative" : "empty", (int)len, entry, program);
    *found = false;
    return true;
}

static bool resolve_in_path(const char *program, const char *cwd, char *path, size_t pathlen,
                            char *why, size_t whylen)
{
    const char *search = getenv("PATH");
    char fallback[256];
    bool found = false;

    if (search == NULL) {
        size_t n = confstr(_CS_PATH, fallback, sizeof fallback);

        search = n > 0 && n <= sizeof fallback ? fallback : "/bin:/usr/bin";
    }
    for (const char *entry = search;;) {
        size_t len = strcspn(entry, ":");

        if (search_entry(entry, len, program, cwd, path, pathlen, &found, why, whylen))
            return found;
        if (entry[len] == '\0')
            break;
        entry += len + 1;
    }
    snprintf(why, whylen, "no executable file of that name in PATH (%s)", search);
    return false;
}

bool exec_command_resolve(const char *program, const char *cwd, char *path, size_t pathlen,
                          char *why, size_t whylen)
{
    if (strchr(program, '/') != NULL)
        return resolve_with_slash(program, cwd, path, pathlen, why, whylen);
    return resolve_in_path(program, cwd, path, pathlen, why, whylen);
}

/* "python3", "python3.11", "lua5.4": an interpreter's name, with or without its version. */
static bool interpreter_name(const char *path)
{
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

    for (size_t i = 0; interpreters[i] != NULL; i++) {
        size_t len = strlen(interpreters[i]);

        if (strncmp(name, interpreters[i], len) == 0 &&
            strspn(name + len, "0123456789.") == strlen(name + len))
            return true;
    }
    return false;
}

static bool is_interpreter(const char *path)
{
    char *real;
    bool yes;

    if (interpreter_name(path))
        return true;
    real = realpath(path, NULL); /* /usr/bin/python3 is often a link to python3.11 */
    yes = real != NULL && interpreter_name(real);
    free(real);
    return yes;
}

/* The script an interpreter is given, resolved from cwd, into script; false when none. */
static bool script_of(char *const *argv, const char *cwd, char *script, size_t scriptlen)
{
    for (size_t i = 1; argv[i] != NULL; i++) {
        struct stat st;

        if (argv[i][0] == '-')
            continue;
        if (argv[i][0] == '/' ? (size_t)snprintf(script, scriptlen, "%s", argv[i]) >= scriptlen
                              : !join(script, scriptlen, cwd, strlen(cwd), argv[i]))
            return false;
        return stat(script, &st) == 0 && S_ISREG(st.st_mode);
    }
    return false;
}

bool exec_command_trusted(const char *path, char *const *argv, const char *cwd, char *why,
                          size_t whylen)
{
    char script[PATH_MAX];

    if (wn_trust_unsafe_allowed())
        return true;
    if (!wn_trust_path(path, why, whylen))
        return false;
    if (!is_interpreter(path) || !script_of(argv, cwd, script, sizeof script))
        return true;
    return wn_trust_path(script, why, whylen);
}
