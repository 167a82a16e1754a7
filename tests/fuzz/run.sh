#!/usr/bin/env bash
# Builds the decoder's libFuzzer harness (clang, -fsanitize=fuzzer,address,undefined) into
# build/fuzz and runs it for FUZZ_SECONDS (default 60) over a copy of tests/fuzz/corpus, so the
# repository is never written to. Exits non-zero on a crash, a leak or a timeout, naming the
# reproducer; rerun one with: build/fuzz/fuzz_decoder REPRODUCER
#
#   FUZZ_SECONDS=600 tests/fuzz/run.sh      (make fuzz FUZZ_SECONDS=600)
#   FUZZ_JOBS=2 ...                         parallel fuzzing processes (default 1)
#
# As root a missing clang or libFuzzer runtime is installed (Debian packages), like tests/deps.sh;
# otherwise the packages are named and the script fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
OUT=$ROOT/build/fuzz
SECONDS_TO_RUN=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
CLANG=${FUZZ_CC:-clang}
PACKAGES="clang libclang-rt-dev"
WARN="-Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wvla"
WARN="$WARN -Wno-missing-field-initializers"
SOURCES=(tests/fuzz/fuzz_decoder.c core/decoder.c core/relcache.c)

die() {
    echo "fuzz: $*" >&2
    exit 1
}

# True when clang builds and links a libFuzzer target with the sanitizers.
fuzzer_works() {
    local probe=$OUT/probe
    command -v "$CLANG" >/dev/null 2>&1 || return 1
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        >"$probe.c"
    "$CLANG" -fsanitize=fuzzer,address,undefined -o "$probe" "$probe.c" >"$probe.log" 2>&1
}

ensure_toolchain() {
    fuzzer_works && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "clang with libFuzzer is needed: sudo apt-get install -y $PACKAGES (see $OUT/probe.log)"
    fi
    echo "fuzz: installing $PACKAGES" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    # shellcheck disable=SC2086 # one word per package, on purpose
    apt-get install -y --no-install-recommends $PACKAGES >&2
    fuzzer_works || die "clang cannot build a libFuzzer target even after installing $PACKAGES: $(tail -n 3 "$OUT/probe.log")"
}

build() {
    echo "  CLANG   build/fuzz/fuzz_decoder"
    # shellcheck disable=SC2086 # WARN is a list of flags
    "$CLANG" -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -Iinclude -Icore $WARN -o "$OUT/fuzz_decoder" "${SOURCES[@]}"
}

# Names every reproducer libFuzzer left.
report_artifacts() {
    local f
    for f in "$OUT"/artifacts/*; do
        [ -f "$f" ] || continue
        echo "fuzz: reproducer: $f (rerun: build/fuzz/fuzz_decoder $f)" >&2
    done
}

main() {
    local rc=0 log parallel=()
    if ! [[ "$SECONDS_TO_RUN" =~ ^[1-9][0-9]*$ ]]; then
        die "FUZZ_SECONDS must be a positive number of seconds, not '$SECONDS_TO_RUN'"
    fi
    if ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then
        die "FUZZ_JOBS must be a positive number, not '$JOBS'"
    fi
    cd "$ROOT"
    mkdir -p "$OUT/corpus" "$OUT/artifacts"
    ensure_toolchain
    build
    # Findings of earlier runs stay in build/fuzz/corpus; the seeds are added to them.
    cp -- tests/fuzz/corpus/* "$OUT/corpus/"
    rm -f -- "$OUT"/artifacts/*
    log=$OUT/fuzz.log
    echo "fuzz: $SECONDS_TO_RUN s over $(find "$OUT/corpus" -type f | wc -l) inputs (log: $log)"
    export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
    # Parallel jobs write fuzz-N.log into the working folder: build/fuzz, never the repository.
    if [ "$JOBS" -gt 1 ]; then
        parallel=(-jobs="$JOBS" -workers="$JOBS")
        rm -f -- "$OUT"/fuzz-*.log
    fi
    # The outer timeout only guards against a hang of libFuzzer itself.
    (cd "$OUT" && timeout -k 10 $((SECONDS_TO_RUN + 120)) ./fuzz_decoder \
        -max_total_time="$SECONDS_TO_RUN" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 "${parallel[@]}" -artifact_prefix="$OUT/artifacts/" "$OUT/corpus") \
        >"$log" 2>&1 || rc=$?
    if [ "$JOBS" -gt 1 ]; then
        cat "$OUT"/fuzz-*.log >>"$log" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] || [ -n "$(find "$OUT/artifacts" -type f)" ]; then
        tail -n 60 "$log" >&2
        report_artifacts || true
        die "the decoder failed under libFuzzer (exit $rc); full log: $log"
    fi
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|cov: .* ft: ' "$log" | tail -n 3
    echo "fuzz: no crash in $SECONDS_TO_RUN s; corpus now $(find "$OUT/corpus" -type f | wc -l) inputs"
}

main "$@"
