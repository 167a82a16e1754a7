/*
 * trust: whether a file walnotify reads could have been changed by someone other than root or the
 * user it runs as: a plugin it loads (that code runs as walnotify), a configuration holding a
 * password (it could send that password elsewhere).
 */
#ifndef WN_TRUST_H
#define WN_TRUST_H

#include <stdbool.h>
#include <stddef.h>

/* The environment variable that turns the ownership and mode checks of plugin files and of a
 * configuration file holding a password off, when set to "1" (development trees). */
#define WN_ALLOW_UNSAFE_PATHS_ENV "WALNOTIFY_ALLOW_UNSAFE_PATHS"

/*
 * Whether path, and every folder above it up to "/", can be changed only by root or by the
 * user walnotify runs as (as OpenSSH's StrictModes): each owned by root or that user, and none
 * writable by its group or everyone, except a folder with the sticky bit (as /tmp) whose entry
 * on the way is owned by root or that user. A symbolic link as the last component is followed,
 * and the folder holding the link is checked too. Otherwise false with one line in why naming
 * the path, and its owner or mode.
 */
bool wn_trust_path(const char *path, char *why, size_t whylen);

/* True when WALNOTIFY_ALLOW_UNSAFE_PATHS=1 is in the environment. */
bool wn_trust_unsafe_allowed(void);

#endif
