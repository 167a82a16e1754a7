#!/usr/bin/env bash
# `make run`: the example pipeline (etc/walnotify.conf) against a throwaway PostgreSQL.
# Starts a server in a temporary folder, creates public.demo, the publication and the slot, inserts
# three rows and runs walnotify in the foreground; Ctrl-C stops it and removes everything.
# Started with standard output and standard error as one file (`nohup make run &`, `make run >
# run.log 2>&1`), walnotify's log goes to a file of its own, named on standard error: the jsonl
# plugin refuses a standard output that the log would be mixed into.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
WALNOTIFY=$ROOT/build/walnotify
JSONL=$ROOT/build/plugins/jsonl.so
EXAMPLE=$ROOT/etc/walnotify.conf
HARNESS=$ROOT/tests/pg-harness.sh
PSQL=/usr/lib/postgresql/15/bin/psql

PGDIR=""
CONFDIR=""
WN_PID=""
WN_LOG=""

die() {
    echo "run-demo: $*" >&2
    exit 1
}

cleanup() {
    if [ -n "$WN_PID" ] && kill -0 "$WN_PID" 2>/dev/null; then
        kill -TERM "$WN_PID" 2>/dev/null || true
        wait "$WN_PID" 2>/dev/null || true
    fi
    if [ -n "$PGDIR" ]; then
        "$HARNESS" stop "$PGDIR" || echo "run-demo: could not stop the server in $PGDIR" >&2
        PGDIR=""
    fi
    if [ -n "$CONFDIR" ]; then
        rm -rf -- "$CONFDIR"
        CONFDIR=""
    fi
}

# While walnotify runs, a signal asks it to stop cleanly; before that, it ends the demo.
on_signal() {
    if [ -z "$WN_PID" ]; then
        exit "$1"
    fi
    kill -TERM "$WN_PID" 2>/dev/null || true
}

sql() {
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -c "$1"
}

# The example configuration with this server's conninfo and the plugin's absolute path.
write_config() {
    local conf=$1
    sed -e "s|^\( *conninfo *= *\)\"[^\"]*\"|\1\"host=$PGHOST port=$PGPORT dbname=postgres user=postgres\"|" \
        -e "s|\"\.\./build/plugins/jsonl\.so\"|\"$JSONL\"|" "$EXAMPLE" >"$conf"
    grep -q "host=$PGHOST" "$conf" || die "no conninfo line found in $EXAMPLE"
    grep -qF "\"$JSONL\"" "$conf" || die "no jsonl plugin path found in $EXAMPLE"
}

# true when standard output and standard error are one file (the same device and inode).
stdout_is_stderr() {
    local out err
    out=$(stat -L -c %d:%i /proc/$$/fd/1 2>/dev/null) || return 1
    err=$(stat -L -c %d:%i /proc/$$/fd/2 2>/dev/null) || return 1
    [ "$out" = "$err" ]
}

# Runs walnotify in the background so that a signal reaches our trap at once; returns its status.
run_host() {
    local rc=0
    if [ -n "$WN_LOG" ]; then
        "$WALNOTIFY" -c "$1" 2>>"$WN_LOG" &
    else
        "$WALNOTIFY" -c "$1" &
    fi
    WN_PID=$!
    while kill -0 "$WN_PID" 2>/dev/null; do
        wait "$WN_PID" || true
    done
    wait "$WN_PID" || rc=$?
    WN_PID=""
    return "$rc"
}

main() {
    local out conf rc=0
    [ -x "$WALNOTIFY" ] || die "$WALNOTIFY is missing (run make)"
    [ -f "$JSONL" ] || die "$JSONL is missing (run make)"
    [ -x "$PSQL" ] || die "$PSQL is missing (install postgresql-client-15)"

    trap cleanup EXIT
    trap 'on_signal 130' INT
    trap 'on_signal 143' TERM

    PGDIR=$(mktemp -d /tmp/walnotify-demo.XXXXXX)
    out=$("$HARNESS" start "$PGDIR") || die "could not start PostgreSQL in $PGDIR"
    PGHOST=$(sed -n 's/^PGHOST=//p' <<<"$out")
    PGPORT=$(sed -n 's/^PGPORT=//p' <<<"$out")

    sql "CREATE TABLE public.demo (id serial PRIMARY KEY, note text, created_at timestamptz DEFAULT now())"
    # A folder of its own: the server's belongs to postgres, and walnotify refuses a
    # configuration in a folder that another user may change.
    CONFDIR=$(mktemp -d /tmp/walnotify-demo-conf.XXXXXX)
    conf=$CONFDIR/walnotify.conf
    write_config "$conf"
    "$WALNOTIFY" --create-slot -c "$conf" || die "walnotify --create-slot failed"
    sql "INSERT INTO public.demo (note) VALUES ('first'), ('second'), ('third')"

    if stdout_is_stderr; then
        WN_LOG=$(mktemp /tmp/walnotify-demo-log.XXXXXX)
        echo "run-demo: standard output and standard error are one file: walnotify's log goes to $WN_LOG" >&2
    fi

    cat >&2 <<BANNER

  walnotify is streaming public.demo from a throwaway PostgreSQL (data in $PGDIR).
  Each insert appears below as one JSON line. Insert more from another shell:

    psql "host=$PGHOST port=$PGPORT user=postgres dbname=postgres" -c "INSERT INTO demo (note) VALUES ('hello')"

  Ctrl-C stops walnotify and removes the server.

BANNER

    run_host "$conf" || rc=$?
    [ "$rc" -eq 0 ] || die "walnotify exited with status $rc"
}

main "$@"
