/*
 * paths: joining, canonicalising and comparing the paths a configuration writes. Nothing here
 * opens a file; only realpath and access look at the file system.
 */
#include "paths.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* a, sep and b end to end, in new memory; NULL when out of memory. */
static char *join3(const char *a, const char *sep, const char *b)
{
    size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
    char *out = malloc(la + ls + lb + 1);

    if (out == NULL)
        return NULL;
    memcpy(out, a, la);
    memcpy(out + la, sep, ls);
    memcpy(out + la + ls, b, lb + 1);
    return out;
}

/* path with its folder made canonical when that folder exists, the last component kept as
 * written. Takes path; returns it or its replacement. */
static char *canonical_folder(char *path)
{
    char *slash = path ? strrchr(path, '/') : NULL;
    const char *base = slash ? slash + 1 : NULL;
    char *folder, *real, *joined;

    if (!slash || base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return path;
    folder = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    real = folder ? realpath(folder, NULL) : NULL;
    free(folder);
    if (!real)
        return path;
    joined = join3(real, strcmp(real, "/") == 0 ? "" : "/", base);
    free(real);
    if (!joined)
        return path;
    free(path);
    return joined;
}

char *wn_paths_resolve(const char *dir, const char *path)
{
    if (path == NULL)
        return NULL;
    if (strcmp(path, "-") == 0)
        return strdup(path);
    if (path[0] == '/' || dir == NULL || dir[0] == '\0')
        return canonical_folder(strdup(path));
    return canonical_folder(join3(dir, strcmp(dir, "/") == 0 ? "" : "/", path));
}

/* path with its empty and "." segments dropped (they name nothing); ".." and links are kept,
 * since where they lead depends on the links. Takes path; NULL when out of memory. */
static char *without_dots(char *path)
{
    char *out = path != NULL ? malloc(strlen(path) + 2) : NULL;
    size_t used = 0;

    if (out == NULL) {
        free(path);
        return NULL;
    }
    for (const char *p = path; *p != '\0';) {
        size_t len = strcspn(p, "/");

        if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (used > 0 || path[0] == '/')
                out[used++] = '/';
            memcpy(out + used, p, len);
            used += len;
        }
        p += len;
        p += *p == '/';
    }
    if (used == 0)
        out[used++] = path[0] == '/' ? '/' : '.';
    out[used] = '\0';
    free(path);
    return out;
}

static char *normalise(const char *path);

/* An absolute plugin path with its folder made canonical only when no link decides where that
 * folder is (its canonical form is then the written one with ".." taken back); else as written
 * but for empty and "." segments, so that the loader meets, and checks, every link on the way.
 * Takes path. */
static char *plugin_folder(char *path)
{
    char *slash = path != NULL ? strrchr(path, '/') : NULL;
    char *folder, *real = NULL, *lexical = NULL;
    bool plain;

    if (slash == NULL || path[0] != '/')
        return without_dots(path);
    folder = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (folder != NULL) {
        real = realpath(folder, NULL);
        lexical = normalise(folder);
    }
    plain =
        real != NULL && lexical != NULL && strcmp(real, lexical[0] != '\0' ? lexical : "/") == 0;
    free(folder);
    free(real);
    free(lexical);
    return plain ? canonical_folder(path) : without_dots(path);
}

char *wn_paths_resolve_plugin(const char *dir, const char *path, const char *installed)
{
    char *local, *found;

    if (path == NULL)
        return NULL;
    local = plugin_folder(path[0] == '/' || dir == NULL || dir[0] == '\0'
                              ? strdup(path)
                              : join3(dir, strcmp(dir, "/") == 0 ? "" : "/", path));

    if (local == NULL || strchr(path, '/') != NULL || access(local, F_OK) == 0)
        return local;
    found = join3(installed, "/", path);
    if (found == NULL || access(found, F_OK) != 0) {
        free(found);
        return local;
    }
    free(local);
    return found;
}

/* path with empty and "." segments dropped and ".." taken back, so that two spellings of one
 * file compare equal. Caller frees; NULL when out of memory. */
static char *normalise(const char *path)
{
    char *out = malloc(strlen(path) + 2);
    size_t used = 0;

    if (out == NULL)
        return NULL;
    while (*path != '\0') {
        size_t len = strcspn(path, "/");

        if (len == 2 && path[0] == '.' && path[1] == '.') {
            while (used > 0 && out[used - 1] != '/')
                used--;
            if (used > 0)
                used--;
        } else if (len > 0 && !(len == 1 && path[0] == '.')) {
            out[used++] = '/';
            memcpy(out + used, path, len);
            used += len;
        }
        path += len;
        path += *path == '/';
    }
    out[used] = '\0';
    return out;
}

int wn_paths_same(const char *a, const char *b)
{
    char *na = normalise(a);
    char *nb = normalise(b);
    int same = na == NULL || nb == NULL ? -1 : strcmp(na, nb) == 0;

    free(na);
    free(nb);
    return same;
}
