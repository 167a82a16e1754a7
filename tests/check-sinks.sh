#!/usr/bin/env bash
# The sinks' longer loops (`make check-sinks`), against one throwaway PostgreSQL:
#   itest_exec         the Python example under WN_EXEC_KILLS kills of walnotify (here 20)
#   itest_exec_bigtxn  a transaction of WN_EXEC_BIG_ROWS rows (here 2,000,000) through a child
#                      that dies in its middle, under the host's memory bound
#   itest_exec_faults  children that crash, hang or write garbage
# Each is the binary `make check` runs, with larger settings; Check's time limits are raised to
# match (CK_TIMEOUT_MULTIPLIER).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
HARNESS=$ROOT/tests/pg-harness.sh
LOGS=$ROOT/build/tests/logs
PGDIR=""
FAILED=()

cleanup() {
    if [ -n "$PGDIR" ]; then
        "$HARNESS" stop "$PGDIR" || echo "check-sinks: could not stop the server in $PGDIR" >&2
        PGDIR=""
    fi
}
trap cleanup EXIT

run_one() {
    local name=$1 log=$LOGS/$1.long.log
    shift
    if env "$@" timeout -k 10 1200 "$ROOT/build/tests/$name" >"$log" 2>&1; then
        printf 'PASS  %s (%s)\n' "$name" "$*"
    else
        printf 'FAIL  %s (%s)\n---- last lines of %s ----\n' "$name" "$*" "$log"
        tail -n 40 "$log"
        FAILED+=("$name")
    fi
}

main() {
    local out
    mkdir -p "$LOGS"
    cd "$ROOT"
    PGDIR=$(mktemp -d /tmp/walnotify-pg.XXXXXX)
    out=$("$HARNESS" start "$PGDIR")
    PGHOST=$(sed -n 's/^PGHOST=//p' <<<"$out")
    PGPORT=$(sed -n 's/^PGPORT=//p' <<<"$out")
    export PGHOST PGPORT PGUSER=postgres PGDATABASE=postgres WN_TEST_PGDIR=$PGDIR WN_ROOT=$ROOT
    export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4}
    echo "== sink loops (PostgreSQL on $PGHOST port $PGPORT)"
    run_one itest_exec WN_EXEC_KILLS="${WN_EXEC_KILLS:-20}"
    run_one itest_exec_bigtxn WN_EXEC_BIG_ROWS="${WN_EXEC_BIG_ROWS:-2000000}"
    run_one itest_exec_faults WN_FAULT_SEED="${WN_FAULT_SEED:-$(date +%s)}"
    if [ "${#FAILED[@]}" -ne 0 ]; then
        echo "== ${#FAILED[@]} failed: ${FAILED[*]}"
        return 1
    fi
    echo "== every sink loop passed"
}

main "$@"
