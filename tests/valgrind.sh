#!/usr/bin/env bash
# Runs walnotify's tests under valgrind memcheck: every unit test binary (CK_FORK=no, so the
# tests run inside the checked process), then every integration test with each host process
# (and the plugins it loads with dlopen) under valgrind. Any invalid access, use of an
# uninitialised value, or definite or indirect leak fails the run; each valgrind report is kept in
# build/valgrind/ and the failing ones are printed.
#
#   tests/valgrind.sh                   both (make valgrind builds the tests first)
#   tests/valgrind.sh unit|integration  one of them
#
# Valgrind makes the host 10 to 50 times slower, so the time limits of tests/run.sh and Check
# are raised here (WN_VALGRIND_TIME_LIMIT per binary, CK_TIMEOUT_MULTIPLIER for each test).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
LOGS=$ROOT/build/valgrind
BUILD=$ROOT/build/tests
TIME_LIMIT=${WN_VALGRIND_TIME_LIMIT:-1800}   # seconds per test binary
# shellcheck disable=SC2054 # the commas belong to valgrind's option values
VALGRIND=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
          --show-leak-kinds=definite,indirect --num-callers=30 --track-origins=yes
          "--suppressions=$ROOT/tests/sanitizer/valgrind.supp")
REPORTS_SHOWN=5
FAILED=()
PASSED=0

usage() {
    echo "usage: $0 [unit] [integration]" >&2
    exit 2
}

# Names every valgrind report in LOGS matching pattern that holds an error; the first few are
# printed with their stacks. True when there is none.
scan_reports() {
    local pattern=$1 bad=0 f
    for f in "$LOGS"/$pattern; do
        [ -f "$f" ] || continue
        grep -qE 'ERROR SUMMARY: [1-9]|(definitely|indirectly) lost: [1-9]' "$f" || continue
        bad=$((bad + 1))
        echo "---- valgrind found errors: $f"
        grep -m 1 -E '^==[0-9]+== Command:' "$f" || true
        [ "$bad" -le "$REPORTS_SHOWN" ] || continue
        awk '
            / == (Invalid|Conditional jump|Use of uninitialised|Syscall param|Mismatched|Source and destination|Argument|Jump to)/ ||
            / are (definitely|indirectly) lost in loss record/ { show = 1 }
            show { print }
            show && /^==[0-9]+== $/ { show = 0 }
        ' "$f" | head -n 120
    done
    [ "$bad" -eq 0 ] && return 0
    echo "---- $bad valgrind reports with errors (the first $REPORTS_SHOWN shown in full)"
    return 1
}

run_unit() {
    local bin name rc log
    echo "== unit tests under valgrind"
    for bin in "$BUILD"/test_*; do
        [ -x "$bin" ] || continue
        name=$(basename "$bin")
        log=$LOGS/$name.out
        rc=0
        CK_FORK=no timeout -k 10 "$TIME_LIMIT" "${VALGRIND[@]}" "--log-file=$LOGS/$name.vg.%p.log" \
            "$bin" >"$log" 2>&1 || rc=$?
        if [ "$rc" -eq 0 ]; then
            printf 'PASS  %s\n' "$name"
            PASSED=$((PASSED + 1))
            continue
        fi
        case "$rc" in
        99) printf 'FAIL  %s (valgrind found errors)\n' "$name" ;;
        124 | 137) printf 'FAIL  %s (killed after %s s)\n' "$name" "$TIME_LIMIT" ;;
        *) printf 'FAIL  %s (exit %s)\n' "$name" "$rc" ;;
        esac
        FAILED+=("$name")
        echo "---- last lines of $log ----"
        tail -n 20 "$log"
    done
}

# tests/run.sh starts PostgreSQL and runs each itest_* binary; itest_host_start puts
# WN_HOST_WRAPPER in front of every host it starts. Valgrind writes to its own files so that the
# host's standard error, which the tests read, stays the host's.
run_integration() {
    local rc=0
    echo "== integration tests with the host under valgrind"
    WN_HOST_WRAPPER="${VALGRIND[*]} --log-file=$LOGS/host.vg.%p.log" \
        WN_ITEST_TIME_LIMIT=$TIME_LIMIT CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-6} \
        "$ROOT/tests/run.sh" integration || rc=$?
    if [ "$rc" -ne 0 ]; then
        FAILED+=("integration")
    fi
}

main() {
    local kind do_unit=false do_integration=false
    [ $# -ge 1 ] || set -- unit integration
    for kind in "$@"; do
        case "$kind" in
        unit) do_unit=true ;;
        integration) do_integration=true ;;
        *) usage ;;
        esac
    done
    command -v valgrind >/dev/null 2>&1 || {
        echo "valgrind.sh: valgrind is missing; install it with: apt-get install -y valgrind" >&2
        exit 1
    }
    # WN_HOST_WRAPPER is split at blanks (tests/lib/itest_host.c), so its paths cannot hold one.
    case "$ROOT" in *[[:space:]]*)
        echo "valgrind.sh: the repository path '$ROOT' holds a blank, which WN_HOST_WRAPPER cannot carry" >&2
        exit 1 ;;
    esac
    # AddressSanitizer and valgrind cannot share a process: refuse a SANITIZE=1 build at once.
    if grep -qs __asan_init "$ROOT/build/walnotify" "$BUILD"/test_*; then
        echo "valgrind.sh: build/ holds a SANITIZE=1 build; run make clean, then make valgrind" >&2
        exit 1
    fi
    rm -rf -- "$LOGS"
    mkdir -p -- "$LOGS"
    cd "$ROOT"

    if $do_unit; then
        run_unit
        scan_reports 'test_*.vg.*.log' || true
    fi
    if $do_integration; then
        run_integration
        if ! scan_reports 'host.vg.*.log'; then
            FAILED+=("host-under-valgrind")
        fi
    fi

    if [ "${#FAILED[@]}" -eq 0 ]; then
        echo "== valgrind: clean ($PASSED unit binaries; every host report in $LOGS has no error)"
        return 0
    fi
    echo "== valgrind: failed: ${FAILED[*]} (reports in $LOGS)"
    return 1
}

main "$@"
