/*
 * The initial snapshot (`source.snapshot = "initial"`) run end to end: walnotify with a jsonl
 * plugin takes it while a writer inserts, updates and deletes; replaying the jsonl lines in order
 * (from the last snapshot's begin marker: its rows and the inserts and updates as upserts, the
 * deletes as removals) must give exactly the table at the end. Also after kill -9 in the middle
 * of a snapshot, with the slot made first by --create-slot (a plugin without `snapshot` beside
 * one with it receives the stream as before), and after a rewind in the middle of it (the rows
 * come again with the same identities); a finished snapshot, recorded in the state file, is not
 * taken again.
 *
 * WN_SNAPSHOT_ROWS sets the table's rows (default 20000).
 */
#include <check.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "jline.h"

#define DEFAULT_ROWS 20000
#define KILLS 3
#define SNAPSHOT_BATCH 10000 /* events in a batch at most */
#define SOURCE_EXTRA                                                                               \
    "snapshot = \"initial\"; state_file = \"state\"; reconnect_initial_ms = 50; "                \
    "reconnect_max_ms = 500;"

static int table_rows(void)
{
    const char *text = getenv("WN_SNAPSHOT_ROWS");
    int n = text != NULL ? atoi(text) : DEFAULT_ROWS;

    return n > 0 ? n : DEFAULT_ROWS;
}

/* Ids 1..rows, a few more for the writer's inserts. */
static int id_max(int rows)
{
    return rows + rows / 5 + 1;
}

static void make_table(itest_ctx *ctx, int rows)
{
    itest_exec(ctx->conn,
               "CREATE TABLE t (id int PRIMARY KEY, v text); "
               "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, %d) g",
               rows);
}

/* Inserts (or updates through ON CONFLICT), updates and deletes at random ids, in one
 * transaction per loop. */
static pid_t start_writer(itest_ctx *ctx, int rows)
{
    char sql[1024];
    int max = id_max(rows) - 1;

    snprintf(sql, sizeof sql,
             "INSERT INTO t VALUES ((random() * %d)::int + 1, md5(random()::text)) "
             "ON CONFLICT (id) DO UPDATE SET v = excluded.v; "
             "UPDATE t SET v = md5(random()::text) WHERE id = (random() * %d)::int + 1; "
             "DELETE FROM t WHERE id = (random() * %d)::int + 1",
             max, max, max);
    return itest_writer_start(ctx, sql);
}

/* The table as the lines say: v[id], NULL when absent. */
typedef struct replica {
    char **v;
    int max;
    size_t begins;          /* begin markers */
    size_t ends;            /* end markers */
    char last_snapshot[32]; /* the last begin marker's snapshot LSN */
    size_t snapshots;       /* distinct snapshot LSNs among the begin markers */
    size_t changes;         /* insert, update and delete lines */
} replica;

static void replica_clear(replica *r)
{
    for (int i = 0; i <= r->max; i++) {
        free(r->v[i]);
        r->v[i] = NULL;
    }
}

static void replica_set(replica *r, const jl_value *values)
{
    const jl_value *id = jl_get(values, "id"), *v = jl_get(values, "v");
    int key;

    ck_assert_msg(id != NULL && id->kind == JL_STRING, "a line without its id");
    key = atoi(id->text);
    ck_assert_msg(key >= 1 && key <= r->max, "id %d out of range", key);
    free(r->v[key]);
    r->v[key] = v != NULL && v->kind == JL_STRING ? strdup(v->text) : strdup("(null)");
}

static void replica_remove(replica *r, const jl_value *old)
{
    const jl_value *id = jl_get(old, "id");
    int key;

    ck_assert_msg(id != NULL && id->kind == JL_STRING, "a delete without its key");
    key = atoi(id->text);
    ck_assert_msg(key >= 1 && key <= r->max, "id %d out of range", key);
    free(r->v[key]);
    r->v[key] = NULL;
}

static void replay_line(replica *r, const jl_value *json)
{
    const jl_value *op = jl_get(json, "op"), *marker = jl_get(json, "marker");
    const jl_value *snapshot = jl_get(json, "snapshot");

    ck_assert_msg(op != NULL && op->kind == JL_STRING, "a line without op");
    if (strcmp(op->text, "snapshot") == 0 && marker != NULL) {
        if (strcmp(marker->text, "end") == 0) {
            r->ends++;
            return;
        }
        /* A new snapshot is the whole table as of its point: what came before it is in it. */
        replica_clear(r);
        r->begins++;
        if (strcmp(r->last_snapshot, snapshot->text) != 0)
            r->snapshots++;
        snprintf(r->last_snapshot, sizeof r->last_snapshot, "%s", snapshot->text);
        return;
    }
    if (strcmp(op->text, "snapshot") != 0)
        r->changes++;
    if (strcmp(op->text, "delete") == 0)
        replica_remove(r, jl_get(json, "old"));
    else
        replica_set(r, jl_get(json, "values"));
}

/* Replays path; without a snapshot (changes only) from the table as make_table made it. */
static replica replay(const char *path, int rows, bool from_initial)
{
    itest_lines lines = itest_read_lines(path);
    replica r = {.max = id_max(rows)};

    r.v = calloc((size_t)r.max + 1, sizeof *r.v);
    ck_assert_ptr_nonnull(r.v);
    for (int i = 1; from_initial && i <= rows; i++) {
        char text[32];

        snprintf(text, sizeof text, "v%d", i);
        r.v[i] = strdup(text);
    }
    for (size_t i = 0; i < lines.count; i++) {
        char err[256];
        jl_value *json = jl_parse(lines.line[i], lines.length[i], err, sizeof err);

        ck_assert_msg(json != NULL, "%s line %zu: %s", path, i + 1, err);
        replay_line(&r, json);
        jl_free(json);
    }
    itest_lines_free(&lines);
    return r;
}

/* Fails unless the replica is the table, row for row. */
static void assert_replica_is_table(itest_ctx *ctx, const replica *r, const char *what)
{
    PGresult *res = PQexec(ctx->conn, "SELECT id, v FROM t ORDER BY id");
    int n, at = 0;

    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    n = PQntuples(res);
    for (int id = 1; id <= r->max; id++) {
        const char *want = NULL;

        if (at < n && atoi(PQgetvalue(res, at, 0)) == id)
            want = PQgetvalue(res, at++, 1);
        ck_assert_msg((want == NULL) == (r->v[id] == NULL) &&
                          (want == NULL || strcmp(want, r->v[id]) == 0),
                      "%s: id %d is %s in the table but %s in the replay", what, id,
                      want ? want : "absent", r->v[id] ? r->v[id] : "absent");
    }
    ck_assert_int_eq(at, n);
    PQclear(res);
}

static void replica_free(replica *r)
{
    replica_clear(r);
    free(r->v);
}

static size_t count_in(const char *path, const char *needle)
{
    char *text = itest_read_file(path, NULL);
    size_t n = 0;

    for (const char *p = text; p != NULL && (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(text);
    return n;
}

/* Waits until path holds needle at least `least` times. */
static void wait_for(const char *path, const char *needle, size_t least, const char *what)
{
    itest_deadline deadline = itest_deadline_in(ITEST_WAIT_S * 1000);

    while (count_in(path, needle) < least) {
        ck_assert_msg(!itest_expired(&deadline), "waited in vain for %s", what);
        itest_sleep_ms(ITEST_POLL_MS);
    }
}

/* One jsonl plugin: the snapshot and the changes. */
static itest_path jsonl_config(itest_ctx *ctx, const char *name, const char *extra_plugins)
{
    return itest_config_extra(ctx, name, "\"public.t\"", 200, SOURCE_EXTRA,
                              "{ name = \"out\"; path = \"%s\"; "
                              "ops = [ \"snapshot\", \"insert\", \"update\", \"delete\" ]; "
                              "settings = { path = \"out.jsonl\"; fsync = false; }; }%s",
                              itest_root_file("build/plugins/jsonl.so").s, extra_plugins);
}

/* A run until the snapshot's end marker is in out (stopped with SIGTERM, writer stopped first
 * when there is one), then a run to the end: --endpos alone would end a run before a snapshot
 * whose point lies past it. */
static void run_through_snapshot(itest_ctx *ctx, const char *conf, const char *out, pid_t writer)
{
    itest_host host;

    itest_host_start(ctx, &host, ITEST_ARGS("-c", conf));
    wait_for(out, "\"marker\":\"end\"", 1, "the snapshot's end marker");
    if (writer > 0) {
        itest_sleep_ms(300);
        itest_writer_stop(writer);
    }
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    itest_run_to_now(ctx, conf);
}

/* The snapshot is taken while the writer commits, and the run goes on past it; then a run to
 * the end. The state file then says the snapshot finished, and a second start takes none. */
START_TEST(test_seam_with_writer)
{
    int rows = table_rows();
    itest_ctx ctx;
    itest_host host;
    itest_path conf, out, state;
    replica r;
    pid_t writer;
    char *err, *text;

    itest_begin(&ctx, "snaprun");
    make_table(&ctx, rows);
    conf = jsonl_config(&ctx, "snap.cfg", "");
    out = itest_file(&ctx, "out.jsonl");
    state = itest_file(&ctx, "state");
    writer = start_writer(&ctx, rows);
    itest_sleep_ms(200);
    run_through_snapshot(&ctx, conf.s, out.s, writer);

    r = replay(out.s, rows, false);
    ck_assert_uint_eq(r.begins, 1);
    ck_assert_uint_eq(r.ends, 1);
    ck_assert_msg(r.changes > 0, "the writer's changes never came");
    assert_replica_is_table(&ctx, &r, "after the snapshot");
    replica_free(&r);
    text = itest_read_file(state.s, NULL);
    ck_assert_msg(text != NULL && strstr(text, "\nsnapshot=") != NULL,
                  "the state file does not record the finished snapshot: %s", text);
    free(text);

    /* A second start: no snapshot again, the changes only. */
    itest_exec(ctx.conn, "INSERT INTO t VALUES (%d, 'last')", id_max(rows));
    text = itest_lsn_text(itest_current_lsn(ctx.conn));
    itest_host_run(&ctx, &host, "-c", conf.s, "--endpos", text);
    free(text);
    itest_assert_exit(&host, 0);
    err = itest_host_stderr(&host);
    ck_assert_msg(strstr(err, "initial snapshot") == NULL,
                  "a finished snapshot was taken again: %s", err);
    free(err);
    r = replay(out.s, rows, false);
    ck_assert_uint_eq(r.begins, 1);
    assert_replica_is_table(&ctx, &r, "after the second start");
    replica_free(&r);
    itest_end(&ctx);
}
END_TEST

/* The slot never passed the consistent point of the snapshot the host was delivering. */
static void assert_slot_below_snapshot(itest_ctx *ctx, const itest_host *host)
{
    static const char needle[] = "initial snapshot taken at ";
    char *err = itest_host_stderr(host);
    const char *at = strstr(err, needle);
    wn_lsn point = 0, confirmed = itest_slot_confirmed(ctx->conn, ctx->slot);
    char text[WN_LSN_TEXT_MAX] = "", a[WN_LSN_TEXT_MAX], b[WN_LSN_TEXT_MAX];

    ck_assert_msg(at != NULL, "no snapshot taken: %s", err);
    sscanf(at + strlen(needle), "%17[0-9A-F/]", text);
    ck_assert_msg(wn_lsn_parse(text, &point), "no position in %.80s", at);
    ck_assert_msg(confirmed < point, "the slot is at %s, past the unfinished snapshot's %s",
                  wn_lsn_format(confirmed, a), wn_lsn_format(point, b));
    free(err);
}

/* kill -9 in the middle of the snapshot, a few times: each start takes a new one. */
START_TEST(test_kill9_in_snapshot)
{
    int rows = table_rows();
    itest_ctx ctx;
    itest_host host;
    itest_path conf, final, out, state;
    replica r;
    pid_t writer;
    char pause[2 * PATH_MAX];

    itest_begin(&ctx, "snapkill");
    make_table(&ctx, rows);
    snprintf(pause, sizeof pause,
             ", { name = \"pause\"; path = \"%s\"; ops = [ \"snapshot\" ]; "
             "settings = { pause_at = %d; pause_ms = 60000; }; }",
             itest_root_file("build/tests/fixtures/snapfault.so").s, rows / 2);
    conf = jsonl_config(&ctx, "kill.cfg", pause);
    final = jsonl_config(&ctx, "final.cfg", "");
    out = itest_file(&ctx, "out.jsonl");
    state = itest_file(&ctx, "state");
    writer = start_writer(&ctx, rows);
    for (int kill_no = 1; kill_no <= KILLS; kill_no++) {
        itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
        wait_for(host.err.s, "snapfault: pausing", 1, "the pause in the snapshot");
        itest_host_stop(&host, SIGKILL);
        ck_assert_msg(count_in(state.s, "snapshot=") == 0,
                      "the state file says an unfinished snapshot finished");
        assert_slot_below_snapshot(&ctx, &host);
    }
    itest_writer_stop(writer);
    run_through_snapshot(&ctx, final.s, out.s, 0);

    r = replay(out.s, rows, false);
    ck_assert_msg(r.snapshots == KILLS + 1 && r.begins == KILLS + 1,
                  "%zu begin markers of %zu snapshots, not %d new ones", r.begins, r.snapshots,
                  KILLS + 1);
    ck_assert_uint_eq(r.ends, 1);
    assert_replica_is_table(&ctx, &r, "after the kills");
    replica_free(&r);
    itest_end(&ctx);
}
END_TEST

/* An active/standby pair: the standby waits for the slot without taking a snapshot; when the
 * active one dies in the middle of its snapshot, the standby takes a new one. */
START_TEST(test_standby_takes_over)
{
    int rows = table_rows();
    itest_ctx ctx;
    itest_host active, standby;
    itest_path conf, standby_conf, out;
    replica r;
    pid_t writer;
    char pause[2 * PATH_MAX];

    itest_begin(&ctx, "snappair");
    make_table(&ctx, rows);
    snprintf(pause, sizeof pause,
             ", { name = \"pause\"; path = \"%s\"; ops = [ \"snapshot\" ]; "
             "settings = { pause_at = %d; pause_ms = 60000; }; }",
             itest_root_file("build/tests/fixtures/snapfault.so").s, rows / 2);
    conf = jsonl_config(&ctx, "active.cfg", pause);
    standby_conf = jsonl_config(&ctx, "standby.cfg", "");
    out = itest_file(&ctx, "out.jsonl");
    writer = start_writer(&ctx, rows);
    itest_host_start(&ctx, &active, ITEST_ARGS("-c", conf.s));
    wait_for(active.err.s, "snapfault: pausing", 1, "the pause in the snapshot");
    itest_host_start(&ctx, &standby, ITEST_ARGS("-c", standby_conf.s));
    wait_for(standby.err.s, "waiting for slot", 1, "the standby waiting for the slot");
    itest_sleep_ms(1000);
    ck_assert_msg(count_in(standby.err.s, "initial snapshot taken") == 0,
                  "the standby took a snapshot while the slot was held");
    itest_host_stop(&active, SIGKILL);
    wait_for(out.s, "\"marker\":\"end\"", 1, "the standby's snapshot");
    itest_sleep_ms(300);
    itest_writer_stop(writer);
    itest_host_stop(&standby, SIGTERM);
    itest_assert_exit(&standby, 0);
    ck_assert_uint_eq(count_in(standby.err.s, "initial snapshot taken"), 1);
    itest_run_to_now(&ctx, standby_conf.s);

    r = replay(out.s, rows, false);
    ck_assert_uint_eq(r.snapshots, 2);
    ck_assert_uint_eq(r.ends, 1);
    assert_replica_is_table(&ctx, &r, "after the takeover");
    replica_free(&r);
    itest_end(&ctx);
}
END_TEST

/* The slot made first; a plugin without `snapshot` beside one with it receives every change of
 * the stream (replayed over the table as it was when the slot was made, it gives the table). */
START_TEST(test_created_slot_and_changes_only_plugin)
{
    int rows = table_rows();
    itest_ctx ctx;
    itest_path conf, out, changes;
    replica r;
    pid_t writer;
    char plain[2 * PATH_MAX];

    itest_begin(&ctx, "snapslot");
    make_table(&ctx, rows);
    snprintf(plain, sizeof plain,
             ", { name = \"changes\"; path = \"%s\"; "
             "ops = [ \"insert\", \"update\", \"delete\" ]; "
             "settings = { path = \"changes.jsonl\"; fsync = false; }; }",
             itest_root_file("build/plugins/jsonl.so").s);
    conf = jsonl_config(&ctx, "slot.cfg", plain);
    out = itest_file(&ctx, "out.jsonl");
    changes = itest_file(&ctx, "changes.jsonl");
    itest_create_slot(&ctx, conf.s);
    writer = start_writer(&ctx, rows);
    itest_sleep_ms(500);
    run_through_snapshot(&ctx, conf.s, out.s, writer);

    r = replay(out.s, rows, false);
    ck_assert_uint_eq(r.begins, 1);
    ck_assert_uint_eq(r.ends, 1);
    assert_replica_is_table(&ctx, &r, "the snapshot plugin");
    replica_free(&r);
    ck_assert_uint_eq(count_in(changes.s, "\"snapshot\""), 0);
    r = replay(changes.s, rows, true);
    ck_assert_msg(r.changes > 0, "the writer's changes never came");
    assert_replica_is_table(&ctx, &r, "the plugin without snapshot");
    replica_free(&r);
    itest_end(&ctx);
}
END_TEST

/* A snapshot event of the snapfault log: "E POSITION ORDINAL MARKER". */
typedef struct seen_event {
    unsigned long long position;
    unsigned long long ordinal;
    unsigned marker;
} seen_event;

/* A rewind in the middle of the snapshot: the snapshot comes again from its begin marker, every
 * row with the identity it had, and the outcome is the table. */
START_TEST(test_rewind_in_snapshot)
{
    int rows = table_rows();
    int at = rows / 3;
    itest_ctx ctx;
    itest_path conf, out, log;
    itest_lines lines;
    replica r;
    pid_t writer;
    char fault[3 * PATH_MAX];
    unsigned long long position = 0, expect = 0;
    size_t restarts = 0, batches = 0, in_this_batch = 0;
    bool in_batch = false;

    itest_begin(&ctx, "snaprewind");
    make_table(&ctx, rows);
    log = itest_file(&ctx, "fault.log");
    snprintf(fault, sizeof fault,
             ", { name = \"fault\"; path = \"%s\"; ops = [ \"snapshot\" ]; "
             "settings = { rewind_at = %d; log = \"%s\"; }; }",
             itest_root_file("build/tests/fixtures/snapfault.so").s, at, log.s);
    conf = jsonl_config(&ctx, "rewind.cfg", fault);
    out = itest_file(&ctx, "out.jsonl");
    writer = start_writer(&ctx, rows);
    itest_sleep_ms(200);
    run_through_snapshot(&ctx, conf.s, out.s, writer);

    /* 0, 1, .. at; then 0, 1, .. rows + 1 again, all at one position; each event inside a
     * batch (begin .. commit, or abort at the rewind) of at most SNAPSHOT_BATCH events. */
    lines = itest_read_lines(log.s);
    for (size_t i = 0; i < lines.count; i++) {
        seen_event e;

        if (strcmp(lines.line[i], "B") == 0) {
            ck_assert_msg(!in_batch, "line %zu: a batch begun inside a batch", i + 1);
            in_batch = true;
            in_this_batch = 0;
            batches++;
            continue;
        }
        if (strcmp(lines.line[i], "C") == 0 || strcmp(lines.line[i], "A") == 0) {
            ck_assert_msg(in_batch, "line %zu: a batch ended outside a batch", i + 1);
            in_batch = false;
            continue;
        }
        ck_assert_msg(in_batch, "line %zu: a snapshot event outside a batch", i + 1);
        ck_assert_msg(++in_this_batch <= SNAPSHOT_BATCH, "line %zu: a batch of more than %d events",
                      i + 1, SNAPSHOT_BATCH);
        ck_assert_int_eq(
            sscanf(lines.line[i], "E %llx %llu %u", &e.position, &e.ordinal, &e.marker), 3);
        if (position == 0)
            position = e.position;
        ck_assert_msg(e.position == position, "line %zu: snapshot position %llx, not %llx", i + 1,
                      e.position, position);
        if (e.ordinal == 0 && expect > 0) {
            ck_assert_msg(expect == (unsigned long long)at + 1,
                          "the snapshot began again after ordinal %llu, not after the rewind "
                          "at %d",
                          expect - 1, at);
            restarts++;
            expect = 0;
        }
        ck_assert_msg(e.ordinal == expect, "line %zu: ordinal %llu where %llu was due", i + 1,
                      e.ordinal, expect);
        expect++;
    }
    itest_lines_free(&lines);
    ck_assert_uint_eq(restarts, 1);
    ck_assert_msg(!in_batch, "the last batch was never committed");
    /* Full batches but the last: up to the rewind (ordinals 0 .. at), then the begin marker,
     * every row and the end marker (ordinals 0 .. expect - 1). */
    ck_assert_uint_eq(batches, ((size_t)at + SNAPSHOT_BATCH) / SNAPSHOT_BATCH +
                                   (expect + SNAPSHOT_BATCH - 1) / SNAPSHOT_BATCH);
    r = replay(out.s, rows, false);
    ck_assert_uint_eq(r.ends, 1);
    ck_assert_uint_eq(r.snapshots, 1);
    assert_replica_is_table(&ctx, &r, "after the rewind");
    replica_free(&r);
    itest_end(&ctx);
}
END_TEST

#define AFTER_PAUSE_BYTES (10 * 1000 * 1000)

/* The session reading the snapshot (with what to select of it): the one that locked the table
 * ACCESS SHARE, as the writer's changes do not. */
#define SNAPSHOT_SESSION(what)                                                                     \
    "SELECT " what " FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "                    \
    "WHERE a.datname = current_database() AND l.relation = 't'::regclass "                         \
    "AND l.mode = 'AccessShareLock' AND l.granted "                                                \
    "AND a.pid <> pg_backend_pid()"

/* The snapshot's own connection fails in its middle: walnotify takes a new snapshot, and the
 * outcome is the table. */
START_TEST(test_snapshot_connection_lost)
{
    int rows = table_rows();
    itest_ctx ctx;
    itest_host host;
    itest_path conf, out;
    replica r;
    pid_t writer;
    char pause[2 * PATH_MAX];
    long long terminated;

    itest_begin(&ctx, "snaplost");
    make_table(&ctx, rows);
    /* Rows wide enough that what follows the pause (10 MB) is more than the sockets between
     * server and walnotify buffer: the COPY cannot end while walnotify pauses. A default that
     * needs no rewrite. */
    ck_assert_msg(rows > SNAPSHOT_BATCH + 1, "WN_SNAPSHOT_ROWS must pass %d here", SNAPSHOT_BATCH);
    itest_exec(ctx.conn, "ALTER TABLE t ADD COLUMN pad text NOT NULL DEFAULT repeat('x', %d)",
               AFTER_PAUSE_BYTES / (rows - SNAPSHOT_BATCH));
    /* Paused just past the first batch (10,000 events): the reading of the rows after it
     * fails once the first batch was committed, so the first snapshot's begin marker stays in
     * the jsonl file. */
    snprintf(pause, sizeof pause,
             ", { name = \"pause\"; path = \"%s\"; ops = [ \"snapshot\" ]; "
             "settings = { pause_at = %d; pause_ms = 1000; }; }",
             itest_root_file("build/tests/fixtures/snapfault.so").s, SNAPSHOT_BATCH + 1);
    conf = jsonl_config(&ctx, "lost.cfg", pause);
    out = itest_file(&ctx, "out.jsonl");
    writer = start_writer(&ctx, rows);
    itest_host_start(&ctx, &host, ITEST_ARGS("-c", conf.s));
    wait_for(host.err.s, "snapfault: pausing", 1, "the pause in the snapshot");
    /* The snapshot's reading session, the one holding the table's ACCESS SHARE lock, once it
     * is in the middle of the COPY: blocked writing rows the paused walnotify does not read. */
    itest_wait_query_at_least(ctx.conn, 1, SNAPSHOT_SESSION("count(*)") " AND a.state = 'active' "
                                           "AND a.wait_event = 'ClientWrite'");
    terminated = itest_query_int(ctx.conn, SNAPSHOT_SESSION("count(pg_terminate_backend(a.pid))"));
    ck_assert_int_eq(terminated, 1);
    wait_for(host.err.s, "initial snapshot taken at", 2, "a new snapshot");
    wait_for(out.s, "\"marker\":\"end\"", 1, "the snapshot's end marker");
    itest_sleep_ms(300);
    itest_writer_stop(writer);
    itest_host_stop(&host, SIGTERM);
    itest_assert_exit(&host, 0);
    itest_run_to_now(&ctx, conf.s);

    r = replay(out.s, rows, false);
    ck_assert_msg(r.snapshots == 2, "%zu snapshots, not a second one", r.snapshots);
    ck_assert_uint_eq(r.ends, 1);
    assert_replica_is_table(&ctx, &r, "after the lost connection");
    replica_free(&r);
    itest_end(&ctx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("snapshot_run");
    TCase *tc = itest_tcase(suite, "snapshot_run");

    tcase_add_test(tc, test_seam_with_writer);
    tcase_add_test(tc, test_kill9_in_snapshot);
    tcase_add_test(tc, test_standby_takes_over);
    tcase_add_test(tc, test_created_slot_and_changes_only_plugin);
    tcase_add_test(tc, test_rewind_in_snapshot);
    tcase_add_test(tc, test_snapshot_connection_lost);
    return run_suite(suite) == 0 ? 0 : 1;
}
