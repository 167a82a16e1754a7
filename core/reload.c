/* reload: a new configuration applied at a transaction boundary, the stream kept flowing. */
#include "reload.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "deadletter.h"
#include "dispatchstate.h"
#include "log.h"

#define ERR_MAX 1024

/* ---- the instances in force -------------------------------------------------------------- */

int wn_reload_begin(wn_reload *reload, const wn_config *config, wn_plugin *plugins, size_t nplugins,
                    wn_session *session)
{
    *reload =
        (wn_reload){.session = session, .config = config, .first = plugins, .nfirst = nplugins};
    reload->plugins = calloc(nplugins ? nplugins : 1, sizeof *reload->plugins);
    reload->tables = calloc(nplugins ? nplugins : 1, sizeof *reload->tables);
    if (!reload->plugins || !reload->tables) {
        free(reload->plugins);
        free(reload->tables);
        return -1;
    }
    for (size_t i = 0; i < nplugins; i++)
        reload->plugins[i] = &plugins[i];
    reload->nplugins = nplugins;
    return 0;
}

/* Whether plugin is one of the first array's (not to be freed on its own). */
static bool is_first(const wn_reload *reload, const wn_plugin *plugin)
{
    return plugin >= reload->first && plugin < reload->first + reload->nfirst;
}

/* Unloads one instance and releases what it was lent. */
static void release(wn_reload *reload, wn_plugin *plugin, walnotify_table *tables)
{
    wn_plugin_unload(plugin);
    free(tables);
    if (!is_first(reload, plugin))
        free(plugin);
}

void wn_reload_end(wn_reload *reload)
{
    for (size_t i = reload->nplugins; i > 0; i--)
        release(reload, reload->plugins[i - 1], reload->tables[i - 1]);
    /* The first array's instances removed by a reload were unloaded then (zeroed: no-ops). */
    for (size_t i = 0; i < reload->nfirst; i++)
        wn_plugin_unload(&reload->first[i]);
    free(reload->first);
    free(reload->plugins);
    free(reload->tables);
    for (size_t i = 0; i < reload->nconfigs; i++) {
        wn_config_free(reload->configs[i]);
        free(reload->configs[i]);
    }
    free(reload->configs);
    memset(reload, 0, sizeof *reload);
}

/* The instance's tables as the catalog describes them, with the operations it receives. */
static walnotify_table *tables_for(const wn_catalog *catalog, const wn_plugin *plugin, size_t *n)
{
    unsigned ops = wn_plugin_table_ops(plugin);
    walnotify_table *mine = calloc(catalog->ntables ? catalog->ntables : 1, sizeof *mine);

    *n = 0;
    if (mine == NULL)
        return NULL;
    for (size_t t = 0; t < catalog->ntables; t++) {
        if (!plugin->config->watches[t])
            continue;
        mine[*n] = catalog->tables[t];
        mine[*n].ops = ops;
        (*n)++;
    }
    return mine;
}

bool wn_reload_lend(wn_reload *reload, size_t i, wn_lsn resume)
{
    size_t n;

    if (reload->tables[i] == NULL) {
        reload->tables[i] = tables_for(reload->catalog, reload->plugins[i], &n);
        if (reload->tables[i] == NULL)
            return false;
    } else {
        free(tables_for(reload->catalog, reload->plugins[i], &n)); /* only counts */
    }
    wn_plugin_set_context(reload->plugins[i], &reload->catalog->source, reload->tables[i], n,
                          resume);
    return true;
}

wn_plugin_metrics *wn_reload_metrics(wn_metrics *metrics, const char *name)
{
    wn_plugin_metrics *m;

    for (size_t i = 0; (m = wn_metrics_plugin(metrics, i)) != NULL; i++) {
        if (strcmp(m->name, name) == 0)
            return m;
    }
    return NULL;
}

bool wn_reload_pending(const wn_reload *reload)
{
    return reload != NULL && wn_session_reload_pending(reload->session);
}

/* ---- what may change -------------------------------------------------------------------- */

static bool same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_tables(const wn_source_config *a, const wn_source_config *b)
{
    if (a->ntables != b->ntables)
        return false;
    for (size_t i = 0; i < a->ntables; i++) {
        if (strcmp(a->tables[i].qualified, b->tables[i].qualified) != 0)
            return false;
    }
    return true;
}

/* Whether a block of config asks for logical decoding messages: the stream asks the server for
 * them only then. */
static bool wants_messages(const wn_config *config)
{
    for (size_t i = 0; i < config->nplugins; i++) {
        if (config->plugins[i].ops & WALNOTIFY_OP_MESSAGE)
            return true;
    }
    return false;
}

/* The first key that cannot change while walnotify runs and did, or NULL. The stream, the
 * snapshot and the metrics listener were set up from them; an operation no block asked for
 * before may not be published. */
static const char *fixed_key_changed(const wn_config *old, const wn_config *new)
{
    const wn_source_config *a = &old->source, *b = &new->source;

    if (!same_text(a->conninfo, b->conninfo))
        return "source.conninfo";
    if (!same_tables(a, b))
        return "source.tables";
    if (!same_text(a->slot, b->slot))
        return "source.slot";
    if (!same_text(a->publication, b->publication))
        return "source.publication";
    if (a->snapshot != b->snapshot)
        return "source.snapshot";
    if (!same_text(a->state_file, b->state_file))
        return "source.state_file";
    if (a->status_interval_ms != b->status_interval_ms)
        return "source.status_interval_ms";
    if (a->receive_timeout_ms != b->receive_timeout_ms)
        return "source.receive_timeout_ms";
    if (a->reconnect_initial_ms != b->reconnect_initial_ms)
        return "source.reconnect_initial_ms";
    if (a->reconnect_max_ms != b->reconnect_max_ms)
        return "source.reconnect_max_ms";
    if (a->progress_interval_ms != b->progress_interval_ms)
        return "source.progress_interval_ms";
    if (a->flush != b->flush)
        return "source.flush";
    if (!same_text(old->metrics_listen, new->metrics_listen))
        return "metrics_listen";
    if ((new->ops & ~old->ops) != 0)
        return "ops (an operation no block received before: the publication may not publish it)";
    if (wants_messages(new) && !wants_messages(old))
        return "ops (message, which no block received before: the stream does not carry them)";
    return NULL;
}

static bool same_setting(const wn_setting_value *a, const wn_setting_value *b)
{
    if (strcmp(a->name, b->name) != 0 || a->kind != b->kind)
        return false;
    switch (a->kind) {
    case WN_SETTING_STRING:
        return same_text(a->string, b->string);
    case WN_SETTING_INTEGER:
        return a->integer == b->integer;
    case WN_SETTING_FLOAT:
        return a->real == b->real;
    case WN_SETTING_BOOLEAN:
        return a->boolean == b->boolean;
    case WN_SETTING_STRING_LIST:
        if (a->nitems != b->nitems)
            return false;
        for (size_t i = 0; i < a->nitems; i++) {
            if (strcmp(a->items[i], b->items[i]) != 0)
                return false;
        }
        return true;
    case WN_SETTING_OTHER:
        return false; /* the plugin refuses it anyway */
    }
    return false;
}

static bool same_prefixes(const wn_plugin_config *a, const wn_plugin_config *b)
{
    if ((a->message_prefixes == NULL) != (b->message_prefixes == NULL) ||
        a->nmessage_prefixes != b->nmessage_prefixes)
        return false;
    for (size_t i = 0; i < a->nmessage_prefixes; i++) {
        if (strcmp(a->message_prefixes[i], b->message_prefixes[i]) != 0)
            return false;
    }
    return true;
}

/* Whether two blocks of one name ask for the same instance (where they are written aside). */
static bool same_block(const wn_plugin_config *a, const wn_plugin_config *b, size_t ntables)
{
    if (strcmp(a->path, b->path) != 0 || a->ops != b->ops || !same_prefixes(a, b) ||
        memcmp(a->watches, b->watches, ntables * sizeof *a->watches) != 0 ||
        a->on_error != b->on_error || a->retry_max != b->retry_max ||
        a->retry_initial_ms != b->retry_initial_ms || a->retry_max_ms != b->retry_max_ms ||
        a->then != b->then || !same_text(a->dead_letter, b->dead_letter) ||
        a->nsettings != b->nsettings)
        return false;
    for (size_t i = 0; i < a->nsettings; i++) {
        if (!same_setting(&a->settings[i], &b->settings[i]))
            return false;
    }
    return true;
}

/* Whether the file at the block's path is still the one the instance loaded: a new build,
 * installed by rename, is another inode; one copied over it another size or time. */
static bool same_object(const wn_plugin *plugin, const char *path)
{
    const struct stat *loaded = &plugin->object;
    struct stat now;

    if (stat(path, &now) != 0)
        return false;
    return now.st_dev == loaded->st_dev && now.st_ino == loaded->st_ino &&
           now.st_size == loaded->st_size && now.st_mtim.tv_sec == loaded->st_mtim.tv_sec &&
           now.st_mtim.tv_nsec == loaded->st_mtim.tv_nsec;
}

/* ---- applying -------------------------------------------------------------------------- */

/* One block of the new configuration and what becomes of it. */
typedef struct change {
    const wn_plugin_config *block; /* in the new configuration */
    long old;                      /* index of the running instance of its name; -1: added */
    bool kept;                     /* that instance runs on untouched */
    wn_plugin *fresh;              /* loaded and checked for an added or changed block */
} change;

/* What a reload holds while it is applied. */
typedef struct plan {
    wn_config *config; /* the new configuration, read */
    change *changes;   /* [config->nplugins] */
    bool *going;       /* [running nplugins]: its block is gone or changed */
} plan;

static void plan_free(plan *p, bool with_config)
{
    if (p->changes != NULL) {
        for (size_t i = 0; i < p->config->nplugins; i++) {
            if (p->changes[i].fresh == NULL)
                continue;
            wn_plugin_unload(p->changes[i].fresh);
            free(p->changes[i].fresh);
        }
    }
    free(p->changes);
    free(p->going);
    if (with_config && p->config != NULL) {
        wn_config_free(p->config);
        free(p->config);
    }
}

static long running_index(const wn_reload *reload, const char *name)
{
    for (size_t i = 0; i < reload->nplugins; i++) {
        if (strcmp(reload->plugins[i]->config->name, name) == 0)
            return (long)i;
    }
    return -1;
}

/* Loads and checks the new object of one block, from a copy of its own when it is a new build
 * of the running instance's. false with one line in err. */
static bool load_fresh(const wn_config *config, change *c, bool new_build, char *err, size_t errlen)
{
    int rc;

    c->fresh = calloc(1, sizeof *c->fresh);
    if (c->fresh == NULL) {
        snprintf(err, errlen, "out of memory loading plugin \"%s\"", c->block->name);
        return false;
    }
    rc = new_build ? wn_plugin_load_copy(c->fresh, c->block, config->file, config->dir, err, errlen)
                   : wn_plugin_load(c->fresh, c->block, config->file, config->dir, err, errlen);
    if (rc != 0) {
        free(c->fresh);
        c->fresh = NULL;
        return false;
    }
    return wn_plugin_check(c->fresh, &config->source, config->file, err, errlen) == WALNOTIFY_OK;
}

/* Reads the file and decides every block's fate, loading what is new; nothing running is
 * touched. false with one line in err: the running configuration is then kept. */
static bool plan_reload(const wn_reload *reload, plan *p, char *err, size_t errlen)
{
    const wn_config *old = reload->config;
    const char *key;

    p->config = calloc(1, sizeof *p->config);
    if (p->config == NULL || wn_config_load(old->file, p->config, err, errlen) != 0) {
        free(p->config);
        p->config = NULL;
        if (p->config == NULL && err[0] == '\0')
            snprintf(err, errlen, "out of memory");
        return false;
    }
    key = fixed_key_changed(old, p->config);
    if (key != NULL) {
        snprintf(err, errlen, "%s cannot change while walnotify runs (restart it for that)", key);
        return false;
    }
    p->changes = calloc(p->config->nplugins ? p->config->nplugins : 1, sizeof *p->changes);
    p->going = calloc(reload->nplugins ? reload->nplugins : 1, sizeof *p->going);
    if (p->changes == NULL || p->going == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    for (size_t i = 0; i < reload->nplugins; i++)
        p->going[i] = true;
    for (size_t i = 0; i < p->config->nplugins; i++) {
        change *c = &p->changes[i];
        bool new_build = false;

        c->block = &p->config->plugins[i];
        c->old = running_index(reload, c->block->name);
        if (c->old >= 0) {
            const wn_plugin *running = reload->plugins[c->old];

            new_build = !same_object(running, c->block->path);
            c->kept = same_block(running->config, c->block, old->source.ntables) && !new_build;
            p->going[c->old] = !c->kept;
        }
        if (!c->kept && !load_fresh(p->config, c, new_build, err, errlen))
            return false;
    }
    return true;
}

/* Starts one instance: context, init (a RETRY counts as a failure here: the old block is
 * started again instead, or walnotify stops). */
static bool start(wn_reload *reload, wn_plugin *plugin, walnotify_table **tables, wn_lsn resume)
{
    size_t n;

    *tables = tables_for(reload->catalog, plugin, &n);
    if (*tables == NULL)
        return false;
    wn_plugin_set_context(plugin, &reload->catalog->source, *tables, n, resume);
    return wn_plugin_init(plugin) == WALNOTIFY_OK;
}

/* The changed block's new instance failed to start: the old block, loaded again, takes its
 * place. false when that fails too. */
static bool fall_back(wn_reload *reload, change *c, const wn_plugin_config *old_block,
                      walnotify_table **tables, wn_lsn resume)
{
    char err[ERR_MAX];
    const wn_config *old = reload->config;

    wn_plugin_unload(c->fresh);
    free(*tables);
    *tables = NULL;
    if (wn_plugin_load(c->fresh, old_block, old->file, old->dir, err, sizeof err) != 0) {
        wn_log(WN_LOG_ERROR, "reload: plugin \"%s\": its old settings cannot start again: %s",
               old_block->name, err);
        return false;
    }
    if (!start(reload, c->fresh, tables, resume)) {
        wn_log(WN_LOG_ERROR, "reload: plugin \"%s\": init failed with its old settings too",
               old_block->name);
        return false;
    }
    wn_log(WN_LOG_WARNING,
           "reload: plugin \"%s\": its new block failed to start (init); running with its old "
           "settings",
           old_block->name);
    return true;
}

/* What the dispatcher tracks of an instance that starts now. false with d->result set. */
static bool new_instance(dispatcher *d, instance *inst, wn_plugin *plugin)
{
    char why[512];

    memset(inst, 0, sizeof *inst);
    inst->plugin = plugin;
    inst->ops = plugin->config->ops & wn_plugin_ops(plugin);
    inst->metrics = wn_reload_metrics(d->options->metrics, plugin->config->name);
    wn_requests_new_stream(&plugin->requests);
    if (plugin->config->dead_letter == NULL)
        return true;
    inst->deadletter = wn_deadletter_open(plugin->config->dead_letter, why, sizeof why);
    if (inst->deadletter != NULL)
        return true;
    fail(d, WN_DISPATCH_PLUGIN_FATAL, "plugin \"%s\": %s", plugin->config->name, why);
    return false;
}

/* Whether the new configuration has a block of that name. */
static bool in_plan(const plan *p, const char *name)
{
    for (size_t i = 0; i < p->config->nplugins; i++) {
        if (strcmp(p->config->plugins[i].name, name) == 0)
            return true;
    }
    return false;
}

/* The instances that go: shut down (they were flushed), in reverse order, before any new one
 * starts, as a changed one may hold what only one instance can have (a file's lock). */
static void stop_going(wn_reload *reload, dispatcher *d, const plan *p)
{
    for (size_t i = reload->nplugins; i > 0; i--) {
        wn_plugin *plugin = reload->plugins[i - 1];

        if (!p->going[i - 1])
            continue;
        wn_deadletter_close(d->instances[i - 1].deadletter);
        d->instances[i - 1].deadletter = NULL;
        if (!in_plan(p, plugin->config->name))
            wn_log(WN_LOG_INFO, "reload: plugin \"%s\" removed (shut down)", plugin->config->name);
        wn_plugin_shutdown(plugin);
    }
}

/* The new arrays, filled by start_all. */
typedef struct next_set {
    wn_plugin **plugins;
    walnotify_table **tables;
    instance *instances;
    size_t added, changed, kept, fallen; /* fallen: back to the old block */
} next_set;

/* Starts (or keeps) each block's instance in the new order. false, d->result set, at the first
 * that cannot start; the rest are placed unstarted, so that the run's end unloads them all. */
static bool start_all(wn_reload *reload, dispatcher *d, plan *p, next_set *n)
{
    bool ok = true;

    for (size_t i = 0; i < p->config->nplugins; i++) {
        change *c = &p->changes[i];

        if (c->kept) {
            n->plugins[i] = reload->plugins[c->old];
            n->tables[i] = reload->tables[c->old];
            reload->tables[c->old] = NULL;
            n->instances[i] = d->instances[c->old];
            n->kept++;
            continue;
        }
        n->plugins[i] = c->fresh;
        c->fresh = NULL;
        if (!ok)
            continue;
        if (!start(reload, n->plugins[i], &n->tables[i], d->published)) {
            change held = {.fresh = n->plugins[i]};

            if (c->old < 0 || !fall_back(reload, &held, reload->plugins[c->old]->config,
                                         &n->tables[i], d->published)) {
                fail(d, WN_DISPATCH_PLUGIN_FATAL, "reload: plugin \"%s\" (%s) failed to start",
                     c->block->name, c->block->path);
                ok = false;
                continue;
            }
            n->fallen++;
        } else if (c->old < 0) {
            wn_log(WN_LOG_INFO, "reload: plugin \"%s\" added (%s)", c->block->name, c->block->path);
            n->added++;
        } else {
            wn_log(WN_LOG_INFO,
                   "reload: plugin \"%s\" changed: shut down and started with its new "
                   "block (%s)",
                   c->block->name, c->block->path);
            n->changed++;
        }
        ok = new_instance(d, &n->instances[i], n->plugins[i]);
    }
    return ok;
}

static const char *level_name(wn_log_level level)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};

    return (unsigned)level < sizeof names / sizeof names[0] ? names[level] : "?";
}

/* The keys outside the blocks that a reload applies, each change said in one line. */
static void apply_top_keys(const wn_config *old, const wn_config *new, wn_session *session)
{
    if (new->log_level != old->log_level) {
        wn_log_set_level(new->log_level);
        wn_log(WN_LOG_INFO, "reload: log_level %s (was %s)", level_name(new->log_level),
               level_name(old->log_level));
    }
    if (new->stop_timeout_ms != old->stop_timeout_ms) {
        wn_session_set_stop_timeout(session, new->stop_timeout_ms);
        wn_log(WN_LOG_INFO, "reload: stop_timeout_ms %d (was %d)", new->stop_timeout_ms,
               old->stop_timeout_ms);
    }
}

/* Whether an instance in force was made from a block of config. */
static bool in_use(const wn_reload *reload, const wn_config *config)
{
    for (size_t i = 0; i < reload->nplugins; i++) {
        const wn_plugin_config *block = reload->plugins[i]->config;

        if (block >= config->plugins && block < config->plugins + config->nplugins)
            return true;
    }
    return false;
}

/* Frees the configurations earlier reloads read that no instance uses any more (the one in force
 * stays): a daemon reloaded every hour must not grow. */
static void prune_configs(wn_reload *reload)
{
    size_t kept = 0;

    for (size_t i = 0; i < reload->nconfigs; i++) {
        wn_config *config = reload->configs[i];

        if (config == reload->config || in_use(reload, config)) {
            reload->configs[kept++] = config;
            continue;
        }
        wn_config_free(config);
        free(config);
    }
    reload->nconfigs = kept;
}

/* Replaces the running set by the planned one. false (d->result set) when an instance could
 * not start: the run then ends with exit 2. */
static bool commit_plan(wn_reload *reload, dispatcher *d, plan *p)
{
    size_t count = p->config->nplugins, removed = 0;
    wn_config **configs = realloc(reload->configs, (reload->nconfigs + 1) * sizeof *configs);
    next_set n = {
        .plugins = calloc(count ? count : 1, sizeof *n.plugins),
        .tables = calloc(count ? count : 1, sizeof *n.tables),
        .instances = calloc(count ? count : 1, sizeof *n.instances),
    };
    bool ok;

    if (configs != NULL)
        reload->configs = configs;
    if (configs == NULL || !n.plugins || !n.tables || !n.instances) {
        free(n.plugins);
        free(n.tables);
        free(n.instances);
        wn_log(WN_LOG_ERROR, "reload refused: out of memory; the running configuration is kept");
        plan_free(p, true);
        return true;
    }
    stop_going(reload, d, p);
    ok = start_all(reload, d, p, &n);
    for (size_t i = 0; i < reload->nplugins; i++) {
        if (!p->going[i])
            continue;
        removed += !in_plan(p, reload->plugins[i]->config->name);
        release(reload, reload->plugins[i], reload->tables[i]);
    }
    free(reload->plugins);
    free(reload->tables);
    free(d->instances);
    reload->plugins = n.plugins;
    reload->tables = n.tables;
    reload->nplugins = count;
    d->instances = n.instances;
    d->ninstances = count;
    apply_top_keys(reload->config, p->config, reload->session);
    reload->configs[reload->nconfigs++] = p->config;
    reload->config = p->config;
    plan_free(p, false);
    prune_configs(reload);
    if (ok)
        wn_log(WN_LOG_INFO,
               "reload applied: %zu plugin(s) added, %zu removed, %zu changed, %zu unchanged, "
               "%zu back on their old settings",
               n.added, removed, n.changed, n.kept, n.fallen);
    return ok;
}

bool wn_reload_apply(dispatcher *d)
{
    wn_reload *reload = d->options->reload;
    plan p = {0};
    char err[ERR_MAX] = "";
    bool ok = true;

    (void)wn_session_take_reload(reload->session);
    wn_notify_reloading(d->options->notify);
    if (plan_reload(reload, &p, err, sizeof err)) {
        ok = commit_plan(reload, d, &p);
    } else {
        wn_log(WN_LOG_ERROR, "reload refused: %s; the running configuration is kept", err);
        plan_free(&p, true);
    }
    wn_notify_reloaded(d->options->notify);
    return ok;
}
