#!/usr/bin/env bash
# A throwaway PostgreSQL for walnotify's tests and demo, listening only on a Unix socket in DIR.
#
#   tests/pg-harness.sh start DIR                     initdb in DIR/data, start, print PGHOST/PGPORT
#   tests/pg-harness.sh restart DIR [fast|immediate]  stop (default fast) and start again, data kept
#   tests/pg-harness.sh stop DIR                      stop (fast, else immediate) and remove DIR
#
# As root the server runs as the postgres user (PostgreSQL refuses to run as root), so DIR must be
# reachable by it: use a folder under /tmp. Any other user runs the server as themselves.
# `start` also writes DIR/env (export PGHOST, PGPORT, PGUSER, PGDATABASE) for `. DIR/env`.
#
# The server is Debian's PostgreSQL 15 unless WN_PG_BIN names the folder of another one's initdb,
# pg_ctl and postgres (tests/pg-install.sh MAJOR prints it). pg_isready comes from Debian's 15
# client (WN_PG_CLIENT_BIN), which talks to every supported version.
set -euo pipefail

PG_BIN=${WN_PG_BIN:-/usr/lib/postgresql/15/bin}
CLIENT_BIN=${WN_PG_CLIENT_BIN:-/usr/lib/postgresql/15/bin}
SOCKET_PATH_MAX=100 # sun_path holds 108 bytes; "/.s.PGSQL.NNNNN" and its NUL take the rest

die() {
    echo "pg-harness: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start DIR | stop DIR | restart DIR [fast|immediate]" >&2
    exit 1
}

# Runs a command as the server's owner: postgres when we are root, else ourselves. The working
# folder is DIR so that the postgres user never needs to enter the caller's folder.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd "$DIR" && runuser -u postgres -- "$@")
    else
        (cd "$DIR" && "$@")
    fi
}

check_user() {
    [ "$(id -u)" -ne 0 ] && return 0
    id -u postgres >/dev/null 2>&1 ||
        die "running as root but there is no postgres user to run the server as (install postgresql-15)"
    command -v runuser >/dev/null 2>&1 || die "running as root but runuser is missing (util-linux)"
}

check_binaries() {
    local b
    for b in initdb pg_ctl postgres; do
        [ -x "$PG_BIN/$b" ] || die "$PG_BIN/$b is missing (install postgresql-15, or run tests/pg-install.sh MAJOR)"
    done
    [ -x "$CLIENT_BIN/pg_isready" ] || die "$CLIENT_BIN/pg_isready is missing (install postgresql-client-15)"
}

# Sets DIR to the absolute form of $1; the folder must exist.
resolve_dir() {
    [ -n "$1" ] || usage
    DIR=$(cd "$1" 2>/dev/null && pwd -P) || die "$1: no such folder"
}

# True when the port is free for us: no TCP listener on it and no default-location socket.
port_is_free() {
    local port=$1 hex
    [ -e "/tmp/.s.PGSQL.$port" ] && return 1
    if command -v ss >/dev/null 2>&1; then
        [ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ] || return 1
        return 0
    fi
    hex=$(printf ':%04X ' "$port")
    ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" {print $2 " "}' |
        grep -q -- "$hex"
}

pick_port() {
    local i port
    for i in $(seq 1 200); do
        port=$((20000 + ((RANDOM << 15) | RANDOM) % 40001))
        if port_is_free "$port"; then
            echo "$port"
            return 0
        fi
        : "$i"
    done
    die "found no free port between 20000 and 60000"
}

wait_ready() {
    local port=$1 i
    for i in $(seq 1 300); do
        if "$CLIENT_BIN/pg_isready" -q -h "$DIR" -p "$port" -U postgres -d postgres; then
            return 0
        fi
        : "$i"
        sleep 0.1
    done
    tail -n 30 "$DIR/postgresql.log" >&2 || true
    die "the server in $DIR did not become ready in 30 s (log: $DIR/postgresql.log)"
}

write_settings() {
    local port=$1
    cat >>"$DIR/data/postgresql.conf" <<CONF

# ---- walnotify test harness ----
listen_addresses = ''
unix_socket_directories = '$DIR'
port = $port
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
max_connections = 200
shared_buffers = 128MB
fsync = off
synchronous_commit = on
full_page_writes = off
wal_sender_timeout = 60s
logical_decoding_work_mem = 64MB
max_slot_wal_keep_size = -1
log_line_prefix = '%m [%p] %q%a '
log_connections = off
CONF
}

start_server() {
    if ! as_owner "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgresql.log" -w -t 60 -s start; then
        tail -n 30 "$DIR/postgresql.log" >&2 || true
        die "pg_ctl start failed for $DIR/data (log: $DIR/postgresql.log)"
    fi
}

# The port the server in DIR was configured with.
configured_port() {
    sed -n "s/^port = \([0-9][0-9]*\)$/\1/p" "$DIR/data/postgresql.conf" | tail -n 1
}

cmd_start() {
    local port
    mkdir -p -- "$1"
    resolve_dir "$1"
    [ -z "$(ls -A -- "$DIR")" ] || die "$DIR is not empty"
    [ "${#DIR}" -le "$SOCKET_PATH_MAX" ] ||
        die "$DIR is too long for a Unix socket path (at most $SOCKET_PATH_MAX characters)"
    check_user
    check_binaries

    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$DIR"
        chmod 0755 "$DIR"
        runuser -u postgres -- test -w "$DIR" ||
            die "the postgres user cannot reach $DIR: its parent folders must be traversable (use a folder under /tmp)"
    fi

    if ! as_owner "$PG_BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 -N >"$DIR/initdb.log" 2>&1; then
        cat "$DIR/initdb.log" >&2
        die "initdb failed in $DIR/data"
    fi
    port=$(pick_port)
    write_settings "$port"
    start_server
    wait_ready "$port"

    printf 'export PGHOST=%q\nexport PGPORT=%s\nexport PGUSER=postgres\nexport PGDATABASE=postgres\n' "$DIR" "$port" >"$DIR/env"
    echo "PGHOST=$DIR"
    echo "PGPORT=$port"
}

# Refuses a folder that this script did not make: stop removes it.
require_harness_dir() {
    [ -f "$DIR/data/PG_VERSION" ] || die "$DIR holds no harness server (no data/PG_VERSION)"
}

stop_server() {
    local mode=$1
    [ -f "$DIR/data/postmaster.pid" ] || return 0
    if as_owner "$PG_BIN/pg_ctl" -D "$DIR/data" -m "$mode" -w -t 60 -s stop; then
        return 0
    fi
    echo "pg-harness: $mode stop failed in $DIR, stopping immediately" >&2
    as_owner "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate -w -t 60 -s stop
}

cmd_stop() {
    resolve_dir "$1"
    require_harness_dir
    check_user
    stop_server fast || die "could not stop the server in $DIR"
    rm -rf -- "$DIR"
}

cmd_restart() {
    local mode=${2:-fast} port
    case "$mode" in
    fast | immediate) ;;
    *) usage ;;
    esac
    resolve_dir "$1"
    require_harness_dir
    check_user
    stop_server "$mode" || die "could not stop the server in $DIR"
    port=$(configured_port)
    [ -n "$port" ] || die "no port in $DIR/data/postgresql.conf"
    start_server
    wait_ready "$port"
}

main() {
    [ $# -ge 2 ] || usage
    case "$1" in
    start) [ $# -eq 2 ] || usage; cmd_start "$2" ;;
    stop) [ $# -eq 2 ] || usage; cmd_stop "$2" ;;
    restart) [ $# -le 3 ] || usage; cmd_restart "$2" "${3:-fast}" ;;
    *) usage ;;
    esac
}

main "$@"
