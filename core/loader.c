/*
 * loader: dlopen a plugin, check its descriptor against the ABI this host speaks, validate the
 * configured settings against what the plugin declares, and lend each instance its host table.
 */
#include "loader.h"

#include "encoder.h"
#include "paths.h"
#include "trust.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ABI 1.0's descriptor ends with shutdown: anything shorter cannot be a plugin of this major. */
#define ABI_1_0_SIZE (offsetof(walnotify_plugin, shutdown) + sizeof(void (*)(void)))
/* ABI 1.1's ends with check: a descriptor claiming minor 1 holds at least that much. */
#define ABI_1_1_SIZE (offsetof(walnotify_plugin, check) + sizeof(void (*)(void)))

/* Every operation a plugin of this host may declare. */
#define KNOWN_OPS (WALNOTIFY_OPS_CHANGES | WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE)
#define OPS_TEXT_MAX 64 /* "insert, update, delete, truncate, snapshot, message" */

#define DECLARED_LIST_MAX 512   /* bytes of "path, fsync" in an unknown-setting message */
#define PROBE_STRING_MAX 4096   /* longest name, version or description read from a plugin */
#define PROBE_SETTINGS_MAX 1024 /* most settings a plugin may declare */
#define PLUGIN_LINE_MAX 4096    /* bytes of a plugin's log line; the log cuts longer ones anyway */

#if defined(__LP64__)
_Static_assert(ABI_1_0_SIZE == 64, "ABI 1.0's descriptor prefix is 64 bytes on LP64");
_Static_assert(ABI_1_1_SIZE == 112, "ABI 1.1's descriptor is 112 bytes on LP64");
#endif

/* The validated value of one declared setting: configured, or its default. */
typedef struct setting_value {
    const walnotify_setting *decl; /* the plugin's declaration; lives as long as the library */
    bool has_value;                /* filled: getters read nothing from a half-built value */
    char *string;                  /* STRING, PATH (resolved); owned */
    int64_t integer;               /* INTEGER */
    bool boolean;                  /* BOOLEAN */
    char **items;                  /* LIST; owned, each item owned */
    size_t nitems;
} setting_value;

/* What the host table's services read: the instance's settings and what the host tells it. */
struct wn_plugin_settings {
    char *log_prefix;               /* "plugin "NAME": "; owned */
    bool checking;                  /* inside check: only the getters and log work */
    const walnotify_source *source; /* borrowed from the pipeline; NULL until it is known */
    const walnotify_table *tables;  /* borrowed from the pipeline; this instance's, in order */
    size_t ntables;
    uint64_t resume;         /* where the stream resumes */
    uint64_t flush_position; /* during flush: what is acknowledged if it succeeds */
    bool flush_always;       /* flushed before every acknowledgement */
    wn_encoder *encoder;     /* the instance's encode_json and encode_key; owned */
    /* An init answering RETRY tends to log the same reason on every attempt: while init is
     * called again, a line equal to the instance's previous one goes to DEBUG. Atomic, as log
     * may come from a thread of the plugin's. */
    atomic_bool init_again;     /* the running init follows a RETRY */
    _Atomic uint64_t last_line; /* hash of the instance's last log line; 0 before any */
    size_t nvalues;
    setting_value values[]; /* one per declaration, in declaration order */
};

/* ---- messages -------------------------------------------------------------------------------- */

/* `plugin "NAME" (PATH): reason`: a refusal about the shared object itself. */
__attribute__((format(printf, 4, 5))) static int
refuse(char *err, size_t errlen, const wn_plugin_config *config, const char *format, ...)
{
    char reason[1024];
    va_list args;

    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    snprintf(err, errlen, "plugin \"%s\" (%s): %s", config->name, config->path, reason);
    return WN_LOAD_REFUSED;
}

/* `FILE:LINE: plugin "NAME": reason`: a refusal about the configuration. */
__attribute__((format(printf, 6, 7))) static int refuse_at(char *err, size_t errlen,
                                                           const char *file, int line,
                                                           const wn_plugin_config *config,
                                                           const char *format, ...)
{
    char reason[1024];
    va_list args;

    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    snprintf(err, errlen, "%s:%d: plugin \"%s\": %s", file, line, config->name, reason);
    return WN_LOAD_BAD_SETTINGS;
}

/* What a declared setting type is called ("path"), and what a configured value of it must be,
 * for "must be ..." messages ("a string (a path)"); indexed by walnotify_setting_type. */
typedef struct type_words {
    const char *name;
    const char *phrase;
} type_words;

static const type_words setting_types[] = {
    [WALNOTIFY_SETTING_STRING] = {"string", "a string"},
    [WALNOTIFY_SETTING_INTEGER] = {"integer", "an integer"},
    [WALNOTIFY_SETTING_BOOLEAN] = {"boolean", "a boolean"},
    [WALNOTIFY_SETTING_LIST] = {"list", "a list of strings"},
    [WALNOTIFY_SETTING_PATH] = {"path", "a string (a path)"},
};

/* NULL for a type this host does not know (a plugin's bug, or a newer ABI's). */
static const type_words *words_of(walnotify_setting_type type)
{
    size_t index = (size_t)type; /* a negative value becomes too large */

    if (index >= sizeof setting_types / sizeof setting_types[0] ||
        setting_types[index].name == NULL)
        return NULL;
    return &setting_types[index];
}

static const char *type_name(walnotify_setting_type type)
{
    const type_words *words = words_of(type);

    return words ? words->name : NULL;
}

static const char *type_phrase(walnotify_setting_type type)
{
    const type_words *words = words_of(type);

    return words ? words->phrase : "?";
}

/* "insert, update" for a set of WALNOTIFY_OP_* bits; "none" for none. */
static const char *ops_text(unsigned ops, char *out, size_t outlen)
{
    wn_config_ops_text(ops, out, outlen);
    if (out[0] == '\0')
        snprintf(out, outlen, "none");
    return out;
}

/* ---- parsing declared defaults -----------------------------------------------------------------
 */

static bool parse_integer(const char *text, int64_t *value)
{
    char *end;
    long long parsed;

    if (text[0] == '\0' || (text[0] != '-' && text[0] != '+' && (text[0] < '0' || text[0] > '9')))
        return false;
    errno = 0;
    parsed = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *value = (int64_t)parsed;
    return true;
}

static bool parse_boolean(const char *text, bool *value)
{
    if (strcmp(text, "true") == 0) {
        *value = true;
        return true;
    }
    if (strcmp(text, "false") == 0) {
        *value = false;
        return true;
    }
    return false;
}

static void free_items(char **items, size_t nitems)
{
    for (size_t i = 0; i < nitems; i++)
        free(items[i]);
    free(items);
}

static char *copy_trimmed(const char *start, const char *end)
{
    while (start < end && (*start == ' ' || *start == '\t'))
        start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return strndup(start, (size_t)(end - start));
}

/* "a, b ,c" -> {"a","b","c"}; "" (or only blanks) -> no items. Returns false when out of memory. */
static bool parse_list(const char *text, char ***items, size_t *nitems)
{
    size_t count = 1;
    char **list;
    const char *start = text;

    *items = NULL;
    *nitems = 0;
    if (text[strspn(text, " \t")] == '\0')
        return true;
    for (const char *p = text; *p; p++)
        count += *p == ',';
    list = calloc(count, sizeof *list);
    if (!list)
        return false;
    for (size_t i = 0; i < count; i++) {
        const char *end = strchr(start, ',');

        if (!end)
            end = start + strlen(start);
        list[i] = copy_trimmed(start, end);
        if (!list[i]) {
            free_items(list, i);
            return false;
        }
        start = end + 1;
    }
    *items = list;
    *nitems = count;
    return true;
}

static char **copy_items(char *const *source, size_t nitems)
{
    char **items;

    if (nitems == 0)
        return NULL;
    items = calloc(nitems, sizeof *items);
    if (!items)
        return NULL;
    for (size_t i = 0; i < nitems; i++) {
        items[i] = strdup(source[i]);
        if (!items[i]) {
            free_items(items, i);
            return NULL;
        }
    }
    return items;
}

/* ---- the declarations -------------------------------------------------------------------------
 */

static size_t count_declarations(const walnotify_setting *decls)
{
    size_t n = 0;

    if (!decls)
        return 0;
    while (decls[n].name)
        n++;
    return n;
}

/* A declaration the host cannot honour is the plugin's bug: refuse it before any configuration. */
static int check_declarations(const walnotify_plugin *d, const wn_plugin_config *config, char *err,
                              size_t errlen)
{
    size_t n = count_declarations(d->settings);

    for (size_t i = 0; i < n; i++) {
        const walnotify_setting *s = &d->settings[i];
        const char *text = s->default_value;
        int64_t integer;
        bool boolean;

        if (s->name[0] == '\0')
            return refuse(err, errlen, config, "setting %zu is declared with an empty name", i + 1);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d->settings[j].name, s->name) == 0)
                return refuse(err, errlen, config, "setting \"%s\" is declared twice", s->name);
        }
        if (!type_name(s->type))
            return refuse(err, errlen, config, "setting \"%s\" is declared with unknown type %d",
                          s->name, (int)s->type);
        if (!text)
            continue;
        if (s->type == WALNOTIFY_SETTING_INTEGER && !parse_integer(text, &integer))
            return refuse(err, errlen, config,
                          "setting \"%s\": default \"%s\" is not a decimal 64-bit integer", s->name,
                          text);
        if (s->type == WALNOTIFY_SETTING_BOOLEAN && !parse_boolean(text, &boolean))
            return refuse(err, errlen, config,
                          "setting \"%s\": default \"%s\" is not \"true\" or \"false\"", s->name,
                          text);
    }
    return 0;
}

/* ---- the descriptor ---------------------------------------------------------------------------
 */

static int check_descriptor(const walnotify_plugin *d, const wn_plugin_config *config, char *err,
                            size_t errlen)
{
    if (d->magic != WALNOTIFY_PLUGIN_MAGIC)
        return refuse(err, errlen, config,
                      "descriptor magic 0x%08" PRIX32 ", expected 0x%08X: not a walnotify plugin",
                      d->magic, WALNOTIFY_PLUGIN_MAGIC);
    if (d->abi_major != WALNOTIFY_ABI_MAJOR)
        return refuse(err, errlen, config, "ABI major version %u, this host speaks %d",
                      (unsigned)d->abi_major, WALNOTIFY_ABI_MAJOR);
    if (d->abi_minor > WALNOTIFY_ABI_MINOR)
        return refuse(err, errlen, config, "built for ABI %u.%u, newer than this host's %d.%d",
                      (unsigned)d->abi_major, (unsigned)d->abi_minor, WALNOTIFY_ABI_MAJOR,
                      WALNOTIFY_ABI_MINOR);
    if (d->size < ABI_1_0_SIZE)
        return refuse(err, errlen, config,
                      "descriptor size %" PRIu32 " bytes, ABI %d.0 needs at least %zu", d->size,
                      WALNOTIFY_ABI_MAJOR, (size_t)ABI_1_0_SIZE);
    /* Reading 1.1's members from a shorter descriptor would read past the plugin's own. */
    if (d->abi_minor >= 1 && d->size < ABI_1_1_SIZE)
        return refuse(err, errlen, config,
                      "descriptor size %" PRIu32 " bytes, ABI %u.%u needs at least %zu", d->size,
                      (unsigned)d->abi_major, (unsigned)d->abi_minor, (size_t)ABI_1_1_SIZE);
    return 0;
}

static int check_copy(const walnotify_plugin *d, const wn_plugin_config *config, char *err,
                      size_t errlen)
{
    if (!d->name || d->name[0] == '\0')
        return refuse(err, errlen, config, "the descriptor has no name");
    if (!d->init)
        return refuse(err, errlen, config, "required callback init is NULL");
    if (!d->handle)
        return refuse(err, errlen, config, "required callback handle is NULL");
    if (!d->shutdown)
        return refuse(err, errlen, config, "required callback shutdown is NULL");
    if (d->ops & ~(unsigned)KNOWN_OPS)
        return refuse(err, errlen, config,
                      "descriptor ops 0x%X holds bits no operation of ABI %d.%d has (0x%X)", d->ops,
                      WALNOTIFY_ABI_MAJOR, WALNOTIFY_ABI_MINOR, d->ops & ~(unsigned)KNOWN_OPS);
    return check_declarations(d, config, err, errlen);
}

/* The name under which the library open as fd is handed to dlopen. */
#define FD_NAME_MAX 32 /* "/proc/self/fd/" and an int */

static const char *fd_name(int fd, char out[FD_NAME_MAX])
{
    snprintf(out, FD_NAME_MAX, "/proc/self/fd/%d", fd);
    return out;
}

/* dlerror()'s text about the library dlopen knew as name, speaking of path instead: a leading
 * "NAME: " dropped (the message names the path already), any other mention replaced. */
static const char *naming_path(const char *text, const char *name, const char *path, char *out,
                               size_t outlen)
{
    size_t len = strlen(name), used = 0;

    if (!text)
        return "unknown error";
    if (strncmp(text, name, len) == 0 && text[len] == ':' && text[len + 1] == ' ')
        text += len + 2;
    while (*text != '\0' && used + 1 < outlen) {
        if (strncmp(text, name, len) == 0 && (text[len] < '0' || text[len] > '9')) {
            int n = snprintf(out + used, outlen - used, "%s", path);

            used += (size_t)n < outlen - used ? (size_t)n : outlen - used - 1;
            text += len;
        } else {
            out[used++] = *text++;
        }
    }
    out[used] = '\0';
    return out;
}

/* ---- why dlopen refused ------------------------------------------------------------------- */

static const char *machine_name(unsigned machine)
{
    switch (machine) {
    case EM_386:
        return "i386";
    case EM_X86_64:
        return "x86-64";
    case EM_ARM:
        return "ARM";
    case EM_AARCH64:
        return "AArch64";
    case EM_PPC64:
        return "PowerPC 64";
    case EM_S390:
        return "s390";
    case EM_RISCV:
        return "RISC-V";
    case EM_MIPS:
        return "MIPS";
    }
    return "another machine";
}

/* The identity bytes and e_machine of the file open as fd; false when it is not ELF. */
static bool read_elf_header(int fd, unsigned char ident[EI_NIDENT], unsigned *machine)
{
    Elf64_Ehdr header; /* e_ident and e_machine lie at the same offsets in both classes */
    ssize_t n = pread(fd, &header, sizeof header, 0);

    if (n < (ssize_t)(offsetof(Elf64_Ehdr, e_machine) + sizeof header.e_machine) ||
        memcmp(header.e_ident, ELFMAG, SELFMAG) != 0)
        return false;
    memcpy(ident, header.e_ident, EI_NIDENT);
    *machine = header.e_ident[EI_DATA] == ELFDATA2MSB
                   ? (unsigned)((header.e_machine & 0xff) << 8 | header.e_machine >> 8)
                   : header.e_machine;
    return true;
}

/*
 * What dlopen meant, when the file is an ELF object built for another machine: glibc then
 * reports "No such file or directory", which sends people looking for a file that is there.
 * Compared with the host's own executable, so that no list of machines has to be kept.
 */
static bool foreign_object(int fd, char *why, size_t whylen)
{
    unsigned char ident[EI_NIDENT], own_ident[EI_NIDENT];
    unsigned machine, own_machine;
    int own = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    bool both = own >= 0 && read_elf_header(fd, ident, &machine) &&
                read_elf_header(own, own_ident, &own_machine);

    if (own >= 0)
        close(own);
    if (!both)
        return false;
    if (ident[EI_CLASS] != own_ident[EI_CLASS]) {
        snprintf(why, whylen, "built as a %d-bit ELF object, this host is %d-bit",
                 ident[EI_CLASS] == ELFCLASS32 ? 32 : 64,
                 own_ident[EI_CLASS] == ELFCLASS32 ? 32 : 64);
        return true;
    }
    if (ident[EI_DATA] != own_ident[EI_DATA]) {
        snprintf(why, whylen, "built for the other byte order");
        return true;
    }
    if (machine != own_machine) {
        snprintf(why, whylen, "built for %s (ELF machine %u), this host runs on %s (%u)",
                 machine_name(machine), machine, machine_name(own_machine), own_machine);
        return true;
    }
    return false;
}

/* The plugin file, open for reading into *fd: the file the trust checks walked to (every
 * component of its path), or, with the checks turned off, the file the path names. */
static int open_file(const wn_plugin_config *config, int *fd, char *err, size_t errlen)
{
    char why[PATH_MAX + 256];
    const char *path = config->path;
    struct stat st;

    /* For plain messages; what is loaded is decided by the descriptor below, not by this. */
    if (stat(path, &st) != 0)
        return refuse(err, errlen, config, "cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return refuse(err, errlen, config, "not a regular file");
    if (wn_trust_unsafe_allowed()) {
        *fd = open(path, O_RDONLY | O_CLOEXEC);
        if (*fd < 0)
            return refuse(err, errlen, config, "cannot open: %s", strerror(errno));
        if (fstat(*fd, &st) == 0 && S_ISREG(st.st_mode))
            return 0;
        close(*fd);
        return refuse(err, errlen, config, "not a regular file");
    }
    /* Whoever can change the file, or replace it, a folder or a link on its path, runs code as
     * walnotify's user. */
    *fd = wn_trust_open(path, why, sizeof why);
    if (*fd >= 0)
        return 0;
    return refuse(err, errlen, config,
                  "refused: %s (set %s=1 to allow this in a development "
                  "tree)",
                  why, WN_ALLOW_UNSAFE_PATHS_ENV);
}

/* Loads the very file open_file checked, through its descriptor: a path changed since then
 * (a link flipped) cannot substitute another file. */
static int open_library(wn_plugin *plugin, const wn_plugin_config *config, char *err, size_t errlen)
{
    char name[FD_NAME_MAX], why[PATH_MAX + 256], said[1024];
    const char *error;
    int rc = open_file(config, &plugin->fd, err, errlen);

    if (rc != 0)
        return rc;
    dlerror();
    plugin->library = dlopen(fd_name(plugin->fd, name), RTLD_NOW | RTLD_LOCAL);
    if (plugin->library)
        return 0;
    error = dlerror();
    if (foreign_object(plugin->fd, why, sizeof why))
        rc = refuse(err, errlen, config, "not loadable here: %s", why);
    else if (access(name, F_OK) != 0)
        rc = refuse(err, errlen, config, "cannot load it through %s: %s (is /proc mounted?)", name,
                    strerror(errno));
    else
        rc = refuse(err, errlen, config, "not a loadable shared object: %s",
                    naming_path(error, name, config->path, said, sizeof said));
    close(plugin->fd);
    return rc;
}

/* dlclose, then the descriptor, unless the library stays loaded (marked nodelete, or another
 * instance holds the same file): dlopen still knows it by this descriptor's name, which then
 * must never come to name another file, so the descriptor stays open. */
static void release_library(wn_plugin *plugin)
{
    char name[FD_NAME_MAX];
    void *still;

    dlclose(plugin->library);
    still = dlopen(fd_name(plugin->fd, name), RTLD_LAZY | RTLD_NOLOAD);
    if (still) {
        dlclose(still);
        return;
    }
    close(plugin->fd);
}

/* ---- reading what a plugin points at, without trusting it ----------------------------------- */

/* A pipe through which memory is copied: write() fails with EFAULT on an address that is not
 * mapped readable, where a plain read would crash the host (and --check-config with it). */
typedef struct probe {
    int fd[2];
} probe;

static bool probe_open(probe *pr)
{
    return pipe2(pr->fd, O_CLOEXEC) == 0;
}

static void probe_close(probe *pr)
{
    close(pr->fd[0]);
    close(pr->fd[1]);
}

/* Copies len bytes at src into dst (NULL: only checks them); false when any is unreadable. */
static bool probe_copy(probe *pr, const void *src, size_t len, void *dst)
{
    const char *from = src;
    char scratch[512];
    char *to = dst;

    while (len > 0) {
        size_t chunk = len < sizeof scratch ? len : sizeof scratch;
        ssize_t written = write(pr->fd[1], from, chunk);

        if (written <= 0)
            return false;
        if (read(pr->fd[0], to ? to : scratch, (size_t)written) != written)
            return false;
        from += written;
        if (to)
            to += written;
        len -= (size_t)written;
    }
    return true;
}

/* Whether s is a readable NUL-terminated string of at most PROBE_STRING_MAX bytes; read a byte
 * at a time, so that a string ending right before unmapped memory is still accepted. */
static bool probe_string(probe *pr, const char *s)
{
    for (size_t i = 0; i <= PROBE_STRING_MAX; i++) {
        char c;

        if (!probe_copy(pr, s + i, 1, &c))
            return false;
        if (c == '\0')
            return true;
    }
    return false;
}

/* Every declaration and its strings readable, the array ended within PROBE_SETTINGS_MAX. */
static bool probe_settings(probe *pr, const walnotify_setting *settings)
{
    for (size_t i = 0; settings && i <= PROBE_SETTINGS_MAX; i++) {
        walnotify_setting decl;

        if (((uintptr_t)&settings[i]) % _Alignof(walnotify_setting) != 0 ||
            !probe_copy(pr, &settings[i], sizeof decl, &decl))
            return false;
        if (!decl.name)
            return true;
        if (!probe_string(pr, decl.name) ||
            (decl.default_value && !probe_string(pr, decl.default_value)) ||
            (decl.description && !probe_string(pr, decl.description)))
            return false;
    }
    return settings == NULL;
}

/* Whether the name, version and settings of descriptor d can be read; else *which names the
 * first that cannot. */
static bool readable_members(probe *pr, const walnotify_plugin *d, const char **which)
{
    *which = "name";
    if (d->name && !probe_string(pr, d->name))
        return false;
    *which = "version";
    if (d->version && !probe_string(pr, d->version))
        return false;
    *which = "settings";
    return probe_settings(pr, d->settings);
}

/*
 * Copies the descriptor d points at into *out (zero-extended, as the plugin's own size says),
 * after checking that d is aligned and every byte of it, its strings and its settings are
 * readable. Returns 0, or a refusal naming what is wrong.
 */
static int copy_descriptor(const walnotify_plugin *d, walnotify_plugin *out,
                           const wn_plugin_config *config, char *err, size_t errlen)
{
    size_t head = offsetof(walnotify_plugin, size) + sizeof d->size;
    walnotify_plugin copy;
    const char *unreadable;
    probe pr;
    int status = 0;

    if ((uintptr_t)d % _Alignof(walnotify_plugin) != 0)
        return refuse(err, errlen, config, "%s() returned a misaligned pointer %p",
                      WALNOTIFY_PLUGIN_ENTRY_SYMBOL, (const void *)d);
    if (!probe_open(&pr))
        return refuse(err, errlen, config, "cannot check the descriptor: %s", strerror(errno));
    memset(&copy, 0, sizeof copy);
    if (!probe_copy(&pr, d, head, &copy)) {
        status = refuse(err, errlen, config, "%s() returned %p, which is not readable memory",
                        WALNOTIFY_PLUGIN_ENTRY_SYMBOL, (const void *)d);
        goto close_probe;
    }
    if (check_descriptor(&copy, config, err, errlen) != 0) {
        status = -1;
        goto close_probe;
    }
    /* An older plugin's descriptor ends early: what it lacks stays zero (absent callbacks). */
    if (!probe_copy(&pr, d, copy.size < sizeof copy ? copy.size : sizeof copy, &copy)) {
        status = refuse(err, errlen, config,
                        "the descriptor at %p is not readable for its %" PRIu32 " bytes",
                        (const void *)d, copy.size);
        goto close_probe;
    }
    if (!readable_members(&pr, &copy, &unreadable))
        status = refuse(err, errlen, config,
                        "the descriptor's %s points at memory that is not readable (or at a "
                        "string longer than %d bytes)",
                        unreadable, PROBE_STRING_MAX);
    else
        *out = copy;
close_probe:
    probe_close(&pr);
    return status;
}

static int read_descriptor(wn_plugin *plugin, const wn_plugin_config *config, char *err,
                           size_t errlen)
{
    walnotify_plugin_entry_fn entry;
    const walnotify_plugin *d;
    void *symbol;

    dlerror();
    symbol = dlsym(plugin->library, WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
    if (!symbol)
        return refuse(err, errlen, config, "no %s() exported: not a walnotify plugin",
                      WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
    /* POSIX guarantees a function's address survives the trip through void *. */
    memcpy(&entry, &symbol, sizeof entry);
    d = entry();
    if (!d)
        return refuse(err, errlen, config, "%s() returned NULL", WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
    memset(&plugin->descriptor, 0, sizeof plugin->descriptor);
    if (copy_descriptor(d, &plugin->descriptor, config, err, errlen) != 0)
        return -1;
    return check_copy(&plugin->descriptor, config, err, errlen);
}

/* ---- operations ------------------------------------------------------------------------------ */

static unsigned declared_ops(const walnotify_plugin *d)
{
    return d->ops ? d->ops : (unsigned)WALNOTIFY_OPS_CHANGES;
}

/* A block may ask only for what its plugin handles; without `ops` it gets insert. */
static int check_ops(const wn_plugin *plugin, const wn_plugin_config *config, const char *file,
                     char *err, size_t errlen)
{
    const walnotify_plugin *d = &plugin->descriptor;
    unsigned declared = declared_ops(d);
    unsigned extra = config->ops & ~declared;
    char have[OPS_TEXT_MAX], asked[OPS_TEXT_MAX];

    if (extra == 0)
        return 0;
    ops_text(declared, have, sizeof have);
    ops_text(extra, asked, sizeof asked);
    if (config->ops_line <= 0)
        return refuse_at(err, errlen, file, config->line, config,
                         "no ops given, so it would get %s, which %s does not handle (%s "
                         "declares: %s); name its operations in ops",
                         asked, d->name, d->name, have);
    return refuse_at(err, errlen, file, config->ops_line, config,
                     "ops asks for %s, which %s does not handle (%s declares: %s)", asked, d->name,
                     d->name, have);
}

/* ---- settings ---------------------------------------------------------------------------------
 */

static void free_settings(wn_plugin_settings *settings)
{
    if (!settings)
        return;
    for (size_t i = 0; i < settings->nvalues; i++) {
        free(settings->values[i].string);
        free_items(settings->values[i].items, settings->values[i].nitems);
    }
    free(settings->log_prefix);
    wn_encoder_destroy(settings->encoder);
    free(settings);
}

static const setting_value *find_value(const wn_plugin_settings *settings, const char *name)
{
    if (!settings || !name)
        return NULL;
    for (size_t i = 0; i < settings->nvalues; i++) {
        if (strcmp(settings->values[i].decl->name, name) == 0)
            return &settings->values[i];
    }
    return NULL;
}

static const walnotify_setting *find_declaration(const walnotify_plugin *d, const char *name)
{
    size_t n = count_declarations(d->settings);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(d->settings[i].name, name) == 0)
            return &d->settings[i];
    }
    return NULL;
}

/* "path, fsync", cut short (with "...") when it does not fit. */
static void list_declarations(const walnotify_plugin *d, char *out, size_t outlen)
{
    size_t n = count_declarations(d->settings);
    size_t used = 0;

    out[0] = '\0';
    if (n == 0) {
        snprintf(out, outlen, "none");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "", d->settings[i].name);

        if (w < 0 || (size_t)w >= outlen - used) {
            if (outlen > 4)
                memcpy(out + outlen - 4, "...", 4);
            return;
        }
        used += (size_t)w;
    }
}

static bool kind_fits(walnotify_setting_type type, wn_setting_kind kind)
{
    switch (type) {
    case WALNOTIFY_SETTING_STRING:
    case WALNOTIFY_SETTING_PATH:
        return kind == WN_SETTING_STRING;
    case WALNOTIFY_SETTING_INTEGER:
        return kind == WN_SETTING_INTEGER;
    case WALNOTIFY_SETTING_BOOLEAN:
        return kind == WN_SETTING_BOOLEAN;
    case WALNOTIFY_SETTING_LIST:
        return kind == WN_SETTING_STRING_LIST;
    }
    return false;
}

/* Every configured setting must be declared, once, and of its declared kind. */
static int check_configured(const wn_plugin *plugin, const wn_plugin_config *config,
                            const char *file, char *err, size_t errlen)
{
    const walnotify_plugin *d = &plugin->descriptor;

    for (size_t i = 0; i < config->nsettings; i++) {
        const wn_setting_value *v = &config->settings[i];
        const walnotify_setting *decl = find_declaration(d, v->name);

        if (!decl) {
            char declared[DECLARED_LIST_MAX];

            list_declarations(d, declared, sizeof declared);
            return refuse_at(err, errlen, v->file ? v->file : file, v->line, config,
                             "unknown setting \"%s\" (%s declares: %s)", v->name, d->name,
                             declared);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(config->settings[j].name, v->name) == 0)
                return refuse_at(err, errlen, v->file ? v->file : file, v->line, config,
                                 "setting \"%s\" is given twice", v->name);
        }
        if (!kind_fits(decl->type, v->kind))
            return refuse_at(err, errlen, v->file ? v->file : file, v->line, config,
                             "setting \"%s\" must be %s", v->name, type_phrase(decl->type));
    }
    return 0;
}

static const wn_setting_value *find_configured(const wn_plugin_config *config, const char *name)
{
    for (size_t i = 0; i < config->nsettings; i++) {
        if (strcmp(config->settings[i].name, name) == 0)
            return &config->settings[i];
    }
    return NULL;
}

/* Stores a configured value (already checked by check_configured). 0, or -1 when out of memory. */
static int fill_configured(setting_value *value, const wn_setting_value *v, const char *config_dir)
{
    switch (value->decl->type) {
    case WALNOTIFY_SETTING_STRING:
        value->string = strdup(v->string);
        break;
    case WALNOTIFY_SETTING_PATH:
        value->string = wn_paths_resolve(config_dir, v->string);
        break;
    case WALNOTIFY_SETTING_INTEGER:
        value->integer = v->integer;
        return 0;
    case WALNOTIFY_SETTING_BOOLEAN:
        value->boolean = v->boolean;
        return 0;
    case WALNOTIFY_SETTING_LIST:
        value->items = copy_items(v->items, v->nitems);
        value->nitems = value->items ? v->nitems : 0;
        return v->nitems > 0 && !value->items ? -1 : 0;
    }
    return value->string ? 0 : -1;
}

/* Stores a declared default (already checked by check_declarations). 0, or -1 out of memory. */
static int fill_default(setting_value *value, const char *config_dir)
{
    const char *text = value->decl->default_value;

    switch (value->decl->type) {
    case WALNOTIFY_SETTING_STRING:
        value->string = strdup(text);
        break;
    case WALNOTIFY_SETTING_PATH:
        value->string = wn_paths_resolve(config_dir, text);
        break;
    case WALNOTIFY_SETTING_INTEGER:
        return parse_integer(text, &value->integer) ? 0 : -1;
    case WALNOTIFY_SETTING_BOOLEAN:
        return parse_boolean(text, &value->boolean) ? 0 : -1;
    case WALNOTIFY_SETTING_LIST:
        return parse_list(text, &value->items, &value->nitems) ? 0 : -1;
    }
    return value->string ? 0 : -1;
}

static int build_settings(wn_plugin *plugin, const wn_plugin_config *config, const char *file,
                          const char *config_dir, char *err, size_t errlen)
{
    const walnotify_plugin *d = &plugin->descriptor;
    size_t n = count_declarations(d->settings);
    wn_plugin_settings *settings;

    settings = calloc(1, sizeof *settings + n * sizeof settings->values[0]);
    if (!settings)
        return refuse(err, errlen, config, "out of memory");
    plugin->settings = settings;
    if (asprintf(&settings->log_prefix, "plugin \"%s\": ", config->name) < 0) {
        settings->log_prefix = NULL;
        return refuse(err, errlen, config, "out of memory");
    }
    settings->nvalues = n;
    for (size_t i = 0; i < n; i++) {
        setting_value *value = &settings->values[i];
        const wn_setting_value *v = find_configured(config, d->settings[i].name);

        value->decl = &d->settings[i];
        if (!v && !value->decl->default_value)
            return refuse_at(err, errlen, config->file ? config->file : file, config->line, config,
                             "setting \"%s\" is required", value->decl->name);
        if ((v ? fill_configured(value, v, config_dir) : fill_default(value, config_dir)) != 0)
            return refuse(err, errlen, config, "out of memory");
        value->has_value = true;
    }
    return 0;
}

/* ---- the host table ---------------------------------------------------------------------------
 */

static const setting_value *host_value(const walnotify_host *host, const char *name,
                                       walnotify_setting_type type)
{
    const setting_value *value;

    if (!host)
        return NULL;
    value = find_value(host->host_private, name);
    if (!value || !value->has_value)
        return NULL;
    if (value->decl->type == type)
        return value;
    /* A path is a string too. */
    if (type == WALNOTIFY_SETTING_STRING && value->decl->type == WALNOTIFY_SETTING_PATH)
        return value;
    return NULL;
}

static const char *host_get_string(const walnotify_host *host, const char *name)
{
    const setting_value *value = host_value(host, name, WALNOTIFY_SETTING_STRING);

    return value ? value->string : NULL;
}

static int64_t host_get_integer(const walnotify_host *host, const char *name)
{
    const setting_value *value = host_value(host, name, WALNOTIFY_SETTING_INTEGER);

    return value ? value->integer : 0;
}

static bool host_get_boolean(const walnotify_host *host, const char *name)
{
    const setting_value *value = host_value(host, name, WALNOTIFY_SETTING_BOOLEAN);

    return value ? value->boolean : false;
}

static size_t host_get_list_length(const walnotify_host *host, const char *name)
{
    const setting_value *value = host_value(host, name, WALNOTIFY_SETTING_LIST);

    return value ? value->nitems : 0;
}

static const char *host_get_list_item(const walnotify_host *host, const char *name, size_t index)
{
    const setting_value *value = host_value(host, name, WALNOTIFY_SETTING_LIST);

    return value && index < value->nitems ? value->items[index] : NULL;
}

static wn_log_level host_level(walnotify_log_level level)
{
    switch (level) {
    case WALNOTIFY_LOG_DEBUG:
        return WN_LOG_DEBUG;
    case WALNOTIFY_LOG_INFO:
        return WN_LOG_INFO;
    case WALNOTIFY_LOG_WARNING:
        return WN_LOG_WARNING;
    case WALNOTIFY_LOG_ERROR:
        return WN_LOG_ERROR;
    }
    /* A level from a newer ABI: better loud than lost. */
    return WN_LOG_ERROR;
}

/* FNV-1a: tells one log line from the next; a collision only changes a line's level. */
static uint64_t line_hash(const char *line)
{
    uint64_t hash = UINT64_C(14695981039346656037);

    for (const unsigned char *p = (const unsigned char *)line; *p; p++)
        hash = (hash ^ *p) * UINT64_C(1099511628211);
    return hash ? hash : 1;
}

__attribute__((format(printf, 3, 4))) static void
log_prefixed(wn_log_level level, const char *prefix, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    wn_logv(level, prefix, format, args);
    va_end(args);
}

__attribute__((format(printf, 3, 4))) static void
host_log(const walnotify_host *host, walnotify_log_level level, const char *format, ...)
{
    const wn_plugin_settings *settings = host ? host->host_private : NULL;
    const char *prefix = settings ? settings->log_prefix : "plugin: ";
    wn_log_level wn_level = host_level(level);
    char line[PLUGIN_LINE_MAX];
    va_list args;
    uint64_t hash;

    if (!format)
        return;
    va_start(args, format);
    vsnprintf(line, sizeof line, format, args);
    va_end(args);
    hash = line_hash(line);
    if (settings && atomic_exchange(&settings->last_line, hash) == hash &&
        atomic_load(&settings->init_again))
        wn_level = WN_LOG_DEBUG;
    log_prefixed(wn_level, prefix, "%s", line);
}

/* The instance's context when a 1.1 service may answer: not during check (zero values there). */
static const wn_plugin_settings *serving(const walnotify_host *host)
{
    const wn_plugin_settings *settings = host ? host->host_private : NULL;

    return settings && !settings->checking ? settings : NULL;
}

static const walnotify_source *host_source(const walnotify_host *host)
{
    const wn_plugin_settings *settings = serving(host);

    return settings ? settings->source : NULL;
}

static size_t host_table_count(const walnotify_host *host)
{
    const wn_plugin_settings *settings = serving(host);

    return settings ? settings->ntables : 0;
}

static const walnotify_table *host_table(const walnotify_host *host, size_t index)
{
    const wn_plugin_settings *settings = serving(host);

    return settings && index < settings->ntables ? &settings->tables[index] : NULL;
}

static uint64_t host_resume_position(const walnotify_host *host)
{
    const wn_plugin_settings *settings = serving(host);

    return settings ? settings->resume : 0;
}

static uint64_t host_flush_position(const walnotify_host *host)
{
    const wn_plugin_settings *settings = serving(host);

    return settings ? settings->flush_position : 0;
}

static void host_set_flush_always(const walnotify_host *host, bool always)
{
    wn_plugin_settings *settings = host ? host->host_private : NULL;

    /* The host table is const for the plugin; its private part is the host's to change. */
    if (settings && !settings->checking)
        settings->flush_always = always;
}

/* ---- rewind and failure naming (ABI 1.1) --------------------------------------------------- */

/* The host table an instance receives is always the `host` member of its own wn_plugin, so the
 * instance's requests are found from it without any global. */
static wn_plugin *host_plugin(const walnotify_host *host)
{
    return (wn_plugin *)(void *)((char *)(uintptr_t)host - offsetof(wn_plugin, host));
}

static walnotify_status host_fail_events(const walnotify_host *host, walnotify_id first,
                                         walnotify_id last, walnotify_failure failure,
                                         const char *reason)
{
    wn_plugin *plugin;

    if (!host)
        return WALNOTIFY_FATAL;
    plugin = host_plugin(host);
    return wn_requests_fail(&plugin->requests, host->instance_name, first, last, failure, reason);
}

static walnotify_status host_rewind(const walnotify_host *host, const char *reason)
{
    if (!host)
        return WALNOTIFY_FATAL;
    return wn_requests_rewind(&host_plugin(host)->requests, host->instance_name, reason);
}

/* The instance's own table of that name, for the key columns the catalog gives. */
static const walnotify_table *find_table(const wn_plugin_settings *settings,
                                         const walnotify_event *event)
{
    if (event->table == NULL)
        return NULL;
    for (size_t i = 0; i < settings->ntables; i++) {
        if (strcmp(settings->tables[i].table, event->table) == 0)
            return &settings->tables[i];
    }
    return NULL;
}

static const char *host_encode_json(const walnotify_host *host, const walnotify_event *event,
                                    size_t *length)
{
    const wn_plugin_settings *settings = serving(host);

    return settings ? wn_encoder_event(settings->encoder, event, length) : NULL;
}

static const char *host_encode_key(const walnotify_host *host, const walnotify_event *event,
                                   size_t *length)
{
    const wn_plugin_settings *settings = serving(host);

    /* With the catalog's table the key is its key columns (the primary key under REPLICA
     * IDENTITY FULL, where the server marks every column as key); without it, the columns the
     * server marks. */
    return settings ? wn_encoder_key(settings->encoder, event, find_table(settings, event), length)
                    : NULL;
}

static void fill_host(wn_plugin *plugin, const wn_plugin_config *config)
{
    walnotify_host *host = &plugin->host;

    host->size = sizeof *host;
    host->abi_major = WALNOTIFY_ABI_MAJOR;
    host->abi_minor = WALNOTIFY_ABI_MINOR;
    host->instance_name = config->name;
    host->log = host_log;
    host->get_string = host_get_string;
    host->get_integer = host_get_integer;
    host->get_boolean = host_get_boolean;
    host->get_list_length = host_get_list_length;
    host->get_list_item = host_get_list_item;
    host->host_private = plugin->settings;
    host->source = host_source;
    host->table_count = host_table_count;
    host->table = host_table;
    host->resume_position = host_resume_position;
    host->flush_position = host_flush_position;
    host->set_flush_always = host_set_flush_always;
    host->fail_events = host_fail_events;
    host->rewind = host_rewind;
    host->encode_json = host_encode_json;
    host->encode_key = host_encode_key;
}

/* ---- public -----------------------------------------------------------------------------------
 */

int wn_plugin_load(wn_plugin *plugin, const wn_plugin_config *config, const char *file,
                   const char *config_dir, char *err, size_t errlen)
{
    int rc;

    memset(plugin, 0, sizeof *plugin);
    plugin->config = config;
    rc = open_library(plugin, config, err, errlen);
    if (rc != 0)
        goto forget;
    rc = read_descriptor(plugin, config, err, errlen);
    if (rc != 0)
        goto close_library;
    rc = check_ops(plugin, config, file, err, errlen);
    if (rc != 0)
        goto close_library;
    rc = check_configured(plugin, config, file, err, errlen);
    if (rc != 0)
        goto close_library;
    rc = build_settings(plugin, config, file, config_dir, err, errlen);
    if (rc != 0)
        goto free_settings;
    plugin->settings->encoder = wn_encoder_create();
    if (!plugin->settings->encoder) {
        rc = refuse(err, errlen, config, "out of memory for its JSON encoder");
        goto free_settings;
    }
    fill_host(plugin, config);
    return 0;

free_settings:
    free_settings(plugin->settings);
close_library:
    release_library(plugin);
forget:
    memset(plugin, 0, sizeof *plugin);
    return rc;
}

walnotify_status wn_plugin_check(wn_plugin *plugin)
{
    walnotify_status status;

    if (!plugin->library)
        return WALNOTIFY_FATAL;
    if (!plugin->descriptor.check)
        return WALNOTIFY_OK;
    plugin->settings->checking = true;
    status = plugin->descriptor.check(&plugin->host);
    plugin->settings->checking = false;
    if (status == WALNOTIFY_OK)
        return WALNOTIFY_OK;
    wn_log(WN_LOG_ERROR, "plugin \"%s\" (%s): check refused its settings (returned %s)",
           plugin->config->name, plugin->config->path,
           status == WALNOTIFY_RETRY   ? "RETRY"
           : status == WALNOTIFY_FATAL ? "FATAL"
                                       : "?");
    return WALNOTIFY_FATAL;
}

void wn_plugin_set_context(wn_plugin *plugin, const walnotify_source *source,
                           const walnotify_table *tables, size_t ntables, uint64_t resume)
{
    if (!plugin->settings)
        return;
    plugin->settings->source = source;
    plugin->settings->tables = tables;
    plugin->settings->ntables = ntables;
    plugin->settings->resume = resume;
}

void wn_plugin_set_flush_position(wn_plugin *plugin, uint64_t position)
{
    if (plugin->settings)
        plugin->settings->flush_position = position;
}

bool wn_plugin_flush_always(const wn_plugin *plugin)
{
    return plugin->settings && plugin->settings->flush_always;
}

unsigned wn_plugin_ops(const wn_plugin *plugin)
{
    return declared_ops(&plugin->descriptor);
}

walnotify_status wn_plugin_init(wn_plugin *plugin)
{
    walnotify_status status;

    if (!plugin->library || plugin->initialised)
        return plugin->initialised ? WALNOTIFY_OK : WALNOTIFY_FATAL;
    plugin->state = NULL;
    status = plugin->descriptor.init(&plugin->host, &plugin->state);
    /* The next init repeats this one only after a RETRY; a first one says everything. */
    atomic_store(&plugin->settings->init_again, status == WALNOTIFY_RETRY);
    switch (status) {
    case WALNOTIFY_OK:
        plugin->initialised = true;
        return status;
    case WALNOTIFY_RETRY:
    case WALNOTIFY_FATAL:
        return status;
    }
    /* Anything else is a broken plugin: it must not be retried forever. */
    atomic_store(&plugin->settings->init_again, false);
    return WALNOTIFY_FATAL;
}

void wn_plugin_shutdown(wn_plugin *plugin)
{
    if (!plugin->library || !plugin->initialised)
        return;
    plugin->descriptor.shutdown(plugin->state);
    plugin->state = NULL;
    plugin->initialised = false;
    atomic_store(&plugin->settings->init_again, false);
}

void wn_plugin_unload(wn_plugin *plugin)
{
    if (!plugin->library)
        return;
    wn_plugin_shutdown(plugin);
    free_settings(plugin->settings);
    release_library(plugin);
    memset(plugin, 0, sizeof *plugin);
}

/* Appends to a bounded buffer; the text is cut short, never overflowed. */
__attribute__((format(printf, 4, 5))) static void append(char *out, size_t outlen, size_t *used,
                                                         const char *format, ...)
{
    va_list args;
    int w;

    if (*used + 1 >= outlen)
        return;
    va_start(args, format);
    w = vsnprintf(out + *used, outlen - *used, format, args);
    va_end(args);
    if (w < 0)
        return;
    *used += (size_t)w < outlen - *used ? (size_t)w : outlen - *used - 1;
}

/* Name, version, ABI, operations and settings, from the descriptor alone. */
static void describe_descriptor(const walnotify_plugin *d, char *out, size_t outlen)
{
    size_t n = count_declarations(d->settings);
    char ops[OPS_TEXT_MAX];
    size_t used = 0;

    append(out, outlen, &used, "%s %s (plugin ABI %u.%u)\n", d->name,
           d->version ? d->version : "(no version)", (unsigned)d->abi_major,
           (unsigned)d->abi_minor);
    append(out, outlen, &used, "operations: %s\n", ops_text(declared_ops(d), ops, sizeof ops));
    append(out, outlen, &used, "settings:%s\n", n == 0 ? " none" : "");
    for (size_t i = 0; i < n; i++) {
        const walnotify_setting *s = &d->settings[i];
        const char *description = s->description ? s->description : "";

        if (s->default_value)
            append(out, outlen, &used, "  %s (%s, default \"%s\"): %s\n", s->name,
                   type_name(s->type), s->default_value, description);
        else
            append(out, outlen, &used, "  %s (%s, required): %s\n", s->name, type_name(s->type),
                   description);
    }
}

void wn_plugin_describe(const wn_plugin *plugin, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (!plugin->library)
        return;
    describe_descriptor(&plugin->descriptor, out, outlen);
}

int wn_plugin_describe_file(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    wn_plugin_config config = {.name = (char *)"(described)", .path = (char *)path};
    wn_plugin plugin;
    int rc;

    if (outlen > 0)
        out[0] = '\0';
    memset(&plugin, 0, sizeof plugin);
    rc = open_library(&plugin, &config, err, errlen);
    if (rc != 0)
        return rc;
    rc = read_descriptor(&plugin, &config, err, errlen);
    if (rc == 0 && outlen > 0)
        describe_descriptor(&plugin.descriptor, out, outlen);
    release_library(&plugin);
    return rc == 0 ? 0 : WN_LOAD_REFUSED;
}
