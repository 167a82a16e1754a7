/*
 * settings: the exec plugin's settings, checked in one place, so that `check` (--check-config, no
 * side effects) and `init` refuse exactly the same configurations, and the child's program,
 * arguments and environment made from them.
 */
#ifndef WN_EXEC_SETTINGS_H
#define WN_EXEC_SETTINGS_H

#include <walnotify/plugin.h>

/* The settings the plugin declares, ended by a member with name NULL. */
extern const walnotify_setting exec_declared[];

/* Checks every setting, the program `command` names included (exec_settings_program); logs
 * the first problem at ERROR, naming the setting, and returns WALNOTIFY_FATAL. */
walnotify_status exec_settings_check(const walnotify_host *host);

/*
 * Resolves the command's program into program (PATH_MAX bytes), the absolute path that is run,
 * and holds it, and the script an interpreter is given, to the rule for the files walnotify runs
 * (command.h). WALNOTIFY_OK, or WALNOTIFY_FATAL after one ERROR line naming the command and why.
 */
walnotify_status exec_settings_program(const walnotify_host *host, const char *cwd, char *program);

/* The command as a NULL-terminated argv (to free; the strings are the host's), NULL when out
 * of memory. */
char **exec_settings_argv(const walnotify_host *host);

/* The child's environment: walnotify's own without its PG* variables, with the `env` entries
 * added (a later one wins): NAME=value sets NAME, a bare NAME passes walnotify's own value of
 * NAME. NULL-terminated, to free; the strings are the environment's or the host's. NULL when out
 * of memory. */
char **exec_settings_envp(const walnotify_host *host);

#endif
