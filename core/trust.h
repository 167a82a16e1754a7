/*
 * trust: whether a file walnotify reads could have been changed by someone other than root or the
 * user it runs as: a plugin it loads (that code runs as walnotify), a configuration file and
 * what it includes (it names the commands, addresses and files walnotify uses).
 */
#ifndef WN_TRUST_H
#define WN_TRUST_H

#include <stdbool.h>
#include <stddef.h>

/* The environment variable that turns the ownership and mode checks of plugin files and of
 * configuration files off, when set to "1" (development trees). */
#define WN_ALLOW_UNSAFE_PATHS_ENV "WALNOTIFY_ALLOW_UNSAFE_PATHS"

/*
 * Whether path can be changed or replaced only by root or by the user walnotify runs as (as
 * OpenSSH's StrictModes, component by component). The path is walked from "/" (a relative one
 * from the working folder) as the kernel resolves it, following every symbolic link wherever it
 * stands; each entry met on the way, folder, link or the file itself, must be owned by root or
 * that user, and the folder holding it must be writable by no one else, or sticky (as /tmp:
 * only an entry's owner may replace it). What the path names at the end must not be writable by
 * its group or everyone. Otherwise false with one line in why naming the entry (its canonical
 * path), and its owner or mode, or "cannot resolve PATH: reason".
 */
bool wn_trust_path(const char *path, char *why, size_t whylen);

/*
 * wn_trust_path, then the regular file the walk ended at, opened O_RDONLY | O_CLOEXEC through
 * the descriptor the walk holds (no path is resolved again), and its owner and mode checked
 * again on the open descriptor. Returns the descriptor (the caller closes it), or -1 with one
 * line in why. Needs /proc.
 */
int wn_trust_open(const char *path, char *why, size_t whylen);

/* True when WALNOTIFY_ALLOW_UNSAFE_PATHS=1 is in the environment. */
bool wn_trust_unsafe_allowed(void);

/*
 * The whole of a small file holding a secret (a token, a password), named by the plugin setting
 * `setting`, read by walnotify's rule for such files (a configuration holding a password): a
 * regular file of at most max_bytes, opened without following a symbolic link at its path
 * (whoever may replace the link would choose the secret), owned by root or walnotify's user and
 * writable by no one else, nor any folder above it (wn_trust_path; those checks, not the link's,
 * are off under WALNOTIFY_ALLOW_UNSAFE_PATHS=1). The descriptor is checked, not the name.
 * Returns a new NUL-terminated buffer (release it with wn_trust_free_secret), or NULL with one
 * line in why that names the setting and the path, never the content.
 */
char *wn_trust_read_secret(const char *setting, const char *path, size_t max_bytes, char *why,
                           size_t whylen);

/* Wipes a secret from memory and frees it. NULL is allowed. */
void wn_trust_free_secret(char *secret);

#endif
