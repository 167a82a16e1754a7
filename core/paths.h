/*
 * paths: how a path written in the configuration becomes the file walnotify opens. Every
 * relative path resolves against the configuration's folder, never the working directory.
 */
#ifndef WN_PATHS_H
#define WN_PATHS_H

/*
 * Joins a relative path to dir ("-", standard output to whoever reads the setting, is returned
 * as a copy), with its folder made canonical when that folder exists: "/a/neg/../x.so" becomes
 * "/a/x.so", so that messages name the file plainly. The last component is kept as written: a
 * link there stays a link, for whoever opens the file to see. Caller frees; NULL when path is
 * NULL or memory runs out.
 */
char *wn_paths_resolve(const char *dir, const char *path);

/*
 * A plugin's path: a bare file name ("webhook.so") names the file next to the configuration
 * when there is one there, else the one in installed (the plugin folder `make install` fills),
 * so that a configuration can name an installed plugin without knowing the prefix. Any other
 * path, and a bare name found in neither place, is joined to dir; its folder is made canonical
 * (for plain messages) only when no symbolic link decides where it leads, else kept as written
 * but for empty and "." segments: the loader then meets every link on the way, and checks it,
 * as it opens the file (and names the file it could not open). Caller frees; NULL when path is
 * NULL or memory runs out.
 */
char *wn_paths_resolve_plugin(const char *dir, const char *path, const char *installed);

/*
 * Whether two resolved paths name one file, compared with empty and "." segments dropped and
 * ".." taken back (symbolic links are not followed: the files may not exist yet). 1 or 0; -1
 * when out of memory.
 */
int wn_paths_same(const char *a, const char *b);

#endif
