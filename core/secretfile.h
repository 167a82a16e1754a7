/*
 * secretfile: reading a small file that holds a secret (a plugin's bearer token, its
 * credentials), under walnotify's rule for such a file: a regular file, opened without following
 * a symbolic link at its path, owned by root or the user walnotify runs as and writable by no one
 * else, nor any folder above it (trust.h; WALNOTIFY_ALLOW_UNSAFE_PATHS=1 turns the owner and
 * mode checks off). Compiled into the plugins that need it.
 */
#ifndef WN_SECRETFILE_H
#define WN_SECRETFILE_H

#include <stddef.h>

/*
 * The whole file (at most max_bytes) as a new NUL-terminated text, *length its bytes; the caller
 * wipes and frees it with wn_secret_free. NULL with one line in why, naming the file as
 * `setting` (the plugin setting that names it) and never quoting its content.
 */
char *wn_secret_read(const char *setting, const char *path, size_t max_bytes, size_t *length,
                     char *why, size_t whylen);

/* Overwrites length bytes of text with zeros and frees it (NULL is fine). */
void wn_secret_free(char *text, size_t length);

#endif
