#!/usr/bin/env bash
# Checks that everything walnotify's build, tests and demo need is installed.
# Silent when it is. As root it installs what is missing (Debian packages); otherwise it names
# the packages and fails, so that a missing header never surfaces as a compiler error.
#
#   tests/deps.sh             what make check needs (with PG=MAJOR other than 15: also npm)
#   tests/deps.sh versions    also npm, for make check-versions
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin

# Prints the Debian package of every missing requirement, one per line.
missing_packages() {
    command -v cc >/dev/null 2>&1 || echo build-essential
    command -v make >/dev/null 2>&1 || echo make
    command -v pkg-config >/dev/null 2>&1 || echo pkg-config
    command -v timeout >/dev/null 2>&1 || echo coreutils
    command -v runuser >/dev/null 2>&1 || echo util-linux
    if [ ! -f /usr/include/postgresql/libpq-fe.h ] || ! command -v pg_config >/dev/null 2>&1; then
        echo libpq-dev
    fi
    if command -v pkg-config >/dev/null 2>&1; then
        pkg-config --exists libconfig || echo libconfig-dev
        pkg-config --exists check || echo check
        pkg-config --exists libcurl || echo libcurl4-openssl-dev
        pkg-config --exists libmicrohttpd || echo libmicrohttpd-dev
    else
        echo libconfig-dev
        echo check
        echo libcurl4-openssl-dev
        echo libmicrohttpd-dev
    fi
    # The metrics endpoint's test parses a scrape with Debian's Prometheus client.
    /usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || echo python3-prometheus-client
    # The kafka plugin and its tests' mock cluster (rdkafka_mock.h).
    [ -f /usr/include/librdkafka/rdkafka_mock.h ] || echo librdkafka-dev
    # The webhook plugin's tests: a Python receiver, certificates made with openssl.
    command -v python3 >/dev/null 2>&1 || echo python3
    command -v openssl >/dev/null 2>&1 || echo openssl
    # The redis plugin: hiredis, and a redis-server its tests start.
    [ -f /usr/include/hiredis/hiredis.h ] || echo libhiredis-dev
    command -v redis-server >/dev/null 2>&1 || echo redis-server
    # The manual pages' check reads them with man -l.
    command -v man >/dev/null 2>&1 || echo man-db
    if [ ! -x "$PG_BIN/postgres" ] || [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
        echo postgresql-15
    fi
    [ -x "$PG_BIN/psql" ] || echo postgresql-client-15
    # The exec plugin's example sinks and their tests.
    command -v python3 >/dev/null 2>&1 || echo python3
    command -v node >/dev/null 2>&1 || echo nodejs
    if $NEED_NPM; then
        command -v npm >/dev/null 2>&1 || echo npm
    fi
}

# The same list on one line, without duplicates.
missing_list() {
    missing_packages | sort -u | tr '\n' ' ' | sed 's/ $//'
}

main() {
    local missing
    NEED_NPM=false
    # The other major versions' servers come from npm (tests/pg-install.sh).
    if [ "${1:-}" = versions ] || { [ -n "${PG:-}" ] && [ "${PG:-}" != 15 ]; }; then
        NEED_NPM=true
    fi
    missing=$(missing_list)
    [ -z "$missing" ] && return 0

    if [ "$(id -u)" -ne 0 ]; then
        echo "walnotify needs: $missing; install them with: sudo apt-get install -y $missing" >&2
        return 1
    fi

    echo "walnotify: installing missing packages: $missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    # shellcheck disable=SC2086 # one word per package, on purpose
    apt-get install -y $missing >&2

    missing=$(missing_list)
    if [ -n "$missing" ]; then
        echo "walnotify: still missing after apt-get install: $missing" >&2
        return 1
    fi
}

main "$@"
