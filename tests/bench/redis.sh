# The redis plugin's part of `make bench`, sourced by tests/bench/run.sh (its helpers and
# settings are this file's too).
#
# BENCH_REDIS_ROWS rows (default 200,000) in transactions of BENCH_TXN_ROWS rows, read in
# BENCH_ROUNDS interleaved rounds by:
#   walnotify with the redis plugin into a redis-server of its own (a Unix socket in
#     build/bench/redis, no persistence: the bench measures the plugin, not the disk), timed from
#     its start to --endpos;
#   redis-cli --pipe sending the same XADD commands (the entries walnotify added, with their IDs
#     and fields, into a fresh stream) to the same server: the limit of the server and socket;
#   pg_recvlogical on the same WAL: the walsender's own rate.
# The goal: walnotify at 0.8 or more of the lower of the two limits.

REDIS_ROWS=${BENCH_REDIS_ROWS:-200000}
REDIS_SO=$ROOT/build/plugins/redis.so
REDIS_DIR=$OUT/redis
REDIS_PID=""

start_redis() {
    rm -rf "$REDIS_DIR"
    mkdir -p "$REDIS_DIR"
    redis-server --port 0 --unixsocket "$REDIS_DIR/sock" --unixsocketperm 700 \
        --dir "$REDIS_DIR" --save "" --appendonly no --logfile "$REDIS_DIR/log" &
    REDIS_PID=$!
    BG_PIDS+=("$REDIS_PID")
    for _ in $(seq 100); do
        redis-cli -s "$REDIS_DIR/sock" PING >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "redis-server did not start (log: $REDIS_DIR/log)"
}

stop_redis() {
    [ -n "$REDIS_PID" ] || return 0
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
}

rcli() {
    redis-cli -s "$REDIS_DIR/sock" "$@"
}

redis_conf() {
    local slot=$1 conf=$OUT/conf/$1.conf
    mkdir -p "$OUT/conf"
    cat >"$conf" <<CONF
log_level = "info";
source: { conninfo = "$CONNINFO"; tables = [ "public.bench" ]; slot = "$slot";
          publication = "$PUB"; };
plugins = ( { name = "redis"; path = "$REDIS_SO";
              settings = { address = "$REDIS_DIR/sock"; stream = "bench:$slot"; }; } );
CONF
    echo "$conf"
}

# The XADD commands of every entry of stream $1, into stream $2, as RESP for redis-cli --pipe.
redis_pipe_file() {
    rcli --raw XRANGE "$1" - + | LC_ALL=C awk -v key="$2" '
        function bulk(s) { return "$" length(s) "\r\n" s "\r\n" }
        { line[++n] = $0 }
        n == 13 {
            out = "*15\r\n" bulk("XADD") bulk(key) bulk(line[1])
            for (i = 2; i <= 13; i++) out = out bulk(line[i])
            printf "%s", out
            n = 0
        }'
}

# Round $1 up to LSN $2: appends "round walnotify_s pipe_s recvlogical_s" to redis.tsv.
redis_turn() {
    local round=$1 endpos=$2 slot=bench_redis_$1 rc=0 wall pipe_s recv_s got t0 t1
    timeout -k 10 "$RUN_TIMEOUT" "$TIME_BIN" -f "%e %U %S %M" -o "$OUT/time.$slot" "$WALNOTIFY" \
        -c "$(redis_conf "$slot")" --endpos "$endpos" >"$LOGS/$slot.log" 2>&1 || rc=$?
    got=$(rcli XLEN "bench:$slot")
    if [ "$rc" -ne 0 ] || [ "$got" != "$REDIS_ROWS" ]; then
        note "redis (round $round) exited $rc with ${got:-no} entries of $REDIS_ROWS; log: $LOGS/$slot.log"
        return 0
    fi
    read -r wall _ < <(tail -n 1 "$OUT/time.$slot")
    redis_pipe_file "bench:$slot" "bench:pipe_$round" >"$OUT/redis.pipe"
    t0=$(date +%s.%N)
    rcli --pipe <"$OUT/redis.pipe" >"$LOGS/${slot}_pipe.log" 2>&1 ||
        note "redis-cli --pipe failed (round $round); log: $LOGS/${slot}_pipe.log"
    t1=$(date +%s.%N)
    pipe_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    got=$(rcli XLEN "bench:pipe_$round")
    [ "$got" = "$REDIS_ROWS" ] || note "redis-cli --pipe added $got entries of $REDIS_ROWS"
    rcli DEL "bench:$slot" "bench:pipe_$round" "bench:$slot:walnotify-last-id" >/dev/null
    contender_cmd pg_recvlogical "${slot}_recv" "$endpos"
    t0=$(date +%s.%N)
    timeout -k 10 "$RUN_TIMEOUT" "${CMD[@]}" >"$LOGS/${slot}_recv.log" 2>&1 ||
        note "pg_recvlogical failed (round $round); log: $LOGS/${slot}_recv.log"
    t1=$(date +%s.%N)
    recv_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    printf '%s\t%s\t%s\t%s\n' "$round" "$wall" "$pipe_s" "$recv_s" >>"$OUT/redis.tsv"
    awk -v r="$round" -v w="$wall" -v p="$pipe_s" -v c="$recv_s" -v e="$REDIS_ROWS" 'BEGIN {
        printf "  round %s  redis plugin %9.0f events/s, redis-cli --pipe %9.0f, pg_recvlogical %9.0f\n",
            r, e / w, e / p, e / c }' >&2
}

run_redis() {
    local r endpos
    if ! command -v redis-server >/dev/null 2>&1 || [ ! -f "$REDIS_SO" ]; then
        note "NOTICE: redis-server or $REDIS_SO is missing: the redis bench is skipped"
        return 0
    fi
    start_redis
    : >"$OUT/redis.tsv"
    for ((r = 1; r <= ROUNDS; r++)); do
        make_slot "bench_redis_$r"
        make_slot "bench_redis_${r}_recv"
    done
    note "writing the redis workload ($REDIS_ROWS rows in transactions of $TXN_ROWS)"
    sql -c "DO \$\$ BEGIN
              FOR i IN 0 .. $((REDIS_ROWS / TXN_ROWS - 1)) LOOP
                $(rows_sql "i * $TXN_ROWS + 1" "i * $TXN_ROWS + $TXN_ROWS")
                COMMIT;
              END LOOP;
            END \$\$;"
    endpos=$(sql -c "SELECT pg_current_wal_lsn()")
    for ((r = 1; r <= ROUNDS; r++)); do
        redis_turn "$r" "$endpos"
    done
    stop_redis
    drop_slots_like bench_redis_
    sql -c "TRUNCATE bench" -c "CHECKPOINT"
}

redis_median() {
    awk -F'\t' '{ print '"$1"' }' "$OUT/redis.tsv" | median
}

print_redis() {
    echo
    echo "Redis: $REDIS_ROWS rows in transactions of $TXN_ROWS rows into a local redis-server" \
        "(Unix socket, no persistence), median of $ROUNDS rounds: walnotify's whole run (start to" \
        "--endpos), beside redis-cli --pipe sending the same XADD commands and pg_recvlogical" \
        "reading the same WAL; the ratio is against the lower of the two"
    if [ ! -s "$OUT/redis.tsv" ]; then
        echo "| redis | failed or skipped |"
        return 0
    fi
    printf '| %14s | %20s | %18s | %6s |\n' "walnotify ev/s" "redis-cli --pipe ev/s" \
        "pg_recvlogical ev/s" ratio
    printf '|%s|%s|%s|%s|\n' ---------------: ----------------------: --------------------: -------:
    awk -v w="$(redis_median "$REDIS_ROWS / \$2")" -v p="$(redis_median "$REDIS_ROWS / \$3")" \
        -v c="$(redis_median "$REDIS_ROWS / \$4")" 'BEGIN {
        l = p < c ? p : c
        printf "| %14.0f | %21.0f | %19.0f | %6.2f |\n", w, p, c, w / l }'
}
