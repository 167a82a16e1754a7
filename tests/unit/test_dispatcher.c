/*
 * Unit tests of the dispatcher: order, filters, retries, and above all what it publishes as
 * safe to acknowledge. Messages are built by hand and pushed through a real handoff; plugins are
 * in-process descriptors that record every call.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatcher.h"
#include "pgoutput.h"
#include "run_suite.h"

/* ---- building pgoutput messages ------------------------------------------------------------- */

typedef pgo_buf msg;

static msg begin_msg(wn_lsn final_lsn, uint32_t xid)
{
    msg m = {0};

    pgo_begin(&m, final_lsn, 0, xid);
    return m;
}

static msg commit_msg(wn_lsn commit_lsn, wn_lsn end_lsn)
{
    msg m = {0};

    pgo_commit(&m, commit_lsn, end_lsn, 0);
    return m;
}

/* A relation with columns id (key) and note. */
static msg relation_msg(uint32_t relid, const char *schema, const char *name)
{
    msg m = {0};

    pgo_relation(&m, relid, schema, name, 'd', 2);
    pgo_column(&m, 1, "id", 23, -1);
    pgo_column(&m, 0, "note", 25, -1);
    return m;
}

static msg insert_msg(uint32_t relid, const char *id, const char *note)
{
    msg m = {0};

    pgo_u8(&m, 'I');
    pgo_u32(&m, relid);
    pgo_u8(&m, 'N');
    pgo_u16(&m, 2);
    pgo_text(&m, id);
    pgo_text(&m, note);
    return m;
}

/* ---- recording plugins ---------------------------------------------------------------------- */

#define LOG_MAX 64
#define ATTEMPTS_MAX 16

typedef struct recorder {
    char calls[LOG_MAX][64];
    int ncalls;
    int handle_retries_left;   /* RETRY this many times per handle before succeeding */
    int fail_fatally_on_note;  /* FATAL when the note equals this number */
    int retry_forever_on_note; /* RETRY, always, when the note equals this number */
    int failed_attempts;       /* handle calls answered FATAL or RETRY-forever */
    int64_t attempt_ms[ATTEMPTS_MAX]; /* when each of them came */
    int flush_retries_left;
    int flushes;
    int slow_note;             /* handle of this note takes longer than a status interval */
    wn_lsn committed;          /* commit LSN of the last transaction that reached commit */
    wn_lsn durable;            /* `committed` as the last successful flush found it */
    wn_lsn published_at_retry; /* highest published position a failing flush saw */
    wn_requests *requests;     /* its instance's, for the 1.1 services */
    int rewind_on_note;        /* asks for a rewind from handle for this note */
    int name_on_note;          /* names the event of this note as failed, from commit */
    walnotify_failure name_kind;
    bool name_first_seen;      /* instead, names the first event it ever handled */
    walnotify_id to_name;
    bool have_to_name;
    bool have_first;
    bool rewind_in_flush;      /* asks for a rewind from its next flush */
    bool log_ids;              /* record each change's identity after its handle line */
} recorder;

static wn_lsn published_now(void);

static pthread_mutex_t record_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count_failed_attempt(recorder *r)
{
    pthread_mutex_lock(&record_lock);
    if (r->failed_attempts < ATTEMPTS_MAX)
        r->attempt_ms[r->failed_attempts] = mono_ms();
    r->failed_attempts++;
    pthread_mutex_unlock(&record_lock);
}

__attribute__((format(printf, 2, 3))) static void record(recorder *r, const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    pthread_mutex_lock(&record_lock);
    if (r->ncalls < LOG_MAX)
        vsnprintf(r->calls[r->ncalls++], sizeof r->calls[0], fmt, args);
    pthread_mutex_unlock(&record_lock);
    va_end(args);
}

static walnotify_status rec_handle(void *state, const walnotify_event *event)
{
    recorder *r = state;
    const char *note;

    if (event->op == WALNOTIFY_OP_MESSAGE) {
        record(r, "message %s:%.*s %c seq=%u id=%llx-%llx", event->message_prefix,
               (int)event->message_length, event->message_content,
               event->transactional ? 'T' : 'N', event->seq,
               (unsigned long long)event->id.position, (unsigned long long)event->id.ordinal);
        return WALNOTIFY_OK;
    }
    note = event->columns[1].value ? event->columns[1].value : "NULL";

    if (r->handle_retries_left > 0) {
        r->handle_retries_left--;
        return WALNOTIFY_RETRY;
    }
    if (r->rewind_on_note && atoi(note) == r->rewind_on_note) {
        record(r, "rewind at %s", note);
        return wn_requests_rewind(r->requests, "recorder", "lost");
    }
    if (!r->have_first) {
        r->have_first = true;
        r->to_name = event->id;
        r->have_to_name = r->name_first_seen;
    }
    if (r->name_on_note && atoi(note) == r->name_on_note) {
        r->to_name = event->id;
        r->have_to_name = true;
    }
    if (r->retry_forever_on_note && atoi(note) == r->retry_forever_on_note) {
        count_failed_attempt(r);
        return WALNOTIFY_RETRY;
    }
    if (r->fail_fatally_on_note && atoi(note) == r->fail_fatally_on_note) {
        count_failed_attempt(r);
        return WALNOTIFY_FATAL;
    }
    if (r->slow_note && atoi(note) == r->slow_note) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 300 * 1000000L};

        nanosleep(&pause, NULL);
    }
    record(r, "handle %s seq=%u", note, event->seq);
    if (r->log_ids)
        record(r, "id %llx-%llx", (unsigned long long)event->id.position,
               (unsigned long long)event->id.ordinal);
    return WALNOTIFY_OK;
}

static walnotify_status rec_begin(void *state, const walnotify_txn *txn)
{
    record(state, "begin %u", txn->xid);
    return WALNOTIFY_OK;
}

/* Like a sink that batches a transaction: what it wrote in commit is durable after a flush. */
static walnotify_status rec_commit(void *state, const walnotify_txn *txn)
{
    recorder *r = state;

    record(state, "commit %u", txn->xid);
    if (r->have_to_name && (!r->name_first_seen || txn->commit_lsn != r->to_name.position)) {
        r->have_to_name = false;
        return wn_requests_fail(r->requests, "recorder", r->to_name, r->to_name, r->name_kind,
                                "refused downstream");
    }
    pthread_mutex_lock(&record_lock);
    r->committed = txn->commit_lsn;
    pthread_mutex_unlock(&record_lock);
    return WALNOTIFY_OK;
}

static void rec_abort(void *state, const walnotify_txn *txn)
{
    record(state, "abort %u", txn->xid);
}

static walnotify_status rec_flush(void *state)
{
    recorder *r = state;

    if (r->rewind_in_flush) {
        r->rewind_in_flush = false;
        record(r, "rewind in flush");
        return wn_requests_rewind(r->requests, "recorder", "lost in flush");
    }
    if (r->flush_retries_left > 0) {
        wn_lsn published = published_now();

        r->flush_retries_left--;
        pthread_mutex_lock(&record_lock);
        if (published > r->published_at_retry)
            r->published_at_retry = published;
        pthread_mutex_unlock(&record_lock);
        return WALNOTIFY_RETRY;
    }
    pthread_mutex_lock(&record_lock);
    r->flushes++;
    r->durable = r->committed;
    pthread_mutex_unlock(&record_lock);
    return WALNOTIFY_OK;
}

static void rec_shutdown(void *state)
{
    (void)state;
}

/* ---- the fixture: a dispatcher thread fed by the test -------------------------------------- */

typedef struct fixture {
    wn_config config;
    wn_table_ref tables[2];
    wn_plugin_config plugin_configs[2];
    bool watches[2][2];
    wn_plugin plugins[2];
    recorder recorders[2];
    wn_handoff *handoff;
    wn_dispatcher_options options;
    pthread_t thread;
    wn_dispatch_result result;
    wn_lsn final_ack; /* what the dispatcher published last */
    char err[512];
} fixture;

static fixture fx;

static wn_lsn published_now(void)
{
    return wn_handoff_acknowledgeable(fx.handoff);
}

static void *dispatch_thread(void *arg)
{
    (void)arg;
    fx.result = wn_dispatch_run(&fx.options, fx.handoff, fx.err, sizeof fx.err);
    return NULL;
}

/* Two plugins: "all" wants inserts of both tables, "orders" only public.orders. The test may
 * then set their policies before launch(). */
static void prepare(wn_lsn start_lsn, wn_lsn endpos)
{
    static const walnotify_plugin descriptor = {
        .magic = WALNOTIFY_PLUGIN_MAGIC,
        .abi_major = WALNOTIFY_ABI_MAJOR,
        .abi_minor = WALNOTIFY_ABI_MINOR,
        .size = sizeof(walnotify_plugin),
        .name = "recorder",
        .handle = rec_handle,
        .shutdown = rec_shutdown,
        .begin = rec_begin,
        .commit = rec_commit,
        .abort = rec_abort,
        .flush = rec_flush,
    };
    static char *names[2] = {"all", "orders"};

    memset(&fx, 0, sizeof fx);
    fx.config = wn_config_defaults();
    fx.tables[0] = (wn_table_ref){"public", "orders", "public.orders"};
    fx.tables[1] = (wn_table_ref){"public", "items", "public.items"};
    fx.config.source.tables = fx.tables;
    fx.config.source.ntables = 2;
    fx.config.source.status_interval_ms = 100;
    fx.config.plugins = fx.plugin_configs;
    fx.config.nplugins = 2;
    fx.watches[0][0] = fx.watches[0][1] = true;
    fx.watches[1][0] = true;
    for (int i = 0; i < 2; i++) {
        fx.plugin_configs[i] = wn_plugin_config_defaults();
        fx.plugin_configs[i].name = names[i];
        fx.plugin_configs[i].ops = WALNOTIFY_OP_INSERT;
        fx.plugin_configs[i].watches = fx.watches[i];
        fx.plugins[i].config = &fx.plugin_configs[i];
        fx.plugins[i].descriptor = descriptor;
        fx.plugins[i].state = &fx.recorders[i];
        fx.plugins[i].initialised = true;
        fx.recorders[i].requests = &fx.plugins[i].requests;
    }
    fx.handoff = wn_handoff_create(64);
    fx.options = (wn_dispatcher_options){.config = &fx.config, .plugins = fx.plugins,
                                         .nplugins = 2, .start_lsn = start_lsn, .endpos = endpos};
}

/* A new stream for the same plugins, as the pipeline starts after a rewind: their requests
 * (named failures, rewinds) carry over. */
static void restart(wn_lsn start_lsn)
{
    fx.handoff = wn_handoff_create(64);
    fx.options.start_lsn = start_lsn;
    fx.result = WN_DISPATCH_STOPPED;
    fx.err[0] = '\0';
    for (int i = 0; i < 2; i++)
        fx.recorders[i].ncalls = 0;
}

static void launch(void)
{
    ck_assert_int_eq(pthread_create(&fx.thread, NULL, dispatch_thread, NULL), 0);
}

static void start(wn_lsn start_lsn, wn_lsn endpos)
{
    prepare(start_lsn, endpos);
    launch();
}

static wn_dispatch_result finish(void)
{
    wn_handoff_request_stop(fx.handoff);
    pthread_join(fx.thread, NULL);
    fx.final_ack = wn_handoff_acknowledgeable(fx.handoff);
    wn_handoff_destroy(fx.handoff);
    return fx.result;
}

static wn_dispatch_result wait_finished(void)
{
    pthread_join(fx.thread, NULL);
    fx.final_ack = wn_handoff_acknowledgeable(fx.handoff);
    wn_handoff_destroy(fx.handoff);
    return fx.result;
}

/* The handoff owns what it carries: the message's bytes become the buffer it frees. */
static void send_msg(msg m, wn_lsn wal_end)
{
    wn_item item = {.kind = WN_ITEM_DATA, .wal_end = wal_end, .length = m.length};

    item.buffer = (char *)m.data;
    item.payload = item.buffer;
    ck_assert(wn_handoff_push(fx.handoff, &item, 5000));
}

static void send_keepalive(wn_lsn wal_end)
{
    wn_item item = {.kind = WN_ITEM_KEEPALIVE, .wal_end = wal_end};

    ck_assert(wn_handoff_push(fx.handoff, &item, 5000));
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Waits (bounded) until the published position reaches lsn. */
static bool wait_ack(wn_lsn lsn)
{
    for (int i = 0; i < 1000; i++) {
        if (wn_handoff_acknowledgeable(fx.handoff) >= lsn)
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool wait_calls(const recorder *r, int n)
{
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&record_lock);
        int have = r->ncalls;
        pthread_mutex_unlock(&record_lock);
        if (have >= n)
            return true;
        sleep_ms(10);
    }
    return false;
}

static msg logical_message(bool transactional, wn_lsn lsn, const char *prefix,
                           const char *content)
{
    msg m = {0};

    pgo_message(&m, transactional, lsn, prefix, content, (uint32_t)strlen(content));
    return m;
}

static void send_txn(wn_lsn commit_lsn, wn_lsn end_lsn, uint32_t xid, uint32_t relid,
                     const char *const *notes, int n)
{
    send_msg(begin_msg(commit_lsn, xid), 0);
    for (int i = 0; i < n; i++)
        send_msg(insert_msg(relid, "1", notes[i]), 0);
    send_msg(commit_msg(commit_lsn, end_lsn), end_lsn);
}

/* Starts the dispatcher and announces relation 1, public.orders (id, note), as every stream
 * begins. */
static void launch_on_orders(void)
{
    launch();
    send_msg(relation_msg(1, "public", "orders"), 0);
}

/* Fails unless the dispatcher acknowledges lsn, then stops cleanly when asked. */
static void assert_acknowledged_then_stopped(wn_lsn lsn)
{
    ck_assert(wait_ack(lsn));
    ck_assert_int_eq(finish(), WN_DISPATCH_STOPPED);
}

/* Fails unless the stream, ended by a keepalive far ahead, finishes with result, having
 * published final_ack. */
static void assert_ends(wn_dispatch_result result, wn_lsn final_ack)
{
    send_keepalive(0x900);
    ck_assert_int_eq(wait_finished(), result);
    ck_assert_uint_eq(fx.final_ack, final_ack);
}

/* ---- tests ---------------------------------------------------------------------------------- */

START_TEST(delivers_in_order_with_filters)
{
    static const char *const notes[] = {"10", "11"};

    start(0x100, 0);
    send_msg(relation_msg(1, "public", "orders"), 0);
    send_msg(relation_msg(2, "public", "items"), 0);
    send_msg(relation_msg(3, "public", "other"), 0);
    send_msg(begin_msg(0x200, 7), 0);
    send_msg(insert_msg(1, "1", "10"), 0);
    send_msg(insert_msg(3, "1", "99"), 0); /* a table outside the source: counted, not sent */
    send_msg(insert_msg(2, "1", "11"), 0);
    send_msg(commit_msg(0x200, 0x210), 0x210);
    send_txn(0x300, 0x310, 8, 2, notes, 1);
    assert_acknowledged_then_stopped(0x310);

    recorder *all = &fx.recorders[0], *orders = &fx.recorders[1];
    ck_assert_int_eq(all->ncalls, 7);
    ck_assert_str_eq(all->calls[0], "begin 7");
    ck_assert_str_eq(all->calls[1], "handle 10 seq=0");
    ck_assert_str_eq(all->calls[2], "handle 11 seq=2");
    ck_assert_str_eq(all->calls[3], "commit 7");
    ck_assert_str_eq(all->calls[4], "begin 8");
    ck_assert_str_eq(all->calls[5], "handle 10 seq=0");
    ck_assert_str_eq(all->calls[6], "commit 8");
    /* "orders" never saw transaction 8, which touched items only. */
    ck_assert_int_eq(orders->ncalls, 3);
    ck_assert_str_eq(orders->calls[0], "begin 7");
    ck_assert_str_eq(orders->calls[1], "handle 10 seq=0");
    ck_assert_str_eq(orders->calls[2], "commit 7");
}
END_TEST

/*
 * Messages reach only the block that asked for them and whose plugin declares them ("all" asks
 * but declares nothing, as a 1.0 plugin); transactional ones in place with the identity of their
 * place, the others in a begin/commit of their own at their own LSN.
 */
START_TEST(messages_and_identities)
{
    prepare(0x100, 0);
    for (int i = 0; i < 2; i++)
        fx.plugin_configs[i].ops = WALNOTIFY_OP_INSERT | WALNOTIFY_OP_MESSAGE;
    fx.plugins[1].descriptor.ops = WALNOTIFY_OPS_CHANGES | WALNOTIFY_OP_MESSAGE;
    fx.recorders[1].log_ids = true;
    launch_on_orders();
    send_msg(begin_msg(0x200, 7), 0);
    send_msg(logical_message(true, 0x1F0, "p", "first"), 0);
    send_msg(insert_msg(1, "1", "10"), 0);
    send_msg(logical_message(true, 0x1F8, "p", "a"), 0);
    send_msg(logical_message(true, 0x1F9, "p", "b"), 0);
    send_msg(insert_msg(1, "2", "11"), 0);
    send_msg(commit_msg(0x200, 0x210), 0x210);
    send_msg(logical_message(false, 0x220, "q", "alone"), 0x230);
    ck_assert(wait_calls(&fx.recorders[1], 12));
    ck_assert_int_eq(finish(), WN_DISPATCH_STOPPED);

    ck_assert_int_eq(fx.recorders[0].ncalls, 4);
    ck_assert_str_eq(fx.recorders[0].calls[1], "handle 10 seq=0");
    ck_assert_str_eq(fx.recorders[0].calls[2], "handle 11 seq=1");
    {
        static const char *const want[] = {
            "begin 7",
            "message p:first T seq=0 id=200-1",
            "handle 10 seq=0",
            "id 200-100000000",
            "message p:a T seq=1 id=200-100000001",
            "message p:b T seq=1 id=200-100000002",
            "handle 11 seq=1",
            "id 200-200000000",
            "commit 7",
            "begin 0",
            "message q:alone N seq=0 id=220-0",
            "commit 0",
        };

        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            ck_assert_str_eq(fx.recorders[1].calls[i], want[i]);
    }
}
END_TEST

START_TEST(acknowledges_commit_end_only_after_flush)
{
    static const char *const notes[] = {"1"};

    start(0x100, 0);
    fx.recorders[0].flush_retries_left = 3; /* flush fails transiently three times */
    send_msg(relation_msg(1, "public", "orders"), 0);
    send_txn(0x200, 0x210, 7, 1, notes, 1);
    ck_assert(wait_ack(0x210));
    ck_assert_uint_eq(wn_handoff_acknowledgeable(fx.handoff), 0x210);
    ck_assert_int_ge(fx.recorders[0].flushes, 1);
    ck_assert_int_eq(fx.recorders[0].flush_retries_left, 0);
    /* While flush failed, nothing of the transaction was published. */
    ck_assert_uint_lt(fx.recorders[0].published_at_retry, 0x210);
    ck_assert_uint_eq(fx.recorders[0].durable, 0x200);
    ck_assert_int_eq(finish(), WN_DISPATCH_STOPPED);
}
END_TEST

/* A flush that falls between a transaction's last event and its commit does not cover what the
 * plugin writes in commit: the commit's end is published only after another flush. */
START_TEST(what_commit_wrote_is_flushed_before_it_is_acknowledged)
{
    static const char *const notes[] = {"1", "2"};

    start(0x100, 0);
    fx.recorders[0].slow_note = 2; /* the last event outlasts a status interval */
    send_msg(relation_msg(1, "public", "orders"), 0);
    send_txn(0x200, 0x210, 7, 1, notes, 2);
    ck_assert(wait_ack(0x210));
    pthread_mutex_lock(&record_lock);
    wn_lsn durable0 = fx.recorders[0].durable, durable1 = fx.recorders[1].durable;
    pthread_mutex_unlock(&record_lock);
    ck_assert_uint_eq(durable0, 0x200);
    ck_assert_uint_eq(durable1, 0x200);
    ck_assert_int_eq(finish(), WN_DISPATCH_STOPPED);
}
END_TEST

/* A stop makes the plugins durable: a flush failing transiently then is still retried (a few
 * times), and what it covers is acknowledged. */
START_TEST(stop_retries_the_last_flush)
{
    static const char *const notes[] = {"1"};

    prepare(0x100, 0);
    fx.config.source.status_interval_ms = 60000; /* only the last flush happens */
    fx.recorders[0].flush_retries_left = 2;
    launch_on_orders();
    send_txn(0x200, 0x210, 7, 1, notes, 1);
    ck_assert(wait_calls(&fx.recorders[0], 3)); /* begin, handle, commit */
    ck_assert_int_eq(finish(), WN_DISPATCH_STOPPED);
    ck_assert_int_eq(fx.recorders[0].flush_retries_left, 0);
    ck_assert_uint_eq(fx.final_ack, 0x210);
}
END_TEST

/* ...but not forever: a flush that keeps failing leaves the position where it was. */
START_TEST(stop_gives_up_a_flush_that_keeps_failing)
{
    static const char *const notes[] = {"1"};

    prepare(0x100, 0);
    fx.config.source.status_interval_ms = 60000;
    fx.recorders[0].flush_retries_left = 1000;
    launch_on_orders();
    send_txn(0x200, 0x210, 7, 1, notes, 1);
    ck_assert(wait_calls(&fx.recorders[0], 3));
    ck_assert_int_eq(finish(), WN_DISPATCH_STOPPED);
    ck_assert_uint_eq(fx.final_ack, 0x100);
    ck_assert_int_gt(fx.recorders[0].flush_retries_left, 900);
}
END_TEST

START_TEST(keepalive_inside_transaction_is_not_acknowledged)
{
    start(0x100, 0);
    fx.recorders[0].handle_retries_left = 0;
    send_msg(relation_msg(1, "public", "orders"), 0);
    send_msg(begin_msg(0x200, 7), 0);
    send_msg(insert_msg(1, "1", "1"), 0);
    send_keepalive(0x5000); /* the server has read past the transaction in hand */
    ck_assert(wait_calls(&fx.recorders[0], 2));
    sleep_ms(400);          /* several status intervals */
    ck_assert_uint_eq(wn_handoff_acknowledgeable(fx.handoff), 0x100);
    /* A stop abandons the transaction: abort, and still nothing of it acknowledged. */
    ck_assert_int_eq(finish(), WN_DISPATCH_STOPPED);
    ck_assert_uint_eq(fx.final_ack, 0x100);
    ck_assert_str_eq(fx.recorders[0].calls[fx.recorders[0].ncalls - 1], "abort 7");
}
END_TEST

/* abort reaches a plugin without begin too: it received an event of the transaction. */
START_TEST(abort_reaches_a_plugin_without_begin)
{
    prepare(0x100, 0);
    fx.plugins[0].descriptor.begin = NULL;
    launch();
    send_msg(relation_msg(1, "public", "orders"), 0);
    send_msg(begin_msg(0x200, 7), 0);
    send_msg(insert_msg(1, "1", "1"), 0);
    ck_assert(wait_calls(&fx.recorders[0], 1));
    ck_assert_int_eq(finish(), WN_DISPATCH_STOPPED);
    ck_assert_str_eq(fx.recorders[0].calls[0], "handle 1 seq=0");
    ck_assert_str_eq(fx.recorders[0].calls[fx.recorders[0].ncalls - 1], "abort 7");
}
END_TEST

START_TEST(keepalive_between_transactions_is_acknowledged)
{
    start(0x100, 0);
    send_keepalive(0x900);
    assert_acknowledged_then_stopped(0x900);
}
END_TEST

START_TEST(transient_failure_is_retried_in_place)
{
    static const char *const notes[] = {"1", "2", "3"};

    start(0x100, 0);
    fx.recorders[1].handle_retries_left = 2;
    send_msg(relation_msg(1, "public", "orders"), 0);
    send_txn(0x200, 0x210, 7, 1, notes, 3);
    assert_acknowledged_then_stopped(0x210);
    /* Plugin "all" received event 2 only after "orders" had handled event 1. */
    ck_assert_str_eq(fx.recorders[1].calls[1], "handle 1 seq=0");
    ck_assert_str_eq(fx.recorders[1].calls[2], "handle 2 seq=1");
    ck_assert_str_eq(fx.recorders[0].calls[2], "handle 2 seq=1");
}
END_TEST

START_TEST(fatal_failure_stops_without_acknowledging_the_transaction)
{
    static const char *const first[] = {"1"};
    static const char *const second[] = {"2", "3"};

    start(0x100, 0);
    fx.recorders[1].fail_fatally_on_note = 3;
    send_msg(relation_msg(1, "public", "orders"), 0);
    send_txn(0x200, 0x210, 7, 1, first, 1);
    send_txn(0x300, 0x310, 8, 1, second, 2);
    send_keepalive(0x900);
    ck_assert_int_eq(wait_finished(), WN_DISPATCH_PLUGIN_FATAL);
    ck_assert_msg(strstr(fx.err, "\"orders\"") != NULL, "%s", fx.err);
    ck_assert_uint_lt(fx.final_ack, 0x310);
    /* Both plugins saw transaction 8 begin; both were told it will not be committed. */
    ck_assert_str_eq(fx.recorders[0].calls[fx.recorders[0].ncalls - 1], "abort 8");
    ck_assert_str_eq(fx.recorders[1].calls[fx.recorders[1].ncalls - 1], "abort 8");
}
END_TEST

START_TEST(endpos_stops_after_the_last_commit_before_it)
{
    static const char *const notes[] = {"1"};

    start(0x100, 0x310);
    send_msg(relation_msg(1, "public", "orders"), 0);
    send_txn(0x200, 0x210, 7, 1, notes, 1);
    send_txn(0x300, 0x310, 8, 1, notes, 1);
    send_txn(0x400, 0x410, 9, 1, notes, 1);
    ck_assert_int_eq(wait_finished(), WN_DISPATCH_ENDPOS);
    ck_assert_uint_eq(fx.final_ack, 0x310);
    ck_assert_int_eq(fx.recorders[0].ncalls, 6);
    ck_assert_str_eq(fx.recorders[0].calls[5], "commit 8");
}
END_TEST

START_TEST(endpos_on_an_idle_stream)
{
    start(0x100, 0x500);
    send_keepalive(0x400);
    send_keepalive(0x600);
    ck_assert_int_eq(wait_finished(), WN_DISPATCH_ENDPOS);
}
END_TEST

START_TEST(malformed_message_is_a_protocol_error)
{
    msg m = insert_msg(42, "1", "1");

    start(0x100, 0);
    send_msg(begin_msg(0x200, 7), 0);
    send_msg(m, 0); /* relation 42 was never described */
    ck_assert_int_eq(wait_finished(), WN_DISPATCH_PROTOCOL_ERROR);
    ck_assert_msg(strstr(fx.err, "relation id 42") != NULL, "%s", fx.err);
}
END_TEST


/* ---- failure policies ----------------------------------------------------------------------- */

/* A fresh folder per test for dead-letter files; removed by cleanup_dir. */
static char dead_dir[PATH_MAX];
static char dead_path[PATH_MAX + 32];

static void make_dead_dir(void)
{
    snprintf(dead_dir, sizeof dead_dir, "%s/walnotify-dispatcher-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    ck_assert_msg(mkdtemp(dead_dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(dead_path, sizeof dead_path, "%s/dead.jsonl", dead_dir);
}

static void cleanup_dir(void)
{
    unlink(dead_path);
    rmdir(dead_dir);
}

static char *read_whole(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = calloc(1, 65536);
    size_t n;

    ck_assert_msg(f != NULL, "cannot read %s: %s", path, strerror(errno));
    ck_assert_ptr_nonnull(text);
    n = fread(text, 1, 65535, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* Fails unless the dead-letter file holds exactly expected. */
static void assert_dead_letters_are(const char *expected)
{
    char *dead = read_whole(dead_path);

    ck_assert_str_eq(dead, expected);
    free(dead);
}

/* Fails unless the dead-letter file holds every one of the count needles. */
static void assert_dead_letters_hold(const char *const *needles, size_t count)
{
    char *dead = read_whole(dead_path);

    for (size_t i = 0; i < count; i++)
        ck_assert_msg(strstr(dead, needles[i]) != NULL, "no %s in: %s", needles[i], dead);
    free(dead);
}

static void set_policy(int plugin, wn_on_error on_error, int retry_max, wn_on_error then,
                       const char *dead_letter)
{
    wn_plugin_config *config = &fx.plugin_configs[plugin];

    config->on_error = on_error;
    config->retry_max = retry_max;
    config->then = then;
    config->retry_initial_ms = 10;
    config->retry_max_ms = 20;
    config->dead_letter = (char *)dead_letter;
}

static const char *last_call(const recorder *r)
{
    return r->ncalls > 0 ? r->calls[r->ncalls - 1] : "";
}

START_TEST(retry_max_runs_out_then_stop)
{
    static const char *const first[] = {"1"};
    static const char *const second[] = {"2", "3"};

    prepare(0x100, 0);
    set_policy(1, WN_ON_ERROR_RETRY, 2, WN_ON_ERROR_STOP, NULL);
    fx.recorders[1].retry_forever_on_note = 2;
    launch_on_orders();
    send_txn(0x200, 0x210, 7, 1, first, 1);
    send_txn(0x300, 0x310, 8, 1, second, 2);
    send_keepalive(0x900);
    ck_assert_int_eq(wait_finished(), WN_DISPATCH_PLUGIN_FATAL);
    ck_assert_int_eq(fx.recorders[1].failed_attempts, 3); /* the call and two retries */
    ck_assert_str_eq(fx.err, "plugin \"orders\" failed: handle returned RETRY after 3 attempts "
                             "for event 0/300 seq 0 of public.orders; stopping "
                             "(on_error = \"retry\", then = \"stop\")");
    ck_assert_uint_lt(fx.final_ack, 0x310);
    ck_assert_str_eq(last_call(&fx.recorders[0]), "abort 8");
    ck_assert_str_eq(last_call(&fx.recorders[1]), "abort 8");
}
END_TEST

START_TEST(retry_max_runs_out_then_skip)
{
    static const char *const notes[] = {"2", "3"};

    make_dead_dir();
    prepare(0x100, 0);
    set_policy(0, WN_ON_ERROR_RETRY, 3, WN_ON_ERROR_SKIP, dead_path);
    fx.recorders[0].retry_forever_on_note = 2;
    launch_on_orders();
    send_txn(0x300, 0x310, 8, 1, notes, 2);
    /* The transaction is acknowledged once flushed, the skipped event with it. */
    assert_acknowledged_then_stopped(0x310);
    ck_assert_int_eq(fx.recorders[0].failed_attempts, 4); /* the call and three retries */

    /* "all" went on with the next event; "orders", after it in the list, got the bad one. */
    ck_assert_int_eq(fx.recorders[0].ncalls, 3);
    ck_assert_str_eq(fx.recorders[0].calls[0], "begin 8");
    ck_assert_str_eq(fx.recorders[0].calls[1], "handle 3 seq=1");
    ck_assert_str_eq(fx.recorders[0].calls[2], "commit 8");
    ck_assert_int_eq(fx.recorders[1].ncalls, 4);
    ck_assert_str_eq(fx.recorders[1].calls[1], "handle 2 seq=0");
    ck_assert_str_eq(fx.recorders[1].calls[2], "handle 3 seq=1");

    assert_dead_letters_are("{\"lsn\":\"0/300\",\"seq\":0,\"xid\":8,"
                            "\"commit_time\":\"2000-01-01T00:00:00.000000Z\","
                            "\"table\":\"public.orders\",\"op\":\"insert\","
                            "\"values\":{\"id\":\"1\",\"note\":\"2\"},\"plugin\":\"all\","
                            "\"error\":\"handle returned RETRY after 4 attempts\"}\n");
    cleanup_dir();
}
END_TEST

/* on_error = "skip": the first failure, FATAL or RETRY, is skipped; nothing is retried. */
START_TEST(on_error_skip_skips_the_first_failure)
{

    make_dead_dir();
    prepare(0x100, 0);
    set_policy(0, WN_ON_ERROR_SKIP, 0, WN_ON_ERROR_STOP, dead_path);
    fx.recorders[0].fail_fatally_on_note = 2;
    fx.recorders[0].retry_forever_on_note = 3;
    launch_on_orders();
    send_msg(begin_msg(0x300, 8), 0);
    /* Control characters, a quote and a byte that is not UTF-8 beside a character that is;
     * escaped exactly as in the jsonl plugin's line (\b and \f in their short forms). */
    send_msg(insert_msg(1, "1", "2\x01\b\f\x7f\xff\"\xc3\xa9\n"), 0);
    send_msg(insert_msg(1, "2", "3"), 0);
    send_msg(insert_msg(1, "3", NULL), 0);
    send_msg(commit_msg(0x300, 0x310), 0x310);
    assert_acknowledged_then_stopped(0x310);
    ck_assert_int_eq(fx.recorders[0].failed_attempts, 2);
    ck_assert_int_eq(fx.recorders[0].ncalls, 3);
    ck_assert_str_eq(fx.recorders[0].calls[1], "handle NULL seq=2");

    assert_dead_letters_are("{\"lsn\":\"0/300\",\"seq\":0,\"xid\":8,"
                            "\"commit_time\":\"2000-01-01T00:00:00.000000Z\","
                            "\"table\":\"public.orders\",\"op\":\"insert\","
                            "\"values\":{\"id\":\"1\","
                            "\"note\":\"2\\u0001\\b\\f\\u007f\\ufffd\\\"\xc3\xa9\\n\"},"
                            "\"plugin\":\"all\",\"error\":\"handle returned FATAL\"}\n"
                            "{\"lsn\":\"0/300\",\"seq\":1,\"xid\":8,"
                            "\"commit_time\":\"2000-01-01T00:00:00.000000Z\","
                            "\"table\":\"public.orders\",\"op\":\"insert\","
                            "\"values\":{\"id\":\"2\",\"note\":\"3\"},"
                            "\"plugin\":\"all\",\"error\":\"handle returned RETRY\"}\n");
    cleanup_dir();
}
END_TEST

/* FATAL under on_error = "retry" is not retried: it goes straight to `then`. */
START_TEST(fatal_goes_straight_to_then)
{
    static const char *const notes[] = {"2"};

    make_dead_dir();
    prepare(0x100, 0);
    set_policy(0, WN_ON_ERROR_RETRY, 0, WN_ON_ERROR_SKIP, dead_path);
    fx.recorders[0].fail_fatally_on_note = 2;
    launch_on_orders();
    send_txn(0x300, 0x310, 8, 1, notes, 1);
    assert_acknowledged_then_stopped(0x310);
    ck_assert_int_eq(fx.recorders[0].failed_attempts, 1);
    assert_dead_letters_hold((const char *const[]){"\"error\":\"handle returned FATAL\"}\n"}, 1);
    cleanup_dir();
}
END_TEST

/* retry_initial_ms 200 doubling to retry_max_ms 300: the waits are 200, 300, 300 ms. */
START_TEST(backoff_honours_the_plugin_settings)
{
    static const char *const notes[] = {"2"};
    const recorder *r = &fx.recorders[0];
    int64_t gap[3];

    prepare(0x100, 0);
    set_policy(0, WN_ON_ERROR_RETRY, 3, WN_ON_ERROR_STOP, NULL);
    fx.plugin_configs[0].retry_initial_ms = 200;
    fx.plugin_configs[0].retry_max_ms = 300;
    fx.recorders[0].retry_forever_on_note = 2;
    launch_on_orders();
    send_txn(0x300, 0x310, 8, 1, notes, 1);
    ck_assert_int_eq(wait_finished(), WN_DISPATCH_PLUGIN_FATAL);
    ck_assert_int_eq(r->failed_attempts, 4);
    for (int i = 0; i < 3; i++)
        gap[i] = r->attempt_ms[i + 1] - r->attempt_ms[i];
    ck_assert_msg(gap[0] >= 200 && gap[0] < 300, "first wait %lld ms", (long long)gap[0]);
    ck_assert_msg(gap[1] >= 300, "second wait %lld ms", (long long)gap[1]);
    /* Doubled without the cap it would be 800 ms. */
    ck_assert_msg(gap[2] >= 300 && gap[2] < 700, "third wait %lld ms", (long long)gap[2]);
}
END_TEST

/* on_error = "stop": no retry, exit 2, abort to everyone who began, nothing of it acknowledged. */
START_TEST(on_error_stop_aborts_and_acknowledges_nothing)
{
    static const char *const first[] = {"1"};
    static const char *const second[] = {"2", "3"};

    prepare(0x100, 0);
    set_policy(1, WN_ON_ERROR_STOP, 0, WN_ON_ERROR_STOP, NULL);
    fx.recorders[1].retry_forever_on_note = 3;
    launch_on_orders();
    send_txn(0x200, 0x210, 7, 1, first, 1);
    ck_assert(wait_ack(0x210));
    send_txn(0x300, 0x310, 8, 1, second, 2);
    send_keepalive(0x900);
    ck_assert_int_eq(wait_finished(), WN_DISPATCH_PLUGIN_FATAL);
    ck_assert_int_eq(fx.recorders[1].failed_attempts, 1);
    ck_assert_str_eq(fx.err, "plugin \"orders\" failed: handle returned RETRY for event 0/300 "
                             "seq 1 of public.orders; stopping (on_error = \"stop\")");
    ck_assert_uint_eq(fx.final_ack, 0x210);
    ck_assert_str_eq(last_call(&fx.recorders[0]), "abort 8");
    ck_assert_str_eq(last_call(&fx.recorders[1]), "abort 8");
    ck_assert_str_eq(fx.recorders[1].calls[fx.recorders[1].ncalls - 2], "handle 2 seq=0");
}
END_TEST

/* A dead-letter file that cannot be opened stops the host before anything is delivered. */
START_TEST(unusable_dead_letter_file_is_fatal)
{
    prepare(0x100, 0);
    set_policy(1, WN_ON_ERROR_SKIP, 0, WN_ON_ERROR_STOP, "/nonexistent-walnotify/dead.jsonl");
    launch();
    ck_assert_int_eq(wait_finished(), WN_DISPATCH_PLUGIN_FATAL);
    ck_assert_str_eq(fx.err, "plugin \"orders\": dead-letter file "
                             "/nonexistent-walnotify/dead.jsonl: cannot open: No such file or "
                             "directory");
    ck_assert_int_eq(fx.recorders[0].ncalls, 0);
}
END_TEST

/* A torn last line (a crash in the middle of a write) is cut before anything is appended. */
START_TEST(torn_dead_letter_line_is_cut)
{
    static const char *const notes[] = {"2"};
    static const char prefix[] = "{\"whole\":1}\n{\"lsn\":\"0/300\",";
    FILE *f;
    char *dead;

    make_dead_dir();
    f = fopen(dead_path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"whole\":1}\n{\"torn", f);
    fclose(f);
    prepare(0x100, 0);
    set_policy(0, WN_ON_ERROR_SKIP, 0, WN_ON_ERROR_STOP, dead_path);
    fx.recorders[0].fail_fatally_on_note = 2;
    launch_on_orders();
    send_txn(0x300, 0x310, 8, 1, notes, 1);
    assert_acknowledged_then_stopped(0x310);
    dead = read_whole(dead_path);
    ck_assert_msg(strncmp(dead, prefix, sizeof prefix - 1) == 0, "%s", dead);
    ck_assert_uint_eq(strlen(dead) - 1, (size_t)(strchr(dead + 13, '\n') - dead));
    free(dead);
    cleanup_dir();
}
END_TEST


/* ---- rewinds and failures named late (ABI 1.1) ---------------------------------------------- */

/* A rewind from handle: every plugin that began the transaction gets abort, nothing is flushed
 * or published beyond what was before. */
START_TEST(rewind_aborts_and_publishes_nothing_new)
{
    static const char *const first[] = {"10"};
    static const char *const second[] = {"20", "21"};

    prepare(0x100, 0);
    fx.recorders[1].rewind_on_note = 21;
    launch_on_orders();
    send_txn(0x200, 0x210, 7, 1, first, 1);
    ck_assert(wait_ack(0x210));
    send_txn(0x300, 0x310, 8, 1, second, 2);
    assert_ends(WN_DISPATCH_REWIND, 0x210);
    ck_assert_str_eq(last_call(&fx.recorders[0]), "abort 8");
    ck_assert_str_eq(last_call(&fx.recorders[1]), "abort 8");
    ck_assert_uint_eq(fx.plugins[1].requests.rewinds, 1);
}
END_TEST

/* A rewind from flush: what the flush was to make durable is not acknowledged (the way a lost
 * connection ends, flushing and publishing, would acknowledge exactly what the sink lost). */
START_TEST(rewind_from_flush_acknowledges_nothing_of_it)
{
    static const char *const notes[] = {"10"};

    prepare(0x100, 0);
    fx.recorders[0].rewind_in_flush = true;
    launch_on_orders();
    send_txn(0x200, 0x210, 7, 1, notes, 1);
    assert_ends(WN_DISPATCH_REWIND, 0x100);
    ck_assert_str_eq(last_call(&fx.recorders[0]), "rewind in flush");
}
END_TEST

/* Rewinds without progress count as retries: retry_max 1, then stop: the second one stops. */
START_TEST(rewinds_without_progress_run_out_then_stop)
{
    static const char *const notes[] = {"20"};

    prepare(0x100, 0);
    set_policy(1, WN_ON_ERROR_RETRY, 1, WN_ON_ERROR_STOP, NULL);
    fx.recorders[1].rewind_on_note = 20;
    for (int run = 1; run <= 2; run++) {
        if (run == 2)
            restart(0x100);
        launch_on_orders();
        send_txn(0x300, 0x310, 8, 1, notes, 1);
        send_keepalive(0x900);
        ck_assert_int_eq(wait_finished(), run == 1 ? WN_DISPATCH_REWIND : WN_DISPATCH_PLUGIN_FATAL);
        ck_assert_uint_eq(fx.final_ack, 0x100);
    }
    ck_assert_msg(strstr(fx.err, "asked for a rewind from handle 2 times without the "
                                 "acknowledged position moving (last: lost)") != NULL,
                  "%s", fx.err);
}
END_TEST

/* on_error = "skip" and a bare rewind: what the requester had received since the last
 * acknowledgement goes to its dead-letter file when it comes again; the rest is delivered. */
START_TEST(rewind_under_skip_sends_what_it_had_to_the_dead_letter_file)
{
    static const char *const needles[] = {
        "\"note\":\"20\"", "\"note\":\"21\"",
        "\"error\":\"1 rewind without progress, the last from handle: lost\""};
    static const char *const notes[] = {"20", "21"};

    make_dead_dir();
    prepare(0x100, 0);
    set_policy(1, WN_ON_ERROR_SKIP, 0, WN_ON_ERROR_STOP, dead_path);
    fx.recorders[1].rewind_on_note = 21;
    for (int run = 1; run <= 2; run++) {
        if (run == 2)
            restart(0x100);
        launch_on_orders();
        send_txn(0x300, 0x310, 8, 1, notes, 2);
        if (run == 1) {
            send_keepalive(0x900);
            ck_assert_int_eq(wait_finished(), WN_DISPATCH_REWIND);
        }
    }
    assert_acknowledged_then_stopped(0x310);
    /* Both events went to the file; handle saw neither on the second stream. */
    ck_assert_int_eq(fx.recorders[1].ncalls, 2);
    ck_assert_str_eq(fx.recorders[1].calls[1], "commit 8");
    assert_dead_letters_hold(needles, sizeof needles / sizeof needles[0]);
    cleanup_dir();
}
END_TEST

/* Counts the lines of text that hold needle. */
static int lines_with(const char *text, const char *needle)
{
    int n = 0;

    for (const char *at = text; (at = strstr(at, needle)) != NULL; at += strlen(needle))
        n++;
    return n;
}

/* A bare rewind under on_error = "skip" skips a whole batch when it comes again: one log line
 * says it, with its range and count (the events are in the dead-letter file), not one line per
 * event; and the stream that ended for the rewind is not said to have stopped. */
START_TEST(a_skipped_batch_is_one_log_line)
{
    static const char *notes[40];
    char text[40][8], log_path[PATH_MAX + 64];
    int saved = dup(STDERR_FILENO), fd;
    char *log;

    for (int i = 0; i < 40; i++) {
        snprintf(text[i], sizeof text[i], "%d", 100 + i);
        notes[i] = text[i];
    }
    make_dead_dir();
    snprintf(log_path, sizeof log_path, "%s/log", dead_dir);
    fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert(fd >= 0 && saved >= 0 && dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    prepare(0x100, 0);
    set_policy(1, WN_ON_ERROR_SKIP, 0, WN_ON_ERROR_STOP, dead_path);
    fx.recorders[1].rewind_on_note = 139;
    for (int run = 1; run <= 2; run++) {
        if (run == 2)
            restart(0x100);
        launch_on_orders();
        send_txn(0x300, 0x310, 8, 1, notes, 40);
        if (run == 1) {
            send_keepalive(0x900);
            ck_assert_int_eq(wait_finished(), WN_DISPATCH_REWIND);
        }
    }
    assert_acknowledged_then_stopped(0x310);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    log = read_whole(log_path);
    ck_assert_msg(lines_with(log, "\"orders\": skipped 40 events from 0/300 seq 0 to 0/300 seq "
                                  "39 (1 rewind without progress, the last from handle: lost); "
                                  "40 skipped so far, see ") == 1,
                  "%.2000s", log);
    ck_assert_msg(lines_with(log, "\"orders\": skipped") == 1, "a line per event: %.2000s", log);
    ck_assert_msg(lines_with(log, "stream rewound; ") == 1, "%.2000s", log);
    ck_assert_msg(lines_with(log, "dispatcher stopped; ") == 1, "%.2000s", log);
    free(log);
    unlink(log_path);
    cleanup_dir();
}
END_TEST

/* A failure named from commit rewinds; the next stream skips that event to the dead-letter
 * file (on_error = "skip") and delivers the rest of the transaction. */
START_TEST(named_failure_meets_the_policy_on_redelivery)
{
    static const char *const needles[] = {
        "\"seq\":1,", "\"error\":\"commit named it failed (transient): refused "
                     "downstream\"}\n"};
    static const char *const notes[] = {"1", "2", "3"};

    make_dead_dir();
    prepare(0x100, 0);
    set_policy(0, WN_ON_ERROR_SKIP, 0, WN_ON_ERROR_STOP, dead_path);
    fx.recorders[0].name_on_note = 2;
    fx.recorders[0].name_kind = WALNOTIFY_FAILURE_TRANSIENT;
    launch_on_orders();
    send_txn(0x300, 0x310, 8, 1, notes, 3);
    assert_ends(WN_DISPATCH_REWIND, 0x100);
    /* The transaction whose commit asked for the rewind is the one in hand: it is aborted. */
    ck_assert_str_eq(last_call(&fx.recorders[0]), "abort 8");

    restart(0x100);
    fx.recorders[0].name_on_note = 0;
    launch_on_orders();
    send_txn(0x300, 0x310, 8, 1, notes, 3);
    assert_acknowledged_then_stopped(0x310);
    ck_assert_int_eq(fx.recorders[0].ncalls, 4);
    ck_assert_str_eq(fx.recorders[0].calls[1], "handle 1 seq=0");
    ck_assert_str_eq(fx.recorders[0].calls[2], "handle 3 seq=2");
    ck_assert_str_eq(fx.recorders[0].calls[3], "commit 8");
    assert_dead_letters_hold(needles, sizeof needles / sizeof needles[0]);
    /* Acknowledged: the failure is forgotten. */
    ck_assert_uint_eq(fx.plugins[0].requests.nfailures, 0);
    cleanup_dir();
}
END_TEST

/* How many lines the dead-letter file holds. */
static int dead_letter_lines(void)
{
    char *dead = read_whole(dead_path);
    int lines = 0;

    for (const char *c = dead; *c != '\0'; c++)
        lines += *c == '\n';
    free(dead);
    return lines;
}

/*
 * Two events of one transaction named one after the other, each in its own delivery: the first
 * is skipped once (the third delivery passes it without a second line), and the transaction is
 * acknowledged as soon as it ends, with no status interval due.
 */
START_TEST(a_named_event_is_skipped_once_and_acknowledged_at_once)
{
    static const char *const notes[] = {"1", "2", "3", "4"};

    make_dead_dir();
    prepare(0x100, 0);
    fx.config.source.status_interval_ms = 60000;
    set_policy(0, WN_ON_ERROR_SKIP, 0, WN_ON_ERROR_STOP, dead_path);
    fx.recorders[0].name_on_note = 2;
    fx.recorders[0].name_kind = WALNOTIFY_FAILURE_PERMANENT;
    launch_on_orders();
    send_txn(0x300, 0x310, 8, 1, notes, 4);
    assert_ends(WN_DISPATCH_REWIND, 0x100);

    restart(0x100);
    fx.recorders[0].name_on_note = 3;
    launch_on_orders();
    send_txn(0x300, 0x310, 8, 1, notes, 4);
    assert_ends(WN_DISPATCH_REWIND, 0x100);
    ck_assert_int_eq(dead_letter_lines(), 1);

    restart(0x100);
    fx.recorders[0].name_on_note = 0;
    launch_on_orders();
    send_txn(0x300, 0x310, 8, 1, notes, 4);
    ck_assert_msg(wait_ack(0x310), "the settled transaction was not acknowledged at once");
    ck_assert_int_eq(finish(), WN_DISPATCH_STOPPED);
    ck_assert_int_eq(dead_letter_lines(), 2);
    ck_assert_str_eq(fx.recorders[0].calls[1], "handle 1 seq=0");
    ck_assert_str_eq(fx.recorders[0].calls[2], "handle 4 seq=3");
    ck_assert_uint_eq(fx.plugins[0].requests.nsettled, 0);
    cleanup_dir();
}
END_TEST

/* Naming an event of an acknowledged transaction is a bug in the plugin: the host stops. */
START_TEST(naming_an_acknowledged_event_stops)
{
    static const char *const first[] = {"1"};
    static const char *const second[] = {"2"};

    prepare(0x100, 0);
    fx.recorders[0].name_first_seen = true;
    fx.recorders[0].name_kind = WALNOTIFY_FAILURE_PERMANENT;
    launch_on_orders();
    send_txn(0x200, 0x210, 7, 1, first, 1);
    ck_assert(wait_ack(0x210));
    send_txn(0x300, 0x310, 8, 1, second, 1);
    ck_assert_int_eq(wait_finished(), WN_DISPATCH_PLUGIN_FATAL);
    ck_assert_msg(strstr(fx.err, "plugin \"all\": fail_events from commit named 0/200 seq 0 .. "
                                 "0/200 seq 0 as failed, but 0/200 seq 0 was acknowledged "
                                 "already") != NULL &&
                      strstr(fx.err, "(a bug in the plugin)") != NULL,
                  "%s", fx.err);
    ck_assert_uint_eq(fx.final_ack, 0x210);
}
END_TEST

/* Outside handle, commit and flush the services refuse, and nothing is recorded. */
START_TEST(services_refuse_outside_the_callbacks)
{
    wn_requests requests = {0};
    walnotify_id id = {.position = 0x200, .ordinal = 1ull << 32};

    ck_assert_int_eq(wn_requests_rewind(&requests, "x", "lost"), WALNOTIFY_FATAL);
    ck_assert_int_eq(wn_requests_fail(&requests, "x", id, id, WALNOTIFY_FAILURE_TRANSIENT, "r"),
                     WALNOTIFY_FATAL);
    ck_assert_int_eq(requests.pending, WN_REQUEST_NONE);
    wn_requests_open(&requests, "handle");
    /* Never delivered: refused as a bug. */
    ck_assert_int_eq(wn_requests_fail(&requests, "x", id, id, WALNOTIFY_FAILURE_TRANSIENT, "r"),
                     WALNOTIFY_FATAL);
    ck_assert_int_eq(wn_requests_take(&requests), WN_REQUEST_INVALID);
    wn_requests_delivering(&requests, id);
    ck_assert_int_eq(wn_requests_fail(&requests, "x", id, id, WALNOTIFY_FAILURE_TRANSIENT, "r"),
                     WALNOTIFY_RETRY);
    ck_assert_int_eq(wn_requests_fail(&requests, "x", id, id, WALNOTIFY_FAILURE_TRANSIENT, "r"),
                     WALNOTIFY_RETRY);
    ck_assert_int_eq(wn_requests_take(&requests), WN_REQUEST_FAIL);
    {
        wn_named named;

        ck_assert(wn_requests_named(&requests, id, &named));
        ck_assert_uint_eq(named.count, 2);
        ck_assert_str_eq(named.from, "handle");
    }
    wn_requests_close(&requests);
    wn_requests_acknowledged(&requests, 0x210);
    ck_assert_uint_eq(requests.nfailures, 0);
}
END_TEST

/* The id of seq of the transaction at position. */
static walnotify_id change_id(wn_lsn position, uint64_t seq)
{
    walnotify_id id = {.position = position, .ordinal = (seq + 1) << 32};

    return id;
}

/*
 * Skipped events are remembered as runs of what the instance received one after the other, each
 * found again after a rewind; a named failure whose events were all skipped is forgotten once
 * the redelivery passes it; an acknowledgement releases both. Far more skipped runs and named
 * ranges than one status interval used to allow (32) fit.
 */
START_TEST(skipped_events_are_remembered_until_acknowledged)
{
    static wn_requests requests;

    memset(&requests, 0, sizeof requests);
    wn_requests_new_stream(&requests);
    /* 100 events; seq 10 to 19 skipped, seq 40 and 41 skipped, the rest handled. */
    for (uint64_t seq = 0; seq < 100; seq++) {
        wn_requests_delivering(&requests, change_id(0x200, seq));
        if ((seq >= 10 && seq < 20) || seq == 40 || seq == 41)
            ck_assert(wn_requests_settle(&requests, change_id(0x200, seq)));
    }
    ck_assert_uint_eq(requests.nsettled, 2);
    ck_assert(!wn_requests_due_before(&requests, 0x200));
    ck_assert(wn_requests_due_before(&requests, 0x210));
    /* After a rewind: the same events are found, no other. */
    wn_requests_new_stream(&requests);
    for (uint64_t seq = 0; seq < 100; seq++) {
        bool skipped = (seq >= 10 && seq < 20) || seq == 40 || seq == 41;

        wn_requests_delivering(&requests, change_id(0x200, seq));
        ck_assert_msg(wn_requests_settled(&requests, change_id(0x200, seq)) == skipped,
                      "seq %" PRIu64, seq);
    }
    /* A failure named over 60 to 69, permanent: skipped on redelivery, then forgotten once the
     * redelivery passes it; one retried stays. */
    wn_requests_open(&requests, "commit");
    ck_assert_int_eq(wn_requests_fail(&requests, "x", change_id(0x200, 60), change_id(0x200, 69),
                                      WALNOTIFY_FAILURE_PERMANENT, "refused"),
                     WALNOTIFY_RETRY);
    ck_assert_int_eq(wn_requests_fail(&requests, "x", change_id(0x200, 80), change_id(0x200, 80),
                                      WALNOTIFY_FAILURE_TRANSIENT, "busy"),
                     WALNOTIFY_RETRY);
    wn_requests_close(&requests);
    ck_assert_int_eq(wn_requests_take(&requests), WN_REQUEST_FAIL);
    wn_requests_new_stream(&requests);
    for (uint64_t seq = 0; seq < 100; seq++) {
        walnotify_id id = change_id(0x200, seq);
        wn_named named;

        wn_requests_delivering(&requests, id);
        if (wn_requests_settled(&requests, id) || !wn_requests_named(&requests, id, &named))
            continue;
        if (named.kind == WALNOTIFY_FAILURE_PERMANENT)
            ck_assert(wn_requests_settle(&requests, id));
        else
            wn_requests_retrying(&requests, id);
    }
    ck_assert_uint_eq(requests.nsettled, 3);
    ck_assert_uint_eq(requests.nfailures, 1);
    ck_assert(wn_id_compare(requests.failures[0].first, change_id(0x200, 80)) == 0);
    /* Many runs, one per transaction (the next event handled): far more than 32. */
    for (wn_lsn position = 0x300; position < 0x300 + 100 * 0x10; position += 0x10) {
        wn_requests_delivering(&requests, change_id(position, 0));
        ck_assert(wn_requests_settle(&requests, change_id(position, 0)));
        wn_requests_delivering(&requests, change_id(position, 1)); /* handled */
    }
    ck_assert_uint_eq(requests.nsettled, 103);
    ck_assert(wn_requests_settled(&requests, change_id(0x300 + 50 * 0x10, 0)));
    ck_assert(!wn_requests_settled(&requests, change_id(0x300 + 50 * 0x10, 1)));
    wn_requests_acknowledged(&requests, 0x210);
    ck_assert_uint_eq(requests.nsettled, 100);
    ck_assert_uint_eq(requests.nfailures, 0);
    wn_requests_acknowledged(&requests, 0x300 + 100 * 0x10);
    ck_assert_uint_eq(requests.nsettled, 0);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("dispatcher");
    TCase *tc = tcase_create("dispatcher");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, delivers_in_order_with_filters);
    tcase_add_test(tc, messages_and_identities);
    tcase_add_test(tc, acknowledges_commit_end_only_after_flush);
    tcase_add_test(tc, what_commit_wrote_is_flushed_before_it_is_acknowledged);
    tcase_add_test(tc, stop_retries_the_last_flush);
    tcase_add_test(tc, stop_gives_up_a_flush_that_keeps_failing);
    tcase_add_test(tc, keepalive_inside_transaction_is_not_acknowledged);
    tcase_add_test(tc, keepalive_between_transactions_is_acknowledged);
    tcase_add_test(tc, abort_reaches_a_plugin_without_begin);
    tcase_add_test(tc, transient_failure_is_retried_in_place);
    tcase_add_test(tc, fatal_failure_stops_without_acknowledging_the_transaction);
    tcase_add_test(tc, endpos_stops_after_the_last_commit_before_it);
    tcase_add_test(tc, endpos_on_an_idle_stream);
    tcase_add_test(tc, malformed_message_is_a_protocol_error);
    tcase_add_test(tc, retry_max_runs_out_then_stop);
    tcase_add_test(tc, retry_max_runs_out_then_skip);
    tcase_add_test(tc, on_error_skip_skips_the_first_failure);
    tcase_add_test(tc, fatal_goes_straight_to_then);
    tcase_add_test(tc, backoff_honours_the_plugin_settings);
    tcase_add_test(tc, on_error_stop_aborts_and_acknowledges_nothing);
    tcase_add_test(tc, unusable_dead_letter_file_is_fatal);
    tcase_add_test(tc, torn_dead_letter_line_is_cut);
    tcase_add_test(tc, rewind_aborts_and_publishes_nothing_new);
    tcase_add_test(tc, rewind_from_flush_acknowledges_nothing_of_it);
    tcase_add_test(tc, rewinds_without_progress_run_out_then_stop);
    tcase_add_test(tc, named_failure_meets_the_policy_on_redelivery);
    tcase_add_test(tc, rewind_under_skip_sends_what_it_had_to_the_dead_letter_file);
    tcase_add_test(tc, a_skipped_batch_is_one_log_line);
    tcase_add_test(tc, naming_an_acknowledged_event_stops);
    tcase_add_test(tc, services_refuse_outside_the_callbacks);
    tcase_add_test(tc, skipped_events_are_remembered_until_acknowledged);
    tcase_add_test(tc, a_named_event_is_skipped_once_and_acknowledged_at_once);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
