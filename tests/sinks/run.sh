#!/usr/bin/env bash
# `make check-sinks`: the sinks' longer runs (build/tests/sinks/itest_*), one after the other
# against one throwaway PostgreSQL; one PASS/FAIL line each and a non-zero exit when any failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
BUILD=$ROOT/build/tests/sinks
HARNESS=$ROOT/tests/pg-harness.sh
LIMIT=${WN_SINK_TIME_LIMIT:-900} # seconds per test binary
PGDIR=""
FAILED=()

cleanup() {
    if [ -n "$PGDIR" ]; then
        "$HARNESS" stop "$PGDIR" || echo "sinks: could not stop the server in $PGDIR" >&2
        PGDIR=""
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$BUILD/logs"
cd "$ROOT"
shopt -s nullglob
bins=("$BUILD"/itest_*)
srcs=(tests/sinks/test_*.c)
if [ "${#bins[@]}" -ne "${#srcs[@]}" ]; then
    echo "sinks: ${#srcs[@]} tests in tests/sinks but ${#bins[@]} built: run make check-sinks" >&2
    exit 1
fi

PGDIR=$(mktemp -d /tmp/walnotify-pg.XXXXXX)
out=$("$HARNESS" start "$PGDIR") || { echo "sinks: could not start PostgreSQL" >&2; exit 1; }
PGHOST=$(sed -n 's/^PGHOST=//p' <<<"$out")
PGPORT=$(sed -n 's/^PGPORT=//p' <<<"$out")
export PGHOST PGPORT PGUSER=postgres PGDATABASE=postgres WN_TEST_PGDIR=$PGDIR WN_ROOT=$ROOT
export CK_DEFAULT_TIMEOUT=${WN_ITEST_CK_TIMEOUT:-600}
echo "== sink tests (PostgreSQL on $PGHOST port $PGPORT)"
for bin in "${bins[@]}"; do
    name=$(basename "$bin")
    log=$BUILD/logs/$name.log
    if timeout -k 10 "$LIMIT" "$bin" >"$log" 2>&1; then
        echo "PASS  $name"
    else
        echo "FAIL  $name (see $log)"
        tail -n 40 "$log"
        FAILED+=("$name")
    fi
done
# The exec plugin's tests of make check, longer: more kills of walnotify under its example sinks
# (WN_EXEC_KILLS), a 2,000,000-row transaction through a dying child (WN_EXEC_BIG_ROWS), and the
# misbehaving children again; the postgres plugin's 2,000,000-row transaction.
exec_long=(itest_exec "WN_EXEC_KILLS=${WN_EXEC_KILLS:-20}"
           itest_exec_bigtxn "WN_EXEC_BIG_ROWS=${WN_EXEC_BIG_ROWS:-2000000}"
           itest_exec_faults "WN_FAULT_SEED=${WN_FAULT_SEED:-$(date +%s)}"
           itest_pgsink_bigtxn "WN_PGSINK_BIG_ROWS=${WN_PGSINK_BIG_ROWS:-2000000}")
for ((i = 0; i < ${#exec_long[@]}; i += 2)); do
    name=${exec_long[i]}
    log=$BUILD/logs/$name.long.log
    if CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4} timeout -k 10 "$LIMIT" \
        env "${exec_long[i + 1]}" "$ROOT/build/tests/$name" >"$log" 2>&1; then
        echo "PASS  $name (${exec_long[i + 1]})"
    else
        echo "FAIL  $name (${exec_long[i + 1]}; see $log)"
        tail -n 40 "$log"
        FAILED+=("$name")
    fi
done
# The redis plugin's tests of make check, longer: more kills of walnotify, with and without
# maxlen (WN_REDIS_KILLS), and a 2,000,000-row transaction under the memory bound
# (WN_REDIS_BIG_ROWS).
redis_long=(itest_redis "WN_REDIS_KILLS=${WN_REDIS_KILLS:-20}"
            itest_redis_bigtxn "WN_REDIS_BIG_ROWS=${WN_REDIS_BIG_ROWS:-2000000}")
for ((i = 0; i < ${#redis_long[@]}; i += 2)); do
    name=${redis_long[i]}
    log=$BUILD/logs/$name.long.log
    if CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4} timeout -k 10 "$LIMIT" \
        env "${redis_long[i + 1]}" "$ROOT/build/tests/$name" >"$log" 2>&1; then
        echo "PASS  $name (${redis_long[i + 1]})"
    else
        echo "FAIL  $name (${redis_long[i + 1]}; see $log)"
        tail -n 40 "$log"
        FAILED+=("$name")
    fi
done

if [ "${#FAILED[@]}" -ne 0 ]; then
    echo "== ${#FAILED[@]} failed: ${FAILED[*]}"
    exit 1
fi
echo "== all ${#bins[@]} sink test binaries, $((${#exec_long[@]} / 2)) long exec runs and $((${#redis_long[@]} / 2)) long redis runs passed"
