#!/usr/bin/env bash
# The postgres plugin beside PostgreSQL's built-in logical replication (`make bench` runs it after
# the other parts; `tests/bench/pgsink.sh` runs it alone, after `make all`).
#
# One throwaway server holds the source database (bench_src) and two targets: a subscription
# applies the source's publication into bench_sub, and walnotify's postgres plugin (apply mode)
# into bench_wn. Both read the same WAL from slots made before the writes: the subscription is
# created with create_slot = false, copy_data = false, streaming = off (PostgreSQL 18 defaults to
# parallel streaming) and synchronous_commit = on, like the plugin (a subscription's apply worker
# defaults to off), and the server runs with fsync = on (BENCH_PGSINK_FSYNC=off changes it).
#
# Workloads (bench's own rows, 5 columns and a primary key):
#   one_txn   BENCH_PGSINK_ROWS rows in one transaction (default 200,000)
#   txns      BENCH_PGSINK_ROWS rows in transactions of 10 rows
#   single    BENCH_PGSINK_ROWS/10 single-row transactions
# Each is read BENCH_ROUNDS times (default 3) by each side, in turns whose order alternates per
# round; the table shows the medians. The time is from the subscription's enabling (walnotify's
# start) until the target holds every row: the subscription's remote_lsn in
# pg_replication_origin_status (walnotify: its run to --endpos, whose last flush commits the
# progress row) reaching the workload's end LSN, the subscription's side also ending once its
# target holds every row. CPU: walnotify's own, plus its session on the target; the subscription's
# apply worker (which executes the rows itself). The walsenders are counted on neither side.
# Raw numbers: build/bench/pgsink.tsv; logs: build/bench/logs/pgsink_*.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
OUT=$ROOT/build/bench
LOGS=$OUT/logs
HARNESS=$ROOT/tests/pg-harness.sh
PG_BIN=${WN_PG_BIN:-/usr/lib/postgresql/15/bin}
WALNOTIFY=$ROOT/build/walnotify
PLUGIN=$ROOT/build/plugins/postgres.so
TIME_BIN=/usr/bin/time
ROWS=${BENCH_PGSINK_ROWS:-200000}
ROUNDS=${BENCH_ROUNDS:-3}
WORKLOADS=${BENCH_PGSINK_WORKLOADS:-one_txn txns single}
FSYNC=${BENCH_PGSINK_FSYNC:-on}
RUN_TIMEOUT=${BENCH_TIMEOUT:-900}
RESULTS=$OUT/pgsink.tsv
TICK=$(getconf CLK_TCK)
PGDIR=""

die() {
    echo "bench pgsink: $*" >&2
    exit 1
}

note() {
    echo "bench pgsink: $*" >&2
}

cleanup() {
    if [ -n "$PGDIR" ]; then
        "$HARNESS" stop "$PGDIR" || note "could not stop the server in $PGDIR"
        PGDIR=""
    fi
}

sql() {
    "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"
}

check_settings() {
    [[ $ROWS =~ ^[1-9][0-9]*0$ ]] || die "BENCH_PGSINK_ROWS must be a positive multiple of 10"
    [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
    if [ ! -x "$WALNOTIFY" ] || [ ! -f "$PLUGIN" ]; then
        die "$WALNOTIFY or $PLUGIN is missing: run make all"
    fi
    [ -x "$TIME_BIN" ] || die "$TIME_BIN is missing: apt-get install time"
    for work in $WORKLOADS; do
        case "$work" in
        one_txn | txns | single) ;;
        *) die "BENCH_PGSINK_WORKLOADS: unknown workload '$work' (known: one_txn txns single)" ;;
        esac
    done
}

start_server() {
    local port
    PGDIR=$(mktemp -d /tmp/walnotify-bench.XXXXXX)
    "$HARNESS" start "$PGDIR" >/dev/null
    # shellcheck disable=SC1091
    . "$PGDIR/env"
    port=$PGPORT
    sql -c "ALTER SYSTEM SET listen_addresses = '127.0.0.1'" \
        -c "ALTER SYSTEM SET max_wal_size = '8GB'" \
        -c "ALTER SYSTEM SET checkpoint_timeout = '30min'" \
        -c "ALTER SYSTEM SET synchronous_commit = on" \
        -c "ALTER SYSTEM SET fsync = $FSYNC" \
        -c "ALTER SYSTEM SET logical_decoding_work_mem = '1GB'"
    "$HARNESS" restart "$PGDIR" fast
    export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
    CONNINFO="host=127.0.0.1 port=$port user=postgres"
}

setup() {
    local db
    for db in bench_src bench_sub bench_wn; do
        sql -c "CREATE DATABASE $db"
        sql -d "$db" -c "CREATE TABLE bench (id bigint PRIMARY KEY, qty integer NOT NULL,
                         name text NOT NULL, amount numeric(12,2) NOT NULL,
                         created timestamptz NOT NULL) WITH (autovacuum_enabled = off)"
    done
    sql -d bench_src -c "CREATE PUBLICATION bench_pub FOR TABLE bench"
}

rows_sql() {
    echo "INSERT INTO bench SELECT g, (g % 1000)::int, 'customer ' || md5(g::text),
          (g % 100000) / 100.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
          FROM generate_series($1, $2) g;"
}

workload_rows() {
    case "$1" in
    single) echo $((ROWS / 10)) ;;
    *) echo "$ROWS" ;;
    esac
}

# Writes the workload; prints the end of its last commit (the insert position right after it).
write_workload() {
    local body
    case "$1" in
    one_txn) body=$(rows_sql 1 "$ROWS") ;;
    txns) body="DO \$\$ BEGIN FOR i IN 0 .. $((ROWS / 10 - 1)) LOOP
                  $(rows_sql "i * 10 + 1" "i * 10 + 10") COMMIT; END LOOP; END \$\$;" ;;
    single) body="DO \$\$ BEGIN FOR i IN 1 .. $((ROWS / 10)) LOOP
                    $(rows_sql i i) COMMIT; END LOOP; END \$\$;" ;;
    esac
    sql -d bench_src -c "$body" -c "SELECT pg_current_wal_insert_lsn()"
}

# utime + stime of a process, in seconds (empty once it is gone).
cpu_of() {
    awk -v t="$TICK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat" \
        2>/dev/null || true
}

reset_targets() {
    sql -d bench_sub -c "TRUNCATE bench"
    sql -d bench_wn -c "SET client_min_messages = warning" -c "TRUNCATE bench" \
        -c "DROP TABLE IF EXISTS walnotify_progress"
}

# The subscription from its slot until remote_lsn reaches $2 (or its target holds $3 rows).
run_subscription() {
    local slot=$1 endpos=$2 rows=$3 start done=0 pid="" cpu="" now polls=0
    sql -d bench_sub -c "CREATE SUBSCRIPTION bench_sub CONNECTION '$CONNINFO dbname=bench_src'
        PUBLICATION bench_pub WITH (create_slot = false, slot_name = '$slot', copy_data = false,
        streaming = off, synchronous_commit = 'on', enabled = false)"
    start=$(date +%s.%N)
    sql -d bench_sub -c "ALTER SUBSCRIPTION bench_sub ENABLE"
    while [ "$done" = 0 ]; do
        [ -z "$pid" ] && pid=$(sql -d bench_sub -c "SELECT pid FROM pg_stat_subscription
                                                   WHERE subname = 'bench_sub' AND pid IS NOT NULL")
        [ -n "$pid" ] && now=$(cpu_of "$pid") && [ -n "$now" ] && cpu=$now
        done=$(sql -d bench_sub -c "SELECT coalesce(bool_or(remote_lsn >= '$endpos'), false)::int
                                    FROM pg_replication_origin_status s
                                    JOIN pg_subscription u ON s.external_id = 'pg_' || u.oid
                                    WHERE u.subname = 'bench_sub'")
        polls=$((polls + 1))
        if [ "$done" = 0 ] && [ $((polls % 50)) -eq 0 ]; then
            [ "$(sql -d bench_sub -c 'SELECT count(*) FROM bench')" = "$rows" ] && done=1
        fi
        [ "$done" = 0 ] && sleep 0.02
        if awk -v s="$start" -v t="$RUN_TIMEOUT" -v n="$(date +%s.%N)" 'BEGIN { exit !(n - s > t) }'; then
            note "the subscription did not catch up within $RUN_TIMEOUT s"
            break
        fi
    done
    WALL=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
    [ -n "$pid" ] && now=$(cpu_of "$pid") && [ -n "$now" ] && cpu=$now
    CPU=${cpu:-0}
    sql -d bench_sub -c "ALTER SUBSCRIPTION bench_sub DISABLE" \
        -c "ALTER SUBSCRIPTION bench_sub SET (slot_name = NONE)" -c "DROP SUBSCRIPTION bench_sub"
    sql -c "SELECT pg_drop_replication_slot('$slot')" >/dev/null
    OK=$([ "$(sql -d bench_sub -c 'SELECT count(*) FROM bench')" = "$rows" ] && echo 0 || echo 1)
}

# walnotify from its slot to --endpos $2; its own CPU and its session's on the target.
run_walnotify() {
    local slot=$1 endpos=$2 rows=$3 conf=$OUT/pgsink.conf tfile=$OUT/pgsink.time pid bpid="" bcpu=0 now
    cat >"$conf" <<EOF
source: { conninfo = "$CONNINFO dbname=bench_src"; tables = [ "public.bench" ];
          slot = "$slot"; publication = "bench_pub"; status_interval_ms = 100; };
plugins = ( { name = "pg"; path = "$PLUGIN";
              settings = { conninfo = "$CONNINFO dbname=bench_wn"; }; } );
EOF
    "$TIME_BIN" -f "%e %U %S" -o "$tfile" timeout -k 10 "$RUN_TIMEOUT" "$WALNOTIFY" -c "$conf" \
        --endpos "$endpos" >"$LOGS/pgsink_$slot.log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        [ -z "$bpid" ] && bpid=$(sql -c "SELECT pid FROM pg_stat_activity WHERE datname = 'bench_wn'
                                         AND application_name = 'walnotify'")
        [ -n "$bpid" ] && now=$(cpu_of "$bpid") && [ -n "$now" ] && bcpu=$now
        sleep 0.05
    done
    wait "$pid" || note "walnotify exited $? (log: $LOGS/pgsink_$slot.log)"
    read -r WALL user sys < <(tail -n 1 "$tfile")
    CPU=$(awk -v u="$user" -v s="$sys" -v b="$bcpu" 'BEGIN { printf "%.2f", u + s + b }')
    sql -c "SELECT pg_drop_replication_slot('$slot')" >/dev/null
    OK=$([ "$(sql -d bench_wn -c 'SELECT count(*) FROM bench')" = "$rows" ] && echo 0 || echo 1)
}

run_workload() {
    local work=$1 r who endpos rows
    rows=$(workload_rows "$work")
    for ((r = 1; r <= ROUNDS; r++)); do
        reset_targets
        sql -d bench_src -c "TRUNCATE bench"
        sql -d bench_src -c "SELECT pg_create_logical_replication_slot('pgs_sub', 'pgoutput'),
                                    pg_create_logical_replication_slot('pgs_wn', 'pgoutput')" >/dev/null
        endpos=$(write_workload "$work" | tail -n 1)
        sql -d bench_src -c "CHECKPOINT"
        for who in $([ $((r % 2)) -eq 1 ] && echo "subscription walnotify" || echo "walnotify subscription"); do
            if [ "$who" = subscription ]; then
                run_subscription pgs_sub "$endpos" "$rows"
            else
                run_walnotify pgs_wn "$endpos" "$rows"
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$work" "$who" "$r" "$WALL" "$CPU" "$OK" >>"$RESULTS"
            note "$work round $r: $who $WALL s, CPU $CPU s$([ "$OK" = 0 ] || echo ', ROWS MISSING')"
        done
    done
}

median_of() {
    awk -F'\t' -v w="$1" -v c="$2" -v f="$3" '$1 == w && $2 == c && $6 == 0 { print $f }' \
        "$RESULTS" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

print_report() {
    local work sw sc ww wc
    echo
    echo "The postgres plugin (apply) beside a subscription: time until the target holds every row" \
        "(median of $ROUNDS rounds; fsync = $FSYNC, synchronous_commit = on on both sides)"
    printf '| %-8s | %7s | %12s | %12s | %13s | %13s | %15s |\n' workload rows "sub wall s" \
        "sub CPU s" "walnotify s" "walnotify CPU" "walnotify / sub"
    printf '|%s|%s|%s|%s|%s|%s|%s|\n' ---------- --------: -------------: -------------: \
        --------------: --------------: ----------------:
    for work in $WORKLOADS; do
        sw=$(median_of "$work" subscription 4)
        sc=$(median_of "$work" subscription 5)
        ww=$(median_of "$work" walnotify 4)
        wc=$(median_of "$work" walnotify 5)
        awk -v w="$work" -v n="$(workload_rows "$work")" -v sw="$sw" -v sc="$sc" -v ww="$ww" \
            -v wc="$wc" 'BEGIN {
            printf "| %-8s | %7d | %12s | %12s | %13s | %13s | %15s |\n", w, n, sw, sc, ww, wc,
                (sw + 0 > 0 && ww != "nan") ? sprintf("%.2f", ww / sw) : "-" }'
    done
    echo "CPU: the apply worker (it executes the rows); walnotify's own plus its target session's."
}

main() {
    check_settings
    mkdir -p "$OUT" "$LOGS"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    start_server
    setup
    : >"$RESULTS"
    for work in $WORKLOADS; do
        run_workload "$work"
    done
    print_report | tee "$OUT/pgsink.txt"
}

main "$@"
