/*
 * command: which file the exec plugin runs, and whether it may. The program is resolved once to
 * an absolute path (as posix_spawnp would find it, but never through the working folder) and is
 * held to the host's rule for the files it runs: changeable only by root or walnotify's user.
 */
#ifndef WN_EXEC_COMMAND_H
#define WN_EXEC_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Resolves program (the command's first item) to an absolute path in path (pathlen bytes): one
 * with a slash from cwd (absolute), one without searched in walnotify's PATH (the system's
 * default path when PATH is unset). Refuses a program found through an empty or relative PATH
 * entry (the working folder) rather than skip it. True, or false with one line in why.
 */
bool exec_command_resolve(const char *program, const char *cwd, char *path, size_t pathlen,
                          char *why, size_t whylen);

/*
 * Whether the resolved program, and, when it is an interpreter (sh, python3, node…), the script
 * it is given (its first argument not starting with '-' that names an existing file, from cwd),
 * can be changed only by root or walnotify's user (wn_trust_path). argv is the whole command,
 * NULL-terminated. Always true with WALNOTIFY_ALLOW_UNSAFE_PATHS=1. Otherwise false with one line
 * in why.
 */
bool exec_command_trusted(const char *path, char *const *argv, const char *cwd, char *why,
                          size_t whylen);

#endif
