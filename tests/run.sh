#!/usr/bin/env bash
# Runs walnotify's built tests: one line per test binary with PASS or FAIL, a summary, and a
# non-zero exit when anything failed or is missing.
#
#   tests/run.sh unit                 every build/tests/test_* (no database)
#   tests/run.sh integration          every build/tests/itest_* against one throwaway PostgreSQL
#   tests/run.sh unit integration     both
#   tests/run.sh install              make install and uninstall into a temporary prefix, checked
#                                     (tests/install-check.sh)
#   tests/run.sh versions             the integration tests once per major version that
#                                     tests/pg-versions names (all of them run; failures are
#                                     summed up at the end)
#
# PG=MAJOR (e.g. PG=17; make check PG=17) runs the integration tests against that version
# instead of Debian's 15, installed by tests/pg-install.sh into build/pg/ on first use.
#
# `make check` builds the binaries first. To run one integration test by hand:
#   D=$(mktemp -d /tmp/walnotify-pg.XXXXXX); tests/pg-harness.sh start "$D"; . "$D/env"
#   WN_TEST_PGDIR=$D WN_ROOT=$PWD build/tests/itest_NAME; tests/pg-harness.sh stop "$D"
# (export WN_PG_BIN=$(tests/pg-install.sh 17) first for another version than Debian's 15)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# Only used by builds with SANITIZE=1: known leaks of libraries we cannot fix.
export LSAN_OPTIONS="suppressions=$ROOT/tests/sanitizer/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
BUILD=$ROOT/build/tests
LOGS=$BUILD/logs
HARNESS=$ROOT/tests/pg-harness.sh
INSTALL=$ROOT/tests/pg-install.sh
UNIT_LIMIT=${WN_UNIT_TIME_LIMIT:-300}        # seconds per unit test binary
ITEST_LIMIT=${WN_ITEST_TIME_LIMIT:-300}      # seconds per integration test binary

PGDIR=""
SERVER=""
CHILD=""
PASSED=0
FAILED=()
IN_MATRIX=false

usage() {
    echo "usage: $0 unit|integration|versions|install [...]" >&2
    exit 2
}

cleanup() {
    if [ -n "$CHILD" ]; then
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
        CHILD=""
    fi
    if [ -n "$PGDIR" ]; then
        "$HARNESS" stop "$PGDIR" || echo "run.sh: could not stop the server in $PGDIR" >&2
        PGDIR=""
    fi
}

on_signal() {
    echo "run.sh: interrupted" >&2
    exit "$1"
}

# Lists the test binaries of one kind: every built one, plus the name of every source that has no
# binary (so that it fails as "not built" rather than being skipped).
list_tests() {
    local src_dir=$1 prefix=$2 src name
    {
        for src in "$ROOT/$src_dir"/test_*.c; do
            [ -e "$src" ] || continue
            name=$(basename "$src" .c)
            echo "$BUILD/$prefix${name#test_}"
        done
        for name in "$BUILD/$prefix"*; do
            [ -f "$name" ] && [ -x "$name" ] && echo "$name"
        done
    } | sort -u
}

# Runs one binary under a time limit; prints its PASS/FAIL line and, on failure, its output.
# The binary runs in the background so that an interrupt reaches our trap at once.
run_one() {
    local bin=$1 limit=$2 name log rc=0
    name=$(basename "$bin")
    log=$LOGS/$name.log
    if [ ! -x "$bin" ]; then
        printf 'FAIL  %s (not built: run make tests)\n' "$name"
        FAILED+=("$name")
        return 1
    fi
    timeout -k 10 "$limit" "$bin" >"$log" 2>&1 &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    if [ "$rc" -eq 0 ]; then
        printf 'PASS  %s\n' "$name"
        PASSED=$((PASSED + 1))
        return 0
    fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        printf 'FAIL  %s (killed after %s s)\n' "$name" "$limit"
    else
        printf 'FAIL  %s (exit %s)\n' "$name" "$rc"
    fi
    FAILED+=("$name")
    echo "---- last lines of $log ----"
    tail -n 40 "$log"
    show_failed_hosts "$log"
    return 1
}

# A failed integration test keeps its folder: what walnotify said there is the first thing a
# reader of the failure needs, so each host's last stderr lines follow the test's output.
show_failed_hosts() {
    local log=$1 dir err
    for dir in $(grep -o '/tmp/walnotify-itest\.[A-Za-z0-9]*' "$log" | sort -u); do
        for err in "$dir"/host*.err; do
            [ -s "$err" ] || continue
            echo "---- last lines of $err ----"
            tail -n 15 "$err"
        done
    done
}

run_unit() {
    local bins bin
    mapfile -t bins < <(list_tests tests/unit test_)
    if [ "${#bins[@]}" -eq 0 ]; then
        echo "FAIL  unit: no unit tests found in tests/unit or $BUILD"
        FAILED+=("unit")
        return
    fi
    echo "== unit tests"
    export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60}
    for bin in "${bins[@]}"; do
        run_one "$bin" "$UNIT_LIMIT" || true
    done
}

# Points the harness at the server of major version $1: without one, the server WN_PG_BIN
# already names, else Debian's 15.
use_version() {
    local major=${1:-15}
    if [ -z "${1:-}" ] && [ -n "${WN_PG_BIN:-}" ]; then
        SERVER=$("$WN_PG_BIN/postgres" --version) || return 1
        return 0
    fi
    if ! WN_PG_BIN=$("$INSTALL" "$major"); then
        echo "run.sh: PostgreSQL $major is not available" >&2
        return 1
    fi
    export WN_PG_BIN
    SERVER=$("$WN_PG_BIN/postgres" --version)
}

start_server() {
    local out
    PGDIR=$(mktemp -d /tmp/walnotify-pg.XXXXXX)
    if ! out=$("$HARNESS" start "$PGDIR"); then
        echo "run.sh: could not start $SERVER in $PGDIR" >&2
        "$HARNESS" stop "$PGDIR" >/dev/null 2>&1 || rm -rf -- "$PGDIR"
        PGDIR=""
        return 1
    fi
    PGHOST=$(sed -n 's/^PGHOST=//p' <<<"$out")
    PGPORT=$(sed -n 's/^PGPORT=//p' <<<"$out")
    if [ -z "$PGHOST" ] || [ -z "$PGPORT" ]; then
        echo "run.sh: pg-harness.sh printed no PGHOST/PGPORT" >&2
        return 1
    fi
    export PGHOST PGPORT PGUSER=postgres PGDATABASE=postgres WN_TEST_PGDIR=$PGDIR WN_ROOT=$ROOT
    echo "== integration tests ($SERVER on $PGHOST port $PGPORT)"
}

run_integration() {
    local bins bin
    mapfile -t bins < <(list_tests tests/integration itest_)
    if [ "${#bins[@]}" -eq 0 ]; then
        echo "FAIL  integration: no integration tests found in tests/integration or $BUILD"
        FAILED+=("integration")
        return
    fi
    if ! use_version "${PG:-}" || ! start_server; then
        printf 'FAIL  integration (PostgreSQL %s: no server)\n' "${PG:-15}"
        FAILED+=("integration-PostgreSQL-${PG:-15}")
        cleanup
        return
    fi
    export CK_DEFAULT_TIMEOUT=${WN_ITEST_CK_TIMEOUT:-240}
    for bin in "${bins[@]}"; do
        if $IN_MATRIX && version_neutral "$(basename "$bin")"; then
            continue
        fi
        if ! run_one "$bin" "$ITEST_LIMIT"; then
            echo "---- last lines of $PGDIR/postgresql.log ----"
            tail -n 30 "$PGDIR/postgresql.log" 2>/dev/null || true
        fi
    done
    cleanup
}

# Whether tests/integration/version-neutral names test binary $1: one whose subject (a sink,
# the file rules) behaves alike on every server, so the version matrix leaves it out.
version_neutral() {
    grep -qxF "$1" "$ROOT/tests/integration/version-neutral" 2>/dev/null
}

# The integration tests against every major version of tests/pg-versions, one after the other.
# A version whose server cannot be installed or started fails alone; the others still run.
run_versions() {
    local majors major failed_before passed_before i
    mapfile -t majors < <("$INSTALL" --list)
    IN_MATRIX=true
    for major in "${majors[@]}"; do
        failed_before=${#FAILED[@]}
        passed_before=$PASSED
        PG=$major run_integration
        for ((i = failed_before; i < ${#FAILED[@]}; i++)); do
            FAILED[i]="${FAILED[i]}@PostgreSQL-$major"
        done
        if [ "${#FAILED[@]}" -eq "$failed_before" ]; then
            echo "== PostgreSQL $major: all $((PASSED - passed_before)) integration test binaries passed"
        else
            echo "== PostgreSQL $major: $((${#FAILED[@]} - failed_before)) failed, $((PASSED - passed_before)) passed"
        fi
    done
}

# tests/install-check.sh prints its own PASS or FAIL line.
run_install() {
    echo "== make install"
    if "$ROOT/tests/install-check.sh"; then
        PASSED=$((PASSED + 1))
    else
        FAILED+=("install")
    fi
}

main() {
    local kind do_unit=false do_integration=false do_versions=false do_install=false
    [ $# -ge 1 ] || usage
    for kind in "$@"; do
        case "$kind" in
        unit) do_unit=true ;;
        integration) do_integration=true ;;
        versions) do_versions=true ;;
        install) do_install=true ;;
        *) usage ;;
        esac
    done
    trap cleanup EXIT
    trap 'on_signal 130' INT
    trap 'on_signal 143' TERM
    mkdir -p "$LOGS"
    cd "$ROOT"

    if $do_unit; then
        run_unit
    fi
    if $do_integration; then
        run_integration
    fi
    if $do_versions; then
        run_versions
    fi
    if $do_install; then
        run_install
    fi

    if [ "${#FAILED[@]}" -eq 0 ]; then
        echo "== all $PASSED test binaries passed"
        return 0
    fi
    echo "== ${#FAILED[@]} failed, $PASSED passed: ${FAILED[*]}"
    return 1
}

main "$@"
