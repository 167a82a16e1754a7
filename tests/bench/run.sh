#!/usr/bin/env bash
# walnotify's benchmark (`make bench`): throughput, CPU, memory and latency side by side with
# pg_recvlogical (PostgreSQL's own client, no decoding) and the Node.js pg-logical-replication
# client, all reading the same WAL of a throwaway PostgreSQL.
#
# Workloads (each written once, then read by every contender to the same end LSN):
#   one_txn   BENCH_ROWS rows in one transaction                         (default 1,000,000)
#   txns      BENCH_ROWS rows in transactions of BENCH_TXN_ROWS rows      (default 10 -> 100,000)
#   single    BENCH_ROWS/10 single-row transactions                      (default 100,000)
#   mixed     BENCH_MIXED_ROWS rows (default 400,000), written at once by three sessions: half
#             in one transaction, a quarter each in transactions of 50 rows (concurrent
#             transactions, interleaved in the WAL)
# BENCH_WORKLOADS lists the workloads to run (default "one_txn txns single mixed").
#
# Transports: pg_recvlogical and walnotify read every workload over loopback TCP and over the
# server's Unix socket (pg_recvlogical_unix, walnotify_unix), each compared with pg_recvlogical on
# the same transport; BENCH_UNIX=0 leaves the Unix socket out.
# Every contender reads each workload BENCH_ROUNDS times (default 3), in interleaved turns whose
# order rotates per round, each from its own slot made before the writes; the table shows the
# median of the rounds. A warm-up workload (BENCH_ROWS/100 rows) is read once by each first.
#
# Latency: BENCH_LAT_RATE single-row transactions per second (default 2000) for BENCH_LAT_SECONDS
# (default 10), read at once by walnotify (tests/bench/latency_plugin.c) and by the Node client;
# p50/p95/p99/max of (arrival in the reader) - (the row's clock_timestamp()), and how far the
# acknowledged position trailed the written WAL.
#
# Webhook: BENCH_WEBHOOK_ROWS rows (default 100,000) in transactions of BENCH_TXN_ROWS rows, read
# by walnotify with the webhook plugin into a receiver that only counts (tests/bench/count_server.c),
# in transaction and in event mode, beside the same bodies sent to the same receiver by a plain
# libcurl loop (tests/bench/webhook_loop.c): the limit. BENCH_WEBHOOK=0 skips it;
# BENCH_WEBHOOK_ONLY=1 runs only it.
#
# Kafka: BENCH_KAFKA_ROWS rows (default 100,000, at most 400,000) in transactions of
# BENCH_TXN_ROWS rows, sent by walnotify with the kafka plugin into librdkafka's mock cluster
# (tests/kafka/mockkafka, three brokers on loopback, a topic of 24 partitions, 64 past 100,000
# rows) two ways: fed by the stream (a slot made before the writes, to --endpos), and fed by the
# initial snapshot of the same table (a fresh slot and state file, ops = ["snapshot"]: the rows
# read through COPY, stopped by SIGTERM once the state file records the snapshot finished). Each
# run is followed by a plain librdkafka producer loop (tests/bench/kafka_loop.c) sending the very
# messages of that run (keys, values, headers, read back from the cluster) with the same settings
# into the same topic: the limit. walnotify is timed from its first message's creation time to
# the line it logs once its flush saw every message confirmed ("dispatcher stopped", "initial
# snapshot ... finished"), the loop from its first message to its last delivery report. Each feed's
# own rate with nothing behind it is measured beside them: pg_recvlogical reading the same WAL (the
# walsender's decoding) and COPY TO STDOUT of the table through psql. The three turns rotate per
# round. BENCH_KAFKA=0 skips it; BENCH_KAFKA_ONLY=1 runs only it.
#
# The exec plugin: walnotify feeding the Python example sink (etc/examples/sqlite_sink.py, a SQLite
# database per run, fsynced) is a fourth contender, "exec_python" (BENCH_EXEC=0 skips it; it is
# skipped with a notice without python3): its rows/s are events per second through the example.
#
# Initial snapshot: a table of BENCH_SNAPSHOT_ROWS rows (default 1,000,000; a bigint key and four
# columns of common types), read by `COPY snap TO STDOUT` through psql into /dev/null (the limit),
# and by walnotify taking its initial snapshot (source.snapshot = "initial", a fresh state file,
# the jsonl plugin with ops = ["snapshot"] writing to /dev/null), stopped by SIGTERM once its state
# file records the snapshot finished (every plugin flushed the end marker); both over
# loopback TCP, in interleaved rounds. BENCH_SNAPSHOT=0 skips it; BENCH_SNAPSHOT_ONLY=1 runs only
# it (with BENCH_WEBHOOK_ONLY=1 too: both).
#
# Redis: the redis plugin beside redis-cli --pipe and pg_recvlogical (tests/bench/redis.sh says
# how). BENCH_REDIS=0 skips it; BENCH_REDIS_ONLY=1 runs only it.
# Metrics endpoint: BENCH_METRICS_ROWS rows (default BENCH_ROWS) in transactions of
# BENCH_TXN_ROWS rows, read by walnotify without metrics_listen ("walnotify") and with it
# ("walnotify_metrics", 127.0.0.1:BENCH_METRICS_PORT, default 19781, /metrics scraped every
# second by curl meanwhile), in interleaved rounds; the endpoint's counters may cost at most 3 %
# more CPU, which the report says. BENCH_METRICS=0 skips it; BENCH_METRICS_ONLY=1 runs only it
# (with the other *_ONLY=1 too: those parts).
# Acknowledgement (after the latency run): walnotify with source.flush "interval", "commit", and
# "commit" named in synchronous_standby_names, the jsonl plugin fsyncing a file, at the latency
# run's rate: walnotify's own acknowledgement lag (it logs it when it stops) and the application's
# commit times, beside pg_test_fsync's time for one fsync there.
# The postgres plugin beside a built-in subscription: tests/bench/pgsink.sh (its own server), run
# after the rest; BENCH_PGSINK=0 skips it (run the script itself to run only it).
#
# Other knobs: BENCH_NODE=0 skips the Node client; BENCH_LATENCY=0 skips the latency run;
# BENCH_FLUSH=commit runs the workloads' and the webhook's walnotify with source.flush = "commit";
# BENCH_FLUSH=both keeps "interval" for them and adds walnotify_commit (flush = "commit") to the
# workloads' interleaved rounds, so both modes meet the same server state in one run;
# BENCH_PROFILE=1 also runs walnotify under valgrind --tool=callgrind on the one_txn workload
# (build/bench/callgrind.out); BENCH_TIMEOUT (default 900) bounds every single run, in seconds.
# Raw numbers of every run: build/bench/results.tsv; logs: build/bench/logs/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
OUT=$ROOT/build/bench
HARNESS=$ROOT/tests/pg-harness.sh
PG_BIN=${WN_PG_BIN:-/usr/lib/postgresql/15/bin}
WALNOTIFY=$ROOT/build/walnotify
JSONL=$ROOT/build/plugins/jsonl.so
EXEC_SO=$ROOT/build/plugins/exec.so
SQLITE_SINK=$ROOT/etc/examples/sqlite_sink.py
LATENCY_SO=$OUT/latency.so
NODE_DIR=$OUT/node
NODE_SCRIPT=$ROOT/tests/bench/node/stream.js

ROWS=${BENCH_ROWS:-1000000}
ROUNDS=${BENCH_ROUNDS:-3}
TXN_ROWS=${BENCH_TXN_ROWS:-10}
SINGLE=${BENCH_SINGLE:-$((ROWS / 10))}
MIXED_ROWS=${BENCH_MIXED_ROWS:-400000}
WORKLOADS=${BENCH_WORKLOADS:-one_txn txns single mixed}
USE_UNIX=${BENCH_UNIX:-1}
WARMUP_ROWS=${BENCH_WARMUP_ROWS:-$((ROWS / 100 > 1000 ? ROWS / 100 : 1000))}
LAT_RATE=${BENCH_LAT_RATE:-2000}
LAT_SECONDS=${BENCH_LAT_SECONDS:-10}
RUN_TIMEOUT=${BENCH_TIMEOUT:-900}
USE_NODE=${BENCH_NODE:-1}
USE_LATENCY=${BENCH_LATENCY:-1}
FLUSH=${BENCH_FLUSH:-interval}
COMMIT_CONTENDER=0
[ "$FLUSH" = both ] && FLUSH=interval COMMIT_CONTENDER=1
USE_PROFILE=${BENCH_PROFILE:-0}
USE_WEBHOOK=${BENCH_WEBHOOK:-1}
WEBHOOK_ONLY=${BENCH_WEBHOOK_ONLY:-0}
WEBHOOK_ROWS=${BENCH_WEBHOOK_ROWS:-100000}
WEBHOOK_SO=$ROOT/build/plugins/webhook.so
COUNT_SERVER=$OUT/count_server
WEBHOOK_LOOP=$OUT/webhook_loop
USE_KAFKA=${BENCH_KAFKA:-1}
KAFKA_ONLY=${BENCH_KAFKA_ONLY:-0}
KAFKA_ROWS=${BENCH_KAFKA_ROWS:-100000}
KAFKA_PARTITIONS=24
KAFKA_ROWS_MAX=400000
KAFKA_SO=$ROOT/build/plugins/kafka.so
MOCKKAFKA=$OUT/mockkafka
KAFKA_LOOP=$OUT/kafka_loop
USE_EXEC=${BENCH_EXEC:-1}
USE_SNAPSHOT=${BENCH_SNAPSHOT:-1}
SNAPSHOT_ONLY=${BENCH_SNAPSHOT_ONLY:-0}
SNAPSHOT_ROWS=${BENCH_SNAPSHOT_ROWS:-1000000}
SNAP_PUB=snap_pub
USE_METRICS=${BENCH_METRICS:-1}
METRICS_ONLY=${BENCH_METRICS_ONLY:-0}
METRICS_ROWS=${BENCH_METRICS_ROWS:-$ROWS}
METRICS_PORT=${BENCH_METRICS_PORT:-19781}
METRICS_LIMIT_PCT=3
TIME_BIN=/usr/bin/time
USE_REDIS=${BENCH_REDIS:-1}
REDIS_ONLY=${BENCH_REDIS_ONLY:-0}
DO_REDIS=1

PGDIR=""
DO_STREAM=1
DO_WEBHOOK=1
DO_KAFKA=1
DO_SNAPSHOT=1
DO_METRICS=1
BG_PIDS=()
CONTENDERS=()
LAT_ROWS=()
RESULTS=$OUT/results.tsv
LOGS=$OUT/logs
PUB=bench_pub

die() {
    echo "bench: $*" >&2
    exit 1
}

note() {
    echo "bench: $*" >&2
}

# Stops the background processes this script started (readers run under GNU time: their own
# process gets the signal first, so that none is left behind).
cleanup_bg() {
    local pid child
    for pid in "${BG_PIDS[@]}"; do
        for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
            kill -TERM "$child" 2>/dev/null || true
        done
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    BG_PIDS=()
}

cleanup() {
    cleanup_bg
    if [ -n "$PGDIR" ]; then
        "$HARNESS" stop "$PGDIR" || note "could not stop the server in $PGDIR"
        PGDIR=""
    fi
}

is_count() {
    [[ $1 =~ ^[1-9][0-9]*$ ]]
}

check_settings() {
    local v
    for v in ROWS ROUNDS TXN_ROWS SINGLE MIXED_ROWS WARMUP_ROWS LAT_RATE LAT_SECONDS RUN_TIMEOUT \
        WEBHOOK_ROWS SNAPSHOT_ROWS METRICS_ROWS METRICS_PORT KAFKA_ROWS; do
        is_count "${!v}" || die "BENCH_$v must be a positive integer, not '${!v}'"
    done
    [ $((ROWS % TXN_ROWS)) -eq 0 ] || die "BENCH_ROWS ($ROWS) must be a multiple of BENCH_TXN_ROWS ($TXN_ROWS)"
    [ $((MIXED_ROWS % 200)) -eq 0 ] || die "BENCH_MIXED_ROWS ($MIXED_ROWS) must be a multiple of 200"
    for work in $WORKLOADS; do
        case "$work" in
        one_txn | txns | single | mixed) ;;
        *) die "BENCH_WORKLOADS: unknown workload '$work' (known: one_txn txns single mixed)" ;;
        esac
    done
    [ $((METRICS_ROWS % TXN_ROWS)) -eq 0 ] ||
        die "BENCH_METRICS_ROWS ($METRICS_ROWS) must be a multiple of BENCH_TXN_ROWS ($TXN_ROWS)"
    [ $((WEBHOOK_ROWS % TXN_ROWS)) -eq 0 ] ||
        die "BENCH_WEBHOOK_ROWS ($WEBHOOK_ROWS) must be a multiple of BENCH_TXN_ROWS ($TXN_ROWS)"
    [ $((KAFKA_ROWS % TXN_ROWS)) -eq 0 ] ||
        die "BENCH_KAFKA_ROWS ($KAFKA_ROWS) must be a multiple of BENCH_TXN_ROWS ($TXN_ROWS)"
    [ "$KAFKA_ROWS" -le "$KAFKA_ROWS_MAX" ] ||
        die "BENCH_KAFKA_ROWS ($KAFKA_ROWS) is above $KAFKA_ROWS_MAX: the mock cluster would drop messages"
    # The mock cluster keeps only the last 5 MB of each partition (some 600 bytes a message here):
    # past 100,000 rows the topic has more partitions, so that a run's messages stay whole while
    # the cluster's reader of them falls behind.
    [ "$KAFKA_ROWS" -le 100000 ] || KAFKA_PARTITIONS=64
    [ -x "$WALNOTIFY" ] || die "$WALNOTIFY is missing: run make all"
    [ -f "$JSONL" ] || die "$JSONL is missing: run make all"
    [ -x "$PG_BIN/pg_recvlogical" ] || die "$PG_BIN/pg_recvlogical is missing (install postgresql-client-15)"
    [ -x "$PG_BIN/pgbench" ] || die "$PG_BIN/pgbench is missing (install postgresql-client-15)"
}

# GNU time measures wall, CPU and peak RSS of each run; the shell builtin cannot.
ensure_time() {
    [ -x "$TIME_BIN" ] && return 0
    [ "$(id -u)" -eq 0 ] || die "$TIME_BIN is missing: sudo apt-get install -y time"
    note "installing the time package"
    DEBIAN_FRONTEND=noninteractive apt-get install -y time >&2 ||
        die "apt-get install time failed"
}

build_latency_plugin() {
    mkdir -p "$OUT"
    ${CC:-cc} -O2 -g -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -shared \
        -I"$ROOT/include" -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
        -Wmissing-prototypes -Wvla -Wno-missing-field-initializers \
        -o "$LATENCY_SO" "$ROOT/tests/bench/latency_plugin.c" ||
        die "could not build $LATENCY_SO from tests/bench/latency_plugin.c"
}

# Installs pg-logical-replication and pg into build/bench/node; on any failure the Node client
# is left out with a notice.
setup_node() {
    if [ "$USE_NODE" != 1 ]; then
        note "BENCH_NODE=$USE_NODE: the Node.js client is skipped"
        return 1
    fi
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        note "NOTICE: node or npm is missing: the Node.js client (pg-logical-replication) is skipped"
        return 1
    fi
    mkdir -p "$NODE_DIR"
    if [ -d "$NODE_DIR/node_modules/pg-logical-replication" ] &&
        cmp -s "$ROOT/tests/bench/node/package.json" "$NODE_DIR/package.json"; then
        return 0
    fi
    cp "$ROOT/tests/bench/node/package.json" "$NODE_DIR/package.json"
    note "installing pg-logical-replication and pg with npm into $NODE_DIR"
    if ! (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error >"$LOGS/npm.log" 2>&1); then
        note "NOTICE: npm install failed (see $LOGS/npm.log): the Node.js client is skipped"
        rm -rf "$NODE_DIR/node_modules"
        return 1
    fi
}

sql() {
    "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"
}

start_server() {
    local port
    PGDIR=$(mktemp -d /tmp/walnotify-bench.XXXXXX)
    "$HARNESS" start "$PGDIR" >/dev/null
    # shellcheck disable=SC1091
    . "$PGDIR/env"
    port=$PGPORT
    # Loopback TCP, like a client on the same machine, and room for a big transaction in memory.
    sql -c "ALTER SYSTEM SET listen_addresses = '127.0.0.1'" \
        -c "ALTER SYSTEM SET max_wal_size = '8GB'" \
        -c "ALTER SYSTEM SET checkpoint_timeout = '30min'" \
        -c "ALTER SYSTEM SET synchronous_commit = on" \
        -c "ALTER SYSTEM SET fsync = off"
    if ! sql -c "ALTER SYSTEM SET logical_decoding_work_mem = '2GB'" 2>/dev/null; then
        note "logical_decoding_work_mem = 2GB refused; using 1GB"
        sql -c "ALTER SYSTEM SET logical_decoding_work_mem = '1GB'"
    fi
    "$HARNESS" restart "$PGDIR" fast
    export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
    CONNINFO="host=127.0.0.1 port=$port dbname=postgres user=postgres"
    CONNINFO_UNIX="host=$PGDIR port=$port dbname=postgres user=postgres"
    sql -c "SELECT 1" >/dev/null || die "cannot reach the server on 127.0.0.1:$port"
}

setup_schema() {
    sql <<'SQL'
CREATE TABLE bench (id bigint NOT NULL, qty integer NOT NULL, name text NOT NULL,
                    amount numeric(12,2) NOT NULL, created timestamptz NOT NULL);
CREATE PUBLICATION bench_pub FOR TABLE bench WITH (publish = 'insert');
CREATE TABLE lat (id bigint NOT NULL, ts_us bigint NOT NULL, qty integer NOT NULL,
                  name text NOT NULL, created timestamptz NOT NULL);
CREATE PUBLICATION lat_pub FOR TABLE lat WITH (publish = 'insert');
SQL
}

make_slot() {
    sql -c "SELECT 1 FROM pg_create_logical_replication_slot('$1', 'pgoutput')" >/dev/null
}

drop_slots_like() {
    sql -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
            WHERE slot_name LIKE '$1%' AND NOT active" >/dev/null
}

# The same 5-column row for every workload: ids FROM..TO.
rows_sql() {
    echo "INSERT INTO bench SELECT g, (g % 1000)::int, 'customer ' || md5(g::text),
          (g % 100000) / 100.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
          FROM generate_series($1, $2) g;"
}

# The mixed workload: half of MIXED_ROWS in one transaction while two other sessions write a
# quarter each in transactions of 50 rows, all at once.
write_mixed() {
    local half=$((MIXED_ROWS / 2)) quarter=$((MIXED_ROWS / 4)) w start pids=() rc=0
    sql -c "$(rows_sql 1 "$half")" &
    pids+=($!)
    for w in 0 1; do
        start=$((half + w * quarter))
        sql -c "DO \$\$ BEGIN
                  FOR i IN 0 .. $((quarter / 50 - 1)) LOOP
                    $(rows_sql "$start + i * 50 + 1" "$start + i * 50 + 50")
                    COMMIT;
                  END LOOP;
                END \$\$;" &
        pids+=($!)
    done
    for w in "${pids[@]}"; do
        wait "$w" || rc=$?
    done
    [ "$rc" -eq 0 ] || die "writing the mixed workload failed"
}

# Writes workload $1 (one_txn | txns | single | mixed | warmup).
write_workload() {
    case "$1" in
    warmup) sql -c "$(rows_sql 1 "$WARMUP_ROWS")" ;;
    one_txn) sql -c "$(rows_sql 1 "$ROWS")" ;;
    txns)
        sql -c "DO \$\$ BEGIN
                  FOR i IN 0 .. $((ROWS / TXN_ROWS - 1)) LOOP
                    $(rows_sql "i * $TXN_ROWS + 1" "i * $TXN_ROWS + $TXN_ROWS")
                    COMMIT;
                  END LOOP;
                END \$\$;" ;;
    single)
        sql -c "DO \$\$ BEGIN
                  FOR i IN 1 .. $SINGLE LOOP
                    $(rows_sql i i)
                    COMMIT;
                  END LOOP;
                END \$\$;" ;;
    mixed) write_mixed ;;
    metrics)
        sql -c "DO \$\$ BEGIN
                  FOR i IN 0 .. $((METRICS_ROWS / TXN_ROWS - 1)) LOOP
                    $(rows_sql "i * $TXN_ROWS + 1" "i * $TXN_ROWS + $TXN_ROWS")
                    COMMIT;
                  END LOOP;
                END \$\$;" ;;
    esac
}

workload_rows() {
    case "$1" in
    warmup) echo "$WARMUP_ROWS" ;;
    one_txn | txns) echo "$ROWS" ;;
    single) echo "$SINGLE" ;;
    mixed) echo "$MIXED_ROWS" ;;
    snapshot) echo "$SNAPSHOT_ROWS" ;;
    metrics) echo "$METRICS_ROWS" ;;
    esac
}

workload_title() {
    case "$1" in
    one_txn) echo "$ROWS rows in one transaction" ;;
    txns) echo "$ROWS rows in $((ROWS / TXN_ROWS)) transactions of $TXN_ROWS rows" ;;
    single) echo "$SINGLE single-row transactions" ;;
    mixed) echo "$MIXED_ROWS rows, half in one transaction and half in transactions of 50 rows" \
        "from two sessions, written at once" ;;
    esac
}

walnotify_conf() {
    local slot=$1 conninfo=${2:-$CONNINFO} conf=$OUT/conf/$1.conf listen="" flush=${4:-$FLUSH}
    [ -n "${3:-}" ] && listen="metrics_listen = \"$3\";"
    mkdir -p "$OUT/conf"
    # info: the last line counts the events, which delivered_all checks.
    cat >"$conf" <<CONF
log_level = "info"; $listen
source: { conninfo = "$conninfo"; tables = [ "public.bench" ]; slot = "$slot";
          publication = "$PUB"; flush = "$flush"; };
plugins = ( { name = "jsonl"; path = "$JSONL";
              settings = { path = "/dev/null"; fsync = false; }; } );
CONF
    echo "$conf"
}

# walnotify with the exec plugin running the Python example into a fresh SQLite database.
exec_conf() {
    local slot=$1 conf=$OUT/conf/$1.conf
    mkdir -p "$OUT/conf" "$OUT/exec"
    rm -f "$OUT/exec/"*.db "$OUT/exec/"*.db-wal "$OUT/exec/"*.db-shm
    cat >"$conf" <<CONF
log_level = "info";
source: { conninfo = "$CONNINFO"; tables = [ "public.bench" ]; slot = "$slot";
          publication = "$PUB"; };
plugins = ( { name = "sqlite"; path = "$EXEC_SO";
              settings = { command = [ "python3", "$SQLITE_SINK", "$OUT/exec/$slot.db" ];
                           ack_timeout_ms = 600000; }; } );
CONF
    echo "$conf"
}

setup_exec() {
    [ "$USE_EXEC" = 1 ] || return 1
    if ! command -v python3 >/dev/null 2>&1 || [ ! -f "$EXEC_SO" ]; then
        note "NOTICE: python3 or $EXEC_SO is missing: the exec plugin is skipped"
        return 1
    fi
}

# The command line of contender $1 reading slot $2 up to LSN $3.
contender_cmd() {
    local who=$1 slot=$2 endpos=$3
    case "$who" in
    pg_recvlogical)
        CMD=("$PG_BIN/pg_recvlogical" --start -S "$slot" -d "$CONNINFO" -f /dev/null
            -o proto_version=1 -o "publication_names=$PUB" "--endpos=$endpos" --no-loop) ;;
    pg_recvlogical_unix)
        CMD=("$PG_BIN/pg_recvlogical" --start -S "$slot" -d "$CONNINFO_UNIX" -f /dev/null
            -o proto_version=1 -o "publication_names=$PUB" "--endpos=$endpos" --no-loop) ;;
    walnotify) CMD=("$WALNOTIFY" -c "$(walnotify_conf "$slot")" --endpos "$endpos") ;;
    walnotify_commit)
        CMD=("$WALNOTIFY" -c "$(walnotify_conf "$slot" "$CONNINFO" "" commit)" --endpos "$endpos") ;;
    walnotify_unix)
        CMD=("$WALNOTIFY" -c "$(walnotify_conf "$slot" "$CONNINFO_UNIX")" --endpos "$endpos") ;;
    walnotify_metrics)
        CMD=("$WALNOTIFY" -c "$(walnotify_conf "$slot" "$CONNINFO" "127.0.0.1:$METRICS_PORT")"
            --endpos "$endpos") ;;
    exec_python) CMD=("$WALNOTIFY" -c "$(exec_conf "$slot")" --endpos "$endpos") ;;
    psql_copy) CMD=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$CONNINFO" -o /dev/null
        -c "COPY snap TO STDOUT") ;;
    # The snapshot stands past any --endpos known before the run (its consistent point is taken
    # at the start), so the run is stopped, by SIGTERM, once the state file records the snapshot
    # finished: every plugin flushed its end marker.
    walnotify_snap) CMD=(bash -c "$SNAPSHOT_RUNNER" snapshot_runner "$WALNOTIFY"
        "$(snapshot_conf "$slot")" "$OUT/snapshot/$slot.state") ;;
    node) CMD=(env "NODE_PATH=$NODE_DIR/node_modules" node "$NODE_SCRIPT" --slot "$slot"
        --publication "$PUB" --endpos "$endpos") ;;
    esac
}

# A fast run proves nothing unless every row arrived: walnotify's last log line counts the
# events it delivered. (pg_recvlogical and the Node client are judged by the slot's position.)
delivered_all() {
    local who=$1 log=$2 expected=$3 got last=1
    case "$who" in
    walnotify | walnotify_commit | walnotify_unix | walnotify_metrics | exec_python) ;;
    # The snapshot's begin and end markers are events too; its count and the stream's, should
    # they be logged apart, add up.
    walnotify_snap) expected=$((expected + 2)) last=0 ;;
    *) return 0 ;;
    esac
    got=$(sed -n 's/.*dispatcher stopped; acknowledged position [^,]*, \([0-9]*\) events.*/\1/p' "$log" |
        awk -v last="$last" '{ n = last ? $1 : n + $1 } END { if (NR) print n }')
    [ "$got" = "$expected" ] && return 0
    note "walnotify delivered ${got:-no count of} events, not $expected; log: $log"
    return 1
}

# The machine's steal time so far, in 1/100 s summed over its CPUs: the time a hypervisor kept
# them from running what was ready to run (0 on bare metal).
steal_ticks() {
    awk '$1 == "cpu" { print ($9 == "" ? 0 : $9); exit }' /proc/stat 2>/dev/null || echo 0
}

# Runs contender $2 on workload $1, round $3, up to LSN $4; appends a line to results.tsv.
measure() {
    local work=$1 who=$2 round=$3 endpos=$4 slot=bench_${1}_${2}_${3} tfile rc=0 confirmed
    local steal_before steal
    tfile=$OUT/time.$$
    contender_cmd "$who" "$slot" "$endpos"
    steal_before=$(steal_ticks)
    timeout -k 10 "$RUN_TIMEOUT" "$TIME_BIN" -f "%e %U %S %M" -o "$tfile" "${CMD[@]}" \
        >"$LOGS/$slot.log" 2>&1 || rc=$?
    steal=$(awk -v a="$steal_before" -v b="$(steal_ticks)" 'BEGIN { printf "%.2f", (b - a) / 100 }')
    if [ "$rc" -ne 0 ]; then
        note "$who on $work (round $round) exited $rc; log: $LOGS/$slot.log"
        tail -n 5 "$LOGS/$slot.log" >&2 || true
    elif ! delivered_all "$who" "$LOGS/$slot.log" "$(workload_rows "$work")"; then
        rc=99
    fi
    confirmed=$(sql -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$slot'")
    if [ "$work" = warmup ]; then
        rm -f "$tfile"
        return 0
    fi
    # GNU time writes "Command exited with non-zero status N" first when the command failed.
    read -r wall user sys rss < <(tail -n 1 "$tfile")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$work" "$who" "$round" "$wall" "$user" \
        "$sys" "$rss" "$rc" "$confirmed" "$steal" >>"$RESULTS"
    awk -v r="$round" -v who="$who" -v wall="$wall" -v u="$user" -v s="$sys" \
        -v rss="$rss" -v rc="$rc" -v steal="$steal" 'BEGIN {
        printf "  round %s  %-15s wall %7.2f s  cpu %7.2f s  rss %7.1f MiB  steal %5.2f s%s\n", r,
            who, wall, u + s, rss / 1024, steal, rc == 0 ? "" : "  FAILED (exit " rc ")" }' >&2
    rm -f "$tfile"
}

# walnotify under callgrind on the one_txn workload, from its own slot.
profile_walnotify() {
    local endpos=$1 slot=bench_one_txn_profile rc=0
    command -v valgrind >/dev/null 2>&1 || {
        note "NOTICE: valgrind is missing: no profile"
        return 0
    }
    note "profiling walnotify under callgrind (slow)"
    timeout -k 10 "$((RUN_TIMEOUT * 4))" valgrind --tool=callgrind --separate-threads=no \
        --callgrind-out-file="$OUT/callgrind.out" \
        "$WALNOTIFY" -c "$(walnotify_conf "$slot")" --endpos "$endpos" \
        >"$LOGS/$slot.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || note "walnotify under callgrind exited $rc; log: $LOGS/$slot.log"
    note "profile: $OUT/callgrind.out (callgrind_annotate --inclusive=yes $OUT/callgrind.out)"
}

# Creates the slots, writes workload $1 once, then reads it in rounds of interleaved turns.
run_workload() {
    local work=$1 rounds=$2 r i n endpos who
    n=${#CONTENDERS[@]}
    for ((r = 1; r <= rounds; r++)); do
        for who in "${CONTENDERS[@]}"; do
            make_slot "bench_${work}_${who}_${r}"
        done
    done
    if [ "$work" = one_txn ] && [ "$USE_PROFILE" = 1 ]; then
        make_slot bench_one_txn_profile
    fi
    note "writing workload $work ($(workload_rows "$work") rows)"
    write_workload "$work"
    endpos=$(sql -c "SELECT pg_current_wal_lsn()")
    note "reading workload $work up to $endpos, $rounds round(s)"
    for ((r = 1; r <= rounds; r++)); do
        for ((i = 0; i < n; i++)); do
            who=${CONTENDERS[$(((i + r - 1) % n))]}
            measure "$work" "$who" "$r" "$endpos"
        done
    done
    if [ "$work" = one_txn ] && [ "$USE_PROFILE" = 1 ]; then
        profile_walnotify "$endpos"
    fi
    drop_slots_like "bench_${work}_"
    sql -c "TRUNCATE bench" -c "CHECKPOINT"
}

median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Median of field $3 (an awk expression over wall user sys rss steal) for workload $1, contender $2,
# over the rounds that succeeded.
stat_of() {
    awk -F'\t' -v w="$1" -v c="$2" '$1 == w && $2 == c && $8 == 0 {
        wall = $4; user = $5; sys = $6; rss = $7; steal = $10; print '"$3"' }' "$RESULTS" | median
}

print_table() {
    local work=$1 rows who wall cpu rss steal base_wall base_cpu ok baseline
    rows=$(workload_rows "$work")
    echo
    echo "$(workload_title "$work") (median of $ROUNDS rounds)"
    printf '| %-19s | %10s | %7s | %7s | %9s | %12s | %11s | %7s |\n' client rows/s "wall s" \
        "CPU s" "peak RSS" "wall/recvlog" "CPU/recvlog" "steal s"
    printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' --------------------- -----------: --------: --------: \
        ----------: -------------: ------------: --------:
    for who in "${CONTENDERS[@]}"; do
        ok=$(awk -F'\t' -v w="$work" -v c="$who" '$1 == w && $2 == c && $8 == 0' "$RESULTS" | wc -l)
        if [ "$ok" -eq 0 ]; then
            printf '| %-19s | %10s | %7s | %7s | %9s | %12s | %11s | %7s |\n' "$who" failed - - - - \
                - -
            continue
        fi
        baseline=pg_recvlogical
        [ "${who%_unix}" != "$who" ] && baseline=pg_recvlogical_unix
        base_wall=$(stat_of "$work" "$baseline" wall)
        base_cpu=$(stat_of "$work" "$baseline" "user + sys")
        wall=$(stat_of "$work" "$who" wall)
        cpu=$(stat_of "$work" "$who" "user + sys")
        rss=$(stat_of "$work" "$who" rss)
        steal=$(stat_of "$work" "$who" steal)
        awk -v who="$who" -v rows="$rows" -v wall="$wall" -v cpu="$cpu" -v rss="$rss" \
            -v bw="$base_wall" -v bc="$base_cpu" -v ok="$ok" -v rounds="$ROUNDS" \
            -v steal="$steal" 'BEGIN {
            name = who; if (ok < rounds) name = who " (" ok "/" rounds ")"
            rate = wall > 0 ? rows / wall : 0
            rw = (bw + 0 > 0) ? sprintf("%.2f", wall / bw) : "-"
            rc = (bc + 0 > 0) ? sprintf("%.2f", cpu / bc) : "-"
            printf "| %-19s | %10.0f | %7.2f | %7.2f | %5.1f MiB | %12s | %11s | %7.2f |\n",
                name, rate, wall, cpu, rss / 1024, rw, rc, steal }'
    done
}

# ---- latency ------------------------------------------------------------------------------------

latency_conf() {
    local conf=$OUT/conf/lat_walnotify.conf
    mkdir -p "$OUT/conf"
    cat >"$conf" <<CONF
log_level = "warning";
source: { conninfo = "$CONNINFO"; tables = [ "public.lat" ]; slot = "lat_walnotify";
          publication = "lat_pub"; status_interval_ms = 1000; };
plugins = ( { name = "latency"; path = "$LATENCY_SO";
              settings = { column = "ts_us"; output = "$OUT/latency.walnotify"; }; } );
CONF
    echo "$conf"
}

# Stops a reader started under GNU time ($1 is time's pid): the signal goes to the reader itself,
# since time would die of it and leave the reader running.
stop_measured() {
    local pid=$1 child rc=0
    for child in $(ps -o pid= --ppid "$pid"); do
        kill -TERM "$child" 2>/dev/null || true
    done
    wait "$pid" || rc=$?
    return "$rc"
}

wait_active() {
    local slot=$1 i n
    for i in $(seq 1 300); do
        n=$(sql -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot' AND active")
        [ "$n" -ge 1 ] && return 0
        : "$i"
        sleep 0.1
    done
    die "the latency reader of $slot did not start streaming in 30 s (log: $LOGS/$slot.log)"
}

# One sample every 100 ms: time, written WAL, and slot $1's acknowledged position.
start_ack_sampler() {
    printf '%s\n%s\n' "SELECT extract(epoch FROM clock_timestamp()), pg_current_wal_lsn() - '0/0',
            coalesce((SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots
                      WHERE slot_name = '$1'), 0)" '\watch 0.1' |
        "$PG_BIN/psql" -X -q -At -F ' ' >"$OUT/acklag.$1" 2>"$LOGS/acklag.$1.log" &
    BG_PIDS+=($!)
}

# The longest time, in ms, between a WAL position being written and the slot's acknowledged
# position covering it, over the samples of file $3 taken in [$1, $2] (epoch seconds).
ack_lag_ms() {
    awk -v from="$1" -v to="$2" '
        NF >= 3 { t[n] = $1; cur[n] = $2; ack[n] = $3; n++ }
        END {
            if (n == 0) { printf "-"; exit }
            worst = 0; j = 0
            for (i = 0; i < n; i++) {
                if (t[i] < from || t[i] > to) continue
                # the latest sample whose written position the acknowledgement covers
                while (j + 1 <= i && cur[j + 1] <= ack[i]) j++
                lag = (cur[j] > ack[i]) ? t[i] - t[0] : t[i] - t[j]
                if (lag > worst) worst = lag
            }
            printf "%.0f ms", worst * 1000 }' "$3"
}

lat_field() {
    awk -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null
}

# One turn: reader $1 (walnotify | node) alone on its own slot while pgbench writes.
latency_turn() {
    local who=$1 slot=lat_$1 pid t0 t1 rows lag cpu
    make_slot "$slot"
    rm -f "$OUT/latency.$who" "$OUT/acklag.$slot"
    if [ "$who" = walnotify ]; then
        CMD=("$WALNOTIFY" -c "$(latency_conf)")
    else
        CMD=(env "NODE_PATH=$NODE_DIR/node_modules" node "$NODE_SCRIPT" --slot "$slot"
            --publication lat_pub --latency-column ts_us --latency-out "$OUT/latency.$who")
    fi
    "$TIME_BIN" -f "%e %U %S %M" -o "$OUT/time.$slot" "${CMD[@]}" >"$LOGS/$slot.log" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    wait_active "$slot"
    start_ack_sampler "$slot"
    sleep 1
    note "latency ($who): $LAT_RATE single-row transactions/s for $LAT_SECONDS s"
    t0=$(date +%s.%N)
    "$PG_BIN/pgbench" -n -f "$OUT/latency.pgbench" -R "$LAT_RATE" -T "$LAT_SECONDS" -c 2 -j 2 \
        >"$LOGS/$slot.pgbench.log" 2>&1 || die "pgbench failed (log: $LOGS/$slot.pgbench.log)"
    t1=$(date +%s.%N)
    sleep 3 # more than two status intervals: the last acknowledgement comes in
    stop_measured "$pid" || note "$who (latency) failed; log: $LOGS/$slot.log"
    cleanup_bg
    rows=$(sql -c "SELECT count(*) FROM lat")
    lag=$(ack_lag_ms "$t0" "$t1" "$OUT/acklag.$slot")
    cpu=$(awk '{ printf "%.2f s", $2 + $3 }' "$OUT/time.$slot" 2>/dev/null | tail -n 1)
    sql -c "SELECT pg_drop_replication_slot('$slot')" -c "TRUNCATE lat" >/dev/null
    LAT_ROWS+=("$(latency_row "$who" "$OUT/latency.$who" "$rows" "$lag" "$cpu" \
        "$(sed -n 's/^rate limit schedule lag: avg \([0-9.]*\).*/\1/p' "$LOGS/$slot.pgbench.log")")")
}

latency_row() {
    local who=$1 file=$2 expected=$3 lag=$4 cpu=$5 sched=$6
    if [ ! -s "$file" ]; then
        printf '| %-16s | %8s | %8s | %8s | %8s | %11s | %11s | %8s |' "$who" - - - - "no report" \
            "$lag" "$cpu"
        return
    fi
    awk -v who="$who" -v c="$(lat_field "$file" count)" -v e="$expected" \
        -v p50="$(lat_field "$file" p50_us)" -v p95="$(lat_field "$file" p95_us)" \
        -v p99="$(lat_field "$file" p99_us)" -v mx="$(lat_field "$file" max_us)" -v lag="$lag" \
        -v cpu="$cpu" -v sched="$sched" 'BEGIN {
        printf "| %-16s | %8.3f | %8.3f | %8.3f | %8.3f | %11s | %11s | %8s | %s ms |",
            who, p50 / 1000, p95 / 1000, p99 / 1000, mx / 1000, c "/" e, lag, cpu, sched }'
}

run_latency() {
    local who row
    LAT_ROWS=()
    cat >"$OUT/latency.pgbench" <<'SQL'
\set id random(1, 1000000000)
INSERT INTO lat VALUES (:id, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
                        :id % 1000, 'latency probe', now());
SQL
    for who in walnotify node; do
        [ "$who" = node ] && [[ " ${CONTENDERS[*]} " != *" node "* ]] && continue
        latency_turn "$who"
    done
    echo
    echo "Latency: $LAT_RATE single-row transactions/s for $LAT_SECONDS s over loopback TCP" \
        "(synchronous_commit=on, fsync=off), each reader alone; ms from the row's clock_timestamp()" \
        "to the reader"
    printf '| %-16s | %8s | %8s | %8s | %8s | %11s | %11s | %8s | %s |\n' client p50 p95 p99 max \
        rows "max ack lag" CPU "writer lag"
    printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ------------------ ---------: ---------: ---------: \
        ---------: ------------: ------------: ---------: -----------:
    for row in "${LAT_ROWS[@]}"; do
        echo "$row"
    done
    echo "(max ack lag: the longest a written WAL position waited for the slot's acknowledged"
    echo " position to cover it, sampled every 100 ms, status interval 1000 ms; writer lag: pgbench's"
    echo " average schedule lag, a sign of an overloaded machine when above a millisecond)"
}

# ---- acknowledgement lag ---------------------------------------------------------------------

# One fsync on build/bench's file system as pg_test_fsync times it (fdatasync after one 8 kB
# write), in ms.
fsync_ms() {
    "$PG_BIN/pg_test_fsync" -s 2 -f "$OUT/fsync.test" 2>/dev/null |
        awk '/one 8kB write/ { one = 1 }
             one && $1 == "fdatasync" { printf "%.3f", $(NF - 1) / 1000; exit }'
    rm -f "$OUT/fsync.test"
}

ack_conf() {
    local mode=$1 slot=$2 conf=$OUT/conf/$2.conf
    mkdir -p "$OUT/conf"
    cat >"$conf" <<CONF
log_level = "info";
source: { conninfo = "$CONNINFO"; tables = [ "public.lat" ]; slot = "$slot";
          publication = "lat_pub"; status_interval_ms = 1000; flush = "$mode"; };
plugins = ( { name = "out"; path = "$JSONL";
              settings = { path = "$OUT/ack.jsonl"; fsync = true; }; } );
CONF
    echo "$conf"
}

# p50 and p99, in ms, of the transaction latencies (µs, third column) of pgbench's logs $1*.
pgbench_commit_ms() {
    cat "$1"* 2>/dev/null | awk '{ print $3 }' | sort -n |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) { printf "- | -"; exit }
            a = int(NR * 0.5); b = int(NR * 0.99); if (a < 1) a = 1; if (b < 1) b = 1
            printf "%.2f | %.2f", v[a] / 1000,
                v[b] / 1000 }'
}

# One turn: walnotify with flush $1 (interval | commit | sync: commit, and its slot named in
# synchronous_standby_names), the jsonl plugin fsyncing a file, while pgbench writes LAT_RATE
# single-row transactions per second. Prints a table row.
ack_turn() {
    local mode=$1 flush=commit slot=ack_$1 pid lag commit='- | -' clients=2
    [ "$mode" = interval ] && flush=interval
    # A synchronous commit waits for walnotify: the rate needs more sessions in flight.
    [ "$mode" = sync ] && clients=16
    make_slot "$slot"
    rm -f "$OUT/ack.jsonl" "$OUT/pgbench_$slot".*
    "$WALNOTIFY" -c "$(ack_conf "$flush" "$slot")" >"$LOGS/$slot.log" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    wait_active "$slot"
    if [ "$mode" = sync ]; then
        sql -c "ALTER SYSTEM SET synchronous_standby_names = '$slot'" -c "SELECT pg_reload_conf()" \
            >/dev/null
        sleep 1
    fi
    note "acknowledgement ($mode): $LAT_RATE single-row transactions/s for $LAT_SECONDS s"
    "$PG_BIN/pgbench" -n -f "$OUT/latency.pgbench" -R "$LAT_RATE" -T "$LAT_SECONDS" -c "$clients" -j 2 \
        -l --log-prefix="$OUT/pgbench_$slot" >"$LOGS/$slot.pgbench.log" 2>&1 ||
        note "pgbench failed (log: $LOGS/$slot.pgbench.log)"
    [ "$mode" = sync ] && commit=$(pgbench_commit_ms "$OUT/pgbench_$slot")
    sql -c "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()" >/dev/null
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || note "walnotify ($mode) failed; log: $LOGS/$slot.log"
    cleanup_bg
    lag=$(sed -n 's/.*acknowledgement lag over \([0-9]*\) transactions: p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms, max \([0-9.]*\) ms.*/\1 | \2 | \3 | \4/p' \
        "$LOGS/$slot.log" | tail -n 1)
    sql -c "SELECT pg_drop_replication_slot('$slot')" -c "TRUNCATE lat" >/dev/null
    rm -f "$OUT/pgbench_$slot".*
    printf '| %-9s | %s | %s |\n' "$mode" "${lag:-- | - | - | -}" "$commit"
}

run_acklag() {
    local fsync mode
    fsync=$(fsync_ms)
    echo
    echo "Acknowledgement: $LAT_RATE single-row transactions/s for $LAT_SECONDS s, the jsonl plugin" \
        "fsyncing a file in build/bench (one fsync there: ${fsync:-?} ms, pg_test_fsync);" \
        "lag = walnotify's own time from a transaction's Commit arriving to the status update" \
        "acknowledging it, in ms; commit = the application's commit time (pgbench), in ms"
    printf '| %-9s | %s |\n' flush "transactions | lag p50 | lag p99 | lag max | commit p50 | commit p99"
    printf '|%s|\n' "-----------|---:|---:|---:|---:|---:|---:"
    for mode in interval commit sync; do
        ack_turn "$mode"
    done
}

# ---- webhook -----------------------------------------------------------------------------------

build_webhook_tools() {
    local flags=(-O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
        -Wmissing-prototypes -Wvla)
    [ -f "$WEBHOOK_SO" ] || die "$WEBHOOK_SO is missing: run make all"
    ${CC:-cc} "${flags[@]}" -o "$COUNT_SERVER" "$ROOT/tests/bench/count_server.c" ||
        die "could not build $COUNT_SERVER from tests/bench/count_server.c"
    ${CC:-cc} "${flags[@]}" -o "$WEBHOOK_LOOP" "$ROOT/tests/bench/webhook_loop.c" -lcurl ||
        die "could not build $WEBHOOK_LOOP from tests/bench/webhook_loop.c"
}

# Starts a counting receiver named $1 (saving bodies to $2 when given); sets CS_PID and CS_URL.
start_counter() {
    local name=$1 i
    rm -f "$OUT/$name.port" "$OUT/$name.stats"
    "$COUNT_SERVER" "$OUT/$name.port" "$OUT/$name.stats" ${2:+"$2"} &
    CS_PID=$!
    BG_PIDS+=("$CS_PID")
    for i in $(seq 1 100); do
        [ -s "$OUT/$name.port" ] && break
        : "$i"
        sleep 0.1
    done
    [ -s "$OUT/$name.port" ] || die "the counting receiver $name did not start"
    CS_URL=http://127.0.0.1:$(cat "$OUT/$name.port")/hook
}

# Stops the receiver named $1 (in this shell: only it can wait for the process) and sets
# CS_EVENTS and CS_SECONDS: the events it counted, the seconds from the first request to the last
# answer.
stop_counter() {
    kill -TERM "$CS_PID" 2>/dev/null || true
    wait "$CS_PID" 2>/dev/null || true
    CS_EVENTS=$(awk '{ print $4 }' "$OUT/$1.stats" 2>/dev/null)
    CS_SECONDS=$(awk '{ print $6 }' "$OUT/$1.stats" 2>/dev/null)
}

webhook_conf() {
    local slot=$1 mode=$2 url=$3 conf=$OUT/conf/$1.conf
    mkdir -p "$OUT/conf"
    cat >"$conf" <<CONF
log_level = "info";
source: { conninfo = "$CONNINFO"; tables = [ "public.bench" ]; slot = "$slot";
          publication = "$PUB"; flush = "$FLUSH"; };
plugins = ( { name = "webhook"; path = "$WEBHOOK_SO";
              settings = { url = "$url"; mode = "$mode"; }; } );
CONF
    echo "$conf"
}

# Mode $1, round $2, up to LSN $3: walnotify into a receiver, then the same bodies from the
# plain loop into a fresh one; appends "mode round walnotify_s loop_s events whole_run_s" to
# webhook.tsv, the first two as the receiver timed them (first request to last answer).
webhook_turn() {
    local mode=$1 round=$2 endpos=$3 slot=bench_hook_${1}_${2} type wall events secs
    local loop_events loop_secs rc=0
    type=application/x-ndjson
    [ "$mode" = event ] && type=application/json
    start_counter "$slot" "$OUT/bodies.$mode"
    timeout -k 10 "$RUN_TIMEOUT" "$TIME_BIN" -f "%e %U %S %M" -o "$OUT/time.$slot" "$WALNOTIFY" \
        -c "$(webhook_conf "$slot" "$mode" "$CS_URL")" --endpos "$endpos" \
        >"$LOGS/$slot.log" 2>&1 || rc=$?
    stop_counter "$slot"
    events=$CS_EVENTS
    secs=$CS_SECONDS
    if [ "$rc" -ne 0 ] || [ "${events:-}" != "$WEBHOOK_ROWS" ]; then
        note "webhook ($mode, round $round) exited $rc with ${events:-no} events of $WEBHOOK_ROWS; log: $LOGS/$slot.log"
        return 0
    fi
    read -r wall _ < <(tail -n 1 "$OUT/time.$slot")
    start_counter "${slot}_loop"
    "$WEBHOOK_LOOP" "$CS_URL" "$OUT/bodies.$mode" "$type" >"$LOGS/${slot}_loop.log" 2>&1 ||
        note "the plain loop failed ($mode, round $round); log: $LOGS/${slot}_loop.log"
    stop_counter "${slot}_loop"
    loop_events=$CS_EVENTS
    loop_secs=$CS_SECONDS
    if [ "${loop_events:-}" != "$WEBHOOK_ROWS" ]; then
        note "the plain loop ($mode, round $round) sent ${loop_events:-no} events of $WEBHOOK_ROWS"
        return 0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$round" "$secs" "$loop_secs" "$events" "$wall" \
        >>"$OUT/webhook.tsv"
    awk -v m="$mode" -v r="$round" -v w="$secs" -v l="$loop_secs" -v e="$events" 'BEGIN {
        printf "  round %s  webhook %-11s %9.0f events/s, plain libcurl loop %9.0f events/s\n",
            r, m, e / w, e / l }' >&2
}

run_webhook() {
    local r mode endpos
    build_webhook_tools
    : >"$OUT/webhook.tsv"
    for ((r = 1; r <= ROUNDS; r++)); do
        for mode in transaction event; do
            make_slot "bench_hook_${mode}_${r}"
        done
    done
    note "writing the webhook workload ($WEBHOOK_ROWS rows in transactions of $TXN_ROWS)"
    sql -c "DO \$\$ BEGIN
              FOR i IN 0 .. $((WEBHOOK_ROWS / TXN_ROWS - 1)) LOOP
                $(rows_sql "i * $TXN_ROWS + 1" "i * $TXN_ROWS + $TXN_ROWS")
                COMMIT;
              END LOOP;
            END \$\$;"
    endpos=$(sql -c "SELECT pg_current_wal_lsn()")
    for ((r = 1; r <= ROUNDS; r++)); do
        for mode in transaction event; do
            webhook_turn "$mode" "$r" "$endpos"
        done
    done
    drop_slots_like bench_hook_
    sql -c "TRUNCATE bench" -c "CHECKPOINT"
}

print_webhook() {
    local mode
    echo
    echo "Webhook: $WEBHOOK_ROWS rows in transactions of $TXN_ROWS rows into a local receiver that" \
        "only counts, timed by the receiver from the first request to the last answer (median of" \
        "$ROUNDS rounds); the last column is walnotify's whole run, start to --endpos"
    printf '| %-12s | %14s | %23s | %6s | %14s |\n' mode "walnotify ev/s" "plain libcurl loop ev/s" \
        ratio "whole run ev/s"
    printf '|%s|%s|%s|%s|%s|\n' -------------- ---------------: ------------------------: \
        -------: ---------------:
    for mode in transaction event; do
        if ! awk -F'\t' -v m="$mode" '$1 == m { found = 1 } END { exit !found }' "$OUT/webhook.tsv"; then
            printf '| %-12s | %14s | %23s | %6s | %14s |\n' "$mode" failed - - -
            continue
        fi
        awk -v m="$mode" -v w="$(webhook_median "$mode" '$5 / $3')" \
            -v l="$(webhook_median "$mode" '$5 / $4')" -v r="$(webhook_median "$mode" '$5 / $6')" \
            'BEGIN { printf "| %-12s | %14.0f | %23.0f | %6.2f | %14.0f |\n", m, w, l, w / l, r }'
    done
}

# The median over the rounds of mode $1 of the awk expression $2 over webhook.tsv's fields.
webhook_median() {
    awk -F'\t' -v m="$1" '$1 == m { print '"$2"' }' "$OUT/webhook.tsv" | median
}

# ---- kafka -------------------------------------------------------------------------------------

build_kafka_tools() {
    local flags=(-O2 -g -std=c11 -D_GNU_SOURCE -pthread -Wall -Wextra -Werror -Wshadow
        -Wstrict-prototypes -Wmissing-prototypes -Wvla)
    [ -f "$KAFKA_SO" ] || die "$KAFKA_SO is missing: run make all"
    ${CC:-cc} "${flags[@]}" -o "$MOCKKAFKA" "$ROOT/tests/kafka/mockkafka.c" -lrdkafka ||
        die "could not build $MOCKKAFKA from tests/kafka/mockkafka.c"
    ${CC:-cc} "${flags[@]}" -o "$KAFKA_LOOP" "$ROOT/tests/bench/kafka_loop.c" -lrdkafka ||
        die "could not build $KAFKA_LOOP from tests/bench/kafka_loop.c"
}

# One command to the mock cluster; its answer in MOCK_ANSWER, which must start with "ok".
mock_cmd() {
    echo "$*" >&"${MOCK[1]}"
    read -r -u "${MOCK[0]}" MOCK_ANSWER || die "the mock cluster ended"
    [[ $MOCK_ANSWER == ok* ]] || die "the mock cluster answered '$MOCK_ANSWER' to '$*'"
}

kafka_conf() {
    local slot=$1 topic=$2 conf=$OUT/conf/$1.conf
    mkdir -p "$OUT/conf"
    cat >"$conf" <<CONF
log_level = "info";
source: { conninfo = "$CONNINFO"; tables = [ "public.bench" ]; slot = "$slot";
          publication = "$PUB"; };
plugins = ( { name = "kafka"; path = "$KAFKA_SO";
              settings = { brokers = "$MOCK_BOOTSTRAP"; topic = "$topic"; }; } );
CONF
    echo "$conf"
}

# walnotify taking the initial snapshot of public.bench into the kafka plugin, on a fresh slot
# with a state file of its own (removed first: a run starts from nothing).
kafka_snapshot_conf() {
    local slot=$1 topic=$2 conf=$OUT/conf/$1.conf state=$OUT/snapshot/$1.state
    mkdir -p "$OUT/conf" "$OUT/snapshot"
    rm -f "$state"
    cat >"$conf" <<CONF
log_level = "info";
source: { conninfo = "$CONNINFO"; tables = [ "public.bench" ]; slot = "$slot";
          publication = "$PUB"; snapshot = "initial"; state_file = "$state"; };
plugins = ( { name = "kafka"; path = "$KAFKA_SO"; ops = [ "snapshot" ];
              settings = { brokers = "$MOCK_BOOTSTRAP"; topic = "$topic"; }; } );
CONF
    echo "$conf"
}

# Milliseconds since 1970 of a log line's timestamp (2026-12-07T19:36:01.294Z).
log_ms() {
    local stamp=$1
    echo $(($(date -u -d "${stamp%.*}Z" +%s) * 1000 + 10#$(sed 's/.*\.\([0-9]*\)Z$/\1/' <<<"$stamp")))
}

# Round $1, up to LSN $2, walnotify fed by $3 (stream: a slot made before the writes, to
# --endpos; snapshot: the initial snapshot of a fresh slot, stopped once recorded finished), its
# attempt $4, into one topic, then its messages from the plain loop into the same topic; appends
# "round feed walnotify_s loop_s events whole_run_s" to kafka.tsv. The end of walnotify's time is
# the line it logs once its flush saw every message confirmed: "dispatcher stopped" after
# --endpos, "initial snapshot ... finished" after the snapshot's end marker. Returns 1 only when
# the mock cluster dropped some of walnotify's messages before its reader saw them.
kafka_turn() {
    local round=$1 endpos=$2 feed=$3 slot=bench_kafka_$3_$1_$4 topic=bench.walnotify.$3.$1 rc=0
    local wall count first stopped secs loop_events loop_secs done_re
    start_mock
    mock_cmd "create $topic $KAFKA_PARTITIONS"
    mock_cmd "follow $topic"
    if [ "$feed" = stream ]; then
        CMD=("$WALNOTIFY" -c "$(kafka_conf "$slot" "$topic")" --endpos "$endpos")
        done_re='dispatcher stopped'
    else
        CMD=(bash -c "$SNAPSHOT_RUNNER" snapshot_runner "$WALNOTIFY"
            "$(kafka_snapshot_conf "$slot" "$topic")" "$OUT/snapshot/$slot.state")
        done_re='initial snapshot at [^ ]* finished'
    fi
    timeout -k 10 "$RUN_TIMEOUT" "$TIME_BIN" -f "%e %U %S %M" -o "$OUT/time.$slot" "${CMD[@]}" \
        >"$LOGS/$slot.log" 2>&1 || rc=$?
    mock_cmd "span $topic"
    read -r _ count first <<<"$MOCK_ANSWER"
    stopped=$(sed -n "s/^\([^ ]*\) .*$done_re.*/\1/p" "$LOGS/$slot.log" | tail -n 1)
    if [ "$rc" -ne 0 ] || [ -z "$stopped" ]; then
        note "kafka, $feed (round $round) exited $rc with ${count:-no} messages of $KAFKA_ROWS; log: $LOGS/$slot.log"
        cleanup_bg
        return 0
    fi
    if [ "${count:-}" != "$KAFKA_ROWS" ]; then
        note "kafka, $feed (round $round): walnotify saw every message confirmed, the cluster's reader" \
            "found ${count:-no} of $KAFKA_ROWS (it fell more than 5 MB behind a partition)"
        cleanup_bg
        return 1
    fi
    secs=$(awk -v a="$first" -v b="$(log_ms "$stopped")" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
    read -r wall _ < <(tail -n 1 "$OUT/time.$slot")
    mock_cmd "dump $topic $OUT/kafka.dump"
    # Into the same topic, so that the cluster's reader of it works during both runs.
    "$KAFKA_LOOP" "$MOCK_BOOTSTRAP" "$topic" "$OUT/kafka.dump" \
        >"$LOGS/${slot}_loop.log" 2>&1 || note "the plain loop failed (round $round); log: $LOGS/${slot}_loop.log"
    read -r _ loop_events _ loop_secs <"$LOGS/${slot}_loop.log" || true
    cleanup_bg
    if [ "${loop_events:-}" != "$KAFKA_ROWS" ]; then
        note "the plain loop (round $round) sent ${loop_events:-no} messages of $KAFKA_ROWS"
        return 0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$feed" "$secs" "$loop_secs" "$count" "$wall" \
        >>"$OUT/kafka.tsv"
    awk -v r="$round" -v f="$feed" -v w="$secs" -v l="$loop_secs" -v e="$count" 'BEGIN {
        printf "  round %s  kafka fed by the %-8s %9.0f events/s, plain librdkafka loop %9.0f events/s (%.2f)\n",
            r, f, e / w, e / l, l / w }' >&2
}

# Round $1: the rate at which each feed itself gives the rows, with nothing behind it:
# pg_recvlogical reading the stream up to LSN $2 (the walsender's decoding) and COPY through psql
# reading the table (what the snapshot reads); appends "round stream_limit 0 0 events seconds" and
# "round snapshot_limit ..." to kafka.tsv.
kafka_limits() {
    local round=$1 endpos=$2 t0 t1
    contender_cmd pg_recvlogical "bench_kafka_recv_$round" "$endpos"
    t0=$(date +%s.%N)
    timeout -k 10 "$RUN_TIMEOUT" "${CMD[@]}" >"$LOGS/bench_kafka_recv_$round.log" 2>&1 ||
        note "pg_recvlogical failed (round $round); log: $LOGS/bench_kafka_recv_$round.log"
    t1=$(date +%s.%N)
    printf '%s\tstream_limit\t0\t0\t%s\t%s\n' "$round" "$KAFKA_ROWS" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" >>"$OUT/kafka.tsv"
    t0=$(date +%s.%N)
    timeout -k 10 "$RUN_TIMEOUT" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$CONNINFO" \
        -o /dev/null -c "COPY bench TO STDOUT" >"$LOGS/bench_kafka_copy_$round.log" 2>&1 ||
        note "COPY failed (round $round); log: $LOGS/bench_kafka_copy_$round.log"
    t1=$(date +%s.%N)
    printf '%s\tsnapshot_limit\t0\t0\t%s\t%s\n' "$round" "$KAFKA_ROWS" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" >>"$OUT/kafka.tsv"
    awk -F'\t' -v r="$round" '$1 == r && $2 ~ /_limit$/ { rate[$2] = $5 / $6 } END {
        printf "  round %s  pg_recvlogical %9.0f events/s, COPY TO STDOUT %9.0f rows/s\n",
            r, rate["stream_limit"], rate["snapshot_limit"] }' "$OUT/kafka.tsv" >&2
}

# A mock cluster of its own for each turn (it keeps only the last 5 MB of each partition: a
# thread of it reads walnotify's topic as it fills).
start_mock() {
    coproc MOCK { "$MOCKKAFKA" 3 2>>"$LOGS/mockkafka.log"; }
    BG_PIDS+=("$MOCK_PID")
    read -r -u "${MOCK[0]}" MOCK_ANSWER || die "the mock cluster did not start"
    MOCK_BOOTSTRAP=${MOCK_ANSWER#bootstrap }
}

# Writes the rows once, then in rounds of interleaved turns whose order rotates: walnotify fed by
# the stream, walnotify fed by the snapshot (each followed by its plain loop), and the feeds' own
# rates.
run_kafka() {
    local r i endpos turns=(stream snapshot limits) turn attempt
    build_kafka_tools
    : >"$OUT/kafka.tsv"
    for ((r = 1; r <= ROUNDS; r++)); do
        for attempt in 1 2 3; do
            make_slot "bench_kafka_stream_${r}_$attempt"
        done
        make_slot "bench_kafka_recv_$r"
    done
    note "writing the kafka workload ($KAFKA_ROWS rows in transactions of $TXN_ROWS)"
    sql -c "DO \$\$ BEGIN
              FOR i IN 0 .. $((KAFKA_ROWS / TXN_ROWS - 1)) LOOP
                $(rows_sql "i * $TXN_ROWS + 1" "i * $TXN_ROWS + $TXN_ROWS")
                COMMIT;
              END LOOP;
            END \$\$;"
    endpos=$(sql -c "SELECT pg_current_wal_lsn()")
    # Past endpos: the snapshot's readers then find the same frozen pages in every round.
    sql -c "VACUUM (FREEZE, ANALYZE) bench" -c "CHECKPOINT"
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((i = 0; i < 3; i++)); do
            turn=${turns[$(((i + r - 1) % 3))]}
            if [ "$turn" = limits ]; then
                kafka_limits "$r" "$endpos"
            else
                # A turn whose messages the mock cluster dropped before its reader saw them goes
                # again (twice at most): the dump would lack them.
                kafka_turn "$r" "$endpos" "$turn" 1 || kafka_turn "$r" "$endpos" "$turn" 2 ||
                    kafka_turn "$r" "$endpos" "$turn" 3 || true
            fi
        done
    done
    drop_slots_like bench_kafka_
    sql -c "TRUNCATE bench" -c "CHECKPOINT"
}

print_kafka() {
    local feed name limit
    echo
    echo "Kafka: $KAFKA_ROWS rows (written in transactions of $TXN_ROWS rows) into librdkafka's mock" \
        "cluster (3 brokers, $KAFKA_PARTITIONS partitions), walnotify fed by the stream and by the" \
        "initial snapshot, from the first message to the last one confirmed, beside a plain librdkafka" \
        "loop sending the very messages of that run, and the feed's own rate with nothing behind it;" \
        "median of $ROUNDS rounds (the ratio: of each round's own); whole run: walnotify's start to" \
        "its exit"
    printf '| %-21s | %14s | %26s | %6s | %14s | %-30s |\n' "walnotify fed by" "walnotify ev/s" \
        "plain librdkafka loop ev/s" ratio "whole run ev/s" "the feed alone"
    printf '|%s|%s|%s|%s|%s|%s|\n' ----------------------- ---------------: \
        ---------------------------: -------: ---------------: --------------------------------
    for feed in stream snapshot; do
        name="the stream"
        limit="pg_recvlogical $(kafka_median stream_limit '$5 / $6' | awk '{ printf "%.0f", $1 }') ev/s"
        if [ "$feed" = snapshot ]; then
            name="the initial snapshot"
            limit="COPY TO STDOUT $(kafka_median snapshot_limit '$5 / $6' | awk '{ printf "%.0f", $1 }') rows/s"
        fi
        if ! awk -F'\t' -v f="$feed" '$2 == f { found = 1 } END { exit !found }' "$OUT/kafka.tsv"; then
            printf '| %-21s | %14s | %26s | %6s | %14s | %-30s |\n' "$name" failed - - - "$limit"
            continue
        fi
        awk -v name="$name" -v w="$(kafka_median "$feed" '$5 / $3')" \
            -v l="$(kafka_median "$feed" '$5 / $4')" -v q="$(kafka_median "$feed" '$4 / $3')" \
            -v r="$(kafka_median "$feed" '$5 / $6')" -v limit="$limit" 'BEGIN {
            printf "| %-21s | %14.0f | %26.0f | %6.2f | %14.0f | %-30s |\n", name, w, l, q, r, limit }'
    done
}

# The median over the rounds of an awk expression ($2) over the lines of feed $1 in kafka.tsv.
kafka_median() {
    awk -F'\t' -v f="$1" '$2 == f { print '"$2"' }' "$OUT/kafka.tsv" | median
}

# ---- initial snapshot ---------------------------------------------------------------------------

# walnotify taking the initial snapshot of public.snap into /dev/null, with a state file of its
# own for slot $1 (removed first: a run starts from nothing). $2 overrides the conninfo.
snapshot_conf() {
    local slot=$1 conninfo=${2:-$CONNINFO} conf=$OUT/conf/$1.conf state=$OUT/snapshot/$1.state
    mkdir -p "$OUT/conf" "$OUT/snapshot"
    rm -f "$state"
    cat >"$conf" <<CONF
log_level = "info";
source: { conninfo = "$conninfo"; tables = [ "public.snap" ]; slot = "$slot";
          publication = "$SNAP_PUB"; snapshot = "initial"; state_file = "$state"; };
plugins = ( { name = "jsonl"; path = "$JSONL"; ops = [ "snapshot" ];
              settings = { path = "/dev/null"; fsync = false; }; } );
CONF
    echo "$conf"
}

# Runs walnotify ($1, configuration $2) until its state file ($3) says the snapshot finished,
# then stops it with SIGTERM; the exit is walnotify's. The watch starts no process (a grep and
# a sleep every few milliseconds took a tenth of a CPU from the run measured): read -t on a
# pipe that never holds data is its sleep.
SNAPSHOT_RUNNER='"$1" -c "$2" & pid=$!
exec 9<> <(:)
recorded() {
    local line
    [ -f "$1" ] || return 1
    while IFS= read -r line; do
        [[ $line == snapshot=* ]] && return 0
    done <"$1"
    return 1
}
until recorded "$3"; do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit $?; }
    read -r -t 0.005 -u 9 || true
done
kill -TERM "$pid"
wait "$pid"'

# Before anything runs: a walnotify that does not know source.snapshot is named as such, not
# found out after the other parts. --check-config reads no database.
probe_snapshot() {
    local conf err
    mkdir -p "$OUT" "$LOGS"
    conf=$(snapshot_conf bench_snapshot_probe "host=127.0.0.1 dbname=postgres")
    "$WALNOTIFY" --check-config -c "$conf" >"$LOGS/snapshot_probe.log" 2>&1 && return 0
    err=$(grep -m 1 -i 'fatal\|error' "$LOGS/snapshot_probe.log" || tail -n 1 "$LOGS/snapshot_probe.log")
    if grep -q 'unknown setting "snapshot"' "$LOGS/snapshot_probe.log"; then
        die "this walnotify takes no snapshot: it refuses source.snapshot = \"initial\" ($err);" \
            "BENCH_SNAPSHOT=0 leaves the snapshot measurement out"
    fi
    die "walnotify --check-config refused the snapshot configuration $conf: $err"
}

# The table, filled once: SNAPSHOT_ROWS rows of a bigint key and four columns of common types,
# frozen and analyzed so that no reader pays for hint bits the one before it did not set.
fill_snapshot_table() {
    sql <<SQL
CREATE TABLE snap (id bigint PRIMARY KEY, qty integer NOT NULL, name text NOT NULL,
                   amount numeric(12,2) NOT NULL, created timestamptz NOT NULL);
INSERT INTO snap SELECT g, (g % 1000)::int, 'customer ' || md5(g::text), (g % 100000) / 100.0,
                        timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
                 FROM generate_series(1, $SNAPSHOT_ROWS) g;
VACUUM (FREEZE, ANALYZE) snap;
CHECKPOINT;
SQL
}

# Fills the table, then reads it in rounds of interleaved turns: COPY through psql, and walnotify
# as on its first start: it creates the publication (the first round) and a slot of its own, after
# the rows (the stream then has nothing of them to skip), and takes the snapshot.
run_snapshot() {
    local r i endpos who contenders=(psql_copy walnotify_snap)
    note "writing the snapshot table ($SNAPSHOT_ROWS rows)"
    fill_snapshot_table
    endpos=$(sql -c "SELECT pg_current_wal_lsn()")
    note "reading the snapshot table, $ROUNDS round(s)"
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((i = 0; i < 2; i++)); do
            who=${contenders[$(((i + r - 1) % 2))]}
            measure snapshot "$who" "$r" "$endpos"
        done
    done
    drop_slots_like bench_snapshot_
    sql -c "SET client_min_messages = warning" -c "DROP PUBLICATION IF EXISTS $SNAP_PUB" \
        -c "DROP TABLE snap" -c "CHECKPOINT"
}

print_snapshot() {
    local who name ok wall cpu rss steal copy_wall
    echo
    echo "Initial snapshot: $SNAPSHOT_ROWS rows of 5 columns (bigint key, integer, text, numeric," \
        "timestamptz) over loopback TCP (median of $ROUNDS rounds); walnotify's whole run, start" \
        "to the snapshot recorded finished, against COPY TO STDOUT through psql"
    printf '| %-26s | %10s | %7s | %7s | %9s | %13s | %7s |\n' client rows/s "wall s" "CPU s" \
        "peak RSS" "rows/s / COPY" "steal s"
    printf '|%s|%s|%s|%s|%s|%s|%s|\n' ---------------------------- -----------: --------: --------: \
        ----------: --------------: --------:
    copy_wall=$(stat_of snapshot psql_copy wall)
    for who in psql_copy walnotify_snap; do
        name="COPY TO STDOUT (psql)"
        [ "$who" = walnotify_snap ] && name="walnotify snapshot (jsonl)"
        ok=$(awk -F'\t' -v c="$who" '$1 == "snapshot" && $2 == c && $8 == 0' "$RESULTS" | wc -l)
        if [ "$ok" -eq 0 ]; then
            printf '| %-26s | %10s | %7s | %7s | %9s | %13s | %7s |\n' "$name" failed - - - - -
            continue
        fi
        wall=$(stat_of snapshot "$who" wall)
        cpu=$(stat_of snapshot "$who" "user + sys")
        rss=$(stat_of snapshot "$who" rss)
        steal=$(stat_of snapshot "$who" steal)
        awk -v name="$name" -v rows="$SNAPSHOT_ROWS" -v wall="$wall" -v cpu="$cpu" -v rss="$rss" \
            -v cw="$copy_wall" -v ok="$ok" -v rounds="$ROUNDS" -v steal="$steal" 'BEGIN {
            if (ok < rounds) name = name " (" ok "/" rounds ")"
            rate = wall > 0 ? rows / wall : 0
            # rows/s over COPY rows/s: the inverse ratio of the wall times
            ratio = (wall > 0 && cw + 0 > 0) ? sprintf("%.2f", cw / wall) : "-"
            printf "| %-26s | %10.0f | %7.2f | %7.2f | %5.1f MiB | %13s | %7.2f |\n",
                name, rate, wall, cpu, rss / 1024, ratio, steal }'
    done
}

# ---- the metrics endpoint ----------------------------------------------------------------------

# Scrapes /metrics every second, as a Prometheus with a short interval would (between the runs
# with the endpoint nothing listens: curl fails at once). Not counted in walnotify's CPU.
start_scraper() {
    command -v curl >/dev/null 2>&1 || die "curl is missing: the metrics part scrapes with it"
    bash -c "while :; do curl -s -o /dev/null --max-time 2 http://127.0.0.1:$METRICS_PORT/metrics; sleep 1; done" &
    BG_PIDS+=($!)
}

# walnotify with and without the endpoint on the same WAL, in interleaved rounds.
run_metrics() {
    local saved=("${CONTENDERS[@]}")
    CONTENDERS=(walnotify walnotify_metrics)
    start_scraper
    run_workload metrics "$ROUNDS"
    cleanup_bg
    CONTENDERS=("${saved[@]}")
}

print_metrics() {
    local base with
    base=$(stat_of metrics walnotify "user + sys")
    with=$(stat_of metrics walnotify_metrics "user + sys")
    echo
    echo "The metrics endpoint: $METRICS_ROWS rows in transactions of $TXN_ROWS rows (median of" \
        "$ROUNDS rounds; /metrics scraped every second)"
    printf '| %-19s | %10s | %7s | %7s |\n' client rows/s "wall s" "CPU s"
    printf '|%s|%s|%s|%s|\n' --------------------- -----------: --------: --------:
    for who in walnotify walnotify_metrics; do
        awk -v who="$who" -v rows="$METRICS_ROWS" -v wall="$(stat_of metrics "$who" wall)" \
            -v cpu="$(stat_of metrics "$who" "user + sys")" 'BEGIN {
            printf "| %-19s | %10.0f | %7.2f | %7.2f |\n", who, (wall > 0 ? rows / wall : 0), wall, cpu }'
    done
    awk -v base="$base" -v with="$with" -v limit="$METRICS_LIMIT_PCT" 'BEGIN {
        if (base + 0 <= 0 || with == "nan") { print "endpoint CPU: not measured"; exit }
        pct = (with / base - 1) * 100
        printf "endpoint CPU (medians): %+.1f %% (limit %d %%): %s\n", pct, limit,
            pct <= limit ? "within" : "OVER THE LIMIT" }'
    # The two runs of one round follow each other on the same machine state: their ratio,
    # median over the rounds, is the steadier figure when the machine is shared.
    awk -F'\t' '$1 == "metrics" && $8 == 0 { cpu[$3, $2] = $5 + $6; round[$3] = 1 }
        END { for (r in round) if (cpu[r, "walnotify"] > 0 && cpu[r, "walnotify_metrics"] != "")
                  print (cpu[r, "walnotify_metrics"] / cpu[r, "walnotify"] - 1) * 100 }' "$RESULTS" |
        median | awk '{ if ($1 == "nan") exit
            printf "endpoint CPU (median of the rounds'"'"' ratios): %+.1f %%\n", $1 }'
}

print_machine() {
    local model
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    echo
    echo "Machine: $(nproc) CPUs ($model), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
        "$(uname -sr); PostgreSQL $(sql -c 'SHOW server_version'), logical_decoding_work_mem" \
        "$(sql -c 'SHOW logical_decoding_work_mem'); $("$WALNOTIFY" --version 2>&1 | head -n 1);" \
        "$(node --version 2>/dev/null | sed 's/^/Node.js /')"
}

# Which parts run: the workloads (and the latency run), the webhook, the snapshot, the metrics
# endpoint; a BENCH_*_ONLY=1 runs its part alone.
choose_parts() {
    local only
    # Any BENCH_*_ONLY=1 runs only the parts so named; otherwise every part not turned off.
    only=$((WEBHOOK_ONLY || SNAPSHOT_ONLY || METRICS_ONLY || REDIS_ONLY || KAFKA_ONLY))
    if [ "$only" = 1 ]; then
        DO_STREAM=0
        DO_WEBHOOK=$WEBHOOK_ONLY
        DO_KAFKA=$KAFKA_ONLY
        DO_SNAPSHOT=$SNAPSHOT_ONLY
        DO_METRICS=$METRICS_ONLY
        DO_REDIS=$REDIS_ONLY
    else
        DO_STREAM=1
        DO_WEBHOOK=$USE_WEBHOOK
        DO_KAFKA=$USE_KAFKA
        DO_SNAPSHOT=$USE_SNAPSHOT
        DO_METRICS=$USE_METRICS
        DO_REDIS=$USE_REDIS
    fi
}

main() {
    local work
    check_settings
    choose_parts
    ensure_time
    mkdir -p "$OUT" "$LOGS"
    [ "$DO_SNAPSHOT" = 1 ] && probe_snapshot
    build_latency_plugin
    CONTENDERS=(pg_recvlogical walnotify)
    [ "$COMMIT_CONTENDER" = 1 ] && CONTENDERS+=(walnotify_commit)
    [ "$USE_UNIX" = 1 ] && CONTENDERS+=(pg_recvlogical_unix walnotify_unix)
    [ "$DO_STREAM" = 1 ] && setup_node && CONTENDERS+=(node)
    [ "$DO_STREAM" = 1 ] && setup_exec && CONTENDERS+=(exec_python)

    trap cleanup EXIT
    trap 'exit 130' INT TERM
    start_server
    setup_schema
    : >"$RESULTS"

    if [ "$DO_STREAM" = 1 ]; then
        note "warm-up: each client reads $WARMUP_ROWS rows once"
        run_workload warmup 1
        for work in $WORKLOADS; do
            run_workload "$work" "$ROUNDS"
        done
        if [ "$USE_LATENCY" = 1 ]; then
            run_latency >"$OUT/latency.txt"
            run_acklag >>"$OUT/latency.txt"
        fi
    fi
    if [ "$DO_WEBHOOK" = 1 ]; then
        run_webhook
    fi
    if [ "$DO_KAFKA" = 1 ]; then
        run_kafka
    fi
    if [ "$DO_SNAPSHOT" = 1 ]; then
        run_snapshot
    fi
    if [ "$DO_REDIS" = 1 ]; then
        run_redis
    fi
    if [ "$DO_METRICS" = 1 ]; then
        run_metrics
    fi

    {
        print_machine
        if [ "$DO_STREAM" = 1 ]; then
            for work in $WORKLOADS; do
                print_table "$work"
            done
        fi
        if [ "$USE_LATENCY" = 1 ] && [ "$DO_STREAM" = 1 ]; then
            cat "$OUT/latency.txt"
        fi
        if [ "$DO_WEBHOOK" = 1 ]; then
            print_webhook
        fi
        if [ "$DO_KAFKA" = 1 ]; then
            print_kafka
        fi
        if [ "$DO_SNAPSHOT" = 1 ]; then
            print_snapshot
        fi
        if [ "$DO_REDIS" = 1 ]; then
            print_redis
        fi
        if [ "$DO_METRICS" = 1 ]; then
            print_metrics
        fi
        echo
        echo "CPU is the client's own user + system time; the walsender's is not counted."
        echo "Only ratios from one run mean anything: the clients take turns on the same WAL, but"
        echo "pg_recvlogical's own CPU per row changes by two times with the machine's load."
        echo "steal is the time a hypervisor kept the machine's CPUs from running what was ready"
        echo "(from /proc/stat, all CPUs, during the run): a round with steal is a disturbed one."
        echo "A _unix client reads over the server's Unix socket, and is compared with"
        echo "pg_recvlogical_unix; the others read over loopback TCP."
    } | tee "$OUT/report.txt"
    if [ "${BENCH_PGSINK:-1}" = 1 ]; then
        "$ROOT/tests/bench/pgsink.sh"
    fi
}

# shellcheck source=tests/bench/redis.sh
. "$ROOT/tests/bench/redis.sh"

main "$@"
