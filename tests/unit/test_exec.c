/*
 * Unit tests of the exec plugin: the shared object is loaded with dlopen and driven through a
 * fake host the way walnotify drives it (begin, handle, commit, flush; after a RETRY, abort and
 * deliver again from the last flushed transaction), against a real child process,
 * tests/fixtures/exec/child.sh, that speaks the protocol or breaks it on purpose.
 */
#include <walnotify/plugin.h>

#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_suite.h"
#include "unit_paths.h"

#define LOG_CAP (256 * 1024)
#define BIG_VALUE (300 * 1024) /* bytes of one event's value, over the plugin's output buffer */

/* ---- the plugin ------------------------------------------------------------------------------ */

static void *plugin_handle;
static const walnotify_plugin *plugin;
static char root[2048]; /* the repository */
static char work_dir[256];

/* The repository, absolute: the child runs in another folder. */
static void find_root(void)
{
    char relative[PATH_MAX], resolved[PATH_MAX];

    unit_repo_file(relative, sizeof relative, __FILE__, ".");
    ck_assert_ptr_nonnull(realpath(relative, resolved));
    ck_assert_uint_lt(strlen(resolved), sizeof root);
    memcpy(root, resolved, strlen(resolved) + 1);
}

/* ---- a fake host ----------------------------------------------------------------------------- */

typedef struct fake_host {
    walnotify_host host; /* first: the plugin's pointer is ours */
    const char *command[8];
    size_t ncommand;
    const char *env[4];
    size_t nenv;
    const char *cwd;
    int64_t ack_timeout_ms;

    pthread_mutex_t lock; /* log is called from the plugin's threads too */
    char log[LOG_CAP];
    size_t loglen;

    int rewinds;
    char reason[512];
    int fails;
    walnotify_id first, last;
    walnotify_failure failure;

    size_t big_seq; /* the event with this seq carries a BIG_VALUE-byte value */
    char *json;
} fake_host;

static fake_host *fake(const walnotify_host *host)
{
    return (fake_host *)host;
}

__attribute__((format(printf, 3, 4))) static void
fake_log(const walnotify_host *host, walnotify_log_level level, const char *format, ...)
{
    fake_host *fh = fake(host);
    va_list args;
    int n;

    pthread_mutex_lock(&fh->lock);
    n = snprintf(fh->log + fh->loglen, LOG_CAP - fh->loglen, "%d: ", (int)level);
    if (n > 0 && (size_t)n < LOG_CAP - fh->loglen)
        fh->loglen += (size_t)n;
    va_start(args, format);
    n = vsnprintf(fh->log + fh->loglen, LOG_CAP - fh->loglen, format, args);
    va_end(args);
    if (n > 0 && (size_t)n < LOG_CAP - fh->loglen - 1) {
        fh->loglen += (size_t)n;
        fh->log[fh->loglen++] = '\n';
        fh->log[fh->loglen] = '\0';
    }
    pthread_mutex_unlock(&fh->lock);
}

static bool fake_logged(fake_host *fh, const char *text)
{
    bool found;

    pthread_mutex_lock(&fh->lock);
    found = strstr(fh->log, text) != NULL;
    pthread_mutex_unlock(&fh->lock);
    return found;
}

static const char *fake_get_string(const walnotify_host *host, const char *name)
{
    return strcmp(name, "cwd") == 0 ? fake(host)->cwd : NULL;
}

static int64_t fake_get_integer(const walnotify_host *host, const char *name)
{
    return strcmp(name, "ack_timeout_ms") == 0 ? fake(host)->ack_timeout_ms : 0;
}

static size_t fake_list_length(const walnotify_host *host, const char *name)
{
    if (strcmp(name, "command") == 0)
        return fake(host)->ncommand;
    return strcmp(name, "env") == 0 ? fake(host)->nenv : 0;
}

static const char *fake_list_item(const walnotify_host *host, const char *name, size_t i)
{
    if (strcmp(name, "command") == 0 && i < fake(host)->ncommand)
        return fake(host)->command[i];
    if (strcmp(name, "env") == 0 && i < fake(host)->nenv)
        return fake(host)->env[i];
    return NULL;
}

/* {"lsn":"0/1000","seq":0,"values":{"id":"0"}}, or a big value for seq big_seq; a snapshot
 * event or a message shows its ordinal as the jsonl plugin's line does. */
static const char *fake_encode(const walnotify_host *host, const walnotify_event *event,
                               size_t *length)
{
    fake_host *fh = fake(host);
    size_t cap = BIG_VALUE + 256;
    int n;

    if (fh->json == NULL)
        fh->json = malloc(cap);
    ck_assert_ptr_nonnull(fh->json);
    if (event->op == WALNOTIFY_OP_SNAPSHOT) {
        n = snprintf(fh->json, cap,
                     "{\"snapshot\":\"%X/%X\",\"ordinal\":%" PRIu64 ",\"op\":\"snapshot\"}",
                     (unsigned)(event->commit_lsn >> 32), (unsigned)event->commit_lsn,
                     event->id.ordinal);
    } else if (event->op == WALNOTIFY_OP_MESSAGE) {
        n = snprintf(fh->json, cap,
                     "{\"lsn\":\"%X/%X\",\"ordinal\":%" PRIu64
                     ",\"op\":\"message\",\"prefix\":\"%s\"}",
                     (unsigned)(event->commit_lsn >> 32), (unsigned)event->commit_lsn,
                     event->id.ordinal, event->message_prefix);
    } else if (event->seq == fh->big_seq) {
        n = snprintf(fh->json, cap, "{\"lsn\":\"%X/%X\",\"seq\":%" PRIu32 ",\"values\":{\"v\":\"",
                     (unsigned)(event->commit_lsn >> 32), (unsigned)event->commit_lsn, event->seq);
        memset(fh->json + n, 'x', BIG_VALUE);
        n += BIG_VALUE;
        n += snprintf(fh->json + n, cap - (size_t)n, "\"}}");
    } else {
        n = snprintf(fh->json, cap,
                     "{\"lsn\":\"%X/%X\",\"seq\":%" PRIu32 ",\"values\":{\"id\":\"%" PRIu32 "\"}}",
                     (unsigned)(event->commit_lsn >> 32), (unsigned)event->commit_lsn, event->seq,
                     event->seq);
    }
    *length = (size_t)n;
    return fh->json;
}

static walnotify_status fake_rewind(const walnotify_host *host, const char *reason)
{
    fake_host *fh = fake(host);

    fh->rewinds++;
    snprintf(fh->reason, sizeof fh->reason, "%s", reason);
    return WALNOTIFY_RETRY;
}

static walnotify_status fake_fail_events(const walnotify_host *host, walnotify_id first,
                                         walnotify_id last, walnotify_failure failure,
                                         const char *reason)
{
    fake_host *fh = fake(host);

    fh->fails++;
    fh->first = first;
    fh->last = last;
    fh->failure = failure;
    snprintf(fh->reason, sizeof fh->reason, "%s", reason);
    return WALNOTIFY_RETRY;
}

static char child_path[PATH_MAX];

/* A host whose child is child.sh in `mode`, writing into the test's folder. */
static fake_host *fake_new(const char *mode, int64_t ack_timeout_ms)
{
    fake_host *fh = calloc(1, sizeof *fh);

    ck_assert_ptr_nonnull(fh);
    pthread_mutex_init(&fh->lock, NULL);
    fh->host.size = sizeof fh->host;
    fh->host.abi_major = WALNOTIFY_ABI_MAJOR;
    fh->host.abi_minor = WALNOTIFY_ABI_MINOR;
    fh->host.instance_name = "sink";
    fh->host.log = fake_log;
    fh->host.get_string = fake_get_string;
    fh->host.get_integer = fake_get_integer;
    fh->host.get_list_length = fake_list_length;
    fh->host.get_list_item = fake_list_item;
    fh->host.encode_json = fake_encode;
    fh->host.rewind = fake_rewind;
    fh->host.fail_events = fake_fail_events;
    snprintf(child_path, sizeof child_path, "%s/tests/fixtures/exec/child.sh", root);
    fh->command[0] = "/bin/sh";
    fh->command[1] = child_path;
    fh->command[2] = mode;
    fh->command[3] = work_dir;
    fh->ncommand = 4;
    fh->cwd = work_dir;
    fh->ack_timeout_ms = ack_timeout_ms;
    fh->big_seq = SIZE_MAX;
    return fh;
}

static void fake_free(fake_host *fh)
{
    pthread_mutex_destroy(&fh->lock);
    free(fh->json);
    free(fh);
}

/* ---- driving it as walnotify does ------------------------------------------------------------ */

static uint64_t txn_lsn(int i)
{
    return 0x1000000ULL + 0x100ULL * (uint64_t)i;
}

static walnotify_status deliver_txn(void *state, int i, int nevents)
{
    walnotify_txn txn = {.size = sizeof txn, .commit_lsn = txn_lsn(i), .xid = 700u + (unsigned)i};
    walnotify_status status = plugin->begin(state, &txn);

    for (int e = 0; e < nevents && status == WALNOTIFY_OK; e++) {
        walnotify_event event = {.size = sizeof event,
                                 .table = "public.t",
                                 .op = WALNOTIFY_OP_INSERT,
                                 .commit_lsn = txn.commit_lsn,
                                 .xid = txn.xid,
                                 .seq = (uint32_t)e,
                                 .id = {txn.commit_lsn, ((uint64_t)e + 1) << 32}};

        status = plugin->handle(state, &event);
    }
    if (status == WALNOTIFY_OK)
        status = plugin->commit(state, &txn);
    if (status != WALNOTIFY_OK)
        plugin->abort(state, &txn);
    return status;
}

/* The snapshot of the tests: its consistent point, below the commit LSN of every transaction
 * the tests deliver, as the snapshot precedes the transactions streamed after it. */
#define SNAPSHOT_LSN 0xF00060ULL

/* One batch of the snapshot: the events with ordinals first to last, of a snapshot of `rows`
 * rows (ordinal 0 is its begin marker, rows + 1 its end marker). */
static walnotify_status deliver_snapshot_batch(void *state, uint64_t first, uint64_t last,
                                               uint64_t rows)
{
    walnotify_txn txn = {.size = sizeof txn,
                         .commit_lsn = SNAPSHOT_LSN,
                         .kind = WALNOTIFY_TXN_SNAPSHOT};
    walnotify_status status = plugin->begin(state, &txn);

    for (uint64_t o = first; o <= last && status == WALNOTIFY_OK; o++) {
        walnotify_event event = {.size = sizeof event,
                                 .op = WALNOTIFY_OP_SNAPSHOT,
                                 .commit_lsn = SNAPSHOT_LSN,
                                 .id = {SNAPSHOT_LSN - 1, o}};

        event.snapshot_marker = o == 0          ? WALNOTIFY_SNAPSHOT_BEGIN
                                : o == rows + 1 ? WALNOTIFY_SNAPSHOT_END
                                                : WALNOTIFY_SNAPSHOT_ROW;
        event.table = event.snapshot_marker == WALNOTIFY_SNAPSHOT_ROW ? "public.t" : NULL;
        event.snapshot_rows = o == rows + 1 ? rows : 0;
        status = plugin->handle(state, &event);
    }
    if (status == WALNOTIFY_OK)
        status = plugin->commit(state, &txn);
    if (status != WALNOTIFY_OK)
        plugin->abort(state, &txn);
    return status;
}

/* A snapshot of 7 rows in three batches (ordinals 0-3, 4-6, 7-8), then transaction 0. On a
 * RETRY, the batches come again from the first, as after a rewind with nothing acknowledged. */
static int deliver_snapshot(void *state, fake_host *fh)
{
    static const uint64_t batches[][2] = {{0, 3}, {4, 6}, {7, 8}};
    int retries = 0;

    for (;;) {
        walnotify_status status = WALNOTIFY_OK;

        for (size_t b = 0; b < 3 && status == WALNOTIFY_OK; b++)
            status = deliver_snapshot_batch(state, batches[b][0], batches[b][1], 7);
        if (status == WALNOTIFY_OK)
            status = deliver_txn(state, 0, 1);
        if (status == WALNOTIFY_OK)
            status = plugin->flush(state);
        if (status == WALNOTIFY_OK)
            return retries;
        ck_assert_int_eq(status, WALNOTIFY_RETRY);
        ck_assert_msg(fh->rewinds + fh->fails == retries + 1, "%s", fh->log);
        ck_assert_msg(++retries < 3, "the plugin kept failing; log:\n%s", fh->log);
    }
}

/* A transaction with a message before its first change and one between its two changes, as
 * the host hands them: a message's seq counts the changes before it. */
static walnotify_status deliver_txn_with_messages(void *state, int i)
{
    walnotify_txn txn = {.size = sizeof txn, .commit_lsn = txn_lsn(i), .xid = 700u + (unsigned)i};
    walnotify_status status = plugin->begin(state, &txn);

    for (int e = 0; e < 4 && status == WALNOTIFY_OK; e++) {
        bool message = e % 2 == 0;
        uint32_t seq = (uint32_t)e / 2;
        walnotify_event event = {.size = sizeof event,
                                 .table = message ? NULL : "public.t",
                                 .op = message ? WALNOTIFY_OP_MESSAGE : WALNOTIFY_OP_INSERT,
                                 .commit_lsn = txn.commit_lsn,
                                 .xid = txn.xid,
                                 .seq = seq,
                                 .id = {txn.commit_lsn, message ? (uint64_t)seq << 32 | 1
                                                                : ((uint64_t)seq + 1) << 32},
                                 .transactional = message,
                                 .message_prefix = message ? "app" : NULL,
                                 .message_content = message ? "hello" : NULL,
                                 .message_length = message ? 5 : 0};

        status = plugin->handle(state, &event);
    }
    if (status == WALNOTIFY_OK)
        status = plugin->commit(state, &txn);
    if (status != WALNOTIFY_OK)
        plugin->abort(state, &txn);
    return status;
}

/*
 * Delivers ntxn transactions of nevents events, flushing after every flush_every and at the end.
 * A RETRY (which must come with a rewind or a named failure) starts again after the last flushed
 * transaction, as the host's rewind does. Returns the number of RETRYs.
 */
static int deliver(void *state, fake_host *fh, int ntxn, int nevents, int flush_every)
{
    int flushed = 0, retries = 0, i = 0;

    while (flushed < ntxn) {
        walnotify_status status = WALNOTIFY_OK;

        if (i < ntxn)
            status = deliver_txn(state, i, nevents);
        if (status == WALNOTIFY_OK && i < ntxn)
            i++;
        if (status == WALNOTIFY_OK && (i % flush_every == 0 || i == ntxn)) {
            status = plugin->flush(state);
            if (status == WALNOTIFY_OK)
                flushed = i;
        }
        if (status == WALNOTIFY_OK)
            continue;
        ck_assert_int_eq(status, WALNOTIFY_RETRY);
        ck_assert_msg(fh->rewinds + fh->fails == retries + 1,
                      "RETRY without a rewind or a named failure; log:\n%s", fh->log);
        retries++;
        ck_assert_msg(retries < 10, "the plugin kept failing; log:\n%s", fh->log);
        i = flushed;
    }
    return retries;
}

static char *read_input(size_t *length)
{
    char path[PATH_MAX];
    FILE *f;
    char *text;
    long size;

    snprintf(path, sizeof path, "%s/input", work_dir);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "the child wrote no %s", path);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    rewind(f);
    text = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(fread(text, 1, (size_t)size, f), (size_t)size);
    text[size] = '\0';
    fclose(f);
    if (length != NULL)
        *length = (size_t)size;
    return text;
}

/* The next child of the same test starts afresh: no input file, no marks. */
static void unlink_input(void)
{
    static const char *const files[] = {"input", "failed"};
    char path[PATH_MAX];

    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", work_dir, files[i]);
        unlink(path);
    }
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void *start(fake_host *fh)
{
    void *state = NULL;

    ck_assert_msg(plugin->check(&fh->host) == WALNOTIFY_OK, "check refused: %s", fh->log);
    ck_assert_msg(plugin->init(&fh->host, &state) == WALNOTIFY_OK, "init failed: %s", fh->log);
    return state;
}

/* A child in one mode, driven through ntxn transactions of nevents events each, flushed every
 * flush_every transactions, then shut down. */
typedef struct scenario {
    const char *mode;
    int64_t ack_timeout_ms;
    int ntxn;
    int nevents;
    int flush_every;
    int retries;                    /* the RETRYs expected while delivering */
    const char *said[2];            /* logged by the end of the delivery (NULL: nothing more) */
    const char *said_at_shutdown;   /* logged by the end of shutdown (NULL: nothing) */
} scenario;

static void assert_logged(fake_host *fh, const char *text)
{
    ck_assert_msg(fake_logged(fh, text), "no \"%s\" in:\n%s", text, fh->log);
}

/* Runs the scenario and checks what it expects; returns the host for further checks (to free).
 * A scenario without RETRYs must not have asked for a rewind either. */
static fake_host *run_scenario(const scenario *sc)
{
    fake_host *fh = fake_new(sc->mode, sc->ack_timeout_ms);
    void *state = start(fh);

    ck_assert_int_eq(deliver(state, fh, sc->ntxn, sc->nevents, sc->flush_every), sc->retries);
    for (size_t i = 0; i < sizeof sc->said / sizeof sc->said[0] && sc->said[i] != NULL; i++)
        assert_logged(fh, sc->said[i]);
    plugin->shutdown(state);
    if (sc->said_at_shutdown != NULL)
        assert_logged(fh, sc->said_at_shutdown);
    if (sc->retries == 0)
        ck_assert_msg(fh->rewinds == 0, "%s", fh->log);
    return fh;
}

static void check_scenario(const scenario *sc)
{
    fake_free(run_scenario(sc));
}

/* ---- fixtures -------------------------------------------------------------------------------- */

static void setup(void)
{
    char path[PATH_MAX];
    walnotify_plugin_entry_fn entry;
    sigset_t blocked;

    find_root();
    snprintf(path, sizeof path, "%s/build/plugins/exec.so", root);
    plugin_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(plugin_handle != NULL, "dlopen %s: %s", path, dlerror());
    *(void **)&entry = dlsym(plugin_handle, WALNOTIFY_PLUGIN_ENTRY_SYMBOL);
    ck_assert_ptr_nonnull(entry);
    plugin = entry();
    snprintf(work_dir, sizeof work_dir, "/tmp/test_exec.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(work_dir));
    /* As the host does: the child must not inherit these. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);
}

static void teardown(void)
{
    unit_remove_tree(work_dir);
    dlclose(plugin_handle);
}

/* ---- tests ----------------------------------------------------------------------------------- */

START_TEST(test_declaration)
{
    ck_assert_uint_eq(plugin->abi_minor, 1);
    ck_assert_uint_eq(plugin->ops,
                      WALNOTIFY_OPS_CHANGES | WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE);
    ck_assert_ptr_nonnull(plugin->check);
    ck_assert_str_eq(plugin->settings[0].name, "command");
    ck_assert_ptr_null(plugin->settings[0].default_value);
}
END_TEST

START_TEST(test_check_refuses)
{
    fake_host *fh = fake_new("ack", 1000);

    fh->ncommand = 0;
    ck_assert_int_eq(plugin->check(&fh->host), WALNOTIFY_FATAL);
    ck_assert(fake_logged(fh, "setting \"command\" is empty"));
    fh->ncommand = 4;
    fh->env[0] = "1BAD=x";
    fh->nenv = 1;
    ck_assert_int_eq(plugin->check(&fh->host), WALNOTIFY_FATAL);
    ck_assert(fake_logged(fh, "setting \"env\": item 1 \"1BAD=x\" is not NAME=value"));
    fh->env[0] = "GOOD=x";
    fh->ack_timeout_ms = 0;
    ck_assert_int_eq(plugin->check(&fh->host), WALNOTIFY_FATAL);
    ck_assert(fake_logged(fh, "setting \"ack_timeout_ms\" is 0"));
    fh->ack_timeout_ms = 1000;
    ck_assert_int_eq(plugin->check(&fh->host), WALNOTIFY_OK);
    fake_free(fh);
}
END_TEST

START_TEST(test_missing_program_is_fatal)
{
    fake_host *fh = fake_new("ack", 1000);
    void *state = NULL;

    fh->command[0] = "/nonexistent/sink";
    ck_assert_int_eq(plugin->check(&fh->host), WALNOTIFY_FATAL);
    ck_assert_int_eq(plugin->init(&fh->host, &state), WALNOTIFY_FATAL);
    assert_logged(fh, "setting \"command\": cannot run \"/nonexistent/sink\": "
                      "/nonexistent/sink is not an executable file");
    fake_free(fh);
}
END_TEST

/* A copy of child.sh at work_dir/name (name may hold one folder), with that mode and owner. */
static void copy_child(const char *name, mode_t mode, uid_t owner, char *path, size_t pathlen)
{
    char command[3 * PATH_MAX];

    snprintf(path, pathlen, "%s/%s", work_dir, name);
    snprintf(command, sizeof command, "mkdir -p \"$(dirname '%s')\" && cp '%s' '%s'", path,
             child_path, path);
    ck_assert_int_eq(system(command), 0);
    ck_assert_int_eq(chmod(path, mode), 0);
    ck_assert_int_eq(chown(path, owner, (gid_t)-1), 0);
}

/* check's verdict on fh, with what it logged expected in the log. */
static void assert_check(fake_host *fh, walnotify_status want, const char *said)
{
    ck_assert_msg(plugin->check(&fh->host) == want, "check did not answer %d; log:\n%s", want,
                  fh->log);
    if (said != NULL)
        assert_logged(fh, said);
}

START_TEST(test_program_must_be_trusted)
{
    fake_host *fh = fake_new("ack", 10000);
    char sink[PATH_MAX], said[2 * PATH_MAX + 256];
    void *state;

    ck_assert_int_eq(geteuid(), 0); /* walnotify as root, as often; chown needs it */
    copy_child("sink.sh", 0777, 0, sink, sizeof sink);
    fh->command[0] = sink;
    fh->command[1] = "ack";
    fh->command[2] = work_dir;
    fh->ncommand = 3;
    snprintf(said, sizeof said,
             "setting \"command\": refusing to run \"%s\": file %s is writable by everyone "
             "(mode 0777) (set WALNOTIFY_ALLOW_UNSAFE_PATHS=1",
             sink, sink);
    assert_check(fh, WALNOTIFY_FATAL, said);
    ck_assert_int_eq(plugin->init(&fh->host, &state), WALNOTIFY_FATAL);
    /* Run by an interpreter, the script is what counts. */
    fh->command[0] = "/bin/sh";
    fh->command[1] = sink;
    fh->command[2] = "ack";
    fh->command[3] = work_dir;
    fh->ncommand = 4;
    snprintf(said, sizeof said, "refusing to run \"/bin/sh\": file %s is writable", sink);
    assert_check(fh, WALNOTIFY_FATAL, said);
    ck_assert_int_eq(chmod(sink, 0755), 0);
    ck_assert_int_eq(chown(sink, 65534, (gid_t)-1), 0);
    snprintf(said, sizeof said, "file %s is owned by uid 65534", sink);
    assert_check(fh, WALNOTIFY_FATAL, said);
    /* The development trees' exemption. */
    ck_assert_int_eq(setenv("WALNOTIFY_ALLOW_UNSAFE_PATHS", "1", 1), 0);
    assert_check(fh, WALNOTIFY_OK, NULL);
    ck_assert_int_eq(unsetenv("WALNOTIFY_ALLOW_UNSAFE_PATHS"), 0);
    ck_assert_int_eq(chown(sink, 0, (gid_t)-1), 0);
    /* Trusted: it runs, by its absolute path. */
    fh->command[0] = "sh";
    state = start(fh);
    ck_assert_int_eq(deliver(state, fh, 1, 1, 1), 0);
    plugin->shutdown(state);
    ck_assert_msg(strstr(fh->log, "started child ") != NULL &&
                      strstr(strstr(fh->log, "started child "), ": /") != NULL,
                  "%s", fh->log);
    fake_free(fh);
}
END_TEST

START_TEST(test_program_is_never_found_in_the_working_folder)
{
    const char *saved = getenv("PATH");
    char *path = strdup(saved ? saved : "/usr/bin:/bin");
    fake_host *fh = fake_new("ack", 10000);
    char sink[PATH_MAX];

    ck_assert_ptr_nonnull(path);
    copy_child("mysink", 0755, 0, sink, sizeof sink);
    copy_child("sub/mysink", 0755, 0, sink, sizeof sink);
    fh->command[0] = "mysink";
    fh->command[1] = "ack";
    fh->command[2] = work_dir;
    fh->ncommand = 3;
    ck_assert_int_eq(setenv("PATH", "/usr/bin::/bin", 1), 0);
    assert_check(fh, WALNOTIFY_FATAL,
                 "setting \"command\": cannot run \"mysink\": it is found as");
    assert_logged(fh, "through the empty PATH entry \"\" (the working folder): name it with a "
                      "path, as \"./mysink\"");
    ck_assert_int_eq(setenv("PATH", "/usr/bin:sub", 1), 0);
    assert_check(fh, WALNOTIFY_FATAL, "through the relative PATH entry \"sub\"");
    ck_assert_int_eq(setenv("PATH", "/nonexistent:/usr/bin", 1), 0);
    assert_check(fh, WALNOTIFY_FATAL,
                 "cannot run \"mysink\": no executable file of that name in PATH "
                 "(/nonexistent:/usr/bin)");
    /* What an absolute entry finds first is run, whatever comes after. */
    ck_assert_int_eq(setenv("PATH", "/nonexistent:/bin:", 1), 0);
    fh->command[0] = "sh";
    fh->command[1] = child_path;
    fh->command[2] = "ack";
    fh->command[3] = work_dir;
    fh->ncommand = 4;
    assert_check(fh, WALNOTIFY_OK, NULL);
    ck_assert_int_eq(setenv("PATH", path, 1), 0);
    free(path);
    fake_free(fh);
}
END_TEST

START_TEST(test_lines_and_acks)
{
    static const char first_txn[] =
        "{\"walnotify\":\"begin\",\"lsn\":\"0/1000000\",\"xid\":700}\n"
        "{\"lsn\":\"0/1000000\",\"seq\":0,\"values\":{\"id\":\"0\"}}\n"
        "{\"lsn\":\"0/1000000\",\"seq\":1,\"values\":{\"id\":\"1\"}}\n"
        "{\"walnotify\":\"commit\",\"lsn\":\"0/1000000\",\"events\":2}\n";
    fake_host *fh = fake_new("ack", 10000);
    void *state = start(fh);
    char *input;

    ck_assert_int_eq(deliver(state, fh, 3, 2, 2), 0);
    plugin->shutdown(state);
    input = read_input(NULL);
    ck_assert_msg(strncmp(input, first_txn, strlen(first_txn)) == 0, "the child read:\n%s", input);
    ck_assert_uint_eq(count_of(input, "\"walnotify\":\"commit\""), 3);
    ck_assert_uint_eq(count_of(input, "\"walnotify\":\"begin\""), 3);
    ck_assert_int_eq(fh->rewinds, 0);
    /* Standard error became log lines, and the end of input let the child finish. */
    ck_assert_msg(fake_logged(fh, "child started in mode ack"), "%s", fh->log);
    ck_assert_msg(fake_logged(fh, "child saw the end of its input"), "%s", fh->log);
    ck_assert_msg(fake_logged(fh, "exited with status 0"), "%s", fh->log);
    free(input);
    fake_free(fh);
}
END_TEST

START_TEST(test_batched_acks)
{
    /* One acknowledgement, asked for by the flush line, covers every transaction before it. */
    fake_host *fh = run_scenario(&(scenario){"batch", 10000, .ntxn = 5, .nevents = 1,
                                             .flush_every = 5});
    char *input = read_input(NULL);

    ck_assert_uint_eq(count_of(input, "{\"walnotify\":\"flush\"}"), 1);
    free(input);
    fake_free(fh);
}
END_TEST

START_TEST(test_full_ring_asks_for_acknowledgements)
{
    /* More transactions than the plugin keeps in flight, and no flush from the host: the
     * plugin asks the child itself rather than wait for an acknowledgement never sent. */
    check_scenario(&(scenario){"batch", 5000, .ntxn = 1100, .nevents = 1, .flush_every = 5000});
}
END_TEST

START_TEST(test_replay_asked_by_another_instance)
{
    fake_host *fh = fake_new("batch", 5000);
    void *state = start(fh);

    /* Another instance's rewind: transactions still in flight come again, without a flush
     * between. Each acknowledgement still names one transaction in flight. */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 5; i++)
            ck_assert_int_eq(deliver_txn(state, i, 2), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->flush(state), WALNOTIFY_OK);
    plugin->shutdown(state);
    ck_assert_msg(fh->rewinds == 0, "%s", fh->log);
    fake_free(fh);
}
END_TEST

START_TEST(test_late_ack)
{
    check_scenario(&(scenario){"late", 5000, .ntxn = 2, .nevents = 1, .flush_every = 1});
}
END_TEST

START_TEST(test_big_event)
{
    fake_host *fh = fake_new("ack", 10000);
    void *state;
    char *input;
    size_t length;

    fh->big_seq = 1;
    state = start(fh);
    ck_assert_int_eq(deliver(state, fh, 2, 3, 2), 0);
    plugin->shutdown(state);
    input = read_input(&length);
    ck_assert_uint_gt(length, 2 * BIG_VALUE);
    ck_assert_uint_eq(count_of(input, "xxx\"}}\n{\"lsn\""), 2);
    free(input);
    fake_free(fh);
}
END_TEST

START_TEST(test_crash_rewinds)
{
    fake_host *fh = run_scenario(&(scenario){
        "crash", 10000, .ntxn = 3, .nevents = 2, .flush_every = 1, .retries = 1,
        .said = {"exited with status 3", "comes again to a new child"}});
    char *input = read_input(NULL);

    /* The first transaction went to both children; every transaction reached the second. */
    ck_assert_uint_eq(count_of(input, "\"walnotify\":\"commit\",\"lsn\":\"0/1000000\""), 2);
    ck_assert_uint_eq(count_of(input, "\"walnotify\":\"commit\",\"lsn\":\"0/1000200\""), 1);
    ck_assert_uint_eq(count_of(fh->log, "started child"), 2);
    free(input);
    fake_free(fh);
}
END_TEST

START_TEST(test_hang_is_killed)
{
    check_scenario(&(scenario){"hang", 300, .ntxn = 2, .nevents = 1, .flush_every = 1,
                               .retries = 1,
                               .said = {"did not acknowledge transaction 0/1000000 (1 in flight) "
                                        "within 300 ms (ack_timeout_ms)",
                                        "was killed after 0 ms"}});
}
END_TEST

START_TEST(test_blank_lines_do_not_put_off_the_deadline)
{
    check_scenario(&(scenario){"blanks", 300, .ntxn = 2, .nevents = 1, .flush_every = 1,
                               .retries = 1,
                               .said = {"did not acknowledge transaction 0/1000000 (1 in flight) "
                                        "within 300 ms (ack_timeout_ms)"}});
}
END_TEST

START_TEST(test_old_acknowledgements_do_not_put_off_the_deadline)
{
    check_scenario(&(scenario){"oldack", 300, .ntxn = 2, .nevents = 1, .flush_every = 1,
                               .retries = 1,
                               .said = {"did not acknowledge transaction 0/1000100 (1 in flight) "
                                        "within 300 ms (ack_timeout_ms)"}});
}
END_TEST

START_TEST(test_standard_error_is_rate_limited)
{
    fake_host *fh = run_scenario(&(scenario){"spew", 10000, .ntxn = 1, .nevents = 1,
                                             .flush_every = 1});
    size_t relayed = count_of(fh->log, "a line of standard error");

    /* 100000 lines written: a burst of 100 and 10 a second go, the rest is counted. */
    ck_assert_msg(relayed >= 90 && relayed < 1000, "%zu lines relayed", relayed);
    ck_assert_msg(count_of(fh->log, "lines of its standard error dropped (more than 100 lines "
                                    "in a row, then 10 a second)") >= 1,
                  "%s", fh->log + (fh->loglen > 2000 ? fh->loglen - 2000 : 0));
    fake_free(fh);

    /* One line of 100000 bytes is one log line, cut. */
    fh = run_scenario(&(scenario){"longline", 10000, .ntxn = 1, .nevents = 1, .flush_every = 1});
    ck_assert_uint_eq(count_of(fh->log, ": xxxxxxxx"), 1);
    ck_assert_uint_eq(count_of(fh->log, "xxxxxxxx... (cut)\n"), 1);
    ck_assert_msg(strstr(fh->log, "tail-of-the-long-line") == NULL, "%s", fh->log);
    fake_free(fh);
}
END_TEST

START_TEST(test_garbage_rewinds)
{
    check_scenario(&(scenario){"garbage", 10000, .ntxn = 2, .nevents = 1, .flush_every = 1,
                               .retries = 1,
                               .said = {"the child wrote \"hello there\", which is not the "
                                        "protocol"}});
}
END_TEST

START_TEST(test_reported_retry)
{
    fake_host *fh = run_scenario(&(scenario){"retry", 10000, .ntxn = 2, .nevents = 1,
                                             .flush_every = 2, .retries = 1});
    char *input = read_input(NULL);

    ck_assert_str_eq(fh->reason, "disk full");
    /* The same child goes on, told where the transactions come again. */
    ck_assert_uint_eq(count_of(fh->log, "started child"), 1);
    ck_assert_msg(strstr(input, "{\"walnotify\":\"rewind\"}\n{\"walnotify\":\"begin\",\"lsn\":"
                                "\"0/1000000\"") != NULL,
                  "%s", input);
    free(input);
    fake_free(fh);
}
END_TEST

START_TEST(test_named_failure)
{
    fake_host *fh = run_scenario(&(scenario){"fail", 10000, .ntxn = 1, .nevents = 3,
                                             .flush_every = 1, .retries = 1});

    ck_assert_int_eq(fh->fails, 1);
    ck_assert_uint_eq(fh->first.position, txn_lsn(0));
    ck_assert_uint_eq(fh->first.ordinal, 2ULL << 32);
    ck_assert_uint_eq(fh->last.ordinal, 2ULL << 32);
    ck_assert_int_eq(fh->failure, WALNOTIFY_FAILURE_PERMANENT);
    ck_assert_str_eq(fh->reason, "bad row");
    fake_free(fh);
}
END_TEST

START_TEST(test_named_transaction)
{
    fake_host *fh = run_scenario(&(scenario){"failall", 10000, .ntxn = 1, .nevents = 3,
                                             .flush_every = 1, .retries = 1});

    ck_assert_int_eq(fh->fails, 1);
    ck_assert_uint_eq(fh->first.ordinal, 1ULL << 32);
    ck_assert_uint_eq(fh->last.ordinal, 3ULL << 32);
    ck_assert_int_eq(fh->failure, WALNOTIFY_FAILURE_TRANSIENT);
    ck_assert_str_eq(fh->reason, "try later");
    fake_free(fh);
}
END_TEST

/* Snapshot batches are framed like transactions and acknowledged by their last ordinal: one
 * ack per batch, or one at the flush for all of them. */
START_TEST(test_snapshot_batches)
{
    static const char first_batch[] =
        "{\"walnotify\":\"begin\",\"snapshot\":\"0/F00060\"}\n"
        "{\"snapshot\":\"0/F00060\",\"ordinal\":0,\"op\":\"snapshot\"}\n"
        "{\"snapshot\":\"0/F00060\",\"ordinal\":1,\"op\":\"snapshot\"}\n"
        "{\"snapshot\":\"0/F00060\",\"ordinal\":2,\"op\":\"snapshot\"}\n"
        "{\"snapshot\":\"0/F00060\",\"ordinal\":3,\"op\":\"snapshot\"}\n"
        "{\"walnotify\":\"commit\",\"snapshot\":\"0/F00060\",\"ordinal\":3,\"events\":4}\n";
    static const char *const modes[] = {"ack", "batch"};

    for (size_t m = 0; m < 2; m++) {
        fake_host *fh = fake_new(modes[m], 10000);
        void *state = start(fh);
        char *input;

        ck_assert_int_eq(deliver_snapshot(state, fh), 0);
        plugin->shutdown(state);
        input = read_input(NULL);
        ck_assert_msg(strncmp(input, first_batch, strlen(first_batch)) == 0, "%s read:\n%s",
                      modes[m], input);
        ck_assert_msg(strstr(input, "{\"walnotify\":\"commit\",\"snapshot\":\"0/F00060\","
                                    "\"ordinal\":8,\"events\":2}\n{\"walnotify\":\"begin\","
                                    "\"lsn\":\"0/1000000\",\"xid\":700}\n") != NULL,
                      "%s read:\n%s", modes[m], input);
        ck_assert_uint_eq(count_of(input, "\"walnotify\":\"commit\""), 4);
        ck_assert_msg(fh->rewinds == 0 && fh->fails == 0, "%s", fh->log);
        free(input);
        unlink_input();
        fake_free(fh);
    }
}
END_TEST

/* A child names a snapshot row, or a range of a batch, by ordinal. */
START_TEST(test_snapshot_named_failure)
{
    fake_host *fh = fake_new("fail", 10000);
    void *state = start(fh);

    ck_assert_int_eq(deliver_snapshot(state, fh), 1);
    plugin->shutdown(state);
    ck_assert_int_eq(fh->fails, 1);
    ck_assert_uint_eq(fh->first.position, SNAPSHOT_LSN - 1);
    ck_assert_uint_eq(fh->first.ordinal, 2);
    ck_assert_uint_eq(fh->last.position, SNAPSHOT_LSN - 1);
    ck_assert_uint_eq(fh->last.ordinal, 2);
    ck_assert_int_eq(fh->failure, WALNOTIFY_FAILURE_PERMANENT);
    ck_assert_str_eq(fh->reason, "bad row");
    unlink_input();
    fake_free(fh);

    fh = fake_new("failall", 10000);
    state = start(fh);
    ck_assert_int_eq(deliver_snapshot(state, fh), 1);
    plugin->shutdown(state);
    ck_assert_int_eq(fh->fails, 1);
    ck_assert_uint_eq(fh->first.ordinal, 1);
    ck_assert_uint_eq(fh->last.ordinal, 3);
    ck_assert_int_eq(fh->failure, WALNOTIFY_FAILURE_TRANSIENT);
    fake_free(fh);
}
END_TEST

/* Messages are lines of their transaction; "fail ... message LSN ORDINAL" names one. */
START_TEST(test_messages)
{
    fake_host *fh = fake_new("failmsg", 10000);
    void *state = start(fh);
    walnotify_status status = deliver_txn_with_messages(state, 0);
    char *input;

    if (status == WALNOTIFY_OK)
        status = plugin->flush(state);
    ck_assert_msg(status == WALNOTIFY_RETRY, "%d: %s", status, fh->log);
    ck_assert_int_eq(fh->fails, 1);
    ck_assert_uint_eq(fh->first.position, txn_lsn(0));
    ck_assert_uint_eq(fh->first.ordinal, 1);
    ck_assert_uint_eq(fh->last.ordinal, 1);
    ck_assert_str_eq(fh->reason, "no such queue");
    ck_assert_int_eq(deliver_txn_with_messages(state, 0), WALNOTIFY_OK);
    ck_assert_int_eq(plugin->flush(state), WALNOTIFY_OK);
    plugin->shutdown(state);
    input = read_input(NULL);
    ck_assert_msg(strstr(input, "{\"walnotify\":\"begin\",\"lsn\":\"0/1000000\",\"xid\":700}\n"
                                "{\"lsn\":\"0/1000000\",\"ordinal\":1,\"op\":\"message\","
                                "\"prefix\":\"app\"}\n"
                                "{\"lsn\":\"0/1000000\",\"seq\":0,\"values\":{\"id\":\"0\"}}\n"
                                "{\"lsn\":\"0/1000000\",\"ordinal\":4294967297,\"op\":\"message\","
                                "\"prefix\":\"app\"}\n") != NULL,
                  "the child read:\n%s", input);
    free(input);
    fake_free(fh);
}
END_TEST

START_TEST(test_acknowledging_what_was_not_sent)
{
    check_scenario(&(scenario){"badack", 10000, .ntxn = 2, .nevents = 1, .flush_every = 1,
                               .retries = 1,
                               .said = {"the child wrote \"ack 0/1\", which is not the protocol "
                                        "(it acknowledges a transaction walnotify has not "
                                        "ended"}});
}
END_TEST

START_TEST(test_environment_and_signals)
{
    fake_host *fh = fake_new("env", 10000);
    void *state;
    char want[PATH_MAX + 64];
    const char *ignored;
    unsigned long long mask;

    fh->env[0] = "FOO=foo value";
    fh->env[1] = "BAR=1";
    fh->env[2] = "BAR=2";
    fh->nenv = 3;
    state = start(fh);
    ck_assert_int_eq(deliver(state, fh, 1, 1, 1), 0);
    plugin->shutdown(state);
    snprintf(want, sizeof want, "env FOO=foo value BAR=2 pwd=%s", work_dir);
    ck_assert_msg(fake_logged(fh, want), "no \"%s\" in:\n%s", want, fh->log);
    fake_free(fh);

    fh = fake_new("sigs", 10000);
    state = start(fh);
    ck_assert_int_eq(deliver(state, fh, 1, 1, 1), 0);
    plugin->shutdown(state);
    /* Control characters in relayed lines are shown as '?': here the tab. */
    ck_assert_msg(fake_logged(fh, "SigBlk:?0000000000000000"), "%s", fh->log);
    ignored = strstr(fh->log, "SigIgn:?");
    ck_assert_ptr_nonnull(ignored);
    mask = strtoull(ignored + strlen("SigIgn:?"), NULL, 16);
    ck_assert_msg((mask & (1ULL << (SIGPIPE - 1))) == 0, "SIGPIPE ignored in the child: %s",
                  ignored);
    ck_assert_msg((mask & (1ULL << (SIGTERM - 1))) == 0, "SIGTERM ignored in the child");
    fake_free(fh);
}
END_TEST

/* The PG* lines child.sh's pgenv mode relayed, with `env` set to entries. */
static char *pg_environment(const char *const *entries, size_t n)
{
    fake_host *fh = fake_new("pgenv", 10000);
    void *state;
    char *found, *end;

    for (size_t i = 0; i < n; i++)
        fh->env[i] = entries[i];
    fh->nenv = n;
    state = start(fh);
    ck_assert_int_eq(deliver(state, fh, 1, 1, 1), 0);
    plugin->shutdown(state);
    assert_logged(fh, "pgenv end");
    found = strstr(fh->log, "pgenv ");
    end = strstr(fh->log, "pgenv end");
    found = strndup(found, (size_t)(end - found));
    ck_assert_ptr_nonnull(found);
    fake_free(fh);
    return found;
}

START_TEST(test_connection_variables_are_not_inherited)
{
    static const char *const asked[] = {"PGPASSWORD", "PGUNSET_BY_WALNOTIFY", "PGAPPNAME=sink"};
    char *seen;

    ck_assert_int_eq(setenv("PGPASSWORD", "walnotify's secret", 1), 0);
    ck_assert_int_eq(setenv("PGSSLKEY", "/etc/walnotify/key", 1), 0);
    unsetenv("PGUNSET_BY_WALNOTIFY");
    seen = pg_environment(NULL, 0);
    ck_assert_msg(strstr(seen, "PG") == NULL, "the child saw:\n%s", seen);
    free(seen);
    /* A bare name passes walnotify's own; NAME=value sets it as ever. */
    seen = pg_environment(asked, 3);
    ck_assert_msg(strstr(seen, "pgenv PGPASSWORD=walnotify's secret\n") != NULL &&
                      strstr(seen, "pgenv PGAPPNAME=sink\n") != NULL &&
                      strstr(seen, "PGSSLKEY") == NULL && strstr(seen, "PGUNSET") == NULL,
                  "the child saw:\n%s", seen);
    free(seen);
    unsetenv("PGPASSWORD");
    unsetenv("PGSSLKEY");
}
END_TEST

START_TEST(test_program_relative_to_cwd)
{
    fake_host *fh = fake_new("ack", 10000);
    char folder[sizeof root + 32];
    void *state;

    /* A program named with a slash is found from the folder it starts in. */
    snprintf(folder, sizeof folder, "%s/tests/fixtures/exec", root);
    fh->cwd = folder;
    fh->command[0] = "./child.sh";
    fh->command[1] = "ack";
    fh->command[2] = work_dir;
    fh->ncommand = 3;
    state = start(fh);
    ck_assert_int_eq(deliver(state, fh, 1, 1, 1), 0);
    plugin->shutdown(state);
    ck_assert_msg(fake_logged(fh, "child started in mode ack"), "%s", fh->log);
    fake_free(fh);
}
END_TEST

START_TEST(test_stubborn_child_is_killed_at_shutdown)
{
    check_scenario(&(scenario){"stubborn", 300, .ntxn = 1, .nevents = 1, .flush_every = 1,
                               .said_at_shutdown = "was killed after 300 ms"});
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("exec");
    TCase *tc = tcase_create("exec");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_declaration);
    tcase_add_test(tc, test_check_refuses);
    tcase_add_test(tc, test_missing_program_is_fatal);
    tcase_add_test(tc, test_program_must_be_trusted);
    tcase_add_test(tc, test_program_is_never_found_in_the_working_folder);
    tcase_add_test(tc, test_lines_and_acks);
    tcase_add_test(tc, test_batched_acks);
    tcase_add_test(tc, test_full_ring_asks_for_acknowledgements);
    tcase_add_test(tc, test_replay_asked_by_another_instance);
    tcase_add_test(tc, test_late_ack);
    tcase_add_test(tc, test_big_event);
    tcase_add_test(tc, test_crash_rewinds);
    tcase_add_test(tc, test_hang_is_killed);
    tcase_add_test(tc, test_blank_lines_do_not_put_off_the_deadline);
    tcase_add_test(tc, test_old_acknowledgements_do_not_put_off_the_deadline);
    tcase_add_test(tc, test_standard_error_is_rate_limited);
    tcase_add_test(tc, test_garbage_rewinds);
    tcase_add_test(tc, test_reported_retry);
    tcase_add_test(tc, test_named_failure);
    tcase_add_test(tc, test_named_transaction);
    tcase_add_test(tc, test_snapshot_batches);
    tcase_add_test(tc, test_snapshot_named_failure);
    tcase_add_test(tc, test_messages);
    tcase_add_test(tc, test_acknowledging_what_was_not_sent);
    tcase_add_test(tc, test_environment_and_signals);
    tcase_add_test(tc, test_connection_variables_are_not_inherited);
    tcase_add_test(tc, test_program_relative_to_cwd);
    tcase_add_test(tc, test_stubborn_child_is_killed_at_shutdown);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? 0 : 1;
}
