/* settings: the exec plugin's settings for the child (see settings.h). */
#include "settings.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command.h"
#include "trust.h"

#define TIMEOUT_MAX_MS 3600000 /* the largest ack_timeout_ms */

const walnotify_setting exec_declared[] = {
    {.name = "command",
     .type = WALNOTIFY_SETTING_LIST,
     .default_value = NULL,
     .description = "the program and its arguments, run without a shell (searched in PATH "
                    "unless it holds a slash; it must be changeable only by root or walnotify's "
                    "user)"},
    {.name = "env",
     .type = WALNOTIFY_SETTING_LIST,
     .default_value = "",
     .description = "NAME=value entries added to the child's environment; a bare NAME passes "
                    "walnotify's own NAME (needed for PG* variables, which are not inherited)"},
    {.name = "cwd",
     .type = WALNOTIFY_SETTING_PATH,
     .default_value = ".",
     .description = "the folder the child starts in (default: the configuration file's)"},
    {.name = "ack_timeout_ms",
     .type = WALNOTIFY_SETTING_INTEGER,
     .default_value = "30000",
     .description = "how long (ms) walnotify waits while the child makes no progress (no new "
                    "acknowledgement, its input not taken) before it restarts the child"},
    {.name = NULL},
};

/* ---- checks ---------------------------------------------------------------------------------- */

static bool env_name_char(char c, bool first)
{
    if (c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
        return true;
    return !first && c >= '0' && c <= '9';
}

/* NAME=value or a bare NAME, NAME a portable environment variable name. */
static bool valid_env_entry(const char *entry)
{
    size_t i = 0;

    while (entry[i] != '\0' && entry[i] != '=') {
        if (!env_name_char(entry[i], i == 0))
            return false;
        i++;
    }
    return i > 0;
}

static walnotify_status check_command(const walnotify_host *host)
{
    size_t n = host->get_list_length(host, "command");

    if (n == 0) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting \"command\" is empty: name the program to run, e.g. "
                  "[ \"python3\", \"sink.py\" ]");
        return WALNOTIFY_FATAL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *item = host->get_list_item(host, "command", i);

        if (item == NULL || (i == 0 && item[0] == '\0')) {
            host->log(host, WALNOTIFY_LOG_ERROR,
                      "setting \"command\": item %zu is empty: it must name the program", i + 1);
            return WALNOTIFY_FATAL;
        }
    }
    return WALNOTIFY_OK;
}

static walnotify_status check_env(const walnotify_host *host)
{
    size_t n = host->get_list_length(host, "env");

    for (size_t i = 0; i < n; i++) {
        const char *item = host->get_list_item(host, "env", i);

        if (item == NULL || !valid_env_entry(item)) {
            host->log(host, WALNOTIFY_LOG_ERROR,
                      "setting \"env\": item %zu \"%s\" is not NAME=value or NAME (NAME: "
                      "letters, digits and underscores, not starting with a digit)",
                      i + 1, item ? item : "");
            return WALNOTIFY_FATAL;
        }
    }
    return WALNOTIFY_OK;
}

char **exec_settings_argv(const walnotify_host *host)
{
    size_t n = host->get_list_length(host, "command");
    char **argv = calloc(n + 1, sizeof *argv);

    if (argv == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        argv[i] = (char *)host->get_list_item(host, "command", i);
    return argv;
}

/*
 * The program, resolved into program (PATH_MAX bytes) once and for all, and held to the rule
 * for what walnotify runs: walnotify often runs as root, and whoever can change the program or
 * the script it runs would run code as walnotify's user.
 */
walnotify_status exec_settings_program(const walnotify_host *host, const char *cwd, char *program)
{
    char why[PATH_MAX + 256];
    char **argv = exec_settings_argv(host);
    bool trusted;

    if (argv == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return WALNOTIFY_FATAL;
    }
    if (!exec_command_resolve(argv[0], cwd, program, PATH_MAX, why, sizeof why)) {
        host->log(host, WALNOTIFY_LOG_ERROR, "setting \"command\": cannot run \"%s\": %s", argv[0],
                  why);
        free(argv);
        return WALNOTIFY_FATAL;
    }
    trusted = exec_command_trusted(program, argv, cwd, why, sizeof why);
    if (!trusted)
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting \"command\": refusing to run \"%s\": %s (set %s=1 to allow this "
                  "in a development tree)",
                  argv[0], why, WN_ALLOW_UNSAFE_PATHS_ENV);
    free(argv);
    return trusted ? WALNOTIFY_OK : WALNOTIFY_FATAL;
}

/* Checks the settings, and the program they name; no side effects (called by --check-config
 * and before init). */
walnotify_status exec_settings_check(const walnotify_host *host)
{
    int64_t timeout = host->get_integer(host, "ack_timeout_ms");
    const char *cwd = host->get_string(host, "cwd");
    char program[PATH_MAX];

    if (check_command(host) != WALNOTIFY_OK || check_env(host) != WALNOTIFY_OK)
        return WALNOTIFY_FATAL;
    if (timeout < 1 || timeout > TIMEOUT_MAX_MS) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting \"ack_timeout_ms\" is %" PRId64 ": it must be 1 to %d", timeout,
                  TIMEOUT_MAX_MS);
        return WALNOTIFY_FATAL;
    }
    if (cwd == NULL || cwd[0] == '\0') {
        host->log(host, WALNOTIFY_LOG_ERROR, "setting \"cwd\" is empty: name a folder");
        return WALNOTIFY_FATAL;
    }
    return exec_settings_program(host, cwd, program);
}

/* ---- the child's command and environment ----------------------------------------------------- */

static size_t name_length(const char *entry)
{
    const char *eq = strchr(entry, '=');

    return eq ? (size_t)(eq - entry) : strlen(entry);
}

/* Puts entry into envp (n entries), replacing one of the same name; returns the new count. */
static size_t env_put(char **envp, size_t n, char *entry)
{
    size_t len = name_length(entry);

    for (size_t i = 0; i < n; i++) {
        if (name_length(envp[i]) == len && strncmp(envp[i], entry, len) == 0) {
            envp[i] = entry;
            return n;
        }
    }
    envp[n] = entry;
    return n + 1;
}

/* PGPASSWORD, PGPASSFILE, PGHOST, PGSSLKEY…: how walnotify itself reaches PostgreSQL, which a
 * child has no business knowing unless its block says so. */
static bool connection_variable(const char *entry)
{
    return strncmp(entry, "PG", 2) == 0;
}

/* walnotify's own entry of that name (a bare NAME of the `env` setting), or NULL. */
static char *own_entry(const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; environ != NULL && environ[i] != NULL; i++) {
        if (name_length(environ[i]) == len && strncmp(environ[i], name, len) == 0)
            return environ[i];
    }
    return NULL;
}

/* walnotify's environment without its connection variables, with the `env` setting's entries
 * added (a later one wins): NAME=value sets NAME, a bare NAME passes walnotify's own. */
char **exec_settings_envp(const walnotify_host *host)
{
    size_t inherited = 0, added = host->get_list_length(host, "env"), n = 0;
    char **envp;

    while (environ != NULL && environ[inherited] != NULL)
        inherited++;
    envp = calloc(inherited + added + 1, sizeof *envp);
    if (envp == NULL)
        return NULL;
    for (size_t i = 0; i < inherited; i++) {
        if (!connection_variable(environ[i]))
            envp[n++] = environ[i];
    }
    for (size_t i = 0; i < added; i++) {
        char *entry = (char *)host->get_list_item(host, "env", i);

        if (strchr(entry, '=') == NULL)
            entry = own_entry(entry);
        if (entry != NULL)
            n = env_put(envp, n, entry);
    }
    envp[n] = NULL;
    return envp;
}
