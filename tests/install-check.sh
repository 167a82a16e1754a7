#!/usr/bin/env bash
# Checks the Makefile's install (manual pages included), uninstall and rebuilds (part of make check, or alone: make
# check-install).
#
# Builds walnotify into a temporary folder with the user's own CFLAGS and PREFIX there, installs
# it, and checks what a plugin author and a user rely on: walnotify.pc's plugindir under
# PKG_CONFIG_PATH, the installed host finding a plugin named by its bare file name ("jsonl.so")
# in that folder, a file of that name next to the configuration taking precedence, and DESTDIR
# staging without changing the folder compiled in, the systemd unit with the installed paths, and
# the example configuration never written over one that is there. Then uninstall removes every
# file it installed and leaves other plugins and an edited configuration. Last, what a changed header rebuilds (make -n -W, which
# changes nothing), and that a .d naming a source that is gone does not stop make.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
TMP=""
# Only used by builds with SANITIZE=1 (make passes it down): known leaks of libraries.
export LSAN_OPTIONS="suppressions=$ROOT/tests/sanitizer/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

cleanup() {
    [ -n "$TMP" ] && rm -rf -- "$TMP"
    return 0
}

fail() {
    echo "FAIL  install: $*"
    exit 1
}

# Runs make in the source tree with a build folder of our own, so the tree's build/ is untouched.
run_make() {
    make -C "$ROOT" --no-print-directory B="$TMP/build" "$@" >>"$TMP/make.log" 2>&1 ||
        { tail -n 30 "$TMP/make.log"; fail "make $* failed"; }
}

# A configuration in FOLDER whose one plugin is PATH, writing to standard output.
write_config() {
    mkdir -p "$1"
    cat >"$1/walnotify.conf" <<CONF
source = { conninfo = "dbname=none"; tables = [ "public.t" ]; };
plugins = ( { name = "out"; path = "$2"; settings = { path = "-"; fsync = false; }; } );
CONF
}

# Runs the installed host's --check-config on FOLDER's configuration; sets RC and ERR.
check_config() {
    RC=0
    "$PREFIX/bin/walnotify" --check-config -c "$1/walnotify.conf" >"$TMP/out" 2>"$TMP/err" || RC=$?
    ERR=$(cat "$TMP/err")
}

check_installed_files() {
    local f
    for f in bin/walnotify lib/walnotify/jsonl.so include/walnotify/plugin.h \
        lib/pkgconfig/walnotify.pc lib/systemd/system/walnotify.service etc/walnotify/walnotify.conf \
        share/man/man1/walnotify.1 share/man/man5/walnotify.conf.5 share/man/man7/walnotify-plugin.7; do
        [ -f "$PREFIX/$f" ] || fail "make install did not install $PREFIX/$f"
    done
}

# The unit names the installed host and configuration, speaks the notify protocol with a
# watchdog, and stays hardened.
check_unit() {
    local unit=$PREFIX/lib/systemd/system/walnotify.service line
    for line in "Type=notify" "WatchdogSec=120s" "NotifyAccess=main" "NoNewPrivileges=yes" \
        "ProtectSystem=strict" "PrivateTmp=yes" "UMask=0077" \
        "ExecStart=$PREFIX/bin/walnotify -c $PREFIX/etc/walnotify/walnotify.conf" \
        "ExecStartPre=$PREFIX/bin/walnotify --check-config -c $PREFIX/etc/walnotify/walnotify.conf" \
        'ExecReload=/bin/kill -HUP $MAINPID'; do
        grep -qxF "$line" "$unit" || fail "the installed unit has no line \"$line\""
    done
    ! grep -q "@[A-Z]*@" "$unit" || fail "the installed unit keeps a placeholder: $(grep "@[A-Z]*@" "$unit")"
}

# A second make install keeps the configuration the user edited.
check_config_kept() {
    local conf=$PREFIX/etc/walnotify/walnotify.conf
    cmp -s "$ROOT/etc/walnotify.conf" "$conf" || fail "make install did not install the example configuration"
    echo "# edited" >>"$conf"
    run_make install PREFIX="$PREFIX"
    tail -n 1 "$conf" | grep -qx "# edited" || fail "a second make install overwrote $conf"
    cp "$ROOT/etc/walnotify.conf" "$conf"
}

# Each installed manual page reads with man -l, without a warning of the formatter, and says what
# it is about under NAME.
check_man_pages() {
    local page name out
    for page in man1/walnotify.1 man5/walnotify.conf.5 man7/walnotify-plugin.7; do
        name=$(basename "$page")
        name=${name%.*}
        out=$(LC_ALL=C MANWIDTH=80 man --warnings -l "$PREFIX/share/man/$page" 2>"$TMP/man.err") ||
            fail "man -l $PREFIX/share/man/$page failed: $(cat "$TMP/man.err")"
        [ ! -s "$TMP/man.err" ] || fail "man -l $PREFIX/share/man/$page warns: $(cat "$TMP/man.err")"
        grep -q "^ *$name - " <<<"$out" || fail "man -l $PREFIX/share/man/$page shows no NAME line for $name"
    done
}

check_pkg_config() {
    local dir cflags abi want
    dir=$(PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig pkg-config --variable=plugindir walnotify) ||
        fail "pkg-config finds no walnotify under PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig"
    [ "$dir" = "$PREFIX/lib/walnotify" ] ||
        fail "walnotify.pc's plugindir is \"$dir\", not \"$PREFIX/lib/walnotify\""
    abi=$(PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig pkg-config --variable=abi walnotify)
    want=$(sed -n 's/^#define WALNOTIFY_ABI_MAJOR //p' "$ROOT/include/walnotify/plugin.h").$(sed -n \
        's/^#define WALNOTIFY_ABI_MINOR //p' "$ROOT/include/walnotify/plugin.h")
    [ "$abi" = "$want" ] || fail "walnotify.pc's abi is \"$abi\", the header says $want"
    cflags=$(PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig pkg-config --cflags walnotify)
    cflags=${cflags% } # pkg-config ends the line with a space
    [ "$cflags" = "-I$PREFIX/include" ] || fail "walnotify.pc's Cflags are \"$cflags\""
}

check_bare_name() {
    write_config "$TMP/etc" jsonl.so
    check_config "$TMP/etc"
    [ "$RC" -eq 0 ] ||
        fail "a bare plugin name was not found in the installed plugin folder (exit $RC): $ERR"

    # A file of that name next to the configuration is the one meant: here, not a plugin.
    echo "not a shared object" >"$TMP/etc/jsonl.so"
    check_config "$TMP/etc"
    [ "$RC" -eq 2 ] && grep -q "$TMP/etc/jsonl.so" <<<"$ERR" ||
        fail "the file next to the configuration did not take precedence (exit $RC): $ERR"

    write_config "$TMP/missing" nosuch.so
    check_config "$TMP/missing"
    [ "$RC" -eq 2 ] && grep -q "$TMP/missing/nosuch.so" <<<"$ERR" ||
        fail "a bare name found nowhere was not reported next to the configuration (exit $RC): $ERR"
}

# Staging with DESTDIR puts the files under it and compiles in the final folder, not the stage.
check_destdir() {
    local stage=$TMP/stage final=/opt/walnotify-install-check
    run_make install DESTDIR="$stage" PREFIX="$final"
    [ -f "$stage$final/lib/walnotify/jsonl.so" ] || fail "DESTDIR: no $stage$final/lib/walnotify/jsonl.so"
    grep -q "$final/lib/walnotify" "$stage$final/bin/walnotify" ||
        fail "DESTDIR: the host does not hold the plugin folder $final/lib/walnotify"
    ! grep -q "$stage" "$stage$final/bin/walnotify" "$stage$final/lib/pkgconfig/walnotify.pc" \
        "$stage$final/lib/systemd/system/walnotify.service" ||
        fail "DESTDIR: the staging folder leaked into the installed files"
    # make uninstall leaves a configuration the user edited.
    echo "# edited" >>"$stage$final/etc/walnotify/walnotify.conf"
    run_make uninstall DESTDIR="$stage" PREFIX="$final"
    [ -f "$stage$final/etc/walnotify/walnotify.conf" ] || fail "make uninstall removed an edited configuration"
    [ ! -e "$stage$final/lib/systemd/system/walnotify.service" ] || fail "make uninstall left the unit"
}

# The user's CFLAGS come after the project's flags instead of replacing them.
check_user_cflags() {
    grep -q -- "-Iinclude .*-O0 -g.* -c -o $TMP/build/core/config.o" "$TMP/make.log" ||
        fail "make CFLAGS='-O0 -g' did not compile with both the project's flags and -O0 -g"
}

# Which targets make would rebuild had HEADER changed; the tree is not touched.
would_rebuild() {
    make -C "$ROOT" --no-print-directory B="$TMP/build" -n -W "$1" "${@:2}" 2>&1
}

# Header dependencies come from the compiler: the ABI header rebuilds the tests of the ABI, the
# fixtures and the plugins; a core header compiled into a plugin rebuilds that plugin.
check_header_dependencies() {
    local targets=("$TMP/build/tests/test_abi" "$TMP/build/tests/test_jsonl"
        "$TMP/build/tests/fixtures/good.so" "$TMP/build/plugins/jsonl.so") t out
    run_make "${targets[@]}"
    make -C "$ROOT" --no-print-directory B="$TMP/build" -q "${targets[@]}" ||
        fail "a second make would rebuild ${targets[*]}"
    out=$(would_rebuild include/walnotify/plugin.h "${targets[@]}")
    for t in "${targets[@]}"; do
        grep -q -- "-o $t " <<<"$out" || fail "touching include/walnotify/plugin.h would not rebuild $t"
    done
    out=$(would_rebuild core/files.h "${targets[@]}")
    grep -q -- "-o $TMP/build/plugins/jsonl.so " <<<"$out" ||
        fail "touching core/files.h would not rebuild jsonl.so"
    ! grep -q -- "-o $TMP/build/tests/test_abi " <<<"$out" ||
        fail "touching core/files.h would rebuild test_abi, which does not include it"
}

# A .d naming a source that is gone (a plugin's file deleted, a fixture now built from another
# source, as bad_magic.so from bad_plugin.c) puts its target out of date instead of stopping
# make with "No rule to make target"; the rebuild writes the .d anew. A missing .d rebuilds its
# target too.
check_stale_dependencies() {
    local so=$TMP/build/plugins/jsonl.so fixture=$TMP/build/tests/fixtures/bad_magic.so t out
    run_make "$so" "$fixture"
    echo "$so: plugins/jsonl/gone.c" >>"${so%.so}.d"
    echo "$fixture: tests/fixtures/bad_magic.c" >>"${fixture%.so}.d"
    out=$(make -C "$ROOT" --no-print-directory B="$TMP/build" -n "$so" "$fixture" 2>&1) ||
        fail "make stops at a source that a stale .d names: $out"
    for t in "$so" "$fixture"; do
        grep -q -- "-o $t " <<<"$out" || fail "a source gone since the last build does not rebuild $t"
    done
    run_make "$so" "$fixture"
    ! grep -q "gone\.c\|bad_magic\.c" "${so%.so}.d" "${fixture%.so}.d" ||
        fail "the rebuild kept a source that is gone in its .d"
    rm "${so%.so}.d"
    ! make -C "$ROOT" --no-print-directory B="$TMP/build" -q "$so" ||
        fail "a missing ${so%.so}.d does not rebuild $so"
}

check_uninstall() {
    local left
    echo "someone else's plugin" >"$PREFIX/lib/walnotify/other.so"
    run_make uninstall PREFIX="$PREFIX"
    left=$(cd "$PREFIX" && find . -type f | sort | paste -sd ' ')
    [ "$left" = "./lib/walnotify/other.so" ] ||
        fail "make uninstall left \"$left\" (only ./lib/walnotify/other.so should stay)"
    [ ! -e "$PREFIX/include/walnotify" ] || fail "make uninstall left $PREFIX/include/walnotify"
}

main() {
    trap cleanup EXIT
    TMP=$(mktemp -d /tmp/walnotify-install.XXXXXX)
    PREFIX=$TMP/prefix
    run_make install PREFIX="$PREFIX" CFLAGS='-O0 -g' V=1
    check_user_cflags
    check_installed_files
    check_unit
    check_config_kept
    check_man_pages
    check_pkg_config
    check_bare_name
    check_destdir
    check_uninstall
    check_header_dependencies
    check_stale_dependencies
    echo "PASS  install (make CFLAGS=..., make install, manual pages, a plugin by bare name, DESTDIR, make uninstall, header dependencies, stale .d files)"
}

main "$@"
