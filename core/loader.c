/*
 * loader: dlopen a plugin and check its descriptor against the ABI this host speaks; its settings
 * are checked in settings.c, and the services lent to it are services.c's.
 */
#include "loader.h"

#include "encoder.h"
#include "log.h"
#include "services.h"
#include "settings.h"
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ABI 1.0's descriptor ends with shutdown: anything shorter cannot be a plugin of this major. */
#define ABI_1_0_SIZE (offsetof(walnotify_plugin, shutdown) + sizeof(void (*)(void)))
/* ABI 1.1's ends with check: a descriptor claiming minor 1 holds at least that much. 1.2 added
 * no member to the descriptor (its growth is in the host table and the event). */
#define ABI_1_1_SIZE (offsetof(walnotify_plugin, check) + sizeof(void (*)(void)))

/* Every operation a plugin of this host may declare. */
#define KNOWN_OPS (WALNOTIFY_OPS_CHANGES | WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE)
#define OPS_TEXT_MAX 64 /* "insert, update, delete, truncate, snapshot, message" */

#define PROBE_STRING_MAX 4096   /* longest name, version or description read from a plugin */
#define PROBE_SETTINGS_MAX 1024 /* most settings a plugin may declare */

#if defined(__LP64__)
_Static_assert(ABI_1_0_SIZE == 64, "ABI 1.0's descriptor prefix is 64 bytes on LP64");
_Static_assert(ABI_1_1_SIZE == 112, "ABI 1.1's descriptor is 112 bytes on LP64");
#endif

/* "insert, update" for a set of WALNOTIFY_OP_* bits; "none" for none. */
static const char *ops_text(unsigned ops, char *out, size_t outlen)
{
    wn_config_ops_text(ops, out, outlen);
    if (out[0] == '\0')
        snprintf(out, outlen, "none");
    return out;
}

/* ---- the descriptor ---------------------------------------------------------------------------
 */

static int check_descriptor(const walnotify_plugin *d, const wn_plugin_config *config, char *err,
                            size_t errlen)
{
    if (d->magic != WALNOTIFY_PLUGIN_MAGIC)
        return wn_refuse_plugin(err, errlen, config,
                                "descriptor magic 0x%08" PRIX32
                                ", expected 0x%08X: not a walnotify plugin",
                                d->magic, WALNOTIFY_PLUGIN_MAGIC);
    if (d->abi_major != WALNOTIFY_ABI_MAJOR)
        return wn_refuse_plugin(err, errlen, config, "ABI major version %u, this host speaks %d",
                                (unsigned)d->abi_major, WALNOTIFY_ABI_MAJOR);
    if (d->abi_minor > WALNOTIFY_ABI_MINOR)
        return wn_refuse_plugin(err, errlen, config,
                                "built for ABI %u.%u, newer than this host's %d.%d",
                                (unsigned)d->abi_major, (unsigned)d->abi_minor, WALNOTIFY_ABI_MAJOR,
                                WALNOTIFY_ABI_MINOR);
    if (d->size < ABI_1_0_SIZE)
        return wn_refuse_plugin(err, errlen, config,
                                "descriptor size %" PRIu32 " bytes, ABI %d.0 needs at least %zu",
                                d->size, WALNOTIFY_ABI_MAJOR, (size_t)ABI_1_0_SIZE);
    /* Reading 1.1's members from a shorter descriptor would read past the plugin's own. */
    if (d->abi_minor >= 1 && d->size < ABI_1_1_SIZE)
        return wn_refuse_plugin(
            err, errlen, config, "descriptor size %" PRIu32 " bytes, ABI %u.%u needs at least %zu",
            d->size, (unsigned)d->abi_major, (unsigned)d->abi_minor, (size_t)ABI_1_1_SIZE);
    return 0;
}

static int check_copy(const walnotify_plugin *d, const wn_plugin_config *config, char *err,
                      size_t errlen)
{
    if (!d->name || d->name[0] == '\0')
        return wn_refuse_plugin(err, errlen, config, "the descriptor has no name");
    if (!d->init)
        return wn_refuse_plugin(err, errlen, config, "required callback init is NULL");
    if (!d->handle)
        return wn_refuse_plugin(err, errlen, config, "required callback handle is NULL");
    if (!d->shutdown)
        return wn_refuse_plugin(err, errlen, config, "required callback shutdown is NULL");
    if (d->ops & ~(unsigned)KNOWN_OPS)
        return wn_refuse_plugin(
            err, errlen, config,
            "descriptor ops 0x%X holds bits no operation of ABI %d.%d has (0x%X)", d->ops,
            WALNOTIFY_ABI_MAJOR, WALNOTIFY_ABI_MINOR, d->ops & ~(unsigned)KNOWN_OPS);
    return wn_settings_check_declarations(d, config, err, errlen);
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
        return wn_refuse_plugin(err, errlen, config, "cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return wn_refuse_plugin(err, errlen, config, "not a regular file");
    if (wn_trust_unsafe_allowed()) {
        *fd = open(path, O_RDONLY | O_CLOEXEC);
        if (*fd < 0)
            return wn_refuse_plugin(err, errlen, config, "cannot open: %s", strerror(errno));
        if (fstat(*fd, &st) == 0 && S_ISREG(st.st_mode))
            return 0;
        close(*fd);
        return wn_refuse_plugin(err, errlen, config, "not a regular file");
    }
    /* Whoever can change the file, or replace it, a folder or a link on its path, runs code as
     * walnotify's user. */
    *fd = wn_trust_open(path, why, sizeof why);
    if (*fd >= 0)
        return 0;
    return wn_refuse_plugin(err, errlen, config,
                            "refused: %s (set %s=1 to allow this in a development "
                            "tree)",
                            why, WN_ALLOW_UNSAFE_PATHS_ENV);
}

/* Replaces *fd by a sealed in-memory copy of its file. Returns 0, or WN_LOAD_REFUSED with err
 * set (*fd then closed). */
static int copy_to_memory(const wn_plugin_config *config, int *fd, char *err, size_t errlen)
{
    int copy = memfd_create("walnotify-plugin", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    char buffer[65536];
    ssize_t got;

    if (copy < 0) {
        close(*fd);
        return wn_refuse_plugin(err, errlen, config, "cannot make its in-memory copy: %s",
                                strerror(errno));
    }
    while ((got = read(*fd, buffer, sizeof buffer)) > 0) {
        if (write(copy, buffer, (size_t)got) != got) {
            got = -1;
            break;
        }
    }
    close(*fd);
    if (got < 0 ||
        fcntl(copy, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        int saved = errno;

        close(copy);
        return wn_refuse_plugin(err, errlen, config, "cannot copy it into memory: %s",
                                strerror(saved));
    }
    *fd = copy;
    return 0;
}

/* Loads the very file open_file checked, through its descriptor (or its copy): a path changed
 * since then (a link flipped) cannot substitute another file. */
static int open_library(wn_plugin *plugin, const wn_plugin_config *config, bool copy, char *err,
                        size_t errlen)
{
    char name[FD_NAME_MAX], why[PATH_MAX + 256], said[1024];
    const char *error;
    int rc = open_file(config, &plugin->fd, err, errlen);

    if (rc != 0)
        return rc;
    if (fstat(plugin->fd, &plugin->object) != 0)
        memset(&plugin->object, 0, sizeof plugin->object);
    if (copy && (rc = copy_to_memory(config, &plugin->fd, err, errlen)) != 0)
        return rc;
    dlerror();
    plugin->library = dlopen(fd_name(plugin->fd, name), RTLD_NOW | RTLD_LOCAL);
    if (plugin->library)
        return 0;
    error = dlerror();
    if (foreign_object(plugin->fd, why, sizeof why))
        rc = wn_refuse_plugin(err, errlen, config, "not loadable here: %s", why);
    else if (access(name, F_OK) != 0)
        rc = wn_refuse_plugin(err, errlen, config,
                              "cannot load it through %s: %s (is /proc mounted?)", name,
                              strerror(errno));
    else
        rc = wn_refuse_plugin(err, errlen, config, "not a loadable shared object: %s",
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
        return wn_refuse_plugin(err, errlen, config, "%s() returned a misaligned pointer %p",
                                WALNOTIFY_PLUGIN_ENTRY_SYMBOL, (const void *)d);
    if (!probe_open(&pr))
        return wn_refuse_plugin(err, errlen, config, "cannot check the descriptor: %s",
                                strerror(errno));
    memset(&copy, 0, sizeof copy);
    if (!probe_copy(&pr, d, head, &copy)) {
        status =
            wn_refuse_plugin(err, errlen, config, "%s() returned %p, which is not readable memory",
                             WALNOTIFY_PLUGIN_ENTRY_SYMBOL, (const void *)d);
        goto close_probe;
    }
    if (check_descriptor(&copy, config, err, errlen) != 0) {
        status = -1;
        goto close_probe;
    }
    /* An older plugin's descriptor ends early: what it lacks stays zero (absent callbacks). */
    if (!probe_copy(&pr, d, copy.size < sizeof copy ? copy.size : sizeof copy, &copy)) {
        status = wn_refuse_plugin(err, errlen, config,
                                  "the descriptor at %p is not readable for its %" PRIu32 " bytes",
                                  (const void *)d, copy.size);
        goto close_probe;
    }
    if (!readable_members(&pr, &copy, &unreadable))
        status =
            wn_refuse_plugin(err, errlen, config,
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
        return wn_refuse_plugin(err, errlen, config, "no %s() exported: not a walnotify plugin",
                                WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
    /* POSIX guarantees a function's address survives the trip through void *. */
    memcpy(&entry, &symbol, sizeof entry);
    d = entry();
    if (!d)
        return wn_refuse_plugin(err, errlen, config, "%s() returned NULL",
                                WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
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
        return wn_refuse_setting(err, errlen, file, config->line, config,
                                 "no ops given, so it would get %s, which %s does not handle (%s "
                                 "declares: %s); name its operations in ops",
                                 asked, d->name, d->name, have);
    return wn_refuse_setting(err, errlen, file, config->ops_line, config,
                             "ops asks for %s, which %s does not handle (%s declares: %s)", asked,
                             d->name, d->name, have);
}

/* ---- public -----------------------------------------------------------------------------------
 */

static int load(wn_plugin *plugin, const wn_plugin_config *config, const char *file,
                const char *config_dir, bool copy, char *err, size_t errlen)
{
    int rc;

    memset(plugin, 0, sizeof *plugin);
    plugin->config = config;
    rc = open_library(plugin, config, copy, err, errlen);
    if (rc != 0)
        goto forget;
    rc = read_descriptor(plugin, config, err, errlen);
    if (rc != 0)
        goto close_library;
    rc = check_ops(plugin, config, file, err, errlen);
    if (rc != 0)
        goto close_library;
    rc = wn_settings_check_configured(plugin, config, file, err, errlen);
    if (rc != 0)
        goto close_library;
    rc = wn_settings_build(plugin, config, file, config_dir, err, errlen);
    if (rc != 0)
        goto free_settings;
    plugin->settings->encoder = wn_encoder_create();
    if (!plugin->settings->encoder) {
        rc = wn_refuse_plugin(err, errlen, config, "out of memory for its JSON encoder");
        goto free_settings;
    }
    wn_services_fill(plugin, config);
    return 0;

free_settings:
    wn_settings_free(plugin->settings);
close_library:
    release_library(plugin);
forget:
    memset(plugin, 0, sizeof *plugin);
    return rc;
}

int wn_plugin_load(wn_plugin *plugin, const wn_plugin_config *config, const char *file,
                   const char *config_dir, char *err, size_t errlen)
{
    return load(plugin, config, file, config_dir, false, err, errlen);
}

int wn_plugin_load_copy(wn_plugin *plugin, const wn_plugin_config *config, const char *file,
                        const char *config_dir, char *err, size_t errlen)
{
    return load(plugin, config, file, config_dir, true, err, errlen);
}

/* The block's tables as the configuration names them, for check: what a plugin can refuse
 * before any server is asked (a name its sink cannot take). NULL with *n = 0 when there are none,
 * the plugin was built for an ABI before 1.2, or memory ran out (check then sees no tables). */
static walnotify_table *tables_by_name(const wn_plugin *plugin, const wn_source_config *source,
                                       size_t *n)
{
    const wn_plugin_config *config = plugin->config;
    walnotify_table *tables;

    *n = 0;
    if (source == NULL || source->ntables == 0 || plugin->descriptor.abi_minor < 2)
        return NULL;
    tables = calloc(source->ntables, sizeof *tables);
    if (tables == NULL)
        return NULL;
    for (size_t i = 0; i < source->ntables; i++) {
        if (config->watches != NULL && !config->watches[i])
            continue;
        tables[*n] = (walnotify_table){.size = sizeof(walnotify_table),
                                       .table = source->tables[i].qualified,
                                       .schema = source->tables[i].schema,
                                       .name = source->tables[i].name,
                                       .ops = wn_plugin_table_ops(plugin)};
        (*n)++;
    }
    return tables;
}

walnotify_status wn_plugin_check(wn_plugin *plugin, const wn_source_config *source,
                                 const char *file, char *err, size_t errlen)
{
    const wn_plugin_config *config = plugin->config;
    wn_plugin_settings *settings = plugin->settings;
    walnotify_table *tables;
    walnotify_status status;

    if (!plugin->library)
        return WALNOTIFY_FATAL;
    if (!plugin->descriptor.check)
        return WALNOTIFY_OK;
    settings->check_said[0] = '\0';
    tables = tables_by_name(plugin, source, &settings->ncheck_tables);
    settings->check_tables = tables;
    settings->checking = true;
    status = plugin->descriptor.check(&plugin->host);
    settings->checking = false;
    settings->check_tables = NULL;
    settings->ncheck_tables = 0;
    free(tables);
    if (status == WALNOTIFY_OK) {
        /* Accepted after all: what it said is no reason, but it was said. */
        if (settings->check_said[0] != '\0')
            wn_log(WN_LOG_ERROR, "%s%s", settings->log_prefix, settings->check_said);
        return WALNOTIFY_OK;
    }
    if (settings->check_said[0] != '\0')
        wn_refuse_setting(err, errlen, config->file ? config->file : file, config->line, config,
                          "%s", settings->check_said);
    else
        wn_refuse_setting(err, errlen, config->file ? config->file : file, config->line, config,
                          "%s refused its settings (check returned %s, saying nothing)",
                          plugin->descriptor.name,
                          status == WALNOTIFY_RETRY   ? "RETRY"
                          : status == WALNOTIFY_FATAL ? "FATAL"
                                                      : "an unknown status");
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

unsigned wn_plugin_table_ops(const wn_plugin *plugin)
{
    return plugin->config->ops & wn_plugin_ops(plugin) & ~(unsigned)WALNOTIFY_OP_MESSAGE;
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
    wn_settings_free(plugin->settings);
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
    size_t n = wn_settings_count(d->settings);
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
                   wn_settings_type_name(s->type), s->default_value, description);
        else
            append(out, outlen, &used, "  %s (%s, required): %s\n", s->name,
                   wn_settings_type_name(s->type), description);
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
    rc = open_library(&plugin, &config, false, err, errlen);
    if (rc != 0)
        return rc;
    rc = read_descriptor(&plugin, &config, err, errlen);
    if (rc == 0 && outlen > 0)
        describe_descriptor(&plugin.descriptor, out, outlen);
    release_library(&plugin);
    return rc == 0 ? 0 : WN_LOAD_REFUSED;
}
